//! Properties of the parts every value goes through, checked on generated input (proptest):
//! batching, day aggregation (alone and through the store), the `Link` header, and the edges
//! that read what users and sources write (configuration, records), which must never panic.
//!
//! Case counts are kept small enough for the whole file to run in a few seconds on 2 cores;
//! raise them for a deeper search with `PROPTEST_CASES=5000 cargo test --test properties`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value as Json};
use url::Url;

use exist_agent::config::{
    Aggregate, Config, FileSourceConfig, HttpAuth, HttpSourceConfig, Paging, RecordFormat,
    SourceConfig, SourceKind, Window,
};
use exist_agent::sources::link::{format_link_header, parse_link_header, Link};
use exist_agent::sources::{
    FileSource, HttpSource, Malformed, PullEvent, PullPlan, Record, RecordTime, Source,
};
use exist_agent::store::{Store, StoredRecord};
use exist_agent::sync::values::{aggregate, decode_time, encode_time, DayRecord};
use exist_api::types::{Batch, Day, Value, ValueType, MAX_BATCH};

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(n),
        // Regressions are kept in the test's doc comments and named tests, not in files.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Batching
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(256))]

    /// `Batch::split` is the only way values reach a write call. For any list of up to 2000
    /// items: no batch holds more than Exist's 35 or is empty, there are exactly `ceil(n / 35)`
    /// batches (the fewest possible), and the batches put end to end are the input itself:
    /// nothing dropped, nothing repeated, the order kept. Items are made unique (their position
    /// is part of them), so a swap or a repeat cannot hide behind equal items.
    #[test]
    fn batches_hold_at_most_35_and_give_back_the_input(
        values in vec(any::<u16>(), 0..2000)
    ) {
        let items: Vec<(usize, u16)> = values.into_iter().enumerate().collect();
        let n = items.len();
        let batches = Batch::split(items.clone());
        prop_assert_eq!(MAX_BATCH, 35);
        prop_assert_eq!(batches.len(), n.div_ceil(35));
        for batch in &batches {
            prop_assert!(!batch.is_empty());
            prop_assert!(batch.len() <= 35, "a batch of {}", batch.len());
            prop_assert_eq!(batch.items().len(), batch.len());
        }
        let back: Vec<(usize, u16)> = batches.into_iter().flat_map(Batch::into_items).collect();
        prop_assert_eq!(back, items);
    }
}

// ---------------------------------------------------------------------------------------------
// Day aggregation
// ---------------------------------------------------------------------------------------------

/// The day every generated record falls on (in its own zone): Berlin springs forward on it.
fn the_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 29).unwrap()
}

/// A few distinct seconds of the day: few enough that records often tie on time.
fn second_of_day() -> impl Strategy<Value = u32> {
    prop_oneof![
        select(vec![0u32, 1, 3_600, 30_000, 30_001, 86_399]),
        0u32..86_400,
    ]
}

/// A record time on [`the_day`], in each form a source can give: a date (midnight), a
/// wall-clock time, or an instant with a UTC offset.
fn record_time() -> impl Strategy<Value = RecordTime> {
    (
        0u8..3,
        second_of_day(),
        select(vec![0i32, 3_600, -18_000, 19_800]),
    )
        .prop_map(|(form, second, offset)| {
            let wall = the_day()
                .and_time(NaiveTime::from_num_seconds_from_midnight_opt(second, 0).unwrap());
            match form {
                0 => RecordTime::Date(the_day()),
                1 => RecordTime::Local(wall),
                _ => {
                    let offset = FixedOffset::east_opt(offset).unwrap();
                    RecordTime::Instant(offset.from_local_datetime(&wall).unwrap())
                }
            }
        })
}

/// A whole number as a source may write it: a JSON integer, an integral float, numeric text
/// (with spaces), a boolean; or no number at all (null, absent).
fn whole_field() -> impl Strategy<Value = Option<Json>> {
    prop_oneof![
        4 => (-1_000_000i64..1_000_000).prop_map(|i| Some(json!(i))),
        1 => (-1_000i64..1_000).prop_map(|i| Some(json!(i as f64))),
        1 => (-1_000i64..1_000).prop_map(|i| Some(json!(format!(" {i} ")))),
        1 => any::<bool>().prop_map(|b| Some(json!(b))),
        1 => Just(Some(Json::Null)),
        1 => Just(None),
    ]
}

/// A decimal with one to three digits after the point, within ±100000: what health data holds.
fn decimal(max_digits: u32) -> impl Strategy<Value = f64> {
    (1..=max_digits, -100_000_000i64..100_000_000).prop_map(|(digits, units)| {
        let scale = 10f64.powi(digits as i32);
        (units as f64 / 1000.0 * scale).trunc() / scale
    })
}

/// One day's records: at least one (how a day without records is valued is not about order).
fn day_records(
    field: impl Strategy<Value = Option<Json>>,
) -> impl Strategy<Value = Vec<DayRecord>> {
    vec((record_time(), field), 1..40).prop_map(|records| {
        records
            .into_iter()
            .map(|(time, n)| {
                let mut fields = Map::new();
                fields.insert("other".into(), json!("x"));
                if let Some(n) = n {
                    fields.insert("n".into(), n);
                }
                DayRecord {
                    time,
                    fields: fields.into(),
                }
            })
            .collect()
    })
}

/// Records and the same records in another order.
fn shuffled(
    records: impl Strategy<Value = Vec<DayRecord>>,
) -> impl Strategy<Value = (Vec<DayRecord>, Vec<DayRecord>)> {
    records.prop_flat_map(|r| (Just(r.clone()), Just(r).prop_shuffle()))
}

const AGGREGATES: [Aggregate; 6] = [
    Aggregate::Sum,
    Aggregate::Count,
    Aggregate::Max,
    Aggregate::Min,
    Aggregate::Mean,
    Aggregate::Last,
];

const NUMERIC_TYPES: [ValueType; 8] = [
    ValueType::Integer,
    ValueType::Float,
    ValueType::Duration,
    ValueType::TimeOfDay,
    ValueType::Percentage,
    ValueType::TimeOfDayFromMidday,
    ValueType::Boolean,
    ValueType::Scale,
];

fn zone() -> impl Strategy<Value = Tz> {
    select(vec![
        chrono_tz::UTC,
        chrono_tz::Europe::Berlin,
        chrono_tz::America::New_York,
        chrono_tz::Asia::Kolkata,
    ])
}

fn agg(records: &[DayRecord], a: Aggregate, vt: ValueType, tz: Tz) -> Option<Value> {
    aggregate(records, a, Some("n"), vt, tz).expect("every generated field is a number")
}

/// The number a generated field stands for.
fn number(v: &Json) -> Option<f64> {
    match v {
        Json::Null => None,
        Json::Bool(b) => Some(f64::from(u8::from(*b))),
        Json::Number(n) => n.as_f64(),
        Json::String(s) => Some(s.trim().parse().unwrap()),
        _ => unreachable!("not generated"),
    }
}

/// The user's wall-clock time of a record, as `last` orders records.
fn wall_clock(time: &RecordTime, tz: Tz) -> NaiveDateTime {
    match *time {
        RecordTime::Date(d) => d.and_time(NaiveTime::MIN),
        RecordTime::Instant(t) => t.with_timezone(&tz).naive_local(),
        RecordTime::Local(t) => t,
    }
}

/// What Exist should hold, computed the slow and obvious way (exact integer arithmetic).
fn expected_whole(records: &[DayRecord], a: Aggregate, vt: ValueType, tz: Tz) -> Option<Value> {
    if a == Aggregate::Count {
        return Some(Value::Int(records.len() as i64));
    }
    let numbers: Vec<(NaiveDateTime, f64)> = records
        .iter()
        .filter_map(|r| Some((wall_clock(&r.time, tz), number(r.fields.get("n")?)?)))
        .collect();
    if numbers.is_empty() {
        return None;
    }
    let sum: i128 = numbers.iter().map(|(_, x)| *x as i128).sum();
    let x = match a {
        Aggregate::Sum => sum as f64,
        Aggregate::Max => numbers.iter().map(|(_, x)| *x).fold(f64::MIN, f64::max),
        Aggregate::Min => numbers.iter().map(|(_, x)| *x).fold(f64::MAX, f64::min),
        Aggregate::Mean => sum as f64 / numbers.len() as f64,
        Aggregate::Last => {
            let latest = numbers.iter().map(|(t, _)| *t).max().unwrap();
            numbers
                .iter()
                .filter(|(t, _)| *t == latest)
                .map(|(_, x)| *x)
                .fold(f64::MIN, f64::max)
        }
        Aggregate::Count | Aggregate::Any => unreachable!(),
    };
    Some(match vt {
        ValueType::Float | ValueType::Percentage => Value::Float((x * 1e6).round() / 1e6),
        _ => Value::Int(x.round() as i64),
    })
}

proptest! {
    #![proptest_config(cases(256))]

    /// A day's value depends on which records the day has, never on the order they come in.
    /// For whole numbers (in every form a source writes them), every aggregate of every numeric
    /// type gives the same value for any permutation of the records, and that value is the one
    /// computed exactly: the sum, the count, the largest, the smallest, the mean, and for `last`
    /// the value of the latest record in the user's wall-clock time, ties on time going to the
    /// larger value. Duplicates by id never reach `aggregate`: the store keeps one version of
    /// each record (see `store_upserts_leave_the_same_day_values_in_any_order`).
    #[test]
    fn whole_number_aggregates_do_not_depend_on_record_order(
        (records, other_order) in shuffled(day_records(whole_field())),
        tz in zone(),
    ) {
        for a in AGGREGATES {
            for vt in NUMERIC_TYPES {
                let value = agg(&records, a, vt, tz);
                prop_assert_eq!(&value, &agg(&other_order, a, vt, tz), "{:?} {:?}", a, vt);
                prop_assert_eq!(value, expected_whole(&records, a, vt, tz), "{:?} {:?}", a, vt);
            }
        }
    }

    /// Aggregates that pick one value (`max`, `min`, `last`, ties on time included) never depend
    /// on the order of the records, whatever the numbers are.
    #[test]
    fn picking_aggregates_do_not_depend_on_record_order(
        (records, other_order) in shuffled(day_records(
            // Any measure a day can hold: the aggregator reports magnitudes beyond 10^15.
            (-1e15f64..=1e15).prop_map(|x| Some(json!(x)))
        )),
        tz in zone(),
    ) {
        for a in [Aggregate::Max, Aggregate::Min, Aggregate::Last] {
            for vt in NUMERIC_TYPES {
                prop_assert_eq!(agg(&records, a, vt, tz), agg(&other_order, a, vt, tz), "{:?} {:?}", a, vt);
            }
        }
    }

    /// `sum` for decimal types does not depend on the order of the records for decimals of up
    /// to three digits after the point within ±100000: summing in another order changes only
    /// the last bits, far below the 6 decimal places the value is rounded to.
    #[test]
    fn decimal_sums_of_decimal_types_do_not_depend_on_record_order(
        (records, other_order) in shuffled(day_records(decimal(3).prop_map(|x| Some(json!(x))))),
        tz in zone(),
    ) {
        for vt in [ValueType::Float, ValueType::Percentage] {
            prop_assert_eq!(agg(&records, Aggregate::Sum, vt, tz), agg(&other_order, Aggregate::Sum, vt, tz), "{:?}", vt);
        }
    }

    /// A string attribute takes the latest record's text; records tied on time give the same
    /// text in any order.
    #[test]
    fn the_latest_text_does_not_depend_on_record_order(
        (records, other_order) in shuffled(day_records(
            option::of(prop_oneof![
                "[a-c]{0,2}".prop_map(Json::String),
                (0i64..3).prop_map(|i| json!(i)),
                Just(Json::Null),
            ])
        )),
        tz in zone(),
    ) {
        let text = |r: &[DayRecord]| aggregate(r, Aggregate::Last, Some("n"), ValueType::String, tz).unwrap();
        prop_assert_eq!(text(&records), text(&other_order));
    }

    /// Whether a day's value can be computed (every record's field is a number) does not depend
    /// on the order of the records either.
    #[test]
    fn a_value_that_cannot_be_computed_fails_in_any_order(
        (records, other_order) in shuffled(day_records(
            option::of(prop_oneof![(0i64..9).prop_map(|i| json!(i)), "[a-z]{1,3}".prop_map(Json::String), Just(json!([1]))])
        )),
        tz in zone(),
    ) {
        for a in AGGREGATES {
            let once = aggregate(&records, a, Some("n"), ValueType::Integer, tz);
            let again = aggregate(&other_order, a, Some("n"), ValueType::Integer, tz);
            prop_assert_eq!(once.is_ok(), again.is_ok());
            if let (Ok(once), Ok(again)) = (once, again) {
                prop_assert_eq!(once, again);
            }
        }
    }

    /// Floating-point addition is not associative: when the exact result sits on a rounding
    /// boundary (x.5 for whole types, a 7th decimal of 5 for decimal types), summing in arrival
    /// order would make the value sent to Exist depend on the order of the records.
    #[test]
    fn decimal_sums_and_means_do_not_depend_on_record_order(
        (records, other_order) in shuffled(day_records(
            (-100i64..100).prop_map(|tenths| Some(json!(tenths as f64 / 10.0)))
        )),
        tz in zone(),
    ) {
        for a in [Aggregate::Sum, Aggregate::Mean] {
            for vt in NUMERIC_TYPES {
                prop_assert_eq!(agg(&records, a, vt, tz), agg(&other_order, a, vt, tz), "{:?} {:?}", a, vt);
            }
        }
    }
}

fn tenth_records(values: &[f64]) -> Vec<DayRecord> {
    values
        .iter()
        .map(|x| DayRecord {
            time: RecordTime::Date(the_day()),
            fields: json!({ "n": x }).as_object().unwrap().clone().into(),
        })
        .collect()
}

/// The smallest case the property above finds: three decimals whose exact sum is 5.5, summed
/// into an integer attribute. In the order 2.3, 2.9, 0.3 the sum is 5.499999999999999 and
/// rounds to 5; in the order 0.3, 2.3, 2.9 it is 5.5 and rounds to 6 (the right value).
#[test]
fn a_sum_of_tenths_rounds_the_same_in_any_order() {
    let tz = chrono_tz::UTC;
    let one = agg(
        &tenth_records(&[2.3, 2.9, 0.3]),
        Aggregate::Sum,
        ValueType::Integer,
        tz,
    );
    let other = agg(
        &tenth_records(&[0.3, 2.3, 2.9]),
        Aggregate::Sum,
        ValueType::Integer,
        tz,
    );
    assert_eq!(other, Some(Value::Int(6)));
    assert_eq!(one, other);
}

/// A text field that Rust's float parser reads but that is no number a person means: `NaN`,
/// `inf`, `infinity`. `aggregate` reports the day as not computable (as it does for
/// "lots"), never turning `NaN` into 0 or `inf` into 9223372036854775807 for a whole-number
/// attribute. CSV cells stay text for exactly these words (see `cell_value` in the record
/// parser), so `aggregate` is where they must be caught.
#[test]
fn non_finite_text_is_not_a_number() {
    for text in ["NaN", "inf", "-inf", "infinity"] {
        let records = vec![DayRecord {
            time: RecordTime::Date(the_day()),
            fields: json!({ "n": text }).as_object().unwrap().clone().into(),
        }];
        for vt in [ValueType::Integer, ValueType::Duration] {
            let result = aggregate(&records, Aggregate::Sum, Some("n"), vt, chrono_tz::UTC);
            assert!(result.is_err(), "{text:?} summed to {result:?} for {vt}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Aggregation through the store
// ---------------------------------------------------------------------------------------------

/// A record as a source hands it over, as the engine stores it: id, version, time and field.
#[derive(Debug, Clone)]
struct Version {
    id: String,
    updated_at: Option<DateTime<Utc>>,
    time: RecordTime,
    n: i64,
}

impl Version {
    fn stored(&self) -> StoredRecord {
        StoredRecord {
            id: self.id.clone(),
            day: self.time.day(chrono_tz::UTC, NaiveTime::MIN),
            time: encode_time(&self.time),
            updated_at: self
                .updated_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            data: json!({ "n": self.n }).to_string(),
        }
    }
}

/// Records over three days: ids `a0..a7` each in up to three versions with distinct change
/// times (an HTTP source's records), and ids `b0..b7` in one version without a change time
/// (a file's records).
fn versions(max_versions: usize) -> impl Strategy<Value = Vec<Version>> {
    let time = (0u32..3, 0u32..86_400).prop_map(|(d, s)| {
        RecordTime::Local(
            (the_day() + chrono::Duration::days(i64::from(d)))
                .and_time(NaiveTime::from_num_seconds_from_midnight_opt(s, 0).unwrap()),
        )
    });
    let with_change = (
        0u8..8,
        vec(
            (0i64..1_000_000, time.clone(), -50i64..50),
            1..=max_versions,
        ),
    )
        .prop_map(|(id, vs)| {
            let mut seen = std::collections::BTreeSet::new();
            vs.into_iter()
                .filter(|(at, _, _)| seen.insert(*at))
                .map(|(at, time, n)| Version {
                    id: format!("a{id}"),
                    updated_at: Some(DateTime::from_timestamp(1_770_000_000 + at, 0).unwrap()),
                    time,
                    n,
                })
                .collect::<Vec<_>>()
        });
    let without = (0u8..8, time, -50i64..50).prop_map(|(id, time, n)| {
        vec![Version {
            id: format!("b{id}"),
            updated_at: None,
            time,
            n,
        }]
    });
    vec(prop_oneof![with_change, without], 0..16).prop_map(|groups| {
        // One group per id (a second group with the same id would repeat change times).
        let mut by_id: BTreeMap<String, Vec<Version>> = BTreeMap::new();
        for group in groups {
            by_id.entry(group[0].id.clone()).or_insert(group);
        }
        by_id.into_values().flatten().collect()
    })
}

/// Every day's value of every aggregate, read back from the store the way the engine does.
fn day_values(store: &Store) -> BTreeMap<(Day, String), Option<Value>> {
    let tx = store.read();
    let mut out = BTreeMap::new();
    for day in tx.record_days("s").unwrap() {
        let records: Vec<DayRecord> = tx
            .records_on("s", day)
            .unwrap()
            .into_iter()
            .map(|(time, data)| DayRecord {
                time: decode_time(&time).expect("stored times read back"),
                fields: serde_json::from_str(&data).unwrap(),
            })
            .collect();
        for a in AGGREGATES {
            out.insert(
                (day, format!("{a:?}")),
                agg(&records, a, ValueType::Integer, chrono_tz::UTC),
            );
        }
    }
    out
}

fn store_with(records: &[Version]) -> Result<(tempfile::TempDir, Store), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let stored: Vec<StoredRecord> = records.iter().map(Version::stored).collect();
    let upserted = store.transaction(|tx| tx.upsert_records("s", &stored));
    prop_assert!(upserted.is_ok(), "upserting failed: {:?}", upserted);
    Ok((dir, store))
}

/// Records, every one of them twice in some order, and another order of `records`.
fn upsert_orders(
    max_versions: usize,
) -> impl Strategy<Value = (Vec<Version>, Vec<Version>, Vec<Version>)> {
    versions(max_versions).prop_flat_map(|v| {
        let doubled: Vec<Version> = v.iter().chain(&v).cloned().collect();
        (
            Just(v.clone()),
            Just(doubled).prop_shuffle(),
            Just(v).prop_shuffle(),
        )
    })
}

/// Upserting `twice` and `once` gives the same records and day values, and those of the model:
/// the newest version of each id, aggregated per day without the store.
fn same_day_values(
    records: &[Version],
    twice: &[Version],
    once: &[Version],
) -> Result<(), TestCaseError> {
    let (_d1, a) = store_with(twice)?;
    let (_d2, b) = store_with(once)?;
    for day in a.read().record_days("s").unwrap() {
        prop_assert_eq!(
            a.read().records_on("s", day).unwrap(),
            b.read().records_on("s", day).unwrap()
        );
    }
    let values = day_values(&a);
    prop_assert_eq!(&values, &day_values(&b));

    let mut newest: BTreeMap<&str, &Version> = BTreeMap::new();
    for v in records {
        if newest
            .get(v.id.as_str())
            .is_none_or(|old| v.updated_at > old.updated_at)
        {
            newest.insert(&v.id, v);
        }
    }
    let mut model: BTreeMap<Day, Vec<DayRecord>> = BTreeMap::new();
    for v in newest.values() {
        model
            .entry(v.time.day(chrono_tz::UTC, NaiveTime::MIN))
            .or_default()
            .push(DayRecord {
                time: v.time,
                fields: json!({ "n": v.n }).as_object().unwrap().clone().into(),
            });
    }
    let mut expected = BTreeMap::new();
    for (day, records) in &model {
        for a in AGGREGATES {
            expected.insert(
                (*day, format!("{a:?}")),
                agg(records, a, ValueType::Integer, chrono_tz::UTC),
            );
        }
    }
    prop_assert_eq!(values, expected);
    Ok(())
}

proptest! {
    #![proptest_config(cases(48))]

    /// Duplicates by id are removed by the store before aggregation, so a day's values depend
    /// on the set of records pulled, not on how often or in which order they were pulled.
    /// Upserting every record twice, in any order, gives the same stored records and the same
    /// day values as upserting each once in another order; and those values are the aggregates
    /// of the records computed without the store. (One version per id here; the next property
    /// has several.)
    #[test]
    fn store_upserts_leave_the_same_day_values_in_any_order(
        (records, twice, once) in upsert_orders(1)
    ) {
        same_day_values(&records, &twice, &once)?;
    }

    /// The same with several versions of a record (distinct change times): whatever the order,
    /// the newest version of each id is the one aggregated. With equal change times, or a
    /// version without one, the version upserted last wins, by design, so those are not
    /// generated.
    #[test]
    fn store_upserts_of_several_versions_leave_the_same_day_values_in_any_order(
        (records, twice, once) in upsert_orders(3)
    ) {
        same_day_values(&records, &twice, &once)?;
    }

    /// A record's time survives the store: `decode_time(encode_time(t)) == t` for every time a
    /// source produces (dates of years 0 to 9999, wall-clock times and instants to the
    /// nanosecond, offsets in whole minutes up to ±23:59).
    #[test]
    fn record_times_survive_the_store(
        date in (0i32..=9999, 1u32..=366).prop_filter_map("a date", |(y, d)| NaiveDate::from_yo_opt(y, d)),
        second in 0u32..86_400,
        nano in prop_oneof![Just(0u32), 0u32..1_000_000_000],
        offset_minutes in -1439i32..=1439,
        form in 0u8..3,
    ) {
        let wall = date.and_time(NaiveTime::from_num_seconds_from_midnight_opt(second, nano).unwrap());
        let time = match form {
            0 => RecordTime::Date(date),
            1 => RecordTime::Local(wall),
            _ => RecordTime::Instant(
                FixedOffset::east_opt(offset_minutes * 60).unwrap().from_local_datetime(&wall).unwrap(),
            ),
        };
        prop_assert_eq!(decode_time(&encode_time(&time)), Some(time));
    }
}

// ---------------------------------------------------------------------------------------------
// Link header
// ---------------------------------------------------------------------------------------------

/// An absolute http(s) URL with commas, semicolons, equals signs, quotes and the like in its
/// path and query, and sometimes a fragment.
fn absolute_url() -> impl Strategy<Value = Url> {
    (
        select(vec!["http", "https", "HTTPS"]),
        prop_oneof![
            "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}",
            Just("127.0.0.1".to_owned()),
            Just("[::1]".to_owned())
        ],
        option::of(1u16..65535),
        vec("[a-zA-Z0-9,;=._~!$&'()*+@:%-]{0,8}", 0..4),
        option::of("[a-zA-Z0-9,;=&._~/?:@!$'()*+ \"<>-]{0,24}"),
        option::of("[a-zA-Z0-9,;=]{0,6}"),
    )
        .prop_filter_map(
            "a valid URL",
            |(scheme, host, port, segments, query, fragment)| {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                let query = query.map(|q| format!("?{q}")).unwrap_or_default();
                let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
                Url::parse(&format!(
                    "{scheme}://{host}{port}/{}{query}{fragment}",
                    segments.join("/")
                ))
                .ok()
            },
        )
}

/// A relation type: registered (`next`, `prev`, ...), made up, in any case, or an extension
/// relation type (a URI).
fn relation_type() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "next", "prev", "first", "last", "self", "NEXT", "Last"
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z][a-zA-Z0-9.-]{0,10}",
        "https://example\\.com/rel/[a-z,;]{1,6}",
    ]
}

/// Link parameters other than `rel`: titles with commas, semicolons, quotes, backslashes and
/// angle brackets, RFC 8187 `title*` values in any script, parameters without a value, and
/// names in any case (they are compared lower-cased).
fn link_params() -> impl Strategy<Value = Vec<(String, String)>> {
    vec(
        prop_oneof![
            (
                "title|TITLE|type|anchor|hreflang|x-[a-z]{1,5}",
                "[ -~]{0,20}"
            ),
            ("title", "[a-z ,;\"\\\\<>=]{0,20}"),
            ("title\\*", "\\PC{0,10}"),
            ("crossorigin", Just(String::new())),
        ],
        0..4,
    )
    .prop_filter("rel is the relation, not a parameter", |params| {
        params
            .iter()
            .all(|(name, _)| !name.eq_ignore_ascii_case("rel"))
    })
}

/// One header entry: a target, one or more relation types, and parameters.
fn link_entry() -> impl Strategy<Value = (Url, Vec<String>, Vec<(String, String)>)> {
    (absolute_url(), vec(relation_type(), 1..4), link_params())
}

proptest! {
    #![proptest_config(cases(512))]

    /// Formatting links as a `Link` header and parsing it back gives the same links: targets
    /// unchanged whatever commas and semicolons their queries hold, parameter values unchanged
    /// whatever their quotes, escapes and scripts, names lower-cased. An entry written with
    /// several relation types (`rel="next last"`) comes back as one link per type, in order,
    /// each with the entry's target and parameters.
    #[test]
    fn link_headers_round_trip(entries in vec(link_entry(), 0..6)) {
        let written: Vec<Link> = entries
            .iter()
            .map(|(target, rels, params)| Link {
                target: target.clone(),
                rel: rels.join(" "),
                params: params.clone(),
            })
            .collect();
        let header = format_link_header(&written);
        let expected: Vec<Link> = entries
            .iter()
            .flat_map(|(target, rels, params)| {
                rels.iter().map(move |rel| Link {
                    target: target.clone(),
                    rel: rel.to_ascii_lowercase(),
                    params: params
                        .iter()
                        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                        .collect(),
                })
            })
            .collect();
        // Relative targets resolve against the request; absolute ones ignore it.
        let base = Url::parse("https://api.example.com/v1/human/activities?limit=50").unwrap();
        let parsed = parse_link_header(&header, &base);
        prop_assert_eq!(&parsed, &expected, "header: {}", header);
        // Formatting what was parsed gives the same header again, entry by entry.
        let again = format_link_header(&parsed);
        prop_assert_eq!(parse_link_header(&again, &base), expected);
    }

    /// Parsing never panics, whatever the header, and every link it returns has a relation type
    /// (lower-case, without spaces) and a target.
    #[test]
    fn any_link_header_parses_without_panicking(header in prop_oneof![
        any::<String>(),
        "[<>;,=\" a-z:/.?*'%\\\\]{0,60}",
    ]) {
        let base = Url::parse("https://api.example.com/v1/human/activities").unwrap();
        for link in parse_link_header(&header, &base) {
            prop_assert!(!link.rel.is_empty());
            prop_assert!(!link.rel.contains(|c: char| c.is_ascii_whitespace()));
            prop_assert_eq!(link.rel.to_ascii_lowercase(), link.rel.clone());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

const EXAMPLE: &str = include_str!("../../config.example.toml");

/// Checks one configuration text: no panic, and an error names the file and a line in it.
fn check_config(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new("/home/me/.config/exist-agent/config.toml");
    match Config::parse(path, text) {
        Ok(config) => {
            prop_assert!(!config.exist.client_id.trim().is_empty());
            prop_assert!(config.agent.resync_days >= 2);
        }
        Err(e) => {
            prop_assert_eq!(&e.file, path);
            // An editor shows one line more than there are newlines (the last, maybe empty).
            let lines = text.matches('\n').count() + 1;
            if let Some(line) = e.line {
                prop_assert!(
                    (1..=lines).contains(&line),
                    "line {} of {}: {}",
                    line,
                    lines,
                    e
                );
            }
            prop_assert!(!e.problem.is_empty(), "an error says what is wrong: {}", e);
            let shown = e.to_string();
            prop_assert!(shown.starts_with(&path.display().to_string()), "{}", shown);
        }
    }
    Ok(())
}

/// A token that can replace a value: numbers, strings of every kind, arrays, inline tables,
/// booleans, dates, and plain garbage.
fn value_token() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        select(vec![
            "0", "-1", "1", "2", "31", "32", "366", "367", "500", "501", "1e3", "nan", "inf",
            "0x10", "1_000"
        ])
        .prop_map(str::to_owned),
        "\"[ -~]{0,12}\"",
        "'[^'\n]{0,12}'",
        "\"\"\"[a-z\n]{0,12}\"\"\"",
        select(vec![
            "\"hourly\"",
            "\"daily\"",
            "\"17 * * * *\"",
            "\"* * * * * * 2026\"",
            "\"61 * * * *\"",
            "\"05:00\"",
            "\"25:00\"",
            "\"Europe/Berlin\"",
            "\"Mars/Base\"",
            "\"http://localhost:8000/\"",
            "\"https://example.com/\"",
            "\"file\"",
            "\"keyring\"",
            "\"csv\"",
            "\"jsonl\"",
            "\"sum\"",
            "\"count\"",
            "\"stepz\"",
            "\"steps\"",
            "\"string\"",
            "\"food\"",
            "\"127.0.0.1:8787\"",
            "\"1h\"",
            "\"0s\"",
            "\"~/x.csv\""
        ])
        .prop_map(str::to_owned),
        "\\[(\"[a-z]{0,3}\", ?){0,3}\\]",
        "\\{ ?([a-z]{1,3} = \"[a-z]{0,3}\", ?){0,2}\\}",
        select(vec![
            "true",
            "false",
            "1979-05-27",
            "07:32:00",
            "1979-05-27T07:32:00Z",
            "[",
            "]",
            "{",
            "\"",
            "=",
            ""
        ])
        .prop_map(str::to_owned),
        "[^\n]{0,10}",
    ]
}

/// One change to a configuration file.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Duplicate(usize),
    /// Replace the value of the n-th `key = value` line (the comment after it goes too).
    Revalue(usize, String),
    /// Insert a line.
    Insert(usize, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Duplicate),
        (any::<usize>(), value_token()).prop_map(|(i, v)| Mutation::Revalue(i, v)),
        (
            any::<usize>(),
            prop_oneof![
                "[a-z_]{1,15} = "
                    .prop_flat_map(|k| value_token().prop_map(move |v| format!("{k}{v}"))),
                select(vec![
                    "[exist]",
                    "[agent]",
                    "[[source]]",
                    "[[attribute]]",
                    "[source]",
                    "[[exist]]",
                    "[attribute.x]"
                ])
                .prop_map(str::to_owned),
            ]
        )
            .prop_map(|(i, l)| Mutation::Insert(i, l)),
    ]
}

fn apply(text: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for m in mutations {
        if lines.is_empty() {
            break;
        }
        match m {
            Mutation::Delete(i) => {
                lines.remove(i % lines.len());
            }
            Mutation::Duplicate(i) => {
                let i = i % lines.len();
                lines.insert(i, lines[i].clone());
            }
            Mutation::Insert(i, line) => {
                let i = i % (lines.len() + 1);
                lines.insert(i, line.clone());
            }
            Mutation::Revalue(i, value) => {
                let assignments: Vec<usize> = (0..lines.len())
                    .filter(|&l| {
                        !lines[l].trim_start().starts_with('#') && lines[l].contains(" = ")
                    })
                    .collect();
                if let Some(&l) = assignments.get(i % assignments.len().max(1)) {
                    let key = lines[l].split(" = ").next().unwrap().to_owned();
                    lines[l] = format!("{key} = {value}");
                }
            }
        }
    }
    lines.join("\n") + "\n"
}

#[test]
fn the_example_configuration_is_valid() {
    let config = Config::parse(Path::new("config.example.toml"), EXAMPLE).unwrap();
    assert_eq!(config.sources.len(), 3);
    assert_eq!(config.attributes.len(), 3);
}

proptest! {
    #![proptest_config(cases(512))]

    /// Whatever the file holds, reading it never panics: it gives a configuration or an error
    /// that names the file and, when it names a line, a line that is in the file.
    #[test]
    fn any_text_gives_a_config_or_an_error_at_a_line_of_the_file(text in prop_oneof![
        any::<String>(),
        // TOML-shaped noise: headers, keys, values, comments, on several lines.
        vec(prop_oneof![
            select(vec!["[exist]", "[agent]", "[[source]]", "[[attribute]]", "client_id = \"x\"", "# c", ""]).prop_map(str::to_owned),
            "[a-z_.]{1,12} ?= ?".prop_flat_map(|k| value_token().prop_map(move |v| format!("{k}{v}"))),
        ], 0..12).prop_map(|lines| lines.join("\n")),
    ]) {
        check_config(&text)?;
    }

    /// The same for the example configuration with lines deleted, duplicated, inserted, or
    /// given another value: most such files are wrong in some way, and each is reported with a
    /// line inside the file (or as valid).
    #[test]
    fn a_mutated_example_gives_a_config_or_an_error_at_a_line_of_the_file(
        mutations in vec(mutation(), 1..4)
    ) {
        check_config(&apply(EXAMPLE, &mutations))?;
    }
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// Text that looks like a date or a timestamp, nearly or exactly, or not at all.
fn stamp_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{4}-[01][0-9]-[0-3][0-9]",
        "[0-9]{4}-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-6][0-9](:[0-6][0-9]([.,][0-9]{0,12})?)?( ?([Zz]|[+-][0-2][0-9](:?[0-6][0-9])?))?",
        " ?20[0-9]{2}-0[1-9]-[12][0-9]([T ]1[0-9]:[0-5][0-9](:[0-5][0-9])?)? ?",
        "[0-9 :.,TZz+-]{0,30}",
        "\\PC{0,12}",
    ]
}

/// Any JSON value, shallow.
fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|i| json!(i)),
        any::<f64>().prop_filter_map("finite", |x| serde_json::Number::from_f64(x)
            .map(Json::Number)),
        "\\PC{0,10}".prop_map(Json::String),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(Json::Array),
            vec(("[a-z]{1,4}", inner), 0..3).prop_map(|kv| Json::Object(kv.into_iter().collect())),
        ]
    })
}

/// 0000-01-01T00:00:00Z: earlier epoch seconds are accepted but lost by the store (see
/// `epoch_seconds_before_year_0_are_reported_or_kept`), so the never-panic properties start here.
const FIRST_EPOCH_SECOND: i64 = -62_167_219_200;

/// A value for a record's date field: timestamps and near misses as text, epoch seconds of
/// every size (and milliseconds by mistake), or anything else.
fn date_value() -> impl Strategy<Value = Json> {
    prop_oneof![
        4 => stamp_text().prop_map(Json::String),
        1 => (FIRST_EPOCH_SECOND..300_000_000_000).prop_map(|s| json!(s)),
        1 => (FIRST_EPOCH_SECOND as f64..3e11).prop_map(|s| json!(s)),
        1 => (-1e-9f64..1e-9).prop_map(|s| json!(s)),
        1 => json_value().prop_filter("not epoch seconds before year 0", |v| {
            !v.as_f64().is_some_and(|x| (-253_402_300_800.0..FIRST_EPOCH_SECOND as f64).contains(&x))
        }),
    ]
}

fn offset_value() -> impl Strategy<Value = Json> {
    prop_oneof![
        "[+-][0-2][0-9](:?[0-6][0-9])?|Z|z|[+-][0-9]{0,5}|\\PC{0,6}".prop_map(Json::String),
        json_value(),
    ]
}

fn zone_value() -> impl Strategy<Value = Json> {
    prop_oneof![
        select(vec![
            "Europe/Berlin",
            "America/New_York",
            "Asia/Kathmandu",
            "Pacific/Chatham",
            "UTC",
            " Europe/Paris ",
            "Mars/Base",
            "",
            "Etc/GMT+12",
            "Australia/Lord_Howe"
        ])
        .prop_map(|z| json!(z)),
        json_value(),
    ]
}

fn id_value() -> impl Strategy<Value = Json> {
    prop_oneof![
        "[a-z0-9]{0,6}".prop_map(Json::String),
        any::<i64>().prop_map(|i| json!(i)),
        json_value(),
    ]
}

/// A raw record as a source sends it: usually with a date, sometimes an id, an offset, a zone
/// and a change time, and other fields of any kind.
fn raw_record() -> impl Strategy<Value = Map<String, Json>> {
    (
        option::weighted(0.9, date_value()),
        option::of(id_value()),
        option::weighted(0.3, offset_value()),
        option::weighted(0.3, zone_value()),
        option::weighted(
            0.5,
            prop_oneof![stamp_text().prop_map(Json::String), date_value()],
        ),
        vec(("[a-zA-Z]{1,6}", json_value()), 0..3),
    )
        .prop_map(|(date, id, offset, zone, updated, others)| {
            let mut map: Map<String, Json> = others.into_iter().collect();
            let known = [
                ("date", date),
                ("id", id),
                ("tzOffset", offset),
                ("timeZone", zone),
                ("updatedAt", updated),
            ];
            for (key, value) in known {
                match value {
                    Some(v) => map.insert(key.to_owned(), v),
                    None => map.remove(key),
                };
            }
            map
        })
}

fn source_config(kind: SourceKind) -> SourceConfig {
    SourceConfig {
        name: "s".into(),
        date_field: "date".into(),
        tz_offset_field: Some("tzOffset".into()),
        every: None,
        stale_after: None,
        kind,
    }
}

fn file_source(path: &Path, format: RecordFormat) -> FileSource {
    let file = FileSourceConfig {
        path: path.to_owned(),
        format,
        id_field: Some("id".into()),
    };
    FileSource::new(&source_config(SourceKind::File(file.clone())), &file)
}

/// Pulls a source on a fresh runtime and collects what it hands over.
fn pull_all(source: &impl Source) -> (Vec<Record>, Vec<Malformed>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut records, mut malformed) = (Vec::new(), Vec::new());
    let mut sink = |event: PullEvent| {
        match event {
            PullEvent::Records(r) => records.extend(r),
            PullEvent::Malformed(m) => malformed.push(m),
            PullEvent::Total(_) | PullEvent::WindowDone { .. } | PullEvent::Content { .. } => {}
        }
        Ok(())
    };
    rt.block_on(source.pull(&PullPlan::Incremental { since: None }, &mut sink))
        .expect("a pull of well-formed pages or a readable file succeeds");
    (records, malformed)
}

/// What must hold of every record that was not skipped: it can be placed on a day in any zone
/// with any day start, and its time survives the store.
fn check_record(record: &Record) -> Result<(), TestCaseError> {
    for tz in [
        chrono_tz::UTC,
        chrono_tz::Pacific::Kiritimati,
        chrono_tz::Etc::GMTPlus12,
    ] {
        for start in [
            NaiveTime::MIN,
            NaiveTime::from_hms_opt(5, 0, 0).unwrap(),
            NaiveTime::from_hms_opt(23, 59, 0).unwrap(),
        ] {
            record.time.day(tz, start);
        }
    }
    prop_assert_eq!(
        decode_time(&encode_time(&record.time)),
        Some(record.time),
        "{:?}",
        record
    );
    Ok(())
}

/// The line a malformed-record report names (`line 7` or `line 7 (id x)`).
fn reported_line(m: &Malformed) -> usize {
    m.location
        .strip_prefix("line ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a file record is named by its line: {}", m.location))
}

proptest! {
    #![proptest_config(cases(64))]

    /// A JSON Lines file of arbitrary objects: every line becomes a record or a report naming
    /// its line (never a panic, never both, never neither); a record keeps the object's fields
    /// as they were and its id; its time lands on a day in any zone and survives the store.
    #[test]
    fn json_lines_records_parse_or_are_reported_never_panic(objects in vec(raw_record(), 0..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.jsonl");
        let lines: Vec<String> = objects.iter().map(|o| Json::Object(o.clone()).to_string()).collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        // Objects as a JSON parser reads them back (decimals may differ in their last bit).
        let objects: Vec<Map<String, Json>> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        let (records, malformed) = pull_all(&file_source(&path, RecordFormat::JsonLines));
        prop_assert_eq!(records.len() + malformed.len(), objects.len());
        let skipped: Vec<usize> = malformed.iter().map(reported_line).collect();
        let kept: Vec<&Map<String, Json>> = objects
            .iter()
            .enumerate()
            .filter(|(i, _)| !skipped.contains(&(i + 1)))
            .map(|(_, o)| o)
            .collect();
        prop_assert_eq!(kept.len(), records.len());
        for (record, object) in records.iter().zip(kept) {
            prop_assert_eq!(&record.fields, object);
            let id = match object.get("id") {
                Some(Json::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Json::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            prop_assert_eq!(&record.id, &id);
            check_record(record)?;
        }
    }

    /// A CSV file of arbitrary rows (cells with commas, quotes, newlines, timestamps, numbers,
    /// any script; rows shorter or longer than the header): every row with any non-blank cell
    /// becomes a record or a report, never a panic.
    #[test]
    fn csv_rows_parse_or_are_reported_never_panic(
        header in (vec(prop_oneof![select(vec!["date", "id", "tzOffset", "timeZone", "n"]).prop_map(str::to_owned), "\\PC{0,5}"], 0..5))
            .prop_map(|mut h| { h.insert(0, "date".to_owned()); h }),
        rows in vec(vec(prop_oneof![
            3 => stamp_text(),
            1 => any::<i64>().prop_map(|i| i.to_string()),
            1 => any::<f64>().prop_map(|x| x.to_string()),
            1 => "[ -~]{0,8}",
            1 => "[\",\n\r ]{0,4}",
            1 => select(vec!["NaN", "inf", "1e999", "-0", "007", ""]).prop_map(str::to_owned),
        ], 1..7), 0..30),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.csv");
        let mut writer = csv::WriterBuilder::new().flexible(true).from_path(&path).unwrap();
        writer.write_record(&header).unwrap();
        for row in &rows {
            writer.write_record(row).unwrap();
        }
        writer.flush().unwrap();
        drop(writer);
        let (records, malformed) = pull_all(&file_source(&path, RecordFormat::Csv));
        let non_blank = rows.iter().filter(|r| r.iter().any(|c| !c.trim().is_empty())).count();
        prop_assert_eq!(records.len() + malformed.len(), non_blank);
        for record in &records {
            check_record(record)?;
        }
    }

    /// Any bytes at all as a file, read as JSON Lines and as CSV: no panic, a finished pull,
    /// and no more records and reports than the file has lines.
    #[test]
    fn any_file_reads_without_panicking(bytes in prop_oneof![
        vec(any::<u8>(), 0..400),
        vec(prop_oneof![Just(b'\n'), Just(b','), Just(b'"'), Just(b'{'), Just(b'}'), Just(b':'), Just(0xEF), Just(0xBB), Just(0xBF), any::<u8>()], 0..400),
    ]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records");
        std::fs::write(&path, &bytes).unwrap();
        // CSV also ends a row at a lone carriage return.
        let lines = bytes.iter().filter(|&&b| b == b'\n' || b == b'\r').count() + 1;
        for format in [RecordFormat::JsonLines, RecordFormat::Csv] {
            let (records, malformed) = pull_all(&file_source(&path, format));
            prop_assert!(records.len() + malformed.len() <= lines);
            for record in &records {
                check_record(record)?;
            }
        }
    }
}

/// An HTTP source on a local server that answers one page with the records of the case.
struct OnePageServer {
    /// Serves the page for as long as the server lives.
    _rt: tokio::runtime::Runtime,
    body: Arc<Mutex<String>>,
    url: Url,
}

impl OnePageServer {
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let body = Arc::new(Mutex::new(String::new()));
        let served = body.clone();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = Url::parse(&format!(
            "http://{}/v1/human/activities",
            listener.local_addr().unwrap()
        ))
        .unwrap();
        let app = axum::Router::new().route(
            "/v1/human/activities",
            axum::routing::get(move || {
                let body = served.lock().unwrap().clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        );
        rt.spawn(async move { axum::serve(listener, app).await });
        Self { _rt: rt, body, url }
    }

    fn source(&self) -> HttpSource {
        let http = HttpSourceConfig {
            url: self.url.clone(),
            auth: HttpAuth::None,
            records: None,
            body_status: None,
            window: Window::default(),
            paging: Paging::default(),
            id_field: "id".into(),
            updated_field: "updatedAt".into(),
            page_limit: 500,
            window_days: 31,
            max_pages: 1000,
            max_requests: 5000,
            timeout: std::time::Duration::from_secs(600),
            params: BTreeMap::new(),
        };
        HttpSource::new(&source_config(SourceKind::Http(http.clone())), &http).unwrap()
    }
}

proptest! {
    #![proptest_config(cases(48))]

    /// A page of arbitrary items from an HTTP source (which also reads ids and change times):
    /// every item becomes a record or a report, never a panic; a record keeps its fields.
    #[test]
    fn http_page_items_parse_or_are_reported_never_panic(
        items in vec(prop_oneof![9 => raw_record().prop_map(Json::Object), 1 => json_value()], 0..30)
    ) {
        thread_local! {
            static SERVER: OnePageServer = OnePageServer::start();
        }
        let body = Json::Array(items).to_string();
        let items: Vec<Json> = serde_json::from_str(&body).unwrap();
        let (records, malformed) = SERVER.with(|server| {
            *server.body.lock().unwrap() = body;
            pull_all(&server.source())
        });
        prop_assert_eq!(records.len() + malformed.len(), items.len());
        for record in &records {
            prop_assert!(items.contains(&Json::Object(record.fields.to_map())));
            check_record(record)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions: the smallest cases of what the properties above found
// ---------------------------------------------------------------------------------------------

/// A record whose newer version stays on the same day. The `records_updated` trigger once marked
/// days with `INSERT OR IGNORE`, but SQLite applies the outer statement's conflict policy to
/// statements inside triggers, and the outer statement was the upsert's `DO UPDATE`: the second
/// mark of the same (source, day) failed with a UNIQUE constraint error.
#[test]
fn a_newer_version_on_the_same_day_replaces_the_old_one() {
    let version = |at: i64, n: i64| Version {
        id: "a".into(),
        updated_at: Some(DateTime::from_timestamp(1_770_000_000 + at, 0).unwrap()),
        time: RecordTime::Date(the_day()),
        n,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    store
        .transaction(|tx| tx.upsert_records("s", &[version(0, 1).stored()]))
        .unwrap();
    store.transaction(|tx| tx.clear_dirty_days("s")).unwrap();
    store
        .transaction(|tx| tx.upsert_records("s", &[version(10, 2).stored()]))
        .expect("a newer version of a record is stored");
    assert_eq!(
        store.read().records_on("s", Day::new(the_day())).unwrap(),
        [(
            encode_time(&RecordTime::Date(the_day())),
            r#"{"n":2}"#.to_owned()
        )]
    );
    assert_eq!(store.read().dirty_days("s").unwrap(), [Day::new(the_day())]);
}

/// The same regression seen from outside: a health-data record that changes during the day (the
/// usual case: steps grow) once made every later run fail with exit code 75, and the new value
/// never reached Exist.
#[test]
fn a_record_changed_at_the_source_reaches_exist() {
    let world = crate::common::World::new("");
    let health = world
        .rt
        .block_on(exist_fakes::health::HealthSandbox::start(
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    world.write_config(&format!(
        "[[source]]\nname = \"health\"\nkind = \"http\"\nurl = \"{}\"\ndate_field = \"startTime\"\n\n[[attribute]]\ntemplate = \"steps\"\nsource = \"health\"\nfield = \"steps\"\naggregate = \"sum\"\n",
        health.url()
    ));
    world.login_with(&["activity_write"]);
    let today = crate::common::today_utc().to_string();
    health.upsert(json!({ "id": "walk", "startTime": today, "steps": 100 }));
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.value("steps", &today), Some(json!(100)));

    std::thread::sleep(std::time::Duration::from_millis(20));
    health.upsert(json!({ "id": "walk", "startTime": today, "steps": 250 }));
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.value("steps", &today), Some(json!(250)));
}

/// Epoch seconds down to -253402300799 are taken as times (the bound is on the absolute value);
/// an instant before 0000-01-01 must survive the store or be reported as malformed, never be
/// stored and then silently left out of every day's value, as it once was.
#[test]
fn epoch_seconds_before_year_0_are_reported_or_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    std::fs::write(&path, "{\"date\": -62167219201}\n").unwrap();
    let (records, malformed) = pull_all(&file_source(&path, RecordFormat::JsonLines));
    assert_eq!(records.len() + malformed.len(), 1);
    for record in &records {
        assert_eq!(
            decode_time(&encode_time(&record.time)),
            Some(record.time),
            "{record:?}"
        );
    }
}

/// A wall-clock time placed in an IANA zone at a date when the zone's offset had seconds (local
/// mean time, before about 1900: Berlin was +00:53:28) must read back exactly; RFC 3339, which
/// `encode_time` once used, writes the offset to the minute, 28 seconds off: enough to move a
/// record across midnight when the days are re-placed after a timezone change.
#[test]
fn wall_clock_times_in_zones_with_second_offsets_survive_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    std::fs::write(
        &path,
        "{\"date\": \"1800-01-01T00:00:00\", \"timeZone\": \"Europe/Berlin\"}\n",
    )
    .unwrap();
    let (records, _) = pull_all(&file_source(&path, RecordFormat::JsonLines));
    assert_eq!(records.len(), 1);
    let time = records[0].time;
    assert_eq!(decode_time(&encode_time(&time)), Some(time));
}

// ---------------------------------------------------------------------------------------------
// The outbox decision table, without SQLite
// ---------------------------------------------------------------------------------------------

use exist_agent::sync::reconcile::{decide, DayValue, Held, Op};

fn small_value() -> impl Strategy<Value = Option<Value>> {
    option::of((0i64..4).prop_map(Value::Int))
}

fn held_values() -> impl Strategy<Value = Held> {
    (small_value(), small_value(), small_value()).prop_map(|(acknowledged, pending, rejected)| {
        Held {
            acknowledged,
            pending,
            rejected,
        }
    })
}

fn aggregates() -> impl Strategy<Value = Aggregate> {
    select(vec![
        Aggregate::Sum,
        Aggregate::Count,
        Aggregate::Max,
        Aggregate::Min,
        Aggregate::Mean,
        Aggregate::Last,
    ])
}

/// The state after the op is applied, as the store would hold it.
fn after(held: &Held, op: &Option<Op>) -> Held {
    let mut next = held.clone();
    match op {
        Some(Op::Enqueue { new, .. }) => next.pending = Some(new.clone()),
        Some(Op::Unqueue { .. }) => next.pending = None,
        Some(Op::Reject { value, .. }) => {
            next.rejected = Some(value.clone());
            next.pending = None;
        }
        None => {}
    }
    next
}

proptest! {
    /// Whatever the state, a value equal to what Exist acknowledged is never sent again, a
    /// refused value is never re-queued unchanged, and deciding again on the state the first
    /// decision left changes nothing more (the engine is idempotent run after run).
    #[test]
    fn the_outbox_decision_table_is_safe_and_idempotent(
        value in small_value(),
        had_records in any::<bool>(),
        aggregate in aggregates(),
        held in held_values(),
    ) {
        let day: Day = "2026-11-20".parse().unwrap();
        let computed = DayValue { attribute: 0, day, value: value.clone(), had_records };
        let op = decide(computed.clone(), aggregate, ValueType::Integer, &held);
        if let Some(Op::Enqueue { new, .. }) = &op {
            prop_assert_ne!(held.acknowledged.as_ref(), Some(new), "an acknowledged value is not sent again");
            prop_assert_ne!(held.rejected.as_ref(), Some(new), "a refused value stays aside");
        }
        if value.is_none() && had_records {
            prop_assert!(op.is_none(), "records without the measure say nothing: {op:?}");
        }
        let next = after(&held, &op);
        let again = decide(computed, aggregate, ValueType::Integer, &next);
        let settled = match &again {
            None | Some(Op::Enqueue { queued: true, .. }) | Some(Op::Reject { already: true, .. }) => true,
            Some(_) => false,
        };
        prop_assert!(settled, "a second decision on {next:?} still changes something: {again:?}");
    }
}

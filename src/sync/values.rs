//! From a day's records to the one value Exist holds for an attribute that day: pure functions,
//! independent of record order and of duplicates already removed by id in the store.
//!
//! A record whose measure cannot be used (not a number, absurdly large) is left out of the day
//! by the engine, which names it; [`aggregate`] is the strict form, for checks, that refuses the
//! day instead.

use chrono::{Datelike, NaiveDateTime};
use chrono_tz::Tz;

use super::transform::{text_of, Skip, Transform};
use crate::config::Aggregate;
use crate::sources::{FieldPath, Fields, Projection, RecordTime};
use exist_api::types::{Value, ValueType};

/// A stored record's time and fields, ready to aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct DayRecord {
    /// When it happened.
    pub time: RecordTime,
    /// Its fields.
    pub fields: Fields,
}

/// Why a day's value could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueProblem {
    /// A record's field is not a number where one is needed.
    #[error("field `{field}` holds {found}, not a number")]
    NotANumber {
        /// The field.
        field: String,
        /// What it held.
        found: String,
    },
    /// A number too large to be a measure of anything a day holds.
    #[error("field `{field}` holds {found}, beyond ±10^15")]
    TooLarge {
        /// The field.
        field: String,
        /// What it held.
        found: String,
    },
    /// The attribute's transform cannot say what the field's value stands for.
    #[error("field `{field}` holds {found}, {why}")]
    Transform {
        /// The field.
        field: String,
        /// What it held.
        found: String,
        /// Why the transform skips it (a [`Skip`], said).
        why: String,
    },
}

/// The largest magnitude taken as a measure: sums in millionths stay exact far below i128's
/// limit, and Exist's whole numbers are 64-bit anyway.
const LARGEST: f64 = 1e15;

/// How an attribute turns a day's records into its value.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The aggregate.
    pub aggregate: Aggregate,
    /// The field it reads (none for `count`).
    pub field: Option<FieldPath>,
    /// The attribute's value type.
    pub value_type: ValueType,
    /// The user's timezone, to order records by their local time.
    pub tz: Tz,
    /// Which records count, and what their field's value stands for.
    pub transform: Transform,
}

/// What a [`Rule`] needs to know about one day's records, built one record at a time, so that a
/// source read whole never has to be held in memory.
#[derive(Debug, Clone, Default)]
pub struct DayAccumulator {
    /// Records of the day, those that `where` leaves out included: a day with records but no
    /// matching one counts zero (`count`, `any`), a day without records says nothing.
    seen: u64,
    /// Records that count.
    records: u64,
    measured: u64,
    /// The sum in millionths: integer addition is exact, so the total (and its rounding to a
    /// whole number) does not depend on the order records arrive in.
    micros: i128,
    min: Option<f64>,
    max: Option<f64>,
    /// The latest measure, ties on time broken by the larger one, again for order independence.
    last: Option<(NaiveDateTime, Latest)>,
}

#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Latest {
    Number(f64),
    Text(String),
}

/// What one record says for one attribute: the field's content, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// The record does not match the attribute's `where`: it only shows the day has records.
    Excluded,
    /// The record counts but lacks the field (or the attribute counts records).
    Absent,
    /// A number.
    Number(f64),
    /// Text, for a string attribute.
    Text(String),
    /// Something that cannot be used.
    Bad(ValueProblem),
}

impl Rule {
    /// The fields a record must keep for this rule to read it.
    pub fn projection(&self) -> Projection {
        Projection::of(self.field.iter().chain(self.transform.fields_read()))
    }

    /// What a record's fields say for this rule.
    pub fn measure(&self, fields: &Fields) -> Measure {
        if !self.transform.admits(fields) {
            return Measure::Excluded;
        }
        let Some(field) = &self.field else {
            return Measure::Absent;
        };
        let Some(raw) = field.get(fields).filter(|v| !v.is_null()) else {
            return Measure::Absent;
        };
        if self.value_type == ValueType::String {
            return Measure::Text(text_of(raw));
        }
        // Named only when the record is skipped: the common case allocates nothing.
        let said = || (field.to_string(), raw.to_string());
        match self.transform.number(raw, self.value_type.is_whole()) {
            Ok(x) if x.abs() <= LARGEST => Measure::Number(x),
            Ok(_) => {
                let (field, found) = said();
                Measure::Bad(ValueProblem::TooLarge { field, found })
            }
            Err(Skip::NotANumber) => {
                let (field, found) = said();
                Measure::Bad(ValueProblem::NotANumber { field, found })
            }
            Err(skip) => {
                let (field, found) = said();
                Measure::Bad(ValueProblem::Transform {
                    field,
                    found,
                    why: skip.to_string(),
                })
            }
        }
    }

    /// Takes one record's measure, at its local time `at`, into the day's accumulator. A record
    /// whose measure is [`Measure::Bad`] is left out of the day altogether (the caller names it).
    pub fn take(&self, acc: &mut DayAccumulator, at: NaiveDateTime, measure: Measure) {
        if matches!(measure, Measure::Bad(_)) {
            return;
        }
        acc.seen += 1;
        if matches!(measure, Measure::Excluded) {
            return;
        }
        acc.records += 1;
        let latest = match measure {
            Measure::Excluded | Measure::Absent | Measure::Bad(_) => return,
            Measure::Text(text) => Latest::Text(text),
            Measure::Number(x) => {
                acc.micros += (x * 1e6).round() as i128;
                acc.min = Some(acc.min.map_or(x, |m| m.min(x)));
                acc.max = Some(acc.max.map_or(x, |m| m.max(x)));
                Latest::Number(x)
            }
        };
        acc.measured += 1;
        let newer = acc.last.as_ref().is_none_or(|(t, v)| {
            (at, &latest).partial_cmp(&(*t, v)) == Some(std::cmp::Ordering::Greater)
        });
        if newer {
            acc.last = Some((at, latest));
        }
    }

    /// The day's value, or `None` when there were no records, or none that counts carried the
    /// field (an absent measure is not a zero). `count` and `any` of a day whose records all
    /// fail `where` are zero. A day that had a value and lost its records gets
    /// [`empty_day_value`] instead.
    pub fn value(&self, acc: &DayAccumulator) -> Option<Value> {
        if acc.seen == 0 {
            return None;
        }
        match self.aggregate {
            Aggregate::Count => return Some(Value::Int(acc.records as i64)),
            Aggregate::Any => return Some(Value::Int(i64::from(acc.records > 0))),
            _ => {}
        }
        if acc.measured == 0 {
            return None;
        }
        let x = match (self.aggregate, &acc.last) {
            (_, Some((_, Latest::Text(text)))) => return Some(Value::Text(text.clone())),
            (Aggregate::Last, Some((_, Latest::Number(x)))) => *x,
            (Aggregate::Sum, _) => acc.micros as f64 / 1e6,
            (Aggregate::Mean, _) => acc.micros as f64 / 1e6 / acc.measured as f64,
            (Aggregate::Max, _) => acc.max.unwrap_or_default(),
            (Aggregate::Min, _) => acc.min.unwrap_or_default(),
            // `last` always has a measure once `measured > 0`; count and any returned above.
            (Aggregate::Last | Aggregate::Count | Aggregate::Any, _) => return None,
        };
        Some(typed(x, self.value_type))
    }
}

/// The day's value of an attribute from its records (see [`Rule::value`]), or the first
/// unusable measure among them: the strict form, for checks and tests.
pub fn aggregate(
    records: &[DayRecord],
    aggregate: Aggregate,
    field: Option<&str>,
    value_type: ValueType,
    tz: Tz,
) -> Result<Option<Value>, ValueProblem> {
    let rule = Rule {
        aggregate,
        field: field.map(FieldPath::new),
        value_type,
        tz,
        transform: Transform::default(),
    };
    let mut acc = DayAccumulator::default();
    for r in records {
        match rule.measure(&r.fields) {
            Measure::Bad(problem) => return Err(problem),
            measure => rule.take(&mut acc, sort_key(&r.time, tz), measure),
        }
    }
    Ok(rule.value(&acc))
}

/// The value a day with no records gets, when Exist already holds one for it (or the attribute
/// fills empty days): sums, counts and `any` of nothing are zero; other aggregates cannot be
/// unset (Exist never sets a value back to null).
pub fn empty_day_value(aggregate: Aggregate) -> Option<Value> {
    matches!(
        aggregate,
        Aggregate::Sum | Aggregate::Count | Aggregate::Any
    )
    .then_some(Value::Int(0))
}

/// A number as Exist expects it for `value_type`: whole types rounded, decimals kept.
fn typed(x: f64, value_type: ValueType) -> Value {
    if value_type.is_whole() {
        Value::Int(x.round() as i64)
    } else {
        // Summing decimals in a different order changes the last bits; keep what matters.
        Value::Float((x * 1e6).round() / 1e6)
    }
}

/// A record's time as the user's wall-clock time, to order records of one day.
pub fn sort_key(time: &RecordTime, tz: Tz) -> NaiveDateTime {
    match *time {
        RecordTime::Date(d) => d.and_time(chrono::NaiveTime::MIN),
        RecordTime::Instant(t) => t.with_timezone(&tz).naive_local(),
        RecordTime::Local(t) => t,
    }
}

/// A record time as stored, which [`decode_time`] reads back exactly: a tag and numbers
/// (days since the Common Era; seconds and nanoseconds since the epoch; the offset in seconds,
/// which RFC 3339 cannot carry when a zone's offset has seconds, as old local mean times do).
pub fn encode_time(time: &RecordTime) -> String {
    match time {
        RecordTime::Date(d) => format!("d:{}", d.num_days_from_ce()),
        RecordTime::Instant(t) => format!(
            "i:{}.{:09}@{}",
            t.timestamp(),
            t.timestamp_subsec_nanos(),
            t.offset().local_minus_utc()
        ),
        RecordTime::Local(t) => {
            let t = t.and_utc();
            format!("l:{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos())
        }
    }
}

/// Reads a time written by [`encode_time`].
pub fn decode_time(text: &str) -> Option<RecordTime> {
    let (tag, rest) = text.split_once(':')?;
    let instant = |text: &str| {
        let (secs, nanos) = text.split_once('.')?;
        chrono::DateTime::from_timestamp(secs.parse().ok()?, nanos.parse().ok()?)
    };
    match tag {
        "d" => {
            chrono::NaiveDate::from_num_days_from_ce_opt(rest.parse().ok()?).map(RecordTime::Date)
        }
        "i" => {
            let (at, offset) = rest.split_once('@')?;
            let offset = chrono::FixedOffset::east_opt(offset.parse().ok()?)?;
            Some(RecordTime::Instant(instant(at)?.with_timezone(&offset)))
        }
        "l" => instant(rest).map(|t| RecordTime::Local(t.naive_utc())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate};
    use serde_json::{json, Value as Json};

    fn rec(time: &str, fields: Json) -> DayRecord {
        DayRecord {
            time: RecordTime::Instant(DateTime::parse_from_rfc3339(time).unwrap()),
            fields: fields.as_object().unwrap().clone().into(),
        }
    }

    fn agg(records: &[DayRecord], a: Aggregate, vt: ValueType) -> Option<Value> {
        aggregate(records, a, Some("n"), vt, chrono_tz::UTC).unwrap()
    }

    #[test]
    fn every_aggregate() {
        let r = [
            rec("2026-11-20T08:00:00Z", json!({"n": 3})),
            rec("2026-11-20T09:00:00Z", json!({"n": 1.5})),
            rec("2026-11-20T07:00:00Z", json!({"n": "4"})),
        ];
        assert_eq!(
            agg(&r, Aggregate::Sum, ValueType::Float),
            Some(Value::Float(8.5))
        );
        assert_eq!(
            agg(&r, Aggregate::Sum, ValueType::Integer),
            Some(Value::Int(9))
        );
        assert_eq!(
            agg(&r, Aggregate::Max, ValueType::Integer),
            Some(Value::Int(4))
        );
        assert_eq!(
            agg(&r, Aggregate::Min, ValueType::Float),
            Some(Value::Float(1.5))
        );
        assert_eq!(
            agg(&r, Aggregate::Mean, ValueType::Float),
            Some(Value::Float(2.833333))
        );
        assert_eq!(
            agg(&r, Aggregate::Last, ValueType::Float),
            Some(Value::Float(1.5))
        );
        assert_eq!(
            agg(&r, Aggregate::Count, ValueType::Integer),
            Some(Value::Int(3))
        );
    }

    #[test]
    fn decimal_sums_round_the_same_in_any_order() {
        let tenths = [2.3, 2.9, 0.3].map(|n| rec("2026-11-20T08:00:00Z", json!({ "n": n })));
        let mut reversed = tenths.clone();
        reversed.reverse();
        let a = agg(&tenths, Aggregate::Sum, ValueType::Integer);
        assert_eq!(a, agg(&reversed, Aggregate::Sum, ValueType::Integer));
        assert_eq!(
            agg(&tenths, Aggregate::Mean, ValueType::Float),
            agg(&reversed, Aggregate::Mean, ValueType::Float)
        );
    }

    #[test]
    fn non_finite_text_is_not_a_number() {
        for text in ["NaN", "inf", "-inf", "infinity"] {
            let r = [rec("2026-11-20T08:00:00Z", json!({ "n": text }))];
            assert!(
                aggregate(
                    &r,
                    Aggregate::Sum,
                    Some("n"),
                    ValueType::Integer,
                    chrono_tz::UTC
                )
                .is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn absurd_numbers_are_reported_not_summed() {
        let r = [
            rec("2026-11-20T08:00:00Z", json!({ "n": 1e300 })),
            rec("2026-11-20T09:00:00Z", json!({ "n": 1e300 })),
        ];
        let e = aggregate(
            &r,
            Aggregate::Sum,
            Some("n"),
            ValueType::Float,
            chrono_tz::UTC,
        )
        .unwrap_err();
        assert!(e.to_string().contains("beyond"), "{e}");
    }

    #[test]
    fn absent_is_not_zero() {
        let r = [rec("2026-11-20T08:00:00Z", json!({"other": 3}))];
        assert_eq!(agg(&r, Aggregate::Sum, ValueType::Integer), None);
        assert_eq!(
            agg(&r, Aggregate::Count, ValueType::Integer),
            Some(Value::Int(1))
        );
        assert_eq!(agg(&[], Aggregate::Max, ValueType::Integer), None);
        assert_eq!(
            agg(&[], Aggregate::Count, ValueType::Integer),
            None,
            "no records: nothing to say yet"
        );
    }

    #[test]
    fn non_numbers_are_reported() {
        let r = [rec("2026-11-20T08:00:00Z", json!({"n": "lots"}))];
        let e = aggregate(
            &r,
            Aggregate::Sum,
            Some("n"),
            ValueType::Integer,
            chrono_tz::UTC,
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"lots\""));
    }

    #[test]
    fn strings_take_the_latest() {
        let r = [
            rec("2026-11-20T08:00:00Z", json!({"n": "first"})),
            rec("2026-11-20T20:00:00Z", json!({"n": "last"})),
        ];
        assert_eq!(
            agg(&r, Aggregate::Last, ValueType::String),
            Some(Value::Text("last".into()))
        );
    }

    fn rule(aggregate: Aggregate, field: Option<&str>, transform: Transform) -> Rule {
        Rule {
            aggregate,
            field: field.map(FieldPath::new),
            value_type: ValueType::Integer,
            tz: chrono_tz::UTC,
            transform,
        }
    }

    fn day_value(rule: &Rule, records: &[DayRecord]) -> Option<Value> {
        let mut acc = DayAccumulator::default();
        for r in records {
            let measure = rule.measure(&r.fields);
            rule.take(&mut acc, sort_key(&r.time, rule.tz), measure);
        }
        rule.value(&acc)
    }

    fn meditating() -> Transform {
        use crate::sync::transform::{Condition, Scalar, Test};
        Transform {
            conditions: vec![Condition {
                field: FieldPath::new("activity"),
                test: Test::Equals(Scalar::Text("Meditating".into())),
            }],
            ..Transform::default()
        }
    }

    #[test]
    fn any_and_count_of_matching_records() {
        let day = [
            rec(
                "2026-11-20T08:00:00Z",
                json!({"activity": "Running", "n": 5}),
            ),
            rec(
                "2026-11-20T09:00:00Z",
                json!({"activity": "Meditating", "n": 20}),
            ),
            rec(
                "2026-11-20T10:00:00Z",
                json!({"activity": "Meditating", "n": 10}),
            ),
        ];
        let other_day = [rec("2026-11-21T08:00:00Z", json!({"activity": "Running"}))];
        let any = rule(Aggregate::Any, None, meditating());
        assert_eq!(day_value(&any, &day), Some(Value::Int(1)));
        assert_eq!(
            day_value(&any, &other_day),
            Some(Value::Int(0)),
            "records, none matching"
        );
        assert_eq!(day_value(&any, &[]), None, "no records: nothing known");
        let count = rule(Aggregate::Count, None, meditating());
        assert_eq!(day_value(&count, &day), Some(Value::Int(2)));
        assert_eq!(day_value(&count, &other_day), Some(Value::Int(0)));
        let minutes = rule(Aggregate::Sum, Some("n"), meditating());
        assert_eq!(
            day_value(&minutes, &day),
            Some(Value::Int(30)),
            "the runner's 5 left out"
        );
        assert_eq!(day_value(&minutes, &other_day), None, "absent is not zero");
        assert_eq!(empty_day_value(Aggregate::Any), Some(Value::Int(0)));
    }

    #[test]
    fn an_unmapped_value_is_a_named_skip() {
        use crate::sync::transform::ValueMap;
        let mood = Rule {
            value_type: ValueType::Scale,
            ..rule(
                Aggregate::Mean,
                Some("mood"),
                Transform {
                    map: Some(
                        ValueMap::new([("rad".to_owned(), 9.0), ("meh".to_owned(), 5.0)]).unwrap(),
                    ),
                    ..Transform::default()
                },
            )
        };
        let fields = |m: &str| rec("2026-11-20T08:00:00Z", json!({ "mood": m })).fields;
        assert_eq!(mood.measure(&fields("rad")), Measure::Number(9.0));
        let Measure::Bad(problem) = mood.measure(&fields("sad")) else {
            panic!("an unmapped word is no number");
        };
        assert_eq!(
            problem.to_string(),
            "field `mood` holds \"sad\", which `map` does not list; add it to the attribute's map"
        );
        let day = [
            rec("2026-11-20T08:00:00Z", json!({"mood": "rad"})),
            rec("2026-11-20T09:00:00Z", json!({"mood": "sad"})),
            rec("2026-11-20T10:00:00Z", json!({"mood": "meh"})),
        ];
        assert_eq!(
            day_value(&mood, &day),
            Some(Value::Int(7)),
            "from the other two"
        );
    }

    proptest::proptest! {
        /// `where` acts as a filter: sum and count of the records that match, and `any` of
        /// them; a day whose records all fail it counts zero but sums nothing.
        #[test]
        fn where_is_a_filter(records in proptest::collection::vec((proptest::bool::ANY, 0i64..1000), 0..20)) {
            use crate::sync::transform::{Condition, Scalar, Test};
            let kept = Transform {
                conditions: vec![Condition {
                    field: FieldPath::new("keep"),
                    test: Test::Equals(Scalar::Bool(true)),
                }],
                ..Transform::default()
            };
            let day: Vec<DayRecord> = records
                .iter()
                .map(|(keep, n)| rec("2026-11-20T08:00:00Z", json!({"keep": keep, "n": n})))
                .collect();
            let matching: Vec<i64> = records.iter().filter(|(k, _)| *k).map(|(_, n)| *n).collect();
            let seen = !records.is_empty();
            let count = day_value(&rule(Aggregate::Count, None, kept.clone()), &day);
            proptest::prop_assert_eq!(count, seen.then_some(Value::Int(matching.len() as i64)));
            let any = day_value(&rule(Aggregate::Any, None, kept.clone()), &day);
            proptest::prop_assert_eq!(any, seen.then_some(Value::Int(i64::from(!matching.is_empty()))));
            let sum = day_value(&rule(Aggregate::Sum, Some("n"), kept), &day);
            proptest::prop_assert_eq!(sum, (!matching.is_empty()).then(|| Value::Int(matching.iter().sum())));
        }
    }

    #[test]
    fn times_round_trip_through_storage() {
        let times = [
            RecordTime::Date(NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()),
            RecordTime::Instant(
                DateTime::parse_from_rfc3339("2026-11-20T08:30:00.250-08:00").unwrap(),
            ),
            RecordTime::Local(
                NaiveDate::from_ymd_opt(2026, 11, 20)
                    .unwrap()
                    .and_hms_milli_opt(23, 59, 1, 5)
                    .unwrap(),
            ),
        ];
        for t in times {
            assert_eq!(decode_time(&encode_time(&t)), Some(t));
        }
        // Local mean time: an offset with seconds, which RFC 3339 cannot write.
        let lmt = chrono::FixedOffset::east_opt(53 * 60 + 28).unwrap();
        let old = RecordTime::Instant(
            NaiveDate::from_ymd_opt(1900, 1, 1)
                .unwrap()
                .and_hms_opt(9, 0, 0)
                .unwrap()
                .and_local_timezone(lmt)
                .unwrap(),
        );
        assert_eq!(decode_time(&encode_time(&old)), Some(old));
        let year_zero = RecordTime::Date(NaiveDate::from_ymd_opt(0, 3, 1).unwrap());
        assert_eq!(decode_time(&encode_time(&year_zero)), Some(year_zero));
        assert_eq!(decode_time("x:nothing"), None);
    }
}

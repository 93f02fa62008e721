//! Records, parsed at the edge: a JSON object (or a CSV row) becomes a [`Record`] whose time can
//! be placed on one of the user's days, or is rejected with a reason.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Number, Value};

use super::fields::{Fields, Key, Projection};
use super::FieldPath;
use exist_api::types::Day;

/// The field some health-data records carry instead of a UTC offset: an IANA zone name.
pub const TIME_ZONE_FIELD: &str = "timeZone";

/// One record, parsed at the edge.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The record's unique id, when the source gives one; the engine de-duplicates by it.
    pub id: Option<String>,
    /// When the record happened.
    pub time: RecordTime,
    /// When the source last changed it; the newest wins among records with the same id.
    pub updated_at: Option<DateTime<Utc>>,
    /// The fields the configuration reads (all of them, for a source looked at whole), as the
    /// source gave them (CSV cells that look like numbers are numbers; empty cells are absent).
    pub fields: Fields,
    /// The record as the source wrote it, for a source whose records are stored (HTTP, an
    /// inbox): the store keeps every field, whatever the configuration reads today.
    pub raw: Option<String>,
    /// Where it is.
    pub origin: Origin,
}

impl Record {
    /// Where it is, to name it when one of its fields cannot be used: `line 17 (id abc)`,
    /// `id abc`, `page 2, item 5`.
    pub fn location(&self) -> String {
        self.origin.describe(self.id.as_deref())
    }
}

/// Where a record is in what its source gave, kept as numbers: it is only put into words for
/// a record that has to be named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A line of a file or of a command's output.
    Line(u64),
    /// A row of a query's result.
    Row(u64),
    /// An item of a delivery to an inbox.
    Item(usize),
    /// An item of an HTTP page: named by its id when it has one.
    PageItem {
        /// The page, from 1.
        page: usize,
        /// The item, from 1.
        item: usize,
    },
}

impl Origin {
    /// The origin in words, with the record's id.
    pub fn describe(self, id: Option<&str>) -> String {
        let at = match self {
            Self::PageItem { page, item } => match id {
                Some(id) => return format!("id {id}"),
                None => return format!("page {page}, item {item}"),
            },
            Self::Line(n) => format!("line {n}"),
            Self::Row(n) => format!("row {n}"),
            Self::Item(n) => format!("item {n}"),
        };
        match id {
            Some(id) => format!("{at} (id {id})"),
            None => at,
        }
    }
}

/// When a record happened, as precisely as the source said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordTime {
    /// A calendar date: that day, whatever the timezone.
    Date(NaiveDate),
    /// An instant, with the offset the source gave (its own, from the offset field, from its
    /// IANA `timeZone`, or UTC for epoch seconds).
    Instant(DateTime<FixedOffset>),
    /// A wall-clock time with no offset: taken as the user's own local time.
    Local(NaiveDateTime),
}

impl RecordTime {
    /// The user's day this time belongs to, in the user's timezone `tz`, where a day begins at
    /// `day_starts` local time (e.g. 05:00: 04:59 counts toward the day before).
    ///
    /// The shift by `day_starts` applies to the local wall-clock time, not to the instant, so
    /// days that are 23 or 25 hours long (daylight-saving changes) keep their boundary at
    /// `day_starts` local time.
    pub fn day(&self, tz: Tz, day_starts: NaiveTime) -> Day {
        let wall = match *self {
            Self::Date(date) => return Day::new(date),
            Self::Instant(at) => at.with_timezone(&tz).naive_local(),
            Self::Local(wall) => wall,
        };
        Day::new((wall - (day_starts - NaiveTime::MIN)).date())
    }
}

/// A record that was skipped: which source, where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The source's name.
    pub source: String,
    /// Where the record is: `line 17`, `id abc123`, or `page 2, item 5`.
    pub location: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "source \"{}\": skipped the record at {}: {}; fix it at the source, the other records are used",
            self.source, self.location, self.reason
        )
    }
}

/// Why a raw record could not become a [`Record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unparsed {
    /// Where the record is, its id included when it has one.
    pub location: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Turns raw objects of one source into [`Record`]s, knowing which fields mean what.
#[derive(Debug, Clone)]
pub(crate) struct RecordParser {
    date_field: FieldPath,
    tz_offset_field: Option<FieldPath>,
    id_field: Option<FieldPath>,
    updated_field: Option<FieldPath>,
    time_zone_field: FieldPath,
    /// The fields records keep: the ones above and those the configuration reads.
    projection: Projection,
    /// Whether records keep their raw text, to be stored.
    keep_raw: bool,
}

impl RecordParser {
    /// A parser reading the time from `date_field` (its offset from `tz_offset_field`, if set),
    /// the id from `id_field` and the change time from `updated_field`, when set.
    pub fn new(
        date_field: &str,
        tz_offset_field: Option<&str>,
        id_field: Option<&str>,
        updated_field: Option<&str>,
    ) -> Self {
        Self {
            date_field: FieldPath::new(date_field),
            tz_offset_field: tz_offset_field.map(FieldPath::new),
            id_field: id_field.map(FieldPath::new),
            updated_field: updated_field.map(FieldPath::new),
            time_zone_field: FieldPath::new(TIME_ZONE_FIELD),
            projection: Projection::everything(),
            keep_raw: false,
        }
    }

    /// The fields the parser itself reads.
    fn own_projection(&self) -> Projection {
        Projection::of(
            [Some(&self.date_field), Some(&self.time_zone_field)]
                .into_iter()
                .chain(
                    [&self.tz_offset_field, &self.id_field, &self.updated_field]
                        .map(Option::as_ref),
                )
                .flatten(),
        )
    }

    /// The same parser, its records keeping only the fields it reads itself and those of
    /// `reads` (by default they keep every field).
    pub fn reading(mut self, reads: &Projection) -> Self {
        self.projection = self.own_projection().union(reads);
        self
    }

    /// The same parser, its records keeping their raw text ([`Record::raw`]).
    pub fn keeping_raw(self) -> Self {
        Self {
            keep_raw: true,
            ..self
        }
    }

    /// The fields records keep.
    pub fn projection(&self) -> &Projection {
        &self.projection
    }

    /// The key a field named `name` (a CSV column, a query's column) is kept under, if it is.
    pub fn key_of(&self, name: &str) -> Option<Key> {
        self.projection.key_of(name)
    }

    /// Parses one JSON object, at `origin`: its kept fields, and its text when records keep it.
    pub fn parse_json(&self, json: &[u8], origin: Origin) -> Result<Record, Unparsed> {
        match Fields::parse(json, &self.projection) {
            Ok(fields) => {
                let raw = self
                    .keep_raw
                    .then(|| String::from_utf8_lossy(json).into_owned());
                self.parse(fields, raw, origin)
            }
            Err(e) => Err(Unparsed {
                location: origin.describe(None),
                reason: json_problem(&e),
            }),
        }
    }

    /// Parses one record's fields, found at `origin`.
    pub fn parse(
        &self,
        fields: Fields,
        raw: Option<String>,
        origin: Origin,
    ) -> Result<Record, Unparsed> {
        let id = self
            .id_field
            .as_ref()
            .and_then(|f| f.get(&fields))
            .and_then(id_text);
        let parsed = self
            .time(&fields)
            .and_then(|time| Ok((time, self.updated_at(&fields)?)));
        match parsed {
            Ok((time, updated_at)) => Ok(Record {
                id,
                time,
                updated_at,
                fields,
                raw,
                origin,
            }),
            Err(reason) => Err(Unparsed {
                location: origin.describe(id.as_deref()),
                reason,
            }),
        }
    }

    /// What CSV columns named `headers` are kept as: the key of each kept column, and whether
    /// it is the id (whose leading zeros matter, so it stays text).
    pub fn csv_columns(&self, headers: &csv::StringRecord) -> Vec<Option<(Key, bool)>> {
        headers
            .iter()
            .map(|name| {
                let is_id = self.id_field.as_ref().is_some_and(|f| f.as_str() == name);
                self.key_of(name).map(|key| (key, is_id))
            })
            .collect()
    }

    /// One CSV row's kept cells, by `columns` ([`Self::csv_columns`]): cells that look like
    /// numbers become numbers (except the id), empty cells are left out.
    pub fn csv_fields(&self, columns: &[Option<(Key, bool)>], row: &csv::StringRecord) -> Fields {
        let mut fields = Fields::default();
        for (column, cell) in columns.iter().zip(row.iter()) {
            let Some((key, is_id)) = *column else {
                continue;
            };
            if cell.is_empty() {
                continue;
            }
            let value = if is_id {
                Value::String(cell.to_owned())
            } else {
                cell_value(cell)
            };
            fields.insert(key, value);
        }
        fields
    }

    fn time(&self, fields: &Fields) -> Result<RecordTime, String> {
        let field = &self.date_field;
        let stamp = match field.get(fields) {
            None | Some(Value::Null) => return Err(format!("it has no `{field}` field")),
            Some(value) => stamp_of(value).ok_or_else(|| {
                format!(
                    "`{field}` is {}, which is not a date (2026-11-20), a timestamp \
                     (2026-11-20T08:30:00Z) or epoch seconds",
                    shown(value)
                )
            })?,
        };
        match stamp {
            Stamp::Date(date) => Ok(RecordTime::Date(date)),
            Stamp::Instant(at) => Ok(RecordTime::Instant(at)),
            Stamp::Local(wall) => self.place_local(wall, fields),
        }
    }

    /// Gives a wall-clock time the record's own offset or zone, when it has one.
    fn place_local(&self, wall: NaiveDateTime, fields: &Fields) -> Result<RecordTime, String> {
        let offset_value = self
            .tz_offset_field
            .as_ref()
            .and_then(|f| present(fields, f).map(|v| (f, v)));
        if let Some((field, value)) = offset_value {
            let offset = value
                .as_str()
                .and_then(|s| parse_offset(s.trim().as_bytes()))
                .ok_or_else(|| {
                    format!(
                        "`{field}` is {}, not a UTC offset like \"-08:00\"",
                        shown(value)
                    )
                })?;
            return Ok(RecordTime::Instant(at_offset(wall, offset)));
        }
        if let Some(value) = present(fields, &self.time_zone_field) {
            let tz: Tz = value
                .as_str()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    format!(
                        "`{TIME_ZONE_FIELD}` is {}, not an IANA timezone like \"Europe/Berlin\"",
                        shown(value)
                    )
                })?;
            return Ok(RecordTime::Instant(in_zone(wall, tz)));
        }
        Ok(RecordTime::Local(wall))
    }

    fn updated_at(&self, fields: &Fields) -> Result<Option<DateTime<Utc>>, String> {
        let Some((field, value)) = self
            .updated_field
            .as_ref()
            .and_then(|f| present(fields, f).map(|v| (f, v)))
        else {
            return Ok(None);
        };
        // A change time without an offset is taken as UTC, as APIs write them.
        let at = match stamp_of(value) {
            Some(Stamp::Instant(at)) => at.with_timezone(&Utc),
            Some(Stamp::Local(wall)) => wall.and_utc(),
            Some(Stamp::Date(date)) => date.and_time(NaiveTime::MIN).and_utc(),
            None => {
                return Err(format!(
                    "`{field}` is {}, which is not an ISO 8601 timestamp",
                    shown(value)
                ))
            }
        };
        Ok(Some(at))
    }
}

/// A field's value unless it is absent or null.
fn present<'a>(fields: &'a Fields, field: &FieldPath) -> Option<&'a Value> {
    field.get(fields).filter(|v| !v.is_null())
}

/// An id as text: ids are strings or numbers.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A JSON error without serde_json's "at line 1 column N" (each record is parsed alone).
pub(crate) fn json_problem(e: &serde_json::Error) -> String {
    if e.classify() == serde_json::error::Category::Data {
        return "not a JSON object".to_owned();
    }
    let message = e.to_string();
    let message = message.split(" at line ").next().unwrap_or(&message);
    format!("not valid JSON ({message} at column {})", e.column())
}

/// A value, short, for a message.
fn shown(value: &Value) -> String {
    super::excerpt(&value.to_string(), 60)
}

/// A CSV cell: a number if it looks like one, else text.
fn cell_value(cell: &str) -> Value {
    if let Ok(i) = cell.parse::<i64>() {
        return Value::Number(i.into());
    }
    // `f64::from_str` also accepts "inf" and "NaN": only plain decimal notation is a number.
    let numeric = cell
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && cell.bytes().any(|b| b.is_ascii_digit());
    numeric
        .then(|| cell.parse::<f64>().ok().and_then(Number::from_f64))
        .flatten()
        .map_or_else(|| Value::String(cell.to_owned()), Value::Number)
}

/// A time as written, before any offset from other fields is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    Date(NaiveDate),
    Local(NaiveDateTime),
    Instant(DateTime<FixedOffset>),
}

/// The latest epoch second taken as a time (9999-12-31); larger numbers are probably
/// milliseconds, and would silently land tens of thousands of years ahead.
const MAX_EPOCH_SECONDS: f64 = 253_402_300_799.0;

fn stamp_of(value: &Value) -> Option<Stamp> {
    match value {
        Value::String(s) => parse_stamp(s),
        Value::Number(n) => {
            let secs = n.as_f64().filter(|s| s.abs() <= MAX_EPOCH_SECONDS)?;
            let whole = secs.floor();
            let nanos = ((secs - whole) * 1e9) as u32;
            let at = DateTime::from_timestamp(whole as i64, nanos)?;
            Some(Stamp::Instant(at.fixed_offset()))
        }
        _ => None,
    }
}

/// Parses `2026-11-20`, `2026-11-20T08:30:00`, `2026-11-20 08:30`, `2026-11-20T08:30:00.123Z`,
/// `2026-11-20T08:30:00-08:00`, `2026-11-20 08:30:00 +0100`. Hand-written because it runs once
/// per record and format-string parsing is several times slower.
fn parse_stamp(text: &str) -> Option<Stamp> {
    let b = text.trim().as_bytes();
    let date = parse_date(b.get(..10)?)?;
    let rest = &b[10..];
    let Some((&sep, rest)) = rest.split_first() else {
        return Some(Stamp::Date(date));
    };
    if !matches!(sep, b'T' | b't' | b' ') {
        return None;
    }
    let (time, rest) = parse_time(rest)?;
    let wall = date.and_time(time);
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    if rest.is_empty() {
        return Some(Stamp::Local(wall));
    }
    Some(Stamp::Instant(at_offset(wall, parse_offset(rest)?)))
}

/// `YYYY-MM-DD`.
fn parse_date(b: &[u8]) -> Option<NaiveDate> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    NaiveDate::from_ymd_opt(
        number(&b[..4])? as i32,
        number(&b[5..7])?,
        number(&b[8..10])?,
    )
}

/// `HH:MM[:SS[.fraction]]`, and what follows it.
fn parse_time(b: &[u8]) -> Option<(NaiveTime, &[u8])> {
    if b.len() < 5 || b[2] != b':' {
        return None;
    }
    let (hour, minute) = (number(&b[..2])?, number(&b[3..5])?);
    let mut rest = &b[5..];
    let mut second = 0;
    let mut nano = 0;
    if let [b':', s1, s2, tail @ ..] = rest {
        second = number(&[*s1, *s2])?;
        rest = tail;
        if let [b'.' | b',', tail @ ..] = rest {
            let digits = tail.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            // Nanoseconds: the first nine digits, padded; finer digits are dropped.
            let kept = &tail[..digits.min(9)];
            nano = number(kept)? * 10u32.pow(9 - kept.len() as u32);
            rest = &tail[digits..];
        }
    }
    Some((
        NaiveTime::from_hms_nano_opt(hour, minute, second, nano)?,
        rest,
    ))
}

/// `Z`, `+HH:MM`, `+HHMM` or `+HH` (and `-`), as a whole.
fn parse_offset(b: &[u8]) -> Option<FixedOffset> {
    let (sign, rest) = match b.split_first()? {
        (b'Z' | b'z', []) => return FixedOffset::east_opt(0),
        (b'+', rest) => (1, rest),
        (b'-', rest) => (-1, rest),
        _ => return None,
    };
    let (hours, minutes) = match rest {
        [h1, h2] => (number(&[*h1, *h2])?, 0),
        [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (number(&[*h1, *h2])?, number(&[*m1, *m2])?),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60) as i32)
}

/// ASCII digits as a number.
fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
    })
}

/// A wall-clock time at a fixed offset (always exactly one instant).
fn at_offset(wall: NaiveDateTime, offset: FixedOffset) -> DateTime<FixedOffset> {
    DateTime::from_naive_utc_and_offset(wall - offset, offset)
}

/// A wall-clock time in an IANA zone. A time that occurs twice (clocks going back) is the
/// first; one that never occurs (clocks going forward) takes the offset of the nearby instant.
fn in_zone(wall: NaiveDateTime, tz: Tz) -> DateTime<FixedOffset> {
    match tz.from_local_datetime(&wall).earliest() {
        Some(at) => at.fixed_offset(),
        None => at_offset(wall, tz.offset_from_utc_datetime(&wall).fix()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn instant(s: &str) -> RecordTime {
        RecordTime::Instant(DateTime::parse_from_rfc3339(s).unwrap())
    }

    fn parser() -> RecordParser {
        RecordParser::new("startTime", Some("tzOffset"), Some("id"), Some("updatedAt"))
    }

    fn parse(value: Value) -> Result<Record, Unparsed> {
        let Value::Object(map) = value else {
            panic!("an object")
        };
        parser().parse(map.into(), None, Origin::Line(7))
    }

    fn time_of(value: Value) -> RecordTime {
        parse(value).unwrap().time
    }

    fn midnight() -> NaiveTime {
        NaiveTime::MIN
    }

    fn at(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn every_timestamp_form_parses() {
        let cases = [
            ("2026-11-20T08:30:00Z", instant("2026-11-20T08:30:00Z")),
            ("2026-11-20t08:30:00z", instant("2026-11-20T08:30:00Z")),
            (
                "2026-11-20T08:30:00.123-08:00",
                instant("2026-11-20T08:30:00.123-08:00"),
            ),
            (
                "2026-11-20T08:30:00+0530",
                instant("2026-11-20T08:30:00+05:30"),
            ),
            (
                "2026-11-20T08:30:00+01",
                instant("2026-11-20T08:30:00+01:00"),
            ),
            (
                "2026-11-20 08:30:00 +0100",
                instant("2026-11-20T08:30:00+01:00"),
            ),
            (
                "2026-11-20T08:30:00.123456789123Z",
                instant("2026-11-20T08:30:00.123456789Z"),
            ),
            (
                "2026-11-20T08:30:00",
                RecordTime::Local(date("2026-11-20").and_time(at(8, 30))),
            ),
            (
                "2026-11-20 08:30:00",
                RecordTime::Local(date("2026-11-20").and_time(at(8, 30))),
            ),
            (
                "2026-11-20T08:30",
                RecordTime::Local(date("2026-11-20").and_time(at(8, 30))),
            ),
            ("2026-11-20", RecordTime::Date(date("2026-11-20"))),
            (" 2026-11-20 ", RecordTime::Date(date("2026-11-20"))),
        ];
        for (text, expected) in cases {
            assert_eq!(time_of(json!({ "startTime": text })), expected, "{text}");
        }
    }

    #[test]
    fn epoch_seconds_are_instants_in_utc() {
        assert_eq!(
            time_of(json!({ "startTime": 1_763_627_400 })),
            instant("2025-11-20T08:30:00Z")
        );
        assert_eq!(
            time_of(json!({ "startTime": 1_763_627_400.5 })),
            instant("2025-11-20T08:30:00.5Z")
        );
    }

    #[test]
    fn malformed_records_say_why() {
        let cases = [
            (json!({ "id": "a1" }), "no `startTime` field"),
            (
                json!({ "id": "a1", "startTime": null }),
                "no `startTime` field",
            ),
            (
                json!({ "id": "a1", "startTime": "yesterday" }),
                "not a date",
            ),
            (
                json!({ "id": "a1", "startTime": "2026-02-30" }),
                "not a date",
            ),
            (
                json!({ "id": "a1", "startTime": "2026-11-20T25:00:00" }),
                "not a date",
            ),
            (
                json!({ "id": "a1", "startTime": "2026-11-20T08:30:00+25:00" }),
                "not a date",
            ),
            (
                json!({ "id": "a1", "startTime": "2026-11-20X08:30" }),
                "not a date",
            ),
            (json!({ "id": "a1", "startTime": true }), "not a date"),
            (
                json!({ "id": "a1", "startTime": 1_763_627_400_000i64 }),
                "epoch seconds",
            ),
            (
                json!({ "id": "a1", "startTime": "2026-11-20T08:30:00", "tzOffset": "PST" }),
                "not a UTC offset",
            ),
            (
                json!({ "id": "a1", "startTime": "2026-11-20T08:30:00", "timeZone": "Mars/Base" }),
                "not an IANA timezone",
            ),
            (
                json!({ "id": "a1", "startTime": "2026-11-20", "updatedAt": "soon" }),
                "`updatedAt` is \"soon\", which is not an ISO 8601 timestamp",
            ),
        ];
        for (value, why) in cases {
            let rejected = parse(value.clone()).unwrap_err();
            assert_eq!(rejected.location, "line 7 (id a1)", "{value}");
            assert!(
                rejected.reason.contains(why),
                "{value}: {}",
                rejected.reason
            );
        }
    }

    #[test]
    fn ids_and_change_times_are_read() {
        let record = parse(json!({
            "id": 42, "startTime": "2026-11-20", "updatedAt": "2026-11-21T10:00:00.250Z", "steps": 5
        }))
        .unwrap();
        assert_eq!(record.id.as_deref(), Some("42"));
        assert_eq!(
            record.updated_at,
            Some("2026-11-21T10:00:00.250Z".parse().unwrap())
        );
        assert_eq!(record.fields["steps"], json!(5));
        let local_change =
            parse(json!({ "startTime": "2026-11-20", "updatedAt": "2026-11-21 10:00:00" }))
                .unwrap();
        assert_eq!(local_change.id, None);
        assert_eq!(
            local_change.updated_at,
            Some("2026-11-21T10:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn an_offset_field_places_a_local_timestamp() {
        let time = time_of(json!({ "startTime": "2026-11-20T23:30:00", "tzOffset": "-08:00" }));
        assert_eq!(time, instant("2026-11-20T23:30:00-08:00"));
        // In Berlin that is the next morning.
        assert_eq!(
            time.day(chrono_tz::Europe::Berlin, midnight()).to_string(),
            "2026-11-21"
        );
        // The timestamp's own offset wins over the field.
        assert_eq!(
            time_of(json!({ "startTime": "2026-11-20T23:30:00Z", "tzOffset": "-08:00" })),
            instant("2026-11-20T23:30:00Z")
        );
        // An absent or null offset leaves the time local.
        assert!(matches!(
            time_of(json!({ "startTime": "2026-11-20T23:30:00", "tzOffset": null })),
            RecordTime::Local(_)
        ));
    }

    #[test]
    fn a_time_zone_field_places_a_local_timestamp() {
        let time =
            time_of(json!({ "startTime": "2026-07-01T09:00:00", "timeZone": "America/New_York" }));
        assert_eq!(time, instant("2026-07-01T09:00:00-04:00"));
        let winter =
            time_of(json!({ "startTime": "2026-01-01T09:00:00", "timeZone": "America/New_York" }));
        assert_eq!(winter, instant("2026-01-01T09:00:00-05:00"));
        // Clocks going back: 01:30 happens twice; the first is taken.
        let twice =
            time_of(json!({ "startTime": "2026-11-01T01:30:00", "timeZone": "America/New_York" }));
        assert_eq!(twice, instant("2026-11-01T01:30:00-04:00"));
        // Clocks going forward: 02:30 never happens; it still lands on its day.
        let never =
            time_of(json!({ "startTime": "2026-03-08T02:30:00", "timeZone": "America/New_York" }));
        assert_eq!(
            never
                .day(chrono_tz::America::New_York, midnight())
                .to_string(),
            "2026-03-08"
        );
        // The offset field wins over the zone.
        let both = time_of(json!({
            "startTime": "2026-07-01T09:00:00", "tzOffset": "+00:00", "timeZone": "America/New_York"
        }));
        assert_eq!(both, instant("2026-07-01T09:00:00Z"));
    }

    #[test]
    fn dates_are_their_own_day_whatever_the_zone() {
        let time = RecordTime::Date(date("2026-11-20"));
        for tz in [
            chrono_tz::Pacific::Kiritimati,
            chrono_tz::Pacific::Pago_Pago,
        ] {
            assert_eq!(time.day(tz, at(5, 0)).to_string(), "2026-11-20");
        }
    }

    #[test]
    fn local_times_are_the_users_wall_clock() {
        let time = RecordTime::Local(date("2026-11-20").and_time(at(23, 59)));
        assert_eq!(
            time.day(chrono_tz::Asia::Tokyo, midnight()).to_string(),
            "2026-11-20"
        );
        assert_eq!(
            time.day(chrono_tz::America::Los_Angeles, midnight())
                .to_string(),
            "2026-11-20"
        );
        let early = RecordTime::Local(date("2026-11-20").and_time(at(4, 59)));
        assert_eq!(
            early.day(chrono_tz::UTC, at(5, 0)).to_string(),
            "2026-11-19"
        );
        let five = RecordTime::Local(date("2026-11-20").and_time(at(5, 0)));
        assert_eq!(five.day(chrono_tz::UTC, at(5, 0)).to_string(), "2026-11-20");
    }

    #[test]
    fn instants_move_to_the_users_zone_then_back_by_the_day_start() {
        let time = instant("2026-11-20T08:30:00Z");
        assert_eq!(
            time.day(chrono_tz::UTC, midnight()).to_string(),
            "2026-11-20"
        );
        assert_eq!(
            time.day(chrono_tz::Pacific::Honolulu, midnight())
                .to_string(),
            "2026-11-19"
        );
        // 09:30 in Berlin is after 05:00: same day. 03:30 in New York is before: the day before.
        assert_eq!(
            time.day(chrono_tz::Europe::Berlin, at(5, 0)).to_string(),
            "2026-11-20"
        );
        assert_eq!(
            time.day(chrono_tz::America::New_York, at(5, 0)).to_string(),
            "2026-11-19"
        );
    }

    #[test]
    fn day_start_holds_on_daylight_saving_days_in_berlin() {
        let berlin = chrono_tz::Europe::Berlin;
        // Spring forward, 2026-03-29 02:00 CET -> 03:00 CEST (+02:00).
        // 02:59Z is 04:59 CEST (a fixed +01:00 would say 03:59): still the previous day.
        assert_eq!(
            instant("2026-03-29T02:59:00Z")
                .day(berlin, at(5, 0))
                .to_string(),
            "2026-03-28"
        );
        // 03:00Z is 05:00 CEST: the new day (a fixed +01:00 would say 04:00, the day before).
        assert_eq!(
            instant("2026-03-29T03:00:00Z")
                .day(berlin, at(5, 0))
                .to_string(),
            "2026-03-29"
        );
        // Fall back, 2026-10-25 03:00 CEST -> 02:00 CET (+01:00).
        // 03:59Z is 04:59 CET: previous day; 04:00Z is 05:00 CET: the new day.
        assert_eq!(
            instant("2026-10-25T03:59:00Z")
                .day(berlin, at(5, 0))
                .to_string(),
            "2026-10-24"
        );
        assert_eq!(
            instant("2026-10-25T04:00:00Z")
                .day(berlin, at(5, 0))
                .to_string(),
            "2026-10-25"
        );
        // With midnight as day start: 22:30Z on the 24th is 00:30 CEST on the 25th.
        assert_eq!(
            instant("2026-10-24T22:30:00Z")
                .day(berlin, midnight())
                .to_string(),
            "2026-10-25"
        );
    }

    #[test]
    fn day_start_holds_on_daylight_saving_days_in_new_york() {
        let ny = chrono_tz::America::New_York;
        // Spring forward, 2026-03-08 02:00 EST -> 03:00 EDT (-04:00).
        // 08:59Z is 04:59 EDT: the previous day; 09:00Z is 05:00 EDT (a fixed -05:00 would say
        // 04:00, the previous day): the new day.
        assert_eq!(
            instant("2026-03-08T08:59:00Z")
                .day(ny, at(5, 0))
                .to_string(),
            "2026-03-07"
        );
        assert_eq!(
            instant("2026-03-08T09:00:00Z")
                .day(ny, at(5, 0))
                .to_string(),
            "2026-03-08"
        );
        // Fall back, 2026-11-01 02:00 EDT -> 01:00 EST (-05:00).
        // 09:59Z is 04:59 EST: previous day; 10:00Z is 05:00 EST: the new day.
        assert_eq!(
            instant("2026-11-01T09:59:00Z")
                .day(ny, at(5, 0))
                .to_string(),
            "2026-10-31"
        );
        assert_eq!(
            instant("2026-11-01T10:00:00Z")
                .day(ny, at(5, 0))
                .to_string(),
            "2026-11-01"
        );
        // Midnight: 03:59Z on 11-01 is 23:59 EDT on 10-31; 04:00Z is 00:00 EDT on 11-01.
        assert_eq!(
            instant("2026-11-01T03:59:00Z")
                .day(ny, midnight())
                .to_string(),
            "2026-10-31"
        );
        assert_eq!(
            instant("2026-11-01T04:00:00Z")
                .day(ny, midnight())
                .to_string(),
            "2026-11-01"
        );
    }

    #[test]
    fn csv_cells_that_look_like_numbers_become_numbers() {
        let parser = RecordParser::new("date", None, Some("id"), None);
        let headers =
            csv::StringRecord::from(vec!["id", "date", "n", "x", "e", "t", "nan", "empty"]);
        let row = csv::StringRecord::from(vec![
            "007",
            "2026-11-20",
            "-3",
            "2.5",
            "1e3",
            "abc",
            "NaN",
            "",
        ]);
        let fields = parser.csv_fields(&parser.csv_columns(&headers), &row);
        assert_eq!(
            Value::Object(fields.to_map()),
            json!({ "id": "007", "date": "2026-11-20", "n": -3, "x": 2.5, "e": 1000.0, "t": "abc", "nan": "NaN" })
        );
    }
}

//! Records delivered to an inbox: the body of one delivery read into records, at the edge.
//!
//! A body that is not what its format says is refused whole (the sender is told why and can
//! send it again); a record in it that cannot be placed on a day is skipped and named, as for
//! every other source.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::record::{Origin, RecordParser, Unparsed};
use super::{Fields, Malformed, Projection, Record};
use crate::config::{InboxFormat, InboxSourceConfig, SourceConfig};

/// A delivery's records, and those it holds that were skipped.
#[derive(Debug, Default)]
pub struct Delivery {
    /// The records, each with an id.
    pub records: Vec<Record>,
    /// The records skipped, with where and why.
    pub malformed: Vec<Malformed>,
}

/// Reads the body of a delivery to `source`, or says why it is not what its format says.
pub fn read_delivery(
    source: &SourceConfig,
    inbox: &InboxSourceConfig,
    body: &[u8],
) -> Result<Delivery, String> {
    let objects = match inbox.format {
        InboxFormat::Records => records_of(body)?,
        InboxFormat::HealthAutoExport => health_auto_export(body)?,
    };
    // Without an `id_field`, a record's `id` is its id when it has one: a changed version
    // must replace the one before, not be counted beside it.
    let parser = RecordParser::new(
        &source.date_field,
        source.tz_offset_field.as_deref(),
        Some(inbox.id_field.as_deref().unwrap_or("id")),
        inbox.updated_field.as_deref(),
    )
    // Stored whole: a record keeps its text, and of its fields only what the parser reads.
    .reading(&Projection::default())
    .keeping_raw();
    let mut delivery = Delivery::default();
    for (index, fields) in objects.into_iter().enumerate() {
        let derived = match inbox.id_field {
            Some(_) => None,
            None => Some(derived_id(inbox.format, &fields)),
        };
        let raw = serde_json::to_string(&fields).ok();
        let fields = Fields::project(fields, parser.projection());
        match parser.parse(fields, raw, Origin::Item(index + 1)) {
            Ok(mut record) => {
                if record.id.is_none() {
                    record.id = derived;
                }
                match record.id {
                    Some(_) => delivery.records.push(record),
                    None => delivery.malformed.push(Malformed {
                        source: source.name.clone(),
                        location: record.location(),
                        reason: format!(
                            "it has no `{}` field, so a later change could not replace it",
                            inbox.id_field.as_deref().unwrap_or("id")
                        ),
                    }),
                }
            }
            Err(Unparsed { location, reason }) => delivery.malformed.push(Malformed {
                source: source.name.clone(),
                location,
                reason,
            }),
        }
    }
    Ok(delivery)
}

/// A JSON array of objects, an object holding one at `records`, or JSON Lines.
fn records_of(body: &[u8]) -> Result<Vec<Map<String, Value>>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the body is not UTF-8 ({e})"))?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(
            "the body is empty; send a JSON array of records, {\"records\": [...]}, or JSON Lines"
                .into(),
        );
    }
    if trimmed.starts_with('[') {
        let items: Vec<Value> = serde_json::from_str(text)
            .map_err(|e| format!("the body is not a JSON array ({e})"))?;
        return objects(items, "the array");
    }
    // One object: the records at `records`, or a single line of JSON Lines.
    if let Ok(Value::Object(mut whole)) = serde_json::from_str::<Value>(text) {
        return match whole.remove("records") {
            Some(Value::Array(items)) => objects(items, "`records`"),
            Some(_) => Err("`records` is not an array".into()),
            None => Ok(vec![whole]),
        };
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(fields)) => Ok(fields),
            Ok(_) => Err(format!("line {} is not a JSON object", n + 1)),
            Err(e) => Err(format!(
                "line {} is not JSON ({e}); send a JSON array, {{\"records\": [...]}}, or one JSON object per line",
                n + 1
            )),
        })
        .collect()
}

fn objects(items: Vec<Value>, what: &str) -> Result<Vec<Map<String, Value>>, String> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(fields) => Ok(fields),
            _ => Err(format!("item {} of {what} is not a JSON object", i + 1)),
        })
        .collect()
}

/// Health Auto Export's JSON: `{"data": {"metrics": [{"name", "units", "data": [points]}]}}`.
/// Each point becomes a record of its own fields plus `metric` and `units`. Other arrays of
/// `data` (workouts, ...) are not records of a metric and are left out.
fn health_auto_export(body: &[u8]) -> Result<Vec<Map<String, Value>>, String> {
    let whole: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not Health Auto Export's JSON ({e})"))?;
    let metrics = whole
        .pointer("/data/metrics")
        .and_then(Value::as_array)
        .ok_or("the body has no `data.metrics` array: is the automation's format set to JSON?")?;
    let mut out = Vec::new();
    for (m, metric) in metrics.iter().enumerate() {
        let name = metric
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("metric {} has no `name`", m + 1))?;
        let units = metric.get("units").cloned().unwrap_or(Value::Null);
        let points = metric
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("metric {name} has no `data` array"))?;
        for point in points {
            let Value::Object(point) = point else {
                return Err(format!("a data point of {name} is not a JSON object"));
            };
            let mut fields = point.clone();
            fields.insert("metric".into(), Value::String(name.to_owned()));
            fields.insert("units".into(), units.clone());
            out.push(fields);
        }
    }
    Ok(out)
}

/// The id of a record that names none: what makes it itself, so that a re-sent record replaces
/// the one before instead of counting twice.
fn derived_id(format: InboxFormat, fields: &Map<String, Value>) -> String {
    match format {
        // The app re-sends whole periods; a point is its metric at its time from its source.
        InboxFormat::HealthAutoExport => {
            let text = |k: &str| match fields.get(k) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            format!("{}|{}|{}", text("metric"), text("date"), text("source"))
        }
        // serde_json keeps object keys sorted, so equal records print equally.
        InboxFormat::Records => {
            let digest = Sha256::digest(Value::Object(fields.clone()).to_string().as_bytes());
            format!("sha256:{}", hex::encode(&digest[..16]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SourceConfig, SourceKind};

    fn source(format: InboxFormat, id_field: Option<&str>) -> (SourceConfig, InboxSourceConfig) {
        let inbox = InboxSourceConfig {
            token_env: "T".into(),
            format,
            id_field: id_field.map(str::to_owned),
            updated_field: None,
        };
        let source = SourceConfig {
            name: "phone".into(),
            date_field: "date".into(),
            tz_offset_field: None,
            every: None,
            stale_after: None,
            kind: SourceKind::Inbox(inbox.clone()),
        };
        (source, inbox)
    }

    fn read(format: InboxFormat, id_field: Option<&str>, body: &str) -> Result<Delivery, String> {
        let (s, i) = source(format, id_field);
        read_delivery(&s, &i, body.as_bytes())
    }

    #[test]
    fn an_array_an_object_with_records_and_json_lines_read_alike() {
        let array = r#"[{"id": "a", "date": "2026-11-20", "n": 1}, {"id": "b", "date": "2026-11-21", "n": 2}]"#;
        let object = r#"{"records": [{"id": "a", "date": "2026-11-20", "n": 1}, {"id": "b", "date": "2026-11-21", "n": 2}]}"#;
        let lines = "{\"id\": \"a\", \"date\": \"2026-11-20\", \"n\": 1}\n\n{\"id\": \"b\", \"date\": \"2026-11-21\", \"n\": 2}\n";
        for body in [array, object, lines] {
            let d = read(InboxFormat::Records, Some("id"), body).unwrap();
            let ids: Vec<_> = d.records.iter().map(|r| r.id.clone().unwrap()).collect();
            assert_eq!(ids, ["a", "b"], "{body}");
            assert!(d.malformed.is_empty());
        }
    }

    #[test]
    fn a_body_that_is_not_records_is_refused_with_the_reason() {
        for (body, says) in [
            ("", "empty"),
            ("[1, 2]", "item 1 of the array is not a JSON object"),
            ("{\"records\": 3}", "`records` is not an array"),
            ("{\"date\": \"2026-11-20\"}\nnot json", "line 2 is not JSON"),
            ("[{\"date\": ", "not a JSON array"),
        ] {
            let e = read(InboxFormat::Records, None, body).unwrap_err();
            assert!(e.contains(says), "{body:?}: {e}");
        }
    }

    #[test]
    fn a_bad_record_is_skipped_and_named_the_rest_kept() {
        let d = read(
            InboxFormat::Records,
            Some("id"),
            r#"[{"id": "a", "date": "2026-11-20"}, {"id": "b", "date": "soon"}, {"date": "2026-11-20"}]"#,
        )
        .unwrap();
        assert_eq!(d.records.len(), 1);
        let named: Vec<_> = d.malformed.iter().map(|m| m.location.as_str()).collect();
        assert_eq!(named, ["item 2 (id b)", "item 3"]);
    }

    #[test]
    fn an_id_field_is_used_when_records_have_one_even_unconfigured() {
        let d = read(
            InboxFormat::Records,
            None,
            r#"[{"id": "a", "date": "2026-11-20", "n": 1}, {"id": "a", "date": "2026-11-20", "n": 2}]"#,
        )
        .unwrap();
        assert_eq!(d.records[0].id, d.records[1].id, "a new version of a");
    }

    #[test]
    fn records_without_ids_get_one_from_their_content() {
        let body = r#"[{"date": "2026-11-20", "n": 1}, {"n": 1, "date": "2026-11-20"}, {"date": "2026-11-20", "n": 2}]"#;
        let d = read(InboxFormat::Records, None, body).unwrap();
        let ids: Vec<_> = d.records.iter().map(|r| r.id.clone().unwrap()).collect();
        assert_eq!(ids[0], ids[1], "the same record, whatever its key order");
        assert_ne!(ids[0], ids[2]);
    }

    #[test]
    fn health_auto_export_points_become_records_keyed_by_metric_date_and_source() {
        let body = r#"{"data": {"metrics": [
            {"name": "step_count", "units": "count", "data": [
                {"date": "2026-11-18 07:30:00 +0100", "qty": 1200, "source": "iPhone"},
                {"date": "2026-11-18 07:30:00 +0100", "qty": 300, "source": "Watch"}]},
            {"name": "weight_body_mass", "units": "kg", "data": [
                {"date": "2026-11-18 07:00:00 +0100", "qty": 79.9}]}
        ], "workouts": []}}"#;
        let d = read(InboxFormat::HealthAutoExport, None, body).unwrap();
        assert_eq!(d.records.len(), 3);
        let first = &d.records[0];
        let stored: Value = serde_json::from_str(first.raw.as_deref().unwrap()).unwrap();
        assert_eq!(stored["metric"], "step_count");
        assert_eq!(stored["units"], "count");
        assert_eq!(stored["qty"], 1200);
        assert_eq!(
            first.id.as_deref(),
            Some("step_count|2026-11-18 07:30:00 +0100|iPhone")
        );
        assert_ne!(d.records[0].id, d.records[1].id, "two devices, two points");
        assert_eq!(
            read(InboxFormat::HealthAutoExport, None, r#"{"data": {}}"#).unwrap_err(),
            "the body has no `data.metrics` array: is the automation's format set to JSON?"
        );
    }
}

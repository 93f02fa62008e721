use super::*;
use exist_api::types::{AttributeName, Day, Group, Value, ValueType};

fn day(s: &str) -> Day {
    s.parse().unwrap()
}

fn name(s: &str) -> AttributeName {
    AttributeName::new(s).unwrap()
}

fn record(id: &str, d: &str, updated: &str, data: &str) -> StoredRecord {
    StoredRecord {
        id: id.into(),
        day: day(d),
        time: format!("d:{d}"),
        updated_at: Some(updated.into()),
        data: data.into(),
    }
}

fn tables(store: &Store) -> Vec<String> {
    let mut stmt = store
        .conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn fresh_database_gets_the_latest_schema_in_a_private_dir() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("nested/state");
    let store = Store::open(&state).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        tables(&store),
        [
            "attributes",
            "cursors",
            "dirty_days",
            "ledger",
            "meta",
            "outbox",
            "rate_budget",
            "records",
            "rejected",
            "skipped"
        ]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}

#[test]
fn older_database_is_upgraded_keeping_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    {
        let mut v1 = Store::open_at_version(&path, 1).unwrap();
        assert_eq!(v1.schema_version().unwrap(), 1);
        assert!(!tables(&v1).contains(&"rejected".to_owned()));
        v1.transaction(|tx| tx.enqueue(&name("steps"), day("2026-11-20"), &Value::Int(10)))
            .unwrap();
    }
    let mut store = Store::open_file(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let pending = store.read().pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].value, Value::Int(10));
    // The triggers of version 2 work on an upgraded file too.
    store
        .transaction(|tx| {
            tx.upsert_records(
                "s",
                &[record("a", "2026-11-20", "2026-11-20T10:00:00Z", "{}")],
            )
        })
        .unwrap();
    assert_eq!(store.read().dirty_days("s").unwrap(), [day("2026-11-20")]);
}

#[test]
fn newer_database_is_refused_not_reset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    {
        let mut store = Store::open_file(&path).unwrap();
        store
            .transaction(|tx| tx.enqueue(&name("steps"), day("2026-11-20"), &Value::Int(10)))
            .unwrap();
        store.conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let err = Store::open_file(&path).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    assert!(crate::error::Error::from(err)
        .to_string()
        .contains("upgrade exist-agent"));
    // Nothing was touched: the version and the data are still there.
    let conn = Connection::open(&path).unwrap();
    let v: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 99);
    let n: u32 = conn
        .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn corrupt_file_gives_a_clear_error_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    let garbage = b"this is not a database, just some bytes that happen to be here".repeat(100);
    std::fs::write(&path, &garbage).unwrap();
    let err = Store::open_file(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    let shown = crate::error::Error::from(err).to_string();
    assert!(shown.contains("move it aside"), "{shown}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn newest_record_version_wins_and_days_are_marked() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    store
        .transaction(|tx| {
            tx.upsert_records(
                "health",
                &[
                    record(
                        "a",
                        "2026-11-20",
                        "2026-11-20T10:00:00Z",
                        r#"{"steps":100}"#,
                    ),
                    record("b", "2026-11-21", "2026-11-21T10:00:00Z", r#"{"steps":5}"#),
                ],
            )
        })
        .unwrap();
    assert_eq!(
        store.read().dirty_days("health").unwrap(),
        [day("2026-11-20"), day("2026-11-21")]
    );
    store
        .transaction(|tx| tx.clear_dirty_days("health"))
        .unwrap();

    // A change to a record whose day is already marked (an upsert firing the update trigger).
    store
        .transaction(|tx| {
            tx.upsert_records(
                "health",
                &[record(
                    "b",
                    "2026-11-21",
                    "2026-11-21T11:00:00Z",
                    r#"{"steps":6}"#,
                )],
            )
        })
        .unwrap();
    store
        .transaction(|tx| {
            tx.upsert_records(
                "health",
                &[record(
                    "b",
                    "2026-11-21",
                    "2026-11-21T12:00:00Z",
                    r#"{"steps":7}"#,
                )],
            )
        })
        .unwrap();
    assert_eq!(
        store.read().dirty_days("health").unwrap(),
        [day("2026-11-21")]
    );
    store
        .transaction(|tx| tx.clear_dirty_days("health"))
        .unwrap();

    // An older version of `a` does not replace the newer one, and marks nothing.
    store
        .transaction(|tx| {
            tx.upsert_records(
                "health",
                &[record(
                    "a",
                    "2026-11-20",
                    "2026-11-19T10:00:00Z",
                    r#"{"steps":1}"#,
                )],
            )
        })
        .unwrap();
    assert!(store.read().dirty_days("health").unwrap().is_empty());
    // The same version again marks nothing either.
    store
        .transaction(|tx| {
            tx.upsert_records(
                "health",
                &[record(
                    "a",
                    "2026-11-20",
                    "2026-11-20T10:00:00Z",
                    r#"{"steps":100}"#,
                )],
            )
        })
        .unwrap();
    assert!(store.read().dirty_days("health").unwrap().is_empty());
    // A newer version that moves the record to another day marks both days.
    store
        .transaction(|tx| {
            tx.upsert_records(
                "health",
                &[record(
                    "a",
                    "2026-11-19",
                    "2026-11-22T10:00:00Z",
                    r#"{"steps":150}"#,
                )],
            )
        })
        .unwrap();
    assert_eq!(
        store.read().dirty_days("health").unwrap(),
        [day("2026-11-19"), day("2026-11-20")]
    );
    let on_19 = store
        .read()
        .records_on("health", day("2026-11-19"))
        .unwrap();
    assert_eq!(
        on_19,
        [("d:2026-11-19".to_owned(), r#"{"steps":150}"#.to_owned())]
    );
    assert!(store
        .read()
        .records_on("health", day("2026-11-20"))
        .unwrap()
        .is_empty());
    assert_eq!(store.read().record_count("health").unwrap(), 2);
}

#[test]
fn outbox_ledger_and_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let steps = name("steps");
    let d = day("2026-11-20");
    store
        .transaction(|tx| tx.enqueue(&steps, d, &Value::Int(10)))
        .unwrap();
    store
        .transaction(|tx| tx.enqueue(&steps, d, &Value::Int(12)))
        .unwrap();
    let pending = store.read().pending().unwrap();
    assert_eq!(pending.len(), 1, "a newer total replaces the pending one");
    assert_eq!(pending[0].value, Value::Int(12));

    // Acknowledging an outdated value keeps the newer one pending.
    store
        .transaction(|tx| tx.acknowledge(&steps, d, &Value::Int(10)))
        .unwrap();
    assert_eq!(store.read().pending().unwrap().len(), 1);
    store
        .transaction(|tx| tx.acknowledge(&steps, d, &Value::Int(12)))
        .unwrap();
    assert!(store.read().pending().unwrap().is_empty());
    assert_eq!(
        store.read().ledger_value(&steps, d).unwrap(),
        Some(Value::Int(12))
    );

    store
        .transaction(|tx| tx.enqueue(&steps, d.succ(), &Value::Float(1.5)))
        .unwrap();
    store
        .transaction(|tx| {
            tx.reject(
                &steps,
                d.succ(),
                &Value::Float(1.5),
                "validation",
                "not an integer",
            )
        })
        .unwrap();
    assert!(store.read().pending().unwrap().is_empty());
    let rejected = store.read().rejected().unwrap();
    assert_eq!(
        (rejected[0].error_code.as_str(), &rejected[0].value),
        ("validation", &Value::Float(1.5))
    );
    assert_eq!(
        store.read().rejected_value(&steps, d.succ()).unwrap(),
        Some(Value::Float(1.5))
    );
    // A later accepted value clears the rejection.
    store
        .transaction(|tx| tx.acknowledge(&steps, d.succ(), &Value::Int(2)))
        .unwrap();
    assert!(store.read().rejected().unwrap().is_empty());
}

#[test]
fn owned_attributes_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let a = OwnedAttribute {
        key: "custom:Espressos".into(),
        name: name("espressos"),
        group: Group::Food,
        value_type: ValueType::Integer,
    };
    store.transaction(|tx| tx.set_owned(&a)).unwrap();
    assert_eq!(store.read().owned_attributes().unwrap(), [a]);
    store.transaction(|tx| tx.clear_owned()).unwrap();
    assert!(store.read().owned_attributes().unwrap().is_empty());
}

#[test]
fn request_budget_counts_per_hour() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:59:00Z")
        .unwrap()
        .to_utc();
    store
        .transaction(|tx| {
            tx.count_requests(t, 1)?;
            tx.count_requests(t, 1)?;
            tx.mark_limited(t)
        })
        .unwrap();
    assert_eq!(
        store.read().budget(t).unwrap(),
        HourBudget {
            requests: 2,
            limited: true
        }
    );
    let next_hour = t + chrono::Duration::minutes(2);
    assert_eq!(
        store.read().budget(next_hour).unwrap(),
        HourBudget::default()
    );
}

#[test]
fn cursors_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    assert_eq!(store.read().cursor("health").unwrap(), Cursor::default());
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
        .unwrap()
        .to_utc();
    let c = Cursor {
        updated_since: Some(t),
        history_start: Some(t - chrono::Duration::days(31)),
        last_pull_at: Some(t),
        last_error: None,
        retry_at: Some(t + chrono::Duration::hours(1)),
    };
    store.transaction(|tx| tx.set_cursor("health", &c)).unwrap();
    assert_eq!(store.read().cursor("health").unwrap(), c);
    assert_eq!(store.read().cursors().unwrap(), [("health".to_owned(), c)]);
}

#[test]
fn a_failed_transaction_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let result: Result<(), StoreError> = store.transaction(|tx| {
        tx.enqueue(&name("steps"), day("2026-11-20"), &Value::Int(1))?;
        Err(StoreError::Busy {
            path: "x".into(),
            pid: "1".into(),
            waited: Duration::ZERO,
        })
    });
    assert!(result.is_err());
    assert!(store.read().pending().unwrap().is_empty());
}

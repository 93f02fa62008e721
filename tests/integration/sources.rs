//! The three kinds of source, end to end: HTTP against the health-data sandbox, files on disk,
//! commands run for real.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use exist_agent::config::{
    CommandSourceConfig, FileSourceConfig, HttpAuth, HttpSourceConfig, Paging, RecordFormat,
    SecretFrom, SourceConfig, SourceKind, Window,
};
use exist_agent::sources::{
    format_query_time, from_config, HttpSource, Projection, PullEvent, PullPlan, PullRetry,
    PullSummary, Record, SinkError, Source, SourceError, OVERLAP,
};
use exist_fakes::health::HealthSandbox;
use serde_json::json;
use url::Url;

// ---------------------------------------------------------------------------------------------
// Helpers

fn source_config(name: &str, date_field: &str, kind: SourceKind) -> SourceConfig {
    SourceConfig {
        name: name.into(),
        date_field: date_field.into(),
        tz_offset_field: Some("tzOffset".into()),
        every: None,
        stale_after: None,
        kind,
    }
}

fn http_config(url: Url, auth: HttpAuth, page_limit: u32, window_days: u32) -> SourceConfig {
    source_config(
        "health",
        "startTime",
        SourceKind::Http(HttpSourceConfig {
            url,
            auth,
            records: None,
            body_status: None,
            window: Window::default(),
            paging: Paging::default(),
            id_field: "id".into(),
            updated_field: "updatedAt".into(),
            page_limit,
            window_days,
            max_pages: 1000,
            max_requests: 5000,
            timeout: std::time::Duration::from_secs(600),
            params: BTreeMap::new(),
        }),
    )
}

/// Retries without waiting long, so tests stay fast.
fn fast() -> PullRetry {
    PullRetry {
        attempts: 3,
        base_delay: Duration::from_millis(10),
        ..PullRetry::default()
    }
}

fn http_source(sandbox: &HealthSandbox, page_limit: u32, window_days: u32) -> HttpSource {
    let config = http_config(sandbox.url(), HttpAuth::None, page_limit, window_days);
    let SourceKind::Http(http) = &config.kind else {
        unreachable!()
    };
    HttpSource::new(&config, http).unwrap().with_retry(fast())
}

/// Pulls, collecting every event.
async fn pull(
    source: &impl Source,
    plan: PullPlan,
) -> (Result<PullSummary, SourceError>, Vec<PullEvent>) {
    let mut events = Vec::new();
    let result = source
        .pull(&plan, &mut |event| {
            events.push(event);
            Ok(())
        })
        .await;
    (result, events)
}

fn records(events: &[PullEvent]) -> Vec<&Record> {
    events
        .iter()
        .filter_map(|e| match e {
            PullEvent::Records(r) => Some(r),
            _ => None,
        })
        .flatten()
        .collect()
}

fn ids(events: &[PullEvent]) -> Vec<String> {
    records(events)
        .iter()
        .map(|r| r.id.clone().expect("records here have ids"))
        .collect()
}

fn cursors(events: &[PullEvent]) -> Vec<DateTime<Utc>> {
    events
        .iter()
        .filter_map(|e| match e {
            PullEvent::WindowDone { cursor } => Some(*cursor),
            _ => None,
        })
        .collect()
}

fn malformed(events: &[PullEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            PullEvent::Malformed(m) => Some((m.location.clone(), m.reason.clone())),
            _ => None,
        })
        .collect()
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `n` activity records changed `age` ago (a millisecond apart), ids `{prefix}-{i}`.
fn seed(sandbox: &HealthSandbox, prefix: &str, n: usize, age: TimeDelta) {
    let base = Utc::now() - age;
    for i in 0..n {
        sandbox.upsert(json!({
            "id": format!("{prefix}-{i:03}"),
            "source": "fitbit",
            "startTime": "2026-11-20T08:30:00.000Z",
            "tzOffset": "-08:00",
            "steps": i,
            "updatedAt": iso(base + TimeDelta::milliseconds(i as i64)),
        }));
    }
}

fn query_of(path_and_query: &str) -> BTreeMap<String, String> {
    let url = Url::parse("http://x")
        .unwrap()
        .join(path_and_query)
        .unwrap();
    url.query_pairs().into_owned().collect()
}

async fn start() -> HealthSandbox {
    HealthSandbox::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// HTTP

#[tokio::test]
async fn pages_are_walked_and_every_record_arrives_once() {
    let sandbox = start().await;
    seed(&sandbox, "r", 120, TimeDelta::hours(1));
    let source = http_source(&sandbox, 50, 31);
    let before = Utc::now();
    let (result, events) = pull(&source, PullPlan::Incremental { since: None }).await;
    let summary = result.unwrap();

    let got = ids(&events);
    assert_eq!(got.len(), 120);
    assert_eq!(
        got.iter().collect::<BTreeSet<_>>().len(),
        120,
        "no duplicates"
    );
    assert_eq!(summary.records, 120);
    assert_eq!((summary.pages, summary.requests), (3, 3));
    assert_eq!(events.first(), Some(&PullEvent::Total(120)));
    // One cursor, at the end, a few minutes behind the pull's start.
    let cursor = cursors(&events);
    assert_eq!(cursor.len(), 1);
    assert!(matches!(events.last(), Some(PullEvent::WindowDone { .. })));
    assert!(cursor[0] <= before - OVERLAP + TimeDelta::seconds(1));
    assert!(cursor[0] >= before - OVERLAP - TimeDelta::seconds(5));

    let requests = sandbox.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|(_, status)| *status == 200));
    let first = query_of(&requests[0].0);
    assert_eq!(first["limit"], "50");
    let since = format_query_time(before - TimeDelta::days(31));
    assert!(first["updated_since"] >= since, "{first:?}");
    assert_eq!(query_of(&requests[2].0)["offset"], "100");
    // Records carry the times the sandbox gave them.
    let record = records(&events)[0];
    assert!(record.updated_at.is_some());
    assert_eq!(record.fields["steps"], 0);
}

/// A stored source's records keep only the fields the parser reads, and their text as the
/// source wrote it: what the store keeps, whatever the configuration reads today.
#[tokio::test]
async fn a_stored_source_keeps_each_record_as_written_and_builds_only_what_it_reads() {
    let sandbox = start().await;
    seed(&sandbox, "r", 3, TimeDelta::hours(1));
    let source = http_source(&sandbox, 50, 31).reading(&Projection::default());
    let (result, events) = pull(&source, PullPlan::Incremental { since: None }).await;
    result.unwrap();
    let got = records(&events);
    assert_eq!(got.len(), 3);
    for record in got {
        let written: serde_json::Value =
            serde_json::from_str(record.raw.as_deref().unwrap()).unwrap();
        assert_eq!(written["id"].as_str(), record.id.as_deref());
        assert!(written["steps"].is_number(), "{written}");
        assert!(!record.fields.contains_key("steps"), "not read, not built");
        assert!(record.fields.contains_key("id"));
    }
}

#[tokio::test]
async fn without_link_headers_the_offset_steps_to_the_total() {
    let sandbox = start().await;
    sandbox.set_link_headers(false);
    seed(&sandbox, "r", 101, TimeDelta::hours(1));
    let (result, events) = pull(
        &http_source(&sandbox, 50, 31),
        PullPlan::Incremental { since: None },
    )
    .await;
    assert_eq!(result.unwrap().pages, 3);
    assert_eq!(ids(&events).into_iter().collect::<BTreeSet<_>>().len(), 101);
    let offsets: Vec<_> = sandbox
        .requests()
        .iter()
        .map(|(q, _)| query_of(q).get("offset").cloned())
        .collect();
    assert_eq!(
        offsets,
        vec![None, Some("50".to_owned()), Some("100".to_owned())]
    );
}

#[tokio::test]
async fn a_second_pull_brings_only_what_changed_since_the_cursor() {
    let sandbox = start().await;
    seed(&sandbox, "r", 10, TimeDelta::hours(2));
    let source = http_source(&sandbox, 50, 31);
    let (result, events) = pull(&source, PullPlan::Incremental { since: None }).await;
    assert_eq!(result.unwrap().records, 10);
    let cursor = cursors(&events)[0];

    // After the first pull: a record changes, and yesterday's data arrives late.
    sandbox.upsert(json!({
        "id": "r-003", "source": "fitbit", "startTime": "2026-11-20T08:30:00.000Z", "steps": 9999
    }));
    let yesterday = (Utc::now() - TimeDelta::days(1)).date_naive().to_string();
    sandbox.upsert(json!({
        "id": "late", "source": "fitbit", "startTime": yesterday, "steps": 4321
    }));

    let (result, events) = pull(
        &source,
        PullPlan::Incremental {
            since: Some(cursor),
        },
    )
    .await;
    assert_eq!(result.unwrap().records, 2);
    let got: BTreeSet<String> = ids(&events).into_iter().collect();
    assert_eq!(got, BTreeSet::from(["late".to_owned(), "r-003".to_owned()]));
    let changed = records(&events)
        .into_iter()
        .find(|r| r.id.as_deref() == Some("r-003"))
        .unwrap();
    assert_eq!(changed.fields["steps"], 9999);
    let last = sandbox.requests().last().unwrap().0.clone();
    assert_eq!(query_of(&last)["updated_since"], format_query_time(cursor));
    assert!(cursors(&events)[0] > cursor);
}

#[tokio::test]
async fn a_hundred_days_are_pulled_in_four_windows_of_at_most_31_days() {
    let sandbox = start().await;
    let now = Utc::now();
    // One record changed every other day over the last 100 days.
    for k in 0..50 {
        sandbox.upsert(json!({
            "id": format!("d-{k:02}"),
            "startTime": "2026-08-01",
            "updatedAt": iso(now - TimeDelta::days(2 * k) - TimeDelta::hours(1)),
        }));
    }
    let source = http_source(&sandbox, 500, 31);
    let plan = PullPlan::Windows {
        from: now - TimeDelta::days(100),
        to: now,
    };
    let (result, events) = pull(&source, plan).await;
    let summary = result.unwrap();
    assert_eq!(summary.records, 50);
    assert_eq!(ids(&events).into_iter().collect::<BTreeSet<_>>().len(), 50);
    let done = cursors(&events);
    assert_eq!(done.len(), 4);
    assert!(done.windows(2).all(|w| w[0] < w[1]));
    assert!(*done.last().unwrap() <= Utc::now() - OVERLAP);

    let spans: Vec<TimeDelta> = sandbox
        .requests()
        .iter()
        .map(|(q, status)| {
            assert_eq!(*status, 200, "{q}");
            let q = query_of(q);
            let at = |k: &str| {
                chrono::NaiveDateTime::parse_from_str(&q[k], "%Y%m%dT%H%M%SZ")
                    .unwrap()
                    .and_utc()
            };
            at("updated_before") - at("updated_since")
        })
        .collect();
    assert_eq!(spans.len(), 4);
    assert!(spans.iter().all(|s| *s <= TimeDelta::days(31)), "{spans:?}");
}

#[tokio::test]
async fn the_sandbox_refuses_what_the_real_api_refuses() {
    let sandbox = start().await;
    let client = reqwest::Client::new();
    let get = |query: &str| {
        let url = format!("{}?{query}", sandbox.url());
        let client = client.clone();
        async move {
            let response = client.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, body) =
        get("updated_since=20260101T000000Z&updated_before=20260210T000000Z").await;
    assert_eq!(status, 400);
    assert!(body.contains("31 days"), "{body}");
    assert_eq!(get("updated_since=2026-01-01").await.0, 400);
    assert_eq!(get("limit=501").await.0, 400);
    assert_eq!(
        get("updated_since=20260101T000000Z&updated_before=20260201T000000Z")
            .await
            .0,
        200
    );
    // Without updated_since, only the last 24 hours.
    seed(&sandbox, "old", 3, TimeDelta::hours(30));
    seed(&sandbox, "new", 2, TimeDelta::hours(1));
    let (status, body) = get("").await;
    assert_eq!(status, 200);
    let page: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(page.len(), 2);
    // The source filter.
    sandbox.upsert(json!({ "id": "g", "source": "garmin", "startTime": "2026-11-20" }));
    let (_, body) = get("source=garmin").await;
    assert!(
        body.contains("\"g\"") && !body.contains("new-000"),
        "{body}"
    );
}

#[tokio::test]
async fn bearer_tokens_come_from_the_environment() {
    let sandbox = start().await;
    seed(&sandbox, "r", 3, TimeDelta::hours(1));
    sandbox.set_token(Some("tok-s3cret".into()));
    let source = |var: &str| {
        let config = http_config(
            sandbox.url(),
            HttpAuth::Bearer(SecretFrom::Env(var.into())),
            50,
            31,
        );
        from_config(&config, chrono_tz::UTC).unwrap()
    };
    let plan = PullPlan::Incremental { since: None };

    std::env::set_var("EA_TEST_BEARER_GOOD", "tok-s3cret");
    let (result, events) = pull(&source("EA_TEST_BEARER_GOOD"), plan).await;
    assert_eq!(result.unwrap().records, 3);
    assert_eq!(ids(&events).len(), 3);

    let (result, _) = pull(&source("EA_TEST_BEARER_UNSET"), plan).await;
    let error = result.unwrap_err();
    assert!(matches!(&error, SourceError::MissingEnv { var, .. } if var == "EA_TEST_BEARER_UNSET"));
    assert!(error.to_string().contains("EA_TEST_BEARER_UNSET"));

    std::env::set_var("EA_TEST_BEARER_BAD", "tok-wrong");
    let (result, _) = pull(&source("EA_TEST_BEARER_BAD"), plan).await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, SourceError::Status { status: 401, .. }),
        "{error}"
    );
    assert!(!error.is_temporary());
    // What the user sees: the message and its fix.
    let message = exist_agent::error::Error::from(error).to_string();
    assert!(
        message.contains("health") && message.contains("credentials"),
        "{message}"
    );
    assert!(!message.contains("tok-wrong"));
}

#[tokio::test]
async fn a_short_retry_after_is_waited_out() {
    let sandbox = start().await;
    seed(&sandbox, "r", 5, TimeDelta::hours(1));
    sandbox.inject_429(1, 1);
    let started = Instant::now();
    let (result, events) = pull(
        &http_source(&sandbox, 50, 31),
        PullPlan::Incremental { since: None },
    )
    .await;
    assert_eq!(result.unwrap().requests, 2);
    assert_eq!(ids(&events).len(), 5);
    assert!(started.elapsed() >= Duration::from_secs(1));
    let statuses: Vec<u16> = sandbox.requests().iter().map(|(_, s)| *s).collect();
    assert_eq!(statuses, vec![429, 200]);
}

#[tokio::test]
async fn a_long_retry_after_ends_the_pull_for_later() {
    let sandbox = start().await;
    seed(&sandbox, "r", 5, TimeDelta::hours(1));
    sandbox.inject_429(1, 600);
    let started = Instant::now();
    let (result, events) = pull(
        &http_source(&sandbox, 50, 31),
        PullPlan::Incremental { since: None },
    )
    .await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, SourceError::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(600)),
        "{error}"
    );
    assert!(error.is_temporary());
    assert!(error.to_string().contains("10m"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(cursors(&events).is_empty());
}

#[tokio::test]
async fn server_errors_are_retried() {
    let sandbox = start().await;
    seed(&sandbox, "r", 5, TimeDelta::hours(1));
    sandbox.inject_error(2, 503);
    let (result, events) = pull(
        &http_source(&sandbox, 50, 31),
        PullPlan::Incremental { since: None },
    )
    .await;
    assert_eq!(result.unwrap().requests, 3);
    assert_eq!(ids(&events).len(), 5);
    let statuses: Vec<u16> = sandbox.requests().iter().map(|(_, s)| *s).collect();
    assert_eq!(statuses, vec![503, 503, 200]);
}

#[tokio::test]
async fn server_errors_that_persist_fail_after_a_bounded_number_of_tries() {
    let sandbox = start().await;
    sandbox.inject_error(10, 500);
    let (result, events) = pull(
        &http_source(&sandbox, 50, 31),
        PullPlan::Incremental { since: None },
    )
    .await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, SourceError::Status { status: 500, .. }),
        "{error}"
    );
    assert!(error.is_temporary());
    assert!(error.to_string().contains("injected failure"), "{error}");
    assert_eq!(sandbox.requests().len(), 3);
    assert!(events.is_empty());
}

#[tokio::test]
async fn an_unreachable_source_is_a_network_error() {
    let sandbox = start().await;
    let url = sandbox.url();
    drop(sandbox);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let config = http_config(url, HttpAuth::None, 50, 31);
    let SourceKind::Http(http) = &config.kind else {
        unreachable!()
    };
    let source = HttpSource::new(&config, http).unwrap().with_retry(fast());
    let (result, _) = pull(&source, PullPlan::Incremental { since: None }).await;
    let error = result.unwrap_err();
    assert!(matches!(error, SourceError::Network { .. }), "{error}");
    assert!(error.is_temporary());
}

#[tokio::test]
async fn malformed_records_are_skipped_reported_and_the_rest_delivered() {
    let sandbox = start().await;
    seed(&sandbox, "ok", 3, TimeDelta::hours(1));
    let updated = iso(Utc::now() - TimeDelta::minutes(59));
    sandbox.upsert(json!({ "id": "no-date", "steps": 1, "updatedAt": updated }));
    sandbox.upsert(json!({ "id": "bad-date", "startTime": "someday", "updatedAt": updated }));
    sandbox.upsert(json!({
        "id": "bad-offset", "startTime": "2026-11-20T08:00:00", "tzOffset": "PST", "updatedAt": updated
    }));
    let (result, events) = pull(
        &http_source(&sandbox, 2, 31),
        PullPlan::Incremental { since: None },
    )
    .await;
    let summary = result.unwrap();
    assert_eq!((summary.records, summary.malformed), (3, 3));
    assert_eq!(ids(&events).len(), 3);
    let reports = malformed(&events);
    let locations: BTreeSet<&str> = reports.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        locations,
        BTreeSet::from(["id no-date", "id bad-date", "id bad-offset"])
    );
    assert!(reports
        .iter()
        .any(|(_, why)| why.contains("no `startTime` field")));
    assert_eq!(cursors(&events).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Sink errors

#[tokio::test]
async fn a_sink_error_aborts_the_pull_before_later_cursors() {
    let sandbox = start().await;
    let now = Utc::now();
    for k in 0..50 {
        sandbox.upsert(json!({
            "id": format!("d-{k:02}"),
            "startTime": "2026-08-01",
            "updatedAt": iso(now - TimeDelta::days(2 * k) - TimeDelta::hours(1)),
        }));
    }
    let source = http_source(&sandbox, 500, 31);
    let plan = PullPlan::Windows {
        from: now - TimeDelta::days(100),
        to: now,
    };
    let mut events = Vec::new();
    let mut batches = 0;
    let result = source
        .pull(&plan, &mut |event| {
            if matches!(event, PullEvent::Records(_)) {
                batches += 1;
                if batches == 2 {
                    return Err(SinkError::temporary("disk full"));
                }
            }
            events.push(event);
            Ok(())
        })
        .await;
    let error = result.unwrap_err();
    assert!(matches!(error, SourceError::Sink { .. }), "{error}");
    assert!(error.to_string().contains("disk full"));
    // The first window's cursor was reported; nothing after the failure.
    assert_eq!(cursors(&events).len(), 1);
    assert_eq!(sandbox.requests().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Files

fn file_source(path: &std::path::Path, format: RecordFormat) -> exist_agent::sources::AnySource {
    let config = source_config(
        "coffee",
        "date",
        SourceKind::File(FileSourceConfig {
            path: path.to_owned(),
            format,
            id_field: Some("id".into()),
        }),
    );
    from_config(&config, chrono_tz::UTC).unwrap()
}

#[tokio::test]
async fn csv_files_are_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coffee.csv");
    std::fs::write(
        &path,
        "id,date,cups,kind\n1,2026-11-20,2,espresso\n2,2026-11-20T07:15:00-08:00,1.5,latte\n\n3,never,1,x\n4,1763627400,3,\n",
    )
    .unwrap();
    let started = Utc::now();
    let (result, events) = pull(
        &file_source(&path, RecordFormat::Csv),
        PullPlan::Incremental { since: None },
    )
    .await;
    let summary = result.unwrap();
    assert_eq!((summary.records, summary.malformed), (3, 1));
    let got = records(&events);
    assert_eq!(got[0].fields["cups"], 2);
    assert_eq!(got[1].fields["cups"], 1.5);
    assert_eq!(got[0].fields["kind"], "espresso");
    assert!(
        !got[2].fields.contains_key("kind"),
        "empty cells are absent"
    );
    assert_eq!(
        malformed(&events)[0].0,
        "line 5 (id 3)",
        "line numbers count blank lines"
    );
    let cursor = cursors(&events);
    assert_eq!(cursor.len(), 1);
    assert!(cursor[0] >= started);
    assert!(matches!(events.last(), Some(PullEvent::WindowDone { .. })));
}

#[tokio::test]
async fn json_lines_files_are_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coffee.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, r#"{{"id":"a","date":"2026-11-20","cups":2}}"#).unwrap();
    writeln!(file).unwrap();
    writeln!(
        file,
        r#"{{"id":"b","date":"2026-11-21 07:00:00","cups":1}}"#
    )
    .unwrap();
    writeln!(file, r#"{{"id":"c","date":"2026-11-21""#).unwrap();
    writeln!(file, r#"{{"id":"d","cups":1}}"#).unwrap();
    drop(file);
    let (result, events) = pull(
        &file_source(&path, RecordFormat::JsonLines),
        PullPlan::Windows {
            from: Utc::now() - TimeDelta::days(3),
            to: Utc::now(),
        },
    )
    .await;
    assert_eq!(result.unwrap().records, 2);
    assert_eq!(ids(&events), vec!["a", "b"]);
    let reports = malformed(&events);
    assert_eq!(reports[0].0, "line 4");
    assert!(
        reports[0].1.starts_with("not valid JSON"),
        "{}",
        reports[0].1
    );
    assert_eq!(reports[1].0, "line 5 (id d)");
    assert_eq!(cursors(&events).len(), 1);
}

#[tokio::test]
async fn a_missing_file_names_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.csv");
    let (result, events) = pull(
        &file_source(&path, RecordFormat::Csv),
        PullPlan::Incremental { since: None },
    )
    .await;
    let error = result.unwrap_err();
    assert!(matches!(error, SourceError::Io { .. }));
    let message = error.to_string();
    assert!(
        message.contains("coffee") && message.contains("nope.csv"),
        "{message}"
    );
    assert!(events.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Commands

fn command_source(
    argv: &[&str],
    format: RecordFormat,
    timeout: Duration,
) -> exist_agent::sources::AnySource {
    let config = source_config(
        "commits",
        "date",
        SourceKind::Command(CommandSourceConfig {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            format,
            timeout,
            id_field: Some("id".into()),
        }),
    );
    from_config(&config, chrono_tz::UTC).unwrap()
}

const PLAN: PullPlan = PullPlan::Incremental { since: None };

#[tokio::test]
async fn commands_print_json_lines() {
    let source = command_source(
        &[
            "printf",
            r#"{"id":"c1","date":"2026-11-20T10:00:00+01:00"}\n\n{"id":"c2","date":"2026-11-20T11:00:00+01:00"}\n"#,
        ],
        RecordFormat::JsonLines,
        Duration::from_secs(10),
    );
    let (result, events) = pull(&source, PLAN).await;
    assert_eq!(result.unwrap().records, 2);
    assert_eq!(ids(&events), vec!["c1", "c2"]);
    assert_eq!(cursors(&events).len(), 1);
}

#[tokio::test]
async fn commands_print_csv() {
    let source = command_source(
        &[
            "printf",
            "id,date,lines\\nx,2026-11-20,10\\ny,2026-11-21,20\\n",
        ],
        RecordFormat::Csv,
        Duration::from_secs(10),
    );
    let (result, events) = pull(&source, PLAN).await;
    assert_eq!(result.unwrap().records, 2);
    assert_eq!(records(&events)[1].fields["lines"], 20);
}

#[tokio::test]
async fn a_failing_command_quotes_its_stderr() {
    let source = command_source(
        &["sh", "-c", "echo 'token expired, log in again' >&2; exit 3"],
        RecordFormat::JsonLines,
        Duration::from_secs(10),
    );
    let (result, events) = pull(&source, PLAN).await;
    let error = result.unwrap_err();
    let SourceError::Command { status, stderr, .. } = &error else {
        panic!("{error}")
    };
    assert!(status.contains('3'), "{status}");
    assert_eq!(stderr, "token expired, log in again");
    assert!(error.to_string().contains("commits"));
    assert!(events.is_empty());
}

#[tokio::test]
async fn a_missing_program_says_so() {
    let source = command_source(
        &["exist-agent-no-such-program"],
        RecordFormat::JsonLines,
        Duration::from_secs(10),
    );
    let error = pull(&source, PLAN).await.0.unwrap_err();
    assert!(matches!(error, SourceError::Spawn { .. }), "{error}");
    assert!(error.to_string().contains("exist-agent-no-such-program"));
}

#[tokio::test]
async fn a_slow_command_is_killed_at_its_timeout() {
    let source = command_source(
        &["sleep", "10"],
        RecordFormat::JsonLines,
        Duration::from_millis(200),
    );
    let started = Instant::now();
    let error = pull(&source, PLAN).await.0.unwrap_err();
    assert!(matches!(error, SourceError::Timeout { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(error.to_string().contains("200ms"), "{error}");
}

#[tokio::test]
async fn large_outputs_on_both_pipes_do_not_deadlock() {
    // 20,000 records on stdout and 256 KiB on stderr (far beyond a pipe's buffer), exit 0:
    // stderr is a warning, the records are used.
    let script = r#"
        i=0
        while [ $i -lt 20000 ]; do echo "{\"date\":\"2026-11-20\",\"n\":$i}"; i=$((i+1)); done
        head -c 262144 /dev/zero | tr '\0' 'w' >&2
        i=0
        while [ $i -lt 100 ]; do echo "{\"date\":\"2026-11-21\",\"n\":$i}"; i=$((i+1)); done
    "#;
    let source = command_source(
        &["sh", "-c", script],
        RecordFormat::JsonLines,
        Duration::from_secs(60),
    );
    let (result, events) = pull(&source, PLAN).await;
    assert_eq!(result.unwrap().records, 20_100);
    assert_eq!(records(&events).len(), 20_100);
}

//! The HTTP dialects and the sqlite kind, through the library, including how each fails: paging
//! that goes in a circle or never ends, a pull past its request budget, 429 under cursor paging,
//! every kind of auth (and no secret in an error), a database whose owner keeps writing; and
//! `doctor` on sources it cannot use.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use chrono::{TimeDelta, Utc};
use exist_agent::config::{Config, SourceConfig, SourceKind};
use exist_agent::sources::{
    HttpSource, PullEvent, PullPlan, PullRetry, PullSummary, Record, Source, SourceError,
    SqliteSource,
};
use exist_fakes::services::{gadgetbridge, oura, wakatime, AuthScheme};
use rusqlite::Connection;
use serde_json::{json, Value};

use crate::common::World;

// ---------------------------------------------------------------------------------------------
// Helpers

/// The one `[[source]]` of a configuration made of `source` (its keys after `[[source]]`).
fn source(source: &str) -> SourceConfig {
    let text = format!("[exist]\nclient_id = \"x\"\n\n[[source]]\n{source}\n");
    let config = Config::parse(Path::new("/test/config.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    config.sources.into_iter().next().unwrap()
}

/// An HTTP source named `s` at `url` with `keys`, retrying without waiting long.
fn http(url: &str, keys: &str) -> HttpSource {
    let date = if keys.contains("date_field") {
        ""
    } else {
        "date_field = \"day\"\n"
    };
    let config = source(&format!(
        "name = \"s\"\nkind = \"http\"\nurl = \"{url}\"\n{date}{keys}"
    ));
    let SourceKind::Http(h) = &config.kind else {
        unreachable!("an http source")
    };
    HttpSource::new(&config, h).unwrap().with_retry(PullRetry {
        attempts: 3,
        base_delay: Duration::from_millis(10),
        ..PullRetry::default()
    })
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

fn windows_done(events: &[PullEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, PullEvent::WindowDone { .. }))
        .count()
}

const NOW: PullPlan = PullPlan::Incremental { since: None };

/// A request the scripted server saw.
#[derive(Debug, Clone)]
struct Seen {
    query: BTreeMap<String, String>,
    headers: HeaderMap,
}

type Script = dyn Fn(&Seen, usize) -> (StatusCode, Value) + Send + Sync;

/// A server that answers each request as `script` says (given the request and how many came
/// before it), on this test's runtime.
struct Scripted {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Scripted {
    async fn start(
        script: impl Fn(&Seen, usize) -> (StatusCode, Value) + Send + Sync + 'static,
    ) -> Self {
        let script: Arc<Script> = Arc::new(script);
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap| {
            let (script, log) = (script.clone(), log.clone());
            async move {
                let query = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
                let request = Seen { query, headers };
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push(request.clone());
                    log.len() - 1
                };
                let (status, body) = script(&request, n);
                (status, axum::Json(body))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/items", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn item(id: usize) -> Value {
    json!({"id": format!("r{id}"), "day": "2026-11-20", "n": id})
}

// ---------------------------------------------------------------------------------------------
// Paging: every loop bounded, with a named error

#[tokio::test]
async fn a_cursor_that_comes_back_stops_the_pull_as_a_loop() {
    let server = Scripted::start(|_, n| {
        (
            StatusCode::OK,
            json!({"data": [item(n)], "next": if n == 0 { "a" } else { "b" }}),
        )
    })
    .await;
    let source = http(
        &server.url,
        "records = \"/data\"\npaging = { style = \"cursor\", token = \"/next\", param = \"after\" }",
    );
    let (result, events) = pull(&source, NOW).await;
    let error = result.unwrap_err();
    assert!(matches!(error, SourceError::PagingLoops { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("the paging loops: the cursor `b`"),
        "{error}"
    );
    assert_eq!(server.seen().len(), 3, "a, b, then b again");
    assert_eq!(windows_done(&events), 0, "the cursor stays where it was");
    assert_eq!(records(&events).len(), 3, "what was read is handed over");
}

#[tokio::test]
async fn a_cursor_that_never_ends_stops_at_max_pages() {
    let server = Scripted::start(|_, n| {
        (
            StatusCode::OK,
            json!({"items": [item(n)], "cursor": {"next": n + 1}}),
        )
    })
    .await;
    let source = http(
        &server.url,
        "records = \"/items\"\npaging = { style = \"cursor\", token = \"/cursor/next\", param = \"c\" }\nmax_pages = 5",
    );
    let (result, events) = pull(&source, NOW).await;
    let error = result.unwrap_err();
    assert!(matches!(error, SourceError::Unbounded { .. }), "{error}");
    assert!(
        error.to_string().contains("past 5 pages (max_pages)"),
        "{error}"
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 5);
    assert_eq!(
        seen[4].query["c"], "4",
        "the token goes back as the parameter"
    );
    assert_eq!(windows_done(&events), 0);
}

#[tokio::test]
async fn next_urls_are_followed_until_they_go_in_a_circle() {
    let server = Scripted::start(|seen, _| {
        let page: u32 = seen
            .query
            .get("p")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let next = match page {
            1 => json!("/v1/items?p=2"),
            2 => json!("/v1/items?p=3"),
            _ => json!("/v1/items?p=2"),
        };
        (
            StatusCode::OK,
            json!({"results": [item(page as usize)], "links": {"next": next}}),
        )
    })
    .await;
    let source = http(
        &server.url,
        "records = \"/results\"\npaging = { style = \"next_url\", next = \"/links/next\" }",
    );
    let (result, _) = pull(&source, NOW).await;
    let error = result.unwrap_err();
    assert!(matches!(error, SourceError::PagingLoops { .. }), "{error}");
    assert!(error.to_string().contains("p=2 again"), "{error}");
    assert_eq!(server.seen().len(), 3);

    // A next URL that ends: every page read, the window done.
    let server = Scripted::start(|seen, _| {
        let next = if seen.query.contains_key("p") {
            Value::Null
        } else {
            json!("/v1/items?p=2")
        };
        (
            StatusCode::OK,
            json!({"results": [item(seen.query.len())], "links": {"next": next}}),
        )
    })
    .await;
    let source = http(
        &server.url,
        "records = \"/results\"\npaging = { style = \"next_url\", next = \"/links/next\" }",
    );
    let (result, events) = pull(&source, NOW).await;
    assert_eq!(result.unwrap().pages, 2);
    assert_eq!(windows_done(&events), 1);
}

#[tokio::test]
async fn an_offset_the_source_ignores_is_a_loop_and_a_short_page_ends_the_query() {
    let server = Scripted::start(|_, _| (StatusCode::OK, json!([item(1), item(2)]))).await;
    let source = http(
        &server.url,
        "records = \"\"\npaging = { style = \"offset\", param = \"skip\", limit_param = \"take\", limit = 2 }",
    );
    let (result, _) = pull(&source, NOW).await;
    let error = result.unwrap_err();
    assert!(
        error.to_string().contains("does not take `skip`"),
        "{error}"
    );

    let server = Scripted::start(|seen, _| {
        let skip: usize = seen
            .query
            .get("skip")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let page: Vec<Value> = (skip..(skip + 2).min(5)).map(item).collect();
        (StatusCode::OK, Value::Array(page))
    })
    .await;
    let source = http(
        &server.url,
        "records = \"\"\npaging = { style = \"offset\", param = \"skip\", limit_param = \"take\", limit = 2 }",
    );
    let (result, events) = pull(&source, NOW).await;
    assert_eq!(result.unwrap().records, 5);
    let skips: Vec<_> = server
        .seen()
        .iter()
        .map(|s| (s.query.get("skip").cloned(), s.query["take"].clone()))
        .collect();
    assert_eq!(
        skips,
        [
            (None, "2".to_owned()),
            (Some("2".to_owned()), "2".to_owned()),
            (Some("4".to_owned()), "2".to_owned())
        ]
    );
    assert_eq!(windows_done(&events), 1);
}

#[tokio::test]
async fn page_numbers_count_from_one_until_an_empty_page() {
    let server = Scripted::start(|seen, _| {
        let page: usize = seen.query["page"].parse().unwrap();
        let items: Vec<Value> = if page <= 2 {
            vec![item(page)]
        } else {
            Vec::new()
        };
        (StatusCode::OK, json!({"data": items}))
    })
    .await;
    let source = http(
        &server.url,
        "paging = { style = \"page\", param = \"page\" }",
    );
    let (result, _) = pull(&source, NOW).await;
    assert_eq!(result.unwrap().records, 2);
    let pages: Vec<_> = server
        .seen()
        .iter()
        .map(|s| s.query["page"].clone())
        .collect();
    assert_eq!(pages, ["1", "2", "3"]);
}

#[tokio::test]
async fn a_pull_stops_at_its_request_budget_keeping_the_windows_it_finished() {
    let server = Scripted::start(|_, n| (StatusCode::OK, json!([item(n)]))).await;
    let source = http(
        &server.url,
        "records = \"\"\nwindow = { style = \"dates\", start = \"from\", end = \"to\" }\nwindow_days = 1\npaging = { style = \"none\" }\nmax_requests = 3",
    );
    let plan = PullPlan::Windows {
        from: Utc::now() - TimeDelta::days(9),
        to: Utc::now(),
    };
    let (result, events) = pull(&source, plan).await;
    let error = result.unwrap_err();
    assert!(
        error.to_string().contains("past 3 requests (max_requests)"),
        "{error}"
    );
    assert_eq!(server.seen().len(), 3);
    assert_eq!(windows_done(&events), 3, "the three windows read are kept");
    // A day a query: each asks for its own day.
    let days: Vec<_> = server
        .seen()
        .iter()
        .map(|s| (s.query["from"].clone(), s.query["to"].clone()))
        .collect();
    assert!(days.iter().all(|(from, to)| from == to), "{days:?}");
}

#[tokio::test]
async fn a_429_under_cursor_paging_is_waited_out_as_retry_after_says() {
    let fake = oura::OuraFake::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    oura::sample_week(&fake);
    fake.set_page_size(2);
    std::env::set_var("EXIST_AGENT_TEST_OURA", oura::TEST_TOKEN);
    let source = http(
        &format!("{}v2/usercollection/daily_activity", fake.url()),
        "auth = { bearer_env = \"EXIST_AGENT_TEST_OURA\" }\nrecords = \"/data\"\nwindow = { style = \"dates\", start = \"start_date\", end = \"end_date\" }\npaging = { style = \"cursor\", token = \"/next_token\", param = \"next_token\" }",
    );
    // The second page first answers 429 with Retry-After: 1.
    let started = std::time::Instant::now();
    let plan = PullPlan::Windows {
        from: "2026-11-16T00:00:00Z".parse().unwrap(),
        to: "2026-11-23T00:00:00Z".parse().unwrap(),
    };
    let mut sink_calls = 0;
    let result = source
        .pull(&plan, &mut |event| {
            if matches!(event, PullEvent::Records(_)) {
                sink_calls += 1;
                if sink_calls == 1 {
                    fake.faults().rate_limit_next(1, 1);
                }
            }
            Ok(())
        })
        .await;
    let summary = result.unwrap();
    assert_eq!(summary.records, 7);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was waited"
    );
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 429, 200, 200, 200]);
    assert_eq!(summary.requests, 5, "the 429 counts as a request");
}

// ---------------------------------------------------------------------------------------------
// Auth

#[tokio::test]
async fn a_header_or_a_query_parameter_carries_the_secret_and_no_error_shows_it() {
    std::env::set_var("EXIST_AGENT_TEST_HEADER_KEY", "h-s3cret");
    let server = Scripted::start(|seen, _| {
        match seen.headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
            Some("h-s3cret") => (StatusCode::OK, json!([item(1)])),
            _ => (StatusCode::UNAUTHORIZED, json!({"error": "no key"})),
        }
    })
    .await;
    let source = http(
        &server.url,
        "auth = { header = \"X-Api-Key\", value_env = \"EXIST_AGENT_TEST_HEADER_KEY\" }",
    );
    assert_eq!(pull(&source, NOW).await.0.unwrap().records, 1);

    // WakaTime takes its key as `api_key`; a failing pull's error carries no key.
    let fake = wakatime::WakaTimeFake::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    std::env::set_var("EXIST_AGENT_TEST_WAKA_KEY", wakatime::TEST_API_KEY);
    let source = http(
        &format!("{}api/v1/users/current/summaries", fake.url()),
        "auth = { query = \"api_key\", value_env = \"EXIST_AGENT_TEST_WAKA_KEY\" }\nrecords = \"/data\"\nid_field = \"range.date\"\ndate_field = \"range.date\"\nwindow = { style = \"dates\", start = \"start\", end = \"end\" }\npaging = { style = \"none\" }\nwindow_days = 3",
    );
    let (result, events) = pull(&source, NOW).await;
    assert_eq!(result.unwrap().records, 3, "three days, zeros included");
    assert_eq!(
        records(&events)[0].id.as_deref(),
        Some(
            records(&events)[0].fields["range"]["date"]
                .as_str()
                .unwrap()
        )
    );
    let requests = fake.requests();
    assert_eq!(requests[0].auth, AuthScheme::QueryParam("api_key".into()));
    assert_eq!(requests[0].query_value("api_key"), Some("***"));
    fake.faults().fail_next(3, StatusCode::SERVICE_UNAVAILABLE);
    let error = pull(&source, NOW).await.0.unwrap_err();
    assert!(
        matches!(error, SourceError::Status { status: 503, .. }),
        "{error}"
    );
    assert!(
        !error.to_string().contains(wakatime::TEST_API_KEY),
        "{error}"
    );
    assert!(
        !format!("{error:?}").contains(wakatime::TEST_API_KEY),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_command_prints_the_token_once_a_pull() {
    let fake = oura::OuraFake::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    oura::sample_week(&fake);
    fake.set_page_size(2);
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("runs");
    let source = http(
        &format!("{}v2/usercollection/daily_activity", fake.url()),
        &format!(
            "auth = {{ command = [\"sh\", \"-c\", \"echo x >> {}; echo {}\"] }}\nrecords = \"/data\"\nwindow = {{ style = \"dates\", start = \"start_date\", end = \"end_date\" }}\npaging = {{ style = \"cursor\", token = \"/next_token\", param = \"next_token\" }}",
            counter.display(),
            oura::TEST_TOKEN
        ),
    );
    let plan = PullPlan::Windows {
        from: "2026-11-16T00:00:00Z".parse().unwrap(),
        to: "2026-11-23T00:00:00Z".parse().unwrap(),
    };
    let (result, _) = pull(&source, plan).await;
    assert_eq!(result.unwrap().records, 7);
    assert_eq!(fake.requests().len(), 4, "four pages");
    assert!(fake
        .requests()
        .iter()
        .all(|r| r.auth == AuthScheme::Bearer && r.status == 200));
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        "x\n",
        "run once"
    );
}

// ---------------------------------------------------------------------------------------------
// sqlite: the owner's writes are never blocked

/// A Gadgetbridge-style database of `minutes` samples of 10 steps from 2026-11-19T00:00Z, in
/// `journal_mode`, with the owner's connection left open (as the app keeps it).
fn band(dir: &Path, minutes: i64, journal_mode: &str) -> (Connection, SourceConfig) {
    let path = dir.join("Gadgetbridge");
    let mut db = gadgetbridge::GadgetbridgeDb::create(&path).unwrap();
    let device = db.add_device("band", "AA:BB", "MIBAND").unwrap();
    db.add_samples(&gadgetbridge::minutes(
        device,
        1,
        1_795_046_400,
        minutes,
        10,
    ))
    .unwrap();
    db.close().unwrap();
    let owner = Connection::open(&path).unwrap();
    let mode: String = owner
        .query_row(&format!("PRAGMA journal_mode = {journal_mode}"), [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(mode, journal_mode);
    // The owner does not wait: any lock the agent held would fail its writes at once.
    owner.busy_timeout(Duration::ZERO).unwrap();
    let config = source(&format!(
        "name = \"band\"\nkind = \"sqlite\"\npath = \"{}\"\nquery = \"SELECT TIMESTAMP AS ts, STEPS AS steps FROM MI_BAND_ACTIVITY_SAMPLE\"\ndate_field = \"ts\"",
        path.display()
    ));
    (owner, config)
}

fn sqlite(config: &SourceConfig) -> SqliteSource {
    let SourceKind::Sqlite(q) = &config.kind else {
        unreachable!("a sqlite source")
    };
    SqliteSource::new(config, q)
}

const INSERT: &str = "INSERT INTO MI_BAND_ACTIVITY_SAMPLE VALUES (1795132800, 1, 1, 20, 99, 1, 70)";

#[tokio::test]
async fn the_agent_reads_while_the_owner_holds_a_write_transaction() {
    for mode in ["wal", "delete"] {
        let dir = tempfile::tempdir().unwrap();
        let (owner, config) = band(dir.path(), 60, mode);
        owner.execute_batch("BEGIN IMMEDIATE").unwrap();
        owner.execute(INSERT, []).unwrap();
        let (result, events) = pull(&sqlite(&config), NOW).await;
        assert_eq!(
            result.unwrap().records,
            60,
            "{mode}: the committed rows only"
        );
        assert!(records(&events).iter().all(|r| r.fields["steps"] == 10));
        owner.execute_batch("COMMIT").unwrap();
        let (result, _) = pull(&sqlite(&config), NOW).await;
        assert_eq!(result.unwrap().records, 61, "{mode}: then the owner's row");
    }
}

#[tokio::test]
async fn the_owner_writes_and_commits_while_the_agent_is_reading() {
    let dir = tempfile::tempdir().unwrap();
    // Enough rows that the query is still running when the first chunk reaches the sink.
    let (owner, config) = band(dir.path(), 50_000, "wal");
    // The sink runs on the pull's side; the owner's connection goes there behind a lock.
    let owner = Mutex::new(owner);
    let mut writes = Vec::new();
    let result = sqlite(&config)
        .pull(&NOW, &mut |event| {
            if matches!(event, PullEvent::Records(_)) && writes.len() < 3 {
                writes.push(
                    owner
                        .lock()
                        .unwrap()
                        .execute(
                            &INSERT
                                .replace("1795132800", &(1_796_000_000 + writes.len()).to_string()),
                            [],
                        )
                        .map_err(|e| e.to_string()),
                );
            }
            Ok(())
        })
        .await;
    assert_eq!(writes.len(), 3);
    assert!(
        writes.iter().all(Result::is_ok),
        "never blocked: {writes:?}"
    );
    // The read saw the database as it was when it began.
    assert_eq!(result.unwrap().records, 50_000);
    let rows: i64 = owner
        .lock()
        .unwrap()
        .query_row("SELECT COUNT(*) FROM MI_BAND_ACTIVITY_SAMPLE", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(rows, 50_003);
}

#[tokio::test]
async fn a_slow_query_is_stopped_at_its_timeout_and_a_missing_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_owner, config) = band(dir.path(), 1, "wal");
    let SourceKind::Sqlite(mut q) = config.kind.clone() else {
        unreachable!()
    };
    q.query = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i AS ts FROM n WHERE i < 0".into();
    q.timeout = Duration::from_millis(200);
    let slow = SqliteSource::new(&config, &q);
    let started = std::time::Instant::now();
    let error = pull(&slow, NOW).await.0.unwrap_err();
    assert!(
        error.to_string().contains("ran longer than 200ms"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    q.path = dir.path().join("nowhere.db");
    let error = pull(&SqliteSource::new(&config, &q), NOW)
        .await
        .0
        .unwrap_err();
    assert!(matches!(error, SourceError::Io { .. }), "{error}");
    assert!(error.to_string().contains("nowhere.db"), "{error}");
    assert!(!q.path.exists(), "a missing database is not created");
}

// ---------------------------------------------------------------------------------------------
// doctor

#[test]
fn doctor_names_what_each_source_style_lacks() {
    let world = World::new("");
    let server = world.rt.block_on(Scripted::start(|_, _| {
        (StatusCode::OK, json!({"results": [item(1)]}))
    }));
    let db = world.path("app.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE daily (day TEXT, steps INTEGER)")
        .unwrap();
    world.write_config(&format!(
        "[[source]]\nname = \"pointer\"\nkind = \"http\"\nurl = \"{url}\"\nrecords = \"/data\"\ndate_field = \"day\"\n\n\
         [[source]]\nname = \"secret\"\nkind = \"http\"\nurl = \"{url}\"\nauth = {{ command = [\"sh\", \"-c\", \"echo locked >&2; exit 1\"] }}\ndate_field = \"day\"\n\n\
         [[source]]\nname = \"basic\"\nkind = \"http\"\nurl = \"{url}\"\nauth = {{ basic_user_env = \"EXIST_AGENT_TEST_U\", basic_password_env = \"EXIST_AGENT_TEST_UNSET_P\" }}\nrecords = \"/results\"\ndate_field = \"day\"\n\n\
         [[source]]\nname = \"rows\"\nkind = \"sqlite\"\npath = \"{db}\"\nquery = \"SELECT steps FROM daily\"\ndate_field = \"day\"\n\n\
         [[attribute]]\ntemplate = \"steps\"\nsource = \"rows\"\nfield = \"steps\"\naggregate = \"sum\"\n",
        url = server.url,
        db = db.display()
    ));
    let out = world
        .cmd()
        .env("EXIST_AGENT_TEST_U", "user")
        .env_remove("EXIST_AGENT_TEST_UNSET_P")
        .arg("doctor")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with("FAIL") && l[4..].trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no failed check {name:?} in:\n{text}"))
    };
    for (name, detail) in [
        ("source pointer", "the answer has nothing at `/data` (keys there: results)"),
        ("source secret", "the auth command `sh` failed (exit status: 1); its standard error says \"locked\""),
        ("secrets", "not set in the environment: EXIST_AGENT_TEST_UNSET_P (source basic: auth.basic_password_env)"),
        ("source basic", "the environment variable EXIST_AGENT_TEST_UNSET_P is not set"),
        ("source rows", "the query gives the columns steps, none of them `day` (date_field)"),
    ] {
        assert!(line(name).contains(detail), "{name}: {detail:?} in:\n{text}");
    }
    assert_eq!(out.status.code(), Some(1));
    // The pointer's fix names `records`; the command's says how to try it.
    assert!(text.contains("`records` points at its list"), "{text}");
    assert!(text.contains("run the command by hand"), "{text}");
}

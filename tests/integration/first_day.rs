//! A person's first day with the agent, and hostile inputs: a dry run on a fresh install, bad
//! records, a schedule that never fires, a broken source beside healthy ones, a full disk, a
//! source that pages forever or hangs, clock skew, a held lock, a missing secret, no config.

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{today_utc, write_lines, World};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chrono::Utc;
use predicates::prelude::*;
use serde_json::{json, Value};

fn day(days_ago: i64) -> String {
    (today_utc() - chrono::Duration::days(days_ago)).to_string()
}

fn status_json(world: &World) -> Value {
    let out = world.cmd().args(["status", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A file source `coffee` at `coffee.csv` feeding the `coffees` template (sum of `cups`), plus
/// whatever `rest` adds.
fn coffee_config(world: &World, rest: &str) -> String {
    format!(
        "[[source]]\nname = \"coffee\"\nkind = \"file\"\npath = \"{}\"\ndate_field = \"date\"\n\n[[attribute]]\ntemplate = \"coffees\"\nsource = \"coffee\"\nfield = \"cups\"\naggregate = \"sum\"\n{rest}",
        world.path("coffee.csv").display()
    )
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A daemon that is killed if the test fails before it is stopped, so no test leaves one behind.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn terminate(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A misbehaving HTTP source on loopback, served by `app` on the world's runtime.
fn serve(world: &World, app: axum::Router) -> SocketAddr {
    world.rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    })
}

fn http_source(name: &str, url: &str, extra: &str) -> String {
    format!("[[source]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\ndate_field = \"startTime\"\n{extra}\n")
}

// ---------------------------------------------------------------------------------------------
// 1. The dry run on a fresh install shows what the first real run will send.

#[test]
fn a_dry_run_on_a_fresh_install_shows_what_the_first_run_sends_and_changes_nothing() {
    let world = World::new("");
    write_lines(
        &world.path("coffee.csv"),
        &[
            "date,cups".into(),
            format!("{},2", day(1)),
            format!("{},1", day(0)),
            format!("{},2", day(0)),
        ],
    );
    world.write_config(&coffee_config(
        &world,
        "\n[[attribute]]\nlabel = \"Espressos\"\ngroup = \"food\"\nvalue_type = \"integer\"\nsource = \"coffee\"\naggregate = \"count\"\n",
    ));
    world.login_with(&["food_write"]);
    world
        .cmd()
        .args(["run", "--once", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "coffees {} (none) -> 2 (will be acquired)",
            day(1)
        )))
        .stdout(predicate::str::contains(format!(
            "coffees {} (none) -> 3 (will be acquired)",
            day(0)
        )))
        .stdout(predicate::str::contains(format!(
            "Espressos {} (none) -> 2 (will be created)",
            day(0)
        )))
        .stdout(predicate::str::contains(
            "4 value(s) would be sent in 1 update call(s)",
        ));
    for write in [
        "/api/2/attributes/acquire/",
        "/api/2/attributes/create/",
        "/api/2/attributes/update/",
    ] {
        assert_eq!(world.count(write), 0, "a dry run makes no call to {write}");
    }
    let status = status_json(&world);
    assert_eq!(status["owned_attributes"], json!([]), "nothing acquired");
    assert_eq!(status["pending"], json!([]), "nothing queued");
    // The real run then sends exactly what the dry run showed.
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.value("coffees", &day(1)), Some(json!(2)));
    assert_eq!(world.value("coffees", &day(0)), Some(json!(3)));
    assert_eq!(world.value("espressos", &day(0)), Some(json!(2)));
}

// ---------------------------------------------------------------------------------------------
// 2. A bad record never blocks a day.

#[test]
fn bad_records_are_skipped_named_and_the_day_is_sent_from_the_rest() {
    let world = World::new("");
    write_lines(
        &world.path("coffee.csv"),
        &[
            "date,cups".into(),
            format!("{},2", day(0)),
            format!("{},lots", day(0)),
            format!("{},NaN", day(0)),
            format!("{},Infinity", day(0)),
            format!("{},1e300", day(0)),
            ",4".into(),
            "2999-01-01,5".into(),
            format!("{},3", day(0)),
            format!("{},1", day(1)),
        ],
    );
    world.write_config(&coffee_config(&world, ""));
    world.login_with(&["food_write"]);
    world
        .cmd()
        .args(["run", "--once"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "source \"coffee\": skipped the record at line 3",
        ))
        .stderr(predicate::str::contains("\"lots\""))
        .stderr(predicate::str::contains("line 6"))
        .stderr(predicate::str::contains("line 8"));
    assert_eq!(
        world.value("coffees", &day(0)),
        Some(json!(5)),
        "2 + 3 from the good records"
    );
    assert_eq!(world.value("coffees", &day(1)), Some(json!(1)));
    assert_eq!(
        world.value("coffees", "2999-01-01"),
        None,
        "a record in the year 2999 is not a real day"
    );
    let status = status_json(&world);
    let skipped = status["skipped"]
        .as_array()
        .expect("status lists skipped records");
    let lines: Vec<&str> = skipped
        .iter()
        .map(|s| s["location"].as_str().unwrap())
        .collect();
    for line in ["line 3", "line 4", "line 5", "line 6", "line 7", "line 8"] {
        assert!(lines.contains(&line), "{line} is listed in {lines:?}");
    }
    assert!(skipped
        .iter()
        .all(|s| s["source"] == "coffee" && !s["reason"].as_str().unwrap().is_empty()));
    // Later runs keep sending the day from the good records.
    write_lines(
        &world.path("coffee.csv"),
        &[
            "date,cups".into(),
            format!("{},2", day(0)),
            format!("{},lots", day(0)),
            format!("{},4", day(0)),
        ],
    );
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.value("coffees", &day(0)), Some(json!(6)));
}

// ---------------------------------------------------------------------------------------------
// 3. A schedule that never fires is a configuration error, not a panic.

#[test]
fn a_schedule_that_never_fires_is_a_configuration_error() {
    let world = World::new("");
    world.write_config(&coffee_config(&world, ""));
    let text = std::fs::read_to_string(&world.config_path).unwrap();
    std::fs::write(
        &world.config_path,
        text.replace("[agent]\n", "[agent]\nschedule = \"0 0 30 2 *\"\n"),
    )
    .unwrap();
    for command in ["status", "doctor"] {
        world
            .cmd()
            .arg(command)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "{}:8: key `agent.schedule`",
                world.config_path.display()
            )))
            .stderr(predicate::str::contains("never fires"))
            .stderr(predicate::str::contains("fix:"));
    }
}

// ---------------------------------------------------------------------------------------------
// 4. One failing source never holds back another.

#[test]
fn a_missing_file_fails_its_own_source_and_the_others_sync_on_schedule() {
    let world = World::new("");
    write_lines(
        &world.path("tea.csv"),
        &["date,cups".into(), format!("{},1", day(0))],
    );
    world.write_config(&format!(
        "{}\n[[source]]\nname = \"tea\"\nkind = \"file\"\npath = \"{}\"\ndate_field = \"date\"\n\n[[attribute]]\nlabel = \"Teas\"\ngroup = \"food\"\nvalue_type = \"integer\"\nsource = \"tea\"\nfield = \"cups\"\naggregate = \"sum\"\n",
        coffee_config(&world, ""),
        world.path("tea.csv").display()
    ));
    world.login_with(&["food_write"]);
    // The one-off run: the broken source is named, the healthy one lands.
    world
        .cmd()
        .args(["run", "--once"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("source \"coffee\""))
        .stderr(predicate::str::contains("coffee.csv"));
    assert_eq!(world.value("teas", &day(0)), Some(json!(1)));
    let status = status_json(&world);
    let coffee = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "coffee")
        .unwrap()
        .clone();
    assert!(coffee["last_error"]
        .as_str()
        .unwrap()
        .contains("coffee.csv"));
    // The daemon: every two seconds; the healthy source keeps its schedule.
    let text = std::fs::read_to_string(&world.config_path).unwrap();
    std::fs::write(
        &world.config_path,
        text.replace("[agent]\n", "[agent]\nschedule = \"*/2 * * * * *\"\n"),
    )
    .unwrap();
    let mut daemon = Daemon(
        world
            .std_cmd()
            .arg("run")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for cups in 2..=3 {
        write_lines(
            &world.path("tea.csv"),
            &["date,cups".into(), format!("{},{cups}", day(0))],
        );
        wait_until(
            &format!("teas = {cups} on the next ticks"),
            Duration::from_secs(10),
            || world.value("teas", &day(0)) == Some(json!(cups)),
        );
    }
    terminate(&daemon.0);
    assert!(daemon.0.wait().unwrap().success());
}

// ---------------------------------------------------------------------------------------------
// 5. A full disk during a pull is a temporary failure, like everywhere else.

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_during_a_pull_exits_75_and_the_next_run_completes() {
    use exist_fakes::health::HealthSandbox;
    if !is_root() {
        eprintln!("note: not root; the full-disk test needs a small tmpfs mount");
        return;
    }
    let world = World::new("");
    std::fs::create_dir_all(&world.state_dir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&world.state_dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("note: cannot mount a tmpfs here; skipping");
        return;
    }
    let api = world
        .rt
        .block_on(HealthSandbox::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let note = "x".repeat(20_000);
    for i in 0..200 {
        api.upsert(json!({"id": format!("r{i}"), "startTime": Utc::now().to_rfc3339(), "steps": 1, "note": note}));
    }
    world.write_config(&format!(
        "{}\n[[attribute]]\ntemplate = \"steps\"\nsource = \"health\"\nfield = \"steps\"\naggregate = \"sum\"\n",
        http_source("health", api.url().as_str(), "")
    ));
    world.login_with(&["activity_write"]);
    let out = world.cmd().args(["run", "--once"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let remounted = std::process::Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&world.state_dir)
        .status()
        .unwrap()
        .success();
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("free disk space"), "{stderr}");
    assert!(remounted);
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.value("steps", &day(0)), Some(json!(200)));
    let _ = std::process::Command::new("umount")
        .arg(&world.state_dir)
        .status();
}

#[cfg(target_os = "linux")]
fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// 6. Every pull is bounded, and SIGTERM is prompt whatever a source does.

#[derive(serde::Deserialize)]
struct PageQuery {
    #[serde(default)]
    page: u64,
}

/// A source whose every page links to one more, forever; `filled` pages hold a record each.
fn endless(world: &World, filled: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route(
            "/items",
            axum::routing::get(
                move |State((hits, filled)): State<(Arc<AtomicUsize>, bool)>,
                      Query(q): Query<PageQuery>,
                      headers: HeaderMap| async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let host = headers
                        .get("host")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("127.0.0.1")
                        .to_owned();
                    let link = format!("<http://{host}/items?page={}>; rel=\"next\"", q.page + 1);
                    let body = if filled {
                        json!([{"id": format!("p{}", q.page), "startTime": Utc::now().to_rfc3339(), "updatedAt": Utc::now().to_rfc3339(), "steps": 1}])
                    } else {
                        json!([])
                    };
                    ([("link", link)], axum::Json(body))
                },
            ),
        )
        .with_state((hits.clone(), filled));
    (serve(world, app), hits)
}

#[test]
fn a_source_that_pages_forever_is_stopped_named_and_the_others_still_sync() {
    let world = World::new("");
    write_lines(
        &world.path("coffee.csv"),
        &["date,cups".into(), format!("{},2", day(0))],
    );
    let (empty, empty_hits) = endless(&world, false);
    let (full, full_hits) = endless(&world, true);
    world.write_config(&format!(
        "{}\n{}\n{}\n[[attribute]]\ntemplate = \"steps\"\nsource = \"empty\"\nfield = \"steps\"\naggregate = \"sum\"\n\n[[attribute]]\ntemplate = \"floors\"\nsource = \"full\"\nfield = \"steps\"\naggregate = \"sum\"\n",
        coffee_config(&world, ""),
        http_source("empty", &format!("http://{empty}/items"), ""),
        http_source("full", &format!("http://{full}/items"), "max_pages = 5"),
    ));
    world.login_with(&["food_write", "activity_write"]);
    let started = Instant::now();
    world
        .cmd()
        .args(["run", "--once"])
        .timeout(Duration::from_secs(60))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("source \"empty\""))
        .stderr(predicate::str::contains("empty pages"))
        .stderr(predicate::str::contains("source \"full\""))
        .stderr(predicate::str::contains("5 pages"));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(empty_hits.load(Ordering::SeqCst) <= 10, "stopped early");
    assert_eq!(
        full_hits.load(Ordering::SeqCst),
        5,
        "max_pages pages, no more"
    );
    assert_eq!(
        world.value("coffees", &day(0)),
        Some(json!(2)),
        "the healthy source synced"
    );
}

#[test]
fn sigterm_stops_the_daemon_promptly_while_a_source_hangs() {
    let world = World::new("");
    let hits = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route(
            "/items",
            axum::routing::get(|State(hits): State<Arc<AtomicUsize>>| async move {
                hits.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(3600)).await;
                StatusCode::OK
            }),
        )
        .with_state(hits.clone());
    let addr = serve(&world, app);
    world.write_config(&format!(
        "{}\n[[attribute]]\ntemplate = \"steps\"\nsource = \"slow\"\nfield = \"steps\"\naggregate = \"sum\"\n",
        http_source("slow", &format!("http://{addr}/items"), "")
    ));
    world.login_with(&["activity_write"]);
    let mut daemon = Daemon(
        world
            .std_cmd()
            .arg("run")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the source is asked", Duration::from_secs(20), || {
        hits.load(Ordering::SeqCst) > 0
    });
    let asked = Instant::now();
    terminate(&daemon.0);
    let status = daemon.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "stopped in {:?}",
        asked.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Windows stay inside the source's limit whatever the clock skew; Retry-After outlives a run.

#[derive(serde::Deserialize)]
struct WindowQuery {
    updated_since: String,
    updated_before: Option<String>,
}

#[test]
fn the_first_pull_of_a_source_whose_clock_runs_ahead_succeeds() {
    let world = World::new("");
    let app = axum::Router::new().route(
        "/items",
        axum::routing::get(|Query(q): Query<WindowQuery>| async move {
            // The source's clock is 10 s ahead of this machine's; it refuses windows longer
            // than 31 days by its own clock.
            let parse = |t: &str| {
                chrono::NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%SZ")
                    .map(|t| t.and_utc())
                    .ok()
            };
            let now = Utc::now() + chrono::Duration::seconds(10);
            let since = parse(&q.updated_since);
            let before = q.updated_before.as_deref().map(parse);
            let end = match before {
                Some(Some(b)) => b,
                Some(None) => return (StatusCode::BAD_REQUEST, "bad updated_before").into_response(),
                None => now,
            };
            match since {
                Some(s) if end - s <= chrono::Duration::days(31) => {
                    axum::Json(json!([{"id": "a", "startTime": Utc::now().to_rfc3339(), "updatedAt": Utc::now().to_rfc3339(), "steps": 7}])).into_response()
                }
                _ => (StatusCode::BAD_REQUEST, "the window spans more than 31 days").into_response(),
            }
        }),
    );
    let addr = serve(&world, app);
    world.write_config(&format!(
        "{}\n[[attribute]]\ntemplate = \"steps\"\nsource = \"ahead\"\nfield = \"steps\"\naggregate = \"sum\"\n",
        http_source("ahead", &format!("http://{addr}/items"), "")
    ));
    world.login_with(&["activity_write"]);
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.value("steps", &day(0)), Some(json!(7)));
}

#[test]
fn a_long_retry_after_is_kept_across_runs() {
    let world = World::new("");
    let hits = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route(
            "/items",
            axum::routing::get(|State(hits): State<Arc<AtomicUsize>>| async move {
                hits.fetch_add(1, Ordering::SeqCst);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "3600")],
                    "slow down",
                )
            }),
        )
        .with_state(hits.clone());
    let addr = serve(&world, app);
    world.write_config(&format!(
        "{}\n[[attribute]]\ntemplate = \"steps\"\nsource = \"busy\"\nfield = \"steps\"\naggregate = \"sum\"\n",
        http_source("busy", &format!("http://{addr}/items"), "")
    ));
    world.login_with(&["activity_write"]);
    world
        .cmd()
        .args(["run", "--once"])
        .assert()
        .code(75)
        .stderr(predicate::str::contains("source \"busy\": rate limited"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the next run waits as the source asked"
    );
    let status = status_json(&world);
    let busy = &status["sources"][0];
    assert!(
        busy["waiting_until"].as_str().is_some(),
        "status shows the wait: {busy}"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. `push` keeps its value durably when another run holds the lock.

#[test]
fn push_stores_its_value_first_when_another_run_holds_the_lock() {
    let world = World::new("");
    write_lines(
        &world.path("coffee.csv"),
        &["date,cups".into(), format!("{},2", day(0))],
    );
    world.write_config(&coffee_config(&world, ""));
    world.login_with(&["food_write"]);
    world.cmd().args(["run", "--once"]).assert().success();
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(world.state_dir.join("run.lock"))
        .unwrap();
    lock.lock().unwrap();
    world
        .cmd()
        .env("EXIST_AGENT_LOCK_WAIT", "1s")
        .args(["push", "coffees", "4", "--date", &day(10)])
        .assert()
        .code(75)
        .stderr(predicate::str::contains("kept"));
    drop(lock);
    assert_eq!(status_json(&world)["pending"][0]["value"], json!(4));
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.value("coffees", &day(10)), Some(json!(4)));
}

// ---------------------------------------------------------------------------------------------
// 9. `doctor` checks every secret the config names and counts its own requests.

#[test]
fn doctor_fails_when_a_secret_the_config_names_is_missing_and_counts_its_requests() {
    let world = World::new("");
    write_lines(
        &world.path("coffee.csv"),
        &["date,cups".into(), format!("{},2", day(0))],
    );
    world.write_config(&coffee_config(&world, ""));
    let text = std::fs::read_to_string(&world.config_path).unwrap();
    std::fs::write(
        &world.config_path,
        text.replace(
            "client_secret = \"sandbox-secret\"",
            "client_secret_env = \"EXIST_AGENT_TEST_UNSET_SECRET\"",
        ),
    )
    .unwrap();
    world.login_with(&["food_write"]);
    world
        .cmd()
        .env_remove("EXIST_AGENT_TEST_UNSET_SECRET")
        .arg("doctor")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("EXIST_AGENT_TEST_UNSET_SECRET"));
    let seen = world.count("/api/2/");
    assert!(seen > 0);
    assert_eq!(
        status_json(&world)["requests_this_hour"],
        json!(seen),
        "doctor's own requests count in the hour's budget"
    );
}

// ---------------------------------------------------------------------------------------------
// 10. Without a configuration, the message says where it goes and what to do next.

#[test]
fn without_a_configuration_the_message_says_where_and_what_next() {
    let home = tempfile::tempdir().unwrap();
    let expected = home
        .path()
        .join("xdg")
        .join("exist-agent")
        .join("config.toml");
    for command in ["status", "doctor"] {
        assert_cmd::Command::cargo_bin("exist-agent")
            .unwrap()
            .env_remove("EXIST_AGENT_CONFIG")
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("xdg"))
            .arg(command)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(expected.display().to_string()))
            .stderr(predicate::str::contains("config.example.toml"))
            .stderr(predicate::str::contains("then run `exist-agent doctor`"));
    }
}

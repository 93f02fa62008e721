//! Being told when something is wrong: `on_failure` runs once per failure episode (and once when
//! it ends), temporary failures wait for `alert_after`, `ping_url` hears success and `/fail`, and
//! a source with `stale_after` is reported by `status`, `doctor` and `on_failure`; for `--once`
//! runs and the daemon alike.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{free_port, today_utc, write_lines, World};

/// A world with one file source `coffee` feeding `coffees`, and `agent` lines added to
/// `[agent]`. The file is written with `lines`, or absent when there are none.
fn world_with(agent: &str, lines: &[String], source_extra: &str) -> World {
    let world = World::new("");
    if !lines.is_empty() {
        write_lines(&world.path("coffee.csv"), lines);
    }
    world.write_config(&format!(
        "[[source]]\nname = \"coffee\"\nkind = \"file\"\npath = \"{}\"\ndate_field = \"date\"\n{source_extra}\n[[attribute]]\ntemplate = \"coffees\"\nsource = \"coffee\"\naggregate = \"count\"\n",
        world.path("coffee.csv").display()
    ));
    let text = std::fs::read_to_string(&world.config_path).unwrap();
    std::fs::write(
        &world.config_path,
        text.replacen("[agent]\n", &format!("[agent]\n{agent}\n"), 1),
    )
    .unwrap();
    world.login_with(&["food_write"]);
    world
}

/// An `on_failure` that appends `{exit_code} {source}` as one line to `log`, and the message to
/// `log.messages`.
fn logging_alert(log: &std::path::Path) -> String {
    format!(
        "on_failure = [\"sh\", \"-c\", \"printf '%s %s\\\\n' \\\"$1\\\" \\\"$2\\\" >> '{log}'; printf '%s\\\\n---\\\\n' \\\"$3\\\" >> '{log}.messages'\", \"alert\", \"{{exit_code}}\", \"{{source}}\", \"{{message}}\"]",
        log = log.display()
    )
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn coffee_lines() -> Vec<String> {
    vec!["date,kind".into(), format!("{},espresso", today_utc())]
}

fn run_once(world: &World) -> i32 {
    let out = world.cmd().args(["run", "--once"]).output().unwrap();
    out.status.code().unwrap()
}

#[test]
fn a_failing_run_alerts_once_per_episode_and_once_when_it_ends() {
    let log = tempfile::tempdir().unwrap();
    let log = log.path().join("alerts.log");
    let world = world_with(&logging_alert(&log), &[], "");
    // The file is missing: every run fails (exit 1), the episode alerts once.
    for _ in 0..3 {
        assert_eq!(run_once(&world), 1);
    }
    assert_eq!(lines(&log), ["1 coffee"]);
    let messages = std::fs::read_to_string(format!("{}.messages", log.display())).unwrap();
    assert!(messages.contains("coffee.csv"), "{messages}");
    // It comes back: said once.
    write_lines(&world.path("coffee.csv"), &coffee_lines());
    assert_eq!(run_once(&world), 0);
    assert_eq!(run_once(&world), 0);
    assert_eq!(lines(&log), ["1 coffee", "0 "]);
    let messages = std::fs::read_to_string(format!("{}.messages", log.display())).unwrap();
    assert!(messages.contains("works again"), "{messages}");
    // A new episode alerts again; a dry run changes nothing.
    std::fs::remove_file(world.path("coffee.csv")).unwrap();
    let dry = world
        .cmd()
        .args(["run", "--once", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(dry.status.code(), Some(1));
    assert_eq!(lines(&log).len(), 2, "a dry run alerts nobody");
    assert_eq!(run_once(&world), 1);
    assert_eq!(run_once(&world), 1);
    assert_eq!(lines(&log), ["1 coffee", "0 ", "1 coffee"]);
}

#[test]
fn temporary_failures_alert_once_they_have_lasted_alert_after() {
    let log = tempfile::tempdir().unwrap();
    let log = log.path().join("alerts.log");
    let world = world_with(
        &format!("{}\nalert_after = \"2s\"", logging_alert(&log)),
        &coffee_lines(),
        "",
    );
    let good = std::fs::read_to_string(&world.config_path).unwrap();
    // Exist unreachable: a temporary failure (exit 75).
    let dead = format!("http://127.0.0.1:{}/", free_port());
    let broken = good.replace(&world.sandbox.base_url().to_string(), &dead);
    assert_ne!(good, broken);
    std::fs::write(&world.config_path, &broken).unwrap();
    assert_eq!(run_once(&world), 75);
    assert_eq!(run_once(&world), 75);
    assert!(lines(&log).is_empty(), "not yet: it may go away by itself");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(run_once(&world), 75);
    assert_eq!(run_once(&world), 75);
    assert_eq!(lines(&log), ["75 "]);
    let messages = std::fs::read_to_string(format!("{}.messages", log.display())).unwrap();
    assert!(messages.contains("runs have failed for"), "{messages}");
    std::fs::write(&world.config_path, &good).unwrap();
    assert_eq!(run_once(&world), 0);
    assert_eq!(lines(&log), ["75 ", "0 "]);
}

/// A loopback server that records the paths it is asked for.
fn ping_server(rt: &tokio::runtime::Runtime) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let record = Arc::clone(&record);
        async move {
            record.lock().unwrap().push(uri.path().to_owned());
            "OK"
        }
    });
    rt.spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/ping/3f1c"), seen)
}

#[test]
fn the_ping_url_hears_success_and_failure() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, seen) = ping_server(&rt);
    let world = world_with(&format!("ping_url = \"{url}\""), &coffee_lines(), "");
    assert_eq!(run_once(&world), 0);
    std::fs::remove_file(world.path("coffee.csv")).unwrap();
    assert_eq!(run_once(&world), 1);
    assert_eq!(run_once(&world), 1);
    write_lines(&world.path("coffee.csv"), &coffee_lines());
    assert_eq!(run_once(&world), 0);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "/ping/3f1c",
            "/ping/3f1c/fail",
            "/ping/3f1c/fail",
            "/ping/3f1c"
        ]
    );
}

#[test]
fn a_stale_source_is_reported_by_status_doctor_and_on_failure() {
    let log = tempfile::tempdir().unwrap();
    let log = log.path().join("alerts.log");
    let old = today_utc() - chrono::Duration::days(10);
    let world = world_with(
        &logging_alert(&log),
        &["date,kind".into(), format!("{old},espresso")],
        "stale_after = \"3d\"\n",
    );
    assert_eq!(run_once(&world), 0, "staleness is not a failed run");
    assert_eq!(run_once(&world), 0);
    assert_eq!(lines(&log), ["0 coffee"], "alerted once");
    let messages = std::fs::read_to_string(format!("{}.messages", log.display())).unwrap();
    assert!(
        messages.contains(&format!("newest record is from {old}")),
        "{messages}"
    );

    let status = world.cmd().arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&format!("STALE: newest record from {old}")),
        "{text}"
    );
    let json = world.cmd().args(["status", "--json"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["sources"][0]["stale"], true);
    assert_eq!(json["sources"][0]["newest_record_day"], old.to_string());
    let doctor = world.cmd().args(["doctor", "--json"]).output().unwrap();
    assert!(!doctor.status.success());
    let doctor: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let fresh = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "fresh coffee")
        .expect("a freshness check")
        .clone();
    assert_eq!(fresh["ok"], false);

    // A new record: fresh again, said once.
    write_lines(&world.path("coffee.csv"), &coffee_lines());
    assert_eq!(run_once(&world), 0);
    assert_eq!(run_once(&world), 0);
    assert_eq!(lines(&log), ["0 coffee", "0 coffee"]);
    let messages = std::fs::read_to_string(format!("{}.messages", log.display())).unwrap();
    assert!(messages.contains("new records again"), "{messages}");
}

#[test]
fn the_daemon_alerts_once_too() {
    let log = tempfile::tempdir().unwrap();
    let log = log.path().join("alerts.log");
    let world = world_with(&logging_alert(&log), &[], "");
    let mut daemon = world
        .std_cmd()
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while lines(&log).is_empty() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(lines(&log), ["1 coffee"], "the daemon's first run alerted");
    // A `--once` run in the same episode adds nothing.
    assert_eq!(run_once(&world), 1);
    let stopped = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !stopped {
        let _ = daemon.kill();
    }
    let _ = daemon.wait();
    assert_eq!(lines(&log), ["1 coffee"]);
}

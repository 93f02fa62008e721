//! Living on a machine for years: the daemon stops cleanly mid-sync, signed notifications
//! trigger a sync, the service files are generated and installed, and `doctor` reports what is
//! broken.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{write_lines, World};
use predicates::prelude::*;

/// A CSV with `days` days ending today, `cups` a day, and a config pushing their sum.
fn coffee_world(days: i64, extra_agent: &str) -> World {
    let world = World::new("");
    write_coffee(&world, days, 1);
    let config = format!(
        "[[source]]\nname = \"coffee\"\nkind = \"file\"\npath = \"{}\"\ndate_field = \"date\"\n\n[[attribute]]\ntemplate = \"coffees\"\nsource = \"coffee\"\nfield = \"cups\"\naggregate = \"sum\"\n",
        world.path("coffee.csv").display()
    );
    world.write_config(&config);
    if !extra_agent.is_empty() {
        let text = std::fs::read_to_string(&world.config_path).unwrap();
        std::fs::write(
            &world.config_path,
            text.replace("[agent]\n", &format!("[agent]\n{extra_agent}\n")),
        )
        .unwrap();
    }
    world.login_with(&["food_write"]);
    world
}

fn write_coffee(world: &World, days: i64, cups: i64) {
    let today = crate::common::today_utc();
    let mut lines = vec!["date,cups".to_owned()];
    for d in 0..days {
        lines.push(format!("{},{cups}", today - chrono::Duration::days(d)));
    }
    write_lines(&world.path("coffee.csv"), &lines);
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn terminate(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn pending(world: &World) -> usize {
    let out = world.cmd().args(["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    status["pending"].as_array().unwrap().len()
}

#[test]
fn sigterm_mid_sync_finishes_the_batch_in_flight_and_loses_nothing() {
    let world = coffee_world(3000, "");
    let mut daemon = world
        .std_cmd()
        .arg("run")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The daemon has never run: it catches up at once.
    wait_until("the first update calls", Duration::from_secs(30), || {
        world.count("/api/2/attributes/update/") >= 3
    });
    terminate(&daemon);
    let status = daemon.wait().unwrap();
    assert!(status.success(), "exit 0 after SIGTERM, got {status:?}");
    let landed = world.sandbox.values().len();
    let left = pending(&world);
    assert!(left > 0, "stopped before the end ({landed} landed)");
    assert_eq!(
        landed + left,
        3000,
        "every value either landed or waits in the outbox"
    );
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.sandbox.values().len(), 3000);
    assert_eq!(pending(&world), 0);
}

#[test]
fn a_signed_notification_triggers_a_sync_and_an_unsigned_one_is_refused() {
    let port = crate::common::free_port();
    let world = coffee_world(
        2,
        &format!("listen = \"127.0.0.1:{port}\"\nnotify_secret = \"shared-secret\""),
    );
    let mut daemon = world
        .std_cmd()
        .arg("run")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(daemon.stderr.take().unwrap());
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        stderr
            .lines()
            .map_while(Result::ok)
            .for_each(|l| drop(lines_tx.send(l)))
    });
    let wait_for = |needle: &str| loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("daemon output");
        if line.contains(needle) {
            return;
        }
    };
    wait_for("accepting signed notifications");
    wait_for("sync finished");
    let updates = world.count("/api/2/attributes/update/");
    assert_eq!(
        world.value("coffees", &crate::common::today_utc().to_string()),
        Some(1.into())
    );

    write_coffee(&world, 2, 4);
    let url = format!("http://127.0.0.1:{port}/notify");
    let body = br#"{"source": "coffee"}"#.to_vec();
    let client = reqwest::Client::new();
    let unsigned = world
        .rt
        .block_on(client.post(&url).body(body.clone()).send())
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let secret = exist_api::secret::Secret::new("shared-secret");
    let signed = world
        .rt
        .block_on(
            client
                .post(&url)
                .header(
                    exist_agent::SIGNATURE_HEADER,
                    exist_agent::sign_notification(&secret, &body),
                )
                .body(body)
                .send(),
        )
        .unwrap();
    assert_eq!(signed.status(), 202);
    wait_for("sync finished");
    assert_eq!(world.count("/api/2/attributes/update/"), updates + 1);
    assert_eq!(
        world.value("coffees", &crate::common::today_utc().to_string()),
        Some(4.into())
    );
    terminate(&daemon);
    assert!(daemon.wait().unwrap().success());
}

/// A fake `systemctl` that records its arguments, first on PATH.
fn fake_systemctl(world: &World) -> (std::path::PathBuf, std::path::PathBuf) {
    let bin = world.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = world.path("systemctl.log");
    let script = bin.join("systemctl");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (path.into(), log)
}

#[cfg(target_os = "linux")]
#[test]
fn service_install_writes_enables_and_uninstall_removes_the_units() {
    let world = coffee_world(1, "");
    let home = world.path("xdg");
    let units = home.join("systemd/user");
    let (path, log) = fake_systemctl(&world);

    world
        .cmd()
        .env("XDG_CONFIG_HOME", &home)
        .env("PATH", &path)
        .args(["service", "install", "--print"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("Type=oneshot")
                .and(predicate::str::contains(format!(
                    "{} run --once",
                    world.config_path.display()
                )))
                .and(predicate::str::contains("Persistent=true")),
        );
    assert!(!units.exists(), "--print writes nothing");
    assert!(!log.exists(), "--print runs nothing");

    world
        .cmd()
        .env("XDG_CONFIG_HOME", &home)
        .env("PATH", &path)
        .args(["service", "install"])
        .assert()
        .success();
    let service = std::fs::read_to_string(units.join("exist-agent.service")).unwrap();
    let binary = assert_cmd::cargo::cargo_bin("exist-agent");
    assert!(
        service.contains(&binary.display().to_string()),
        "absolute binary path: {service}"
    );
    assert!(
        service.contains(&world.config_path.display().to_string()),
        "config path: {service}"
    );
    let timer = std::fs::read_to_string(units.join("exist-agent.timer")).unwrap();
    let minute = exist_agent::config::Config::load(&world.config_path)
        .unwrap()
        .agent
        .schedule
        .install_minute();
    assert!(
        timer.contains(&format!("OnCalendar=*-*-* *:{minute:02}:00")),
        "hourly at the install's minute: {timer}"
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.contains("--user daemon-reload")
            && calls.contains("--user enable --now exist-agent.timer"),
        "{calls}"
    );

    world
        .cmd()
        .env("XDG_CONFIG_HOME", &home)
        .env("PATH", &path)
        .args(["service", "uninstall"])
        .assert()
        .success();
    assert!(
        !units.join("exist-agent.service").exists() && !units.join("exist-agent.timer").exists()
    );
}

#[test]
fn doctor_reports_each_broken_item_with_a_fix() {
    let world = World::new("");
    world.write_config(
        "[[source]]\nname = \"health\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/v1/human/activities\"\ntoken_env = \"EXIST_AGENT_TEST_UNSET_TOKEN\"\ndate_field = \"startTime\"\n\n[[source]]\nname = \"coffee\"\nkind = \"file\"\npath = \"/nonexistent/coffee.csv\"\ndate_field = \"date\"\n\n[[source]]\nname = \"commits\"\nkind = \"command\"\ncommand = [\"no-such-program-exist-agent\"]\ndate_field = \"date\"\n\n[[attribute]]\ntemplate = \"steps\"\nsource = \"health\"\nfield = \"steps\"\naggregate = \"sum\"\n",
    );
    let out = world
        .cmd()
        .env_remove("EXIST_AGENT_TEST_UNSET_TOKEN")
        .arg("doctor")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "ok    config",
        "ok    state directory",
        "FAIL  token              none stored",
        "FAIL  source health      the environment variable EXIST_AGENT_TEST_UNSET_TOKEN is not set",
        "FAIL  source coffee      cannot read /nonexistent/coffee.csv",
        "FAIL  source commits     `no-such-program-exist-agent` is not found on PATH",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(text.matches("fix: ").count() >= 4, "{text}");
}

#[test]
fn doctor_passes_a_healthy_setup_and_catches_missing_scopes() {
    let world = coffee_world(1, "");
    world
        .cmd()
        .arg("doctor")
        .assert()
        .success()
        .stdout(predicate::str::contains("all").and(predicate::str::contains("checks passed")));
    world.login_with(&["activity_write"]);
    world.cmd().arg("doctor").assert().code(1).stdout(
        predicate::str::contains("FAIL  scopes").and(predicate::str::contains("food_write")),
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            world.state_dir.join("tokens.json"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        world
            .cmd()
            .arg("doctor")
            .assert()
            .code(1)
            .stdout(predicate::str::contains("FAIL  token file"));
    }
}

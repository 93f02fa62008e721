//! Proof under pressure: the binary against the sandboxes with faults injected at every step.
//! Each test ends with the values Exist holds and an empty outbox.
//!
//! `kill -9` runs 5 seeds by default; set `EXIST_AGENT_LONG_TESTS=1` for all 20.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::World;
use exist_fakes::exist::{Fault, SandboxOptions};
use exist_fakes::health::HealthSandbox;
use predicates::prelude::*;
use serde_json::json;

/// A world with an HTTP source of `records` step records over `days` UTC days (small pages, so
/// a pull takes many requests) feeding `steps`; returns the expected day totals.
fn steps_world(
    options: SandboxOptions,
    records: usize,
    days: i64,
) -> (World, HealthSandbox, BTreeMap<String, i64>) {
    let world = World::with_options(options, "");
    let api = world
        .rt
        .block_on(HealthSandbox::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let today = crate::common::today_utc();
    let mut expected = BTreeMap::new();
    for i in 0..records {
        let day = today - chrono::Duration::days(i as i64 % days);
        let steps = (i as i64 * 37) % 1000 + 1;
        api.upsert(
            json!({"id": format!("r{i}"), "startTime": format!("{day}T12:00:00Z"), "steps": steps}),
        );
        *expected.entry(day.to_string()).or_insert(0) += steps;
    }
    world.write_config(&format!(
        "[[source]]\nname = \"health\"\nkind = \"http\"\nurl = \"{}\"\ndate_field = \"startTime\"\npage_limit = 25\n\n[[attribute]]\ntemplate = \"steps\"\nsource = \"health\"\nfield = \"steps\"\naggregate = \"sum\"\n",
        api.url()
    ));
    world.login_with(&["activity_write"]);
    (world, api, expected)
}

/// Exist holds exactly `expected` for `steps`, and nothing is pending.
fn assert_final(world: &World, expected: &BTreeMap<String, i64>) {
    let held: BTreeMap<String, i64> = world
        .sandbox
        .values()
        .into_iter()
        .filter(|((a, _), _)| a == "steps")
        .map(|((_, d), v)| (d, v.as_i64().unwrap()))
        .collect();
    assert_eq!(&held, expected, "Exist holds exactly the expected values");
    let out = world.cmd().args(["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        status["pending"].as_array().unwrap().len(),
        0,
        "the outbox ends empty"
    );
    assert_eq!(status["rejected"].as_array().unwrap().len(), 0);
}

fn requests_seen(world: &World, api: &HealthSandbox) -> usize {
    world.sandbox.requests().len() + api.requests().len()
}

/// A small deterministic generator, so a failing seed can be replayed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn kill_9_at_random_points_then_a_clean_run_leaves_exactly_the_expected_values() {
    let seeds: u64 = if std::env::var_os("EXIST_AGENT_LONG_TESTS").is_some() {
        20
    } else {
        5
    };
    for seed in 1..=seeds {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let (world, api, expected) = steps_world(SandboxOptions::default(), 1500, 400);
        // profile + acquire + 60 pages + 12 update calls: kill after any of the first ~70 requests.
        let kill_after = (next(&mut rng) % 70) as usize + 1;
        let mut child = world
            .std_cmd()
            .args(["run", "--once"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while requests_seen(&world, &api) < kill_after && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = child.kill();
        child.wait().unwrap();
        let output = world.cmd().args(["run", "--once"]).output().unwrap();
        assert!(
            output.status.success(),
            "seed {seed} (killed after {kill_after} requests): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_final(&world, &expected);
    }
}

#[test]
fn server_errors_on_each_exist_endpoint_keep_data_for_the_next_run() {
    for endpoint in [
        "/api/2/accounts/profile/",
        "/api/2/attributes/acquire/",
        "/api/2/attributes/update/",
    ] {
        let (world, _api, expected) = steps_world(SandboxOptions::default(), 50, 10);
        // As many failures as one run's tries: this run gives up, the next one succeeds.
        world.sandbox.inject(Fault::Status {
            status: 502,
            count: 3,
            path_prefix: Some(endpoint.into()),
        });
        world
            .cmd()
            .args(["run", "--once"])
            .assert()
            .code(75)
            .stderr(
                predicate::str::contains("could not be reached")
                    .or(predicate::str::contains("could not reach")),
            );
        world.cmd().args(["run", "--once"]).assert().success();
        assert_final(&world, &expected);
    }
}

#[test]
fn dropped_connections_on_each_exist_endpoint_are_retried() {
    for endpoint in [
        "/api/2/accounts/profile/",
        "/api/2/attributes/acquire/",
        "/api/2/attributes/update/",
    ] {
        let (world, _api, expected) = steps_world(SandboxOptions::default(), 50, 10);
        world.sandbox.inject(Fault::Drop {
            count: 2,
            path_prefix: Some(endpoint.into()),
        });
        world.cmd().args(["run", "--once"]).assert().success();
        assert_final(&world, &expected);
    }
}

#[test]
fn a_failing_token_endpoint_keeps_the_old_pair_and_the_next_run_refreshes() {
    let (world, _api, expected) = steps_world(SandboxOptions::default(), 20, 5);
    let store = world.token_store();
    let mut pair = store.load().unwrap().unwrap();
    pair.expires_at = Some(chrono::Utc::now() + chrono::Duration::hours(2));
    store.save(&pair).unwrap();
    world.sandbox.inject(Fault::Drop {
        count: 1,
        path_prefix: Some("/oauth2/access_token".into()),
    });
    world
        .cmd()
        .args(["run", "--once"])
        .assert()
        .code(75)
        .stderr(predicate::str::contains("tokens are unchanged"));
    assert_eq!(
        store.load().unwrap().unwrap().access_token,
        pair.access_token
    );
    world.cmd().args(["run", "--once"]).assert().success();
    assert_final(&world, &expected);
}

#[test]
fn errors_at_the_source_keep_the_cursor_and_the_next_run_completes() {
    let (world, api, expected) = steps_world(SandboxOptions::default(), 200, 20);
    // As many failures as one pull's tries: this run gives up, the next one succeeds.
    api.inject_error(3, 503);
    world
        .cmd()
        .args(["run", "--once"])
        .assert()
        .code(75)
        .stderr(predicate::str::contains("source \"health\""));
    world.cmd().args(["run", "--once"]).assert().success();
    assert_final(&world, &expected);
}

#[test]
fn a_429_in_the_middle_of_a_backfill_pauses_and_the_next_hour_completes_it() {
    // 365 days: 11 update calls; the sandbox allows 8 requests an hour.
    let world = World::with_options(
        SandboxOptions {
            rate_limit: 8,
            ..SandboxOptions::default()
        },
        "",
    );
    let today = crate::common::today_utc();
    let mut lines = vec!["date,cups".to_owned()];
    let mut expected = BTreeMap::new();
    for d in 0..365 {
        let day = today - chrono::Duration::days(d);
        lines.push(format!("{day},{}", d % 5 + 1));
        expected.insert(day.to_string(), d % 5 + 1);
    }
    crate::common::write_lines(&world.path("coffee.csv"), &lines);
    world.write_config(&format!(
        "[[source]]\nname = \"coffee\"\nkind = \"file\"\npath = \"{}\"\ndate_field = \"date\"\n\n[[attribute]]\ntemplate = \"steps\"\nsource = \"coffee\"\nfield = \"cups\"\naggregate = \"sum\"\n",
        world.path("coffee.csv").display()
    ));
    world.login_with(&["activity_write"]);
    let from = (today - chrono::Duration::days(364)).to_string();
    world
        .cmd()
        .args(["backfill", "--from", &from])
        .assert()
        .code(75)
        .stderr(predicate::str::contains("backfill paused"));
    let landed = world.sandbox.values().len();
    assert!(landed > 0 && landed < 365, "paused midway ({landed})");
    world.sandbox.next_hour();
    let db = rusqlite::Connection::open(world.state_dir.join("state.db")).unwrap();
    db.execute("DELETE FROM rate_budget", []).unwrap();
    world
        .cmd()
        .args(["backfill", "--from", &from])
        .assert()
        .success();
    assert_final(&world, &expected);
}

#[test]
fn a_token_expiring_mid_run_is_refreshed_once_and_the_run_completes() {
    let (world, _api, expected) = steps_world(SandboxOptions::default(), 1200, 400);
    let child = world
        .std_cmd()
        .args(["run", "--once"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while world.count("/api/2/attributes/update/") < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
    world.sandbox.expire_access_tokens();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(world.count("/oauth2/access_token"), 1);
    assert_final(&world, &expected);
}

#[test]
fn an_attribute_taken_mid_run_is_reacquired_and_everything_lands() {
    let (world, _api, expected) = steps_world(SandboxOptions::default(), 1200, 400);
    let mut child = world
        .std_cmd()
        .args(["run", "--once"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while world.count("/api/2/attributes/update/") < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
    world.sandbox.give_to_other_service("steps");
    assert!(child.wait().unwrap().success());
    assert_eq!(world.count("/api/2/attributes/acquire/"), 2);
    assert_final(&world, &expected);
}

#[test]
fn a_revoked_token_keeps_everything_pending_until_login() {
    let (world, api, mut expected) = steps_world(SandboxOptions::default(), 50, 10);
    world.cmd().args(["run", "--once"]).assert().success();
    world.sandbox.revoke_tokens();
    // A run with nothing to send asks nothing of Exist; new data makes it write.
    let today = crate::common::today_utc().to_string();
    api.upsert(json!({"id": "new", "startTime": format!("{today}T15:00:00Z"), "steps": 5}));
    *expected.get_mut(&today).unwrap() += 5;
    world
        .cmd()
        .args(["run", "--once"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("exist-agent login"));
    world.login_with(&["activity_write"]);
    world.cmd().args(["run", "--once"]).assert().success();
    assert_final(&world, &expected);
}

#[test]
fn three_runs_started_at_the_same_moment() {
    let (world, _api, expected) = steps_world(SandboxOptions::default(), 300, 100);
    let children: Vec<_> = (0..3)
        .map(|_| {
            world
                .std_cmd()
                .args(["run", "--once"])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        world.count("/api/2/attributes/acquire/"),
        1,
        "acquired once"
    );
    assert_eq!(
        world.count("/api/2/attributes/update/"),
        3,
        "100 values once: ceil(100/35) calls in all"
    );
    assert_final(&world, &expected);
}

#[cfg(target_os = "linux")]
#[test]
fn a_read_only_state_stops_the_run_with_75_and_loses_nothing() {
    let (world, _api, expected) = steps_world(SandboxOptions::default(), 50, 10);
    let root = is_root();
    let mounted = root && mount_tmpfs(&world.state_dir);
    if root && !mounted {
        eprintln!("note: running as root without mount permission; the read-only state test cannot run here");
        return;
    }
    world.login_with(&["activity_write"]);
    world.cmd().args(["run", "--once"]).assert().success();
    // New data arrives while the disk is read-only.
    let store = world.token_store();
    set_read_only(&world.state_dir, true, mounted);
    let out = world.cmd().args(["run", "--once"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("make the state directory writable"));
    set_read_only(&world.state_dir, false, mounted);
    assert!(store.load().unwrap().is_some());
    world.cmd().args(["run", "--once"]).assert().success();
    assert_final(&world, &expected);
    if mounted {
        let _ = std::process::Command::new("umount")
            .arg(&world.state_dir)
            .status();
    }
}

#[cfg(target_os = "linux")]
fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Root ignores permission bits, so a read-only mount is the only honest read-only disk.
#[cfg(target_os = "linux")]
fn mount_tmpfs(dir: &std::path::Path) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[cfg(target_os = "linux")]
fn set_read_only(dir: &std::path::Path, read_only: bool, mounted: bool) {
    if mounted {
        let opts = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        assert!(std::process::Command::new("mount")
            .args(["-o", opts])
            .arg(dir)
            .status()
            .unwrap()
            .success());
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let (dir_mode, file_mode) = if read_only {
        (0o500, 0o400)
    } else {
        (0o700, 0o600)
    };
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file_mode)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode)).unwrap();
}

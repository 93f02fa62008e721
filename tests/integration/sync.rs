//! The sync engine end to end: the real binary pulls from a health-data API that follows the
//! conventions (pagination, `updated_since`, 31-day windows) and pushes day totals in the user's
//! timezone to the sandbox Exist, losing nothing on failures.

use crate::common::World;
use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use exist_fakes::exist::{Fault, SandboxOptions};
use exist_fakes::health::HealthSandbox;
use predicates::prelude::*;
use serde_json::json;

const TZ: &str = "America/Los_Angeles";

struct Health {
    world: World,
    api: HealthSandbox,
}

/// A world whose Exist profile lives in Los Angeles, with an HTTP source `health` feeding `steps`.
fn health(extra_source_keys: &str) -> Health {
    let world = World::with_options(
        SandboxOptions {
            timezone: TZ.into(),
            ..SandboxOptions::default()
        },
        "",
    );
    let api = world
        .rt
        .block_on(HealthSandbox::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    world.write_config(&format!(
        "[[source]]\nname = \"health\"\nkind = \"http\"\nurl = \"{}\"\ndate_field = \"startTime\"\ntz_offset_field = \"tzOffset\"\npage_limit = 50\n{extra_source_keys}\n\n[[attribute]]\ntemplate = \"steps\"\nsource = \"health\"\nfield = \"steps\"\naggregate = \"sum\"\n",
        api.url()
    ));
    world.login_with(&["activity_write"]);
    Health { world, api }
}

/// Today in Los Angeles.
fn today() -> NaiveDate {
    chrono::Utc::now()
        .with_timezone(&TZ.parse::<Tz>().unwrap())
        .date_naive()
}

/// `days_ago` days before today in Los Angeles, at `hh:mm` local, as UTC RFC 3339.
fn la(days_ago: i64, hh: u32, mm: u32) -> String {
    let tz: Tz = TZ.parse().unwrap();
    let local = (today() - chrono::Duration::days(days_ago))
        .and_hms_opt(hh, mm, 0)
        .unwrap();
    tz.from_local_datetime(&local)
        .earliest()
        .unwrap()
        .to_utc()
        .to_rfc3339()
}

fn day(days_ago: i64) -> String {
    (today() - chrono::Duration::days(days_ago)).to_string()
}

fn record(id: &str, start: &str, steps: i64) -> serde_json::Value {
    json!({"id": id, "startTime": start, "tzOffset": "-08:00", "steps": steps, "source": "fitbit"})
}

impl Health {
    fn run(&self) -> assert_cmd::assert::Assert {
        self.world.cmd().args(["run", "--once"]).assert()
    }

    fn steps(&self, days_ago: i64) -> Option<i64> {
        self.world
            .value("steps", &day(days_ago))
            .and_then(|v| v.as_i64())
    }

    fn pulls(&self) -> Vec<String> {
        self.api.requests().into_iter().map(|(q, _)| q).collect()
    }
}

#[test]
fn day_totals_follow_the_users_timezone() {
    let h = health("");
    // 23:30 in Los Angeles is already tomorrow in UTC: it still counts for that LA day.
    h.api.upsert(record("a", &la(1, 23, 30), 100));
    h.api.upsert(record("b", &la(0, 0, 30), 200));
    h.api.upsert(record("c", &la(0, 12, 0), 50));
    h.run().success();
    assert_eq!(h.steps(1), Some(100));
    assert_eq!(h.steps(0), Some(250));
    assert!(
        h.world.count("/api/2/accounts/profile/") == 1,
        "the profile's timezone is read once and cached"
    );
    h.run().success();
    assert_eq!(h.world.count("/api/2/accounts/profile/"), 1);
}

#[test]
fn pages_cursors_changes_and_late_records() {
    let h = health("");
    for i in 0..120 {
        h.api
            .upsert(record(&format!("r{i}"), &la(i % 3, 9, i as u32 % 60), 10));
    }
    h.run().success();
    let first_pulls = h.pulls();
    assert_eq!(
        first_pulls.len(),
        3,
        "120 records in pages of 50: {first_pulls:?}"
    );
    assert!(
        first_pulls[0].contains("updated_since="),
        "never without updated_since"
    );
    assert!(first_pulls[0].contains("limit=50"));
    assert_eq!(
        (h.steps(0), h.steps(1), h.steps(2)),
        (Some(400), Some(400), Some(400))
    );

    // Nothing changed: one small pull, no write at all.
    let updates = h.world.count("/api/2/attributes/update/");
    h.run().success();
    assert_eq!(
        h.world.count("/api/2/attributes/update/"),
        updates,
        "a second run with no change sends nothing"
    );
    let second = h.pulls().into_iter().nth(3).unwrap();
    assert!(second.contains("updated_since="));

    // A record changes, and one dated yesterday arrives late: both days are re-sent, in one call.
    h.api.upsert(record("r0", &la(0, 9, 0), 1000));
    h.api.upsert(record("late", &la(1, 22, 0), 7));
    h.run().success();
    assert_eq!(
        h.steps(0),
        Some(400 - 10 + 1000),
        "the changed record replaced itself, not counted twice"
    );
    assert_eq!(h.steps(1), Some(407));
    assert_eq!(h.world.count("/api/2/attributes/update/"), updates + 1);
    let last = h.world.calls("/api/2/attributes/update/").pop().unwrap();
    assert_eq!(last.items, 2);
}

#[test]
fn backfill_walks_31_day_windows() {
    let h = health("");
    for d in [5, 40, 70, 95] {
        let id = format!("old{d}");
        let start = la(d, 10, 0);
        // Backdated changes, as a history import would have them.
        let updated = (chrono::Utc::now() - chrono::Duration::days(d)).to_rfc3339();
        h.api.upsert(json!({"id": id, "startTime": start, "tzOffset": "-08:00", "steps": d, "updatedAt": updated}));
    }
    let from = day(100);
    h.world
        .cmd()
        .args(["backfill", "--from", &from])
        .assert()
        .success();
    let windows: Vec<String> = h
        .pulls()
        .into_iter()
        .filter(|q| q.contains("updated_before="))
        .collect();
    assert!(
        windows.len() >= 4,
        "100 days in windows of at most 31 days: {windows:?}"
    );
    for d in [5, 40, 70, 95] {
        assert_eq!(h.steps(d), Some(d), "day {d} backfilled");
    }
    assert!(
        h.api.requests().iter().all(|(_, status)| *status == 200),
        "the API accepted every window (it refuses longer ones)"
    );

    // The same backfill again resumes after the windows already pulled: only the last one.
    let before = h.pulls().len();
    h.world
        .cmd()
        .args(["backfill", "--from", &from])
        .assert()
        .success();
    let again: Vec<String> = h.pulls().into_iter().skip(before).collect();
    assert_eq!(again.len(), 1, "resumed, not restarted: {again:?}");
}

#[test]
fn a_5xx_leaves_everything_pending_and_the_next_run_completes() {
    let h = health("");
    h.api.upsert(record("a", &la(0, 9, 0), 10));
    h.api.upsert(record("b", &la(1, 9, 0), 20));
    h.world.sandbox.inject(Fault::Status {
        status: 503,
        count: 3,
        path_prefix: Some("/api/2/attributes/update/".into()),
    });
    h.run()
        .code(75)
        .stderr(predicate::str::contains("pending values are kept"));
    assert_eq!(h.steps(0), None);
    let status: serde_json::Value = serde_json::from_slice(
        &h.world
            .cmd()
            .args(["status", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(status["pending"].as_array().unwrap().len(), 2);
    h.run().success();
    assert_eq!((h.steps(0), h.steps(1)), (Some(10), Some(20)));
    let status: serde_json::Value = serde_json::from_slice(
        &h.world
            .cmd()
            .args(["status", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(status["pending"].as_array().unwrap().len(), 0);
}

#[test]
fn a_dropped_connection_is_retried() {
    let h = health("");
    h.api.upsert(record("a", &la(0, 9, 0), 10));
    h.world.sandbox.inject(Fault::Drop {
        count: 1,
        path_prefix: Some("/api/2/attributes/update/".into()),
    });
    h.run().success();
    assert_eq!(h.steps(0), Some(10));
}

#[test]
fn kill_9_in_the_middle_of_sending_loses_nothing() {
    let world = World::new("");
    // 40 days x 50 attributes' worth of values would be slow to build; 2,000 days of one is quick.
    let mut lines = vec!["date,cups".to_owned()];
    let start = crate::common::today_utc() - chrono::Duration::days(1999);
    for d in 0..2000 {
        lines.push(format!(
            "{},{}",
            start + chrono::Duration::days(d),
            d % 7 + 1
        ));
    }
    let csv = crate::common::write_lines(&world.path("coffee.csv"), &lines);
    world.write_config(&format!(
        "[[source]]\nname = \"coffee\"\nkind = \"file\"\npath = \"{}\"\ndate_field = \"date\"\n\n[[attribute]]\ntemplate = \"coffees\"\nsource = \"coffee\"\nfield = \"cups\"\naggregate = \"sum\"\n",
        csv.display()
    ));
    world.login_with(&["food_write"]);
    let mut child = world
        .std_cmd()
        .args(["run", "--once"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some, but not all, update calls have landed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while world.count("/api/2/attributes/update/") < 5 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let landed = world.sandbox.values().len();
    assert!(
        landed < 2000,
        "killed mid-send ({landed} values had landed)"
    );
    world.cmd().args(["run", "--once"]).assert().success();
    let values = world.sandbox.values();
    assert_eq!(values.len(), 2000, "no value lost");
    for d in 0..2000 {
        let date = (start + chrono::Duration::days(d)).to_string();
        assert_eq!(values[&("coffees".to_owned(), date)], json!(d % 7 + 1));
    }
    let status: serde_json::Value = serde_json::from_slice(
        &world
            .cmd()
            .args(["status", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        status["pending"].as_array().unwrap().len(),
        0,
        "the outbox ends empty"
    );
}

#[test]
fn a_bad_record_is_reported_and_the_rest_lands() {
    let h = health("");
    h.api.upsert(record("good", &la(0, 9, 0), 10));
    h.api
        .upsert(json!({"id": "broken-1", "startTime": "the day before yesterday", "steps": 5}));
    h.run().success().stderr(
        predicate::str::contains("source \"health\"").and(predicate::str::contains("broken-1")),
    );
    assert_eq!(h.steps(0), Some(10));
}

#[test]
fn dry_run_prints_changes_and_changes_nothing() {
    let h = health("");
    h.api.upsert(record("a", &la(0, 9, 0), 10));
    h.run().success();
    h.api.upsert(record("a", &la(0, 9, 0), 15));
    let before = std::fs::read(h.world.state_dir.join("state.db")).unwrap();
    let updates = h.world.count("/api/2/attributes/update/");
    h.world
        .cmd()
        .args(["run", "--once", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "steps {} 10 -> 15",
            day(0)
        )));
    assert_eq!(
        h.world.count("/api/2/attributes/update/"),
        updates,
        "sends nothing"
    );
    assert_eq!(
        std::fs::read(h.world.state_dir.join("state.db")).unwrap(),
        before,
        "changes no state"
    );
    h.run().success();
    assert_eq!(h.steps(0), Some(15));
}

#[test]
fn full_sync_recomputes_days_whose_records_vanished() {
    let h = health("");
    h.api.upsert(record("a", &la(1, 9, 0), 10));
    h.api.upsert(record("b", &la(1, 10, 0), 5));
    h.run().success();
    assert_eq!(h.steps(1), Some(15));
    h.api.remove("b");
    h.run().success();
    assert_eq!(
        h.steps(1),
        Some(15),
        "an incremental pull cannot see a deletion"
    );
    h.world
        .cmd()
        .args(["run", "--once", "--full"])
        .assert()
        .success();
    assert_eq!(h.steps(1), Some(10));
}

#[test]
fn a_source_with_its_own_frequency_is_pulled_only_when_due() {
    let h = health("every = \"1h\"");
    h.api.upsert(record("a", &la(0, 9, 0), 10));
    h.run().success();
    let pulls = h.pulls().len();
    h.run().success();
    assert_eq!(
        h.pulls().len(),
        pulls,
        "pulled an hour ago at most: not due"
    );
    h.world
        .cmd()
        .args(["run", "--once", "--full"])
        .assert()
        .success();
    assert!(h.pulls().len() > pulls, "a full sync pulls regardless");
}

#[test]
fn the_source_rate_limit_is_honoured() {
    let h = health("");
    h.api.upsert(record("a", &la(0, 9, 0), 10));
    h.api.inject_429(1, 1);
    h.run().success();
    assert_eq!(h.steps(0), Some(10));
    let statuses: Vec<u16> = h.api.requests().into_iter().map(|(_, s)| s).collect();
    assert_eq!(statuses, [429, 200]);
}

#[test]
fn three_runs_at_once_all_succeed_and_write_each_value_once() {
    let h = health("");
    for i in 0..40 {
        h.api.upsert(record(&format!("r{i}"), &la(i % 2, 9, 0), 1));
    }
    let children: Vec<_> = (0..3)
        .map(|_| h.world.std_cmd().args(["run", "--once"]).output())
        .collect();
    for c in children {
        let out = c.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!((h.steps(0), h.steps(1)), (Some(20), Some(20)));
    assert_eq!(
        h.world.count("/api/2/attributes/update/"),
        1,
        "the runs took turns: one wrote, the others found nothing changed"
    );
}

#[test]
fn status_reports_sources_and_the_hours_requests() {
    let h = health("");
    h.api.upsert(record("a", &la(0, 9, 0), 10));
    h.run().success();
    let out = h.world.cmd().arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("source:     health (http): last pull 20"),
        "{text}"
    );
    assert!(text.contains("1 record(s)"), "{text}");
    assert!(text.contains("owned:      steps"), "{text}");
    h.world
        .cmd()
        .arg("doctor")
        .assert()
        .success()
        .stdout(predicate::str::contains("ok    source health"));
    assert!(
        text.contains("requests:   3/300 this hour"),
        "profile, acquire, update: {text}"
    );
}

#[test]
fn a_file_read_whole_corrects_days_whose_rows_vanished_and_keeps_the_newest_version_by_id() {
    let world = World::new("");
    let csv = world.path("log.csv");
    let write = |rows: &[&str]| {
        crate::common::write_lines(
            &csv,
            &std::iter::once("id,date,edited,cups".to_owned())
                .chain(rows.iter().map(|r| r.to_string()))
                .collect::<Vec<_>>(),
        )
    };
    let today = crate::common::today_utc();
    let d = |n: i64| (today - chrono::Duration::days(n)).to_string();
    write(&[
        &format!("a,{},2026-01-01T00:00:00Z,1", d(1)),
        &format!("b,{},2026-01-01T00:00:00Z,2", d(1)),
        &format!("c,{},2026-01-01T00:00:00Z,3", d(5)),
        // A later edit of `a`, further down the file: it replaces the first, not adds to it.
        &format!("a,{},2026-01-02T00:00:00Z,4", d(1)),
    ]);
    world.write_config(&format!(
        "[[source]]\nname = \"log\"\nkind = \"file\"\npath = \"{}\"\nid_field = \"id\"\ndate_field = \"date\"\n\n[[attribute]]\ntemplate = \"coffees\"\nsource = \"log\"\nfield = \"cups\"\naggregate = \"sum\"\n",
        csv.display()
    ));
    world.login_with(&["food_write"]);
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(
        world.value("coffees", &d(1)),
        Some(6.into()),
        "a (newest: 4) + b (2)"
    );
    assert_eq!(world.value("coffees", &d(5)), Some(3.into()));

    // Rows vanish: day 1 loses b, day 5 loses everything.
    write(&[&format!("a,{},2026-01-02T00:00:00Z,4", d(1))]);
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.value("coffees", &d(1)), Some(4.into()));
    assert_eq!(
        world.value("coffees", &d(5)),
        Some(0.into()),
        "a day whose rows all vanished falls to zero"
    );
    let status = world.cmd().arg("status").output().unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("log (file): last pull"));
    assert!(String::from_utf8_lossy(&status.stdout).contains("1 record(s)"));
}

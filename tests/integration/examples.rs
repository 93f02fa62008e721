//! The worked examples of `examples/` (also shown in the README), end to end: each config, as
//! written but pointed at the fake of its service, syncs through the binary into the sandbox
//! Exist with the right day values in the user's timezone and the fewest Exist calls, and the
//! unchanged second run sends nothing.

use chrono::{Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use exist_fakes::exist::SandboxOptions;
use exist_fakes::services::{
    activitywatch, gadgetbridge, home_assistant, oura, toggl, wakatime, AuthScheme,
};

use crate::common::World;

/// The text of `examples/{name}.toml` from its first `[[source]]` on (the `[exist]` table at
/// its head is the user's own), with each `(from, to)` replaced: the service's address, a path.
pub fn example_body(name: &str, replacements: &[(&str, &str)]) -> String {
    let path = format!("{}/examples/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut body = text[text.find("[[source]]").expect("the example has a source")..].to_owned();
    for (from, to) in replacements {
        assert!(body.contains(from), "{path} holds {from}");
        body = body.replace(from, to);
    }
    body
}

/// A world whose Exist user lives in `tz`, configured with the example `name`.
fn world_in(tz: &str) -> World {
    World::with_options(
        SandboxOptions {
            timezone: tz.into(),
            ..SandboxOptions::default()
        },
        "",
    )
}

fn run(world: &World, env: &[(&str, &str)]) -> assert_cmd::assert::Assert {
    let mut cmd = world.cmd();
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.args(["run", "--once"]).assert()
}

/// `doctor`'s line about `source`, which must pass along with every other check.
fn doctor_line(world: &World, env: &[(&str, &str)], source: &str) -> String {
    let mut cmd = world.cmd();
    for (name, value) in env {
        cmd.env(name, value);
    }
    let out = cmd.arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "doctor failed:\n{text}");
    text.lines()
        .find(|l| l.starts_with(&format!("ok    source {source} ")))
        .unwrap_or_else(|| panic!("no line for source {source}:\n{text}"))
        .to_owned()
}

/// Exist's calls so far: acquire, create, update.
fn exist_calls(world: &World) -> (usize, usize, usize) {
    (
        world.count("/api/2/attributes/acquire/"),
        world.count("/api/2/attributes/create/"),
        world.count("/api/2/attributes/update/"),
    )
}

fn number(world: &World, attribute: &str, day: &str) -> Option<f64> {
    world.value(attribute, day).and_then(|v| v.as_f64())
}

fn today_in(tz: &str) -> NaiveDate {
    Utc::now()
        .with_timezone(&tz.parse::<Tz>().unwrap())
        .date_naive()
}

fn days_before(day: NaiveDate, n: u64) -> NaiveDate {
    day.checked_sub_days(Days::new(n)).unwrap()
}

/// Midnight of `day` in `tz`, as the RFC 3339 instant a `timestamps` window sends.
fn midnight_utc(day: NaiveDate, tz: &str) -> String {
    let tz: Tz = tz.parse().unwrap();
    tz.from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .to_utc()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[test]
fn oura_daily_activity_by_dates_and_cursor_pages() {
    let world = world_in("Europe/Berlin");
    let fake = world
        .rt
        .block_on(oura::OuraFake::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    oura::sample_week(&fake);
    fake.set_page_size(3);
    let url = fake.url().to_string();
    world.write_config(&example_body(
        "oura",
        &[("https://api.ouraring.com/", url.as_str())],
    ));
    world.login_with(&["activity_write"]);
    let token = [("OURA_TOKEN", oura::TEST_TOKEN)];
    run(&world, &token).success();

    let steps = [8123, 10456, 4302, 12001, 7777, 9050, 6100];
    let energy = [402, 515, 188, 640, 377, 451, 295];
    for (i, (steps, energy)) in steps.iter().zip(energy).enumerate() {
        let day = format!("2026-11-{}", 16 + i);
        assert_eq!(
            number(&world, "steps", &day),
            Some(f64::from(*steps)),
            "{day}"
        );
        assert_eq!(
            number(&world, "active_energy", &day),
            Some(f64::from(energy)),
            "{day}"
        );
        assert_eq!(
            number(&world, "oura_stay_active", &day),
            Some(75.0),
            "{day}"
        );
    }
    assert_eq!(
        exist_calls(&world),
        (1, 1, 1),
        "acquire, create and send once each"
    );

    // The first run asked for the last 31 days, older ones first, then the recent days (the
    // three of lookback and today) as a query of their own; 7 summaries in pages of 3 take
    // two cursors.
    let requests = fake.requests();
    let today = today_in("Europe/Berlin");
    let firsts: Vec<_> = requests
        .iter()
        .filter(|r| r.query_value("next_token").is_none())
        .filter_map(|r| r.query_value("start_date"))
        .collect();
    let first_day = days_before(today, 30).to_string();
    let recent_day = days_before(today, 3).to_string();
    assert_eq!(firsts, [first_day.as_str(), recent_day.as_str()]);
    let cursors = requests
        .iter()
        .filter(|r| r.query_value("next_token").is_some())
        .count();
    assert_eq!((requests.len(), cursors), (4, 2), "{requests:?}");
    assert!(requests
        .iter()
        .all(|r| r.auth == AuthScheme::Bearer && r.status == 200));

    // Unchanged: the recent days are asked again, and nothing is sent.
    run(&world, &token).success();
    assert_eq!(exist_calls(&world), (1, 1, 1));
    let again = &fake.requests()[requests.len()..];
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].query_value("start_date"),
        Some(recent_day.as_str())
    );
    assert_eq!(
        again[0].query_value("end_date"),
        Some(today.to_string().as_str())
    );
    let line = doctor_line(&world, &token, "oura");
    assert!(
        line.contains("(dates window, cursor paging); 0 record(s) at `/data`"),
        "{line}"
    );
}

#[test]
fn wakatime_summaries_by_date_range() {
    let world = world_in("America/New_York");
    let fake = world
        .rt
        .block_on(wakatime::WakaTimeFake::start(
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    wakatime::sample_week(&fake);
    let url = fake.url().to_string();
    world.write_config(&example_body(
        "wakatime",
        &[("https://wakatime.com/", url.as_str())],
    ));
    world.login_with(&["productivity_write"]);
    let key = [("WAKATIME_API_KEY", wakatime::TEST_API_KEY)];
    run(&world, &key).success();

    // WakaTime has already cut the days: any timezone reads the same hours.
    let hours = [3.25, 0.0, 4.38, 1.2, 0.0, 0.5, 2.47];
    for (i, hours) in hours.iter().enumerate() {
        let day = format!("2026-11-{}", 16 + i);
        assert_eq!(number(&world, "coding_hours", &day), Some(*hours), "{day}");
    }
    // Days without coding come back as zeros: 31 days, one update call.
    assert_eq!(exist_calls(&world), (0, 1, 1));
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests
        .iter()
        .all(|r| r.auth == AuthScheme::Basic && r.status == 200));
    let today = today_in("America/New_York").to_string();
    assert_eq!(requests[1].query_value("end"), Some(today.as_str()));

    run(&world, &key).success();
    assert_eq!(
        exist_calls(&world),
        (0, 1, 1),
        "the second run sends nothing"
    );
    // The recent days: two, and today, zeros all.
    let line = doctor_line(&world, &key, "wakatime");
    assert!(
        line.contains("(dates window, none paging); 3 record(s) at `/data`"),
        "{line}"
    );
}

#[test]
fn toggl_time_entries_by_a_range_of_the_users_days() {
    let tz = "Europe/Berlin";
    let world = world_in(tz);
    let fake = world
        .rt
        .block_on(toggl::TogglFake::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    toggl::sample_entries(&fake);
    let url = fake.url().to_string();
    world.write_config(&example_body(
        "toggl",
        &[("https://api.track.toggl.com/", url.as_str())],
    ));
    world.login_with(&["productivity_write"]);
    let env = [
        ("TOGGL_API_TOKEN", toggl::TEST_API_TOKEN),
        ("TOGGL_PASSWORD", "api_token"),
    ];
    run(&world, &env).success();

    // The entry that started at 23:30 UTC on the 18th is 00:30 on the 19th in Berlin; the
    // running one on the 20th counts too.
    for (day, entries) in [
        ("2026-11-18", 2.0),
        ("2026-11-19", 3.0),
        ("2026-11-20", 1.0),
    ] {
        assert_eq!(number(&world, "time_entries", day), Some(entries), "{day}");
    }
    assert_eq!(exist_calls(&world), (0, 1, 1));
    // The windows are the user's days, from Berlin's midnight to Berlin's midnight.
    let requests = fake.requests();
    let today = today_in(tz);
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].query_value("start_date"),
        Some(midnight_utc(days_before(today, 30), tz).as_str())
    );
    assert_eq!(
        requests[1].query_value("end_date"),
        Some(midnight_utc(today.succ_opt().unwrap(), tz).as_str())
    );

    run(&world, &env).success();
    assert_eq!(
        exist_calls(&world),
        (0, 1, 1),
        "the second run sends nothing"
    );
    assert_eq!(
        fake.requests().len(),
        2,
        "every = \"1h\": not due again yet"
    );
    let line = doctor_line(&world, &env, "toggl");
    assert!(
        line.contains("(timestamps window, none paging)") && line.contains("in the reply itself"),
        "{line}"
    );
}

#[test]
fn home_assistant_history_with_an_access_token() {
    let tz = "Europe/Berlin";
    let world = world_in(tz);
    let fake = world
        .rt
        .block_on(home_assistant::HomeAssistantFake::start(
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    home_assistant::sample_history(&fake);
    let url = fake.url().to_string();
    world.write_config(&example_body(
        "home_assistant",
        &[("http://homeassistant.local:8123/", url.as_str())],
    ));
    world.login_with(&["productivity_write"]);
    let token = [("HA_TOKEN", home_assistant::TEST_TOKEN)];
    let out = run(&world, &token).success().get_output().clone();
    let stderr = String::from_utf8_lossy(&out.stderr);

    // The numeric states of the 19th average 61.25; the `unavailable` one is skipped, named.
    assert_eq!(number(&world, "desk_plug_power", "2026-11-19"), Some(61.25));
    assert_eq!(number(&world, "desk_plug_power", "2026-11-20"), Some(60.0));
    assert!(
        stderr.contains("skipped the record") && stderr.contains("\"unavailable\""),
        "{stderr}"
    );
    // Home Assistant reports the state in effect at a window's start as a change at that
    // instant: the plug's 60 W, at the start of the recent days (the day before today).
    let recent = days_before(today_in(tz), 1);
    assert_eq!(
        number(&world, "desk_plug_power", &recent.to_string()),
        Some(60.0)
    );
    assert_eq!(exist_calls(&world), (0, 1, 1));
    // The window's start went in the path; its end in `end_time`, Berlin's midnights both.
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let start = midnight_utc(recent, tz);
    assert_eq!(requests[1].path, format!("/api/history/period/{start}"));
    assert!(requests
        .iter()
        .all(|r| r.auth == AuthScheme::Bearer && r.status == 200));

    // The same recent query, the same synthetic state: nothing changed, nothing is sent.
    run(&world, &token).success();
    assert_eq!(
        exist_calls(&world),
        (0, 1, 1),
        "the second run sends nothing"
    );
    assert_eq!(fake.requests()[2].path, requests[1].path);
    let line = doctor_line(&world, &token, "desk");
    assert!(
        line.contains("1 record(s) at `/0`"),
        "the state at the start: {line}"
    );
}

#[test]
fn activitywatch_screen_time_from_its_local_api() {
    let world = world_in("UTC");
    let fake = world
        .rt
        .block_on(activitywatch::ActivityWatchFake::start(
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    let (_, window) = activitywatch::sample_laptop(&fake);
    assert_eq!(window, "aw-watcher-window_laptop");
    let url = fake.url().to_string();
    world.write_config(&example_body(
        "activitywatch",
        &[("http://localhost:5600/", url.as_str())],
    ));
    world.login_with(&["productivity_write"]);
    run(&world, &[]).success();

    assert_eq!(
        number(&world, "screen_time_in_seconds", "2026-11-19"),
        Some(11400.0)
    );
    assert_eq!(
        number(&world, "screen_time_in_seconds", "2026-11-20"),
        Some(3300.0)
    );
    assert_eq!(exist_calls(&world), (0, 1, 1));
    let requests = fake.requests();
    assert!(requests
        .iter()
        .all(|r| r.auth == AuthScheme::None && r.status == 200));

    run(&world, &[]).success();
    assert_eq!(
        exist_calls(&world),
        (0, 1, 1),
        "the second run sends nothing"
    );
    let line = doctor_line(&world, &[], "screen");
    assert!(line.contains("0 record(s) in the reply itself"), "{line}");
}

#[test]
fn gadgetbridge_daily_steps_from_its_database() {
    let world = world_in("Europe/Berlin");
    let db = world.path("Gadgetbridge");
    gadgetbridge::sample_two_days(&db).unwrap();
    let path = db.display().to_string();
    world.write_config(&example_body(
        "gadgetbridge",
        &[("~/Sync/Gadgetbridge", path.as_str())],
    ));
    world.login_with(&["activity_write"]);
    run(&world, &[]).success();

    // The half hour from 23:30 UTC on the 19th is after midnight in Berlin.
    assert_eq!(number(&world, "steps", "2026-11-19"), Some(6000.0));
    assert_eq!(number(&world, "steps", "2026-11-20"), Some(5400.0));
    assert_eq!(exist_calls(&world), (1, 0, 1));

    run(&world, &[]).success();
    assert_eq!(
        exist_calls(&world),
        (1, 0, 1),
        "the second run sends nothing"
    );
    let line = doctor_line(&world, &[], "band");
    assert!(
        line.contains("opens read-only; the query gives ts, steps"),
        "{line}"
    );
}

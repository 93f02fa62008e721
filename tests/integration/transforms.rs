//! Records turned into what a person means, through the binary into the sandbox Exist: the
//! worked examples of `examples/` (a Daylio export's moods and activities, a smart scale's
//! pounds), `fill`, and tags from a stored (HTTP) source. Each checks the day values Exist holds,
//! the attributes it created, and the calls it took.

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use exist_fakes::exist::SandboxOptions;
use exist_fakes::health::HealthSandbox;
use predicates::prelude::*;
use serde_json::{json, Value};

use crate::common::{today_utc, write_lines, World};

/// An example configuration of `examples/` from its first `[[source]]` on (the test world
/// writes its own `[exist]`), its file pointed at `path`.
fn example(name: &str, file_key: &str, path: &std::path::Path) -> String {
    let whole = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name),
    )
    .unwrap();
    let text = &whole[whole.find("[[source]]").expect("an example has a source")..];
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{file_key} = ")))
        .unwrap()
        .to_owned();
    text.replace(&line, &format!("path = \"{}\"", path.display()))
}

fn ago(today: NaiveDate, days: i64) -> String {
    (today - chrono::Duration::days(days)).to_string()
}

/// The custom attributes Exist holds, by label.
fn tag_names(world: &World) -> std::collections::BTreeMap<String, String> {
    world
        .sandbox
        .attributes()
        .into_iter()
        .filter(|a| a.group == "custom")
        .map(|a| {
            assert_eq!(
                a.value_type,
                exist_fakes::exist::ValueType::Boolean,
                "{} is a boolean",
                a.label
            );
            (a.label, a.name)
        })
        .collect()
}

fn int(world: &World, attribute: &str, day: &str) -> Option<i64> {
    world.value(attribute, day).and_then(|v| v.as_i64())
}

#[test]
fn a_daylio_export_becomes_moods_and_daily_tags() {
    let world = World::new("");
    let today = today_utc();
    let d = |n| ago(today, n);
    let export = world.path("daylio_export.csv");
    let header = "full_date,date,weekday,time,mood,activities,note_title,note".to_owned();
    // Newest first, as Daylio writes it; two entries today; Daylio pads some cells.
    let rows = |extra_today: &str| {
        vec![
            header.clone(),
            format!(
                "{},x,Friday,9:41 pm,good,\"work | gym{extra_today}\",\"\",\"\"",
                d(0)
            ),
            format!(
                "{},x,Friday,8:02 am,rad ,\"gym | reading \",\"\",\"\"",
                d(0)
            ),
            format!(
                "{},x,Thursday,10:00 pm,meh,\"work\",\"\",\"long day\"",
                d(1)
            ),
            format!("{},x,Wednesday,11:00 pm,awful,\"\",\"\",\"\"", d(2)),
            format!(
                "{},x,Tuesday,11:00 pm,sad,\"work  | movies / tv\",\"\",\"\"",
                d(3)
            ),
        ]
    };
    write_lines(&export, &rows(""));
    world.write_config(&example("daylio.toml", "path", &export));
    world.login_with(&["mood_write", "custom_write"]);

    // A dry run shows the tags it would create, and creates nothing.
    world
        .cmd()
        .args(["run", "--once", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "movies / tv {} (none) -> 1 (will be created)",
            d(3)
        )));
    assert_eq!(world.count("/api/2/attributes/create/"), 0);

    world
        .cmd()
        .args(["run", "--once"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "holds \"sad\", which `map` does not list",
        ));
    assert_eq!(
        int(&world, "mood", &d(0)),
        Some(8),
        "the mean of good (7) and rad (9)"
    );
    assert_eq!(int(&world, "mood", &d(1)), Some(5));
    assert_eq!(int(&world, "mood", &d(2)), Some(1));
    assert_eq!(
        world.value("mood", &d(3)),
        None,
        "an unmapped mood is skipped, never guessed"
    );
    let tags = tag_names(&world);
    assert_eq!(
        tags.keys().collect::<Vec<_>>(),
        ["gym", "movies / tv", "reading", "work"],
        "one custom boolean per activity"
    );
    let days = |label: &str| -> Vec<Option<i64>> {
        (0..4).map(|n| int(&world, &tags[label], &d(n))).collect()
    };
    assert_eq!(days("work"), [Some(1), Some(1), Some(0), Some(1)]);
    assert_eq!(days("gym"), [Some(1), Some(0), Some(0), Some(0)]);
    assert_eq!(days("reading"), [Some(1), Some(0), Some(0), Some(0)]);
    assert_eq!(days("movies / tv"), [Some(0), Some(0), Some(0), Some(1)]);
    assert_eq!(
        world.value(&tags["work"], &d(4)),
        None,
        "no entry that day: nothing said"
    );
    assert_eq!(world.count("/api/2/attributes/acquire/"), 1, "mood");
    assert_eq!(
        world.count("/api/2/attributes/create/"),
        1,
        "four tags in one call"
    );
    assert_eq!(
        world.count("/api/2/attributes/update/"),
        1,
        "3 moods and 16 tag days: one batch"
    );
    world
        .cmd()
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("which `map` does not list"));

    // Unchanged: nothing sent, nothing created.
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.count("/api/2/attributes/create/"), 1);
    assert_eq!(world.count("/api/2/attributes/update/"), 1);

    // A new activity: one tag created on first sight, its other days set to 0.
    write_lines(&export, &rows(" | meditation"));
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.count("/api/2/attributes/create/"), 2);
    assert_eq!(world.count("/api/2/attributes/update/"), 2);
    let tags = tag_names(&world);
    let meditation = &tags["meditation"];
    let values: Vec<Option<i64>> = (0..4).map(|n| int(&world, meditation, &d(n))).collect();
    assert_eq!(values, [Some(1), Some(0), Some(0), Some(0)]);
    let last = world.calls("/api/2/attributes/update/").pop().unwrap();
    let sent = last.body.unwrap();
    assert_eq!(
        sent.as_array().unwrap().len(),
        4,
        "only the new tag's days: {sent}"
    );
}

/// `days_ago` days before today in Los Angeles at `hh:mm` local, with its offset.
fn la(tz: Tz, today: NaiveDate, days_ago: i64, hh: u32, mm: u32) -> String {
    let local = (today - chrono::Duration::days(days_ago))
        .and_hms_opt(hh, mm, 0)
        .unwrap();
    tz.from_local_datetime(&local)
        .earliest()
        .unwrap()
        .to_rfc3339()
}

#[test]
fn a_smart_scale_in_pounds_becomes_kilograms() {
    let tz: Tz = "America/Los_Angeles".parse().unwrap();
    let world = World::with_options(
        SandboxOptions {
            timezone: tz.name().into(),
            ..SandboxOptions::default()
        },
        "",
    );
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let at = |days, hh, mm| la(tz, today, days, hh, mm);
    let line = |time: String, user: &str, lb: Value, fat: f64| {
        json!({"time": time, "user": user, "weight_lb": lb, "fat_percent": fat}).to_string()
    };
    let file = world.path("scale.jsonl");
    write_lines(
        &file,
        &[
            line(at(1, 7, 0), "alex", json!(180.0), 21.5),
            // Late in the evening in Los Angeles, the next day in UTC: still yesterday's last.
            line(at(1, 23, 30), "alex", json!(181.0), 22.0),
            line(at(1, 23, 45), "sam", json!(150.0), 30.0),
            line(at(0, 6, 30), "alex", json!(179.4), 21.0),
            line(at(0, 7, 0), "alex", json!("n/a"), 21.2),
        ],
    );
    world.write_config(&example("smart-scale.toml", "path", &file));
    world.login_with(&["health_write"]);
    world
        .cmd()
        .args(["run", "--once"])
        .assert()
        .success()
        .stderr(predicate::str::contains("`weight_lb` holds \"n/a\""));
    let float = |attribute: &str, days: i64| {
        world
            .value(attribute, &ago(today, days))
            .and_then(|v| v.as_f64())
    };
    let kg = |lb: f64| (lb * 0.45359237 * 1e6).round() / 1e6;
    assert_eq!(
        float("weight", 1),
        Some(kg(181.0)),
        "alex's last, not sam's"
    );
    assert_eq!(
        float("weight", 0),
        Some(kg(179.4)),
        "the unreadable later weigh-in is skipped"
    );
    assert_eq!(float("body_fat", 1), Some(0.22));
    assert_eq!(float("body_fat", 0), Some(0.212), "its fat reading is fine");
    assert_eq!(world.count("/api/2/attributes/update/"), 1);
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(
        world.count("/api/2/attributes/update/"),
        1,
        "unchanged: nothing sent"
    );
}

#[test]
fn fill_zero_counts_empty_days_from_the_first_record() {
    let world = World::new("");
    let today = today_utc();
    let file = world.path("coffee.csv");
    write_lines(
        &file,
        &[
            "date,kind".into(),
            format!("{},espresso", ago(today, 4)),
            format!("{},decaf", ago(today, 2)),
            format!("{},espresso", ago(today, 2)),
        ],
    );
    world.write_config(&format!(
        "[[source]]\nname = \"coffee\"\nkind = \"file\"\npath = \"{}\"\ndate_field = \"date\"\n\n[[attribute]]\ntemplate = \"coffees\"\nsource = \"coffee\"\naggregate = \"count\"\nfill = \"zero\"\nwhere = {{ field = \"kind\", in = [\"espresso\", \"latte\"] }}\n",
        file.display()
    ));
    world.login_with(&["food_write"]);
    world.cmd().args(["run", "--once"]).assert().success();
    let days: Vec<Option<i64>> = (0..6)
        .map(|n| int(&world, "coffees", &ago(today, n)))
        .collect();
    assert_eq!(
        days,
        [Some(0), Some(0), Some(1), Some(0), Some(1), None],
        "the decaf left out; nothing before the first record"
    );
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.count("/api/2/attributes/update/"), 1);
}

/// The values of tag `label` on the last three days, today first.
fn last_days(world: &World, today: NaiveDate, label: &str) -> Vec<Option<i64>> {
    let tags = tag_names(world);
    (0..3)
        .map(|n| int(world, &tags[label], &ago(today, n)))
        .collect()
}

#[test]
fn tags_of_a_stored_source_are_found_in_its_history_and_its_changes() {
    let world = World::new("");
    let api = world
        .rt
        .block_on(HealthSandbox::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let today = today_utc();
    let record = |id: &str, days: i64, tags: Value| json!({"id": id, "startTime": format!("{}T12:00:00Z", ago(today, days)), "tags": tags});
    api.upsert(record("a", 2, json!(["Yoga", "Work"])));
    api.upsert(record("b", 1, json!(["work"])));
    world.write_config(&format!(
        "[[source]]\nname = \"habits\"\nkind = \"http\"\nurl = \"{}\"\ndate_field = \"startTime\"\n\n[[tags]]\nsource = \"habits\"\nfield = \"tags\"\nprefix = \"habit \"\n",
        api.url()
    ));
    world.login_with(&["custom_write"]);
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(
        tag_names(&world).keys().collect::<Vec<_>>(),
        ["habit work", "habit yoga"]
    );
    assert_eq!(
        last_days(&world, today, "habit yoga"),
        [None, Some(0), Some(1)]
    );
    assert_eq!(
        last_days(&world, today, "habit work"),
        [None, Some(1), Some(1)]
    );

    // A change today brings a new tag, created on first sight with the source's whole history.
    api.upsert(record("c", 0, json!(["reading"])));
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.count("/api/2/attributes/create/"), 2);
    assert_eq!(
        last_days(&world, today, "habit reading"),
        [Some(1), Some(0), Some(0)]
    );
    assert_eq!(
        last_days(&world, today, "habit work"),
        [Some(0), Some(1), Some(1)]
    );
    assert_eq!(
        last_days(&world, today, "habit yoga"),
        [Some(0), Some(0), Some(1)]
    );
    let updates = world.count("/api/2/attributes/update/");
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(
        world.count("/api/2/attributes/update/"),
        updates,
        "unchanged: nothing sent"
    );
}

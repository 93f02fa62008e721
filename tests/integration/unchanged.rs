//! A source read whole whose content did not change since its values were settled is read, not
//! parsed: the next run costs almost nothing. A change anywhere (one byte in the middle, with
//! the same size and modification time) is still seen, and so is a change of what decides the
//! values besides the content.

use std::path::Path;
use std::time::SystemTime;

use crate::common::World;

const UNCHANGED: &str = "unchanged since its day values were settled";

/// 1,000 JSON Lines records over ten days, each with three-digit steps (so that changing one
/// digit keeps the file's size).
fn lines(bump_line: Option<usize>) -> Vec<String> {
    let today = crate::common::today_utc();
    (0..1000)
        .map(|i| {
            let day = today - chrono::Duration::days((i % 10) as i64);
            let steps = 100 + (i % 800) + usize::from(bump_line == Some(i));
            format!("{{\"id\":\"r{i}\",\"start\":\"{day}T08:00:00Z\",\"steps\":{steps}}}")
        })
        .collect()
}

fn day_of_line(i: usize) -> String {
    (crate::common::today_utc() - chrono::Duration::days((i % 10) as i64)).to_string()
}

fn config(source: &str) -> String {
    format!(
        "{source}id_field = \"id\"\ndate_field = \"start\"\n\n[[attribute]]\ntemplate = \"steps\"\nsource = \"walks\"\nfield = \"steps\"\naggregate = \"sum\"\n"
    )
}

/// Runs `run --once`; its log (standard error).
fn run(world: &World) -> String {
    let out = world.cmd().args(["run", "--once"]).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    log
}

fn set_mtime(path: &Path, at: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

#[test]
fn an_unchanged_file_is_not_parsed_again_and_one_byte_changed_in_the_middle_is_sent() {
    let world = World::new("");
    let path = crate::common::write_lines(&world.path("walks.jsonl"), &lines(None));
    world.write_config(&config(&format!(
        "[[source]]\nname = \"walks\"\nkind = \"file\"\npath = \"{}\"\n",
        path.display()
    )));
    world.login_with(&["activity_write"]);
    let first = run(&world);
    assert!(!first.contains(UNCHANGED), "{first}");
    let updates = world.count("/api/2/attributes/update/");
    assert!(updates > 0);
    let before = world.value("steps", &day_of_line(500)).unwrap();

    let second = run(&world);
    assert!(second.contains(UNCHANGED), "{second}");
    assert_eq!(world.count("/api/2/attributes/update/"), updates);

    // One digit in the middle of the file, same size, same modification time.
    let size = std::fs::metadata(&path).unwrap().len();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    crate::common::write_lines(&path, &lines(Some(500)));
    set_mtime(&path, mtime);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
    let third = run(&world);
    assert!(!third.contains(UNCHANGED), "{third}");
    assert_eq!(
        world.value("steps", &day_of_line(500)),
        Some((before.as_i64().unwrap() + 1).into()),
        "the changed line is sent"
    );
    assert_eq!(world.count("/api/2/attributes/update/"), updates + 1);

    let fourth = run(&world);
    assert!(fourth.contains(UNCHANGED), "{fourth}");
    assert_eq!(world.count("/api/2/attributes/update/"), updates + 1);
}

#[test]
fn an_unchanged_command_output_is_not_parsed_again_and_a_changed_config_recomputes() {
    let world = World::new("");
    let path = crate::common::write_lines(&world.path("walks.jsonl"), &lines(None));
    let source = format!(
        "[[source]]\nname = \"walks\"\nkind = \"command\"\ncommand = [\"cat\", \"{}\"]\n",
        path.display()
    );
    world.write_config(&config(&source));
    world.login_with(&["activity_write"]);
    assert!(!run(&world).contains(UNCHANGED));
    let second = run(&world);
    assert!(second.contains(UNCHANGED), "{second}");

    // The same output, but the attribute now counts: its values change, so it is parsed again.
    world.write_config(&config(&source).replace("aggregate = \"sum\"", "aggregate = \"count\""));
    let third = run(&world);
    assert!(!third.contains(UNCHANGED), "{third}");
    assert_eq!(world.value("steps", &day_of_line(0)), Some(100.into()));
}

#[test]
fn a_value_pushed_by_hand_is_corrected_even_when_the_file_did_not_change() {
    let world = World::new("");
    let path = crate::common::write_lines(&world.path("walks.jsonl"), &lines(None));
    world.write_config(&config(&format!(
        "[[source]]\nname = \"walks\"\nkind = \"file\"\npath = \"{}\"\n",
        path.display()
    )));
    world.login_with(&["activity_write"]);
    run(&world);
    let day = day_of_line(3);
    let computed = world.value("steps", &day).unwrap();
    world
        .cmd()
        .args(["push", "steps", "1", "--date", &day])
        .assert()
        .success();
    assert_eq!(world.value("steps", &day), Some(1.into()));
    // What the state holds for the attribute changed: the file's value is computed again.
    let log = run(&world);
    assert!(!log.contains(UNCHANGED), "{log}");
    assert_eq!(world.value("steps", &day), Some(computed));
}

#[test]
fn an_unchanged_csv_file_is_not_parsed_again_and_a_changed_row_is_sent() {
    let world = World::new("");
    let csv = |bump: i64| {
        let today = crate::common::today_utc();
        vec![
            "id,start,steps".to_owned(),
            format!("a,{today}T08:00:00Z,100"),
            format!("b,{today}T09:00:00Z,{}", 200 + bump),
            format!("c,{today}T10:00:00Z,300"),
        ]
    };
    let path = crate::common::write_lines(&world.path("walks.csv"), &csv(0));
    world.write_config(&config(&format!(
        "[[source]]\nname = \"walks\"\nkind = \"file\"\npath = \"{}\"\n",
        path.display()
    )));
    world.login_with(&["activity_write"]);
    let today = crate::common::today_utc().to_string();
    assert!(!run(&world).contains(UNCHANGED));
    assert_eq!(world.value("steps", &today), Some(600.into()));
    let second = run(&world);
    assert!(second.contains(UNCHANGED), "{second}");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    crate::common::write_lines(&path, &csv(5));
    set_mtime(&path, mtime);
    let third = run(&world);
    assert!(!third.contains(UNCHANGED), "{third}");
    assert_eq!(world.value("steps", &today), Some(605.into()));
}

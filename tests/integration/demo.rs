//! `exist-agent demo` end to end: the real binary, on its embedded sample data, shows what Exist
//! holds after two syncs and the requests each step made, and leaves nothing behind.
//!
//! The expected values are computed here from the same embedded sample files, independently of
//! the demo's own code.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

const WALKS: &str = include_str!("../../src/commands/demo/steps.csv");
const COFFEES: &str = include_str!("../../src/commands/demo/coffee.csv");
const TIMEZONE: &str = "America/New_York";
/// Exist takes at most this many values per update call.
const MAX_BATCH: usize = 35;

/// The data rows of a sample file: comments, blank lines and the header skipped.
fn rows(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .skip(1)
        .map(|l| l.split(',').map(str::trim).collect())
        .collect()
}

/// A day's value before the second batch of changes and after it.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Expected {
    first: i64,
    last: i64,
}

/// Per day offset, the steps: each walk counts on its local day, a later row with the same id
/// replaces the earlier one.
fn expected_steps() -> BTreeMap<i64, Expected> {
    let mut first: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    let mut last = first.clone();
    for row in rows(WALKS) {
        let (id, day, steps) = (row[0], row[1].parse().unwrap(), row[3].parse().unwrap());
        if row[4] == "1" {
            first.insert(id, (day, steps));
        }
        last.insert(id, (day, steps));
    }
    let mut totals: BTreeMap<i64, Expected> = BTreeMap::new();
    for (day, steps) in first.values() {
        totals.entry(*day).or_default().first += steps;
    }
    for (day, steps) in last.values() {
        totals.entry(*day).or_default().last += steps;
    }
    totals
}

/// Per day offset, the cups: one per row.
fn expected_coffees() -> BTreeMap<i64, Expected> {
    let mut totals: BTreeMap<i64, Expected> = BTreeMap::new();
    for row in rows(COFFEES) {
        let day = totals.entry(row[0].parse().unwrap()).or_default();
        day.first += i64::from(row[3] == "1");
        day.last += 1;
    }
    totals
}

fn today(tz: Tz) -> NaiveDate {
    Utc::now().with_timezone(&tz).date_naive()
}

/// One cell of the values table: the value (`None` for `-`) and the value before the second
/// sync when it is marked as changed (`Some(None)`: new).
#[derive(Debug, Clone, PartialEq)]
struct Cell {
    value: Option<i64>,
    changed_from: Option<Option<i64>>,
}

/// The values table: its attribute names and, per date, one cell per attribute.
fn values_table(stdout: &str) -> (Vec<String>, BTreeMap<NaiveDate, Vec<Cell>>) {
    let mut lines = stdout
        .lines()
        .skip_while(|l| !l.starts_with("What Exist holds now"))
        .skip(1);
    let header: Vec<String> = lines
        .next()
        .expect("a header row")
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect();
    let mut table = BTreeMap::new();
    for line in lines {
        let mut tokens = line.split_whitespace().peekable();
        let Some(date) = tokens
            .next()
            .and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
        else {
            break;
        };
        tokens.next(); // the weekday
        let mut cells = Vec::new();
        for _ in &header {
            let value = tokens.next().expect("a value per attribute");
            let changed_from = match tokens.next_if_eq(&"*") {
                None => None,
                Some(_) => match tokens.next() {
                    Some("was") => Some(Some(tokens.next().unwrap().parse().unwrap())),
                    Some("new") => Some(None),
                    other => panic!("unexpected mark {other:?} in {line:?}"),
                },
            };
            cells.push(Cell {
                value: (value != "-").then(|| value.parse().unwrap()),
                changed_from,
            });
        }
        table.insert(date, cells);
    }
    (header, table)
}

/// The calls table: per kind of request, `(made, minimum)` for login, sync 1 and sync 2.
fn calls_table(stdout: &str) -> BTreeMap<String, [(usize, usize); 3]> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("Requests to Exist"))
        .skip(2)
        .take_while(|l| l.contains(" / "))
        .map(|line| {
            let (label, counts) = line
                .trim()
                .split_at(line.trim().find(char::is_numeric).unwrap());
            let n: Vec<usize> = counts
                .split_whitespace()
                .filter_map(|t| t.parse().ok())
                .collect();
            assert_eq!(n.len(), 6, "made / minimum for three steps: {line:?}");
            (
                label.trim().to_owned(),
                [(n[0], n[1]), (n[2], n[3]), (n[4], n[5])],
            )
        })
        .collect()
}

#[test]
fn the_demo_shows_the_whole_loop_and_cleans_up() {
    let tz: Tz = TIMEZONE.parse().unwrap();
    let day_before = today(tz);
    let started = std::time::Instant::now();
    let output = assert_cmd::Command::cargo_bin("exist-agent")
        .unwrap()
        .env_remove("RUST_LOG")
        .env_remove("EXIST_AGENT_CONFIG")
        .arg("demo")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the demo takes seconds"
    );
    if today(tz) != day_before {
        eprintln!("midnight passed in {TIMEZONE} during the demo; its days moved: not checked");
        return;
    }

    // Logs at the default level stay out of the way; no secret is shown.
    assert!(!stderr.contains("INFO"), "info logs on stderr:\n{stderr}");
    for secret in ["sandbox-secret", "code=", "state=", "access_token"] {
        assert!(!stdout.contains(secret), "{secret} printed:\n{stdout}");
    }
    assert!(stdout.contains("No Exist account is touched"));
    assert!(
        stdout.contains("README"),
        "says how to connect a real account"
    );

    // The temporary directory named in the intro is gone.
    let dir = stdout
        .split("every file lives in ")
        .nth(1)
        .and_then(|rest| rest.split(" until").next())
        .expect("the intro names the temporary directory");
    assert!(dir.contains("exist-agent-demo"), "{dir}");
    assert!(!std::path::Path::new(dir).exists(), "{dir} was left behind");

    // A late-evening walk is on another day in UTC: the totals below count it on the user's day.
    let late = rows(WALKS).into_iter().any(|row| {
        let date = day_before + chrono::Duration::days(row[1].parse().unwrap());
        let time = NaiveTime::parse_from_str(row[2], "%H:%M").unwrap();
        let local = tz.from_local_datetime(&date.and_time(time)).unwrap();
        local.date_naive() != local.to_utc().date_naive()
    });
    assert!(
        late,
        "the sample has a walk whose UTC day is not the user's"
    );

    let (attributes, table) = values_table(&stdout);
    assert_eq!(attributes.len(), 2, "{attributes:?}");
    assert_eq!(attributes[0], "steps");
    assert!(attributes[1].contains("coffee"), "{attributes:?}");
    let expected = [expected_steps(), expected_coffees()];
    let week: Vec<i64> = expected[0].keys().copied().collect();
    assert_eq!(week, (-7..=-1).collect::<Vec<_>>(), "a week of steps");
    let mut changed = 0;
    for offset in &week {
        let date = day_before + chrono::Duration::days(*offset);
        let cells = table
            .get(&date)
            .unwrap_or_else(|| panic!("no row for {date}:\n{stdout}"));
        for (cell, expected) in cells.iter().zip(&expected) {
            let e = expected[offset];
            assert_eq!(cell.value, Some(e.last), "{date}:\n{stdout}");
            let marked = (e.first != e.last).then_some(Some(e.first));
            assert_eq!(cell.changed_from, marked, "{date}: change mark\n{stdout}");
            changed += usize::from(marked.is_some());
        }
    }
    assert!(
        changed > 0,
        "the second sync changed the days the sample changes"
    );
    // Today is in every run's window; the sample has nothing there.
    let extra: Vec<_> = table
        .keys()
        .filter(|d| !week.contains(&(**d - day_before).num_days()))
        .collect();
    assert!(
        extra.iter().all(|d| **d == day_before),
        "rows beyond the sample's week and today: {extra:?}"
    );
    if let Some(cells) = table.get(&day_before) {
        assert_eq!(cells[0].value, None, "no steps today");
        assert!(
            cells.iter().all(|c| c.changed_from.is_none()),
            "nothing changed today"
        );
    }
    let first_sync_values = table
        .values()
        .flatten()
        .filter(|c| c.value.is_some() && c.changed_from != Some(None))
        .count();

    let calls = calls_table(&stdout);
    let row = |label: &str| {
        *calls
            .get(label)
            .unwrap_or_else(|| panic!("no {label} row:\n{stdout}"))
    };
    assert_eq!(row("token: code exchange"), [(1, 1), (0, 0), (0, 0)]);
    assert_eq!(row("token: refresh"), [(0, 0); 3]);
    assert_eq!(row("profile"), [(0, 0), (1, 1), (0, 0)]);
    assert_eq!(row("acquire"), [(0, 0), (1, 1), (0, 0)]);
    assert_eq!(row("create"), [(0, 0), (1, 1), (0, 0)]);
    let updates = |n: usize| n.div_ceil(MAX_BATCH);
    assert_eq!(
        row("update"),
        [
            (0, 0),
            (updates(first_sync_values), updates(first_sync_values)),
            (updates(changed), updates(changed)),
        ]
    );
    assert_eq!(
        row("values sent")[1],
        (first_sync_values, first_sync_values)
    );
    assert_eq!(row("values sent")[2], (changed, changed));
    assert_eq!(row("other"), [(0, 0); 3]);
}

use chrono::TimeZone;

use std::collections::BTreeSet;

use super::*;

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn cron(expr: &str) -> Plan {
    Plan::new(&Schedule::Cron(expr.into()), 17).unwrap()
}

#[test]
fn install_minute_is_stable_and_never_zero() {
    // Golden values: a change here would move every existing install's minute.
    assert_eq!(install_minute("/home/ann/.local/state/exist-agent:ann"), 21);
    assert_eq!(install_minute(""), 57);
    let mut seen = BTreeSet::new();
    for i in 0..5000 {
        let seed = format!("/home/user{i}/.local/state/exist-agent:user{i}");
        let minute = install_minute(&seed);
        assert!((1..=59).contains(&minute), "{seed} gave {minute}");
        assert_eq!(minute, install_minute(&seed));
        seen.insert(minute);
    }
    // Spread over the whole hour, so installs do not bunch up.
    assert_eq!(seen.len(), 59);
}

#[test]
fn hourly_fires_at_the_install_minute() {
    let plan = Plan::new(&Schedule::Hourly, 17).unwrap();
    assert_eq!(
        plan.next_after(at(2026, 3, 10, 9, 0, 0)),
        at(2026, 3, 10, 9, 17, 0)
    );
    // Exactly at the fire time: the next one, an hour later.
    assert_eq!(
        plan.next_after(at(2026, 3, 10, 9, 17, 0)),
        at(2026, 3, 10, 10, 17, 0)
    );
    assert_eq!(
        plan.next_after(at(2026, 3, 10, 9, 16, 59)),
        at(2026, 3, 10, 9, 17, 0)
    );
    assert_eq!(
        plan.next_after(at(2026, 12, 31, 23, 30, 0)),
        at(2027, 1, 1, 0, 17, 0)
    );
    assert_eq!(plan.to_cron6(), "0 17 * * * *");
    assert_eq!(plan.to_string(), "hourly at minute 17 (UTC)");
}

#[test]
fn daily_fires_at_three_utc_and_the_install_minute() {
    let plan = Plan::new(&Schedule::Daily, 42).unwrap();
    assert_eq!(
        plan.next_after(at(2026, 3, 10, 1, 0, 0)),
        at(2026, 3, 10, 3, 42, 0)
    );
    assert_eq!(
        plan.next_after(at(2026, 3, 10, 3, 42, 0)),
        at(2026, 3, 11, 3, 42, 0)
    );
    assert_eq!(
        plan.next_after(at(2026, 2, 28, 12, 0, 0)),
        at(2026, 3, 1, 3, 42, 0)
    );
    assert_eq!(plan.to_cron6(), "0 42 3 * * *");
    assert_eq!(plan.to_string(), "daily at 03:42 UTC");
}

#[test]
fn five_field_cron_gets_a_seconds_field() {
    let plan = cron("30 */6 * * *");
    assert_eq!(plan.to_cron6(), "0 30 */6 * * *");
    assert_eq!(
        plan.next_after(at(2026, 3, 10, 6, 30, 0)),
        at(2026, 3, 10, 12, 30, 0)
    );
    assert_eq!(
        plan.next_after(at(2026, 3, 10, 19, 0, 0)),
        at(2026, 3, 11, 0, 30, 0)
    );
}

#[test]
fn six_field_cron_keeps_its_seconds() {
    let plan = cron("15 5 8 * * MON-FRI");
    assert_eq!(plan.to_cron6(), "15 5 8 * * MON-FRI");
    // 2026-03-13 is a Friday: the next match is Monday 16th.
    assert_eq!(
        plan.next_after(at(2026, 3, 13, 9, 0, 0)),
        at(2026, 3, 16, 8, 5, 15)
    );
}

#[test]
fn nicknames_become_six_fields() {
    assert_eq!(cron("@hourly").to_cron6(), "0 0 * * * *");
    assert_eq!(cron("@DAILY").to_cron6(), "0 0 0 * * *");
    assert_eq!(cron("@weekly").to_cron6(), "0 0 0 * * 0");
}

#[test]
fn day_of_month_or_day_of_week_as_in_classic_cron() {
    // Noon on the 10th, and noon on Fridays. 2026-11-01 is a Sunday.
    let plan = cron("0 12 10 * FRI");
    let first = plan.next_after(at(2026, 11, 1, 0, 0, 0));
    assert_eq!(
        first,
        at(2026, 11, 6, 12, 0, 0),
        "a Friday that is not the 10th"
    );
    let second = plan.next_after(first);
    assert_eq!(second, at(2026, 11, 10, 12, 0, 0), "the 10th, a Tuesday");
    assert_eq!(plan.next_after(second), at(2026, 11, 13, 12, 0, 0));
    // The watchdog's catch-up sees the 6th although the scheduler (AND) would not tick then.
    assert!(plan.missed(Some(at(2026, 11, 1, 0, 0, 0)), at(2026, 11, 6, 12, 0, 30)));
}

#[test]
fn bad_cron_expressions_are_refused_with_the_expression_named() {
    for expr in [
        "* * * *",
        "0 0 * * * * 2030",
        "61 * * * *",
        "@reboot",
        "x y z a b",
    ] {
        let err = Plan::new(&Schedule::Cron(expr.into()), 17).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(expr), "{text}");
        assert!(text.contains("write 5 fields"), "{text}");
    }
    let err = Plan::new(&Schedule::Cron("0 0 30 2 *".into()), 17).unwrap_err();
    assert!(matches!(err, ScheduleError::NeverFires { .. }), "{err}");
}

#[test]
fn catch_up_after_sleep_is_one_run() {
    let plan = Plan::new(&Schedule::Hourly, 17).unwrap();
    let last = at(2026, 3, 10, 9, 17, 5);
    assert!(!plan.missed(Some(last), at(2026, 3, 10, 10, 16, 59)));
    assert!(plan.missed(Some(last), at(2026, 3, 10, 10, 17, 0)));
    // Asleep for five hours: owed, once. The run resets the reference, so nothing more is owed.
    let woke = at(2026, 3, 10, 14, 40, 0);
    assert!(plan.missed(Some(last), woke));
    assert!(!plan.missed(Some(woke), woke + TimeDelta::minutes(36)));
    assert!(plan.missed(Some(woke), woke + TimeDelta::minutes(37)));
    assert!(plan.missed(None, woke), "never ran: owed a run");
}

#[test]
fn next_run_is_now_when_a_run_is_owed() {
    let plan = Plan::new(&Schedule::Hourly, 17).unwrap();
    let now = at(2026, 3, 10, 14, 40, 0);
    assert_eq!(plan.next_run(Some(at(2026, 3, 10, 9, 17, 5)), now), now);
    assert_eq!(plan.next_run(None, now), now);
    assert_eq!(
        plan.next_run(Some(at(2026, 3, 10, 14, 17, 1)), now),
        at(2026, 3, 10, 15, 17, 0)
    );
}

#[test]
fn source_due_tolerates_a_little_early() {
    let now = at(2026, 3, 10, 10, 17, 0);
    let hour = Some(Duration::from_secs(3600));
    assert!(source_due(None, Some(now), now), "no `every`: every run");
    assert!(source_due(hour, None, now), "never pulled");
    let ago = |s: i64| Some(now - TimeDelta::seconds(s));
    assert!(source_due(hour, ago(3598), now), "59m58s is an hour");
    assert!(
        source_due(hour, ago(55 * 60), now),
        "5 minutes early is tolerated"
    );
    assert!(!source_due(hour, ago(55 * 60 - 1), now));
    assert!(!source_due(hour, ago(30 * 60), now));
    // The tolerance is a tenth of `every` for short periods: 1 minute of 10.
    let ten = Some(Duration::from_secs(600));
    assert!(source_due(ten, ago(540), now));
    assert!(!source_due(ten, ago(539), now));
    // A daily source keeps the five-minute cap.
    let day = Some(Duration::from_secs(86_400));
    assert!(source_due(day, ago(86_400 - 300), now));
    assert!(!source_due(day, ago(86_400 - 301), now));
    assert!(
        source_due(hour, Some(now + TimeDelta::hours(2)), now),
        "clock set back"
    );
}

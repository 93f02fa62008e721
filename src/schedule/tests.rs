use std::sync::atomic::{AtomicBool, Ordering};

use chrono::TimeZone;
use tokio::sync::{mpsc, oneshot};

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

/// Runs the loop (without the cron scheduler) with a sync that reports each request on a channel
/// and answers with the next outcome from `outcomes` (success once they run out).
fn spawn_loop(
    daemon: Daemon,
    outcomes: Vec<Result<(), String>>,
    gate: Option<Arc<tokio::sync::Semaphore>>,
) -> (
    mpsc::UnboundedReceiver<(RunRequest, Instant)>,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (runs_tx, runs) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let outcomes = Arc::new(Mutex::new(outcomes.into_iter()));
    let sync = move |request: RunRequest| {
        let runs_tx = runs_tx.clone();
        let outcomes = Arc::clone(&outcomes);
        let gate = gate.clone();
        async move {
            runs_tx.send((request, Instant::now())).unwrap();
            if let Some(gate) = gate {
                gate.acquire().await.unwrap().forget();
            }
            outcomes.lock().unwrap().next().unwrap_or(Ok(()))
        }
    };
    let handle = tokio::spawn(daemon.run_loop(sync, async {
        let _ = stopped.await;
    }));
    (runs, stop, handle)
}

/// A plan that will not fire during a test: yearly, at a time just ran.
fn quiet() -> Daemon {
    Daemon::new(cron("0 0 1 1 *"), Some(Utc::now()))
}

#[tokio::test(start_paused = true)]
async fn missed_time_at_start_runs_once() {
    let plan = Plan::new(&Schedule::Hourly, 17).unwrap();
    let daemon = Daemon::new(plan, Some(Utc::now() - TimeDelta::hours(5)));
    let status = daemon.status();
    let (mut runs, stop, handle) = spawn_loop(daemon, vec![], None);
    let (first, _) = runs.recv().await.unwrap();
    assert_eq!(first.reason, Reason::CatchUp);
    // Ten watchdog intervals later, still one run.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(runs.try_recv().is_err());
    let seen = status.borrow().clone();
    assert!(seen.last_run.is_some() && seen.last_success == seen.last_run);
    assert!(!seen.running);
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn requests_during_a_sync_become_one_follow_up() {
    let daemon = quiet();
    let trigger = daemon.trigger();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (mut runs, stop, handle) = spawn_loop(daemon, vec![], Some(Arc::clone(&gate)));
    trigger.source("health");
    let (first, _) = runs.recv().await.unwrap();
    assert_eq!(first.reason, Reason::Notified);
    assert_eq!(first.sources, BTreeSet::from(["health".to_owned()]));
    // Three requests and a tick arrive while the first sync runs.
    trigger.source("coffee");
    trigger.source("health");
    trigger.source("coffee");
    trigger.tick();
    gate.add_permits(2);
    let (second, _) = runs.recv().await.unwrap();
    assert_eq!(second.reason, Reason::Notified, "the tick owed nothing");
    assert_eq!(
        second.sources,
        BTreeSet::from(["coffee".to_owned(), "health".to_owned()])
    );
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert!(runs.try_recv().is_err(), "exactly one follow-up");
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_tick_runs_only_when_a_fire_time_passed() {
    let plan = Plan::new(&Schedule::Hourly, 17).unwrap();
    let daemon = Daemon::new(plan, Some(Utc::now() - TimeDelta::hours(2)));
    let trigger = daemon.trigger();
    let (mut runs, stop, handle) = spawn_loop(daemon, vec![], None);
    assert_eq!(runs.recv().await.unwrap().0.reason, Reason::CatchUp);
    // A late or duplicate tick right after the catch-up: nothing owed.
    trigger.tick();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(runs.try_recv().is_err());
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_and_fold_requests_into_the_retry() {
    let daemon = Daemon::new(cron("0 0 1 1 *"), None);
    let trigger = daemon.trigger();
    let status = daemon.status();
    let failure = || Err("exist.io unreachable".to_owned());
    let outcomes = vec![
        failure(),
        failure(),
        failure(),
        failure(),
        failure(),
        failure(),
    ];
    let (mut runs, stop, handle) = spawn_loop(daemon, outcomes, None);
    let (first, mut previous) = runs.recv().await.unwrap();
    assert_eq!(first.reason, Reason::CatchUp);
    let mut gaps = Vec::new();
    for attempt in 1..=6 {
        if attempt == 2 {
            // A notification while backing off waits for the retry instead of running now.
            trigger.source("coffee");
        }
        let (request, when) = runs.recv().await.unwrap();
        assert_eq!(request.reason, Reason::Retry { attempt });
        if attempt == 2 {
            assert_eq!(request.sources, BTreeSet::from(["coffee".to_owned()]));
        }
        gaps.push((when - previous).as_secs());
        previous = when;
    }
    assert_eq!(gaps, [60, 120, 240, 480, 960, 1800]);
    // The sixth retry succeeded: back to the schedule, no more runs.
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert!(runs.try_recv().is_err());
    let seen = status.borrow().clone();
    assert_eq!(seen.failures, 0);
    assert_eq!(seen.last_error, None);
    assert!(seen.last_success.is_some());
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failure_is_visible_in_the_status() {
    let daemon = Daemon::new(cron("0 0 1 1 *"), None);
    let mut status = daemon.status();
    let (mut runs, stop, handle) = spawn_loop(daemon, vec![Err("HTTP 503".into())], None);
    runs.recv().await.unwrap();
    let seen = status.wait_for(|s| s.failures == 1).await.unwrap().clone();
    assert_eq!(seen.last_error.as_deref(), Some("HTTP 503"));
    assert!(seen.next_run > Utc::now() + TimeDelta::seconds(50));
    assert_eq!(seen.last_success, None);
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test]
async fn shutdown_waits_for_the_sync_in_flight() {
    let daemon = quiet();
    let trigger = daemon.trigger();
    let finished = Arc::new(AtomicBool::new(false));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = Arc::clone(&finished);
    let sync = move |_request: RunRequest| {
        let done = Arc::clone(&done);
        let started_tx = started_tx.clone();
        async move {
            started_tx.send(()).unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            done.store(true, Ordering::SeqCst);
            Ok::<(), String>(())
        }
    };
    let handle = tokio::spawn(daemon.run_loop(sync, async {
        let _ = stopped.await;
    }));
    trigger.source("health");
    started.recv().await.unwrap();
    // Shutdown and one more request arrive mid-sync: the sync finishes, nothing follows.
    trigger.source("coffee");
    stop.send(()).unwrap();
    handle.await.unwrap();
    assert!(finished.load(Ordering::SeqCst));
    assert!(started.try_recv().is_err());
}

#[tokio::test]
async fn idle_shutdown_is_prompt() {
    let (stop, stopped) = oneshot::channel::<()>();
    let daemon = quiet();
    let handle = tokio::spawn(run_daemon_for_test(daemon, stopped));
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("the daemon stops within seconds")
        .unwrap()
        .unwrap();
}

async fn run_daemon_for_test(
    daemon: Daemon,
    stopped: oneshot::Receiver<()>,
) -> Result<(), ScheduleError> {
    daemon
        .run(|_request| async { Ok::<(), String>(()) }, async {
            let _ = stopped.await;
        })
        .await
}

#[tokio::test]
async fn the_cron_scheduler_ticks_into_the_loop() {
    // Every second, so the real scheduler (which checks the clock every 500 ms) ticks soon; the
    // watchdog is slowed down so that only the scheduler can cause runs.
    let daemon = Daemon::new(cron("* * * * * *"), Some(Utc::now()))
        .watchdog_every(Duration::from_secs(3600));
    let (runs_tx, mut runs) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let sync = move |request: RunRequest| {
        let runs_tx = runs_tx.clone();
        async move {
            runs_tx.send(request.reason).unwrap();
            Ok::<(), String>(())
        }
    };
    let handle = tokio::spawn(daemon.run(sync, async {
        let _ = stopped.await;
    }));
    // The watchdog's immediate first check may catch up a second that just passed; every later
    // run can only come from the scheduler.
    let mut reasons = Vec::new();
    while reasons.len() < 2 {
        let reason = tokio::time::timeout(Duration::from_secs(5), runs.recv())
            .await
            .expect("the scheduler ticks within seconds")
            .unwrap();
        reasons.push(reason);
    }
    assert_eq!(reasons[1], Reason::Scheduled, "{reasons:?}");
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

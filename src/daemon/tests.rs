use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, oneshot};

use chrono::TimeDelta;

use super::*;
use crate::schedule::{Plan, Schedule};

fn cron(expr: &str) -> Plan {
    Plan::new(&Schedule::Cron(expr.into()), 17).unwrap()
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

async fn run_daemon_for_test(daemon: Daemon, stopped: oneshot::Receiver<()>) -> Result<()> {
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

//! The long-running agent, `exist-agent run`: syncs on the schedule (hourly by default, at this
//! install's minute), catches up once after the machine slept, accepts signed notifications that
//! ask for one source, and on SIGINT/SIGTERM lets the batch in flight finish, then exits 0.
//!
//! Every sync takes the same run lock as `run --once`, so the daemon never overlaps with a run
//! started by a timer or by hand.
//!
//! The loop ([`Daemon`]) is one task fed by tokio-cron-scheduler ticks, a watchdog that catches
//! up missed fire times (sleep, a scheduler job that stopped firing), and notifications; the
//! decisions it makes between runs ([`LoopState`]) are pure and tested without a clock.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::alerts;
use crate::config::Config;
use crate::context::{run_lock, runtime, Session};
use crate::error::{Error, ErrorKind, Result};
use crate::schedule::Plan;
use crate::store::Store;
use crate::sync::{self, SyncOptions};

/// Runs the daemon until a signal stops it.
pub fn run(config: &Config) -> Result<()> {
    let plan = config.agent.schedule.clone();
    let last_run = last_run(&Store::open(&config.state_dir())?)?;
    let daemon = Daemon::new(plan, last_run);
    let (stop_tx, stop_rx) = watch::channel(false);
    runtime()?.block_on(async {
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stopping: finishing the batch in flight");
            let _ = stop_tx.send(true);
        });
        if let Some(addr) = config.agent.listen {
            listen_for_notifications(config, addr, daemon.trigger(), stopped(stop_rx.clone()))
                .await?;
        }
        daemon
            .run(
                |request| sync_once(config, request, stop_rx.clone()),
                stopped(stop_rx.clone()),
            )
            .await
    })
}

/// The start of the last scheduled (not notified) run, as stored.
pub fn last_run(store: &Store) -> Result<Option<DateTime<Utc>>> {
    Ok(store.read().daemon_last_run()?)
}

/// A future that resolves when `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Starts the listener: signed notifications and inbox deliveries become runs of the named
/// source.
async fn listen_for_notifications(
    config: &Config,
    addr: std::net::SocketAddr,
    trigger: Trigger,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let notify = match &config.agent.notify_secret {
        Some(secret) => {
            let secret = secret
                .resolve()
                .map_err(|e| Error::new(ErrorKind::Config, e))?;
            let sources = config.sources.iter().map(|s| s.name.clone());
            Some(crate::notify::NotifyConfig::new(secret, sources))
        }
        None => None,
    };
    let inboxes = crate::inbox::Inboxes::from_config(config)?;
    let listener = crate::notify::bind(addr, config.agent.listen_remote).await?;
    tracing::info!(addr = %listener.local_addr(), "listening");
    let (tx, mut rx) = mpsc::channel(16);
    let endpoints = crate::notify::Endpoints { notify, inboxes };
    tokio::spawn(async move {
        if let Err(e) = crate::notify::serve(listener, endpoints, tx, shutdown).await {
            tracing::error!("the listener stopped: {e}");
        }
    });
    tokio::spawn(async move {
        while let Some(source) = rx.recv().await {
            trigger.source(source);
        }
    });
    Ok(())
}

/// One sync for the daemon: under the run lock, like `run --once`. A full run (not one for
/// notified sources only) tells `crate::alerts` how it went, as `run --once` does.
async fn sync_once(
    config: &Config,
    request: RunRequest,
    stop: watch::Receiver<bool>,
) -> RunOutcome {
    let full = request.is_full();
    let (outcome, told) = match sync_locked(config, request, stop).await {
        Ok(done) => done,
        Err(e) => {
            let told = alerts::RunResult::of(&Err(e), BTreeSet::new());
            let failure = match &told {
                alerts::RunResult::Failure { message, .. } => Some(message.clone()),
                alerts::RunResult::Success => None,
            };
            let outcome = RunOutcome {
                failed_sources: BTreeSet::new(),
                failure,
            };
            (outcome, told)
        }
    };
    if full {
        alerts::after_run(config, &told).await;
    }
    outcome
}

async fn sync_locked(
    config: &Config,
    request: RunRequest,
    stop: watch::Receiver<bool>,
) -> Result<(RunOutcome, alerts::RunResult)> {
    let state_dir = config.state_dir();
    let _lock = tokio::task::spawn_blocking(move || run_lock(&state_dir))
        .await
        .map_err(|e| Error::caused(ErrorKind::Failed, "the lock thread failed", e))??;
    let mut session = Session::open(config)?;
    let started = Utc::now();
    let full = request.is_full();
    let options = SyncOptions {
        only_sources: (!full).then(|| request.sources.clone()),
        forced_sources: request.sources,
        skip_sources: request.skip,
        stop: Some(stop),
        ..SyncOptions::default()
    };
    let run = sync::sync(config, &mut session.store, &session.client, &options).await;
    if full {
        session
            .store
            .transaction(|tx| tx.set_daemon_last_run(started))?;
    }
    let failed_sources = run.failed_sources();
    let beyond = run.failed_beyond_sources();
    let result = run.finish();
    if let Err(e) = &result {
        tracing::warn!("{e}");
    }
    let told = alerts::RunResult::of(&result, failed_sources.clone());
    let outcome = RunOutcome {
        failed_sources,
        failure: beyond
            .then(|| result.err().map(|e| e.to_string()))
            .flatten(),
    };
    Ok((outcome, told))
}

/// Why the daemon runs a sync; given to the sync closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A scheduled time came (the scheduler's tick).
    Scheduled,
    /// A scheduled time passed without a run (sleep, a stopped scheduler job, or the daemon
    /// starting after one): run once now.
    CatchUp,
    /// The previous run failed; this is retry number `attempt` (1 for the first retry).
    Retry {
        /// How many retries, this one included, since the last success.
        attempt: u32,
    },
    /// Only notifications asked for this run (see [`RunRequest::sources`]).
    Notified,
    /// Sources that failed are tried again after their backoff (this run is for them only).
    SourceRetry,
}

/// What the daemon asks the sync engine to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    /// Why this run happens.
    pub reason: Reason,
    /// Sources a notification named, or failed sources whose backoff ended: pull them even when
    /// their own frequency says they are not due (a run for them only, unless scheduled).
    pub sources: BTreeSet<String>,
    /// Sources backing off after they failed: left out of this run.
    pub skip: BTreeSet<String>,
}

/// How one run went, for the loop's next decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutcome {
    /// Sources that failed: each backs off on its own, the others keep their schedule.
    pub failed_sources: BTreeSet<String>,
    /// Why the run failed beyond its sources (Exist, the state): the whole loop backs off.
    pub failure: Option<String>,
}

impl<E: fmt::Display> From<std::result::Result<(), E>> for RunOutcome {
    fn from(result: std::result::Result<(), E>) -> Self {
        Self {
            failed_sources: BTreeSet::new(),
            failure: result.err().map(|e| e.to_string()),
        }
    }
}

/// What the daemon has done and will do next, for `status` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonStatus {
    /// When the last full (non-notified) run started, successful or not.
    pub last_run: Option<DateTime<Utc>>,
    /// When the last successful run started.
    pub last_success: Option<DateTime<Utc>>,
    /// The last failure's message, cleared by a success.
    pub last_error: Option<String>,
    /// Failures in a row since the last success.
    pub failures: u32,
    /// Whether a sync is running now.
    pub running: bool,
    /// When the next run is due: the next fire time, or the retry time after a failure.
    pub next_run: DateTime<Utc>,
}

/// Requests waiting for the sync loop. Every producer merges into this one value, which is how
/// any number of ticks and notifications between two runs become a single run.
#[derive(Debug, Default)]
struct SyncRequests {
    tick: bool,
    sources: BTreeSet<String>,
}

impl SyncRequests {
    fn merge(&mut self, other: SyncRequests) {
        self.tick |= other.tick;
        self.sources.extend(other.sources);
    }
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<SyncRequests>,
    wake: Notify,
}

impl Shared {
    fn push(&self, add: impl FnOnce(&mut SyncRequests)) {
        // A panic while holding this lock cannot leave `SyncRequests` half-updated in a harmful way.
        add(&mut self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        // `notify_one` keeps a permit when the loop is busy, so no request is lost.
        self.wake.notify_one();
    }

    fn take(&self) -> SyncRequests {
        std::mem::take(&mut self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A handle that asks a running [`Daemon`] for a sync; cheap to clone.
#[derive(Debug, Clone)]
pub struct Trigger(Arc<Shared>);

impl Trigger {
    /// Asks for a sync that pulls `source` now (e.g. from `crate::notify`). Requests made while
    /// a sync runs are merged into one follow-up run.
    pub fn source(&self, source: impl Into<String>) {
        let source = source.into();
        self.0.push(|p| {
            p.sources.insert(source);
        });
    }

    /// A scheduler tick: a run happens only if a fire time passed since the last run.
    fn tick(&self) {
        self.0.push(|p| p.tick = true);
    }
}

/// The `exist-agent run` loop.
///
/// Ticks come from tokio-cron-scheduler (the plan's [`Plan::to_cron6`], in UTC) and from a
/// watchdog interval that runs a catch-up when [`Plan::missed`] says a fire time passed without a
/// run: after the machine slept, and when the scheduler's job stopped firing (its issue 113). All
/// requests feed one loop, so two syncs never overlap in this process, and requests arriving
/// during a sync become at most one follow-up run. A failed sync is retried after 1, 2, 4, ...
/// minutes (at most 30) while scheduled ticks and notifications are folded into that retry.
#[derive(Debug)]
pub struct Daemon {
    plan: Plan,
    shared: Arc<Shared>,
    status: watch::Sender<DaemonStatus>,
    watchdog_every: Duration,
    backoff_first: Duration,
    backoff_cap: Duration,
}

impl Daemon {
    /// A daemon for `plan`. `last_run` is when the previous full run started (from the state
    /// store), so a fire time missed while the daemon was not running is caught up at start.
    pub fn new(plan: Plan, last_run: Option<DateTime<Utc>>) -> Self {
        let now = Utc::now();
        let next_run = plan.next_run(last_run, now);
        let (status, _) = watch::channel(DaemonStatus {
            last_run,
            last_success: None,
            last_error: None,
            failures: 0,
            running: false,
            next_run,
        });
        Self {
            plan,
            shared: Arc::default(),
            status,
            watchdog_every: Duration::from_secs(60),
            backoff_first: Duration::from_secs(60),
            backoff_cap: Duration::from_secs(30 * 60),
        }
    }

    /// How often the watchdog compares the clock with the last run (default one minute).
    #[cfg(test)]
    pub fn watchdog_every(mut self, every: Duration) -> Self {
        self.watchdog_every = every.max(Duration::from_millis(1));
        self
    }

    /// A handle that asks for a sync of named sources, e.g. for [`crate::notify`].
    pub fn trigger(&self) -> Trigger {
        Trigger(Arc::clone(&self.shared))
    }

    /// Follows the daemon's state: last run, next run, failures.
    #[cfg(test)]
    pub fn status(&self) -> watch::Receiver<DaemonStatus> {
        self.status.subscribe()
    }

    /// Runs until `shutdown` resolves, then lets the sync in flight finish and returns.
    ///
    /// `sync` is called for each run; an `Err` is logged (with its `Display`, so it must not
    /// contain secrets) and retried with backoff. Errors only come from starting the scheduler.
    pub async fn run<F, Fut, R>(self, sync: F, shutdown: impl Future<Output = ()>) -> Result<()>
    where
        F: FnMut(RunRequest) -> Fut,
        Fut: Future<Output = R>,
        R: Into<RunOutcome>,
    {
        let mut scheduler = start_ticks(&self.plan.to_cron6(), self.trigger()).await?;
        tracing::info!(schedule = %self.plan, "daemon started");
        self.run_loop(sync, shutdown).await;
        if let Err(e) = scheduler.shutdown().await {
            tracing::warn!(error = %e, "the scheduler did not stop cleanly");
        }
        tracing::info!("daemon stopped");
        Ok(())
    }

    /// The single sync loop, without the cron scheduler (tests drive it with [`Trigger::tick`]).
    async fn run_loop<F, Fut, R>(self, mut sync: F, shutdown: impl Future<Output = ()>)
    where
        F: FnMut(RunRequest) -> Fut,
        Fut: Future<Output = R>,
        R: Into<RunOutcome>,
    {
        tokio::pin!(shutdown);
        let mut watchdog = tokio::time::interval(self.watchdog_every);
        // After a long stall, one check is enough; a burst of checks would find nothing new.
        watchdog.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut state = LoopState::new(self.status.borrow().last_run);
        loop {
            let event = tokio::select! {
                biased;
                () = &mut shutdown => return,
                () = self.shared.wake.notified() => Event::Request(self.shared.take()),
                // The first tick is immediate: the start-up catch-up.
                _ = watchdog.tick() => Event::Watchdog,
                () = sleep_until(state.retry_at), if state.retry_at.is_some() => Event::RetryDue,
                () = sleep_until(state.source_retry_at()), if state.source_retry_at().is_some() => Event::SourceRetryDue,
            };
            let Some(request) = state.decide(&self.plan, event, Utc::now()) else {
                continue;
            };
            if self
                .run_once(&mut sync, request, &mut state, &mut shutdown)
                .await
            {
                return;
            }
        }
    }

    /// Runs one sync to completion and records it; true when shutdown was asked for meanwhile.
    async fn run_once<F, Fut, R>(
        &self,
        sync: &mut F,
        request: RunRequest,
        state: &mut LoopState,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> bool
    where
        F: FnMut(RunRequest) -> Fut,
        Fut: Future<Output = R>,
        R: Into<RunOutcome>,
    {
        let started = Utc::now();
        self.status.send_modify(|s| s.running = true);
        tracing::info!(reason = ?request.reason, sources = ?request.sources, "sync starting");
        let full = request.is_full();
        let (outcome, stopping) = finish_despite_shutdown(sync(request.clone()), shutdown).await;
        let outcome: RunOutcome = outcome.into();
        let backoff = |failures| self.backoff_delay(failures);
        state.record(&request, started, &outcome, backoff);
        for source in &outcome.failed_sources {
            tracing::warn!(source = %source, "the source failed; it backs off on its own while the others keep their schedule");
        }
        self.publish(state, started, full, outcome.failure);
        stopping
    }

    /// The delay before retrying a run that failed after `failures_before` earlier failures.
    fn backoff_delay(&self, failures_before: u32) -> Duration {
        let doublings = failures_before.min(16);
        self.backoff_first
            .saturating_mul(1 << doublings)
            .min(self.backoff_cap)
    }

    /// Logs the run's outcome and updates the status channel.
    fn publish(
        &self,
        state: &LoopState,
        started: DateTime<Utc>,
        full: bool,
        error: Option<String>,
    ) {
        let now = Utc::now();
        let next_run = match state.retry_at {
            Some(at) => now + at.saturating_duration_since(Instant::now()),
            None => self.plan.next_run(state.last_run, now),
        };
        match &error {
            None => tracing::info!(next_run = %next_run, "sync done"),
            Some(e) => tracing::warn!(
                error = %e,
                failures = state.failures,
                retry_at = %next_run,
                "sync failed; will retry"
            ),
        }
        self.status.send_modify(|s| {
            s.running = false;
            s.next_run = next_run;
            s.failures = state.failures;
            if full {
                s.last_run = Some(started);
            }
            match error {
                None => {
                    s.last_success = Some(started);
                    s.last_error = None;
                }
                Some(e) => s.last_error = Some(e),
            }
        });
    }
}

/// What woke the loop.
enum Event {
    Request(SyncRequests),
    Watchdog,
    RetryDue,
    SourceRetryDue,
}

/// A source that failed: how often in a row, and when it is tried again.
#[derive(Debug, Clone, Copy)]
struct SourceBackoff {
    failures: u32,
    retry_at: Instant,
}

impl RunRequest {
    /// Whether this is a run of every source (not one for named sources only), which the
    /// schedule counts as its run.
    pub fn is_full(&self) -> bool {
        !matches!(self.reason, Reason::Notified | Reason::SourceRetry)
    }
}

/// The loop's memory between runs.
struct LoopState {
    /// Start of the last full run, the reference for [`Plan::missed`].
    last_run: Option<DateTime<Utc>>,
    /// Failures in a row.
    failures: u32,
    /// When to retry after a failure; `None` when the last run succeeded.
    retry_at: Option<Instant>,
    /// Requests that arrived while backing off, folded into the retry.
    deferred: SyncRequests,
    /// Sources that failed, each backing off on its own.
    sources: std::collections::BTreeMap<String, SourceBackoff>,
}

impl LoopState {
    fn new(last_run: Option<DateTime<Utc>>) -> Self {
        Self {
            last_run,
            failures: 0,
            retry_at: None,
            deferred: SyncRequests::default(),
            sources: std::collections::BTreeMap::new(),
        }
    }

    /// When the first failed source is due to be tried again.
    fn source_retry_at(&self) -> Option<Instant> {
        self.sources.values().map(|b| b.retry_at).min()
    }

    /// The sources still backing off at `now`.
    fn backing_off(&self, now: Instant) -> BTreeSet<String> {
        self.sources
            .iter()
            .filter(|(_, b)| b.retry_at > now)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The run this event calls for, if any.
    fn decide(&mut self, plan: &Plan, event: Event, now: DateTime<Utc>) -> Option<RunRequest> {
        if self.retry_at.is_some() {
            // Backing off: a tick or a notification must not hammer whatever is failing; the
            // retry is a full run and covers them.
            return match event {
                Event::Request(pending) => {
                    self.deferred.merge(pending);
                    None
                }
                Event::Watchdog | Event::SourceRetryDue => None,
                Event::RetryDue => Some(RunRequest {
                    reason: Reason::Retry {
                        attempt: self.failures,
                    },
                    sources: std::mem::take(&mut self.deferred).sources,
                    skip: self.backing_off(Instant::now()),
                }),
            };
        }
        let skip = self.backing_off(Instant::now());
        let request = match event {
            Event::Request(pending) => {
                let scheduled = pending.tick && plan.missed(self.last_run, now);
                if !scheduled && pending.sources.is_empty() {
                    return None;
                }
                RunRequest {
                    reason: if scheduled {
                        Reason::Scheduled
                    } else {
                        Reason::Notified
                    },
                    sources: pending.sources,
                    skip,
                }
            }
            Event::Watchdog if plan.missed(self.last_run, now) => RunRequest {
                reason: Reason::CatchUp,
                sources: BTreeSet::new(),
                skip,
            },
            Event::SourceRetryDue => {
                let due: BTreeSet<String> = self
                    .sources
                    .keys()
                    .filter(|name| !skip.contains(*name))
                    .cloned()
                    .collect();
                if due.is_empty() {
                    return None;
                }
                RunRequest {
                    reason: Reason::SourceRetry,
                    sources: due,
                    skip,
                }
            }
            Event::Watchdog | Event::RetryDue => return None,
        };
        Some(request)
    }

    /// Remembers a finished run: its own failure backs the loop off; each failed source backs
    /// off on its own, and a source that worked again is forgiven.
    fn record(
        &mut self,
        request: &RunRequest,
        started: DateTime<Utc>,
        outcome: &RunOutcome,
        backoff: impl Fn(u32) -> Duration,
    ) {
        if request.is_full() {
            self.last_run = Some(started);
        }
        if outcome.failure.is_none() {
            self.failures = 0;
            self.retry_at = None;
        } else {
            self.retry_at = Some(Instant::now() + backoff(self.failures));
            self.failures = self.failures.saturating_add(1);
        }
        let tried = |name: &String| {
            if request.is_full() {
                !request.skip.contains(name)
            } else {
                request.sources.contains(name)
            }
        };
        self.sources
            .retain(|name, _| !tried(name) || outcome.failed_sources.contains(name));
        for name in &outcome.failed_sources {
            let failures = self.sources.get(name).map_or(0, |b| b.failures);
            self.sources.insert(
                name.clone(),
                SourceBackoff {
                    failures: failures.saturating_add(1),
                    retry_at: Instant::now() + backoff(failures),
                },
            );
        }
    }
}

/// Sleeps until `at`; only polled when `at` is set.
async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Drives `run` to completion even if `shutdown` resolves first (an interrupted sync would only
/// be redone by the next run, but finishing it is cheaper and is what SPEC.md promises). Returns
/// the result and whether shutdown was requested.
async fn finish_despite_shutdown<T>(
    run: impl Future<Output = T>,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> (T, bool) {
    tokio::pin!(run);
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            out = &mut run => return (out, stopping),
            () = shutdown.as_mut(), if !stopping => {
                stopping = true;
                tracing::info!("shutting down after the sync in flight");
            }
        }
    }
}

/// Starts tokio-cron-scheduler with one job that turns each tick into a request.
async fn start_ticks(cron6: &str, trigger: Trigger) -> Result<JobScheduler> {
    let failed = |action: &'static str| {
        move |e: tokio_cron_scheduler::JobSchedulerError| {
            Error::failed(format!("the scheduler could not {action}: {e}")).with_fix(
                "this is a bug or a resource problem; try again and report it if it persists",
            )
        }
    };
    let scheduler = JobScheduler::new().await.map_err(failed("start"))?;
    let job = Job::new_async(cron6, move |_id, _scheduler| {
        trigger.tick();
        Box::pin(async {})
    })
    .map_err(failed("accept the schedule"))?;
    scheduler.add(job).await.map_err(failed("add the job"))?;
    scheduler.start().await.map_err(failed("start"))?;
    Ok(scheduler)
}

#[cfg(test)]
mod tests;

//! When syncs happen: the schedule's fire times, catch-up after sleep, per-source frequency, and
//! the daemon loop that runs the sync engine on the schedule.
//!
//! All fire times are in UTC. Days are the user's (see `sync`), but the tick that starts a sync
//! needs no timezone: an hourly tick is the same instant everywhere, and keeping it in UTC avoids
//! tokio-cron-scheduler's bug where `_tz` jobs keep a stale UTC offset after a daylight-saving
//! change.
//!
//! The pieces:
//! - [`install_minute`]: a stable minute in `1..=59` per install, so installs do not all hit Exist
//!   at `:00`;
//! - [`Plan`]: a [`Schedule`] resolved to concrete UTC fire times, with [`Plan::next_after`],
//!   [`Plan::missed`] (catch-up) and [`Plan::to_cron6`] (tokio-cron-scheduler's syntax);
//! - [`source_due`]: whether a source with its own `every` is pulled in this run;
//! - [`Daemon`] / [`run_daemon`]: the `exist-agent run` loop.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Notify};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::config::Schedule;

/// The UTC hour of the daily schedule. 03:MM UTC is night in Europe and Africa and evening in the
/// Americas; either way every run re-sends today and yesterday, so each day is complete after at
/// most two daily runs.
pub const DAILY_HOUR_UTC: u32 = 3;

/// The most a source's pull may come early and still count as due: a tenth of its `every`, capped
/// at this. It absorbs the timer's random delay (`RandomizedDelaySec=3min` in the systemd timer)
/// and a slow source earlier in the same run, which would otherwise push an hourly source to every
/// other hour.
pub const SOURCE_DUE_TOLERANCE_MAX: Duration = Duration::from_secs(5 * 60);

/// A stable minute in `1..=59` for this install, derived from `seed`.
///
/// Pass something that identifies the install and does not change, such as the state directory
/// plus the user name. The minute is the first 8 bytes of the seed's SHA-256, big-endian, modulo
/// 59, plus 1: the same on every platform and Rust version (unlike `DefaultHasher`), and never
/// `:00`, when every cron job on the planet already runs.
pub fn install_minute(seed: &str) -> u32 {
    let digest = Sha256::digest(seed.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The remainder is below 59, so the cast cannot truncate.
    (u64::from_be_bytes(first) % 59) as u32 + 1
}

/// Whether a source with its own frequency is pulled now.
///
/// `every: None` means every run. Otherwise the source is due when it was never pulled, when at
/// least `every` minus a tolerance has passed since its last pull (a tenth of `every`, at most
/// [`SOURCE_DUE_TOLERANCE_MAX`]: an hourly source last pulled 59m58s ago is due), or when the last
/// pull is in the future, which means the clock was set back and waiting could starve the source.
pub fn source_due(
    every: Option<Duration>,
    last_pull: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    let (Some(every), Some(last)) = (every, last_pull) else {
        return true;
    };
    if last > now {
        return true;
    }
    let tolerance = (every / 10).min(SOURCE_DUE_TOLERANCE_MAX);
    let elapsed = (now - last).to_std().unwrap_or(Duration::ZERO);
    elapsed + tolerance >= every
}

/// Why a schedule cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("the schedule \"{expr}\" is not a usable cron expression: {reason}; write 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), in UTC, e.g. \"17 * * * *\"")]
    BadCron {
        /// The expression as configured.
        expr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The cron expression parses but matches no future time (e.g. 30 February).
    #[error("the schedule \"{expr}\" never fires (no date matches it); fix agent.schedule in the configuration")]
    NeverFires {
        /// The expression as configured.
        expr: String,
    },
    /// tokio-cron-scheduler failed to start or to accept the job.
    #[error("the scheduler could not {action}: {reason}; this is a bug or a resource problem, try again and report it if it persists")]
    Scheduler {
        /// What was being done.
        action: &'static str,
        /// The scheduler's error.
        reason: String,
    },
}

/// A [`Schedule`] resolved to concrete fire times in UTC.
#[derive(Debug, Clone)]
pub struct Plan {
    kind: PlanKind,
}

#[derive(Debug, Clone)]
enum PlanKind {
    Hourly { minute: u32 },
    Daily { minute: u32 },
    Cron { cron6: String, cron: Box<Cron> },
}

impl Plan {
    /// Resolves `schedule` with this install's `minute` (from [`install_minute`]; a value outside
    /// `1..=59` is clamped into it).
    ///
    /// `Hourly` fires at `HH:minute:00` UTC; `Daily` at [`DAILY_HOUR_UTC`]`:minute:00` UTC; a cron
    /// expression (5 fields, 6 with seconds first, or `@hourly`-style nicknames) fires when it
    /// matches in UTC. A cron expression that restricts both day-of-month and day-of-week matches
    /// when EITHER matches, as in classic (Vixie) cron: `0 12 13 * FRI` is noon on the 13th and
    /// noon on Fridays. A year field (7 fields) is refused.
    pub fn new(schedule: &Schedule, minute: u32) -> Result<Self, ScheduleError> {
        let minute = minute.clamp(1, 59);
        let kind = match schedule {
            Schedule::Hourly => PlanKind::Hourly { minute },
            Schedule::Daily => PlanKind::Daily { minute },
            Schedule::Cron(expr) => {
                let cron6 = cron6_of(expr)?;
                let cron = CronParser::builder()
                    .seconds(Seconds::Required)
                    .year(Year::Disallowed)
                    // Classic cron semantics (day-of-month OR day-of-week); croner's default,
                    // spelled out because tokio-cron-scheduler itself uses AND.
                    .dom_and_dow(false)
                    .build()
                    .parse(&cron6)
                    .map_err(|e| ScheduleError::BadCron {
                        expr: expr.clone(),
                        reason: e.to_string(),
                    })?;
                if cron.find_next_occurrence(&Utc::now(), false).is_err() {
                    return Err(ScheduleError::NeverFires { expr: expr.clone() });
                }
                PlanKind::Cron {
                    cron6,
                    cron: Box::new(cron),
                }
            }
        };
        Ok(Self { kind })
    }

    /// The first fire time strictly after `t`. A cron expression with no later match (past the
    /// year 5000) gives [`DateTime::<Utc>::MAX_UTC`]: never.
    pub fn next_after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        match &self.kind {
            PlanKind::Hourly { minute } => first_after(
                t,
                TimeDelta::hours(1),
                TimeDelta::minutes(i64::from(*minute)),
            ),
            PlanKind::Daily { minute } => first_after(
                t,
                TimeDelta::days(1),
                TimeDelta::hours(i64::from(DAILY_HOUR_UTC))
                    + TimeDelta::minutes(i64::from(*minute)),
            ),
            PlanKind::Cron { cron, .. } => cron
                .find_next_occurrence(&t, false)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// Whether at least one fire time passed after `last_run` and up to `now`, so one catch-up
    /// run is owed (however many were slept through). `None` (never ran) is owed a run too.
    pub fn missed(&self, last_run: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        last_run.is_none_or(|last| self.next_after(last) <= now)
    }

    /// When the next run happens after a run at `last_run`: `now` when one is owed (see
    /// [`Plan::missed`]), else the next fire time. This is what `status` shows as the next run.
    pub fn next_run(&self, last_run: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
        if self.missed(last_run, now) {
            now
        } else {
            self.next_after(now)
        }
    }

    /// The 6-field (seconds first) UTC expression tokio-cron-scheduler needs.
    ///
    /// tokio-cron-scheduler ANDs day-of-month and day-of-week while [`Plan::next_after`] ORs them
    /// (classic cron), so for an expression restricting both its ticks are a subset of the true
    /// fire times; the daemon's watchdog, which uses [`Plan::missed`], runs the others within one
    /// watchdog interval.
    pub fn to_cron6(&self) -> String {
        match &self.kind {
            PlanKind::Hourly { minute } => format!("0 {minute} * * * *"),
            PlanKind::Daily { minute } => format!("0 {minute} {DAILY_HOUR_UTC} * * *"),
            PlanKind::Cron { cron6, .. } => cron6.clone(),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            PlanKind::Hourly { minute } => write!(f, "hourly at minute {minute} (UTC)"),
            PlanKind::Daily { minute } => write!(f, "daily at {DAILY_HOUR_UTC:02}:{minute:02} UTC"),
            PlanKind::Cron { cron6, .. } => write!(f, "cron \"{cron6}\" (UTC)"),
        }
    }
}

/// The first `period start + offset` strictly after `t`, where periods are aligned to the Unix
/// epoch (hours and days in UTC).
fn first_after(t: DateTime<Utc>, period: TimeDelta, offset: TimeDelta) -> DateTime<Utc> {
    // Rounding to an hour or a day cannot fail for dates chrono can represent.
    let start = t.duration_trunc(period).unwrap_or(t);
    let candidate = start + offset;
    if candidate > t {
        candidate
    } else {
        candidate + period
    }
}

/// The 6-field form of a 5- or 6-field expression or an `@nickname`.
fn cron6_of(expr: &str) -> Result<String, ScheduleError> {
    let bad = |reason: String| ScheduleError::BadCron {
        expr: expr.to_owned(),
        reason,
    };
    let trimmed = expr.trim();
    let classic = match trimmed.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => Some("0 0 1 1 *"),
        "@monthly" => Some("0 0 1 * *"),
        "@weekly" => Some("0 0 * * 0"),
        "@daily" | "@midnight" => Some("0 0 * * *"),
        "@hourly" => Some("0 * * * *"),
        other if other.starts_with('@') => {
            return Err(bad(format!(
                "unknown nickname {other}; use @hourly, @daily, @weekly, @monthly or @yearly"
            )))
        }
        _ => None,
    };
    let fields: Vec<&str> = classic.unwrap_or(trimmed).split_whitespace().collect();
    match fields.len() {
        5 => Ok(format!("0 {}", fields.join(" "))),
        6 => Ok(fields.join(" ")),
        n => Err(bad(format!("it has {n} fields"))),
    }
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
}

/// What the daemon asks the sync engine to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    /// Why this run happens.
    pub reason: Reason,
    /// Sources a notification named: pull them even when [`source_due`] says they are not due.
    pub sources: BTreeSet<String>,
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
struct Pending {
    tick: bool,
    sources: BTreeSet<String>,
}

impl Pending {
    fn merge(&mut self, other: Pending) {
        self.tick |= other.tick;
        self.sources.extend(other.sources);
    }
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Notify,
}

impl Shared {
    fn push(&self, add: impl FnOnce(&mut Pending)) {
        // A panic while holding this lock cannot leave `Pending` half-updated in a harmful way.
        add(&mut self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        // `notify_one` keeps a permit when the loop is busy, so no request is lost.
        self.wake.notify_one();
    }

    fn take(&self) -> Pending {
        std::mem::take(&mut self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A handle that asks a running [`Daemon`] for a sync; cheap to clone.
#[derive(Debug, Clone)]
pub struct Trigger(Arc<Shared>);

impl Trigger {
    /// Asks for a sync that pulls `source` now (e.g. from [`crate::notify`]). Requests made while
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
    pub fn watchdog_every(mut self, every: Duration) -> Self {
        self.watchdog_every = every.max(Duration::from_millis(1));
        self
    }

    /// The delay before the first retry after a failure, doubled per failure up to `cap`
    /// (defaults: one minute, thirty minutes).
    pub fn backoff(mut self, first: Duration, cap: Duration) -> Self {
        self.backoff_first = first;
        self.backoff_cap = cap.max(first);
        self
    }

    /// A handle that asks for a sync of named sources, e.g. for [`crate::notify`].
    pub fn trigger(&self) -> Trigger {
        Trigger(Arc::clone(&self.shared))
    }

    /// Follows the daemon's state: last run, next run, failures.
    pub fn status(&self) -> watch::Receiver<DaemonStatus> {
        self.status.subscribe()
    }

    /// Runs until `shutdown` resolves, then lets the sync in flight finish and returns.
    ///
    /// `sync` is called for each run; an `Err` is logged (with its `Display`, so it must not
    /// contain secrets) and retried with backoff. Errors only come from starting the scheduler.
    pub async fn run<F, Fut, E>(
        self,
        sync: F,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ScheduleError>
    where
        F: FnMut(RunRequest) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: fmt::Display,
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
    async fn run_loop<F, Fut, E>(self, mut sync: F, shutdown: impl Future<Output = ()>)
    where
        F: FnMut(RunRequest) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: fmt::Display,
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
    async fn run_once<F, Fut, E>(
        &self,
        sync: &mut F,
        request: RunRequest,
        state: &mut LoopState,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> bool
    where
        F: FnMut(RunRequest) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: fmt::Display,
    {
        let started = Utc::now();
        self.status.send_modify(|s| s.running = true);
        tracing::info!(reason = ?request.reason, sources = ?request.sources, "sync starting");
        let full = request.reason != Reason::Notified;
        let (result, stopping) = finish_despite_shutdown(sync(request), shutdown).await;
        let message = result.err().map(|e| e.to_string());
        let retry_in = self.backoff_delay(state.failures);
        state.record(full, started, message.is_none(), retry_in);
        self.publish(state, started, full, message);
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

/// Runs `sync` for `plan` until `shutdown` resolves: [`Daemon::new`] then [`Daemon::run`].
pub async fn run_daemon<F, Fut, E>(
    plan: Plan,
    last_run: Option<DateTime<Utc>>,
    sync: F,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ScheduleError>
where
    F: FnMut(RunRequest) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: fmt::Display,
{
    Daemon::new(plan, last_run).run(sync, shutdown).await
}

/// What woke the loop.
enum Event {
    Request(Pending),
    Watchdog,
    RetryDue,
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
    deferred: Pending,
}

impl LoopState {
    fn new(last_run: Option<DateTime<Utc>>) -> Self {
        Self {
            last_run,
            failures: 0,
            retry_at: None,
            deferred: Pending::default(),
        }
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
                Event::Watchdog => None,
                Event::RetryDue => Some(RunRequest {
                    reason: Reason::Retry {
                        attempt: self.failures,
                    },
                    sources: std::mem::take(&mut self.deferred).sources,
                }),
            };
        }
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
                }
            }
            Event::Watchdog if plan.missed(self.last_run, now) => RunRequest {
                reason: Reason::CatchUp,
                sources: BTreeSet::new(),
            },
            Event::Watchdog | Event::RetryDue => return None,
        };
        Some(request)
    }

    /// Remembers a finished run.
    fn record(&mut self, full: bool, started: DateTime<Utc>, ok: bool, retry_in: Duration) {
        if full {
            self.last_run = Some(started);
        }
        if ok {
            self.failures = 0;
            self.retry_at = None;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.retry_at = Some(Instant::now() + retry_in);
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
async fn start_ticks(cron6: &str, trigger: Trigger) -> Result<JobScheduler, ScheduleError> {
    let failed = |action| {
        move |e: tokio_cron_scheduler::JobSchedulerError| ScheduleError::Scheduler {
            action,
            reason: e.to_string(),
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

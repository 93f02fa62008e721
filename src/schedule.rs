//! When syncs happen, as pure values: the schedule's fire times in UTC, catch-up after sleep, and
//! whether a source with its own frequency is due. The daemon (`crate::daemon`) runs the loop;
//! this module only decides.
//!
//! All fire times are in UTC. Days are the user's, but the tick that starts a sync needs no
//! timezone: an hourly tick is the same instant everywhere, and keeping it in UTC avoids
//! tokio-cron-scheduler's bug where `_tz` jobs keep a stale UTC offset after a daylight-saving
//! change.
//!
//! - [`install_minute`]: a stable minute in `1..=59` per install, so installs do not all hit Exist
//!   at `:00`;
//! - [`Plan`]: a [`Schedule`] resolved to concrete UTC fire times, with [`Plan::next_after`],
//!   [`Plan::missed`] (catch-up) and [`Plan::to_cron6`] (tokio-cron-scheduler's syntax); the
//!   configuration holds one, checked to fire when the file is read;
//! - [`source_due`]: whether a source with its own `every` is pulled in this run.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use sha2::{Digest, Sha256};

/// When the daemon runs a sync, as written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Once an hour, at a minute fixed per install.
    Hourly,
    /// Once a day.
    Daily,
    /// A cron expression (5 fields, or 6 with seconds), in UTC.
    Cron(String),
}

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
}

/// A [`Schedule`] resolved to concrete fire times in UTC.
#[derive(Debug, Clone)]
pub struct Plan {
    schedule: Schedule,
    /// This install's minute, which the OS timer uses too, whatever the schedule.
    minute: u32,
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
        Ok(Self {
            schedule: schedule.clone(),
            minute,
            kind,
        })
    }

    /// This install's minute past the hour (never :00), which the generated timer uses too.
    pub fn install_minute(&self) -> u32 {
        self.minute
    }

    /// The schedule as configured.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
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

#[cfg(test)]
mod tests;

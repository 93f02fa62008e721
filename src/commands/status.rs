//! `exist-agent status`: what the agent knows, without calling anyone: token expiry, each owned
//! attribute's last 14 days at a glance, each source's last pull and freshness, pending and
//! rejected values with their reasons, the records the last pulls skipped, the hour's requests
//! and the next scheduled run.

use std::fmt::Write;

use chrono::Utc;
use serde::Serialize;

use clap::Args;

use crate::config::Config;
use crate::context::{token_store, Context};
use crate::error::Result;
use crate::store::Store;
use crate::store::HOURLY_LIMIT;
use exist_api::tokens::TokenStore;
use exist_api::types::{Day, Value};

/// Options of `status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// Prints what the agent knows, without calling anyone.
pub fn run(ctx: &Context, args: &StatusArgs) -> Result<()> {
    let config = ctx.config()?;
    let store = Store::open(&config.state_dir())?;
    let tokens = token_store(&config)?;
    let report = collect(&config, &store, &tokens)?;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| {
            crate::error::Error::caused(
                crate::error::ErrorKind::Failed,
                "cannot write the status as JSON",
                e,
            )
        })?;
        println!("{text}");
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

/// Everything `status` shows.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// The configuration file.
    pub config: String,
    /// The state directory.
    pub state_dir: String,
    /// The stored token.
    pub token: TokenStatus,
    /// Attributes owned: (Exist name, configuration key).
    pub owned_attributes: Vec<OwnedStatus>,
    /// Each owned attribute's last [`DAYS_SHOWN`] days, oldest first, ending today.
    pub recent: Vec<RecentStatus>,
    /// Per configured source.
    pub sources: Vec<SourceStatus>,
    /// Values waiting to be sent.
    pub pending: Vec<ValueStatus>,
    /// Values Exist or a local check refused.
    pub rejected: Vec<RejectedStatus>,
    /// Records the sources' last pulls skipped, with why.
    pub skipped: Vec<SkippedStatus>,
    /// Requests made to Exist in this UTC hour.
    pub requests_this_hour: u32,
    /// Requests left in this UTC hour.
    pub requests_left: u32,
    /// When the hour's count starts again (RFC 3339).
    pub budget_resets_at: String,
    /// The hour's limit.
    pub hourly_limit: u32,
    /// Whether Exist said 429 this hour.
    pub rate_limited: bool,
    /// The next scheduled run (UTC), for the daemon's schedule.
    pub next_run: String,
}

/// The token as stored.
#[derive(Debug, Serialize)]
pub struct TokenStatus {
    /// Where it lives.
    pub store: String,
    /// Whether one is stored.
    pub present: bool,
    /// When it expires (RFC 3339), if known.
    pub expires_at: Option<String>,
    /// Whether it can be refreshed.
    pub refreshable: bool,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// Scopes the configuration needs that were not granted.
    pub missing_scopes: Vec<String>,
}

/// An owned attribute.
#[derive(Debug, Serialize)]
pub struct OwnedStatus {
    /// Its Exist name.
    pub name: String,
    /// The configuration's key.
    pub key: String,
}

/// A source's pull state.
#[derive(Debug, Serialize)]
pub struct SourceStatus {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// When it was last pulled.
    pub last_pull: Option<String>,
    /// Its cursor.
    pub updated_since: Option<String>,
    /// Records stored.
    pub records: u64,
    /// Why the last pull failed.
    pub last_error: Option<String>,
    /// The source asked to be left alone until then (`Retry-After`).
    pub waiting_until: Option<String>,
    /// An inbox's last delivery (`null` for other kinds, or before the first).
    pub last_delivery: Option<crate::store::Delivered>,
    /// The newest day it has a record on.
    pub newest_record_day: Option<Day>,
    /// Its `stale_after`, as written back (`3days`), if it has one.
    pub stale_after: Option<String>,
    /// Whether its newest record is older than `stale_after`.
    pub stale: bool,
}

/// How many days `status` shows per attribute.
pub const DAYS_SHOWN: usize = 14;

/// An owned attribute's recent days.
#[derive(Debug, Serialize)]
pub struct RecentStatus {
    /// Its Exist name.
    pub attribute: String,
    /// One entry per day, oldest first.
    pub days: Vec<DayStatus>,
}

/// One day of an attribute.
#[derive(Debug, Serialize)]
pub struct DayStatus {
    /// The day.
    pub day: Day,
    /// What Exist acknowledged.
    pub value: Option<Value>,
    /// What waits to be sent (it replaces `value` once Exist acknowledges it).
    pub pending: Option<Value>,
}

impl DayStatus {
    /// What Exist holds once the outbox is sent.
    fn shown(&self) -> Option<&Value> {
        self.pending.as_ref().or(self.value.as_ref())
    }
}

/// A record a source's last pull skipped.
#[derive(Debug, Serialize)]
pub struct SkippedStatus {
    /// The source.
    pub source: String,
    /// Where the record is.
    pub location: String,
    /// Why it was skipped.
    pub reason: String,
}

/// A pending value.
#[derive(Debug, Serialize)]
pub struct ValueStatus {
    /// Attribute.
    pub attribute: String,
    /// Day.
    pub day: String,
    /// Value (JSON).
    pub value: serde_json::Value,
    /// Send attempts so far.
    pub attempts: u32,
    /// Why it is still waiting.
    pub reason: String,
}

/// A rejected value.
#[derive(Debug, Serialize)]
pub struct RejectedStatus {
    /// Attribute.
    pub attribute: String,
    /// Day.
    pub day: String,
    /// Value (JSON).
    pub value: String,
    /// Error code.
    pub error_code: String,
    /// Error text.
    pub error: String,
    /// When.
    pub at: String,
}

/// Gathers the report from the configuration, the state and the token store.
pub fn collect(config: &Config, store: &Store, tokens: &TokenStore) -> Result<StatusReport> {
    let read = store.read();
    let pair = tokens.load()?;
    let needed = config.scopes();
    let token = TokenStatus {
        store: tokens.describe(),
        present: pair.is_some(),
        expires_at: pair
            .as_ref()
            .and_then(|p| p.expires_at)
            .map(|t| t.to_rfc3339()),
        refreshable: pair.as_ref().is_some_and(|p| p.refresh_token.is_some()),
        missing_scopes: match &pair {
            Some(p) => needed
                .iter()
                .filter(|s| !p.scopes.contains(s))
                .cloned()
                .collect(),
            None => needed.clone(),
        },
        scopes: pair.map(|p| p.scopes).unwrap_or_default(),
    };
    let now = Utc::now();
    let freshness = crate::alerts::freshness(config, store, now)?;
    let mut sources = Vec::new();
    for (source, fresh) in config.sources.iter().zip(freshness) {
        let cursor = read.cursor(&source.name)?;
        sources.push(SourceStatus {
            name: source.name.clone(),
            kind: source.kind.name().to_owned(),
            last_pull: cursor.last_pull_at.map(|t| t.to_rfc3339()),
            updated_since: cursor.updated_since.map(|t| t.to_rfc3339()),
            records: match source.kind.pull_mode() {
                // A source read whole keeps no records, only how many it had.
                crate::config::PullMode::Whole => read.whole_source_records(&source.name)?,
                crate::config::PullMode::Incremental | crate::config::PullMode::Pushed => {
                    read.record_count(&source.name)?
                }
            },
            waiting_until: cursor.retry_at.map(|t| t.to_rfc3339()),
            last_error: cursor.last_error,
            last_delivery: read.last_delivery(&source.name)?,
            newest_record_day: fresh.newest_day,
            stale_after: fresh
                .stale_after
                .map(|d| humantime::format_duration(d).to_string()),
            stale: fresh.stale,
        });
    }
    let budget = read.budget(now)?;
    let today = crate::sync::known_timezone(config, store)
        .map(|tz| {
            crate::sync::DayBasis {
                tz,
                day_starts: config.agent.day_starts,
            }
            .today()
        })
        .unwrap_or_else(|| Day::new(now.date_naive()));
    let owned = read.owned_attributes()?;
    let mut recent = Vec::with_capacity(owned.len());
    for a in &owned {
        let first = (1..DAYS_SHOWN).fold(today, |d, _| d.pred());
        let ledger = read.ledger(&a.name)?;
        let outbox = read.outbox_of(&a.name)?;
        let on = |values: &[(Day, Value)], day: Day| {
            values
                .iter()
                .find(|(d, _)| *d == day)
                .map(|(_, v)| v.clone())
        };
        recent.push(RecentStatus {
            attribute: a.name.to_string(),
            days: first
                .through(today)
                .map(|day| DayStatus {
                    day,
                    value: on(&ledger, day),
                    pending: on(&outbox, day),
                })
                .collect(),
        });
    }
    let pending_reason = |attempts: u32| {
        if budget.limited {
            "Exist said 429 this hour: sent after the hour ends".to_owned()
        } else if attempts > 0 {
            format!("sending failed {attempts} time(s): the next run tries again")
        } else {
            "queued: the next run sends it".to_owned()
        }
    };
    Ok(StatusReport {
        config: config.path.display().to_string(),
        state_dir: config.state_dir().display().to_string(),
        token,
        owned_attributes: owned
            .into_iter()
            .map(|a| OwnedStatus {
                name: a.name.to_string(),
                key: a.key,
            })
            .collect(),
        recent,
        sources,
        pending: read
            .pending()?
            .into_iter()
            .map(|p| ValueStatus {
                attribute: p.attribute.to_string(),
                day: p.day.to_string(),
                value: serde_json::to_value(&p.value).expect("values serialize"),
                reason: pending_reason(p.attempts),
                attempts: p.attempts,
            })
            .collect(),
        rejected: read
            .rejected()?
            .into_iter()
            .map(|r| RejectedStatus {
                attribute: r.attribute.to_string(),
                day: r.day.to_string(),
                value: serde_json::to_string(&r.value).unwrap_or_default(),
                error_code: r.error_code,
                error: r.error,
                at: r.rejected_at,
            })
            .collect(),
        skipped: read
            .skipped()?
            .into_iter()
            .map(|s| SkippedStatus {
                source: s.source,
                location: s.location,
                reason: s.reason,
            })
            .collect(),
        requests_this_hour: budget.requests,
        requests_left: HOURLY_LIMIT.saturating_sub(budget.requests),
        budget_resets_at: next_hour(now).to_rfc3339(),
        hourly_limit: HOURLY_LIMIT,
        rate_limited: budget.limited,
        next_run: config.agent.schedule.next_after(now).to_rfc3339(),
    })
}

impl StatusReport {
    /// The report as text for a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "config:     {}", self.config);
        let _ = writeln!(out, "state:      {}", self.state_dir);
        let t = &self.token;
        if t.present {
            let expiry = t.expires_at.as_deref().unwrap_or("no expiry known");
            let refresh = if t.refreshable {
                "refreshable"
            } else {
                "not refreshable"
            };
            let _ = writeln!(
                out,
                "token:      in {}; expires {expiry}; {refresh}; scopes: {}",
                t.store,
                t.scopes.join(" ")
            );
        } else {
            let _ = writeln!(out, "token:      none stored (run `exist-agent login`)");
        }
        if !t.missing_scopes.is_empty() {
            let _ = writeln!(
                out,
                "            missing scopes the config needs: {} (run `exist-agent login`)",
                t.missing_scopes.join(" ")
            );
        }
        let names: Vec<&str> = self
            .owned_attributes
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        let _ = writeln!(
            out,
            "owned:      {}",
            if names.is_empty() {
                "none yet".to_owned()
            } else {
                names.join(", ")
            }
        );
        if let Some(first) = self.recent.first() {
            let (from, to) = (first.days.first(), first.days.last());
            if let (Some(from), Some(to)) = (from, to) {
                let _ = writeln!(
                    out,
                    "last {DAYS_SHOWN} days, {} to {} (bars scaled per attribute; \u{b7} no value):",
                    from.day, to.day
                );
            }
            let width = self
                .recent
                .iter()
                .map(|r| r.attribute.len())
                .max()
                .unwrap_or(0);
            for r in &self.recent {
                let _ = writeln!(
                    out,
                    "  {:<width$}  {}  {}",
                    r.attribute,
                    sparkline(&r.days),
                    summary(&r.days)
                );
            }
        }
        for s in &self.sources {
            if s.kind == "inbox" {
                let last = s.last_delivery.map_or_else(
                    || "none yet".to_owned(),
                    |d| {
                        format!(
                            "{} ({} record(s), {} skipped)",
                            d.at.to_rfc3339(),
                            d.records,
                            d.skipped
                        )
                    },
                );
                let _ = writeln!(
                    out,
                    "source:     {} (inbox): last delivery {last}, {} record(s)",
                    s.name, s.records
                );
                continue;
            }
            let last = s.last_pull.as_deref().unwrap_or("never");
            let _ = writeln!(
                out,
                "source:     {} ({}): last pull {last}, {} record(s)",
                s.name, s.kind, s.records
            );
            if let Some(e) = &s.last_error {
                let _ = writeln!(out, "            last error: {e}");
            }
            if let Some(until) = &s.waiting_until {
                let _ = writeln!(
                    out,
                    "            waiting until {until}, as the source asked"
                );
            }
            if s.stale {
                let _ = writeln!(
                    out,
                    "            STALE: newest record from {}, older than stale_after ({})",
                    s.newest_record_day
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                    s.stale_after.as_deref().unwrap_or_default()
                );
            }
        }
        let _ = writeln!(out, "pending:    {} value(s)", self.pending.len());
        for p in self.pending.iter().take(20) {
            let _ = writeln!(
                out,
                "            {} {} = {}: {}",
                p.attribute, p.day, p.value, p.reason
            );
        }
        if self.pending.len() > 20 {
            let _ = writeln!(
                out,
                "            ... and {} more (`status --json` lists all)",
                self.pending.len() - 20
            );
        }
        let _ = writeln!(out, "rejected:   {} value(s)", self.rejected.len());
        for r in &self.rejected {
            let _ = writeln!(
                out,
                "            {} {} = {}: {}: {}",
                r.attribute, r.day, r.value, r.error_code, r.error
            );
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(
                out,
                "skipped:    {} record(s) in the last pulls",
                self.skipped.len()
            );
            for s in self.skipped.iter().take(20) {
                let _ = writeln!(out, "            {} {}: {}", s.source, s.location, s.reason);
            }
        }
        let limited = if self.rate_limited {
            " (Exist said 429: writing resumes next hour)"
        } else {
            ""
        };
        let resets = chrono::DateTime::parse_from_rfc3339(&self.budget_resets_at)
            .map(|t| t.format("%H:%M UTC").to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "requests:   {}/{} this hour, {} left, the count starts again at {resets}{limited}",
            self.requests_this_hour, self.hourly_limit, self.requests_left
        );
        let _ = writeln!(out, "next run:   {}", self.next_run);
        out
    }
}

/// The start of the UTC hour after `now`, when Exist's hourly count starts again.
fn next_hour(now: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    use chrono::{DurationRound, TimeDelta};
    now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now) + TimeDelta::hours(1)
}

/// One character per day: a bar from the lowest (or 0) to the highest number of the days shown,
/// `\u{2022}` for text, `\u{b7}` for no value.
fn sparkline(days: &[DayStatus]) -> String {
    const BARS: [char; 8] = [
        '\u{2581}', '\u{2582}', '\u{2583}', '\u{2584}', '\u{2585}', '\u{2586}', '\u{2587}',
        '\u{2588}',
    ];
    let numbers: Vec<f64> = days
        .iter()
        .filter_map(|d| d.shown().and_then(Value::as_f64))
        .collect();
    let low = numbers.iter().copied().fold(0.0_f64, f64::min);
    let high = numbers.iter().copied().fold(low, f64::max);
    days.iter()
        .map(|d| match d.shown() {
            None => '\u{b7}',
            Some(v) => match v.as_f64() {
                None => '\u{2022}',
                Some(_) if high <= low => BARS[0],
                Some(x) => {
                    let level = ((x - low) / (high - low) * 7.0).round();
                    BARS[(level as usize).min(7)]
                }
            },
        })
        .collect()
}

/// The numbers next to the bars: the latest value and its day, the range, what is pending.
fn summary(days: &[DayStatus]) -> String {
    let Some(latest) = days.iter().rev().find(|d| d.shown().is_some()) else {
        return "no values yet".to_owned();
    };
    let mut text = format!(
        "latest {} ({})",
        latest.shown().map(ToString::to_string).unwrap_or_default(),
        latest.day
    );
    let numbers: Vec<f64> = days
        .iter()
        .filter_map(|d| d.shown().and_then(Value::as_f64))
        .collect();
    if numbers.len() > 1 {
        let low = numbers.iter().copied().fold(f64::INFINITY, f64::min);
        let high = numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let _ = write!(text, ", {low}..{high}");
    }
    let pending = days.iter().filter(|d| d.pending.is_some()).count();
    if pending > 0 {
        let _ = write!(text, ", {pending} pending");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(values: &[Option<i64>]) -> Vec<DayStatus> {
        let mut day: Day = "2026-11-01".parse().unwrap();
        values
            .iter()
            .map(|v| {
                let d = DayStatus {
                    day,
                    value: v.map(Value::Int),
                    pending: None,
                };
                day = day.succ();
                d
            })
            .collect()
    }

    #[test]
    fn bars_scale_from_zero_to_the_highest_day() {
        let line = sparkline(&days(&[Some(0), Some(7), None, Some(14), Some(3)]));
        assert_eq!(line, "\u{2581}\u{2585}\u{b7}\u{2588}\u{2583}");
        assert_eq!(sparkline(&days(&[None, None])), "\u{b7}\u{b7}");
        assert_eq!(sparkline(&days(&[Some(0), Some(0)])), "\u{2581}\u{2581}");
    }

    #[test]
    fn a_pending_value_is_what_the_day_will_hold() {
        let mut d = days(&[Some(2), Some(4)]);
        d[1].pending = Some(Value::Int(8));
        assert_eq!(summary(&d), "latest 8 (2026-11-02), 2..8, 1 pending");
        assert_eq!(summary(&days(&[None])), "no values yet");
    }

    #[test]
    fn the_hour_ends_on_the_hour() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-20T14:35:10Z")
            .unwrap()
            .to_utc();
        assert_eq!(next_hour(now).to_rfc3339(), "2026-11-20T15:00:00+00:00");
    }
}

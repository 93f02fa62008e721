//! `exist-agent status`: what the agent knows, without calling anyone: token expiry, owned
//! attributes, each source's last pull, pending and rejected values, the hour's requests and
//! the next scheduled run.

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
    let mut sources = Vec::new();
    for source in &config.sources {
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
        });
    }
    let now = Utc::now();
    let budget = read.budget(now)?;
    Ok(StatusReport {
        config: config.path.display().to_string(),
        state_dir: config.state_dir().display().to_string(),
        token,
        owned_attributes: read
            .owned_attributes()?
            .into_iter()
            .map(|a| OwnedStatus {
                name: a.name.to_string(),
                key: a.key,
            })
            .collect(),
        sources,
        pending: read
            .pending()?
            .into_iter()
            .map(|p| ValueStatus {
                attribute: p.attribute.to_string(),
                day: p.day.to_string(),
                value: serde_json::to_value(&p.value).expect("values serialize"),
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
        }
        let _ = writeln!(out, "pending:    {} value(s)", self.pending.len());
        for p in self.pending.iter().take(20) {
            let _ = writeln!(
                out,
                "            {} {} = {} ({} attempt(s))",
                p.attribute, p.day, p.value, p.attempts
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
        let _ = writeln!(
            out,
            "requests:   {}/{} this hour{limited}",
            self.requests_this_hour, self.hourly_limit
        );
        let _ = writeln!(out, "next run:   {}", self.next_run);
        out
    }
}

//! The `[agent]` table: how the agent runs (schedule, resync, day start, token store, state,
//! the listener for notifications and inboxes).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveTime;
use serde::Deserialize;
use url::Url;

use super::error::{Locator, Seg};
use super::{default_state_dir, expand_home, parse_url, ConfigError, SecretSource, TokenStoreKind};
use crate::schedule::{Plan, Schedule};
use exist_api::Secret;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    pub schedule: Option<String>,
    pub resync_days: Option<i64>,
    pub day_starts: Option<String>,
    pub token_store: Option<String>,
    pub state_dir: Option<String>,
    pub listen: Option<String>,
    pub listen_remote: Option<bool>,
    pub notify_secret: Option<String>,
    pub notify_secret_env: Option<String>,
    pub on_failure: Option<Vec<String>>,
    pub alert_after: Option<String>,
    pub ping_url: Option<String>,
}

/// The `[agent]` table.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// When the daemon syncs: the configured schedule at this install's minute, checked to fire.
    pub schedule: Plan,
    /// How many days, today included, are re-computed every run (at least 2).
    pub resync_days: u32,
    /// Local time at which a day begins.
    pub day_starts: NaiveTime,
    /// Where OAuth tokens are kept.
    pub token_store: TokenStoreKind,
    /// The state directory: configured, or the platform's.
    pub state_dir: PathBuf,
    /// The address the daemon accepts signed notifications and inbox deliveries on: loopback,
    /// unless `listen_remote`.
    pub listen: Option<SocketAddr>,
    /// Whether other machines may reach the listener (inboxes only; notifications stay local).
    pub listen_remote: bool,
    /// The shared secret notifications are signed with.
    pub notify_secret: Option<SecretSource>,
    /// Who is told when runs fail (`on_failure`, `alert_after`, `ping_url`).
    pub alerts: AlertConfig,
}

/// How the agent tells someone that runs fail (see `crate::alerts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertConfig {
    /// A program and its arguments, run once per failure episode (and once when it ends), with
    /// `{message}`, `{exit_code}` and `{source}` replaced in each argument.
    pub on_failure: Option<Vec<String>>,
    /// How long temporary failures (exit 75) may last before they alert; other failures alert
    /// at once.
    pub alert_after: Duration,
    /// A healthchecks-style URL: GET on success, `<url>/fail` on a failure that alerts.
    pub ping_url: Option<Url>,
}

/// How long temporary failures may last unless `alert_after` says otherwise: a few hourly runs,
/// so a short outage of Exist or the network tells nobody.
pub const DEFAULT_ALERT_AFTER: Duration = Duration::from_secs(6 * 3600);

pub(super) fn check(loc: &Locator<'_>, raw: RawAgent) -> Result<AgentConfig, ConfigError> {
    let at = |k| [Seg::Key("agent"), Seg::Key(k)];
    let state_dir = raw
        .state_dir
        .as_deref()
        .map_or_else(default_state_dir, expand_home);
    let schedule = match raw.schedule.as_deref().unwrap_or("hourly") {
        "hourly" => Schedule::Hourly,
        "daily" => Schedule::Daily,
        expr => Schedule::Cron(expr.to_owned()),
    };
    let schedule = Plan::new(&schedule, crate::schedule::install_minute(&state_dir.to_string_lossy()))
        .map_err(|e| {
            let expr = raw.schedule.as_deref().unwrap_or_default();
            loc.error(
                &at("schedule"),
                match &e {
                    crate::schedule::ScheduleError::NeverFires { .. } => format!("\"{expr}\" never fires: no date matches it"),
                    crate::schedule::ScheduleError::BadCron { reason, .. } => format!("\"{expr}\" is not a cron expression: {reason}"),
                },
                "write \"hourly\", \"daily\", or a cron expression such as \"17 * * * *\" (minute hour day month weekday, UTC) that matches some date",
            )
        })?;
    let resync_days = match raw.resync_days {
        None => 2,
        Some(n @ 2..=366) => n as u32,
        Some(n) => {
            return Err(loc.error(
                &at("resync_days"),
                format!("{n} is too {}", if n < 2 { "small" } else { "large" }),
                "write a number from 2 (today and yesterday, as Exist asks) to 366",
            ))
        }
    };
    let day_starts = match raw.day_starts.as_deref() {
        None => NaiveTime::MIN,
        Some(t) => NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| {
            loc.error(
                &at("day_starts"),
                format!("\"{t}\" is not a time of day"),
                "write HH:MM, e.g. \"05:00\" to count 00:00-04:59 toward the day before",
            )
        })?,
    };
    let token_store = match raw.token_store.as_deref().unwrap_or("auto") {
        "auto" => TokenStoreKind::Auto,
        "keyring" => TokenStoreKind::Keyring,
        "file" => TokenStoreKind::File,
        other => {
            return Err(loc.error(
                &at("token_store"),
                format!("\"{other}\" is not a token store"),
                "write \"auto\", \"keyring\" or \"file\"",
            ))
        }
    };
    let listen_remote = raw.listen_remote.unwrap_or(false);
    let listen = match raw.listen {
        None => None,
        Some(addr) => match addr.parse::<SocketAddr>() {
            Ok(a) if listen_remote || a.ip().to_canonical().is_loopback() => Some(a),
            Ok(_) => {
                return Err(loc.error(
                    &at("listen"),
                    format!("\"{addr}\" is reachable from other machines"),
                    "write \"127.0.0.1:PORT\", or set listen_remote = true to let a phone on your network deliver to an inbox (notifications stay loopback-only)",
                ))
            }
            Err(_) => {
                return Err(loc.error(
                    &at("listen"),
                    format!("\"{addr}\" is not an address with a port"),
                    "write \"127.0.0.1:PORT\"",
                ))
            }
        },
    };
    let notify_secret = match (raw.notify_secret, raw.notify_secret_env) {
        (Some(s), None) => Some(SecretSource::Inline(Secret::new(s))),
        (None, Some(v)) => Some(SecretSource::Env(v)),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(loc.error(
                &at("notify_secret"),
                "both notify_secret and notify_secret_env are set",
                "keep one",
            ))
        }
    };
    let alerts = check_alerts(loc, raw.on_failure, raw.alert_after, raw.ping_url)?;
    Ok(AgentConfig {
        alerts,
        schedule,
        resync_days,
        day_starts,
        token_store,
        state_dir,
        listen,
        listen_remote,
        notify_secret,
    })
}

fn check_alerts(
    loc: &Locator<'_>,
    on_failure: Option<Vec<String>>,
    alert_after: Option<String>,
    ping_url: Option<String>,
) -> Result<AlertConfig, ConfigError> {
    let at = |k| [Seg::Key("agent"), Seg::Key(k)];
    if on_failure
        .as_ref()
        .is_some_and(|argv| argv.first().is_none_or(|p| p.trim().is_empty()))
    {
        return Err(loc.error(
            &at("on_failure"),
            "on_failure needs a program to run",
            "write on_failure = [\"notify-send\", \"exist-agent\", \"{message}\"] (no shell unless you write [\"sh\", \"-c\", \"...\"])",
        ));
    }
    let alert_after = match alert_after {
        None => DEFAULT_ALERT_AFTER,
        Some(text) => humantime::parse_duration(&text).map_err(|_| {
            loc.error(
                &at("alert_after"),
                format!("\"{text}\" is not a duration"),
                "write e.g. \"0s\" (alert at once), \"30m\" or \"6h\"",
            )
        })?,
    };
    let ping_url = ping_url
        .map(|text| parse_url(loc, &at("ping_url"), &text))
        .transpose()?;
    Ok(AlertConfig {
        on_failure,
        alert_after,
        ping_url,
    })
}

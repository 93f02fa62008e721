//! Being told when something is wrong: `[agent] on_failure`, `alert_after`, `ping_url`, and each
//! source's `stale_after`.
//!
//! A quiet background job that stopped working should say so once, not every hour. Runs that
//! fail one after another form a *failure episode*, kept in the state ([`FailureEpisode`]): the
//! episode alerts once (at once for a failure that needs the user, exit 1, 2 or 3; only once it
//! has lasted `alert_after` for temporary ones, exit 75), and the success that ends an alerted
//! episode says so once. A source whose newest record is older than its `stale_after` alerts
//! once too, and once more when records come again. What to do is decided by pure functions
//! ([`decide`], [`decide_stale`]); [`after_run`] carries it out: the `on_failure` command, and a
//! healthchecks-style ping (GET `ping_url` on success, `<ping_url>/fail` on a failure that
//! alerts).
//!
//! Both `run --once` (systemd timers, launchd, cron) and the daemon's full runs report here; a
//! dry run, a backfill or a notified run of one source does not.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::config::{Config, PullMode, SourceConfig};
use crate::error::{Error, ErrorKind};
use crate::store::{FailureEpisode, Store, StoreError};
use exist_api::types::Day;

/// How a run ended, as alerts see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunResult {
    /// Everything done.
    Success,
    /// The run failed.
    Failure {
        /// The failure's kind (its exit code; temporary ones wait for `alert_after`).
        kind: ErrorKind,
        /// What failed, with the fix.
        message: String,
        /// The sources that failed, if the failure was theirs.
        sources: BTreeSet<String>,
    },
}

impl RunResult {
    /// The outcome of a run that ended with `result`, `sources` having failed in it.
    pub fn of(result: &Result<(), Error>, sources: BTreeSet<String>) -> Self {
        match result {
            Ok(()) => Self::Success,
            Err(e) => Self::Failure {
                kind: e.kind(),
                message: e.to_string(),
                sources,
            },
        }
    }

    fn exit_code(&self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failure { kind, .. } => kind.exit_code(),
        }
    }
}

/// One call of the `on_failure` command: what its placeholders become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// `{message}`.
    pub message: String,
    /// `{exit_code}`: the run's exit code (0 when it says a failure or staleness ended).
    pub exit_code: u8,
    /// `{source}`: the sources concerned, comma-separated; empty when no source is.
    pub source: String,
}

/// What a ping tells the monitoring service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    /// GET `ping_url`.
    Success,
    /// GET `<ping_url>/fail`.
    Fail,
}

/// What to do after a run, and the episode to remember.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The episode after this run; `None` when runs succeed.
    pub episode: Option<FailureEpisode>,
    /// The alert to send, if any.
    pub alert: Option<Alert>,
    /// The ping to send, if any (a temporary failure that has not lasted `alert_after` sends
    /// none: it is not a failure to report yet, and not a success either).
    pub ping: Option<Ping>,
}

/// Decides what a run's outcome calls for, given the episode the previous runs left.
pub fn decide(
    before: Option<&FailureEpisode>,
    outcome: &RunResult,
    now: DateTime<Utc>,
    alert_after: Duration,
) -> Decision {
    let RunResult::Failure {
        kind,
        message,
        sources,
    } = outcome
    else {
        let alert = before.filter(|e| e.alerted).map(|e| Alert {
            message: format!(
                "exist-agent works again: this run succeeded after {} failed run(s) since {}",
                e.failures,
                e.since.format("%Y-%m-%d %H:%M UTC")
            ),
            exit_code: 0,
            source: String::new(),
        });
        return Decision {
            episode: None,
            alert,
            ping: Some(Ping::Success),
        };
    };
    let mut episode = before.cloned().unwrap_or(FailureEpisode {
        since: now,
        failures: 0,
        alerted: false,
    });
    episode.failures = episode.failures.saturating_add(1);
    let lasted = (now - episode.since).to_std().unwrap_or_default();
    let due = *kind != ErrorKind::Temporary || lasted >= alert_after;
    let alert = (due && !episode.alerted).then(|| {
        let message = if *kind == ErrorKind::Temporary && episode.failures > 1 {
            format!(
                "{message}\n(runs have failed for {} since {})",
                humantime::format_duration(Duration::from_secs(lasted.as_secs())),
                episode.since.format("%Y-%m-%d %H:%M UTC")
            )
        } else {
            message.clone()
        };
        Alert {
            message,
            exit_code: outcome.exit_code(),
            source: sources.iter().cloned().collect::<Vec<_>>().join(","),
        }
    });
    episode.alerted |= due;
    Decision {
        episode: Some(episode),
        alert,
        ping: due.then_some(Ping::Fail),
    }
}

/// How fresh a source's data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    /// The source.
    pub source: String,
    /// Its `stale_after`, if it has one.
    pub stale_after: Option<Duration>,
    /// The newest day it has a record on, if any.
    pub newest_day: Option<Day>,
    /// Whether its newest record is older than `stale_after` (false without one, or without
    /// records: there is nothing to be late yet).
    pub stale: bool,
}

impl Freshness {
    /// What `status`, `doctor` and the alert say about a stale source.
    pub fn describe(&self) -> String {
        let after = self
            .stale_after
            .map(|d| humantime::format_duration(d).to_string())
            .unwrap_or_default();
        match self.newest_day {
            Some(day) if self.stale => format!(
                "source \"{}\" is stale: its newest record is from {day}, more than {after} ago (stale_after)",
                self.source
            ),
            Some(day) => format!("newest record from {day}"),
            None => "no records yet".to_owned(),
        }
    }
}

/// The freshness of every source, as the state knows it at `now`. A day's records count until
/// the day ends (`day_starts` of the next date, in the user's timezone).
pub fn freshness(
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Vec<Freshness>, StoreError> {
    let tz = crate::sync::known_timezone(config, store).unwrap_or(Tz::UTC);
    config
        .sources
        .iter()
        .map(|source| {
            let newest_day = newest_day(source, store)?;
            let stale = match (source.stale_after, newest_day) {
                (Some(after), Some(day)) => {
                    let ended = day_end(day, tz, config.agent.day_starts);
                    (now - ended).to_std().is_ok_and(|late| late > after)
                }
                _ => false,
            };
            Ok(Freshness {
                source: source.name.clone(),
                stale_after: source.stale_after,
                newest_day,
                stale,
            })
        })
        .collect()
}

fn newest_day(source: &SourceConfig, store: &Store) -> Result<Option<Day>, StoreError> {
    let read = store.read();
    match source.kind.pull_mode() {
        PullMode::Incremental | PullMode::Pushed => read.newest_record_day(&source.name),
        PullMode::Whole => read.newest_whole_day(&source.name),
    }
}

/// The instant `day` ends for a user in `tz` whose days start at `day_starts`.
fn day_end(day: Day, tz: Tz, day_starts: NaiveTime) -> DateTime<Utc> {
    let next = day
        .date()
        .succ_opt()
        .unwrap_or(day.date())
        .and_time(day_starts);
    tz.from_local_datetime(&next)
        .earliest()
        .map(|t| t.to_utc())
        .unwrap_or_else(|| next.and_utc())
}

/// The staleness alerts this run calls for: a source that became stale since its last alert,
/// and one that has new records again after it was alerted. `alerted` is the newest day each
/// source had when its staleness was alerted. Returns the alerts and the new `alerted` marks.
pub fn decide_stale(
    sources: &[Freshness],
    alerted: &[(String, Option<Day>)],
    exit_code: u8,
) -> (Vec<Alert>, Vec<(String, Option<Day>)>) {
    let mut alerts = Vec::new();
    let mut marks = Vec::new();
    for f in sources {
        let was = alerted
            .iter()
            .find(|(s, _)| *s == f.source)
            .and_then(|(_, d)| *d);
        match (f.stale, was) {
            (true, None) => {
                alerts.push(Alert {
                    message: f.describe(),
                    exit_code,
                    source: f.source.clone(),
                });
                marks.push((f.source.clone(), f.newest_day));
            }
            (false, Some(_)) => {
                alerts.push(Alert {
                    message: format!(
                        "source \"{}\" has new records again ({})",
                        f.source,
                        f.describe()
                    ),
                    exit_code: 0,
                    source: f.source.clone(),
                });
                marks.push((f.source.clone(), None));
            }
            _ => {}
        }
    }
    (alerts, marks)
}

/// `argv` with `{message}`, `{exit_code}` and `{source}` replaced in each argument.
pub fn command_line(argv: &[String], alert: &Alert) -> Vec<String> {
    argv.iter()
        .map(|arg| {
            arg.replace("{message}", &alert.message)
                .replace("{exit_code}", &alert.exit_code.to_string())
                .replace("{source}", &alert.source)
        })
        .collect()
}

/// The URL a ping goes to: `ping_url` itself, or with `/fail` appended to its path.
pub fn ping_target(url: &url::Url, ping: Ping) -> url::Url {
    let mut url = url.clone();
    if ping == Ping::Fail {
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("fail");
        }
    }
    url
}

/// How long the `on_failure` command and a ping may take before they are given up on.
const EFFECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Tells whoever the configuration names how the run went: decides from the stored episode and
/// the sources' freshness, stores what it decided, then runs the command and pings. Nothing here
/// changes the run's own result: a failing alert is logged.
pub async fn after_run(config: &Config, outcome: &RunResult) {
    let alerts = &config.agent.alerts;
    let wanted = alerts.on_failure.is_some()
        || alerts.ping_url.is_some()
        || config.sources.iter().any(|s| s.stale_after.is_some());
    if !wanted {
        return;
    }
    let (mut to_send, ping) = match remember(config, outcome) {
        Ok(decided) => decided,
        Err(e) => {
            // Without the state the episode is unknown: say it, rather than stay quiet about
            // a failure (which may well be the broken state itself).
            tracing::warn!("cannot keep track of failure episodes: {e}");
            let decision = decide(None, outcome, Utc::now(), alerts.alert_after);
            (decision.alert.into_iter().collect(), decision.ping)
        }
    };
    if let Some(argv) = &alerts.on_failure {
        for alert in to_send.drain(..) {
            run_command(argv, &alert).await;
        }
    }
    if let (Some(url), Some(ping)) = (&alerts.ping_url, ping) {
        send_ping(&ping_target(url, ping)).await;
    }
}

/// Reads the episode and the staleness marks, decides, and stores the new ones in one
/// transaction; returns the alerts to send and the ping.
fn remember(config: &Config, outcome: &RunResult) -> Result<(Vec<Alert>, Option<Ping>), Error> {
    let mut store = Store::open(&config.state_dir())?;
    let now = Utc::now();
    let fresh = freshness(config, &store, now)?;
    let alert_after = config.agent.alerts.alert_after;
    Ok(store.transaction(|tx| {
        let decision = decide(tx.failure_episode()?.as_ref(), outcome, now, alert_after);
        tx.set_failure_episode(decision.episode.as_ref())?;
        let watched: Vec<Freshness> = fresh
            .into_iter()
            .filter(|f| f.stale_after.is_some())
            .collect();
        let alerted = watched
            .iter()
            .map(|f| Ok((f.source.clone(), tx.stale_alerted(&f.source)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let (stale, marks) = decide_stale(&watched, &alerted, outcome.exit_code());
        for (source, day) in &marks {
            tx.set_stale_alerted(source, *day)?;
        }
        let mut alerts: Vec<Alert> = decision.alert.into_iter().collect();
        alerts.extend(stale);
        Ok((alerts, decision.ping))
    })?)
}

async fn run_command(argv: &[String], alert: &Alert) {
    let line = command_line(argv, alert);
    let mut command = tokio::process::Command::new(&line[0]);
    command
        .args(&line[1..])
        .stdin(std::process::Stdio::null())
        // Standard output may be a JSON document (`--json`); the command's goes nowhere.
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    let outcome = match command.spawn() {
        Ok(mut child) => match tokio::time::timeout(EFFECT_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("it exited with {status}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "it ran longer than {}s and was stopped",
                EFFECT_TIMEOUT.as_secs()
            )),
        },
        Err(e) => Err(format!("it could not be started: {e}")),
    };
    match outcome {
        Ok(()) => tracing::info!(program = %line[0], "on_failure command told"),
        Err(why) => tracing::warn!(
            "the on_failure command `{}` failed: {why}; fix [agent] on_failure",
            line[0]
        ),
    }
}

async fn send_ping(url: &url::Url) {
    let client = match reqwest::Client::builder().timeout(EFFECT_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot ping: {e}");
            return;
        }
    };
    // The URL may carry a secret check id; logs show only the host.
    let host = url.host_str().unwrap_or_default().to_owned();
    match client.get(url.clone()).send().await {
        Ok(r) if r.status().is_success() => tracing::debug!(%host, "pinged"),
        Ok(r) => tracing::warn!(%host, status = %r.status(), "the ping_url answered with an error"),
        Err(e) => tracing::warn!(%host, "cannot reach ping_url: {}", crate::error::error_chain(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z")
            .unwrap()
            .to_utc()
            + chrono::Duration::minutes(minutes)
    }

    fn failure(kind: ErrorKind) -> RunResult {
        RunResult::Failure {
            kind,
            message: "it broke".into(),
            sources: ["health".to_owned()].into(),
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    /// Runs `outcomes` one per hour from the same start, collecting alerts and pings.
    fn replay(outcomes: &[RunResult], alert_after: Duration) -> Vec<(Option<Alert>, Option<Ping>)> {
        let mut episode = None;
        outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let d = decide(episode.as_ref(), o, at(60 * i as i64), alert_after);
                episode = d.episode;
                (d.alert, d.ping)
            })
            .collect()
    }

    #[test]
    fn a_failure_that_needs_the_user_alerts_once_per_episode() {
        let runs = [
            failure(ErrorKind::Failed),
            failure(ErrorKind::Auth),
            failure(ErrorKind::Failed),
            RunResult::Success,
            RunResult::Success,
            failure(ErrorKind::Failed),
        ];
        let out = replay(&runs, 6 * HOUR);
        let alerts: Vec<Option<u8>> = out
            .iter()
            .map(|(a, _)| a.as_ref().map(|a| a.exit_code))
            .collect();
        assert_eq!(alerts, [Some(1), None, None, Some(0), None, Some(1)]);
        let first = out[0].0.as_ref().unwrap();
        assert_eq!(
            (first.message.as_str(), first.source.as_str()),
            ("it broke", "health")
        );
        assert!(out[3].0.as_ref().unwrap().message.contains("works again"));
        let pings: Vec<Option<Ping>> = out.iter().map(|(_, p)| *p).collect();
        assert_eq!(
            pings,
            [
                Some(Ping::Fail),
                Some(Ping::Fail),
                Some(Ping::Fail),
                Some(Ping::Success),
                Some(Ping::Success),
                Some(Ping::Fail)
            ]
        );
    }

    #[test]
    fn temporary_failures_alert_only_once_they_last_alert_after() {
        let t = failure(ErrorKind::Temporary);
        let out = replay(&[t.clone(), t.clone(), t.clone(), t.clone()], 2 * HOUR);
        let alerted: Vec<bool> = out.iter().map(|(a, _)| a.is_some()).collect();
        assert_eq!(
            alerted,
            [false, false, true, false],
            "at 0h, 1h: not yet; at 2h: once"
        );
        assert_eq!(out[0].1, None, "no ping while it may still go away");
        assert_eq!(out[2].1, Some(Ping::Fail));
        assert!(out[2]
            .0
            .as_ref()
            .unwrap()
            .message
            .contains("since 2026-11-20 10:00 UTC"));
        // A short blip ends quietly: no alert was sent, so no "works again" either.
        let out = replay(&[t.clone(), RunResult::Success], 2 * HOUR);
        assert_eq!(out[1], (None, Some(Ping::Success)));
        // A failure that needs the user alerts at once even inside a temporary episode.
        let out = replay(&[t, failure(ErrorKind::Auth)], 2 * HOUR);
        assert_eq!(out[1].0.as_ref().map(|a| a.exit_code), Some(3));
    }

    #[test]
    fn alert_after_zero_alerts_temporary_failures_at_once() {
        let out = replay(&[failure(ErrorKind::Temporary)], Duration::ZERO);
        assert_eq!(out[0].0.as_ref().map(|a| a.exit_code), Some(75));
    }

    #[test]
    fn placeholders_are_replaced_in_every_argument() {
        let alert = Alert {
            message: "no network".into(),
            exit_code: 75,
            source: "health,coffee".into(),
        };
        let argv: Vec<String> = [
            "notify",
            "{message} ({exit_code})",
            "--src={source}",
            "{other}",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            command_line(&argv, &alert),
            [
                "notify",
                "no network (75)",
                "--src=health,coffee",
                "{other}"
            ]
        );
    }

    #[test]
    fn fail_pings_go_to_the_fail_path() {
        let url = url::Url::parse("https://hc-ping.com/abc-123").unwrap();
        assert_eq!(
            ping_target(&url, Ping::Success).as_str(),
            "https://hc-ping.com/abc-123"
        );
        assert_eq!(
            ping_target(&url, Ping::Fail).as_str(),
            "https://hc-ping.com/abc-123/fail"
        );
        let slash = url::Url::parse("http://127.0.0.1:9/ping/x/?rid=1").unwrap();
        assert_eq!(
            ping_target(&slash, Ping::Fail).as_str(),
            "http://127.0.0.1:9/ping/x/fail?rid=1"
        );
    }

    #[test]
    fn staleness_alerts_once_and_says_when_it_ends() {
        let day: Day = "2026-11-10".parse().unwrap();
        let stale = Freshness {
            source: "health".into(),
            stale_after: Some(3 * 24 * HOUR),
            newest_day: Some(day),
            stale: true,
        };
        let (alerts, marks) =
            decide_stale(std::slice::from_ref(&stale), &[("health".into(), None)], 0);
        assert_eq!(alerts.len(), 1);
        assert!(alerts[0].message.contains("stale"), "{}", alerts[0].message);
        assert_eq!(marks, [("health".to_owned(), Some(day))]);
        let (alerts, marks) = decide_stale(std::slice::from_ref(&stale), &marks, 0);
        assert!(alerts.is_empty() && marks.is_empty(), "once per staleness");
        let fresh = Freshness {
            stale: false,
            newest_day: Some("2026-11-20".parse().unwrap()),
            ..stale
        };
        let (alerts, marks) = decide_stale(&[fresh], &[("health".into(), Some(day))], 0);
        assert!(alerts[0].message.contains("new records again"));
        assert_eq!(marks, [("health".to_owned(), None)]);
    }

    #[test]
    fn a_day_ends_at_the_next_day_start_in_the_users_timezone() {
        let day: Day = "2026-11-20".parse().unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let four = NaiveTime::from_hms_opt(4, 0, 0).unwrap();
        assert_eq!(
            day_end(day, berlin, four).to_rfc3339(),
            "2026-11-21T03:00:00+00:00"
        );
    }
}

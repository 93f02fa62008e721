//! The sync engine: from sources to the values Exist must hold, losing nothing.
//!
//! One run:
//! 1. finds the user's timezone (configured, or the Exist profile's, cached for a day);
//! 2. makes sure every configured attribute is owned ([`attributes`]: acquire once);
//! 3. pulls each due source, storing records and only then advancing its cursor;
//! 4. recomputes the days whose records changed, plus today and yesterday (`resync_days`), and
//!    queues in the outbox only values that differ from what Exist acknowledged ([`values`]);
//! 5. sends the outbox in batches of at most 35 ([`outbox`]).
//!
//! A crash at any point leaves records, cursors, changed days and pending values consistent: the
//! next run picks up where this one stopped.

pub mod attributes;
mod compute;
pub mod outbox;
mod pull;
pub mod values;

pub(crate) use pull::snapshot_size_key;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::config::{AttributeConfig, Config};
use crate::exist::client::ExistClient;
use crate::exist::types::{Day, Value};
use crate::sources::{Malformed, PullSummary, RecordTime};
use crate::store::{Store, StoreError};
use attributes::{ensure_owned, Ownership};
use outbox::SendReport;
use values::decode_time;

/// How records fall on the user's days: their timezone and the local time a day starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayBasis {
    /// The user's timezone.
    pub tz: Tz,
    /// The local time a day begins.
    pub day_starts: NaiveTime,
}

impl DayBasis {
    /// The user's day a record time falls on.
    pub fn day_of(&self, time: &RecordTime) -> Day {
        time.day(self.tz, self.day_starts)
    }

    /// The user's day now.
    pub fn today(&self) -> Day {
        self.day_of(&RecordTime::Instant(Utc::now().fixed_offset()))
    }
}

impl std::fmt::Display for DayBasis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}|{}", self.tz.name(), self.day_starts.format("%H:%M"))
    }
}

/// Which records a run pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// What changed since each source's cursor (the default).
    Incremental,
    /// Everything the agent ever pulled, again, reconciling vanished records.
    Full,
    /// History from a day on, for chosen attributes.
    Backfill {
        /// First day.
        from: Day,
        /// Last day (default: today).
        to: Option<Day>,
    },
}

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Which records to pull.
    pub mode: Mode,
    /// Compute but send nothing (the caller runs it on a copy of the state).
    pub dry_run: bool,
    /// Only these sources (e.g. the one a notification named); `None`: all that are due.
    pub only_sources: Option<Vec<String>>,
    /// Sources pulled even when their own frequency says they are not due (notified ones).
    pub forced_sources: BTreeSet<String>,
    /// Only these attributes (by Exist name or configured name); empty: all.
    pub attributes: Vec<String>,
    /// Becomes true when the run should stop early (SIGTERM): the batch in flight finishes,
    /// everything else stays pending or unpulled for the next run.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// Show progress bars on a terminal (backfill).
    pub progress: bool,
}

impl SyncOptions {
    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// A progress bar of `len` steps on standard error, when progress is wanted; indicatif
    /// draws nothing when standard error is not a terminal.
    fn bar(&self, len: u64, what: &str) -> indicatif::ProgressBar {
        if !self.progress {
            return indicatif::ProgressBar::hidden();
        }
        let style =
            indicatif::ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}")
                .expect("the template is valid")
                .progress_chars("=> ");
        indicatif::ProgressBar::new(len)
            .with_style(style)
            .with_prefix(what.to_owned())
    }
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Incremental,
            dry_run: false,
            only_sources: None,
            forced_sources: BTreeSet::new(),
            attributes: Vec::new(),
            stop: None,
            progress: false,
        }
    }
}

/// A value that changed: what Exist holds (as far as the ledger knows) and what it should hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The attribute's Exist name.
    pub attribute: String,
    /// The day.
    pub day: Day,
    /// The acknowledged value, if any.
    pub old: Option<Value>,
    /// The new value.
    pub new: Value,
}

/// What happened to one source in a run.
#[derive(Debug, Clone, Default)]
pub struct SourceReport {
    /// The source.
    pub name: String,
    /// Whether it was pulled (not skipped as not due).
    pub pulled: bool,
    /// Counts of the pull.
    pub summary: PullSummary,
    /// Records skipped as malformed.
    pub malformed: Vec<Malformed>,
    /// Why the pull failed, if it did.
    pub error: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// The timezone days were computed in.
    pub timezone: String,
    /// Per source.
    pub sources: Vec<SourceReport>,
    /// Values queued because they changed.
    pub changes: Vec<Change>,
    /// Values refused by local checks before sending.
    pub rejected_locally: usize,
    /// What sending did.
    pub send: SendReport,
    /// Attribute problems (not owned, values that could not be computed).
    pub problems: Vec<String>,
}

/// A finished run: its report, and the failure that should set the exit code, if any.
#[derive(Debug)]
pub struct SyncOutcome {
    /// What was done.
    pub report: SyncReport,
    /// The first failure that matters for the exit code (the run still did what it could).
    pub failure: Option<crate::error::Error>,
}

impl SyncOutcome {
    /// Logs the run's summary and turns its failure, if any, into the command's result.
    pub fn finish(self) -> Result<(), crate::error::Error> {
        let report = &self.report;
        for s in report.sources.iter().filter(|s| s.pulled) {
            tracing::info!(source = %s.name, records = s.summary.records, malformed = s.malformed.len(), "pulled");
        }
        for p in &report.problems {
            tracing::warn!("{p}");
        }
        tracing::info!(
            changed = report.changes.len(),
            sent = report.send.acknowledged,
            rejected = report.send.rejected + report.rejected_locally,
            update_calls = report.send.update_calls,
            pending = report.send.remaining,
            timezone = %report.timezone,
            "sync finished"
        );
        match self.failure {
            Some(e) => Err(e),
            None if !report.problems.is_empty() => Err(crate::error::Error::failed(format!(
                "{} attribute(s) could not be synced: {}",
                report.problems.len(),
                report.problems.join("; ")
            ))),
            None => Ok(()),
        }
    }
}

/// Runs one sync. Every request it made counts toward the hour's budget, whatever the outcome
/// (a dry run's caller counts them in the real state, since the run works on a copy).
pub async fn sync(
    config: &Config,
    store: &mut Store,
    client: &ExistClient,
    options: &SyncOptions,
) -> Result<SyncOutcome, crate::error::Error> {
    let outcome = run(config, store, client, options).await;
    if !options.dry_run {
        outbox::count_requests(store, client)?;
    }
    outcome
}

async fn run(
    config: &Config,
    store: &mut Store,
    client: &ExistClient,
    options: &SyncOptions,
) -> Result<SyncOutcome, crate::error::Error> {
    let tz = user_timezone(config, store, client).await?;
    let basis = DayBasis {
        tz,
        day_starts: config.agent.day_starts,
    };
    rebase_days(config, store, basis)?;
    let ownership = if options.dry_run {
        Ownership {
            owned: store
                .read()
                .owned_attributes()?
                .into_iter()
                .map(|a| (a.key.clone(), a))
                .collect(),
            problems: Vec::new(),
        }
    } else {
        ensure_owned(config, store, client).await?
    };
    let mut report = SyncReport {
        timezone: tz.name().to_owned(),
        problems: ownership
            .problems
            .iter()
            .map(|p| p.message.clone())
            .collect(),
        ..SyncReport::default()
    };
    let selected = select_attributes(config, &ownership, &options.attributes)?;
    let mut failure = None;
    let mut snapshots = HashMap::new();
    for source in &config.sources {
        let wanted = options
            .only_sources
            .as_ref()
            .is_none_or(|only| only.contains(&source.name));
        if !wanted || options.stopping() {
            continue;
        }
        let forced = options.forced_sources.contains(&source.name);
        let attributes: Vec<&AttributeConfig> = selected
            .iter()
            .copied()
            .filter(|a| a.source == source.name)
            .collect();
        let pulled = pull::pull_source(source, &attributes, store, basis, options, forced).await;
        failure = failure.or(pulled.failure);
        if let Some(snapshot) = pulled.snapshot {
            snapshots.insert(source.name.clone(), snapshot);
        }
        report.sources.push(pulled.report);
    }
    let computed = compute::compute(
        config,
        store,
        &ownership,
        &selected,
        &snapshots,
        basis,
        options.mode,
    )?;
    report.changes = computed.changes;
    report.rejected_locally = computed.rejected;
    for change in &report.changes {
        tracing::debug!(attribute = %change.attribute, day = %change.day, old = ?change.old, new = %change.new, "value changed");
    }
    if options.dry_run {
        return Ok(SyncOutcome { report, failure });
    }
    let stop = || options.stopping();
    let control = outbox::FlushControl {
        stop: &stop,
        bar: options.bar(0, "sending"),
    };
    match outbox::flush(store, client, &control).await {
        Ok(sent) => report.send = sent,
        Err(stopped) => {
            report.send = stopped.report().clone();
            failure = Some(stopped.into());
        }
    }
    Ok(SyncOutcome { report, failure })
}

/// The user's timezone when it is known without asking Exist: configured, or the profile's as
/// last cached (however old).
pub fn known_timezone(config: &Config, store: &Store) -> Option<Tz> {
    config.exist.timezone.or_else(|| {
        store
            .read()
            .meta("profile_timezone")
            .ok()
            .flatten()
            .and_then(|t| t.parse().ok())
    })
}

/// The user's timezone: configured, or the Exist profile's (cached, checked once a day).
pub async fn user_timezone(
    config: &Config,
    store: &mut Store,
    client: &ExistClient,
) -> Result<Tz, crate::error::Error> {
    if let Some(tz) = config.exist.timezone {
        return Ok(tz);
    }
    let cached: Option<Tz> = store
        .read()
        .meta("profile_timezone")?
        .and_then(|t| t.parse().ok());
    let checked = store
        .read()
        .meta("profile_timezone_checked")?
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.to_utc());
    if let (Some(tz), Some(at)) = (cached, checked) {
        if Utc::now() - at < chrono::Duration::days(1) {
            return Ok(tz);
        }
    }
    let profile = match client.profile().await {
        Ok(p) => p,
        Err(e) => {
            if let Some(tz) = cached {
                tracing::warn!("could not refresh the Exist profile's timezone ({e}); using {tz}");
                return Ok(tz);
            }
            return Err(e.into());
        }
    };
    let tz: Tz = profile.timezone.parse().map_err(|_| {
        crate::error::Error::failed(format!(
            "Exist's profile timezone \"{}\" is not an IANA name this agent knows",
            profile.timezone
        ))
        .with_fix("set exist.timezone in the config")
    })?;
    store.transaction(|tx| {
        tx.set_meta("profile_timezone", tz.name())?;
        tx.set_meta("profile_timezone_checked", &crate::store::now_text())
    })?;
    Ok(tz)
}

/// Re-places every stored record on its day when the timezone or the day start changed.
fn rebase_days(config: &Config, store: &mut Store, basis: DayBasis) -> Result<(), StoreError> {
    let text = basis.to_string();
    let known = store.read().meta("day_basis")?;
    if known.as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    store.transaction(|tx| {
        if known.is_some() {
            tracing::info!(%basis, "the timezone or day start changed; re-placing stored records on their days");
            for source in &config.sources {
                for (id, time) in tx.record_times(&source.name)? {
                    if let Some(time) = decode_time(&time) {
                        tx.set_record_day(&source.name, &id, basis.day_of(&time))?;
                    }
                }
            }
        }
        tx.set_meta("day_basis", &text)
    })
}

/// The configured attributes this run computes: owned ones, narrowed by `--attribute`.
fn select_attributes<'c>(
    config: &'c Config,
    ownership: &Ownership,
    names: &[String],
) -> Result<Vec<&'c AttributeConfig>, crate::error::Error> {
    for name in names {
        let known = config.attributes.iter().any(|a| {
            a.display_name() == *name || ownership.get(a).is_some_and(|o| o.name.as_str() == name)
        });
        if !known {
            return Err(crate::error::Error::usage(format!(
                "--attribute {name}: no configured attribute has that name; configured: {}",
                config
                    .attributes
                    .iter()
                    .map(AttributeConfig::display_name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(config
        .attributes
        .iter()
        .filter(|a| ownership.get(a).is_some())
        .filter(|a| {
            names.is_empty()
                || names.iter().any(|n| {
                    a.display_name() == *n || ownership.get(a).is_some_and(|o| o.name.as_str() == n)
                })
        })
        .collect())
}

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
pub mod outbox;
pub mod values;

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Datelike, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::config::{AttributeConfig, Config, SourceConfig, SourceKind};
use crate::exist::client::ExistClient;
use crate::exist::types::{Day, Value};
use crate::sources::{
    self, Malformed, PullEvent, PullPlan, PullSummary, Record, RecordTime, SinkError, Source,
};
use crate::store::{Cursor, Store, StoreError, StoredRecord, Tx};
use attributes::{ensure_owned, Ownership};
use outbox::SendReport;
use values::{aggregate, decode_time, empty_day_value, encode_time, DayRecord};

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
    /// At most this many update calls (backfill pacing); `None`: as many as the hour allows.
    pub max_update_calls: Option<u32>,
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
            max_update_calls: None,
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

/// Runs one sync.
pub async fn sync(
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
    let mut failure = None;
    for source in &config.sources {
        if options
            .only_sources
            .as_ref()
            .is_some_and(|only| !only.contains(&source.name))
        {
            continue;
        }
        if options.stopping() {
            break;
        }
        let forced = options.forced_sources.contains(&source.name);
        let (source_report, error) = pull_source(source, store, basis, options, forced).await;
        if failure.is_none() {
            failure = error;
        }
        report.sources.push(source_report);
    }
    let selected = select_attributes(config, &ownership, &options.attributes)?;
    let today = basis.today();
    let (changes, rejected) = compute(
        config,
        store,
        &ownership,
        &selected,
        tz,
        today,
        options.mode,
    )?;
    report.changes = changes;
    report.rejected_locally = rejected;
    for change in &report.changes {
        tracing::debug!(attribute = %change.attribute, day = %change.day, old = ?change.old, new = %change.new, "value changed");
    }
    if options.dry_run {
        return Ok(SyncOutcome { report, failure });
    }
    let stop = || options.stopping();
    let control = outbox::FlushControl {
        max_calls: options.max_update_calls,
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

/// The user's timezone: configured, or the Exist profile's (cached, checked once a day).
async fn user_timezone(
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
        crate::error::Error::Failed(format!(
            "Exist's profile timezone \"{}\" is not an IANA name this agent knows; set exist.timezone in the config",
            profile.timezone
        ))
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

/// Pulls one source if it is due (or `forced`), storing records and cursor as the source hands
/// them over. Returns the report and, on failure, the error for the exit code.
async fn pull_source(
    source: &SourceConfig,
    store: &mut Store,
    basis: DayBasis,
    options: &SyncOptions,
    forced: bool,
) -> (SourceReport, Option<crate::error::Error>) {
    let mut report = SourceReport {
        name: source.name.clone(),
        ..SourceReport::default()
    };
    let now = Utc::now();
    let pull = match Pull::plan(source, store, basis, options, now) {
        Ok(pull) => pull,
        Err(e) => return (report, Some(e.into())),
    };
    if options.mode == Mode::Incremental
        && !forced
        && !crate::schedule::source_due(source.every, pull.before.last_pull_at, now)
    {
        tracing::debug!(source = %source.name, "not due yet (every {:?})", source.every);
        return (report, None);
    }
    report.pulled = true;
    let before = pull.before.clone();
    let result = pull.run(store, &mut report.malformed).await;
    let mut cursor = store.read().cursor(&source.name).unwrap_or(before);
    cursor.last_pull_at = Some(now);
    let error = match result {
        Ok(summary) => {
            report.summary = summary;
            cursor.last_error = None;
            None
        }
        Err(e) => {
            let text = e.to_string();
            tracing::warn!("{text}");
            cursor.last_error = Some(text.clone());
            report.error = Some(text.clone());
            // Network trouble, 5xx, 429 and timeouts pass; the rest needs the user.
            Some(if e.is_temporary() {
                crate::error::Error::Temporary(text)
            } else {
                crate::error::Error::Failed(text)
            })
        }
    };
    if let Err(e) = store.transaction(|tx| tx.set_cursor(&source.name, &cursor)) {
        return (report, Some(e.into()));
    }
    for m in &report.malformed {
        tracing::warn!("{m}");
    }
    (report, error)
}

/// One pull of one source: what to ask for and how to store what comes back.
struct Pull<'a> {
    source: &'a SourceConfig,
    basis: DayBasis,
    plan: PullPlan,
    /// The source's cursor before the pull.
    before: Cursor,
    /// A full pull reconciles: records it does not see again are gone.
    full: bool,
    /// Where a backfill notes the windows done, so that a second try skips them.
    resume_key: Option<String>,
    bar: indicatif::ProgressBar,
}

impl<'a> Pull<'a> {
    fn plan(
        source: &'a SourceConfig,
        store: &Store,
        basis: DayBasis,
        options: &SyncOptions,
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let before = store.read().cursor(&source.name)?;
        let window = match &source.kind {
            SourceKind::Http(h) => chrono::Duration::days(i64::from(h.window_days)),
            _ => chrono::Duration::days(31),
        };
        let mut resume_key = None;
        let plan = match options.mode {
            Mode::Incremental => PullPlan::Incremental {
                since: before.updated_since,
            },
            Mode::Full => PullPlan::Windows {
                from: before.history_start.unwrap_or(now - window),
                to: next_second(now),
            },
            Mode::Backfill { from, .. } => {
                let key = format!("backfill:{}:{from}", source.name);
                let done = store
                    .read()
                    .meta(&key)?
                    .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| t.to_utc());
                resume_key = Some(key);
                PullPlan::Windows {
                    from: done.unwrap_or_else(|| start_of(from, basis.tz)),
                    to: next_second(now),
                }
            }
        };
        let windows = match plan {
            PullPlan::Windows { from, to } => {
                ((to - from).num_seconds().max(1) as u64).div_ceil(window.num_seconds() as u64)
            }
            PullPlan::Incremental { .. } => 1,
        };
        Ok(Self {
            source,
            basis,
            plan,
            before,
            full: options.mode == Mode::Full,
            resume_key,
            bar: options.bar(windows, &source.name),
        })
    }

    /// Runs the pull, storing as it goes: HTTP pages are upserted at once (by id, newest wins);
    /// a file or command is read whole and replaces the source's records when it is complete.
    async fn run(
        self,
        store: &mut Store,
        malformed: &mut Vec<Malformed>,
    ) -> Result<PullSummary, sources::SourceError> {
        let puller = sources::from_config(self.source)?;
        let whole = !matches!(self.source.kind, SourceKind::Http(_));
        // A full pull of an HTTP source sees every record that still exists: the others vanished.
        let reconcile = !whole && self.full;
        let mut seen: HashSet<String> = HashSet::new();
        let pull_started = Utc::now();
        let name = self.source.name.clone();
        let mut buffered: Vec<StoredRecord> = Vec::new();
        let mut cursor = self.before.clone();
        let plan_start = match self.plan {
            PullPlan::Incremental { since } => since,
            PullPlan::Windows { from, .. } => Some(from),
        };
        let mut sink = |event: PullEvent| -> Result<(), SinkError> {
            match event {
                PullEvent::Records(records) => {
                    let stored =
                        to_stored(&name, records, self.basis, buffered.len(), whole, malformed);
                    if reconcile {
                        seen.extend(stored.iter().map(|r| r.id.clone()));
                    }
                    if whole {
                        buffered.extend(stored);
                        return Ok(());
                    }
                    store
                        .transaction(|tx| tx.upsert_records(&name, &stored))
                        .map_err(SinkError::new)
                }
                PullEvent::Malformed(m) => {
                    malformed.push(m);
                    Ok(())
                }
                PullEvent::Total(_) => Ok(()),
                PullEvent::WindowDone { cursor: done } => {
                    // A window reaching the present keeps the same overlap as an incremental
                    // pull: what changes while it runs is read again next time (ids make it
                    // harmless).
                    let resume = match self.plan {
                        PullPlan::Windows { .. } => done.min(pull_started) - sources::OVERLAP,
                        PullPlan::Incremental { .. } => done,
                    };
                    cursor.updated_since = cursor.updated_since.max(Some(resume));
                    cursor.history_start = match (cursor.history_start, plan_start) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b).or(Some(done - chrono::Duration::days(31))),
                    };
                    let records = std::mem::take(&mut buffered);
                    self.bar.inc(1);
                    store
                        .transaction(|tx| {
                            if whole {
                                tx.replace_records(&name, &records)?;
                            }
                            if let Some(key) = &self.resume_key {
                                tx.set_meta(key, &done.to_rfc3339())?;
                            }
                            tx.set_cursor(&name, &cursor)
                        })
                        .map_err(SinkError::new)
                }
            }
        };
        let summary = puller.pull(&self.plan, &mut sink).await?;
        self.bar.finish_and_clear();
        if reconcile {
            let gone = store
                .transaction(|tx| tx.delete_records_except(&name, &seen))
                .map_err(|e| sources::SourceError::Sink {
                    source_name: name.clone(),
                    source: SinkError::new(e),
                })?;
            if gone > 0 {
                tracing::info!(source = %name, gone, "records no longer at the source were removed; their days are recomputed");
            }
        }
        Ok(summary)
    }
}

/// The next whole second: query times are written to the second, so a window ending at `now`
/// truncated would miss what changed earlier in the same second.
fn next_second(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{DurationRound, TimeDelta};
    t.duration_trunc(TimeDelta::seconds(1)).unwrap_or(t) + TimeDelta::seconds(1)
}

/// The instant a day begins in `tz` (the earliest, around daylight-saving changes).
fn start_of(day: Day, tz: Tz) -> DateTime<Utc> {
    use chrono::TimeZone;
    tz.from_local_datetime(&day.date().and_time(NaiveTime::MIN))
        .earliest()
        .map(|t| t.to_utc())
        .unwrap_or_else(|| day.date().and_time(NaiveTime::MIN).and_utc())
}

/// Records as stored. Records without an id get one from their position (files and commands
/// are read whole, so positions are stable within a run); an HTTP record without one is malformed.
fn to_stored(
    source: &str,
    records: Vec<Record>,
    basis: DayBasis,
    offset: usize,
    whole: bool,
    malformed: &mut Vec<Malformed>,
) -> Vec<StoredRecord> {
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.into_iter().enumerate() {
        let id = match (r.id, whole) {
            (Some(id), _) => id,
            (None, true) => format!("#{}", offset + i + 1),
            (None, false) => {
                malformed.push(Malformed {
                    source: source.to_owned(),
                    location: format!("record {}", offset + i + 1),
                    reason: "it has no id, so a later change could not replace it".into(),
                });
                continue;
            }
        };
        let day = basis.day_of(&r.time);
        if !(1..=9999).contains(&day.date().year()) {
            malformed.push(Malformed {
                source: source.to_owned(),
                location: format!("id {id}"),
                reason: format!(
                    "its date falls in the year {}, which no Exist day has",
                    day.date().year()
                ),
            });
            continue;
        }
        out.push(StoredRecord {
            id,
            day,
            time: encode_time(&r.time),
            updated_at: r
                .updated_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            data: serde_json::Value::Object(r.fields).to_string(),
        });
    }
    out
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
            return Err(crate::error::Error::Usage(format!(
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

/// Recomputes the days that need it and queues the values that changed. Returns the changes and
/// how many values failed local checks.
fn compute(
    config: &Config,
    store: &mut Store,
    ownership: &Ownership,
    selected: &[&AttributeConfig],
    tz: Tz,
    today: Day,
    mode: Mode,
) -> Result<(Vec<Change>, usize), crate::error::Error> {
    let resync: Vec<Day> = (1..config.agent.resync_days).fold(vec![today], |mut days, _| {
        days.push(days.last().expect("not empty").pred());
        days
    });
    let mut changes = Vec::new();
    let mut rejected = 0;
    let sources: BTreeSet<&str> = selected.iter().map(|a| a.source.as_str()).collect();
    for source in sources {
        let attributes: Vec<&AttributeConfig> = selected
            .iter()
            .copied()
            .filter(|a| a.source == source)
            .collect();
        // Changed days are forgotten only when every attribute of the source took them in.
        let all_of_source = config
            .attributes
            .iter()
            .filter(|a| a.source == source)
            .all(|a| attributes.iter().any(|s| s.key() == a.key()));
        store.transaction(|tx| {
            let dirty = tx.dirty_days(source)?;
            for attribute in &attributes {
                let owned = ownership
                    .get(attribute)
                    .expect("selected attributes are owned");
                let mut days: BTreeSet<Day> = dirty.iter().chain(&resync).copied().collect();
                let computed_key = format!("computed:{}", attribute.key());
                let first_time = tx.meta(&computed_key)?.is_none();
                match mode {
                    Mode::Full => {
                        days.extend(tx.record_days(source)?);
                        days.extend(tx.ledger(&owned.name)?.into_iter().map(|(d, _)| d));
                    }
                    Mode::Backfill { from, to } => {
                        let to = to.unwrap_or(today);
                        days.extend(
                            tx.record_days(source)?
                                .into_iter()
                                .filter(|d| (from..=to).contains(d)),
                        );
                    }
                    Mode::Incremental if first_time => days.extend(tx.record_days(source)?),
                    Mode::Incremental => {}
                }
                for day in days {
                    match day_value(tx, attribute, owned, source, day, tz)? {
                        DayOutcome::Unchanged => {}
                        DayOutcome::Changed(change) => changes.push(change),
                        DayOutcome::Rejected => rejected += 1,
                    }
                }
                tx.set_meta(&computed_key, &crate::store::now_text())?;
            }
            if all_of_source {
                tx.clear_dirty_days(source)?;
            }
            Ok(())
        })?;
    }
    Ok((changes, rejected))
}

enum DayOutcome {
    Unchanged,
    Changed(Change),
    Rejected,
}

/// Computes one (attribute, day) and brings the outbox in line with it.
fn day_value(
    tx: &Tx<'_>,
    attribute: &AttributeConfig,
    owned: &crate::store::OwnedAttribute,
    source: &str,
    day: Day,
    tz: Tz,
) -> Result<DayOutcome, StoreError> {
    let records: Vec<DayRecord> = tx
        .records_on(source, day)?
        .into_iter()
        .filter_map(|(time, data)| {
            Some(DayRecord {
                time: decode_time(&time)?,
                fields: serde_json::from_str(&data).ok()?,
            })
        })
        .collect();
    let old = tx.ledger_value(&owned.name, day)?;
    let new = match aggregate(
        &records,
        attribute.aggregate,
        attribute.field.as_deref(),
        owned.value_type,
        tz,
    ) {
        Ok(Some(v)) => v,
        Ok(None) if records.is_empty() && old.is_some() => {
            match empty_day_value(attribute.aggregate) {
                Some(v) => v,
                None => return Ok(DayOutcome::Unchanged),
            }
        }
        Ok(None) => return Ok(DayOutcome::Unchanged),
        Err(problem) => {
            tracing::warn!(attribute = %owned.name, %day, "cannot compute the value: {problem}");
            tx.reject(
                owned.name.as_str(),
                &day.to_string(),
                &Value::Text(String::new()),
                "local",
                &problem.to_string(),
            )?;
            return Ok(DayOutcome::Rejected);
        }
    };
    if let Err(problem) = owned.value_type.check(&new) {
        if tx.rejected_value(owned.name.as_str(), day)?.as_ref() != Some(&new) {
            tracing::warn!(attribute = %owned.name, %day, value = %new, "not sent: {problem}");
            tx.reject(
                owned.name.as_str(),
                &day.to_string(),
                &new,
                "local",
                &format!("{problem}; not sent"),
            )?;
        }
        return Ok(DayOutcome::Rejected);
    }
    if old.as_ref() == Some(&new) {
        tx.unqueue(&owned.name, day)?;
        return Ok(DayOutcome::Unchanged);
    }
    // A value Exist refused stays aside until it changes: no retrying forever.
    if tx.rejected_value(owned.name.as_str(), day)?.as_ref() == Some(&new) {
        return Ok(DayOutcome::Unchanged);
    }
    if tx.pending_value(&owned.name, day)?.as_ref() != Some(&new) {
        tx.enqueue(&owned.name, day, &new)?;
    }
    Ok(DayOutcome::Changed(Change {
        attribute: owned.name.to_string(),
        day,
        old,
        new,
    }))
}

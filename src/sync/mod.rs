//! The sync engine: from sources to the values Exist must hold, losing nothing.
//!
//! Data flows one way. One run:
//! 1. finds the user's timezone (configured, or the Exist profile's, cached for a day);
//! 2. resolves every configured attribute, acquiring or creating those not owned yet
//!    ([`attributes`]: acquire once); a dry run only resolves;
//! 3. pulls each due source ([`pull`]), each failing, waiting and retrying on its own: records of
//!    incremental sources are stored before their cursor advances, sources read whole give
//!    their day totals;
//! 4. finds the `[[tags]]` values the records hold and resolves their attributes the same way,
//!    creating the new ones ([`tags`]);
//! 5. computes the days that need it ([`compute`]; each record through its attribute's
//!    [`transform`] first) and reconciles them with what the state holds
//!    ([`reconcile`]): a pure list of outbox operations, applied in one transaction (or, in a
//!    dry run, shown);
//! 6. sends the outbox in batches of at most 35 ([`outbox`]).
//!
//! Everything a run did and every way it failed come back in one [`SyncRun`]. A crash at any
//! point leaves records, cursors, changed days and pending values consistent: the next run picks
//! up where this one stopped.

pub mod attributes;
mod compute;
pub mod deliver;
mod fingerprint;
mod newest;
pub mod outbox;
mod pull;
pub mod reconcile;
mod tags;
pub mod transform;
pub mod values;

use std::collections::{BTreeSet, HashMap};

use chrono::{NaiveTime, Utc};
use chrono_tz::Tz;

use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::sources::{Malformed, PullSummary, RecordTime};
use crate::store::{Store, StoreError};
use attributes::{Resolved, Standing};
use exist_api::client::ExistClient;
use exist_api::types::{Day, Value};
use outbox::SendReport;
use reconcile::{LedgerView, Op};
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

impl DayBasis {
    /// A basis as [`Display`](std::fmt::Display) writes it (`Zone/Name|HH:MM`).
    pub fn parse(text: &str) -> Option<Self> {
        let (tz, day_starts) = text.split_once('|')?;
        Some(Self {
            tz: tz.parse().ok()?,
            day_starts: NaiveTime::parse_from_str(day_starts, "%H:%M").ok()?,
        })
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
    /// Plan only: resolve without acquiring, compute, reconcile, and return the operations in
    /// the report instead of applying and sending them (a dry run, on a copy of the state).
    pub plan_only: bool,
    /// Only these sources (e.g. the one a notification named); `None`: all that are due.
    pub only_sources: Option<BTreeSet<String>>,
    /// Sources pulled even when their own frequency says they are not due (notified ones).
    pub forced_sources: BTreeSet<String>,
    /// Sources left out of this run (the daemon's backoff after they failed).
    pub skip_sources: BTreeSet<String>,
    /// Only these attributes (by Exist name or configured name); empty: all.
    pub attributes: Vec<String>,
    /// Becomes true when the run should stop early (SIGTERM): pulls stop at once, the batch in
    /// flight finishes, everything else stays pending or unpulled for the next run.
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
        let bar = indicatif::ProgressBar::new(len).with_prefix(what.to_owned());
        match indicatif::ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}") {
            Ok(style) => bar.with_style(style.progress_chars("=> ")),
            Err(_) => bar,
        }
    }
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Incremental,
            plan_only: false,
            only_sources: None,
            forced_sources: BTreeSet::new(),
            skip_sources: BTreeSet::new(),
            attributes: Vec::new(),
            stop: None,
            progress: false,
        }
    }
}

/// A value that changed: what Exist holds (as far as the ledger knows) and what it should hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The attribute as shown: its Exist name, or its configured name before it is owned.
    pub attribute: String,
    /// Where the attribute stands, when it is not owned yet ("will be acquired").
    pub standing: Option<&'static str>,
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
    /// Whether it was pulled (not skipped as not due, or waiting).
    pub pulled: bool,
    /// Counts of the pull.
    pub summary: PullSummary,
    /// Records skipped as malformed.
    pub malformed: Vec<Malformed>,
    /// Why the pull failed, if it did.
    pub error: Option<String>,
    /// The source asked to be left alone until then.
    pub waiting_until: Option<chrono::DateTime<Utc>>,
    /// A source read whole whose content had not changed since its day values were settled:
    /// it was read, not parsed, and its values stand.
    pub unchanged: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// The timezone days were computed in.
    pub timezone: String,
    /// Per source.
    pub sources: Vec<SourceReport>,
    /// Values queued because they changed (in a dry run: what would be sent, pending values
    /// included).
    pub changes: Vec<Change>,
    /// Values refused by local checks before sending.
    pub rejected_locally: usize,
    /// What sending did.
    pub send: SendReport,
}

/// One way a run failed, and where.
#[derive(Debug)]
pub struct Failure {
    /// The source that failed, when it was one.
    pub source: Option<String>,
    /// Why.
    pub error: Error,
}

/// A finished run: what it did and every way it failed (the run did what it could regardless).
#[derive(Debug, Default)]
pub struct SyncRun {
    /// What was done.
    pub report: SyncReport,
    /// What failed.
    pub failures: Vec<Failure>,
}

impl SyncRun {
    fn fail(&mut self, source: Option<&str>, error: impl Into<Error>) {
        self.failures.push(Failure {
            source: source.map(str::to_owned),
            error: error.into(),
        });
    }

    /// The sources that failed in this run.
    pub fn failed_sources(&self) -> BTreeSet<String> {
        self.failures
            .iter()
            .filter_map(|f| f.source.clone())
            .collect()
    }

    /// Whether something other than a source failed (Exist, the state, an attribute).
    pub fn failed_beyond_sources(&self) -> bool {
        self.failures.iter().any(|f| f.source.is_none())
    }

    /// Whether sending stopped at the hour's limit with values still pending.
    pub fn paused_by_rate_limit(&self) -> bool {
        self.report.send.remaining > 0
            && self
                .failures
                .iter()
                .any(|f| f.source.is_none() && f.error.kind() == ErrorKind::Temporary)
    }

    /// Logs the run's summary and turns its failures into the command's result: the one that
    /// needs the user most sets the exit code, and all are listed.
    pub fn finish(self) -> Result<(), Error> {
        let report = &self.report;
        for s in report.sources.iter().filter(|s| s.pulled && !s.unchanged) {
            tracing::info!(source = %s.name, records = s.summary.records, malformed = s.malformed.len(), "pulled");
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
        let errors = self.failures.into_iter().map(|f| f.error).collect();
        Error::most_urgent(errors).map_or(Ok(()), Err)
    }
}

/// Runs one sync. Every request it makes is counted in the hour's budget by the client itself.
pub async fn sync(
    config: &Config,
    store: &mut Store,
    client: &ExistClient,
    options: &SyncOptions,
) -> SyncRun {
    let mut run = SyncRun::default();
    let tz = match user_timezone(config, store, client).await {
        Ok(tz) => tz,
        Err(e) => {
            run.fail(None, e);
            return run;
        }
    };
    run.report.timezone = tz.name().to_owned();
    let basis = DayBasis {
        tz,
        day_starts: config.agent.day_starts,
    };
    if let Err(e) = rebase_days(config, store, basis) {
        run.fail(None, e);
        return run;
    }
    let resolved = if options.plan_only {
        store
            .read()
            .owned_attributes()
            .map(|owned| attributes::resolve(config, &owned))
            .map_err(Error::from)
    } else {
        attributes::ensure_owned(config, store, client)
            .await
            .map_err(Error::from)
    };
    let resolved = match resolved {
        Ok(r) => r,
        Err(e) => {
            run.fail(None, e);
            return run;
        }
    };
    for r in &resolved {
        if let Standing::Refused(p) = &r.standing {
            run.fail(None, Error::failed(p.message.clone()));
        }
    }
    let selected = match select_attributes(config, &resolved, &options.attributes) {
        Ok(s) => s,
        Err(e) => {
            run.fail(None, e);
            return run;
        }
    };
    let mut totals = HashMap::new();
    // Sources read whole whose content to remember as settled once the run sent its values.
    let mut settling = Vec::new();
    for source in &config.sources {
        let wanted = options
            .only_sources
            .as_ref()
            .is_none_or(|only| only.contains(&source.name))
            && !options.skip_sources.contains(&source.name);
        if !wanted || options.stopping() {
            continue;
        }
        let forced = options.forced_sources.contains(&source.name);
        let inputs = fingerprint::Inputs::of(
            config,
            source,
            &resolved,
            &selected,
            basis,
            basis.today(),
            options.mode,
        );
        let known = match &inputs {
            Some(inputs) => match inputs.known(&store.read()) {
                Ok(known) => known,
                Err(e) => {
                    run.fail(None, e);
                    return run;
                }
            },
            None => None,
        };
        let pulled = pull::pull_source(
            source,
            &config.tags,
            &resolved,
            &selected,
            store,
            basis,
            options,
            forced,
            known,
        )
        .await;
        if let Some(e) = pulled.failure {
            run.fail(Some(&source.name), e);
        }
        if let Some(t) = pulled.totals {
            if let (Some(inputs), Some(content)) = (inputs, t.content) {
                settling.push((inputs, content));
            }
            totals.insert(source.name.clone(), t);
        }
        run.report.sources.push(pulled.report);
    }
    // Tags are known only now that the records are in: the new ones are created (or, planning
    // only, shown as "will be created") and join the configured attributes.
    let (found, history_read) = match find_tags(config, store, &totals, basis, options.mode) {
        Ok(found) => found,
        Err(e) => {
            run.fail(None, e);
            return run;
        }
    };
    let tag_resolved = match resolve_tags(&found.attributes, store, client, options).await {
        Ok(r) => r,
        Err(e) => {
            run.fail(None, e);
            return run;
        }
    };
    // A history read for tags that could not all be created is read again next run.
    let history_read = if tag_resolved
        .iter()
        .any(|r| matches!(r.standing, Standing::Refused(_)))
    {
        Vec::new()
    } else {
        history_read
    };
    let mut resolved: Vec<Resolved<'_>> = resolved;
    let mut selected = selected;
    for (r, (table, value)) in tag_resolved.into_iter().zip(&found.origins) {
        let i = resolved.len();
        match &r.standing {
            Standing::Refused(p) => run.fail(None, Error::failed(p.message.clone())),
            _ if options.attributes.is_empty() => {
                selected.push(i);
                if let Some(t) = totals.get_mut(&config.tags[*table].source) {
                    t.add_tag(i, r.rule(basis.tz), *table, value);
                }
            }
            _ => {}
        }
        resolved.push(r);
    }
    if let Err(e) = settle(
        config, store, &resolved, &selected, &totals, basis, options, &mut run,
    ) {
        run.fail(None, e);
        return run;
    }
    if !options.plan_only && !history_read.is_empty() {
        let noted =
            store.transaction(|tx| history_read.iter().try_for_each(|k| tx.set_computed(k)));
        if let Err(e) = noted {
            run.fail(None, e);
        }
    }
    if options.plan_only || options.stopping() {
        return run;
    }
    let stop = || options.stopping();
    let control = outbox::FlushControl {
        stop: &stop,
        bar: options.bar(0, "sending"),
    };
    match outbox::flush(store, client, &control).await {
        Ok(sent) => run.report.send = sent,
        Err(stopped) => {
            run.report.send = stopped.report().clone();
            run.fail(None, stopped);
        }
    }
    // The values of these contents are applied, and what could be sent was: the same content
    // in the same context next time has nothing to change (what waits in the outbox is sent
    // regardless).
    for (inputs, content) in &settling {
        if let Err(e) = inputs.remember(store, *content) {
            run.fail(None, e);
        }
    }
    run
}

/// The tag attributes of this run, and the stored sources' tags tables whose history was read.
fn find_tags(
    config: &Config,
    store: &Store,
    totals: &HashMap<String, pull::DayTotals>,
    basis: DayBasis,
    mode: Mode,
) -> Result<(tags::TagAttributes, Vec<String>), StoreError> {
    if config.tags.is_empty() {
        return Ok((tags::TagAttributes::default(), Vec::new()));
    }
    let reader = store.read();
    let discovered = tags::discover(config, &reader, totals, basis, mode)?;
    let found = tags::attributes(config, &reader.owned_attributes()?, &discovered.values);
    for why in &found.left_out {
        tracing::warn!("{why}");
    }
    Ok((found, discovered.read_history))
}

/// Resolves the tag attributes: those not owned yet are created, in batched calls, unless the
/// run only plans.
async fn resolve_tags<'t>(
    attributes: &'t [crate::config::AttributeConfig],
    store: &mut Store,
    client: &ExistClient,
    options: &SyncOptions,
) -> Result<Vec<Resolved<'t>>, Error> {
    if attributes.is_empty() {
        return Ok(Vec::new());
    }
    if options.plan_only {
        let owned = store.read().owned_attributes()?;
        return Ok(attributes::resolve_all(attributes, &owned));
    }
    Ok(attributes::ensure_owned_all(attributes, store, client).await?)
}

/// Computes, reconciles and applies (or, planning only, reports) the day values of this run.
#[allow(
    clippy::too_many_arguments,
    reason = "the stages' inputs, each used once"
)]
fn settle(
    config: &Config,
    store: &mut Store,
    resolved: &[Resolved<'_>],
    selected: &[usize],
    totals: &HashMap<String, pull::DayTotals>,
    basis: DayBasis,
    options: &SyncOptions,
    run: &mut SyncRun,
) -> Result<(), StoreError> {
    let reader = store.read();
    let view = LedgerView::load(&reader, resolved, selected)?;
    let computed = compute::compute(
        config,
        &reader,
        resolved,
        selected,
        totals,
        &view,
        basis,
        options.mode,
    )?;
    let compute::Computed {
        values,
        malformed,
        settled_sources,
        computed,
    } = computed;
    for (name, records) in &malformed {
        for m in records {
            tracing::warn!("{m}");
        }
        if let Some(report) = run.report.sources.iter_mut().find(|s| s.name == *name) {
            report.malformed.extend(records.iter().cloned());
        }
    }
    let ops = reconcile::reconcile(values, resolved, &view);
    run.report.rejected_locally = ops
        .iter()
        .filter(|op| matches!(op, Op::Reject { .. }))
        .count();
    run.report.changes = changes(&ops, resolved, &view, options.plan_only);
    for change in &run.report.changes {
        tracing::debug!(attribute = %change.attribute, day = %change.day, old = ?change.old, new = %change.new, "value changed");
    }
    if options.plan_only {
        return Ok(());
    }
    // The records each pulled source skipped, for `status`; a source computed from the store
    // only adds what its rules could not use.
    let mut skipped: HashMap<&str, Vec<&Malformed>> = HashMap::new();
    // An unchanged source keeps the list of its last parse.
    for report in run
        .report
        .sources
        .iter()
        .filter(|s| s.pulled && !s.unchanged)
    {
        skipped
            .entry(report.name.as_str())
            .or_default()
            .extend(report.malformed.iter());
    }
    for (name, records) in &malformed {
        if !skipped.contains_key(name.as_str()) {
            skipped.insert(name.as_str(), records.iter().collect());
        }
    }
    store.transaction(|tx| {
        reconcile::apply(tx, &ops, resolved)?;
        for source in &settled_sources {
            tx.clear_dirty_days(source)?;
        }
        for &i in &computed {
            tx.set_computed(resolved[i].key.as_str())?;
        }
        for (source, records) in &skipped {
            tx.set_skipped(
                source,
                records
                    .iter()
                    .map(|m| (m.location.as_str(), m.reason.as_str())),
            )?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The values a run queues, as shown: in a dry run, also what waits in the outbox already (the
/// real run sends it too).
fn changes(ops: &[Op], resolved: &[Resolved<'_>], view: &LedgerView, plan: bool) -> Vec<Change> {
    let standing = |i: usize| match resolved[i].standing {
        Standing::WillAcquire => Some("will be acquired"),
        Standing::WillCreate => Some("will be created"),
        _ => None,
    };
    let mut out: Vec<Change> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Enqueue {
                attribute,
                day,
                old,
                new,
                ..
            } => Some(Change {
                attribute: resolved[*attribute].shown(),
                standing: standing(*attribute),
                day: *day,
                old: old.clone(),
                new: new.clone(),
            }),
            _ => None,
        })
        .collect();
    if plan {
        let touched: BTreeSet<(usize, Day)> = ops
            .iter()
            .map(|op| match op {
                Op::Enqueue { attribute, day, .. }
                | Op::Unqueue { attribute, day }
                | Op::Reject { attribute, day, .. } => (*attribute, *day),
            })
            .collect();
        for (i, r) in resolved.iter().enumerate() {
            for (day, value) in view.pending(i) {
                if !touched.contains(&(i, day)) {
                    out.push(Change {
                        attribute: r.shown(),
                        standing: standing(i),
                        day,
                        old: view.held(i, day).acknowledged,
                        new: value.clone(),
                    });
                }
            }
        }
        out.sort_by(|a, b| (a.day, &a.attribute).cmp(&(b.day, &b.attribute)));
    }
    out
}

/// The user's timezone when it is known without asking Exist: configured, or the profile's as
/// last cached (however old).
pub fn known_timezone(config: &Config, store: &Store) -> Option<Tz> {
    config
        .exist
        .timezone
        .or_else(|| store.read().profile_timezone().ok().flatten().map(|p| p.tz))
}

/// The user's timezone: configured, or the Exist profile's (cached, checked once a day).
pub async fn user_timezone(
    config: &Config,
    store: &mut Store,
    client: &ExistClient,
) -> Result<Tz, Error> {
    if let Some(tz) = config.exist.timezone {
        return Ok(tz);
    }
    let cached = store.read().profile_timezone()?;
    if let Some(cached) = cached {
        let fresh = cached
            .checked_at
            .is_some_and(|at| Utc::now() - at < chrono::Duration::days(1));
        if fresh {
            return Ok(cached.tz);
        }
    }
    let profile = match client.profile().await {
        Ok(p) => p,
        Err(e) => {
            if let Some(cached) = cached {
                tracing::warn!(
                    "could not refresh the Exist profile's timezone ({e}); using {}",
                    cached.tz
                );
                return Ok(cached.tz);
            }
            return Err(e.into());
        }
    };
    let tz: Tz = profile.timezone.parse().map_err(|_| {
        Error::failed(format!(
            "Exist's profile timezone \"{}\" is not an IANA name this agent knows",
            profile.timezone
        ))
        .with_fix("set exist.timezone in the config")
    })?;
    store.transaction(|tx| tx.set_profile_timezone(tz))?;
    Ok(tz)
}

/// Re-places every stored record on its day when the timezone or the day start changed.
fn rebase_days(config: &Config, store: &mut Store, basis: DayBasis) -> Result<(), StoreError> {
    let text = basis.to_string();
    let known = store.read().day_basis()?;
    if known.as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    store.transaction(|tx| {
        if known.is_some() {
            tracing::info!(%basis, "the timezone or day start changed; re-placing stored records on their days");
            let stored = config
                .sources
                .iter()
                .filter(|s| s.kind.pull_mode().stores_records());
            for source in stored {
                for (id, time) in tx.record_times(&source.name)? {
                    if let Some(time) = decode_time(&time) {
                        tx.set_record_day(&source.name, &id, basis.day_of(&time))?;
                    }
                }
            }
        }
        tx.set_day_basis(&text)
    })
}

/// The attributes this run computes (indexes into `resolved`): owned ones, or in a dry run those
/// that will be, narrowed by `--attribute`.
fn select_attributes(
    config: &Config,
    resolved: &[Resolved<'_>],
    names: &[String],
) -> Result<Vec<usize>, Error> {
    for name in names {
        if !resolved.iter().any(|r| r.is_called(name)) {
            return Err(Error::usage(format!(
                "--attribute {name}: no configured attribute has that name"
            ))
            .with_fix(format!(
                "write one of {}",
                config
                    .attributes
                    .iter()
                    .map(|a| a.display_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(resolved
        .iter()
        .enumerate()
        .filter(|(_, r)| !matches!(r.standing, Standing::Refused(_)))
        .filter(|(_, r)| names.is_empty() || names.iter().any(|n| r.is_called(n)))
        .map(|(i, _)| i)
        .collect())
}

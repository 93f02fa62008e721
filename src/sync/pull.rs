//! Pulling one source and keeping what it gives.
//!
//! How a source is pulled is its kind's [`PullMode`]. An incremental source's records go to the
//! store page by page (by id, the newest version wins) and its cursor advances only after them.
//! A source read whole is not stored at all: its records stream into per-day accumulators (its
//! [`DayTotals`]), which are the source's truth for this run.
//!
//! Every pull is bounded (an HTTP source's `timeout`), stops at once when the run is asked to
//! stop, and leaves a source that asked to wait (`Retry-After`) alone until then, across runs.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Datelike, NaiveTime, Utc};
use chrono_tz::Tz;

use super::attributes::Resolved;
use super::newest::NewestById;
use super::transform::tag_values;
use super::values::{encode_time, sort_key, DayAccumulator, Measure, Rule};
use super::{DayBasis, Mode, SourceReport, SyncOptions};
use crate::config::{PullMode, SourceConfig, SourceKind, TagsConfig};
use crate::error::Error;
use crate::sources::{
    self, ContentFingerprint, Malformed, Projection, PullEvent, PullPlan, PullSummary, Record,
    SinkError, Source, SourceError,
};
use crate::store::{Cursor, Store, StoredRecord};
use exist_api::types::Day;

/// A source read whole in this run: each of its attributes' day accumulators.
#[derive(Debug)]
pub(super) struct DayTotals {
    source: String,
    /// The attributes (by index into the resolved list), with their rules.
    rules: Vec<(usize, Rule)>,
    tz: Tz,
    /// Accumulators by (index into `rules`, day).
    days: HashMap<(usize, Day), DayAccumulator>,
    /// When the source names an id field: the newest version of each record, aggregated at the
    /// end (an accumulator cannot take back a version that a newer one replaces).
    newest: Option<NewestById>,
    /// The `[[tags]]` tables of this source: the tags each day's records hold.
    tags: Vec<TagDays>,
    /// Records taken in.
    pub records: u64,
    /// The fingerprint of the content the records came from, once it was all read.
    pub content: Option<ContentFingerprint>,
    /// The content was the one whose values were settled already: nothing was taken in.
    unchanged: bool,
    /// The newest day a record fell on (how fresh the source is).
    latest_day: Option<Day>,
}

/// What one `[[tags]]` table saw in a source read whole: every day with records, and the tags
/// they hold (none, on a day whose records hold no tag).
#[derive(Debug)]
struct TagDays {
    /// The table, by index into the configuration's tags.
    table: usize,
    config: TagsConfig,
    days: HashMap<Day, BTreeSet<String>>,
}

impl DayTotals {
    fn new(
        source: &SourceConfig,
        rules: Vec<(usize, Rule)>,
        tags: Vec<(usize, TagsConfig)>,
        tz: Tz,
    ) -> Self {
        let newest = source
            .kind
            .id_field()
            .map(|_| NewestById::new(rules.len(), tags.len()));
        Self {
            source: source.name.clone(),
            rules,
            tz,
            days: HashMap::new(),
            newest,
            tags: tags
                .into_iter()
                .map(|(table, config)| TagDays {
                    table,
                    config,
                    days: HashMap::new(),
                })
                .collect(),
            records: 0,
            latest_day: None,
            content: None,
            unchanged: false,
        }
    }

    /// The fields its attributes and tags read.
    fn projection(&self) -> Projection {
        let mut projection = Projection::of(self.tags.iter().map(|t| &t.config.field));
        for (_, rule) in &self.rules {
            projection = projection.union(&rule.projection());
        }
        projection
    }

    /// Takes one record in; a measure that cannot be used is named in `malformed` and left out.
    /// A failure is keeping its version on disk (a source with more records than memory holds).
    fn add(
        &mut self,
        record: Record,
        day: Day,
        malformed: &mut Vec<Malformed>,
    ) -> Result<(), Error> {
        self.records += 1;
        self.latest_day = self.latest_day.max(Some(day));
        let at = sort_key(&record.time, self.tz);
        let tags: Vec<BTreeSet<String>> = self
            .tags
            .iter()
            .map(|t| {
                tag_values(
                    t.config.field.get(&record.fields),
                    t.config.separator.as_deref(),
                )
            })
            .collect();
        let source = &self.source;
        let location = || record.location();
        let measures = self
            .rules
            .iter()
            .map(|(_, rule)| match rule.measure(&record.fields) {
                Measure::Bad(problem) => {
                    malformed.push(Malformed {
                        source: source.clone(),
                        location: location(),
                        reason: problem.to_string(),
                    });
                    Measure::Absent
                }
                measure => measure,
            });
        match (&mut self.newest, &record.id) {
            (Some(newest), Some(id)) => {
                return newest
                    .keep(id, day, at, measures, tags)
                    .map_err(|e| self.disk_failed(e));
            }
            _ => {
                let measures: Vec<Measure> = measures.collect();
                for (i, measure) in measures.into_iter().enumerate() {
                    let acc = self.days.entry((i, day)).or_default();
                    self.rules[i].1.take(acc, at, measure);
                }
                for (t, values) in self.tags.iter_mut().zip(tags) {
                    t.days.entry(day).or_default().extend(values);
                }
            }
        }
        Ok(())
    }

    /// Aggregates the newest version of each record, when they were kept by id. A failure is
    /// reading the versions back from disk.
    fn finish(&mut self) -> Result<(), Error> {
        let Some(newest) = self.newest.take() else {
            return Ok(());
        };
        let (rules, days, tags) = (&self.rules, &mut self.days, &mut self.tags);
        newest
            .finish(|day, versions| {
                for (i, (_, rule)) in rules.iter().enumerate() {
                    let acc = days.entry((i, day)).or_default();
                    for (at, measure) in versions.measures(i) {
                        rule.take(acc, at, measure);
                    }
                }
                for (t, table) in tags.iter_mut().enumerate() {
                    table
                        .days
                        .entry(day)
                        .or_default()
                        .extend(versions.take_tags(t).flatten());
                }
            })
            .map_err(|e| self.disk_failed(e))
    }

    /// Keeping or reading back the versions of a source with more records than memory holds
    /// failed.
    fn disk_failed(&self, e: std::io::Error) -> Error {
        Error::caused(
            crate::error::ErrorKind::Temporary,
            format!(
                "source \"{}\": cannot keep its records' versions in a temporary file ({})",
                self.source,
                std::env::temp_dir().display()
            ),
            e,
        )
        .with_fix("free space in the temporary directory (or point TMPDIR elsewhere); nothing was sent, the next run reads the source again")
    }

    /// Every tag the records hold for `[[tags]]` table `table` (an index into the
    /// configuration's tags); none when the table is not this source's.
    pub fn tag_values(&self, table: usize) -> BTreeSet<String> {
        self.tags
            .iter()
            .filter(|t| t.table == table)
            .flat_map(|t| t.days.values().flatten().cloned())
            .collect()
    }

    /// Takes in tag attribute `attribute` (an index into the resolved list) of `value` from
    /// `[[tags]]` table `table`: on each day with records, it has a record that counts when the
    /// day's records hold the tag, else only records that do not.
    pub fn add_tag(&mut self, attribute: usize, rule: Rule, table: usize, value: &str) {
        let Some(tags) = self.tags.iter().find(|t| t.table == table) else {
            return;
        };
        let index = self.rules.len();
        for (day, values) in &tags.days {
            let acc = self.days.entry((index, *day)).or_default();
            let measure = if values.contains(value) {
                Measure::Absent
            } else {
                Measure::Excluded
            };
            rule.take(acc, day.date().and_time(NaiveTime::MIN), measure);
        }
        self.rules.push((attribute, rule));
    }

    /// The rule and the days, with their accumulators, of attribute `attribute` (an index into
    /// the resolved list).
    pub fn attribute(&self, attribute: usize) -> Option<(&Rule, Vec<(Day, &DayAccumulator)>)> {
        let index = self.rules.iter().position(|(a, _)| *a == attribute)?;
        let days = self
            .days
            .iter()
            .filter(|((i, _), _)| *i == index)
            .map(|((_, day), acc)| (*day, acc))
            .collect();
        Some((&self.rules[index].1, days))
    }
}

/// What pulling one source gave.
pub(super) struct SourcePull {
    /// For the run's report.
    pub report: SourceReport,
    /// Why it failed, if it did.
    pub failure: Option<Error>,
    /// A source read whole: what it holds now (none when it failed or was not pulled).
    pub totals: Option<DayTotals>,
}

/// Pulls one source if it is due (or `forced`), keeping what it hands over as it goes. A source
/// read whole whose content is `known` (its day values are settled for it) is read but not
/// parsed: it gives no totals, and its report says it was unchanged.
#[allow(
    clippy::too_many_arguments,
    reason = "the inputs of one pull, each used once"
)]
pub(super) async fn pull_source(
    source: &SourceConfig,
    tags: &[TagsConfig],
    resolved: &[Resolved<'_>],
    selected: &[usize],
    store: &mut Store,
    basis: DayBasis,
    options: &SyncOptions,
    forced: bool,
    known: Option<ContentFingerprint>,
) -> SourcePull {
    let mut pulled = SourcePull {
        report: SourceReport {
            name: source.name.clone(),
            ..SourceReport::default()
        },
        failure: None,
        totals: None,
    };
    if source.kind.pull_mode() == PullMode::Pushed {
        // Its records are stored as they arrive; a full pull must not take their absence from
        // a pull as their deletion.
        return pulled;
    }
    let now = Utc::now();
    let pull = match Pull::plan(source, store, basis, options, now) {
        Ok(pull) => pull,
        Err(e) => {
            pulled.failure = Some(e.into());
            return pulled;
        }
    };
    if let Some(until) = pull.before.retry_at.filter(|t| *t > now) {
        tracing::info!(source = %source.name, %until, "the source asked to wait; not pulled until then");
        pulled.report.waiting_until = Some(until);
        return pulled;
    }
    if options.mode == Mode::Incremental
        && !forced
        && !crate::schedule::source_due(source.every, pull.before.last_pull_at, now)
    {
        tracing::debug!(source = %source.name, "not due yet (every {:?})", source.every);
        return pulled;
    }
    pulled.report.pulled = true;
    let before = pull.before.clone();
    let mut totals = (source.kind.pull_mode() == PullMode::Whole).then(|| {
        let rules = selected
            .iter()
            .filter(|&&i| resolved[i].config.source == source.name)
            .map(|&i| (i, resolved[i].rule(basis.tz)))
            .collect();
        let tags = tags
            .iter()
            .enumerate()
            .filter(|(_, t)| t.source == source.name)
            .map(|(i, t)| (i, t.clone()))
            .collect();
        DayTotals::new(source, rules, tags, basis.tz)
    });
    let result = bounded(
        source,
        options,
        pull.run(store, &mut pulled.report.malformed, totals.as_mut(), known),
    )
    .await;
    let mut cursor = store.read().cursor(&source.name).unwrap_or(before);
    cursor.last_pull_at = Some(now);
    cursor.retry_at = None;
    match result {
        Ok(summary) => {
            pulled.report.summary = summary;
            match totals {
                Some(t) if t.unchanged => {
                    tracing::info!(source = %source.name, "unchanged since its day values were settled (same content fingerprint): not parsed again, nothing to recompute");
                    pulled.report.unchanged = true;
                }
                Some(mut t) => match t.finish() {
                    Ok(()) => pulled.totals = Some(t),
                    Err(e) => {
                        tracing::warn!("{}", e.message());
                        pulled.report.error = Some(e.message());
                        pulled.failure = Some(e);
                    }
                },
                None => {}
            }
            cursor.last_error = None;
        }
        Err(e) => {
            if let SourceError::RateLimited { retry_after, .. } = &e {
                cursor.retry_at = chrono::Duration::from_std(*retry_after)
                    .ok()
                    .map(|wait| now + wait);
            }
            let error = Error::from(e);
            tracing::warn!("{}", error.message());
            cursor.last_error = Some(error.message());
            pulled.report.error = Some(error.message());
            pulled.failure = Some(error);
        }
    }
    if let Err(e) = store.transaction(|tx| tx.set_cursor(&source.name, &cursor)) {
        pulled.failure.get_or_insert(e.into());
    }
    for m in &pulled.report.malformed {
        tracing::warn!("{m}");
    }
    pulled
}

/// Runs a pull within its source's time bound, and stops it at once when the run is asked to
/// stop: nothing is lost, since a cursor only ever advances after what it covers is stored.
async fn bounded(
    source: &SourceConfig,
    options: &SyncOptions,
    pull: impl std::future::Future<Output = Result<PullSummary, SourceError>>,
) -> Result<PullSummary, SourceError> {
    let limit = match &source.kind {
        SourceKind::Http(h) => Some(h.timeout),
        // A command and a query have their own timeouts; a file ends; an inbox is not pulled.
        SourceKind::File(_)
        | SourceKind::Command(_)
        | SourceKind::Sqlite(_)
        | SourceKind::Inbox(_) => None,
    };
    let stopped = async {
        match options.stop.clone() {
            Some(mut stop) => {
                let _ = stop.wait_for(|s| *s).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let timed = async {
        match limit {
            Some(limit) => tokio::time::timeout(limit, pull).await.unwrap_or_else(|_| {
                Err(SourceError::Unbounded {
                    source_name: source.name.clone(),
                    what: format!("the pull took longer than {} (timeout)", humantime::format_duration(limit)),
                    fix: "raise the source's timeout if it is just slow; the next run pulls again from the last stored cursor".into(),
                })
            }),
            None => pull.await,
        }
    };
    tokio::select! {
        result = timed => result,
        () = stopped => Err(SourceError::Unbounded {
            source_name: source.name.clone(),
            what: "the pull was stopped: the agent is shutting down".into(),
            fix: "nothing to do: the next run pulls again from the last stored cursor".into(),
        }),
    }
}

/// One pull of one source: what to ask for and how to keep what comes back.
struct Pull<'a> {
    source: &'a SourceConfig,
    basis: DayBasis,
    plan: PullPlan,
    /// The source's cursor before the pull.
    before: Cursor,
    /// A full pull reconciles: stored records it does not see again are gone.
    full: bool,
    /// The first day of a backfill, whose progress is noted so that a second try skips it.
    backfill_from: Option<Day>,
    bar: indicatif::ProgressBar,
}

impl<'a> Pull<'a> {
    fn plan(
        source: &'a SourceConfig,
        store: &Store,
        basis: DayBasis,
        options: &SyncOptions,
        now: DateTime<Utc>,
    ) -> Result<Self, crate::store::StoreError> {
        let before = store.read().cursor(&source.name)?;
        let window = match &source.kind {
            SourceKind::Http(h) => chrono::Duration::days(i64::from(h.window_days)),
            _ => chrono::Duration::days(31),
        };
        let mut backfill_from = None;
        let plan = match options.mode {
            Mode::Incremental => PullPlan::Incremental {
                since: before.updated_since,
            },
            Mode::Full => PullPlan::Windows {
                from: before.history_start.unwrap_or(now - window),
                to: next_second(now),
            },
            Mode::Backfill { from, .. } => {
                let done = store.read().backfill_progress(&source.name, from)?;
                backfill_from = Some(from);
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
            backfill_from,
            bar: options.bar(windows, &source.name),
        })
    }

    /// Runs the pull. Records of an incremental source are upserted as they come; a source read
    /// whole feeds `totals`. The cursor is stored after what it covers, in the same transaction.
    async fn run(
        self,
        store: &mut Store,
        malformed: &mut Vec<Malformed>,
        mut totals: Option<&mut DayTotals>,
        known: Option<ContentFingerprint>,
    ) -> Result<PullSummary, SourceError> {
        // Records keep only the fields this run reads: those of a source read whole's
        // attributes and tags; none beyond the parser's own for a stored source, whose records
        // keep their text.
        let reads = totals
            .as_deref()
            .map(DayTotals::projection)
            .unwrap_or_default();
        let puller = sources::from_config(self.source, self.basis.tz)?
            .knowing_content(known)
            .reading(&reads);
        // A full pull of a stored source sees every record that still exists: the others vanished.
        let reconcile = self.full && totals.is_none();
        let mut seen: HashSet<String> = HashSet::new();
        let pull_started = Utc::now();
        let name = self.source.name.clone();
        let mut cursor = self.before.clone();
        let plan_start = match self.plan {
            PullPlan::Incremental { since } => since,
            PullPlan::Windows { from, .. } => Some(from),
        };
        let basis = self.basis;
        let mut sink = |event: PullEvent| -> Result<(), SinkError> {
            match event {
                PullEvent::Records(records) => {
                    if let Some(totals) = totals.as_deref_mut() {
                        let today = basis.today();
                        for r in records {
                            if let Some(day) = placed(&name, &r, basis, today, malformed) {
                                totals.add(r, day, malformed)?;
                            }
                        }
                        return Ok(());
                    }
                    let stored = to_stored(&name, records, basis, malformed);
                    if reconcile {
                        seen.extend(stored.iter().map(|r| r.id.clone()));
                    }
                    Ok(store.transaction(|tx| tx.upsert_records(&name, &stored))?)
                }
                PullEvent::Malformed(m) => {
                    malformed.push(m);
                    Ok(())
                }
                PullEvent::Content {
                    fingerprint,
                    unchanged,
                } => {
                    if let Some(totals) = totals.as_deref_mut() {
                        totals.content = Some(fingerprint);
                        totals.unchanged = unchanged;
                    }
                    Ok(())
                }
                PullEvent::Total(total) => {
                    self.bar
                        .set_message(format!("{total} records in this window"));
                    Ok(())
                }
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
                    self.bar.inc(1);
                    // An unchanged source keeps the count and newest day of its last parse.
                    let size = totals
                        .as_deref()
                        .filter(|t| !t.unchanged)
                        .map(|t| (t.records, t.latest_day));
                    Ok(store.transaction(|tx| {
                        if let Some(from) = self.backfill_from {
                            tx.set_backfill_progress(&name, from, done)?;
                        }
                        if let Some((size, latest)) = size {
                            tx.set_whole_source_records(&name, size)?;
                            if let Some(day) = latest {
                                tx.set_newest_whole_day(&name, day)?;
                            }
                        }
                        tx.set_cursor(&name, &cursor)
                    })?)
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
                    source: e.into(),
                })?;
            if gone > 0 {
                tracing::info!(source = %name, gone, "records no longer at the source were removed; their days are recomputed");
            }
        }
        Ok(summary)
    }
}

/// The user's day a record falls on, or `None` (reported as malformed) when it cannot be a real
/// day of the user's: outside the years Exist knows, or after tomorrow.
/// `today` is the user's day when the records came (read once per page or chunk: it is the
/// clock and a timezone conversion).
fn placed(
    source: &str,
    record: &Record,
    basis: DayBasis,
    today: Day,
    malformed: &mut Vec<Malformed>,
) -> Option<Day> {
    let day = basis.day_of(&record.time);
    let year = day.date().year();
    let reason = if !(1..=9999).contains(&year) {
        format!("its date falls in the year {year}, which no Exist day has")
    } else if day > today.succ() {
        format!("its date {day} is in the future")
    } else {
        return Some(day);
    };
    malformed.push(Malformed {
        source: source.to_owned(),
        location: record.location(),
        reason,
    });
    None
}

/// Records of an incremental source as stored. A record without an id is malformed: a later
/// change could not replace it, so it would count twice.
pub(super) fn to_stored(
    source: &str,
    records: Vec<Record>,
    basis: DayBasis,
    malformed: &mut Vec<Malformed>,
) -> Vec<StoredRecord> {
    let mut out = Vec::with_capacity(records.len());
    let today = basis.today();
    for r in records {
        let Some(id) = r.id.clone() else {
            malformed.push(Malformed {
                source: source.to_owned(),
                location: r.location(),
                reason: "it has no id, so a later change could not replace it".into(),
            });
            continue;
        };
        let Some(day) = placed(source, &r, basis, today, malformed) else {
            continue;
        };
        out.push(StoredRecord {
            id,
            day,
            time: encode_time(&r.time),
            updated_at: r
                .updated_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            data: r
                .raw
                .unwrap_or_else(|| serde_json::Value::Object(r.fields.to_map()).to_string()),
        });
    }
    out
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

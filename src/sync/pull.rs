//! Pulling one source and keeping what it gives.
//!
//! An HTTP source is pulled incrementally: its records go to the store page by page (by id, the
//! newest version wins) and its cursor advances only after them. A file or a command is read
//! whole every time, so its records are not stored at all: they stream into per-day
//! accumulators (a [`Snapshot`]), and the snapshot is the source's truth for this run.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;

use super::values::{encode_time, sort_key, DayAccumulator, Measure, Rule};
use super::{DayBasis, Mode, SourceReport, SyncOptions};
use crate::config::{AttributeConfig, SourceConfig, SourceKind};
use crate::exist::types::Day;
use crate::sources::{
    self, Malformed, PullEvent, PullPlan, PullSummary, Record, SinkError, Source,
};
use crate::store::{Cursor, Store, StoreError, StoredRecord};

/// A source read whole in this run: each of its attributes' day accumulators.
#[derive(Debug)]
pub(super) struct Snapshot {
    /// The attributes, by configuration key, with their rules.
    rules: Vec<(String, Rule)>,
    tz: Tz,
    /// Accumulators by (index into `rules`, day).
    days: HashMap<(usize, Day), DayAccumulator>,
    /// When the source names an id field: the newest version of each record, aggregated at the
    /// end (an accumulator cannot take back a version that a newer one replaces).
    newest: Option<NewestById>,
    /// Records taken in.
    pub records: u64,
}

impl Snapshot {
    fn new(source: &SourceConfig, attributes: &[&AttributeConfig], tz: Tz) -> Self {
        let has_ids = match &source.kind {
            SourceKind::File(f) => f.id_field.is_some(),
            SourceKind::Command(c) => c.id_field.is_some(),
            SourceKind::Http(_) => false,
        };
        let rules = attributes
            .iter()
            .map(|a| {
                let rule = Rule {
                    aggregate: a.aggregate,
                    field: a.field.clone(),
                    value_type: a.value_type(),
                    tz,
                };
                (a.key(), rule)
            })
            .collect();
        Self {
            rules,
            tz,
            days: HashMap::new(),
            newest: has_ids.then(NewestById::default),
            records: 0,
        }
    }

    fn add(&mut self, record: Record, day: Day) {
        self.records += 1;
        let at = sort_key(&record.time, self.tz);
        let measures = self
            .rules
            .iter()
            .map(|(_, rule)| rule.measure(&record.fields));
        match (&mut self.newest, &record.id) {
            (Some(newest), Some(id)) => newest.keep(id, day, at, measures),
            _ => {
                for (i, measure) in measures.enumerate() {
                    let acc = self.days.entry((i, day)).or_default();
                    self.rules[i].1.take(acc, at, measure);
                }
            }
        }
    }

    /// Aggregates the newest version of each record, when they were kept by id.
    fn finish(&mut self) {
        let Some(mut newest) = self.newest.take() else {
            return;
        };
        let rules = self.rules.len();
        for slot in newest.newest_slots() {
            for (i, (_, rule)) in self.rules.iter().enumerate() {
                let acc = self.days.entry((i, newest.days[slot])).or_default();
                rule.take(acc, newest.at[slot], newest.measure(slot * rules + i));
            }
        }
    }

    /// The rule and the days, with their accumulators, of the attribute with `key`.
    pub fn attribute(&self, key: &str) -> Option<(&Rule, Vec<(Day, &DayAccumulator)>)> {
        let index = self.rules.iter().position(|(k, _)| k == key)?;
        let days = self
            .days
            .iter()
            .filter(|((i, _), _)| *i == index)
            .map(|((_, day), acc)| (*day, acc))
            .collect();
        Some((&self.rules[index].1, days))
    }
}

/// The newest version of each record of a source read whole, by id, kept as only what the rules
/// read: a file lists a record again when it was edited, and the later line wins (files and
/// commands carry no change time). Versions are appended as they come and the newest per id is
/// picked once, by sorting, at the end: flat vectors grow in place, where a hash map would hold
/// its old and new tables at once while growing. A million records take about 40 MB.
#[derive(Debug, Default)]
struct NewestById {
    /// A 96-bit hash of each version's id (a collision is out of reach), with its slot.
    ids: Vec<([u32; 3], u32)>,
    days: Vec<Day>,
    at: Vec<NaiveDateTime>,
    /// One per rule and slot: the number, or NaN for an absent measure or one kept in `rare`.
    numbers: Vec<f64>,
    /// Text and unusable measures, by position in `numbers`.
    rare: HashMap<usize, Measure>,
}

impl NewestById {
    fn keep(
        &mut self,
        id: &str,
        day: Day,
        at: NaiveDateTime,
        measures: impl Iterator<Item = Measure>,
    ) {
        let slot = self.days.len();
        self.ids.push((id_hash(id), slot as u32));
        self.days.push(day);
        self.at.push(at);
        for measure in measures {
            let position = self.numbers.len();
            self.numbers.push(match measure {
                Measure::Number(x) => x,
                Measure::Absent => f64::NAN,
                other => {
                    self.rare.insert(position, other);
                    f64::NAN
                }
            });
        }
    }

    /// The slot of the newest version of each id.
    fn newest_slots(&mut self) -> Vec<usize> {
        self.ids.sort_unstable();
        let ids = &self.ids;
        (0..ids.len())
            .filter(|&i| i + 1 == ids.len() || ids[i + 1].0 != ids[i].0)
            .map(|i| ids[i].1 as usize)
            .collect()
    }

    fn measure(&self, position: usize) -> Measure {
        match self.numbers[position] {
            x if !x.is_nan() => Measure::Number(x),
            _ => self.rare.get(&position).cloned().unwrap_or(Measure::Absent),
        }
    }
}

/// A 96-bit hash of an id, from two keyed SipHashes.
fn id_hash(id: &str) -> [u32; 3] {
    use std::hash::{Hash, Hasher};
    let half = |salt: u8| {
        let mut h = std::hash::DefaultHasher::new();
        salt.hash(&mut h);
        id.hash(&mut h);
        h.finish()
    };
    let (a, b) = (half(0), half(1));
    [a as u32, (a >> 32) as u32, b as u32]
}

/// What pulling one source gave.
pub(super) struct Pulled {
    /// For the run's report.
    pub report: SourceReport,
    /// The failure for the exit code, if any.
    pub failure: Option<crate::error::Error>,
    /// A source read whole: what it holds now (none when it failed or was not due).
    pub snapshot: Option<Snapshot>,
}

/// Pulls one source if it is due (or `forced`), keeping what it hands over as it goes.
pub(super) async fn pull_source(
    source: &SourceConfig,
    attributes: &[&AttributeConfig],
    store: &mut Store,
    basis: DayBasis,
    options: &SyncOptions,
    forced: bool,
) -> Pulled {
    let mut pulled = Pulled {
        report: SourceReport {
            name: source.name.clone(),
            ..SourceReport::default()
        },
        failure: None,
        snapshot: None,
    };
    let now = Utc::now();
    let pull = match Pull::plan(source, store, basis, options, now) {
        Ok(pull) => pull,
        Err(e) => {
            pulled.failure = Some(e.into());
            return pulled;
        }
    };
    if options.mode == Mode::Incremental
        && !forced
        && !crate::schedule::source_due(source.every, pull.before.last_pull_at, now)
    {
        tracing::debug!(source = %source.name, "not due yet (every {:?})", source.every);
        return pulled;
    }
    pulled.report.pulled = true;
    let before = pull.before.clone();
    let mut snapshot = is_whole(source).then(|| Snapshot::new(source, attributes, basis.tz));
    let result = pull
        .run(store, &mut pulled.report.malformed, snapshot.as_mut())
        .await;
    let mut cursor = store.read().cursor(&source.name).unwrap_or(before);
    cursor.last_pull_at = Some(now);
    match result {
        Ok(summary) => {
            pulled.report.summary = summary;
            pulled.snapshot = snapshot.map(|mut s| {
                s.finish();
                s
            });
            cursor.last_error = None;
        }
        Err(e) => {
            let text = e.to_string();
            tracing::warn!("{text}");
            cursor.last_error = Some(text.clone());
            pulled.report.error = Some(text.clone());
            pulled.failure = Some(e.into());
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

/// Whether the source is read whole each run (a file or a command).
pub(super) fn is_whole(source: &SourceConfig) -> bool {
    !matches!(source.kind, SourceKind::Http(_))
}

/// The meta key holding how many records a source read whole had at its last pull.
pub(crate) fn snapshot_size_key(source: &str) -> String {
    format!("records:{source}")
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

    /// Runs the pull. HTTP pages are upserted as they come; a source read whole feeds
    /// `snapshot`. The cursor is stored after what it covers, in the same transaction.
    async fn run(
        self,
        store: &mut Store,
        malformed: &mut Vec<Malformed>,
        mut snapshot: Option<&mut Snapshot>,
    ) -> Result<PullSummary, sources::SourceError> {
        let puller = sources::from_config(self.source)?;
        // A full pull of an HTTP source sees every record that still exists: the others vanished.
        let reconcile = self.full && snapshot.is_none();
        let mut seen: HashSet<String> = HashSet::new();
        let pull_started = Utc::now();
        let name = self.source.name.clone();
        let mut cursor = self.before.clone();
        let mut taken = 0usize;
        let plan_start = match self.plan {
            PullPlan::Incremental { since } => since,
            PullPlan::Windows { from, .. } => Some(from),
        };
        let mut sink = |event: PullEvent| -> Result<(), SinkError> {
            match event {
                PullEvent::Records(records) => {
                    if let Some(snapshot) = snapshot.as_deref_mut() {
                        for r in records {
                            taken += 1;
                            if let Some(day) =
                                placed(&name, &r, &format!("record {taken}"), self.basis, malformed)
                            {
                                snapshot.add(r, day);
                            }
                        }
                        return Ok(());
                    }
                    let stored = to_stored(&name, records, self.basis, malformed);
                    if reconcile {
                        seen.extend(stored.iter().map(|r| r.id.clone()));
                    }
                    store
                        .transaction(|tx| tx.upsert_records(&name, &stored))
                        .map_err(SinkError::from)
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
                    self.bar.inc(1);
                    let size = snapshot.as_deref().map(|s| s.records);
                    store
                        .transaction(|tx| {
                            if let Some(key) = &self.resume_key {
                                tx.set_meta(key, &done.to_rfc3339())?;
                            }
                            if let Some(size) = size {
                                tx.set_meta(&snapshot_size_key(&name), &size.to_string())?;
                            }
                            tx.set_cursor(&name, &cursor)
                        })
                        .map_err(SinkError::from)
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
                    source: SinkError::from(e),
                })?;
            if gone > 0 {
                tracing::info!(source = %name, gone, "records no longer at the source were removed; their days are recomputed");
            }
        }
        Ok(summary)
    }
}

/// The user's day a record falls on, or `None` (reported as malformed) when no Exist day could
/// hold it.
fn placed(
    source: &str,
    record: &Record,
    location: &str,
    basis: DayBasis,
    malformed: &mut Vec<Malformed>,
) -> Option<Day> {
    let day = basis.day_of(&record.time);
    let year = day.date().year();
    if (1..=9999).contains(&year) {
        return Some(day);
    }
    malformed.push(Malformed {
        source: source.to_owned(),
        location: location.to_owned(),
        reason: format!("its date falls in the year {year}, which no Exist day has"),
    });
    None
}

/// HTTP records as stored. A record without an id is malformed: a later change could not
/// replace it, so it would count twice.
fn to_stored(
    source: &str,
    records: Vec<Record>,
    basis: DayBasis,
    malformed: &mut Vec<Malformed>,
) -> Vec<StoredRecord> {
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.into_iter().enumerate() {
        let Some(id) = r.id.clone() else {
            malformed.push(Malformed {
                source: source.to_owned(),
                location: format!("record {}", i + 1),
                reason: "it has no id, so a later change could not replace it".into(),
            });
            continue;
        };
        let Some(day) = placed(source, &r, &format!("id {id}"), basis, malformed) else {
            continue;
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 20)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
    }

    #[test]
    fn the_later_version_of_an_id_wins_with_all_its_measures() {
        let day = |d: u32| Day::new(chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap());
        let mut table = NewestById::default();
        table.keep(
            "a",
            day(1),
            at(1),
            [Measure::Number(1.0), Measure::Text("x".into())].into_iter(),
        );
        table.keep(
            "b",
            day(2),
            at(2),
            [Measure::Absent, Measure::Number(5.0)].into_iter(),
        );
        table.keep(
            "a",
            day(3),
            at(3),
            [Measure::Number(7.0), Measure::Absent].into_iter(),
        );
        let mut newest = table.newest_slots();
        newest.sort_unstable();
        assert_eq!(newest, [1, 2], "b's only version and a's second");
        assert_eq!((table.days[2], table.at[2]), (day(3), at(3)));
        assert_eq!(table.measure(2 * 2), Measure::Number(7.0));
        assert_eq!(
            table.measure(2 * 2 + 1),
            Measure::Absent,
            "the old text does not leak into the new version"
        );
        assert_eq!(table.measure(1), Measure::Text("x".into()));
        assert_eq!(table.measure(2), Measure::Absent);
    }

    #[test]
    fn id_hashes_differ_for_near_ids() {
        let hashes: std::collections::HashSet<[u32; 3]> =
            (0..10_000).map(|i| id_hash(&format!("r{i}"))).collect();
        assert_eq!(hashes.len(), 10_000);
    }
}

//! From records to day values: which days to recompute, and each day's value per attribute.
//! Sources read whole give their [`DayTotals`]; incremental sources are read back from the store
//! for the days whose records changed, the resync days, and their history when that is asked
//! for. Nothing is written here: the values go to [`super::reconcile`].

use std::collections::{BTreeSet, HashMap};

use super::attributes::Resolved;
use super::pull::DayTotals;
use super::reconcile::{DayValue, LedgerView};
use super::values::{decode_time, empty_day_value, sort_key, DayAccumulator, Measure};
use super::{DayBasis, Mode};
use crate::config::{Config, Fill, PullMode};
use crate::sources::{Fields, Malformed};
use crate::store::{Reader, StoreError};
use exist_api::types::Day;

/// What computing gave.
#[derive(Debug, Default)]
pub(super) struct Computed {
    /// Every recomputed (attribute, day).
    pub values: Vec<DayValue>,
    /// Stored records a rule could not use, by source.
    pub malformed: HashMap<String, Vec<Malformed>>,
    /// Incremental sources whose changed days were all taken in (every attribute selected).
    pub settled_sources: Vec<String>,
    /// Attributes computed from a stored source, to note as computed once.
    pub computed: Vec<usize>,
}

/// Computes the days that need it for the `selected` attributes (indexes into `resolved`). A
/// source read whole without totals this run (not due, or its pull failed) keeps what Exist
/// holds.
#[allow(
    clippy::too_many_arguments,
    reason = "the stages' inputs, each used once"
)]
pub(super) fn compute(
    config: &Config,
    reader: &Reader<'_>,
    resolved: &[Resolved<'_>],
    selected: &[usize],
    totals: &HashMap<String, DayTotals>,
    view: &LedgerView,
    basis: DayBasis,
    mode: Mode,
) -> Result<Computed, StoreError> {
    let today = basis.today();
    let resync: Vec<Day> = std::iter::successors(Some(today), |d| Some(d.pred()))
        .take(config.agent.resync_days as usize)
        .collect();
    let window = match mode {
        Mode::Backfill { from, to } => Some((from, to.unwrap_or(today))),
        Mode::Incremental | Mode::Full => None,
    };
    let mut computed = Computed::default();
    for source in &config.sources {
        let attributes: Vec<usize> = selected
            .iter()
            .copied()
            .filter(|&i| resolved[i].config.source == source.name)
            .collect();
        if attributes.is_empty() {
            continue;
        }
        match source.kind.pull_mode() {
            PullMode::Whole => {
                if let Some(totals) = totals.get(&source.name) {
                    let fills = |i: usize| resolved[i].config.fill;
                    from_totals(
                        &attributes,
                        totals,
                        view,
                        window,
                        today,
                        fills,
                        &mut computed,
                    );
                }
            }
            PullMode::Incremental | PullMode::Pushed => {
                let dirty = reader.dirty_days(&source.name)?;
                for &i in &attributes {
                    let r = &resolved[i];
                    let mut days = stored_days(reader, r, i, view, &dirty, &resync, mode, window)?;
                    let rule = r.rule(basis.tz);
                    let projection = rule.projection();
                    // Filled days start at the source's first record: before it, the source
                    // says nothing. When the days computed reach back to it (its history, or
                    // its first records), the days between are filled too.
                    let fill_from = match r.config.fill {
                        Fill::Zero => reader.record_days(&source.name)?.first().copied(),
                        Fill::Nothing => None,
                    };
                    if let Some(first) = fill_from {
                        let history = days.first().is_some_and(|d| *d <= first);
                        if history {
                            days.extend(days_between(first, window.map_or(today, |w| w.1)));
                        }
                    }
                    for day in days {
                        let mut acc = DayAccumulator::default();
                        let mut any = false;
                        for row in reader.stored_records_on(&source.name, day)? {
                            // Both were written by this program; a record that no longer reads
                            // is skipped.
                            let (Some(time), Ok(fields)) = (
                                decode_time(&row.time),
                                Fields::parse(row.data.as_bytes(), &projection),
                            ) else {
                                continue;
                            };
                            any = true;
                            match rule.measure(&fields) {
                                Measure::Bad(problem) => computed
                                    .malformed
                                    .entry(source.name.clone())
                                    .or_default()
                                    .push(Malformed {
                                        source: source.name.clone(),
                                        location: format!("id {}", row.id),
                                        reason: problem.to_string(),
                                    }),
                                measure => rule.take(&mut acc, sort_key(&time, basis.tz), measure),
                            }
                        }
                        let filled = fill_from
                            .filter(|first| day >= *first)
                            .and_then(|_| empty_day_value(r.config.aggregate));
                        computed.values.push(DayValue {
                            attribute: i,
                            day,
                            value: rule.value(&acc).or(filled),
                            had_records: any,
                        });
                    }
                    computed.computed.push(i);
                }
                // Changed days are forgotten only when every attribute of the source took them in.
                let all_of_source = resolved
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.config.source == source.name)
                    .all(|(i, _)| attributes.contains(&i));
                if all_of_source {
                    computed.settled_sources.push(source.name.clone());
                }
            }
        }
    }
    Ok(computed)
}

/// The days of a stored source to recompute for an attribute: those whose records changed, the
/// resync days, and, for a full sync, a backfill or an attribute's first run, its history.
#[allow(clippy::too_many_arguments, reason = "the inputs of one decision")]
fn stored_days(
    reader: &Reader<'_>,
    resolved: &Resolved<'_>,
    index: usize,
    view: &LedgerView,
    dirty: &[Day],
    resync: &[Day],
    mode: Mode,
    window: Option<(Day, Day)>,
) -> Result<BTreeSet<Day>, StoreError> {
    let source = &resolved.config.source;
    let mut days: BTreeSet<Day> = dirty.iter().chain(resync).copied().collect();
    match (mode, window) {
        (Mode::Full, _) => {
            days.extend(reader.record_days(source)?);
            days.extend(view.acknowledged_days(index));
        }
        (Mode::Backfill { .. }, Some((from, to))) => {
            days.extend(
                reader
                    .record_days(source)?
                    .into_iter()
                    .filter(|d| (from..=to).contains(d)),
            );
        }
        (Mode::Incremental, _) if !reader.computed_before(resolved.key.as_str())? => {
            days.extend(reader.record_days(source)?);
        }
        _ => {}
    }
    Ok(days)
}

/// Every day the totals hold, every day Exist holds a value for that the source no longer
/// has (its records vanished from the file), and for an attribute that fills empty days, every
/// day from the source's first record to today.
#[allow(clippy::too_many_arguments, reason = "the inputs of one decision")]
fn from_totals(
    attributes: &[usize],
    totals: &DayTotals,
    view: &LedgerView,
    window: Option<(Day, Day)>,
    today: Day,
    fill: impl Fn(usize) -> Fill,
    computed: &mut Computed,
) {
    let in_window = |d: &Day| window.is_none_or(|(from, to)| (from..=to).contains(d));
    for &i in attributes {
        let Some((rule, days)) = totals.attribute(i) else {
            continue;
        };
        let mut held: BTreeSet<Day> = days.iter().map(|(d, _)| *d).collect();
        let filled = match (fill(i), held.first()) {
            (Fill::Zero, Some(_)) => empty_day_value(rule.aggregate),
            _ => None,
        };
        for (day, acc) in days.into_iter().filter(|(d, _)| in_window(d)) {
            computed.values.push(DayValue {
                attribute: i,
                day,
                value: rule.value(acc).or_else(|| filled.clone()),
                had_records: true,
            });
        }
        if let (Some(zero), Some(&first)) = (&filled, held.first()) {
            let empty: Vec<Day> = days_between(first, today)
                .filter(|d| in_window(d) && !held.contains(d))
                .collect();
            for day in empty {
                held.insert(day);
                computed.values.push(DayValue {
                    attribute: i,
                    day,
                    value: Some(zero.clone()),
                    had_records: false,
                });
            }
        }
        for day in view
            .acknowledged_days(i)
            .filter(|d| in_window(d) && !held.contains(d))
        {
            computed.values.push(DayValue {
                attribute: i,
                day,
                value: None,
                had_records: false,
            });
        }
    }
}

/// Every day from `first` to `last`, both included.
fn days_between(first: Day, last: Day) -> impl Iterator<Item = Day> {
    std::iter::successors(Some(first), |d| Some(d.succ())).take_while(move |d| *d <= last)
}

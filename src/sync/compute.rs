//! From records to the values Exist must hold: which days to recompute, their values, and the
//! outbox brought in line with the ledger of what Exist acknowledged.

use std::collections::{BTreeSet, HashMap};

use super::pull::{is_whole, Snapshot};
use super::values::{decode_time, empty_day_value, DayAccumulator, Rule, ValueProblem};
use super::{Change, DayBasis, Mode};
use crate::config::{AttributeConfig, Config};
use crate::exist::types::{Day, Value};
use crate::store::{OwnedAttribute, Store, StoreError, Tx};

use super::attributes::Ownership;

/// What computing did: the values that changed and how many failed local checks.
#[derive(Debug, Default)]
pub(super) struct Computed {
    pub changes: Vec<Change>,
    pub rejected: usize,
}

/// Recomputes the days that need it for the `selected` attributes and queues the values that
/// changed. Sources read whole take their values from `snapshots`; a source without a snapshot
/// this run (not due, or its pull failed) keeps what Exist holds.
pub(super) fn compute(
    config: &Config,
    store: &mut Store,
    ownership: &Ownership,
    selected: &[&AttributeConfig],
    snapshots: &HashMap<String, Snapshot>,
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
        let attributes: Vec<&AttributeConfig> = selected
            .iter()
            .copied()
            .filter(|a| a.source == source.name)
            .collect();
        if attributes.is_empty() {
            continue;
        }
        if is_whole(source) {
            if let Some(snapshot) = snapshots.get(&source.name) {
                store.transaction(|tx| {
                    from_snapshot(tx, ownership, &attributes, snapshot, window, &mut computed)
                })?;
            }
            continue;
        }
        // Changed days are forgotten only when every attribute of the source took them in.
        let all_of_source = config
            .attributes
            .iter()
            .filter(|a| a.source == source.name)
            .all(|a| attributes.iter().any(|s| s.key() == a.key()));
        store.transaction(|tx| {
            let dirty = tx.dirty_days(&source.name)?;
            for attribute in &attributes {
                let owned = ownership
                    .get(attribute)
                    .expect("selected attributes are owned");
                let days = stored_days(tx, attribute, owned, &dirty, &resync, mode, window)?;
                let rule = rule_of(attribute, owned, basis);
                for day in days {
                    let (value, had_records) = from_store(tx, &rule, &source.name, day)?;
                    settle(tx, owned, attribute, day, value, had_records, &mut computed)?;
                }
                tx.set_meta(&computed_key(attribute), &crate::store::now_text())?;
            }
            if all_of_source {
                tx.clear_dirty_days(&source.name)?;
            }
            Ok(())
        })?;
    }
    Ok(computed)
}

/// The days of a stored source to recompute for `attribute`: those whose records changed, the
/// resync days, and, for a full sync, a backfill or a new attribute, the days of its history.
fn stored_days(
    tx: &Tx<'_>,
    attribute: &AttributeConfig,
    owned: &OwnedAttribute,
    dirty: &[Day],
    resync: &[Day],
    mode: Mode,
    window: Option<(Day, Day)>,
) -> Result<BTreeSet<Day>, StoreError> {
    let mut days: BTreeSet<Day> = dirty.iter().chain(resync).copied().collect();
    let first_time = tx.meta(&computed_key(attribute))?.is_none();
    match (mode, window) {
        (Mode::Full, _) => {
            days.extend(tx.record_days(&attribute.source)?);
            days.extend(tx.ledger(&owned.name)?.into_iter().map(|(d, _)| d));
        }
        (Mode::Backfill { .. }, Some((from, to))) => {
            days.extend(
                tx.record_days(&attribute.source)?
                    .into_iter()
                    .filter(|d| (from..=to).contains(d)),
            );
        }
        (Mode::Incremental, _) if first_time => days.extend(tx.record_days(&attribute.source)?),
        _ => {}
    }
    Ok(days)
}

fn computed_key(attribute: &AttributeConfig) -> String {
    format!("computed:{}", attribute.key())
}

fn rule_of(attribute: &AttributeConfig, owned: &OwnedAttribute, basis: DayBasis) -> Rule {
    Rule {
        aggregate: attribute.aggregate,
        field: attribute.field.clone(),
        value_type: owned.value_type,
        tz: basis.tz,
    }
}

/// A day's value from the stored records, and whether there were any.
fn from_store(
    tx: &Tx<'_>,
    rule: &Rule,
    source: &str,
    day: Day,
) -> Result<(Result<Option<Value>, ValueProblem>, bool), StoreError> {
    let mut acc = DayAccumulator::default();
    let mut any = false;
    for (time, data) in tx.records_on(source, day)? {
        // Both were written by this program; a record that no longer reads is skipped.
        let (Some(time), Ok(fields)) = (decode_time(&time), serde_json::from_str(&data)) else {
            continue;
        };
        any = true;
        rule.add(&mut acc, &time, &fields);
    }
    Ok((rule.value(&acc), any))
}

/// Every day a snapshot holds, and every day Exist holds a value for that the snapshot no longer
/// has (its records vanished from the file).
fn from_snapshot(
    tx: &Tx<'_>,
    ownership: &Ownership,
    attributes: &[&AttributeConfig],
    snapshot: &Snapshot,
    window: Option<(Day, Day)>,
    computed: &mut Computed,
) -> Result<(), StoreError> {
    let in_window = |d: &Day| window.is_none_or(|(from, to)| (from..=to).contains(d));
    for attribute in attributes {
        let owned = ownership
            .get(attribute)
            .expect("selected attributes are owned");
        let Some((rule, days)) = snapshot.attribute(&attribute.key()) else {
            continue;
        };
        let mut days: Vec<(Day, &DayAccumulator)> =
            days.into_iter().filter(|(d, _)| in_window(d)).collect();
        days.sort_by_key(|(d, _)| *d);
        let held: BTreeSet<Day> = days.iter().map(|(d, _)| *d).collect();
        for (day, acc) in days {
            settle(tx, owned, attribute, day, rule.value(acc), true, computed)?;
        }
        for (day, _) in tx
            .ledger(&owned.name)?
            .into_iter()
            .filter(|(d, _)| in_window(d) && !held.contains(d))
        {
            settle(tx, owned, attribute, day, Ok(None), false, computed)?;
        }
    }
    Ok(())
}

/// Brings the outbox in line with a day's computed value: queued when it differs from what Exist
/// acknowledged, dropped when it no longer does, set aside when it cannot be sent.
fn settle(
    tx: &Tx<'_>,
    owned: &OwnedAttribute,
    attribute: &AttributeConfig,
    day: Day,
    value: Result<Option<Value>, ValueProblem>,
    had_records: bool,
    computed: &mut Computed,
) -> Result<(), StoreError> {
    let name = owned.name.as_str();
    let old = tx.ledger_value(&owned.name, day)?;
    let new = match value {
        Ok(Some(v)) => v,
        // The day's records vanished: sums and counts fall to zero; other values cannot be unset.
        Ok(None) if !had_records && old.is_some() => match empty_day_value(attribute.aggregate) {
            Some(v) => v,
            None => return Ok(()),
        },
        Ok(None) => return Ok(()),
        Err(problem) => {
            tracing::warn!(attribute = %name, %day, "cannot compute the value: {problem}");
            tx.reject(
                name,
                &day.to_string(),
                &Value::Text(String::new()),
                "local",
                &problem.to_string(),
            )?;
            computed.rejected += 1;
            return Ok(());
        }
    };
    if let Err(problem) = owned.value_type.check(&new) {
        if tx.rejected_value(name, day)?.as_ref() != Some(&new) {
            tracing::warn!(attribute = %name, %day, value = %new, "not sent: {problem}");
            tx.reject(
                name,
                &day.to_string(),
                &new,
                "local",
                &format!("{problem}; not sent"),
            )?;
        }
        computed.rejected += 1;
        return Ok(());
    }
    if old.as_ref() == Some(&new) {
        return tx.unqueue(&owned.name, day);
    }
    // A value Exist refused stays aside until it changes: no retrying forever.
    if tx.rejected_value(name, day)?.as_ref() == Some(&new) {
        return Ok(());
    }
    if tx.pending_value(&owned.name, day)?.as_ref() != Some(&new) {
        tx.enqueue(&owned.name, day, &new)?;
    }
    computed.changes.push(Change {
        attribute: name.to_owned(),
        day,
        old,
        new,
    });
    Ok(())
}

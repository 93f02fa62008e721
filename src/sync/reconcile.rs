//! Reconciling computed day values with what the state holds, as a pure decision table: each
//! (attribute, day) with its computed value and what the ledger, the outbox and the rejected
//! list hold for it gives at most one [`Op`]. [`apply`] then writes the ops in one transaction;
//! a dry run prints them instead. The table has its own tests without SQLite.
//!
//! The rules, in order:
//! - a day without records has no value (an absent measure is not a zero), unless Exist holds
//!   one for it: then sums and counts fall to zero, and other aggregates are left as they are
//!   (Exist never sets a value back to null);
//! - a value that fails the attribute type's checks is set aside with the reason, once;
//! - a value equal to what Exist acknowledged leaves the outbox;
//! - a value Exist refused stays aside until it changes: no retrying forever;
//! - anything else is queued (or stays queued) to be sent.

use std::collections::{BTreeMap, HashMap};

use super::attributes::Resolved;
use super::values::empty_day_value;
use crate::config::Aggregate;
use crate::store::{Reader, StoreError, Writer};
use exist_api::types::{Day, Value, ValueType};

/// A day's value of one attribute, as computed from the records.
#[derive(Debug, Clone, PartialEq)]
pub struct DayValue {
    /// The attribute: an index into the resolved attributes.
    pub attribute: usize,
    /// The day.
    pub day: Day,
    /// The value the records give, if they give one.
    pub value: Option<Value>,
    /// Whether the day had records at all.
    pub had_records: bool,
}

/// What the state holds for one (attribute, day).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Held {
    /// The value Exist acknowledged.
    pub acknowledged: Option<Value>,
    /// The value waiting in the outbox.
    pub pending: Option<Value>,
    /// The value set aside as refused.
    pub rejected: Option<Value>,
}

/// What to do with the outbox for one (attribute, day).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Send `new` (Exist holds `old`); `queued` when the outbox has it already.
    Enqueue {
        /// The attribute (index into the resolved attributes).
        attribute: usize,
        /// The day.
        day: Day,
        /// What Exist holds, as far as the ledger knows.
        old: Option<Value>,
        /// What it should hold.
        new: Value,
        /// Whether the outbox holds `new` already.
        queued: bool,
    },
    /// The outbox's value no longer differs from what Exist holds: drop it.
    Unqueue {
        /// The attribute.
        attribute: usize,
        /// The day.
        day: Day,
    },
    /// The value fails the type's checks: keep it aside with the reason, not sent.
    Reject {
        /// The attribute.
        attribute: usize,
        /// The day.
        day: Day,
        /// The value.
        value: Value,
        /// Why.
        reason: String,
        /// Whether it is set aside already (nothing to write).
        already: bool,
    },
}

/// The decision for one (attribute, day): see the module's rules.
pub fn decide(
    value: DayValue,
    aggregate: Aggregate,
    value_type: ValueType,
    held: &Held,
) -> Option<Op> {
    let DayValue {
        attribute,
        day,
        value,
        had_records,
    } = value;
    let new = match value {
        Some(v) => v,
        None if !had_records && held.acknowledged.is_some() => empty_day_value(aggregate)?,
        None => return None,
    };
    if let Err(problem) = value_type.check(&new) {
        return Some(Op::Reject {
            attribute,
            day,
            already: held.rejected.as_ref() == Some(&new),
            value: new,
            reason: format!("{problem}; not sent"),
        });
    }
    if held.acknowledged.as_ref() == Some(&new) {
        return held
            .pending
            .is_some()
            .then_some(Op::Unqueue { attribute, day });
    }
    if held.rejected.as_ref() == Some(&new) {
        return None;
    }
    Some(Op::Enqueue {
        attribute,
        day,
        old: held.acknowledged.clone(),
        queued: held.pending.as_ref() == Some(&new),
        new,
    })
}

/// What the state holds for the attributes of a run, read once.
#[derive(Debug, Default)]
pub struct LedgerView {
    held: HashMap<usize, AttributeHeld>,
}

#[derive(Debug, Default)]
struct AttributeHeld {
    ledger: BTreeMap<Day, Value>,
    pending: HashMap<Day, Value>,
    rejected: HashMap<Day, Value>,
}

impl LedgerView {
    /// Reads what the state holds for the owned ones among `attributes` (indexes into
    /// `resolved`); an attribute not owned yet holds nothing.
    pub fn load(
        reader: &Reader<'_>,
        resolved: &[Resolved<'_>],
        attributes: &[usize],
    ) -> Result<Self, StoreError> {
        let mut held = HashMap::new();
        for &i in attributes {
            let Some(name) = resolved[i].name() else {
                continue;
            };
            held.insert(
                i,
                AttributeHeld {
                    ledger: reader.ledger(name)?.into_iter().collect(),
                    pending: reader.outbox_of(name)?.into_iter().collect(),
                    rejected: reader.rejected_of(name)?.into_iter().collect(),
                },
            );
        }
        Ok(Self { held })
    }

    /// What the state holds for (attribute, day).
    pub fn held(&self, attribute: usize, day: Day) -> Held {
        let Some(a) = self.held.get(&attribute) else {
            return Held::default();
        };
        Held {
            acknowledged: a.ledger.get(&day).cloned(),
            pending: a.pending.get(&day).cloned(),
            rejected: a.rejected.get(&day).cloned(),
        }
    }

    /// The days Exist holds a value for, for `attribute`.
    pub fn acknowledged_days(&self, attribute: usize) -> impl Iterator<Item = Day> + '_ {
        self.held
            .get(&attribute)
            .into_iter()
            .flat_map(|a| a.ledger.keys().copied())
    }

    /// The values waiting in the outbox for `attribute`, by day.
    pub fn pending(&self, attribute: usize) -> impl Iterator<Item = (Day, &Value)> + '_ {
        self.held
            .get(&attribute)
            .into_iter()
            .flat_map(|a| a.pending.iter().map(|(d, v)| (*d, v)))
    }
}

/// The ops for `values`, in (attribute, day) order.
pub fn reconcile(values: Vec<DayValue>, resolved: &[Resolved<'_>], view: &LedgerView) -> Vec<Op> {
    let mut ops: Vec<Op> = values
        .into_iter()
        .filter_map(|v| {
            let r = &resolved[v.attribute];
            let held = view.held(v.attribute, v.day);
            decide(v, r.config.aggregate, r.value_type, &held)
        })
        .collect();
    ops.sort_by_key(|op| match op {
        Op::Enqueue { attribute, day, .. }
        | Op::Unqueue { attribute, day }
        | Op::Reject { attribute, day, .. } => (*attribute, *day),
    });
    ops
}

/// Writes `ops` (those of owned attributes; the others wait for ownership).
pub fn apply(tx: &Writer<'_>, ops: &[Op], resolved: &[Resolved<'_>]) -> Result<(), StoreError> {
    for op in ops {
        match op {
            Op::Enqueue {
                attribute,
                day,
                new,
                queued: false,
                ..
            } => {
                if let Some(name) = resolved[*attribute].name() {
                    tx.enqueue(name, *day, new)?;
                }
            }
            Op::Unqueue { attribute, day } => {
                if let Some(name) = resolved[*attribute].name() {
                    tx.unqueue(name, *day)?;
                }
            }
            Op::Reject {
                attribute,
                day,
                value,
                reason,
                already: false,
            } => {
                if let Some(name) = resolved[*attribute].name() {
                    tracing::warn!(attribute = %name, %day, %value, "not sent: {reason}");
                    tx.reject(name, *day, value, "local", reason)?;
                }
            }
            Op::Enqueue { queued: true, .. } | Op::Reject { already: true, .. } => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> Day {
        Day::new(chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap())
    }

    fn value(v: Option<i64>, had_records: bool) -> DayValue {
        DayValue {
            attribute: 0,
            day: day(20),
            value: v.map(Value::Int),
            had_records,
        }
    }

    fn held(ack: Option<i64>, pending: Option<i64>, rejected: Option<i64>) -> Held {
        Held {
            acknowledged: ack.map(Value::Int),
            pending: pending.map(Value::Int),
            rejected: rejected.map(Value::Int),
        }
    }

    fn d(v: DayValue, h: Held) -> Option<Op> {
        decide(v, Aggregate::Sum, ValueType::Integer, &h)
    }

    #[test]
    fn the_decision_table() {
        let enqueue = |old: Option<i64>, new: i64, queued| {
            Some(Op::Enqueue {
                attribute: 0,
                day: day(20),
                old: old.map(Value::Int),
                new: Value::Int(new),
                queued,
            })
        };
        // A new value is sent; one already queued stays queued.
        assert_eq!(
            d(value(Some(5), true), held(None, None, None)),
            enqueue(None, 5, false)
        );
        assert_eq!(
            d(value(Some(5), true), held(Some(3), Some(5), None)),
            enqueue(Some(3), 5, true)
        );
        // Equal to what Exist holds: nothing, or the pending value leaves the outbox.
        assert_eq!(d(value(Some(5), true), held(Some(5), None, None)), None);
        assert_eq!(
            d(value(Some(5), true), held(Some(5), Some(7), None)),
            Some(Op::Unqueue {
                attribute: 0,
                day: day(20)
            })
        );
        // Refused before: stays aside until it changes.
        assert_eq!(d(value(Some(5), true), held(None, None, Some(5))), None);
        assert_eq!(
            d(value(Some(6), true), held(None, None, Some(5))),
            enqueue(None, 6, false)
        );
        // No records: no value, unless Exist holds one (then a sum falls to zero).
        assert_eq!(d(value(None, false), held(None, None, None)), None);
        assert_eq!(
            d(value(None, false), held(Some(4), None, None)),
            enqueue(Some(4), 0, false)
        );
        assert_eq!(
            decide(
                value(None, false),
                Aggregate::Max,
                ValueType::Integer,
                &held(Some(4), None, None)
            ),
            None,
            "a maximum cannot be unset"
        );
        assert_eq!(
            d(value(None, true), held(Some(4), None, None)),
            None,
            "records without the field say nothing"
        );
    }

    #[test]
    fn values_the_type_refuses_are_set_aside_once() {
        let ten = value(Some(10), true);
        let op = decide(
            ten.clone(),
            Aggregate::Max,
            ValueType::Scale,
            &held(None, None, None),
        );
        assert!(
            matches!(op, Some(Op::Reject { already: false, .. })),
            "{op:?}"
        );
        let again = decide(
            ten,
            Aggregate::Max,
            ValueType::Scale,
            &held(None, None, Some(10)),
        );
        assert!(
            matches!(again, Some(Op::Reject { already: true, .. })),
            "{again:?}"
        );
    }
}

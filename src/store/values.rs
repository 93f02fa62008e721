//! Attributes owned, the ledger of values Exist acknowledged, the outbox and rejected values.
//!
//! The outbox holds one pending value per (attribute, day): a day's total replaces an older
//! pending total of the same day, since Exist's `update` overwrites. A value leaves the outbox
//! only in the transaction that records Exist's acknowledgement in the ledger, or its rejection.

use rusqlite::params;

use super::{now_text, Reader, StoreError, Writer};
use exist_api::types::{AttributeName, Day, Group, Value, ValueType};

/// An attribute this agent owns in Exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedAttribute {
    /// The configuration's key for it (see [`crate::config::AttributeConfig::key`]).
    pub key: String,
    /// Its name in Exist (read back from Exist for custom attributes).
    pub name: AttributeName,
    /// Its group.
    pub group: Group,
    /// Its value type.
    pub value_type: ValueType,
}

/// A value waiting in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The attribute's Exist name.
    pub attribute: AttributeName,
    /// The day.
    pub day: Day,
    /// The day's total.
    pub value: Value,
    /// How many sends were tried.
    pub attempts: u32,
}

/// A value Exist (or a local check) refused, kept for `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The attribute's Exist name.
    pub attribute: AttributeName,
    /// The day.
    pub day: Day,
    /// The refused value.
    pub value: Value,
    /// Exist's error code (`validation`, ...) or `local` for a local check.
    pub error_code: String,
    /// The error's words.
    pub error: String,
    /// When.
    pub rejected_at: String,
}

/// A record the last pull of a source skipped, kept for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The source.
    pub source: String,
    /// Where the record is (`line 17`, `id abc`).
    pub location: String,
    /// Why it was skipped.
    pub reason: String,
    /// When.
    pub seen_at: String,
}

/// How many skipped records are kept per source: enough to find the pattern, bounded for a file
/// where every line is wrong.
pub const SKIPPED_KEPT: usize = 200;

fn value_text(v: &Value) -> String {
    serde_json::to_string(v).expect("values always serialize")
}

/// The value columns that hold one value per (attribute, day).
#[derive(Clone, Copy)]
enum ValueTable {
    Ledger,
    Outbox,
    Rejected,
}

impl Reader<'_> {
    fn parse_value(&self, text: &str) -> Result<Value, StoreError> {
        serde_json::from_str(text).map_err(|_| self.corrupt(format!("bad value `{text}`")))
    }

    fn parse_name(&self, text: String) -> Result<AttributeName, StoreError> {
        AttributeName::new(text).map_err(|e| self.corrupt(e.to_string()))
    }

    /// The value `table` holds for (attribute, day).
    fn value_in(
        &self,
        table: ValueTable,
        attribute: &str,
        day: Day,
    ) -> Result<Option<Value>, StoreError> {
        let sql = match table {
            ValueTable::Ledger => "SELECT value FROM ledger WHERE attribute = ?1 AND day = ?2",
            ValueTable::Outbox => "SELECT value FROM outbox WHERE attribute = ?1 AND day = ?2",
            ValueTable::Rejected => "SELECT value FROM rejected WHERE attribute = ?1 AND day = ?2",
        };
        let text: Option<String> =
            self.one(sql, params![attribute, day.to_string()], |r| r.get(0))?;
        text.map(|t| self.parse_value(&t)).transpose()
    }

    /// Every attribute this agent owns.
    pub fn owned_attributes(&self) -> Result<Vec<OwnedAttribute>, StoreError> {
        let rows = self.all(
            "SELECT key, name, group_name, value_type FROM attributes ORDER BY key",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, u8>(3)?,
                ))
            },
        )?;
        rows.into_iter()
            .map(|(key, name, group, vt)| {
                Ok(OwnedAttribute {
                    key,
                    name: self.parse_name(name)?,
                    group: Group::from_name(&group)
                        .ok_or_else(|| self.corrupt(format!("bad group `{group}`")))?,
                    value_type: ValueType::from_code(vt)
                        .ok_or_else(|| self.corrupt(format!("bad value type {vt}")))?,
                })
            })
            .collect()
    }

    /// The last value Exist acknowledged for (attribute, day).
    pub fn ledger_value(
        &self,
        attribute: &AttributeName,
        day: Day,
    ) -> Result<Option<Value>, StoreError> {
        self.value_in(ValueTable::Ledger, attribute.as_str(), day)
    }

    /// Every acknowledged value of `attribute`, oldest day first.
    pub fn ledger(&self, attribute: &AttributeName) -> Result<Vec<(Day, Value)>, StoreError> {
        self.values_of(ValueTable::Ledger, attribute)
    }

    /// The value pending for (attribute, day), if any.
    pub fn pending_value(
        &self,
        attribute: &AttributeName,
        day: Day,
    ) -> Result<Option<Value>, StoreError> {
        self.value_in(ValueTable::Outbox, attribute.as_str(), day)
    }

    /// Everything pending, oldest day first.
    pub fn pending(&self) -> Result<Vec<Pending>, StoreError> {
        let rows = self.all(
            "SELECT attribute, day, value, attempts FROM outbox ORDER BY day, attribute",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, u32>(3)?,
                ))
            },
        )?;
        rows.into_iter()
            .map(|(attribute, day, value, attempts)| {
                Ok(Pending {
                    attribute: self.parse_name(attribute)?,
                    day: self.parse_day(&day)?,
                    value: self.parse_value(&value)?,
                    attempts,
                })
            })
            .collect()
    }

    /// The value refused for (attribute, day), so an unchanged refused value is not re-queued.
    pub fn rejected_value(
        &self,
        attribute: &AttributeName,
        day: Day,
    ) -> Result<Option<Value>, StoreError> {
        self.value_in(ValueTable::Rejected, attribute.as_str(), day)
    }

    /// Every rejected value, newest first.
    pub fn rejected(&self) -> Result<Vec<Rejected>, StoreError> {
        let rows = self.all(
            "SELECT attribute, day, value, error_code, error, rejected_at FROM rejected
             ORDER BY rejected_at DESC, attribute, day",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            },
        )?;
        rows.into_iter()
            .map(|(attribute, day, value, error_code, error, rejected_at)| {
                Ok(Rejected {
                    attribute: self.parse_name(attribute)?,
                    day: self.parse_day(&day)?,
                    value: self.parse_value(&value)?,
                    error_code,
                    error,
                    rejected_at,
                })
            })
            .collect()
    }

    /// The (day, value) pairs `table` holds for `attribute`, oldest day first.
    fn values_of(
        &self,
        table: ValueTable,
        attribute: &AttributeName,
    ) -> Result<Vec<(Day, Value)>, StoreError> {
        let sql = match table {
            ValueTable::Ledger => "SELECT day, value FROM ledger WHERE attribute = ?1 ORDER BY day",
            ValueTable::Outbox => "SELECT day, value FROM outbox WHERE attribute = ?1 ORDER BY day",
            ValueTable::Rejected => {
                "SELECT day, value FROM rejected WHERE attribute = ?1 ORDER BY day"
            }
        };
        let rows = self.all(sql, [attribute.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        rows.into_iter()
            .map(|(day, value)| Ok((self.parse_day(&day)?, self.parse_value(&value)?)))
            .collect()
    }

    /// Every value pending for `attribute`.
    pub fn outbox_of(&self, attribute: &AttributeName) -> Result<Vec<(Day, Value)>, StoreError> {
        self.values_of(ValueTable::Outbox, attribute)
    }

    /// Every value of `attribute` kept aside as refused.
    pub fn rejected_of(&self, attribute: &AttributeName) -> Result<Vec<(Day, Value)>, StoreError> {
        self.values_of(ValueTable::Rejected, attribute)
    }

    /// The records the last pulls skipped, source by source, in the order they were met.
    pub fn skipped(&self) -> Result<Vec<Skipped>, StoreError> {
        self.all(
            "SELECT source, location, reason, seen_at FROM skipped ORDER BY source, position",
            [],
            |r| {
                Ok(Skipped {
                    source: r.get(0)?,
                    location: r.get(1)?,
                    reason: r.get(2)?,
                    seen_at: r.get(3)?,
                })
            },
        )
    }
}

impl Writer<'_> {
    /// Records that this agent owns an attribute.
    pub fn set_owned(&self, a: &OwnedAttribute) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO attributes (key, name, group_name, value_type, acquired_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (key) DO UPDATE SET name = excluded.name, group_name = excluded.group_name,
               value_type = excluded.value_type, acquired_at = excluded.acquired_at",
            params![
                a.key,
                a.name.as_str(),
                a.group.as_str(),
                a.value_type.code(),
                now_text()
            ],
        )
    }

    /// Forgets every owned attribute (after `logout --release`).
    pub fn clear_owned(&self) -> Result<(), StoreError> {
        self.exec("DELETE FROM attributes", [])
    }

    /// Notes what Exist is known to hold for (attribute, day), as read back from Exist: the
    /// ledger follows it (`None`: Exist holds nothing), so that what the agent queues again is
    /// compared with the truth.
    pub fn set_held(
        &self,
        attribute: &AttributeName,
        day: Day,
        value: Option<&Value>,
    ) -> Result<(), StoreError> {
        match value {
            Some(value) => self.exec(
                "INSERT INTO ledger (attribute, day, value, acked_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (attribute, day) DO UPDATE SET value = excluded.value, acked_at = excluded.acked_at",
                params![attribute.as_str(), day.to_string(), value_text(value), now_text()],
            ),
            None => self.exec(
                "DELETE FROM ledger WHERE attribute = ?1 AND day = ?2",
                params![attribute.as_str(), day.to_string()],
            ),
        }
    }

    /// Queues a day's total, replacing an older pending total of the same day.
    pub fn enqueue(
        &self,
        attribute: &AttributeName,
        day: Day,
        value: &Value,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO outbox (attribute, day, value, queued_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (attribute, day) DO UPDATE SET value = excluded.value,
               queued_at = excluded.queued_at, attempts = 0",
            params![
                attribute.as_str(),
                day.to_string(),
                value_text(value),
                now_text()
            ],
        )
    }

    /// Drops a pending value that no longer differs from what Exist holds.
    pub fn unqueue(&self, attribute: &AttributeName, day: Day) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM outbox WHERE attribute = ?1 AND day = ?2",
            params![attribute.as_str(), day.to_string()],
        )
    }

    /// Counts a send attempt of a pending value.
    pub fn note_attempt(&self, attribute: &AttributeName, day: Day) -> Result<(), StoreError> {
        self.exec(
            "UPDATE outbox SET attempts = attempts + 1 WHERE attribute = ?1 AND day = ?2",
            params![attribute.as_str(), day.to_string()],
        )
    }

    /// Exist acknowledged `value` for (attribute, day): record it and take it out of the outbox
    /// (unless a newer value was queued meanwhile) and out of the rejected list.
    pub fn acknowledge(
        &self,
        attribute: &AttributeName,
        day: Day,
        value: &Value,
    ) -> Result<(), StoreError> {
        let (name, day, value) = (attribute.as_str(), day.to_string(), value_text(value));
        self.exec(
            "INSERT INTO ledger (attribute, day, value, acked_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (attribute, day) DO UPDATE SET value = excluded.value, acked_at = excluded.acked_at",
            params![name, day, value, now_text()],
        )?;
        self.exec(
            "DELETE FROM outbox WHERE attribute = ?1 AND day = ?2 AND value = ?3",
            params![name, day, value],
        )?;
        self.exec(
            "DELETE FROM rejected WHERE attribute = ?1 AND day = ?2",
            params![name, day],
        )
    }

    /// Exist (or a local check) refused `value`: keep it aside with the error, out of the outbox.
    pub fn reject(
        &self,
        attribute: &AttributeName,
        day: Day,
        value: &Value,
        code: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        let (attribute, day) = (attribute.as_str(), day.to_string());
        self.exec(
            "INSERT INTO rejected (attribute, day, value, error_code, error, rejected_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (attribute, day) DO UPDATE SET value = excluded.value,
               error_code = excluded.error_code, error = excluded.error, rejected_at = excluded.rejected_at",
            params![attribute, day, value_text(value), code, error, now_text()],
        )?;
        self.exec(
            "DELETE FROM outbox WHERE attribute = ?1 AND day = ?2",
            params![attribute, day],
        )
    }

    /// Replaces the records `source`'s last pull skipped (the first [`SKIPPED_KEPT`] of them).
    pub fn set_skipped<'a>(
        &self,
        source: &str,
        skipped: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), StoreError> {
        self.exec("DELETE FROM skipped WHERE source = ?1", [source])?;
        let now = now_text();
        for (position, (location, reason)) in skipped.into_iter().take(SKIPPED_KEPT).enumerate() {
            self.exec(
                "INSERT INTO skipped (source, position, location, reason, seen_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![source, position as i64, location, reason, now],
            )?;
        }
        Ok(())
    }
}

//! Source records, keyed by (source, id). A record pulled again replaces the old one when it is
//! at least as new, so a changed record never counts twice. Triggers (see the migrations) note
//! every day whose records changed in `dirty_days`, in the same transaction.

use rusqlite::params;

use super::{Reader, StoreError, Writer};
use exist_api::types::Day;

/// A stored record as a day's computation reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    /// The source's id.
    pub id: String,
    /// Its time, as [`StoredRecord::time`].
    pub time: String,
    /// Its fields, as a JSON object.
    pub data: String,
}

/// A record as stored: its day under the current day basis, its time as parsed, its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// The source's id, or a synthetic one for sources without ids.
    pub id: String,
    /// The user's day it falls on.
    pub day: Day,
    /// Its time, in the form the sources module writes and reads back.
    pub time: String,
    /// Its last change (RFC 3339 UTC), when the source says.
    pub updated_at: Option<String>,
    /// Its fields, as a JSON object.
    pub data: String,
}

const UPSERT: &str = "INSERT INTO records (source, id, day, time, updated_at, data)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT (source, id) DO UPDATE SET day = excluded.day, time = excluded.time,
       updated_at = excluded.updated_at, data = excluded.data
     WHERE (excluded.updated_at IS NULL OR records.updated_at IS NULL
            OR excluded.updated_at >= records.updated_at)
       AND (excluded.data IS NOT records.data OR excluded.day IS NOT records.day
            OR excluded.time IS NOT records.time)";

impl Reader<'_> {
    /// The times and fields of `source`'s records on `day`.
    pub fn records_on(&self, source: &str, day: Day) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .stored_records_on(source, day)?
            .into_iter()
            .map(|r| (r.time, r.data))
            .collect())
    }

    /// `source`'s records on `day`, with their ids.
    pub fn stored_records_on(&self, source: &str, day: Day) -> Result<Vec<StoredRow>, StoreError> {
        self.all(
            "SELECT id, time, data FROM records WHERE source = ?1 AND day = ?2 ORDER BY id",
            params![source, day.to_string()],
            |r| {
                Ok(StoredRow {
                    id: r.get(0)?,
                    time: r.get(1)?,
                    data: r.get(2)?,
                })
            },
        )
    }

    /// Every day `source` has records on.
    pub fn record_days(&self, source: &str) -> Result<Vec<Day>, StoreError> {
        self.days(
            "SELECT DISTINCT day FROM records WHERE source = ?1 ORDER BY day",
            source,
        )
    }

    /// How many records `source` has.
    pub fn record_count(&self, source: &str) -> Result<u64, StoreError> {
        let n = self.one(
            "SELECT COUNT(*) FROM records WHERE source = ?1",
            [source],
            |r| r.get::<_, i64>(0),
        )?;
        Ok(n.unwrap_or(0).unsigned_abs())
    }

    /// The newest day `source` has a stored record on.
    pub fn newest_record_day(&self, source: &str) -> Result<Option<Day>, StoreError> {
        let day: Option<Option<String>> = self.one(
            "SELECT MAX(day) FROM records WHERE source = ?1",
            [source],
            |r| r.get(0),
        )?;
        day.flatten().map(|d| self.parse_day(&d)).transpose()
    }

    /// Days of `source` whose records changed since [`Tx::clear_dirty_days`] was last called.
    pub fn dirty_days(&self, source: &str) -> Result<Vec<Day>, StoreError> {
        self.days(
            "SELECT day FROM dirty_days WHERE source = ?1 ORDER BY day",
            source,
        )
    }

    /// Every record's (id, time) of `source`, to re-place them when the day basis changes.
    pub fn record_times(&self, source: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.all(
            "SELECT id, time FROM records WHERE source = ?1",
            [source],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    fn days(&self, sql: &str, source: &str) -> Result<Vec<Day>, StoreError> {
        let texts: Vec<String> = self.all(sql, [source], |r| r.get(0))?;
        texts.iter().map(|t| self.parse_day(t)).collect()
    }
}

impl Writer<'_> {
    /// Inserts or replaces records of `source`; an older version never replaces a newer one.
    pub fn upsert_records(&self, source: &str, records: &[StoredRecord]) -> Result<(), StoreError> {
        for r in records {
            self.exec(
                UPSERT,
                params![
                    source,
                    r.id,
                    r.day.to_string(),
                    r.time,
                    r.updated_at,
                    r.data
                ],
            )?;
        }
        Ok(())
    }

    /// Forgets the changed days of `source`, once their values are computed.
    pub fn clear_dirty_days(&self, source: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM dirty_days WHERE source = ?1", [source])
    }

    /// Deletes the records of `source` whose ids are not in `keep` (a full pull found them gone);
    /// the triggers mark their days for recomputation. Returns how many were deleted.
    pub fn delete_records_except(
        &self,
        source: &str,
        keep: &std::collections::HashSet<String>,
    ) -> Result<usize, StoreError> {
        let gone: Vec<String> = self
            .record_times(source)?
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| !keep.contains(id))
            .collect();
        for id in &gone {
            self.exec(
                "DELETE FROM records WHERE source = ?1 AND id = ?2",
                params![source, id],
            )?;
        }
        Ok(gone.len())
    }

    /// Moves a record to another day (the triggers mark both days dirty).
    pub fn set_record_day(&self, source: &str, id: &str, day: Day) -> Result<(), StoreError> {
        self.exec(
            "UPDATE records SET day = ?3 WHERE source = ?1 AND id = ?2 AND day <> ?3",
            params![source, id, day.to_string()],
        )
    }
}

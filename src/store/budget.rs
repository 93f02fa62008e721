//! The local count of requests made to Exist in the current UTC hour, and whether Exist has
//! answered 429 in it. Exist allows 300 requests per hour per token and documents no headers
//! for it, so the agent keeps its own count and stops writing when the hour is spent.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Timelike, Utc};
use rusqlite::Connection;

use super::{classify, Reader, StoreError, Writer, DB_FILE};
use exist_api::client::{BudgetRefusal, RequestBudget};

/// Exist's documented limit of requests per hour per token.
pub const HOURLY_LIMIT: u32 = 300;

/// The requests made in one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HourBudget {
    /// Requests counted.
    pub requests: u32,
    /// Whether Exist said 429 in this hour.
    pub limited: bool,
}

/// The key of the UTC hour `t` falls in.
pub(crate) fn hour_key(t: DateTime<Utc>) -> String {
    t.with_minute(0)
        .and_then(|t| t.with_second(0))
        .unwrap_or(t)
        .format("%Y-%m-%dT%H")
        .to_string()
}

impl Reader<'_> {
    /// The budget used in the hour of `now`.
    pub fn budget(&self, now: DateTime<Utc>) -> Result<HourBudget, StoreError> {
        self.one(
            "SELECT requests, limited FROM rate_budget WHERE hour = ?1",
            [hour_key(now)],
            |r| {
                Ok(HourBudget {
                    requests: r.get(0)?,
                    limited: r.get(1)?,
                })
            },
        )
        .map(Option::unwrap_or_default)
    }
}

impl Writer<'_> {
    /// Counts `n` requests in the hour of `now`, and forgets hours long gone.
    pub fn count_requests(&self, now: DateTime<Utc>, n: u32) -> Result<(), StoreError> {
        if n == 0 {
            return Ok(());
        }
        self.exec(
            "INSERT INTO rate_budget (hour, requests) VALUES (?1, ?2)
             ON CONFLICT (hour) DO UPDATE SET requests = requests + excluded.requests",
            rusqlite::params![hour_key(now), n],
        )?;
        self.exec(
            "DELETE FROM rate_budget WHERE hour < ?1",
            [hour_key(now - chrono::Duration::days(2))],
        )
    }

    /// Notes that Exist answered 429 in the hour of `now`: no more writes until it ends.
    pub fn mark_limited(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO rate_budget (hour, requests, limited) VALUES (?1, 0, 1)
             ON CONFLICT (hour) DO UPDATE SET limited = 1",
            [hour_key(now)],
        )
    }
}

/// The hour's budget as the Exist client spends it: every request is counted in the state, on a
/// connection of its own, before it is sent, so that no path that talks to Exist can forget to
/// count and a crash cannot lose the count. Past [`HOURLY_LIMIT`], or after a 429, the client is
/// refused until the hour ends.
pub struct Budget {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget").field("path", &self.path).finish()
    }
}

impl Budget {
    /// The budget kept in the state database of `state_dir` (opened and migrated already).
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join(DB_FILE);
        let conn = Connection::open(&path).map_err(|e| classify(&path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| classify(&path, e))?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Writer<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| classify(&self.path, e))?;
        let out = f(&Writer {
            read: Reader {
                conn: &tx,
                path: &self.path,
            },
        })?;
        tx.commit().map_err(|e| classify(&self.path, e))?;
        Ok(out)
    }
}

impl RequestBudget for Budget {
    fn spend(&self) -> Result<(), BudgetRefusal> {
        let now = Utc::now();
        let spent = self
            .with(|w| {
                let budget = w.budget(now)?;
                if budget.limited || budget.requests >= HOURLY_LIMIT {
                    return Ok(true);
                }
                w.count_requests(now, 1)?;
                Ok(false)
            })
            .map_err(|e| BudgetRefusal::Unavailable(e.to_string()))?;
        if spent {
            return Err(BudgetRefusal::Spent);
        }
        Ok(())
    }

    fn exhausted(&self) {
        if let Err(e) = self.with(|w| w.mark_limited(Utc::now())) {
            tracing::warn!("could not note Exist's 429 in the state: {e}");
        }
    }
}

//! The local count of requests made to Exist in the current UTC hour, and whether Exist has
//! answered 429 in it. Exist allows 300 requests per hour per token and documents no headers
//! for it, so the agent keeps its own count and stops writing when the hour is spent.

use chrono::{DateTime, Timelike, Utc};
use rusqlite::OptionalExtension;

use super::{StoreError, Tx};

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

impl Tx<'_> {
    /// The budget used in the hour of `now`.
    pub fn budget(&self, now: DateTime<Utc>) -> Result<HourBudget, StoreError> {
        self.tx
            .query_row(
                "SELECT requests, limited FROM rate_budget WHERE hour = ?1",
                [hour_key(now)],
                |r| {
                    Ok(HourBudget {
                        requests: r.get(0)?,
                        limited: r.get(1)?,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.err(e))
    }

    /// Counts `n` requests in the hour of `now`, and forgets hours long gone.
    pub fn count_requests(&self, now: DateTime<Utc>, n: u32) -> Result<(), StoreError> {
        if n == 0 {
            return Ok(());
        }
        self.tx
            .execute(
                "INSERT INTO rate_budget (hour, requests) VALUES (?1, ?2)
                 ON CONFLICT (hour) DO UPDATE SET requests = requests + excluded.requests",
                rusqlite::params![hour_key(now), n],
            )
            .map_err(|e| self.err(e))?;
        self.tx
            .execute(
                "DELETE FROM rate_budget WHERE hour < ?1",
                [hour_key(now - chrono::Duration::days(2))],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Notes that Exist answered 429 in the hour of `now`: no more writes until it ends.
    pub fn mark_limited(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO rate_budget (hour, requests, limited) VALUES (?1, 0, 1)
                 ON CONFLICT (hour) DO UPDATE SET limited = 1",
                [hour_key(now)],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

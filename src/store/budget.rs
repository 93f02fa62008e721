//! The local count of requests made to Exist in the current UTC hour, and whether Exist has
//! answered 429 in it. Exist allows 300 requests per hour per token and documents no headers
//! for it, so the agent keeps its own count and stops writing when the hour is spent.

use super::{StoreError, Tx};
use chrono::{DateTime, Timelike, Utc};

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

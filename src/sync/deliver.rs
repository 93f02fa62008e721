//! A delivery to an inbox, stored: its records placed on the user's days and kept by id, in one
//! transaction with the note of the delivery, before the sender is told it arrived. The next sync
//! computes their days from the store, as for records pulled incrementally.

use chrono::Utc;

use super::pull::to_stored;
use super::{known_timezone, DayBasis};
use crate::config::{Config, SourceConfig, SourceKind};
use crate::error::{Error, Result};
use crate::sources::{inbox, Malformed};
use crate::store::{Delivered, Store};

/// What a delivery brought.
#[derive(Debug)]
pub struct Stored {
    /// Records stored (new or changed versions replace the old ones by id).
    pub records: usize,
    /// Records skipped, with where and why.
    pub malformed: Vec<Malformed>,
}

/// Why a delivery was not stored.
#[derive(Debug)]
pub enum Refused {
    /// The body is not what the inbox's format says: the sender's to fix.
    Body(String),
    /// The state could not take it (busy, full disk, ...): the sender should try again.
    Store(Error),
}

/// Reads `body` as a delivery to `source` and stores its records in `store`.
pub fn store_delivery(
    config: &Config,
    source: &SourceConfig,
    store: &mut Store,
    body: &[u8],
) -> std::result::Result<Stored, Refused> {
    let SourceKind::Inbox(inbox) = &source.kind else {
        return Err(Refused::Body(format!("{} is not an inbox", source.name)));
    };
    let delivery = inbox::read_delivery(source, inbox, body).map_err(Refused::Body)?;
    place_and_store(config, source, store, delivery).map_err(Refused::Store)
}

fn place_and_store(
    config: &Config,
    source: &SourceConfig,
    store: &mut Store,
    delivery: inbox::Delivery,
) -> Result<Stored> {
    // Records are placed on the days of the basis the store already uses, so that a change of
    // timezone later re-places them with all the others; a fresh state takes the known one.
    let stored_basis = store.read().day_basis()?;
    let basis = stored_basis
        .as_deref()
        .and_then(DayBasis::parse)
        .unwrap_or_else(|| DayBasis {
            tz: known_timezone(config, store).unwrap_or(chrono_tz::UTC),
            day_starts: config.agent.day_starts,
        });
    let mut malformed = delivery.malformed;
    let records = to_stored(&source.name, delivery.records, basis, &mut malformed);
    let note = Delivered {
        at: Utc::now(),
        records: records.len() as u64,
        skipped: malformed.len() as u64,
    };
    store.transaction(|tx| {
        if stored_basis.is_none() {
            tx.set_day_basis(&basis.to_string())?;
        }
        tx.upsert_records(&source.name, &records)?;
        tx.set_last_delivery(&source.name, &note)?;
        tx.set_skipped(
            &source.name,
            malformed
                .iter()
                .map(|m| (m.location.as_str(), m.reason.as_str())),
        )
    })?;
    Ok(Stored {
        records: records.len(),
        malformed,
    })
}

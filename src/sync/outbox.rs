//! Sending the outbox: every pending value, across days and attributes, in `ceil(n / 35)` update
//! calls. Each batch's outcome is stored before the next batch goes out, so a crash loses at most
//! the acknowledgement of one batch, whose values are sent again (updates are idempotent).

use std::collections::BTreeSet;

use super::attributes::{reacquire, SyncStepError};
use crate::store::{Pending, Store};
use exist_api::client::{ExistClient, ExistError, ItemFailure, UpdateItem, WriteOutcome};
use exist_api::types::{AttributeName, Batch};

/// What sending the outbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SendReport {
    /// Values Exist acknowledged.
    pub acknowledged: usize,
    /// Values Exist refused (kept aside with the error).
    pub rejected: usize,
    /// Update calls made.
    pub update_calls: u32,
    /// Values still pending.
    pub remaining: usize,
}

/// Why sending stopped before the outbox was empty.
#[derive(Debug, thiserror::Error)]
pub enum SendStopped {
    /// The hour's budget is spent (locally counted, or Exist said 429).
    #[error("Exist's hourly request limit is reached; {remaining} value(s) stay pending and go out after the hour ends")]
    RateLimited {
        /// What was done before stopping.
        report: SendReport,
        /// Values still pending.
        remaining: usize,
    },
    /// Another failure; everything not acknowledged stays pending.
    #[error("{source}")]
    Failed {
        /// What was done before stopping.
        report: SendReport,
        /// Why.
        source: SyncStepError,
    },
}

impl SendStopped {
    /// What was done before stopping.
    pub fn report(&self) -> &SendReport {
        match self {
            Self::RateLimited { report, .. } | Self::Failed { report, .. } => report,
        }
    }
}

impl crate::error::Classify for SendStopped {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            Self::RateLimited { .. } => crate::error::ErrorKind::Temporary,
            Self::Failed { source, .. } => crate::error::Classify::kind(source),
        }
    }

    fn fix(&self) -> Option<String> {
        match self {
            Self::RateLimited { .. } => None,
            Self::Failed { source, .. } => crate::error::Classify::fix(source),
        }
    }
}

/// How a flush may be stopped early, and how it shows progress.
pub struct FlushControl<'a> {
    /// Turns true when the run should stop (SIGTERM): the batch in flight finishes and the
    /// rest stays pending.
    pub stop: &'a dyn Fn() -> bool,
    /// Advanced by the values each batch settles.
    pub bar: indicatif::ProgressBar,
}

impl Default for FlushControl<'_> {
    fn default() -> Self {
        Self {
            stop: &|| false,
            bar: indicatif::ProgressBar::hidden(),
        }
    }
}

/// Sends everything pending, batch by batch, until done or stopped by the hour's limit, a
/// failure, or `control`.
pub async fn flush(
    store: &mut Store,
    client: &ExistClient,
    control: &FlushControl<'_>,
) -> Result<SendReport, SendStopped> {
    let mut report = SendReport::default();
    let pending = match store.read().pending() {
        Ok(p) => p,
        Err(e) => {
            return Err(SendStopped::Failed {
                report,
                source: e.into(),
            })
        }
    };
    let total = pending.len();
    control.bar.set_length(total as u64);
    let stopped = send_all(store, client, pending, control, &mut report).await;
    control.bar.finish_and_clear();
    report.remaining = total - report.acknowledged - report.rejected;
    match stopped {
        None => Ok(report),
        Some(SendStop::RateLimited) => Err(SendStopped::RateLimited {
            remaining: report.remaining,
            report,
        }),
        Some(SendStop::Failed(source)) => Err(SendStopped::Failed { report, source }),
    }
}

/// Why [`send_all`] stopped early.
enum SendStop {
    RateLimited,
    Failed(SyncStepError),
}

/// The batch loop of [`flush`]; `None` when it ran out of batches or was asked to stop.
async fn send_all(
    store: &mut Store,
    client: &ExistClient,
    pending: Vec<Pending>,
    control: &FlushControl<'_>,
    report: &mut SendReport,
) -> Option<SendStop> {
    for batch in Batch::split(pending) {
        if (control.stop)() {
            tracing::info!("stopping: the rest stays pending for the next run");
            return None;
        }
        let settled = report.acknowledged + report.rejected;
        match send_batch(store, client, batch.into_items(), report).await {
            Ok(()) => control
                .bar
                .inc((report.acknowledged + report.rejected - settled) as u64),
            // The client's budget refused, or Exist said 429 (the budget noted it).
            Err(SyncStepError::Exist(ExistError::RateLimited)) => {
                return Some(SendStop::RateLimited)
            }
            Err(e) => return Some(SendStop::Failed(e)),
        }
    }
    None
}

/// Sends one batch and stores its outcome; `unauthorised` items get one re-acquire and retry.
async fn send_batch(
    store: &mut Store,
    client: &ExistClient,
    batch: Vec<Pending>,
    report: &mut SendReport,
) -> Result<(), SyncStepError> {
    store.transaction(|tx| {
        batch
            .iter()
            .try_for_each(|p| tx.note_attempt(&p.attribute, p.day))
    })?;
    let items: Vec<UpdateItem> = batch
        .into_iter()
        .map(|p| UpdateItem {
            name: p.attribute,
            date: p.day,
            value: p.value,
        })
        .collect();
    report.update_calls += 1;
    let outcome = client.update(items).await?;
    let lost: Vec<UpdateItem> = outcome
        .failed
        .iter()
        .filter(|f| f.is_not_owner())
        .map(|f| f.item.clone())
        .collect();
    record(store, outcome, report)?;
    if lost.is_empty() {
        return Ok(());
    }
    let names: BTreeSet<AttributeName> = lost.iter().map(|i| i.name.clone()).collect();
    let names: Vec<AttributeName> = names.into_iter().collect();
    tracing::warn!(attributes = ?names.iter().map(AttributeName::as_str).collect::<Vec<_>>(), "another service owns these attributes now; re-acquiring them once");
    let back = reacquire(client, &names).await?;
    let (retry, refused): (Vec<UpdateItem>, Vec<UpdateItem>) =
        lost.into_iter().partition(|i| back.contains(&i.name));
    store.transaction(|tx| {
        refused.iter().try_for_each(|i| {
            tx.reject(&i.name, i.date, &i.value, "unauthorised", "another service owns this attribute and it could not be re-acquired; hand it back to exist-agent in Exist's settings")
        })
    })?;
    report.rejected += refused.len();
    if retry.is_empty() {
        return Ok(());
    }
    report.update_calls += 1;
    let outcome = client.update(retry).await?;
    record(store, outcome, report)
}

/// Stores acknowledgements and rejections; items of attributes another service took stay pending
/// for the retry, and items the reply does not account for stay pending for the next run.
fn record(
    store: &mut Store,
    outcome: WriteOutcome<UpdateItem>,
    report: &mut SendReport,
) -> Result<(), SyncStepError> {
    store.transaction(|tx| {
        for (item, _) in &outcome.succeeded {
            tx.acknowledge(&item.name, item.date, &item.value)?;
        }
        for failure in outcome.failed.iter().filter(|f| !f.is_not_owner()) {
            let ItemFailure { item, code, error } = failure;
            tx.reject(&item.name, item.date, &item.value, code.as_str(), error)?;
        }
        Ok(())
    })?;
    report.acknowledged += outcome.succeeded.len();
    report.rejected += outcome.failed.iter().filter(|f| !f.is_not_owner()).count();
    for item in &outcome.unaccounted {
        tracing::warn!(attribute = %item.name, day = %item.date, "Exist's reply does not account for this value; it stays pending and is sent again");
    }
    for f in outcome.failed.iter().filter(|f| !f.is_not_owner()) {
        tracing::warn!(attribute = %f.item.name, day = %f.item.date, code = %f.code, "Exist refused a value: {}; it is kept aside (see `exist-agent status`)", f.error);
    }
    Ok(())
}

//! `exist-agent backfill`: history from a day on, paced under Exist's hourly limit, resumable,
//! with progress bars on a terminal; `--json` prints what it did as one document.

use clap::Args;

use super::outcome::RunDocument;
use crate::config::Config;
use crate::context::{run_lock, runtime, Context, Session};
use crate::error::{Error, Result};
use crate::sync::{self, Mode, SyncOptions};
use exist_api::types::Day;

/// Options of `backfill`.
#[derive(Debug, Clone, Args)]
pub struct BackfillArgs {
    /// First day to sync (YYYY-MM-DD)
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: Day,
    /// Last day to sync [default: today]
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: Option<Day>,
    /// Only these attributes (repeatable) [default: all]
    #[arg(long = "attribute", value_name = "NAME")]
    pub attributes: Vec<String>,
    /// Print what the backfill did as one JSON document on standard output (see the README)
    #[arg(long)]
    pub json: bool,
}

/// Pulls and sends the history asked for.
pub fn run(ctx: &Context, args: &BackfillArgs) -> Result<()> {
    let (result, document) = match backfill(ctx, args) {
        Ok(done) => done,
        Err(e) => {
            let document = RunDocument::failed("backfill", false, &e);
            (Err(e), document)
        }
    };
    if args.json {
        document.backfill(args.from, args.to).print()?;
    }
    result
}

fn backfill(ctx: &Context, args: &BackfillArgs) -> Result<(Result<()>, RunDocument)> {
    if args.to.is_some_and(|to| to < args.from) {
        return Err(Error::usage(format!("--to is before --from {}", args.from)));
    }
    let config: Config = ctx.config()?;
    let options = SyncOptions {
        mode: Mode::Backfill {
            from: args.from,
            to: args.to,
        },
        // The bars go to standard error, and only on a terminal.
        progress: true,
        attributes: args.attributes.clone(),
        ..SyncOptions::default()
    };
    let _lock = run_lock(&config.state_dir())?;
    let mut session = Session::open(&config)?;
    let run = runtime()?.block_on(sync::sync(
        &config,
        &mut session.store,
        &session.client,
        &options,
    ));
    if run.paused_by_rate_limit() {
        eprintln!(
            "backfill paused with {} value(s) pending: what was pulled is kept; run the same command again after the hour ends to continue",
            run.report.send.remaining
        );
    }
    let document = RunDocument::of("backfill", false, &run);
    let result = run.finish();
    let document = document.ended(&result);
    Ok((result, document))
}

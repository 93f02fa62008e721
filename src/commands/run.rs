//! `exist-agent run`: the daemon (until SIGINT/SIGTERM), or one sync with `--once`, or what one
//! sync would send with `--once --dry-run`; `--json` prints what the sync did as one document.

use std::collections::BTreeSet;

use clap::Args;

use super::outcome::RunDocument;
use crate::alerts;
use crate::config::Config;
use crate::context::{run_lock, runtime, Context, Session};
use crate::error::{Error, ErrorKind, Result};
use crate::sync::{self, Mode, SyncOptions, SyncRun};

/// Options of `run`.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Run one sync, then exit (for systemd timers, launchd, cron)
    #[arg(long)]
    pub once: bool,
    /// Print what would be sent (attribute, day, old -> new); send nothing, change nothing
    #[arg(long, requires = "once")]
    pub dry_run: bool,
    /// Re-pull the whole history of every source and reconcile
    #[arg(long, requires = "once")]
    pub full: bool,
    /// Print what the sync did as one JSON document on standard output (see the README)
    #[arg(long, requires = "once")]
    pub json: bool,
}

/// Runs the daemon, or one sync.
pub fn run(ctx: &Context, args: &RunArgs) -> Result<()> {
    if !args.once {
        return crate::daemon::run(&ctx.config()?);
    }
    let config = match ctx.config() {
        Ok(config) => config,
        Err(e) => {
            if args.json {
                RunDocument::failed("run", args.dry_run, &e).print()?;
            }
            return Err(e);
        }
    };
    let rt = runtime()?;
    let (result, document, failed_sources) = match once(&config, args, &rt) {
        Ok(ran) => ran,
        Err(e) => {
            let document = RunDocument::failed("run", args.dry_run, &e);
            (Err(e), document, BTreeSet::new())
        }
    };
    // A dry run changes nothing, the failure episode included.
    if !args.dry_run {
        rt.block_on(alerts::after_run(
            &config,
            &alerts::RunResult::of(&result, failed_sources),
        ));
    }
    if args.json {
        document.print()?;
    }
    result
}

/// One sync: its result, its document and the sources that failed in it. `Err` when it could
/// not start (the state is busy or broken).
fn once(
    config: &Config,
    args: &RunArgs,
    rt: &tokio::runtime::Runtime,
) -> Result<(Result<()>, RunDocument, BTreeSet<String>)> {
    let options = SyncOptions {
        mode: if args.full {
            Mode::Full
        } else {
            Mode::Incremental
        },
        plan_only: args.dry_run,
        ..SyncOptions::default()
    };
    let _lock = run_lock(&config.state_dir())?;
    let mut session = Session::open(config)?;
    let run = if args.dry_run {
        dry_run(&mut session, &options, rt, !args.json)?
    } else {
        rt.block_on(sync::sync(
            config,
            &mut session.store,
            &session.client,
            &options,
        ))
    };
    let document = RunDocument::of("run", args.dry_run, &run);
    let failed = run.failed_sources();
    let result = run.finish();
    let document = document.ended(&result);
    Ok((result, document, failed))
}

/// Plans the sync on a copy of the state (a pull stores what it pulls), and prints what the
/// real run would send (unless the JSON document will say it): nothing is acquired, created,
/// sent or stored.
fn dry_run(
    session: &mut Session,
    options: &SyncOptions,
    rt: &tokio::runtime::Runtime,
    print: bool,
) -> Result<SyncRun> {
    let scratch = tempfile::tempdir()
        .map_err(|e| Error::caused(ErrorKind::Temporary, "cannot create a scratch directory", e))?;
    let mut copy = session
        .store
        .copy_to(&scratch.path().join(crate::store::DB_FILE))?;
    let run = rt.block_on(sync::sync(
        &session.config,
        &mut copy,
        &session.client,
        options,
    ));
    if print {
        print_plan(&run);
    }
    Ok(run)
}

fn print_plan(run: &SyncRun) {
    let changes = &run.report.changes;
    if changes.is_empty() {
        println!("nothing to send");
    }
    for c in changes {
        let old = c
            .old
            .as_ref()
            .map_or_else(|| "(none)".to_owned(), ToString::to_string);
        let standing = c.standing.map(|s| format!(" ({s})")).unwrap_or_default();
        println!("{} {} {} -> {}{standing}", c.attribute, c.day, old, c.new);
    }
    let to_acquire: BTreeSet<&str> = changes
        .iter()
        .filter(|c| c.standing.is_some())
        .map(|c| c.attribute.as_str())
        .collect();
    let owning = if to_acquire.is_empty() {
        String::new()
    } else {
        format!(
            ", after acquiring or creating {} attribute(s)",
            to_acquire.len()
        )
    };
    println!(
        "dry run: {} value(s) would be sent in {} update call(s){owning}; nothing was sent or stored",
        changes.len(),
        changes.len().div_ceil(exist_api::types::MAX_BATCH)
    );
}

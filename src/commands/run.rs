//! `exist-agent run`: the daemon (until SIGINT/SIGTERM), or one sync with `--once`, or what one
//! sync would send with `--once --dry-run`.

use clap::Args;

use crate::context::{run_lock, runtime, Context, Session};
use crate::error::{Error, ErrorKind, Result};
use crate::sync::{self, Mode, SyncOptions};

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
}

/// Runs the daemon, or one sync.
pub fn run(ctx: &Context, args: &RunArgs) -> Result<()> {
    let config = ctx.config()?;
    if !args.once {
        return crate::daemon::run(&config);
    }
    let options = SyncOptions {
        mode: if args.full {
            Mode::Full
        } else {
            Mode::Incremental
        },
        dry_run: args.dry_run,
        ..SyncOptions::default()
    };
    let _lock = run_lock(&config.state_dir())?;
    let mut session = Session::open(&config)?;
    if args.dry_run {
        return dry_run(&mut session, &options);
    }
    runtime()?
        .block_on(sync::sync(
            &config,
            &mut session.store,
            &session.client,
            &options,
        ))?
        .finish()
}

/// Runs the sync on a copy of the state and prints what would be sent.
fn dry_run(session: &mut Session, options: &SyncOptions) -> Result<()> {
    let scratch = tempfile::tempdir()
        .map_err(|e| Error::caused(ErrorKind::Temporary, "cannot create a scratch directory", e))?;
    let mut copy = session
        .store
        .snapshot_to(&scratch.path().join(crate::store::DB_FILE))?;
    let outcome = runtime()?.block_on(sync::sync(
        &session.config,
        &mut copy,
        &session.client,
        options,
    ));
    // The copy is thrown away; the requests the run made count in the real state.
    sync::outbox::count_requests(&mut session.store, &session.client)?;
    let outcome = outcome?;
    let pending = copy.read().pending()?;
    if pending.is_empty() {
        println!("nothing to send");
    }
    for p in &pending {
        let old = copy.read().ledger_value(&p.attribute, p.day)?;
        let old = old.map_or_else(|| "(none)".to_owned(), |v| v.to_string());
        println!("{} {} {} -> {}", p.attribute, p.day, old, p.value);
    }
    println!(
        "dry run: {} value(s) would be sent in {} update call(s); nothing was sent or stored",
        pending.len(),
        pending.len().div_ceil(crate::exist::types::MAX_BATCH)
    );
    outcome.failure.map_or(Ok(()), Err)
}

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
        plan_only: args.dry_run,
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
        ))
        .finish()
}

/// Plans the sync on a copy of the state (a pull stores what it pulls), and prints what the
/// real run would send: nothing is acquired, created, sent or stored.
fn dry_run(session: &mut Session, options: &SyncOptions) -> Result<()> {
    let scratch = tempfile::tempdir()
        .map_err(|e| Error::caused(ErrorKind::Temporary, "cannot create a scratch directory", e))?;
    let mut copy = session
        .store
        .copy_to(&scratch.path().join(crate::store::DB_FILE))?;
    let run = runtime()?.block_on(sync::sync(
        &session.config,
        &mut copy,
        &session.client,
        options,
    ));
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
    let to_acquire: std::collections::BTreeSet<&str> = changes
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
    run.finish()
}

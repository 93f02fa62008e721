//! Runs the command the user asked for: loads the configuration, takes the locks, opens the
//! state, and calls the module that does the work.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{
    BackfillArgs, Cli, Command, LoginArgs, LogoutArgs, PushArgs, RunArgs, ServiceAction, StatusArgs,
};
use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::exist::auth::{self, Auth};
use crate::exist::client::ExistClient;
use crate::exist::tokens::TokenStore;
use crate::exist::types::{Day, Value, ValueType};
use crate::store::lock::{FileLock, RUN_LOCK};
use crate::store::Store;
use crate::sync::{self, Mode, SyncOptions, SyncOutcome};

/// How long a run waits for another one holding the state before giving up with exit 75.
pub const RUN_LOCK_WAIT: Duration = Duration::from_secs(60);

/// Runs one command line to completion.
pub fn run(cli: Cli) -> Result<()> {
    let Some(command) = cli.effective_command() else {
        return Err(Error::Usage(
            "no command given; see `exist-agent --help`".into(),
        ));
    };
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(config::default_config_path);
    match command {
        Command::Run(args) if args.once => run_once(&Config::load(&config_path)?, &args),
        Command::Run(_) => crate::daemon::run(&Config::load(&config_path)?),
        Command::Backfill(args) => backfill(&Config::load(&config_path)?, &args),
        Command::Login(args) => login(&Config::load(&config_path)?, &args),
        Command::Logout(args) => logout(&Config::load(&config_path)?, &args),
        Command::Status(args) => status(&Config::load(&config_path)?, &args),
        Command::Push(args) => push(&Config::load(&config_path)?, &args),
        Command::Service(args) => service(&Config::load(&config_path)?, &args.action),
        Command::Doctor => doctor(&Config::load(&config_path)?),
        Command::Sandbox(args) => runtime()
            .block_on(crate::sandbox::serve_forever(
                args.addr,
                crate::sandbox::SandboxOptions::default(),
            ))
            .map_err(|e| {
                Error::Failed(format!(
                    "the sandbox could not listen on {}: {e}",
                    args.addr
                ))
            }),
        Command::Demo => crate::demo::run(cli.verbosity()),
    }
}

/// A runtime for one command. Current-thread: a sync is sequential by design.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the OS lets a process create a runtime")
}

/// What every Exist-facing command needs: the state and a client.
pub struct Session {
    /// The configuration.
    pub config: Config,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The state database.
    pub store: Store,
    /// The Exist client.
    pub client: ExistClient,
}

impl Session {
    /// Opens the state in the configured directory and builds a client on the stored tokens.
    pub fn open(config: &Config) -> Result<Self> {
        let state_dir = config.state_dir();
        let store = Store::open(&state_dir)?;
        let tokens = token_store(config, &state_dir)?;
        let auth = Arc::new(Auth::new(config.exist.clone(), tokens, &state_dir));
        Ok(Self {
            client: ExistClient::new(&config.exist.base_url, auth),
            config: config.clone(),
            state_dir,
            store,
        })
    }
}

/// The keyring account tokens are filed under: Exist's host and the app's client id.
pub fn token_account(config: &Config) -> String {
    let host = config.exist.base_url.host_str().unwrap_or("exist");
    format!("{host}#{}", config.exist.client_id)
}

/// The configured token store, in `state_dir` when it is the file.
pub fn token_store(config: &Config, state_dir: &Path) -> Result<TokenStore> {
    crate::store::create_private_dir(state_dir)?;
    TokenStore::open(config.agent.token_store, state_dir, &token_account(config))
        .map_err(|e| Error::Failed(e.to_string()))
}

fn doctor(config: &Config) -> Result<()> {
    let checks = runtime().block_on(crate::doctor::run(config));
    for check in &checks {
        println!("{check}");
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        return Err(Error::Failed(format!(
            "{failed} check(s) failed; see the fixes above"
        )));
    }
    println!("all {} checks passed", checks.len());
    Ok(())
}

/// This install's minute past the hour (never :00), derived from the state directory, which
/// identifies the install. The daemon and the generated timer use the same one.
pub fn install_minute(config: &Config) -> u32 {
    crate::schedule::install_minute(&config.state_dir().to_string_lossy())
}

/// The daemon's schedule for this install: the configured one, at the install's own minute.
pub fn schedule_plan(config: &Config) -> crate::schedule::Plan {
    crate::schedule::Plan::new(&config.agent.schedule, install_minute(config))
        .expect("schedules are checked when the config is read")
}

fn service(config: &Config, action: &ServiceAction) -> Result<()> {
    use crate::service::{self as svc, ServiceTarget};
    let target = ServiceTarget::for_this_platform().map_err(|e| Error::Failed(e.to_string()))?;
    let report = match action {
        ServiceAction::Install { print } => {
            let binary = std::env::current_exe()
                .map_err(|e| Error::Failed(format!("cannot find this program's own path: {e}")))?;
            svc::install(
                *print,
                &binary,
                &config.path,
                install_minute(config),
                &target,
            )
        }
        ServiceAction::Uninstall => svc::uninstall(&target),
    }
    .map_err(|e| Error::Failed(e.to_string()))?;
    print!("{report}");
    Ok(())
}

/// Takes the run lock, telling the user when it has to wait for another run.
pub fn run_lock(state_dir: &Path) -> Result<FileLock> {
    crate::store::create_private_dir(state_dir)?;
    Ok(FileLock::acquire(
        &state_dir.join(RUN_LOCK),
        RUN_LOCK_WAIT,
        |pid| {
            eprintln!("waiting for another exist-agent run (pid {pid}) to finish ...");
        },
    )?)
}

fn run_once(config: &Config, args: &RunArgs) -> Result<()> {
    let mode = if args.full {
        Mode::Full
    } else {
        Mode::Incremental
    };
    let options = SyncOptions {
        mode,
        dry_run: args.dry_run,
        ..SyncOptions::default()
    };
    let _lock = run_lock(&config.state_dir())?;
    let mut session = Session::open(config)?;
    if args.dry_run {
        return dry_run(&mut session, &options);
    }
    let outcome = runtime().block_on(sync::sync(
        config,
        &mut session.store,
        &session.client,
        &options,
    ))?;
    finish(outcome)
}

/// Runs the sync on a copy of the state and prints what would be sent.
fn dry_run(session: &mut Session, options: &SyncOptions) -> Result<()> {
    let scratch = tempfile::tempdir()
        .map_err(|e| Error::Failed(format!("cannot create a scratch directory: {e}")))?;
    let mut copy = session
        .store
        .snapshot_to(&scratch.path().join(crate::store::DB_FILE))?;
    let outcome = runtime().block_on(sync::sync(
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

/// Logs the run's summary and turns its failure, if any, into the exit code.
pub fn finish(outcome: SyncOutcome) -> Result<()> {
    let report = &outcome.report;
    for s in report.sources.iter().filter(|s| s.pulled) {
        tracing::info!(source = %s.name, records = s.summary.records, malformed = s.malformed.len(), "pulled");
    }
    for p in &report.problems {
        tracing::warn!("{p}");
    }
    tracing::info!(
        changed = report.changes.len(),
        sent = report.send.acknowledged,
        rejected = report.send.rejected + report.rejected_locally,
        update_calls = report.send.update_calls,
        pending = report.send.remaining,
        timezone = %report.timezone,
        "sync finished"
    );
    match outcome.failure {
        Some(e) => Err(e),
        None if !report.problems.is_empty() => Err(Error::Failed(format!(
            "{} attribute(s) could not be synced: {}",
            report.problems.len(),
            report.problems.join("; ")
        ))),
        None => Ok(()),
    }
}

fn backfill(config: &Config, args: &BackfillArgs) -> Result<()> {
    if args.to.is_some_and(|to| to < args.from) {
        return Err(Error::Usage(format!("--to is before --from {}", args.from)));
    }
    let options = SyncOptions {
        mode: Mode::Backfill {
            from: args.from,
            to: args.to,
        },
        progress: true,
        attributes: args.attributes.clone(),
        ..SyncOptions::default()
    };
    let _lock = run_lock(&config.state_dir())?;
    let mut session = Session::open(config)?;
    let outcome = runtime().block_on(sync::sync(
        config,
        &mut session.store,
        &session.client,
        &options,
    ))?;
    if matches!(outcome.failure, Some(Error::Temporary(_))) && outcome.report.send.remaining > 0 {
        eprintln!(
            "backfill paused with {} value(s) pending: what was pulled is kept; run the same command again after the hour ends to continue",
            outcome.report.send.remaining
        );
    }
    finish(outcome)
}

fn login(config: &Config, args: &LoginArgs) -> Result<()> {
    let state_dir = config.state_dir();
    let tokens = token_store(config, &state_dir)?;
    let scopes = config.scopes();
    if let Some(token) = &args.token {
        auth::store_given_token(&tokens, token, &scopes)?;
        println!("Token stored in {}.", tokens.describe());
        return Ok(());
    }
    let outcome = runtime().block_on(auth::login(
        &config.exist,
        &scopes,
        &tokens,
        !args.no_browser,
        |line| {
            println!("{line}");
        },
    ))?;
    let expires = outcome
        .pair
        .expires_at
        .map_or_else(|| "never".to_owned(), |t| t.format("%Y-%m-%d").to_string());
    println!(
        "Logged in. Tokens stored in {}; they expire {expires}; scopes: {}.",
        outcome.stored_in,
        outcome.pair.scopes.join(" ")
    );
    Ok(())
}

fn logout(config: &Config, args: &LogoutArgs) -> Result<()> {
    let _lock = run_lock(&config.state_dir())?;
    let mut session = Session::open(config)?;
    if args.release {
        let owned = session.store.read().owned_attributes()?;
        if !owned.is_empty() {
            let names = owned.iter().map(|a| a.name.clone()).collect();
            let outcome = runtime().block_on(session.client.release(names));
            sync::outbox::count_requests(&mut session.store, &session.client)?;
            let outcome = outcome?;
            for f in &outcome.failed {
                eprintln!("could not release {}: {}: {}", f.item.name, f.code, f.error);
            }
            println!("Released {} attribute(s).", outcome.succeeded.len());
        }
        session.store.transaction(|tx| tx.clear_owned())?;
    }
    let tokens = token_store(config, &session.state_dir)?;
    tokens.delete().map_err(|e| Error::Failed(e.to_string()))?;
    println!("Tokens removed from {}.", tokens.describe());
    Ok(())
}

fn push(config: &Config, args: &PushArgs) -> Result<()> {
    let _lock = run_lock(&config.state_dir())?;
    let mut session = Session::open(config)?;
    let rt = runtime();
    let pushed = push_value(config, args, &rt, &mut session);
    // Every request counts toward the hour, whether or not the push went through.
    sync::outbox::count_requests(&mut session.store, &session.client)?;
    pushed
}

fn push_value(
    config: &Config,
    args: &PushArgs,
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
) -> Result<()> {
    let ownership = rt.block_on(sync::attributes::ensure_owned(
        config,
        &mut session.store,
        &session.client,
    ))?;
    let owned = config
        .attributes
        .iter()
        .filter_map(|a| ownership.get(a).map(|o| (a, o)))
        .find(|(a, o)| a.display_name() == args.name || o.name.as_str() == args.name)
        .map(|(_, o)| o.clone())
        .ok_or_else(|| {
            Error::Usage(format!(
                "no configured attribute is called {}; push writes configured attributes only",
                args.name
            ))
        })?;
    let value = parse_value(&args.value, owned.value_type)?;
    let day = match args.date {
        Some(d) => d,
        None => {
            let tz = rt.block_on(sync::user_timezone(
                config,
                &mut session.store,
                &session.client,
            ))?;
            sync::DayBasis {
                tz,
                day_starts: config.agent.day_starts,
            }
            .today()
        }
    };
    if args.increment {
        return increment(rt, session, owned, day, value);
    }
    session
        .store
        .transaction(|tx| tx.enqueue(&owned.name, day, &value))?;
    let report = rt.block_on(sync::outbox::flush(
        &mut session.store,
        &session.client,
        &sync::outbox::FlushControl::default(),
    ))?;
    println!(
        "{} {} = {} sent ({} value(s) acknowledged).",
        owned.name, day, value, report.acknowledged
    );
    if report.rejected > 0 {
        return Err(Error::Failed(
            "Exist refused the value; see `exist-agent status`".into(),
        ));
    }
    Ok(())
}

/// `push --increment`: one delta, sent at once, outside the outbox, because a retried
/// increment could count twice. The new total Exist reports goes into the ledger.
fn increment(
    rt: &tokio::runtime::Runtime,
    session: &mut Session,
    owned: crate::store::OwnedAttribute,
    day: Day,
    value: Value,
) -> Result<()> {
    use crate::exist::client::IncrementItem;
    if matches!(
        owned.value_type,
        ValueType::String
            | ValueType::Scale
            | ValueType::TimeOfDay
            | ValueType::TimeOfDayFromMidday
    ) {
        return Err(Error::Usage(format!(
            "{} is a {} attribute, which Exist does not increment; push the day's value instead",
            owned.name, owned.value_type
        )));
    }
    let item = IncrementItem {
        name: owned.name.clone(),
        date: day,
        value,
    };
    let outcome = rt.block_on(session.client.increment(vec![item]))?;
    if let Some(failure) = outcome.failed.first() {
        return Err(Error::Failed(format!(
            "Exist refused the increment of {} on {day}: {}: {}",
            owned.name, failure.code, failure.error
        )));
    }
    let Some((sent, reply)) = outcome.succeeded.first() else {
        return Ok(());
    };
    let current = reply
        .as_ref()
        .and_then(|r| r.get("current").cloned())
        .and_then(|c| serde_json::from_value::<Value>(c).ok());
    match current {
        Some(total) => {
            session
                .store
                .transaction(|tx| tx.acknowledge(&owned.name, day, &total))?;
            println!("{} {day}: +{} = {total}.", owned.name, sent.value);
        }
        None => println!("{} {day}: incremented.", owned.name),
    }
    Ok(())
}

/// Parses a value typed on the command line for an attribute of `value_type`.
pub fn parse_value(text: &str, value_type: ValueType) -> Result<Value> {
    let value = match value_type {
        ValueType::String => Value::Text(text.to_owned()),
        ValueType::Float | ValueType::Percentage => text
            .trim()
            .parse()
            .map(Value::Float)
            .map_err(|_| Error::Usage(format!("`{text}` is not a number")))?,
        _ => text.trim().parse().map(Value::Int).map_err(|_| {
            Error::Usage(format!(
                "`{text}` is not a whole number (the attribute is of type {value_type})"
            ))
        })?,
    };
    value_type
        .check(&value)
        .map_err(|e| Error::Usage(format!("`{text}`: {e}")))?;
    Ok(value)
}

fn status(config: &Config, args: &StatusArgs) -> Result<()> {
    let session = Session::open(config)?;
    let tokens = token_store(config, &session.state_dir)?;
    let report = crate::status::collect(config, &session.store, &tokens)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("status serializes")
        );
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_typed_on_the_command_line() {
        assert_eq!(
            parse_value("12", ValueType::Integer).unwrap(),
            Value::Int(12)
        );
        assert_eq!(
            parse_value("0.5", ValueType::Percentage).unwrap(),
            Value::Float(0.5)
        );
        assert!(parse_value("1.5", ValueType::Integer).is_err());
        assert!(parse_value("10", ValueType::Scale).is_err());
        assert_eq!(
            parse_value("fine", ValueType::String).unwrap(),
            Value::Text("fine".into())
        );
    }
}

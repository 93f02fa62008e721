//! What every command works in: the configuration (read once, checked whole), the state directory
//! and its run lock, the state database, the token store and the Exist client. Commands take what
//! they need from here; nothing imports the dispatcher.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, Config, ConfigError};
use crate::error::{Error, ErrorKind, Result};
use crate::store::lock::{FileLock, RUN_LOCK};
use crate::store::{Budget, Store};
use exist_api::auth::Auth;
use exist_api::client::ExistClient;
use exist_api::tokens::TokenStore;

/// How long a run waits for another one holding the state before giving up with exit 75,
/// unless [`LOCK_WAIT_ENV`] says otherwise.
pub const RUN_LOCK_WAIT: Duration = Duration::from_secs(60);

/// The environment variable that sets how long a command waits for another run holding the
/// state (a duration such as `10s`; `0s` gives up at once).
pub const LOCK_WAIT_ENV: &str = "EXIST_AGENT_LOCK_WAIT";

/// The command line's global settings, before anything is read.
#[derive(Debug, Clone)]
pub struct Context {
    /// The configuration file: `--config`, `EXIST_AGENT_CONFIG`, or the platform's default.
    pub config_path: PathBuf,
    /// Whether the path was given (`--config` or the environment) rather than the default.
    pub config_given: bool,
    /// The number of `-v` minus the number of `-q`.
    pub verbosity: i8,
}

impl Context {
    /// Reads and checks the configuration. A missing file at the default place is explained:
    /// where it goes on this platform, where the documented example is, and what to run next.
    pub fn config(&self) -> Result<Config> {
        if !self.config_given && !self.config_path.exists() {
            return Err(Error::from(ConfigError {
                file: self.config_path.clone(),
                line: None,
                key: String::new(),
                problem: "there is no configuration file here yet (the default place on this platform)".into(),
                fix: format!(
                    "write one there: config.example.toml (in the exist-agent source, or /usr/share/doc/exist-agent/ when installed as a package) documents every key and the README has worked examples; or point --config or {} at yours; then run `exist-agent doctor`",
                    config::CONFIG_ENV
                ),
            }));
        }
        Ok(Config::load(&self.config_path)?)
    }
}

/// A runtime for one command. Current-thread: a sync is sequential by design.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::caused(ErrorKind::Failed, "cannot start the async runtime", e))
}

/// The keyring account tokens are filed under: Exist's host and the app's client id.
pub fn token_account(config: &Config) -> String {
    let host = config.exist.base_url.host_str().unwrap_or("exist");
    format!("{host}#{}", config.exist.client_id)
}

/// The configured token store, in the state directory when it is the file.
pub fn token_store(config: &Config) -> Result<TokenStore> {
    let state_dir = config.state_dir();
    crate::store::create_private_dir(&state_dir)?;
    Ok(TokenStore::open(
        config.agent.token_store,
        &state_dir,
        &token_account(config),
    )?)
}

/// How long to wait for another run holding the state.
fn lock_wait() -> Result<Duration> {
    match std::env::var(LOCK_WAIT_ENV) {
        Err(_) => Ok(RUN_LOCK_WAIT),
        Ok(text) => humantime::parse_duration(&text).map_err(|_| {
            Error::usage(format!("{LOCK_WAIT_ENV}=\"{text}\" is not a duration"))
                .with_fix("write e.g. 10s or 2m, or unset it for the default of a minute")
        }),
    }
}

/// Takes the run lock, telling the user when it has to wait for another run.
pub fn run_lock(state_dir: &Path) -> Result<FileLock> {
    crate::store::create_private_dir(state_dir)?;
    Ok(FileLock::acquire(
        &state_dir.join(RUN_LOCK),
        lock_wait()?,
        |pid| {
            eprintln!("waiting for another exist-agent run (pid {pid}) to finish ...");
        },
    )?)
}

/// What every Exist-facing command needs: the state and a client.
pub struct Session {
    /// The configuration.
    pub config: Config,
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
        let tokens = token_store(config)?;
        let auth = Arc::new(Auth::new(
            config.exist.app(),
            tokens,
            Arc::new(crate::exist::TokenLock::in_dir(&state_dir)),
        ));
        let budget = Arc::new(Budget::open(&state_dir)?);
        Ok(Self {
            client: ExistClient::new(&config.exist.base_url, auth, budget),
            config: config.clone(),
            store,
        })
    }
}

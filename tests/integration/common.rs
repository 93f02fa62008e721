//! Shared by the integration tests: a sandbox Exist (and health API) in this process, a
//! temporary config and state directory, and the real binary pointed at them.

use std::path::{Path, PathBuf};

use exist_api::secret::Secret;
use exist_api::tokens::{TokenPair, TokenStore};
use exist_fakes::exist::{RequestRecord, Sandbox, SandboxOptions};

/// A test world: sandbox, runtime serving it, temporary directory with config and state.
pub struct World {
    pub rt: tokio::runtime::Runtime,
    pub sandbox: Sandbox,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub state_dir: PathBuf,
}

impl World {
    /// A world whose config has `[exist]` and `[agent]` pointing at the sandbox and the temporary
    /// state dir, followed by `rest` (sources and attributes).
    pub fn new(rest: &str) -> Self {
        Self::with_options(SandboxOptions::default(), rest)
    }

    /// Like [`World::new`], with sandbox options.
    pub fn with_options(options: SandboxOptions, rest: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sandbox = rt
            .block_on(Sandbox::start("127.0.0.1:0".parse().unwrap(), options))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let config_path = dir.path().join("config.toml");
        let world = Self {
            rt,
            sandbox,
            dir,
            config_path,
            state_dir,
        };
        world.write_config(rest);
        world
    }

    /// Rewrites the config with the standard head and `rest`.
    pub fn write_config(&self, rest: &str) {
        // The redirect URI is registered with the sandbox, as with a real Exist app.
        let redirect = format!("http://127.0.0.1:{}/callback", free_port());
        self.sandbox.register_redirect_uri(&redirect);
        let head = format!(
            "[exist]\nbase_url = \"{}\"\nclient_id = \"sandbox-client\"\nclient_secret = \"sandbox-secret\"\nredirect_uri = \"{redirect}\"\n\n[agent]\ntoken_store = \"file\"\nstate_dir = \"{}\"\n\n",
            self.sandbox.base_url(),
            self.state_dir.display()
        );
        std::fs::write(&self.config_path, format!("{head}{rest}")).unwrap();
    }

    /// The binary with `--config` set and a clean environment for its settings.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("exist-agent").unwrap();
        cmd.env_remove("EXIST_AGENT_CONFIG")
            .env_remove("RUST_LOG")
            .arg("--config")
            .arg(&self.config_path);
        cmd
    }

    /// Same, as a plain std command (for spawning in the background).
    pub fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("exist-agent"));
        cmd.env_remove("EXIST_AGENT_CONFIG")
            .env_remove("RUST_LOG")
            .arg("--config")
            .arg(&self.config_path);
        cmd
    }

    /// Stores a token pair minted by the sandbox, as `login` would have.
    pub fn login_with(&self, scopes: &[&str]) -> TokenPair {
        let grant = self.sandbox.issue_tokens(scopes);
        let pair = TokenPair {
            access_token: Secret::new(grant.access_token),
            refresh_token: Some(Secret::new(grant.refresh_token)),
            expires_at: Some(
                chrono::Utc::now() + chrono::Duration::seconds(grant.expires_in as i64),
            ),
            scopes: grant.scope.split(' ').map(str::to_owned).collect(),
        };
        self.token_store().save(&pair).unwrap();
        pair
    }

    /// The file token store of this world.
    pub fn token_store(&self) -> TokenStore {
        std::fs::create_dir_all(&self.state_dir).unwrap();
        TokenStore::File {
            path: self.state_dir.join("tokens.json"),
        }
    }

    /// Requests the sandbox served to the API or OAuth endpoints whose path starts with `prefix`.
    pub fn calls(&self, prefix: &str) -> Vec<RequestRecord> {
        self.sandbox
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }

    /// How many calls went to `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.calls(prefix).len()
    }

    /// The value Exist holds for (attribute, day).
    pub fn value(&self, attribute: &str, day: &str) -> Option<serde_json::Value> {
        self.sandbox
            .values()
            .get(&(attribute.to_owned(), day.to_owned()))
            .cloned()
    }

    /// A file in the temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Today's date in UTC, `YYYY-MM-DD`.
pub fn today_utc() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

/// Writes `lines` to a file and returns its path.
pub fn write_lines(path: &Path, lines: &[String]) -> PathBuf {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    path.to_owned()
}

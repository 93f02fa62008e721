//! `exist-agent doctor`: checks what a sync depends on and says how to fix what is broken:
//! the configuration, the state directory, the keyring, the token and its scopes, Exist, and
//! each source.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use clap::Args;
use serde::Serialize;

use crate::config::{
    Config, HttpSourceConfig, SecretSource, SourceConfig, SourceKind, SqliteSourceConfig,
    TokenStoreKind,
};
use crate::context::{runtime, Context};
use crate::error::{Error, Result};
use crate::sources::{HttpSource, SqliteSource};
use crate::store::Store;
use exist_api::tokens::{keyring_usable, TokenPair, TokenStore};

/// Options of `doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Print the checks as one JSON document on standard output (see the README)
    #[arg(long)]
    pub json: bool,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do, when it failed.
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "{mark}  {:<18} {}", self.name, self.detail)?;
        if let Some(fix) = &self.fix {
            crate::error::write_fix(f, fix)?;
        }
        Ok(())
    }
}

/// `doctor --json`: every check, and how many passed and failed.
#[derive(Debug, Serialize)]
struct DoctorDocument<'a> {
    ok: bool,
    passed: usize,
    failed: usize,
    checks: &'a [Check],
}

/// Runs every check and prints them; fails when any failed.
pub fn run(ctx: &Context, args: &DoctorArgs) -> Result<()> {
    let config = match ctx.config() {
        Ok(config) => config,
        Err(e) => {
            // The configuration is the first check; with --json its failure is a document too.
            if args.json {
                let check = Check {
                    name: "config".into(),
                    ok: false,
                    detail: e.message(),
                    fix: e.fix().map(str::to_owned),
                };
                print_document(std::slice::from_ref(&check))?;
            }
            return Err(e);
        }
    };
    let (checks, requests) = runtime()?.block_on(checks(&config));
    if args.json {
        print_document(&checks)?;
    } else {
        for check in &checks {
            println!("{check}");
        }
    }
    // Doctor's own requests to Exist count toward the hour's budget like any other.
    if requests > 0 && Store::open(&config.state_dir()).is_ok() {
        let budget = crate::store::Budget::open(&config.state_dir())?;
        for _ in 0..requests {
            // Over the limit, doctor still reports; the count is what matters.
            let _ = exist_api::client::RequestBudget::spend(&budget);
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        return Err(
            Error::failed(format!("{failed} check(s) failed")).with_fix("see the fixes above")
        );
    }
    if !args.json {
        println!("all {} checks passed", checks.len());
    }
    Ok(())
}

fn print_document(checks: &[Check]) -> Result<()> {
    let failed = checks.iter().filter(|c| !c.ok).count();
    super::outcome::print_json(&DoctorDocument {
        ok: failed == 0,
        passed: checks.len() - failed,
        failed,
        checks,
    })
}

/// Runs every check (the configuration itself was checked when it was loaded), and says how
/// many requests went to Exist.
pub async fn checks(config: &Config) -> (Vec<Check>, u32) {
    let mut checks = vec![Check::pass(
        "config",
        format!(
            "{} is valid: {} source(s), {} attribute(s); needs scopes {}",
            config.path.display(),
            config.sources.len(),
            config.attributes.len(),
            config.scopes().join(" ")
        ),
    )];
    let state_dir = config.state_dir();
    checks.push(check_state_dir(&state_dir));
    checks.push(check_keyring(config.agent.token_store));
    let account = crate::context::token_account(config);
    let tokens = TokenStore::open(config.agent.token_store, &state_dir, &account);
    let pair = match &tokens {
        Ok(store) => match store.load() {
            Ok(pair) => pair,
            Err(e) => {
                checks.push(Check::fail(
                    "token",
                    e.to_string(),
                    "run `exist-agent login`",
                ));
                None
            }
        },
        Err(e) => {
            checks.push(Check::fail(
                "token store",
                e.to_string(),
                "set [agent] token_store = \"file\", or unlock your keyring",
            ));
            None
        }
    };
    if let Ok(store) = &tokens {
        checks.extend(check_token(store, pair.as_ref(), &config.scopes()));
    }
    checks.extend(check_secrets(config));
    checks.push(check_exist(config, pair.as_ref()).await);
    let tz = days_timezone(config);
    for source in &config.sources {
        checks.push(check_source(source, tz).await);
    }
    checks.extend(check_freshness(config));
    (checks, 1)
}

/// Every secret the configuration names from the environment must be there: the first refresh
/// of the Exist token, the first notification, the first pull would fail without it.
fn check_secrets(config: &Config) -> Vec<Check> {
    let mut needed: Vec<(String, String)> = Vec::new();
    if let SecretSource::Env(var) = &config.exist.client_secret {
        needed.push((var.clone(), "exist.client_secret_env".into()));
    }
    if let Some(SecretSource::Env(var)) = &config.agent.notify_secret {
        needed.push((var.clone(), "agent.notify_secret_env".into()));
    }
    for source in &config.sources {
        if let SourceKind::Http(http) = &source.kind {
            for (var, key) in http.auth.env_vars() {
                needed.push((var.to_owned(), format!("source {}: {key}", source.name)));
            }
        }
    }
    let missing: Vec<String> = needed
        .iter()
        .filter(|(var, _)| std::env::var(var).map_or(true, |v| v.is_empty()))
        .map(|(var, key)| format!("{var} ({key})"))
        .collect();
    if missing.is_empty() {
        let names: Vec<&str> = needed.iter().map(|(v, _)| v.as_str()).collect();
        let detail = if names.is_empty() {
            "the configuration names none in the environment".to_owned()
        } else {
            format!("set: {}", names.join(", "))
        };
        return vec![Check::pass("secrets", detail)];
    }
    vec![Check::fail(
        "secrets",
        format!("not set in the environment: {}", missing.join(", ")),
        "export them (for the service, put NAME=value lines in the environment file next to the configuration)",
    )]
}

/// Every source with `stale_after` must have had a record recently enough.
fn check_freshness(config: &Config) -> Vec<Check> {
    if config.sources.iter().all(|s| s.stale_after.is_none()) {
        return Vec::new();
    }
    let fresh = Store::open(&config.state_dir())
        .map_err(Error::from)
        .and_then(|store| Ok(crate::alerts::freshness(config, &store, Utc::now())?));
    let fresh = match fresh {
        Ok(f) => f,
        Err(e) => {
            return vec![Check::fail(
                "freshness",
                e.message(),
                e.fix().unwrap_or("see the state directory check"),
            )]
        }
    };
    fresh
        .into_iter()
        .filter(|f| f.stale_after.is_some())
        .map(|f| {
            let name = format!("fresh {}", f.source);
            if f.stale {
                Check::fail(
                    name,
                    f.describe(),
                    "check that the source still gets data (the app still exports, the file is still written, the token still works); `exist-agent status` shows its last pull",
                )
            } else {
                Check::pass(name, f.describe())
            }
        })
        .collect()
}

fn check_state_dir(dir: &Path) -> Check {
    let probe = dir.join(".doctor-probe");
    let writable = crate::store::create_private_dir(dir)
        .map_err(|e| e.to_string())
        .and_then(|()| std::fs::write(&probe, b"ok").map_err(|e| e.to_string()))
        .and_then(|()| std::fs::remove_file(&probe).map_err(|e| e.to_string()));
    if let Err(e) = writable {
        return Check::fail(
            "state directory",
            format!("{} is not writable: {e}", dir.display()),
            "make it writable, or set [agent] state_dir to a directory you own",
        );
    }
    match Store::open(dir) {
        Ok(store) => Check::pass(
            "state directory",
            format!(
                "{} is writable; state database at schema {}",
                dir.display(),
                store.schema_version().unwrap_or(0)
            ),
        ),
        Err(e) => Check::fail("state database", e.to_string(), "see the message above"),
    }
}

fn check_keyring(kind: TokenStoreKind) -> Check {
    match (kind, keyring_usable()) {
        (TokenStoreKind::File, _) => Check::pass("keyring", "not used (token_store = \"file\")"),
        (_, Ok(())) => Check::pass("keyring", "the OS keyring answers"),
        (TokenStoreKind::Auto, Err(why)) => Check::pass(
            "keyring",
            format!("none available ({why}); tokens are kept in the 0600 file instead"),
        ),
        (TokenStoreKind::Keyring, Err(why)) => Check::fail(
            "keyring",
            format!("the OS keyring is not usable: {why}"),
            "start or unlock your keyring, or set [agent] token_store = \"auto\" or \"file\"",
        ),
    }
}

fn check_token(store: &TokenStore, pair: Option<&TokenPair>, needed: &[String]) -> Vec<Check> {
    let Some(pair) = pair else {
        return vec![Check::fail(
            "token",
            format!("none stored in {}", store.describe()),
            "run `exist-agent login`",
        )];
    };
    let mut checks = Vec::new();
    let now = Utc::now();
    let token = match pair.expires_at {
        Some(at) if at <= now && pair.refresh_token.is_none() => Check::fail(
            "token",
            format!("expired on {}", at.format("%Y-%m-%d")),
            "run `exist-agent login`",
        ),
        Some(at) => Check::pass(
            "token",
            format!(
                "in {}; expires {}{}",
                store.describe(),
                at.format("%Y-%m-%d"),
                if pair.refresh_token.is_some() {
                    ", refreshed automatically"
                } else {
                    ""
                }
            ),
        ),
        None => Check::pass(
            "token",
            format!(
                "in {}; no expiry known (a personal token)",
                store.describe()
            ),
        ),
    };
    checks.push(token);
    if let TokenStore::File { path } = store {
        checks.push(check_mode(path));
    }
    let missing: Vec<&String> = needed.iter().filter(|s| !pair.scopes.contains(s)).collect();
    checks.push(if missing.is_empty() {
        Check::pass("scopes", format!("granted: {}", pair.scopes.join(" ")))
    } else {
        Check::fail(
            "scopes",
            format!(
                "the config needs {} which the token lacks",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            "run `exist-agent login` to grant them",
        )
    });
    checks
}

fn check_mode(path: &Path) -> Check {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(path) {
            Ok(m) if m.permissions().mode() & 0o077 == 0 => Check::pass(
                "token file",
                format!("{} is readable by you only", path.display()),
            ),
            Ok(m) => Check::fail(
                "token file",
                format!(
                    "{} has mode {:o}: others can read your tokens",
                    path.display(),
                    m.permissions().mode() & 0o777
                ),
                format!("chmod 600 {}", path.display()),
            ),
            Err(e) => Check::fail(
                "token file",
                format!("{}: {e}", path.display()),
                "run `exist-agent login`",
            ),
        }
    }
    #[cfg(not(unix))]
    {
        Check::pass("token file", path.display().to_string())
    }
}

async fn check_exist(config: &Config, pair: Option<&TokenPair>) -> Check {
    let url = match config.exist.base_url.join("api/2/accounts/profile/") {
        Ok(u) => u,
        Err(e) => return Check::fail("exist", e.to_string(), "fix exist.base_url"),
    };
    let mut request = http_client().get(url.clone());
    if let Some(pair) = pair {
        request = request.bearer_auth(pair.access_token.expose());
    }
    match request.send().await {
        Ok(r) if r.status().is_success() => Check::pass(
            "exist",
            format!("{} answers; the token works", config.exist.base_url),
        ),
        Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED && pair.is_some() => Check::fail(
            "exist",
            format!(
                "{} refused the token (HTTP 401: expired or revoked)",
                config.exist.base_url
            ),
            "run `exist-agent login`",
        ),
        Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => Check::pass(
            "exist",
            format!("{} answers (no token to try)", config.exist.base_url),
        ),
        Ok(r) => Check::fail(
            "exist",
            format!("{url} answered HTTP {}", r.status()),
            "check exist.base_url; try again later if Exist is down",
        ),
        Err(e) => Check::fail(
            "exist",
            format!(
                "cannot reach {}: {}",
                config.exist.base_url,
                crate::error::error_chain(&e)
            ),
            "check your network and exist.base_url",
        ),
    }
}

/// The timezone a source's windows of days are in: the configured one, else the Exist
/// profile's as the last sync cached it, else UTC (doctor asks Exist for nothing more).
fn days_timezone(config: &Config) -> chrono_tz::Tz {
    config.exist.timezone.unwrap_or_else(|| {
        Store::open(&config.state_dir())
            .ok()
            .and_then(|store| store.read().profile_timezone().ok().flatten())
            .map_or(chrono_tz::UTC, |cached| cached.tz)
    })
}

async fn check_source(source: &SourceConfig, tz: chrono_tz::Tz) -> Check {
    let name = format!("source {}", source.name);
    match &source.kind {
        SourceKind::Http(http) => check_http(name, source, http, tz).await,
        SourceKind::File(file) => match std::fs::File::open(&file.path) {
            Ok(_) => Check::pass(name, format!("{} is readable", file.path.display())),
            Err(e) => Check::fail(
                name,
                format!("cannot read {}: {e}", file.path.display()),
                "create the file or fix the source's path",
            ),
        },
        SourceKind::Command(command) => match find_program(&command.argv[0]) {
            Some(path) => Check::pass(name, format!("runs {}", path.display())),
            None => Check::fail(
                name,
                format!("`{}` is not found on PATH", command.argv[0]),
                "install the program or give its absolute path in `command`",
            ),
        },
        SourceKind::Inbox(inbox) => match std::env::var(&inbox.token_env) {
            Ok(token) if token.len() >= 16 => Check::pass(
                name,
                format!("deliveries carry the token in {}", inbox.token_env),
            ),
            Ok(token) if !token.is_empty() => Check::fail(
                name,
                format!("the token in {} is only {} characters", inbox.token_env, token.len()),
                "use a long random token, e.g. `openssl rand -hex 32`",
            ),
            _ => Check::fail(
                name,
                format!("{} is not set", inbox.token_env),
                format!(
                    "export {} with a long random token (the sender puts it in Authorization: Bearer ...), in the daemon's environment too",
                    inbox.token_env
                ),
            ),
        },
        SourceKind::Sqlite(sqlite) => check_sqlite(name, source, sqlite),
    }
}

/// The error's text without the source's name, which the check's name already says.
fn detail_of(source: &SourceConfig, e: &crate::sources::SourceError) -> String {
    let text = e.to_string();
    let prefix = format!("source \"{}\": ", source.name);
    text.strip_prefix(&prefix).unwrap_or(&text).to_owned()
}

/// One request, as a pull's first would make it: the credentials are read (an auth command
/// runs), the source answers and takes them, and its reply has records where `records` says.
async fn check_http(
    name: String,
    source: &SourceConfig,
    http: &HttpSourceConfig,
    tz: chrono_tz::Tz,
) -> Check {
    let probe = match HttpSource::new(source, http) {
        Ok(s) => s.in_timezone(tz).probe().await,
        Err(e) => Err(e),
    };
    match probe {
        Ok(probe) => {
            let at = if probe.at.is_empty() {
                "in the reply itself".to_owned()
            } else {
                format!("at `{}`", probe.at)
            };
            Check::pass(
                name,
                format!(
                    "{} answers ({} window, {} paging); {} record(s) {at} on the first page",
                    probe.url,
                    http.window.style(),
                    http.paging.style(),
                    probe.records
                ),
            )
        }
        Err(e) => {
            use crate::error::Classify;
            Check::fail(
                name,
                detail_of(source, &e),
                e.fix().unwrap_or_else(|| {
                    "check the source's url and credentials (for the service, in the environment file)".into()
                }),
            )
        }
    }
}

/// Opens the database read-only and prepares the query: it reads, and gives the date field.
fn check_sqlite(name: String, source: &SourceConfig, sqlite: &SqliteSourceConfig) -> Check {
    let reader = SqliteSource::new(source, sqlite);
    match reader.columns() {
        Ok(columns) => {
            let date = crate::sources::FieldPath::new(source.date_field.as_str());
            let first = date.as_str().split('.').next().unwrap_or_default();
            if columns.iter().any(|c| c == date.as_str() || c == first) {
                Check::pass(
                    name,
                    format!(
                        "{} opens read-only; the query gives {}",
                        sqlite.path.display(),
                        columns.join(", ")
                    ),
                )
            } else {
                Check::fail(
                    name,
                    format!(
                        "the query gives the columns {}, none of them `{}` (date_field)",
                        columns.join(", "),
                        source.date_field
                    ),
                    "name the date column in the query (`SELECT ts AS day ...`) or fix date_field",
                )
            }
        }
        Err(e) => {
            use crate::error::Classify;
            Check::fail(
                name,
                detail_of(source, &e),
                e.fix()
                    .unwrap_or_else(|| "check the source's path and query".into()),
            )
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("a TLS backend is compiled in")
}

/// The program `name` would run: itself when it has a path, else the first match on PATH.
fn find_program(name: &str) -> Option<std::path::PathBuf> {
    let path = Path::new(name);
    if path.components().count() > 1 {
        return path.is_file().then(|| path.to_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

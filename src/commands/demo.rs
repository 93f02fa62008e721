//! `exist-agent demo`: the whole product on built-in sample data, in seconds, with no account.
//!
//! It starts the Exist sandbox (its user lives in [`TIMEZONE`]) and the health-data sandbox in
//! this process, writes a coffee log and a configuration into a temporary directory, logs in
//! through the real OAuth flow (the demo plays the browser), syncs the way `run --once` does,
//! changes the past days' data, syncs again, and prints what Exist holds and the requests each
//! step made against the fewest possible. It removes everything it made before it returns.

mod report;
mod sample;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use url::Url;

use crate::config::{AttributeConfig, AttributeTarget, Config, SourceKind};
use crate::context::{run_lock, runtime, Session};
use crate::error::{Error, Result};
use crate::sync::{self, SyncOptions, SyncReport};
use exist_api::auth;
use exist_api::types::MAX_BATCH;
use exist_fakes::exist::{RequestRecord, Sandbox, SandboxOptions};
use exist_fakes::health::HealthSandbox;
use report::{Call, Phase, Values};
use sample::{Calendar, Sample, SyncRound};

/// The demo user's timezone: west of UTC, so that a late-evening walk is already the next day in
/// UTC, and the table shows it counted on the user's own day.
pub const TIMEZONE: &str = "America/New_York";

/// The custom attribute the coffee log feeds: created once, with `manual: false`.
const COFFEE_LABEL: &str = "Cups of coffee";

/// Any free port on the loopback interface: nothing of the demo is reachable from outside.
const LOOPBACK: &str = "127.0.0.1:0";

/// Runs the demo; the command line's verbosity (`-v`) shows the agent's own log lines.
pub fn run(ctx: &crate::context::Context) -> Result<()> {
    let _quiet = quiet_logs(ctx.verbosity);
    let dir = tempfile::Builder::new()
        .prefix("exist-agent-demo-")
        .tempdir()
        .map_err(|e| failed("cannot create a temporary directory", e))?;
    let path = dir.path().to_owned();
    let shown = runtime()?.block_on(demo(&path));
    // Removed whether the demo worked or not: it must leave nothing behind.
    let removed = dir.close();
    shown?;
    removed.map_err(|e| failed(&format!("cannot remove {}", path.display()), e))?;
    println!("Removed {} and stopped both sandboxes.", path.display());
    println!();
    println!(
        "To connect your real Exist account, see README.md: write a config with your Exist app's"
    );
    println!(
        "client id (config.example.toml documents every key), then run `exist-agent login` and"
    );
    println!("`exist-agent run --once`.");
    Ok(())
}

/// Below `-v`, only warnings reach standard error while the demo runs, so the agent's info lines
/// (every sandbox request, every sync) do not bury the tables. `RUST_LOG` still wins.
fn quiet_logs(verbosity: i8) -> Option<tracing::subscriber::DefaultGuard> {
    if verbosity > 0 || std::env::var_os("RUST_LOG").is_some() {
        return None;
    }
    let warnings = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    Some(tracing::subscriber::set_default(warnings))
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::failed(format!("demo: {what}: {e}"))
}

/// The servers, files and configuration of one demo.
struct Stage {
    exist: Sandbox,
    health: HealthSandbox,
    sample: Sample,
    calendar: Calendar,
    coffee_log: PathBuf,
    config_path: PathBuf,
    config: Config,
}

impl Stage {
    /// Starts both sandboxes, loads the first round of sample data and writes the configuration.
    async fn set(dir: &Path) -> Result<Self> {
        let options = SandboxOptions {
            timezone: TIMEZONE.into(),
            username: "demo".into(),
            ..SandboxOptions::default()
        };
        let loopback: SocketAddr = LOOPBACK.parse().expect("a valid socket address");
        let exist = Sandbox::start(loopback, options.clone())
            .await
            .map_err(|e| failed("cannot start the Exist sandbox", e))?;
        let health = HealthSandbox::start(loopback)
            .await
            .map_err(|e| failed("cannot start the health-data sandbox", e))?;
        let tz: Tz = TIMEZONE.parse().expect("TIMEZONE is an IANA name");
        let calendar = Calendar::today_in(tz);
        let sample = Sample::embedded();
        for walk in sample.walks.iter().filter(|w| w.round == SyncRound::First) {
            health.upsert(walk.record(&calendar));
        }
        let coffee_log = dir.join("coffee.csv");
        let mut log = vec![sample::COFFEE_LOG_HEADER.to_owned()];
        log.extend(
            sample
                .coffees
                .iter()
                .filter(|c| c.round == SyncRound::First)
                .map(|c| c.log_line(&calendar)),
        );
        write(&coffee_log, &(log.join("\n") + "\n"))?;
        let config_path = dir.join("config.toml");
        let text = config_text(
            &exist,
            &options,
            &health.url(),
            &coffee_log,
            &dir.join("state"),
        )?;
        write(&config_path, &text)?;
        let config = Config::load(&config_path)?;
        Ok(Self {
            exist,
            health,
            sample,
            calendar,
            coffee_log,
            config_path,
            config,
        })
    }

    /// Makes the second round's changes: edited and late walks at the source, cups appended to
    /// the log. Returns a line describing each.
    fn change_data(&self) -> Result<Vec<String>> {
        let mut said = Vec::new();
        for walk in self
            .sample
            .walks
            .iter()
            .filter(|w| w.round == SyncRound::Second)
        {
            self.health.upsert(walk.record(&self.calendar));
            let start = walk.start(&self.calendar);
            let when = start.format("%Y-%m-%d %H:%M");
            said.push(match self.sample.first_walk(&walk.id) {
                Some(old) => format!(
                    "edited   walk {} of {when}: {} -> {} steps (the tracker re-synced it)",
                    walk.id, old.steps, walk.steps
                ),
                None if walk.crosses_utc_midnight(&self.calendar) => format!(
                    "late     walk {} of {when} ({} UTC): {} steps",
                    walk.id,
                    start.to_utc().format("%Y-%m-%d %H:%M"),
                    walk.steps
                ),
                None => format!("late     walk {} of {when}: {} steps", walk.id, walk.steps),
            });
        }
        let mut appended = String::new();
        for cup in self
            .sample
            .coffees
            .iter()
            .filter(|c| c.round == SyncRound::Second)
        {
            appended.push_str(&cup.log_line(&self.calendar));
            appended.push('\n');
            said.push(format!(
                "appended {} of {} {} to the coffee log",
                cup.drink,
                self.calendar.date(cup.day),
                cup.time.format("%H:%M")
            ));
        }
        append(&self.coffee_log, &appended)?;
        Ok(said)
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| failed(&format!("cannot write {}", path.display()), e))
}

fn append(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| failed(&format!("cannot append to {}", path.display()), e))
}

/// A TOML string literal (paths may hold quotes or backslashes).
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// The demo's configuration: both sandboxes, tokens in a file in the temporary state directory,
/// the profile's timezone (none configured), steps from the API and a custom coffee attribute.
fn config_text(
    exist: &Sandbox,
    options: &SandboxOptions,
    health: &Url,
    coffee_log: &Path,
    state_dir: &Path,
) -> Result<String> {
    let port = std::net::TcpListener::bind(LOOPBACK)
        .and_then(|l| l.local_addr())
        .map_err(|e| failed("cannot find a free port for the login's redirect", e))?
        .port();
    // Registered with the sandbox, as a real app registers its redirect URI with Exist.
    exist.register_redirect_uri(&format!("http://127.0.0.1:{port}/callback"));
    Ok(format!(
        r#"[exist]
base_url = {base}
client_id = {client_id}
client_secret = {client_secret}
redirect_uri = "http://127.0.0.1:{port}/callback"

[agent]
token_store = "file"
state_dir = {state_dir}

[[source]]
name = "health"
kind = "http"
url = {health}
id_field = "id"
date_field = "startTime"
tz_offset_field = "tzOffset"
updated_field = "updatedAt"

[[source]]
name = "coffee"
kind = "file"
path = {coffee_log}
date_field = "date"

[[attribute]]
template = "steps"
source = "health"
field = "steps"
aggregate = "sum"

[[attribute]]
label = {label}
group = "food"
value_type = "integer"
source = "coffee"
aggregate = "count"
"#,
        base = quoted(exist.base_url().as_str()),
        client_id = quoted(&options.client_id),
        client_secret = quoted(&options.client_secret),
        state_dir = quoted(&state_dir.to_string_lossy()),
        health = quoted(health.as_str()),
        coffee_log = quoted(&coffee_log.to_string_lossy()),
        label = quoted(COFFEE_LABEL),
    ))
}

/// The demo, start to end, printing as it goes.
async fn demo(dir: &Path) -> Result<()> {
    let stage = Stage::set(dir).await?;
    print_intro(&stage, dir);
    let login = login_step(&stage).await?;
    let first = sync_step(&stage, "Sync 1").await?;
    println!();
    println!("Meanwhile, the data changes:");
    for line in stage.change_data()? {
        println!("  {line}");
    }
    let second = sync_step(&stage, "Sync 2").await?;
    print_values(&stage, &first.values, &second.values)?;
    print_calls(&stage.config, [login, first, second]);
    stage.exist.shutdown().await;
    Ok(())
}

/// What one step of the demo left in the Exist sandbox.
struct Step {
    /// The requests Exist served during the step.
    calls: Vec<RequestRecord>,
    /// What Exist held at its end.
    values: Values,
}

impl Step {
    /// The step since Exist had served `seen` requests.
    fn observe(stage: &Stage, seen: usize) -> Self {
        Self {
            calls: stage.exist.requests().split_off(seen),
            values: stage.exist.values(),
        }
    }
}

async fn login_step(stage: &Stage) -> Result<Step> {
    println!("Login: the real OAuth flow; the demo plays the browser");
    let seen = stage.exist.requests().len();
    let landing = login(stage).await?;
    let rows = [
        [
            "authorize page".to_owned(),
            format!("approved by the sandbox, redirected to {landing}"),
        ],
        [
            "tokens".to_owned(),
            format!(
                "stored in {}",
                crate::context::token_store(&stage.config)?.describe()
            ),
        ],
    ];
    print_pairs(&rows);
    Ok(Step::observe(stage, seen))
}

async fn sync_step(stage: &Stage, title: &str) -> Result<Step> {
    let seen = stage.exist.requests().len();
    let report = sync_once(&stage.config).await?;
    println!();
    print_sync(title, &stage.config, &report);
    Ok(Step::observe(stage, seen))
}

fn print_values(stage: &Stage, after_first: &Values, now: &Values) -> Result<()> {
    let attributes = exist_names(&stage.config)?;
    println!();
    println!("What Exist holds now (* = changed by sync 2)");
    print!("{}", report::values_table(&attributes, after_first, now));
    println!(
        "  Today ({}) has no walks or cups yet; the agent re-computes it on every run.",
        stage.calendar.today
    );
    Ok(())
}

fn print_calls(config: &Config, steps: [Step; 3]) {
    let phases = phases(config, steps);
    println!();
    println!("Requests to Exist, per step");
    print!("{}", report::calls_table(&phases));
    let excess: Vec<String> = phases
        .iter()
        .flat_map(|p| {
            p.excess()
                .into_iter()
                .map(|e| format!("{e} in {}", p.title))
        })
        .collect();
    if excess.is_empty() {
        println!("  Every count is at its minimum: no refresh, acquire once, batched updates.");
    } else {
        println!("  Above the minimum: {}.", excess.join(", "));
    }
    println!();
}

/// Label-and-text lines, the texts aligned.
fn print_pairs(rows: &[[String; 2]]) {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.to_vec()).collect();
    print!("{}", report::table(&[report::Align::Left; 2], &rows));
}

fn print_intro(stage: &Stage, dir: &Path) {
    println!(
        "exist-agent demo: the whole loop on built-in sample data, against a local Exist sandbox."
    );
    println!(
        "No Exist account is touched: both servers run inside this process, on loopback ports, and"
    );
    println!(
        "every file lives in {} until the demo removes it.",
        dir.display()
    );
    println!();
    let walks = |round| stage.sample.walks.iter().filter(move |w| w.round == round);
    let cups = stage
        .sample
        .coffees
        .iter()
        .filter(|c| c.round == SyncRound::First)
        .count();
    let mut rows = vec![
        [
            "Exist sandbox".to_owned(),
            format!("{} (its user lives in {TIMEZONE})", stage.exist.base_url()),
        ],
        [
            "health-data API".to_owned(),
            format!(
                "{} ({} walks over the past week)",
                stage.health.url(),
                walks(SyncRound::First).count()
            ),
        ],
        [
            "coffee log".to_owned(),
            format!("{} ({cups} cups)", stage.coffee_log.display()),
        ],
        [
            "configuration".to_owned(),
            stage.config_path.display().to_string(),
        ],
        [
            "attributes".to_owned(),
            "steps: a template, the sum of each day's walks".to_owned(),
        ],
        [
            String::new(),
            format!("\"{COFFEE_LABEL}\": a custom attribute, the count of each day's log rows"),
        ],
    ];
    let late = walks(SyncRound::First)
        .filter(|w| w.crosses_utc_midnight(&stage.calendar))
        .max_by_key(|w| w.time);
    if let Some(walk) = late {
        let start = walk.start(&stage.calendar);
        rows.push([
            "note".to_owned(),
            format!(
                "walk {}, {} here, is {} UTC: it counts for {}",
                walk.id,
                start.format("%Y-%m-%d %H:%M"),
                start.to_utc().format("%Y-%m-%d %H:%M"),
                start.date_naive()
            ),
        ]);
    }
    print_pairs(&rows);
    println!();
}

/// Logs in with the real authorization-code flow, playing the browser: the authorize URL the
/// login shows is fetched as a browser would, and the sandbox's automatic approval redirects to
/// the login's loopback listener. Returns where the browser landed (without code and state).
async fn login(stage: &Stage) -> Result<Url> {
    let config = &stage.config;
    crate::store::create_private_dir(&config.state_dir())?;
    let authorize = stage
        .exist
        .base_url()
        .join("oauth2/authorize")
        .expect("a base URL joins a relative path");
    let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
    let mut url_tx = Some(url_tx);
    // The login writes the URL for a person to open; the demo picks it out of that line instead.
    let show = move |line: &str| {
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with(authorize.as_str()));
        if let Some(url) = url {
            if let Some(tx) = url_tx.take() {
                let _ = tx.send(url.to_owned());
            }
        }
    };
    let store = crate::context::token_store(config)?;
    let logged_in = async {
        auth::login(&config.exist.app(), &config.scopes(), &store, false, show)
            .await
            .map_err(Error::from)
    };
    let (_, mut landing) = tokio::try_join!(logged_in, play_browser(url_rx))?;
    landing.set_query(None);
    Ok(landing)
}

/// Opens the authorize URL as a browser would: follows the redirect to the loopback listener.
async fn play_browser(url: tokio::sync::oneshot::Receiver<String>) -> Result<Url> {
    let url = url
        .await
        .map_err(|_| Error::failed("demo: the login showed no authorize URL"))?;
    let browser = reqwest::Client::builder()
        // Everything is on loopback: a proxy from the environment must not get in between.
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| failed("cannot build an HTTP client", e))?;
    let response = browser
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| failed("the browser's visit to the authorize page failed", e))?;
    Ok(response.url().clone())
}

/// One sync, as `run --once` runs it: the run lock, a session on the stored state and tokens,
/// the engine. A failure or an attribute problem ends the demo with its error.
async fn sync_once(config: &Config) -> Result<SyncReport> {
    let _lock = run_lock(&config.state_dir())?;
    let mut session = Session::open(config)?;
    let run = sync::sync(
        config,
        &mut session.store,
        &session.client,
        &SyncOptions::default(),
    )
    .await;
    let report = run.report.clone();
    run.finish()?;
    Ok(report)
}

fn print_sync(title: &str, config: &Config, report: &SyncReport) {
    println!(
        "{title}, as `run --once` does it (days in {}, the profile's timezone)",
        report.timezone
    );
    let pulled: Vec<Vec<String>> = report
        .sources
        .iter()
        .map(|s| {
            let how = match config.source(&s.name).map(|c| &c.kind) {
                Some(SourceKind::Http(_)) => "HTTP: only what changed since its cursor",
                Some(SourceKind::File(_)) => "a file: read whole",
                _ => "a command's output",
            };
            let records = format!("{} record(s)", s.summary.records);
            vec![s.name.clone(), records, how.to_owned()]
        })
        .collect();
    let left = report::Align::Left;
    print!(
        "{}",
        report::table(&[left, report::Align::Right, left], &pulled)
    );
    println!(
        "  {} value(s) changed, {} sent in {} update call(s)",
        report.changes.len(),
        report.send.acknowledged,
        report.send.update_calls,
    );
}

/// The configured attributes' Exist names, in configuration order (a custom attribute's name is
/// Exist's choice, read back when it was created).
fn exist_names(config: &Config) -> Result<Vec<String>> {
    let owned = crate::store::Store::open(&config.state_dir())?
        .read()
        .owned_attributes()?;
    Ok(config
        .attributes
        .iter()
        .filter_map(|a| owned.iter().find(|o| o.key == a.key()))
        .map(|o| o.name.to_string())
        .collect())
}

/// The three steps with their requests and the fewest each needed: the login one code exchange;
/// the first sync the profile (for the timezone), one acquire for the templates, one create for
/// the custom attributes and `ceil(n / 35)` updates for the `n` values it changed in Exist; the
/// second sync only its updates.
fn phases(config: &Config, [login, first, second]: [Step; 3]) -> [Phase; 3] {
    let custom = |a: &AttributeConfig| matches!(a.target, AttributeTarget::Custom { .. });
    let creates = usize::from(config.attributes.iter().any(custom));
    let acquires = usize::from(config.attributes.iter().any(|a| !custom(a)));
    let written = [
        report::changed(&login.values, &first.values),
        report::changed(&first.values, &second.values),
    ];
    [
        Phase::new("login", &login.calls, &[(Call::CodeExchange, 1)], 0),
        Phase::new(
            "sync 1",
            &first.calls,
            &[
                (Call::Profile, 1),
                (Call::Acquire, acquires),
                (Call::Create, creates),
                (Call::Update, written[0].div_ceil(MAX_BATCH)),
            ],
            written[0],
        ),
        Phase::new(
            "sync 2",
            &second.calls,
            &[(Call::Update, written[1].div_ceil(MAX_BATCH))],
            written[1],
        ),
    ]
}

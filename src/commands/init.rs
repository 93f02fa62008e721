//! `exist-agent init`: a guided set-up on a terminal. It explains how to register an Exist app,
//! asks for the client id and where the secret lives, offers sources by kind and Exist's
//! templates by group, checks every answer with the configuration's own checks (so what it
//! writes always loads), writes the file (mode 0600 when it holds the secret; an existing file
//! only after asking), then offers `login` and a dry run. `--print` prints the file instead and
//! writes nothing.
//!
//! It needs a terminal: the questions depend on the answers, so piped answers would be a
//! fragile script. Without one it refuses (exit 2) and points at config.example.toml.

mod setup;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;

use crate::context::Context;
use crate::error::{Error, ErrorKind, Result};
use exist_api::templates::TEMPLATES;
use exist_api::types::{Group, ValueType};
use setup::{AttributeAnswer, KindAnswer, SecretAnswer, Setup, SourceAnswer, TargetAnswer};

/// Options of `init`.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Print the configuration on standard output instead of writing it (nothing is written)
    #[arg(long)]
    pub print: bool,
    /// The Exist to set up for, e.g. a local `exist-agent sandbox` [default: https://exist.io]
    #[arg(long, value_name = "URL")]
    pub base_url: Option<url::Url>,
}

/// Where Exist's developer settings are, to register an app.
const APPS_PAGE: &str = "https://exist.io/account/apps/";

/// Asks, writes (or prints), and offers the next steps.
pub fn run(ctx: &Context, args: &InitArgs) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::usage(
            "`init` asks questions, and its standard input is not a terminal",
        )
        .with_fix(
            "run it in a terminal; for a script, start from config.example.toml (it documents every key) and check the result with `exist-agent doctor`",
        ));
    }
    let stdin = std::io::stdin();
    let mut d = Dialogue {
        input: Box::new(stdin.lock()),
        out: Box::new(std::io::stderr()),
        hidden_secrets: true,
    };
    let path = ctx.config_path.clone();
    d.say(format!(
        "exist-agent init: a configuration for exist-agent, step by step (Ctrl-C stops; nothing is written before the end).\n{}",
        if args.print {
            "It will be printed on standard output (--print): nothing is written.".to_owned()
        } else {
            format!(
                "It will be written to {} (choose another place with --config).",
                path.display()
            )
        }
    ));
    let replace = !args.print && path.exists();
    if replace
        && !d.confirm(
            &format!("{} exists already. Replace it?", path.display()),
            false,
        )?
    {
        d.say(format!("Nothing written; {} is unchanged.", path.display()));
        return Ok(());
    }
    let setup = ask(&mut d, &path, args)?;
    let text = setup.to_toml();
    setup.check(&path).map_err(|e| {
        Error::failed(format!("init made a configuration that does not load: {e}"))
            .with_fix("this is a bug in exist-agent; please report it with the answers you gave")
    })?;
    if args.print {
        print!("{text}");
        return Ok(());
    }
    d.say(format!("\nThe configuration:\n\n{text}"));
    if !d.confirm(&format!("Write it to {}?", path.display()), true)? {
        d.say("Nothing written.");
        return Ok(());
    }
    write_config(&path, &text, setup.holds_secret(), replace)?;
    d.say(format!(
        "Wrote {}{}.",
        path.display(),
        if setup.holds_secret() {
            " (readable by you only: it holds the client secret)"
        } else {
            ""
        }
    ));
    next_steps(&mut d, ctx, &path, &setup)
}

/// Offers `login` and a dry run on the written file.
fn next_steps(d: &mut Dialogue<'_>, ctx: &Context, path: &Path, setup: &Setup) -> Result<()> {
    let written = Context {
        config_path: path.to_owned(),
        config_given: true,
        verbosity: ctx.verbosity,
    };
    let later = "Next: `exist-agent login`, `exist-agent run --once --dry-run`, then `exist-agent run --once` and `exist-agent service install` to sync hourly.";
    match &setup.secret {
        SecretAnswer::Env(var) if std::env::var_os(var).is_none() => {
            d.say(format!(
                "{var} is not set in this shell, and login needs the client secret: export {var}='...' (for the service, also put {var}=... in the environment file next to the configuration), then run `exist-agent login`.\n{later}"
            ));
            return Ok(());
        }
        SecretAnswer::None => {
            d.say(format!("With no client secret, log in with your app's personal token: `exist-agent login --token TOKEN`.\n{later}"));
            return Ok(());
        }
        _ => {}
    }
    if !d.confirm(
        "Log in to Exist now (authorizes exist-agent in your browser)?",
        true,
    )? {
        d.say(later);
        return Ok(());
    }
    super::login::run(
        &written,
        &super::login::LoginArgs {
            no_browser: !has_display(),
            token: None,
            source: None,
        },
    )?;
    if d.confirm(
        "Try a dry run now (shows what the first sync would send; sends nothing)?",
        true,
    )? {
        super::run::run(
            &written,
            &super::run::RunArgs {
                once: true,
                dry_run: true,
                ..super::run::RunArgs::default()
            },
        )?;
    }
    d.say(
        "Next: `exist-agent run --once` to sync, and `exist-agent service install` to sync hourly.",
    );
    Ok(())
}

/// Whether a browser can be opened here: a desktop session, not an SSH login.
fn has_display() -> bool {
    cfg!(target_os = "macos")
        || std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some()
}

/// Writes the file: atomically, mode 0600 when it holds a secret, and over an existing file only
/// when the user said so (a file that appeared meanwhile is left alone).
fn write_config(path: &Path, text: &str, secret: bool, replace: bool) -> Result<()> {
    let io = |what: &str, e: std::io::Error| {
        Error::caused(
            ErrorKind::Failed,
            format!("cannot {what} {}", path.display()),
            e,
        )
        .with_fix("choose a place you can write to with --config, or `init --print > FILE`")
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| io("create the directory of", e))?;
    let mut file = tempfile::NamedTempFile::new_in(&dir).map_err(|e| io("write", e))?;
    #[cfg(unix)]
    if !secret {
        // A temporary file is private; a configuration without secrets need not be.
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| io("write", e))?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    file.write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| io("write", e))?;
    let persisted = if replace {
        file.persist(path).map(drop)
    } else {
        file.persist_noclobber(path).map(drop)
    };
    persisted.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            Error::failed(format!(
                "{} appeared while init ran; it was left as it is",
                path.display()
            ))
            .with_fix("run `exist-agent init` again to replace it, or choose another --config")
        } else {
            io("write", e.error)
        }
    })
}

/// Asks everything, checking each answer as the configuration will.
fn ask(d: &mut Dialogue<'_>, path: &Path, args: &InitArgs) -> Result<Setup> {
    let mut setup = Setup {
        base_url: args.base_url.as_ref().map(|u| u.to_string()),
        ..Setup::default()
    };
    d.say(format!(
        "\n1. Your Exist app\n   exist-agent writes to Exist as an app you register yourself, at {APPS_PAGE}\n   (Exist's developer settings). Give the app a redirect URI on this machine, where `login`\n   listens for Exist's reply; Exist compares it with the one below character for character."
    ));
    setup.redirect_uri = d.ask_with("Redirect URI", Some("http://localhost:8000/"), |text| {
        let url = url::Url::parse(text).map_err(|_| "that is not a URL".to_owned())?;
        let loopback = match url.host() {
            Some(url::Host::Domain(h)) => h == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if url.scheme() != "http" || !loopback {
            return Err("write http://localhost:PORT/ or http://127.0.0.1:PORT/: login listens on this machine".into());
        }
        Ok(text.to_owned())
    })?;
    d.say(format!(
        "   Register the app with exactly this redirect URI: {}\n   Exist then shows its client id and client secret.",
        setup.redirect_uri
    ));
    setup.client_id = d.ask_with("Client id", None, |t| Ok(t.to_owned()))?;
    let place = d.choose(
        "Where does the client secret live?",
        &[
            (
                "env",
                "in an environment variable (keeps it out of the file)",
            ),
            (
                "file",
                "in the configuration file (written readable by you only)",
            ),
            (
                "none",
                "nowhere: I will log in with the app's personal token (`login --token`)",
            ),
        ],
    )?;
    setup.secret = match place {
        0 => SecretAnswer::Env(d.ask_with(
            "Environment variable",
            Some("EXIST_CLIENT_SECRET"),
            env_name,
        )?),
        1 => SecretAnswer::Inline(d.secret("Client secret (not shown as you type)")?),
        _ => SecretAnswer::None,
    };
    d.say("\n2. Sources: where your data comes from, and the Exist attributes each one feeds");
    loop {
        let first = setup.sources.is_empty();
        let Some(kind) = d.choose_or_done(
            if first {
                "Add a source"
            } else {
                "Add another source"
            },
            KINDS,
            first,
        )?
        else {
            break;
        };
        let source = ask_source(d, &setup, path, KINDS[kind].0)?;
        let name = source.name.clone();
        setup.sources.push(source);
        ask_attributes(d, &mut setup, path, &name)?;
    }
    if setup.attributes.is_empty() {
        d.say("   No attributes: the agent will have nothing to send until you add [[attribute]] tables.");
    }
    d.say("\n3. Being told when something is wrong (Enter skips each)");
    setup.on_failure = d
        .ask_optional(
            "Command to run when syncing fails (words separated by spaces, no shell; {message}, {exit_code} and {source} are filled in), e.g. notify-send exist-agent {message}",
        )?
        .map(|line| line.split_whitespace().map(str::to_owned).collect());
    setup.ping_url = d.ask_optional_with(
        "A healthchecks-style URL to ping after each run (GET on success, <url>/fail on failure)",
        |t| match url::Url::parse(t) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(t.to_owned()),
            _ => Err("write an http(s) URL such as https://hc-ping.com/<uuid>".into()),
        },
    )?;
    Ok(setup)
}

/// The kinds of source `init` offers, with what each reads.
const KINDS: &[(&str, &str)] = &[
    (
        "file",
        "a CSV (header row) or JSON Lines file, read whole each run",
    ),
    (
        "command",
        "a program printing JSON Lines or CSV on its standard output",
    ),
    (
        "http",
        "an HTTP API with health-data conventions (updated_since, Link pages)",
    ),
];

fn env_name(text: &str) -> std::result::Result<String, String> {
    let ok = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then(|| text.to_owned())
        .ok_or_else(|| "write a variable name: letters, digits and _".into())
}

/// Asks for one source of `kind`, re-asking until it passes the checks.
fn ask_source(
    d: &mut Dialogue<'_>,
    setup: &Setup,
    path: &Path,
    kind: &str,
) -> Result<SourceAnswer> {
    loop {
        let (kind, date_default) = match kind {
            "file" => {
                let file =
                    d.ask_with("Path of the file (~/ allowed)", None, |t| Ok(t.to_owned()))?;
                if !crate::config::expand_home(&file).exists() {
                    d.say("   (it does not exist yet: the agent reads it once it does)");
                }
                let ext = Path::new(&file)
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase);
                let format = match ext.as_deref() {
                    Some("csv" | "jsonl" | "ndjson" | "json") => None,
                    _ => Some(
                        ["csv", "jsonl"][d.choose(
                            "Its format",
                            &[
                                ("csv", "comma-separated, header row"),
                                ("jsonl", "one JSON object per line"),
                            ],
                        )?],
                    ),
                };
                (KindAnswer::File { path: file, format }, "date")
            }
            "command" => {
                let line = d.ask_with(
                    "Command line (run with sh -c), e.g. git -C ~/code log --since=3.days --format='{\"date\":\"%cI\"}'",
                    None,
                    |t| Ok(t.to_owned()),
                )?;
                (KindAnswer::Command { line }, "date")
            }
            _ => {
                let url = d.ask_with(
                    "URL of the records (page 1)",
                    None,
                    |t| match url::Url::parse(t) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(t.to_owned()),
                        _ => Err("write an http(s) URL".into()),
                    },
                )?;
                let token_env = d.ask_optional_with(
                    "Environment variable holding its Bearer token (Enter for none)",
                    env_name,
                )?;
                let id_field = d.ask_with("Field with each record's id", Some("id"), |t| {
                    Ok(t.to_owned())
                })?;
                let updated_field = d.ask_with(
                    "Field with each record's last change time",
                    Some("updatedAt"),
                    |t| Ok(t.to_owned()),
                )?;
                (
                    KindAnswer::Http {
                        url,
                        token_env,
                        id_field,
                        updated_field,
                    },
                    "startTime",
                )
            }
        };
        let stem = match &kind {
            KindAnswer::File { path, .. } => Path::new(path)
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|s| usable_name(s))
                .map(str::to_owned),
            _ => None,
        };
        let name = ask_source_name(d, setup, stem.as_deref().unwrap_or(kind.name()))?;
        let date_field = d.ask_with(
            "Field with each record's date or timestamp",
            Some(date_default),
            |t| Ok(t.to_owned()),
        )?;
        let stale_after = d.ask_optional_with(
            "Report it stale after how long without a new record? (e.g. 3d; Enter for never)",
            |t| {
                humantime::parse_duration(t)
                    .map(|_| t.to_owned())
                    .map_err(|_| "write a duration such as 12h or 3d".into())
            },
        )?;
        let source = SourceAnswer {
            name,
            kind,
            date_field,
            stale_after,
        };
        let mut candidate = setup.clone();
        candidate.sources.push(source.clone());
        match candidate.check(path) {
            Ok(_) => return Ok(source),
            Err(e) => d.say(format!(
                "   That does not work: {}\n   {}; let's try again.",
                e.problem, e.fix
            )),
        }
    }
}

fn usable_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Asks for a source's name, suggesting `base` (numbered when it is taken).
fn ask_source_name(d: &mut Dialogue<'_>, setup: &Setup, base: &str) -> Result<String> {
    let taken = |n: &str| setup.sources.iter().any(|s| s.name == n);
    let suggested = (1..)
        .map(|i| {
            if i == 1 {
                base.to_owned()
            } else {
                format!("{base}{i}")
            }
        })
        .find(|n| !taken(n))
        .unwrap_or_default();
    d.ask_with("Name of the source", Some(&suggested), |t| {
        if taken(t) {
            Err("another source has that name".into())
        } else if usable_name(t) {
            Ok(t.to_owned())
        } else {
            Err("use letters, digits, `_` or `-`".into())
        }
    })
}

/// The groups whose templates `init` offers: those Exist lets apps write that have templates.
fn template_groups() -> Vec<Group> {
    Group::ALL
        .into_iter()
        .filter(|g| g.is_writable() && TEMPLATES.iter().any(|t| t.group == *g))
        .collect()
}

/// Asks for the attributes `source` feeds, each checked as the configuration will.
fn ask_attributes(
    d: &mut Dialogue<'_>,
    setup: &mut Setup,
    path: &Path,
    source: &str,
) -> Result<()> {
    let groups = template_groups();
    let described: Vec<(String, String)> = groups
        .iter()
        .map(|g| {
            let names: Vec<&str> = TEMPLATES
                .iter()
                .filter(|t| t.group == *g)
                .map(|t| t.name)
                .collect();
            let shown = if names.len() > 5 {
                format!("{}, ... ({} templates)", names[..5].join(", "), names.len())
            } else {
                names.join(", ")
            };
            (g.as_str().to_owned(), shown)
        })
        .chain([(
            "custom".to_owned(),
            "an attribute of your own: its label, group and type".to_owned(),
        )])
        .collect();
    let menu: Vec<(&str, &str)> = described
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    d.say(format!(
        "   Attributes from \"{source}\": Exist's templates by group (Exist's insights understand them), or one of your own."
    ));
    let mut added = 0;
    loop {
        let question = if added == 0 {
            format!("Add an attribute fed by \"{source}\"")
        } else {
            format!("Add another attribute fed by \"{source}\"")
        };
        let Some(choice) = d.choose_or_done(&question, &menu, added == 0)? else {
            return Ok(());
        };
        let (target, value_type) = if choice == groups.len() {
            let label = d.ask_with("Label shown in Exist", None, |t| Ok(t.to_owned()))?;
            let writable: Vec<(&str, &str)> = Group::ALL
                .iter()
                .filter(|g| g.is_writable())
                .map(|g| {
                    (
                        g.as_str(),
                        if *g == Group::Custom {
                            "daily tags: booleans only"
                        } else {
                            ""
                        },
                    )
                })
                .collect();
            let group = writable[d.choose("Its group", &writable)?].0;
            let types: Vec<(&str, &str)> = ValueType::ALL
                .iter()
                .filter(|t| **t != ValueType::TimeOfDayFromMidday)
                .map(|t| (t.config_name(), value_type_help(*t)))
                .collect();
            let value_type = types[d.choose("Its value type", &types)?].0;
            let vt = ValueType::from_config_name(value_type).unwrap_or(ValueType::Integer);
            (
                TargetAnswer::Custom {
                    label,
                    group,
                    value_type,
                },
                vt,
            )
        } else {
            let templates: Vec<(&str, &str)> = TEMPLATES
                .iter()
                .filter(|t| t.group == groups[choice])
                .map(|t| (t.name, value_type_help(t.value_type)))
                .collect();
            let pick = templates[d.choose("Which template", &templates)?].0;
            let vt = TEMPLATES
                .iter()
                .find(|t| t.name == pick)
                .map_or(ValueType::Integer, |t| t.value_type);
            (TargetAnswer::Template(pick), vt)
        };
        let field = if value_type == ValueType::String {
            Some(d.ask_with("Record field holding the text", None, |t| Ok(t.to_owned()))?)
        } else {
            d.ask_optional("Record field to aggregate per day (a dotted path such as summary.steps; Enter to count records)")?
        };
        let aggregate = match (&field, value_type) {
            (None, _) => "count",
            (Some(_), ValueType::String) => "last",
            (Some(_), _) => {
                const AGGREGATES: [(&str, &str); 5] = [
                    ("sum", "add the day's values up"),
                    ("max", "the largest"),
                    ("min", "the smallest"),
                    ("mean", "their average"),
                    ("last", "the latest record's"),
                ];
                AGGREGATES[d.choose("How the day's records become one value", &AGGREGATES)?].0
            }
        };
        let attribute = AttributeAnswer {
            target,
            source: source.to_owned(),
            field,
            aggregate,
        };
        let mut candidate = setup.clone();
        candidate.attributes.push(attribute.clone());
        match candidate.check(path) {
            Ok(_) => {
                d.say(format!(
                    "   Added {}: {}.",
                    match &attribute.target {
                        TargetAnswer::Template(name) => (*name).to_owned(),
                        TargetAnswer::Custom { label, .. } => format!("\"{label}\""),
                    },
                    match &attribute.field {
                        None => format!("the number of \"{source}\" records per day"),
                        Some(f) => format!("the {} of `{f}` per day", attribute.aggregate),
                    }
                ));
                setup.attributes.push(attribute);
                added += 1;
            }
            Err(e) => d.say(format!(
                "   That does not work: {}\n   {}; let's try again.",
                e.problem, e.fix
            )),
        }
    }
}

fn value_type_help(t: ValueType) -> &'static str {
    match t {
        ValueType::Integer => "a whole number",
        ValueType::Float => "a decimal number",
        ValueType::String => "text",
        ValueType::Duration => "minutes",
        ValueType::TimeOfDay | ValueType::TimeOfDayFromMidday => "a time of day, in minutes",
        ValueType::Percentage => "a fraction from 0 to 1",
        ValueType::Boolean => "0 or 1",
        ValueType::Scale => "1 to 9",
    }
}

/// Questions and answers on a terminal: prompts on standard error (so that `--print`'s standard
/// output is the file alone), answers line by line.
struct Dialogue<'a> {
    input: Box<dyn BufRead + 'a>,
    out: Box<dyn Write + 'a>,
    /// Whether secrets are read from the terminal without echo.
    hidden_secrets: bool,
}

impl Dialogue<'_> {
    fn say(&mut self, text: impl std::fmt::Display) {
        let _ = writeln!(self.out, "{text}");
    }

    fn prompt(&mut self, question: &str, default: Option<&str>) {
        let _ = match default {
            Some(d) if !d.is_empty() => write!(self.out, "{question} [{d}]: "),
            _ => write!(self.out, "{question}: "),
        };
        let _ = self.out.flush();
    }

    /// One line; the end of input stops `init` with nothing written.
    fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        let read = self
            .input
            .read_line(&mut line)
            .map_err(|e| Error::caused(ErrorKind::Failed, "cannot read the answer", e))?;
        if read == 0 {
            return Err(
                Error::usage("init stopped before the end; nothing was written")
                    .with_fix("run `exist-agent init` again"),
            );
        }
        Ok(line.trim().to_owned())
    }

    /// Asks until `check` accepts the answer (or the default, on Enter).
    fn ask_with<T>(
        &mut self,
        question: &str,
        default: Option<&str>,
        check: impl Fn(&str) -> std::result::Result<T, String>,
    ) -> Result<T> {
        loop {
            self.prompt(question, default);
            let answer = self.line()?;
            let answer = match (answer.is_empty(), default) {
                (true, Some(d)) => d.to_owned(),
                (true, None) => {
                    self.say("   (an answer is needed)");
                    continue;
                }
                (false, _) => answer,
            };
            match check(&answer) {
                Ok(v) => return Ok(v),
                Err(why) => self.say(format!("   {why}")),
            }
        }
    }

    /// Asks once more until the answer is empty (`None`) or `check` accepts it.
    fn ask_optional_with(
        &mut self,
        question: &str,
        check: impl Fn(&str) -> std::result::Result<String, String>,
    ) -> Result<Option<String>> {
        loop {
            self.prompt(question, None);
            let answer = self.line()?;
            if answer.is_empty() {
                return Ok(None);
            }
            match check(&answer) {
                Ok(v) => return Ok(Some(v)),
                Err(why) => self.say(format!("   {why}")),
            }
        }
    }

    fn ask_optional(&mut self, question: &str) -> Result<Option<String>> {
        self.ask_optional_with(question, |t| Ok(t.to_owned()))
    }

    fn confirm(&mut self, question: &str, default: bool) -> Result<bool> {
        let hint = if default { "Y/n" } else { "y/N" };
        self.ask_with(question, Some(hint), |t| {
            match t.to_ascii_lowercase().as_str() {
                "y" | "yes" => Ok(true),
                "n" | "no" => Ok(false),
                // Enter: the hint stands for the default.
                "y/n" => Ok(default),
                _ => Err("answer y or n".into()),
            }
        })
    }

    /// A numbered menu; the answer is a number or a name. Returns the index.
    fn choose(&mut self, question: &str, options: &[(&str, &str)]) -> Result<usize> {
        self.show(options);
        self.ask_with(question, None, |t| pick(t, options))
    }

    /// A numbered menu that Enter leaves (`None`), shown first when `show` is true and again
    /// on `?`.
    fn choose_or_done(
        &mut self,
        question: &str,
        options: &[(&str, &str)],
        show: bool,
    ) -> Result<Option<usize>> {
        if show {
            self.show(options);
        }
        loop {
            self.prompt(
                &format!("{question} (number or name; ? lists them; Enter when done)"),
                None,
            );
            let answer = self.line()?;
            match answer.as_str() {
                "" => return Ok(None),
                "?" => self.show(options),
                _ => match pick(&answer, options) {
                    Ok(i) => return Ok(Some(i)),
                    Err(why) => self.say(format!("   {why}")),
                },
            }
        }
    }

    fn show(&mut self, options: &[(&str, &str)]) {
        let width = options.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (i, (name, help)) in options.iter().enumerate() {
            let _ = writeln!(self.out, "   {:>2}) {name:<width$}  {help}", i + 1);
        }
    }

    /// A secret, without echo on a terminal.
    fn secret(&mut self, question: &str) -> Result<String> {
        loop {
            self.prompt(question, None);
            let answer = if self.hidden_secrets {
                let read = rpassword::read_password()
                    .map_err(|e| Error::caused(ErrorKind::Failed, "cannot read the secret", e))?;
                read.trim().to_owned()
            } else {
                self.line()?
            };
            if !answer.is_empty() {
                return Ok(answer);
            }
            self.say("   (an answer is needed)");
        }
    }
}

/// The option `answer` names, by number (from 1) or by name.
fn pick(answer: &str, options: &[(&str, &str)]) -> std::result::Result<usize, String> {
    if let Ok(n) = answer.parse::<usize>() {
        if (1..=options.len()).contains(&n) {
            return Ok(n - 1);
        }
    }
    options
        .iter()
        .position(|(name, _)| name.eq_ignore_ascii_case(answer))
        .ok_or_else(|| {
            format!(
                "answer a number from 1 to {} or a name from the list",
                options.len()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialogue<'a>(answers: &'a str, out: &'a mut Vec<u8>) -> Dialogue<'a> {
        Dialogue {
            input: Box::new(answers.as_bytes()),
            out: Box::new(out),
            hidden_secrets: false,
        }
    }

    #[test]
    fn a_wrong_answer_is_asked_again_and_enter_takes_the_default() {
        let mut out = Vec::new();
        let mut d = dialogue("maybe\n\n", &mut out);
        assert!(d.confirm("Go?", true).unwrap());
        drop(d);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("answer y or n"), "{text}");
    }

    #[test]
    fn menus_take_numbers_or_names() {
        let options = [("file", ""), ("http", "")];
        assert_eq!(pick("2", &options), Ok(1));
        assert_eq!(pick("HTTP", &options), Ok(1));
        assert!(pick("3", &options).is_err());
        let mut out = Vec::new();
        let mut d = dialogue("9\n?\nfile\n\n", &mut out);
        assert_eq!(d.choose_or_done("Add", &options, false).unwrap(), Some(0));
        assert_eq!(d.choose_or_done("Add", &options, false).unwrap(), None);
        drop(d);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("1) file"), "? lists the options: {text}");
    }

    #[test]
    fn the_end_of_input_stops_with_nothing_written() {
        let mut out = Vec::new();
        let mut d = dialogue("", &mut out);
        let e = d
            .ask_with("Client id", None, |t| Ok(t.to_owned()))
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("nothing was written"));
    }

    #[test]
    fn every_offered_group_has_templates_and_can_be_written() {
        let groups = template_groups();
        assert!(groups.contains(&Group::Activity));
        assert!(!groups.contains(&Group::Twitter), "Exist fills it itself");
        assert!(!groups.contains(&Group::Custom), "it has no templates");
    }
}

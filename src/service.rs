//! `exist-agent service install|uninstall`: a systemd user service and timer (Linux) or a launchd
//! LaunchAgent (macOS) that runs `exist-agent --config CONFIG run --once` every hour.
//!
//! The OS timer, not the daemon, is the preferred way to run the agent: it survives crashes and
//! reboots, catches up after sleep (`Persistent=true`; launchd coalesces missed intervals), and
//! keeps no process around between runs. The service always runs hourly, at the install's minute;
//! `agent.schedule` applies to the daemon (`exist-agent run`).
//!
//! Writing the files never depends on the service manager: when `systemctl` or `launchctl` is
//! missing or fails, the files stay written and the report says which command to run by hand.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The systemd service's file name.
pub const SERVICE_UNIT: &str = "exist-agent.service";
/// The systemd timer's file name.
pub const TIMER_UNIT: &str = "exist-agent.timer";
/// The LaunchAgent's label; its file is `<label>.plist`.
pub const LAUNCHD_LABEL: &str = "io.exist.exist-agent";
/// The file of `NAME=value` lines, next to the configuration, that the systemd service reads.
pub const ENVIRONMENT_FILE: &str = "environment";

/// Why a service could not be installed or removed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Neither systemd nor launchd is this platform's service manager.
    #[error("`service install` supports Linux (systemd user units) and macOS (launchd), not {os}; run `exist-agent run --once` from your own scheduler, or `exist-agent run` as a daemon")]
    Unsupported {
        /// The platform, as Rust names it.
        os: &'static str,
    },
    /// No home directory, so no user unit directory.
    #[error(
        "no home directory found, so there is no user service directory; set HOME and try again"
    )]
    NoHome,
    /// A path that cannot go into a service file.
    #[error("cannot use {path:?} in a service file: {why}; {fix}")]
    BadPath {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
        /// What to do.
        fix: &'static str,
    },
    /// A file or directory operation failed.
    #[error("could not {action} {path}: {source}; {fix}")]
    Io {
        /// What was being done ("write", "remove", "create the directory").
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
        /// What to do.
        fix: &'static str,
    },
}

/// Which service manager a [`ServiceTarget`] writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServiceKind {
    /// systemd user units: a oneshot service and an hourly timer.
    Systemd,
    /// A launchd LaunchAgent.
    Launchd,
}

/// Its message already says what to do.
impl crate::error::Classify for ServiceError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Failed
    }
}

/// Where the service files go and which program manages them.
#[derive(Debug, Clone)]
pub struct ServiceTarget {
    kind: ServiceKind,
    dir: PathBuf,
    /// launchd only: systemd sends the output to the journal.
    log_dir: Option<PathBuf>,
    manager: String,
}

impl ServiceTarget {
    /// This platform's user service directory: `$XDG_CONFIG_HOME/systemd/user` (or
    /// `~/.config/systemd/user`) on Linux, `~/Library/LaunchAgents` on macOS.
    pub fn for_this_platform() -> Result<Self, ServiceError> {
        let dirs = directories::BaseDirs::new().ok_or(ServiceError::NoHome)?;
        if cfg!(target_os = "linux") {
            Ok(Self::systemd(
                dirs.config_dir().join("systemd").join("user"),
            ))
        } else if cfg!(target_os = "macos") {
            let library = dirs.home_dir().join("Library");
            Ok(Self::launchd(
                library.join("LaunchAgents"),
                library.join("Logs").join("exist-agent"),
            ))
        } else {
            Err(ServiceError::Unsupported {
                os: std::env::consts::OS,
            })
        }
    }

    /// systemd user units in `unit_dir`, managed with `systemctl --user`.
    pub fn systemd(unit_dir: PathBuf) -> Self {
        Self {
            kind: ServiceKind::Systemd,
            dir: unit_dir,
            log_dir: None,
            manager: "systemctl".into(),
        }
    }

    /// A LaunchAgent in `agents_dir` logging to `log_dir`, managed with `launchctl`.
    pub fn launchd(agents_dir: PathBuf, log_dir: PathBuf) -> Self {
        Self {
            kind: ServiceKind::Launchd,
            dir: agents_dir,
            log_dir: Some(log_dir),
            manager: "launchctl".into(),
        }
    }

    /// Uses `program` instead of `systemctl`/`launchctl` (tests use one that does not exist, so
    /// they never touch the real service manager).
    #[cfg(test)]
    pub fn with_manager_program(mut self, program: impl Into<String>) -> Self {
        self.manager = program.into();
        self
    }

    /// The files this target consists of, with their contents.
    fn files(&self, binary: &Path, config: &Path, minute: u32) -> Vec<ServiceFile> {
        match self.kind {
            ServiceKind::Systemd => {
                let (service, timer) = systemd_units(binary, config, minute);
                vec![
                    ServiceFile::new(self.dir.join(SERVICE_UNIT), service),
                    ServiceFile::new(self.dir.join(TIMER_UNIT), timer),
                ]
            }
            ServiceKind::Launchd => vec![ServiceFile::new(
                self.plist_path(),
                launchd_plist(binary, config, self.log_dir.as_deref().unwrap_or(&self.dir)),
            )],
        }
    }

    /// The paths [`Self::files`] writes, without their contents.
    fn paths(&self) -> Vec<PathBuf> {
        match self.kind {
            ServiceKind::Systemd => vec![self.dir.join(SERVICE_UNIT), self.dir.join(TIMER_UNIT)],
            ServiceKind::Launchd => vec![self.plist_path()],
        }
    }

    fn plist_path(&self) -> PathBuf {
        self.dir.join(format!("{LAUNCHD_LABEL}.plist"))
    }

    /// The manager commands that enable the service once its files are written.
    fn enable_commands(&self) -> Vec<ManagerCommand> {
        match self.kind {
            ServiceKind::Systemd => vec![
                self.command(&["--user", "daemon-reload"], false),
                self.command(&["--user", "enable", "--now", TIMER_UNIT], false),
            ],
            ServiceKind::Launchd => {
                let plist = self.plist_path().display().to_string();
                vec![
                    // Fails when the agent is not loaded yet, which is fine; a loaded agent would
                    // keep its old definition without it.
                    self.command(&["unload", &plist], true),
                    self.command(&["load", "-w", &plist], false),
                ]
            }
        }
    }

    /// The manager commands that stop the service before its files are removed.
    fn disable_commands(&self) -> Vec<ManagerCommand> {
        match self.kind {
            ServiceKind::Systemd => {
                vec![self.command(&["--user", "disable", "--now", TIMER_UNIT], false)]
            }
            ServiceKind::Launchd => {
                let plist = self.plist_path().display().to_string();
                vec![self.command(&["unload", "-w", &plist], false)]
            }
        }
    }

    /// The manager commands that follow the removal of the files.
    fn after_removal_commands(&self) -> Vec<ManagerCommand> {
        match self.kind {
            ServiceKind::Systemd => vec![self.command(&["--user", "daemon-reload"], false)],
            ServiceKind::Launchd => Vec::new(),
        }
    }

    fn command(&self, args: &[&str], may_fail: bool) -> ManagerCommand {
        let mut argv = vec![self.manager.clone()];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        ManagerCommand {
            argv,
            may_fail,
            outcome: CommandOutcome::NotRun("--print writes and runs nothing".into()),
        }
    }
}

/// One service file and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFile {
    /// Where it goes.
    pub path: PathBuf,
    /// What it holds (empty in an uninstall report).
    pub contents: String,
}

impl ServiceFile {
    fn new(path: PathBuf, contents: String) -> Self {
        Self { path, contents }
    }
}

/// A service manager command and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerCommand {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Whether a failure is expected and harmless (`launchctl unload` of an agent not loaded).
    pub may_fail: bool,
    /// What happened.
    pub outcome: CommandOutcome,
}

/// What became of a [`ManagerCommand`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    /// It ran and succeeded.
    Succeeded,
    /// It ran and failed, with its message.
    Failed(String),
    /// It did not run, and why.
    NotRun(String),
}

/// What `service install`, `install --print` or `uninstall` did, for the user to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceReport {
    /// Install, preview, or uninstall.
    pub action: Action,
    /// The files written (install), to be written (print) or removed (uninstall).
    pub files: Vec<ServiceFile>,
    /// The service manager commands, in order.
    pub commands: Vec<ManagerCommand>,
    /// Advice that does not fit elsewhere.
    pub notes: Vec<String>,
}

/// Which operation a [`ServiceReport`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Files written and, if possible, enabled.
    Install,
    /// `--print`: nothing written, nothing run.
    Print,
    /// Files disabled and removed.
    Uninstall,
}

impl ServiceReport {
    /// Whether every command that had to succeed did (or none had to run, with `--print`).
    pub fn manager_ok(&self) -> bool {
        self.action == Action::Print
            || self
                .commands
                .iter()
                .all(|c| c.may_fail || c.outcome == CommandOutcome::Succeeded)
    }

    fn fmt_commands(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.commands {
            let line = c.argv.join(" ");
            match &c.outcome {
                CommandOutcome::Succeeded => writeln!(f, "ran `{line}`")?,
                CommandOutcome::Failed(_) if c.may_fail => {}
                CommandOutcome::Failed(why) => writeln!(f, "`{line}` failed: {why}")?,
                CommandOutcome::NotRun(why) => writeln!(f, "did not run `{line}`: {why}")?,
            }
        }
        if !self.manager_ok() {
            writeln!(
                f,
                "the files are in place; once the service manager works, run yourself:"
            )?;
            for c in self.commands.iter().filter(|c| !c.may_fail) {
                writeln!(f, "  {}", c.argv.join(" "))?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for ServiceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.action {
            Action::Print => {
                for file in &self.files {
                    writeln!(f, "# {}\n{}", file.path.display(), file.contents)?;
                }
                writeln!(f, "# then run:")?;
                for c in &self.commands {
                    writeln!(f, "#   {}", c.argv.join(" "))?;
                }
            }
            Action::Install | Action::Uninstall => {
                let verb = if self.action == Action::Install {
                    "wrote"
                } else {
                    "removed"
                };
                for file in &self.files {
                    writeln!(f, "{verb} {}", file.path.display())?;
                }
                if self.files.is_empty() {
                    writeln!(f, "nothing to remove: the service is not installed")?;
                }
                self.fmt_commands(f)?;
            }
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}

/// The systemd user service and timer: `(exist-agent.service, exist-agent.timer)`.
///
/// The service is `Type=oneshot` running `BINARY --config CONFIG run --once`, with paths quoted
/// and escaped per systemd.syntax(7). Exit status 75 (temporary failure) is deliberately not a
/// success: it shows as failed in `systemctl --user status` and the journal, where a person looks.
/// That does not make systemd give up: there is no `Restart=`, so no start limit can be reached,
/// and a timer keeps starting its service after failures; the next hour is the retry. The timer
/// fires at `*:minute:00` with `Persistent=true` (a time missed while off or asleep runs once
/// at wake) and a random delay of up to 3 minutes. `binary` and `config` should be absolute.
pub fn systemd_units(binary: &Path, config: &Path, minute: u32) -> (String, String) {
    let environment = config
        .parent()
        .unwrap_or(Path::new("/"))
        .join(ENVIRONMENT_FILE);
    let service = format!(
        "\
# Written by `exist-agent service install`; `exist-agent service uninstall` removes it.
[Unit]
Description=exist-agent: push daily values to Exist

[Service]
Type=oneshot
ExecStart={binary} --config {config} run --once
# The user manager does not see your shell's variables: put the ones the configuration names
# (client_secret_env, token_env, ...) here as NAME=value lines. The file is optional.
EnvironmentFile=-{environment}
# A run stuck on the network must not block the next hour's run: a timer does not start a
# service that is still running, and a oneshot has no start timeout by default.
TimeoutStartSec=50min
Nice=10
",
        binary = systemd_quote(&binary.to_string_lossy()),
        config = systemd_quote(&config.to_string_lossy()),
        environment = systemd_specifiers(&environment.to_string_lossy()),
    );
    let timer = format!(
        "\
# Written by `exist-agent service install`; `exist-agent service uninstall` removes it.
[Unit]
Description=Run exist-agent hourly at minute {minute}

[Timer]
OnCalendar=*-*-* *:{minute:02}:00
# Run once at boot or wake when a time passed while the machine was off or asleep.
Persistent=true
# Spread installs that share a minute over a few more.
RandomizedDelaySec=3min

[Install]
WantedBy=timers.target
"
    );
    (service, timer)
}

/// Doubles `%` so systemd does not expand it as a specifier.
fn systemd_specifiers(text: &str) -> String {
    text.replace('%', "%%")
}

/// One `ExecStart=` word: specifiers (`%`) and variables (`$`) doubled, and double-quoted with
/// C escapes when it holds whitespace, quotes, backslashes or control characters.
fn systemd_quote(word: &str) -> String {
    let word = systemd_specifiers(word).replace('$', "$$");
    let plain = !word.is_empty()
        && !word
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\' | ';'));
    if plain {
        return word;
    }
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('"');
    for c in word.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// The LaunchAgent: runs `BINARY --config CONFIG run --once` at load and every 3600 seconds
/// (launchd runs an interval missed during sleep once at wake), logging to
/// `LOG_DIR/exist-agent.log`. Every string is XML-escaped.
pub fn launchd_plist(binary: &Path, config: &Path, log_dir: &Path) -> String {
    let log = log_dir.join("exist-agent.log");
    let args: String = [
        binary.to_string_lossy().as_ref(),
        "--config",
        config.to_string_lossy().as_ref(),
        "run",
        "--once",
    ]
    .iter()
    .map(|a| format!("\t\t<string>{}</string>\n", xml_escape(a)))
    .collect();
    let log = xml_escape(&log.to_string_lossy());
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Written by `exist-agent service install`; `exist-agent service uninstall` removes it. -->
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{LAUNCHD_LABEL}</string>
	<key>ProgramArguments</key>
	<array>
{args}	</array>
	<key>StartInterval</key>
	<integer>3600</integer>
	<key>RunAtLoad</key>
	<true/>
	<key>ProcessType</key>
	<string>Background</string>
	<key>StandardOutPath</key>
	<string>{log}</string>
	<key>StandardErrorPath</key>
	<string>{log}</string>
</dict>
</plist>
"#
    )
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Writes the service files for `binary` and `config` (made absolute) into `target` and enables
/// them; with `print`, only reports what it would write and run, touching nothing.
///
/// `minute` is the install's minute ([`crate::schedule::install_minute`], with the same seed the
/// daemon uses). A failing or missing service manager is reported, not an error: the files stay.
pub fn install(
    print: bool,
    binary: &Path,
    config: &Path,
    minute: u32,
    target: &ServiceTarget,
) -> Result<ServiceReport, ServiceError> {
    let binary = usable_path(binary)?;
    let config = usable_path(config)?;
    let mut report = ServiceReport {
        action: if print {
            Action::Print
        } else {
            Action::Install
        },
        files: target.files(&binary, &config, minute),
        commands: target.enable_commands(),
        notes: notes(target, &config),
    };
    if print {
        return Ok(report);
    }
    must_be_file(&binary, "build or install exist-agent first")?;
    must_be_file(
        &config,
        "create the configuration first, or pass --config with its path",
    )?;
    for dir in std::iter::once(&target.dir).chain(&target.log_dir) {
        std::fs::create_dir_all(dir).map_err(|source| ServiceError::Io {
            action: "create the directory",
            path: dir.clone(),
            source,
            fix: "check that you own its parent directory",
        })?;
    }
    for file in &report.files {
        write_file(&file.path, &file.contents)?;
    }
    run_all(&mut report.commands);
    Ok(report)
}

/// Stops and removes the service files from `target`. Nothing installed is not an error.
pub fn uninstall(target: &ServiceTarget) -> Result<ServiceReport, ServiceError> {
    let present: Vec<PathBuf> = target.paths().into_iter().filter(|p| p.exists()).collect();
    let mut report = ServiceReport {
        action: Action::Uninstall,
        files: Vec::new(),
        commands: Vec::new(),
        notes: Vec::new(),
    };
    if present.is_empty() {
        return Ok(report);
    }
    report.commands = target.disable_commands();
    run_all(&mut report.commands);
    for path in present {
        std::fs::remove_file(&path).map_err(|source| ServiceError::Io {
            action: "remove",
            path: path.clone(),
            source,
            fix: "remove it yourself, then run `exist-agent service uninstall` again",
        })?;
        report.files.push(ServiceFile::new(path, String::new()));
    }
    let mut after = target.after_removal_commands();
    run_all(&mut after);
    report.commands.extend(after);
    Ok(report)
}

/// Advice that goes with the installed files.
fn notes(target: &ServiceTarget, config: &Path) -> Vec<String> {
    match target.kind {
        ServiceKind::Systemd => vec![
            format!(
                "the service does not see your shell's environment; put the variables your configuration names (client_secret_env, token_env, ...) in {} as NAME=value lines",
                config.parent().unwrap_or(Path::new("/")).join(ENVIRONMENT_FILE).display()
            ),
            "user timers run only while you are logged in; to sync when you are not, run `loginctl enable-linger $USER`".to_owned(),
        ],
        ServiceKind::Launchd => vec!["the agent does not see your shell's environment; variables your configuration names (client_secret_env, token_env, ...) must be set with `launchctl setenv NAME value` or written in the configuration (client_secret)".to_owned()],
    }
}

/// `path` made absolute, if it can be written into a service file.
fn usable_path(path: &Path) -> Result<PathBuf, ServiceError> {
    let bad = |why, fix| ServiceError::BadPath {
        path: path.to_owned(),
        why,
        fix,
    };
    let absolute = std::path::absolute(path)
        .map_err(|_| bad("it cannot be made absolute", "pass an absolute path"))?;
    let Some(text) = absolute.to_str() else {
        return Err(bad(
            "it is not valid UTF-8",
            "move the file to a path with a UTF-8 name",
        ));
    };
    if text.chars().any(char::is_control) {
        return Err(bad(
            "it contains a control character (such as a newline)",
            "move the file to a path without one",
        ));
    }
    Ok(absolute)
}

fn must_be_file(path: &Path, fix: &'static str) -> Result<(), ServiceError> {
    if path.is_file() {
        return Ok(());
    }
    Err(ServiceError::BadPath {
        path: path.to_owned(),
        why: "no such file",
        fix,
    })
}

/// Writes `contents` to `path` through a temporary file and a rename, so a crash never leaves a
/// half-written unit behind.
fn write_file(path: &Path, contents: &str) -> Result<(), ServiceError> {
    let tmp = path.with_extension("tmp-exist-agent");
    let failed = |source| ServiceError::Io {
        action: "write",
        path: path.to_owned(),
        source,
        fix: "check the directory's permissions, or use --print and write the file yourself",
    };
    std::fs::write(&tmp, contents).map_err(failed)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        failed(e)
    })
}

/// Runs the commands in order; after a required one fails, the rest are not run, since they
/// depend on it (enable after daemon-reload).
fn run_all(commands: &mut [ManagerCommand]) {
    let mut blocked: Option<String> = None;
    for command in commands {
        if let Some(why) = &blocked {
            command.outcome = CommandOutcome::NotRun(why.clone());
            continue;
        }
        command.outcome = run_one(&command.argv);
        match &command.outcome {
            CommandOutcome::Succeeded => {}
            CommandOutcome::Failed(_) if command.may_fail => {}
            CommandOutcome::Failed(_) => blocked = Some("an earlier command failed".into()),
            CommandOutcome::NotRun(why) => blocked = Some(why.clone()),
        }
    }
}

fn run_one(argv: &[String]) -> CommandOutcome {
    let output = match Command::new(&argv[0]).args(&argv[1..]).output() {
        Ok(output) => output,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return CommandOutcome::NotRun(format!("`{}` is not installed", argv[0]))
        }
        Err(e) => return CommandOutcome::Failed(format!("could not start it: {e}")),
    };
    if output.status.success() {
        tracing::debug!(command = %argv.join(" "), "service manager command succeeded");
        return CommandOutcome::Succeeded;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let message = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    CommandOutcome::Failed(format!("{} {}", output.status, message.trim()))
}

#[cfg(test)]
mod tests;

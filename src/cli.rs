//! The command line, as SPEC.md fixes it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::CONFIG_ENV;
use crate::exist::types::Day;
use crate::logging::LogFormat;

/// Pushes your data to Exist (exist.io): reads sources, turns them into daily values in your
/// timezone, and writes them the way Exist asks writers to behave.
#[derive(Debug, Parser)]
#[command(
    name = "exist-agent",
    version,
    propagate_version = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// The configuration file [default: the platform config dir, e.g. ~/.config/exist-agent/config.toml]
    #[arg(long, global = true, env = CONFIG_ENV, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// More output (-v debug, -vv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Less output (-q warnings only, -qq errors only)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,

    /// How log lines are written
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Run one sync and exit (same as `run --once`)
    #[arg(long)]
    pub once: bool,

    /// What to do
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The number of `-v` minus the number of `-q`.
    pub fn verbosity(&self) -> i8 {
        self.verbose.min(3) as i8 - self.quiet.min(3) as i8
    }

    /// The command to run, with `--once` alone meaning `run --once`.
    pub fn effective_command(&self) -> Option<Command> {
        match (&self.command, self.once) {
            (Some(c), _) => Some(c.clone()),
            (None, true) => Some(Command::Run(RunArgs {
                once: true,
                ..RunArgs::default()
            })),
            (None, false) => None,
        }
    }
}

/// The commands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Sync on the schedule until SIGINT/SIGTERM (or once, with --once)
    Run(RunArgs),
    /// Sync history from a date, paced under Exist's rate limit; resumable
    Backfill(BackfillArgs),
    /// Authorize this agent with Exist (OAuth2 in the browser), or store a token
    Login(LoginArgs),
    /// Forget the stored tokens
    Logout(LogoutArgs),
    /// Show tokens, owned attributes, sources, pending and rejected values, the hour's requests
    Status(StatusArgs),
    /// Send one value by hand, through the same outbox as a sync
    Push(PushArgs),
    /// Install or remove the systemd user timer (Linux) or LaunchAgent (macOS)
    Service(ServiceArgs),
    /// Check the configuration, token, scopes, keyring, connectivity and permissions
    Doctor,
    /// Run a local Exist-compatible server (OAuth included, auto-approving) to try a setup
    Sandbox(SandboxArgs),
    /// Show the whole loop on built-in sample data: sandbox, login, two syncs, a table
    Demo,
}

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

/// Options of `backfill`.
#[derive(Debug, Clone, Args)]
pub struct BackfillArgs {
    /// First day to sync (YYYY-MM-DD)
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: Day,
    /// Last day to sync [default: today]
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: Option<Day>,
    /// Only these attributes (repeatable) [default: all]
    #[arg(long = "attribute", value_name = "NAME")]
    pub attributes: Vec<String>,
}

/// Options of `login`.
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// Print the authorization URL instead of opening a browser
    #[arg(long)]
    pub no_browser: bool,
    /// Store this access token (e.g. your Exist app's personal token) instead of the browser flow
    #[arg(long, value_name = "TOKEN", conflicts_with = "no_browser")]
    pub token: Option<String>,
}

/// Options of `logout`.
#[derive(Debug, Clone, Args)]
pub struct LogoutArgs {
    /// First release the attributes this agent owns, so another service can take them
    #[arg(long)]
    pub release: bool,
}

/// Options of `status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// Options of `push`.
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// The attribute (its Exist name, or a configured template or label)
    pub name: String,
    /// The value
    pub value: String,
    /// The day [default: today in your timezone]
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<Day>,
    /// Add VALUE to the day's total instead of setting it; sent at once and never retried,
    /// since a retry could count twice
    #[arg(long)]
    pub increment: bool,
}

/// Options of `service`.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// What to do with the service
    #[command(subcommand)]
    pub action: ServiceAction,
}

/// `service install` or `service uninstall`.
#[derive(Debug, Clone, Subcommand)]
pub enum ServiceAction {
    /// Write and enable the systemd user service and timer, or the LaunchAgent
    Install {
        /// Print the files instead of writing them
        #[arg(long)]
        print: bool,
    },
    /// Disable and remove them
    Uninstall,
}

/// Options of `sandbox`.
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// Address to listen on (loopback; port 0 picks a free port, printed at start)
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bare_once_means_run_once() {
        let cli = Cli::try_parse_from(["exist-agent", "--once"]).unwrap();
        assert!(matches!(
            cli.effective_command(),
            Some(Command::Run(RunArgs { once: true, .. }))
        ));
    }

    #[test]
    fn dry_run_needs_once() {
        assert!(Cli::try_parse_from(["exist-agent", "run", "--dry-run"]).is_err());
        assert!(Cli::try_parse_from(["exist-agent", "run", "--once", "--dry-run"]).is_ok());
    }

    #[test]
    fn backfill_dates_are_parsed() {
        assert!(Cli::try_parse_from(["exist-agent", "backfill", "--from", "2026-13-01"]).is_err());
        let cli = Cli::try_parse_from([
            "exist-agent",
            "backfill",
            "--from",
            "2026-01-01",
            "--attribute",
            "steps",
        ])
        .unwrap();
        let Some(Command::Backfill(b)) = cli.command else {
            panic!()
        };
        assert_eq!(b.from.to_string(), "2026-01-01");
        assert_eq!(b.attributes, ["steps"]);
    }
}

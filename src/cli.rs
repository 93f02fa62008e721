//! The command line: global options and the list of commands (SPEC's "Commands").

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands;
use crate::config::CONFIG_ENV;
use crate::context::Context;
use crate::logging::LogFormat;

/// Pushes your data to Exist (exist.io): reads sources, turns them into daily values in your
/// timezone, and writes them the way Exist asks writers to behave.
#[derive(Debug, Parser)]
#[command(
    name = "exist-agent",
    version,
    propagate_version = true,
    arg_required_else_help = true,
    after_long_help = EXIT_STATUS
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

    /// The global settings every command runs with.
    pub fn context(&self) -> Context {
        Context {
            config_path: self
                .config
                .clone()
                .unwrap_or_else(crate::config::default_config_path),
            config_given: self.config.is_some(),
            verbosity: self.verbosity(),
        }
    }

    /// The command to run, with `--once` alone meaning `run --once`.
    pub fn effective_command(&self) -> Option<Command> {
        match (&self.command, self.once) {
            (Some(c), _) => Some(c.clone()),
            (None, true) => Some(Command::Run(commands::run::RunArgs {
                once: true,
                ..commands::run::RunArgs::default()
            })),
            (None, false) => None,
        }
    }
}

/// The exit codes, for `--help` and the man page (decided in `crate::error`).
const EXIT_STATUS: &str = "Exit status:
  0   everything done
  1   an error; read the message, or run `exist-agent doctor`
  2   a usage or configuration error (the message names the file, line and key)
  3   authorization needed: run `exist-agent login`
  75  a temporary failure (network, 5xx, 429, a busy state): the data is kept and the next run sends it";

/// The commands; each is a file in `crate::commands` with its arguments and its `run`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Sync on the schedule until SIGINT/SIGTERM (or once, with --once)
    Run(commands::run::RunArgs),
    /// Sync history from a date, paced under Exist's rate limit; resumable
    Backfill(commands::backfill::BackfillArgs),
    /// Authorize this agent with Exist (OAuth2 in the browser), or store a token
    Login(commands::login::LoginArgs),
    /// Forget the stored tokens
    Logout(commands::logout::LogoutArgs),
    /// Show tokens, owned attributes, sources, pending and rejected values, the hour's requests
    Status(commands::status::StatusArgs),
    /// Send one value by hand, through the same outbox as a sync
    Push(commands::push::PushArgs),
    /// Install or remove the systemd user timer (Linux) or LaunchAgent (macOS)
    Service(commands::service::ServiceArgs),
    /// Check the configuration, token, scopes, keyring, connectivity, permissions and staleness
    Doctor(commands::doctor::DoctorArgs),
    /// Read back what Exist holds and list the days where it differs from what was sent
    Verify(commands::verify::VerifyArgs),
    /// Run a local Exist-compatible server (OAuth included, auto-approving) to try a setup
    Sandbox(commands::sandbox::SandboxArgs),
    /// Show the whole loop on built-in sample data: sandbox, login, two syncs, a table
    Demo,
    /// Write a configuration step by step on a terminal, then offer login and a dry run
    Init(commands::init::InitArgs),
    /// Print a completion script for bash, zsh, fish, elvish or powershell
    Completions(commands::completions::CompletionsArgs),
    /// Print the man page, or write every page (one per command) into a directory
    Man(commands::man::ManArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::run::RunArgs;
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

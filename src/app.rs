//! Runs the command the user asked for: loads the configuration, opens the state, and calls the
//! module that does the work.

use std::path::Path;

use crate::cli::{Cli, Command};
use crate::config::{self, Config};
use crate::error::{Error, Result};

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
        Command::Run(_) => not_yet("run", &config_path),
        Command::Backfill(_) => not_yet("backfill", &config_path),
        Command::Login(_) => not_yet("login", &config_path),
        Command::Logout(_) => not_yet("logout", &config_path),
        Command::Status(_) => not_yet("status", &config_path),
        Command::Push(_) => not_yet("push", &config_path),
        Command::Service(_) => Err(Error::NotImplemented("service")),
        Command::Doctor => not_yet("doctor", &config_path),
        Command::Sandbox(_) => Err(Error::NotImplemented("sandbox")),
        Command::Demo => Err(Error::NotImplemented("demo")),
    }
}

/// Checks the configuration (so its errors show now), then reports the command as not yet built.
fn not_yet(name: &'static str, config_path: &Path) -> Result<()> {
    Config::load(config_path)?;
    Err(Error::NotImplemented(name))
}

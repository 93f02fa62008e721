//! One file per command: its clap arguments and its `run`. [`run`] dispatches the command line.

pub mod backfill;
pub mod completions;
pub mod demo;
pub mod doctor;
pub mod init;
pub mod login;
pub mod logout;
pub mod man;
pub mod outcome;
pub mod push;
pub mod run;
pub mod sandbox;
pub mod service;
pub mod status;
pub mod verify;

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};

/// Runs one command line to completion.
pub fn run(cli: Cli) -> Result<()> {
    let Some(command) = cli.effective_command() else {
        return Err(Error::usage("no command given").with_fix("see `exist-agent --help`"));
    };
    let ctx = cli.context();
    match command {
        Command::Run(args) => run::run(&ctx, &args),
        Command::Backfill(args) => backfill::run(&ctx, &args),
        Command::Login(args) => login::run(&ctx, &args),
        Command::Logout(args) => logout::run(&ctx, &args),
        Command::Status(args) => status::run(&ctx, &args),
        Command::Push(args) => push::run(&ctx, &args),
        Command::Service(args) => service::run(&ctx, &args),
        Command::Doctor(args) => doctor::run(&ctx, &args),
        Command::Verify(args) => verify::run(&ctx, &args),
        Command::Sandbox(args) => sandbox::run(&args),
        Command::Demo => demo::run(&ctx),
        Command::Init(args) => init::run(&ctx, &args),
        Command::Completions(args) => completions::run(&args),
        Command::Man(args) => man::run(&args),
    }
}

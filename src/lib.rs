//! `exist-agent`: reads a person's data from sources, turns it into daily values in the person's
//! own timezone, and pushes them to [Exist](https://exist.io) the way Exist asks writers to behave.
//!
//! The crate is a library with a thin binary. Data flows one way: a source's records become day
//! values, which are reconciled with the ledger of what Exist acknowledged into the outbox, which
//! is sent to Exist in batches of at most 35. One module per concept:
//! - [`config`]: the TOML configuration, read once and checked whole into types;
//! - [`sources`]: HTTP, file and command sources;
//! - [`sync`]: the engine from records to daily values, the ledger and the outbox;
//! - [`store`]: the SQLite state database;
//! - [`schedule`]: when syncs happen (pure), and [`daemon`], the long-running agent;
//! - [`service`]: systemd user units and the launchd agent;
//! - [`notify`]: signed notifications that trigger a sync;
//! - [`alerts`]: telling someone when runs fail or a source goes stale.
//!
//! Exist's API itself is the `exist-api` crate; the fakes of Exist and of the services the
//! sources talk to are the `exist-fakes` crate (the `sandbox` and `demo` commands serve them).
//!
//! [`commands`] holds one file per command, dispatched from the command line ([`cli`]) with a
//! [`context::Context`]; [`error`] is the one error model, and decides exit codes.
#![warn(missing_docs)]

// The library the binary, the tests and the benchmarks use.
pub mod cli;
pub mod config;
pub mod error;
pub mod exist;
pub mod sources;
pub mod store;
pub mod sync;

// The commands and what only they use.
mod alerts;
mod commands;
mod context;
mod daemon;
mod inbox;
mod logging;
mod notify;
mod schedule;
mod service;

pub use notify::{sign as sign_notification, SIGNATURE_HEADER};

/// Runs the command line of this process: parses it, sets up logging, runs the command, and
/// says how it went (the message on standard error, the exit code decided by the error's kind).
pub fn main() -> std::process::ExitCode {
    use clap::Parser;
    let cli = cli::Cli::parse();
    logging::init(cli.verbosity(), cli.log_format);
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::from(err.exit_code())
        }
    }
}

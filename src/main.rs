//! The `exist-agent` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = exist_agent::cli::Cli::parse();
    exist_agent::logging::init(cli.verbosity(), cli.log_format);
    match exist_agent::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

//! `exist-agent completions SHELL`: a completion script for the shell, generated from the same
//! clap definitions that parse the command line, so it cannot drift from them.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::{Error, ErrorKind, Result};

/// Options of `completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the completion script on standard output.
pub fn run(args: &CompletionsArgs) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), BIN, &mut script);
    use std::io::Write;
    std::io::stdout()
        .write_all(&script)
        .map_err(|e| Error::caused(ErrorKind::Failed, "cannot write the completion script", e))
}

/// The program's name, as the shells will see it on the command line.
const BIN: &str = "exist-agent";

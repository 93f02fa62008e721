//! `exist-agent man [DIR]`: man pages generated from the clap definitions (exist-agent(1) and
//! one page per subcommand, such as exist-agent-run(1)), so they cannot drift from `--help`.

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};

use crate::cli::Cli;
use crate::error::{Error, ErrorKind, Result};

/// Options of `man`.
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// Write every page into this directory (created if needed) [default: print exist-agent(1)
    /// on standard output]
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the main page, or writes every page into the directory.
pub fn run(args: &ManArgs) -> Result<()> {
    match &args.dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(|e| write_error(Path::new("standard output"), e))?;
            use std::io::Write;
            std::io::stdout()
                .write_all(&page)
                .map_err(|e| write_error(Path::new("standard output"), e))
        }
        Some(dir) => {
            let pages = write_pages(dir)?;
            println!("wrote {} man page(s) to {}", pages.len(), dir.display());
            Ok(())
        }
    }
}

/// Writes exist-agent.1 and one page per subcommand into `dir`; returns their paths, sorted.
pub fn write_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
    clap_mangen::generate_to(Cli::command(), dir).map_err(|e| write_error(dir, e))?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| write_error(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("exist-agent") && n.ends_with(".1"))
        })
        .collect();
    pages.sort();
    Ok(pages)
}

fn write_error(at: &Path, e: std::io::Error) -> Error {
    Error::caused(
        ErrorKind::Failed,
        format!("cannot write the man pages to {}", at.display()),
        e,
    )
    .with_fix("give a directory you can write to, e.g. ~/.local/share/man/man1")
}

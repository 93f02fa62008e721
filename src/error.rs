//! The agent's top-level error and the exit codes it maps to (see SPEC.md, "Exit codes").

use crate::config::ConfigError;

/// Exit code: everything done.
pub const EXIT_OK: u8 = 0;
/// Exit code: an error.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: a usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: authorization needed (no token, or token revoked): run `exist-agent login`.
pub const EXIT_AUTH: u8 = 3;
/// Exit code: a temporary failure (network, 5xx, 429, another run holds the state): data kept,
/// try later. The value is `EX_TEMPFAIL` from sysexits.h, which systemd and cron users know.
pub const EXIT_TEMPFAIL: u8 = 75;

/// Why a command failed, classified by what the user should do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// Exist needs a (new) authorization.
    #[error("{0}")]
    AuthNeeded(String),
    /// Something outside failed for now; everything is kept for the next run.
    #[error("{0}")]
    Temporary(String),
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::Usage(_) => EXIT_USAGE,
            Self::AuthNeeded(_) => EXIT_AUTH,
            Self::Temporary(_) => EXIT_TEMPFAIL,
            Self::Failed(_) => EXIT_ERROR,
        }
    }
}

/// The result of a command.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error with its causes, for messages: reqwest keeps the useful part (refused connection,
/// DNS failure) out of its own message, in `source()`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

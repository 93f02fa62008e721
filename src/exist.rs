//! The Exist API client (the `exist-api` crate) as the agent uses it: what its errors mean for
//! the exit code and what to do about them, and the lock file that keeps two processes from
//! refreshing the tokens at once.

use std::path::PathBuf;
use std::time::Duration;

use exist_api::auth::{AuthError, LockFailure, RefreshLock};
use exist_api::client::ExistError;
use exist_api::tokens::TokenStoreError;

use crate::error::{Classify, ErrorKind};
use crate::store::lock::{FileLock, TOKEN_LOCK};
use crate::store::StoreError;

/// How long a refresh waits for another process that is refreshing.
const REFRESH_WAIT: Duration = Duration::from_secs(120);

/// The token refresh lock: a file lock in the state directory.
#[derive(Debug, Clone)]
pub struct TokenLock {
    path: PathBuf,
}

impl TokenLock {
    /// The lock of the state directory `state_dir`.
    pub fn in_dir(state_dir: &std::path::Path) -> Self {
        Self::at(state_dir.join(TOKEN_LOCK))
    }

    /// A refresh lock at `path` (a data source's tokens have their own).
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }
}

impl RefreshLock for TokenLock {
    fn acquire(&self) -> Result<Box<dyn Send>, LockFailure> {
        FileLock::acquire(&self.path, REFRESH_WAIT, |pid| {
            tracing::info!(
                "waiting for another exist-agent process (pid {pid}) that is refreshing the token"
            )
        })
        .map(|lock| Box::new(lock) as Box<dyn Send>)
        .map_err(|e| LockFailure {
            busy: matches!(e, StoreError::Busy { .. }),
            message: e.to_string(),
        })
    }
}

impl Classify for AuthError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoToken | Self::Refused(_) => ErrorKind::Auth,
            Self::Network(_) => ErrorKind::Temporary,
            Self::Config(_) => ErrorKind::Config,
            Self::Lock(l) if l.busy => ErrorKind::Temporary,
            Self::Lock(_) | Self::Store(_) | Self::Login(_) => ErrorKind::Failed,
        }
    }

    fn fix(&self) -> Option<String> {
        match self {
            Self::NoToken | Self::Refused(_) => {
                Some("run `exist-agent login` to authorize again".into())
            }
            Self::Network(_) => Some("try again later".into()),
            Self::Store(s) => s.fix(),
            Self::Lock(_) | Self::Config(_) | Self::Login(_) => None,
        }
    }
}

impl Classify for ExistError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Auth(a) => a.kind(),
            Self::RateLimited | Self::Unavailable { .. } => ErrorKind::Temporary,
            Self::Ambiguous { .. } | Self::Refused { .. } => ErrorKind::Failed,
        }
    }

    fn fix(&self) -> Option<String> {
        match self {
            Self::Auth(a) => a.fix(),
            _ => None,
        }
    }
}

impl Classify for TokenStoreError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Failed
    }

    fn fix(&self) -> Option<String> {
        Some(match self {
            Self::Keyring(_) => "unlock your keyring, or set [agent] token_store = \"file\"".into(),
            Self::File { .. } => {
                "check the state directory's permissions, or run `exist-agent login` again".into()
            }
        })
    }
}

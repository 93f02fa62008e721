//! One error model for the whole agent: every failure has a kind (which decides the exit code,
//! here and nowhere else), a message that says what happened and where, an optional fix that says
//! what to do next, and the chain of causes it came from.
//!
//! Module errors (`StoreError`, `SourceError`, the Exist client's errors, ...) stay precise enums
//! close to where they happen; each says its own kind and fix through [`Classify`], and turns into
//! an [`Error`] with `?` without losing either, or its causes. Nothing downgrades a kind on the
//! way up: a full disk during a pull is as temporary as a full disk anywhere else.

use std::error::Error as StdError;
use std::fmt;

/// What the user (or the service manager) should do about a failure, and so the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The command line asks for something impossible: exit 2.
    Usage,
    /// The configuration cannot be used: exit 2.
    Config,
    /// An authorization is needed (no token, or a revoked one): exit 3.
    Auth,
    /// Something outside failed for now (network, 5xx, 429, a full disk, a busy state); the data
    /// is kept and a later run catches up: exit 75 (`EX_TEMPFAIL`, which systemd and cron know).
    Temporary,
    /// Anything else that needs the user: exit 1.
    Failed,
}

impl ErrorKind {
    /// The process exit code: the only place exit codes are decided.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Usage | Self::Config => 2,
            Self::Auth => 3,
            Self::Temporary => 75,
            Self::Failed => 1,
        }
    }

    /// How much a failure of this kind needs the user; when a run fails in several ways, the one
    /// that needs the user most sets the exit code (a temporary failure goes away on its own).
    fn urgency(self) -> u8 {
        match self {
            Self::Usage | Self::Config => 4,
            Self::Auth => 3,
            Self::Failed => 2,
            Self::Temporary => 1,
        }
    }
}

/// A module error that knows what kind of failure it is and how to fix it.
pub trait Classify: StdError + Send + Sync + 'static {
    /// Its kind.
    fn kind(&self) -> ErrorKind;
    /// What to do about it, when there is something to say beyond the message.
    fn fix(&self) -> Option<String> {
        None
    }
}

/// A failure, ready for the user: kind, message, fix, causes.
pub struct Error {
    kind: ErrorKind,
    message: String,
    fix: Option<String>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl Error {
    /// A failure of `kind` described by `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            fix: None,
            source: None,
        }
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    /// A failure that needs the user (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failed, message)
    }

    /// A temporary failure (exit 75).
    pub fn temporary(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Temporary, message)
    }

    /// The same failure with what to do about it.
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// `message` caused by `cause` (shown after it, with the cause's own causes).
    pub fn caused(
        kind: ErrorKind,
        message: impl fmt::Display,
        cause: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            message: format!("{message}: {cause}"),
            fix: None,
            source: Some(Box::new(cause)),
        }
    }

    /// The same failure, said to happen while doing `what` (e.g. `source "health"`).
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What to do about it.
    pub fn fix(&self) -> Option<&str> {
        self.fix.as_deref()
    }

    /// The message without the fix, causes included.
    pub fn message(&self) -> String {
        let mut text = self.message.clone();
        let mut cause = self.source.as_deref().and_then(StdError::source);
        while let Some(e) = cause {
            let more = e.to_string();
            // Some errors repeat their cause in their own message; say it once.
            if !text.contains(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            cause = e.source();
        }
        text
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        self.kind.exit_code()
    }

    /// The failure among `errors` that needs the user most (the first of those), with the others
    /// listed in its message; `None` when there are none.
    pub fn most_urgent(errors: Vec<Error>) -> Option<Error> {
        let count = errors.len();
        let pick = errors
            .iter()
            .enumerate()
            .max_by_key(|(i, e)| (e.kind.urgency(), std::cmp::Reverse(*i)))?
            .0;
        if count == 1 {
            return errors.into_iter().next();
        }
        let mut lines = Vec::with_capacity(count);
        let mut fixes = Vec::new();
        for e in &errors {
            lines.push(format!("\n  - {}", e.message()));
            if let Some(fix) = &e.fix {
                if !fixes.contains(fix) {
                    fixes.push(fix.clone());
                }
            }
        }
        let kind = errors[pick].kind;
        let mut error = Error::new(
            kind,
            format!("{count} problems in this run:{}", lines.concat()),
        );
        if !fixes.is_empty() {
            error.fix = Some(fixes.join("; "));
        }
        Some(error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())?;
        if let Some(fix) = &self.fix {
            write_fix(f, fix)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message())
            .field("fix", &self.fix)
            .finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl<E: Classify> From<E> for Error {
    fn from(e: E) -> Self {
        Self {
            kind: e.kind(),
            message: e.to_string(),
            fix: e.fix(),
            source: Some(Box::new(e)),
        }
    }
}

/// Writes a fix the one way every message shows it (errors, `doctor`, configuration errors).
pub fn write_fix(f: &mut impl fmt::Write, fix: &str) -> fmt::Result {
    write!(f, "\n  fix: {fix}")
}

/// The result of a command.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error with its causes, for messages: reqwest keeps the useful part (refused connection,
/// DNS failure) out of its own message, in `source()`.
pub fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the disk is full")]
    struct Full(#[source] std::io::Error);

    impl Classify for Full {
        fn kind(&self) -> ErrorKind {
            ErrorKind::Temporary
        }
        fn fix(&self) -> Option<String> {
            Some("free disk space".into())
        }
    }

    #[test]
    fn a_module_error_keeps_its_kind_fix_and_causes() {
        let e: Error = Full(std::io::Error::other("ENOSPC")).into();
        assert_eq!(e.exit_code(), 75);
        assert_eq!(
            e.to_string(),
            "the disk is full: ENOSPC\n  fix: free disk space"
        );
        let context = e.context("source \"health\"");
        assert!(context
            .to_string()
            .starts_with("source \"health\": the disk is full"));
        assert!(context.source().unwrap().downcast_ref::<Full>().is_some());
    }

    #[test]
    fn the_failure_that_needs_the_user_most_sets_the_exit_code() {
        let errors = vec![
            Error::temporary("Exist is down"),
            Error::failed("source \"coffee\": no such file").with_fix("fix the path"),
            Error::temporary("source \"health\": 503"),
        ];
        let e = Error::most_urgent(errors).unwrap();
        assert_eq!(e.exit_code(), 1);
        let text = e.to_string();
        assert!(text.starts_with("3 problems in this run:"), "{text}");
        assert!(text.contains("\n  - source \"coffee\": no such file"));
        assert!(text.ends_with("\n  fix: fix the path"));
        assert!(Error::most_urgent(Vec::new()).is_none());
        let one = Error::most_urgent(vec![Error::usage("no")]).unwrap();
        assert_eq!((one.exit_code(), one.to_string()), (2, "no".to_owned()));
    }
}

//! Where the OAuth tokens live: the OS keyring, or a `0600` file in the state directory.
//!
//! Exist rotates both tokens on every refresh, so losing a freshly refreshed pair locks the user
//! out. The file is therefore replaced atomically (temporary file, fsync, rename, fsync of the
//! directory), and the keyring entry is written before the new pair is used.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The keyring service name entries are filed under.
pub const KEYRING_SERVICE: &str = "exist-agent";
/// The token file's name in the state directory.
pub const TOKEN_FILE: &str = "tokens.json";

/// An access token with what is known about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenPair {
    /// The bearer token.
    pub access_token: Secret,
    /// The token that buys a new pair (absent for a pasted personal token).
    pub refresh_token: Option<Secret>,
    /// When the access token expires (unknown for a pasted token).
    pub expires_at: Option<DateTime<Utc>>,
    /// The scopes granted.
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl TokenPair {
    /// Whether the access token expires before `now + margin`.
    pub fn expires_within(&self, now: DateTime<Utc>, margin: chrono::Duration) -> bool {
        self.expires_at.is_some_and(|t| t <= now + margin)
    }
}

/// Why tokens cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TokenStoreError {
    /// The keyring refused.
    #[error("the OS keyring failed: {0}")]
    Keyring(String),
    /// The token file cannot be used.
    #[error("token file {path}: {detail}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// Where tokens are stored, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStoreKind {
    /// The OS keyring, or the file when no keyring service exists.
    Auto,
    /// The OS keyring only.
    Keyring,
    /// A 0600 file in the state directory.
    File,
}

/// The configured token store, after `auto` was resolved.
#[derive(Debug, Clone)]
pub enum TokenStore {
    /// An OS keyring entry.
    Keyring {
        /// The entry's user/account name (Exist host and client id).
        account: String,
    },
    /// A file readable by the user only.
    File {
        /// The file.
        path: PathBuf,
    },
}

impl TokenStore {
    /// Resolves the configured kind. `auto` uses the keyring when a keyring service answers, and
    /// otherwise the file, saying so once.
    pub fn open(
        kind: TokenStoreKind,
        state_dir: &Path,
        account: &str,
    ) -> Result<Self, TokenStoreError> {
        Self::open_as(kind, state_dir, account, TOKEN_FILE)
    }

    /// Like [`TokenStore::open`], for another entry: the keyring `account`, or `file_name` in
    /// `state_dir` (e.g. the tokens of a data source that uses OAuth2 too).
    pub fn open_as(
        kind: TokenStoreKind,
        state_dir: &Path,
        account: &str,
        file_name: &str,
    ) -> Result<Self, TokenStoreError> {
        let file = Self::File {
            path: state_dir.join(file_name),
        };
        match kind {
            TokenStoreKind::File => Ok(file),
            TokenStoreKind::Keyring => {
                keyring_usable().map_err(TokenStoreError::Keyring)?;
                Ok(Self::Keyring {
                    account: account.to_owned(),
                })
            }
            TokenStoreKind::Auto => match keyring_usable() {
                Ok(()) => Ok(Self::Keyring {
                    account: account.to_owned(),
                }),
                Err(why) => {
                    tracing::info!(
                        "no OS keyring available ({why}); tokens are kept in {} (readable by you only)",
                        state_dir.join(file_name).display()
                    );
                    Ok(file)
                }
            },
        }
    }

    /// Where the tokens are, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Keyring { .. } => "the OS keyring".to_owned(),
            Self::File { path } => format!("{} (mode 0600)", path.display()),
        }
    }

    /// The stored pair, if any.
    pub fn load(&self) -> Result<Option<TokenPair>, TokenStoreError> {
        let text = match self {
            Self::Keyring { account } => match entry(account)?.get_password() {
                Ok(text) => text,
                Err(keyring_core::Error::NoEntry) => return Ok(None),
                Err(e) => return Err(TokenStoreError::Keyring(e.to_string())),
            },
            Self::File { path } => match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(self.file_error(e.to_string())),
            },
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| self.file_error(format!("unreadable token data ({e})")))
    }

    /// Stores `pair` durably, replacing the old one.
    pub fn save(&self, pair: &TokenPair) -> Result<(), TokenStoreError> {
        let text = serde_json::to_string(pair).expect("token pairs serialize");
        match self {
            Self::Keyring { account } => entry(account)?
                .set_password(&text)
                .map_err(|e| TokenStoreError::Keyring(e.to_string())),
            Self::File { path } => write_private_atomically(path, text.as_bytes())
                .map_err(|e| self.file_error(e.to_string())),
        }
    }

    /// Forgets the stored pair (nothing stored is fine).
    pub fn delete(&self) -> Result<(), TokenStoreError> {
        match self {
            Self::Keyring { account } => match entry(account)?.delete_credential() {
                Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
                Err(e) => Err(TokenStoreError::Keyring(e.to_string())),
            },
            Self::File { path } => match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(self.file_error(e.to_string())),
            },
        }
    }

    fn file_error(&self, detail: String) -> TokenStoreError {
        match self {
            Self::File { path } => TokenStoreError::File {
                path: path.clone(),
                detail,
            },
            Self::Keyring { .. } => TokenStoreError::Keyring(detail),
        }
    }
}

fn entry(account: &str) -> Result<keyring_core::Entry, TokenStoreError> {
    keyring_core::Entry::new(KEYRING_SERVICE, account)
        .map_err(|e| TokenStoreError::Keyring(e.to_string()))
}

/// Installs the platform's keyring as the default store (once) and checks that it answers;
/// the error says why it cannot be used.
pub fn keyring_usable() -> Result<(), String> {
    static INSTALLED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(install_platform_store).clone()?;
    match entry("exist-agent-probe")
        .map_err(|e| e.to_string())?
        .get_password()
    {
        Ok(_) | Err(keyring_core::Error::NoEntry) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(target_os = "linux")]
fn install_platform_store() -> Result<(), String> {
    if keyring_core::get_default_store().is_some() {
        return Ok(());
    }
    let store = zbus_secret_service_keyring_store::Store::new().map_err(|e| e.to_string())?;
    keyring_core::set_default_store(store);
    Ok(())
}

#[cfg(target_os = "macos")]
fn install_platform_store() -> Result<(), String> {
    if keyring_core::get_default_store().is_some() {
        return Ok(());
    }
    let store = apple_native_keyring_store::keychain::Store::new().map_err(|e| e.to_string())?;
    keyring_core::set_default_store(store);
    Ok(())
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn install_platform_store() -> Result<(), String> {
    match keyring_core::get_default_store() {
        Some(_) => Ok(()),
        None => Err("no keyring support on this platform".to_owned()),
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one, never a
/// mix, with the file readable by the user only from its first byte.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tokens")
        .permissions(private_permissions())
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn private_permissions() -> std::fs::Permissions {
    #[cfg(unix)]
    {
        std::os::unix::fs::PermissionsExt::from_mode(0o600)
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(".")
            .map(|m| m.permissions())
            .expect("cwd readable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(access: &str) -> TokenPair {
        TokenPair {
            access_token: Secret::new(access),
            refresh_token: Some(Secret::new(format!("{access}-refresh"))),
            expires_at: Some(Utc::now() + chrono::Duration::days(365)),
            scopes: vec!["activity_write".into()],
        }
    }

    #[test]
    fn file_store_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(TokenStoreKind::File, dir.path(), "acct").unwrap();
        assert_eq!(store.load().unwrap(), None);
        store.save(&pair("a1")).unwrap();
        let second = pair("a2");
        store.save(&second).unwrap();
        assert_eq!(store.load().unwrap(), Some(second));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Only the token file is left: no temporary files.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        store.delete().unwrap();
        store.delete().unwrap();
        assert_eq!(store.load().unwrap(), None);
    }

    #[test]
    fn pairs_never_print_their_tokens() {
        let p = pair("very-secret-access");
        let shown = format!("{p:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
    }

    #[test]
    fn expiry_margin() {
        let now = Utc::now();
        let mut p = pair("a");
        p.expires_at = Some(now + chrono::Duration::hours(2));
        assert!(p.expires_within(now, chrono::Duration::days(1)));
        assert!(!p.expires_within(now, chrono::Duration::hours(1)));
        p.expires_at = None;
        assert!(!p.expires_within(now, chrono::Duration::days(1)));
    }

    #[test]
    fn auto_falls_back_to_the_file_without_a_keyring_service() {
        // CI and this machine have no session bus; where one exists, auto picks the keyring.
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(TokenStoreKind::Auto, dir.path(), "acct").unwrap();
        match keyring_usable() {
            Ok(()) => assert!(matches!(store, TokenStore::Keyring { .. })),
            Err(_) => {
                assert!(matches!(store, TokenStore::File { .. }));
                assert!(TokenStore::open(TokenStoreKind::Keyring, dir.path(), "acct").is_err());
            }
        }
    }
}

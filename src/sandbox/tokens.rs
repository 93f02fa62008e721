//! OAuth state: authorization codes, access and refresh tokens, and the scopes they carry.
//!
//! Tokens rotate the way Exist's do: a refresh invalidates both the old access token and the
//! old refresh token, so a client that loses the new pair is locked out. That is the behaviour
//! the agent must survive, so the sandbox reproduces it exactly.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use crate::exist::types::{Group, MANUAL_WRITE_SCOPE};

use super::state::TokenGrant;

/// How long an authorization code can be exchanged (RFC 6749 recommends at most 10 minutes).
const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// Whether Exist knows `scope`: a read or write scope of a group, or of manual attributes.
pub(crate) fn is_known_scope(scope: &str) -> bool {
    let Some((subject, access)) = scope.rsplit_once('_') else {
        return false;
    };
    matches!(access, "read" | "write")
        && (subject == "manual" || Group::from_name(subject).is_some())
}

/// The scopes a token was granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scopes(BTreeSet<String>);

impl Scopes {
    /// Whether these scopes let a client own, create and write an attribute of `group`:
    /// the group's write scope, or `manual_write` for a manually tracked attribute.
    pub(crate) fn may_write(&self, group: Group, manual: bool) -> bool {
        self.0.contains(&group.write_scope()) || (manual && self.0.contains(MANUAL_WRITE_SCOPE))
    }
}

impl<S: AsRef<str>> FromIterator<S> for Scopes {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self(iter.into_iter().map(|s| s.as_ref().to_owned()).collect())
    }
}

impl fmt::Display for Scopes {
    /// Space-separated, as OAuth writes scopes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined: Vec<&str> = self.0.iter().map(String::as_str).collect();
        f.write_str(&joined.join(" "))
    }
}

/// Who is calling the API: the token's client and what it may do.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The access token presented, which is also the key of its rate-limit budget.
    pub(crate) token: String,
    pub(crate) client_id: String,
    pub(crate) scopes: Scopes,
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// Never issued, replaced by a refresh, or revoked.
    Invalid,
    /// Past its lifetime, or expired on purpose by a test.
    Expired,
}

/// OAuth's `invalid_grant`: an unknown, used, expired or revoked code or refresh token, or a
/// mismatched redirect URI. The text says which, for the `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidGrant(pub(crate) &'static str);

struct AuthCode {
    client_id: String,
    redirect_uri: String,
    scopes: Scopes,
    expires_at: Instant,
}

struct AccessToken {
    client_id: String,
    scopes: Scopes,
    /// `None` when the lifetime is too long to represent: the token never expires.
    expires_at: Option<Instant>,
}

struct RefreshToken {
    client_id: String,
    scopes: Scopes,
    /// The access token issued with it, which dies when this refresh token is used.
    access_token: String,
}

/// Every code and token issued, and which are still good.
#[derive(Default)]
pub(crate) struct Tokens {
    codes: HashMap<String, AuthCode>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
}

impl Tokens {
    /// Issues an authorization code for the browser flow's redirect.
    pub(crate) fn new_code(
        &mut self,
        client_id: &str,
        redirect_uri: &str,
        scopes: Scopes,
    ) -> String {
        let code = random_token();
        self.codes.insert(
            code.clone(),
            AuthCode {
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                scopes,
                expires_at: Instant::now() + CODE_LIFETIME,
            },
        );
        code
    }

    /// Exchanges a code for a token pair. A code works once: even a failed attempt uses it up,
    /// as RFC 6749 wants for codes that may have leaked.
    pub(crate) fn redeem_code(
        &mut self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        lifetime: Duration,
    ) -> Result<TokenGrant, InvalidGrant> {
        let Some(found) = self.codes.remove(code) else {
            return Err(InvalidGrant("unknown or already used authorization code"));
        };
        if found.expires_at <= Instant::now() {
            return Err(InvalidGrant("authorization code expired"));
        }
        if found.client_id != client_id {
            return Err(InvalidGrant(
                "authorization code was issued to another client",
            ));
        }
        if found.redirect_uri != redirect_uri {
            return Err(InvalidGrant(
                "redirect_uri does not match the one of the authorize request",
            ));
        }
        Ok(self.issue(client_id, found.scopes, lifetime))
    }

    /// Mints a fresh access and refresh token pair.
    pub(crate) fn issue(
        &mut self,
        client_id: &str,
        scopes: Scopes,
        lifetime: Duration,
    ) -> TokenGrant {
        let access_token = random_token();
        let refresh_token = random_token();
        self.access.insert(
            access_token.clone(),
            AccessToken {
                client_id: client_id.to_owned(),
                scopes: scopes.clone(),
                expires_at: Instant::now().checked_add(lifetime),
            },
        );
        self.refresh.insert(
            refresh_token.clone(),
            RefreshToken {
                client_id: client_id.to_owned(),
                scopes: scopes.clone(),
                access_token: access_token.clone(),
            },
        );
        TokenGrant {
            access_token,
            refresh_token,
            expires_in: lifetime.as_secs(),
            scope: scopes.to_string(),
        }
    }

    /// Uses a refresh token: the old access and refresh tokens both stop working and a new
    /// pair with the same scopes replaces them.
    pub(crate) fn rotate(
        &mut self,
        refresh_token: &str,
        client_id: &str,
        lifetime: Duration,
    ) -> Result<TokenGrant, InvalidGrant> {
        let Some(old) = self.refresh.remove(refresh_token) else {
            return Err(InvalidGrant(
                "unknown, revoked or already used refresh token",
            ));
        };
        self.access.remove(&old.access_token);
        if old.client_id != client_id {
            return Err(InvalidGrant("refresh token was issued to another client"));
        }
        Ok(self.issue(client_id, old.scopes, lifetime))
    }

    /// Who holds `access_token`, if it is still good.
    pub(crate) fn authenticate(&self, access_token: &str) -> Result<Caller, AuthFailure> {
        let found = self.access.get(access_token).ok_or(AuthFailure::Invalid)?;
        if found.expires_at.is_some_and(|at| at <= Instant::now()) {
            return Err(AuthFailure::Expired);
        }
        Ok(Caller {
            token: access_token.to_owned(),
            client_id: found.client_id.clone(),
            scopes: found.scopes.clone(),
        })
    }

    /// Forgets every access and refresh token issued so far.
    pub(crate) fn revoke_all(&mut self) {
        self.access.clear();
        self.refresh.clear();
    }

    /// Makes every current access token expired now.
    pub(crate) fn expire_all(&mut self) {
        let now = Instant::now();
        for token in self.access.values_mut() {
            token.expires_at = Some(now);
        }
    }
}

/// 160 random bits, hex-encoded: unguessable and safe in URLs, headers and forms.
fn random_token() -> String {
    hex::encode(rand::random::<[u8; 20]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFETIME: Duration = Duration::from_secs(3600);

    #[test]
    fn known_scopes_are_group_or_manual_read_and_write() {
        assert!(is_known_scope("activity_write"));
        assert!(is_known_scope("mood_read"));
        assert!(is_known_scope("manual_write"));
        assert!(!is_known_scope("steps_write"));
        assert!(!is_known_scope("activity_delete"));
        assert!(!is_known_scope("write"));
    }

    #[test]
    fn write_needs_the_group_scope_or_manual_write_for_manual_attributes() {
        let scopes: Scopes = ["activity_write", "manual_write"].into_iter().collect();
        assert!(scopes.may_write(Group::Activity, false));
        assert!(!scopes.may_write(Group::Mood, false));
        assert!(scopes.may_write(Group::Mood, true));
        let read_only: Scopes = ["mood_read"].into_iter().collect();
        assert!(!read_only.may_write(Group::Mood, true));
    }

    #[test]
    fn rotation_kills_the_old_pair() {
        let mut tokens = Tokens::default();
        let first = tokens.issue("c", Scopes::default(), LIFETIME);
        let second = tokens.rotate(&first.refresh_token, "c", LIFETIME).unwrap();
        assert_eq!(
            tokens.authenticate(&first.access_token).unwrap_err(),
            AuthFailure::Invalid
        );
        assert!(tokens.authenticate(&second.access_token).is_ok());
        assert!(tokens.rotate(&first.refresh_token, "c", LIFETIME).is_err());
    }

    #[test]
    fn codes_work_once_and_only_with_their_redirect() {
        let mut tokens = Tokens::default();
        let code = tokens.new_code("c", "http://127.0.0.1:9/cb", Scopes::default());
        assert!(tokens
            .redeem_code(&code, "c", "http://127.0.0.1:9/other", LIFETIME)
            .is_err());
        // The failed attempt used the code up.
        assert!(tokens
            .redeem_code(&code, "c", "http://127.0.0.1:9/cb", LIFETIME)
            .is_err());
        let code = tokens.new_code("c", "http://127.0.0.1:9/cb", Scopes::default());
        assert!(tokens
            .redeem_code(&code, "c", "http://127.0.0.1:9/cb", LIFETIME)
            .is_ok());
    }

    #[test]
    fn expiring_keeps_refresh_tokens_usable() {
        let mut tokens = Tokens::default();
        let grant = tokens.issue("c", Scopes::default(), LIFETIME);
        tokens.expire_all();
        assert_eq!(
            tokens.authenticate(&grant.access_token).unwrap_err(),
            AuthFailure::Expired
        );
        assert!(tokens.rotate(&grant.refresh_token, "c", LIFETIME).is_ok());
    }
}

//! OAuth state: authorization codes, access and refresh tokens, and the scopes they carry.
//!
//! Tokens rotate the way Exist's do: a refresh invalidates both the old access token and the
//! old refresh token (D `oauth2.md`: "can be refreshed at any time, invalidating the original
//! access and refresh tokens"; L's `refresh_token` expires both and mints a new pair). A client
//! that loses the new pair is locked out: that is what the agent must survive.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use super::rules;
use super::state::TokenGrant;

/// How long an authorization code can be exchanged. L's default grant lifetime is 10 minutes
/// (`EXPIRE_CODE_DELTA`), as RFC 6749 recommends.
const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// The scopes a token was granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scopes(BTreeSet<String>);

impl Scopes {
    /// Whether these scopes let a client own, create and write an attribute of `group` (D: write
    /// scopes "allow you to own, create, and write values for attributes that match the scope"):
    /// the group's write scope, or `manual_write` for a manually tracked attribute.
    pub(crate) fn may_write(&self, group: &str, manual: bool) -> bool {
        self.may("write", group, manual)
    }

    /// Whether these scopes let a client read an attribute of `group` and its values (D: read
    /// scopes "allow you to retrieve attributes and their values"): the group's read scope, or
    /// `manual_read` for a manually tracked attribute.
    pub(crate) fn may_read(&self, group: &str, manual: bool) -> bool {
        self.may("read", group, manual)
    }

    fn may(&self, access: &str, group: &str, manual: bool) -> bool {
        let scoped = rules::group(group).is_some_and(|g| g.scoped);
        (scoped && self.0.contains(&format!("{group}_{access}")))
            || (manual && self.0.contains(&format!("manual_{access}")))
    }
}

impl<S: AsRef<str>> FromIterator<S> for Scopes {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self(iter.into_iter().map(|s| s.as_ref().to_owned()).collect())
    }
}

impl fmt::Display for Scopes {
    /// Space-separated, as OAuth (and L's token response) writes scopes.
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

/// OAuth's `invalid_grant`: an unknown, used, expired or revoked code or refresh token. The
/// text says which, for the `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidGrant(pub(crate) &'static str);

struct AuthCode {
    client_id: String,
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
    pub(crate) fn new_code(&mut self, client_id: &str, scopes: Scopes) -> String {
        let code = random_token();
        self.codes.insert(
            code.clone(),
            AuthCode {
                client_id: client_id.to_owned(),
                scopes,
                expires_at: Instant::now() + CODE_LIFETIME,
            },
        );
        code
    }

    /// Exchanges a code for a token pair. The code is used up by a successful exchange only:
    /// L invalidates the grant after minting the tokens, and a request refused earlier (a wrong
    /// secret, say) leaves it usable. L does not compare the exchange's `redirect_uri` with the
    /// authorize request's, so neither does this.
    pub(crate) fn redeem_code(
        &mut self,
        code: &str,
        client_id: &str,
        lifetime: Duration,
    ) -> Result<TokenGrant, InvalidGrant> {
        let usable = self
            .codes
            .get(code)
            .is_some_and(|c| c.client_id == client_id && c.expires_at > Instant::now());
        if !usable {
            return Err(InvalidGrant(
                "unknown, expired or already used authorization code",
            ));
        }
        let Some(found) = self.codes.remove(code) else {
            return Err(InvalidGrant("unknown authorization code"));
        };
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
        // L looks the refresh token up by token *and* client: another client's is unknown.
        if self
            .refresh
            .get(refresh_token)
            .is_none_or(|r| r.client_id != client_id)
        {
            return Err(InvalidGrant(
                "unknown, revoked or already used refresh token",
            ));
        }
        let Some(old) = self.refresh.remove(refresh_token) else {
            return Err(InvalidGrant("unknown refresh token"));
        };
        self.access.remove(&old.access_token);
        Ok(self.issue(client_id, old.scopes, lifetime))
    }

    /// Who holds `access_token`, if it is still good.
    pub(crate) fn authenticate(&self, access_token: &str) -> Option<Caller> {
        let found = self.access.get(access_token)?;
        if found.expires_at.is_some_and(|at| at <= Instant::now()) {
            return None;
        }
        Some(Caller {
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

/// 160 random bits, hex-encoded: 40 hex digits, the shape of the tokens in D's examples.
fn random_token() -> String {
    hex::encode(rand::random::<[u8; 20]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFETIME: Duration = Duration::from_secs(3600);

    #[test]
    fn write_needs_the_group_scope_or_manual_write_for_manual_attributes() {
        let scopes: Scopes = ["activity_write", "manual_write"].into_iter().collect();
        assert!(scopes.may_write("activity", false));
        assert!(!scopes.may_write("mood", false));
        assert!(scopes.may_write("mood", true));
        assert!(!scopes.may_read("activity", false));
        let read_only: Scopes = ["mood_read"].into_iter().collect();
        assert!(!read_only.may_write("mood", true));
        assert!(read_only.may_read("mood", false));
        // A group without scopes can be written only as a manual attribute.
        let twitter: Scopes = ["twitter_write"].into_iter().collect();
        assert!(!twitter.may_write("twitter", false));
    }

    #[test]
    fn rotation_kills_the_old_pair() {
        let mut tokens = Tokens::default();
        let first = tokens.issue("c", Scopes::default(), LIFETIME);
        let second = tokens.rotate(&first.refresh_token, "c", LIFETIME).unwrap();
        assert!(tokens.authenticate(&first.access_token).is_none());
        assert!(tokens.authenticate(&second.access_token).is_some());
        assert!(tokens.rotate(&first.refresh_token, "c", LIFETIME).is_err());
        assert!(tokens
            .rotate(&second.refresh_token, "other", LIFETIME)
            .is_err());
        assert!(tokens.rotate(&second.refresh_token, "c", LIFETIME).is_ok());
        assert_eq!(first.access_token.len(), 40);
    }

    #[test]
    fn codes_work_once_and_only_for_their_client() {
        let mut tokens = Tokens::default();
        let code = tokens.new_code("c", Scopes::default());
        assert!(tokens.redeem_code(&code, "other", LIFETIME).is_err());
        // A refused attempt does not use the code up; a successful one does.
        assert!(tokens.redeem_code(&code, "c", LIFETIME).is_ok());
        assert!(tokens.redeem_code(&code, "c", LIFETIME).is_err());
    }

    #[test]
    fn expiring_keeps_refresh_tokens_usable() {
        let mut tokens = Tokens::default();
        let grant = tokens.issue("c", Scopes::default(), LIFETIME);
        tokens.expire_all();
        assert!(tokens.authenticate(&grant.access_token).is_none());
        assert!(tokens.rotate(&grant.refresh_token, "c", LIFETIME).is_ok());
    }
}

//! An access token refreshed only when needed, for Exist and for any OAuth2 provider alike.
//!
//! Providers rotate refresh tokens: a refresh kills the old pair. So a refresh runs under a
//! cross-process lock, re-reads the stored pair first (another process may have refreshed
//! already), and stores the new pair before anything uses it. What differs between providers
//! is only the token request itself ([`Exchange`]) and how failures are said.

use std::future::Future;
use std::sync::Arc;

use chrono::Utc;

use crate::auth::{LockFailure, RefreshLock};
use crate::secret::Secret;
use crate::tokens::{TokenPair, TokenStore, TokenStoreError};

/// A failure of the refresher itself, which each owner words its own way.
#[derive(Debug)]
pub enum RefreshFailure {
    /// Nothing is stored: never logged in.
    NoToken,
    /// The access token expired (or was refused) and there is no refresh token.
    NoRefreshToken,
    /// The token store failed.
    Store(TokenStoreError),
    /// The refresh lock could not be taken.
    Lock(LockFailure),
}

/// How one provider turns a refresh token into a new pair.
pub trait Exchange: Send + Sync {
    /// The owner's error.
    type Error: Send;

    /// Exchanges `refresh_token` (of the stored pair `stored`) for a new pair.
    fn exchange(
        &self,
        stored: &TokenPair,
        refresh_token: &Secret,
    ) -> impl Future<Output = Result<TokenPair, Self::Error>> + Send;

    /// A failure of the refresher, in the owner's words.
    fn failure(&self, failure: RefreshFailure) -> Self::Error;

    /// Whose tokens these are, for the logs (`Exist`, `source "withings"`).
    fn whose(&self) -> String;
}

/// The access token for calls, refreshed when it expires within `margin` or after a 401.
pub struct Refresher<X: Exchange> {
    exchange: X,
    store: TokenStore,
    lock: Arc<dyn RefreshLock>,
    margin: chrono::Duration,
    current: tokio::sync::Mutex<Option<TokenPair>>,
}

impl<X: Exchange> std::fmt::Debug for Refresher<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresher")
            .field("whose", &self.exchange.whose())
            .finish_non_exhaustive()
    }
}

impl<X: Exchange> Refresher<X> {
    /// Tokens from `store`, refreshed through `exchange` under `lock`.
    pub fn new(
        exchange: X,
        store: TokenStore,
        lock: Arc<dyn RefreshLock>,
        margin: chrono::Duration,
    ) -> Self {
        Self {
            exchange,
            store,
            lock,
            margin,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// The token store in use.
    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    /// The access token to use now: the stored one, refreshed first if it expires soon.
    pub async fn access_token(&self) -> Result<Secret, X::Error> {
        let mut current = self.current.lock().await;
        let pair = match current.take() {
            Some(pair) => pair,
            None => self.load().await?,
        };
        let pair = if pair.expires_within(Utc::now(), self.margin) {
            self.refresh(&pair).await?
        } else {
            pair
        };
        let token = pair.access_token.clone();
        *current = Some(pair);
        Ok(token)
    }

    /// The provider answered 401 to `rejected`: refresh (unless another process already did)
    /// and return the token to retry with.
    pub async fn after_unauthorized(&self, rejected: &Secret) -> Result<Secret, X::Error> {
        let mut current = self.current.lock().await;
        let seen = match current.take() {
            Some(pair) => pair,
            None => self.load().await?,
        };
        let pair = if seen.access_token == *rejected {
            self.refresh(&seen).await?
        } else {
            seen
        };
        let token = pair.access_token.clone();
        *current = Some(pair);
        Ok(token)
    }

    async fn load(&self) -> Result<TokenPair, X::Error> {
        let store = self.store.clone();
        let loaded = tokio::task::spawn_blocking(move || store.load())
            .await
            .map_err(|e| self.thread_failed(e))?;
        match loaded {
            Ok(Some(pair)) => Ok(pair),
            Ok(None) => Err(self.exchange.failure(RefreshFailure::NoToken)),
            Err(e) => Err(self.exchange.failure(RefreshFailure::Store(e))),
        }
    }

    fn thread_failed(&self, e: tokio::task::JoinError) -> X::Error {
        self.exchange.failure(RefreshFailure::Lock(LockFailure {
            message: format!("a token thread failed: {e}"),
            busy: false,
        }))
    }

    /// Refreshes `seen` under the cross-process lock, unless the stored pair already moved on.
    async fn refresh(&self, seen: &TokenPair) -> Result<TokenPair, X::Error> {
        let lock = Arc::clone(&self.lock);
        let _held = tokio::task::spawn_blocking(move || lock.acquire())
            .await
            .map_err(|e| self.thread_failed(e))?
            .map_err(|e| self.exchange.failure(RefreshFailure::Lock(e)))?;
        let stored = self.load().await?;
        if stored.access_token != seen.access_token {
            tracing::debug!(whose = %self.exchange.whose(), "another process refreshed the token already; using its pair");
            return Ok(stored);
        }
        let Some(refresh_token) = &stored.refresh_token else {
            return Err(self.exchange.failure(RefreshFailure::NoRefreshToken));
        };
        let mut pair = self.exchange.exchange(&stored, refresh_token).await?;
        if pair.refresh_token.is_none() {
            pair.refresh_token = stored.refresh_token.clone();
        }
        if pair.scopes.is_empty() {
            pair.scopes = stored.scopes.clone();
        }
        // The old pair may be dead now: the new one must be durable before anything uses it.
        let store = self.store.clone();
        let to_save = pair.clone();
        tokio::task::spawn_blocking(move || store.save(&to_save))
            .await
            .map_err(|e| self.thread_failed(e))?
            .map_err(|e| self.exchange.failure(RefreshFailure::Store(e)))?;
        tracing::info!(whose = %self.exchange.whose(), expires_at = ?pair.expires_at, "token refreshed and stored");
        Ok(pair)
    }
}

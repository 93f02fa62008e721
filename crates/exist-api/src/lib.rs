//! A client for [Exist](https://exist.io)'s API v2 that behaves as Exist asks writers to.
//!
//! - [`types`]: Exist's vocabulary, parsed once: attribute names, days, values and their types,
//!   groups, and [`types::Batch`], which never holds more than 35 items;
//! - [`templates`]: every template Exist documents, with its group and value type;
//! - [`client`]: the HTTP client: writes in batches read item by item, 401 answered by one
//!   refresh, 429 surfaced at once, every request counted in a [`client::RequestBudget`];
//! - [`auth`]: the OAuth2 authorization-code login and the access token, refreshed only on
//!   expiry (or a 401), under a [`auth::RefreshLock`], stored before it is used;
//! - [`tokens`]: where tokens live: the OS keyring, or a 0600 file;
//! - [`secret`]: secrets that print as `***`.
//!
//! Nothing here knows the agent that uses it: its configuration, its state or its errors.

pub mod auth;
pub mod client;
pub mod refresh;
pub mod secret;
pub mod templates;
pub mod tokens;
pub mod types;

pub use secret::Secret;

/// An error with its causes, for messages: reqwest keeps the useful part (refused connection,
/// DNS failure) out of its own message, in `source()`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
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

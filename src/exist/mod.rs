//! Everything that talks to Exist: the API's types, its template list, the HTTP client, OAuth
//! login and the token cache.

pub mod auth;
pub mod client;
pub mod templates;
pub mod tokens;
pub mod types;

//! Everything that talks to Exist: the API's types, its template list, the HTTP client, OAuth
//! login and the token cache.

pub mod templates;
pub mod types;

//! A local fake of Exist (exist.io): OAuth2 (auto-approving), API v2 attributes and values, a
//! request log with secrets masked, fault injection, and controls under `/sandbox/`.
//!
//! It follows Exist's own documentation and recorded replies, never the agent's code: its rule
//! tables live in [`rules`]. Where Exist is strict it is strict (35 items, ownership, scopes,
//! rotation, the hourly limit, the registered redirect URI); where Exist is lenient it is
//! lenient (no range checks on values, JSON booleans as 1/0, any `Content-Type` on write
//! bodies, HTTP Basic at the token endpoint).
//!
//! # The rules, their evidence, and where the fake guesses
//!
//! Sources: **D** Hello Code's documentation repository `hellocodeco/exist-api-docs`
//! (developer.exist.io); **N** real exist.io replies recorded in `NangoHQ/integration-templates`
//! `integrations/exist/tests/*.test.json` (2026-10-07); **N2** that integration author's notes
//! (`actions/*.ts`, claims, not recordings); **L** `caffeinehit/django-oauth2-provider`, the
//! OAuth library Exist very probably runs on (same endpoint names, 40-hex tokens,
//! `expires_in` 31535999, rotation); **DRF** Django REST framework, whose `allow` headers and
//! `{"detail"}` bodies Exist's replies show. "Guess" means no source settles it.
//!
//! | rule | evidence | fake |
//! |---|---|---|
//! | API at `/api/2/…/`, trailing slash; OAuth at `/oauth2/authorize`, `/oauth2/access_token` | D; L serves both spellings | both OAuth spellings; an API path missing only its `/` gets Django's `APPEND_SLASH` 301 (inferred); unknown paths Django's HTML 404; wrong methods DRF's 405 |
//! | authorize needs the registered `client_id`, `response_type=code`, known scopes | D; L `AuthorizationRequestForm` | any failure is a 400 error page, no redirect (L; the old sandbox redirected with `error=invalid_scope`) |
//! | `redirect_uri` must equal the registered string exactly; absent means the registered one | L `clean_redirect_uri` (audit F8) | [`SandboxOptions::redirect_uri`], [`Sandbox::register_redirect_uri`]; inferred |
//! | `state` echoed; a refusal redirects with `error=access_denied` and `state` | L `Redirect`, `Authorize` (F9) | `state` always written first, empty when none was sent (L's form gives `''`); [`Sandbox::deny_next_authorization`] |
//! | no `scope` at all | L grants its first configured scope | a token with no scope (guess) |
//! | token endpoint: form body only; client by HTTP Basic or body; every error 400 with `invalid_request`, `unsupported_grant_type`, `invalid_client`, `invalid_grant` | D (body); L | L's order of checks; `no-store` headers; the exchange's `redirect_uri` is not compared, and a refused exchange leaves the code usable (L; RFC 6749 would compare) |
//! | token reply `access_token`, `token_type: Bearer`, `expires_in` 31535999, `refresh_token`, space-separated `scope` | D; L | confirmed |
//! | refresh rotates: the old access and refresh tokens both die | D; L | confirmed |
//! | bearer auth; 401 for unknown, rotated, revoked or expired tokens | D ("HTTP 401") | DRF's messages ("Invalid token" for all, inferred) and `WWW-Authenticate: Bearer realm="api"` |
//! | 300 requests per hour per user token, then 429 until the next hour | D | per access token, per clock hour; body "Request was throttled.", no `Retry-After` (D documents none; a fault can add one) |
//! | profile readable with any token; `username`, `timezone`, `local_time`, ... | D; N adds `weekly_email`, `yearly_email` | as recorded |
//! | write bodies: a JSON array of at most 35 objects | D | more than 35, a non-array or a non-object item: 400 `{"detail"}`, nothing applied (shape: guess, DRF style) |
//! | write bodies may be JSON or "form-encoded" | D `important_values.md`; D's examples send JSON without `Content-Type` | the body is read as JSON whatever its `Content-Type` (inferred) |
//! | 200 when all items succeed, 202 when some fail; failed items echo the input plus `error_code`, `error` | D; N | as documented |
//! | `missing_field`: "Object at index N missing field(s) 'x'" | D | as documented |
//! | values "validated only broadly by type": no ranges (a scale of 12 is stored) | D `writing_data.md` | a float for a whole type refused with D's "Cannot apply a float to an integer type"; numbers for float types stored as floats; strings not length-checked (guess) |
//! | JSON booleans stored as 1/0 | N2; Python's `bool` is an `int` | any numeric type |
//! | non-null values cannot be set back to null | D | `null` is refused with `validation` even on an empty day (guess) |
//! | increment: not string, scale or time of day; default date the user's today; `current` in success | D; N | booleans and percentages may be incremented (unconfirmed) |
//! | writes need ownership: `unauthorised`, "Attribute 'x' does not belong to this service" | D (for release); N2 (writes "fail into `failed`", no code) | same code for update and increment (assumed, audit F6) |
//! | write scope per group; `manual_write` for manual attributes in any group | D | a missing scope is `not_allowed` (guess: no source names the code); an unknown attribute or template is `not_found` (guess) |
//! | acquire by `template` creates it; by `name` needs an existing attribute; acquiring again succeeds | D; N (the same client acquires `steps` it already writes: 200). D's guide has said both "the same result" and "an error" for a second acquire | custom names acquired without D's `allow_user_defined` (N does so); absent `manual` keeps the attribute's flag (guess) |
//! | release: the attribute becomes inactive (`service: null`, `active: false`); success `{"name", "service": "", "active": false}` | D; N | never passes to another service |
//! | create: `manual` defaults to true; the name is a slug of the label | D; D's guide ("Time reading" → `time_reading`); N | Django's `slugify` with `_` ([`rules::name_for_label`], inferred); an empty slug refused (guess) |
//! | re-creating an existing label or template fails as "exists" | D's guide ("an error that this attribute already exists"); N2 ("fails with an "exists" error") | `error_code: "exists"` (guess from N2's wording), nothing created, never a `_2` |
//! | the `custom` group holds booleans (type 7) only; type 6 is for templates only | D; N2 | other types refused with `validation` (code: guess) |
//! | tag labels come back lower case | N records "nango bool test"; N2 | tags' labels stored lower-cased (guess: the request's casing is not recorded) |
//! | a custom label whose slug is a template's name | none | refused with `validation` (guess) |
//! | `?success_objects=1`: full attribute objects (`subgroup`, `priority`, `available_services`, group objects) | D; N | as recorded; without it, create echoes D's guide fields (`name`, `label`, `group` as a name, `value_type`, `manual`, `priority`) and acquire adds `active` |
//! | read endpoints (`attributes/`, `owned/`, `with-values/`, `values/`) are "limited to your read scopes" | D `attributes.md`; D `oauth2.md` also says groups "you're allowed to read or write" | `{group}_read` or `manual_read` required (the stricter reading); listings leave other attributes out (D: "an empty list"), `values/` answers 404 (guess); `owned/` is limited too (guess) |
//! | paging `{count, next, previous, results}`, 20 per page, `limit` up to 100, absolute links | D; N (`…?attribute=steps&limit=2&page=2`) | DRF's links (sorted parameters, no `page` on the first page's), a larger `limit` cut to 100, a bad page 404 "Invalid page." |
//! | `values/` lists every day, `null` where there is no data, newest first, up to `date_max` | D `object_types.md` | from the attribute's creation (or earliest value) to `date_max` (default the user's today). **N contradicts it**: a recorded reply omits 2026-10-06 (`count: 4`); [`SandboxOptions::list_days_without_data`] switches to that |
//! | an inactive attribute's values are 404 | N2 | as stated |
//! | new attributes show a value on their first day (0 for quantities, `null` for others) | N (custom integers read 0 the day they were made); D's read guide ("Zero is the default value for other types like quantities") | not reproduced: [`Sandbox::values`] holds what clients wrote, and days without data read `null` |
//! | 86 documented templates with group and type; value types 0-8 | D (the audit read 86 in D's HEAD) | [`rules::TEMPLATES`], [`rules::ValueType`]; the live list counted 79 (N): which are missing is unknown, all 86 are served |
//! | groups and their labels (`custom` is "Daily tags") | D scope table; N | [`rules::GROUPS`]; `twitter` (D's template table) has no documented scopes, so its templates are manual-only here (guess) |
//! | `value_type_description` strings | N for 0, 1, 3, 7, 8 | the other four: guesses in the same style |
//!
//! Everything a test needs is a method of [`Sandbox`]; the same controls are served as JSON
//! under `/sandbox/` for scripts driving a fake started from the command line.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use exist_fakes::exist::{Sandbox, SandboxOptions};
//! let sandbox = Sandbox::start("127.0.0.1:0".parse().unwrap(), SandboxOptions::default()).await?;
//! let grant = sandbox.issue_tokens(&["activity_write"]);
//! // ... point the client at sandbox.base_url() and use grant.access_token ...
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod conn;
mod control;
mod oauth;
mod observe;
mod params;
pub mod rules;
mod state;
mod tokens;
mod writes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

pub use rules::ValueType;
pub use state::{AttributeInfo, Fault, Misreport, Owner, RequestRecord, TokenGrant};

use conn::{KillSwitch, SandboxListener};
use state::Shared;

/// How long [`Sandbox::shutdown`] waits for open connections to finish before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How a fake is set up: its one OAuth client, its tokens, its limits and its user.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The only client id the OAuth endpoints accept.
    pub client_id: String,
    /// The client's secret, sent in the token request's form body or with HTTP Basic.
    pub client_secret: String,
    /// The redirect URI registered for the client. Authorize requests must name exactly this
    /// string (or none); [`Sandbox::register_redirect_uri`] changes it later.
    pub redirect_uri: String,
    /// How long an access token lives (`expires_in`); Exist's is 31535999 s.
    pub token_lifetime: Duration,
    /// Requests allowed per access token per clock hour (Exist: 300); past it, HTTP 429.
    pub rate_limit: u32,
    /// The user's IANA timezone, as the profile reports it; days default to this zone's today.
    pub timezone: String,
    /// The user's name, as the profile reports it.
    pub username: String,
    /// Whether `attributes/values/` lists days without data as `null` (true, D's rule) or
    /// leaves them out (false, as one recorded reply does).
    pub list_days_without_data: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            client_id: "sandbox-client".into(),
            client_secret: "sandbox-secret".into(),
            // The redirect URI D's guide registers for a local client.
            redirect_uri: "http://localhost:8000/".into(),
            token_lifetime: Duration::from_secs(31_535_999),
            rate_limit: 300,
            timezone: "UTC".into(),
            username: "sandbox".into(),
            list_days_without_data: true,
        }
    }
}

/// A running fake. Dropping it stops the server abruptly; [`Sandbox::shutdown`] stops it
/// gracefully.
pub struct Sandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl Sandbox {
    /// Binds `addr` (port 0 picks a free port) and serves until [`Sandbox::shutdown`].
    ///
    /// Fails if the address cannot be bound or `options.timezone` is not an IANA name.
    pub async fn start(addr: SocketAddr, options: SandboxOptions) -> std::io::Result<Sandbox> {
        let listener = SandboxListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let base_url = Url::parse(&format!("http://{addr}/")).map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared::new(options, base_url)?);
        let app = router(shared.clone()).into_make_service_with_connect_info::<KillSwitch>();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    // A dropped sender means the `Sandbox` is gone: stop as well.
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Sandbox {
            shared,
            addr,
            stop: Some(stop),
            server: Some(server),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's root, e.g. `http://127.0.0.1:PORT/`: the API is at `{base}api/2/`, OAuth at
    /// `{base}oauth2/`, the controls at `{base}sandbox/`.
    pub fn base_url(&self) -> Url {
        self.shared.base_url.clone()
    }

    /// Every request served so far, in the order they were answered, faulted and refused ones
    /// included, `/sandbox/` control calls excluded. Secrets appear as `***`.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests()
    }

    /// Every stored value, keyed by (attribute name, `YYYY-MM-DD`).
    pub fn values(&self) -> BTreeMap<(String, String), serde_json::Value> {
        self.shared.values()
    }

    /// The user's attribute called `name`, if they have one.
    pub fn attribute(&self, name: &str) -> Option<AttributeInfo> {
        self.shared.attribute(name)
    }

    /// Every attribute the user has, by name.
    pub fn attributes(&self) -> Vec<AttributeInfo> {
        self.shared.attributes()
    }

    /// Queues a fault for the next matching requests (see [`Fault`]), applied in the order
    /// queued.
    pub fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    /// Hands `attribute` to another service, as a user can in Exist's web page: writes from our
    /// client get `unauthorised` until it acquires the attribute again. A template the user
    /// lacks is created, owned by the other service; an unknown custom name is ignored.
    pub fn give_to_other_service(&self, attribute: &str) {
        self.shared.give_to_other_service(attribute);
    }

    /// Sets (or with `None` clears) the value of `attribute` on `day` (`YYYY-MM-DD`), as the
    /// user can by editing it in Exist's web page: what the client wrote is no longer what Exist
    /// holds.
    ///
    /// # Panics
    /// If `day` is not a date: that is a mistake in the calling test.
    pub fn edit_value(&self, attribute: &str, day: &str, value: Option<serde_json::Value>) {
        let day = day
            .parse()
            .unwrap_or_else(|e| panic!("edit_value: {day:?} is not a date: {e}"));
        self.shared.edit_value(attribute, day, value);
    }

    /// Revokes every access and refresh token issued so far (the user disconnected the client).
    pub fn revoke_tokens(&self) {
        self.shared.revoke_tokens();
    }

    /// Makes every current access token expired now; refresh tokens keep working.
    pub fn expire_access_tokens(&self) {
        self.shared.expire_access_tokens();
    }

    /// Ends the rate-limit hour: every token's request count starts again from zero.
    pub fn next_hour(&self) {
        self.shared.next_hour();
    }

    /// Mints a token pair for our client with `scopes`, as if the browser flow had run.
    /// Scopes are taken as given (unknown ones simply grant nothing).
    pub fn issue_tokens(&self, scopes: &[&str]) -> TokenGrant {
        self.shared.issue_tokens(scopes)
    }

    /// Registers `uri` as the client's redirect URI, replacing the one before (as the user
    /// would in Exist's app settings): authorize requests must then name exactly this string.
    pub fn register_redirect_uri(&self, uri: &str) {
        self.shared.register_redirect_uri(uri);
    }

    /// Makes the user refuse the next authorization: it redirects to the registered URI with
    /// `error=access_denied` (and `state`) instead of a code.
    pub fn deny_next_authorization(&self) {
        self.shared.deny_next_authorization();
    }

    /// Changes the user's timezone (as if they moved).
    ///
    /// # Panics
    /// If `tz` is not an IANA timezone name: that is a mistake in the calling test or demo.
    pub fn set_timezone(&self, tz: &str) {
        if let Err(e) = self.shared.set_timezone(tz) {
            panic!("{e}");
        }
    }

    /// Stops accepting connections, lets open ones finish (for a few seconds at most), and
    /// returns when the server has stopped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
            {
                // A client holding a connection open must not keep the process alive.
                server.abort();
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Runs a fake on `addr` until Ctrl-C, printing where it listens and its client credentials
/// (they are the fake's own, not secrets of any real account) and registered redirect URI.
pub async fn serve_forever(addr: SocketAddr, options: SandboxOptions) -> std::io::Result<()> {
    let sandbox = Sandbox::start(addr, options).await?;
    println!(
        "sandbox listening on {} (client_id={}, client_secret={}, redirect_uri={})",
        sandbox.base_url(),
        sandbox.shared.options.client_id,
        sandbox.shared.options.client_secret,
        sandbox.shared.options.redirect_uri,
    );
    let stopped = tokio::signal::ctrl_c().await;
    sandbox.shutdown().await;
    stopped
}

/// All routes: OAuth, the API and the controls, with the request log and faults around them.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(oauth::routes())
        .merge(api::routes())
        .merge(control::routes())
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            observe::observe,
        ))
        .with_state(shared)
}

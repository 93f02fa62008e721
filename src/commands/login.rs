//! `exist-agent login`: the OAuth2 authorization-code flow through a loopback listener, or a
//! token obtained elsewhere.

use clap::Args;

use crate::config::{Config, HttpAuth, SourceKind};
use crate::context::{runtime, token_store, Context};
use crate::error::{Error, Result};
use crate::sources::oauth2::{self, source_token_store};
use exist_api::auth;

/// Options of `login`.
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// Print the authorization URL instead of opening a browser
    #[arg(long)]
    pub no_browser: bool,
    /// Store this access token (e.g. your Exist app's personal token) instead of the browser flow
    #[arg(long, value_name = "TOKEN", conflicts_with = "no_browser")]
    pub token: Option<String>,
    /// Authorize a data source that uses auth.oauth2 instead of Exist
    #[arg(long, value_name = "NAME", conflicts_with = "token")]
    pub source: Option<String>,
}

/// Authorizes this agent and stores the tokens.
pub fn run(ctx: &Context, args: &LoginArgs) -> Result<()> {
    let config = ctx.config()?;
    if let Some(name) = &args.source {
        return login_source(&config, name, !args.no_browser);
    }
    let tokens = token_store(&config)?;
    let scopes = config.scopes();
    if let Some(token) = &args.token {
        auth::store_given_token(&tokens, token, &scopes)?;
        println!("Token stored in {}.", tokens.describe());
        return Ok(());
    }
    let outcome = runtime()?.block_on(auth::login(
        &config.exist.app(),
        &scopes,
        &tokens,
        !args.no_browser,
        |line| {
            println!("{line}");
        },
    ))?;
    let expires = outcome
        .pair
        .expires_at
        .map_or_else(|| "never".to_owned(), |t| t.format("%Y-%m-%d").to_string());
    println!(
        "Logged in. Tokens stored in {}; they expire {expires}; scopes: {}.",
        outcome.stored_in,
        outcome.pair.scopes.join(" ")
    );
    Ok(())
}

/// `login --source NAME`: the provider's authorization-code flow, into the source's own entry.
fn login_source(config: &Config, name: &str, open_browser: bool) -> Result<()> {
    let oauth_sources = || {
        config
            .sources
            .iter()
            .filter(
                |s| matches!(&s.kind, SourceKind::Http(h) if matches!(h.auth, HttpAuth::OAuth2(_))),
            )
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let oauth = config.source(name).and_then(|s| match &s.kind {
        SourceKind::Http(h) => match &h.auth {
            HttpAuth::OAuth2(o) => Some(o),
            _ => None,
        },
        _ => None,
    });
    let Some(oauth) = oauth else {
        let known = oauth_sources();
        return Err(Error::usage(format!(
            "--source {name}: no source of that name authenticates with auth.oauth2"
        ))
        .with_fix(if known.is_empty() {
            "add auth = { oauth2 = { ... } } to an http source (config.example.toml shows one)"
                .to_owned()
        } else {
            format!("write one of {known}")
        }));
    };
    crate::store::create_private_dir(&oauth.state_dir)?;
    let store = source_token_store(oauth.token_store, &oauth.state_dir, name, oauth)?;
    let pair = runtime()?.block_on(oauth2::login(name, oauth, &store, open_browser, |line| {
        println!("{line}");
    }))?;
    let expires = pair.expires_at.map_or_else(
        || "never".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    );
    println!(
        "Source \"{name}\" authorized. Tokens stored in {}; the access token expires {expires} and is refreshed as needed.",
        store.describe()
    );
    Ok(())
}

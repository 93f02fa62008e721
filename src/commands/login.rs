//! `exist-agent login`: the OAuth2 authorization-code flow through a loopback listener, or a
//! token obtained elsewhere.

use clap::Args;

use crate::context::{runtime, token_store, Context};
use crate::error::Result;
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
}

/// Authorizes this agent and stores the tokens.
pub fn run(ctx: &Context, args: &LoginArgs) -> Result<()> {
    let config = ctx.config()?;
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

//! `exist-agent logout`: forgets the tokens, first releasing the owned attributes if asked.

use clap::Args;

use crate::context::{run_lock, runtime, token_store, Context, Session};
use crate::error::Result;

/// Options of `logout`.
#[derive(Debug, Clone, Args)]
pub struct LogoutArgs {
    /// First release the attributes this agent owns, so another service can take them
    #[arg(long)]
    pub release: bool,
}

/// Releases (if asked) and forgets the tokens.
pub fn run(ctx: &Context, args: &LogoutArgs) -> Result<()> {
    let config = ctx.config()?;
    let _lock = run_lock(&config.state_dir())?;
    let mut session = Session::open(&config)?;
    if args.release {
        let owned = session.store.read().owned_attributes()?;
        if !owned.is_empty() {
            let names = owned.iter().map(|a| a.name.clone()).collect();
            let outcome = runtime()?.block_on(session.client.release(names))?;
            for f in &outcome.failed {
                eprintln!("could not release {}: {}: {}", f.item.name, f.code, f.error);
            }
            println!("Released {} attribute(s).", outcome.succeeded.len());
        }
        session.store.transaction(|tx| tx.clear_owned())?;
    }
    let tokens = token_store(&config)?;
    tokens.delete()?;
    println!("Tokens removed from {}.", tokens.describe());
    Ok(())
}

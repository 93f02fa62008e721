//! temporary
use clap::Args;
use crate::context::Context;
use crate::error::Result;
/// Options of `init`.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Print
    #[arg(long)]
    pub print: bool,
}
/// Runs.
pub fn run(_ctx: &Context, _args: &InitArgs) -> Result<()> { Ok(()) }

//! `exist-agent sandbox`: a local Exist-compatible server to try a setup without an account.

use std::net::SocketAddr;

use clap::Args;

use crate::context::runtime;
use crate::error::{Error, ErrorKind, Result};

/// Options of `sandbox`.
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// Address to listen on (loopback; port 0 picks a free port, printed at start)
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,
}

/// Serves the sandbox until Ctrl-C.
pub fn run(args: &SandboxArgs) -> Result<()> {
    runtime()?
        .block_on(exist_fakes::exist::serve_forever(
            args.addr,
            exist_fakes::exist::SandboxOptions::default(),
        ))
        .map_err(|e| {
            Error::caused(
                ErrorKind::Failed,
                format!("the sandbox could not listen on {}", args.addr),
                e,
            )
            .with_fix("choose another port with --addr 127.0.0.1:PORT")
        })
}

//! `exist-agent service install|uninstall`: the systemd user timer or the launchd agent that runs
//! `run --once` hourly (the unit files themselves are made in `crate::service`).

use clap::{Args, Subcommand};

use crate::context::Context;
use crate::error::{Error, ErrorKind, Result};
use crate::service::{self as svc, ServiceTarget};

/// Options of `service`.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// What to do with the service
    #[command(subcommand)]
    pub action: ServiceAction,
}

/// `service install` or `service uninstall`.
#[derive(Debug, Clone, Subcommand)]
pub enum ServiceAction {
    /// Write and enable the systemd user service and timer, or the LaunchAgent
    Install {
        /// Print the files instead of writing them
        #[arg(long)]
        print: bool,
    },
    /// Disable and remove them
    Uninstall,
}

/// Installs or removes the service.
pub fn run(ctx: &Context, args: &ServiceArgs) -> Result<()> {
    let config = ctx.config()?;
    let target = ServiceTarget::for_this_platform()?;
    let report = match args.action {
        ServiceAction::Install { print } => {
            let binary = std::env::current_exe().map_err(|e| {
                Error::caused(ErrorKind::Failed, "cannot find this program's own path", e)
            })?;
            svc::install(
                print,
                &binary,
                &config.path,
                config.agent.schedule.install_minute(),
                &target,
            )?
        }
        ServiceAction::Uninstall => svc::uninstall(&target)?,
    };
    print!("{report}");
    Ok(())
}

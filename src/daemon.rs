//! The long-running agent, `exist-agent run`: syncs on the schedule (hourly by default, at this
//! install's minute), catches up once after the machine slept, accepts signed notifications that
//! ask for one source, and on SIGINT/SIGTERM lets the batch in flight finish, then exits 0.
//!
//! Every sync takes the same run lock as `run --once`, so the daemon never overlaps with a run
//! started by a timer or by hand.

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};

use crate::app::{self, Session};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::schedule::{Daemon, Reason, RunRequest};
use crate::store::Store;
use crate::sync::{self, SyncOptions};

/// Where the start of the last scheduled run is kept, so a restart catches up at most once.
const LAST_RUN: &str = "daemon_last_run";

/// Runs the daemon until a signal stops it.
pub fn run(config: &Config) -> Result<()> {
    let plan = app::schedule_plan(config);
    let last_run = last_run(&Store::open(&config.state_dir())?)?;
    let daemon = Daemon::new(plan, last_run);
    let (stop_tx, stop_rx) = watch::channel(false);
    app::runtime().block_on(async {
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stopping: finishing the batch in flight");
            let _ = stop_tx.send(true);
        });
        if let Some(addr) = config.agent.listen {
            listen_for_notifications(config, addr, daemon.trigger(), stopped(stop_rx.clone()))
                .await?;
        }
        daemon
            .run(
                |request| sync_once(config, request, stop_rx.clone()),
                stopped(stop_rx.clone()),
            )
            .await
            .map_err(|e| Error::Failed(e.to_string()))
    })
}

/// The start of the last scheduled (not notified) run, as stored.
pub fn last_run(store: &Store) -> Result<Option<DateTime<Utc>>> {
    Ok(store
        .read()
        .meta(LAST_RUN)?
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.to_utc()))
}

/// A future that resolves when `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Starts the notification listener; notifications become runs of the named source.
async fn listen_for_notifications(
    config: &Config,
    addr: std::net::SocketAddr,
    trigger: crate::schedule::Trigger,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let secret = config
        .agent
        .notify_secret
        .as_ref()
        .expect("the config requires a secret with `listen`")
        .resolve()
        .map_err(Error::Usage)?;
    let listener = crate::notify::bind(addr)
        .await
        .map_err(|e| Error::Failed(e.to_string()))?;
    tracing::info!(addr = %listener.local_addr(), "accepting signed notifications");
    let sources = config.sources.iter().map(|s| s.name.clone());
    let (tx, mut rx) = mpsc::channel(16);
    let notify_config = crate::notify::NotifyConfig::new(secret, sources);
    tokio::spawn(async move {
        if let Err(e) = crate::notify::serve(listener, notify_config, tx, shutdown).await {
            tracing::error!("the notification listener stopped: {e}");
        }
    });
    tokio::spawn(async move {
        while let Some(source) = rx.recv().await {
            trigger.source(source);
        }
    });
    Ok(())
}

/// One sync for the daemon: under the run lock, like `run --once`.
async fn sync_once(
    config: &Config,
    request: RunRequest,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let state_dir = config.state_dir();
    let _lock = tokio::task::spawn_blocking(move || app::run_lock(&state_dir))
        .await
        .map_err(|e| Error::Failed(format!("the lock thread failed: {e}")))??;
    let mut session = Session::open(config)?;
    let started = Utc::now();
    let notified = request.reason == Reason::Notified;
    tracing::info!(reason = ?request.reason, sources = ?request.sources, "sync starting");
    let options = SyncOptions {
        only_sources: notified.then(|| request.sources.iter().cloned().collect()),
        forced_sources: request.sources,
        stop: Some(stop),
        ..SyncOptions::default()
    };
    let outcome = sync::sync(config, &mut session.store, &session.client, &options).await?;
    if !notified {
        session
            .store
            .transaction(|tx| tx.set_meta(LAST_RUN, &started.to_rfc3339()))?;
    }
    app::finish(outcome)
}

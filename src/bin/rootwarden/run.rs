//! `rootwarden run`: the daemon on its own runtime, until a stop signal; SIGHUP reloads `[policy]`.

use std::collections::HashMap;
use std::path::PathBuf;

use futures::StreamExt;
use rootwarden::config::Config;
use rootwarden::policy::PolicyHandle;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tokio_util::sync::CancellationToken;

use crate::exit;

/// The daemon's runtime: one thread (a current-thread scheduler, no cross-thread wake-ups) or
/// a multi-thread scheduler with `threads` workers (0: one per CPU).
pub(crate) fn daemon_runtime(threads: usize) -> tokio::runtime::Runtime {
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if threads > 1 {
        builder.worker_threads(threads);
    }
    builder.enable_all().build().expect("a tokio runtime")
}

/// Runs the daemon; SIGTERM or SIGINT starts the drain, a second one exits at once, SIGHUP
/// reloads `[policy]`.
pub(crate) async fn run(config: Config, path: PathBuf, explicit: bool) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let daemon = rootwarden::Daemon::new(config, None).await?;
    let policy = daemon.policy();
    let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let handle = signals.handle();
    let listener_shutdown = shutdown.clone();
    let signal_task = tokio::spawn(async move {
        while let Some(signal) = signals.next().await {
            match signal {
                SIGHUP => reload_policy(&policy, &path, explicit),
                _ if listener_shutdown.is_cancelled() => {
                    tracing::warn!("A second stop signal: exiting at once.");
                    std::process::exit(exit::SECOND_SIGNAL);
                }
                _ => {
                    tracing::info!(signal, "Stop signal received: no new jobs; draining.");
                    listener_shutdown.cancel();
                }
            }
        }
    });
    let result = daemon.run(shutdown).await;
    handle.close();
    let _ = signal_task.await;
    result
}

/// Re-reads the configuration and swaps in its `[policy]` section; an invalid one is refused
/// and the old policy stays.
fn reload_policy(policy: &PolicyHandle, path: &std::path::Path, explicit: bool) {
    let env: HashMap<String, String> = std::env::vars().collect();
    let new_policy = match Config::load(path, explicit, env) {
        Ok(config) => config.policy,
        Err(error) => {
            tracing::error!(problems = ?error.problems, "SIGHUP: the configuration is invalid; the old policy stays.");
            return;
        }
    };
    match policy.replace(new_policy) {
        Ok(()) => tracing::info!("SIGHUP: the policy was reloaded."),
        Err(problems) => tracing::error!(?problems, "SIGHUP: the new policy is invalid; the old policy stays."),
    }
}

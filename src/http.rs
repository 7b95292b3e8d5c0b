//! The telemetry listener: `/metrics` (Prometheus text), `/healthz` (the process and its loops
//! are alive) and `/readyz` (the intake answers and the organization was read; false while
//! draining).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Liveness and readiness, shared by the loops that report them and the listener.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    /// Unix seconds of the poller's last sign of life.
    poller_beat: AtomicU64,
    /// How long the poller may stay silent (a long poll, a wait for a free worker).
    silence_allowed_s: AtomicU64,
}

impl Health {
    /// A health record tolerating `silence` between poller beats.
    pub fn new(silence: Duration) -> Self {
        let health = Self::default();
        health.silence_allowed_s.store(silence.as_secs().max(1), Ordering::Relaxed);
        health.beat();
        health
    }

    /// The poller is alive.
    pub fn beat(&self) {
        self.poller_beat.store(unix_now(), Ordering::Relaxed);
    }

    /// Sets readiness.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether this replica takes work.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Whether the poller has shown life recently.
    pub fn is_alive(&self) -> bool {
        let silence = unix_now().saturating_sub(self.poller_beat.load(Ordering::Relaxed));
        silence <= self.silence_allowed_s.load(Ordering::Relaxed)
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

#[derive(Clone)]
struct Shared {
    metrics: Metrics,
    health: Arc<Health>,
}

/// Serves until `stop` is cancelled.
pub async fn serve(listener: TcpListener, metrics: Metrics, health: Arc<Health>, stop: CancellationToken) {
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Shared { metrics, health });
    if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await {
        tracing::error!(%error, "The telemetry listener stopped with an error.");
    }
}

async fn metrics_page(State(shared): State<Shared>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], shared.metrics.render())
}

async fn healthz(State(shared): State<Shared>) -> impl IntoResponse {
    if shared.health.is_alive() { (StatusCode::OK, "ok\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "stalled\n") }
}

async fn readyz(State(shared): State<Shared>) -> impl IntoResponse {
    if shared.health.is_ready() { (StatusCode::OK, "ready\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready\n") }
}

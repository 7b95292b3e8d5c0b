//! The telemetry listener: `/metrics` (Prometheus text), `/healthz` (the poller, or before it
//! the wait for the queues, has shown life recently) and `/readyz` (the intake and dead-letter
//! queues answered and the organization was read; false while draining).

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

#[cfg(test)]
impl Health {
    /// Makes the poller's last sign of life ancient, as a stalled poller's.
    pub(crate) fn stall(&self) {
        self.poller_beat.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The status code of `GET path` on `addr`.
    pub(crate) async fn status(addr: SocketAddr, path: &str) -> u16 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("{response:?}"))
    }

    #[tokio::test]
    async fn healthz_follows_the_poller_and_readyz_the_readiness() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let health = Arc::new(Health::new(Duration::from_secs(60)));
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, Metrics::new(), health.clone(), stop.clone()));

        assert_eq!((status(addr, "/healthz").await, status(addr, "/readyz").await), (200, 503), "alive, not ready yet");
        health.set_ready(true);
        assert_eq!((status(addr, "/healthz").await, status(addr, "/readyz").await), (200, 200));
        health.stall();
        assert_eq!(status(addr, "/healthz").await, 503, "a poller silent for longer than allowed");
        health.beat();
        assert_eq!(status(addr, "/healthz").await, 200, "alive again at its next beat");
        health.set_ready(false);
        assert_eq!(status(addr, "/readyz").await, 503, "draining");

        stop.cancel();
        server.await.unwrap();
    }
}

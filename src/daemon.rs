//! The daemon: the intake poller feeding a bounded worker pool, the telemetry listener, the
//! queue-depth poller, and the drain on shutdown. Shutdown is a parameter (a cancellation
//! token); only the binary's entry point listens to signals.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_credential_types::Credentials;
use aws_sdk_sqs::types::QueueAttributeName;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ack::Acknowledger;
use crate::aws::{self, Clients};
use crate::config::Config;
use crate::http::{self, Health};
use crate::intake;
use crate::metrics::Metrics;
use crate::policy::{AccountLimiter, Organization, PolicyHandle};
use crate::sessions::SessionCache;
use crate::systemd;
use crate::worker::{self, WorkerContext};

/// A configured daemon, its listener bound, ready to run.
pub struct Daemon {
    config: Config,
    clients: Clients,
    metrics: Metrics,
    policy: PolicyHandle,
    listener: TcpListener,
    health: Arc<Health>,
}

/// Runs the daemon with AWS credentials from the SDK's standard chain until `shutdown` is
/// cancelled and the drain is over.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    Daemon::new(config, None).await?.run(shutdown).await
}

impl Daemon {
    /// Builds the clients and binds the telemetry listener. `credentials` replaces the standard
    /// chain (tests).
    pub async fn new(config: Config, credentials: Option<Credentials>) -> anyhow::Result<Self> {
        config.validate()?;
        let clients = Clients::new(aws::sdk_config(&config.aws, credentials).await);
        let listener = TcpListener::bind(&config.telemetry.listen)
            .await
            .with_context(|| format!("binding the telemetry listener on {}", config.telemetry.listen))?;
        // The poller may legitimately wait a whole long poll, then a whole visibility timeout
        // for a free worker, before it beats again.
        let silence = config.intake.wait_time + config.intake.visibility_timeout + Duration::from_secs(30);
        Ok(Self {
            policy: PolicyHandle::new(config.policy.clone()),
            metrics: Metrics::new(),
            health: Arc::new(Health::new(silence)),
            config,
            clients,
            listener,
        })
    }

    /// The metrics registry (tests read it directly).
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// The policy in force, for SIGHUP reloads.
    pub fn policy(&self) -> PolicyHandle {
        self.policy.clone()
    }

    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Takes jobs until `shutdown` is cancelled, then drains within `shutdown.grace`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Daemon { config, clients, metrics, policy, listener, health } = self;
        let intake_url = config.intake.queue_url.clone().context("intake.queue_url is required")?;
        let dead_letter_url = config.intake.dead_letter_queue_url.clone().context("intake.dead_letter_queue_url is required")?;

        match listener.local_addr() {
            Ok(listen) => tracing::info!(%listen, "Serving /metrics, /healthz and /readyz."),
            Err(error) => tracing::warn!(%error, "The telemetry listener has no local address."),
        }
        let stop_listener = CancellationToken::new();
        let listener_task = tokio::spawn(http::serve(listener, metrics.clone(), health.clone(), stop_listener.clone()));
        let (acknowledger, flushers) =
            Acknowledger::start(&clients, &metrics, &intake_url, &dead_letter_url, config.results.queue_url.as_deref());
        let hard_stop = CancellationToken::new();
        let context = Arc::new(WorkerContext {
            sessions: SessionCache::new(
                &clients,
                config.sessions.clone(),
                config.policy.assume_root_rate,
                config.workers.job_timeout,
                metrics.clone(),
            ),
            organization: Organization::new(clients.clone(), metrics.clone()),
            accounts: AccountLimiter::new(config.workers.per_account),
            acknowledger,
            hard_stop: hard_stop.clone(),
            config: config.clone(),
            clients: clients.clone(),
            metrics: metrics.clone(),
            policy,
        });

        let background = TaskTracker::new();
        if wait_until_ready(&context, &intake_url, &health, &shutdown).await {
            health.set_ready(true);
            systemd::ready();
            tracing::info!(concurrency = config.workers.concurrency, "rootwarden is taking jobs.");
            background.spawn(poll_queue_depths(config.clone(), clients.clone(), metrics.clone(), shutdown.clone()));
            if let Some(period) = systemd::watchdog_period() {
                background.spawn(feed_watchdog(period, health.clone(), shutdown.clone()));
            }
            let workers = TaskTracker::new();
            poll(&context, &intake_url, &health, &workers, &shutdown).await;
            health.set_ready(false);
            systemd::stopping();
            drain(&workers, &hard_stop, config.shutdown.grace).await;
        }

        // Every worker is done: dropping the last context flushes the batchers.
        drop(context);
        for flusher in flushers {
            let _ = flusher.await;
        }
        background.close();
        background.wait().await;
        stop_listener.cancel();
        let _ = listener_task.await;
        tracing::info!("rootwarden stopped.");
        Ok(())
    }
}

/// Waits until the intake queue answers (and reads the organization features, which readiness
/// includes), saying after each failure why it is not ready: the AWS error's sentence (the
/// cause and what to do). Returns false if shutdown came first.
///
/// Each attempt is a sign of life, as each receive is once running: a daemon waiting for AWS
/// is alive but not ready, and a restart would not make the queues answer.
async fn wait_until_ready(context: &WorkerContext, intake_url: &str, health: &Health, shutdown: &CancellationToken) -> bool {
    let mut delay = Duration::from_millis(250);
    let mut failures = 0u32;
    loop {
        health.beat();
        let attempt = async {
            let request = context
                .clients
                .sqs
                .get_queue_attributes()
                .queue_url(intake_url)
                .attribute_names(QueueAttributeName::MaximumMessageSize)
                .send();
            let intake = aws::call(&context.metrics, "sqs", "GetQueueAttributes", request)
                .await
                .map_err(|error| (Unready::Intake, error))?;
            // Without its dead-letter queue no rejected or failed job could end: not ready.
            let dead_letter_limit =
                context.acknowledger.dead_letter_limit().await.map_err(|error| (Unready::DeadLetter, error))?;
            // Read only once the queues answer: their failure is the one to report first.
            Ok::<_, (Unready, aws::AwsCallError)>((intake, dead_letter_limit, context.organization.features().await))
        };
        // A stop signal need not wait for the SDK's own retries of an endpoint that does not answer.
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return false,
            outcome = attempt => outcome,
        };
        health.beat();
        let retry_in = humantime::format_duration(delay);
        match outcome {
            Ok((intake, dead_letter_limit, Ok(features))) => {
                tracing::info!(features = ?features, failures, "The intake and dead-letter queues answer and the organization features were read.");
                let intake_limit = intake
                    .attributes()
                    .and_then(|a| a.get(&QueueAttributeName::MaximumMessageSize))
                    .and_then(|v| v.parse::<usize>().ok());
                if let Some(intake_limit) = intake_limit {
                    warn_if_dead_letters_cannot_fit(intake_limit, dead_letter_limit);
                }
                return true;
            }
            Err((queue, error)) => tracing::warn!(
                intake_url,
                error.code = %error.code,
                error.class = ?error.class,
                failures = failures + 1,
                "The {} does not answer yet (trying again in {retry_in}): {error}",
                queue.name()
            ),
            Ok((_, _, Err(crate::policy::CheckError::Unavailable(error)))) => tracing::warn!(
                error.code = %error.code,
                error.class = ?error.class,
                failures = failures + 1,
                "The organization features could not be read yet (trying again in {retry_in}): {error}"
            ),
            Ok((_, _, Err(crate::policy::CheckError::Rejected(rejection)))) => tracing::warn!(
                error.code = rejection.code,
                failures = failures + 1,
                "The organization features could not be read yet (trying again in {retry_in}): {}",
                rejection.reason
            ),
        }
        failures += 1;
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Which queue kept the daemon from being ready.
#[derive(Debug, Clone, Copy)]
enum Unready {
    Intake,
    DeadLetter,
}

impl Unready {
    fn name(self) -> &'static str {
        match self {
            Unready::Intake => "intake queue",
            Unready::DeadLetter => "dead-letter queue",
        }
    }
}

/// The dead-letter copy of a message is its body and attributes plus the outcome and reason: a
/// dead-letter queue with a smaller size limit than the intake cannot hold every message.
fn warn_if_dead_letters_cannot_fit(intake_limit: usize, dead_letter_limit: usize) {
    if dead_letter_limit < intake_limit {
        tracing::warn!(
            intake_limit,
            dead_letter_limit,
            "The dead-letter queue's MaximumMessageSize is smaller than the intake queue's: a rejected or failed message too large for it stays in the intake queue for SQS's redrive policy, without its reason. Give both queues the same MaximumMessageSize."
        );
    }
}

/// Receives only as many messages as there are free workers, so nothing waits in a local
/// buffer while its visibility runs out.
async fn poll(
    context: &Arc<WorkerContext>,
    intake_url: &str,
    health: &Health,
    workers: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let config = &context.config;
    let pool = Arc::new(Semaphore::new(config.workers.concurrency));
    // Waiting for a full batch of free workers keeps receives (and so SQS calls) at ten
    // messages each under load; an idle pool has them free at once.
    let batch = config.workers.concurrency.min(10);
    let mut error_delay = Duration::from_millis(250);
    loop {
        let mut permits = tokio::select! {
            _ = shutdown.cancelled() => return,
            permits = free_workers(&pool, batch, health) => permits,
        };
        health.beat();
        let mut receive = {
            let (context, url, max, wait, visibility) = (
                context.clone(),
                intake_url.to_owned(),
                permits.num_permits(),
                config.intake.wait_time,
                config.intake.visibility_timeout,
            );
            Box::pin(async move { intake::receive(&context.clients, &context.metrics, &url, max, wait, visibility).await })
        };
        let received = tokio::select! {
            received = &mut receive => received,
            _ = shutdown.cancelled() => {
                // SQS answers a long poll already sent even if we stop listening, and what it
                // hands to a closed connection stays hidden for a visibility timeout. So the
                // poll is finished in the background, within the drain, and its messages are
                // handed back at once (unless the grace runs out first).
                let context = context.clone();
                workers.spawn(async move {
                    tokio::select! {
                        received = receive => {
                            if let Ok(messages) = received {
                                release(&context, messages).await;
                            }
                        }
                        _ = context.hard_stop.cancelled() => {}
                    }
                });
                return;
            }
        };
        match received {
            Ok(messages) => {
                error_delay = Duration::from_millis(250);
                for message in messages {
                    let permit = permits.split(1).expect("one permit per received message");
                    // The permit (a worker) is held until the message is deleted, not only
                    // until the job ends: acknowledgements that fall behind slow intake, instead
                    // of piling up unacknowledged messages in the queue.
                    workers.spawn(worker::handle(message, permit, context.clone()));
                }
            }
            Err(error) => {
                tracing::warn!(%error, "Receiving from the intake queue failed; trying again shortly.");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(error_delay) => {}
                }
                error_delay = (error_delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Makes messages received during shutdown visible again at once, for another replica.
async fn release(context: &WorkerContext, messages: Vec<intake::Received>) {
    for message in messages {
        if let Err(error) = context.acknowledger.set_visibility(&message, Duration::ZERO).await {
            tracing::warn!(%error, "Could not release a message received during shutdown; it returns after its visibility timeout.");
        }
    }
}

/// Waits for `batch` free workers, beating the liveness clock while it waits.
async fn free_workers(pool: &Arc<Semaphore>, batch: usize, health: &Health) -> OwnedSemaphorePermit {
    let acquire = pool.clone().acquire_many_owned(batch as u32);
    tokio::pin!(acquire);
    loop {
        tokio::select! {
            permits = &mut acquire => return permits.expect("the worker pool is never closed"),
            _ = tokio::time::sleep(Duration::from_secs(5)) => health.beat(),
        }
    }
}

/// Lets running jobs finish within `grace`; then tells the rest to release their messages.
async fn drain(workers: &TaskTracker, hard_stop: &CancellationToken, grace: Duration) {
    workers.close();
    let running = workers.len();
    if running > 0 {
        tracing::info!(running, grace_s = grace.as_secs(), "Stopped receiving; waiting for running jobs to finish.");
    }
    if tokio::time::timeout(grace, workers.wait()).await.is_err() {
        tracing::warn!(running = workers.len(), "The shutdown grace ran out; releasing the messages of unfinished jobs.");
        hard_stop.cancel();
        workers.wait().await;
    }
}

/// Reads queue depths for `rootwarden_queue_messages`, so backlog and dead-letter depth are on
/// the dashboard without a CloudWatch data source.
async fn poll_queue_depths(config: Config, clients: Clients, metrics: Metrics, shutdown: CancellationToken) {
    let queues: Vec<(&str, String)> = [
        ("intake", config.intake.queue_url.clone()),
        ("dead_letter", config.intake.dead_letter_queue_url.clone()),
        ("results", config.results.queue_url.clone()),
    ]
    .into_iter()
    .filter_map(|(name, url)| url.map(|url| (name, url)))
    .collect();
    let mut ticker = tokio::time::interval(config.telemetry.queue_metrics_interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        for (queue, url) in &queues {
            let request = clients
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
                .send();
            let Ok(output) = aws::call(&metrics, "sqs", "GetQueueAttributes", request).await else { continue };
            let attributes = output.attributes.unwrap_or_default();
            for (state, name) in [
                ("visible", QueueAttributeName::ApproximateNumberOfMessages),
                ("in_flight", QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
                ("delayed", QueueAttributeName::ApproximateNumberOfMessagesDelayed),
            ] {
                if let Some(count) = attributes.get(&name).and_then(|v| v.parse::<i64>().ok()) {
                    metrics.queue_messages.with_label_values(&[queue, state]).set(count);
                }
            }
        }
    }
}

/// Feeds the systemd watchdog while the poller is alive; a stalled poller lets systemd restart
/// the service.
async fn feed_watchdog(period: Duration, health: Arc<Health>, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => if health.is_alive() { systemd::watchdog() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tests::status;

    /// A daemon whose AWS endpoint refuses every connection: it never becomes ready.
    async fn daemon_without_aws() -> Daemon {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let mut config = Config::default();
        config.aws.endpoint_url = Some(format!("http://{closed}"));
        config.aws.max_attempts = 1;
        config.intake.queue_url = Some(format!("http://{closed}/123456789012/intake"));
        config.intake.dead_letter_queue_url = Some(format!("http://{closed}/123456789012/intake-dlq"));
        config.telemetry.listen = "127.0.0.1:0".into();
        Daemon::new(config, Some(Credentials::new("AKIDTEST", "secret", None, None, "tests"))).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_for_the_queues_is_alive_but_not_ready() {
        let daemon = daemon_without_aws().await;
        let (addr, health) = (daemon.local_addr(), daemon.health.clone());
        // As if the wait had already lasted longer than the poller may stay silent: only a
        // beat from the waiting loop makes it alive again.
        health.stall();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(daemon.run(shutdown.clone()));

        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !health.is_alive() {
            assert!(tokio::time::Instant::now() < deadline, "the wait for the queues never showed life");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(status(addr, "/healthz").await, 200, "waiting for AWS is alive: a restart would not help");
        assert_eq!(status(addr, "/readyz").await, 503, "the queues never answered");

        shutdown.cancel();
        running.await.unwrap().unwrap();
    }
}

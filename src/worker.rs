//! One job, from received message to acknowledgement: validate, check the guardrails, take a
//! root session, run the task (with a visibility heartbeat), and end in exactly one result,
//! or hand the message back for a retry.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::ack::{Acknowledger, Disposal};
use crate::aws::{AwsCallError, Clients, ErrorClass};
use crate::config::{Config, PolicyConfig};
use crate::events;
use crate::intake::{GroupTurn, Received};
use crate::job::{Job, JobError, JobHeader};
use crate::metrics::Metrics;
use crate::outcome::{Delivery, Ending, JobFacts, JobResult};
use crate::policy::{self, AccountLimiter, CheckError, Organization, PolicyHandle};
use crate::sessions::{SessionCache, SessionError};
use crate::sqs::SendError;
use crate::tasks::{self, TaskContext, TaskError};

/// Everything workers share.
pub struct WorkerContext {
    /// The configuration the daemon started with.
    pub config: Config,
    /// The daemon's clients.
    pub clients: Clients,
    /// Metrics.
    pub metrics: Metrics,
    /// The policy in force.
    pub policy: PolicyHandle,
    /// Organization facts.
    pub organization: Organization,
    /// Root sessions.
    pub sessions: SessionCache,
    /// Per-account serialisation.
    pub accounts: AccountLimiter,
    /// Deletes, dead letters, results, visibility.
    pub acknowledger: Acknowledger,
    /// Cancelled when the shutdown grace has run out: running jobs stop and release their
    /// messages to another replica.
    pub hard_stop: CancellationToken,
}

/// How a delivery ends.
enum Decision {
    /// A final outcome: one result, then delete or dead-letter.
    Final { facts: Box<Facts>, ending: Ending, dry_run: bool },
    /// A transient failure: the message comes back after a backoff.
    Retry { code: String, reason: String },
    /// Shutdown cut the job short: the message is made visible at once.
    Released,
    /// A message before it in its FIFO group (received in the same batch) was handed back: this
    /// one did not run and is made visible at once, to come back after that one.
    HeldBack,
}

/// What is known of the job: a valid job, or what could be salvaged of an invalid message.
enum Facts {
    Parsed(Job),
    Salvaged(JobHeader),
}

/// Why a parsed job did not end in a task report.
enum JobFailure {
    Rejected(policy::Rejection),
    Session(SessionError),
    Task {
        error: AwsCallError,
        access_key_id: String,
    },
    /// The task could not be done as asked; nothing was changed.
    Refused {
        code: &'static str,
        reason: String,
        access_key_id: String,
    },
    Unavailable(AwsCallError),
    TimedOut,
    ThrottledTooLong,
}

/// Handles one message to its end.
pub async fn handle(message: Received, worker: OwnedSemaphorePermit, context: Arc<WorkerContext>) {
    context.metrics.jobs_received.inc();
    context.metrics.jobs_in_flight.inc();
    let started_at = SystemTime::now();
    let started = Instant::now();
    let span = tracing::info_span!(
        "job",
        otel.name = "rootwarden.job",
        otel.kind = "consumer",
        messaging.system = "aws_sqs",
        messaging.operation = "process",
        messaging.message.id = %message.message_id,
        rootwarden.attempt = message.receive_count,
        rootwarden.job_id = tracing::field::Empty,
        rootwarden.task = tracing::field::Empty,
        cloud.account.id = tracing::field::Empty,
        rootwarden.outcome = tracing::field::Empty,
        rootwarden.root_session.access_key_id = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    crate::telemetry::link_parent(&span, message.traceparent());
    async {
        let mut turn = TurnGuard { turn: message.turn.as_ref(), ended: false };
        let (mut started_at, mut started) = (started_at, started);
        // FIFO order: a message received with earlier ones of its group runs once they have
        // ended (its visibility extended meanwhile), and never after one was handed back.
        let work = async {
            if let Some(turn) = &message.turn
                && !turn.wait().await
            {
                return Decision::HeldBack;
            }
            (started_at, started) = (SystemTime::now(), Instant::now());
            decide(&message, &context).await
        };
        let decision = with_heartbeat(work, &message, &context).await;
        turn.ended = settle(decision, &message, worker, &context, started_at, started).await;
    }
    .instrument(span)
    .await;
    context.metrics.jobs_in_flight.dec();
}

/// Passes the turn of a FIFO group's batch on when the job is over: to the next message when it
/// ended, else (backed off, released, or its task panicked) the later messages are handed back.
struct TurnGuard<'a> {
    turn: Option<&'a GroupTurn>,
    ended: bool,
}

impl Drop for TurnGuard<'_> {
    fn drop(&mut self) {
        match self.turn {
            Some(turn) if self.ended => turn.ended(),
            Some(turn) => turn.handed_back(),
            None => {}
        }
    }
}

/// Runs `work` while extending the message's visibility, so a slow job is never delivered
/// twice; stops (releasing the message) when the shutdown grace runs out.
async fn with_heartbeat(
    work: impl std::future::Future<Output = Decision>,
    message: &Received,
    context: &WorkerContext,
) -> Decision {
    let visibility = context.config.intake.visibility_timeout;
    let period = (visibility / 2).max(Duration::from_millis(500));
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    tokio::pin!(work);
    loop {
        tokio::select! {
            decision = &mut work => return decision,
            _ = ticker.tick() => {
                match context.acknowledger.set_visibility(message, visibility).await {
                    Ok(()) => context.metrics.visibility_extensions.inc(),
                    Err(error) => tracing::warn!(%error, "Could not extend the message's visibility; it may be delivered again."),
                }
            }
            _ = context.hard_stop.cancelled() => return Decision::Released,
        }
    }
}

/// Everything up to the decision, without acknowledging.
async fn decide(message: &Received, context: &WorkerContext) -> Decision {
    let job = match Job::parse(&message.body) {
        Ok(job) => job,
        Err(error) => {
            let code = match error {
                JobError::Malformed(_) => "job.malformed",
                JobError::Invalid(_) => "job.invalid",
            };
            let facts = Box::new(Facts::Salvaged(JobHeader::salvage(&message.body)));
            return Decision::Final { facts, ending: Ending::rejected(code, error.to_string()), dry_run: false };
        }
    };
    let span = tracing::Span::current();
    span.record("rootwarden.job_id", job.job_id.as_str());
    span.record("rootwarden.task", job.task.as_str());
    span.record("cloud.account.id", job.account_id.as_str());

    let policy = context.policy.current();
    let dry_run = job.dry_run || policy.dry_run;
    let result = match policy::check_static(&policy, &job, &message.provenance, SystemTime::now()) {
        Err(rejection) => Err(JobFailure::Rejected(rejection)),
        Ok(()) => run_checked(&job, &policy, dry_run, context).await,
    };
    let last_attempt = message.receive_count >= context.config.intake.max_receive_count;
    let ending = match result {
        Ok((report, access_key_id)) => {
            Ending { reason: report.reason, ..Ending::done(report.outcome, report.findings, Some(access_key_id)) }
        }
        Err(failure) => match classify(failure, last_attempt) {
            Ok(ending) => ending,
            Err((code, reason)) => return Decision::Retry { code, reason },
        },
    };
    Decision::Final { facts: Box::new(Facts::Parsed(job)), ending, dry_run }
}

/// The organization checks, the per-account slot, and the task.
async fn run_checked(
    job: &Job,
    policy: &PolicyConfig,
    dry_run: bool,
    context: &WorkerContext,
) -> Result<(tasks::TaskReport, String), JobFailure> {
    match context.organization.check(job, policy).await {
        Err(CheckError::Rejected(rejection)) => return Err(JobFailure::Rejected(rejection)),
        Err(CheckError::Unavailable(error)) => return Err(JobFailure::Unavailable(error)),
        Ok(()) => {}
    }
    let _slot = context.accounts.acquire(&job.account_id).await;
    run_task(job, dry_run, context).await
}

/// The first pause after a throttled task call; it doubles (with jitter) up to the maximum.
const THROTTLED_TASK_PAUSE: Duration = Duration::from_secs(1);
const THROTTLED_TASK_PAUSE_MAX: Duration = Duration::from_secs(30);

/// Runs the task with a cached or new session. Only the task's own calls count against
/// `workers.job_timeout`: waiting for a session (the AssumeRoot pace, STS throttling, another
/// job's AssumeRoot) and pausing after a throttled task call are waits, bounded together by
/// `workers.max_throttle_wait`, so a throttling storm never costs an attempt. An expired token
/// evicts the session and the task runs once more with a fresh one; a throttled task runs again
/// from the start after a pause (every task is safe to run again: what is done is found done).
async fn run_task(job: &Job, dry_run: bool, context: &WorkerContext) -> Result<(tasks::TaskReport, String), JobFailure> {
    let region = job.region.as_deref().unwrap_or(context.clients.region());
    let workers = &context.config.workers;
    let mut work_left = workers.job_timeout;
    let waits_end = Instant::now() + workers.max_throttle_wait;
    let mut pause = THROTTLED_TASK_PAUSE;
    let mut retried_expired = false;
    loop {
        let session = tokio::time::timeout_at(waits_end, context.sessions.session(&job.account_id, job.task))
            .await
            .map_err(|_| JobFailure::ThrottledTooLong)?
            .map_err(JobFailure::Session)?;
        tracing::Span::current().record("rootwarden.root_session.access_key_id", session.access_key_id.as_str());
        let task_context =
            TaskContext { clients: &context.clients, metrics: &context.metrics, session: &session, region, dry_run };
        let started = Instant::now();
        let performed = tokio::time::timeout(work_left, tasks::perform(job, task_context)).await;
        work_left = work_left.saturating_sub(started.elapsed());
        match performed {
            Err(_) => return Err(JobFailure::TimedOut),
            Ok(Ok(report)) => return Ok((report, session.access_key_id.clone())),
            Ok(Err(TaskError::Refused { code, reason })) => {
                return Err(JobFailure::Refused { code, reason, access_key_id: session.access_key_id.clone() });
            }
            Ok(Err(TaskError::Aws(error))) if error.class == ErrorClass::ExpiredToken && !retried_expired => {
                tracing::info!(access_key_id = %session.access_key_id, "The root session expired; retrying with a fresh one.");
                context.sessions.evict(&session);
                retried_expired = true;
            }
            Ok(Err(TaskError::Aws(error))) if error.class == ErrorClass::Throttled && Instant::now() + pause < waits_end => {
                let delay = pause.mul_f64(rand::random_range(0.8..=1.0));
                events::task_throttled(&error, delay);
                tokio::time::sleep(delay).await;
                pause = (pause * 2).min(THROTTLED_TASK_PAUSE_MAX);
            }
            Ok(Err(TaskError::Aws(error))) => {
                return Err(JobFailure::Task { error, access_key_id: session.access_key_id.clone() });
            }
        }
    }
}

/// A final ending, or `Err((code, reason))` for a retry. The last allowed attempt turns a
/// transient failure into `failed`.
fn classify(failure: JobFailure, last_attempt: bool) -> Result<Ending, (String, String)> {
    let (class, code, reason, access_key_id) = match failure {
        JobFailure::Rejected(rejection) => return Ok(Ending::rejected(rejection.code, rejection.reason)),
        JobFailure::Refused { code, reason, access_key_id } => return Ok(Ending::failed(code, reason, Some(access_key_id))),
        JobFailure::Session(error) => (error.class(), error.code().to_owned(), error.to_string(), None),
        JobFailure::Task { error, access_key_id } => (error.class, error.code.clone(), error.to_string(), Some(access_key_id)),
        JobFailure::Unavailable(error) => (ErrorClass::Transient, error.code.clone(), error.to_string(), None),
        JobFailure::TimedOut => {
            (ErrorClass::Transient, "JobTimeout".into(), "the job did not finish within workers.job_timeout".into(), None)
        }
        JobFailure::ThrottledTooLong => (
            ErrorClass::Transient,
            "ThrottleWaitExceeded".into(),
            "the job waited out throttling for longer than workers.max_throttle_wait".into(),
            None,
        ),
    };
    match class {
        ErrorClass::Permanent => Ok(Ending::failed(&code, reason, access_key_id)),
        _ if last_attempt => Ok(Ending::failed(&code, format!("retries exhausted; last error: {reason}"), access_key_id)),
        _ => Err((code, reason)),
    }
}

/// Acts on the decision: result and delete, dead letter, backoff, or release. True when the job
/// ended (its result is on its way), false when its message was handed back to come again.
async fn settle(
    decision: Decision,
    message: &Received,
    worker: OwnedSemaphorePermit,
    context: &WorkerContext,
    started_at: SystemTime,
    started: Instant,
) -> bool {
    let ack = &context.acknowledger;
    let decision = match decision {
        Decision::Released | Decision::HeldBack if message.receive_count >= context.config.intake.max_receive_count => {
            last_attempt_handed_back(&decision, message, context)
        }
        decision => decision,
    };
    match decision {
        Decision::Final { facts, ending, dry_run } => {
            let delivery = Delivery { message_id: message.message_id.clone(), attempt: message.receive_count, started_at };
            let job_facts = match facts.as_ref() {
                Facts::Parsed(job) => JobFacts::Parsed(job),
                Facts::Salvaged(header) => JobFacts::Salvaged(header),
            };
            let result = JobResult::new(job_facts, &delivery, ending, dry_run);
            finish(result, message, worker, context, started.elapsed()).await
        }
        Decision::Retry { code, reason } => {
            let delay = backoff(&context.config, message.receive_count);
            events::job_retrying(&code, &reason, message.receive_count, delay);
            if let Err(error) = ack.set_visibility(message, delay).await {
                tracing::warn!(%error, "Could not set the retry delay; the message returns after its visibility timeout.");
            }
            false
        }
        Decision::Released => {
            events::job_released();
            if let Err(error) = ack.set_visibility(message, Duration::ZERO).await {
                tracing::warn!(%error, "Could not release the message; it returns after its visibility timeout.");
            }
            false
        }
        Decision::HeldBack => {
            // Visible again at once, but SQS keeps the group locked while the earlier message
            // is hidden, and hands that one out first.
            tracing::info!(
                group = message.group_id.as_deref().unwrap_or_default(),
                "An earlier message of this FIFO group, received in the same batch, will come back first; this one is handed back without running, to keep the group's order."
            );
            if let Err(error) = ack.set_visibility(message, Duration::ZERO).await {
                tracing::warn!(%error, "Could not hand the message back; it returns after its visibility timeout.");
            }
            false
        }
    }
}

/// A message that would be handed back on its last allowed attempt ends here instead, `failed`
/// with its reason: handed back, its next receive would pass the queue's redrive
/// `maxReceiveCount` (kept equal to `intake.max_receive_count`), and SQS would move it to the
/// dead-letter queue itself, with no result and no reason. Redriven from there, it runs again.
fn last_attempt_handed_back(decision: &Decision, message: &Received, context: &WorkerContext) -> Decision {
    let attempts = context.config.intake.max_receive_count;
    let (code, why) = match decision {
        Decision::Released => ("ReleasedOnLastAttempt", "the shutdown grace ran out while it ran"),
        _ => ("HeldBackOnLastAttempt", "an earlier message of its FIFO group came back first"),
    };
    let reason = format!(
        "{why}, on its last attempt ({} of intake.max_receive_count {attempts}): redrive it from the dead-letter queue to run it again",
        message.receive_count
    );
    let facts = Box::new(Facts::Salvaged(JobHeader::salvage(&message.body)));
    Decision::Final { facts, ending: Ending::failed(code, reason, None), dry_run: false }
}

/// The FIFO message group of a job's result and dead-letter copy: its account, or one group
/// for every message that names no account.
const NO_ACCOUNT_GROUP: &str = "rootwarden-no-account";

/// Records the result, then acknowledges: dead letter first (so nothing is lost), then the
/// result and the delete. False when the message was left to come back instead.
async fn finish(
    mut result: JobResult,
    message: &Received,
    worker: OwnedSemaphorePermit,
    context: &WorkerContext,
    elapsed: Duration,
) -> bool {
    let ack = &context.acknowledger;
    tracing::Span::current().record("rootwarden.outcome", result.outcome.as_str());
    let group = result.account_id.clone().filter(|a| crate::job::is_account_id(a)).unwrap_or(NO_ACCOUNT_GROUP.into());
    let mut disposal = Disposal::Delete;
    if result.outcome.goes_to_dead_letter_queue() {
        let reason = result.reason.as_deref().unwrap_or_default();
        match ack.dead_letter(message, result.outcome, reason, &group).await {
            Ok(()) => {}
            Err(SendError::TooLarge { size, limit }) => {
                // The copy cannot be made: the message stays in the intake queue for SQS's own
                // redrive, never deleted. One result says so, on the last attempt.
                if message.receive_count < context.config.intake.max_receive_count {
                    let delay = backoff(&context.config, message.receive_count);
                    events::job_retrying(
                        "DeadLetterQueueTooSmall",
                        "the dead-letter queue cannot hold the message",
                        message.receive_count,
                        delay,
                    );
                    if let Err(error) = ack.set_visibility(message, delay).await {
                        tracing::warn!(%error, "Could not set the retry delay; the message returns after its visibility timeout.");
                    }
                    return false;
                }
                result.note(&format!(
                    "the dead-letter queue cannot hold this message ({size} bytes with the reason, its limit {limit}): it is left in the intake queue for SQS's redrive policy"
                ));
                disposal = Disposal::Keep;
            }
            Err(error) => {
                // The message stays in the intake queue and comes back; its result is written then.
                tracing::error!(%error, "Could not move the message to the dead-letter queue; it will be delivered again.");
                return false;
            }
        }
    }
    let result_json = serde_json::to_string(&result).expect("results serialize");
    events::job_ended(&context.metrics, &result, &result_json, elapsed);
    ack.complete(message, result_json, &group, worker, disposal);
    true
}

/// Exponential backoff by receive count, with jitter so that retries of a burst spread out.
fn backoff(config: &Config, receive_count: u32) -> Duration {
    let intake = &config.intake;
    let exponent = receive_count.saturating_sub(1).min(16);
    let base = intake.backoff_base.saturating_mul(1 << exponent).min(intake.backoff_max);
    let jitter = rand::random_range(0.8..=1.0);
    base.mul_f64(jitter).max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut config = Config::default();
        config.intake.backoff_base = Duration::from_secs(2);
        config.intake.backoff_max = Duration::from_secs(30);
        let first = backoff(&config, 1);
        assert!(first >= Duration::from_millis(1600) && first <= Duration::from_secs(2));
        let third = backoff(&config, 3);
        assert!(third >= Duration::from_millis(6400) && third <= Duration::from_secs(8));
        assert!(backoff(&config, 12) <= Duration::from_secs(30));
    }

    #[test]
    fn the_last_attempt_turns_transient_into_failed() {
        let error = AwsCallError {
            service: "s3",
            operation: "GetBucketPolicy",
            code: "ServiceUnavailable".into(),
            message: "slow down".into(),
            class: ErrorClass::Transient,
            redirect_region: None,
        };
        let failure = || JobFailure::Task { error: error.clone(), access_key_id: "ASIA1".into() };
        assert!(classify(failure(), false).is_err());
        let ending = classify(failure(), true).unwrap();
        assert_eq!(ending.outcome, Outcome::Failed);
        assert!(ending.reason.unwrap().starts_with("retries exhausted"));
        let permanent = AwsCallError { class: ErrorClass::Permanent, code: "AccessDenied".into(), ..error.clone() };
        let ending = classify(JobFailure::Task { error: permanent, access_key_id: "ASIA1".into() }, false).unwrap();
        assert_eq!(ending.error_code.as_deref(), Some("AccessDenied"));
    }
}

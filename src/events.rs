//! Job events: each log line and the metrics that go with it are emitted from one place, so a
//! dashboard and the logs never disagree.

use std::time::Duration;

use crate::aws::AwsCallError;
use crate::metrics::Metrics;
use crate::outcome::{JobResult, Outcome};

/// A job ended with a result: the result's JSON log line, and the outcome counters (a rejection
/// also counts under the check that refused it).
pub fn job_ended(metrics: &Metrics, result: &JobResult, result_json: &str, elapsed: Duration) {
    let task = result.task_label();
    let outcome = result.outcome.as_str();
    metrics.jobs_completed.with_label_values(&[task, outcome]).inc();
    metrics.job_duration.with_label_values(&[task]).observe(elapsed.as_secs_f64());
    if result.outcome == Outcome::Rejected {
        let check = crate::metrics::rejection_check(result.error_code.as_deref());
        metrics.jobs_rejected.with_label_values(&[check]).inc();
    }
    let reason = result.reason.as_deref().unwrap_or("");
    if result.outcome.goes_to_dead_letter_queue() {
        tracing::warn!(target: "rootwarden::result", outcome, reason, result = result_json, "The job ended without acting and went to the dead-letter queue.");
    } else {
        tracing::info!(target: "rootwarden::result", outcome, result = result_json, "The job ended.");
    }
}

/// A task call was throttled: the task runs again after `delay`, within the same attempt.
pub fn task_throttled(error: &AwsCallError, delay: Duration) {
    tracing::warn!(code = %error.code, operation = error.operation, pause_ms = delay.as_millis() as u64, "A task call was throttled; pausing, then running the task again within this attempt.");
}

/// A job failed transiently and will come back.
pub fn job_retrying(code: &str, reason: &str, attempt: u32, delay: Duration) {
    tracing::warn!(code, reason, attempt, retry_in_s = delay.as_secs(), "The job failed transiently and will be retried.");
}

/// Shutdown cut a job short and its message was handed back.
pub fn job_released() {
    tracing::warn!("The shutdown grace ran out before the job finished; its message is released to another replica.");
}

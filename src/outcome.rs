//! Outcomes and the v1 result record every received message ends in.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::job::{Job, JobHeader, Task};

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The change was made (or the audit was read).
    Succeeded,
    /// Already in the wanted state.
    NoChange,
    /// Nothing changed; findings say what would change.
    DryRun,
    /// Invalid or not allowed; no root session was requested.
    Rejected,
    /// A permanent AWS error, or retries exhausted.
    Failed,
}

impl Outcome {
    /// The label value and JSON string.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::NoChange => "no_change",
            Outcome::DryRun => "dry_run",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
    }

    /// Rejected and failed messages go to the dead-letter queue; the rest are deleted.
    pub fn goes_to_dead_letter_queue(self) -> bool {
        matches!(self, Outcome::Rejected | Outcome::Failed)
    }
}

/// The result contract (version 1): one per received message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobResult {
    /// Always 1.
    pub version: u32,
    /// The job's id, when the message had one.
    pub job_id: Option<String>,
    /// The target account, when the message had one.
    pub account_id: Option<String>,
    /// The task, when the message named a known one.
    pub task: Option<Task>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it was rejected or failed (a sentence).
    pub reason: Option<String>,
    /// The AWS error code or the rejecting check, for machines.
    pub error_code: Option<String>,
    /// Copied from the job.
    pub requested_by: Option<String>,
    /// Copied from the job.
    pub ticket: Option<String>,
    /// Whether the job ran as a dry run.
    pub dry_run: bool,
    /// What the task found or changed.
    pub findings: serde_json::Value,
    /// The root session used (joins the job with CloudTrail); never the secret.
    pub root_session_access_key_id: Option<String>,
    /// SQS ApproximateReceiveCount of the delivery that ended the job.
    pub attempt: u32,
    /// The SQS message id.
    pub message_id: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub finished_at: String,
}

/// Everything about a job's end that the worker knows besides the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    /// How it ended.
    pub outcome: Outcome,
    /// Why, for rejected and failed.
    pub reason: Option<String>,
    /// Machine-readable reason.
    pub error_code: Option<String>,
    /// Task findings.
    pub findings: serde_json::Value,
    /// The root session's access key id, when one was used.
    pub access_key_id: Option<String>,
}

impl Ending {
    /// A successful end of some kind, with findings.
    pub fn done(outcome: Outcome, findings: serde_json::Value, access_key_id: Option<String>) -> Self {
        Self { outcome, reason: None, error_code: None, findings, access_key_id }
    }

    /// A rejection by the named check.
    pub fn rejected(code: &str, reason: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Rejected,
            reason: Some(reason.into()),
            error_code: Some(code.into()),
            findings: serde_json::Value::Null,
            access_key_id: None,
        }
    }

    /// A permanent failure.
    pub fn failed(code: &str, reason: impl Into<String>, access_key_id: Option<String>) -> Self {
        Self {
            outcome: Outcome::Failed,
            reason: Some(reason.into()),
            error_code: Some(code.into()),
            findings: serde_json::Value::Null,
            access_key_id,
        }
    }
}

/// What the result knows of the job: the parsed job, or what could be salvaged of its body.
#[derive(Debug, Clone, Copy)]
pub enum JobFacts<'a> {
    /// A valid job.
    Parsed(&'a Job),
    /// An invalid message.
    Salvaged(&'a JobHeader),
}

/// Delivery facts of the SQS message.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// SQS message id.
    pub message_id: String,
    /// ApproximateReceiveCount.
    pub attempt: u32,
    /// When this delivery's work started.
    pub started_at: SystemTime,
}

impl JobResult {
    /// Assembles the result record.
    pub fn new(facts: JobFacts<'_>, delivery: &Delivery, ending: Ending, dry_run: bool) -> Self {
        let (job_id, account_id, task, requested_by, ticket) = match facts {
            JobFacts::Parsed(job) => (
                Some(job.job_id.clone()),
                Some(job.account_id.clone()),
                Some(job.task),
                job.requested_by.clone(),
                job.ticket.clone(),
            ),
            JobFacts::Salvaged(header) => (
                header.job_id.clone(),
                header.account_id.clone(),
                header.task,
                header.requested_by.clone(),
                header.ticket.clone(),
            ),
        };
        JobResult {
            version: 1,
            job_id,
            account_id,
            task,
            outcome: ending.outcome,
            reason: ending.reason.map(|reason| cut_reason(&reason)),
            error_code: ending.error_code,
            requested_by,
            ticket,
            dry_run,
            findings: bound_findings(ending.findings),
            root_session_access_key_id: ending.access_key_id,
            attempt: delivery.attempt,
            message_id: delivery.message_id.clone(),
            started_at: rfc3339(delivery.started_at),
            finished_at: rfc3339(SystemTime::now()),
        }
    }

    /// Adds a sentence to the reason (what happened to the message after the outcome).
    pub fn note(&mut self, text: &str) {
        self.reason = Some(match self.reason.take() {
            Some(reason) => format!("{reason}; {text}"),
            None => text.to_owned(),
        });
    }

    /// The task label of metrics: the task, or `unknown` for a message without one.
    pub fn task_label(&self) -> &'static str {
        self.task.map_or("unknown", Task::as_str)
    }
}

/// A reason longer than this many characters is cut: reasons may echo a message's values, and
/// a result must always be small enough to send.
pub const MAX_REASON_CHARS: usize = 1024;

/// Findings whose JSON is longer than this many bytes are replaced by a marker with their
/// beginning, so a result stays well within SQS's smallest default message size (256 KiB).
pub const MAX_FINDINGS_BYTES: usize = 128 * 1024;

/// How much of oversized findings the marker keeps.
const FINDINGS_PREVIEW_CHARS: usize = 4096;

/// `reason`, cut to [`MAX_REASON_CHARS`] with a note of how much was cut.
pub fn cut_reason(reason: &str) -> String {
    let total = reason.chars().count();
    if total <= MAX_REASON_CHARS {
        return reason.to_owned();
    }
    let kept: String = reason.chars().take(MAX_REASON_CHARS).collect();
    format!("{kept}… [{} more characters cut]", total - MAX_REASON_CHARS)
}

fn bound_findings(findings: serde_json::Value) -> serde_json::Value {
    // Measured without building the text: every job's findings pass here, nearly all small.
    if serde_json::to_writer(ByteCounter { limit: MAX_FINDINGS_BYTES, bytes: 0 }, &findings).is_ok() {
        return findings;
    }
    let json = findings.to_string();
    serde_json::json!({
        "truncated": true,
        "original_bytes": json.len(),
        "preview": json.chars().take(FINDINGS_PREVIEW_CHARS).collect::<String>(),
    })
}

/// A writer that only counts, and fails once past `limit` bytes.
struct ByteCounter {
    limit: usize,
    bytes: usize,
}

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len();
        if self.bytes > self.limit { Err(std::io::Error::other("over the limit")) } else { Ok(buf.len()) }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// RFC 3339 with millisecond precision, UTC.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result_with(ending: Ending) -> JobResult {
        let header = JobHeader::default();
        let delivery = Delivery { message_id: "m".into(), attempt: 1, started_at: SystemTime::now() };
        JobResult::new(JobFacts::Salvaged(&header), &delivery, ending, false)
    }

    #[test]
    fn an_echoed_reason_is_cut_with_a_marker() {
        let result = result_with(Ending::rejected("job.invalid", format!("task: `{}` is not one", "x".repeat(250_000))));
        let reason = result.reason.unwrap();
        assert!(reason.chars().count() < MAX_REASON_CHARS + 40, "{}", reason.len());
        assert!(reason.ends_with("more characters cut]"), "{}", &reason[reason.len() - 60..]);
    }

    #[test]
    fn oversized_findings_are_replaced_by_a_marker() {
        let big = serde_json::json!({"previous_policy": "p".repeat(MAX_FINDINGS_BYTES)});
        let result = result_with(Ending::done(Outcome::Succeeded, big, None));
        assert_eq!(result.findings["truncated"], true);
        assert!(result.findings["original_bytes"].as_u64().unwrap() > MAX_FINDINGS_BYTES as u64);
        assert!(serde_json::to_string(&result).unwrap().len() < 16 * 1024);
        let small = serde_json::json!({"password_present": true});
        assert_eq!(result_with(Ending::done(Outcome::Succeeded, small.clone(), None)).findings, small);
    }
}

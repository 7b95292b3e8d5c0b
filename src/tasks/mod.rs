//! The five root tasks, one module each. A task makes only the calls its AWS task policy
//! allows, treats "already in the wanted state" as `no_change` so a redelivered job is harmless,
//! and in a dry run makes only its read calls.

mod audit;
mod delete_credentials;
mod password_recovery;
mod s3_unlock;
mod sqs_unlock;

use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;

use crate::aws::{AwsCallError, Clients};
use crate::job::{Job, Target};
use crate::metrics::Metrics;
use crate::outcome::Outcome;
use crate::sessions::RootSession;

pub use audit::publish_posture;

/// What a task needs to run.
#[derive(Clone, Copy)]
pub struct TaskContext<'a> {
    /// The daemon's clients, from which the session's clients are derived.
    pub clients: &'a Clients,
    /// For the AWS error counter and the posture gauge.
    pub metrics: &'a Metrics,
    /// The task-scoped root session.
    pub session: &'a RootSession,
    /// Region of the job's resource.
    pub region: &'a str,
    /// Only read.
    pub dry_run: bool,
}

/// A task's successful end: `succeeded`, `no_change` or `dry_run`, with what it found or did.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskReport {
    /// How it ended.
    pub outcome: Outcome,
    /// What it found or changed.
    pub findings: serde_json::Value,
}

impl TaskReport {
    /// `dry_run` when only reading, else `succeeded`; `no_change` when nothing was to be done.
    fn change(context: &TaskContext<'_>, anything_to_do: bool, findings: serde_json::Value) -> Self {
        let outcome = match (anything_to_do, context.dry_run) {
            (false, _) => Outcome::NoChange,
            (true, true) => Outcome::DryRun,
            (true, false) => Outcome::Succeeded,
        };
        Self { outcome, findings }
    }
}

/// Runs the job's task with its root session.
pub async fn perform(job: &Job, context: TaskContext<'_>) -> Result<TaskReport, AwsCallError> {
    match &job.target {
        Target::RootUser if job.task == crate::job::Task::AuditRootUserCredentials => audit::run(&job.account_id, context).await,
        Target::RootUser => password_recovery::run(context).await,
        Target::Credentials(kinds) => delete_credentials::run(kinds, context).await,
        Target::Bucket(bucket) => s3_unlock::run(bucket, context).await,
        Target::Queue(queue_url) => sqs_unlock::run(queue_url, context).await,
    }
}

/// RFC 3339 text of an AWS timestamp.
fn iso(time: Option<&DateTime>) -> Option<String> {
    time.and_then(|t| t.fmt(Format::DateTime).ok())
}

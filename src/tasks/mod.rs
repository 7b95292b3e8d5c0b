//! The five root tasks, one module each. A task makes only the calls its AWS task policy
//! allows, treats "already in the wanted state" as `no_change` so a redelivered job is harmless,
//! and in a dry run makes only its read calls. The two unlock tasks share `unlock` (one
//! resource's policy changed and classified) and `discover` (an account's locked resources
//! found and unlocked, within the room its result has: `findings_room`).

mod audit;
mod delete_credentials;
mod discover;
mod findings_room;
mod password_recovery;
mod s3_unlock;
mod sqs_unlock;
mod unlock;

use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;

use crate::aws::{AwsCallError, Clients};
use crate::job::{Job, Target, Task};
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
    /// A sentence for a partial success (a discovery that could not unlock or read everything).
    pub reason: Option<String>,
}

impl TaskReport {
    /// `dry_run` when only reading, else `succeeded`; `no_change` when nothing was to be done.
    fn change(context: &TaskContext<'_>, anything_to_do: bool, findings: serde_json::Value) -> Self {
        let outcome = match (anything_to_do, context.dry_run) {
            (false, _) => Outcome::NoChange,
            (true, true) => Outcome::DryRun,
            (true, false) => Outcome::Succeeded,
        };
        Self { outcome, findings, reason: None }
    }
}

/// Why a task did not end in a report.
#[derive(Debug)]
pub enum TaskError {
    /// An AWS call failed; its class says whether to retry.
    Aws(AwsCallError),
    /// The job cannot be done as asked and nothing was changed (a statement it names is not in
    /// the policy): a `failed` result with this code.
    Refused {
        /// `unlock.unknown_statement`, `unlock.unreadable_policy`.
        code: &'static str,
        /// A sentence for people.
        reason: String,
    },
}

impl From<AwsCallError> for TaskError {
    fn from(error: AwsCallError) -> Self {
        Self::Aws(error)
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Aws(error) => error.fmt(f),
            Self::Refused { reason, .. } => f.write_str(reason),
        }
    }
}

/// Runs the job's task with its root session.
pub async fn perform(job: &Job, context: TaskContext<'_>) -> Result<TaskReport, TaskError> {
    let account = job.account_id.as_str();
    match &job.target {
        Target::RootUser if job.task == Task::AuditRootUserCredentials => Ok(audit::run(account, context).await?),
        Target::RootUser => Ok(password_recovery::run(context).await?),
        Target::Credentials(kinds) => Ok(delete_credentials::run(kinds, context).await?),
        Target::Bucket { bucket, change } => s3_unlock::run(bucket, change, account, context).await,
        Target::Queue { queue_url, change } => sqs_unlock::run(queue_url, change, account, context).await,
        Target::Discover { regions } if job.task == Task::S3UnlockBucketPolicy => {
            s3_unlock::discover(regions, account, context).await
        }
        Target::Discover { regions } => sqs_unlock::discover(regions, account, context).await,
    }
}

/// RFC 3339 text of an AWS timestamp.
fn iso(time: Option<&DateTime>) -> Option<String> {
    time.and_then(|t| t.fmt(Format::DateTime).ok())
}

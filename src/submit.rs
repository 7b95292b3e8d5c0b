//! Building a v1 job from command-line values, validating it as the daemon will, and posting it.

use aws_sdk_sqs::types::MessageAttributeValue;

use crate::aws::{self, AwsCallError, Clients};
use crate::job::{CredentialKind, JobMessage};
use crate::metrics::Metrics;
use crate::sqs::{FifoFields, is_fifo};

/// A job as the `submit` command's flags describe it.
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    /// Idempotency key; generated when absent.
    pub job_id: Option<String>,
    /// Target account.
    pub account_id: String,
    /// Task name.
    pub task: String,
    /// For S3UnlockBucketPolicy.
    pub bucket: Option<String>,
    /// For SQSUnlockQueuePolicy.
    pub queue_url: Option<String>,
    /// Resource region.
    pub region: Option<String>,
    /// For IAMDeleteRootUserCredentials.
    pub credentials: Option<Vec<CredentialKind>>,
    /// Who asks.
    pub requested_by: Option<String>,
    /// Approving ticket.
    pub ticket: Option<String>,
    /// Only read.
    pub dry_run: bool,
    /// W3C traceparent to continue.
    pub traceparent: Option<String>,
    /// Signed approvals (see [`crate::approvals`]); posted only when there are some.
    pub approvals: Vec<crate::approvals::Approval>,
    /// Unlock tasks: the statements to remove.
    pub remove_statements: Option<Vec<String>>,
    /// Unlock tasks: the policy to put back.
    pub restore_policy: Option<serde_json::Value>,
    /// With `restore_policy`: accept a policy that locks everyone out.
    pub allow_lockout: bool,
    /// Unlock tasks: find the account's locked resources.
    pub discover: bool,
    /// With `discover`: the regions to look in.
    pub regions: Option<Vec<String>>,
}

/// Why a job could not be posted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The job breaks the contract; nothing was sent.
    #[error("the job is invalid: {0}")]
    Invalid(#[from] crate::job::JobError),
    /// SQS refused it.
    #[error(transparent)]
    Aws(#[from] AwsCallError),
}

impl NewJob {
    /// The message body, validated exactly as the daemon validates it.
    pub fn body(&self) -> Result<String, SubmitError> {
        self.message().map(|(body, _)| body)
    }

    /// The message body and, for a FIFO intake queue, its fields: the account as the message
    /// group (SQS then hands out one account's jobs in order, one delivery at a time) and the
    /// job id, the producer's idempotency key, as the deduplication id (a second post of one job
    /// id within SQS's five-minute window is accepted and dropped).
    pub fn message(&self) -> Result<(String, FifoFields), SubmitError> {
        let job_id = self.job_id.clone().unwrap_or_else(|| format!("cli-{:016x}", rand::random::<u64>()));
        let message = JobMessage {
            version: 1,
            job_id,
            account_id: self.account_id.clone(),
            task: self.task.clone(),
            bucket: self.bucket.clone(),
            queue_url: self.queue_url.clone(),
            region: self.region.clone(),
            credentials: self.credentials.clone(),
            requested_by: self.requested_by.clone(),
            ticket: self.ticket.clone(),
            dry_run: self.dry_run.then_some(true),
            approvals: (!self.approvals.is_empty()).then(|| self.approvals.clone()),
            remove_statements: self.remove_statements.clone(),
            restore_policy: self.restore_policy.clone(),
            allow_lockout: self.allow_lockout.then_some(true),
            discover: self.discover.then_some(true),
            regions: self.regions.clone(),
        };
        let body = serde_json::to_string(&message).expect("jobs serialize");
        let job = crate::job::Job::parse(&body)?;
        Ok((body, FifoFields::new(&job.account_id, &job.job_id)))
    }
}

/// Sends the job to the intake queue and returns the SQS message id.
pub async fn submit(clients: &Clients, queue_url: &str, job: &NewJob) -> Result<String, SubmitError> {
    let (body, fifo) = job.message()?;
    let mut request = clients.sqs.send_message().queue_url(queue_url).message_body(body);
    if is_fifo(queue_url) {
        request = request.message_group_id(fifo.group_id).message_deduplication_id(fifo.deduplication_id);
    }
    if let Some(traceparent) = &job.traceparent {
        let value =
            MessageAttributeValue::builder().data_type("String").string_value(traceparent).build().expect("data type set");
        request = request.message_attributes("traceparent", value);
    }
    let output = aws::call(&Metrics::new(), "sqs", "SendMessage", request.send()).await?;
    Ok(output.message_id.unwrap_or_default())
}

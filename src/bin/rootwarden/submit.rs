//! `rootwarden submit`: one job from the flags, validated as the daemon validates it, posted to
//! the intake queue.

use std::path::PathBuf;
use std::process::ExitCode;

use rootwarden::config::{Config, not_a_queue_url};
use rootwarden::job::{CredentialKind, Task};

use crate::{exit, parse_task};

#[derive(clap::Args)]
pub(crate) struct SubmitArgs {
    /// Member account id (12 digits).
    #[arg(long)]
    account: String,
    /// IAMAuditRootUserCredentials, IAMDeleteRootUserCredentials, IAMCreateRootUserPassword,
    /// S3UnlockBucketPolicy or SQSUnlockQueuePolicy.
    #[arg(long, value_parser = parse_task)]
    task: Task,
    /// Idempotency key (default: generated).
    #[arg(long)]
    job_id: Option<String>,
    /// Bucket, for S3UnlockBucketPolicy.
    #[arg(long)]
    bucket: Option<String>,
    /// Queue URL, for SQSUnlockQueuePolicy.
    #[arg(long)]
    queue_url: Option<String>,
    /// Region of the resource.
    #[arg(long)]
    region: Option<String>,
    /// Credential kinds to delete (password, access_keys, signing_certificates, mfa_devices).
    #[arg(long, value_delimiter = ',')]
    credentials: Option<Vec<CredentialKind>>,
    /// Who asks.
    #[arg(long)]
    requested_by: Option<String>,
    /// Approving ticket.
    #[arg(long)]
    ticket: Option<String>,
    /// Only read and report.
    #[arg(long)]
    dry_run: bool,
    /// Intake queue URL (default: intake.queue_url from the configuration).
    #[arg(long)]
    pub(crate) intake_url: Option<String>,
    /// Approvals to post with the job: a JSON list of approvals, or a job as `rootwarden
    /// approve` writes it (its `approvals`). They sign the job id: pass --job-id.
    #[arg(long, value_name = "FILE", requires = "job_id")]
    approvals: Option<PathBuf>,
    /// Unlock tasks: remove only these statements (their Sids, or #index for one without) and
    /// put the rest of the policy back.
    #[arg(long, value_delimiter = ',', conflicts_with = "restore_policy")]
    remove_statements: Option<Vec<String>>,
    /// Unlock tasks: put this policy (a JSON file, e.g. an earlier result's previous_policy)
    /// in place of the resource's policy.
    #[arg(long, value_name = "FILE")]
    restore_policy: Option<PathBuf>,
    /// With --restore-policy: accept a policy that itself locks everyone out.
    #[arg(long, requires = "restore_policy")]
    allow_lockout: bool,
    /// Unlock tasks: find (and unless --dry-run, unlock) every locked bucket or queue of the
    /// account, instead of naming one.
    #[arg(long, conflicts_with_all = ["bucket", "queue_url"])]
    discover: bool,
    /// With --discover: only these regions (queues: default the job's region).
    #[arg(long, value_delimiter = ',', requires = "discover")]
    regions: Option<Vec<String>>,
}

/// The job the flags describe, validated exactly as the daemon validates it (usage error: 64).
pub(crate) fn new_job(args: SubmitArgs) -> Result<rootwarden::submit::NewJob, ExitCode> {
    let approvals = match &args.approvals {
        None => Vec::new(),
        Some(path) => read_approvals(path).map_err(|error| {
            eprintln!("rootwarden: --approvals {}: {error}", path.display());
            ExitCode::from(exit::USAGE)
        })?,
    };
    let restore_policy = match &args.restore_policy {
        None => None,
        Some(path) => Some(read_policy(path).map_err(|error| {
            eprintln!("rootwarden: --restore-policy {}: {error}", path.display());
            ExitCode::from(exit::USAGE)
        })?),
    };
    let job = rootwarden::submit::NewJob {
        job_id: args.job_id,
        account_id: args.account,
        task: args.task.to_string(),
        bucket: args.bucket,
        queue_url: args.queue_url,
        region: args.region,
        credentials: args.credentials,
        requested_by: args.requested_by.or_else(|| std::env::var("USER").ok()),
        ticket: args.ticket,
        dry_run: args.dry_run,
        traceparent: None,
        approvals,
        remove_statements: args.remove_statements,
        restore_policy,
        allow_lockout: args.allow_lockout,
        discover: args.discover,
        regions: args.regions,
    };
    match job.body() {
        Ok(_) => Ok(job),
        Err(error) => {
            eprintln!("rootwarden: {error}");
            Err(ExitCode::from(exit::USAGE))
        }
    }
}

/// A policy document from a file: JSON, either the document or a string holding it (as a
/// result's `previous_policy` is written).
fn read_policy(path: &std::path::Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))
}

/// A JSON list of approvals, or a job whose `approvals` are taken.
fn read_approvals(path: &std::path::Path) -> Result<Vec<rootwarden::approvals::Approval>, String> {
    let text = std::fs::read_to_string(path).map_err(|error| error.to_string())?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|error| format!("not JSON: {error}"))?;
    let list = match value {
        serde_json::Value::Object(mut job) => job.remove("approvals").ok_or("the job in it has no approvals")?,
        list => list,
    };
    serde_json::from_value(list).map_err(|error| format!("not a list of approvals: {error}"))
}

pub(crate) async fn submit(config: Config, job: rootwarden::submit::NewJob, intake_url: Option<String>) -> ExitCode {
    if let Some(sentence) = intake_url.as_deref().and_then(|url| not_a_queue_url(url, config.aws.endpoint_url.is_some())) {
        eprintln!("rootwarden: --intake-url {sentence}");
        return ExitCode::from(exit::USAGE);
    }
    let Some(queue_url) = intake_url.or(config.intake.queue_url.clone()) else {
        eprintln!("rootwarden: no intake queue: pass --intake-url or set intake.queue_url");
        return ExitCode::from(exit::CONFIG);
    };
    let clients = rootwarden::aws::Clients::new(rootwarden::aws::sdk_config(&config.aws, None).await);
    match rootwarden::submit::submit(&clients, &queue_url, &job).await {
        Ok(message_id) => {
            println!("{message_id}");
            ExitCode::SUCCESS
        }
        Err(error @ rootwarden::submit::SubmitError::Invalid(_)) => {
            eprintln!("rootwarden: {error}");
            ExitCode::from(exit::USAGE)
        }
        Err(error) => {
            eprintln!("rootwarden: {error}");
            ExitCode::FAILURE
        }
    }
}

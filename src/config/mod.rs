//! Configuration: plain data with defaults in one place, loaded from a TOML file and
//! `ROOTWARDEN_<SECTION>__<KEY>` environment variables, validated so that every problem is
//! reported at once.
//!
//! - `load`: defaults, then the file, then the variables, key by key; `suggest`: the closest
//!   valid key or section for an unknown one.
//! - `queue_url`: the form of an SQS queue URL; `duration`: durations as written and read.

mod duration;
mod load;
mod queue_url;
mod suggest;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::approvals::ApproverKey;
use crate::job::{Task, is_account_id};
pub use load::missing_file_note;
use queue_url::queue_url_problem;

/// Why `url` is not an SQS queue URL, as the end of a sentence naming where it came from
/// (`intake.queue_url`, `--intake-url`), or `None` when it is one. With `local` (`aws.endpoint_url`
/// set) a local environment's `http(s)://<host>/<account>/<name>` is accepted too.
pub fn not_a_queue_url(url: &str, local: bool) -> Option<String> {
    let reason = queue_url_problem(url, local)?;
    let expected = if local {
        "https://sqs.<region>.amazonaws.com/<12-digit account id>/<queue name>, or \
         http(s)://<host>/<12-digit account id>/<queue name> as aws.endpoint_url is set"
    } else {
        "https://sqs.<region>.amazonaws.com/<12-digit account id>/<queue name>"
    };
    Some(format!("`{url}` is not an SQS queue URL: {reason} (expected {expected})"))
}

/// The path used when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/rootwarden/rootwarden.toml";

/// Exit status for an unusable configuration (`EX_CONFIG` from sysexits.h).
pub const EXIT_CONFIG: i32 = 78;

/// The whole daemon configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where and how AWS is reached.
    pub aws: AwsConfig,
    /// The SQS intake queue that jobs arrive on.
    pub intake: IntakeConfig,
    /// Where results are sent besides the log.
    pub results: ResultsConfig,
    /// The worker pool.
    pub workers: WorkersConfig,
    /// The root session cache.
    pub sessions: SessionsConfig,
    /// Guardrails applied before any root session is requested.
    pub policy: PolicyConfig,
    /// Metrics, traces, logs and health endpoints.
    pub telemetry: TelemetryConfig,
    /// Graceful shutdown.
    pub shutdown: ShutdownConfig,
}

/// `[aws]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    /// The daemon's region: its STS regional endpoint, its queues, and the default region of
    /// a job's resources.
    pub region: String,
    /// Sends every AWS call to this endpoint instead of AWS (the local AWS environment).
    pub endpoint_url: Option<String>,
    /// Attempts the SDK makes for one AWS call before the job sees the error (1 = no SDK retry;
    /// job-level retries through the queue still apply).
    pub max_attempts: u32,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self { region: "us-east-1".into(), endpoint_url: None, max_attempts: 3 }
    }
}

/// `[intake]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// URL of the SQS queue that jobs are posted to. Required.
    pub queue_url: Option<String>,
    /// URL of the queue that rejected and failed jobs are moved to. Required.
    pub dead_letter_queue_url: Option<String>,
    /// How long a received message stays hidden; extended while its job runs.
    #[serde(with = "duration")]
    pub visibility_timeout: Duration,
    /// Long-polling wait of one ReceiveMessage call (0 to 20 s).
    #[serde(with = "duration")]
    pub wait_time: Duration,
    /// Attempts before a transient failure becomes `failed`; keep it at most the queue's own
    /// redrive `maxReceiveCount`, so the daemon, not SQS, dead-letters with a reason.
    pub max_receive_count: u32,
    /// First retry delay of a transiently failed job; doubles with each receive.
    #[serde(with = "duration")]
    pub backoff_base: Duration,
    /// Upper bound of the retry delay.
    #[serde(with = "duration")]
    pub backoff_max: Duration,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            queue_url: None,
            dead_letter_queue_url: None,
            visibility_timeout: Duration::from_secs(60),
            wait_time: Duration::from_secs(20),
            max_receive_count: 5,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// `[results]`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ResultsConfig {
    /// URL of a queue that receives every result as a JSON message (optional).
    pub queue_url: Option<String>,
}

/// `[workers]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// Jobs run at once by this replica.
    pub concurrency: usize,
    /// Longest time one job's work may take (its AWS calls); a job past it is retried later.
    /// Waiting for the AssumeRoot pace, for a throttled call's retry or for another job's
    /// AssumeRoot is not work and does not count.
    #[serde(with = "duration")]
    pub job_timeout: Duration,
    /// Longest time one delivery of a job may spend waiting out throttling (the AssumeRoot pace,
    /// throttled calls). Past it the job is retried later like any transient failure, which
    /// costs an attempt: a bound, so that a storm that never ends cannot hold messages forever.
    #[serde(with = "duration")]
    pub max_throttle_wait: Duration,
    /// Jobs run at once for one account by this replica (root actions on one account never race).
    pub per_account: usize,
    /// OS threads that run the daemon's tasks. 1 runs everything on one thread, which costs
    /// the least CPU per job (no cross-thread wake-ups); the work is waiting on AWS, and one
    /// core serves well over a thousand jobs a second. 0 means one thread per CPU. Read at
    /// start-up only.
    pub runtime_threads: usize,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            concurrency: 32,
            job_timeout: Duration::from_secs(60),
            max_throttle_wait: Duration::from_secs(30 * 60),
            per_account: 1,
            runtime_threads: 1,
        }
    }
}

/// `[sessions]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// `DurationSeconds` asked of AssumeRoot (at most 900 s).
    #[serde(with = "duration")]
    pub duration: Duration,
    /// A cached session is handed to a job only with at least this much time left.
    #[serde(with = "duration")]
    pub min_remaining: Duration,
    /// Most (account, task) sessions held at once.
    pub capacity: usize,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self { duration: Duration::from_secs(900), min_remaining: Duration::from_secs(120), capacity: 10_000 }
    }
}

/// `[policy]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Tasks this daemon performs; empty means all five.
    pub allowed_tasks: Vec<String>,
    /// Accounts jobs may target; empty means every member account.
    pub allowed_accounts: Vec<String>,
    /// Accounts no job may target, whatever else says.
    pub denied_accounts: Vec<String>,
    /// Organizational units (`ou-…`, or a root `r-…`) whose accounts, at any depth, no job may
    /// target.
    pub denied_organizational_units: Vec<String>,
    /// SQS `SenderId` values allowed to post jobs (a principal id, or `AROA…:*` for any session
    /// of a role); empty means any sender.
    pub allowed_senders: Vec<String>,
    /// Tasks that need a non-empty `ticket`.
    pub require_ticket: Vec<String>,
    /// Turns every job into a dry run.
    pub dry_run: bool,
    /// Messages older than this (by `SentTimestamp`) are rejected as stale.
    #[serde(with = "duration")]
    pub max_job_age: Duration,
    /// AssumeRoot calls per second across the process.
    pub assume_root_rate: f64,
    /// Tasks whose jobs run only with signed approvals (the two-person rule); empty: none.
    pub require_approval: Vec<String>,
    /// Valid approvals, from distinct approvers, such a job needs (at least 1).
    pub approvals_required: usize,
    /// Who may approve, with their public keys.
    pub approvers: Vec<ApproverConfig>,
}

/// One entry of `policy.approvers`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApproverConfig {
    /// The id approvals name in `approver`.
    pub id: String,
    /// PEM `PUBLIC KEY` (SubjectPublicKeyInfo) or its DER in base64 (as `aws kms
    /// get-public-key` returns it): Ed25519 or ECDSA P-256.
    pub public_key: String,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            allowed_tasks: Vec::new(),
            allowed_accounts: Vec::new(),
            denied_accounts: Vec::new(),
            denied_organizational_units: Vec::new(),
            allowed_senders: Vec::new(),
            require_ticket: vec![
                "IAMDeleteRootUserCredentials".into(),
                "IAMCreateRootUserPassword".into(),
                "S3UnlockBucketPolicy".into(),
                "SQSUnlockQueuePolicy".into(),
            ],
            dry_run: false,
            max_job_age: Duration::from_secs(24 * 3600),
            assume_root_rate: 20.0,
            require_approval: Vec::new(),
            approvals_required: 2,
            approvers: Vec::new(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (for log shippers).
    Json,
    /// Human-readable lines (for a terminal).
    Pretty,
}

/// `[telemetry]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Address of the HTTP listener serving `/metrics`, `/healthz` and `/readyz`.
    pub listen: String,
    /// OTLP/HTTP endpoint for traces; empty means no export unless
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub otlp_endpoint: String,
    /// `json` or `pretty`.
    pub log_format: LogFormat,
    /// How often queue depths are read for `rootwarden_queue_messages`.
    #[serde(with = "duration")]
    pub queue_metrics_interval: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
            otlp_endpoint: String::new(),
            log_format: LogFormat::Json,
            queue_metrics_interval: Duration::from_secs(30),
        }
    }
}

/// `[shutdown]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long running jobs may take to finish after a stop signal.
    #[serde(with = "duration")]
    pub grace: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self { grace: Duration::from_secs(20) }
    }
}

/// Every problem found in a configuration, reported together.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    /// One sentence per problem.
    pub problems: Vec<String>,
}

impl Config {
    /// Checks everything that types alone cannot, listing every problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |text: String| problems.push(text);

        if self.aws.region.trim().is_empty() {
            problem("aws.region must not be empty".into());
        }
        if let Some(url) = &self.aws.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problem(format!("aws.endpoint_url `{url}` must start with http:// or https://"));
        }
        if !(1..=10).contains(&self.aws.max_attempts) {
            problem("aws.max_attempts must be between 1 and 10".into());
        }
        for (key, value) in
            [("intake.queue_url", &self.intake.queue_url), ("intake.dead_letter_queue_url", &self.intake.dead_letter_queue_url)]
        {
            if value.as_deref().is_none_or(|url| url.trim().is_empty()) {
                problem(format!("{key} is required"));
            }
        }
        let local = self.aws.endpoint_url.is_some();
        for (key, value) in [
            ("intake.queue_url", &self.intake.queue_url),
            ("intake.dead_letter_queue_url", &self.intake.dead_letter_queue_url),
            ("results.queue_url", &self.results.queue_url),
        ] {
            if let Some(url) = value.as_deref().filter(|url| !url.trim().is_empty())
                && let Some(sentence) = not_a_queue_url(url, local)
            {
                problem(format!("{key} {sentence}"));
            }
        }
        if let (Some(intake), Some(dead_letter)) = (&self.intake.queue_url, &self.intake.dead_letter_queue_url)
            && crate::sqs::is_fifo(intake) != crate::sqs::is_fifo(dead_letter)
        {
            problem(format!(
                "intake.queue_url and intake.dead_letter_queue_url must both be FIFO queues (`.fifo`) or both standard: \
                 SQS moves messages only between queues of one kind (intake `{intake}`, dead-letter queue `{dead_letter}`)"
            ));
        }
        let intake = &self.intake;
        if intake.visibility_timeout < Duration::from_secs(1) || intake.visibility_timeout > Duration::from_secs(12 * 3600) {
            problem("intake.visibility_timeout must be between 1s and 12h".into());
        }
        if intake.wait_time > Duration::from_secs(20) {
            problem("intake.wait_time must be at most 20s (the SQS long-polling limit)".into());
        }
        if intake.max_receive_count == 0 {
            problem("intake.max_receive_count must be at least 1".into());
        }
        if intake.backoff_base.is_zero() || intake.backoff_base > intake.backoff_max {
            problem("intake.backoff_base must be above 0 and at most intake.backoff_max".into());
        }
        if intake.backoff_max > Duration::from_secs(12 * 3600) {
            problem("intake.backoff_max must be at most 12h (the SQS visibility limit)".into());
        }
        if !(1..=4096).contains(&self.workers.concurrency) {
            problem("workers.concurrency must be between 1 and 4096".into());
        }
        if self.workers.runtime_threads > 256 {
            problem("workers.runtime_threads must be between 0 (one per CPU) and 256".into());
        }
        if self.workers.max_throttle_wait < Duration::from_secs(1)
            || self.workers.max_throttle_wait > Duration::from_secs(11 * 3600)
        {
            problem(
                "workers.max_throttle_wait must be between 1s and 11h (a message stays hidden at most 12h after it is received)"
                    .into(),
            );
        }
        if self.workers.per_account == 0 {
            problem("workers.per_account must be at least 1".into());
        }
        let sessions = &self.sessions;
        if sessions.duration < Duration::from_secs(1) || sessions.duration > Duration::from_secs(900) {
            problem("sessions.duration must be between 1s and 900s (the AssumeRoot limit)".into());
        }
        if self.workers.job_timeout >= sessions.min_remaining {
            problem(
                "workers.job_timeout must be shorter than sessions.min_remaining, so a job never outlives its root session"
                    .into(),
            );
        }
        if sessions.min_remaining >= sessions.duration {
            problem("sessions.min_remaining must be shorter than sessions.duration".into());
        }
        if sessions.capacity == 0 {
            problem("sessions.capacity must be at least 1".into());
        }
        problems.extend(self.policy.problems());
        let mut problem = |text: String| problems.push(text);
        if self.telemetry.listen.parse::<SocketAddr>().is_err() {
            problem(format!("telemetry.listen `{}` must be an address like 127.0.0.1:9464", self.telemetry.listen));
        }
        if self.telemetry.queue_metrics_interval < Duration::from_secs(1) {
            problem("telemetry.queue_metrics_interval must be at least 1s".into());
        }
        if problems.is_empty() { Ok(()) } else { Err(ConfigError { problems }) }
    }
}

impl PolicyConfig {
    /// Problems of the `[policy]` section alone (a SIGHUP reload checks only these).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, tasks) in [
            ("policy.allowed_tasks", &self.allowed_tasks),
            ("policy.require_ticket", &self.require_ticket),
            ("policy.require_approval", &self.require_approval),
        ] {
            for task in tasks {
                if task.parse::<Task>().is_err() {
                    problems.push(format!("{key}: `{task}` is not one of the five root tasks"));
                }
            }
        }
        for (key, accounts) in
            [("policy.allowed_accounts", &self.allowed_accounts), ("policy.denied_accounts", &self.denied_accounts)]
        {
            for account in accounts {
                if !is_account_id(account) {
                    problems.push(format!("{key}: `{account}` is not a 12-digit account id"));
                }
            }
        }
        let duplicates: BTreeSet<_> =
            self.allowed_accounts.iter().filter(|account| self.denied_accounts.contains(account)).collect();
        if !duplicates.is_empty() {
            problems.push(format!(
                "policy: accounts both allowed and denied: {}",
                duplicates.into_iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        for unit in &self.denied_organizational_units {
            let well_formed = (unit.starts_with("ou-") || unit.starts_with("r-"))
                && unit.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !well_formed {
                problems.push(format!("policy.denied_organizational_units: `{unit}` is not an OU id (ou-…) or root id (r-…)"));
            }
        }
        for sender in &self.allowed_senders {
            if sender.trim().is_empty() || sender.contains(char::is_whitespace) {
                problems.push(format!("policy.allowed_senders: `{sender}` is not a principal id"));
            }
        }
        if !(self.assume_root_rate > 0.0 && self.assume_root_rate.is_finite()) {
            problems.push("policy.assume_root_rate must be a positive number".into());
        }
        if self.max_job_age < Duration::from_secs(1) {
            problems.push("policy.max_job_age must be at least 1s".into());
        }
        problems.extend(self.approval_problems());
        problems
    }

    fn approval_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.approvals_required == 0 {
            problems.push("policy.approvals_required must be at least 1".into());
        }
        let mut ids = BTreeSet::new();
        for approver in &self.approvers {
            let id = &approver.id;
            if id.is_empty() || id.chars().count() > 128 || id.contains(char::is_whitespace) {
                problems.push(format!("policy.approvers: id `{id}` must be 1 to 128 characters without spaces"));
            }
            if !ids.insert(id.as_str()) {
                problems.push(format!("policy.approvers: `{id}` is listed more than once"));
            }
            if let Err(error) = ApproverKey::parse(id, &approver.public_key) {
                problems.push(format!("policy.approvers: the public_key of `{id}` is {error}"));
            }
        }
        if !self.require_approval.is_empty() && ids.len() < self.approvals_required {
            problems.push(format!(
                "policy.approvals_required is {} but policy.approvers has {}: jobs of policy.require_approval tasks could never run",
                self.approvals_required,
                ids.len()
            ));
        }
        problems
    }

    /// The approvers' keys (those that parse; [`PolicyConfig::problems`] reports the others).
    pub fn approver_keys(&self) -> Vec<ApproverKey> {
        self.approvers.iter().filter_map(|a| ApproverKey::parse(&a.id, &a.public_key).ok()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid file: the two required queue URLs.
    pub(super) const MINIMAL: &str = r#"
        [intake]
        queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/in"
        dead_letter_queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq"
    "#;

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let config = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(config.sessions.duration, Duration::from_secs(900));
        assert_eq!(config.workers.concurrency, 32);
        assert_eq!(config.policy.require_ticket.len(), 4);
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let error = Config::from_toml(
            r#"
            [sessions]
            duration = "1000s"
            min_remaining = "30s"
            [workers]
            job_timeout = "60s"
            runtime_threads = 1000
            [policy]
            denied_accounts = ["12"]
            allowed_tasks = ["DeleteEverything"]
            "#,
        )
        .unwrap_err();
        let text = error.problems.join("\n");
        for expected in [
            "intake.queue_url is required",
            "intake.dead_letter_queue_url is required",
            "sessions.duration must be between",
            "workers.job_timeout must be shorter",
            "workers.runtime_threads must be between",
            "`12` is not a 12-digit account id",
            "`DeleteEverything` is not one of the five",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn approvers_are_checked_and_listed_with_the_other_problems() {
        let ed25519 = "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=";
        let good = format!(
            r#"{MINIMAL}
            [policy]
            require_approval = ["S3UnlockBucketPolicy"]
            approvals_required = 1
            approvers = [{{ id = "alice", public_key = "{ed25519}" }}]
            "#
        );
        let config = Config::from_toml(&good).unwrap();
        assert_eq!(config.policy.approver_keys().len(), 1);
        let bad = format!(
            r#"{MINIMAL}
            [policy]
            require_approval = ["S3UnlockBucketPolicy", "Nope"]
            approvals_required = 3
            approvers = [{{ id = "alice", public_key = "{ed25519}" }}, {{ id = "alice", public_key = "AAAA" }}]
            "#
        );
        let text = Config::from_toml(&bad).unwrap_err().problems.join("\n");
        for expected in [
            "policy.require_approval: `Nope` is not one of the five",
            "policy.approvers: `alice` is listed more than once",
            "policy.approvers: the public_key of `alice` is not an Ed25519 or ECDSA P-256 public key",
            "policy.approvals_required is 3 but policy.approvers has 1",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        let zero = format!("{MINIMAL}\n[policy]\napprovals_required = 0");
        assert!(Config::from_toml(&zero).unwrap_err().problems.join("\n").contains("at least 1"));
    }

    #[test]
    fn a_fifo_intake_needs_a_fifo_dead_letter_queue() {
        let mixed = r#"
            [intake]
            queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs.fifo"
            dead_letter_queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs-dlq"
        "#;
        let text = Config::from_toml(mixed).unwrap_err().problems.join("\n");
        assert!(text.contains("must both be FIFO queues (`.fifo`) or both standard"), "{text}");
        let both = mixed.replace("jobs-dlq", "jobs-dlq.fifo");
        Config::from_toml(&both).expect("two FIFO queues are a valid pair");
    }
}

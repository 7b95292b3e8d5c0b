//! The v1 job message: strict parsing and validation of what upstream systems post.

mod unlock;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::approvals::Approval;
pub use unlock::{MAX_REGIONS, MAX_REMOVE_STATEMENTS, PolicyChange};

/// One of the five AWS managed root task policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Task {
    /// Read the root user's credentials.
    #[serde(rename = "IAMAuditRootUserCredentials")]
    AuditRootUserCredentials,
    /// Delete chosen root credentials.
    #[serde(rename = "IAMDeleteRootUserCredentials")]
    DeleteRootUserCredentials,
    /// Allow password recovery (a login profile without a password).
    #[serde(rename = "IAMCreateRootUserPassword")]
    CreateRootUserPassword,
    /// Remove a bucket policy that locks everyone out.
    #[serde(rename = "S3UnlockBucketPolicy")]
    S3UnlockBucketPolicy,
    /// Remove a queue policy that locks everyone out.
    #[serde(rename = "SQSUnlockQueuePolicy")]
    SqsUnlockQueuePolicy,
}

/// The organization feature a task's root session needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrganizationFeature {
    /// Needed by the three IAM tasks.
    RootCredentialsManagement,
    /// Needed by the S3 and SQS unlock tasks.
    RootSessions,
}

impl OrganizationFeature {
    /// The name `iam:ListOrganizationsFeatures` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RootCredentialsManagement => "RootCredentialsManagement",
            Self::RootSessions => "RootSessions",
        }
    }
}

impl Task {
    /// All tasks, in the order of the design table.
    pub const ALL: [Task; 5] = [
        Task::AuditRootUserCredentials,
        Task::DeleteRootUserCredentials,
        Task::CreateRootUserPassword,
        Task::S3UnlockBucketPolicy,
        Task::SqsUnlockQueuePolicy,
    ];

    /// The exact task string of the job contract and of the AWS policy name.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::AuditRootUserCredentials => "IAMAuditRootUserCredentials",
            Task::DeleteRootUserCredentials => "IAMDeleteRootUserCredentials",
            Task::CreateRootUserPassword => "IAMCreateRootUserPassword",
            Task::S3UnlockBucketPolicy => "S3UnlockBucketPolicy",
            Task::SqsUnlockQueuePolicy => "SQSUnlockQueuePolicy",
        }
    }

    /// The AWS managed task policy; always derived from the task, never taken from a message.
    pub fn policy_arn(self) -> String {
        format!("arn:aws:iam::aws:policy/root-task/{}", self.as_str())
    }

    /// The organization feature without which AssumeRoot refuses this task.
    pub fn feature(self) -> OrganizationFeature {
        match self {
            Task::S3UnlockBucketPolicy | Task::SqsUnlockQueuePolicy => OrganizationFeature::RootSessions,
            _ => OrganizationFeature::RootCredentialsManagement,
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Task {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Task::ALL
            .into_iter()
            .find(|task| task.as_str() == text)
            .ok_or_else(|| format!("`{text}` is not one of the five root tasks"))
    }
}

/// A kind of root credential that IAMDeleteRootUserCredentials can remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// The console password (login profile).
    Password,
    /// Access keys.
    AccessKeys,
    /// X.509 signing certificates.
    SigningCertificates,
    /// MFA devices (deactivated).
    MfaDevices,
}

impl CredentialKind {
    /// All kinds: the default of a delete job.
    pub const ALL: [CredentialKind; 4] =
        [CredentialKind::Password, CredentialKind::AccessKeys, CredentialKind::SigningCertificates, CredentialKind::MfaDevices];

    /// The name used in jobs, findings and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Password => "password",
            CredentialKind::AccessKeys => "access_keys",
            CredentialKind::SigningCertificates => "signing_certificates",
            CredentialKind::MfaDevices => "mfa_devices",
        }
    }
}

impl FromStr for CredentialKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        CredentialKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| format!("`{text}` is not one of password, access_keys, signing_certificates, mfa_devices"))
    }
}

/// What a task acts on, beyond the account.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The root user itself (audit, password recovery).
    RootUser,
    /// The root user's credentials of these kinds (delete).
    Credentials(Vec<CredentialKind>),
    /// An S3 bucket, and what to do with its policy.
    Bucket {
        /// The bucket's name.
        bucket: String,
        /// Delete the policy, remove statements, or restore one.
        change: PolicyChange,
    },
    /// An SQS queue, by URL, and what to do with its policy.
    Queue {
        /// The queue's URL.
        queue_url: String,
        /// Delete the policy, remove statements, or restore one.
        change: PolicyChange,
    },
    /// Every bucket (or every queue of these regions) of the account whose policy locks everyone
    /// out: found, and in a job that is not a dry run, unlocked by removing the locking statements.
    Discover {
        /// Only these regions (sorted, deduplicated). Empty: every bucket, whatever its region;
        /// for queues, the job's region (or the daemon's).
        regions: Vec<String>,
    },
}

/// A validated v1 job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The producer's idempotency key.
    pub job_id: String,
    /// The member account acted on.
    pub account_id: String,
    /// The root task.
    pub task: Task,
    /// What the task acts on.
    pub target: Target,
    /// The resource's region; `None` means the daemon's.
    pub region: Option<String>,
    /// Who asked (free text from the producer).
    pub requested_by: Option<String>,
    /// The change ticket approving the job.
    pub ticket: Option<String>,
    /// Only read, and report what would change.
    pub dry_run: bool,
    /// Signed approvals of this job's action (the two-person rule); not part of what they sign.
    pub approvals: Vec<Approval>,
}

/// The wire form, exactly as posted; unknown fields are refused.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobMessage {
    /// Contract version; only 1 exists.
    pub version: u32,
    /// See [`Job::job_id`].
    pub job_id: String,
    /// See [`Job::account_id`].
    pub account_id: String,
    /// See [`Job::task`].
    pub task: String,
    /// Required for S3UnlockBucketPolicy only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Required for SQSUnlockQueuePolicy only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_url: Option<String>,
    /// See [`Job::region`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// For IAMDeleteRootUserCredentials only; default all kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<CredentialKind>>,
    /// See [`Job::requested_by`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// See [`Job::ticket`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// See [`Job::dry_run`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// See [`Job::approvals`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<Vec<Approval>>,
    /// Unlock tasks: the statements to remove (see [`PolicyChange::RemoveStatements`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_statements: Option<Vec<String>>,
    /// Unlock tasks: the policy to put back, a JSON object or a string holding one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_policy: Option<serde_json::Value>,
    /// With `restore_policy`: accept a policy that locks everyone out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_lockout: Option<bool>,
    /// Unlock tasks: find the account's locked resources instead of naming one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discover: Option<bool>,
    /// With `discover`: the regions to look in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<String>>,
}

/// Why a message is not a valid job. Its text names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Not JSON, or not of the job's shape (the serde message names the field).
    #[error("the body is not a v1 job: {0}")]
    Malformed(String),
    /// Well-formed, but breaking one or more field rules.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// The fields of a message that are worth reporting even when it is not a valid job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobHeader {
    /// `job_id`, when a string.
    pub job_id: Option<String>,
    /// `account_id`, when a string.
    pub account_id: Option<String>,
    /// `task`, when a known task.
    pub task: Option<Task>,
    /// `requested_by`, when a string.
    pub requested_by: Option<String>,
    /// `ticket`, when a string.
    pub ticket: Option<String>,
}

impl JobHeader {
    /// Reads what it can of a body that failed to parse, so its rejection still names the job.
    pub fn salvage(body: &str) -> Self {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body) else {
            return Self::default();
        };
        let text = |key: &str| map.get(key).and_then(|v| v.as_str()).map(|s| s.chars().take(256).collect::<String>());
        Self {
            job_id: text("job_id"),
            account_id: text("account_id"),
            task: text("task").and_then(|t| t.parse().ok()),
            requested_by: text("requested_by"),
            ticket: text("ticket"),
        }
    }
}

const MAX_FREE_TEXT: usize = 256;

/// Most approvals one job may carry (more would only cost verification time).
pub const MAX_APPROVALS: usize = 16;

/// True for exactly twelve ASCII digits.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

fn is_job_id(text: &str) -> bool {
    (1..=128).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// `eu-west-1`, `us-gov-west-1`, `ap-southeast-3`…
pub fn is_region(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// S3 bucket naming rules (general purpose buckets).
fn is_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
}

/// The account that owns a queue URL (`https://sqs.<region>.amazonaws.com/<account>/<name>`).
pub fn queue_url_account(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let mut segments = rest.split('/');
    let _host = segments.next().filter(|h| !h.is_empty())?;
    let account = segments.next()?;
    let name = segments.next().filter(|n| !n.is_empty())?;
    let well_formed_name =
        name.len() <= 80 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    (segments.next().is_none() && is_account_id(account) && well_formed_name).then_some(account)
}

/// The region an SQS queue URL names in its host (`sqs.<region>.amazonaws.com`, China's
/// `.amazonaws.com.cn`, dual-stack `.api.aws`, a VPC endpoint's `….sqs.<region>.vpce.amazonaws.com`,
/// the legacy `<region>.queue.amazonaws.com` and `queue.amazonaws.com`, which is us-east-1), or
/// `None` for a host that names none, such as a local environment's.
pub fn queue_url_region(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let host = rest.split('/').next()?;
    if host == "queue.amazonaws.com" {
        return Some("us-east-1");
    }
    if !([".amazonaws.com", ".amazonaws.com.cn", ".api.aws"].iter().any(|suffix| host.ends_with(suffix))) {
        return None;
    }
    let labels: Vec<&str> = host.split('.').collect();
    if let [region, "queue", "amazonaws", "com"] = labels[..] {
        return is_region(region).then_some(region);
    }
    labels.windows(2).find(|pair| pair[0] == "sqs" && is_region(pair[1])).map(|pair| pair[1])
}

impl Job {
    /// Parses and validates a message body, reporting every broken rule.
    pub fn parse(body: &str) -> Result<Job, JobError> {
        let message: JobMessage = serde_json::from_str(body).map_err(|e| JobError::Malformed(e.to_string()))?;
        message.validate()
    }
}

impl JobMessage {
    /// Applies the contract's field rules.
    pub fn validate(mut self) -> Result<Job, JobError> {
        let mut problems = Vec::new();
        if self.version != 1 {
            problems.push(format!("version: must be 1, not {}", self.version));
        }
        if !is_job_id(&self.job_id) {
            problems.push("job_id: must be 1 to 128 characters of A-Za-z0-9._:-".into());
        }
        if !is_account_id(&self.account_id) {
            problems.push("account_id: must be exactly 12 digits".into());
        }
        let task = self.task.parse::<Task>().map_err(|e| problems.push(format!("task: {e}"))).ok();
        if let Some(region) = &self.region
            && !is_region(region)
        {
            problems.push(format!("region: `{region}` is not an AWS region name"));
        }
        for (field, value) in [("requested_by", &self.requested_by), ("ticket", &self.ticket)] {
            if value.as_ref().is_some_and(|v| v.chars().count() > MAX_FREE_TEXT) {
                problems.push(format!("{field}: must be at most {MAX_FREE_TEXT} characters"));
            }
        }
        let approvals = self.approvals.take().unwrap_or_default();
        if approvals.len() > MAX_APPROVALS {
            problems.push(format!("approvals: at most {MAX_APPROVALS}, not {}", approvals.len()));
        }
        for (index, approval) in approvals.iter().enumerate() {
            if approval.approver.is_empty() || approval.approver.chars().count() > 128 {
                problems.push(format!("approvals[{index}].approver: must be 1 to 128 characters"));
            }
            if approval.signature.len() > 1024 || approval.not_after.len() > 64 {
                problems.push(format!("approvals[{index}]: signature or not_after too long"));
            }
        }
        let field_only_for = |field: &str, present: bool, owner: Task, problems: &mut Vec<String>| {
            if present && task.is_some_and(|t| t != owner) {
                problems.push(format!("{field}: allowed only for {owner}"));
            }
        };
        field_only_for("bucket", self.bucket.is_some(), Task::S3UnlockBucketPolicy, &mut problems);
        field_only_for("queue_url", self.queue_url.is_some(), Task::SqsUnlockQueuePolicy, &mut problems);
        field_only_for("credentials", self.credentials.is_some(), Task::DeleteRootUserCredentials, &mut problems);
        if task.is_some_and(|t| unlock::service(t).is_none()) {
            for field in self.unlock_fields_present() {
                problems.push(format!("{field}: allowed only for S3UnlockBucketPolicy and SQSUnlockQueuePolicy"));
            }
        }
        let target = task.and_then(|task| self.target(task, &mut problems));
        match (task, target) {
            (Some(task), Some(target)) if problems.is_empty() => Ok(Job {
                job_id: self.job_id,
                account_id: self.account_id,
                task,
                target,
                region: self.region,
                requested_by: self.requested_by,
                ticket: self.ticket,
                dry_run: self.dry_run.unwrap_or(false),
                approvals,
            }),
            _ => Err(JobError::Invalid(problems)),
        }
    }

    fn target(&self, task: Task, problems: &mut Vec<String>) -> Option<Target> {
        match task {
            Task::AuditRootUserCredentials | Task::CreateRootUserPassword => Some(Target::RootUser),
            Task::DeleteRootUserCredentials => {
                let mut kinds = self.credentials.clone().unwrap_or_else(|| CredentialKind::ALL.to_vec());
                if kinds.is_empty() {
                    problems.push("credentials: must name at least one kind when given".into());
                    return None;
                }
                kinds.sort();
                kinds.dedup();
                Some(Target::Credentials(kinds))
            }
            Task::S3UnlockBucketPolicy | Task::SqsUnlockQueuePolicy => {
                unlock::service(task).and_then(|service| self.unlock_target(task, service, problems))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(extra: &str) -> String {
        format!(r#"{{"version":1,"job_id":"CHG-1042-unlock","account_id":"111122223333"{extra}}}"#)
    }

    #[test]
    fn the_design_example_parses() {
        let job = Job::parse(
            r#"{"version":1,"job_id":"CHG-1042-unlock","account_id":"111122223333",
            "task":"S3UnlockBucketPolicy","bucket":"payments-artifacts","queue_url":null,
            "region":"eu-west-1","requested_by":"jira-automation","ticket":"CHG-1042","dry_run":false}"#,
        )
        .unwrap();
        assert_eq!(job.task, Task::S3UnlockBucketPolicy);
        assert_eq!(job.target, Target::Bucket { bucket: "payments-artifacts".into(), change: PolicyChange::Delete });
        assert_eq!(job.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn delete_defaults_to_every_credential_kind() {
        let job = Job::parse(&body(r#","task":"IAMDeleteRootUserCredentials""#)).unwrap();
        assert_eq!(job.target, Target::Credentials(CredentialKind::ALL.to_vec()));
        let job =
            Job::parse(&body(r#","task":"IAMDeleteRootUserCredentials","credentials":["access_keys","access_keys"]"#)).unwrap();
        assert_eq!(job.target, Target::Credentials(vec![CredentialKind::AccessKeys]));
    }

    #[test]
    fn unknown_fields_and_bad_json_are_malformed() {
        let error = Job::parse(&body(r#","task":"IAMAuditRootUserCredentials","policy_arn":"x""#)).unwrap_err();
        assert!(matches!(&error, JobError::Malformed(m) if m.contains("unknown field `policy_arn`")), "{error}");
        assert!(matches!(Job::parse("not json"), Err(JobError::Malformed(_))));
        assert!(matches!(Job::parse(r#"{"version":1}"#), Err(JobError::Malformed(m)) if m.contains("job_id")));
    }

    #[test]
    fn every_broken_rule_is_named() {
        let error = Job::parse(
            r#"{"version":2,"job_id":"has space","account_id":"12","task":"IAMCreateRootUserPassword",
            "bucket":"b","region":"mars","ticket":""}"#,
        )
        .unwrap_err();
        let text = error.to_string();
        for expected in
            ["version: must be 1", "job_id:", "account_id:", "region:", "bucket: allowed only for S3UnlockBucketPolicy"]
        {
            assert!(text.contains(expected), "{expected:?} not in {text}");
        }
    }

    #[test]
    fn a_queue_url_names_its_region_when_aws_writes_it() {
        for (url, region) in [
            ("https://sqs.eu-west-1.amazonaws.com/111122223333/q", Some("eu-west-1")),
            ("https://sqs.cn-north-1.amazonaws.com.cn/111122223333/q", Some("cn-north-1")),
            ("https://sqs.us-gov-west-1.api.aws/111122223333/q", Some("us-gov-west-1")),
            ("https://vpce-0a1b-2c3d.sqs.ap-southeast-2.vpce.amazonaws.com/111122223333/q", Some("ap-southeast-2")),
            ("https://eu-central-1.queue.amazonaws.com/111122223333/q", Some("eu-central-1")),
            ("https://queue.amazonaws.com/111122223333/q", Some("us-east-1")),
            ("http://127.0.0.1:4566/111122223333/q", None),
            ("http://sqs.eu-west-1.localhost.localstack.cloud:4566/111122223333/q", None),
            ("https://sqs.nowhere.amazonaws.com/111122223333/q", None),
        ] {
            assert_eq!(queue_url_region(url), region, "{url}");
        }
    }

    #[test]
    fn queue_url_must_belong_to_the_account() {
        let ok = body(r#","task":"SQSUnlockQueuePolicy","queue_url":"https://sqs.eu-west-1.amazonaws.com/111122223333/q""#);
        assert!(Job::parse(&ok).is_ok());
        let other = body(r#","task":"SQSUnlockQueuePolicy","queue_url":"https://sqs.eu-west-1.amazonaws.com/999999999999/q""#);
        assert!(Job::parse(&other).unwrap_err().to_string().contains("belongs to account 999999999999"));
        let missing = body(r#","task":"SQSUnlockQueuePolicy""#);
        assert!(Job::parse(&missing).unwrap_err().to_string().contains("queue_url: required"));
    }

    #[test]
    fn unknown_task_and_bad_bucket_are_rejected() {
        assert!(Job::parse(&body(r#","task":"IAMDeleteEverything""#)).unwrap_err().to_string().contains("task:"));
        let bad = body(r#","task":"S3UnlockBucketPolicy","bucket":"Bad_Bucket""#);
        assert!(Job::parse(&bad).unwrap_err().to_string().contains("not a valid S3 bucket name"));
    }

    #[test]
    fn policy_arn_comes_from_the_task() {
        assert_eq!(Task::SqsUnlockQueuePolicy.policy_arn(), "arn:aws:iam::aws:policy/root-task/SQSUnlockQueuePolicy");
        assert_eq!(Task::CreateRootUserPassword.feature(), OrganizationFeature::RootCredentialsManagement);
    }

    #[test]
    fn approvals_are_an_optional_list_of_three_fields() {
        let job = Job::parse(&body(r#","task":"IAMAuditRootUserCredentials""#)).unwrap();
        assert!(job.approvals.is_empty());
        let one = r#","task":"IAMAuditRootUserCredentials","approvals":[{"approver":"alice","signature":"c2ln","not_after":"2026-12-02T09:00:00Z"}]"#;
        let job = Job::parse(&body(one)).unwrap();
        assert_eq!(job.approvals[0].approver, "alice");
        let extra = one.replace(r#""approver""#, r#""by":"x","approver""#);
        assert!(matches!(Job::parse(&body(&extra)), Err(JobError::Malformed(m)) if m.contains("unknown field `by`")));
        let many = format!(
            r#","task":"IAMAuditRootUserCredentials","approvals":[{}]"#,
            vec![r#"{"approver":"a","signature":"","not_after":""}"#; 17].join(",")
        );
        assert!(Job::parse(&body(&many)).unwrap_err().to_string().contains("approvals: at most 16"));
    }

    /// The problems a body is refused for.
    fn refused(extra: &str) -> String {
        match Job::parse(&body(extra)) {
            Ok(job) => panic!("accepted: {job:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn job_id_is_1_to_128_characters_of_its_alphabet() {
        let with_id = |id: &str| {
            format!(r#"{{"version":1,"job_id":"{id}","account_id":"111122223333","task":"IAMAuditRootUserCredentials"}}"#)
        };
        let rule = "job_id: must be 1 to 128 characters of A-Za-z0-9._:-";
        // Every kind of character of the alphabet, up to exactly 128.
        let alphabet = "ABCXYZabcxyz0189._:-";
        let longest: String = alphabet.chars().cycle().take(128).collect();
        assert_eq!(Job::parse(&with_id(&longest)).unwrap().job_id, longest);
        assert_eq!(Job::parse(&with_id("a")).unwrap().job_id, "a");
        assert_eq!(Job::parse(&with_id("CHG_1042:unlock-2.b")).unwrap().job_id, "CHG_1042:unlock-2.b");
        let too_long: String = alphabet.chars().cycle().take(129).collect();
        for id in [too_long.as_str(), "", "has space", "slash/no", "CHG+1042", "tick\u{e9}t", "a,b"] {
            let error = Job::parse(&with_id(id)).unwrap_err().to_string();
            assert!(error.contains(rule), "{id:?}: {error}");
        }
    }

    #[test]
    fn requested_by_and_ticket_are_at_most_256_characters() {
        for field in ["requested_by", "ticket"] {
            // Characters, not bytes: 256 two-byte characters are 512 bytes and still allowed.
            for at_limit in ["x".repeat(256), "\u{e9}".repeat(256)] {
                let job = Job::parse(&body(&format!(r#","task":"IAMAuditRootUserCredentials","{field}":"{at_limit}""#)));
                let job = job.unwrap_or_else(|e| panic!("{field} of 256 characters: {e}"));
                let value = if field == "ticket" { job.ticket } else { job.requested_by };
                assert_eq!(value.as_deref(), Some(at_limit.as_str()));
            }
            for over in ["x".repeat(257), "\u{e9}".repeat(257)] {
                let error = refused(&format!(r#","task":"IAMAuditRootUserCredentials","{field}":"{over}""#));
                assert!(error.contains(&format!("{field}: must be at most 256 characters")), "{error}");
            }
        }
    }

    #[test]
    fn queue_url_and_credentials_are_refused_on_the_tasks_that_do_not_take_them() {
        let queue_url = r#""queue_url":"https://sqs.eu-west-1.amazonaws.com/111122223333/q""#;
        for task in Task::ALL.into_iter().filter(|t| *t != Task::SqsUnlockQueuePolicy) {
            let resource = if task == Task::S3UnlockBucketPolicy { r#","bucket":"b-1""# } else { "" };
            let error = refused(&format!(r#","task":"{task}"{resource},{queue_url}"#));
            assert!(error.contains("queue_url: allowed only for SQSUnlockQueuePolicy"), "{task}: {error}");
        }
        for task in Task::ALL.into_iter().filter(|t| *t != Task::DeleteRootUserCredentials) {
            let resource = match task {
                Task::S3UnlockBucketPolicy => r#","bucket":"b-1""#,
                Task::SqsUnlockQueuePolicy => r#","queue_url":"https://sqs.eu-west-1.amazonaws.com/111122223333/q""#,
                _ => "",
            };
            let error = refused(&format!(r#","task":"{task}"{resource},"credentials":["password"]"#));
            assert!(error.contains("credentials: allowed only for IAMDeleteRootUserCredentials"), "{task}: {error}");
        }
        // Each on its own task is taken.
        assert!(Job::parse(&body(&format!(r#","task":"SQSUnlockQueuePolicy",{queue_url}"#))).is_ok());
        let delete = Job::parse(&body(r#","task":"IAMDeleteRootUserCredentials","credentials":["password","mfa_devices"]"#));
        assert_eq!(delete.unwrap().target, Target::Credentials(vec![CredentialKind::Password, CredentialKind::MfaDevices]));
    }

    #[test]
    fn salvage_reads_what_it_can() {
        let header = JobHeader::salvage(r#"{"job_id":"j1","task":"S3UnlockBucketPolicy","extra":1}"#);
        assert_eq!(header.job_id.as_deref(), Some("j1"));
        assert_eq!(header.task, Some(Task::S3UnlockBucketPolicy));
        assert_eq!(JobHeader::salvage("garbage"), JobHeader::default());
    }
}

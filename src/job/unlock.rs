//! The unlock tasks' part of a job: the bucket or queue and what to do with its policy (delete
//! it, remove some statements, put a policy back), or the discovery of the account's locked
//! resources.

use super::{JobMessage, Target, Task, is_bucket_name, is_region, queue_url_account, queue_url_region};
use crate::resource_policy::{PolicyDocument, Service};

/// Most statements one job may name (a policy of 20 KB holds far fewer).
pub const MAX_REMOVE_STATEMENTS: usize = 100;

/// Most regions one discovery job may name.
pub const MAX_REGIONS: usize = 32;

/// What an unlock job does to the resource's policy.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyChange {
    /// Delete the whole policy (the default).
    Delete,
    /// Remove these statements (by `Sid`, or `#index` for one without) and put the rest back.
    RemoveStatements(Vec<String>),
    /// Replace the policy by this one.
    Restore {
        /// The validated document.
        policy: PolicyDocument,
        /// The job accepts a policy that itself locks everyone out.
        allow_lockout: bool,
    },
}

/// Which service's policy rules apply to an unlock task.
pub fn service(task: Task) -> Option<Service> {
    match task {
        Task::S3UnlockBucketPolicy => Some(Service::S3),
        Task::SqsUnlockQueuePolicy => Some(Service::Sqs),
        _ => None,
    }
}

impl JobMessage {
    /// The fields only the unlock tasks take, refused on the other tasks.
    pub(super) fn unlock_fields_present(&self) -> Vec<&'static str> {
        [
            ("remove_statements", self.remove_statements.is_some()),
            ("restore_policy", self.restore_policy.is_some()),
            ("allow_lockout", self.allow_lockout.is_some()),
            ("discover", self.discover.is_some()),
            ("regions", self.regions.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, present)| present.then_some(field))
        .collect()
    }

    /// The target of an unlock task, or the problems that prevent it.
    pub(super) fn unlock_target(&self, task: Task, service: Service, problems: &mut Vec<String>) -> Option<Target> {
        let before = problems.len();
        let (resource_field, resource) = match task {
            Task::S3UnlockBucketPolicy => ("bucket", self.bucket.as_ref()),
            _ => ("queue_url", self.queue_url.as_ref()),
        };
        if self.discover == Some(true) {
            for (field, present) in [
                (resource_field, resource.is_some()),
                ("remove_statements", self.remove_statements.is_some()),
                ("restore_policy", self.restore_policy.is_some()),
            ] {
                if present {
                    problems.push(format!("{field}: not with discover (a discovery finds the resources itself)"));
                }
            }
            let regions = self.discovery_regions(problems);
            return (problems.len() == before).then(|| Target::Discover { regions: regions.unwrap_or_default() });
        }
        if self.regions.is_some() {
            problems.push("regions: only with \"discover\": true (a single resource's region is `region`)".into());
        }
        let change = self.policy_change(service, problems);
        let target = match (task, resource) {
            (_, None) => {
                problems.push(format!("{resource_field}: required for {task} (or \"discover\": true)"));
                None
            }
            (Task::S3UnlockBucketPolicy, Some(bucket)) if !is_bucket_name(bucket) => {
                problems.push(format!("bucket: `{bucket}` is not a valid S3 bucket name"));
                None
            }
            (Task::S3UnlockBucketPolicy, Some(bucket)) => Some(bucket.clone()),
            (_, Some(url)) => match queue_url_account(url) {
                None => {
                    problems.push(format!("queue_url: `{url}` is not an SQS queue URL"));
                    None
                }
                Some(owner) if owner != self.account_id => {
                    problems.push(format!("queue_url: the queue belongs to account {owner}, not to account_id"));
                    None
                }
                Some(_) => match (self.region.as_deref(), queue_url_region(url)) {
                    (Some(region), Some(named)) if region != named => {
                        problems.push(format!(
                            "region: `{region}`, but the queue URL names {named} (leave region out: the URL's is used)"
                        ));
                        None
                    }
                    _ => Some(url.clone()),
                },
            },
        };
        let (resource, change) = (target?, change?);
        Some(match task {
            Task::S3UnlockBucketPolicy => Target::Bucket { bucket: resource, change },
            _ => Target::Queue { queue_url: resource, change },
        })
    }

    fn discovery_regions(&self, problems: &mut Vec<String>) -> Option<Vec<String>> {
        let regions = self.regions.as_ref()?;
        if regions.is_empty() || regions.len() > MAX_REGIONS {
            problems.push(format!("regions: 1 to {MAX_REGIONS} region names when given"));
        }
        for region in regions.iter().filter(|r| !is_region(r)) {
            problems.push(format!("regions: `{region}` is not an AWS region name"));
        }
        let mut regions = regions.clone();
        regions.sort();
        regions.dedup();
        Some(regions)
    }

    fn policy_change(&self, service: Service, problems: &mut Vec<String>) -> Option<PolicyChange> {
        if self.allow_lockout.is_some() && self.restore_policy.is_none() {
            problems.push("allow_lockout: only with restore_policy".into());
        }
        match (&self.remove_statements, &self.restore_policy) {
            (Some(_), Some(_)) => {
                problems.push("remove_statements and restore_policy: give one or the other, not both".into());
                None
            }
            (Some(ids), None) => self.statements_to_remove(ids, problems),
            (None, Some(value)) => self.policy_to_restore(value, service, problems),
            (None, None) => Some(PolicyChange::Delete),
        }
    }

    fn statements_to_remove(&self, ids: &[String], problems: &mut Vec<String>) -> Option<PolicyChange> {
        if ids.is_empty() || ids.len() > MAX_REMOVE_STATEMENTS {
            problems.push(format!("remove_statements: 1 to {MAX_REMOVE_STATEMENTS} statement ids"));
            return None;
        }
        if let Some(bad) = ids.iter().find(|id| id.is_empty() || id.chars().count() > 256) {
            problems.push(format!("remove_statements: `{bad}` is not a statement id (a Sid, or #index)"));
            return None;
        }
        let mut unique: Vec<String> = Vec::with_capacity(ids.len());
        for id in ids {
            if !unique.contains(id) {
                unique.push(id.clone());
            }
        }
        Some(PolicyChange::RemoveStatements(unique))
    }

    fn policy_to_restore(&self, value: &serde_json::Value, service: Service, problems: &mut Vec<String>) -> Option<PolicyChange> {
        let policy = PolicyDocument::for_restore(value, service).map_err(|e| problems.push(e.to_string())).ok()?;
        let allow_lockout = self.allow_lockout.unwrap_or(false);
        let locking = policy.locking_statements(service, &self.account_id);
        if !locking.is_empty() && !allow_lockout {
            problems.push(format!(
                "restore_policy: statement(s) {} would lock everyone out of the resource again; fix the policy, or \
                 set \"allow_lockout\": true if that is meant",
                locking.join(", ")
            ));
            return None;
        }
        Some(PolicyChange::Restore { policy, allow_lockout })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Job;
    use super::*;

    fn bucket_job(extra: &str) -> Result<Job, String> {
        Job::parse(&format!(r#"{{"version":1,"job_id":"j","account_id":"111122223333","task":"S3UnlockBucketPolicy"{extra}}}"#))
            .map_err(|e| e.to_string())
    }

    const DENY_ALL: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"DenyAll","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}]}"#;
    const TLS_ONLY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"TlsOnly","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#;

    #[test]
    fn the_default_deletes_the_policy() {
        let job = bucket_job(r#","bucket":"b-1""#).unwrap();
        assert_eq!(job.target, Target::Bucket { bucket: "b-1".into(), change: PolicyChange::Delete });
    }

    #[test]
    fn statements_are_named_once_each() {
        let job = bucket_job(r##","bucket":"b-1","remove_statements":["DenyAll","#3","DenyAll"]"##).unwrap();
        let change = PolicyChange::RemoveStatements(vec!["DenyAll".into(), "#3".into()]);
        assert_eq!(job.target, Target::Bucket { bucket: "b-1".into(), change });
        assert!(bucket_job(r#","bucket":"b-1","remove_statements":[]"#).unwrap_err().contains("1 to 100 statement ids"));
    }

    #[test]
    fn remove_statements_names_at_most_100() {
        let ids = |count: usize| serde_json::to_string(&(0..count).map(|i| format!("Sid{i}")).collect::<Vec<_>>()).unwrap();
        let job = bucket_job(&format!(r#","bucket":"b-1","remove_statements":{}"#, ids(MAX_REMOVE_STATEMENTS))).unwrap();
        let Target::Bucket { change: PolicyChange::RemoveStatements(named), .. } = job.target else { panic!("{job:?}") };
        assert_eq!(named.len(), 100);
        let error = bucket_job(&format!(r#","bucket":"b-1","remove_statements":{}"#, ids(101))).unwrap_err();
        assert!(error.contains("remove_statements: 1 to 100 statement ids"), "{error}");
        // The limit counts what the job names: 101 entries are refused even when some repeat.
        let repeated = serde_json::to_string(&vec!["DenyAll"; 101]).unwrap();
        let error = bucket_job(&format!(r#","bucket":"b-1","remove_statements":{repeated}"#)).unwrap_err();
        assert!(error.contains("remove_statements: 1 to 100 statement ids"), "{error}");
        let queue = |ids: String| {
            Job::parse(&format!(
                r#"{{"version":1,"job_id":"j","account_id":"111122223333","task":"SQSUnlockQueuePolicy",
                "queue_url":"https://sqs.eu-west-1.amazonaws.com/111122223333/q","remove_statements":{ids}}}"#
            ))
            .map_err(|e| e.to_string())
        };
        assert!(queue(ids(100)).is_ok());
        assert!(queue(ids(101)).unwrap_err().contains("remove_statements: 1 to 100 statement ids"));
    }

    #[test]
    fn a_restore_is_validated_and_refused_when_it_locks_everyone_out() {
        let job = bucket_job(&format!(r#","bucket":"b-1","restore_policy":{TLS_ONLY}"#)).unwrap();
        assert!(matches!(job.target, Target::Bucket { change: PolicyChange::Restore { allow_lockout: false, .. }, .. }));
        let as_string = serde_json::to_string(TLS_ONLY).unwrap();
        assert!(bucket_job(&format!(r#","bucket":"b-1","restore_policy":{as_string}"#)).is_ok());
        let error = bucket_job(&format!(r#","bucket":"b-1","restore_policy":{DENY_ALL}"#)).unwrap_err();
        assert!(error.contains("DenyAll would lock everyone out"), "{error}");
        assert!(bucket_job(&format!(r#","bucket":"b-1","restore_policy":{DENY_ALL},"allow_lockout":true"#)).is_ok());
        let error = bucket_job(r#","bucket":"b-1","restore_policy":"not json""#).unwrap_err();
        assert!(error.contains("restore_policy"), "{error}");
    }

    #[test]
    fn the_fields_that_exclude_each_other_are_named() {
        let both = bucket_job(&format!(r#","bucket":"b-1","remove_statements":["a"],"restore_policy":{TLS_ONLY}"#));
        assert!(both.unwrap_err().contains("give one or the other"));
        let stray = bucket_job(r#","bucket":"b-1","allow_lockout":true"#).unwrap_err();
        assert!(stray.contains("allow_lockout: only with restore_policy"), "{stray}");
        let wrong_task = Job::parse(
            r#"{"version":1,"job_id":"j","account_id":"111122223333","task":"IAMAuditRootUserCredentials","remove_statements":["a"],"discover":true}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(wrong_task.contains("remove_statements: allowed only for S3UnlockBucketPolicy and SQSUnlockQueuePolicy"));
        assert!(wrong_task.contains("discover: allowed only for"), "{wrong_task}");
    }

    #[test]
    fn a_discovery_names_no_resource() {
        let job = bucket_job(r#","discover":true,"regions":["eu-west-1","us-east-1","eu-west-1"]"#).unwrap();
        assert_eq!(job.target, Target::Discover { regions: vec!["eu-west-1".into(), "us-east-1".into()] });
        let error = bucket_job(r#","discover":true,"bucket":"b-1","regions":["mars"]"#).unwrap_err();
        assert!(error.contains("bucket: not with discover") && error.contains("`mars` is not an AWS region"), "{error}");
        assert!(bucket_job(r#","bucket":"b-1","regions":["eu-west-1"]"#).unwrap_err().contains("regions: only with"));
        let queues =
            Job::parse(r#"{"version":1,"job_id":"j","account_id":"111122223333","task":"SQSUnlockQueuePolicy","discover":true}"#)
                .unwrap();
        assert_eq!(queues.target, Target::Discover { regions: vec![] });
    }
}

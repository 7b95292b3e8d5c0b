//! What the two unlock tasks share: one resource's policy read, changed as the job says (deleted,
//! some statements removed, or a policy put back), and reported with every statement classified.

use serde_json::{Value, json};

use super::{TaskContext, TaskError, TaskReport};
use crate::aws::{self, AwsCallError};
use crate::job::PolicyChange;
use crate::resource_policy::{PolicyDocument, Service};

/// One bucket or queue as the root session sees it.
pub(super) enum Resource {
    /// A bucket, through an S3 client of the bucket's region.
    Bucket { s3: aws_sdk_s3::Client, bucket: String },
    /// A queue, through an SQS client of the queue's region.
    Queue { sqs: aws_sdk_sqs::Client, queue_url: String },
}

impl Resource {
    fn service(&self) -> Service {
        match self {
            Resource::Bucket { .. } => Service::S3,
            Resource::Queue { .. } => Service::Sqs,
        }
    }

    /// The findings key and value naming the resource.
    pub(super) fn name(&self) -> (&'static str, &str) {
        match self {
            Resource::Bucket { bucket, .. } => ("bucket", bucket),
            Resource::Queue { queue_url, .. } => ("queue_url", queue_url),
        }
    }

    /// The policy's text, `None` when the resource has none.
    pub(super) async fn read(&self, context: &TaskContext<'_>) -> Result<Option<String>, AwsCallError> {
        let metrics = context.metrics;
        let text = match self {
            Resource::Bucket { s3, bucket } => {
                match aws::call(metrics, "s3", "GetBucketPolicy", s3.get_bucket_policy().bucket(bucket).send()).await {
                    Ok(output) => output.policy,
                    Err(error) if error.is(&["NoSuchBucketPolicy"]) => None,
                    Err(error) => return Err(error),
                }
            }
            Resource::Queue { sqs, queue_url } => {
                use aws_sdk_sqs::types::QueueAttributeName::Policy;
                let request = sqs.get_queue_attributes().queue_url(queue_url).attribute_names(Policy).send();
                let mut output = aws::call(metrics, "sqs", "GetQueueAttributes", request).await?;
                output.attributes.as_mut().and_then(|a| a.remove(&Policy))
            }
        };
        Ok(text.filter(|t| !t.is_empty()))
    }

    /// Puts `policy` in place, or deletes the policy when `None`.
    pub(super) async fn write(&self, context: &TaskContext<'_>, policy: Option<&str>) -> Result<(), AwsCallError> {
        let metrics = context.metrics;
        match (self, policy) {
            (Resource::Bucket { s3, bucket }, None) => {
                let request = s3.delete_bucket_policy().bucket(bucket).send();
                aws::call(metrics, "s3", "DeleteBucketPolicy", request).await.map(drop)
            }
            (Resource::Bucket { s3, bucket }, Some(policy)) => {
                let request = s3.put_bucket_policy().bucket(bucket).policy(policy).send();
                aws::call(metrics, "s3", "PutBucketPolicy", request).await.map(drop)
            }
            (Resource::Queue { sqs, queue_url }, policy) => {
                // An empty Policy attribute is how SQS deletes a queue's policy.
                use aws_sdk_sqs::types::QueueAttributeName::Policy;
                let request = sqs.set_queue_attributes().queue_url(queue_url).attributes(Policy, policy.unwrap_or("")).send();
                aws::call(metrics, "sqs", "SetQueueAttributes", request).await.map(drop)
            }
        }
    }
}

/// What a change does to a policy, decided before anything is written.
pub(super) struct Plan {
    /// The policy after the change; `None`: deleted (or none to begin with).
    pub new_policy: Option<String>,
    /// False when the resource is already as the job wants it.
    pub anything_to_do: bool,
    /// The findings every unlock job reports.
    pub findings: Value,
}

/// Decides what `change` does to the policy `previous` of a resource of `account`, or why it
/// cannot be done (a statement the job names is not in the policy).
pub(super) fn plan(previous: Option<&str>, change: &PolicyChange, service: Service, account: &str) -> Result<Plan, TaskError> {
    let document = previous.map(PolicyDocument::parse).transpose();
    let statements = match &document {
        Ok(Some(document)) => serde_json::to_value(document.classify(service, account)).expect("reports serialize"),
        _ => json!([]),
    };
    let (new_policy, anything_to_do, removed) = match (change, previous) {
        (PolicyChange::Delete, previous) => (None, previous.is_some(), None),
        // No policy: nothing locks the resource, and nothing is left to remove.
        (PolicyChange::RemoveStatements(_), None) => (None, false, None),
        (PolicyChange::RemoveStatements(ids), Some(_)) => {
            let document = document.map_err(|e| refuse("unlock.unreadable_policy", e))?.expect("a policy was read");
            let remaining = document.without(ids).map_err(|e| refuse("unlock.unknown_statement", e))?;
            (remaining.map(|d| d.to_json()), true, Some(ids.clone()))
        }
        (PolicyChange::Restore { policy, .. }, _) => {
            let same = matches!(&document, Ok(Some(current)) if current.as_value() == policy.as_value());
            (Some(policy.to_json()), !same, None)
        }
    };
    let findings = json!({
        "change": change_name(change),
        "previous_policy": previous,
        "new_policy": if anything_to_do { new_policy.clone() } else { previous.map(str::to_owned) },
        "statements": statements,
        "removed_statements": removed,
    });
    Ok(Plan { new_policy, anything_to_do, findings })
}

fn refuse(code: &'static str, error: impl std::fmt::Display) -> TaskError {
    TaskError::Refused { code, reason: format!("{error}; nothing was changed") }
}

fn change_name(change: &PolicyChange) -> &'static str {
    match change {
        PolicyChange::Delete => "delete_policy",
        PolicyChange::RemoveStatements(_) => "remove_statements",
        PolicyChange::Restore { .. } => "restore_policy",
    }
}

/// Reads the resource's policy, applies `change` (unless a dry run), and reports.
pub(super) async fn run(
    resource: Resource,
    change: &PolicyChange,
    region: &str,
    account: &str,
    context: TaskContext<'_>,
) -> Result<TaskReport, TaskError> {
    let previous = resource.read(&context).await?;
    let plan = plan(previous.as_deref(), change, resource.service(), account)?;
    if plan.anything_to_do && !context.dry_run {
        resource.write(&context, plan.new_policy.as_deref()).await?;
    }
    let mut findings = plan.findings;
    let (key, name) = resource.name();
    findings[key] = json!(name);
    findings["region"] = json!(region);
    Ok(TaskReport::change(&context, plan.anything_to_do, findings))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Partner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"s3:GetObject","Resource":"*"},{"Sid":"DenyAll","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}]}"#;

    fn restore(text: &str) -> PolicyChange {
        let value: Value = serde_json::from_str(text).unwrap();
        PolicyChange::Restore { policy: PolicyDocument::for_restore(&value, Service::S3).unwrap(), allow_lockout: true }
    }

    #[test]
    fn removing_a_statement_keeps_the_others() {
        let change = PolicyChange::RemoveStatements(vec!["DenyAll".into()]);
        let plan = plan(Some(POLICY), &change, Service::S3, "111122223333").ok().unwrap();
        assert!(plan.anything_to_do);
        let new: Value = serde_json::from_str(plan.new_policy.as_deref().unwrap()).unwrap();
        assert_eq!(new["Statement"].as_array().unwrap().len(), 1);
        assert_eq!(new["Statement"][0]["Sid"], "Partner");
        assert_eq!(plan.findings["statements"][1]["classification"], "locks_out_everyone");
        assert_eq!(plan.findings["removed_statements"], json!(["DenyAll"]));
    }

    #[test]
    fn an_unknown_statement_is_refused_naming_it() {
        let change = PolicyChange::RemoveStatements(vec!["Nope".into()]);
        match plan(Some(POLICY), &change, Service::S3, "111122223333") {
            Err(TaskError::Refused { code, reason }) => {
                assert_eq!(code, "unlock.unknown_statement");
                assert!(reason.contains("Nope") && reason.ends_with("nothing was changed"), "{reason}");
            }
            _ => panic!("expected a refusal"),
        }
    }

    #[test]
    fn no_policy_means_nothing_to_delete_or_remove_but_something_to_restore() {
        let remove = PolicyChange::RemoveStatements(vec!["DenyAll".into()]);
        assert!(!plan(None, &PolicyChange::Delete, Service::S3, "1").ok().unwrap().anything_to_do);
        assert!(!plan(None, &remove, Service::S3, "1").ok().unwrap().anything_to_do);
        assert!(plan(None, &restore(POLICY), Service::S3, "1").ok().unwrap().anything_to_do);
        assert!(!plan(Some(POLICY), &restore(POLICY), Service::S3, "1").ok().unwrap().anything_to_do);
    }
}

//! S3UnlockBucketPolicy: delete a bucket policy that locks everyone out, keeping a copy in
//! `findings.previous_policy` so it can be restored.

use serde_json::json;

use super::{TaskContext, TaskReport};
use crate::aws::{self, AwsCallError};

/// Removes the bucket's policy, if it has one.
pub async fn run(bucket: &str, context: TaskContext<'_>) -> Result<TaskReport, AwsCallError> {
    let s3 = context.session.s3(context.clients, context.region);
    let metrics = context.metrics;
    let policy = match aws::call(metrics, "s3", "GetBucketPolicy", s3.get_bucket_policy().bucket(bucket).send()).await {
        Ok(output) => output.policy,
        Err(error) if error.is(&["NoSuchBucketPolicy"]) => None,
        Err(error) => return Err(error),
    };
    let Some(policy) = policy.filter(|p| !p.is_empty()) else {
        return Ok(TaskReport::change(&context, false, json!({"bucket": bucket, "previous_policy": null})));
    };
    if !context.dry_run {
        aws::call(metrics, "s3", "DeleteBucketPolicy", s3.delete_bucket_policy().bucket(bucket).send()).await?;
    }
    Ok(TaskReport::change(&context, true, json!({"bucket": bucket, "previous_policy": policy})))
}

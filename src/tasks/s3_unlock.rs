//! S3UnlockBucketPolicy: the bucket's policy deleted, trimmed of some statements, or replaced
//! (see [`super::unlock`]); or, for a discovery, every bucket of the account inspected.

use super::discover::{self, Candidate};
use super::unlock::{self, Resource};
use super::{TaskContext, TaskError, TaskReport};
use crate::aws::{self, AwsCallError};
use crate::job::{PolicyChange, Task};

/// Applies `change` to one bucket's policy, in the job's region or, when S3 answers that the
/// bucket is elsewhere (301 `PermanentRedirect`, as SDKs that follow S3's redirects do), in the
/// bucket's. A bucket's name is the same bucket in every region, so following is safe; the
/// redirect comes at the first call, the read, before anything is written.
pub async fn run(bucket: &str, change: &PolicyChange, account: &str, context: TaskContext<'_>) -> Result<TaskReport, TaskError> {
    match unlock_in(context.region, bucket, change, account, context).await {
        Err(TaskError::Aws(error)) => match error.redirect_region.as_deref().filter(|r| *r != context.region) {
            Some(region) => {
                tracing::info!(bucket, region, "S3 names the bucket's region: the unlock is made there.");
                unlock_in(region, bucket, change, account, context).await
            }
            None => Err(TaskError::Aws(error)),
        },
        other => other,
    }
}

async fn unlock_in(
    region: &str,
    bucket: &str,
    change: &PolicyChange,
    account: &str,
    context: TaskContext<'_>,
) -> Result<TaskReport, TaskError> {
    let s3 = context.session.s3(context.clients, region);
    unlock::run(Resource::Bucket { s3, bucket: bucket.to_owned() }, change, region, account, context).await
}

/// Inspects every bucket of the account (only those of `regions` when some are named), each in
/// its own region.
pub async fn discover(regions: &[String], account: &str, context: TaskContext<'_>) -> Result<TaskReport, TaskError> {
    let mut buckets = list(&context).await?;
    if !regions.is_empty() {
        buckets.retain(|bucket| regions.contains(&bucket.region));
    }
    let resource = |candidate: &Candidate| Resource::Bucket {
        s3: context.session.s3(context.clients, &candidate.region),
        bucket: candidate.name.clone(),
    };
    discover::run(Task::S3UnlockBucketPolicy, account, &buckets, resource, context).await
}

/// Buckets this many at a time (ListBuckets' page).
const PAGE: i32 = 1000;

/// Every bucket of the account with its region. Asking for a page size makes S3 answer with
/// each bucket's region (`BucketRegion`); a bucket without one is taken to be in the job's.
async fn list(context: &TaskContext<'_>) -> Result<Vec<Candidate>, AwsCallError> {
    let s3 = context.session.s3(context.clients, context.region);
    let mut buckets = Vec::new();
    let mut token = None;
    loop {
        let request = s3.list_buckets().max_buckets(PAGE).set_continuation_token(token).send();
        let page = aws::call(context.metrics, "s3", "ListBuckets", request).await?;
        buckets.extend(page.buckets().iter().filter_map(|bucket| {
            let region = bucket.bucket_region().unwrap_or(context.region);
            bucket.name().map(|name| Candidate { name: name.to_owned(), region: region.to_owned() })
        }));
        token = page.continuation_token.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(buckets);
        }
    }
}

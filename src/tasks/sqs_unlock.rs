//! SQSUnlockQueuePolicy: the queue's policy deleted (an empty `Policy` attribute), trimmed of
//! some statements, or replaced (see [`super::unlock`]); or, for a discovery, every queue of the
//! chosen regions inspected.

use super::discover::{self, Candidate};
use super::unlock::{self, Resource};
use super::{TaskContext, TaskError, TaskReport};
use crate::aws::{self, AwsCallError};
use crate::job::{PolicyChange, Task, queue_url_region};

/// Applies `change` to one queue's policy, in the region its URL names (SQS answers a queue
/// only at its own region's endpoint), else the job's.
pub async fn run(
    queue_url: &str,
    change: &PolicyChange,
    account: &str,
    context: TaskContext<'_>,
) -> Result<TaskReport, TaskError> {
    let region = queue_url_region(queue_url).unwrap_or(context.region);
    let sqs = context.session.sqs(context.clients, region);
    unlock::run(Resource::Queue { sqs, queue_url: queue_url.to_owned() }, change, region, account, context).await
}

/// Inspects every queue of the account in `regions` (the job's region when none are named).
pub async fn discover(regions: &[String], account: &str, context: TaskContext<'_>) -> Result<TaskReport, TaskError> {
    let own_region = [context.region.to_owned()];
    let regions = if regions.is_empty() { &own_region[..] } else { regions };
    let mut queues = Vec::new();
    for region in regions {
        queues.extend(list(region, &context).await?);
    }
    let resource = |candidate: &Candidate| Resource::Queue {
        sqs: context.session.sqs(context.clients, &candidate.region),
        queue_url: candidate.name.clone(),
    };
    discover::run(Task::SqsUnlockQueuePolicy, account, &queues, resource, context).await
}

/// Queues this many at a time (ListQueues' largest page).
const PAGE: i32 = 1000;

/// Every queue of the account in `region`.
async fn list(region: &str, context: &TaskContext<'_>) -> Result<Vec<Candidate>, AwsCallError> {
    let sqs = context.session.sqs(context.clients, region);
    let mut queues = Vec::new();
    let mut token = None;
    loop {
        let request = sqs.list_queues().max_results(PAGE).set_next_token(token).send();
        let page = aws::call(context.metrics, "sqs", "ListQueues", request).await?;
        queues.extend(page.queue_urls().iter().map(|url| Candidate { name: url.clone(), region: region.to_owned() }));
        token = page.next_token.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(queues);
        }
    }
}

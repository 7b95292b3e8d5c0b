//! SQSUnlockQueuePolicy: delete a queue policy that locks everyone out (SetQueueAttributes with
//! an empty `Policy`), keeping a copy in `findings.previous_policy`.

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;

use super::{TaskContext, TaskReport};
use crate::aws::{self, AwsCallError};

/// Removes the queue's policy, if it has one.
pub async fn run(queue_url: &str, context: TaskContext<'_>) -> Result<TaskReport, AwsCallError> {
    let sqs = context.session.sqs(context.clients, context.region);
    let metrics = context.metrics;
    let request = sqs.get_queue_attributes().queue_url(queue_url).attribute_names(QueueAttributeName::Policy).send();
    let attributes = aws::call(metrics, "sqs", "GetQueueAttributes", request).await?;
    let policy = attributes.attributes().and_then(|a| a.get(&QueueAttributeName::Policy)).filter(|p| !p.is_empty());
    let Some(policy) = policy.cloned() else {
        return Ok(TaskReport::change(&context, false, json!({"queue_url": queue_url, "previous_policy": null})));
    };
    if !context.dry_run {
        let request = sqs.set_queue_attributes().queue_url(queue_url).attributes(QueueAttributeName::Policy, "").send();
        aws::call(metrics, "sqs", "SetQueueAttributes", request).await?;
    }
    Ok(TaskReport::change(&context, true, json!({"queue_url": queue_url, "previous_policy": policy})))
}

//! The intake side of SQS: receiving at most as many messages as there are free workers, and
//! reading the system attributes the guardrails rely on.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};

use crate::aws::{self, AwsCallError, Clients};
use crate::metrics::Metrics;
use crate::policy::Provenance;

/// A received intake message.
#[derive(Debug, Clone)]
pub struct Received {
    /// SQS message id.
    pub message_id: String,
    /// Handle for delete and visibility changes of this delivery.
    pub receipt_handle: String,
    /// The job, as posted.
    pub body: String,
    /// ApproximateReceiveCount: 1 on the first delivery.
    pub receive_count: u32,
    /// SenderId and SentTimestamp.
    pub provenance: Provenance,
    /// The producer's message attributes (kept when the message is dead-lettered).
    pub attributes: HashMap<String, MessageAttributeValue>,
    /// The FIFO message group (FIFO intake queues only), kept when the message is dead-lettered.
    pub group_id: Option<String>,
}

impl Received {
    /// Reads an SDK message; `None` when SQS left out the id, handle or body.
    pub fn from_sdk(message: Message) -> Option<Self> {
        let system = message.attributes.unwrap_or_default();
        let number = |name: &MessageSystemAttributeName| system.get(name).and_then(|v| v.parse::<u64>().ok());
        let sent_at =
            number(&MessageSystemAttributeName::SentTimestamp).map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
        Some(Self {
            message_id: message.message_id?,
            receipt_handle: message.receipt_handle?,
            body: message.body.unwrap_or_default(),
            receive_count: number(&MessageSystemAttributeName::ApproximateReceiveCount).unwrap_or(1) as u32,
            provenance: Provenance { sender_id: system.get(&MessageSystemAttributeName::SenderId).cloned(), sent_at },
            attributes: message.message_attributes.unwrap_or_default(),
            group_id: system.get(&MessageSystemAttributeName::MessageGroupId).cloned(),
        })
    }

    /// The W3C `traceparent` message attribute, when the producer set one.
    pub fn traceparent(&self) -> Option<&str> {
        self.attributes.get("traceparent").and_then(|v| v.string_value())
    }
}

/// Long-polls the intake queue for up to `max` messages (at most 10), each hidden for
/// `visibility` (the daemon's `intake.visibility_timeout`, which its heartbeat extends, not the
/// queue's default).
pub async fn receive(
    clients: &Clients,
    metrics: &Metrics,
    queue_url: &str,
    max: usize,
    wait: Duration,
    visibility: Duration,
) -> Result<Vec<Received>, AwsCallError> {
    let request = clients
        .sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(max.clamp(1, 10) as i32)
        .wait_time_seconds(wait.as_secs() as i32)
        .visibility_timeout(visibility.as_secs().min(43_200) as i32)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .message_system_attribute_names(MessageSystemAttributeName::SenderId)
        .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
        .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
        .message_attribute_names("All")
        .send();
    let output = aws::call(metrics, "sqs", "ReceiveMessage", request).await?;
    Ok(output.messages.unwrap_or_default().into_iter().filter_map(Received::from_sdk).collect())
}

//! The intake side of SQS: receiving at most as many messages as there are free workers,
//! reading the system attributes the guardrails rely on, and keeping the order of a FIFO
//! group's messages received together.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use tokio::sync::watch;

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
    /// Its place among the messages of its FIFO group received in the same batch (none when it
    /// came alone).
    pub turn: Option<GroupTurn>,
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
            turn: None,
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
    let mut messages: Vec<Received> = output.messages.unwrap_or_default().into_iter().filter_map(Received::from_sdk).collect();
    take_turns(&mut messages);
    Ok(messages)
}

/// A message's place among the messages of its FIFO group that one receive returned. SQS hands
/// out a group's messages in order, several in one batch, and locks the group until every one is
/// deleted or visible again; so they run one after the other in that order, each once the one
/// before it has ended. When one does not end (it backs off after a transient failure, or is
/// released), the later ones are handed back without running, and the group comes back in order
/// with that one first.
#[derive(Debug, Clone)]
pub struct GroupTurn {
    chain: Arc<watch::Sender<Chain>>,
    index: usize,
}

/// The progress of one group's messages of one batch.
#[derive(Debug, Clone, Copy, Default)]
struct Chain {
    /// The message whose turn it is: every one before it has ended.
    next: usize,
    /// The first message handed back: no later one runs.
    handed_back: Option<usize>,
}

impl GroupTurn {
    /// Waits for the messages before this one. True when they have all ended (this one runs
    /// now), false when one of them was handed back (this one must be too).
    pub async fn wait(&self) -> bool {
        let mut chain = self.chain.subscribe();
        let index = self.index;
        // The sender lives as long as `self`, so the wait ends only by the condition.
        let state = chain.wait_for(|c| c.next == index || c.handed_back.is_some_and(|h| h < index)).await.map(|c| *c);
        state.is_ok_and(|c| c.next == index)
    }

    /// This message has ended (its result is on its way): the next one may run.
    pub fn ended(&self) {
        self.chain.send_modify(|c| {
            if c.next == self.index {
                c.next += 1;
            }
        });
    }

    /// This message was handed back to SQS: the later ones are too.
    pub fn handed_back(&self) {
        self.chain.send_modify(|c| c.handed_back = Some(c.handed_back.map_or(self.index, |h| h.min(self.index))));
    }
}

/// Chains the messages of each FIFO group that came more than once in `messages`, in the order
/// SQS returned them (the group's order).
fn take_turns(messages: &mut [Received]) {
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, message) in messages.iter().enumerate() {
        if let Some(group) = &message.group_id {
            groups.entry(group).or_default().push(i);
        }
    }
    let chained: Vec<Vec<usize>> = groups.into_values().filter(|indices| indices.len() > 1).collect();
    for indices in chained {
        let chain = Arc::new(watch::channel(Chain::default()).0);
        for (index, i) in indices.into_iter().enumerate() {
            messages[i].turn = Some(GroupTurn { chain: chain.clone(), index });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, group: Option<&str>) -> Received {
        Received {
            message_id: id.into(),
            receipt_handle: id.into(),
            body: String::new(),
            receive_count: 1,
            provenance: Provenance { sender_id: None, sent_at: None },
            attributes: HashMap::new(),
            group_id: group.map(str::to_owned),
            turn: None,
        }
    }

    /// What `turn.wait()` answers now, if it has an answer yet.
    fn waited(turn: &GroupTurn) -> Option<bool> {
        futures::FutureExt::now_or_never(turn.wait())
    }

    #[test]
    fn a_groups_messages_of_one_batch_take_turns_and_the_rest_go_back_with_one_handed_back() {
        let mut messages = vec![
            message("a1", Some("a")),
            message("b1", Some("b")),
            message("a2", Some("a")),
            message("a3", Some("a")),
            message("n", None),
        ];
        take_turns(&mut messages);
        assert!(messages[1].turn.is_none() && messages[4].turn.is_none(), "alone in its group, or no group: no turn");
        let [a1, a2, a3] = [0, 2, 3].map(|i| messages[i].turn.clone().unwrap());
        assert_eq!(waited(&a1), Some(true), "the first runs at once");
        assert_eq!(waited(&a2), None, "the second waits for the first");
        a1.ended();
        assert_eq!(waited(&a2), Some(true));
        assert_eq!(waited(&a3), None);
        a2.handed_back();
        assert_eq!(waited(&a3), Some(false), "a message before it was handed back: so is this one");
    }
}

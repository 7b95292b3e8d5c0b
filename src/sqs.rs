//! What SQS accepts from a sender, read once and applied by every sender (acknowledgement,
//! `submit`, `sweep`): a message's size as SQS counts it, batches bounded by entries and by
//! bytes, the queue's `MaximumMessageSize`, and the fields a FIFO queue requires.

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use tokio::sync::OnceCell;

use crate::aws::{self, AwsCallError, Clients};
use crate::metrics::Metrics;

/// SQS batch calls take at most ten entries.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// The limit assumed while a queue's `MaximumMessageSize` cannot be read: 256 KiB, the smallest
/// default SQS has had and still a valid setting (today's default is 1 MiB), so a batch sized
/// by it fits whatever the queue says.
pub const FALLBACK_MAX_MESSAGE_SIZE: usize = 262_144;

/// FIFO deduplication and group ids: at most 128 characters.
const MAX_FIFO_ID: usize = 128;

/// True for a FIFO queue (its name ends in `.fifo`, which SQS requires of FIFO queues).
pub fn is_fifo(queue_url: &str) -> bool {
    queue_url.trim_end_matches('/').ends_with(".fifo")
}

/// A message's size as SQS counts it against `MaximumMessageSize`: the body's UTF-8 bytes plus,
/// for each message attribute, its name, its data type and its value.
pub fn message_size(body: &str, attributes: &[(String, MessageAttributeValue)]) -> usize {
    body.len() + attributes.iter().map(|(name, value)| attribute_size(name, value)).sum::<usize>()
}

/// One message attribute's share of a message's size.
pub fn attribute_size(name: &str, value: &MessageAttributeValue) -> usize {
    let payload = value.string_value().map_or(0, str::len) + value.binary_value().map_or(0, |b| b.as_ref().len());
    name.len() + value.data_type().len() + payload
}

/// Groups entries (by index, in order) into batches of at most ten entries whose sizes add up
/// to at most `max_bytes`. Every size must already be at most `max_bytes`.
pub fn plan_batches(sizes: &[(usize, usize)], max_bytes: usize) -> Vec<Vec<usize>> {
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut bytes = 0;
    for &(index, size) in sizes {
        if !current.is_empty() && (current.len() == MAX_BATCH_ENTRIES || bytes + size > max_bytes) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(index);
        bytes += size;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// A FIFO message's group and deduplication ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FifoFields {
    /// Messages of one group are delivered in order, one in flight at a time.
    pub group_id: String,
    /// A second send with this id within five minutes is accepted but not delivered.
    pub deduplication_id: String,
}

impl FifoFields {
    /// Both ids from free text, kept to what SQS accepts (letters, digits, punctuation; at most
    /// 128 characters).
    pub fn new(group: &str, deduplication: &str) -> Self {
        Self { group_id: fifo_id(group), deduplication_id: fifo_id(deduplication) }
    }
}

fn fifo_id(text: &str) -> String {
    let id: String = text.chars().filter(|c| c.is_ascii_graphic()).take(MAX_FIFO_ID).collect();
    if id.is_empty() { "-".to_owned() } else { id }
}

/// A queue messages are sent to: whether it is FIFO, and its size limit, read from SQS on first
/// use.
#[derive(Debug)]
pub struct QueueTarget {
    /// The queue.
    pub url: String,
    /// Whether sends need FIFO fields.
    pub fifo: bool,
    max_message_size: OnceCell<usize>,
}

impl QueueTarget {
    /// A queue, its limit not read yet.
    pub fn new(url: &str) -> Self {
        Self { url: url.to_owned(), fifo: is_fifo(url), max_message_size: OnceCell::new() }
    }

    /// The queue's `MaximumMessageSize`. Read once; while SQS does not answer,
    /// [`FALLBACK_MAX_MESSAGE_SIZE`] is used and the read is tried again next time.
    pub async fn max_message_size(&self, clients: &Clients, metrics: &Metrics) -> usize {
        match self.read_max_message_size(clients, metrics).await {
            Ok(size) => size,
            Err(error) => {
                tracing::warn!(%error, queue = %self.url, limit = FALLBACK_MAX_MESSAGE_SIZE, "Could not read the queue's MaximumMessageSize; batches are sized by the smallest limit SQS allows by default.");
                FALLBACK_MAX_MESSAGE_SIZE
            }
        }
    }

    /// The queue's `MaximumMessageSize`, read from SQS once it answers (so also a proof that the
    /// queue exists and may be read).
    pub async fn read_max_message_size(&self, clients: &Clients, metrics: &Metrics) -> Result<usize, AwsCallError> {
        if let Some(size) = self.max_message_size.get() {
            return Ok(*size);
        }
        let request = clients
            .sqs
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::MaximumMessageSize)
            .send();
        let output = aws::call(metrics, "sqs", "GetQueueAttributes", request).await?;
        let size = output
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::MaximumMessageSize))
            .and_then(|v| v.parse().ok())
            .unwrap_or(FALLBACK_MAX_MESSAGE_SIZE);
        Ok(*self.max_message_size.get_or_init(|| async { size }).await)
    }
}

/// Why one message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Larger than the queue accepts, even alone.
    #[error("the message is {size} bytes, more than the queue's limit of {limit} bytes")]
    TooLarge {
        /// Its size as SQS counts it.
        size: usize,
        /// The queue's `MaximumMessageSize`.
        limit: usize,
    },
    /// SQS refused it or did not answer (retries included).
    #[error("{0}")]
    Failed(String),
}

impl From<&'static str> for SendError {
    fn from(text: &'static str) -> Self {
        SendError::Failed(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(value: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder().data_type("String").string_value(value).build().unwrap()
    }

    #[test]
    fn size_counts_utf8_bytes_and_every_part_of_an_attribute() {
        assert_eq!(message_size("é", &[]), 2);
        // 4 (body) + 6 (name) + 6 (data type) + 3 (value)
        assert_eq!(message_size("body", &[("reason".into(), string("abc"))]), 19);
    }

    #[test]
    fn batches_are_bounded_by_entries_and_bytes_in_order() {
        let sizes: Vec<(usize, usize)> = (0..25).map(|i| (i, 10)).collect();
        let batches = plan_batches(&sizes, 1_000);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
        let sizes = [(0, 600), (1, 300), (2, 200), (3, 1_000), (4, 1)];
        assert_eq!(plan_batches(&sizes, 1_000), [vec![0, 1], vec![2], vec![3], vec![4]]);
        assert!(plan_batches(&[], 10).is_empty());
    }

    #[test]
    fn fifo_queues_are_known_by_name_and_ids_are_kept_valid() {
        assert!(is_fifo("https://sqs.us-east-1.amazonaws.com/123456789012/jobs.fifo"));
        assert!(!is_fifo("https://sqs.us-east-1.amazonaws.com/123456789012/jobs"));
        let fields = FifoFields::new("111122223333", &format!("id with spaces {}", "x".repeat(200)));
        assert_eq!(fields.group_id, "111122223333");
        assert_eq!(fields.deduplication_id.len(), 128);
        assert!(!fields.deduplication_id.contains(' '));
        assert_eq!(FifoFields::new("", "").group_id, "-");
    }
}

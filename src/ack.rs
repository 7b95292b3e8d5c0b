//! Acknowledgement: deleting finished messages in batches, moving rejected and failed ones to
//! the dead-letter queue with their reason, sending results (batches sized by entries and by
//! the queue's byte limit, FIFO fields on FIFO queues), and changing visibility for heartbeats,
//! retries and release on shutdown.

use std::time::Duration;

use std::sync::Arc;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageAttributeValue, SendMessageBatchRequestEntry};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;

use crate::aws::{self, AwsCallError, Clients};
use crate::batch::Batcher;
use crate::intake::Received;
use crate::metrics::Metrics;
use crate::outcome::Outcome;
use crate::sqs::{self, FifoFields, QueueTarget, SendError};

/// Attempts at a batch entry that SQS reported as failed before giving up on it.
const ENTRY_ATTEMPTS: usize = 3;

/// SQS allows ten message attributes; two are ours.
const MAX_PRODUCER_ATTRIBUTES: usize = 8;

/// Reasons are cut to this length in the dead-letter attribute.
const MAX_REASON: usize = 1024;

/// A message to send, with attributes.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The body.
    pub body: String,
    /// Message attributes.
    pub attributes: Vec<(String, MessageAttributeValue)>,
    /// Group and deduplication ids, sent only to a FIFO queue.
    pub fifo: FifoFields,
}

impl Outgoing {
    fn size(&self) -> usize {
        sqs::message_size(&self.body, &self.attributes)
    }
}

/// How long a finished job's result and delete may wait for others to share their batch calls:
/// nothing waits on them, and a fuller batch saves SQS calls (a job's message is hidden for the
/// whole visibility timeout anyway).
const COMPLETION_LINGER: Duration = Duration::from_millis(200);

/// A finished job: its result to send, then its delivery to delete, and the worker slot it keeps
/// until then.
#[derive(Debug)]
struct Completion {
    result: Outgoing,
    delete: Option<PendingDelete>,
}

/// What becomes of a finished job's intake message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposal {
    /// Deleted (after the result is sent).
    Delete,
    /// Left in the intake queue (for SQS's redrive policy).
    Keep,
}

/// A delivery to delete; dropping it (after the delete call) frees the worker slot.
#[derive(Debug)]
struct PendingDelete {
    receipt_handle: String,
    _worker: OwnedSemaphorePermit,
}

/// Where batched sends go, with what they need to call SQS.
#[derive(Clone)]
struct Sender {
    clients: Clients,
    metrics: Metrics,
    target: Arc<QueueTarget>,
}

/// The batchers and direct calls of acknowledgement.
#[derive(Clone)]
pub struct Acknowledger {
    clients: Clients,
    metrics: Metrics,
    intake_url: String,
    dead_letter_queue: Arc<QueueTarget>,
    deletes: Batcher<PendingDelete, SendError>,
    dead_letters: Batcher<Outgoing, SendError>,
    results: Option<Batcher<Completion, SendError>>,
}

impl Acknowledger {
    /// Starts the batchers; the returned tasks end once every clone of the acknowledger is gone
    /// and their queues are flushed.
    pub fn start(
        clients: &Clients,
        metrics: &Metrics,
        intake_url: &str,
        dead_letter_url: &str,
        results_url: Option<&str>,
    ) -> (Self, Vec<JoinHandle<()>>) {
        let mut tasks = Vec::new();
        let (deletes, task) = {
            let (clients, metrics, url) = (clients.clone(), metrics.clone(), intake_url.to_owned());
            Batcher::spawn(COMPLETION_LINGER, move |pending: Vec<PendingDelete>| {
                let (clients, metrics, url) = (clients.clone(), metrics.clone(), url.clone());
                async move {
                    let handles = pending.iter().map(|p| p.receipt_handle.clone()).collect();
                    let results = delete_batch(clients, metrics.clone(), url, handles).await;
                    drop(pending);
                    for result in &results {
                        match result {
                            Ok(()) => metrics.messages_deleted.inc(),
                            Err(error) => {
                                tracing::warn!(%error, "Could not delete a finished message; a redelivery will find nothing left to do.")
                            }
                        }
                    }
                    results
                }
            })
        };
        tasks.push(task);
        let dead_letter_queue = Arc::new(QueueTarget::new(dead_letter_url));
        let (dead_letters, task) = {
            let sender = Sender { clients: clients.clone(), metrics: metrics.clone(), target: dead_letter_queue.clone() };
            // The worker waits for this one (the intake message is deleted only after it), so
            // it does not linger.
            Batcher::spawn(Duration::ZERO, move |messages| send_batch(sender.clone(), messages))
        };
        tasks.push(task);
        let results = results_url.map(|url| {
            let sender = Sender { clients: clients.clone(), metrics: metrics.clone(), target: Arc::new(QueueTarget::new(url)) };
            let deletes = deletes.clone();
            let (batcher, task) = Batcher::spawn(COMPLETION_LINGER, move |completions: Vec<Completion>| {
                let (sender, deletes) = (sender.clone(), deletes.clone());
                async move {
                    let (messages, pending): (Vec<_>, Vec<_>) = completions.into_iter().map(|c| (c.result, c.delete)).unzip();
                    let sent = send_batch(sender, messages).await;
                    for (result, delete) in sent.iter().zip(pending) {
                        if let Err(error) = result {
                            tracing::error!(%error, "Could not send a result to the results queue; it is in the log only.");
                        }
                        // Results first, then the delete: a crash in between redelivers the job,
                        // which finds nothing left to do and reports again.
                        if let Some(delete) = delete {
                            deletes.push(delete);
                        }
                    }
                    sent
                }
            });
            tasks.push(task);
            batcher
        });
        let acknowledger = Self {
            clients: clients.clone(),
            metrics: metrics.clone(),
            intake_url: intake_url.to_owned(),
            dead_letter_queue,
            deletes,
            dead_letters,
            results,
        };
        (acknowledger, tasks)
    }

    /// Hands a finished job over: its result goes to the results queue (when configured), then
    /// its message is deleted from the intake queue, then `worker` is released. The job's task
    /// ends at once; the drain on shutdown flushes both batchers. `group` is the result's FIFO
    /// message group (the account).
    pub fn complete(
        &self,
        message: &Received,
        result_json: String,
        group: &str,
        worker: OwnedSemaphorePermit,
        disposal: Disposal,
    ) {
        let delete = match disposal {
            Disposal::Delete => Some(PendingDelete { receipt_handle: message.receipt_handle.clone(), _worker: worker }),
            Disposal::Keep => None,
        };
        match (&self.results, delete) {
            (Some(results), delete) => {
                // The intake message id deduplicates: a result sent again after a crash (before
                // the delete) is dropped by a FIFO results queue.
                let fifo = FifoFields::new(group, &message.message_id);
                results.push(Completion { result: Outgoing { body: result_json, attributes: Vec::new(), fifo }, delete });
            }
            (None, Some(delete)) => self.deletes.push(delete),
            (None, None) => {}
        }
    }

    /// Sends the original body, byte for byte, and the producer's attributes, plus the outcome
    /// and reason, to the dead-letter queue. The caller deletes the intake message only after
    /// this succeeded. On a FIFO queue the message keeps its group (`group` when it had none).
    /// When the copy would pass the queue's size limit, the reason is cut, then producer
    /// attributes are dropped (the reason says which); a body too large alone is
    /// [`SendError::TooLarge`].
    pub async fn dead_letter(&self, message: &Received, outcome: Outcome, reason: &str, group: &str) -> Result<(), SendError> {
        let limit = self.dead_letter_queue.max_message_size(&self.clients, &self.metrics).await;
        let producer: Vec<(String, MessageAttributeValue)> = message
            .attributes
            .iter()
            .filter(|(name, _)| !name.starts_with("rootwarden-"))
            .take(MAX_PRODUCER_ATTRIBUTES)
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let attributes = fit_dead_letter(&message.body, producer, outcome, reason, limit)?;
        let fifo = FifoFields::new(message.group_id.as_deref().unwrap_or(group), &message.message_id);
        self.dead_letters.submit(Outgoing { body: message.body.clone(), attributes, fifo }).await?;
        self.metrics.messages_dead_lettered.with_label_values(&[outcome.as_str()]).inc();
        Ok(())
    }

    /// The dead-letter queue's `MaximumMessageSize`, once the queue answers.
    pub async fn dead_letter_limit(&self) -> Result<usize, AwsCallError> {
        self.dead_letter_queue.read_max_message_size(&self.clients, &self.metrics).await
    }

    /// Sets the message's visibility (heartbeat, retry backoff, or 0 to release it).
    pub async fn set_visibility(&self, message: &Received, timeout: Duration) -> Result<(), AwsCallError> {
        let request = self
            .clients
            .sqs
            .change_message_visibility()
            .queue_url(&self.intake_url)
            .receipt_handle(&message.receipt_handle)
            .visibility_timeout(timeout.as_secs().min(43_200) as i32)
            .send();
        aws::call(&self.metrics, "sqs", "ChangeMessageVisibility", request).await.map(|_| ())
    }
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder().data_type("String").string_value(value).build().expect("data type is set")
}

const OUTCOME_ATTRIBUTE: &str = "rootwarden-outcome";
const REASON_ATTRIBUTE: &str = "rootwarden-reason";

/// The dead-letter copy's attributes within `limit` bytes with `body`: the producer's, then the
/// outcome and the reason (cut to what fits, at most [`MAX_REASON`] characters). Producer
/// attributes are dropped, largest first, only when even a one-character reason would not fit.
fn fit_dead_letter(
    body: &str,
    mut producer: Vec<(String, MessageAttributeValue)>,
    outcome: Outcome,
    reason: &str,
    limit: usize,
) -> Result<Vec<(String, MessageAttributeValue)>, SendError> {
    let outcome_attribute = (OUTCOME_ATTRIBUTE.to_owned(), string_attribute(outcome.as_str()));
    let fixed = |producer: &[(String, MessageAttributeValue)]| {
        sqs::message_size(body, producer)
            + sqs::attribute_size(&outcome_attribute.0, &outcome_attribute.1)
            + sqs::attribute_size(REASON_ATTRIBUTE, &string_attribute("-"))
    };
    let mut dropped = Vec::new();
    while fixed(&producer) > limit {
        let Some(largest) = (0..producer.len()).max_by_key(|&i| sqs::attribute_size(&producer[i].0, &producer[i].1)) else {
            return Err(SendError::TooLarge { size: fixed(&producer), limit });
        };
        dropped.push(producer.remove(largest).0);
    }
    let mut reason = if reason.is_empty() { "-".to_owned() } else { reason.chars().take(MAX_REASON).collect() };
    if !dropped.is_empty() {
        reason = format!("[attributes {} dropped to fit the dead-letter queue] {reason}", dropped.join(", "));
    }
    // Room for the reason's value: its placeholder "-" is already counted.
    let room = limit - fixed(&producer) + 1;
    let mut attributes = producer;
    attributes.push(outcome_attribute);
    attributes.push((REASON_ATTRIBUTE.to_owned(), string_attribute(truncate_bytes(&reason, room))));
    Ok(attributes)
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate_bytes(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What SQS said of a batch call's entries, by index into the batch.
struct EntryResults {
    succeeded: Vec<usize>,
    /// (index, AWS code, sender fault).
    failed: Vec<(usize, String, bool)>,
}

/// SQS's answer when a batch's entries add up to more than the queue accepts (the SDK reports
/// the query-compatible code, `AWS.SimpleQueueService.BatchRequestTooLong`).
fn is_batch_too_long(error: &AwsCallError) -> bool {
    error.code == "BatchRequestTooLong" || error.code.ends_with(".BatchRequestTooLong")
}

/// Calls `attempt` with the indices of `entries` still pending, retrying the entries SQS
/// reports as failed (and the whole call on a transport error) up to `ENTRY_ATTEMPTS` times,
/// after a short pause; failures are counted by the caller, never ignored. A sender fault
/// (e.g. an invalid receipt handle) would fail the same way again, so it is not retried. A
/// batch SQS finds too long is never retried unchanged: its pending entries are returned for
/// the caller to split.
async fn with_entry_retries<F, Fut>(
    operation: &str,
    entries: Vec<usize>,
    results: &mut [Result<(), SendError>],
    mut attempt: F,
) -> Option<Vec<usize>>
where
    F: FnMut(Vec<usize>) -> Fut,
    Fut: std::future::Future<Output = Result<EntryResults, AwsCallError>>,
{
    let mut pending = entries;
    for round in 0..ENTRY_ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(100 << round)).await;
        }
        match attempt(pending.clone()).await {
            Ok(entries) => {
                for i in entries.succeeded {
                    results[i] = Ok(());
                }
                pending = entries
                    .failed
                    .into_iter()
                    .filter_map(|(i, code, sender_fault)| {
                        results[i] = Err(SendError::Failed(format!("{operation} entry failed with {code}")));
                        (!sender_fault).then_some(i)
                    })
                    .collect();
            }
            Err(error) if is_batch_too_long(&error) => return Some(pending),
            Err(error) => {
                for &i in &pending {
                    results[i] = Err(SendError::Failed(error.to_string()));
                }
            }
        }
    }
    None
}

fn index(id: &str) -> Option<usize> {
    id.parse().ok()
}

/// One DeleteMessageBatch of up to ten receipt handles.
async fn delete_batch(clients: Clients, metrics: Metrics, url: String, handles: Vec<String>) -> Vec<Result<(), SendError>> {
    let mut results = vec![Err(SendError::Failed("not attempted".into())); handles.len()];
    with_entry_retries("DeleteMessageBatch", (0..handles.len()).collect(), &mut results, |pending| {
        let entries = pending.iter().map(|&i| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(&handles[i])
                .build()
                .expect("fields set")
        });
        let request = clients.sqs.delete_message_batch().queue_url(&url).set_entries(Some(entries.collect())).send();
        let metrics = &metrics;
        async move {
            let output = aws::call(metrics, "sqs", "DeleteMessageBatch", request).await?;
            metrics.delete_failures.inc_by(output.failed().len() as u64);
            Ok(EntryResults {
                succeeded: output.successful().iter().filter_map(|e| index(e.id())).collect(),
                failed: output
                    .failed()
                    .iter()
                    .filter_map(|e| Some((index(e.id())?, e.code().to_owned(), e.sender_fault())))
                    .collect(),
            })
        }
    })
    .await;
    results
}

/// Sends up to ten messages: in as few SendMessageBatch calls as the queue's size limit allows,
/// a message too large alone refused without a call, and a batch SQS finds too long split in
/// halves until it fits.
async fn send_batch(sender: Sender, messages: Vec<Outgoing>) -> Vec<Result<(), SendError>> {
    let limit = sender.target.max_message_size(&sender.clients, &sender.metrics).await;
    let mut results = vec![Err(SendError::Failed("not attempted".into())); messages.len()];
    let mut fitting = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let size = message.size();
        if size > limit {
            results[i] = Err(SendError::TooLarge { size, limit });
        } else {
            fitting.push((i, size));
        }
    }
    // A stack, first batch on top, so messages leave in the order they came.
    let mut groups: Vec<Vec<usize>> = sqs::plan_batches(&fitting, limit);
    groups.reverse();
    while let Some(group) = groups.pop() {
        let Some(too_long) = send_group(&sender, &messages, group, &mut results).await else { continue };
        tracing::warn!(entries = too_long.len(), "SQS found a batch too long; sending it in halves.");
        if let [single] = too_long[..] {
            results[single] = Err(SendError::TooLarge { size: messages[single].size(), limit });
        } else {
            let (first, second) = too_long.split_at(too_long.len() / 2);
            groups.push(second.to_vec());
            groups.push(first.to_vec());
        }
    }
    results
}

/// One SendMessageBatch call (with entry retries) of the messages at `group`; returns the
/// entries still pending when SQS found the batch too long.
async fn send_group(
    sender: &Sender,
    messages: &[Outgoing],
    group: Vec<usize>,
    results: &mut [Result<(), SendError>],
) -> Option<Vec<usize>> {
    let Sender { clients, metrics, target } = sender;
    with_entry_retries("SendMessageBatch", group, results, |pending| {
        let entries = pending.iter().map(|&i| {
            let message = &messages[i];
            let mut entry = SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(&message.body);
            for (name, value) in &message.attributes {
                entry = entry.message_attributes(name, value.clone());
            }
            if target.fifo {
                entry = entry.message_group_id(&message.fifo.group_id).message_deduplication_id(&message.fifo.deduplication_id);
            }
            entry.build().expect("fields set")
        });
        let request = clients.sqs.send_message_batch().queue_url(&target.url).set_entries(Some(entries.collect())).send();
        async move {
            let output = aws::call(metrics, "sqs", "SendMessageBatch", request).await?;
            Ok(EntryResults {
                succeeded: output.successful().iter().filter_map(|e| index(e.id())).collect(),
                failed: output
                    .failed()
                    .iter()
                    .filter_map(|e| Some((index(e.id())?, e.code().to_owned(), e.sender_fault())))
                    .collect(),
            })
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn producer(name: &str, value_len: usize) -> (String, MessageAttributeValue) {
        (name.to_owned(), string_attribute(&"v".repeat(value_len)))
    }

    #[test]
    fn a_dead_letter_copy_fits_by_cutting_the_reason_then_dropping_attributes() {
        let body = "b".repeat(900);
        let reason = "r".repeat(2_000);
        // Room for everything: the reason is cut to MAX_REASON characters only.
        let attributes = fit_dead_letter(&body, vec![producer("traceparent", 55)], Outcome::Rejected, &reason, 1 << 20).unwrap();
        assert_eq!(attributes.last().unwrap().1.string_value().unwrap().len(), MAX_REASON);
        // Tight: the reason is cut to the byte so the whole copy is exactly at the limit.
        let limit = 1_100;
        let attributes = fit_dead_letter(&body, vec![producer("traceparent", 55)], Outcome::Rejected, &reason, limit).unwrap();
        assert_eq!(sqs::message_size(&body, &attributes), limit);
        assert_eq!(attributes[0].0, "traceparent", "the producer's attribute is kept while the reason can shrink");
        // Tighter: the producer's attribute must go, and the reason says so.
        let attributes = fit_dead_letter(&body, vec![producer("traceparent", 155)], Outcome::Rejected, "bad", 1_000).unwrap();
        assert!(attributes.iter().all(|(name, _)| name != "traceparent"));
        let kept_reason = attributes.last().unwrap().1.string_value().unwrap();
        assert!(kept_reason.starts_with("[attributes traceparent dropped"), "{kept_reason}");
        assert!(sqs::message_size(&body, &attributes) <= 1_000);
        // The body alone does not fit: refused, never cut.
        let error = fit_dead_letter(&body, Vec::new(), Outcome::Failed, "x", 800).unwrap_err();
        assert!(matches!(error, SendError::TooLarge { limit: 800, .. }), "{error:?}");
    }

    #[test]
    fn a_cut_reason_stays_valid_utf8() {
        assert_eq!(truncate_bytes("ééé", 3), "é");
        assert_eq!(truncate_bytes("abc", 10), "abc");
    }
}

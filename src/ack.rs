//! Acknowledgement: deleting finished messages in batches, moving rejected and failed ones to
//! the dead-letter queue with their reason, sending results, and changing visibility for
//! heartbeats, retries and release on shutdown.

use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageAttributeValue, SendMessageBatchRequestEntry};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;

use crate::aws::{self, AwsCallError, Clients};
use crate::batch::Batcher;
use crate::intake::Received;
use crate::metrics::Metrics;
use crate::outcome::Outcome;

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
}

/// How long a finished job's result and delete may wait for others to share their batch calls:
/// nothing waits on them, and a fuller batch saves SQS calls (a job's message is hidden for the
/// whole visibility timeout anyway).
const COMPLETION_LINGER: Duration = Duration::from_millis(200);

/// A finished job: its result to send, then its delivery to delete, and the worker slot it keeps
/// until then.
#[derive(Debug)]
struct Completion {
    result_json: String,
    delete: PendingDelete,
}

/// A delivery to delete; dropping it (after the delete call) frees the worker slot.
#[derive(Debug)]
struct PendingDelete {
    receipt_handle: String,
    _worker: OwnedSemaphorePermit,
}

/// The batchers and direct calls of acknowledgement.
#[derive(Clone)]
pub struct Acknowledger {
    clients: Clients,
    metrics: Metrics,
    intake_url: String,
    deletes: Batcher<PendingDelete>,
    dead_letters: Batcher<Outgoing>,
    results: Option<Batcher<Completion>>,
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
        let (dead_letters, task) = {
            let (clients, metrics, url) = (clients.clone(), metrics.clone(), dead_letter_url.to_owned());
            // The worker waits for this one (the intake message is deleted only after it), so
            // it does not linger.
            Batcher::spawn(Duration::ZERO, move |messages| send_batch(clients.clone(), metrics.clone(), url.clone(), messages))
        };
        tasks.push(task);
        let results = results_url.map(|url| {
            let (clients, metrics, url, deletes) = (clients.clone(), metrics.clone(), url.to_owned(), deletes.clone());
            let (batcher, task) = Batcher::spawn(COMPLETION_LINGER, move |completions: Vec<Completion>| {
                let (clients, metrics, url, deletes) = (clients.clone(), metrics.clone(), url.clone(), deletes.clone());
                async move {
                    let (messages, pending): (Vec<_>, Vec<_>) = completions
                        .into_iter()
                        .map(|c| (Outgoing { body: c.result_json, attributes: Vec::new() }, c.delete))
                        .unzip();
                    let sent = send_batch(clients, metrics, url, messages).await;
                    for (result, delete) in sent.iter().zip(pending) {
                        if let Err(error) = result {
                            tracing::error!(%error, "Could not send a result to the results queue; it is in the log only.");
                        }
                        // Results first, then the delete: a crash in between redelivers the job,
                        // which finds nothing left to do and reports again.
                        deletes.push(delete);
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
            deletes,
            dead_letters,
            results,
        };
        (acknowledger, tasks)
    }

    /// Hands a finished job over: its result goes to the results queue (when configured), then
    /// its message is deleted from the intake queue, then `worker` is released. The job's task
    /// ends at once; the drain on shutdown flushes both batchers.
    pub fn complete(&self, message: &Received, result_json: String, worker: OwnedSemaphorePermit) {
        let delete = PendingDelete { receipt_handle: message.receipt_handle.clone(), _worker: worker };
        match &self.results {
            Some(results) => results.push(Completion { result_json, delete }),
            None => self.deletes.push(delete),
        }
    }

    /// Sends the original body and attributes, plus the outcome and reason, to the dead-letter
    /// queue. The caller deletes the intake message only after this succeeded.
    pub async fn dead_letter(&self, message: &Received, outcome: Outcome, reason: &str) -> Result<(), String> {
        let mut attributes: Vec<(String, MessageAttributeValue)> = message
            .attributes
            .iter()
            .filter(|(name, _)| !name.starts_with("rootwarden-"))
            .take(MAX_PRODUCER_ATTRIBUTES)
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let reason: String = reason.chars().take(MAX_REASON).collect();
        attributes.push(("rootwarden-outcome".into(), string_attribute(outcome.as_str())));
        attributes.push(("rootwarden-reason".into(), string_attribute(if reason.is_empty() { "-" } else { &reason })));
        self.dead_letters.submit(Outgoing { body: message.body.clone(), attributes }).await?;
        self.metrics.messages_dead_lettered.with_label_values(&[outcome.as_str()]).inc();
        Ok(())
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

/// What SQS said of a batch call's entries, by index into the batch.
struct EntryResults {
    succeeded: Vec<usize>,
    /// (index, AWS code, sender fault).
    failed: Vec<(usize, String, bool)>,
}

/// Calls `attempt` with the indices still pending, retrying the entries SQS reports as failed
/// (and the whole call on a transport error) up to `ENTRY_ATTEMPTS` times; failures are counted
/// by the caller, never ignored. A sender fault (e.g. an invalid receipt handle) would fail the
/// same way again, so it is not retried.
async fn with_entry_retries<F, Fut>(operation: &str, count: usize, mut attempt: F) -> Vec<Result<(), String>>
where
    F: FnMut(Vec<usize>) -> Fut,
    Fut: std::future::Future<Output = Result<EntryResults, AwsCallError>>,
{
    let mut results: Vec<Result<(), String>> = vec![Err("not attempted".into()); count];
    let mut pending: Vec<usize> = (0..count).collect();
    for _ in 0..ENTRY_ATTEMPTS {
        if pending.is_empty() {
            break;
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
                        results[i] = Err(format!("{operation} entry failed with {code}"));
                        (!sender_fault).then_some(i)
                    })
                    .collect();
            }
            Err(error) => {
                for &i in &pending {
                    results[i] = Err(error.to_string());
                }
            }
        }
    }
    results
}

fn index(id: &str) -> Option<usize> {
    id.parse().ok()
}

/// One DeleteMessageBatch of up to ten receipt handles.
async fn delete_batch(clients: Clients, metrics: Metrics, url: String, handles: Vec<String>) -> Vec<Result<(), String>> {
    with_entry_retries("DeleteMessageBatch", handles.len(), |pending| {
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
    .await
}

/// One SendMessageBatch of up to ten messages.
async fn send_batch(clients: Clients, metrics: Metrics, url: String, messages: Vec<Outgoing>) -> Vec<Result<(), String>> {
    with_entry_retries("SendMessageBatch", messages.len(), |pending| {
        let entries = pending.iter().map(|&i| {
            let message = &messages[i];
            let mut entry = SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(&message.body);
            for (name, value) in &message.attributes {
                entry = entry.message_attributes(name, value.clone());
            }
            entry.build().expect("fields set")
        });
        let request = clients.sqs.send_message_batch().queue_url(&url).set_entries(Some(entries.collect())).send();
        let metrics = &metrics;
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

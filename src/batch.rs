//! Batching of SQS writes: requests that arrive while a batch call is in flight are sent
//! together in the next one (up to SQS's 10 entries; the flush splits them further by bytes). A batcher may also linger a moment after
//! its first entry for more, where a short delay costs nothing (deleting a finished message) and
//! fuller batches save calls.

use std::future::Future;

use std::time::Duration;

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::sqs::MAX_BATCH_ENTRIES as MAX_BATCH;

type Request<T, E> = (T, oneshot::Sender<Result<(), E>>);

/// A handle to submit entries; the flushing task ends when every handle is dropped and the
/// queue is drained, which is how shutdown flushes what is pending.
#[derive(Debug)]
pub struct Batcher<T, E = String> {
    sender: mpsc::UnboundedSender<Request<T, E>>,
}

impl<T, E> Clone for Batcher<T, E> {
    fn clone(&self) -> Self {
        Self { sender: self.sender.clone() }
    }
}

impl<T: Send + 'static, E: From<&'static str> + Send + 'static> Batcher<T, E> {
    /// Starts the flushing task. `flush` gets up to ten entries and returns one result per entry,
    /// in order; a batch waits at most `linger` after its first entry for the rest.
    pub fn spawn<F, Fut>(linger: Duration, flush: F) -> (Self, JoinHandle<()>)
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Result<(), E>>> + Send,
    {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Request<T, E>>();
        let task = tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                let deadline = Instant::now() + linger;
                while batch.len() < MAX_BATCH {
                    match receiver.try_recv() {
                        Ok(request) => batch.push(request),
                        Err(TryRecvError::Disconnected) => break,
                        Err(TryRecvError::Empty) if linger.is_zero() => break,
                        Err(TryRecvError::Empty) => match tokio::time::timeout_at(deadline, receiver.recv()).await {
                            Ok(Some(request)) => batch.push(request),
                            // Closed (shutdown: flush now) or lingered long enough.
                            Ok(None) | Err(_) => break,
                        },
                    }
                }
                let (entries, replies): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
                let mut results = flush(entries).await.into_iter();
                for reply in replies {
                    let result = results.next().unwrap_or_else(|| Err(E::from("the batch returned no result")));
                    // The submitter may have given up waiting; its loss.
                    let _ = reply.send(result);
                }
            }
        });
        (Self { sender }, task)
    }

    /// Queues `entry` for the next batch without waiting for it; the flush reports failures.
    pub fn push(&self, entry: T) {
        let (reply, _) = oneshot::channel();
        if self.sender.send((entry, reply)).is_err() {
            tracing::error!("An entry was queued after its batcher stopped; it is dropped.");
        }
    }

    /// Queues `entry` for the next batch and waits for its own result.
    pub async fn submit(&self, entry: T) -> Result<(), E> {
        let (reply, result) = oneshot::channel();
        self.sender.send((entry, reply)).map_err(|_| E::from("the batcher has stopped"))?;
        result.await.map_err(|_| E::from("the batcher dropped the entry"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn entries_waiting_together_share_a_call() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let (batcher, task) = Batcher::<u32, String>::spawn(Duration::ZERO, move |entries: Vec<u32>| {
            seen.lock().unwrap().push(entries.len());
            async move { entries.iter().map(|e| if e % 7 == 0 { Err(format!("{e} failed")) } else { Ok(()) }).collect() }
        });
        let results = futures::future::join_all((1..=25).map(|n| {
            let batcher = batcher.clone();
            async move { batcher.submit(n).await }
        }))
        .await;
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 3);
        assert_eq!(results[6], Err("7 failed".into()));
        drop(batcher);
        task.await.unwrap();
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 25);
        assert!(sizes.iter().all(|&n| n <= MAX_BATCH));
        assert!(sizes.len() < 25, "entries submitted together were batched: {sizes:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lingering_batch_fills_up_then_leaves_on_time() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let (batcher, task) = Batcher::<u32, String>::spawn(Duration::from_millis(200), move |entries: Vec<u32>| {
            seen.lock().unwrap().push(entries.len());
            async move { entries.iter().map(|_| Ok(())).collect() }
        });
        for n in 0..13 {
            batcher.push(n);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(batcher);
        task.await.unwrap();
        assert_eq!(*sizes.lock().unwrap(), vec![10, 3], "a full batch leaves at once, the rest on close");
    }
}

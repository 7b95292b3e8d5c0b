//! Taking a sweep's results from the results queue: results of this sweep's jobs are recorded
//! (state saved first) and then deleted; any other message is made visible again at once for
//! its own consumer.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::state::account_of;
use super::{Shared, SweepError, SweepOptions};
use crate::aws::{self, Clients, ErrorClass};
use crate::outcome::JobResult;

/// Long-poll wait of the collector's one long poll: short enough that the idle timeout,
/// `stop_after` and an interrupt are checked often, long enough not to spin on an empty queue.
const WAIT_SECONDS: i32 = 1;

/// When a receive brought only other consumers' results, wait this long before the next one so
/// a queue full of them is not read in a tight loop (it is pacing, not synchronisation).
const FOREIGN_PAUSE: Duration = Duration::from_millis(500);

/// The most messages SQS returns to one receive.
const RECEIVE_MAX: usize = 10;

/// Receivers that join the long poll while results wait in the queue. One receive returns at
/// most ten messages, and a receive, the state save and the delete take a round trip each, so
/// the long poll alone would bound the sweep's pace rather than the daemon's.
///
/// Helpers short-poll, and while any helper is at work the long poller short-polls too: a long
/// poll is never abandoned (see `receive_once`), so one still waiting when another receiver
/// records the last result holds the sweep's end for up to `WAIT_SECONDS` (with four long
/// polls an audit of 500 accounts ended 0.9 s after its last result; with helpers beside one
/// long poll, that still happened in two sweeps out of three at 0 ms latency). So the long
/// poll runs only while the receivers have nothing to do, and a sweep ends when its last result
/// is recorded.
///
/// Each receive that brings a full batch of results calls one idle helper in; a helper goes
/// idle again after a receive that brings less. (Calling all of them at once made 100 more
/// empty receives for 500 accounts, and the sweep no faster.)
const HELPERS: usize = 3;

/// The helpers' comings and goings.
struct Helpers {
    idle: AtomicUsize,
    /// One permit per call: a call made while no helper waits yet is kept, not lost.
    called: Semaphore,
    all_idle: Notify,
}

impl Helpers {
    fn new() -> Self {
        Self { idle: AtomicUsize::new(HELPERS), called: Semaphore::new(0), all_idle: Notify::new() }
    }

    /// Calls one idle helper in, if there is one. It counts as at work from this moment, so
    /// the long poller, which may be the caller, short-polls from its very next receive.
    fn call(&self) {
        if self.idle.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |idle| idle.checked_sub(1)).is_ok() {
            self.called.add_permits(1);
        }
    }

    /// Waits for a call; false if `done` came first.
    async fn until_called(&self, done: &CancellationToken) -> bool {
        tokio::select! {
            permit = self.called.acquire() => {
                permit.expect("the semaphore is never closed").forget();
                true
            }
            _ = done.cancelled() => false,
        }
    }

    fn at_work(&self) -> bool {
        self.idle.load(Ordering::SeqCst) < HELPERS
    }

    fn went_idle(&self) {
        if self.idle.fetch_add(1, Ordering::SeqCst) + 1 == HELPERS {
            self.all_idle.notify_waiters();
        }
    }

    /// Waits until no helper is at work, or `done`.
    async fn until_all_idle(&self, done: &CancellationToken) {
        let all_idle = self.all_idle.notified();
        tokio::pin!(all_idle);
        // Registered before the check, so going idle in between is not missed.
        all_idle.as_mut().enable();
        if self.at_work() {
            tokio::select! {
                _ = all_idle => {}
                _ = done.cancelled() => {}
            }
        }
    }
}

/// What one receive brought.
struct Receipt {
    messages: usize,
    /// A full batch of this sweep's results: more are likely waiting.
    backlog: bool,
}

/// What the receivers share.
struct Collecting<'a> {
    clients: &'a Clients,
    shared: &'a Shared,
    options: &'a SweepOptions,
    /// The caller's interrupt: the collection ends `interrupted` when it fires.
    cancel: &'a CancellationToken,
    sweep_id: String,
    received: AtomicUsize,
    last_result: Mutex<Instant>,
    /// Why the collection ended early; the first receiver to find a reason sets it.
    stopped: Mutex<Option<String>>,
    done: CancellationToken,
    helpers: Helpers,
}

/// Collects until complete, cancelled, `stop_after` or idle; returns the new results and why it
/// stopped early (if it did).
pub(super) async fn collect(
    clients: &Clients,
    shared: &Shared,
    options: &SweepOptions,
    cancel: &CancellationToken,
) -> Result<(usize, Option<String>), SweepError> {
    let collecting = Collecting {
        clients,
        shared,
        options,
        cancel,
        sweep_id: shared.state.lock().expect("sweep state lock").definition.sweep_id.clone(),
        received: AtomicUsize::new(0),
        last_result: Mutex::new(Instant::now()),
        stopped: Mutex::new(None),
        done: cancel.child_token(),
        helpers: Helpers::new(),
    };
    report_progress(shared, options);
    let helpers = futures::future::join_all((0..HELPERS).map(|_| help(&collecting)));
    let (long_polled, helped) = tokio::join!(long_poll(&collecting), helpers);
    long_polled?;
    helped.into_iter().collect::<Result<Vec<()>, SweepError>>()?;
    let stopped = collecting.stopped.lock().expect("stop reason lock").clone();
    Ok((collecting.received.load(Ordering::SeqCst), stopped))
}

impl Collecting<'_> {
    /// Ends the collection for every receiver, keeping the first reason given.
    fn stop(&self, reason: Option<String>) {
        let mut stopped = self.stopped.lock().expect("stop reason lock");
        if stopped.is_none() {
            *stopped = reason;
        }
        self.done.cancel();
    }

    /// Checks whether the collection is over, ending it for every receiver if it just ended.
    fn over(&self) -> bool {
        if let Some(reason) = self.stop_reason() {
            self.stop(reason);
        }
        self.done.is_cancelled()
    }

    /// Why to stop now, if at all: `Some(None)` when complete.
    fn stop_reason(&self) -> Option<Option<String>> {
        let received = self.received.load(Ordering::SeqCst);
        if self.shared.state.lock().expect("sweep state lock").complete() {
            Some(None)
        } else if self.cancel.is_cancelled() {
            Some(Some("interrupted".into()))
        } else if self.options.stop_after.is_some_and(|limit| received >= limit) {
            Some(Some(format!("stopped after {received} results (stop_after)")))
        } else if self.last_result.lock().expect("last result lock").elapsed() >= self.options.idle_timeout {
            Some(Some(format!("no result arrived for {}s", self.options.idle_timeout.as_secs())))
        } else {
            None
        }
    }
}

/// The long poller: long polls while no helper is at work, short polls beside them.
async fn long_poll(collecting: &Collecting<'_>) -> Result<(), SweepError> {
    while !collecting.over() {
        let beside_helpers = collecting.helpers.at_work();
        let receipt = receive_once(collecting, if beside_helpers { 0 } else { WAIT_SECONDS }).await?;
        if receipt.backlog {
            collecting.helpers.call();
        } else if beside_helpers && receipt.messages == 0 {
            // The helpers hold what is left; polling beside them would only spin.
            collecting.helpers.until_all_idle(&collecting.done).await;
        }
    }
    Ok(())
}

/// A helper: idle until called, then short polls while they bring full batches.
async fn help(collecting: &Collecting<'_>) -> Result<(), SweepError> {
    loop {
        if !collecting.helpers.until_called(&collecting.done).await {
            return Ok(());
        }
        loop {
            if collecting.over() {
                return Ok(());
            }
            let receipt = receive_once(collecting, 0).await?;
            if !receipt.backlog {
                break;
            }
            collecting.helpers.call();
        }
        collecting.helpers.went_idle();
    }
}

/// One receive, its results recorded and deleted and other messages released.
async fn receive_once(collecting: &Collecting<'_>, wait_seconds: i32) -> Result<Receipt, SweepError> {
    let Collecting { clients, shared, options, .. } = *collecting;
    let request = clients
        .sqs
        .receive_message()
        .queue_url(&options.results_url)
        .max_number_of_messages(RECEIVE_MAX as i32)
        .wait_time_seconds(wait_seconds)
        .send();
    // Not abandoned when another receiver ends the collection: SQS would still hand this long
    // poll the messages that arrive during its wait, and they would stay invisible for the
    // visibility timeout, out of reach of the next run or of their own consumer. So the receive
    // is finished and what it brings is recorded or released like any other.
    let output = aws::call(&shared.metrics, "sqs", "ReceiveMessage", request).await;
    let messages = match output {
        Ok(output) => output.messages.unwrap_or_default(),
        // Throttling and 5xx pass; the idle timeout bounds how long they may last.
        Err(error) if error.class != ErrorClass::Permanent => {
            tracing::warn!(%error, "Receiving results failed; trying again.");
            tokio::time::sleep(FOREIGN_PAUSE).await;
            return Ok(Receipt { messages: 0, backlog: false });
        }
        Err(error) => {
            collecting.stop(Some(format!("receiving results failed: {error}")));
            return Err(SweepError::Queue(error));
        }
    };
    let count = messages.len();
    let mut ours = Vec::new();
    let mut foreign = Vec::new();
    for message in messages {
        let handle = message.receipt_handle.clone().unwrap_or_default();
        let result = message.body.as_deref().and_then(|body| serde_json::from_str::<JobResult>(body).ok());
        let account = result
            .as_ref()
            .and_then(|r| r.job_id.as_deref())
            .and_then(|id| account_of(&collecting.sweep_id, id))
            .map(|(account, attempt)| (account.to_owned(), attempt));
        match (result, account) {
            (Some(result), Some((account, attempt))) => ours.push((account, attempt, result, handle)),
            _ => foreign.push(handle),
        }
    }
    let had_ours = !ours.is_empty();
    if had_ours {
        // Saved before the delete: a crash in between brings the results back as duplicates,
        // never loses them.
        let new = shared.update(|state| {
            ours.iter().filter(|(account, attempt, result, _)| state.record(account, *attempt, result.clone())).count()
        })?;
        // Each new answer frees a place in the posting window.
        shared.window.add_permits(new);
        collecting.received.fetch_add(new, Ordering::SeqCst);
        *collecting.last_result.lock().expect("last result lock") = Instant::now();
        report_progress(shared, options);
        let handles: Vec<String> = ours.into_iter().map(|(_, _, _, handle)| handle).collect();
        delete(clients, shared, options, handles).await;
    }
    if !foreign.is_empty() {
        release(clients, shared, options, foreign).await;
        if !had_ours {
            tokio::time::sleep(FOREIGN_PAUSE).await;
        }
    }
    Ok(Receipt { messages: count, backlog: count >= RECEIVE_MAX && had_ours })
}

fn report_progress(shared: &Shared, options: &SweepOptions) {
    if let Some(on_progress) = &options.on_progress {
        on_progress(shared.progress());
    }
}

/// Deletes recorded results. A failed delete only means the result comes back and is counted
/// as a duplicate, so it is logged, not fatal.
async fn delete(clients: &Clients, shared: &Shared, options: &SweepOptions, handles: Vec<String>) {
    let entries = handles
        .into_iter()
        .enumerate()
        .map(|(i, handle)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .build()
                .expect("id and handle set")
        })
        .collect();
    let request = clients.sqs.delete_message_batch().queue_url(&options.results_url).set_entries(Some(entries)).send();
    match aws::call(&shared.metrics, "sqs", "DeleteMessageBatch", request).await {
        Ok(output) if output.failed().is_empty() => {}
        Ok(output) => tracing::warn!(
            failed = output.failed().len(),
            "Some results could not be deleted; they will come back as duplicates."
        ),
        Err(error) => tracing::warn!(%error, "Results could not be deleted; they will come back as duplicates."),
    }
}

/// Makes other consumers' messages visible again at once.
async fn release(clients: &Clients, shared: &Shared, options: &SweepOptions, handles: Vec<String>) {
    let entries = handles
        .into_iter()
        .enumerate()
        .map(|(i, handle)| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .visibility_timeout(0)
                .build()
                .expect("id and handle set")
        })
        .collect();
    let request = clients
        .sqs
        .change_message_visibility_batch()
        .queue_url(&options.results_url)
        .set_entries(Some(entries))
        .send();
    if let Err(error) = aws::call(&shared.metrics, "sqs", "ChangeMessageVisibilityBatch", request).await {
        tracing::warn!(%error, "Other results could not be released; they return after their visibility timeout.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_take_idle_helpers_only_while_there_are_some() {
        let helpers = Helpers::new();
        assert!(!helpers.at_work());
        for _ in 0..HELPERS + 2 {
            helpers.call();
        }
        assert!(helpers.at_work());
        assert_eq!(helpers.idle.load(Ordering::SeqCst), 0);
        // Every helper called, none twice; calls made before any helper waited are kept.
        assert_eq!(helpers.called.available_permits(), HELPERS);
    }

    #[tokio::test]
    async fn the_long_poller_waits_until_the_last_helper_goes_idle_or_the_end() {
        let helpers = Helpers::new();
        let done = CancellationToken::new();
        helpers.call();
        helpers.call();
        let waiting = helpers.until_all_idle(&done);
        tokio::pin!(waiting);
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        helpers.went_idle();
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        helpers.went_idle();
        assert!(futures::poll!(waiting.as_mut()).is_ready());

        helpers.call();
        let ended = helpers.until_all_idle(&done);
        tokio::pin!(ended);
        assert!(futures::poll!(ended.as_mut()).is_pending());
        done.cancel();
        assert!(futures::poll!(ended.as_mut()).is_ready());
    }

    #[tokio::test]
    async fn a_helper_takes_a_call_made_before_it_waited_and_leaves_at_the_end() {
        let helpers = Helpers::new();
        let running = CancellationToken::new();
        helpers.call();
        assert!(helpers.until_called(&running).await);
        running.cancel();
        assert!(!helpers.until_called(&running).await);
    }
}

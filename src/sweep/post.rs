//! Posting a sweep's jobs: ten per SendMessageBatch, never more than `max_in_flight`
//! unanswered, each marked posted in the state file before it is sent.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use tokio_util::sync::CancellationToken;

use super::state::job_id;
use super::{Shared, SweepError, SweepOptions};
use crate::aws::{self, Clients};
use crate::sqs::{MAX_BATCH_ENTRIES, is_fifo};
use crate::submit::NewJob;

/// SQS batch calls take at most ten entries; a sweep's jobs are a few hundred bytes each, far
/// below any queue's size limit, so entries alone bound a batch.
const BATCH: usize = MAX_BATCH_ENTRIES;

/// Posts `accounts` in order until done or `stop`; returns how many were posted.
pub(super) async fn post_all(
    clients: &Clients,
    shared: &Shared,
    options: &SweepOptions,
    accounts: Vec<String>,
    stop: CancellationToken,
) -> Result<usize, SweepError> {
    let template = template(shared);
    let mut posted = 0;
    let mut remaining = accounts.into_iter().peekable();
    while remaining.peek().is_some() {
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            permit = shared.window.acquire() => permit.expect("the window is never closed"),
        };
        permit.forget();
        let mut batch = vec![remaining.next().expect("peeked")];
        while batch.len() < BATCH && remaining.peek().is_some() {
            let Ok(permit) = shared.window.try_acquire() else { break };
            permit.forget();
            batch.push(remaining.next().expect("peeked"));
        }
        send(clients, shared, options, &template, &batch).await?;
        posted += batch.len();
    }
    Ok(posted)
}

/// The job every account gets, from the state (a resumed sweep keeps its first definition).
fn template(shared: &Shared) -> (String, NewJob) {
    let state = shared.state.lock().expect("sweep state lock");
    let job = NewJob {
        task: state.definition.task.as_str().to_owned(),
        credentials: state.definition.credentials.clone(),
        requested_by: state.definition.requested_by.clone(),
        ticket: state.definition.ticket.clone(),
        dry_run: state.definition.dry_run,
        discover: super::discovers(state.definition.task),
        regions: state.definition.regions.clone(),
        ..NewJob::default()
    };
    (state.definition.sweep_id.clone(), job)
}

async fn send(
    clients: &Clients,
    shared: &Shared,
    options: &SweepOptions,
    (sweep_id, template): &(String, NewJob),
    batch: &[String],
) -> Result<(), SweepError> {
    let mut entries = Vec::with_capacity(batch.len());
    let attempts: Vec<u32> = {
        let state = shared.state.lock().expect("sweep state lock");
        batch.iter().map(|account| state.attempt(account)).collect()
    };
    for (index, (account, attempt)) in batch.iter().zip(attempts).enumerate() {
        let job_id = job_id(sweep_id, account, attempt);
        let job = NewJob { job_id: Some(job_id), account_id: account.clone(), ..template.clone() };
        let (body, fifo) = job.message().map_err(|e| SweepError::Invalid(vec![format!("account {account}: {e}")]))?;
        let mut entry = SendMessageBatchRequestEntry::builder().id(index.to_string()).message_body(body);
        if is_fifo(&options.intake_url) {
            entry = entry.message_group_id(fifo.group_id).message_deduplication_id(fifo.deduplication_id);
        }
        entries.push(entry.build().expect("id and body set"));
    }
    let now = crate::outcome::rfc3339(std::time::SystemTime::now());
    // Marked before the send: a crash in between leaves a job shown as missing, which a resume
    // with --repost-pending can post, rather than a job posted twice.
    shared.update(|state| {
        for account in batch {
            state.posted.insert(account.clone(), now.clone());
        }
    })?;
    let request = clients.sqs.send_message_batch().queue_url(&options.intake_url).set_entries(Some(entries)).send();
    let output = aws::call(&shared.metrics, "sqs", "SendMessageBatch", request).await.map_err(SweepError::Queue)?;
    if output.failed().is_empty() {
        return Ok(());
    }
    // These were certainly not sent: unmark them so a resume posts them.
    let failed: Vec<(String, String)> = output
        .failed()
        .iter()
        .filter_map(|f| f.id().parse::<usize>().ok().and_then(|i| batch.get(i)).map(|a| (a.clone(), f.code().to_owned())))
        .collect();
    shared.update(|state| {
        for (account, _) in &failed {
            state.posted.remove(account);
        }
    })?;
    Err(SweepError::Invalid(
        failed.iter().map(|(account, code)| format!("the job for {account} was not posted: {code}")).collect(),
    ))
}

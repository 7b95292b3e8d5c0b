//! Posting a sweep's jobs: ten per SendMessageBatch, never more than `max_in_flight`
//! unanswered, each marked posted in the state file before it is sent, each with the approvals
//! the sweep was given for its job id. Also the plan of those jobs (`--plan`, for approvers to
//! sign) and the checks that an approvals file is this sweep's.

use std::collections::HashMap;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use tokio_util::sync::CancellationToken;

use super::state::{Definition, Paths, SweepState, account_of, job_id};
use super::{Shared, SweepError, SweepOptions};
use crate::approvals::{Approval, canonical_message};
use crate::aws::{self, Clients};
use crate::job::{Job, MAX_APPROVALS};
use crate::metrics::Metrics;
use crate::sqs::{MAX_BATCH_ENTRIES, is_fifo};

/// SQS batch calls take at most ten entries; a sweep's jobs are a few hundred bytes each (and
/// at most 16 approvals), far below any queue's size limit, so entries alone bound a batch.
const BATCH: usize = MAX_BATCH_ENTRIES;

/// Approvals by job id (see [`crate::approvals::merged_by_job_id`]).
pub(super) type ApprovalsByJob = HashMap<String, Vec<Approval>>;

/// How many problems of an approvals file are listed; the rest are counted.
const LISTED_PROBLEMS: usize = 10;

/// What makes `approved` (the jobs of an approvals file) unfit for the sweep `definition`: a job
/// that is not one of the sweep's, one whose signed fields differ from those of the job the
/// sweep posts under its id (its approvals could not count), or too many approvals once merged.
pub(super) fn approval_problems(definition: &Definition, approved: &[Job]) -> Vec<String> {
    let sweep_id = &definition.sweep_id;
    let mut problems = Vec::new();
    for job in approved {
        let id = &job.job_id;
        let Some((account, attempt)) = account_of(sweep_id, id).filter(|(account, _)| *account == job.account_id) else {
            problems.push(format!(
                "--approvals: job `{id}` (account {}) is not a job of sweep {sweep_id}, whose job ids are sweep-{sweep_id}-<account>",
                job.account_id
            ));
            continue;
        };
        let expected = definition.job(account, attempt).message().ok().and_then(|(body, _)| Job::parse(&body).ok());
        let Some(expected) = expected else {
            problems.push(format!("--approvals: job `{id}`: this sweep's job for account {account} is not a valid job"));
            continue;
        };
        let differing = differing_fields(&canonical_message(job, ""), &canonical_message(&expected, ""));
        if !differing.is_empty() {
            problems.push(format!(
                "--approvals: job `{id}` differs from the job this sweep posts under that id ({}): its approvals would not count; \
                 have this sweep's plan approved (--plan)",
                differing.join(", ")
            ));
        }
    }
    for (id, approvals) in crate::approvals::merged_by_job_id(approved) {
        if approvals.len() > MAX_APPROVALS {
            problems.push(format!(
                "--approvals: job `{id}` has {} distinct approvals in the file, more than a job carries ({MAX_APPROVALS})",
                approvals.len()
            ));
        }
    }
    if problems.len() > LISTED_PROBLEMS {
        let more = problems.len() - LISTED_PROBLEMS;
        problems.truncate(LISTED_PROBLEMS);
        problems.push(format!("--approvals: and {more} more problems like these"));
    }
    problems
}

/// The names of the signed fields whose lines differ between two canonical messages.
fn differing_fields(found: &[u8], expected: &[u8]) -> Vec<String> {
    let found = String::from_utf8_lossy(found);
    let expected = String::from_utf8_lossy(expected);
    found
        .lines()
        .zip(expected.lines())
        .filter(|(a, b)| a != b)
        .map(|(line, _)| line.split_once('=').map_or(line, |(key, _)| key).to_owned())
        .collect()
}

/// Says how many of the jobs to post have no approvals in the approvals file, and how many
/// approved jobs are for accounts this sweep does not target: the sweep cannot know which tasks
/// the daemon requires approval for, so it posts them anyway.
pub(super) fn warn_unapproved(options: &SweepOptions, state: &SweepState, to_post: &[String], approvals: &ApprovalsByJob) {
    let sweep_id = &state.definition.sweep_id;
    let unapproved = to_post
        .iter()
        .filter(|account| !approvals.contains_key(&job_id(sweep_id, account, state.attempt(account))))
        .count();
    if unapproved > 0 {
        options.notice(&format!(
            "{unapproved} of the {} accounts to post have no approvals in the approvals file; their jobs are posted without \
             (a daemon that requires approval for {} rejects them: policy.approval)",
            to_post.len(),
            state.definition.task
        ));
    }
    let elsewhere = approvals
        .keys()
        .filter_map(|id| account_of(sweep_id, id))
        .filter(|(account, _)| !state.targets.iter().any(|target| target.id == *account))
        .count();
    if elsewhere > 0 {
        options.notice(&format!("{elsewhere} approved jobs are for accounts this sweep does not target; they are not posted"));
    }
}

/// The bodies of the jobs the next run of this sweep would post (JSON, in account order), for
/// approvers to sign (`--plan`): nothing is posted and no state is written. A new sweep's are one
/// per target account, read from the organization as a sweep does; a resumed sweep's are those a
/// resume with the same options would post (with `retry_failed`, the failed accounts' next
/// attempt, whose job ids are new).
pub async fn plan(clients: &Clients, options: &SweepOptions) -> Result<Vec<String>, SweepError> {
    super::check(options)?;
    let paths = Paths::from_report(&options.report);
    let Some(id) = options.sweep_id.clone() else {
        return Err(SweepError::Invalid(vec![
            "--plan needs the sweep id (--sweep-id): the approvals sign job ids, which hold it".into(),
        ]));
    };
    let state = if options.resume {
        let mut state = super::resumable(options, &id, &paths)?;
        if options.retry_failed {
            state.retry_failed();
        }
        state
    } else {
        let targets = super::accounts::select(clients, &Metrics::new(), &options.selection).await?;
        SweepState::new(options.definition(id), targets.accounts, targets.skipped)
    };
    super::to_post(&state, options.repost_pending)
        .iter()
        .map(|account| {
            let job = state.definition.job(account, state.attempt(account));
            job.body().map_err(|error| SweepError::Invalid(vec![format!("account {account}: {error}")]))
        })
        .collect()
}

/// Posts `accounts` in order until done or `stop`; returns how many were posted.
pub(super) async fn post_all(
    clients: &Clients,
    shared: &Shared,
    options: &SweepOptions,
    accounts: Vec<String>,
    approvals: &ApprovalsByJob,
    stop: CancellationToken,
) -> Result<usize, SweepError> {
    // A resumed sweep keeps its first definition.
    let definition = shared.state.lock().expect("sweep state lock").definition.clone();
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
        send(clients, shared, options, &definition, approvals, &batch).await?;
        posted += batch.len();
    }
    Ok(posted)
}

async fn send(
    clients: &Clients,
    shared: &Shared,
    options: &SweepOptions,
    definition: &Definition,
    approvals: &ApprovalsByJob,
    batch: &[String],
) -> Result<(), SweepError> {
    let mut entries = Vec::with_capacity(batch.len());
    let attempts: Vec<u32> = {
        let state = shared.state.lock().expect("sweep state lock");
        batch.iter().map(|account| state.attempt(account)).collect()
    };
    for (index, (account, attempt)) in batch.iter().zip(attempts).enumerate() {
        let mut job = definition.job(account, attempt);
        job.approvals = job.job_id.as_ref().and_then(|id| approvals.get(id)).cloned().unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approvals::Approval;
    use crate::job::Task;

    fn definition() -> Definition {
        Definition {
            sweep_id: "chg-7".into(),
            task: Task::DeleteRootUserCredentials,
            credentials: None,
            ticket: Some("CHG-7".into()),
            requested_by: Some("rootwarden-sweep:alice".into()),
            dry_run: false,
            regions: None,
        }
    }

    /// The sweep's job for `account`, as the plan holds it, changed by `change`.
    fn planned(account: &str, attempt: u32, change: impl FnOnce(&mut serde_json::Value)) -> Job {
        let (body, _) = definition().job(account, attempt).message().unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&body).unwrap();
        change(&mut value);
        Job::parse(&value.to_string()).unwrap()
    }

    fn approval(approver: &str) -> Approval {
        Approval { approver: approver.into(), signature: "c2ln".into(), not_after: "2026-12-02T09:00:00Z".into() }
    }

    #[test]
    fn an_approvals_file_must_hold_this_sweeps_jobs_with_their_signed_fields() {
        let definition = definition();
        let own = [
            planned("111122223333", 0, |_| {}),
            planned("111122223333", 1, |_| {}),
            // requested_by is not signed: another operator may post the sweep.
            planned("444455556666", 0, |job| job["requested_by"] = "someone-else".into()),
        ];
        assert_eq!(approval_problems(&definition, &own), Vec::<String>::new());

        let other_sweep = planned("111122223333", 0, |job| job["job_id"] = "sweep-chg-8-111122223333".into());
        let other_account = planned("111122223333", 0, |job| job["account_id"] = "444455556666".into());
        let changed = planned("111122223333", 0, |job| {
            job["ticket"] = "CHG-8".into();
            job["dry_run"] = true.into();
            job["credentials"] = serde_json::json!(["password"]);
        });
        let problems = approval_problems(&definition, &[other_sweep, other_account, changed]);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("job `sweep-chg-8-111122223333` (account 111122223333) is not a job of sweep chg-7"));
        assert!(problems[1].contains("job `sweep-chg-7-111122223333` (account 444455556666) is not a job of sweep chg-7"));
        assert!(
            problems[2].contains("job `sweep-chg-7-111122223333` differs from the job this sweep posts under that id (credentials, ticket, dry_run)"),
            "{problems:?}"
        );

        // Seventeen approvers' files, each valid alone, are too many approvals once merged.
        let copies: Vec<Job> = (0..=MAX_APPROVALS)
            .map(|n| {
                let mut job = planned("111122223333", 0, |_| {});
                job.approvals = vec![approval(&format!("approver-{n}"))];
                job
            })
            .collect();
        let problems = approval_problems(&definition, &copies);
        assert_eq!(
            problems,
            ["--approvals: job `sweep-chg-7-111122223333` has 17 distinct approvals in the file, more than a job carries (16)"]
        );

        let many: Vec<Job> = (0..15).map(|_| planned("111122223333", 0, |job| job["ticket"] = "CHG-8".into())).collect();
        let problems = approval_problems(&definition, &many);
        assert_eq!(problems.len(), LISTED_PROBLEMS + 1);
        assert_eq!(problems[LISTED_PROBLEMS], "--approvals: and 5 more problems like these");
    }
}

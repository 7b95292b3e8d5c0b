//! Discovery for the unlock tasks: every bucket of the account (or every queue of the chosen
//! regions) has its policy read and classified; the ones with a statement that locks everyone out
//! are listed and, unless the job is a dry run, unlocked by removing exactly those statements.
//!
//! One job covers one account with one root session, however many resources it holds. Reading
//! comes first and changes nothing, so a transient error there (throttling, 5xx) fails the job
//! as a whole and its retry starts afresh. An error while unlocking, even a transient one, is
//! recorded against its resource instead: a retry of the whole job would no longer see the
//! policies already changed, and their `previous_policy` would be lost from the result.

use futures::{StreamExt, stream};
use serde_json::{Value, json};

use super::findings_room::FindingsRoom;
use super::unlock::{self, Resource};
use super::{TaskContext, TaskError, TaskReport};
use crate::aws::{AwsCallError, ErrorClass};
use crate::job::{PolicyChange, Task};
use crate::outcome::cut_reason;
use crate::resource_policy::{PolicyDocument, Service};

/// Policies read at once. A root session's calls are few and light; eight keeps an account of
/// 50 buckets to a few round trips without bursting against S3's or SQS's request rates.
const READS_IN_FLIGHT: usize = 8;

/// A bucket or queue found by listing, in its region.
pub(super) struct Candidate {
    /// The bucket's name or the queue's URL.
    pub name: String,
    /// Where its policy must be read and written.
    pub region: String,
}

/// What reading one candidate's policy found.
enum Inspection {
    /// No statement locks everyone out.
    Open,
    /// These statements do; `policy` is the text read.
    Locked { locking: Vec<String>, policy: String },
    /// The policy could not be read, for a reason retrying cannot fix.
    Unreadable(AwsCallError),
}

/// Inspects `candidates` and unlocks the locked ones (unless a dry run); `resource` gives the
/// root session's view of one candidate.
pub(super) async fn run(
    task: Task,
    account: &str,
    candidates: &[Candidate],
    resource: impl Fn(&Candidate) -> Resource,
    context: TaskContext<'_>,
) -> Result<TaskReport, TaskError> {
    let service = if task == Task::S3UnlockBucketPolicy { Service::S3 } else { Service::Sqs };
    // The futures are made before they are streamed: a stream mapped by a closure borrowing
    // the context would not be provably `Send` for the worker pool's spawn.
    let reads: Vec<_> = candidates.iter().map(|candidate| inspect(resource(candidate), service, account, context)).collect();
    let inspections: Vec<Inspection> = stream::iter(reads)
        .buffered(READS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;

    let mut room = FindingsRoom::new();
    let mut tally = Tally::default();
    let (mut locked, mut errors) = (Vec::new(), Vec::new());
    for (candidate, inspection) in candidates.iter().zip(inspections) {
        let view = resource(candidate);
        let (key, name) = view.name();
        match inspection {
            Inspection::Open => {}
            Inspection::Unreadable(error) => {
                let entry = json!({
                    key: name, "region": candidate.region, "error_code": error.code,
                    "reason": cut_reason(&error.to_string()),
                });
                if room.take(&entry) { errors.push(entry) } else { tally.unlisted_errors += 1 }
            }
            Inspection::Locked { locking, policy } => {
                let entry = json!({key: name, "region": candidate.region, "locking_statements": locking});
                let (ending, entry) = unlock_one(&view, &policy, locking, service, account, &context, &mut room, entry).await;
                tally.count(ending);
                match entry {
                    Some(entry) => locked.push(entry),
                    None => tally.unlisted_locked += 1,
                }
            }
        }
    }
    let left_locked = tally.found - tally.unlocked;
    context.metrics.locked_resources.with_label_values(&[task.as_str(), account]).set(left_locked as i64);
    context.metrics.observed(task.as_str(), account);
    let reason = tally.shortfall(errors.len(), context.dry_run);
    let findings = json!({
        "discover": true,
        "inspected": candidates.len(),
        "locked": locked,
        "left_locked": left_locked,
        "deferred": tally.deferred,
        "errors": errors,
        "unlisted": {"locked": tally.unlisted_locked, "errors": tally.unlisted_errors},
    });
    Ok(TaskReport { reason, ..TaskReport::change(&context, tally.found > 0, findings) })
}

/// What became of one locked resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Its locking statements are gone.
    Unlocked,
    /// Its unlock was tried and failed (or could not be planned).
    Failed,
    /// Not tried: its previous policy would not fit in the result (see [`FindingsRoom`]).
    Deferred,
    /// A dry run: reported only.
    Reported,
}

/// The counts of a discovery, for its findings and its sentence.
#[derive(Debug, Default)]
struct Tally {
    found: usize,
    unlocked: usize,
    failed: usize,
    deferred: usize,
    unlisted_locked: usize,
    unlisted_errors: usize,
}

impl Tally {
    fn count(&mut self, ending: Ending) {
        self.found += 1;
        match ending {
            Ending::Unlocked => self.unlocked += 1,
            Ending::Failed => self.failed += 1,
            Ending::Deferred => self.deferred += 1,
            Ending::Reported => {}
        }
    }

    /// The sentence of a discovery that could not do all it should: resources it could not
    /// read, could not list, or (applied) locked ones it could not or did not yet unlock. `None`
    /// when it did everything.
    fn shortfall(&self, listed_errors: usize, dry_run: bool) -> Option<String> {
        let found = self.found;
        let mut parts = Vec::new();
        if !dry_run && self.failed > 0 {
            parts.push(format!("{} of {found} locked resource(s) could not be unlocked (see findings.locked)", self.failed));
        }
        if self.deferred > 0 {
            parts.push(format!(
                "{} of {found} locked resource(s) were left for the next discovery: their previous policies would not fit in this result",
                self.deferred
            ));
        }
        let unreadable = listed_errors + self.unlisted_errors;
        if unreadable > 0 {
            parts.push(format!("the policy of {unreadable} resource(s) could not be read (see findings.errors)"));
        }
        let unlisted = self.unlisted_locked + self.unlisted_errors;
        if unlisted > 0 {
            parts
                .push(format!("{unlisted} resource(s) found are counted but not listed: the result is full (findings.unlisted)"));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Reads and classifies one policy. A transient error is the job's; a permanent one the
/// resource's.
async fn inspect(resource: Resource, service: Service, account: &str, context: TaskContext<'_>) -> Result<Inspection, TaskError> {
    let text = match resource.read(&context).await {
        Ok(text) => text,
        Err(error) if error.class == ErrorClass::Permanent => return Ok(Inspection::Unreadable(error)),
        Err(error) => return Err(error.into()),
    };
    let Some(policy) = text else { return Ok(Inspection::Open) };
    let locking = match PolicyDocument::parse(&policy) {
        Ok(document) => document.locking_statements(service, account),
        // AWS validates policies on write; one it returns unparsed is not one we can judge.
        Err(_) => Vec::new(),
    };
    Ok(if locking.is_empty() { Inspection::Open } else { Inspection::Locked { locking, policy } })
}

/// Removes the locking statements of one resource (or, in a dry run, says it would), writing
/// the outcome into `entry`, which comes back when it can be listed. A change is made only when
/// its entry, with the previous policy whole, has its room in the result.
#[allow(clippy::too_many_arguments)]
async fn unlock_one(
    resource: &Resource,
    policy: &str,
    locking: Vec<String>,
    service: Service,
    account: &str,
    context: &TaskContext<'_>,
    room: &mut FindingsRoom,
    mut entry: Value,
) -> (Ending, Option<Value>) {
    let change = PolicyChange::RemoveStatements(locking);
    let plan = match unlock::plan(Some(policy), &change, service, account) {
        Ok(plan) => plan,
        Err(error) => {
            entry["outcome"] = json!("failed");
            entry["reason"] = json!(cut_reason(&error.to_string()));
            return (Ending::Failed, room.take(&entry).then_some(entry));
        }
    };
    let compact = entry.clone();
    entry["previous_policy"] = json!(policy);
    entry["new_policy"] = json!(plan.new_policy);
    let Some(reservation) = room.reserve(&entry) else {
        let mut entry = compact;
        let ending = if context.dry_run {
            entry["policies_omitted"] = json!(true);
            entry["outcome"] = json!("dry_run");
            Ending::Reported
        } else {
            entry["outcome"] = json!("deferred");
            entry["reason"] = json!(DEFERRED);
            Ending::Deferred
        };
        return (ending, room.take(&entry).then_some(entry));
    };
    let ending = if context.dry_run {
        entry["outcome"] = json!("dry_run");
        Ending::Reported
    } else {
        match resource.write(context, plan.new_policy.as_deref()).await {
            Ok(()) => {
                entry["outcome"] = json!("succeeded");
                Ending::Unlocked
            }
            Err(error) => {
                entry["outcome"] = json!("failed");
                entry["error_code"] = json!(error.code);
                entry["reason"] = json!(cut_reason(&error.to_string()));
                Ending::Failed
            }
        }
    };
    room.settle(reservation, &entry);
    (ending, Some(entry))
}

/// The reason of a resource left locked for want of room.
const DEFERRED: &str =
    "not unlocked by this job: its previous policy would not fit in the result; the next discovery of the account unlocks it";

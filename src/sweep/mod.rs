//! Organization-wide sweeps (the `sweep` command): one job per member account posted to the
//! intake queue, results taken from the results queue, progress kept in a state file so an
//! interrupted sweep resumes where it stopped, and a CSV/JSON report.
//!
//! For the two unlock tasks a sweep is a *discovery*: each account's job lists its buckets (or
//! its queues in the chosen regions), classifies their policies, and reports those that lock
//! everyone out; only with `--apply` does it remove the locking statements. One job per account
//! keeps it to one root session per account however many resources the account holds.
//!
//! The sweep is a client of the daemon: every root action still goes through the daemon's one
//! audited path (guardrails, rate bound, results, metrics). The daemon's audit task publishes
//! `rootwarden_root_credentials_present` for every account it audits, so a sweep's posture
//! reaches the dashboard without the sweep touching metrics.

pub mod accounts;
mod collect;
pub mod discovery_report;
mod post;
pub mod report;
pub mod state;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::aws::{AwsCallError, Clients};
use crate::job::{CredentialKind, Task};
use crate::metrics::Metrics;
pub use accounts::Selection;
pub use post::plan;
pub use report::Summary;
use state::{Definition, Paths, SweepState};

/// True for the tasks whose sweep is a discovery: the two unlock tasks, whose jobs name no
/// resource and instead find the account's locked ones (a dry run unless the sweep applies).
pub fn discovers(task: Task) -> bool {
    matches!(task, Task::S3UnlockBucketPolicy | Task::SqsUnlockQueuePolicy)
}

/// Why a sweep could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The options break a rule; every problem is listed.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The organization could not be read.
    #[error("the organization could not be read: {0}")]
    Organization(AwsCallError),
    /// A queue call failed.
    #[error("a queue call failed: {0}")]
    Queue(AwsCallError),
    /// The state file could not be read or written.
    #[error("the sweep state file {0} could not be used: {1}")]
    State(PathBuf, String),
    /// A report file could not be written.
    #[error("the report {0} could not be written: {1}")]
    Report(PathBuf, String),
}

/// Progress, handed to [`SweepOptions::on_progress`] after every batch of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Target accounts.
    pub total: usize,
    /// Accounts with a result (all runs).
    pub done: usize,
    /// Accounts whose job was posted (all runs).
    pub posted: usize,
}

/// A progress callback (the command draws a progress bar with it).
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// A callback for sentences the operator should read (the command prints them on stderr).
pub type NoticeFn = Arc<dyn Fn(&str) + Send + Sync>;

/// A sweep as the command's flags describe it.
#[derive(Clone)]
pub struct SweepOptions {
    /// The task (the unlock tasks run as discoveries).
    pub task: Task,
    /// For IAMDeleteRootUserCredentials: the kinds to delete (`None`: all four).
    pub credentials: Option<Vec<CredentialKind>>,
    /// Which accounts.
    pub selection: Selection,
    /// Copied into every job.
    pub ticket: Option<String>,
    /// Copied into every job.
    pub requested_by: Option<String>,
    /// Copied into every job (a discovery is a dry run unless `apply`).
    pub dry_run: bool,
    /// A discovery unlocks what it finds (needs a ticket).
    pub apply: bool,
    /// A discovery looks only in these regions (queues: default the configured region).
    pub regions: Option<Vec<String>>,
    /// The id of a new sweep (`None`: generated), or of the sweep to resume.
    pub sweep_id: Option<String>,
    /// Continue the sweep `sweep_id` from its state file instead of defining a new one.
    pub resume: bool,
    /// On resume, post again the jobs that were posted but have no result (only when the intake
    /// queue is known to have lost them, e.g. it was purged: otherwise they run twice).
    pub repost_pending: bool,
    /// On resume, post again (as a new attempt) the accounts whose job ended `failed`.
    pub retry_failed: bool,
    /// Base path of the report (`<report>.csv`, `.json`, `.state.json`).
    pub report: PathBuf,
    /// The daemon's intake queue.
    pub intake_url: String,
    /// The daemon's results queue.
    pub results_url: String,
    /// Jobs posted and not yet answered, at most: keeps the intake queue shallow and an
    /// interruption cheap.
    pub max_in_flight: usize,
    /// Stop (incomplete) when no result arrives for this long while jobs are outstanding.
    pub idle_timeout: Duration,
    /// Stop after this many new results in this run (tests and trial runs).
    pub stop_after: Option<usize>,
    /// Called after every batch of results.
    pub on_progress: Option<ProgressFn>,
    /// The jobs of an approvals file (as `rootwarden approve` writes them, several approvers'
    /// files merged): each job is posted with the approvals of the jobs of equal id. Every job
    /// must be one of this sweep's with the same signed fields ([`check`] says which is not).
    pub approved: Option<Vec<crate::job::Job>>,
    /// Called with warnings before posting (jobs posted without approvals).
    pub on_notice: Option<NoticeFn>,
}

impl std::fmt::Debug for SweepOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SweepOptions")
            .field("task", &self.task)
            .field("sweep_id", &self.sweep_id)
            .finish_non_exhaustive()
    }
}

impl SweepOptions {
    /// Options with the defaults for everything but the task, queues and report.
    pub fn new(task: Task, intake_url: String, results_url: String, report: PathBuf) -> Self {
        Self {
            task,
            credentials: None,
            selection: Selection::default(),
            ticket: None,
            requested_by: None,
            dry_run: false,
            apply: false,
            regions: None,
            sweep_id: None,
            resume: false,
            repost_pending: false,
            retry_failed: false,
            report,
            intake_url,
            results_url,
            max_in_flight: 100,
            idle_timeout: Duration::from_secs(300),
            stop_after: None,
            on_progress: None,
            approved: None,
            on_notice: None,
        }
    }

    /// The definition of a new sweep with this id, from the options.
    fn definition(&self, sweep_id: String) -> Definition {
        Definition {
            sweep_id,
            task: self.task,
            credentials: self.credentials.clone(),
            ticket: self.ticket.clone(),
            requested_by: self.requested_by.clone(),
            dry_run: self.dry_run || (discovers(self.task) && !self.apply),
            regions: self.regions.clone(),
        }
    }

    fn notice(&self, text: &str) {
        tracing::warn!(notice = text, "A sweep notice.");
        if let Some(on_notice) = &self.on_notice {
            on_notice(text);
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if discovers(self.task) {
            if self.apply && self.dry_run {
                problems.push("--apply and --dry-run: a discovery is a dry run unless --apply; give one".into());
            }
            if self.apply && self.ticket.is_none() {
                problems.push("--apply needs --ticket: unlocking resources across the organization is a change".into());
            }
        } else {
            if self.apply {
                problems.push(format!(
                    "--apply: only for a discovery (S3UnlockBucketPolicy, SQSUnlockQueuePolicy); {} changes unless --dry-run",
                    self.task
                ));
            }
            if self.regions.is_some() {
                problems.push("--regions: only for a discovery (S3UnlockBucketPolicy, SQSUnlockQueuePolicy)".into());
            }
        }
        for region in self.regions.iter().flatten().filter(|r| !crate::job::is_region(r)) {
            problems.push(format!("--regions: `{region}` is not an AWS region name"));
        }
        if self.credentials.is_some() && self.task != Task::DeleteRootUserCredentials {
            problems.push("--credentials: only for IAMDeleteRootUserCredentials".into());
        }
        if let Some(id) = &self.sweep_id
            && !state::is_sweep_id(id)
        {
            problems.push(format!("sweep id `{id}`: 1 to 64 characters of A-Za-z0-9._:-"));
        }
        if self.retry_failed && !self.resume {
            problems.push("--retry-failed applies to a resumed sweep (--resume SWEEP_ID)".into());
        }
        if self.resume && self.sweep_id.is_none() {
            problems.push("--resume needs the sweep id".into());
        }
        if self.approved.is_some() && self.sweep_id.is_none() {
            problems.push("--approvals needs the sweep id (--sweep-id): the approvals sign job ids, which hold it".into());
        }
        if self.max_in_flight == 0 {
            problems.push("--max-in-flight must be at least 1".into());
        }
        problems.extend(self.selection.problems());
        problems
    }
}

/// How a sweep run ended.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// The sweep's id (to resume it).
    pub sweep_id: String,
    /// The sweep's task.
    pub task: Task,
    /// Every target has a result.
    pub complete: bool,
    /// Why the run stopped early, when it did.
    pub stopped: Option<String>,
    /// The counts of the report.
    pub summary: Summary,
    /// The report and state files.
    pub paths: Paths,
    /// New results taken in this run.
    pub received: usize,
    /// Jobs posted in this run.
    pub posted: usize,
}

/// What the posting and collecting halves share.
pub(crate) struct Shared {
    pub state: Mutex<SweepState>,
    pub paths: Paths,
    /// One permit per job that may still be posted without exceeding `max_in_flight`.
    pub window: Semaphore,
    pub metrics: Metrics,
}

impl Shared {
    /// Applies `change` to the state and saves it, under one lock so saves never interleave.
    pub fn update<T>(&self, change: impl FnOnce(&mut SweepState) -> T) -> Result<T, SweepError> {
        let mut state = self.state.lock().expect("sweep state lock");
        let value = change(&mut state);
        state.save(&self.paths.state)?;
        Ok(value)
    }

    pub fn progress(&self) -> Progress {
        let state = self.state.lock().expect("sweep state lock");
        Progress { total: state.targets.len(), done: state.results.len(), posted: state.posted.len() }
    }
}

/// Checks the options without calling AWS: every rule of the flags, then the state file (a
/// sweep to resume must have one, holding that sweep and task; a new sweep must not find one, so
/// no sweep's progress is overwritten). `Invalid` lists every problem of the command line; `State`
/// is a state file that exists but cannot be read. The command calls it before it prints anything
/// or builds a client; [`run`] calls it again.
pub fn check(options: &SweepOptions) -> Result<(), SweepError> {
    let mut problems = options.problems();
    let paths = Paths::from_report(&options.report);
    let mut definition = None;
    if options.resume {
        // A malformed id is already a problem; its file name would only repeat it.
        if let Some(id) = options.sweep_id.as_deref().filter(|id| state::is_sweep_id(id)) {
            match resumable(options, id, &paths) {
                Ok(state) => definition = Some(state.definition),
                Err(SweepError::Invalid(more)) => problems.extend(more),
                Err(error) if problems.is_empty() => return Err(error),
                Err(_) => {}
            }
        }
    } else {
        if paths.state.exists() {
            problems
                .push(format!("{} exists: resume that sweep with --resume, or choose another --report", paths.state.display()));
        }
        definition = options.sweep_id.clone().filter(|id| state::is_sweep_id(id)).map(|id| options.definition(id));
    }
    if let (Some(approved), Some(definition)) = (&options.approved, &definition) {
        problems.extend(post::approval_problems(definition, approved));
    }
    if problems.is_empty() { Ok(()) } else { Err(SweepError::Invalid(problems)) }
}

/// The state of the sweep `id` to resume, when it is there and runs the options' task.
fn resumable(options: &SweepOptions, id: &str, paths: &Paths) -> Result<SweepState, SweepError> {
    if !paths.state.exists() {
        return Err(SweepError::Invalid(vec![format!(
            "--resume {id}: there is no sweep to resume at {} (give the --report of the sweep's first run)",
            paths.state.display()
        )]));
    }
    let state = SweepState::load(&paths.state)?;
    let mut problems = Vec::new();
    if state.definition.sweep_id != id {
        problems.push(format!("{} holds sweep {}, not the one to resume", paths.state.display(), state.definition.sweep_id));
    }
    if state.definition.task != options.task {
        problems.push(format!("sweep {} runs {}, not {}", state.definition.sweep_id, state.definition.task, options.task));
    }
    if problems.is_empty() { Ok(state) } else { Err(SweepError::Invalid(problems)) }
}

/// Runs (or resumes) a sweep until every target has a result, `cancel` fires, `stop_after` new
/// results arrived, or nothing arrived for `idle_timeout`; then writes the report.
pub async fn run(clients: &Clients, options: SweepOptions, cancel: CancellationToken) -> Result<SweepOutcome, SweepError> {
    check(&options)?;
    let metrics = Metrics::new();
    let paths = Paths::from_report(&options.report);
    let state = prepare(clients, &metrics, &options, &paths).await?;
    let to_post = to_post(&state, options.repost_pending);
    let approvals = options.approved.as_deref().map(crate::approvals::merged_by_job_id).unwrap_or_default();
    if options.approved.is_some() {
        post::warn_unapproved(&options, &state, &to_post, &approvals);
    }
    let in_flight = if options.repost_pending { 0 } else { state.in_flight() };
    let shared = Arc::new(Shared {
        window: Semaphore::new(options.max_in_flight.saturating_sub(in_flight)),
        state: Mutex::new(state),
        paths: paths.clone(),
        metrics,
    });
    tracing::info!(
        sweep_id = %shared.state.lock().expect("sweep state lock").definition.sweep_id,
        to_post = to_post.len(),
        in_flight,
        "The sweep is starting."
    );

    // The collector decides when the run ends; the poster stops with it.
    let stop_posting = cancel.child_token();
    let poster = post::post_all(clients, &shared, &options, to_post, &approvals, stop_posting.clone());
    let collector = async {
        let result = collect::collect(clients, &shared, &options, &cancel).await;
        stop_posting.cancel();
        result
    };
    let (posted, collected) = tokio::join!(poster, collector);
    let posted = posted?;
    let (received, stopped) = collected?;

    let state = shared.state.lock().expect("sweep state lock").clone();
    state.save(&paths.state)?;
    let summary = report::write(&state, &paths)?;
    Ok(SweepOutcome {
        sweep_id: state.definition.sweep_id.clone(),
        task: state.definition.task,
        complete: state.complete(),
        stopped,
        summary,
        paths,
        received,
        posted,
    })
}

/// Loads the state of a resumed sweep, or defines a new one from the organization.
async fn prepare(clients: &Clients, metrics: &Metrics, options: &SweepOptions, paths: &Paths) -> Result<SweepState, SweepError> {
    if options.resume {
        let id = options.sweep_id.as_deref().unwrap_or_default();
        let mut state = resumable(options, id, paths)?;
        if options.retry_failed {
            let again = state.retry_failed();
            tracing::info!(accounts = again.len(), "Failed accounts are posted again.");
            state.save(&paths.state)?;
        }
        return Ok(state);
    }
    if paths.state.exists() {
        return Err(SweepError::Invalid(vec![format!(
            "{} exists: resume that sweep with --resume, or choose another --report",
            paths.state.display()
        )]));
    }
    let targets = accounts::select(clients, metrics, &options.selection).await?;
    let definition = options.definition(options.sweep_id.clone().unwrap_or_else(state::new_sweep_id));
    let state = SweepState::new(definition, targets.accounts, targets.skipped);
    if let Some(parent) = paths.state.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| SweepError::State(paths.state.clone(), e.to_string()))?;
    }
    state.save(&paths.state)?;
    Ok(state)
}

/// Targets still to post: never posted, or (with `repost_pending`) posted without a result.
fn to_post(state: &SweepState, repost_pending: bool) -> Vec<String> {
    state
        .targets
        .iter()
        .filter(|a| !state.results.contains_key(&a.id))
        .filter(|a| repost_pending || !state.posted.contains_key(&a.id))
        .map(|a| a.id.clone())
        .collect()
}

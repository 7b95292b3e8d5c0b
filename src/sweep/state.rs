//! A sweep's progress on disk: its definition (task, targets, options), which accounts were
//! posted and the result of each, so `--resume` posts only what is missing and the report merges
//! every run with one row per account.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SweepError;
use super::accounts::{Account, Skipped};
use crate::job::{CredentialKind, Task};
use crate::outcome::JobResult;
use crate::submit::NewJob;

/// The state file's format version.
const VERSION: u32 = 1;

/// Everything a sweep must remember between runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepState {
    /// Format version (1).
    pub version: u32,
    /// What the sweep does (flattened: the file keeps one flat object).
    #[serde(flatten)]
    pub definition: Definition,
    /// RFC 3339, when the sweep was defined.
    pub created_at: String,
    /// The accounts targeted, fixed when the sweep was defined: a resumed sweep finishes the
    /// same set, so its report is one sweep's answer.
    pub targets: Vec<Account>,
    /// The organization's accounts left out, and why.
    pub skipped: Vec<Skipped>,
    /// Account → when its job was posted (RFC 3339). Written *before* the send, so a crash
    /// between the two can only leave a job unposted (shown as missing), never posted twice.
    pub posted: BTreeMap<String, String>,
    /// Account → its result (the first one; redeliveries are counted in `duplicates`).
    pub results: BTreeMap<String, JobResult>,
    /// Results received for accounts that already had one, or for an attempt since retried.
    pub duplicates: u64,
    /// Account → how many times `--retry-failed` posted its job again. Attempt n > 0 has the job
    /// id `sweep-<id>-<account>-r<n>`, so a late copy of an earlier attempt's result is told apart.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retries: BTreeMap<String, u32>,
}

impl SweepState {
    /// A new sweep.
    pub fn new(definition: Definition, targets: Vec<Account>, skipped: Vec<Skipped>) -> Self {
        Self {
            version: VERSION,
            definition,
            created_at: crate::outcome::rfc3339(std::time::SystemTime::now()),
            targets,
            skipped,
            posted: BTreeMap::new(),
            results: BTreeMap::new(),
            duplicates: 0,
            retries: BTreeMap::new(),
        }
    }

    /// Reads a state file.
    pub fn load(path: &Path) -> Result<Self, SweepError> {
        let text = std::fs::read_to_string(path).map_err(|e| SweepError::State(path.to_owned(), e.to_string()))?;
        let state: Self = serde_json::from_str(&text).map_err(|e| SweepError::State(path.to_owned(), e.to_string()))?;
        if state.version != VERSION {
            return Err(SweepError::State(path.to_owned(), format!("format version {} is not {VERSION}", state.version)));
        }
        Ok(state)
    }

    /// Writes the state atomically (a temporary file renamed over the old one), so an
    /// interruption never leaves half a file.
    pub fn save(&self, path: &Path) -> Result<(), SweepError> {
        let temporary = path.with_extension("json.tmp");
        let text = serde_json::to_vec(self).expect("the state serializes");
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, path))
            .map_err(|e| SweepError::State(path.to_owned(), e.to_string()))
    }

    /// Posted accounts without a result yet.
    pub fn in_flight(&self) -> usize {
        self.posted.keys().filter(|id| !self.results.contains_key(*id)).count()
    }

    /// Target accounts without a result.
    pub fn missing(&self) -> Vec<&Account> {
        self.targets.iter().filter(|a| !self.results.contains_key(&a.id)).collect()
    }

    /// True when every target has a result.
    pub fn complete(&self) -> bool {
        self.targets.iter().all(|a| self.results.contains_key(&a.id))
    }

    /// The attempt whose result counts for an account (0 until `--retry-failed` posts it again).
    pub fn attempt(&self, account_id: &str) -> u32 {
        self.retries.get(account_id).copied().unwrap_or(0)
    }

    /// Forgets the `failed` results, so their accounts are posted again under a new attempt;
    /// returns those accounts. `rejected` results stay: a guardrail refused them, and the same
    /// job would be refused again.
    pub fn retry_failed(&mut self) -> Vec<String> {
        let failed: Vec<String> = self
            .results
            .iter()
            .filter(|(_, result)| result.outcome == crate::outcome::Outcome::Failed)
            .map(|(account, _)| account.clone())
            .collect();
        for account in &failed {
            self.results.remove(account);
            self.posted.remove(account);
            *self.retries.entry(account.clone()).or_insert(0) += 1;
        }
        failed
    }

    /// Records the result of `attempt`; false when the account already has one (a redelivery),
    /// the attempt was superseded by a retry, or the account is not a target of this sweep.
    pub fn record(&mut self, account_id: &str, attempt: u32, result: JobResult) -> bool {
        if self.results.contains_key(account_id)
            || attempt != self.attempt(account_id)
            || !self.targets.iter().any(|a| a.id == account_id)
        {
            self.duplicates += 1;
            return false;
        }
        self.results.insert(account_id.to_owned(), result);
        true
    }
}

/// What defines a sweep, besides its targets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Definition {
    /// The sweep's id; job ids are `sweep-<sweep_id>-<account>`.
    pub sweep_id: String,
    /// The task every job runs.
    pub task: Task,
    /// For IAMDeleteRootUserCredentials: the kinds to delete (`None`: all).
    pub credentials: Option<Vec<CredentialKind>>,
    /// Copied into every job.
    pub ticket: Option<String>,
    /// Copied into every job.
    pub requested_by: Option<String>,
    /// Copied into every job.
    pub dry_run: bool,
    /// A discovery's regions (`None`: every bucket; the configured region's queues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<String>>,
}

impl Definition {
    /// The job this sweep posts for an account's attempt (every account's job is the same but for
    /// its account and job id). Its body is what `--plan` writes and what approvals must sign.
    pub fn job(&self, account_id: &str, attempt: u32) -> NewJob {
        NewJob {
            job_id: Some(job_id(&self.sweep_id, account_id, attempt)),
            account_id: account_id.to_owned(),
            task: self.task.as_str().to_owned(),
            credentials: self.credentials.clone(),
            requested_by: self.requested_by.clone(),
            ticket: self.ticket.clone(),
            dry_run: self.dry_run,
            discover: super::discovers(self.task),
            regions: self.regions.clone(),
            ..NewJob::default()
        }
    }
}

/// The files of a sweep, from the report's base path (`--report`, an extension is dropped).
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<base>.csv`
    pub csv: PathBuf,
    /// `<base>.json`
    pub json: PathBuf,
    /// `<base>.state.json`
    pub state: PathBuf,
}

impl Paths {
    /// `report` may be given with or without `.csv`/`.json`.
    pub fn from_report(report: &Path) -> Self {
        let base = match report.extension().and_then(|e| e.to_str()) {
            Some("csv" | "json") => report.with_extension(""),
            _ => report.to_owned(),
        };
        let with = |suffix: &str| {
            let mut name = base.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        Self { csv: with(".csv"), json: with(".json"), state: with(".state.json") }
    }
}

/// The job id of an account's job in a sweep: `sweep-<id>-<account>`, and `-r<n>` after it for
/// the n-th retry.
pub fn job_id(sweep_id: &str, account_id: &str, attempt: u32) -> String {
    match attempt {
        0 => format!("sweep-{sweep_id}-{account_id}"),
        n => format!("sweep-{sweep_id}-{account_id}-r{n}"),
    }
}

/// The account and attempt of a job id, if the job belongs to this sweep. Unambiguous even when
/// sweep ids contain `-`, because the account part is exactly twelve digits.
pub fn account_of<'a>(sweep_id: &str, job_id: &'a str) -> Option<(&'a str, u32)> {
    let rest = job_id.strip_prefix("sweep-")?.strip_prefix(sweep_id)?.strip_prefix('-')?;
    let (account, attempt) = match rest.split_once("-r") {
        Some((account, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => (account, n.parse().ok()?),
        Some(_) => return None,
        None => (rest, 0),
    };
    crate::job::is_account_id(account).then_some((account, attempt))
}

/// A sweep id: 1 to 64 of `A-Za-z0-9._:-`, so every job id stays within the job contract.
pub fn is_sweep_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// A fresh sweep id: the UTC time to the second and a random suffix (`20261121T053000Z-3fa9`).
pub fn new_sweep_id() -> String {
    let now = crate::outcome::rfc3339(std::time::SystemTime::now());
    let compact: String = now.chars().take(19).filter(|c| c.is_ascii_digit() || *c == 'T').collect();
    format!("{compact}Z-{:04x}", rand::random::<u16>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_belong_to_exactly_one_sweep() {
        let id = job_id("a-1", "111122223333", 0);
        assert_eq!(id, "sweep-a-1-111122223333");
        assert_eq!(account_of("a-1", &id), Some(("111122223333", 0)));
        assert_eq!(account_of("a", &id), None, "a prefix sweep id must not claim it");
        assert_eq!(account_of("a-1", "CHG-1042"), None);
        let retry = job_id("a-1", "111122223333", 2);
        assert_eq!(retry, "sweep-a-1-111122223333-r2");
        assert_eq!(account_of("a-1", &retry), Some(("111122223333", 2)));
        assert_eq!(account_of("a-1", "sweep-a-1-111122223333-rx"), None);
        assert!(
            crate::job::Job::parse(&format!(
                r#"{{"version":1,"job_id":"{}","account_id":"111122223333","task":"IAMAuditRootUserCredentials"}}"#,
                job_id(&"x".repeat(64), "111122223333", u32::MAX)
            ))
            .is_ok()
        );
    }

    #[test]
    fn generated_ids_are_valid() {
        let id = new_sweep_id();
        assert!(is_sweep_id(&id), "{id}");
        assert_eq!(id.len(), "20261121T053000Z-3fa9".len(), "{id}");
        assert!(!is_sweep_id("has space"));
    }

    #[test]
    fn report_paths_share_a_base() {
        let paths = Paths::from_report(Path::new("/tmp/audit.csv"));
        assert_eq!(paths.json, Path::new("/tmp/audit.json"));
        assert_eq!(paths.state, Path::new("/tmp/audit.state.json"));
        assert_eq!(Paths::from_report(Path::new("out/q1")).csv, Path::new("out/q1.csv"));
    }
}

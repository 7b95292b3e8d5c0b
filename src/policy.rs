//! Guardrails between a parsed job and `AssumeRoot`: who may ask (sender), when (freshness),
//! for which task and account, with which approval. A job that fails any check is rejected
//! before a root session is requested.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::approvals;
use crate::aws::{self, AwsCallError, Clients, ErrorClass};
use crate::config::PolicyConfig;
use crate::job::Job;
use crate::metrics::Metrics;

/// The policy in force, replaceable at run time (SIGHUP) without stopping jobs.
#[derive(Clone, Debug)]
pub struct PolicyHandle(Arc<RwLock<Arc<PolicyConfig>>>);

impl PolicyHandle {
    /// Starts with `policy`.
    pub fn new(policy: PolicyConfig) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(policy))))
    }

    /// The policy jobs are checked against now.
    pub fn current(&self) -> Arc<PolicyConfig> {
        self.0.read().expect("policy lock").clone()
    }

    /// Replaces the policy if it is valid; otherwise keeps the old one and returns the problems.
    pub fn replace(&self, policy: PolicyConfig) -> Result<(), Vec<String>> {
        let problems = policy.problems();
        if !problems.is_empty() {
            return Err(problems);
        }
        *self.0.write().expect("policy lock") = Arc::new(policy);
        Ok(())
    }
}

/// Delivery facts SQS sets, which a producer cannot forge in the body.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// The `SenderId` system attribute.
    pub sender_id: Option<String>,
    /// The `SentTimestamp` system attribute.
    pub sent_at: Option<SystemTime>,
}

/// A failed check: `code` names it (for machines), `reason` explains it (for people).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `policy.sender`, `policy.freshness`, `policy.task`, `policy.feature`, `policy.account`,
    /// `policy.membership`, `policy.ticket` or `policy.approval`.
    pub code: &'static str,
    /// A sentence.
    pub reason: String,
}

/// The result of the checks that need AWS: a rejection, or a transient failure to find out.
#[derive(Debug)]
pub enum CheckError {
    /// The job breaks the policy.
    Rejected(Rejection),
    /// The organization could not be read; retry later.
    Unavailable(AwsCallError),
}

fn reject(code: &'static str, reason: impl Into<String>) -> CheckError {
    CheckError::Rejected(Rejection { code, reason: reason.into() })
}

/// Checks that need only the job, the message and the policy, in the documented order.
pub fn check_static(policy: &PolicyConfig, job: &Job, provenance: &Provenance, now: SystemTime) -> Result<(), Rejection> {
    let fail = |code, reason: String| Err(Rejection { code, reason });
    if !policy.allowed_senders.is_empty() {
        let sender = provenance.sender_id.as_deref().unwrap_or("");
        if !policy.allowed_senders.iter().any(|allowed| sender_matches(allowed, sender)) {
            return fail("policy.sender", format!("sender `{sender}` is not in policy.allowed_senders"));
        }
    }
    match provenance.sent_at {
        Some(sent_at) => {
            let age = now.duration_since(sent_at).unwrap_or(Duration::ZERO);
            if age > policy.max_job_age {
                return fail("policy.freshness", format!("the message is {}s old, older than policy.max_job_age", age.as_secs()));
            }
        }
        None => return fail("policy.freshness", "the message has no SentTimestamp".into()),
    }
    if !policy.allowed_tasks.is_empty() && !policy.allowed_tasks.iter().any(|t| t == job.task.as_str()) {
        return fail("policy.task", format!("task {} is not in policy.allowed_tasks", job.task));
    }
    if policy.denied_accounts.contains(&job.account_id) {
        return fail("policy.account", format!("account {} is in policy.denied_accounts", job.account_id));
    }
    if !policy.allowed_accounts.is_empty() && !policy.allowed_accounts.contains(&job.account_id) {
        return fail("policy.account", format!("account {} is not in policy.allowed_accounts", job.account_id));
    }
    // A dry run is exempt from the ticket and the two-person rule: it makes only read calls and
    // changes nothing, like the audit, which needs neither (a discovery is a dry run by default).
    let dry_run = job.dry_run || policy.dry_run;
    let needs_ticket = policy.require_ticket.iter().any(|t| t == job.task.as_str());
    if needs_ticket && !dry_run && job.ticket.as_deref().is_none_or(|t| t.trim().is_empty()) {
        return fail("policy.ticket", format!("task {} needs a ticket (a dry run does not)", job.task));
    }
    if !dry_run && policy.require_approval.iter().any(|t| t == job.task.as_str()) {
        let keys = policy.approver_keys();
        if let Err(shortfall) = approvals::verify(job, &job.approvals, &keys, policy.approvals_required, now) {
            return fail("policy.approval", shortfall.0);
        }
    }
    Ok(())
}

/// `AROAEXAMPLE:*` matches every session of that role; anything else must match exactly.
fn sender_matches(allowed: &str, sender: &str) -> bool {
    match allowed.strip_suffix('*') {
        Some(prefix) => sender.starts_with(prefix),
        None => allowed == sender,
    }
}

/// How long organization facts are trusted before they are read again.
const ORGANIZATION_TTL: Duration = Duration::from_secs(300);

/// A value read from AWS and trusted for `ORGANIZATION_TTL`. The async lock makes concurrent
/// jobs wait for one read instead of each making it.
struct Fresh<T>(tokio::sync::Mutex<Option<(T, Instant)>>);

impl<T> Default for Fresh<T> {
    fn default() -> Self {
        Self(tokio::sync::Mutex::new(None))
    }
}

impl<T: Clone> Fresh<T> {
    async fn get_or_refresh<F, Fut>(&self, read: F) -> Result<T, CheckError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, CheckError>>,
    {
        let mut slot = self.0.lock().await;
        if let Some((value, at)) = slot.as_ref()
            && at.elapsed() < ORGANIZATION_TTL
        {
            return Ok(value.clone());
        }
        let value = read().await?;
        *slot = Some((value.clone(), Instant::now()));
        Ok(value)
    }
}

/// Membership of one account, as Organizations reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Membership {
    Active,
    /// In the organization in another state (`SUSPENDED`, `CLOSED`, `PENDING_CLOSURE`…).
    NotActive(String),
    NotMember,
}

/// Cached organization facts: enabled root-access features, the management account, and
/// account membership.
pub struct Organization {
    clients: Clients,
    metrics: Metrics,
    features: Fresh<HashSet<String>>,
    management_account: Fresh<String>,
    accounts: Mutex<HashMap<String, (Membership, Instant)>>,
    /// OUs above each account, for `policy.denied_organizational_units`.
    ancestors: Mutex<HashMap<String, (Vec<String>, Instant)>>,
    /// When the whole account list was last read.
    listing: Fresh<()>,
}

impl Organization {
    /// An empty cache reading through `clients`.
    pub fn new(clients: Clients, metrics: Metrics) -> Self {
        Self {
            clients,
            metrics,
            features: Fresh::default(),
            management_account: Fresh::default(),
            accounts: Mutex::new(HashMap::new()),
            ancestors: Mutex::new(HashMap::new()),
            listing: Fresh::default(),
        }
    }

    /// The organization-dependent checks: the task's feature is enabled, and the account is an
    /// ACTIVE member other than the management account.
    pub async fn check(&self, job: &Job, policy: &PolicyConfig) -> Result<(), CheckError> {
        let features = self.features().await?;
        let feature = job.task.feature().as_str();
        if !features.contains(feature) {
            return Err(reject(
                "policy.feature",
                format!("the organization has not enabled {feature}, which task {} needs", job.task),
            ));
        }
        if self.management_account().await? == job.account_id {
            return Err(reject("policy.membership", "the management account cannot be a target of AssumeRoot"));
        }
        match self.membership(&job.account_id).await? {
            Membership::Active => self.check_units(&job.account_id, &policy.denied_organizational_units).await,
            Membership::NotActive(state) => {
                Err(reject("policy.membership", format!("account {} is {state}, not ACTIVE", job.account_id)))
            }
            Membership::NotMember => {
                Err(reject("policy.membership", format!("account {} is not a member of the organization", job.account_id)))
            }
        }
    }

    /// Rejects an account that sits, at any depth, under one of the denied OUs (or roots).
    async fn check_units(&self, account_id: &str, denied: &[String]) -> Result<(), CheckError> {
        if denied.is_empty() {
            return Ok(());
        }
        for unit in self.ancestors(account_id).await? {
            if denied.contains(&unit) {
                return Err(reject(
                    "policy.organizational_unit",
                    format!("account {account_id} is under {unit}, in policy.denied_organizational_units"),
                ));
            }
        }
        Ok(())
    }

    /// The OUs and root above an account, nearest first (ListParents up to the root).
    async fn ancestors(&self, account_id: &str) -> Result<Vec<String>, CheckError> {
        if let Some((units, at)) = self.ancestors.lock().expect("org lock").get(account_id)
            && at.elapsed() < ORGANIZATION_TTL
        {
            return Ok(units.clone());
        }
        let mut units = Vec::new();
        let mut child = account_id.to_owned();
        // An organization is at most five OUs deep under its root; the bound guards a cycle.
        for _ in 0..8 {
            let request = self.clients.organizations.list_parents().child_id(&child).send();
            let output = aws::call(&self.metrics, "organizations", "ListParents", request).await.map_err(organization_error)?;
            let Some(parent) = output.parents().first().and_then(|p| p.id()) else { break };
            units.push(parent.to_owned());
            if parent.starts_with("r-") {
                break;
            }
            child = parent.to_owned();
        }
        self.ancestors.lock().expect("org lock").insert(account_id.to_owned(), (units.clone(), Instant::now()));
        Ok(units)
    }

    /// Reads the features now (start-up and readiness use it).
    pub async fn features(&self) -> Result<HashSet<String>, CheckError> {
        self.features
            .get_or_refresh(|| async {
                let request = self.clients.iam.list_organizations_features().send();
                let output =
                    aws::call(&self.metrics, "iam", "ListOrganizationsFeatures", request).await.map_err(organization_error)?;
                Ok(output.enabled_features().iter().map(|f| f.as_str().to_owned()).collect())
            })
            .await
    }

    async fn management_account(&self) -> Result<String, CheckError> {
        self.management_account
            .get_or_refresh(|| async {
                let request = self.clients.organizations.describe_organization().send();
                let output = aws::call(&self.metrics, "organizations", "DescribeOrganization", request)
                    .await
                    .map_err(organization_error)?;
                Ok(output.organization().and_then(|o| o.master_account_id()).unwrap_or_default().to_owned())
            })
            .await
    }

    async fn membership(&self, account_id: &str) -> Result<Membership, CheckError> {
        if let Some(membership) = self.cached_membership(account_id) {
            return Ok(membership);
        }
        // One listing answers for every account (a sweep of 500 accounts costs 25 pages, not
        // 500 calls); an account missing from it is asked about directly, in case it is new.
        self.list_accounts().await?;
        if let Some(membership) = self.cached_membership(account_id) {
            return Ok(membership);
        }
        let request = self.clients.organizations.describe_account().account_id(account_id).send();
        let membership = match aws::call(&self.metrics, "organizations", "DescribeAccount", request).await {
            Ok(output) => output.account().map_or(Membership::NotMember, membership_of),
            Err(error) if error.is(&["AccountNotFoundException"]) => Membership::NotMember,
            Err(error) => return Err(organization_error(error)),
        };
        self.accounts.lock().expect("org lock").insert(account_id.to_owned(), (membership.clone(), Instant::now()));
        Ok(membership)
    }

    fn cached_membership(&self, account_id: &str) -> Option<Membership> {
        let accounts = self.accounts.lock().expect("org lock");
        accounts
            .get(account_id)
            .filter(|(_, at)| at.elapsed() < ORGANIZATION_TTL)
            .map(|(membership, _)| membership.clone())
    }

    /// Reads every account of the organization, unless another job did so within the TTL.
    async fn list_accounts(&self) -> Result<(), CheckError> {
        self.listing
            .get_or_refresh(|| async {
                let mut pages = self.clients.organizations.list_accounts().into_paginator().send();
                let mut found = Vec::new();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|error| {
                        let error = AwsCallError::from_sdk("organizations", "ListAccounts", error);
                        let code = crate::aws::metric_code(&error.code);
                        self.metrics.aws_errors.with_label_values(&["organizations", "ListAccounts", code]).inc();
                        organization_error(error)
                    })?;
                    for account in page.accounts() {
                        if let Some(id) = account.id() {
                            found.push((id.to_owned(), membership_of(account)));
                        }
                    }
                }
                let now = Instant::now();
                self.accounts.lock().expect("org lock").extend(found.into_iter().map(|(id, m)| (id, (m, now))));
                Ok(())
            })
            .await
    }
}

fn membership_of(account: &aws_sdk_organizations::types::Account) -> Membership {
    let state = account.state().map(|s| s.as_str().to_owned());
    let status = account.status().map(|s| s.as_str().to_owned());
    match state.or(status) {
        Some(state) if state == "ACTIVE" => Membership::Active,
        Some(state) => Membership::NotActive(state),
        None => Membership::NotActive("in no known state".to_owned()),
    }
}

/// A permanent error reading the organization (no organization, not the management account or
/// delegated administrator) rejects the job with AWS's words; anything else is retried.
fn organization_error(error: AwsCallError) -> CheckError {
    match error.class {
        ErrorClass::Permanent => reject("policy.organization", format!("the organization could not be read: {error}")),
        _ => CheckError::Unavailable(error),
    }
}

/// Jobs for one account run at most `per_account` at a time in this replica.
#[derive(Debug)]
pub struct AccountLimiter {
    per_account: usize,
    semaphores: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// Held while a job acts on its account.
pub struct AccountPermit<'a> {
    limiter: &'a AccountLimiter,
    account_id: String,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl AccountLimiter {
    /// A limiter allowing `per_account` concurrent jobs per account.
    pub fn new(per_account: usize) -> Self {
        Self { per_account, semaphores: Mutex::new(HashMap::new()) }
    }

    /// Waits until the account has a free slot.
    pub async fn acquire(&self, account_id: &str) -> AccountPermit<'_> {
        let semaphore = self
            .semaphores
            .lock()
            .expect("account limiter lock")
            .entry(account_id.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_account)))
            .clone();
        let permit = semaphore.acquire_owned().await.expect("account semaphores are never closed");
        AccountPermit { limiter: self, account_id: account_id.to_owned(), permit: Some(permit) }
    }
}

impl Drop for AccountPermit<'_> {
    fn drop(&mut self) {
        drop(self.permit.take());
        // Forget idle accounts so the map does not grow with every account ever seen.
        let mut semaphores = self.limiter.semaphores.lock().expect("account limiter lock");
        if let Some(semaphore) = semaphores.get(&self.account_id)
            && Arc::strong_count(semaphore) == 1
            && semaphore.available_permits() == self.limiter.per_account
        {
            semaphores.remove(&self.account_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Job;

    fn job(task: &str, account: &str, ticket: Option<&str>) -> Job {
        let ticket = ticket.map(|t| format!(r#","ticket":"{t}""#)).unwrap_or_default();
        let extra = if task == "S3UnlockBucketPolicy" { r#","bucket":"locked-bucket""# } else { "" };
        Job::parse(&format!(r#"{{"version":1,"job_id":"j-1","account_id":"{account}","task":"{task}"{extra}{ticket}}}"#)).unwrap()
    }

    fn fresh() -> Provenance {
        Provenance { sender_id: Some("AIDASENDER".into()), sent_at: Some(SystemTime::now()) }
    }

    #[test]
    fn senders_match_exactly_or_by_role_prefix() {
        assert!(sender_matches("AIDASENDER", "AIDASENDER"));
        assert!(!sender_matches("AIDASENDER", "AIDASENDER2"));
        assert!(sender_matches("AROAROLE:*", "AROAROLE:session-1"));
        assert!(!sender_matches("AROAROLE:*", "AROAOTHER:session-1"));
    }

    #[test]
    fn checks_run_in_order_and_name_themselves() {
        let audit = job("IAMAuditRootUserCredentials", "111122223333", None);
        let mut policy = PolicyConfig::default();
        assert_eq!(check_static(&policy, &audit, &fresh(), SystemTime::now()), Ok(()));

        policy.allowed_senders = vec!["AROAPRODUCER:*".into()];
        assert_eq!(check_static(&policy, &audit, &fresh(), SystemTime::now()).unwrap_err().code, "policy.sender");
        policy.allowed_senders = vec!["AIDASENDER".into()];

        let stale = Provenance { sent_at: Some(SystemTime::now() - Duration::from_secs(2 * 86400)), ..fresh() };
        assert_eq!(check_static(&policy, &audit, &stale, SystemTime::now()).unwrap_err().code, "policy.freshness");

        policy.allowed_tasks = vec!["S3UnlockBucketPolicy".into()];
        assert_eq!(check_static(&policy, &audit, &fresh(), SystemTime::now()).unwrap_err().code, "policy.task");
        policy.allowed_tasks.clear();

        policy.denied_accounts = vec!["111122223333".into()];
        assert_eq!(check_static(&policy, &audit, &fresh(), SystemTime::now()).unwrap_err().code, "policy.account");
        policy.denied_accounts.clear();
        policy.allowed_accounts = vec!["444455556666".into()];
        assert_eq!(check_static(&policy, &audit, &fresh(), SystemTime::now()).unwrap_err().code, "policy.account");
        policy.allowed_accounts.clear();

        let unlock = job("S3UnlockBucketPolicy", "111122223333", None);
        assert_eq!(check_static(&policy, &unlock, &fresh(), SystemTime::now()).unwrap_err().code, "policy.ticket");
        let approved = job("S3UnlockBucketPolicy", "111122223333", Some("CHG-1"));
        assert_eq!(check_static(&policy, &approved, &fresh(), SystemTime::now()), Ok(()));
        let mut dry = job("S3UnlockBucketPolicy", "111122223333", None);
        dry.dry_run = true;
        assert_eq!(check_static(&policy, &dry, &fresh(), SystemTime::now()), Ok(()), "a dry run needs no ticket");
    }

    #[test]
    fn approvals_are_required_for_the_listed_tasks_except_in_dry_runs() {
        use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};

        use crate::approvals::{Approval, base64, canonical_message};
        use crate::config::ApproverConfig;

        let pair = Ed25519KeyPair::generate().unwrap();
        let public_key = base64(AsDer::<PublicKeyX509Der>::as_der(pair.public_key()).unwrap().as_ref());
        let alice = ApproverConfig { id: "alice".into(), public_key };
        let policy = PolicyConfig {
            require_approval: vec!["S3UnlockBucketPolicy".into()],
            approvals_required: 1,
            approvers: vec![alice],
            ..PolicyConfig::default()
        };
        let handle = PolicyHandle::new(policy.clone());
        let mut unlock = job("S3UnlockBucketPolicy", "111122223333", Some("CHG-1"));
        let rejection = check_static(&handle.current(), &unlock, &fresh(), SystemTime::now()).unwrap_err();
        assert_eq!(rejection.code, "policy.approval");
        assert!(rejection.reason.contains("needs 1 valid approvals from distinct approvers, found 0"), "{rejection:?}");
        let not_after = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600)).to_string();
        let signature = base64(pair.sign(&canonical_message(&unlock, &not_after)).as_ref());
        unlock.approvals = vec![Approval { approver: "alice".into(), signature, not_after }];
        assert_eq!(check_static(&handle.current(), &unlock, &fresh(), SystemTime::now()), Ok(()));
        let audit = job("IAMAuditRootUserCredentials", "111122223333", None);
        assert_eq!(check_static(&handle.current(), &audit, &fresh(), SystemTime::now()), Ok(()), "not a listed task");
        let mut dry = job("S3UnlockBucketPolicy", "111122223333", Some("CHG-1"));
        dry.dry_run = true;
        assert_eq!(check_static(&handle.current(), &dry, &fresh(), SystemTime::now()), Ok(()), "dry runs are exempt");

        // A reload that removes alice invalidates her pending approvals.
        let without_alice = PolicyConfig { approvers: Vec::new(), require_approval: Vec::new(), ..policy.clone() };
        handle
            .replace(PolicyConfig { require_approval: policy.require_approval.clone(), ..without_alice.clone() })
            .unwrap_err();
        handle.replace(without_alice).unwrap();
        assert_eq!(check_static(&handle.current(), &unlock, &fresh(), SystemTime::now()), Ok(()), "no longer required");
        let other = ApproverConfig { id: "bob".into(), public_key: policy.approvers[0].public_key.clone() };
        handle.replace(PolicyConfig { approvers: vec![other], ..policy }).unwrap();
        let rejection = check_static(&handle.current(), &unlock, &fresh(), SystemTime::now()).unwrap_err();
        assert!(rejection.reason.contains("`alice`: unknown approver"), "{rejection:?}");
    }

    #[test]
    fn an_invalid_reload_keeps_the_old_policy() {
        let handle = PolicyHandle::new(PolicyConfig::default());
        let bad = PolicyConfig { denied_accounts: vec!["nope".into()], ..PolicyConfig::default() };
        assert!(handle.replace(bad).is_err());
        assert!(handle.current().denied_accounts.is_empty());
        let good = PolicyConfig { dry_run: true, ..PolicyConfig::default() };
        handle.replace(good).unwrap();
        assert!(handle.current().dry_run);
    }

    #[tokio::test]
    async fn one_job_per_account_at_a_time() {
        let limiter = AccountLimiter::new(1);
        let first = limiter.acquire("111122223333").await;
        let other_account = limiter.acquire("444455556666").await;
        let blocked = tokio::time::timeout(Duration::from_millis(10), limiter.acquire("111122223333")).await;
        assert!(blocked.is_err(), "a second job for the same account must wait");
        drop(first);
        drop(other_account);
        let _again = limiter.acquire("111122223333").await;
        assert_eq!(limiter.semaphores.lock().unwrap().len(), 1);
    }
}

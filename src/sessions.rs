//! The root session cache: one task-scoped `sts:AssumeRoot` session per (account, task), shared
//! by the jobs that need it while it has enough time left, with one AssumeRoot in flight per key.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_sts::types::PolicyDescriptorType;
use tokio::time::Instant;
use tracing::Instrument;

use crate::aws::{self, AwsCallError, Clients, ErrorClass};
use crate::config::SessionsConfig;
use crate::job::Task;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;

/// A task-scoped root session in one member account. Its `Debug` shows only the access key id:
/// the secret key and session token never leave the SDK's credential type.
pub struct RootSession {
    /// The member account.
    pub account_id: String,
    /// The task the session is scoped to.
    pub task: Task,
    /// Recorded in results so the job joins with CloudTrail.
    pub access_key_id: String,
    credentials: Credentials,
    expires_at: Instant,
    iam: OnceLock<aws_sdk_iam::Client>,
    s3: Mutex<HashMap<String, aws_sdk_s3::Client>>,
    sqs: Mutex<HashMap<String, aws_sdk_sqs::Client>>,
}

impl fmt::Debug for RootSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootSession")
            .field("account_id", &self.account_id)
            .field("task", &self.task)
            .field("access_key_id", &self.access_key_id)
            .field("remaining", &self.remaining())
            .finish_non_exhaustive()
    }
}

impl RootSession {
    /// Time left before AWS stops accepting the session.
    pub fn remaining(&self) -> Duration {
        self.expires_at.saturating_duration_since(Instant::now())
    }

    /// IAM as the member account's root user.
    pub fn iam(&self, clients: &Clients) -> aws_sdk_iam::Client {
        self.iam.get_or_init(|| clients.root_iam(&self.credentials)).clone()
    }

    /// S3 in `region` as the member account's root user.
    pub fn s3(&self, clients: &Clients, region: &str) -> aws_sdk_s3::Client {
        let mut by_region = self.s3.lock().expect("client cache lock");
        by_region.entry(region.to_owned()).or_insert_with(|| clients.root_s3(&self.credentials, region)).clone()
    }

    /// SQS in `region` as the member account's root user.
    pub fn sqs(&self, clients: &Clients, region: &str) -> aws_sdk_sqs::Client {
        let mut by_region = self.sqs.lock().expect("client cache lock");
        by_region.entry(region.to_owned()).or_insert_with(|| clients.root_sqs(&self.credentials, region)).clone()
    }
}

type SessionKey = (String, Task);

/// One cache slot. The async mutex makes concurrent jobs for one key wait for a single
/// AssumeRoot instead of each calling it.
#[derive(Default)]
struct Entry {
    session: tokio::sync::Mutex<Option<Arc<RootSession>>>,
    /// Copy of the session's expiry, readable without the async lock, for eviction.
    expires_at: Mutex<Option<Instant>>,
}

/// Why no session could be had.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// AssumeRoot failed (the error's class says whether to retry).
    #[error("AssumeRoot for account {account_id} and task {task} failed: {source}")]
    AssumeRoot {
        /// Target account.
        account_id: String,
        /// Task policy asked for.
        task: Task,
        /// The AWS error (boxed: a session error travels in every job's `Result`).
        #[source]
        source: Box<AwsCallError>,
    },
    /// AWS answered without credentials.
    #[error("AssumeRoot for account {account_id} returned no credentials")]
    NoCredentials {
        /// Target account.
        account_id: String,
    },
}

impl SessionError {
    /// What the job should do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            SessionError::AssumeRoot { source, .. } => source.class,
            SessionError::NoCredentials { .. } => ErrorClass::Transient,
        }
    }

    /// The AWS code, or a short name.
    pub fn code(&self) -> &str {
        match self {
            SessionError::AssumeRoot { source, .. } => &source.code,
            SessionError::NoCredentials { .. } => "NoCredentials",
        }
    }
}

/// The cache.
pub struct SessionCache {
    entries: Mutex<HashMap<SessionKey, Arc<Entry>>>,
    sts: aws_sdk_sts::Client,
    settings: SessionsConfig,
    limiter: RateLimiter,
    call_timeout: Duration,
    metrics: Metrics,
}

impl SessionCache {
    /// A cache that assumes sessions through `clients.sts`, at most `assume_root_rate` per second;
    /// one AssumeRoot call that has not answered within `call_timeout` is a transient failure
    /// (the waits around the calls are bounded by the caller).
    pub fn new(
        clients: &Clients,
        settings: SessionsConfig,
        assume_root_rate: f64,
        call_timeout: Duration,
        metrics: Metrics,
    ) -> Self {
        // The SDK's own retries would bypass the rate limiter; this cache retries throttling itself.
        let sts_config = aws_sdk_sts::config::Builder::from(&clients.sdk)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
            .build();
        Self {
            entries: Mutex::new(HashMap::new()),
            sts: aws_sdk_sts::Client::from_conf(sts_config),
            settings,
            limiter: RateLimiter::new(assume_root_rate),
            call_timeout,
            metrics,
        }
    }

    /// A session for `(account_id, task)` with at least `min_remaining` left: the cached one, or
    /// a new one. Throttling is waited out here (the caller bounds the wait), so it never costs
    /// a job an attempt.
    pub async fn session(&self, account_id: &str, task: Task) -> Result<Arc<RootSession>, SessionError> {
        let entry = self.entry(account_id, task);
        let mut slot = entry.session.lock().await;
        if let Some(session) = slot.as_ref().filter(|s| s.remaining() >= self.settings.min_remaining) {
            self.metrics.session_cache_hits.inc();
            return Ok(session.clone());
        }
        self.metrics.session_cache_misses.inc();
        let session = Arc::new(self.assume_root(account_id, task).await?);
        *entry.expires_at.lock().expect("entry lock") = Some(session.expires_at);
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Drops `session` from the cache (after AWS said its token expired), unless a newer
    /// session already replaced it.
    pub fn evict(&self, session: &RootSession) {
        let mut entries = self.entries.lock().expect("cache lock");
        let key = (session.account_id.clone(), session.task);
        let is_current = entries.get(&key).is_some_and(|entry| {
            entry
                .session
                .try_lock()
                .is_ok_and(|slot| slot.as_ref().is_some_and(|cached| cached.access_key_id == session.access_key_id))
        });
        if is_current {
            entries.remove(&key);
        }
        self.metrics.session_cache_entries.set(entries.len() as i64);
    }

    fn entry(&self, account_id: &str, task: Task) -> Arc<Entry> {
        let mut entries = self.entries.lock().expect("cache lock");
        let key = (account_id.to_owned(), task);
        if let Some(entry) = entries.get(&key) {
            return entry.clone();
        }
        if entries.len() >= self.settings.capacity {
            make_room(&mut entries, self.settings.capacity);
        }
        let entry = Arc::new(Entry::default());
        entries.insert(key, entry.clone());
        self.metrics.session_cache_entries.set(entries.len() as i64);
        entry
    }

    async fn assume_root(&self, account_id: &str, task: Task) -> Result<RootSession, SessionError> {
        // The whole wait for a session (rate limit, throttling retries); the AssumeRoot calls
        // themselves are its `sts.AssumeRoot` children.
        let span = tracing::info_span!(
            "root_session",
            otel.name = "rootwarden.root_session",
            cloud.account.id = account_id,
            rootwarden.task = task.as_str(),
            rootwarden.root_session.access_key_id = tracing::field::Empty,
        );
        async {
            loop {
                self.limiter.acquire().await;
                let started = Instant::now();
                let request = self
                    .sts
                    .assume_root()
                    .target_principal(account_id)
                    .task_policy_arn(PolicyDescriptorType::builder().arn(task.policy_arn()).build())
                    .duration_seconds(self.settings.duration.as_secs() as i32)
                    .send();
                let result = tokio::time::timeout(self.call_timeout, aws::call(&self.metrics, "sts", "AssumeRoot", request))
                    .await
                    .unwrap_or_else(|_| Err(AwsCallError::timed_out("sts", "AssumeRoot")));
                self.metrics.assume_root_duration.observe(started.elapsed().as_secs_f64());
                let output = match result {
                    Ok(output) => output,
                    Err(error) if error.class == ErrorClass::Throttled => {
                        self.count(task, "throttled");
                        self.limiter.throttled();
                        tracing::warn!(code = %error.code, "STS throttled AssumeRoot; slowing down and trying again.");
                        continue;
                    }
                    Err(source) => {
                        self.count(task, "error");
                        return Err(SessionError::AssumeRoot {
                            account_id: account_id.to_owned(),
                            task,
                            source: Box::new(source),
                        });
                    }
                };
                self.limiter.succeeded();
                self.count(task, "ok");
                let session = self.session_from(account_id, task, output)?;
                tracing::Span::current().record("rootwarden.root_session.access_key_id", session.access_key_id.as_str());
                tracing::info!(
                    access_key_id = %session.access_key_id,
                    expires_in_s = session.remaining().as_secs(),
                    "Assumed a root session."
                );
                return Ok(session);
            }
        }
        .instrument(span)
        .await
    }

    fn session_from(
        &self,
        account_id: &str,
        task: Task,
        output: aws_sdk_sts::operation::assume_root::AssumeRootOutput,
    ) -> Result<RootSession, SessionError> {
        let Some(sts_credentials) = output.credentials else {
            return Err(SessionError::NoCredentials { account_id: account_id.to_owned() });
        };
        let expiration = SystemTime::try_from(sts_credentials.expiration).ok();
        // Trust the shorter of AWS's expiry and what was asked for: a clock skew between this
        // host and AWS must not make the cache hand out a session AWS already considers dead.
        let aws_left = expiration.and_then(|at| at.duration_since(SystemTime::now()).ok()).unwrap_or(self.settings.duration);
        let lifetime = aws_left.min(self.settings.duration);
        let credentials = Credentials::new(
            sts_credentials.access_key_id.clone(),
            sts_credentials.secret_access_key,
            Some(sts_credentials.session_token),
            expiration,
            "rootwarden-assume-root",
        );
        Ok(RootSession {
            account_id: account_id.to_owned(),
            task,
            access_key_id: sts_credentials.access_key_id,
            credentials,
            expires_at: Instant::now() + lifetime,
            iam: OnceLock::new(),
            s3: Mutex::new(HashMap::new()),
            sqs: Mutex::new(HashMap::new()),
        })
    }

    fn count(&self, task: Task, result: &str) {
        self.metrics.assume_root_requests.with_label_values(&[task.as_str(), result]).inc();
    }
}

/// Drops expired entries; if the cache is still full, drops the entry closest to expiry.
fn make_room(entries: &mut HashMap<SessionKey, Arc<Entry>>, capacity: usize) {
    let now = Instant::now();
    entries.retain(|_, entry| {
        let expires_at = *entry.expires_at.lock().expect("entry lock");
        // An entry without a session is either empty or has an AssumeRoot in flight; the
        // caller holding it keeps its Arc, so dropping it from the map is harmless.
        expires_at.is_some_and(|at| at > now)
    });
    while entries.len() >= capacity {
        let soonest = entries
            .iter()
            .min_by_key(|(_, entry)| *entry.expires_at.lock().expect("entry lock"))
            .map(|(key, _)| key.clone());
        match soonest {
            Some(key) => entries.remove(&key),
            None => break,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY0";
    const SESSION_TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKENabcdef0123456789";
    const ACCESS_KEY_ID: &str = "ASIAROOTSESSION00001";

    /// A session made as `session` makes one, from an AssumeRoot answer with known secrets.
    fn session() -> (Clients, RootSession) {
        let sdk = aws_types::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_types::region::Region::new("eu-west-1"))
            .build();
        let clients = Clients::new(sdk);
        let cache = SessionCache::new(&clients, SessionsConfig::default(), 20.0, Duration::from_secs(5), Metrics::new());
        let expiration = SystemTime::now() + Duration::from_secs(900);
        let sts_credentials = aws_sdk_sts::types::Credentials::builder()
            .access_key_id(ACCESS_KEY_ID)
            .secret_access_key(SECRET_KEY)
            .session_token(SESSION_TOKEN)
            .expiration(aws_smithy_types::DateTime::from(expiration))
            .build()
            .unwrap();
        let output = aws_sdk_sts::operation::assume_root::AssumeRootOutput::builder().credentials(sts_credentials).build();
        let session = cache.session_from("111122223333", Task::S3UnlockBucketPolicy, output).unwrap();
        (clients, session)
    }

    fn assert_redacted(what: &str, text: &str) {
        assert!(!text.contains(SECRET_KEY), "{what} shows the secret key: {text}");
        assert!(!text.contains(SESSION_TOKEN), "{what} shows the session token: {text}");
    }

    #[tokio::test]
    async fn a_root_session_debug_shows_the_access_key_id_and_never_its_secrets() {
        let (clients, session) = session();
        // The session does hold the secrets: the test would prove nothing otherwise.
        assert_eq!(session.credentials.secret_access_key(), SECRET_KEY);
        assert_eq!(session.credentials.session_token(), Some(SESSION_TOKEN));

        let debug = format!("{session:?}");
        assert!(debug.contains(ACCESS_KEY_ID), "{debug}");
        assert!(debug.contains("111122223333") && debug.contains("S3UnlockBucketPolicy"), "{debug}");
        assert_redacted("RootSession's Debug", &debug);
        assert_redacted("RootSession's pretty Debug", &format!("{session:#?}"));
        // The SDK credential type the session holds, and the root clients made from it.
        assert_redacted("the session's Credentials", &format!("{:?}", session.credentials));
        assert_redacted("the session's Credentials, pretty", &format!("{:#?}", session.credentials));
        assert_redacted("the root IAM client", &format!("{:?}", session.iam(&clients)));
        assert_redacted("the root S3 client", &format!("{:?}", session.s3(&clients, "eu-west-1")));
        assert_redacted("the root SQS client", &format!("{:?}", session.sqs(&clients, "eu-west-1")));
        // With its clients made, the session's Debug is still redacted.
        assert_redacted("RootSession's Debug with clients", &format!("{session:#?}"));
    }
}

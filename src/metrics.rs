//! Prometheus metrics: one registry made at start-up, the metric families dashboards and alerts
//! rely on (names are a contract, see DESIGN.md), and the text exposition.

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Buckets for job and AssumeRoot latency: from a cache hit on a fast network to a slow,
/// retried AWS call.
const LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Every metric the daemon exports. Label values are bounded sets: never a job id, message id
/// or raw error text.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// Messages received from the intake queue.
    pub jobs_received: IntCounter,
    /// Jobs ended, by task and outcome.
    pub jobs_completed: IntCounterVec,
    /// Jobs rejected, by the check that refused them (its `error_code`, one of
    /// [`REJECTION_CHECKS`], else `other`).
    pub jobs_rejected: IntCounterVec,
    /// Time from receipt to result, by task.
    pub job_duration: HistogramVec,
    /// Jobs running now.
    pub jobs_in_flight: IntGauge,
    /// AssumeRoot calls by task and result (`ok`, `throttled`, `error`).
    pub assume_root_requests: IntCounterVec,
    /// AssumeRoot latency.
    pub assume_root_duration: Histogram,
    /// Jobs served by a cached root session.
    pub session_cache_hits: IntCounter,
    /// Jobs that needed a new root session.
    pub session_cache_misses: IntCounter,
    /// Sessions held.
    pub session_cache_entries: IntGauge,
    /// AWS errors by service, operation and AWS error code.
    pub aws_errors: IntCounterVec,
    /// Intake messages deleted (acknowledged).
    pub messages_deleted: IntCounter,
    /// Intake messages moved to the dead-letter queue, by outcome.
    pub messages_dead_lettered: IntCounterVec,
    /// Visibility heartbeats of running jobs.
    pub visibility_extensions: IntCounter,
    /// DeleteMessageBatch entries that SQS reported as failed (retried).
    pub delete_failures: IntCounter,
    /// Queue depths by queue (`intake`, `dead_letter`, `results`) and state.
    pub queue_messages: IntGaugeVec,
    /// Root credentials seen by audits, by account and credential kind (1 present, 0 absent).
    pub root_credentials_present: IntGaugeVec,
    /// Resources the last discovery of an account left locked, by unlock task and account.
    pub locked_resources: IntGaugeVec,
    /// When this instance last audited (or, for the unlock tasks, discovered) an account: each
    /// replica keeps the last per-account values it observed, so queries across replicas keep
    /// the latest observation of each account by this time. See [`Metrics::observed`].
    pub account_observed: GaugeVec,
    /// Constant 1, labelled with the version.
    pub build_info: IntGaugeVec,
}

impl Metrics {
    /// Creates the registry and registers every family.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let metric = IntCounter::new(name, help).expect("valid metric");
            registry.register(Box::new(metric.clone())).expect("unique metric");
            metric
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(metric.clone())).expect("unique metric");
            metric
        };
        let gauge = |name: &str, help: &str| {
            let metric = IntGauge::new(name, help).expect("valid metric");
            registry.register(Box::new(metric.clone())).expect("unique metric");
            metric
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(metric.clone())).expect("unique metric");
            metric
        };
        let job_duration = HistogramVec::new(
            HistogramOpts::new("rootwarden_job_duration_seconds", "Time from receipt to result of a job.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["task"],
        )
        .expect("valid metric");
        registry.register(Box::new(job_duration.clone())).expect("unique metric");
        let assume_root_duration = Histogram::with_opts(
            HistogramOpts::new("rootwarden_assume_root_duration_seconds", "Latency of sts:AssumeRoot calls.")
                .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        registry.register(Box::new(assume_root_duration.clone())).expect("unique metric");

        let metrics = Self {
            jobs_received: counter("rootwarden_jobs_received_total", "Messages received from the intake queue."),
            jobs_completed: counter_vec(
                "rootwarden_jobs_completed_total",
                "Jobs ended, by task and outcome.",
                &["task", "outcome"],
            ),
            jobs_rejected: counter_vec(
                "rootwarden_jobs_rejected_total",
                "Jobs rejected, by the check that refused them (the result's error_code).",
                &["check"],
            ),
            job_duration,
            jobs_in_flight: gauge("rootwarden_jobs_in_flight", "Jobs running now."),
            assume_root_requests: counter_vec(
                "rootwarden_assume_root_requests_total",
                "sts:AssumeRoot calls by task and result.",
                &["task", "result"],
            ),
            assume_root_duration,
            session_cache_hits: counter("rootwarden_session_cache_hits_total", "Jobs served by a cached root session."),
            session_cache_misses: counter("rootwarden_session_cache_misses_total", "Jobs that needed a new root session."),
            session_cache_entries: gauge("rootwarden_session_cache_entries", "Root sessions held in the cache."),
            aws_errors: counter_vec(
                "rootwarden_aws_errors_total",
                "AWS errors by service, operation and error code.",
                &["service", "operation", "code"],
            ),
            messages_deleted: counter("rootwarden_messages_deleted_total", "Intake messages deleted."),
            messages_dead_lettered: counter_vec(
                "rootwarden_messages_dead_lettered_total",
                "Intake messages moved to the dead-letter queue, by outcome.",
                &["outcome"],
            ),
            visibility_extensions: counter(
                "rootwarden_visibility_extensions_total",
                "Visibility heartbeats sent for running jobs.",
            ),
            delete_failures: counter("rootwarden_delete_failures_total", "DeleteMessageBatch entries SQS reported as failed."),
            queue_messages: gauge_vec(
                "rootwarden_queue_messages",
                "Approximate queue depth by queue and state.",
                &["queue", "state"],
            ),
            root_credentials_present: gauge_vec(
                "rootwarden_root_credentials_present",
                "Root credentials seen by the last audit of an account (1 present, 0 absent).",
                &["account_id", "credential"],
            ),
            locked_resources: gauge_vec(
                "rootwarden_locked_resources",
                "Buckets or queues whose policy locks everyone out, as the last discovery of an account left them \
                 (found by a dry run; found and not unlocked by an applied one).",
                &["task", "account_id"],
            ),
            account_observed: {
                let opts = Opts::new(
                    "rootwarden_account_observed_timestamp_seconds",
                    "When this instance last audited (IAMAuditRootUserCredentials) or discovered (the unlock tasks) \
                     the account, Unix time: across replicas, the latest observation of an account is its state.",
                );
                let metric = GaugeVec::new(opts, &["task", "account_id"]).expect("valid metric");
                registry.register(Box::new(metric.clone())).expect("unique metric");
                metric
            },
            build_info: gauge_vec("rootwarden_build_info", "Build information; always 1.", &["version"]),
            registry,
        };
        metrics.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        metrics.initialise_label_sets();
        metrics
    }

    /// Creates every bounded label combination at zero: a series that first appears with the
    /// value 1 has no `rate()` or `increase()`, so the first failure would go unseen by alerts.
    fn initialise_label_sets(&self) {
        use crate::job::Task;
        use crate::outcome::Outcome;
        let outcomes = [Outcome::Succeeded, Outcome::NoChange, Outcome::DryRun, Outcome::Rejected, Outcome::Failed];
        let tasks = Task::ALL.map(Task::as_str);
        // `unknown`: a message that names no task, the first rejection a broken producer causes.
        for task in tasks.iter().chain(std::iter::once(&"unknown")) {
            for outcome in outcomes {
                self.jobs_completed.with_label_values(&[task, outcome.as_str()]);
            }
            self.job_duration.with_label_values(&[task]);
        }
        for task in tasks {
            for result in ["ok", "throttled", "error"] {
                self.assume_root_requests.with_label_values(&[task, result]);
            }
        }
        for outcome in [Outcome::Rejected, Outcome::Failed] {
            self.messages_dead_lettered.with_label_values(&[outcome.as_str()]);
        }
        for check in REJECTION_CHECKS.iter().chain(std::iter::once(&"other")) {
            self.jobs_rejected.with_label_values(&[check]);
        }
    }

    /// Records that this instance observed `account` for `task` now (an audit's posture, a
    /// discovery's locked resources), with the values it sets beside this call.
    pub fn observed(&self, task: &str, account: &str) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.account_observed.with_label_values(&[task, account]).set(now.as_secs_f64());
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer).expect("text encoding cannot fail");
        String::from_utf8(buffer).expect("exposition is UTF-8")
    }
}

/// The rejection codes (a rejected result's `error_code`): the `check` label values of
/// `rootwarden_jobs_rejected_total`. A code missing here is counted as `other`; the test below
/// finds every code the worker and the policy write.
pub const REJECTION_CHECKS: [&str; 12] = [
    "job.malformed",
    "job.invalid",
    "policy.sender",
    "policy.freshness",
    "policy.task",
    "policy.account",
    "policy.ticket",
    "policy.approval",
    "policy.feature",
    "policy.membership",
    "policy.organizational_unit",
    "policy.organization",
];

/// The `check` label of a rejection with this code: the code when it is one of
/// [`REJECTION_CHECKS`], else `other` (the label set stays bounded whatever a result holds).
pub fn rejection_check(code: Option<&str>) -> &'static str {
    code.and_then(|code| REJECTION_CHECKS.into_iter().find(|check| *check == code)).unwrap_or("other")
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_family_is_exported() {
        let metrics = Metrics::new();
        // Vec families appear only once a label set exists.
        metrics.jobs_completed.with_label_values(&["S3UnlockBucketPolicy", "succeeded"]).inc();
        metrics.job_duration.with_label_values(&["S3UnlockBucketPolicy"]).observe(0.1);
        metrics.assume_root_requests.with_label_values(&["S3UnlockBucketPolicy", "ok"]).inc();
        metrics.aws_errors.with_label_values(&["s3", "GetBucketPolicy", "AccessDenied"]).inc();
        metrics.messages_dead_lettered.with_label_values(&["rejected"]).inc();
        metrics.jobs_rejected.with_label_values(&[rejection_check(Some("policy.approval"))]).inc();
        metrics.queue_messages.with_label_values(&["intake", "visible"]).set(3);
        metrics.root_credentials_present.with_label_values(&["111122223333", "password"]).set(1);
        metrics.locked_resources.with_label_values(&["S3UnlockBucketPolicy", "111122223333"]).set(2);
        metrics.observed("S3UnlockBucketPolicy", "111122223333");
        let text = metrics.render();
        for name in [
            "rootwarden_jobs_received_total",
            "rootwarden_jobs_completed_total",
            "rootwarden_jobs_rejected_total",
            "rootwarden_job_duration_seconds_bucket",
            "rootwarden_jobs_in_flight",
            "rootwarden_assume_root_requests_total",
            "rootwarden_assume_root_duration_seconds_bucket",
            "rootwarden_session_cache_hits_total",
            "rootwarden_session_cache_misses_total",
            "rootwarden_session_cache_entries",
            "rootwarden_aws_errors_total",
            "rootwarden_messages_deleted_total",
            "rootwarden_messages_dead_lettered_total",
            "rootwarden_visibility_extensions_total",
            "rootwarden_queue_messages",
            "rootwarden_root_credentials_present",
            "rootwarden_locked_resources",
            "rootwarden_account_observed_timestamp_seconds",
            "rootwarden_build_info",
        ] {
            assert!(text.contains(&format!("\n{name}")), "{name} missing");
        }
    }

    #[test]
    fn every_task_label_of_the_completed_jobs_has_a_duration_at_zero() {
        let text = Metrics::new().render();
        let tasks: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("rootwarden_jobs_completed_total{"))
            .filter_map(|rest| rest.split("task=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(tasks.len(), 30, "six task labels (the five tasks and unknown), five outcomes each: {text}");
        for task in tasks {
            let count = format!("rootwarden_job_duration_seconds_count{{task=\"{task}\"}} 0");
            assert!(text.contains(&count), "{count} missing: {text}");
        }
    }

    #[test]
    fn rejections_are_counted_by_check_from_a_bounded_set() {
        let metrics = Metrics::new();
        let text = metrics.render();
        assert!(text.contains("rootwarden_jobs_rejected_total{check=\"policy.approval\"} 0"), "created at zero: {text}");
        assert!(text.contains("rootwarden_jobs_rejected_total{check=\"other\"} 0"), "{text}");
        assert_eq!(rejection_check(Some("policy.ticket")), "policy.ticket");
        assert_eq!(rejection_check(Some("anything a result could hold")), "other");
        assert_eq!(rejection_check(None), "other");
        // Every rejection code the worker and the policy write is a label of its own.
        for source in [include_str!("policy.rs"), include_str!("worker.rs")] {
            for prefix in ["\"policy.", "\"job."] {
                for (at, _) in source.match_indices(prefix) {
                    let rest = &source[at + prefix.len()..];
                    let name_len = rest.bytes().take_while(|b| b.is_ascii_lowercase() || *b == b'_').count();
                    if name_len > 0 && rest[name_len..].starts_with('"') {
                        let code = &source[at + 1..at + prefix.len() + name_len];
                        assert!(REJECTION_CHECKS.contains(&code), "rejection code `{code}` is missing from REJECTION_CHECKS");
                    }
                }
            }
        }
    }
}

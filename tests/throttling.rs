//! Throttling storms are waited out inside the job: time spent waiting for the AssumeRoot pace
//! or pausing after a throttled task call counts neither against `workers.job_timeout` nor as
//! an attempt, while the visibility heartbeat keeps the message hidden. Only
//! `workers.max_throttle_wait` bounds the wait; past it a job is retried like any transient
//! failure.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(900);

/// Posts one audit per account during a storm of Throttling answers on AssumeRoot (for
/// `sts_seconds`) and on the audit's first IAM call (for `iam_seconds`), and checks that every
/// job succeeds on its first attempt with nothing dead-lettered.
async fn storm(accounts: usize, sts_seconds: u64, iam_seconds: u64, job_timeout: Duration, assume_root_rate: f64) {
    let local = LocalAws::start();
    let seed = local.seed(accounts, 0, 0);
    let queues = Queues::new(&local, &seed).await;
    let mut config = config(&local, &seed);
    config.workers.job_timeout = job_timeout;
    config.intake.visibility_timeout = Duration::from_secs(4);
    config.policy.assume_root_rate = assume_root_rate;
    local.fault(json!({"service": "sts", "operation": "AssumeRoot", "error": "Throttling", "for_seconds": sts_seconds}));
    local.fault(json!({"service": "iam", "operation": "GetAccountSummary", "error": "Throttling", "for_seconds": iam_seconds}));
    let daemon = RunningDaemon::start(config).await;
    for account in seed.accounts() {
        queues.send(&job(&format!("audit-{account}"), &account, "IAMAuditRootUserCredentials", json!({}))).await;
    }
    let started = std::time::Instant::now();
    let results = queues.results(accounts, WAIT).await;
    let elapsed = started.elapsed();
    let attempts: Vec<u64> = results.iter().map(|r| r["attempt"].as_u64().unwrap()).collect();
    println!(
        "storm of {sts_seconds} s (AssumeRoot) and {iam_seconds} s (IAM): {accounts} jobs in {elapsed:?}, attempts {attempts:?}"
    );
    assert!(elapsed > job_timeout * 3, "the storm outlasted workers.job_timeout several times over ({elapsed:?})");
    for result in &results {
        assert_eq!(result["outcome"], "succeeded", "{result}");
        assert_eq!(result["attempt"], 1, "throttling costs no attempt: {result}");
    }
    let text = daemon.metrics.render();
    assert!(
        metric_value(&text, "rootwarden_assume_root_requests_total{result=\"throttled\",task=\"IAMAuditRootUserCredentials\"}")
            >= 1.0
    );
    assert!(
        metric_value(&text, "rootwarden_aws_errors_total{code=\"Throttling\",operation=\"GetAccountSummary\",service=\"iam\"}")
            >= 1.0
    );
    assert!(daemon.metric("rootwarden_visibility_extensions_total") >= 1.0, "the heartbeat kept the messages hidden");
    daemon.stop().await;
    assert_eq!(metric_value(&text, "rootwarden_messages_dead_lettered_total{outcome=\"failed\"}"), 0.0);
    let dead = queues.sqs.receive_message().queue_url(seed.queue("dead_letter")).wait_time_seconds(1).send().await.unwrap();
    assert!(dead.messages.unwrap_or_default().is_empty(), "nothing dead-lettered");
    assert_eq!(queues.intake_depth().await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_storm_longer_than_the_job_timeout_costs_no_attempt() {
    // Waiting out AssumeRoot until 6 s, then the audit's IAM calls until 10 s, with a 1 s
    // job timeout.
    storm(6, 6, 10, Duration::from_secs(1), 1000.0).await;
}

/// The figure, at production settings: a five-minute storm, the default job timeout
/// and AssumeRoot pace. Five minutes long, so not part of `make test`:
/// `cargo nextest run --test throttling --run-ignored only`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "five minutes long; run by hand for the figure in the README"]
async fn a_five_minute_storm_at_default_settings_ends_with_every_job_succeeded() {
    storm(20, 240, 300, Duration::from_secs(60), 20.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_past_max_throttle_wait_is_retried_like_a_transient_failure() {
    let local = LocalAws::start();
    let seed = local.seed(1, 0, 0);
    let account = seed.accounts()[0].clone();
    let queues = Queues::new(&local, &seed).await;
    let mut config = config(&local, &seed);
    config.workers.max_throttle_wait = Duration::from_secs(2);
    local.fault(json!({"service": "sts", "operation": "AssumeRoot", "error": "Throttling", "for_seconds": 4}));
    let daemon = RunningDaemon::start(config).await;
    queues.send(&job("bounded", &account, "IAMAuditRootUserCredentials", json!({}))).await;
    let result = &queues.results(1, WAIT).await[0];
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert!(result["attempt"].as_u64().unwrap() >= 2, "the bound ended the first attempt: {result}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assume_root_call_that_does_not_answer_is_cut_at_the_job_timeout_and_retried() {
    // Waiting for a session is not bounded by workers.job_timeout, but one AssumeRoot call is:
    // a hung call must not hold the job until max_throttle_wait.
    let local = LocalAws::start();
    let seed = local.seed(1, 0, 0);
    let account = seed.accounts()[0].clone();
    let queues = Queues::new(&local, &seed).await;
    let mut config = config(&local, &seed);
    config.workers.job_timeout = Duration::from_secs(1);
    local.fault(json!({"service": "sts", "operation": "AssumeRoot", "latency_ms": 4000, "count": 1}));
    let daemon = RunningDaemon::start(config).await;
    queues.send(&job("hung", &account, "IAMAuditRootUserCredentials", json!({}))).await;
    let result = &queues.results(1, WAIT).await[0];
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["attempt"], 2, "the hung call ended the first attempt: {result}");
    daemon.stop().await;
}

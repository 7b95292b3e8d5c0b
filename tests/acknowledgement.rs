//! Every message ends in exactly one result and the acknowledgement its outcome calls for:
//! rejected and failed messages reach the dead-letter queue with their reason, transient
//! errors come back after a backoff, and no root session is requested for a rejected job.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_invalid_messages_are_rejected_into_the_dead_letter_queue() {
    let local = LocalAws::start();
    let seed = local.seed(2, 1, 0);
    let account = seed.accounts()[0].clone();
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    let bodies = [
        "this is not json".to_owned(),
        r#"{"version":1,"job_id":"unknown-field","account_id":"111122223333","task":"IAMAuditRootUserCredentials","policy_arn":"arn:aws:iam::aws:policy/AdministratorAccess"}"#.to_owned(),
        job("bad-account", "12345", "IAMAuditRootUserCredentials", json!({})),
        job("no-bucket", &account, "S3UnlockBucketPolicy", json!({})),
    ];
    for body in &bodies {
        queues.send(body).await;
    }
    let results = queues.results(bodies.len(), WAIT).await;
    assert!(results.iter().all(|r| r["outcome"] == "rejected"), "{results:?}");
    let reasons: Vec<&str> = results.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert!(reasons.iter().any(|r| r.contains("not a v1 job")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("unknown field `policy_arn`")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("account_id: must be exactly 12 digits")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("bucket: required")), "{reasons:?}");
    let salvaged = results.iter().find(|r| r["job_id"] == "bad-account").expect("the job id is salvaged");
    assert_eq!(salvaged["error_code"], "job.invalid");

    let dead = queues.dead_letters(bodies.len(), WAIT).await;
    for body in &bodies {
        let (_, outcome, reason) = dead.iter().find(|(b, _, _)| b == body).expect("the original body is kept");
        assert_eq!(outcome, "rejected");
        assert!(!reason.is_empty());
    }
    assert!(local.assume_root_calls().is_empty(), "no root session for a rejected job");
    let metrics = daemon.metrics.clone();
    daemon.stop().await;
    assert_eq!(metric_value(&metrics.render(), "rootwarden_messages_dead_lettered_total{outcome=\"rejected\"}"), 4.0);
    assert_eq!(queues.intake_depth().await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_aws_error_fails_at_once() {
    let local = LocalAws::start();
    let seed = local.seed(2, 1, 0);
    let (bucket, owner) = seed.locked_buckets()[0].clone();
    let other = seed.accounts().into_iter().find(|a| *a != owner).unwrap();
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    // A root session of one account may not touch another account's bucket.
    queues.send(&job("wrong-owner", &other, "S3UnlockBucketPolicy", json!({"bucket": bucket}))).await;
    let result = &queues.results(1, WAIT).await[0];
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error_code"], "AccessDenied");
    assert_eq!(result["attempt"], 1, "a permanent error is not retried");
    let dead = queues.dead_letters(1, WAIT).await;
    assert_eq!(dead[0].1, "failed");
    assert!(dead[0].2.contains("AccessDenied"), "{}", dead[0].2);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_back_off_and_succeed_on_a_later_attempt() {
    let local = LocalAws::start();
    let seed = local.seed(2, 1, 0);
    let (bucket, account) = seed.locked_buckets()[0].clone();
    local.fault(json!({"service": "s3", "operation": "GetBucketPolicy", "error": "ServiceUnavailable", "count": 1}));
    local.fault(json!({"service": "sts", "operation": "AssumeRoot", "error": "InternalError", "count": 1}));
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    queues.send(&job("flaky", &account, "S3UnlockBucketPolicy", json!({"bucket": bucket}))).await;
    let result = &queues.results(1, WAIT).await[0];
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["attempt"], 3, "one retry per injected fault");
    assert!(queues.dead_letters(0, WAIT).await.is_empty());
    let text = daemon.metrics.render();
    assert_eq!(
        metric_value(
            &text,
            "rootwarden_aws_errors_total{code=\"ServiceUnavailable\",operation=\"GetBucketPolicy\",service=\"s3\"}"
        ),
        1.0,
        "{text}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_exhausted_end_as_failed_in_the_dead_letter_queue() {
    let local = LocalAws::start();
    let seed = local.seed(2, 1, 0);
    let (bucket, account) = seed.locked_buckets()[0].clone();
    local.fault(json!({"service": "s3", "operation": "GetBucketPolicy", "error": "InternalError"}));
    let queues = Queues::new(&local, &seed).await;
    let mut config = config(&local, &seed);
    config.intake.max_receive_count = 2;
    let daemon = RunningDaemon::start(config).await;

    queues.send(&job("doomed", &account, "S3UnlockBucketPolicy", json!({"bucket": bucket}))).await;
    let result = &queues.results(1, WAIT).await[0];
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["attempt"], 2);
    assert!(result["reason"].as_str().unwrap().starts_with("retries exhausted"), "{result}");
    let dead = queues.dead_letters(1, WAIT).await;
    assert_eq!(dead[0].1, "failed");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delete_batch_is_retried_not_ignored() {
    let local = LocalAws::start();
    let seed = local.seed(2, 1, 0);
    let (bucket, account) = seed.locked_buckets()[0].clone();
    local.fault(json!({"service": "sqs", "operation": "DeleteMessageBatch", "error": "InternalError", "count": 1}));
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    queues.send(&job("delete-retried", &account, "S3UnlockBucketPolicy", json!({"bucket": bucket}))).await;
    assert_eq!(queues.results(1, WAIT).await[0]["outcome"], "succeeded");
    let metrics = daemon.metrics.clone();
    daemon.stop().await;
    assert_eq!(metric_value(&metrics.render(), "rootwarden_messages_deleted_total"), 1.0);
    assert_eq!(queues.intake_depth().await, (0, 0), "the message was deleted on the second try");
    assert_eq!(local.call_counts()["sqs.DeleteMessageBatch"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_slower_than_the_visibility_timeout_runs_once() {
    let local = LocalAws::start();
    let seed = local.seed(2, 1, 0);
    let (bucket, account) = seed.locked_buckets()[0].clone();
    local.fault(json!({"service": "s3", "operation": "GetBucketPolicy", "latency_ms": 3500, "count": 1}));
    let queues = Queues::new(&local, &seed).await;
    // The queue's own default is shorter than the daemon's setting and its first heartbeat: the
    // daemon's visibility_timeout applies from the receive on, not the queue's.
    queues
        .sqs
        .set_queue_attributes()
        .queue_url(seed.queue("intake"))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await
        .unwrap();
    let mut config = config(&local, &seed);
    config.intake.visibility_timeout = Duration::from_secs(4);
    let daemon = RunningDaemon::start(config).await;

    queues.send(&job("slow", &account, "S3UnlockBucketPolicy", json!({"bucket": bucket}))).await;
    let result = &queues.results(1, WAIT).await[0];
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["attempt"], 1);
    assert!(daemon.metric("rootwarden_visibility_extensions_total") >= 1.0);
    let metrics = daemon.metrics.clone();
    daemon.stop().await;
    assert_eq!(metric_value(&metrics.render(), "rootwarden_jobs_received_total"), 1.0, "delivered once");
    assert_eq!(local.call_counts()["s3.DeleteBucketPolicy"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_takes_no_job_until_its_dead_letter_queue_answers() {
    // A rejected or failed job could not end without its dead-letter queue: not ready until then.
    let local = LocalAws::start();
    let seed = local.seed(1, 0, 0);
    let queues = Queues::new(&local, &seed).await;
    let missing = seed.queue("dead_letter").replace("rootwarden-intake-dlq", "created-later");
    let toml = config_toml(&local, &seed, "").replace(&seed.queue("dead_letter"), &missing);
    let daemon = DaemonProcess::start(&toml, &[]);
    let line = daemon.wait_for_line("The dead-letter queue does not answer yet", WAIT);
    assert!(line.contains("the queue does not exist"), "{line}");
    assert!(!daemon.log().contains("rootwarden is taking jobs."));
    queues.sqs.create_queue().queue_name("created-later").send().await.unwrap();
    daemon.wait_for_line("rootwarden is taking jobs.", WAIT);
    daemon.signal("TERM");
}

//! The guardrails against the local AWS environment: every check rejects before any root
//! session is requested (the environment's AssumeRoot log proves it), a suspended member's job
//! too, AssumeRoot calls keep to the configured rate, and jobs for one account never run at once.

mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(120);

async fn sender_id(local: &LocalAws, credentials: Credentials) -> String {
    let sdk = sdk_config(local, credentials).await;
    aws_sdk_sts::Client::new(&sdk).get_caller_identity().send().await.unwrap().user_id.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_rejects_before_any_root_session_is_requested() {
    let local = LocalAws::start();
    let seed = local.seed(4, 1, 1);
    let accounts = seed.accounts();
    let (bucket, bucket_account) = seed.locked_buckets()[0].clone();
    let (queue_url, queue_account) = seed.locked_queues()[0].clone();
    let trusted = Queues::new(&local, &seed).await;
    let stranger_credentials = Credentials::new("AKIDSTRANGER00000001", "stranger-secret", None, None, "tests");
    let stranger = Queues::with_credentials(&local, &seed, stranger_credentials).await;

    let mut config = config(&local, &seed);
    config.policy.allowed_senders = vec![sender_id(&local, credentials()).await];
    config.policy.allowed_tasks =
        vec!["IAMAuditRootUserCredentials".into(), "S3UnlockBucketPolicy".into(), "IAMCreateRootUserPassword".into()];
    config.policy.denied_accounts = vec![accounts[3].clone()];
    config.policy.max_job_age = Duration::from_secs(1);
    let daemon = RunningDaemon::start(config).await;

    let audit = |id: &str, account: &str| job(id, account, "IAMAuditRootUserCredentials", json!({}));
    stranger.send(&audit("sender", &accounts[0])).await;
    // Delivered 2 s after it was sent: older than max_job_age when it arrives.
    trusted
        .sqs
        .send_message()
        .queue_url(seed.queue("intake"))
        .message_body(audit("freshness", &accounts[0]))
        .delay_seconds(2)
        .send()
        .await
        .unwrap();
    trusted.send(&job("task", &queue_account, "SQSUnlockQueuePolicy", json!({"queue_url": queue_url}))).await;
    trusted.send(&audit("denied", &accounts[3])).await;
    trusted.send(&audit("management", MANAGEMENT_ACCOUNT)).await;
    trusted.send(&audit("non-member", "999999999999")).await;
    let no_ticket =
        json!({"version": 1, "job_id": "ticket", "account_id": bucket_account, "task": "S3UnlockBucketPolicy", "bucket": bucket});
    trusted.send(&no_ticket.to_string()).await;

    let results = trusted.results(7, WAIT).await;
    let codes: HashMap<String, Value> =
        results.iter().map(|r| (r["job_id"].as_str().unwrap().to_owned(), r["error_code"].clone())).collect();
    let expected = [
        ("sender", "policy.sender"),
        ("freshness", "policy.freshness"),
        ("task", "policy.task"),
        ("denied", "policy.account"),
        ("management", "policy.membership"),
        ("non-member", "policy.membership"),
        ("ticket", "policy.ticket"),
    ];
    for (job_id, code) in expected {
        assert_eq!(codes[job_id], code, "job {job_id}: {results:?}");
    }
    assert!(results.iter().all(|r| r["outcome"] == "rejected"));
    assert!(local.assume_root_calls().is_empty(), "rejections request no root session");
    assert_eq!(trusted.dead_letters(7, WAIT).await.len(), 7);

    // The same daemon acts on a job that passes every check.
    trusted.send(&audit("allowed", &accounts[0])).await;
    assert_eq!(trusted.results(1, WAIT).await[0]["outcome"], "succeeded");
    assert_eq!(local.assume_root_calls().len(), 1);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_organization_feature_is_a_clear_rejection_and_dry_run_policy_applies() {
    let local = LocalAws::start();
    let seed = local.seed(2, 1, 0);
    let (bucket, account) = seed.locked_buckets()[0].clone();
    let iam = aws_sdk_iam::Client::new(&sdk_config(&local, credentials()).await);
    iam.disable_organizations_root_sessions().send().await.unwrap();
    let queues = Queues::new(&local, &seed).await;
    let mut config = config(&local, &seed);
    config.policy.dry_run = true;
    let daemon = RunningDaemon::start(config).await;

    queues.send(&job("unlock", &account, "S3UnlockBucketPolicy", json!({"bucket": bucket}))).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(result["outcome"], "rejected");
    assert_eq!(result["error_code"], "policy.feature");
    assert!(result["reason"].as_str().unwrap().contains("RootSessions"), "{result}");

    // IAM tasks need RootCredentialsManagement, still enabled; policy.dry_run makes it a dry run.
    let with_password = seed.account_with_password();
    queues.send(&job("delete", &with_password, "IAMDeleteRootUserCredentials", json!({}))).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(result["outcome"], "dry_run", "{result}");
    assert_eq!(result["dry_run"], true);
    assert!(local.root_state(&with_password)["login_profile"].is_object(), "nothing was deleted");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assume_root_keeps_to_the_configured_rate_under_a_burst_of_500_jobs() {
    const JOBS: usize = 500;
    const RATE: f64 = 20.0;
    let local = LocalAws::start();
    let seed = local.seed(JOBS, 0, 0);
    let queues = Queues::new(&local, &seed).await;
    // One job per account: every job needs its own root session.
    let bodies: Vec<String> = seed
        .accounts()
        .iter()
        .enumerate()
        .map(|(n, account)| job(&format!("recover-{n}"), account, "IAMCreateRootUserPassword", json!({})))
        .collect();
    for chunk in bodies.chunks(10) {
        let entries = chunk.iter().enumerate().map(|(i, body)| {
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body)
                .build()
                .unwrap()
        });
        queues
            .sqs
            .send_message_batch()
            .queue_url(seed.queue("intake"))
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .unwrap();
    }
    let mut config = config(&local, &seed);
    config.policy.assume_root_rate = RATE;
    let daemon = RunningDaemon::start(config).await;

    let results = queues.results(JOBS, WAIT).await;
    assert!(results.iter().all(|r| r["outcome"] == "succeeded" || r["outcome"] == "no_change"), "{results:?}");
    let mut times: Vec<SystemTime> = local.assume_root_calls().iter().map(|c| parse_time(c["time"].as_str().unwrap())).collect();
    times.sort();
    assert_eq!(times.len(), JOBS);
    let span = times[JOBS - 1].duration_since(times[0]).unwrap().as_secs_f64();
    // The log has whole seconds: over some 25 s that is within the 10% asked.
    let measured = (JOBS - 1) as f64 / span;
    assert!((measured - RATE).abs() <= RATE * 0.1, "measured {measured:.1} AssumeRoot/s, configured {RATE}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_for_one_account_run_one_at_a_time_while_other_accounts_proceed() {
    let local = LocalAws::start();
    let seed = local.seed(3, 0, 0);
    let accounts = seed.accounts();
    local.fault(json!({"service": "iam", "operation": "GetLoginProfile", "latency_ms": 800}));
    let queues = Queues::new(&local, &seed).await;
    for n in 0..5 {
        queues.send(&job(&format!("a-{n}"), &accounts[0], "IAMCreateRootUserPassword", json!({}))).await;
    }
    queues.send(&job("b-0", &accounts[1], "IAMCreateRootUserPassword", json!({}))).await;
    let started = std::time::Instant::now();
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    let results = queues.results(6, WAIT).await;
    // Five 800 ms jobs for one account, one after another, cannot take less than 4 s.
    assert!(started.elapsed() >= Duration::from_millis(4000), "{:?}", started.elapsed());
    let position = |id: &str| results.iter().position(|r| r["job_id"] == id).unwrap();
    let summary: Vec<_> = results.iter().map(|r| format!("{} {} {}", r["job_id"], r["started_at"], r["finished_at"])).collect();
    assert!(position("b-0") < position("a-4"), "the other account was not held up: {summary:#?}");
    daemon.stop().await;
}

fn parse_time(text: &str) -> SystemTime {
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z').split('+').next().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_under_a_denied_organizational_unit_are_rejected() {
    let local = LocalAws::start();
    let seed = local.seed(3, 0, 0);
    let accounts = seed.accounts();
    let organizations = aws_sdk_organizations::Client::new(&sdk_config(&local, credentials()).await);
    let root = organizations.list_roots().send().await.unwrap().roots()[0].id().unwrap().to_owned();
    let create = organizations.create_organizational_unit().parent_id(&root).name("break-glass").send().await.unwrap();
    let unit = create.organizational_unit().unwrap().id().unwrap().to_owned();
    let nested = organizations.create_organizational_unit().parent_id(&unit).name("nested").send().await.unwrap();
    let nested = nested.organizational_unit().unwrap().id().unwrap().to_owned();
    organizations
        .move_account()
        .account_id(&accounts[0])
        .source_parent_id(&root)
        .destination_parent_id(&nested)
        .send()
        .await
        .unwrap();
    let queues = Queues::new(&local, &seed).await;
    let mut config = config(&local, &seed);
    config.policy.denied_organizational_units = vec![unit.clone()];
    let daemon = RunningDaemon::start(config).await;

    queues.send(&job("under-unit", &accounts[0], "IAMAuditRootUserCredentials", json!({}))).await;
    queues.send(&job("in-root", &accounts[1], "IAMAuditRootUserCredentials", json!({}))).await;
    let results = queues.results(2, WAIT).await;
    let by_id = |id: &str| results.iter().find(|r| r["job_id"] == id).unwrap().clone();
    assert_eq!(by_id("under-unit")["error_code"], "policy.organizational_unit", "{results:?}");
    assert!(by_id("under-unit")["reason"].as_str().unwrap().contains(&unit));
    assert_eq!(by_id("in-root")["outcome"], "succeeded");
    assert_eq!(local.assume_root_calls().len(), 1, "only the allowed account got a root session");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_for_a_suspended_member_is_rejected_before_any_root_session_is_requested() {
    let local = LocalAws::start();
    let seed = local.seed(3, 0, 0);
    let accounts = seed.accounts();
    let suspended = local.post(&format!("/_localaws/accounts/{}/state", accounts[0]), json!({"state": "SUSPENDED"}));
    assert_eq!(suspended["status"], "SUSPENDED", "{suspended}");
    // As Organizations answered before `State` existed: `Status` only.
    let status_only = json!({"state": null, "status": "SUSPENDED"});
    local.post(&format!("/_localaws/accounts/{}/state", accounts[1]), status_only);
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    queues.send(&job("suspended", &accounts[0], "IAMAuditRootUserCredentials", json!({}))).await;
    queues.send(&job("status-only", &accounts[1], "IAMAuditRootUserCredentials", json!({}))).await;
    let results = queues.results(2, WAIT).await;
    for (job_id, account) in [("suspended", &accounts[0]), ("status-only", &accounts[1])] {
        let result = results.iter().find(|r| r["job_id"] == job_id).unwrap();
        assert_eq!((&result["outcome"], &result["error_code"]), (&json!("rejected"), &json!("policy.membership")), "{result}");
        assert_eq!(result["reason"], format!("account {account} is SUSPENDED, not ACTIVE"), "{result}");
    }
    assert!(local.assume_root_calls().is_empty(), "no root session was requested");
    let dead = queues.dead_letters(2, WAIT).await;
    assert!(dead.iter().all(|(_, outcome, _)| outcome == "rejected"), "{dead:?}");

    // The same daemon acts on the ACTIVE member.
    queues.send(&job("active", &accounts[2], "IAMAuditRootUserCredentials", json!({}))).await;
    assert_eq!(queues.results(1, WAIT).await[0]["outcome"], "succeeded");
    let calls = local.assume_root_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["target_principal"], json!(accounts[2]));
    daemon.stop().await;
}

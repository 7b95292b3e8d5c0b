//! The root session cache against the local AWS environment: one AssumeRoot per (account, task)
//! however many jobs want it, never a session with less than `min_remaining` left, never more
//! than `sessions.capacity` sessions held, and an `ExpiredToken` answered by one retry with a
//! fresh session.

mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_jobs_for_one_account_and_task_make_one_assume_root() {
    let local = LocalAws::start();
    let seed = local.seed(2, 0, 0);
    let account = seed.account_with_password();
    let queues = Queues::new(&local, &seed).await;
    for n in 0..100 {
        queues.send(&job(&format!("audit-{n}"), &account, "IAMAuditRootUserCredentials", json!({}))).await;
    }
    let mut config = config(&local, &seed);
    config.workers.concurrency = 100;
    config.workers.per_account = 100;
    let daemon = RunningDaemon::start(config).await;

    let results = queues.results(100, WAIT).await;
    assert!(results.iter().all(|r| r["outcome"] == "succeeded"));
    let calls = local.assume_root_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(daemon.metric("rootwarden_session_cache_misses_total"), 1.0);
    assert_eq!(daemon.metric("rootwarden_session_cache_hits_total"), 99.0);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_never_used_with_less_than_min_remaining_left() {
    let local = LocalAws::start();
    let seed = local.seed(2, 0, 0);
    let account = seed.account_with_password();
    let queues = Queues::new(&local, &seed).await;
    let mut config = config(&local, &seed);
    config.sessions.duration = Duration::from_secs(3);
    config.sessions.min_remaining = Duration::from_secs(2);
    config.workers.job_timeout = Duration::from_secs(1);
    let daemon = RunningDaemon::start(config).await;

    // Jobs one after another for about three session lifetimes.
    let start = SystemTime::now();
    let mut results = Vec::new();
    let mut n = 0;
    while start.elapsed().unwrap() < Duration::from_secs(7) {
        queues.send(&job(&format!("audit-{n}"), &account, "IAMAuditRootUserCredentials", json!({}))).await;
        results.extend(queues.results(1, WAIT).await);
        n += 1;
    }
    let issued: HashMap<String, SystemTime> = local
        .assume_root_calls()
        .iter()
        .map(|call| (call["access_key_id"].as_str().unwrap().to_owned(), parse_time(call["time"].as_str().unwrap())))
        .collect();
    assert!(issued.len() >= 3, "sessions were renewed: {issued:?}");
    for result in &results {
        let issued_at = issued[result["root_session_access_key_id"].as_str().unwrap()];
        let used_at = parse_time(result["started_at"].as_str().unwrap());
        let age = used_at.duration_since(issued_at).unwrap_or_default();
        // duration 3 s - min_remaining 2 s = at most 1 s of use (+ clock granularity).
        assert!(age <= Duration::from_millis(1100), "a session {age:?} old was used: {result}");
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_evicts_the_session_and_the_job_retries_once_with_a_new_one() {
    let local = LocalAws::start();
    let seed = local.seed(2, 0, 0);
    let account = seed.account_with_password();
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    queues.send(&job("audit-1", &account, "IAMAuditRootUserCredentials", json!({}))).await;
    let first = queues.results(1, WAIT).await.remove(0);
    // AWS's clock moves past the session's expiry while the cache still trusts it.
    local.post("/_localaws/clock", json!({"advance_seconds": 901}));
    queues.send(&job("audit-2", &account, "IAMAuditRootUserCredentials", json!({}))).await;
    let second = queues.results(1, WAIT).await.remove(0);
    assert_eq!(second["outcome"], "succeeded", "{second}");
    assert_eq!(second["attempt"], 1, "the retry happens inside the job");
    assert_ne!(second["root_session_access_key_id"], first["root_session_access_key_id"]);
    assert_eq!(local.assume_root_calls().len(), 2);
    assert_eq!(
        daemon.metric("rootwarden_aws_errors_total{code=\"ExpiredToken\",operation=\"GetAccountSummary\",service=\"iam\"}"),
        1.0
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_capacity_two_jobs_for_three_accounts_all_succeed_and_the_cache_never_holds_more_than_two() {
    let local = LocalAws::start();
    let seed = local.seed(3, 0, 0);
    let accounts = seed.accounts();
    assert_eq!(accounts.len(), 3, "{accounts:?}");
    let queues = Queues::new(&local, &seed).await;
    let mut config = config(&local, &seed);
    config.sessions.capacity = 2;
    let daemon = RunningDaemon::start(config).await;
    let held = || daemon.metric("rootwarden_session_cache_entries");

    // One job at a time: a job adds at most one entry, and the gauge is set as it is added (after
    // making room), so reading it after each result sees every size the cache has had.
    let mut sizes = Vec::new();
    for round in 0..2 {
        for account in &accounts {
            queues
                .send(&job(&format!("audit-{round}-{account}"), account, "IAMAuditRootUserCredentials", json!({})))
                .await;
            let result = queues.results(1, WAIT).await.remove(0);
            assert_eq!(result["outcome"], "succeeded", "{result}");
            sizes.push(held());
        }
    }
    assert!(sizes.iter().all(|&size| size <= 2.0), "cache sizes after each job: {sizes:?}");
    assert_eq!(sizes[..3], [1.0, 2.0, 2.0], "the third account's session replaced one of the first two");
    // Three sessions cannot all be held: the second round assumed at least one again.
    let calls = local.assume_root_calls().len();
    assert!((4..=6).contains(&calls), "{calls} AssumeRoot calls for two rounds over three accounts");

    // All at once: sessions are dropped while other jobs still wait for theirs, and every job
    // still gets one.
    for n in 0..9 {
        let account = &accounts[n % 3];
        queues.send(&job(&format!("audit-burst-{n}"), account, "IAMAuditRootUserCredentials", json!({}))).await;
    }
    let results = queues.results(9, WAIT).await;
    assert!(results.iter().all(|r| r["outcome"] == "succeeded"), "{results:?}");
    assert!(held() <= 2.0, "{} sessions held", held());
    daemon.stop().await;
}

fn parse_time(text: &str) -> SystemTime {
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z').split('+').next().unwrap()).unwrap()
}

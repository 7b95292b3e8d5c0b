//! FIFO queues end to end (intake, dead-letter and results queues all FIFO): each outcome kind,
//! a retry with backoff, `submit` and a sweep posting with groups and deduplication ids; the
//! groups and deduplication ids of results and dead letters; a job backing off holding back its
//! account's later jobs and no other account's; and the README's scaling recipe with three
//! replicas: one SIGKILLed with jobs in flight, the others finish everything, and with a FIFO
//! intake no two jobs of one account ever run at once across the replicas (the local
//! environment counts each account's root-session calls in flight).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use rootwarden::aws::Clients;
use rootwarden::job::{CredentialKind, Task};
use rootwarden::submit::{self, NewJob};
use rootwarden::sweep::{self, SweepOptions};
use serde_json::{Value, json};
use support::*;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(180);

async fn clients(local: &LocalAws) -> Clients {
    management_clients(local).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_and_a_retry_through_fifo_queues() {
    let local = LocalAws::start();
    let seed = local.seed_with(4, 2, 0, &["--fifo"]);
    assert!(seed.queue("intake").ends_with(".fifo") && seed.queue("dead_letter").ends_with(".fifo"));
    let with_password = seed.account_with_password();
    let buckets = seed.locked_buckets();
    let (bucket, owner) = buckets[0].clone();
    let (flaky_bucket, flaky_owner) = buckets[1].clone();
    let other = seed.accounts().into_iter().find(|a| *a != owner).unwrap();
    let queues = Queues::new(&local, &seed).await;
    local.fault(json!({"service": "s3", "operation": "GetBucketPolicy", "error": "ServiceUnavailable", "count": 1}));
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    // The retry first: the injected fault meets its first GetBucketPolicy.
    queues.send(&job("retried", &flaky_owner, "S3UnlockBucketPolicy", json!({"bucket": flaky_bucket}))).await;
    queues
        .results(1, WAIT)
        .await
        .pop()
        .filter(|r| r["outcome"] == "succeeded" && r["attempt"] == 2)
        .expect("retried once, then done");
    queues.send(&job("audit", &with_password, "IAMAuditRootUserCredentials", json!({}))).await;
    queues.send(&job("already", &with_password, "IAMCreateRootUserPassword", json!({}))).await;
    queues.send(&job("dry", &with_password, "IAMDeleteRootUserCredentials", json!({"dry_run": true}))).await;
    queues.send("not a job").await;
    queues.send(&job("not-yours", &other, "S3UnlockBucketPolicy", json!({"bucket": bucket}))).await;
    // `submit` posts to a FIFO queue; the same job id posted twice is deduplicated by SQS.
    let clients = clients(&local).await;
    let audit = NewJob {
        job_id: Some("submitted-once".into()),
        account_id: with_password.clone(),
        task: "IAMAuditRootUserCredentials".into(),
        ..NewJob::default()
    };
    submit::submit(&clients, &seed.queue("intake"), &audit).await.unwrap();
    submit::submit(&clients, &seed.queue("intake"), &audit).await.unwrap();

    let results = queues.results_until_quiet(6, Duration::from_secs(3), WAIT).await;
    let outcomes: BTreeMap<String, String> = results
        .iter()
        .map(|r| (r["job_id"].as_str().unwrap_or("-").to_owned(), r["outcome"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [
        ("-", "rejected"),
        ("already", "no_change"),
        ("audit", "succeeded"),
        ("dry", "dry_run"),
        ("not-yours", "failed"),
        ("submitted-once", "succeeded"),
    ];
    assert_eq!(outcomes, expected.map(|(j, o)| (j.to_owned(), o.to_owned())).into_iter().collect(), "{results:?}");
    assert_eq!(results.len(), 6, "one result each; the second post of `submitted-once` was deduplicated");

    let dead = queues.dead_letters(2, WAIT).await;
    let dead: HashMap<&str, &str> = dead.iter().map(|(body, outcome, _)| (body.as_str(), outcome.as_str())).collect();
    assert_eq!(dead["not a job"], "rejected");
    assert_eq!(dead.len(), 2);
    assert!(dead.values().any(|outcome| *outcome == "failed"));
    daemon.stop().await;
    assert_eq!(queues.intake_depth().await, (0, 0));
}

/// A message received from a FIFO queue: its body and the FIFO system attributes SQS reports.
struct FifoMessage {
    body: String,
    group_id: String,
    deduplication_id: String,
}

/// Receives (and deletes) `count` messages from a FIFO queue with their group and deduplication
/// ids, as SQS reports them to a receiver that asks (`MessageSystemAttributeNames`).
async fn receive_fifo(sqs: &aws_sdk_sqs::Client, url: &str, count: usize) -> Vec<FifoMessage> {
    let mut messages = Vec::new();
    let start = std::time::Instant::now();
    while messages.len() < count {
        assert!(start.elapsed() < WAIT, "{url}: only {} of {count} messages", messages.len());
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::MessageDeduplicationId)
            .send()
            .await
            .unwrap();
        for message in received.messages.unwrap_or_default() {
            sqs.delete_message().queue_url(url).receipt_handle(message.receipt_handle().unwrap()).send().await.unwrap();
            let attributes = message.attributes().unwrap();
            messages.push(FifoMessage {
                body: message.body().unwrap_or_default().to_owned(),
                group_id: attributes[&MessageSystemAttributeName::MessageGroupId].clone(),
                deduplication_id: attributes[&MessageSystemAttributeName::MessageDeduplicationId].clone(),
            });
        }
    }
    messages
}

/// A message's key: its job id when the body is a job or a result that has one, else the body.
fn key(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["job_id"].as_str().map(str::to_owned))
        .unwrap_or(body.to_owned())
}

/// README (FIFO queues): every send to a FIFO queue carries a message group (a dead letter keeps
/// the original message's, a result's is its account or `rootwarden-no-account`) and, as its
/// deduplication id, the intake message id, so a send repeated after a crash is dropped by SQS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_and_dead_letters_carry_their_group_and_the_intake_message_id_as_deduplication_id() {
    let local = LocalAws::start();
    let seed = local.seed_with(2, 0, 0, &["--fifo"]);
    let account = seed.accounts()[0].clone();
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;
    // job id or body -> the intake message id SQS gave it.
    let mut intake_ids = BTreeMap::new();
    let grouped = job("grouped", &account, "IAMAuditRootUserCredentials", json!({}));
    intake_ids.insert("grouped".to_owned(), queues.send(&grouped).await);
    let invalid = job("invalid", &account, "IAMAuditRootUserCredentials", json!({"bucket": "nope"}));
    intake_ids.insert("invalid".to_owned(), queues.send(&invalid).await);
    // Posted in message group `none` (see Queues::send): it names no account.
    intake_ids.insert("not a job".to_owned(), queues.send("not a job").await);

    let results = receive_fifo(&queues.sqs, &seed.queue("results"), 3).await;
    let results: BTreeMap<String, (Value, FifoMessage)> = results
        .into_iter()
        .map(|m| {
            let result: Value = serde_json::from_str(&m.body).unwrap();
            let key = result["job_id"].as_str().unwrap_or("not a job").to_owned();
            (key, (result, m))
        })
        .collect();
    assert_eq!(results.keys().collect::<Vec<_>>(), ["grouped", "invalid", "not a job"], "one result each");
    assert_eq!(results["grouped"].1.group_id, account);
    assert_eq!(results["invalid"].1.group_id, account);
    let (salvaged, unnamed) = &results["not a job"];
    assert!(salvaged["reason"].as_str().unwrap().contains("not a v1 job"), "{salvaged}");
    assert_eq!(unnamed.group_id, "rootwarden-no-account", "a result naming no account");
    for (key, (result, message)) in &results {
        assert_eq!(result["message_id"], intake_ids[key].as_str(), "{key}: the result names its intake message");
        assert_eq!(message.deduplication_id, intake_ids[key], "{key}: a result is deduplicated by its intake message id");
    }

    let dead: BTreeMap<String, FifoMessage> = receive_fifo(&queues.sqs, &seed.queue("dead_letter"), 2)
        .await
        .into_iter()
        .map(|m| (key(&m.body), m))
        .collect();
    assert_eq!(dead.keys().collect::<Vec<_>>(), ["invalid", "not a job"]);
    assert_eq!(dead["invalid"].group_id, account);
    assert_eq!(dead["not a job"].group_id, "none", "a dead letter keeps the message's own group");
    assert_eq!(dead["invalid"].body, invalid, "the original body");
    for (key, message) in &dead {
        assert_eq!(message.deduplication_id, intake_ids[key], "{key}: a dead letter is deduplicated by its intake message id");
    }
    daemon.stop().await;
}

/// Waits (bounded by `WAIT`) until `condition` holds, leaving the runtime's threads to the daemon.
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !condition() {
        assert!(start.elapsed() < WAIT, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// README (FIFO queues): "a job backing off after a transient failure holds back its account's
/// later jobs until it is done", and (the account is the message group) no other account's.
///
/// Job A fails transiently (its first AWS call, GetBucketPolicy, answers ServiceUnavailable) for
/// as long as the fault is in place, and the fault is removed only once the other account's job
/// has its result and A has failed twice: so A backs off while everything else could run, and
/// comes back at least once with its account's jobs handed back with it. One job of A's account
/// is posted with A (the daemon receives both in one batch), another while A backs off. Both
/// must start only after A has ended, in order, and succeed; the other account's job (received
/// in the same batch) must end while A still backs off, on its first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_backing_off_holds_back_its_accounts_later_jobs_but_no_other_accounts() {
    let local = LocalAws::start();
    let seed = local.seed_with(3, 1, 0, &["--fifo"]);
    let (bucket, account) = seed.locked_buckets()[0].clone();
    let other = seed.accounts().into_iter().find(|a| *a != account).unwrap();
    let queues = Queues::new(&local, &seed).await;
    // A backs off as often as the machine's pace makes it: neither SQS's redrive policy nor the
    // daemon's last attempt may end it before the fault is removed.
    let intake = seed.queue("intake");
    let redrive = queues
        .sqs
        .get_queue_attributes()
        .queue_url(&intake)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy]
        .clone();
    let mut redrive: Value = serde_json::from_str(&redrive).unwrap();
    redrive["maxReceiveCount"] = json!(1000);
    queues
        .sqs
        .set_queue_attributes()
        .queue_url(&intake)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .unwrap();
    let mut config = config(&local, &seed);
    config.intake.max_receive_count = 1000;

    local.fault(json!({"service": "s3", "operation": "GetBucketPolicy", "error": "ServiceUnavailable"}));
    let fired = || local.get("/_localaws/faults")["faults"][0]["fired"].as_u64().unwrap();
    queues.send(&job("backing-off", &account, "S3UnlockBucketPolicy", json!({"bucket": bucket}))).await;
    queues.send(&job("same-account-with-it", &account, "IAMAuditRootUserCredentials", json!({}))).await;
    queues.send(&job("other-account", &other, "IAMAuditRootUserCredentials", json!({}))).await;
    let daemon = RunningDaemon::start(config).await;
    wait_until("A's first attempt failed", || fired() >= 1).await;
    queues.send(&job("same-account-after", &account, "IAMAuditRootUserCredentials", json!({}))).await;

    // The other account's job ends while A cannot (the fault is removed only then): it was not
    // held back.
    let mut results = queues.results(1, WAIT).await;
    assert!(results.iter().any(|r| r["job_id"] == "other-account"), "the other account's job ended first: {results:?}");
    // A comes back at least once with the jobs of its account handed back with it.
    wait_until("A's second attempt failed", || fired() >= 2).await;
    let backoffs_before_removal = fired();
    local.delete("/_localaws/faults");
    results.extend(queues.results_until_quiet(4usize.saturating_sub(results.len()), Duration::from_secs(3), WAIT).await);
    daemon.stop().await;

    let by_job: BTreeMap<&str, &Value> = results.iter().map(|r| (r["job_id"].as_str().unwrap(), r)).collect();
    assert_eq!(results.len(), 4, "one result per job: {results:#?}");
    assert!(by_job.values().all(|r| r["outcome"] == "succeeded"), "{results:#?}");
    let (a, with_it, after, other) =
        (by_job["backing-off"], by_job["same-account-with-it"], by_job["same-account-after"], by_job["other-account"]);
    let at = |r: &Value, field: &str| r[field].as_str().unwrap().to_owned();
    assert!(a["attempt"].as_u64().unwrap() >= 3, "A backed off twice first: {a}");
    println!("A failed {backoffs_before_removal} times before the fault was removed; A ended on attempt {}", a["attempt"]);
    // RFC 3339 in UTC with milliseconds: text order is time order.
    assert!(
        at(with_it, "started_at") >= at(a, "finished_at"),
        "the job received with A started after A ended:\n{a}\n{with_it}"
    );
    assert!(
        at(after, "started_at") >= at(a, "finished_at"),
        "the job posted during A's backoff started after A ended:\n{a}\n{after}"
    );
    assert!(
        at(after, "started_at") >= at(with_it, "finished_at"),
        "one account's jobs in the order posted:\n{with_it}\n{after}"
    );
    // Its result was read while A could not end (the fault was still in place), so it ended
    // first; held back like A's account's jobs, it would not have ended before A at all.
    assert_eq!(other["attempt"], 1, "the other account's job ran at once: {other}");
    assert!(at(other, "finished_at") < at(a, "finished_at"), "the other account's job ended before A:\n{other}\n{a}");
    assert_eq!(queues.intake_depth().await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sweep_of_fifty_accounts_through_fifo_queues() {
    let local = LocalAws::start();
    let seed = local.seed_with(50, 0, 0, &["--fifo"]);
    let daemon = RunningDaemon::start(config(&local, &seed)).await;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fifo-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut options =
        SweepOptions::new(Task::DeleteRootUserCredentials, seed.queue("intake"), seed.queue("results"), dir.join("delete.csv"));
    options.credentials = Some(vec![CredentialKind::AccessKeys]);
    options.ticket = Some("CHG-FIFO".into());
    options.idle_timeout = Duration::from_secs(60);
    let outcome = sweep::run(&clients(&local).await, options, CancellationToken::new()).await.unwrap();
    assert!(outcome.complete, "{:?}", outcome.stopped);
    assert_eq!((outcome.summary.targets, outcome.summary.failed), (50, 0));
    for account in seed.accounts() {
        assert!(local.root_state(&account)["access_keys"].as_array().unwrap().is_empty(), "{account}");
    }
    daemon.stop().await;
}

/// A port free now, for a replica's telemetry listener (read by the test).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn jobs_in_flight(port: u16) -> f64 {
    let text = ureq::get(format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok());
    text.map_or(0.0, |text| metric_value(&text, "rootwarden_jobs_in_flight"))
}

/// Three replicas on one intake queue take `JOBS_PER_ACCOUNT` password-recovery jobs for each
/// account (a task whose calls are strictly one after the other, so calls in flight at once for
/// one account mean jobs running at once; every root-session call slowed); one replica is
/// SIGKILLed with jobs in flight. Returns the results (job id
/// to results) and the most root-session calls ever in flight at once for one account.
async fn three_replicas(fifo: bool) -> (HashMap<String, Vec<Value>>, u64) {
    const ACCOUNTS: usize = 6;
    const JOBS_PER_ACCOUNT: usize = 8;
    let local = LocalAws::start();
    let seed = if fifo { local.seed_with(ACCOUNTS, 0, 0, &["--fifo"]) } else { local.seed(ACCOUNTS, 0, 0) };
    let queues = Queues::new(&local, &seed).await;
    for round in 0..JOBS_PER_ACCOUNT {
        for account in seed.accounts() {
            queues
                .send(&job(&format!("recover-{account}-{round}"), &account, "IAMCreateRootUserPassword", json!({})))
                .await;
        }
    }
    local.fault(json!({"service": "iam", "operation": "*", "latency_ms": 100}));
    local.delete("/_localaws/root-concurrency");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut replicas: Vec<DaemonProcess> = ports
        .iter()
        .map(|port| {
            DaemonProcess::start(
                &config_toml(&local, &seed, "")
                    .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""))
                    .replace("wait_time = \"1s\"", "wait_time = \"1s\"\nvisibility_timeout = \"3s\""),
                &[],
            )
        })
        .collect();
    // SIGKILL whichever replica first holds two jobs (on a FIFO queue one replica may hold every
    // account's group for a while, so which one cannot be chosen in advance).
    let start = std::time::Instant::now();
    let victim = 'found: loop {
        for (index, port) in ports.iter().enumerate() {
            if jobs_in_flight(*port) >= 2.0 {
                break 'found index;
            }
        }
        assert!(start.elapsed() < WAIT, "no replica took two jobs:\n{}", replicas[0].log());
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut killed = replicas.remove(victim);
    killed.signal("KILL");
    killed.wait(Duration::from_secs(10));

    let total = ACCOUNTS * JOBS_PER_ACCOUNT;
    let results = queues.results_until_quiet(total, Duration::from_secs(5), WAIT).await;
    let mut by_job: HashMap<String, Vec<Value>> = HashMap::new();
    for result in results {
        by_job.entry(result["job_id"].as_str().unwrap().to_owned()).or_default().push(result);
    }
    let concurrency = local.get("/_localaws/root-concurrency")["max_in_flight"].clone();
    let most = concurrency.as_object().unwrap().values().map(|v| v.as_u64().unwrap()).max().unwrap();
    assert_eq!(by_job.len(), total, "nothing lost: every job has a result");
    assert!(by_job.values().flatten().all(|r| r["outcome"] == "succeeded" || r["outcome"] == "no_change"));
    assert!(
        by_job.values().flatten().any(|r| r["attempt"].as_u64().unwrap() >= 2),
        "the killed replica's jobs were delivered again"
    );
    let duplicates: usize = by_job.values().map(|r| r.len() - 1).sum();
    println!(
        "fifo={fifo}: {total} posted, {} results, {duplicates} duplicates, {} lost; most calls in flight for one account: {most}",
        by_job.values().map(Vec::len).sum::<usize>(),
        total - by_job.len()
    );
    for replica in &replicas {
        replica.signal("TERM");
    }
    for replica in &mut replicas {
        assert!(replica.wait(Duration::from_secs(60)).success());
    }
    assert_eq!(queues.intake_depth().await, (0, 0));
    (by_job, most)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_a_fifo_queue_never_run_one_accounts_jobs_at_once() {
    let (by_job, most) = three_replicas(true).await;
    assert_eq!(most, 1, "no two jobs of one account ran at the same time across the replicas");
    assert!(
        by_job.values().all(|r| r.len() == 1),
        "the FIFO results queue deduplicates a result sent again after the kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_a_standard_queue_lose_nothing_but_may_overlap_an_account() {
    // The control for the test above: without FIFO groups, the per-replica limit alone lets
    // replicas work on one account at once, which the environment's count sees.
    let (_, most) = three_replicas(false).await;
    assert!(most >= 2, "the concurrency count detects overlapping jobs (most {most})");
}

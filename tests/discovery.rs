//! Discovery sweeps for the two unlock tasks over 50 member accounts holding a known set of
//! locked buckets and queues in two regions, among open ones: a dry-run discovery reports exactly
//! the locked ones (with one root session per account), `--apply` unlocks exactly those by
//! removing their locking statements, and a second discovery finds none.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use rootwarden::aws::Clients;
use rootwarden::job::Task;
use rootwarden::sweep::{self, SweepOptions, SweepOutcome};
use serde_json::{Value, json};
use support::*;
use tokio_util::sync::CancellationToken;

const ACCOUNTS: usize = 50;
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
const WAIT: Duration = Duration::from_secs(60);

/// (account, resource, region, locking statements) as the report's columns hold them.
type Row = (String, String, String, String);

fn report_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("discovery-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn statement(sid: &str, effect: &str, action: &str, condition: Option<Value>) -> Value {
    let mut statement = json!({"Sid": sid, "Effect": effect, "Principal": "*", "Action": action, "Resource": "*"});
    if let Some(condition) = condition {
        statement["Condition"] = condition;
    }
    statement
}

fn policy(statements: Vec<Value>) -> String {
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

fn partner(action: &str) -> Value {
    json!({"Sid": "Partner", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": action, "Resource": "*"})
}

/// What a resource's policy is: locked (by which statements), open with a policy, or none.
fn kind_of(index: usize, service: &str) -> (Option<String>, Vec<&'static str>) {
    let all = format!("{service}:*");
    let tls = statement("TlsOnly", "Deny", &all, Some(json!({"Bool": {"aws:SecureTransport": "false"}})));
    let vpce = statement("OnlyVpce", "Deny", &all, Some(json!({"StringNotEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}})));
    let ip = statement("OfficeOnly", "Deny", &all, Some(json!({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}})));
    match index % 9 {
        0 => (
            Some(policy(vec![partner(&format!("{service}:Get*")), statement("DenyAll", "Deny", &all, None)])),
            vec!["DenyAll"],
        ),
        4 => (Some(policy(vec![tls.clone(), vpce, ip])), vec!["OnlyVpce", "OfficeOnly"]),
        1 | 5 => (Some(policy(vec![tls, partner(&format!("{service}:Get*"))])), vec![]),
        _ => (None, vec![]),
    }
}

/// Creates two buckets and two queues per account (one of each per region) and returns the
/// locked ones as report rows.
fn make_resources(local: &LocalAws, seed: &Seed) -> (BTreeSet<Row>, BTreeSet<Row>) {
    let (mut buckets, mut queues) = (Vec::new(), Vec::new());
    let (mut locked_buckets, mut locked_queues) = (BTreeSet::new(), BTreeSet::new());
    for (a, account) in seed.accounts().iter().enumerate() {
        for (r, region) in REGIONS.iter().enumerate() {
            let (bucket_policy, locking) = kind_of(a * 2 + r, "s3");
            let name = format!("disc-{a}-{region}");
            if !locking.is_empty() {
                locked_buckets.insert((account.clone(), name.clone(), region.to_string(), locking.join(";")));
            }
            buckets.push(json!({"account_id": account, "name": name, "region": region, "policy": bucket_policy}));
            let (queue_policy, locking) = kind_of(a * 2 + r + 3, "sqs");
            queues.push(json!({"account_id": account, "name": format!("disc-{a}"), "region": region, "policy": queue_policy}));
            if !locking.is_empty() {
                locked_queues.insert((account.clone(), format!("disc-{a}"), region.to_string(), locking.join(";")));
            }
        }
    }
    let made = local.post("/_localaws/resources", json!({"buckets": buckets, "queues": queues}));
    // The report names a queue by URL: map the names to what the environment made.
    let urls: Vec<(String, String, String)> = made["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["account_id"].as_str().unwrap().into(),
                q["region"].as_str().unwrap().into(),
                q["url"].as_str().unwrap().into(),
            )
        })
        .collect();
    let locked_queues = locked_queues
        .into_iter()
        .map(|(account, _, region, locking)| {
            let url = urls.iter().find(|(a, r, _)| *a == account && *r == region).unwrap().2.clone();
            (account, url, region, locking)
        })
        .collect();
    (locked_buckets, locked_queues)
}

async fn discover(clients: &Clients, seed: &Seed, task: Task, name: &str, apply: bool) -> SweepOutcome {
    let report = report_dir(name).join("report");
    let mut options = SweepOptions::new(task, seed.queue("intake"), seed.queue("results"), report);
    options.idle_timeout = Duration::from_secs(60);
    options.sweep_id = Some(name.into());
    options.apply = apply;
    options.ticket = apply.then(|| "CHG-7".into());
    if task == Task::SqsUnlockQueuePolicy {
        options.regions = Some(REGIONS.iter().map(|r| r.to_string()).collect());
    }
    let outcome = sweep::run(clients, options, CancellationToken::new()).await.unwrap();
    assert!(outcome.complete, "{:?}", outcome.stopped);
    assert_eq!(outcome.summary.failed, 0, "{:?}", outcome.summary);
    outcome
}

/// The report's rows naming a resource, and their outcomes.
fn found(outcome: &SweepOutcome) -> (BTreeSet<Row>, BTreeSet<String>) {
    let mut reader = csv::Reader::from_path(&outcome.paths.csv).unwrap();
    // The columns as README's Discovery section names them, in its order.
    let columns =
        ["AccountId", "AccountName", "Resource", "Region", "LockingStatements", "Outcome", "Reason", "ErrorCode", "JobId"];
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), columns);
    let (mut rows, mut outcomes) = (BTreeSet::new(), BTreeSet::new());
    for record in reader.records() {
        let record = record.unwrap();
        if record[2].is_empty() {
            assert_eq!(&record[5], "no_change", "an account with nothing locked: {record:?}");
            continue;
        }
        rows.insert((record[0].into(), record[2].into(), record[3].into(), record[4].into()));
        outcomes.insert(record[5].to_owned());
    }
    (rows, outcomes)
}

fn locked_gauge(daemon: &RunningDaemon, task: Task) -> f64 {
    let prefix = "rootwarden_locked_resources{account_id=";
    let text = daemon.metrics.render();
    text.lines()
        .filter(|line| line.starts_with(prefix) && line.contains(&format!("task=\"{task}\"")))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_finds_exactly_the_locked_buckets_and_queues_and_apply_unlocks_exactly_those() {
    let local = LocalAws::start();
    let seed = local.seed(ACCOUNTS, 0, 0);
    let (locked_buckets, locked_queues) = make_resources(&local, &seed);
    assert!(locked_buckets.len() >= 10 && locked_queues.len() >= 10, "the set is worth finding");
    let clients = management_clients(&local).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    for (task, locked) in [(Task::S3UnlockBucketPolicy, &locked_buckets), (Task::SqsUnlockQueuePolicy, &locked_queues)] {
        let calls = local.assume_root_calls().len();
        let dry = discover(&clients, &seed, task, &format!("{task}-dry"), false).await;
        assert_eq!(local.assume_root_calls().len() - calls, ACCOUNTS, "one root session per account");
        let (rows, outcomes) = found(&dry);
        assert_eq!(&rows, locked, "{task}: exactly the locked resources, with their locking statements");
        assert_eq!(outcomes, BTreeSet::from(["dry_run".to_owned()]));
        let counts = dry.summary.discovery.clone().unwrap();
        assert_eq!((counts.inspected, counts.locked, counts.unlocked), (ACCOUNTS * 2, locked.len(), 0), "{counts:?}");
        assert_eq!(locked_gauge(&daemon, task), locked.len() as f64);

        let applied = discover(&clients, &seed, task, &format!("{task}-apply"), true).await;
        let (rows, outcomes) = found(&applied);
        assert_eq!(&rows, locked, "{task}: --apply unlocks exactly what was found");
        assert_eq!(outcomes, BTreeSet::from(["succeeded".to_owned()]));
        assert_eq!(locked_gauge(&daemon, task), 0.0);

        let again = discover(&clients, &seed, task, &format!("{task}-again"), false).await;
        assert_eq!(found(&again).0, BTreeSet::new(), "{task}: a second discovery finds none");
    }
    assert_policies_kept_what_was_not_locking(&local, &locked_buckets, &locked_queues).await;
    daemon.stop().await;
}

/// After the unlock, a locked resource keeps its other statements; an open one is untouched.
async fn assert_policies_kept_what_was_not_locking(
    local: &LocalAws,
    locked_buckets: &BTreeSet<Row>,
    locked_queues: &BTreeSet<Row>,
) {
    let sids = |text: &str| -> Vec<String> {
        let policy: Value = serde_json::from_str(text).unwrap();
        policy["Statement"].as_array().unwrap().iter().map(|s| s["Sid"].as_str().unwrap().to_owned()).collect()
    };
    let (account, bucket, region, _) = locked_buckets.iter().next().unwrap();
    let member = member_clients(local, account).await;
    let s3_config = aws_sdk_s3::config::Builder::from(&member.sdk)
        .force_path_style(true)
        .region(aws_sdk_s3::config::Region::new(region.clone()));
    let s3 = aws_sdk_s3::Client::from_conf(s3_config.build());
    let kept = s3.get_bucket_policy().bucket(bucket).send().await.unwrap();
    let kept = sids(kept.policy().unwrap());
    assert!(kept == ["Partner"] || kept == ["TlsOnly"], "only the locking statements went: {kept:?}");

    let (account, url, region, _) = locked_queues.iter().next().unwrap();
    let member = member_clients(local, account).await;
    let sqs_config = aws_sdk_sqs::config::Builder::from(&member.sdk).region(aws_sdk_sqs::config::Region::new(region.clone()));
    let sqs = aws_sdk_sqs::Client::from_conf(sqs_config.build());
    let output = sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::Policy).send().await.unwrap();
    let kept = sids(output.attributes().unwrap().get(&QueueAttributeName::Policy).unwrap());
    assert!(kept == ["Partner"] || kept == ["TlsOnly"], "only the locking statements went: {kept:?}");
}

/// One account with three locked buckets, discovered and unlocked with faults injected.
async fn three_locked_buckets(local: &LocalAws, seed: &Seed) -> String {
    let account = seed.accounts()[0].clone();
    let buckets: Vec<Value> = (0..3)
        .map(|i| json!({"account_id": account, "name": format!("faulty-{i}"), "region": "us-east-1", "policy": kind_of(0, "s3").0}))
        .collect();
    local.post("/_localaws/resources", json!({"buckets": buckets}));
    account
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_error_retries_the_whole_discovery_but_an_unlock_error_stays_with_its_bucket() {
    let local = LocalAws::start();
    let seed = local.seed(2, 0, 0);
    let account = three_locked_buckets(&local, &seed).await;
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;
    let discover =
        |id: &str, dry_run: bool| job(id, &account, "S3UnlockBucketPolicy", json!({"discover": true, "dry_run": dry_run}));

    // A transient read error: nothing has changed yet, so the job comes back and starts afresh.
    local.fault(
        json!({"service": "s3", "operation": "GetBucketPolicy", "error": "ServiceUnavailable", "status": 503, "count": 1}),
    );
    queues.send(&discover("read-transient", true)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!((result["outcome"].as_str(), result["attempt"].as_u64()), (Some("dry_run"), Some(2)), "{result}");
    assert_eq!(result["findings"]["locked"].as_array().unwrap().len(), 3);

    // A permanent read error is the bucket's: listed among the errors, the others still found.
    local.fault(json!({"service": "s3", "operation": "GetBucketPolicy", "error": "AccessDenied", "status": 403, "count": 1}));
    queues.send(&discover("read-denied", true)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    let findings = &result["findings"];
    assert_eq!((result["outcome"].as_str(), result["attempt"].as_u64()), (Some("dry_run"), Some(1)), "{result}");
    assert_eq!((findings["inspected"].as_u64(), findings["locked"].as_array().unwrap().len()), (Some(3), 2), "{result}");
    assert_eq!(findings["errors"][0]["error_code"], "AccessDenied", "{result}");
    assert_eq!(result["reason"], "the policy of 1 resource(s) could not be read (see findings.errors)");

    // An error while unlocking stays with its bucket, even a transient one: a rerun would not see
    // the policies already changed, and their previous_policy would be lost.
    local.fault(
        json!({"service": "s3", "operation": "PutBucketPolicy", "error": "ServiceUnavailable", "status": 503, "count": 1}),
    );
    queues.send(&discover("apply", false)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!((result["outcome"].as_str(), result["attempt"].as_u64()), (Some("succeeded"), Some(1)), "{result}");
    let locked = result["findings"]["locked"].as_array().unwrap();
    let outcomes: Vec<&str> = locked.iter().map(|entry| entry["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "succeeded").count(), 2, "{result}");
    assert_eq!(outcomes.iter().filter(|o| **o == "failed").count(), 1, "{result}");
    assert!(locked.iter().all(|entry| entry["previous_policy"].as_str().is_some_and(|p| p.contains("DenyAll"))));
    assert_eq!(result["findings"]["left_locked"], 1);
    assert_eq!(result["reason"], "1 of 3 locked resource(s) could not be unlocked (see findings.locked)");
    let gauge = format!("rootwarden_locked_resources{{account_id=\"{account}\",task=\"S3UnlockBucketPolicy\"}}");
    assert_eq!(daemon.metric(&gauge), 1.0);

    // The next discovery finds the one left, and unlocks it.
    queues.send(&discover("apply-again", false)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(result["findings"]["locked"].as_array().unwrap().len(), 1, "{result}");
    assert_eq!((result["findings"]["left_locked"].as_u64(), result["reason"].as_str()), (Some(0), None));
    daemon.stop().await;
}

/// A locked policy of about 5 KiB: a partner grant over many prefixes, and `DenyAll`.
fn big_locked_policy(bucket: &str) -> String {
    let prefixes: Vec<String> = (0..150).map(|k| format!("arn:aws:s3:::{bucket}/tenant-{k:03}/*")).collect();
    let grant = json!({"Sid": "Partner", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
        "Action": "s3:GetObject", "Resource": prefixes});
    policy(vec![grant, statement("DenyAll", "Deny", "s3:*", None)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previous_policies_too_many_for_one_result_are_unlocked_over_several_discoveries_and_none_is_lost() {
    const BUCKETS: usize = 24;
    let local = LocalAws::start();
    let seed = local.seed(1, 0, 0);
    let account = seed.accounts()[0].clone();
    let originals: std::collections::BTreeMap<String, String> =
        (0..BUCKETS).map(|i| format!("big-{i:02}")).map(|name| (name.clone(), big_locked_policy(&name))).collect();
    let buckets: Vec<Value> = originals
        .iter()
        .map(|(name, policy)| json!({"account_id": account, "name": name, "region": "us-east-1", "policy": policy}))
        .collect();
    local.post("/_localaws/resources", json!({"buckets": buckets}));
    let previous_bytes: usize = originals.values().map(String::len).sum();
    assert!(previous_bytes > rootwarden::outcome::MAX_FINDINGS_BYTES, "the previous policies alone exceed a result");
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;
    let discover =
        |id: &str, dry_run: bool| job(id, &account, "S3UnlockBucketPolicy", json!({"discover": true, "dry_run": dry_run}));

    // A dry run lists every locked bucket, whole: the policies that do not fit are left out.
    queues.send(&discover("big-dry", true)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    let locked = result["findings"]["locked"].as_array().unwrap_or_else(|| panic!("locked listed: {result}"));
    assert_eq!(locked.len(), BUCKETS, "{result}");
    assert!(locked.iter().all(|entry| entry["locking_statements"] == json!(["DenyAll"]) && entry["outcome"] == "dry_run"));
    assert!(locked.iter().any(|entry| entry["policies_omitted"] == true), "some policies cannot fit");

    // Applied: a bucket is unlocked only when its previous policy fits in the result; the rest
    // are left for the next discovery, so every changed policy's previous text is in a result.
    let mut unlocked = std::collections::BTreeMap::new();
    for round in 0..4 {
        queues.send(&discover(&format!("big-apply-{round}"), false)).await;
        let result = queues.results(1, WAIT).await.remove(0);
        assert_eq!(result["outcome"], "succeeded", "{result}");
        let findings = &result["findings"];
        let locked = findings["locked"].as_array().unwrap_or_else(|| panic!("locked listed: {result}"));
        assert_eq!(locked.len(), BUCKETS - unlocked.len(), "{result}");
        let deferred = locked.iter().filter(|entry| entry["outcome"] == "deferred").count();
        assert_eq!(findings["left_locked"].as_u64(), Some(deferred as u64), "{result}");
        for entry in locked.iter().filter(|entry| entry["outcome"] == "succeeded") {
            let bucket = entry["bucket"].as_str().unwrap().to_owned();
            let previous: Value = serde_json::from_str(entry["previous_policy"].as_str().unwrap()).unwrap();
            let original: Value = serde_json::from_str(&originals[&bucket]).unwrap();
            assert_eq!(previous, original, "{bucket}: the previous policy, whole");
            assert!(unlocked.insert(bucket, round).is_none(), "unlocked once");
        }
        if deferred == 0 {
            assert_eq!(result["reason"], Value::Null, "{result}");
            break;
        }
        assert!(round == 0 || deferred < BUCKETS, "each round unlocks some");
        let reason = result["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("{deferred} of {} locked resource(s) were left for the next discovery", locked.len())),
            "{reason}"
        );
    }
    assert_eq!(unlocked.len(), BUCKETS, "every bucket unlocked, in more than one round: {unlocked:?}");
    assert!(unlocked.values().any(|round| *round > 0));

    queues.send(&discover("big-again", true)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(result["findings"]["locked"], json!([]), "{result}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_buckets_past_what_a_result_can_list_are_counted_in_unlisted() {
    const BUCKETS: usize = 1200;
    let local = LocalAws::start();
    let seed = local.seed(1, 0, 0);
    let account = seed.accounts()[0].clone();
    let locked = policy(vec![statement("DenyAll", "Deny", "s3:*", None)]);
    let buckets: Vec<Value> = (0..BUCKETS)
        .map(|i| json!({"account_id": account, "name": format!("many-{i:04}"), "region": "us-east-1", "policy": locked}))
        .collect();
    local.post("/_localaws/resources", json!({"buckets": buckets}));
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    queues
        .send(&job("many-dry", &account, "S3UnlockBucketPolicy", json!({"discover": true, "dry_run": true})))
        .await;
    let result = queues.results(1, WAIT).await.remove(0);
    let findings = &result["findings"];
    let listed = findings["locked"].as_array().unwrap_or_else(|| panic!("locked listed: {result}")).len();
    let unlisted = findings["unlisted"]["locked"].as_u64().unwrap() as usize;
    assert!(listed > 0 && unlisted > 0, "{listed} listed, {unlisted} unlisted");
    assert_eq!(listed + unlisted, BUCKETS, "every locked bucket listed or counted");
    assert_eq!(findings["left_locked"].as_u64(), Some(BUCKETS as u64));
    assert!(
        result["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("{unlisted} resource(s) found are counted but not listed"))
    );
    daemon.stop().await;
}

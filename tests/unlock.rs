//! The break-glass loop for one bucket or queue, end to end against the local AWS environment:
//! a precise unlock removes only the statements it names and puts the rest back unchanged; a
//! restore puts back an earlier result's `previous_policy`; a restore that would lock everyone
//! out, and every malformed combination of the unlock fields, is refused before any root
//! session.

mod support;

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(60);

/// The four statements: a cross-account allow, a TLS-only deny, a VPC-endpoint deny that
/// locks everyone out, and a statement without `Sid`.
fn bucket_policy(bucket: &str) -> Value {
    let resources = json!([format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")]);
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "PartnerRead", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
             "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": resources},
            {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": resources,
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Sid": "OnlyThroughVpce", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": resources,
             "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}},
            {"Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject",
             "Resource": format!("arn:aws:s3:::{bucket}/*"),
             "Condition": {"StringEquals": {"AWS:SourceArn": "arn:aws:cloudfront::111122223333:distribution/E1"}}}
        ]
    })
}

/// The same four kinds of statement for a queue.
fn queue_policy(queue_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "PartnerSend", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
             "Action": "sqs:SendMessage", "Resource": queue_arn},
            {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": queue_arn,
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Sid": "OnlyFromOrg", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sqs:*", "Resource": queue_arn,
             "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": "o-exampleorgid"}}},
            {"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
             "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:111122223333:t"}}}
        ]
    })
}

fn without(policy: &Value, removed: &[usize]) -> Value {
    let mut kept = policy.clone();
    let statements = policy["Statement"].as_array().unwrap().iter().enumerate();
    kept["Statement"] = statements.filter(|(i, _)| !removed.contains(i)).map(|(_, s)| s.clone()).collect();
    kept
}

fn parsed(text: &Value) -> Value {
    serde_json::from_str(text.as_str().expect("a policy text")).unwrap()
}

/// A member account's S3 as its administrator (path-style, as the local endpoint needs).
async fn member_s3(local: &LocalAws, account: &str) -> aws_sdk_s3::Client {
    let clients = member_clients(local, account).await;
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&clients.sdk).force_path_style(true).build())
}

async fn bucket_policy_now(s3: &aws_sdk_s3::Client, bucket: &str) -> Option<Value> {
    match s3.get_bucket_policy().bucket(bucket).send().await {
        Ok(output) => Some(serde_json::from_str(output.policy().unwrap()).unwrap()),
        Err(_) => None,
    }
}

async fn queue_policy_now(sqs: &aws_sdk_sqs::Client, url: &str) -> Option<Value> {
    let output = sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::Policy).send().await.unwrap();
    let text = output.attributes().and_then(|a| a.get(&QueueAttributeName::Policy)).filter(|p| !p.is_empty())?;
    Some(serde_json::from_str(text).unwrap())
}

fn classifications(result: &Value) -> Vec<(String, String)> {
    let statements = result["findings"]["statements"].as_array().unwrap_or_else(|| panic!("no statements: {result}"));
    statements
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_owned(), s["classification"].as_str().unwrap().to_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_precise_bucket_unlock_removes_only_the_named_statements() {
    let local = LocalAws::start();
    let seed = local.seed(2, 0, 0);
    let account = seed.accounts()[0].clone();
    let bucket = format!("precise-{:x}", rand_id() as u32);
    let s3 = member_s3(&local, &account).await;
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let policy = bucket_policy(&bucket);
    s3.put_bucket_policy().bucket(&bucket).policy(policy.to_string()).send().await.unwrap();
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    // A dry run classifies and changes nothing.
    let remove = json!({"bucket": bucket, "remove_statements": ["OnlyThroughVpce", "#3"]});
    let mut dry = remove.clone();
    dry["dry_run"] = json!(true);
    queues.send(&job("precise-dry", &account, "S3UnlockBucketPolicy", dry)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(result["outcome"], "dry_run", "{result}");
    let expected =
        [("PartnerRead", "allows"), ("TlsOnly", "denies_some"), ("OnlyThroughVpce", "locks_out_everyone"), ("#3", "allows")];
    assert_eq!(classifications(&result), pairs(&expected));
    assert_eq!(parsed(&result["findings"]["new_policy"]), without(&policy, &[2, 3]), "what it would put back");
    assert_eq!(bucket_policy_now(&s3, &bucket).await, Some(policy.clone()), "a dry run changes nothing");

    queues.send(&job("precise-1", &account, "S3UnlockBucketPolicy", remove)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["findings"]["change"], "remove_statements");
    assert_eq!(parsed(&result["findings"]["previous_policy"]), policy);
    let kept = without(&policy, &[2, 3]);
    assert_eq!(bucket_policy_now(&s3, &bucket).await, Some(kept.clone()), "the rest is put back unchanged, in order");
    assert_eq!(parsed(&result["findings"]["new_policy"]), kept);

    // A statement that is not there: failed, naming it, nothing changed, dead-lettered.
    let unknown = json!({"bucket": bucket, "remove_statements": ["TlsOnly", "NoSuchSid"]});
    queues.send(&job("precise-unknown", &account, "S3UnlockBucketPolicy", unknown)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(
        (result["outcome"].as_str(), result["error_code"].as_str()),
        (Some("failed"), Some("unlock.unknown_statement"))
    );
    assert!(result["reason"].as_str().unwrap().contains("NoSuchSid"), "{result}");
    assert_eq!(bucket_policy_now(&s3, &bucket).await, Some(kept), "nothing changed");
    assert_eq!(queues.dead_letters(1, WAIT).await.len(), 1);

    // Removing every statement that is left deletes the policy, as a whole unlock does.
    let all = json!({"bucket": bucket, "remove_statements": ["PartnerRead", "TlsOnly"]});
    queues.send(&job("precise-all", &account, "S3UnlockBucketPolicy", all)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["findings"]["new_policy"], Value::Null);
    assert_eq!(bucket_policy_now(&s3, &bucket).await, None);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_precise_queue_unlock_removes_only_the_named_statements() {
    let local = LocalAws::start();
    let seed = local.seed(2, 0, 0);
    let account = seed.accounts()[0].clone();
    let sqs = member_clients(&local, &account).await.sqs;
    let url = sqs.create_queue().queue_name("precise-queue").send().await.unwrap().queue_url.unwrap();
    let attributes = sqs.get_queue_attributes().queue_url(&url).attribute_names(QueueAttributeName::QueueArn).send().await;
    let arn = attributes.unwrap().attributes.unwrap().remove(&QueueAttributeName::QueueArn).unwrap();
    let policy = queue_policy(&arn);
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .unwrap();
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    let remove = json!({"queue_url": url, "remove_statements": ["OnlyFromOrg", "#3"]});
    queues.send(&job("precise-q", &account, "SQSUnlockQueuePolicy", remove)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(result["outcome"], "succeeded", "{result}");
    let expected =
        [("PartnerSend", "allows"), ("TlsOnly", "denies_some"), ("OnlyFromOrg", "locks_out_everyone"), ("#3", "allows")];
    assert_eq!(classifications(&result), pairs(&expected));
    assert_eq!(queue_policy_now(&sqs, &url).await, Some(without(&policy, &[2, 3])));
    daemon.stop().await;
}

/// A member account whose only bucket or queue is in eu-west-1 (the daemon's region is
/// us-east-1), and a daemon: `resource` makes the `/_localaws/resources` body for the account.
async fn far_from_the_daemon(resource: impl FnOnce(&str) -> Value) -> (LocalAws, String, Queues, RunningDaemon) {
    let local = LocalAws::start();
    let seed = local.seed(2, 0, 0);
    let account = seed.accounts()[0].clone();
    local.post("/_localaws/resources", resource(&account));
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;
    (local, account, queues, daemon)
}

/// A result's outcome and the region its findings say the change was made in.
fn outcome_and_region(result: &Value) -> (Option<&str>, Option<&str>) {
    (result["outcome"].as_str(), result["findings"]["region"].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_is_unlocked_in_the_region_its_url_names_without_a_region_field() {
    let policy = |account: &str| queue_policy(&format!("arn:aws:sqs:eu-west-1:{account}:far-queue"));
    let (local, account, queues, daemon) = far_from_the_daemon(|account| {
        json!({"queues": [{"account_id": account, "name": "far-queue", "region": "eu-west-1", "policy": policy(account).to_string()}]})
    })
    .await;

    // The URL as AWS writes it names the queue's region; the daemon's own is us-east-1.
    let url = format!("https://sqs.eu-west-1.amazonaws.com/{account}/far-queue");
    let remove = json!({"queue_url": url, "remove_statements": ["OnlyFromOrg"]});
    queues.send(&job("far-q", &account, "SQSUnlockQueuePolicy", remove)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(outcome_and_region(&result), (Some("succeeded"), Some("eu-west-1")), "{result}");
    let member = member_clients(&local, &account).await;
    let config = aws_sdk_sqs::config::Builder::from(&member.sdk).region(aws_sdk_sqs::config::Region::new("eu-west-1"));
    let sqs = aws_sdk_sqs::Client::from_conf(config.build());
    let local_url = sqs.get_queue_url().queue_name("far-queue").send().await.unwrap().queue_url.unwrap();
    assert_eq!(queue_policy_now(&sqs, &local_url).await, Some(without(&policy(&account), &[2])));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_in_another_region_is_unlocked_where_s3_says_it_is() {
    let bucket = format!("far-{:x}", rand_id() as u32);
    let policy = bucket_policy(&bucket);
    let (local, account, queues, daemon) = far_from_the_daemon(|account| {
        json!({"buckets": [{"account_id": account, "name": bucket, "region": "eu-west-1", "policy": policy.to_string()}]})
    })
    .await;

    // No region in the job: the daemon's is us-east-1, and S3 answers 301 with the bucket's.
    let remove = json!({"bucket": bucket, "remove_statements": ["OnlyThroughVpce"]});
    queues.send(&job("far-b", &account, "S3UnlockBucketPolicy", remove)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(outcome_and_region(&result), (Some("succeeded"), Some("eu-west-1")), "{result}");
    let member = member_clients(&local, &account).await;
    let config = aws_sdk_s3::config::Builder::from(&member.sdk)
        .force_path_style(true)
        .region(aws_sdk_s3::config::Region::new("eu-west-1"));
    let s3 = aws_sdk_s3::Client::from_conf(config.build());
    assert_eq!(bucket_policy_now(&s3, &bucket).await, Some(without(&policy, &[2])));

    // A region given and wrong is followed the same way: a bucket's name is one bucket.
    let wrong = json!({"bucket": bucket, "region": "ap-south-1", "dry_run": true});
    queues.send(&job("far-b-wrong", &account, "S3UnlockBucketPolicy", wrong)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(outcome_and_region(&result), (Some("dry_run"), Some("eu-west-1")), "{result}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_puts_back_a_previous_policy_and_a_lockout_is_refused_without_a_root_session() {
    let local = LocalAws::start();
    let seed = local.seed(2, 0, 0);
    let account = seed.accounts()[0].clone();
    let bucket = format!("restore-{:x}", rand_id() as u32);
    let s3 = member_s3(&local, &account).await;
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    // The policy as it was before someone added the lock-out statement.
    let good = without(&bucket_policy(&bucket), &[2]);
    s3.put_bucket_policy().bucket(&bucket).policy(good.to_string()).send().await.unwrap();
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    queues.send(&job("whole-unlock", &account, "S3UnlockBucketPolicy", json!({"bucket": bucket}))).await;
    let unlocked = queues.results(1, WAIT).await.remove(0);
    assert_eq!(unlocked["outcome"], "succeeded", "{unlocked}");
    assert_eq!(bucket_policy_now(&s3, &bucket).await, None);

    // The earlier result's previous_policy, as it stands (a string), is what is put back.
    let previous = unlocked["findings"]["previous_policy"].clone();
    let restore = json!({"bucket": bucket, "restore_policy": previous});
    queues.send(&job("restore-1", &account, "S3UnlockBucketPolicy", restore.clone())).await;
    let restored = queues.results(1, WAIT).await.remove(0);
    assert_eq!(restored["outcome"], "succeeded", "{restored}");
    assert_eq!(restored["findings"]["change"], "restore_policy");
    assert_eq!(bucket_policy_now(&s3, &bucket).await, Some(good.clone()));
    queues.send(&job("restore-1", &account, "S3UnlockBucketPolicy", restore)).await;
    assert_eq!(queues.results(1, WAIT).await[0]["outcome"], "no_change", "the policy is already the one to restore");

    // A policy that locks everyone out is refused before any root session.
    let calls = local.assume_root_calls().len();
    let lockout = json!({"bucket": bucket, "restore_policy": bucket_policy(&bucket)});
    queues.send(&job("restore-lockout", &account, "S3UnlockBucketPolicy", lockout)).await;
    let refused = queues.results(1, WAIT).await.remove(0);
    assert_eq!((refused["outcome"].as_str(), refused["error_code"].as_str()), (Some("rejected"), Some("job.invalid")));
    let reason = refused["reason"].as_str().unwrap();
    assert!(reason.contains("OnlyThroughVpce would lock everyone out") && reason.contains("allow_lockout"), "{reason}");
    assert_eq!(local.assume_root_calls().len(), calls, "no AssumeRoot for a refused restore");
    assert_eq!(bucket_policy_now(&s3, &bucket).await, Some(good), "nothing changed");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_unlock_fields_are_each_rejected_with_a_clear_reason() {
    let local = LocalAws::start();
    let seed = local.seed(2, 0, 0);
    let account = seed.accounts()[0].clone();
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;
    let tls_only = without(&bucket_policy("b-1"), &[0, 2, 3]);
    let cases = [
        ("S3UnlockBucketPolicy", json!({"bucket": "b-1", "restore_policy": "{not json"}), "restore_policy"),
        (
            "S3UnlockBucketPolicy",
            json!({"bucket": "b-1", "restore_policy": {"Statement": []}}),
            "restore_policy: `Version`",
        ),
        (
            "S3UnlockBucketPolicy",
            json!({"bucket": "b-1", "remove_statements": ["TlsOnly"], "restore_policy": tls_only}),
            "give one or the other, not both",
        ),
        (
            "IAMAuditRootUserCredentials",
            json!({"remove_statements": ["TlsOnly"]}),
            "remove_statements: allowed only for S3UnlockBucketPolicy and SQSUnlockQueuePolicy",
        ),
        (
            "S3UnlockBucketPolicy",
            json!({"bucket": "b-1", "allow_lockout": true}),
            "allow_lockout: only with restore_policy",
        ),
        ("SQSUnlockQueuePolicy", json!({"discover": true, "regions": ["nowhere"]}), "`nowhere` is not an AWS region"),
        (
            "SQSUnlockQueuePolicy",
            json!({"queue_url": format!("https://sqs.eu-west-1.amazonaws.com/{account}/q"), "region": "us-east-1"}),
            "region: `us-east-1`, but the queue URL names eu-west-1",
        ),
    ];
    for (index, (task, fields, _)) in cases.iter().enumerate() {
        queues.send(&job(&format!("bad-{index}"), &account, task, fields.clone())).await;
    }
    let mut results = queues.results(cases.len(), WAIT).await;
    results.sort_by_key(|r| r["job_id"].as_str().unwrap().to_owned());
    for ((_, _, expected), result) in cases.iter().zip(&results) {
        assert_eq!(result["outcome"], "rejected", "{result}");
        assert!(result["reason"].as_str().unwrap().contains(expected), "{expected:?} not in {result}");
    }
    assert!(local.assume_root_calls().is_empty(), "no root session for an invalid job");
    assert_eq!(queues.dead_letters(cases.len(), WAIT).await.len(), cases.len());
    daemon.stop().await;
}

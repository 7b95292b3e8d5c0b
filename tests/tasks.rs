//! End to end, per task: a job posted to the intake queue of the local AWS environment ends in
//! the right result, the right acknowledgement, and the right change of the account's state.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_unlock_removes_the_policy_keeps_a_copy_and_a_redelivery_is_no_change() {
    let local = LocalAws::start();
    let seed = local.seed(2, 1, 0);
    let (bucket, account) = seed.locked_buckets()[0].clone();
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    queues.send(&job("unlock-1", &account, "S3UnlockBucketPolicy", json!({"bucket": bucket}))).await;
    let result = &queues.results(1, WAIT).await[0];
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert!(result["findings"]["previous_policy"].as_str().unwrap().contains("DenyEveryone"));
    assert!(result["root_session_access_key_id"].as_str().unwrap().starts_with("ASIA"));
    assert_eq!(result["attempt"], 1);

    // The same job again (a redelivered duplicate) finds nothing to do.
    queues.send(&job("unlock-1", &account, "S3UnlockBucketPolicy", json!({"bucket": bucket}))).await;
    let again = &queues.results(1, WAIT).await[0];
    assert_eq!(again["outcome"], "no_change", "{again}");
    let metrics = daemon.metrics.clone();
    daemon.stop().await;
    // Deletes follow results; after the drain both messages are acknowledged.
    assert_eq!(metric_value(&metrics.render(), "rootwarden_messages_deleted_total"), 2.0);
    assert_eq!(queues.intake_depth().await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_reports_every_root_credential_as_the_environment_holds_it() {
    let local = LocalAws::start();
    let seed = local.seed(3, 0, 0);
    let account = seed.account_with_password();
    let state = local.set_root_state(
        &account,
        json!({"password": true, "password_last_used": "2026-01-02T03:04:05Z", "access_keys": 2, "mfa_devices": 1, "signing_certificates": 1}),
    );
    let clean = seed.account_without_credentials();
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    // A clean account costs what AWS's sample scripts spend: the summary and the user, no list
    // of a credential kind the summary reports absent.
    let before = local.call_counts();
    queues.send(&job("audit-2", &clean, "IAMAuditRootUserCredentials", json!({}))).await;
    let mut results = queues.results(1, WAIT).await;
    let made = |operation: &str| local.calls(operation) - before[operation].as_u64().unwrap_or(0);
    assert_eq!((made("iam.GetAccountSummary"), made("iam.GetUser")), (1, 1));
    for skipped in ["iam.GetLoginProfile", "iam.ListAccessKeys", "iam.ListMFADevices", "iam.ListSigningCertificates"] {
        assert_eq!(made(skipped), 0, "{skipped}");
    }

    queues.send(&job("audit-1", &account, "IAMAuditRootUserCredentials", json!({}))).await;
    results.extend(queues.results(1, WAIT).await);
    results.sort_by_key(|r| r["job_id"].as_str().unwrap().to_owned());
    let findings = &results[0]["findings"];
    assert_eq!(results[0]["outcome"], "succeeded", "{}", results[0]);
    assert_eq!(findings["password_present"], true);
    assert_eq!(findings["password_last_used"], "2026-01-02T03:04:05Z");
    let key_ids: Vec<_> = findings["access_keys"].as_array().unwrap().iter().map(|k| k["id"].clone()).collect();
    let state_ids: Vec<_> = state["access_keys"].as_array().unwrap().iter().map(|k| k["id"].clone()).collect();
    assert_eq!(key_ids, state_ids);
    assert_eq!(findings["mfa_devices"][0]["serial"], state["mfa_devices"][0]["serial"]);
    assert_eq!(findings["signing_certificates"][0]["id"], state["signing_certificates"][0]["id"]);
    assert_eq!(findings["account_summary"]["AccountMFAEnabled"], 1);

    let clean_findings = &results[1]["findings"];
    assert_eq!(clean_findings["password_present"], false);
    assert_eq!(clean_findings["access_keys"], json!([]));

    // The posture gauge follows the audits.
    assert_eq!(
        daemon.metric(&format!("rootwarden_root_credentials_present{{account_id=\"{account}\",credential=\"access_keys\"}}")),
        1.0
    );
    assert_eq!(
        daemon.metric(&format!("rootwarden_root_credentials_present{{account_id=\"{clean}\",credential=\"password\"}}")),
        0.0
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_exactly_the_chosen_kinds_and_deactivates_mfa() {
    let local = LocalAws::start();
    let seed = local.seed(3, 0, 0);
    let accounts = seed.accounts();
    let full = json!({"password": true, "access_keys": 2, "mfa_devices": 1, "signing_certificates": 1});
    local.set_root_state(&accounts[0], full.clone());
    local.set_root_state(&accounts[1], full);
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    let only_keys = json!({"credentials": ["access_keys", "mfa_devices"]});
    queues.send(&job("delete-1-some", &accounts[0], "IAMDeleteRootUserCredentials", only_keys)).await;
    queues.send(&job("delete-2-all", &accounts[1], "IAMDeleteRootUserCredentials", json!({}))).await;
    let mut results = queues.results(2, WAIT).await;
    results.sort_by_key(|r| r["job_id"].as_str().unwrap().to_owned());
    assert_eq!(results[0]["outcome"], "succeeded", "{}", results[0]);
    assert_eq!(results[0]["findings"]["deleted"]["access_keys"].as_array().unwrap().len(), 2);
    assert_eq!(results[0]["findings"]["deleted"]["password"], false, "password was not chosen");
    let some = local.root_state(&accounts[0]);
    assert_eq!(some["access_keys"], json!([]));
    assert_eq!(some["mfa_devices"], json!([]));
    assert!(some["login_profile"].is_object(), "the password stays: {some}");
    assert_eq!(some["signing_certificates"].as_array().unwrap().len(), 1);

    assert_eq!(results[1]["outcome"], "succeeded", "{}", results[1]);
    let all = local.root_state(&accounts[1]);
    assert!(all["login_profile"].is_null() && all["access_keys"] == json!([]), "{all}");
    assert_eq!(all["signing_certificates"], json!([]));
    assert_eq!(all["mfa_devices"], json!([]));

    // Deleting again finds nothing: a redelivered job is harmless.
    queues.send(&job("delete-2-all", &accounts[1], "IAMDeleteRootUserCredentials", json!({}))).await;
    assert_eq!(queues.results(1, WAIT).await[0]["outcome"], "no_change");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_recovery_creates_a_profile_once() {
    let local = LocalAws::start();
    let seed = local.seed(3, 0, 0);
    let account = seed.account_without_credentials();
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    queues.send(&job("recover-1", &account, "IAMCreateRootUserPassword", json!({}))).await;
    let result = &queues.results(1, WAIT).await[0];
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(local.root_state(&account)["login_profile"]["recovery_only"], true);

    queues.send(&job("recover-1", &account, "IAMCreateRootUserPassword", json!({}))).await;
    assert_eq!(queues.results(1, WAIT).await[0]["outcome"], "no_change");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_unlock_empties_the_queue_policy_and_keeps_a_copy() {
    let local = LocalAws::start();
    let seed = local.seed(2, 0, 1);
    let (queue_url, account) = seed.locked_queues()[0].clone();
    local.delete("/_localaws/call-counts");
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    queues.send(&job("unlock-q", &account, "SQSUnlockQueuePolicy", json!({"queue_url": queue_url}))).await;
    let result = &queues.results(1, WAIT).await[0];
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert!(result["findings"]["previous_policy"].as_str().unwrap().contains("DenyEveryone"));
    assert_eq!(local.call_counts()["sqs.SetQueueAttributes"], 1);

    queues.send(&job("unlock-q", &account, "SQSUnlockQueuePolicy", json!({"queue_url": queue_url}))).await;
    assert_eq!(queues.results(1, WAIT).await[0]["outcome"], "no_change");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_only_read_and_say_what_would_change() {
    let local = LocalAws::start();
    let seed = local.seed(3, 1, 0);
    let (bucket, bucket_account) = seed.locked_buckets()[0].clone();
    let account = seed.account_with_password();
    let before = local.root_state(&account);
    let queues = Queues::new(&local, &seed).await;
    let mut config = config(&local, &seed);
    config.policy.dry_run = false;
    let daemon = RunningDaemon::start(config).await;

    let dry = json!({"dry_run": true});
    queues.send(&job("dry-delete", &account, "IAMDeleteRootUserCredentials", dry.clone())).await;
    queues
        .send(&job("dry-unlock", &bucket_account, "S3UnlockBucketPolicy", json!({"bucket": bucket, "dry_run": true})))
        .await;
    let mut results = queues.results(2, WAIT).await;
    results.sort_by_key(|r| r["job_id"].as_str().unwrap().to_owned());
    assert_eq!(results[0]["outcome"], "dry_run", "{}", results[0]);
    assert_eq!(results[0]["findings"]["would_delete"]["password"], true);
    assert_eq!(results[1]["outcome"], "dry_run", "{}", results[1]);
    assert!(results[1]["findings"]["previous_policy"].as_str().unwrap().contains("DenyEveryone"));
    assert_eq!(local.root_state(&account), before, "a dry run changes nothing");
    let counts = local.call_counts();
    for write in ["iam.DeleteLoginProfile", "iam.DeleteAccessKey", "s3.DeleteBucketPolicy"] {
        assert!(counts[write].is_null(), "{write} was called in a dry run: {counts}");
    }
    daemon.stop().await;
}

//! Organization-wide sweeps against the local AWS environment with 500 member accounts in mixed
//! states: the audit report matches the environment's own root state, a delete sweep with
//! exclusions changes exactly the chosen credentials of exactly the other accounts, and an
//! interrupted sweep resumed completes with no account audited twice, and members not ACTIVE
//! (suspended, closed, closing) are left out with their state as the reason. Also the `features`
//! status and enable, and their sentences for AWS's refusals.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use rootwarden::aws::Clients;
use rootwarden::job::{CredentialKind, Task};
use rootwarden::sweep::{self, SweepOptions};
use serde_json::{Value, json};
use support::*;
use tokio_util::sync::CancellationToken;

const ACCOUNTS: usize = 500;

async fn clients(local: &LocalAws) -> Clients {
    management_clients(local).await
}

/// A fresh directory for one test's reports.
fn report_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sweep-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn options(seed: &Seed, task: Task, report: PathBuf) -> SweepOptions {
    let mut options = SweepOptions::new(task, seed.queue("intake"), seed.queue("results"), report);
    // Bounds a broken test to a minute instead of the command's five.
    options.idle_timeout = Duration::from_secs(60);
    options
}

fn ids(list: &Value, key: &str) -> String {
    list.as_array().unwrap().iter().map(|item| item[key].as_str().unwrap()).collect::<Vec<_>>().join(";")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_audit_sweep_reports_every_account_as_the_environment_holds_it() {
    let local = LocalAws::start();
    let seed = local.seed(ACCOUNTS, 0, 0);
    local.delete("/_localaws/call-counts");
    let daemon = RunningDaemon::start(config(&local, &seed)).await;
    let clients = clients(&local).await;
    // Another consumer's message on the shared results queue: the sweep must leave it there.
    clients
        .sqs
        .send_message()
        .queue_url(seed.queue("results"))
        .message_body("a result for another consumer")
        .send()
        .await
        .unwrap();
    let dir = report_dir("audit");
    let outcome =
        sweep::run(&clients, options(&seed, Task::AuditRootUserCredentials, dir.join("audit.csv")), CancellationToken::new())
            .await
            .unwrap();
    assert!(outcome.complete, "{:?}", outcome.stopped);
    assert_eq!((outcome.summary.targets, outcome.summary.succeeded, outcome.summary.failed), (ACCOUNTS, ACCOUNTS, 0));
    assert_eq!(outcome.summary.skipped, 1, "only the management account is left out");

    let rows = csv_rows(&outcome.paths.csv);
    assert_eq!(rows.len(), ACCOUNTS);
    let seeded: BTreeSet<String> = seed.accounts().into_iter().collect();
    let reported: BTreeSet<String> = rows.iter().map(|r| r["AccountId"].clone()).collect();
    assert_eq!(reported, seeded);
    let (mut with_password, mut with_keys, mut without_mfa) = (0, 0, 0);
    for row in &rows {
        let state = local.root_state(&row["AccountId"]);
        let flag = |present: bool| if present { "1" } else { "0" };
        let non_empty = |key: &str| !state[key].as_array().unwrap().is_empty();
        let account = &row["AccountId"];
        assert_eq!(row["Outcome"], "succeeded", "{account}");
        assert_eq!(row["AccountPasswordPresent"], flag(state["login_profile"].is_object()), "{account}");
        assert_eq!(row["AccountAccessKeysPresent"], flag(non_empty("access_keys")), "{account}");
        assert_eq!(row["AccountMFAEnabled"], flag(non_empty("mfa_devices")), "{account}");
        assert_eq!(row["AccountSigningCertificatesPresent"], flag(non_empty("signing_certificates")), "{account}");
        // MFADevices is the account's count (GetAccountSummary), compared with the script's in
        // report_columns.rs; the root user's is RootMFADevices.
        assert_eq!(row["RootMFADevices"], state["mfa_devices"].as_array().unwrap().len().to_string(), "{account}");
        // As the AWS CLI v2 prints PasswordLastUsed, `None` when there is none.
        let last_used = state["login_profile"]["password_last_used"].as_str().map(|t| t.replace('Z', "+00:00"));
        assert_eq!(row["PasswordLastUsedTime"], last_used.as_deref().unwrap_or("None"), "{account}");
        assert_eq!(row["AccessKeyIds"], ids(&state["access_keys"], "id"), "{account}");
        assert_eq!(row["SigningCertificateIds"], ids(&state["signing_certificates"], "id"), "{account}");
        assert_eq!(row["MFADeviceSerials"], ids(&state["mfa_devices"], "serial"), "{account}");
        assert!(row["AccountName"].starts_with("member-"), "{row:?}");
        with_password += usize::from(state["login_profile"].is_object());
        with_keys += usize::from(non_empty("access_keys"));
        without_mfa += usize::from(!non_empty("mfa_devices"));
    }
    // The seed is mixed: every column has both answers.
    assert!(with_keys > 0 && with_keys < ACCOUNTS && with_password > 0 && with_password < ACCOUNTS);
    assert_eq!(
        (outcome.summary.with_password, outcome.summary.with_access_keys, outcome.summary.without_mfa),
        (with_password, with_keys, without_mfa)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&outcome.paths.json).unwrap()).unwrap();
    assert_eq!(report["accounts"].as_array().unwrap().len(), ACCOUNTS);
    assert_eq!(report["skipped"][0]["reason"], "management account");
    assert_eq!(report["complete"], true);

    // The daemon's audits updated the posture gauge for every account.
    let account = &rows[0]["AccountId"];
    let present = local.root_state(account)["login_profile"].is_object();
    let gauge = format!("rootwarden_root_credentials_present{{account_id=\"{account}\",credential=\"password\"}}");
    assert_eq!(daemon.metric(&gauge), f64::from(u8::from(present)));
    assert_eq!(local.call_counts()["iam.GetAccountSummary"], json!(ACCOUNTS), "one audit per account");

    // The other consumer's message is visible again, and no receive was left behind to hide one.
    let counts = clients
        .sqs
        .get_queue_attributes()
        .queue_url(seed.queue("results"))
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let count = |name: QueueAttributeName| counts.attributes().unwrap()[&name].clone();
    assert_eq!(count(QueueAttributeName::ApproximateNumberOfMessages), "1");
    assert_eq!(count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible), "0");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_sweep_with_exclusions_changes_exactly_the_chosen_credentials_of_the_others() {
    let local = LocalAws::start();
    let seed = local.seed(ACCOUNTS, 0, 0);
    let accounts = seed.accounts();
    let clients = clients(&local).await;
    // Every account has something of each kind, so "exactly" is tested everywhere.
    let full = json!({"password": true, "access_keys": 1, "mfa_devices": 1, "signing_certificates": 1});
    for account in accounts.iter().step_by(7) {
        local.set_root_state(account, full.clone());
    }
    // Three accounts excluded by id, three by an OU two levels deep.
    let excluded_ids: Vec<String> = accounts.iter().step_by(7).take(3).cloned().collect();
    let root = clients.organizations.list_roots().send().await.unwrap().roots()[0].id().unwrap().to_owned();
    let create_ou = |parent: String, name: &'static str| {
        let organizations = clients.organizations.clone();
        async move {
            let output = organizations.create_organizational_unit().parent_id(parent).name(name).send().await.unwrap();
            output.organizational_unit().unwrap().id().unwrap().to_owned()
        }
    };
    let sandbox = create_ou(root.clone(), "sandbox").await;
    let nested = create_ou(sandbox.clone(), "sandbox-nested").await;
    let in_ou: Vec<String> = accounts.iter().step_by(7).skip(3).take(3).cloned().collect();
    for (account, parent) in in_ou.iter().zip([&sandbox, &nested, &nested]) {
        let request =
            clients.organizations.move_account().account_id(account).source_parent_id(&root).destination_parent_id(parent);
        request.send().await.unwrap();
    }
    let before: BTreeMap<String, Value> = accounts.iter().map(|a| (a.clone(), local.root_state(a))).collect();

    let daemon = RunningDaemon::start(config(&local, &seed)).await;
    let mut options = options(&seed, Task::DeleteRootUserCredentials, report_dir("delete").join("delete"));
    options.credentials = Some(vec![CredentialKind::AccessKeys, CredentialKind::SigningCertificates]);
    options.selection.exclude = excluded_ids.clone();
    options.selection.exclude_ous = vec![sandbox.clone()];
    options.ticket = Some("CHG-SWEEP-1".into());
    let outcome = sweep::run(&clients, options, CancellationToken::new()).await.unwrap();
    assert!(outcome.complete, "{:?}", outcome.stopped);
    assert_eq!(outcome.summary.targets, ACCOUNTS - 6);
    assert_eq!(outcome.summary.failed, 0);
    let skipped = serde_json::from_slice::<Value>(&std::fs::read(&outcome.paths.json).unwrap()).unwrap()["skipped"].clone();
    let reasons: BTreeMap<String, String> = skipped
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_owned(), s["reason"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(reasons[&in_ou[2]], format!("in excluded OU {sandbox}"));
    assert_eq!(reasons[&excluded_ids[0]], "excluded");

    let excluded: BTreeSet<&String> = excluded_ids.iter().chain(&in_ou).collect();
    let rows = csv_rows(&outcome.paths.csv);
    assert_eq!(rows.len(), ACCOUNTS - 6);
    for account in &accounts {
        let after = local.root_state(account);
        let was = &before[account];
        if excluded.contains(account) {
            assert_eq!(&after, was, "excluded account {account} must not change");
            continue;
        }
        assert_eq!(after["access_keys"], json!([]), "{account}");
        assert_eq!(after["signing_certificates"], json!([]), "{account}");
        assert_eq!(after["login_profile"], was["login_profile"], "the password was not chosen: {account}");
        assert_eq!(after["mfa_devices"], was["mfa_devices"], "MFA was not chosen: {account}");
        let row = rows.iter().find(|r| &r["AccountId"] == account).unwrap();
        let had_some =
            !was["access_keys"].as_array().unwrap().is_empty() || !was["signing_certificates"].as_array().unwrap().is_empty();
        assert_eq!(row["Outcome"], if had_some { "succeeded" } else { "no_change" }, "{row:?}");
        assert_eq!(row["AccessKeyIds"], ids(&was["access_keys"], "id"), "{row:?}");
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_sweep_resumed_reports_every_account_once_and_audits_none_twice() {
    let local = LocalAws::start();
    let seed = local.seed(ACCOUNTS, 0, 0);
    local.delete("/_localaws/call-counts");
    local.delete("/_localaws/assume-root-log");
    let daemon = RunningDaemon::start(config(&local, &seed)).await;
    let clients = clients(&local).await;
    let report = report_dir("resume").join("audit");

    let mut first = options(&seed, Task::AuditRootUserCredentials, report.clone());
    first.sweep_id = Some("resume-test".into());
    first.stop_after = Some(ACCOUNTS / 2);
    // A small window: an interruption leaves few jobs in flight, and those are what the resumed
    // run must take without posting them again.
    first.max_in_flight = 50;
    let interrupted = sweep::run(&clients, first, CancellationToken::new()).await.unwrap();
    assert!(!interrupted.complete);
    assert!(interrupted.received >= ACCOUNTS / 2 && interrupted.received < ACCOUNTS, "{}", interrupted.received);
    assert!(interrupted.posted < ACCOUNTS, "the window bounds what was posted: {}", interrupted.posted);
    // Jobs were still in flight when it stopped: the resumed run must take their results.
    assert!(interrupted.posted > interrupted.received, "{} posted, {} received", interrupted.posted, interrupted.received);
    let partial = csv_rows(&interrupted.paths.csv);
    assert_eq!(partial.len(), ACCOUNTS, "a partial report still lists every target");
    assert!(partial.iter().any(|r| r["Outcome"] == "pending"));

    // Defining the same sweep again is refused: its state exists.
    let mut again = options(&seed, Task::AuditRootUserCredentials, report.clone());
    again.sweep_id = Some("resume-test".into());
    assert!(
        sweep::run(&clients, again.clone(), CancellationToken::new())
            .await
            .unwrap_err()
            .to_string()
            .contains("--resume")
    );

    let mut resumed = again;
    resumed.resume = true;
    let done = sweep::run(&clients, resumed, CancellationToken::new()).await.unwrap();
    assert!(done.complete, "{:?}", done.stopped);
    assert_eq!(interrupted.posted + done.posted, ACCOUNTS, "every job posted exactly once over both runs");
    assert_eq!(interrupted.received + done.received, ACCOUNTS);

    let rows = csv_rows(&done.paths.csv);
    let distinct: BTreeSet<&String> = rows.iter().map(|r| &r["AccountId"]).collect();
    assert_eq!((rows.len(), distinct.len()), (ACCOUNTS, ACCOUNTS));
    assert!(rows.iter().all(|r| r["Outcome"] == "succeeded"));
    assert_eq!(local.call_counts()["iam.GetAccountSummary"], json!(ACCOUNTS), "no account audited twice");
    let calls = local.assume_root_calls();
    let targets: BTreeSet<&str> = calls.iter().map(|c| c["target_principal"].as_str().unwrap()).collect();
    assert_eq!((calls.len(), targets.len()), (ACCOUNTS, ACCOUNTS), "one root session per account");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_status_and_enable_say_what_aws_refuses() {
    let local = LocalAws::start();
    let clients = clients(&local).await;
    let error = rootwarden::features::status(&clients).await.unwrap_err();
    assert!(matches!(error, rootwarden::features::FeaturesError::NoOrganization), "{error}");
    assert!(error.to_string().contains("not in an organization"));

    let seed = local.seed(2, 0, 0);
    let status = rootwarden::features::status(&clients).await.unwrap();
    assert!(status.ready(), "{status:?}");
    assert_eq!((status.trusted_access, status.feature_set.as_str()), (Some(true), "ALL"));
    assert_eq!(status.delegated_administrators, Some(vec![]));
    assert!(status.render().contains("RootSessions              enabled"), "{}", status.render());

    clients.iam.disable_organizations_root_sessions().send().await.unwrap();
    assert!(!rootwarden::features::status(&clients).await.unwrap().ready());
    let steps = rootwarden::features::enable(&clients).await.unwrap();
    assert_eq!(
        steps,
        [
            "trusted access for iam.amazonaws.com: already enabled",
            "RootCredentialsManagement: already enabled",
            "RootSessions: enabled"
        ]
    );
    assert!(rootwarden::features::status(&clients).await.unwrap().ready());

    // A member account is neither the management account nor the delegated administrator.
    let member = member_clients(&local, &seed.accounts()[0]).await;
    let error = rootwarden::features::enable(&member).await.unwrap_err();
    assert!(
        error.to_string().contains("neither the management account") || error.to_string().contains("only the management account"),
        "{error}"
    );
}

/// Clients acting in a member account through OrganizationAccountAccessRole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failed_posts_only_the_failed_accounts_again_as_a_new_attempt() {
    const FEW: usize = 12;
    const FAILING: usize = 3;
    let local = LocalAws::start();
    let seed = local.seed(FEW, 0, 0);
    // A permanent error for the first three audits: their jobs end `failed` at once.
    local.fault(json!({"service": "iam", "operation": "GetUser", "error": "AccessDenied", "count": FAILING}));
    let daemon = RunningDaemon::start(config(&local, &seed)).await;
    let clients = clients(&local).await;
    let report = report_dir("retry").join("audit");

    let mut first = options(&seed, Task::AuditRootUserCredentials, report.clone());
    first.sweep_id = Some("retry-test".into());
    let done = sweep::run(&clients, first.clone(), CancellationToken::new()).await.unwrap();
    assert!(done.complete, "a failed job is an answer: {:?}", done.stopped);
    let failed: BTreeSet<String> = csv_rows(&done.paths.csv)
        .into_iter()
        .filter(|r| r["Outcome"] == "failed")
        .map(|r| r["AccountId"].clone())
        .collect();
    assert_eq!(failed.len(), FAILING);

    // --retry-failed needs a resumed sweep.
    let mut alone = first.clone();
    alone.retry_failed = true;
    assert!(sweep::run(&clients, alone, CancellationToken::new()).await.unwrap_err().to_string().contains("--resume"));

    let audits_before = local.calls("iam.GetAccountSummary");
    let mut retry = first;
    retry.resume = true;
    retry.retry_failed = true;
    let retried = sweep::run(&clients, retry, CancellationToken::new()).await.unwrap();
    assert!(retried.complete, "{:?}", retried.stopped);
    assert_eq!((retried.posted, retried.received), (FAILING, FAILING), "only the failed accounts run again");
    let audits = local.calls("iam.GetAccountSummary") - audits_before;
    assert_eq!(audits, FAILING as u64, "the accounts that succeeded are not audited again");

    let rows = csv_rows(&retried.paths.csv);
    assert_eq!(rows.len(), FEW);
    assert!(rows.iter().all(|r| r["Outcome"] == "succeeded"), "{rows:?}");
    let state: Value = serde_json::from_str(&std::fs::read_to_string(&retried.paths.state).unwrap()).unwrap();
    for account in &failed {
        assert_eq!(state["retries"][account], 1);
        assert_eq!(state["results"][account]["job_id"], format!("sweep-retry-test-{account}-r1"));
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_stopped_by_sigterm_keeps_its_progress_and_exits_incomplete() {
    use std::io::{BufRead, BufReader};
    // No daemon answers: the sweep posts, then waits for results until it is stopped, as a
    // CronJob's deadline or an ECS stop would.
    let local = LocalAws::start();
    let seed = local.seed(5, 0, 0);
    let dir = report_dir("sigterm");
    std::fs::write(dir.join("rootwarden.toml"), config_toml(&local, &seed, "")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rootwarden"))
        .args(["--config", dir.join("rootwarden.toml").to_str().unwrap(), "sweep"])
        .args(["--task", "IAMAuditRootUserCredentials", "--report", dir.join("audit").to_str().unwrap()])
        .env("AWS_ACCESS_KEY_ID", "AKIDMANAGEMENT000001")
        .env("AWS_SECRET_ACCESS_KEY", "management-secret")
        .env_remove("AWS_PROFILE")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let banner = stderr.next().unwrap().unwrap();
    assert!(banner.starts_with("rootwarden: sweep "), "{banner}");
    // Posted: the jobs wait in the intake queue, and the state file says so.
    let intake = Queues::new(&local, &seed).await;
    let start = std::time::Instant::now();
    while intake.intake_depth().await.0 < 5 {
        assert!(start.elapsed() < Duration::from_secs(60), "the sweep posted its jobs");
    }
    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let rest: Vec<String> = stderr.map_while(Result::ok).collect();
    assert_eq!(exit.code(), Some(75), "incomplete, to be resumed: {rest:?}");
    let state: Value = serde_json::from_slice(&std::fs::read(dir.join("audit.state.json")).unwrap()).unwrap();
    assert_eq!(state["posted"].as_object().unwrap().len(), 5, "the progress was saved: {state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_targets_only_active_members_and_lists_a_suspended_one_among_the_skipped() {
    let local = LocalAws::start();
    let seed = local.seed(6, 0, 0);
    let accounts = seed.accounts();
    let clients = clients(&local).await;
    // One member suspended by AWS, one closed by the organization (State CLOSED, Status SUSPENDED).
    local.post(&format!("/_localaws/accounts/{}/state", accounts[0]), json!({"state": "SUSPENDED"}));
    clients.organizations.close_account().account_id(&accounts[1]).send().await.unwrap();
    // One closing, answered as Organizations did before `State` existed: `Status` only.
    let status_only = json!({"state": null, "status": "PENDING_CLOSURE"});
    local.post(&format!("/_localaws/accounts/{}/state", accounts[2]), status_only);
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    let report = report_dir("suspended").join("audit");
    let outcome = sweep::run(&clients, options(&seed, Task::AuditRootUserCredentials, report), CancellationToken::new())
        .await
        .unwrap();
    assert!(outcome.complete, "{:?}", outcome.stopped);
    let active: BTreeSet<String> = accounts[3..].iter().cloned().collect();
    assert_eq!((outcome.summary.targets, outcome.summary.succeeded, outcome.posted), (3, 3, 3));
    assert_eq!(outcome.summary.skipped, 4, "the management account and the three members not ACTIVE");
    let reported: BTreeSet<String> = csv_rows(&outcome.paths.csv).into_iter().map(|r| r["AccountId"].clone()).collect();
    assert_eq!(reported, active);

    let report: Value = serde_json::from_slice(&std::fs::read(&outcome.paths.json).unwrap()).unwrap();
    let skipped: BTreeMap<String, Value> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_owned(), s.clone()))
        .collect();
    assert_eq!(skipped[&accounts[0]], json!({"id": accounts[0], "name": "member-0001", "reason": "SUSPENDED"}));
    assert_eq!(skipped[&accounts[1]]["reason"], "CLOSED", "the State, which replaced the Status");
    assert_eq!(skipped[&accounts[2]]["reason"], "PENDING_CLOSURE");
    assert_eq!(skipped[MANAGEMENT_ACCOUNT]["reason"], "management account");

    let targeted: BTreeSet<String> =
        local.assume_root_calls().iter().map(|c| c["target_principal"].as_str().unwrap().to_owned()).collect();
    assert_eq!(targeted, active, "no root session for an account that is not ACTIVE");
    daemon.stop().await;
}

//! `rootwarden sweep`'s exit statuses, from the binary against the local AWS environment and a
//! daemon running in this process, as README says them: 0 when every account has a result and
//! none failed or was rejected, 1 when an account failed (a permanent AWS error) or was rejected
//! (a denied account, a missing ticket), 75 when the sweep stopped before every account had a
//! result (its idle timeout ran out with no daemon to answer), and the resume it prints then
//! completes the sweep.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

/// Bounds one run of the binary: a broken sweep fails the test instead of hanging it.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// A fresh directory for one test's configuration and reports.
fn test_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sweep-exit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What one run of `rootwarden sweep` did.
#[derive(Debug)]
struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `rootwarden --config <dir>/rootwarden.toml <args>` with the management account's
/// credentials, the configuration file alone configuring it; killed (by its PID) if it outlives
/// the deadline or the test.
async fn rootwarden(dir: &Path, args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_rootwarden"));
    command
        .arg("--config")
        .arg(dir.join("rootwarden.toml"))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "AKIDMANAGEMENT000001")
        .env("AWS_SECRET_ACCESS_KEY", "management-secret")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("ROOTWARDEN_")) {
        command.env_remove(key);
    }
    let output = tokio::time::timeout(RUN_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("rootwarden {args:?} did not exit in {RUN_DEADLINE:?}"))
        .unwrap();
    Run {
        status: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A sweep of `task` over the organization, reported to `<dir>/<report>`.
async fn sweep(dir: &Path, task: &str, report: &str, extra: &[&str]) -> Run {
    let report = dir.join(report);
    let mut args = vec!["sweep", "--task", task, "--report", report.to_str().unwrap(), "--idle-timeout", "60s"];
    args.extend_from_slice(extra);
    rootwarden(dir, &args).await
}

/// Account → outcome, from a sweep's CSV report.
fn report_outcomes(dir: &Path, report: &str) -> BTreeMap<String, String> {
    let rows = csv_rows(&dir.join(format!("{report}.csv")));
    rows.into_iter().map(|mut row| (row.remove("AccountId").unwrap(), row.remove("Outcome").unwrap())).collect()
}

/// Account → the `error_code` of its result, from a sweep's state file.
fn error_codes(dir: &Path, report: &str) -> BTreeMap<String, String> {
    let state: Value = serde_json::from_slice(&std::fs::read(dir.join(format!("{report}.state.json"))).unwrap()).unwrap();
    let results = state["results"].as_object().cloned().unwrap_or_default();
    results
        .into_iter()
        .filter_map(|(account, result)| Some((account, result["error_code"].as_str()?.to_owned())))
        .collect()
}

/// (failed or rejected, without a result yet) from the summary table the sweep prints.
fn summary(run: &Run) -> (usize, usize) {
    let row = |label: &str| -> usize {
        run.stdout
            .lines()
            .find_map(|line| line.strip_prefix(label).filter(|rest| rest.starts_with("  ")))
            .unwrap_or_else(|| panic!("no {label:?} row: {run:?}"))
            .trim()
            .parse()
            .unwrap()
    };
    (row("failed or rejected"), row("without a result yet"))
}

fn write_config(dir: &Path, local: &LocalAws, seed: &Seed) {
    std::fs::write(dir.join("rootwarden.toml"), config_toml(local, seed, "")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_where_every_account_succeeded_exits_0() {
    let local = LocalAws::start();
    let seed = local.seed(3, 0, 0);
    let dir = test_dir("complete");
    write_config(&dir, &local, &seed);
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    let run = sweep(&dir, "IAMAuditRootUserCredentials", "audit", &[]).await;
    assert_eq!(run.status, Some(0), "{run:?}");
    assert_eq!(summary(&run), (0, 0));
    assert!(!run.stderr.contains("failed or were rejected") && !run.stderr.contains("stopped"), "{run:?}");
    let outcomes = report_outcomes(&dir, "audit");
    let expected: BTreeMap<String, String> = seed.accounts().into_iter().map(|a| (a, "succeeded".to_owned())).collect();
    assert_eq!(outcomes, expected, "{run:?}");
    let report: Value = serde_json::from_slice(&std::fs::read(dir.join("audit.json")).unwrap()).unwrap();
    assert_eq!(report["complete"], true);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_where_an_account_failed_exits_1() {
    let local = LocalAws::start();
    let seed = local.seed(3, 0, 0);
    // A permanent AWS error for the first audit: its job ends `failed` at once, the others succeed.
    local.fault(json!({"service": "iam", "operation": "GetUser", "error": "AccessDenied", "count": 1}));
    let dir = test_dir("failed");
    write_config(&dir, &local, &seed);
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    let run = sweep(&dir, "IAMAuditRootUserCredentials", "audit", &[]).await;
    assert_eq!(run.status, Some(1), "{run:?}");
    assert_eq!(summary(&run), (1, 0));
    assert!(run.stderr.contains("1 account failed or was rejected; see the report"), "{run:?}");
    assert!(!run.stderr.contains("resume it"), "every account has a result: {run:?}");
    let outcomes = report_outcomes(&dir, "audit");
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert_eq!(outcomes.values().filter(|o| *o == "failed").count(), 1, "{outcomes:?}");
    let failed = outcomes.iter().find(|(_, o)| *o == "failed").unwrap().0.clone();
    assert_eq!(error_codes(&dir, "audit"), BTreeMap::from([(failed, "AccessDenied".to_owned())]));
    assert_eq!(outcomes.values().filter(|o| *o == "succeeded").count(), 2, "{outcomes:?}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_where_an_account_was_rejected_exits_1() {
    let local = LocalAws::start();
    let seed = local.seed(3, 0, 0);
    let accounts = seed.accounts();
    let dir = test_dir("rejected");
    write_config(&dir, &local, &seed);
    let mut config = config(&local, &seed);
    config.policy.denied_accounts = vec![accounts[0].clone()];
    let daemon = RunningDaemon::start(config).await;

    // policy.denied_accounts: that account is rejected, the others succeed.
    let run = sweep(&dir, "IAMAuditRootUserCredentials", "audit", &[]).await;
    assert_eq!(run.status, Some(1), "{run:?}");
    assert_eq!(summary(&run), (1, 0));
    assert!(run.stderr.contains("1 account failed or was rejected; see the report"), "{run:?}");
    let outcomes = report_outcomes(&dir, "audit");
    assert_eq!(outcomes[&accounts[0]], "rejected", "{outcomes:?}");
    assert!(accounts[1..].iter().all(|a| outcomes[a] == "succeeded"), "{outcomes:?}");
    assert_eq!(error_codes(&dir, "audit"), BTreeMap::from([(accounts[0].clone(), "policy.account".to_owned())]));

    // A delete sweep without --ticket: policy.require_ticket has every job rejected, and nothing
    // is deleted.
    let root_before = local.root_state(&accounts[1]);
    let include = accounts[1..].join(",");
    let run = sweep(&dir, "IAMDeleteRootUserCredentials", "delete", &["--include", &include]).await;
    assert_eq!(run.status, Some(1), "{run:?}");
    assert_eq!(summary(&run), (2, 0));
    assert!(run.stderr.contains("2 accounts failed or were rejected; see the report"), "{run:?}");
    let outcomes = report_outcomes(&dir, "delete");
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(outcomes.values().all(|o| o == "rejected"), "{outcomes:?}");
    let codes = error_codes(&dir, "delete");
    assert_eq!(codes.values().filter(|code| *code == "policy.ticket").count(), 2, "{codes:?}");
    assert_eq!(local.root_state(&accounts[1]), root_before);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_stopped_before_every_account_had_a_result_exits_75_and_its_resume_exits_0() {
    let local = LocalAws::start();
    let seed = local.seed(3, 0, 0);
    let dir = test_dir("incomplete");
    write_config(&dir, &local, &seed);

    // No daemon answers: the jobs wait in the intake queue until the idle timeout stops the sweep.
    let report = dir.join("audit");
    let report = report.to_str().unwrap();
    let args = ["sweep", "--task", "IAMAuditRootUserCredentials", "--report", report, "--sweep-id", "exit-75"];
    let run = rootwarden(&dir, &[&args[..], &["--idle-timeout", "2s"]].concat()).await;
    assert_eq!(run.status, Some(75), "{run:?}");
    assert_eq!(summary(&run), (0, 3));
    assert!(run.stderr.contains("the sweep stopped (no result arrived for 2s)"), "{run:?}");
    let resume =
        format!("resume it with: rootwarden sweep --task IAMAuditRootUserCredentials --resume exit-75 --report {report}");
    assert!(run.stderr.contains(&resume), "{run:?}");
    let state: Value = serde_json::from_slice(&std::fs::read(dir.join("audit.state.json")).unwrap()).unwrap();
    assert_eq!(state["posted"].as_object().unwrap().len(), 3, "every job was posted: {state}");
    assert_eq!(state["results"].as_object().map_or(0, |r| r.len()), 0, "none answered: {state}");
    assert!(report_outcomes(&dir, "audit").values().all(|o| o == "pending"), "a partial report");

    // With a daemon, the resume as printed (the configuration file added) completes it.
    let daemon = RunningDaemon::start(config(&local, &seed)).await;
    let printed: Vec<&str> = resume.strip_prefix("resume it with: rootwarden ").unwrap().split(' ').collect();
    let run = rootwarden(&dir, &[&printed[..], &["--idle-timeout", "60s"]].concat()).await;
    assert_eq!(run.status, Some(0), "{run:?}");
    assert_eq!(summary(&run), (0, 0));
    let outcomes = report_outcomes(&dir, "audit");
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert!(outcomes.values().all(|o| o == "succeeded"), "{outcomes:?}");
    daemon.stop().await;
}

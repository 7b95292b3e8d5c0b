//! README, "Results and outcomes": every received message ends in exactly one result, written as
//! one JSON log line (target `rootwarden::result`, field `result`). Without a results queue
//! (`results.queue_url` is optional) that line is the only record, so the daemon runs here
//! without one: a job that succeeds, one that is rejected and a body that is not a job each leave
//! exactly one such line, whose `result` is the whole result.
//!
//! README, "Logs and traces": one span per job, whose fields (job id, task, account, outcome,
//! message id, root session access key id, trace id) are in the lines inside it. The JSON lines
//! list the spans they are in (`spans`, outermost first); the job's span is named `job`.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(60);

/// The log lines with target `rootwarden::result`, parsed.
fn result_lines(daemon: &DaemonProcess) -> Vec<Value> {
    daemon
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "rootwarden::result")
        .collect()
}

/// What one run left behind: the stopped daemon (its whole log in) and the three messages' ids.
struct Run {
    daemon: DaemonProcess,
    account: String,
    audit: String,
    invalid: String,
    not_a_job: String,
    _local: LocalAws,
}

/// Runs the binary without a results queue (`RUST_LOG` as given, else unset), posts an audit
/// that succeeds, an invalid job and a body that is not a job, waits for their three result
/// lines and stops the daemon.
async fn run_three_messages(rust_log: Option<&str>) -> Run {
    let local = LocalAws::start();
    let seed = local.seed(2, 0, 0);
    let account = seed.accounts()[0].clone();
    let with_results = config_toml(&local, &seed, "");
    let results_section = format!("[results]\nqueue_url = \"{}\"\n", seed.queue("results"));
    assert!(with_results.contains(&results_section));
    let env: Vec<(&str, &str)> = rust_log.map(|level| ("RUST_LOG", level)).into_iter().collect();
    let mut daemon = DaemonProcess::start(&with_results.replace(&results_section, ""), &env);
    let queues = Queues::new(&local, &seed).await;

    let audit = queues.send(&job("log-audit", &account, "IAMAuditRootUserCredentials", json!({}))).await;
    let invalid = queues.send(&job("log-invalid", "123", "IAMAuditRootUserCredentials", json!({}))).await;
    let not_a_job = queues.send("not a job").await;
    let start = Instant::now();
    while result_lines(&daemon).len() < 3 {
        assert!(start.elapsed() < WAIT, "{} result lines:\n{}", result_lines(&daemon).len(), daemon.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Stopped and drained: every line it will ever write for these messages is in the log.
    daemon.signal("TERM");
    assert!(daemon.wait(WAIT).success(), "{}", daemon.log());
    Run { daemon, account, audit, invalid, not_a_job, _local: local }
}

/// Each message's one result line: (message id, result).
fn results_by_message(run: &Run) -> Vec<(String, Value)> {
    let lines = result_lines(&run.daemon);
    assert_eq!(lines.len(), 3, "exactly one line per message:\n{}", run.daemon.log());
    let results: Vec<(String, Value)> = lines
        .iter()
        .map(|line| {
            let result: Value = serde_json::from_str(line["result"].as_str().expect("a `result` field holding JSON")).unwrap();
            (result["message_id"].as_str().unwrap().to_owned(), result)
        })
        .collect();
    let message_ids: BTreeSet<&str> = results.iter().map(|(id, _)| id.as_str()).collect();
    let sent = BTreeSet::from([run.audit.as_str(), run.invalid.as_str(), run.not_a_job.as_str()]);
    assert_eq!(message_ids, sent, "one result per received message, by message id");
    results
}

/// The log lines of one message: every line that names its message id, each with the fields of
/// the job span it must be inside (panics on a line outside it).
fn lines_of(run: &Run, message_id: &str) -> Vec<(Value, serde_json::Map<String, Value>)> {
    let log = run.daemon.log();
    let mut lines = Vec::new();
    for line in log.lines().filter(|line| line.contains(message_id)) {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("a JSON line: {line}"));
        let job = parsed["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|span| span["name"] == "job" && span["messaging.message.id"] == message_id))
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("a line of message {message_id} outside its job span:\n{line}"))
            .clone();
        lines.push((parsed, job));
    }
    lines
}

/// A trace id as the lines print it: 32 lowercase hex digits, not all zero.
fn assert_trace_id(value: &Value, line: &Value) -> String {
    let trace_id = value.as_str().unwrap_or_else(|| panic!("no trace_id: {line}"));
    assert!(
        trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "trace_id {trace_id:?}: {line}"
    );
    assert_ne!(trace_id, "0".repeat(32), "{line}");
    trace_id.to_owned()
}

/// The job span's fields in the lines of the succeeded audit and of the body that is not a job.
/// Each line of the audit carries its job id, task, account, message id and one trace id; the
/// result line carries the outcome and the root session's access key id too (known by then), as
/// does any line that carries a root session at all. With `other_lines`, the audit must have
/// lines besides its result (at the default level: the root session it assumed).
fn assert_job_fields_in_lines(run: &Run, results: &[(String, Value)], other_lines: bool) {
    let audit_result = &results.iter().find(|(id, _)| *id == run.audit).unwrap().1;
    let access_key_id = audit_result["root_session_access_key_id"].as_str().expect("the audit used a root session");
    let audit_lines = lines_of(run, &run.audit);
    let mut trace_ids = BTreeSet::new();
    for (line, job) in &audit_lines {
        let expected = [
            ("rootwarden.job_id", "log-audit"),
            ("rootwarden.task", "IAMAuditRootUserCredentials"),
            ("cloud.account.id", run.account.as_str()),
            ("messaging.message.id", run.audit.as_str()),
        ];
        for (key, value) in expected {
            assert_eq!(job.get(key).and_then(Value::as_str), Some(value), "{key} in the job span of {line}");
        }
        trace_ids.insert(assert_trace_id(&job["trace_id"], line));
        let sessions: Vec<&Value> = line["spans"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|span| span.get("rootwarden.root_session.access_key_id"))
            .collect();
        assert!(sessions.iter().all(|id| *id == access_key_id), "another root session in {line}");
    }
    assert_eq!(trace_ids.len(), 1, "one trace id in every line of the job: {trace_ids:?}");
    let (result_line, job) = audit_lines
        .iter()
        .find(|(line, _)| line["target"] == "rootwarden::result")
        .unwrap_or_else(|| panic!("the audit's result line is among its lines:\n{}", run.daemon.log()));
    assert_eq!(job.get("rootwarden.outcome").and_then(Value::as_str), Some("succeeded"), "{result_line}");
    assert_eq!(job.get("rootwarden.root_session.access_key_id").and_then(Value::as_str), Some(access_key_id), "{result_line}");
    if other_lines {
        assert!(audit_lines.len() > 1, "the audit has lines besides its result:\n{}", run.daemon.log());
    }

    // A body that is not a job has no job id, task or account; its line has the rest.
    let not_a_job_lines = lines_of(run, &run.not_a_job);
    assert_eq!(not_a_job_lines.len(), 1, "only its result line:\n{}", run.daemon.log());
    let (line, job) = &not_a_job_lines[0];
    assert_eq!(job.get("messaging.message.id").and_then(Value::as_str), Some(run.not_a_job.as_str()), "{line}");
    assert_eq!(job.get("rootwarden.outcome").and_then(Value::as_str), Some("rejected"), "{line}");
    let trace_id = assert_trace_id(&job["trace_id"], line);
    assert!(!trace_ids.contains(&trace_id), "each message has its own trace: {line}");
    for key in ["rootwarden.job_id", "rootwarden.task", "cloud.account.id", "rootwarden.root_session.access_key_id"] {
        assert!(job.get(key).is_none(), "{key} for a body that is not a job: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_ends_in_one_json_result_line_without_a_results_queue() {
    let run = run_three_messages(None).await;

    let results = results_by_message(&run);
    let outcome_of = |job_id: Option<&str>| {
        let (_, result) = results
            .iter()
            .find(|(_, r)| r["job_id"].as_str() == job_id)
            .unwrap_or_else(|| panic!("{job_id:?}: {results:?}"));
        assert_eq!(result["version"], 1, "{result}");
        result["outcome"].as_str().unwrap().to_owned()
    };
    assert_eq!(outcome_of(Some("log-audit")), "succeeded");
    assert_eq!(outcome_of(Some("log-invalid")), "rejected");
    assert_eq!(outcome_of(None), "rejected", "a body that is not a job has a result without job id");
    let (_, audit) = results.iter().find(|(_, r)| r["job_id"] == "log-audit").unwrap();
    assert!(audit["findings"]["password_present"].is_boolean(), "the findings are whole: {audit}");

    assert_job_fields_in_lines(&run, &results, true);
}

/// `RUST_LOG` sets which lines are written, not what they carry: with only warnings and the
/// results, the result lines are still inside their job spans, with every field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quieter_rust_log_keeps_the_job_fields_in_the_lines_it_writes() {
    let run = run_three_messages(Some("warn,rootwarden::result=info")).await;

    let results = results_by_message(&run);
    assert!(!run.daemon.log().contains("Assumed a root session."), "the info lines are filtered out");
    assert_job_fields_in_lines(&run, &results, false);
}

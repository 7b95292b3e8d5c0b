//! README, "Results and outcomes": every received message ends in exactly one result, written as
//! one JSON log line (target `rootwarden::result`, field `result`). Without a results queue
//! (`results.queue_url` is optional) that line is the only record, so the daemon runs here
//! without one: a job that succeeds, one that is rejected and a body that is not a job each leave
//! exactly one such line, whose `result` is the whole result.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_ends_in_one_json_result_line_without_a_results_queue() {
    let local = LocalAws::start();
    let seed = local.seed(2, 0, 0);
    let account = seed.accounts()[0].clone();
    let with_results = config_toml(&local, &seed, "");
    let results_section = format!("[results]\nqueue_url = \"{}\"\n", seed.queue("results"));
    assert!(with_results.contains(&results_section));
    let mut daemon = DaemonProcess::start(&with_results.replace(&results_section, ""), &[]);
    let queues = Queues::new(&local, &seed).await;

    let sent = BTreeSet::from([
        queues.send(&job("log-audit", &account, "IAMAuditRootUserCredentials", json!({}))).await,
        queues.send(&job("log-invalid", "123", "IAMAuditRootUserCredentials", json!({}))).await,
        queues.send("not a job").await,
    ]);
    let start = Instant::now();
    while result_lines(&daemon).len() < sent.len() {
        assert!(start.elapsed() < WAIT, "{} result lines:\n{}", result_lines(&daemon).len(), daemon.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Stopped and drained: every line it will ever write for these messages is in the log.
    daemon.signal("TERM");
    assert!(daemon.wait(WAIT).success(), "{}", daemon.log());

    let lines = result_lines(&daemon);
    assert_eq!(lines.len(), sent.len(), "exactly one line per message:\n{}", daemon.log());
    let results: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line["result"].as_str().expect("a `result` field holding JSON")).unwrap())
        .collect();
    let message_ids: BTreeSet<String> = results.iter().map(|r| r["message_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(message_ids, sent, "one result per received message, by message id");
    let outcome_of = |job_id: Option<&str>| {
        let result = results.iter().find(|r| r["job_id"].as_str() == job_id).unwrap_or_else(|| panic!("{job_id:?}: {results:?}"));
        assert_eq!(result["version"], 1, "{result}");
        result["outcome"].as_str().unwrap().to_owned()
    };
    assert_eq!(outcome_of(Some("log-audit")), "succeeded");
    assert_eq!(outcome_of(Some("log-invalid")), "rejected");
    assert_eq!(outcome_of(None), "rejected", "a body that is not a job has a result without job id");
    let audit = results.iter().find(|r| r["job_id"] == "log-audit").unwrap();
    assert!(audit["findings"]["password_present"].is_boolean(), "the findings are whole: {audit}");
}

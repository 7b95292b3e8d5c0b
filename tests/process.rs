//! The `rootwarden` binary as operators run it: SIGTERM drains within the grace and loses
//! nothing, SIGHUP reloads the policy, and systemd's notify protocol is spoken.

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

/// Polls the environment's request counter until `operation` reached `count`.
fn wait_for_calls(local: &LocalAws, operation: &str, count: u64) {
    let start = Instant::now();
    while local.calls(operation) < count {
        assert!(start.elapsed() < WAIT, "{operation} never reached {count}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_receiving_and_lets_running_jobs_finish() {
    let local = LocalAws::start();
    let seed = local.seed(3, 3, 0);
    let queues = Queues::new(&local, &seed).await;
    for (n, (bucket, account)) in seed.locked_buckets().into_iter().enumerate() {
        queues.send(&job(&format!("slow-{n}"), &account, "S3UnlockBucketPolicy", json!({"bucket": bucket}))).await;
    }
    local.fault(json!({"service": "s3", "operation": "GetBucketPolicy", "latency_ms": 2000}));
    // Three workers, three slow jobs: the poller waits for a free worker, not in a receive.
    let extra = "[workers]\nconcurrency = 3\n[shutdown]\ngrace = \"15s\"";
    let mut daemon = DaemonProcess::start(&config_toml(&local, &seed, extra), &[]);
    wait_for_calls(&local, "s3.GetBucketPolicy", 3);
    let receives_before = local.call_counts()["sqs.ReceiveMessage"].clone();

    let signalled = Instant::now();
    daemon.signal("TERM");
    let status = daemon.wait(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    assert!(signalled.elapsed() < Duration::from_secs(15));
    assert_eq!(local.call_counts()["sqs.ReceiveMessage"], receives_before, "no receive after the signal");
    let results = queues.results(3, WAIT).await;
    assert!(results.iter().all(|r| r["outcome"] == "succeeded"), "{results:?}");
    assert_eq!(queues.intake_depth().await, (0, 0), "nothing left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_past_the_grace_are_released_to_another_replica_at_once() {
    let local = LocalAws::start();
    let seed = local.seed(2, 2, 0);
    let queues = Queues::new(&local, &seed).await;
    for (n, (bucket, account)) in seed.locked_buckets().into_iter().enumerate() {
        queues.send(&job(&format!("stuck-{n}"), &account, "S3UnlockBucketPolicy", json!({"bucket": bucket}))).await;
    }
    local.fault(json!({"service": "s3", "operation": "GetBucketPolicy", "latency_ms": 20000, "count": 2}));
    let extra = "[workers]\nconcurrency = 2\n[shutdown]\ngrace = \"1s\"";
    let mut daemon = DaemonProcess::start(&config_toml(&local, &seed, extra), &[]);
    wait_for_calls(&local, "s3.GetBucketPolicy", 2);

    let signalled = Instant::now();
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(10)).success(), "{}", daemon.log());
    assert!(signalled.elapsed() < Duration::from_secs(5), "exit soon after the grace");
    // Visibility 0: both messages are visible again now, not after the 60 s timeout.
    assert_eq!(queues.intake_depth().await, (2, 0));
    daemon.wait_for_line("releasing the messages of unfinished jobs", WAIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cut_short_on_its_last_attempt_ends_failed_with_its_reason_not_silently_redriven() {
    let local = LocalAws::start();
    let seed = local.seed(2, 1, 0);
    let queues = Queues::new(&local, &seed).await;
    let (bucket, account) = seed.locked_buckets().remove(0);
    queues.send(&job("last-try", &account, "S3UnlockBucketPolicy", json!({"bucket": bucket}))).await;
    local.fault(json!({"service": "s3", "operation": "GetBucketPolicy", "latency_ms": 20000, "count": 1}));
    // Every receive is the last allowed attempt: handed back, the message would next be moved
    // by the queue's redrive policy, with no result and no reason.
    let config = config_toml(&local, &seed, "[shutdown]\ngrace = \"1s\"");
    let mut daemon = DaemonProcess::start(&config.replacen("[intake]\n", "[intake]\nmax_receive_count = 1\n", 1), &[]);
    wait_for_calls(&local, "s3.GetBucketPolicy", 1);

    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(15)).success(), "{}", daemon.log());
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!((result["job_id"].as_str(), result["outcome"].as_str()), (Some("last-try"), Some("failed")), "{result}");
    assert_eq!(result["error_code"], "ReleasedOnLastAttempt", "{result}");
    let dead = queues.dead_letters(1, WAIT).await;
    assert_eq!(dead[0].1, "failed", "{dead:?}");
    assert!(dead[0].2.contains("shutdown"), "the reason says why: {dead:?}");
    assert_eq!(queues.intake_depth().await, (0, 0), "ended: not handed back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_policy_and_refuses_an_invalid_one() {
    let local = LocalAws::start();
    let seed = local.seed(2, 0, 0);
    let account = seed.accounts()[0].clone();
    let queues = Queues::new(&local, &seed).await;
    let base = config_toml(&local, &seed, "");
    let daemon = DaemonProcess::start(&base, &[]);
    let path = daemon.dir.join("rootwarden.toml");

    queues.send(&job("before", &account, "IAMAuditRootUserCredentials", json!({}))).await;
    assert_eq!(queues.results(1, WAIT).await[0]["outcome"], "succeeded");

    std::fs::write(&path, format!("{base}\n[policy]\ndenied_accounts = [\"{account}\"]\n")).unwrap();
    daemon.signal("HUP");
    daemon.wait_for_line("the policy was reloaded", WAIT);
    queues.send(&job("after", &account, "IAMAuditRootUserCredentials", json!({}))).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(result["outcome"], "rejected");
    assert_eq!(result["error_code"], "policy.account");

    std::fs::write(&path, format!("{base}\n[policy]\ndenied_accounts = [\"not-an-account\"]\n")).unwrap();
    daemon.signal("HUP");
    daemon.wait_for_line("the old policy stays", WAIT);
    queues.send(&job("still-denied", &account, "IAMAuditRootUserCredentials", json!({}))).await;
    assert_eq!(queues.results(1, WAIT).await[0]["error_code"], "policy.account", "the old policy stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_speaks_the_systemd_notify_protocol() {
    let local = LocalAws::start();
    let seed = local.seed(1, 0, 0);
    let dir = std::env::temp_dir().join(format!("rootwarden-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut daemon = DaemonProcess::start(
        &config_toml(&local, &seed, ""),
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap()), ("WATCHDOG_USEC", "1000000")],
    );
    let mut received = Vec::new();
    let next = || {
        let mut buffer = [0u8; 4096];
        let n = socket.recv(&mut buffer).expect("a notification within 30 s");
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    };
    while !received.iter().any(|m: &String| m.contains("WATCHDOG=1")) {
        received.push(next());
    }
    assert!(received[0].contains("READY=1"), "READY comes first: {received:?}");
    daemon.signal("TERM");
    while !received.iter().any(|m| m.contains("STOPPING=1")) {
        received.push(next());
    }
    assert!(daemon.wait(Duration::from_secs(30)).success());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_invalid_configuration_lists_every_problem_and_exits_78() {
    let dir = std::env::temp_dir().join(format!("rootwarden-badconfig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rootwarden.toml");
    std::fs::write(&path, "[sessions]\nduration = \"1000s\"\n[workers]\nconcurency = 4\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rootwarden"))
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .env_remove("ROOTWARDEN_INTAKE__QUEUE_URL")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in ["concurency", "intake.queue_url is required"] {
        assert!(stderr.contains(expected), "{expected:?} missing from:\n{stderr}");
    }

    std::fs::write(
        &path,
        "[intake]\nqueue_url = \"https://sqs.us-east-1.amazonaws.com/111122223333/in\"\ndead_letter_queue_url = \"https://sqs.us-east-1.amazonaws.com/111122223333/dlq\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rootwarden"))
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let effective = String::from_utf8_lossy(&output.stdout);
    assert!(effective.contains("concurrency = 32") && effective.contains("[sessions]"), "{effective}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_in_flight_at_sigterm_hands_its_messages_back_at_once() {
    let local = LocalAws::start();
    let seed = local.seed(1, 0, 0);
    let queues = Queues::new(&local, &seed).await;
    let config = config_toml(&local, &seed, "").replace("wait_time = \"1s\"", "wait_time = \"5s\"");
    let mut daemon = DaemonProcess::start(&config, &[]);
    daemon.wait_for_line("rootwarden is taking jobs", WAIT);
    // Wait until the daemon's long poll is under way, then stop it and post a job that the
    // poll, still open on the environment's side, will take.
    let before = local.calls("sqs.ReceiveMessage");
    wait_for_calls(&local, "sqs.ReceiveMessage", before + 1);
    daemon.signal("TERM");
    daemon.wait_for_line("Stop signal received", WAIT);
    queues.send(&job("late", &seed.accounts()[0], "IAMAuditRootUserCredentials", json!({}))).await;
    assert!(daemon.wait(Duration::from_secs(20)).success(), "{}", daemon.log());
    // Not hidden for the 60 s visibility timeout: visible again now.
    assert_eq!(queues.intake_depth().await, (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_needs_only_the_client_keys_and_refuses_an_invalid_job() {
    let local = LocalAws::start();
    let seed = local.seed(1, 0, 0);
    let dir = std::env::temp_dir().join(format!("rootwarden-submit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("client.toml");
    // A producer's file: no dead-letter queue, which only the daemon needs.
    std::fs::write(
        &path,
        format!("[aws]\nendpoint_url = \"{}\"\n[intake]\nqueue_url = \"{}\"\n", local.endpoint, seed.queue("intake")),
    )
    .unwrap();
    let submit = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rootwarden"))
            .args(["--config", path.to_str().unwrap(), "submit"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "AKIDMANAGEMENT000001")
            .env("AWS_SECRET_ACCESS_KEY", "management-secret")
            .output()
            .unwrap()
    };
    let account = seed.accounts()[0].clone();
    let posted = submit(&[
        "--task",
        "IAMDeleteRootUserCredentials",
        "--account",
        &account,
        "--credentials",
        "access_keys,mfa_devices",
        "--ticket",
        "CHG-9",
    ]);
    assert!(posted.status.success(), "{}", String::from_utf8_lossy(&posted.stderr));
    assert!(!String::from_utf8_lossy(&posted.stdout).trim().is_empty(), "prints the message id");
    assert_eq!(Queues::new(&local, &seed).await.intake_depth().await, (1, 0));

    let invalid = submit(&["--task", "S3UnlockBucketPolicy", "--account", &account]);
    assert!(!invalid.status.success());
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("bucket: required"));
    std::fs::remove_dir_all(dir).unwrap();
}

//! What an orchestrator sees of the `rootwarden` binary: the stop signals (SIGINT drains like
//! SIGTERM, a second one exits at once with 130), `/healthz` and `/readyz` through start-up,
//! work and drain, and `rootwarden healthcheck`'s exit status.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

/// Polls `condition` every 20 ms until it holds, failing with `what` after `deadline`.
fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < deadline, "{what}: not within {deadline:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls the environment's request counter until `operation` reached `count`.
fn wait_for_calls(local: &LocalAws, operation: &str, count: u64) {
    wait_until(&format!("{operation} reaching {count} calls"), WAIT, || local.calls(operation) >= count);
}

/// Where the daemon serves its probes, from its start-up log line (it binds port 0).
fn probe_addr(daemon: &DaemonProcess) -> SocketAddr {
    let line = daemon.wait_for_line("Serving /metrics, /healthz and /readyz", WAIT);
    let fields: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("a JSON log line: {line}"));
    fields["listen"].as_str().unwrap_or_else(|| panic!("no listen field: {line}")).parse().unwrap()
}

/// The status code of `GET path`, or None when nothing answers.
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

/// `rootwarden healthcheck --url <url>`'s exit status.
fn healthcheck(url: &str) -> i32 {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rootwarden"))
        .args(["healthcheck", "--url", url])
        .env_remove("ROOTWARDEN_CONFIG")
        .output()
        .unwrap();
    output.status.code().unwrap_or_else(|| panic!("healthcheck killed by a signal: {output:?}"))
}

/// A daemon with one slow job in progress: `GetBucketPolicy` answers after `latency_ms`.
async fn daemon_with_a_slow_job(latency_ms: u64, grace: &str) -> (LocalAws, Queues, DaemonProcess) {
    let local = LocalAws::start();
    let seed = local.seed(1, 1, 0);
    let queues = Queues::new(&local, &seed).await;
    let (bucket, account) = seed.locked_buckets().remove(0);
    queues.send(&job("slow", &account, "S3UnlockBucketPolicy", json!({"bucket": bucket}))).await;
    local.fault(json!({"service": "s3", "operation": "GetBucketPolicy", "latency_ms": latency_ms, "count": 1}));
    let extra = format!("[shutdown]\ngrace = \"{grace}\"");
    let daemon = DaemonProcess::start(&config_toml(&local, &seed, &extra), &[]);
    wait_for_calls(&local, "s3.GetBucketPolicy", 1);
    (local, queues, daemon)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_stop_signal_while_draining_exits_at_once_with_130() {
    // The job would hold the drain for 20 s (the grace is 60 s).
    let (_local, queues, mut daemon) = daemon_with_a_slow_job(20_000, "60s").await;
    let addr = probe_addr(&daemon);
    assert_eq!(http_status(addr, "/readyz"), Some(200), "ready while taking jobs");

    daemon.signal("TERM");
    daemon.wait_for_line("Stop signal received", WAIT);
    // Draining: no longer ready, still alive (a liveness failure now would kill the drain).
    wait_until("/readyz answering 503 while draining", WAIT, || http_status(addr, "/readyz") == Some(503));
    assert_eq!(http_status(addr, "/healthz"), Some(200), "alive while draining");
    assert_eq!(healthcheck(&format!("http://{addr}/healthz")), 0, "healthy while draining");

    let signalled = Instant::now();
    daemon.signal("TERM");
    let status = daemon.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(130), "{status:?}\n{}", daemon.log());
    assert!(signalled.elapsed() < Duration::from_secs(5), "at once, not after the drain: {:?}", signalled.elapsed());
    daemon.wait_for_line("A second stop signal: exiting at once", WAIT);
    // Not drained: the job's message is still hidden, neither deleted nor released.
    assert_eq!(queues.intake_depth().await, (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_drains_like_sigterm_and_exits_0() {
    // The job holds the drain for 4 s, well within the grace.
    let (_local, queues, mut daemon) = daemon_with_a_slow_job(4_000, "30s").await;
    let addr = probe_addr(&daemon);

    let signalled = Instant::now();
    daemon.signal("INT");
    daemon.wait_for_line("Stop signal received", WAIT);
    let status = daemon.wait(Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    assert!(signalled.elapsed() < Duration::from_secs(30), "within the grace");
    // The job was still running at the signal and ended during the drain.
    let log = daemon.log();
    let (stop, ended) = (log.find("Stop signal received"), log.find("The job ended."));
    assert!(stop.is_some() && ended > stop, "the job ended after the signal:\n{log}");
    // The running job finished and was acknowledged before the exit.
    let results = queues.results(1, WAIT).await;
    assert_eq!(results[0]["outcome"], "succeeded", "{results:?}");
    assert_eq!(queues.intake_depth().await, (0, 0), "nothing left behind");
    // Stopped: nothing listens, and the health check says so.
    assert_eq!(http_status(addr, "/healthz"), None);
    assert_eq!(healthcheck(&format!("http://{addr}/healthz")), 1, "nothing listening is unhealthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_intake_and_dead_letter_queues_while_healthz_answers() {
    let local = LocalAws::start();
    let seed = local.seed(1, 0, 0);
    let queues = Queues::new(&local, &seed).await;
    // Queues that do not exist yet, in the management account like the seeded ones.
    let (intake, dead_letter) = (seed.queue("intake"), seed.queue("dead_letter"));
    let late_intake = intake.replace("rootwarden-intake", "late-intake");
    let late_dead_letter = dead_letter.replace("rootwarden-intake-dlq", "late-dlq");
    let config = config_toml(&local, &seed, "")
        .replace(&format!("\"{intake}\""), &format!("\"{late_intake}\""))
        .replace(&format!("\"{dead_letter}\""), &format!("\"{late_dead_letter}\""));
    assert!(config.contains(&late_intake) && config.contains(&late_dead_letter), "{config}");
    let mut daemon = DaemonProcess::start(&config, &[]);
    let addr = probe_addr(&daemon);
    let healthz = format!("http://{addr}/healthz");

    daemon.wait_for_line("The intake queue does not answer yet", WAIT);
    assert_eq!(http_status(addr, "/readyz"), Some(503), "no intake queue: not ready");
    assert_eq!(http_status(addr, "/healthz"), Some(200), "waiting for a queue is alive");
    assert_eq!(healthcheck(&healthz), 0);

    let create = |url: &str| {
        let name = url.rsplit('/').next().unwrap().to_owned();
        let sqs = queues.sqs.clone();
        async move { sqs.create_queue().queue_name(name).send().await.unwrap() }
    };
    create(&late_intake).await;
    daemon.wait_for_line("The dead-letter queue does not answer yet", WAIT);
    assert_eq!(http_status(addr, "/readyz"), Some(503), "no dead-letter queue: not ready");
    assert_eq!(http_status(addr, "/healthz"), Some(200));

    create(&late_dead_letter).await;
    wait_until("/readyz answering 200 once both queues answer", WAIT, || http_status(addr, "/readyz") == Some(200));
    daemon.wait_for_line("rootwarden is taking jobs", WAIT);
    assert_eq!(healthcheck(&healthz), 0);

    daemon.signal("TERM");
    assert!(daemon.wait(WAIT).success(), "{}", daemon.log());
}

/// Answers one request on a free port with `status_line`, as a stalled daemon's /healthz would.
fn answer_once(status_line: &'static str) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut buffer).unwrap();
            assert!(n > 0, "the request ended early: {:?}", String::from_utf8_lossy(&request));
            request.extend_from_slice(&buffer[..n]);
        }
        assert!(request.starts_with(b"GET /healthz "), "{:?}", String::from_utf8_lossy(&request));
        let body = "stalled\n";
        write!(stream, "{status_line}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).unwrap();
    });
    (addr, server)
}

#[test]
fn healthcheck_exits_1_for_a_503_and_0_for_a_200() {
    for (status_line, expected) in [("HTTP/1.1 503 Service Unavailable", 1), ("HTTP/1.1 200 OK", 0)] {
        let (addr, server) = answer_once(status_line);
        assert_eq!(healthcheck(&format!("http://{addr}/healthz")), expected, "{status_line}");
        server.join().unwrap();
    }
}

//! The dashboard against a live daemon: a real Prometheus scrapes the daemon while it runs a job
//! of every outcome, then every panel query of `dashboards/rootwarden.json` is evaluated through
//! Prometheus's HTTP API. A panel that returns nothing, or a metric the daemon does not export,
//! fails the test. Needs `prometheus` on PATH (`scripts/test` installs it).

mod support;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(60);

/// A Prometheus server scraping one target every second, stopped by its PID when dropped (also
/// when the test panics).
struct Prometheus {
    child: Child,
    dir: PathBuf,
    /// `http://127.0.0.1:<port>`
    url: String,
}

impl Prometheus {
    /// Starts Prometheus on a free port. Prometheus cannot report a port it picked itself, so a
    /// port is found by binding port 0 and releasing it; another process may take it in between,
    /// in which case Prometheus exits and the start is retried on a new port.
    fn start(target: SocketAddr) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "rootwarden-prometheus-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: rootwarden\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    \
             static_configs:\n      - targets: [\"{target}\"]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
                .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("`prometheus` is on PATH (scripts/test installs Debian's prometheus package)");
            let mut prometheus = Self { child, dir: dir.clone(), url: format!("http://127.0.0.1:{port}") };
            if prometheus.wait_ready() {
                return prometheus;
            }
            prometheus.stop();
        }
        panic!("Prometheus did not start:\n{}", std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default());
    }

    /// Waits for `/-/ready`; false if the process exited first (its port was taken) or took too long.
    fn wait_ready(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if ureq::get(format!("{}/-/ready", self.url)).call().is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Evaluates `expr` at the current time and returns `data.result`.
    fn query(&self, expr: &str) -> Vec<Value> {
        let mut response = ureq::get(format!("{}/api/v1/query", self.url))
            .query("query", expr)
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap();
        let body: Value = response.body_mut().read_json().unwrap();
        assert_eq!(body["status"], "success", "Prometheus refused {expr}: {body}");
        body["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The value of a query that returns one scalar-like sample (0 when it returns nothing).
    fn value(&self, expr: &str) -> f64 {
        self.query(expr).first().and_then(|s| s["value"][1].as_str()).map_or(0.0, |v| v.parse().unwrap())
    }

    fn stop(&mut self) {
        // SIGTERM lets Prometheus close its TSDB; SIGKILL if it does not exit soon.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One panel query, as `dashboards/panel_queries.py` prints it.
struct Panel {
    row: String,
    title: String,
    ref_id: String,
    expr: String,
}

fn panel_queries() -> Vec<Panel> {
    let output = Command::new("python3")
        .arg("dashboards/panel_queries.py")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("python3 runs dashboards/panel_queries.py");
    assert!(output.status.success(), "panel_queries.py failed: {}", String::from_utf8_lossy(&output.stderr));
    let queries: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert!(!queries.is_empty(), "the dashboard has no queries");
    let text = |q: &Value, key: &str| q[key].as_str().map_or_else(|| q[key].to_string(), str::to_owned);
    queries
        .iter()
        .map(|q| Panel { row: text(q, "row"), title: text(q, "title"), ref_id: text(q, "ref_id"), expr: text(q, "expr") })
        .collect()
}

/// The metric families in `dashboards/exported_metrics.txt`.
fn contract_families() -> Vec<String> {
    let path = format!("{}/dashboards/exported_metrics.txt", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Every sample name the exposition can contain: the families of its `# TYPE` lines, plus a
/// histogram's `_bucket`, `_sum` and `_count` series.
fn exported_series_names(exposition: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut families = BTreeSet::new();
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) = (words.next(), words.next(), words.next(), words.next()) {
            families.insert(name.to_owned());
            names.insert(name.to_owned());
            if kind == "histogram" || kind == "summary" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    (families, names)
}

/// The metric names a PromQL expression uses: identifiers starting with `rootwarden_`, and `up`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'"' {
            // Skip label values.
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':') {
                i += 1;
            }
            let word = &expr[start..i];
            if word.starts_with("rootwarden_") {
                names.insert(word.to_owned());
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Runs a blocking HTTP call without starving the in-process daemon of runtime threads.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_dashboard_panel_has_data_from_a_live_daemon() {
    let local = LocalAws::start();
    let seed = local.seed(3, 2, 0);
    let audited = seed.account_with_password();
    let buckets = seed.locked_buckets();
    let (unlock_bucket, unlock_account) = buckets[0].clone();
    let (dry_run_bucket, dry_run_account) = buckets[1].clone();
    let other_account = seed.accounts().into_iter().find(|a| *a != unlock_account).unwrap();

    let mut config = config(&local, &seed);
    config.telemetry.queue_metrics_interval = Duration::from_secs(1);
    let daemon = RunningDaemon::start(config).await;
    let prometheus = blocking(|| Prometheus::start(daemon.addr));
    let queues = Queues::new(&local, &seed).await;

    // One job of every outcome, in order so that the second unlock finds the policy gone.
    let s3 = "S3UnlockBucketPolicy";
    let jobs = [
        (job("obs-audit", &audited, "IAMAuditRootUserCredentials", json!({})), "succeeded"),
        (job("obs-unlock", &unlock_account, s3, json!({"bucket": unlock_bucket})), "succeeded"),
        (job("obs-unlock-again", &unlock_account, s3, json!({"bucket": unlock_bucket})), "no_change"),
        (job("obs-dry-run", &dry_run_account, s3, json!({"bucket": dry_run_bucket, "dry_run": true})), "dry_run"),
        // A discovery finds that bucket still locked: rootwarden_locked_resources.
        (job("obs-discover", &dry_run_account, s3, json!({"discover": true, "dry_run": true})), "dry_run"),
        ("{\"version\": 1, \"job_id\": \"obs-malformed\"".to_owned(), "rejected"),
        // The bucket belongs to another account: the root session gets AccessDenied.
        (job("obs-foreign-bucket", &other_account, s3, json!({"bucket": unlock_bucket})), "failed"),
    ];
    let mut outcomes = Vec::new();
    for (body, expected) in &jobs {
        queues.send(body).await;
        let result = queues.results(1, WAIT).await.remove(0);
        assert_eq!(result["outcome"], *expected, "{result}");
        if *expected == "failed" {
            assert_eq!(result["error_code"], "AccessDenied", "{result}");
        }
        outcomes.push(result["outcome"].as_str().unwrap().to_owned());
    }
    assert_eq!(daemon.metric("rootwarden_jobs_received_total"), jobs.len() as f64);

    // The final counters must have been scraped before the panels are read.
    let completed = jobs.len() as f64;
    let start = Instant::now();
    loop {
        let scraped = blocking(|| prometheus.value("sum(rootwarden_jobs_completed_total{job=\"rootwarden\"})"));
        if scraped == completed {
            break;
        }
        assert!(start.elapsed() < WAIT, "Prometheus saw {scraped} completed jobs, not {completed}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The daemon's exposition, as Prometheus scrapes it.
    let exposition =
        blocking(|| ureq::get(format!("http://{}/metrics", daemon.addr)).call().unwrap().body_mut().read_to_string().unwrap());
    let (families, series_names) = exported_series_names(&exposition);
    let missing_families: Vec<String> = contract_families().into_iter().filter(|f| !families.contains(f)).collect();
    assert!(
        missing_families.is_empty(),
        "dashboards/exported_metrics.txt lists families the daemon does not export: {missing_families:?}"
    );

    let panels = blocking(panel_queries);
    let unknown: Vec<String> = panels
        .iter()
        .flat_map(|p| {
            metric_names(&p.expr)
                .into_iter()
                .filter(|name| !series_names.contains(name))
                .map(move |name| format!("{} / {} ({}): {name}", p.row, p.title, p.ref_id))
        })
        .collect();
    assert!(unknown.is_empty(), "panels use metrics the daemon does not export:\n{}", unknown.join("\n"));

    // rate() over 1m needs two samples of a series in the window, and a series that first
    // appears with a job (an AWS error code, an audited account) gets its second sample a scrape
    // later: poll, bounded, until every panel has data.
    let start = Instant::now();
    let empty = loop {
        let empty: Vec<String> = panels
            .iter()
            .filter(|p| blocking(|| prometheus.query(&p.expr)).is_empty())
            .map(|p| format!("{} / {} ({}): {}", p.row, p.title, p.ref_id, p.expr))
            .collect();
        if empty.is_empty() || start.elapsed() > Duration::from_secs(20) {
            break empty;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(empty.is_empty(), "{} of {} panel queries returned no data:\n{}", empty.len(), panels.len(), empty.join("\n"));

    // Every outcome was counted, and seen by Prometheus, under its own label.
    for outcome in ["succeeded", "no_change", "dry_run", "rejected", "failed"] {
        let expr = format!("sum(rootwarden_jobs_completed_total{{outcome=\"{outcome}\"}})");
        let count = blocking(|| prometheus.value(&expr));
        let expected = outcomes.iter().filter(|o| *o == outcome).count() as f64;
        assert_eq!(count, expected, "{expr}");
    }
    let denied = blocking(|| prometheus.value("sum(rootwarden_aws_errors_total{service=\"s3\",code=\"AccessDenied\"})"));
    assert!(denied >= 1.0, "the AccessDenied of the foreign bucket is counted");

    drop(prometheus);
    daemon.stop().await;
}

/// One sample of a Prometheus text exposition: its name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: std::collections::BTreeMap<String, String>,
    value: f64,
}

/// The samples of an exposition (label values here hold no escaped quotes or commas).
fn samples(exposition: &str) -> Vec<Sample> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}').unwrap_or_else(|| panic!("not a sample: {line}"))),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or_else(|| panic!("not a label: {pair} in {line}"));
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            Sample { name: name.to_owned(), labels, value: value.parse().unwrap_or_else(|_| panic!("not a value: {line}")) }
        })
        .collect()
}

/// README, *Operations* (Metrics): "Label values are bounded sets, created at zero at start-up so
/// the first failure shows in `rate()`". Read from a daemon's /metrics before any job: every
/// bounded label set of the counters and of the job duration histogram is there at 0, with the
/// label names the README gives each family; then a first rejection moves a series that was
/// already there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bounded_label_set_is_at_zero_before_the_first_job() {
    let local = LocalAws::start();
    let seed = local.seed(1, 0, 0);
    let daemon = RunningDaemon::start(config(&local, &seed)).await;
    let scrape =
        || blocking(|| ureq::get(format!("http://{}/metrics", daemon.addr)).call().unwrap().body_mut().read_to_string().unwrap());
    let exposition = scrape();
    let samples = samples(&exposition);

    // The label names of each family, as the README lists them.
    let label_names: &[(&str, &[&str])] = &[
        ("rootwarden_jobs_completed_total", &["task", "outcome"]),
        ("rootwarden_job_duration_seconds", &["task"]),
        ("rootwarden_assume_root_requests_total", &["task", "result"]),
        ("rootwarden_aws_errors_total", &["service", "operation", "code"]),
        ("rootwarden_messages_dead_lettered_total", &["outcome"]),
        ("rootwarden_queue_messages", &["queue", "state"]),
        ("rootwarden_root_credentials_present", &["account_id", "credential"]),
        ("rootwarden_locked_resources", &["task", "account_id"]),
        ("rootwarden_jobs_rejected_total", &["check"]),
        ("rootwarden_build_info", &["version"]),
    ];
    for sample in &samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| sample.name.strip_suffix(suffix).filter(|f| *f == "rootwarden_job_duration_seconds"))
            .unwrap_or(&sample.name);
        let expected: BTreeSet<&str> = label_names
            .iter()
            .find(|(name, _)| *name == family)
            .map(|(_, labels)| labels.iter().copied())
            .into_iter()
            .flatten()
            .chain(sample.name.ends_with("_bucket").then_some("le"))
            .collect();
        let labels: BTreeSet<&str> = sample.labels.keys().map(String::as_str).collect();
        assert_eq!(labels, expected, "the label names of {family} are not those README lists: {sample:?}");
    }

    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(key, value)| s.labels.get(*key).map(String::as_str) == Some(*value))
            })
            .map(|s| s.value)
    };
    let mut missing = Vec::new();
    let mut expect_zero = |name: &str, labels: &[(&str, &str)]| match value(name, labels) {
        Some(0.0) => {}
        other => missing.push(format!("{name}{labels:?}: {other:?}")),
    };
    let tasks = [
        "IAMAuditRootUserCredentials",
        "IAMDeleteRootUserCredentials",
        "IAMCreateRootUserPassword",
        "S3UnlockBucketPolicy",
        "SQSUnlockQueuePolicy",
    ];
    // A message that names no task is counted under task "unknown".
    for task in tasks.iter().chain(&["unknown"]) {
        for outcome in ["succeeded", "no_change", "dry_run", "rejected", "failed"] {
            expect_zero("rootwarden_jobs_completed_total", &[("task", task), ("outcome", outcome)]);
        }
        expect_zero("rootwarden_job_duration_seconds_count", &[("task", task)]);
        expect_zero("rootwarden_job_duration_seconds_sum", &[("task", task)]);
    }
    for task in tasks {
        for result in ["ok", "throttled", "error"] {
            expect_zero("rootwarden_assume_root_requests_total", &[("task", task), ("result", result)]);
        }
    }
    for outcome in ["rejected", "failed"] {
        expect_zero("rootwarden_messages_dead_lettered_total", &[("outcome", outcome)]);
    }
    // The README's rejection codes, and `other` for an unknown one.
    for check in [
        "job.malformed",
        "job.invalid",
        "policy.sender",
        "policy.freshness",
        "policy.task",
        "policy.feature",
        "policy.account",
        "policy.organizational_unit",
        "policy.membership",
        "policy.organization",
        "policy.ticket",
        "policy.approval",
        "other",
    ] {
        expect_zero("rootwarden_jobs_rejected_total", &[("check", check)]);
    }
    for name in [
        "rootwarden_jobs_received_total",
        "rootwarden_jobs_in_flight",
        "rootwarden_assume_root_duration_seconds_count",
        "rootwarden_session_cache_hits_total",
        "rootwarden_session_cache_misses_total",
        "rootwarden_session_cache_entries",
        "rootwarden_messages_deleted_total",
        "rootwarden_visibility_extensions_total",
        "rootwarden_delete_failures_total",
    ] {
        expect_zero(name, &[]);
    }
    assert!(missing.is_empty(), "not at zero before the first job:\n{}\n\n{exposition}", missing.join("\n"));
    assert_eq!(value("rootwarden_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), Some(1.0));

    // The first failure moves a series that was there at zero.
    let queues = Queues::new(&local, &seed).await;
    queues.send("{\"version\": 1, \"job_id\": \"zero-malformed\"").await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(result["outcome"], "rejected", "{result}");
    let after = self::samples(&scrape());
    let after = |name: &str, labels: &[(&str, &str)]| {
        after
            .iter()
            .find(|s| s.name == name && labels.iter().all(|(key, value)| s.labels.get(*key).map(String::as_str) == Some(*value)))
            .map(|s| s.value)
    };
    assert_eq!(after("rootwarden_jobs_completed_total", &[("task", "unknown"), ("outcome", "rejected")]), Some(1.0));
    assert_eq!(after("rootwarden_jobs_rejected_total", &[("check", "job.malformed")]), Some(1.0));
    assert_eq!(after("rootwarden_job_duration_seconds_count", &[("task", "unknown")]), Some(1.0));
    daemon.stop().await;
}

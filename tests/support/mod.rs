//! Test support: the local AWS environment (a real moto server with the project's extension),
//! a seeded organization, and the daemon running in-process through its public `run`.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use rootwarden::config::Config;
use rootwarden::metrics::Metrics;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The management account moto acts as for unknown access keys.
pub const MANAGEMENT_ACCOUNT: &str = "123456789012";

/// The Python that has the pinned moto (set by the test command; the repo's venv otherwise).
fn python() -> String {
    std::env::var("LOCALAWS_PYTHON").unwrap_or_else(|_| format!("{}/.venv/bin/python", env!("CARGO_MANIFEST_DIR")))
}

/// A local AWS environment on a free port, stopped (by its PID) when dropped.
pub struct LocalAws {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
}

impl LocalAws {
    /// Starts `python -m localaws serve --port 0` and waits for its READY line.
    pub fn start() -> Self {
        let log_dir = format!("{}/target/localaws-logs", env!("CARGO_MANIFEST_DIR"));
        std::fs::create_dir_all(&log_dir).unwrap();
        let log = std::fs::File::create(format!("{log_dir}/{}.log", std::process::id())).unwrap();
        let mut child = Command::new(python())
            .args(["-m", "localaws", "serve", "--host", "127.0.0.1", "--port", "0"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the local AWS environment starts (run the README's test command to install it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let endpoint = line
            .strip_prefix("LOCALAWS_READY ")
            .unwrap_or_else(|| panic!("unexpected first line from localaws: {line:?}"))
            .trim()
            .to_owned();
        Self { child, endpoint }
    }

    /// Seeds an organization and returns what was made.
    pub fn seed(&self, accounts: usize, locked_buckets: usize, locked_queues: usize) -> Seed {
        self.seed_with(accounts, locked_buckets, locked_queues, &[])
    }

    /// Seeds with extra `localaws seed` flags (`--fifo`, `--max-message-size N`).
    pub fn seed_with(&self, accounts: usize, locked_buckets: usize, locked_queues: usize, flags: &[&str]) -> Seed {
        let output = Command::new(python())
            .args(["-m", "localaws", "seed", "--endpoint", &self.endpoint, "--json"])
            .args(["--accounts", &accounts.to_string()])
            .args(["--locked-buckets", &locked_buckets.to_string()])
            .args(["--locked-queues", &locked_queues.to_string()])
            .args(flags)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(output.status.success(), "seed failed: {}", String::from_utf8_lossy(&output.stderr));
        Seed(serde_json::from_slice(&output.stdout).unwrap())
    }

    /// GET on the control API.
    pub fn get(&self, path: &str) -> Value {
        ureq::get(format!("{}{path}", self.endpoint)).call().unwrap().body_mut().read_json().unwrap()
    }

    /// POST on the control API.
    pub fn post(&self, path: &str, body: Value) -> Value {
        ureq::post(format!("{}{path}", self.endpoint)).send_json(body).unwrap().body_mut().read_json().unwrap()
    }

    /// DELETE on the control API.
    pub fn delete(&self, path: &str) {
        ureq::delete(format!("{}{path}", self.endpoint)).call().unwrap();
    }

    /// AssumeRoot calls the environment has seen.
    pub fn assume_root_calls(&self) -> Vec<Value> {
        self.get("/_localaws/assume-root-log")["calls"].as_array().unwrap().clone()
    }

    /// Injects a fault; see localaws/README.md.
    pub fn fault(&self, spec: Value) {
        self.post("/_localaws/faults", spec);
    }

    /// Requests per `service.Operation`.
    pub fn call_counts(&self) -> Value {
        self.get("/_localaws/call-counts")["counts"].clone()
    }

    /// Requests made so far to one `service.Operation` (0 before the first).
    pub fn calls(&self, operation: &str) -> u64 {
        self.call_counts()[operation].as_u64().unwrap_or(0)
    }

    /// An account's root user state.
    pub fn root_state(&self, account_id: &str) -> Value {
        self.get(&format!("/_localaws/accounts/{account_id}/root"))
    }

    /// Replaces an account's root user state.
    pub fn set_root_state(&self, account_id: &str, state: Value) -> Value {
        self.post(&format!("/_localaws/accounts/{account_id}/root"), state)
    }
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        // SIGTERM lets it stop cleanly; wait reaps it so no process outlives the test.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        if tokio::task::block_in_place(|| wait_with_deadline(&mut self.child, Duration::from_secs(5))).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_with_deadline(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if start.elapsed() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What `localaws seed` made.
pub struct Seed(pub Value);

impl Seed {
    /// Member account ids, in creation order.
    pub fn accounts(&self) -> Vec<String> {
        self.0["accounts"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect()
    }
    /// The first member created before RootCredentialsManagement (it has a password).
    pub fn account_with_password(&self) -> String {
        self.find_account(|a| a["root"]["password"] == json!(true))
    }
    /// A member with no root credentials.
    pub fn account_without_credentials(&self) -> String {
        self.find_account(|a| a["root"]["password"] == json!(false))
    }
    fn find_account(&self, predicate: impl Fn(&Value) -> bool) -> String {
        let accounts = self.0["accounts"].as_array().unwrap();
        accounts.iter().find(|a| predicate(a)).expect("such an account was seeded")["id"].as_str().unwrap().to_owned()
    }
    /// (bucket, account) of the locked buckets.
    pub fn locked_buckets(&self) -> Vec<(String, String)> {
        self.0["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b["name"].as_str().unwrap().to_owned(), b["account_id"].as_str().unwrap().to_owned()))
            .collect()
    }
    /// (queue URL, account) of the locked queues.
    pub fn locked_queues(&self) -> Vec<(String, String)> {
        self.0["queues"]["locked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| (q["url"].as_str().unwrap().to_owned(), q["account_id"].as_str().unwrap().to_owned()))
            .collect()
    }
    /// A queue URL by role: `intake`, `dead_letter`, `results`.
    pub fn queue(&self, name: &str) -> String {
        self.0["queues"][name].as_str().unwrap().to_owned()
    }
}

/// An SDK configuration for the local environment with these credentials.
pub async fn sdk_config(local: &LocalAws, credentials: Credentials) -> aws_config::SdkConfig {
    let aws = rootwarden::config::AwsConfig { endpoint_url: Some(local.endpoint.clone()), ..Default::default() };
    rootwarden::aws::sdk_config(&aws, Some(credentials)).await
}

/// rootwarden's client set acting with these credentials in the local environment.
pub async fn clients_with(local: &LocalAws, credentials: Credentials) -> rootwarden::aws::Clients {
    rootwarden::aws::Clients::new(sdk_config(local, credentials).await)
}

/// rootwarden's client set acting as the management account.
pub async fn management_clients(local: &LocalAws) -> rootwarden::aws::Clients {
    clients_with(local, credentials()).await
}

/// Clients acting in a member account through OrganizationAccountAccessRole, as an operator
/// (and `localaws seed`) reaches member accounts.
pub async fn member_clients(local: &LocalAws, account: &str) -> rootwarden::aws::Clients {
    let management = management_clients(local).await;
    let role = format!("arn:aws:iam::{account}:role/OrganizationAccountAccessRole");
    let assumed = management.sts.assume_role().role_arn(role).role_session_name("test").send().await.unwrap();
    let c = assumed.credentials().unwrap();
    let credentials =
        Credentials::new(c.access_key_id(), c.secret_access_key(), Some(c.session_token().to_owned()), None, "member");
    clients_with(local, credentials).await
}

/// Credentials of the management account in the local environment.
pub fn credentials() -> Credentials {
    Credentials::new("AKIDMANAGEMENT000001", "management-secret", None, None, "tests")
}

/// A configuration for the local environment: fast polling, a free listener port.
pub fn config(local: &LocalAws, seed: &Seed) -> Config {
    let mut config = Config::default();
    config.aws.endpoint_url = Some(local.endpoint.clone());
    config.aws.max_attempts = 1;
    config.intake.queue_url = Some(seed.queue("intake"));
    config.intake.dead_letter_queue_url = Some(seed.queue("dead_letter"));
    config.intake.wait_time = Duration::from_secs(1);
    config.intake.backoff_base = Duration::from_secs(1);
    config.intake.backoff_max = Duration::from_secs(1);
    config.results.queue_url = Some(seed.queue("results"));
    config.telemetry.listen = "127.0.0.1:0".into();
    config.telemetry.queue_metrics_interval = Duration::from_secs(1);
    config.policy.assume_root_rate = 1000.0;
    config
}

/// The daemon running in this process.
pub struct RunningDaemon {
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    /// Its metrics registry.
    pub metrics: Metrics,
    /// Its telemetry listener.
    pub addr: std::net::SocketAddr,
    /// Its policy handle.
    pub policy: rootwarden::policy::PolicyHandle,
}

impl RunningDaemon {
    /// Starts `Daemon::run` with the test credentials.
    pub async fn start(config: Config) -> Self {
        let daemon = rootwarden::Daemon::new(config, Some(credentials())).await.unwrap();
        let shutdown = CancellationToken::new();
        let (metrics, addr, policy) = (daemon.metrics(), daemon.local_addr(), daemon.policy());
        let task = tokio::spawn(daemon.run(shutdown.clone()));
        Self { shutdown, task, metrics, addr, policy }
    }

    /// Cancels and waits for the drain.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }

    /// A counter or gauge value from the exposition (labels as `{a="b",…}`, or "" for none).
    pub fn metric(&self, name_and_labels: &str) -> f64 {
        metric_value(&self.metrics.render(), name_and_labels)
    }
}

/// Reads one sample from Prometheus text.
pub fn metric_value(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels).and_then(|rest| rest.strip_prefix(' ')))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or(0.0)
}

/// A producer's view of the queues, with the management account's credentials.
pub struct Queues {
    /// SQS client.
    pub sqs: aws_sdk_sqs::Client,
    seed_results: String,
    seed_dead_letter: String,
    seed_intake: String,
}

impl Queues {
    /// Clients for the seeded queues.
    pub async fn new(local: &LocalAws, seed: &Seed) -> Self {
        Self::with_credentials(local, seed, credentials()).await
    }

    /// Clients acting with other credentials (another sender).
    pub async fn with_credentials(local: &LocalAws, seed: &Seed, credentials: Credentials) -> Self {
        let sdk = sdk_config(local, credentials).await;
        Self {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            seed_results: seed.queue("results"),
            seed_dead_letter: seed.queue("dead_letter"),
            seed_intake: seed.queue("intake"),
        }
    }

    /// Posts a body to the intake queue.
    pub async fn send(&self, body: &str) -> String {
        self.send_with(body, None).await
    }

    /// Posts a body with an optional `traceparent` attribute. On a FIFO intake queue the
    /// message group is the body's `account_id` (or `none`) and a fresh deduplication id is used.
    pub async fn send_with(&self, body: &str, traceparent: Option<&str>) -> String {
        let mut request = self.sqs.send_message().queue_url(&self.seed_intake).message_body(body);
        if self.seed_intake.ends_with(".fifo") {
            let account = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|v| v["account_id"].as_str().map(|a| a.chars().filter(char::is_ascii_alphanumeric).take(64).collect()))
                .filter(|a: &String| !a.is_empty())
                .unwrap_or_else(|| "none".to_owned());
            let dedup = format!("{:032x}", rand_id());
            request = request.message_group_id(account).message_deduplication_id(dedup);
        }
        if let Some(traceparent) = traceparent {
            let value = MessageAttributeValue::builder().data_type("String").string_value(traceparent).build().unwrap();
            request = request.message_attributes("traceparent", value);
        }
        request.send().await.unwrap().message_id.unwrap()
    }

    /// Waits for `count` dead-lettered messages with all their message attributes.
    pub async fn dead_letters_raw(
        &self,
        count: usize,
        deadline: Duration,
    ) -> Vec<(String, std::collections::HashMap<String, MessageAttributeValue>)> {
        self.drain(&self.seed_dead_letter, count, deadline).await
    }

    /// Every message that arrives on the results queue until it has been quiet for `quiet`
    /// (after the first `expected` arrived, bounded by `deadline`): finds duplicates too.
    pub async fn results_until_quiet(&self, expected: usize, quiet: Duration, deadline: Duration) -> Vec<Value> {
        let mut results = self.results(expected, deadline).await;
        let mut idle_since = Instant::now();
        while idle_since.elapsed() < quiet {
            let more = self.results_available(&self.seed_results).await;
            if !more.is_empty() {
                idle_since = Instant::now();
            }
            results.extend(more);
        }
        results
    }

    async fn results_available(&self, queue_url: &str) -> Vec<Value> {
        self.receive_and_delete(queue_url)
            .await
            .into_iter()
            .map(|(body, _)| serde_json::from_str(&body).unwrap())
            .collect()
    }

    /// One receive (up to ten messages, a one-second long poll), each message deleted.
    async fn receive_and_delete(
        &self,
        queue_url: &str,
    ) -> Vec<(String, std::collections::HashMap<String, MessageAttributeValue>)> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        let mut received = Vec::new();
        for message in output.messages.unwrap_or_default() {
            self.sqs
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
            received.push((message.body.unwrap_or_default(), message.message_attributes.unwrap_or_default()));
        }
        received
    }

    /// Waits (long polling, bounded by `deadline`) for `count` results, deleting them.
    pub async fn results(&self, count: usize, deadline: Duration) -> Vec<Value> {
        self.drain(&self.seed_results, count, deadline)
            .await
            .into_iter()
            .map(|(body, _)| serde_json::from_str(&body).unwrap())
            .collect()
    }

    /// Waits for `count` dead-lettered messages: (body, rootwarden-outcome, rootwarden-reason).
    pub async fn dead_letters(&self, count: usize, deadline: Duration) -> Vec<(String, String, String)> {
        self.drain(&self.seed_dead_letter, count, deadline)
            .await
            .into_iter()
            .map(|(body, attributes)| {
                let attribute = |name: &str| attributes.get(name).and_then(|v| v.string_value()).unwrap_or_default().to_owned();
                (body, attribute("rootwarden-outcome"), attribute("rootwarden-reason"))
            })
            .collect()
    }

    /// Messages visible plus in flight on the intake queue.
    pub async fn intake_depth(&self) -> (u64, u64) {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let output = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.seed_intake)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let attributes = output.attributes.unwrap();
        let read = |name: A| attributes.get(&name).unwrap().parse().unwrap();
        (read(A::ApproximateNumberOfMessages), read(A::ApproximateNumberOfMessagesNotVisible))
    }

    async fn drain(
        &self,
        queue_url: &str,
        count: usize,
        deadline: Duration,
    ) -> Vec<(String, std::collections::HashMap<String, MessageAttributeValue>)> {
        let start = Instant::now();
        let mut collected = Vec::new();
        while collected.len() < count {
            assert!(start.elapsed() < deadline, "only {} of {count} messages arrived in {deadline:?}", collected.len());
            collected.extend(self.receive_and_delete(queue_url).await);
        }
        collected
    }
}

/// A random 128-bit id (deduplication ids, unique names).
pub fn rand_id() -> u128 {
    rand::random()
}

/// A CSV report's rows, each as column name → value.
pub fn csv_rows(path: &std::path::Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| headers.iter().map(String::from).zip(r.unwrap().iter().map(String::from)).collect())
        .collect()
}

/// A v1 job body.
pub fn job(job_id: &str, account: &str, task: &str, extra: Value) -> String {
    let mut body = json!({"version": 1, "job_id": job_id, "account_id": account, "task": task, "ticket": "CHG-1"});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body.to_string()
}

/// Collects a child's stdout and stderr lines as they come (the child must pipe both).
pub fn collect_lines(child: &mut Child) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    collect_lines_with_readers(child).0
}

/// [`collect_lines`], with the reader threads: each ends at its stream's end, so once the child
/// has exited, joining them means every line it wrote is collected.
fn collect_lines_with_readers(
    child: &mut Child,
) -> (std::sync::Arc<std::sync::Mutex<Vec<String>>>, Vec<std::thread::JoinHandle<()>>) {
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    for stream in
        [Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>, Box::new(child.stderr.take().unwrap())]
    {
        let lines = lines.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        }));
    }
    (lines, readers)
}

/// The `rootwarden` binary running as a child process, its log lines collected as they come.
pub struct DaemonProcess {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    /// Directory holding its configuration file.
    pub dir: std::path::PathBuf,
}

impl DaemonProcess {
    /// Writes `config_toml` to a fresh directory and runs `rootwarden run --config` on it with the
    /// test credentials and `extra_env` set on the child only.
    pub fn start(config_toml: &str, extra_env: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "rootwarden-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rootwarden.toml"), config_toml).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_rootwarden"));
        command
            .args(["--config", dir.join("rootwarden.toml").to_str().unwrap(), "run"])
            .env("AWS_ACCESS_KEY_ID", "AKIDMANAGEMENT000001")
            .env("AWS_SECRET_ACCESS_KEY", "management-secret")
            .env_remove("AWS_PROFILE")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Only the configuration file and `extra_env` configure the daemon under test.
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("ROOTWARDEN_")) {
            command.env_remove(key);
        }
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let (lines, readers) = collect_lines_with_readers(&mut child);
        Self { child, lines, readers, dir }
    }

    /// Sends a signal by PID.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([format!("-{signal}"), self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits until a log line contains `needle` (bounded), returning it.
    pub fn wait_for_line(&self, needle: &str, deadline: Duration) -> String {
        let start = std::time::Instant::now();
        loop {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(start.elapsed() < deadline, "no log line with {needle:?} in {deadline:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every log line so far.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for exit (bounded) and returns the status; then every line the daemon wrote is in
    /// [`log`](Self::log).
    pub fn wait(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let status = wait_with_deadline(&mut self.child, deadline)
            .unwrap_or_else(|| panic!("the daemon did not exit in {deadline:?}:\n{}", self.log()));
        for reader in self.readers.drain(..) {
            reader.join().expect("a log reader");
        }
        status
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The TOML configuration of `config()`, for the binary.
pub fn config_toml(local: &LocalAws, seed: &Seed, extra: &str) -> String {
    format!(
        r#"
[aws]
endpoint_url = "{endpoint}"
max_attempts = 1
[intake]
queue_url = "{intake}"
dead_letter_queue_url = "{dead_letter}"
wait_time = "1s"
backoff_base = "1s"
backoff_max = "1s"
[results]
queue_url = "{results}"
[telemetry]
listen = "127.0.0.1:0"
{extra}
"#,
        endpoint = local.endpoint,
        intake = seed.queue("intake"),
        dead_letter = seed.queue("dead_letter"),
        results = seed.queue("results"),
    )
}

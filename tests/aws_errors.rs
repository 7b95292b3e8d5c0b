//! What a person reads when AWS cannot be reached or no credentials are found: the `rootwarden`
//! binary's own words for `submit`, `features status`, `sweep` and `run`, each naming the cause
//! and what to do next. Every child runs with an emptied environment (no AWS_* variables, an
//! empty HOME, instance metadata disabled); nothing is set in this process's environment.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use support::{DaemonProcess, collect_lines};

/// How long a command that fails at its first AWS call may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// A test credential whose secret must never be printed.
const SECRET: &str = "aws-errors-test-secret-KEEP-OUT-OF-OUTPUT";

/// `http://127.0.0.1:<port>` with nothing listening: bound, then let go.
fn closed_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    endpoint
}

/// A fresh directory (an empty HOME, the configuration, reports), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("rootwarden-aws-errors-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(dir.join("home")).unwrap();
        Self(dir)
    }

    /// A configuration sending every call to `endpoint`, queues included.
    fn config(&self, endpoint: &str) -> PathBuf {
        let path = self.0.join("rootwarden.toml");
        std::fs::write(&path, config_toml(endpoint)).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config_toml(endpoint: &str) -> String {
    format!(
        r#"
[aws]
endpoint_url = "{endpoint}"
max_attempts = 1
[intake]
queue_url = "{endpoint}/123456789012/intake"
dead_letter_queue_url = "{endpoint}/123456789012/dead-letter"
[results]
queue_url = "{endpoint}/123456789012/results"
[telemetry]
listen = "127.0.0.1:0"
"#
    )
}

/// `rootwarden --config <config> <args>` with an emptied environment: HOME an empty directory,
/// instance metadata disabled (nothing to wait for), and credentials only when given.
fn rootwarden(scratch: &Scratch, config: &Path, args: &[&str], with_credentials: bool) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rootwarden"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env_clear()
        .env("HOME", scratch.0.join("home"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .current_dir(&scratch.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if with_credentials {
        command.env("AWS_ACCESS_KEY_ID", "AKIDAWSERRORSTEST").env("AWS_SECRET_ACCESS_KEY", SECRET);
    }
    command
}

/// Runs a command to its end within `DEADLINE` (killed by its PID past it).
fn output(mut command: Command) -> Output {
    let child = command.spawn().unwrap();
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(DEADLINE) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("the command did not end within {DEADLINE:?}");
        }
    }
}

/// Its standard error, which must be one line, without the secret.
fn one_line_of_stderr(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains(SECRET), "the secret key was printed: {stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains(SECRET));
    assert_eq!(stderr.lines().count(), 1, "one line expected:\n{stderr}");
    stderr.trim_end().to_owned()
}

const SUBMIT: &[&str] = &["submit", "--task", "IAMAuditRootUserCredentials", "--account", "111122223333"];

/// The next step of a missing-credentials sentence.
const SET_CREDENTIALS: &str = "; set AWS credentials (the environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
     or AWS_PROFILE naming a profile of ~/.aws/config, after aws sso login for SSO) or run on a role (EC2 instance profile, \
     ECS task role, EKS IRSA).";

/// Where the SDK's default chain looked, as it reports it in an emptied environment.
const LOOKED_AT: &str = "no AWS credentials were found (the SDK's default chain looked at the environment variables \
     AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY: environment variable not set; profile default in the shared files ~/.aws/config \
     and ~/.aws/credentials: nothing found; web identity for EKS IRSA: $AWS_WEB_IDENTITY_TOKEN_FILE was not set; ECS container \
     credentials: ECS provider not configured; EC2 instance metadata: IMDS disabled by AWS_EC2_METADATA_DISABLED env var set to \
     `true`)";

#[test]
fn submit_to_a_closed_port_names_the_endpoint_and_what_to_check() {
    let scratch = Scratch::new("refused");
    let endpoint = closed_endpoint();
    let config = scratch.config(&endpoint);
    let output = output(rootwarden(&scratch, &config, SUBMIT, true));
    assert_eq!(output.status.code(), Some(1));
    let line = one_line_of_stderr(&output);
    // Before: `rootwarden: sqs:SendMessage failed with DispatchFailure: Some("io error")`.
    let cause = format!("rootwarden: sqs:SendMessage failed: the connection to {endpoint} was refused (");
    assert!(line.starts_with(&cause), "{line}");
    assert!(
        line.ends_with(
            "); check the endpoint (aws.endpoint_url, or a proxy set in HTTPS_PROXY) and that it is up and reachable from here."
        ),
        "{line}"
    );
}

#[test]
fn rust_log_debug_adds_the_sdks_error_chain_for_a_client_command() {
    let scratch = Scratch::new("chain");
    let endpoint = closed_endpoint();
    let config = scratch.config(&endpoint);
    let mut command = rootwarden(&scratch, &config, SUBMIT, true);
    command.env("RUST_LOG", "rootwarden=debug");
    let output = output(command);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error.chain"), "the chain is logged with RUST_LOG=debug:\n{stderr}");
    assert!(!stderr.contains(SECRET), "no secret in the chain");
    let plain = output_of(rootwarden(&scratch, &config, SUBMIT, true));
    assert!(!plain.contains("error.chain"), "without RUST_LOG, only the sentence:\n{plain}");
}

fn output_of(command: Command) -> String {
    String::from_utf8_lossy(&output(command).stderr).into_owned()
}

#[test]
fn submit_to_an_unknown_host_names_the_host() {
    let scratch = Scratch::new("dns");
    // `.invalid` never resolves (RFC 2606).
    let endpoint = "http://rootwarden-test.invalid:4566";
    let config = scratch.config(endpoint);
    let output = output(rootwarden(&scratch, &config, SUBMIT, true));
    assert_eq!(output.status.code(), Some(1));
    let line = one_line_of_stderr(&output);
    assert!(
        line.starts_with(
            "rootwarden: sqs:SendMessage failed: the host name rootwarden-test.invalid (of http://rootwarden-test.invalid:4566) \
             could not be resolved ("
        ),
        "{line}"
    );
    assert!(
        line.ends_with("); check the host name (aws.endpoint_url, aws.region) and this machine's DNS settings."),
        "{line}"
    );
}

#[test]
fn submit_without_credentials_says_where_the_sdk_looked_and_what_to_set() {
    let scratch = Scratch::new("no-credentials");
    let config = scratch.config(&closed_endpoint());
    let output = output(rootwarden(&scratch, &config, SUBMIT, false));
    assert_eq!(output.status.code(), Some(1));
    // Before: `rootwarden: sqs:SendMessage failed with DispatchFailure: Some("other")`.
    assert_eq!(one_line_of_stderr(&output), format!("rootwarden: sqs:SendMessage failed: {LOOKED_AT}{SET_CREDENTIALS}"));
}

#[test]
fn features_status_and_sweep_without_credentials_say_the_same() {
    let scratch = Scratch::new("no-credentials-org");
    let config = scratch.config(&closed_endpoint());

    let status = output(rootwarden(&scratch, &config, &["features", "status"], false));
    assert_eq!(status.status.code(), Some(1));
    assert_eq!(
        one_line_of_stderr(&status),
        format!("rootwarden: organizations:DescribeOrganization failed: {LOOKED_AT}{SET_CREDENTIALS}")
    );

    let report = scratch.0.join("sweep");
    let sweep = ["sweep", "--task", "IAMAuditRootUserCredentials", "--report", report.to_str().unwrap()];
    let sweep = output(rootwarden(&scratch, &config, &sweep, false));
    assert_eq!(sweep.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&sweep.stderr);
    assert!(!stderr.contains(SECRET));
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("rootwarden: the organization could not be read: organizations:"), "{stderr}");
    assert!(last.ends_with(&format!(" failed: {LOOKED_AT}{SET_CREDENTIALS}")), "{stderr}");
}

#[test]
fn run_against_a_closed_endpoint_says_why_the_intake_queue_does_not_answer() {
    let endpoint = closed_endpoint();
    let daemon = DaemonProcess::start(&config_toml(&endpoint), &[]);
    // Before: `The intake queue does not answer yet.`, the reason only in a field.
    let line = daemon.wait_for_line("The intake queue does not answer yet", DEADLINE);
    assert!(
        line.contains(&format!(
            "(trying again in 250ms): sqs:GetQueueAttributes failed: the connection to {endpoint} was refused ("
        )),
        "{line}"
    );
    assert!(line.contains("); check the endpoint (aws.endpoint_url, or a proxy set in HTTPS_PROXY)"), "{line}");
    assert!(line.contains(r#""error.code":"ConnectionRefused""#), "{line}");
    // It keeps trying, saying so each time.
    let again = daemon.wait_for_line("(trying again in 500ms): sqs:GetQueueAttributes failed: the connection to", DEADLINE);
    assert!(again.contains(&endpoint), "{again}");
}

/// `rootwarden run` without credentials, its log lines collected as they come.
struct Run {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Run {
    fn start(scratch: &Scratch, config: &Path) -> Self {
        let mut child = rootwarden(scratch, config, &["run"], false).spawn().unwrap();
        let lines = collect_lines(&mut child);
        Self { child, lines }
    }

    /// The lines so far containing every needle, waiting (bounded) until there are `count`.
    fn wait_for_lines(&self, needles: &[&str], count: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let found: Vec<String> =
                self.lines.lock().unwrap().iter().filter(|l| needles.iter().all(|n| l.contains(n))).cloned().collect();
            if found.len() >= count {
                return found;
            }
            assert!(start.elapsed() < DEADLINE, "no {count} lines with {needles:?}:\n{}", self.lines.lock().unwrap().join("\n"));
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn run_without_credentials_says_so_and_keeps_waiting_for_them() {
    let scratch = Scratch::new("run-no-credentials");
    let config = scratch.config(&closed_endpoint());
    let run = Run::start(&scratch, &config);
    let expected = format!("sqs:GetQueueAttributes failed: {LOOKED_AT}{SET_CREDENTIALS}");
    // A missing credential is permanent for a command, but the daemon waits for one to appear.
    let lines = run.wait_for_lines(&["The intake queue does not answer yet (trying again in", &expected], 2);
    assert!(lines[0].contains(r#""error.code":"NoCredentials""#), "{}", lines[0]);
}

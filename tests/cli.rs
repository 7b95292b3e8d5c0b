//! The command line without AWS: every usage error exits 64 (EX_USAGE) with its sentence on
//! stderr, before any banner and before any connection to AWS; clap's own parse errors exit 64
//! too, `--help` and `--version` 0; configuration problems keep 78.
//!
//! Each run points the binary at a sentinel: a local listener standing in for every AWS
//! endpoint and queue, which counts the connections made to it. Valid commands do connect to
//! it (the last tests), so "no connection" means the command stopped before any AWS call.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use rootwarden::config::DEFAULT_CONFIG_PATH;
use rootwarden::job::Task;
use rootwarden::sweep::state::{Definition, SweepState};

const USAGE: i32 = 64;
const CONFIG: i32 = 78;
const FIVE_TASKS: &str = "the five tasks are IAMAuditRootUserCredentials, IAMDeleteRootUserCredentials, \
                          IAMCreateRootUserPassword, S3UnlockBucketPolicy and SQSUnlockQueuePolicy";

/// A listener standing in for AWS: it accepts and closes every connection, telling the test the
/// peer address of each.
struct Sentinel {
    addr: SocketAddr,
    accepted: Receiver<SocketAddr>,
}

impl Sentinel {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (sender, accepted) = channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                // Told before the close, which is what ends the binary's call.
                let _ = sender.send(stream.peer_addr().unwrap());
            }
        });
        Self { addr, accepted }
    }

    /// Connections made since the last call. A marker connection made now is accepted after
    /// every earlier one (the accept queue is in order), so waiting for it counts them all.
    fn connections(&self) -> usize {
        let marker = TcpStream::connect(self.addr).unwrap().local_addr().unwrap();
        let mut count = 0;
        loop {
            let peer = self.accepted.recv_timeout(Duration::from_secs(30)).expect("the sentinel accepts");
            if peer == marker {
                return count;
            }
            count += 1;
        }
    }
}

/// A directory with a configuration whose AWS endpoint and queues are the sentinel.
struct Cli {
    dir: PathBuf,
    sentinel: Sentinel,
}

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    status: i32,
    stdout: String,
    stderr: String,
    /// Connections made to the sentinel (AWS) during the run.
    connections: usize,
}

impl Cli {
    fn new(name: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sentinel = Sentinel::start();
        let cli = Self { dir, sentinel };
        let url = cli.url();
        cli.write_config(&format!(
            "[aws]\nendpoint_url = \"{url}\"\nregion = \"us-east-1\"\nmax_attempts = 1\n\n\
             [intake]\nqueue_url = \"{url}/123456789012/in\"\n\n\
             [results]\nqueue_url = \"{url}/123456789012/results\"\n"
        ));
        cli
    }

    fn url(&self) -> String {
        format!("http://{}", self.sentinel.addr)
    }

    fn write_config(&self, text: &str) {
        std::fs::write(self.dir.join("rootwarden.toml"), text).unwrap();
    }

    /// Runs `rootwarden --config <dir>/rootwarden.toml ARGS` in the directory, with test
    /// credentials and nothing else of this process's environment.
    fn run(&self, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_rootwarden"))
            .arg("--config")
            .arg(self.dir.join("rootwarden.toml"))
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("AWS_ACCESS_KEY_ID", "AKIDCLITEST000000001")
            .env("AWS_SECRET_ACCESS_KEY", "cli-test-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.dir.join("no-aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.dir.join("no-aws-credentials"))
            .output()
            .unwrap();
        Run {
            status: output.status.code().expect("an exit status, not a signal"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            connections: self.sentinel.connections(),
        }
    }

    /// Runs ARGS and checks a usage error: 64, `sentence` on stderr, no banner, no AWS call.
    fn usage_error(&self, args: &[&str], sentence: &str) -> Run {
        let run = self.run(args);
        assert_eq!(run.status, USAGE, "{args:?}: {run:?}");
        assert!(run.stderr.contains(sentence), "{args:?}: expected {sentence:?} on stderr: {run:?}");
        assert!(!has_banner(&run.stderr), "no sweep banner before a usage error: {run:?}");
        assert_eq!(run.connections, 0, "{args:?}: no AWS call before a usage error: {run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        run
    }
}

/// The sweep's banner, `rootwarden: sweep <id> (<task>)`, printed once its arguments are valid.
fn has_banner(stderr: &str) -> bool {
    stderr
        .lines()
        .any(|line| line.starts_with("rootwarden: sweep ") && Task::ALL.iter().any(|task| line.ends_with(&format!(" ({task})"))))
}

#[test]
fn a_discovery_sweep_applies_only_with_a_ticket_and_its_flags_belong_to_it() {
    let cli = Cli::new("discovery-flags");
    cli.usage_error(
        &["sweep", "--task", "S3UnlockBucketPolicy", "--apply"],
        "rootwarden: --apply needs --ticket: unlocking resources across the organization is a change",
    );
    cli.usage_error(
        &["sweep", "--task", "SQSUnlockQueuePolicy", "--apply", "--dry-run", "--ticket", "CHG-1"],
        "--apply and --dry-run: a discovery is a dry run unless --apply; give one",
    );
    cli.usage_error(&["sweep", "--task", "IAMAuditRootUserCredentials", "--apply"], "--apply: only for a discovery");
    cli.usage_error(
        &["sweep", "--task", "IAMAuditRootUserCredentials", "--regions", "eu-west-1"],
        "--regions: only for a discovery",
    );
    cli.usage_error(
        &["sweep", "--task", "SQSUnlockQueuePolicy", "--regions", "mars"],
        "--regions: `mars` is not an AWS region name",
    );
}

#[test]
fn a_restore_policy_file_is_read_as_a_document_or_as_a_result_s_previous_policy_string() {
    let cli = Cli::new("restore-policy");
    let tls_only = r#"{"Version":"2012-10-17","Statement":[{"Sid":"TlsOnly","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#;
    let deny_all = r#"{"Version":"2012-10-17","Statement":[{"Sid":"DenyAll","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}]}"#;
    // As `jq '.findings.previous_policy' result.json` writes it: a JSON string holding the policy.
    std::fs::write(cli.dir.join("previous.json"), serde_json::to_string(tls_only).unwrap()).unwrap();
    std::fs::write(cli.dir.join("document.json"), tls_only).unwrap();
    std::fs::write(cli.dir.join("lockout.json"), deny_all).unwrap();
    let submit = |file: &'static str, extra: &[&'static str]| -> Vec<&'static str> {
        let mut args = vec!["submit", "--task", "S3UnlockBucketPolicy", "--account", "111122223333"];
        args.extend(["--bucket", "payments-artifacts", "--ticket", "CHG-1", "--restore-policy", file]);
        args.extend(extra);
        args
    };
    cli.usage_error(
        &submit("lockout.json", &[]),
        "restore_policy: statement(s) DenyAll would lock everyone out of the resource again",
    );
    cli.usage_error(&submit("missing.json", &[]), "rootwarden: --restore-policy missing.json:");
    for (file, extra) in [("previous.json", &[][..]), ("document.json", &[][..]), ("lockout.json", &["--allow-lockout"][..])] {
        let run = cli.run(&submit(file, extra));
        assert!(run.status == 1 && run.connections > 0, "{file} is a valid job and reaches AWS: {run:?}");
    }
}

#[test]
fn an_unknown_task_names_the_accepted_values() {
    let cli = Cli::new("unknown-task");
    cli.usage_error(
        &["sweep", "--task", "IAMAuditRoot"],
        &format!("invalid value 'IAMAuditRoot' for '--task <TASK>': not a task; {FIVE_TASKS}"),
    );
    cli.usage_error(
        &["submit", "--task", "Audit", "--account", "111122223333"],
        "invalid value 'Audit' for '--task <TASK>': not a task; the five tasks are IAMAuditRootUserCredentials, \
         IAMDeleteRootUserCredentials, IAMCreateRootUserPassword, S3UnlockBucketPolicy and SQSUnlockQueuePolicy",
    );
    // A name in other letter case is pointed at.
    cli.usage_error(
        &["submit", "--task", "s3unlockbucketpolicy", "--account", "111122223333"],
        "not a task (did you mean S3UnlockBucketPolicy?); the five tasks are",
    );
    cli.usage_error(
        &["sweep", "--task", "iamauditrootusercredentials"],
        "not a task (did you mean IAMAuditRootUserCredentials?); the five tasks are",
    );
}

#[test]
fn malformed_ids_are_usage_errors_all_named_at_once() {
    let cli = Cli::new("ids");
    cli.usage_error(
        &["sweep", "--task", "IAMAuditRootUserCredentials", "--exclude", "123"],
        "rootwarden: --exclude 123: an account id is 12 digits",
    );
    let run = cli.usage_error(
        &[
            "sweep",
            "--task",
            "IAMAuditRootUserCredentials",
            "--include",
            "12345678901x",
            "--exclude-ou",
            "ou_bad",
            "--sweep-id",
            "a b",
        ],
        "rootwarden: --include 12345678901x: an account id is 12 digits",
    );
    assert!(
        run.stderr.contains("rootwarden: --exclude-ou ou_bad: an organizational unit id looks like ou-ab12-cd34ef56"),
        "{run:?}"
    );
    assert!(run.stderr.contains("rootwarden: sweep id `a b`: 1 to 64 characters of A-Za-z0-9._:-"), "{run:?}");
    cli.usage_error(
        &["sweep", "--task", "IAMCreateRootUserPassword", "--credentials", "password"],
        "rootwarden: --credentials: only for IAMDeleteRootUserCredentials",
    );
    cli.usage_error(
        &["sweep", "--task", "IAMAuditRootUserCredentials", "--max-in-flight", "0"],
        "rootwarden: --max-in-flight must be at least 1",
    );
}

#[test]
fn resuming_a_sweep_that_is_not_there_and_redefining_one_that_is_are_usage_errors() {
    let cli = Cli::new("resume");
    cli.usage_error(
        &["sweep", "--task", "IAMAuditRootUserCredentials", "--resume", "nope"],
        "rootwarden: --resume nope: there is no sweep to resume at sweep-nope.state.json (give the --report of the sweep's first run)",
    );
    cli.usage_error(
        &["sweep", "--task", "IAMAuditRootUserCredentials", "--resume", "nope", "--report", "audit"],
        "there is no sweep to resume at audit.state.json",
    );
    // A sweep to resume must be the one the state file holds, with its task.
    let definition = Definition {
        sweep_id: "s1".into(),
        task: Task::AuditRootUserCredentials,
        credentials: None,
        ticket: None,
        requested_by: None,
        dry_run: false,
        regions: None,
    };
    SweepState::new(definition, vec![], vec![]).save(&cli.dir.join("held.state.json")).unwrap();
    cli.usage_error(
        &["sweep", "--task", "IAMAuditRootUserCredentials", "--resume", "s2", "--report", "held"],
        "rootwarden: held.state.json holds sweep s1, not the one to resume",
    );
    cli.usage_error(
        &["sweep", "--task", "IAMDeleteRootUserCredentials", "--resume", "s1", "--report", "held"],
        "rootwarden: sweep s1 runs IAMAuditRootUserCredentials, not IAMDeleteRootUserCredentials",
    );
    // A new sweep never overwrites another's progress.
    std::fs::write(cli.dir.join("audit.state.json"), "{}").unwrap();
    cli.usage_error(
        &["sweep", "--task", "IAMAuditRootUserCredentials", "--report", "audit"],
        "rootwarden: audit.state.json exists: resume that sweep with --resume, or choose another --report",
    );
    // A state file that is there but unreadable is not a usage error; still no banner, no AWS.
    let run = cli.run(&["sweep", "--task", "IAMAuditRootUserCredentials", "--resume", "s1", "--report", "audit"]);
    assert_eq!(run.status, 1, "{run:?}");
    assert!(run.stderr.contains("rootwarden: the sweep state file audit.state.json could not be used"), "{run:?}");
    assert!(!has_banner(&run.stderr), "{run:?}");
    assert_eq!(run.connections, 0, "{run:?}");
}

#[test]
fn clap_parse_errors_exit_64_and_help_and_version_exit_0() {
    let cli = Cli::new("clap");
    cli.usage_error(&["sweep"], "error: the following required arguments were not provided:\n  --task <TASK>");
    cli.usage_error(&["bogus"], "error: unrecognized subcommand 'bogus'");
    cli.usage_error(&["sweep", "--task", "IAMAuditRootUserCredentials", "--bogus"], "error: unexpected argument '--bogus' found");
    cli.usage_error(
        &["sweep", "--task", "IAMDeleteRootUserCredentials", "--credentials", "passwords"],
        "error: invalid value 'passwords' for '--credentials <CREDENTIALS>': `passwords` is not one of password, access_keys, signing_certificates, mfa_devices",
    );
    cli.usage_error(
        &["sweep", "--task", "IAMAuditRootUserCredentials", "--retry-failed"],
        "error: the following required arguments were not provided:\n  --resume <SWEEP_ID>",
    );
    cli.usage_error(
        &["sweep", "--task", "IAMAuditRootUserCredentials", "--idle-timeout", "soon"],
        "error: invalid value 'soon' for '--idle-timeout",
    );
    cli.usage_error(&[], "Usage: rootwarden [OPTIONS] <COMMAND>");

    for args in [&["--help"][..], &["--version"], &["sweep", "--help"], &["help", "submit"]] {
        let run = cli.run(args);
        assert_eq!(run.status, 0, "{args:?}: {run:?}");
        assert!(!run.stdout.is_empty() && run.stderr.is_empty(), "{args:?}: {run:?}");
        assert_eq!(run.connections, 0);
    }
}

#[test]
fn help_shows_the_default_configuration_path_and_the_exit_statuses() {
    let cli = Cli::new("help");
    let run = cli.run(&["--help"]);
    assert_eq!(run.status, 0, "{run:?}");
    let default = format!("default {DEFAULT_CONFIG_PATH}");
    assert!(run.stdout.contains(&format!("--config <PATH>  Configuration file (TOML; {default})")), "{}", run.stdout);
    assert!(run.stdout.contains("Exit status: 0 done;"), "{}", run.stdout);
    assert!(run.stdout.contains("64 wrong command line"), "{}", run.stdout);
    // The flag is global: every command's help shows it.
    let run = cli.run(&["submit", "--help"]);
    assert!(run.stdout.contains(&default), "{}", run.stdout);
}

#[test]
fn a_job_submit_would_post_and_the_daemon_reject_is_a_usage_error() {
    let cli = Cli::new("submit");
    cli.usage_error(
        &["submit", "--task", "S3UnlockBucketPolicy", "--account", "111122223333"],
        "rootwarden: the job is invalid: bucket: required for S3UnlockBucketPolicy",
    );
    cli.usage_error(
        &["submit", "--task", "IAMAuditRootUserCredentials", "--account", "123"],
        "rootwarden: the job is invalid: account_id: must be exactly 12 digits",
    );
    cli.usage_error(
        &["submit", "--task", "IAMAuditRootUserCredentials", "--account", "111122223333", "--bucket", "b"],
        "rootwarden: the job is invalid: bucket: allowed only for S3UnlockBucketPolicy",
    );
}

#[test]
fn a_queue_url_flag_that_is_not_an_sqs_queue_url_is_a_usage_error() {
    let cli = Cli::new("queue-urls");
    let audit = ["--task", "IAMAuditRootUserCredentials", "--account", "111122223333"];
    cli.usage_error(
        &[&["submit"][..], &audit, &["--intake-url", "sqs://in"]].concat(),
        "rootwarden: --intake-url `sqs://in` is not an SQS queue URL: it must start with http:// or https://",
    );
    let run = cli.usage_error(
        &[
            "sweep",
            "--task",
            "IAMAuditRootUserCredentials",
            "--intake-url",
            &format!("{}/12345/in", cli.url()),
            "--results-url",
            &format!("{}/123456789012", cli.url()),
        ],
        "rootwarden: --intake-url",
    );
    assert!(run.stderr.contains("`12345` is not a 12-digit account id"), "{run:?}");
    assert!(run.stderr.contains("rootwarden: --results-url"), "both named at once: {run:?}");
}

#[test]
fn healthcheck_of_a_url_it_cannot_probe_is_a_usage_error() {
    let cli = Cli::new("healthcheck");
    cli.usage_error(
        &["healthcheck", "--url", "https://127.0.0.1:9464/healthz"],
        "rootwarden: --url https://127.0.0.1:9464/healthz: only http:// URLs are supported",
    );
}

#[test]
fn configuration_problems_keep_exit_status_78() {
    let cli = Cli::new("config");
    let url = cli.url();
    // No results queue: a sweep cannot collect.
    cli.write_config(&format!("[aws]\nendpoint_url = \"{url}\"\n[intake]\nqueue_url = \"{url}/123456789012/in\"\n"));
    let run = cli.run(&["sweep", "--task", "IAMAuditRootUserCredentials"]);
    assert_eq!(run.status, CONFIG, "{run:?}");
    assert!(run.stderr.contains("rootwarden: a sweep needs the intake and results queues"), "{run:?}");
    assert_eq!(run.connections, 0);
    // A key that does not exist.
    cli.write_config("[aws]\nendpoint = \"http://127.0.0.1:1\"\n");
    for args in [
        &["sweep", "--task", "IAMAuditRootUserCredentials"][..],
        &["submit", "--task", "IAMAuditRootUserCredentials", "--account", "111122223333"],
        &["check-config"],
    ] {
        let run = cli.run(args);
        assert_eq!(run.status, CONFIG, "{args:?}: {run:?}");
        assert!(run.stderr.contains("endpoint"), "{args:?}: {run:?}");
        assert_eq!(run.connections, 0);
    }
    // A configuration file given but missing.
    std::fs::remove_file(cli.dir.join("rootwarden.toml")).unwrap();
    let run = cli.run(&["check-config"]);
    assert_eq!(run.status, CONFIG, "{run:?}");
}

#[test]
fn valid_commands_do_reach_aws_so_the_sentinel_sees_what_the_usage_errors_did_not() {
    let cli = Cli::new("valid");
    // The sentinel closes every connection: the call fails and the command says so (exit 1).
    let run = cli.run(&["submit", "--task", "IAMAuditRootUserCredentials", "--account", "111122223333"]);
    assert_eq!(run.status, 1, "{run:?}");
    assert!(run.connections > 0, "{run:?}");

    let run = cli.run(&["sweep", "--task", "IAMAuditRootUserCredentials", "--report", "audit"]);
    assert_eq!(run.status, 1, "{run:?}");
    assert!(has_banner(&run.stderr), "the banner comes once the arguments are valid: {run:?}");
    assert!(run.stderr.contains("the organization could not be read"), "{run:?}");
    assert!(run.connections > 0, "{run:?}");
}

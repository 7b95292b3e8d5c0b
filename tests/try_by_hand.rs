//! The README's "Try it by hand": `scripts/env start` (what `make env` runs) leaves a seeded
//! local environment running with a ready configuration, and the commands it prints work as
//! printed: sourcing its env file, `rootwarden run` and `rootwarden submit` give a result.
//! `scripts/env stop` stops the daemon and the environment. And the quick start's `make demo`
//! ends with a result for every job it posted, each with the outcome the README shows.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

/// Stops the environment (and a daemon left running) whatever the test's end.
struct Environment {
    state: PathBuf,
    daemon: Option<Child>,
}

impl Drop for Environment {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = Command::new("kill").arg(daemon.id().to_string()).status();
            let _ = daemon.wait();
        }
        let _ = scripts_env(&["stop", "--state-dir", self.state.to_str().unwrap()]);
    }
}

fn scripts_env(args: &[&str]) -> std::process::Output {
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/env"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs one printed line in bash after sourcing the env file, as a user would.
fn as_printed(env_file: &Path, line: &str) -> Command {
    let mut command = Command::new("bash");
    command
        .args(["-c", &format!("source {} && {line}", env_file.display())])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // Only the env file configures what the user runs.
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("ROOTWARDEN_") || key.starts_with("AWS_")) {
        command.env_remove(key);
    }
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_env_prints_commands_that_work_as_printed() {
    let state = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("try-by-hand-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let mut environment = Environment { state: state.clone(), daemon: None };
    // The binary this test run built: a build here would replace it under the other tests.
    let started = scripts_env(&["start", "--state-dir", state.to_str().unwrap(), "--binary", env!("CARGO_BIN_EXE_rootwarden")]);
    let printed = String::from_utf8_lossy(&started.stdout).into_owned();
    assert!(started.status.success(), "{printed}\n{}", String::from_utf8_lossy(&started.stderr));

    let env_file = state.join("env.sh");
    assert!(printed.contains(&format!("source {}", env_file.display())), "{printed}");
    assert!(printed.contains("make env-stop"), "{printed}");
    let line = |prefix: &str| {
        printed
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{printed}"))
            .to_owned()
    };

    let check = as_printed(&env_file, &line("rootwarden check-config")).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let daemon = as_printed(&env_file, "exec rootwarden run").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    environment.daemon = Some(daemon);
    let submit = as_printed(&env_file, &line("rootwarden submit --task IAMAuditRootUserCredentials")).output().unwrap();
    assert!(submit.status.success(), "{}", String::from_utf8_lossy(&submit.stderr));

    let seed = Seed(serde_json::from_slice(&std::fs::read(state.join("seed.json")).unwrap()).unwrap());
    let endpoint = std::fs::read_to_string(state.join("endpoint")).unwrap().trim().to_owned();
    let aws = rootwarden::config::AwsConfig { endpoint_url: Some(endpoint), ..Default::default() };
    let sdk = rootwarden::aws::sdk_config(&aws, Some(credentials())).await;
    let results = seed.queue("results");
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let start = std::time::Instant::now();
    let result: serde_json::Value = loop {
        assert!(start.elapsed() < Duration::from_secs(60), "no result for the submitted job");
        let received = sqs.receive_message().queue_url(&results).wait_time_seconds(1).send().await.unwrap();
        if let Some(message) = received.messages.unwrap_or_default().into_iter().next() {
            break serde_json::from_str(message.body().unwrap_or_default()).unwrap();
        }
    };
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["task"], "IAMAuditRootUserCredentials");

    drop(environment);
    assert!(!state.join("localaws.pid").exists(), "scripts/env stop stopped the environment");
}

#[test]
fn the_demo_ends_with_a_result_for_every_job_it_posted() {
    let state = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let output = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("ROOTWARDEN_DEMO_BINARY", env!("CARGO_BIN_EXE_rootwarden"))
        .env("ROOTWARDEN_DEMO_STATE", &state)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("8 of 8 jobs ended:"), "{stdout}");
    let row = |task: &str, outcome: &str, detail: &str| {
        stdout.lines().any(|l| l.contains(task) && l.contains(&format!(" {outcome} ")) && l.contains(detail))
    };
    for (task, outcome, detail) in [
        ("S3UnlockBucketPolicy", "rejected", "needs a ticket"),
        ("IAMAuditRootUserCredentials", "succeeded", "password=True access_keys=2 mfa=1"),
        ("IAMDeleteRootUserCredentials", "succeeded", "deleted {"),
        ("IAMCreateRootUserPassword", "succeeded", "password recovery allowed"),
        ("S3UnlockBucketPolicy", "succeeded", "removed policy (DenyEveryone locks_out_everyone)"),
        ("SQSUnlockQueuePolicy", "succeeded", "removed policy (DenyEveryone locks_out_everyone)"),
    ] {
        assert!(row(task, outcome, detail), "no {task} {outcome} row with {detail:?}:\n{stdout}");
    }
    assert!(stdout.contains("Dead-letter queue: 2 message(s)"), "{stdout}");
}

//! The README's "Try it by hand": `scripts/env start` (what `make env` runs) leaves a seeded
//! local environment running with a ready configuration, and every command it prints works as
//! printed, in order: `check-config`, `run` in the background with its PID file, both `submit`s,
//! the sweep (a report row per account), the `grep` showing every job's result, the metrics
//! `curl`; then `scripts/env stop` (what `make env-stop` runs) stops the daemon and the
//! environment. And the quick start's `make demo`
//! ends with a result for every job it posted, each with the outcome the README shows.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
        // On a line of its own, as typed after `source`: `a && b & c` would background `a && b`.
        .args(["-c", &format!("source {} || exit 1\n{line}", env_file.display())])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // Only the env file configures what the user runs.
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("ROOTWARDEN_") || key.starts_with("AWS_")) {
        command.env_remove(key);
    }
    command
}

/// The lines `scripts/env start` prints under "Try it by hand", in order.
fn try_by_hand_lines(printed: &str) -> Vec<String> {
    let block = printed.split("Try it by hand (in this shell):").nth(1).unwrap_or_else(|| panic!("no block in:\n{printed}"));
    block.lines().skip(1).map(str::trim).take_while(|line| !line.is_empty()).map(str::to_owned).collect()
}

fn succeeded(output: &std::process::Output, line: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{line}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[test]
fn make_env_prints_commands_that_work_as_printed() {
    let state = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("try-by-hand-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let mut environment = Environment { state: state.clone(), daemon: None };
    // The binary this test run built: a build here would replace it under the other tests.
    let started = scripts_env(&["start", "--state-dir", state.to_str().unwrap(), "--binary", env!("CARGO_BIN_EXE_rootwarden")]);
    let printed = String::from_utf8_lossy(&started.stdout).into_owned();
    assert!(started.status.success(), "{printed}\n{}", String::from_utf8_lossy(&started.stderr));
    let env_file = state.join("env.sh");
    let lines = try_by_hand_lines(&printed);
    assert_eq!(lines[0], format!("source {}", env_file.display()), "{printed}");

    // Every line after `source`, run as printed, in order, each in a shell that sourced env.sh.
    let mut ran = Vec::new();
    for line in &lines[1..] {
        let word = |w: &str| line.split_whitespace().nth(1) == Some(w);
        if line.starts_with("grep ") {
            // The results come as the daemon gets to the jobs: run the line until it shows all
            // of them (14: two submitted, twelve from the sweep), bounded.
            let start = std::time::Instant::now();
            loop {
                let found = String::from_utf8_lossy(&as_printed(&env_file, line).output().unwrap().stdout).into_owned();
                if found.lines().count() >= 14 {
                    // Plain text: colours are for terminals, not for a log file.
                    let plain = |l: &str| l.contains("The job ended.") && l.contains("outcome=") && !l.contains('\u{1b}');
                    assert!(found.lines().all(plain), "{found}");
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(60), "{line}: {} results so far:\n{found}", found.lines().count());
                std::thread::sleep(Duration::from_millis(200));
            }
        } else if line.starts_with("curl ") {
            let metrics = succeeded(&as_printed(&env_file, line).output().unwrap(), line);
            assert!(
                metrics.contains("rootwarden_jobs_completed_total{") && metrics.contains("outcome=\"succeeded\""),
                "{metrics}"
            );
        } else if line.starts_with("rootwarden sweep ") {
            succeeded(&as_printed(&env_file, line).output().unwrap(), line);
            let report = std::fs::read_to_string(state.join("sweep-audit.csv")).unwrap();
            assert_eq!(report.lines().count(), 1 + 12, "a row per member account:\n{report}");
        } else if line.starts_with("rootwarden run ") {
            // Backgrounded by the line itself, its PID written where `make env-stop` finds it.
            succeeded(&as_printed(&env_file, line).output().unwrap(), line);
            assert!(state.join("rootwarden.pid").exists(), "{line}");
        } else {
            assert!(word("check-config") || word("submit"), "a line this test does not know: {line}");
            succeeded(&as_printed(&env_file, line).output().unwrap(), line);
        }
        ran.push(line.split_whitespace().take(2).collect::<Vec<_>>().join(" "));
    }
    let expected = ["rootwarden check-config", "rootwarden run", "rootwarden submit", "rootwarden submit", "rootwarden sweep"];
    assert_eq!(ran[..5], expected, "{lines:?}");
    assert_eq!(ran[5..], ["grep 'The", "curl -s"], "{lines:?}");

    // "Stop everything: make env-stop (scripts/env stop --state-dir <state>)": the daemon
    // started above and the environment stop.
    let stop = format!("scripts/env stop --state-dir {}", state.display());
    assert!(printed.contains(&format!("make env-stop   ({stop})")), "{printed}");
    let daemon_pid = std::fs::read_to_string(state.join("rootwarden.pid")).unwrap().trim().to_owned();
    succeeded(&as_printed(&env_file, &stop).output().unwrap(), &stop);
    let alive = Command::new("kill").args(["-0", &daemon_pid]).stderr(Stdio::null()).status().unwrap().success();
    assert!(!alive, "the daemon {daemon_pid} was stopped");
    assert!(!state.join("localaws.pid").exists(), "the environment was stopped");
    environment.daemon = None;
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

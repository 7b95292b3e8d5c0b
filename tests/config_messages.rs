//! What an operator reads when a configuration is refused: each problem once, named by its key,
//! with the fix (the key meant, the form to write), every problem at once; and what
//! `check-config` prints reads back to the same configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rootwarden::Config;
use rootwarden::config::missing_file_note;

const QUEUES: &str = r#"
[intake]
queue_url = "https://sqs.us-east-1.amazonaws.com/111122223333/jobs"
dead_letter_queue_url = "https://sqs.us-east-1.amazonaws.com/111122223333/jobs-dlq"
"#;

/// The sentences of a refused configuration.
fn problems(text: &str) -> Vec<String> {
    Config::from_toml(text).expect_err("the configuration is refused").problems
}

/// A directory of this test's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rootwarden-config-messages-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn file(&self, text: &str) -> PathBuf {
        let path = self.0.join("rootwarden.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn variables(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn a_misspelt_key_is_reported_alone_with_the_key_meant_and_its_section_still_loads() {
    // Before: "[intake]: unknown field `visiblity_timeout`, expected one of … for key `intake`",
    // then "intake.queue_url is required" and "intake.dead_letter_queue_url is required" although
    // both are set; the range error of wait_time was not reported.
    let text = format!("{QUEUES}visiblity_timeout = \"30s\"\nwait_time = \"25s\"\n");
    assert_eq!(
        problems(&text),
        [
            "unknown key `visiblity_timeout` in [intake]; did you mean `visibility_timeout`?",
            "intake.wait_time must be at most 20s (the SQS long-polling limit)",
        ]
    );
    // A key outside any section, a key cut short, a key of another section, a misspelt
    // section, a key far from every other.
    let text = format!(
        "region = \"eu-west-1\"\n[aws]\nendpoint = \"http://127.0.0.1:4566\"\n{QUEUES}job_timeout = \"30s\"\n[sesions]\nduration = \"900s\"\n[shutdown]\nx = 1\n"
    );
    assert_eq!(
        problems(&text),
        [
            "`region` is outside any section; did you mean `region` in [aws]?",
            "unknown section `sesions`; did you mean `sessions`?",
            "unknown key `endpoint` in [aws]; did you mean `endpoint_url`?",
            "unknown key `job_timeout` in [intake]; did you mean `job_timeout` in [workers]?",
            "unknown key `x` in [shutdown] (its keys: grace)",
        ]
    );
    // The client commands check keys and types only, and load the rest of the section alike.
    let dir = TempDir::new("client");
    let path = dir.file("[intake]\nqueue_url = \"https://sqs.us-east-1.amazonaws.com/111122223333/jobs\"\nwait_tme = \"5s\"\n");
    let error = Config::load_for_client(&path, true, []).unwrap_err();
    assert_eq!(error.problems, ["unknown key `wait_tme` in [intake]; did you mean `wait_time`?"]);
}

#[test]
fn a_bad_duration_names_its_key_and_the_forms_to_write() {
    // Before: `[workers]: invalid value: string "soon", expected a duration for key `workers``.
    assert_eq!(
        problems(&format!("{QUEUES}[workers]\njob_timeout = \"soon\"\n")),
        [r#"workers.job_timeout: `soon` is not a duration; write a number with a unit, like "30s", "15m", "1h" or "1h30m""#]
    );
    // Before: `[workers]: invalid value: string "60", expected a duration for key `workers``.
    assert_eq!(
        problems(&format!("{QUEUES}[workers]\njob_timeout = 60\n")),
        [
            r#"workers.job_timeout: 60 is a number, not a duration; write "60s" (a string with a unit, like "30s", "15m", "1h" or "1h30m")"#
        ]
    );
    assert_eq!(
        problems(&format!("{QUEUES}[shutdown]\ngrace = 1.5\n[policy]\nmax_job_age = \"\"\n")),
        [
            r#"policy.max_job_age: an empty string is not a duration; write one like "30s", "15m", "1h" or "1h30m""#,
            r#"shutdown.grace: 1.5 is a number, not a duration; write a string with a whole number and a unit, like "90s" or "1500ms""#,
        ]
    );
    // A variable is named with the key it sets.
    let dir = TempDir::new("variables");
    let path = dir.file(QUEUES);
    let env = variables(&[("ROOTWARDEN_WORKERS__JOB_TIMEOUT", "60"), ("ROOTWARDEN_WORKERS__CONCURENCY", "4")]);
    assert_eq!(
        Config::load(&path, true, env).unwrap_err().problems,
        [
            "unknown key `concurency` in [workers] (set by ROOTWARDEN_WORKERS__CONCURENCY); did you mean `concurrency`?",
            r#"workers.job_timeout (set by ROOTWARDEN_WORKERS__JOB_TIMEOUT): 60 is a number, not a duration; write "60s" (a string with a unit, like "30s", "15m", "1h" or "1h30m")"#,
        ]
    );
    // The forms named are accepted.
    let config = Config::from_toml(&format!(
        "{QUEUES}backoff_max = \"15m\"\n[workers]\njob_timeout = \"30s\"\nmax_throttle_wait = \"1h30m\"\n[policy]\nmax_job_age = \"1h\"\n"
    ));
    let config = config.unwrap();
    assert_eq!(config.workers.max_throttle_wait, Duration::from_secs(5400));
    assert_eq!(config.intake.backoff_max, Duration::from_secs(900));
    assert_eq!(config.policy.max_job_age, Duration::from_secs(3600));
}

#[test]
fn problems_of_one_section_do_not_hide_each_other() {
    // Before: only `[workers]: invalid value: string "soon", expected a duration for key `workers``.
    let text = format!(
        "{QUEUES}[workers]\njob_timeout = \"soon\"\nconcurrency = 0\nper_account = \"two\"\nruntime_threads = 1000\n[sessions]\nmin_remaining = \"30s\"\n"
    );
    assert_eq!(
        problems(&text),
        [
            r#"workers.job_timeout: `soon` is not a duration; write a number with a unit, like "30s", "15m", "1h" or "1h30m""#,
            r#"workers.per_account: invalid type: string "two", expected usize"#,
            "workers.concurrency must be between 1 and 4096",
            "workers.runtime_threads must be between 0 (one per CPU) and 256",
        ],
        "and nothing about the default job_timeout kept in place of the bad one (60s is not shorter than 30s)"
    );
}

#[test]
fn queue_urls_must_have_the_form_of_sqs_queue_urls() {
    // Before: accepted.
    let text = r#"
        [intake]
        queue_url = "not a url"
        dead_letter_queue_url = "https://us-east-1.queue.amazonaws.com/111122223333/jobs-dlq"
        [results]
        queue_url = "https://sqs.us-east-1.amazonaws.com/11112222/results"
    "#;
    assert_eq!(
        problems(text),
        [
            "intake.queue_url `not a url` is not an SQS queue URL: it must start with https:// \
             (expected https://sqs.<region>.amazonaws.com/<12-digit account id>/<queue name>)",
            "results.queue_url `https://sqs.us-east-1.amazonaws.com/11112222/results` is not an SQS queue URL: \
             `11112222` is not a 12-digit account id (expected https://sqs.<region>.amazonaws.com/<12-digit account id>/<queue name>)",
        ]
    );
    let local_url = "[intake]\nqueue_url = \"http://localhost:4566/000000000000/jobs\"\n\
                     dead_letter_queue_url = \"http://localhost:4566/000000000000/jobs-dlq\"\n";
    assert_eq!(
        problems(local_url),
        [
            "intake.queue_url `http://localhost:4566/000000000000/jobs` is not an SQS queue URL: the host `localhost:4566` \
             is not SQS's; for a local environment, set aws.endpoint_url \
             (expected https://sqs.<region>.amazonaws.com/<12-digit account id>/<queue name>)",
            "intake.dead_letter_queue_url `http://localhost:4566/000000000000/jobs-dlq` is not an SQS queue URL: the host \
             `localhost:4566` is not SQS's; for a local environment, set aws.endpoint_url \
             (expected https://sqs.<region>.amazonaws.com/<12-digit account id>/<queue name>)",
        ]
    );
    // A local environment (aws.endpoint_url) names its queues after any host.
    let local = format!("[aws]\nendpoint_url = \"http://127.0.0.1:4566\"\n{local_url}");
    Config::from_toml(&local).expect("a local environment's queue URLs");
    assert_eq!(
        problems(&local.replace("/000000000000/jobs-dlq", "/jobs-dlq")),
        ["intake.dead_letter_queue_url `http://localhost:4566/jobs-dlq` is not an SQS queue URL: \
          its path must be /<12-digit account id>/<queue name> (expected https://sqs.<region>.amazonaws.com/<12-digit account id>/<queue name>, \
          or http(s)://<host>/<12-digit account id>/<queue name> as aws.endpoint_url is set)"]
    );
    // The FIFO pair check stays.
    let mixed = QUEUES.replace("/jobs\"", "/jobs.fifo\"");
    assert_eq!(
        problems(&mixed),
        ["intake.queue_url and intake.dead_letter_queue_url must both be FIFO queues (`.fifo`) or both standard: \
          SQS moves messages only between queues of one kind (intake `https://sqs.us-east-1.amazonaws.com/111122223333/jobs.fifo`, \
          dead-letter queue `https://sqs.us-east-1.amazonaws.com/111122223333/jobs-dlq`)"]
    );
}

#[test]
fn without_a_file_the_problems_say_that_none_was_read_and_where_it_looked() {
    // Before: only "intake.queue_url is required" and "intake.dead_letter_queue_url is required".
    let dir = TempDir::new("nofile");
    let default_path = dir.0.join("rootwarden.toml");
    let note = format!(
        "no configuration file was read: there is none at {} (the default path), so only the defaults and \
         ROOTWARDEN_<SECTION>__<KEY> variables apply; pass --config PATH or set ROOTWARDEN_CONFIG to read another file",
        default_path.display()
    );
    assert_eq!(
        Config::load(&default_path, false, []).unwrap_err().problems,
        [note.as_str(), "intake.queue_url is required", "intake.dead_letter_queue_url is required"]
    );
    assert_eq!(
        Config::load_for_client(&default_path, false, variables(&[("ROOTWARDEN_WORKERS__X", "1")]))
            .unwrap_err()
            .problems[0],
        note
    );
    assert_eq!(missing_file_note(&default_path, false), Some(note));
    // Variables alone may make a valid configuration: the note is there for main to print.
    let env = variables(&[
        ("ROOTWARDEN_INTAKE__QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/111122223333/jobs"),
        ("ROOTWARDEN_INTAKE__DEAD_LETTER_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/111122223333/jobs-dlq"),
    ]);
    Config::load(&default_path, false, env).expect("a configuration from variables alone");
    // With a file there, or a file asked for, there is no note.
    assert_eq!(missing_file_note(&dir.file(QUEUES), false), None);
    assert_eq!(missing_file_note(Path::new("/nonexistent/rootwarden.toml"), true), None);
    // A file asked for (--config or ROOTWARDEN_CONFIG) that is not there.
    assert_eq!(
        Config::load(Path::new("/nonexistent/rootwarden.toml"), true, []).unwrap_err().problems,
        ["no configuration file was read: /nonexistent/rootwarden.toml was not found (given by --config or ROOTWARDEN_CONFIG)"]
    );
}

#[test]
fn durations_are_printed_as_written_and_the_printed_configuration_reads_back() {
    let mut config = Config::default();
    config.intake.queue_url = Some("https://sqs.us-east-1.amazonaws.com/111122223333/jobs".into());
    config.intake.dead_letter_queue_url = Some("https://sqs.us-east-1.amazonaws.com/111122223333/jobs-dlq".into());
    config.intake.visibility_timeout = Duration::from_secs(90);
    let text = toml::to_string_pretty(&config).unwrap();
    // Before: max_job_age = "1day", job_timeout = "1m", duration = "15m", min_remaining = "2m".
    for line in [
        r#"max_job_age = "24h""#,
        r#"job_timeout = "60s""#,
        r#"visibility_timeout = "90s""#,
        r#"min_remaining = "120s""#,
        r#"duration = "15m""#,
        r#"max_throttle_wait = "30m""#,
        r#"backoff_max = "5m""#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
    }
    assert_eq!(Config::from_toml(&text).unwrap(), config, "through the loader, validated");
    let default = toml::to_string_pretty(&Config::default()).unwrap();
    assert_eq!(toml::from_str::<Config>(&default).unwrap(), Config::default(), "the whole default configuration");
}

#[test]
fn check_config_prints_what_reads_back_to_the_same_configuration() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/rootwarden.toml");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rootwarden"))
        .args(["--config", shipped, "check-config"])
        .env_remove("ROOTWARDEN_CONFIG")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(printed.contains("max_job_age = \"24h\"") && printed.contains("job_timeout = \"60s\""), "{printed}");
    let expected = Config::from_toml(&std::fs::read_to_string(shipped).unwrap()).unwrap();
    assert_eq!(Config::from_toml(&printed).unwrap(), expected);
}

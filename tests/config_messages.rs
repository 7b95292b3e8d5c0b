//! What an operator reads of a configuration: what `check-config` prints reads back to the same
//! configuration.

use std::time::Duration;

use rootwarden::Config;

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

//! The README's configuration table keeps its promises: each row's default is what the daemon
//! uses when the key is not set (the configuration `rootwarden check-config` prints for a file
//! that sets only the required keys, and `Config::default()`), each `required` key is refused
//! when missing, and every key the configuration accepts has its row.
//!
//! A default the test cannot read fails the test with its key named, unless it is listed in
//! [`NOT_INTERPRETED`] with the reason.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use rootwarden::Config;
use rootwarden::job::Task;
use toml::Value;

/// Rows whose default this test does not check, with why (one line each).
const NOT_INTERPRETED: &[(&str, &str)] = &[];

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

/// The two keys that have no default, as a file sets them.
const REQUIRED_QUEUES: &str = r#"
[intake]
queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/in"
dead_letter_queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq"
"#;

/// One row of the table: its line in README.md, a key, and the default written for it.
#[derive(Debug)]
struct Row {
    line: usize,
    key: String,
    default: String,
}

/// What a default cell says.
#[derive(Debug, PartialEq)]
enum Promise {
    /// `required`: no default, a configuration without the key is refused.
    Required,
    /// `none`: the key is unset (an optional value).
    Unset,
    /// `empty`: the empty string.
    Empty,
    /// `[]`: the empty list.
    EmptyList,
    /// `all but the audit`: every task but `IAMAuditRootUserCredentials`.
    AllTasksButTheAudit,
    Bool(bool),
    Number(f64),
    Duration(Duration),
    Text(String),
}

/// The rows of the table under "## Configuration" in `text` whose header is
/// `| key | default | meaning |`. A row with several keys (`a`, `b` | `1s`, `2s`) gives one row
/// per key. A row that cannot be read so is a problem naming it.
fn table_rows(text: &str) -> (Vec<Row>, Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let section = lines.iter().position(|l| l.trim() == "## Configuration").expect("README.md has a ## Configuration section");
    let header = (section..lines.len()).find(|&i| lines[i].starts_with('|')).expect("the Configuration section has a table");
    let cells = |line: &str| line.trim().trim_matches('|').split('|').map(|c| c.trim().to_owned()).collect::<Vec<_>>();
    assert_eq!(cells(lines[header])[..2], ["key", "default"], "the table's first columns: {}", lines[header]);
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(header + 2).take_while(|(_, l)| l.starts_with('|')) {
        let cells = cells(line);
        let number = i + 1;
        let keys: Vec<&str> = cells[0].split(", ").map(|k| k.trim_matches('`')).collect();
        if keys.iter().any(|k| k.is_empty() || !k.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')) {
            problems.push(format!("README.md:{number}: cannot read the key cell `{}`", cells[0]));
            continue;
        }
        let defaults = if keys.len() == 1 { vec![cells[1].as_str()] } else { split_top_level(&cells[1]) };
        if defaults.len() != keys.len() {
            problems.push(format!(
                "README.md:{number}: {} has {} keys but {} defaults (`{}`)",
                cells[0],
                keys.len(),
                defaults.len(),
                cells[1]
            ));
            continue;
        }
        for (key, default) in keys.into_iter().zip(defaults) {
            rows.push(Row { line: number, key: key.to_owned(), default: default.trim().to_owned() });
        }
    }
    (rows, problems)
}

fn readme_rows() -> (Vec<Row>, Vec<String>) {
    table_rows(&std::fs::read_to_string(README).unwrap())
}

/// Splits at `, ` outside backticks and parentheses.
fn split_top_level(cell: &str) -> Vec<&str> {
    let (mut parts, mut start, mut depth, mut quoted) = (Vec::new(), 0, 0i32, false);
    let bytes = cell.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'`' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth -= 1,
            b',' if !quoted && depth == 0 && bytes.get(i + 1) == Some(&b' ') => {
                parts.push(&cell[start..i]);
                start = i + 2;
            }
            _ => {}
        }
    }
    parts.push(&cell[start..]);
    parts
}

/// Reads a default cell: a value, then optionally a remark in parentheses (`[]` (all members)).
fn interpret(cell: &str) -> Option<Promise> {
    let value = match cell.find(" (") {
        Some(at) if cell.ends_with(')') => &cell[..at],
        _ => cell,
    }
    .trim();
    if let Some(inner) = value.strip_prefix('`').and_then(|v| v.strip_suffix('`')) {
        if inner.contains('`') {
            return None;
        }
        return Some(match inner {
            "[]" => Promise::EmptyList,
            _ => match humantime::parse_duration(inner) {
                Ok(duration) => Promise::Duration(duration),
                Err(_) => Promise::Text(inner.to_owned()),
            },
        });
    }
    Some(match value {
        "required" => Promise::Required,
        "none" => Promise::Unset,
        "empty" => Promise::Empty,
        "all but the audit" => Promise::AllTasksButTheAudit,
        "true" => Promise::Bool(true),
        "false" => Promise::Bool(false),
        number => Promise::Number(number.parse().ok().filter(|n: &f64| n.is_finite())?),
    })
}

/// Why `actual` (the key's value in the printed configuration, `None` when it is not printed)
/// is not what `expected` promises.
fn mismatch(expected: &Promise, actual: Option<&Value>) -> Option<String> {
    let shown = || actual.map_or("not set".to_owned(), ToString::to_string);
    let fits = match (expected, actual) {
        // Checked apart: a configuration without the key is refused.
        (Promise::Required, _) => true,
        (Promise::Unset, None) => true,
        (Promise::Empty, Some(Value::String(text))) => text.is_empty(),
        (Promise::EmptyList, Some(Value::Array(items))) => items.is_empty(),
        (Promise::AllTasksButTheAudit, Some(Value::Array(items))) => {
            let names: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            let expected: BTreeSet<&str> =
                Task::ALL.iter().filter(|&&task| task != Task::AuditRootUserCredentials).map(|task| task.as_str()).collect();
            assert_eq!(expected.len(), 4, "five tasks, one of them the audit");
            names.len() == items.len() && names.iter().copied().collect::<BTreeSet<_>>() == expected && names.len() == 4
        }
        (Promise::Bool(expected), Some(Value::Boolean(actual))) => expected == actual,
        (Promise::Number(expected), Some(Value::Integer(actual))) => *expected == *actual as f64,
        (Promise::Number(expected), Some(Value::Float(actual))) => expected == actual,
        (Promise::Duration(expected), Some(Value::String(text))) => humantime::parse_duration(text).ok() == Some(*expected),
        (Promise::Text(expected), Some(Value::String(actual))) => expected == actual,
        _ => false,
    };
    (!fits).then(|| format!("README says {expected:?}, the daemon uses {}", shown()))
}

/// `rootwarden check-config` on a file holding `text`, with no `ROOTWARDEN_*` variable (nor any
/// other) set: only the file and the defaults apply.
fn check_config(name: &str, text: &str) -> Output {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("config-defaults-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_rootwarden"))
        .env_clear()
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    output
}

/// `section.key` of every key in a configuration serialized to JSON (where an unset optional
/// value is `null`, not left out as in TOML).
fn keys_of(config: &Config) -> BTreeSet<String> {
    let value = serde_json::to_value(config).unwrap();
    let mut keys = BTreeSet::new();
    for (section, table) in value.as_object().unwrap() {
        for key in table.as_object().unwrap_or_else(|| panic!("`{section}` is a section")).keys() {
            keys.insert(format!("{section}.{key}"));
        }
    }
    keys
}

fn value_at<'a>(table: &'a toml::Table, key: &str) -> Option<&'a Value> {
    let (section, name) = key.split_once('.')?;
    table.get(section)?.as_table()?.get(name)
}

/// Every way `rows` disagree with the configuration used when no key is set (`printed`, as
/// check-config prints it) and with the keys a configuration is refused without (`refused`).
fn disagreements(
    rows: &[Row],
    printed: &toml::Table,
    refused: &BTreeSet<String>,
    not_interpreted: &[(&str, &str)],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut required = BTreeSet::new();
    for row in rows {
        if let Some((_, reason)) = not_interpreted.iter().find(|(key, _)| *key == row.key) {
            assert!(!reason.trim().is_empty(), "{} is skipped without a reason", row.key);
            continue;
        }
        let Some(expected) = interpret(&row.default) else {
            problems.push(format!(
                "README.md:{}: {}: cannot read the default `{}` (teach this test the form, or list the key in NOT_INTERPRETED with why)",
                row.line, row.key, row.default
            ));
            continue;
        };
        if expected == Promise::Required {
            required.insert(row.key.clone());
        } else if refused.contains(&row.key) {
            problems.push(format!(
                "README.md:{}: {} ({}): README gives a default, but a configuration without the key is refused",
                row.line, row.key, row.default
            ));
        } else if let Some(why) = mismatch(&expected, value_at(printed, &row.key)) {
            problems.push(format!("README.md:{}: {} ({}): {why}", row.line, row.key, row.default));
        }
    }
    if *refused != required {
        problems.push(format!("README marks {required:?} as required; a file without any key is refused for {refused:?}"));
    }
    for key in not_interpreted.iter().map(|(key, _)| key) {
        if !rows.iter().any(|row| row.key == *key) {
            problems.push(format!("NOT_INTERPRETED lists {key}, which has no row in README.md"));
        }
    }
    problems
}

#[test]
fn every_default_in_the_readme_table_is_the_one_the_daemon_uses() {
    let (rows, mut problems) = readme_rows();
    assert!(rows.len() >= 30, "the table was found and read: {} rows", rows.len());

    let output = check_config("required-only", REQUIRED_QUEUES);
    assert!(
        output.status.success(),
        "check-config refused the required keys alone: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    // What the binary uses is what the library's defaults say (the tests build on those).
    let mut defaults = Config::default();
    let queues: Config = toml::from_str(REQUIRED_QUEUES).unwrap();
    defaults.intake.queue_url = queues.intake.queue_url;
    defaults.intake.dead_letter_queue_url = queues.intake.dead_letter_queue_url;
    assert_eq!(toml::from_str::<Config>(&printed).unwrap(), defaults, "check-config printed:\n{printed}");
    let printed: toml::Table = toml::from_str(&printed).unwrap();

    // `required` keys: a file without any key is refused, and these are named.
    let output = check_config("empty", "");
    assert_eq!(output.status.code(), Some(78), "an empty file is refused: {output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    let refused: BTreeSet<String> = stderr
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- ")?.strip_suffix(" is required"))
        .map(str::to_owned)
        .collect();
    assert!(!refused.is_empty(), "{stderr}");

    problems.extend(disagreements(&rows, &printed, &refused, NOT_INTERPRETED));
    assert!(
        problems.is_empty(),
        "the README's configuration table and the daemon disagree:\n  - {}",
        problems.join("\n  - ")
    );
}

#[test]
fn every_key_the_configuration_accepts_has_a_row_in_the_readme_table_and_no_other() {
    let (rows, problems) = readme_rows();
    assert!(problems.is_empty(), "{problems:?}");
    let documented: Vec<&str> = rows.iter().map(|row| row.key.as_str()).collect();
    let unique: BTreeSet<&str> = documented.iter().copied().collect();
    assert_eq!(unique.len(), documented.len(), "a key has two rows: {documented:?}");
    let accepted = keys_of(&Config::default());
    let accepted: BTreeSet<&str> = accepted.iter().map(String::as_str).collect();
    let missing: Vec<_> = accepted.difference(&unique).collect();
    let unknown: Vec<_> = unique.difference(&accepted).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "keys the configuration accepts without a README row: {missing:?}; README rows for keys it does not accept: {unknown:?}"
    );
    // The keys serialized are the keys the loader accepts: a file writing every one of them
    // loads back unchanged, with no unknown key.
    let mut full = Config::default();
    full.aws.endpoint_url = Some("http://127.0.0.1:1".into());
    full.results.queue_url = Some("http://127.0.0.1:1/123456789012/results".into());
    full.intake.queue_url = Some("http://127.0.0.1:1/123456789012/in".into());
    full.intake.dead_letter_queue_url = Some("http://127.0.0.1:1/123456789012/dlq".into());
    assert_eq!(keys_of(&full), accepted.iter().map(|key| key.to_string()).collect());
    let text = toml::to_string(&full).unwrap();
    let written: toml::Table = toml::from_str(&text).unwrap();
    for key in &accepted {
        assert!(value_at(&written, key).is_some(), "{key} is written:\n{text}");
    }
    assert_eq!(Config::from_toml(&text).unwrap(), full);
}

/// The check itself: a table with a wrong default, an unreadable one, a row with fewer defaults
/// than keys, and a wrong `required` is refused with each key named, and only those.
#[test]
fn the_check_names_every_row_that_disagrees_or_cannot_be_read() {
    let table = "## Configuration\n\n\
        | key | default | meaning |\n\
        |---|---|---|\n\
        | `aws.region` | `us-east-1` | right |\n\
        | `sessions.duration` | `15m` | right, as 900s |\n\
        | `policy.allowed_senders` | `[]` (any) | right |\n\
        | `workers.concurrency` | 16 | wrong |\n\
        | `telemetry.otlp_endpoint` | none | wrong: empty, not unset |\n\
        | `policy.require_ticket` | every task | unreadable |\n\
        | `shutdown.grace` | `20s` | skipped |\n\
        | `intake.backoff_base`, `intake.backoff_max` | `2s` | one default for two keys |\n\
        | `intake.queue_url` | required | right, but the dead-letter queue's row is missing |\n\
        \n\
        after the table\n";
    let (rows, mut problems) = table_rows(table);
    let printed = toml::Table::try_from(Config::default()).unwrap();
    let refused = BTreeSet::from(["intake.queue_url".to_owned(), "intake.dead_letter_queue_url".to_owned()]);
    problems.extend(disagreements(&rows, &printed, &refused, &[("shutdown.grace", "a test of the skip list")]));
    let named = |key: &str| problems.iter().filter(|problem| problem.contains(key)).count();
    for key in
        ["workers.concurrency", "telemetry.otlp_endpoint", "policy.require_ticket", "intake.backoff_max", "dead_letter_queue_url"]
    {
        assert_eq!(named(key), 1, "{key} in {problems:#?}");
    }
    for key in ["aws.region", "sessions.duration", "policy.allowed_senders", "shutdown.grace"] {
        assert_eq!(named(key), 0, "{key} in {problems:#?}");
    }
    assert_eq!(problems.len(), 5, "{problems:#?}");
}

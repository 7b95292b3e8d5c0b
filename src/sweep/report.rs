//! A sweep's report: a CSV with one row per target account (the audit CSV starts with the
//! columns of AWS's sample audit script, with their meanings; a discovery's has a row per locked
//! resource, see [`super::discovery_report`]), a JSON document with every result, and the
//! summary table printed on the terminal.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use aws_smithy_types::date_time::{DateTime, Format};
use serde_json::{Value, json};

use super::discovery_report::{self, DISCOVERY_COLUMNS, DiscoveryCounts};
use super::state::{Paths, SweepState};
use super::{SweepError, discovers};
use crate::job::Task;
use crate::outcome::{JobResult, Outcome};

/// The columns of the audit CSV.
///
/// The first six are those of the audit script of AWS's sample for centralized root access (the
/// security blog's `root_user_last_login.csv`: per account, `aws sts assume-root` with the
/// IAMAuditRootUserCredentials task policy, `aws iam get-account-summary --query SummaryMap` read
/// with `jq -r '.<Key> // "No"'`, and `aws iam get-user --query User.PasswordLastUsed --output
/// text`), with the script's names, order, meanings and conventions, so what reads that file reads
/// this one:
///
/// - `AccountId`: the member account.
/// - `MFADevices`, `AccountAccessKeysPresent`, `AccountMFAEnabled`, `AccountPasswordPresent`: the
///   values of GetAccountSummary's `SummaryMap`, taken from the audit's `account_summary` finding.
///   `MFADevices` is the account's: every MFA device in it, the IAM users' (and unassigned virtual
///   devices) as well as the root user's; the root user's own count is `RootMFADevices`. A key the
///   map lacks is written `No`, as the script's `// "No"` writes it ([`SCRIPT_MISSING`]).
/// - `PasswordLastUsedTime`: the root user's `PasswordLastUsed` (GetUser) as the AWS CLI v2
///   prints a timestamp, ISO 8601 in UTC with `+00:00` (`2026-01-02T03:04:05+00:00`), and `None`
///   when GetUser has none (the password was never used, or there is no password), as the CLI's
///   text output prints a missing value ([`SCRIPT_NEVER`]).
///
/// An account without an audit (its job failed or was rejected, or has no result yet) has these
/// five columns empty, as the script's summary columns are when its calls fail; `Outcome` and
/// `Reason` say why, where the script would write the CLI's error text.
///
/// rootwarden's own columns follow: `AccountName`; `AccountSigningCertificatesPresent` (the
/// `SummaryMap` value, `No` when missing, like the script's); `RootMFADevices`, the root user's
/// MFA devices (ListMFADevices in the root session); `AccessKeyIds`, `AccessKeysLastUsed`
/// (`id=time` or `id=never`), `SigningCertificateIds`, `MFADeviceSerials` (the root user's,
/// `;`-separated); `Outcome`, `Reason`, `JobId`.
pub const AUDIT_COLUMNS: [&str; 16] = [
    "AccountId",
    "MFADevices",
    "AccountAccessKeysPresent",
    "AccountMFAEnabled",
    "AccountPasswordPresent",
    "PasswordLastUsedTime",
    "AccountName",
    "AccountSigningCertificatesPresent",
    "RootMFADevices",
    "AccessKeyIds",
    "AccessKeysLastUsed",
    "SigningCertificateIds",
    "MFADeviceSerials",
    "Outcome",
    "Reason",
    "JobId",
];

/// How many of [`AUDIT_COLUMNS`] are the sample script's.
pub const SCRIPT_COLUMNS: usize = 6;

/// What the sample script writes for a `SummaryMap` key the map lacks (`jq -r '.Key // "No"'`).
pub const SCRIPT_MISSING: &str = "No";

/// What the sample script writes for a root user without `PasswordLastUsed` (the AWS CLI's text
/// output of a missing value).
pub const SCRIPT_NEVER: &str = "None";

/// The columns of the CSV of the other tasks.
pub const CHANGE_COLUMNS: [&str; 10] = [
    "AccountId",
    "AccountName",
    "Outcome",
    "Reason",
    "ErrorCode",
    "Password",
    "AccessKeyIds",
    "SigningCertificateIds",
    "MFADeviceSerials",
    "JobId",
];

/// Counts for the terminal summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Target accounts.
    pub targets: usize,
    /// Accounts left out (management account, exclusions, not ACTIVE).
    pub skipped: usize,
    /// Accounts with a result.
    pub with_result: usize,
    /// Results `succeeded`.
    pub succeeded: usize,
    /// Results `no_change`.
    pub no_change: usize,
    /// Results `dry_run`.
    pub dry_run: usize,
    /// Results `failed` or `rejected`.
    pub failed: usize,
    /// Targets without a result yet.
    pub missing: usize,
    /// Audit: accounts whose root user has a password.
    pub with_password: usize,
    /// Audit: accounts whose root user has access keys.
    pub with_access_keys: usize,
    /// Audit: accounts whose root user has no MFA device.
    pub without_mfa: usize,
    /// Audit: accounts whose root user has signing certificates.
    pub with_signing_certificates: usize,
    /// Results received twice (redeliveries), ignored.
    pub duplicates: u64,
    /// A discovery's resources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoveryCounts>,
}

impl Summary {
    /// Counts the state.
    pub fn of(state: &SweepState) -> Self {
        let mut summary = Summary {
            targets: state.targets.len(),
            skipped: state.skipped.len(),
            duplicates: state.duplicates,
            discovery: discovers(state.definition.task).then(DiscoveryCounts::default),
            ..Summary::default()
        };
        for account in &state.targets {
            let Some(result) = state.results.get(&account.id) else {
                summary.missing += 1;
                continue;
            };
            summary.with_result += 1;
            match result.outcome {
                Outcome::Succeeded => summary.succeeded += 1,
                Outcome::NoChange => summary.no_change += 1,
                Outcome::DryRun => summary.dry_run += 1,
                Outcome::Rejected | Outcome::Failed => summary.failed += 1,
            }
            if let Some(counts) = summary.discovery.as_mut() {
                counts.add(&result.findings);
            }
            if state.definition.task == Task::AuditRootUserCredentials && !result.outcome.goes_to_dead_letter_queue() {
                let findings = &result.findings;
                let non_empty = |key: &str| findings[key].as_array().is_some_and(|l| !l.is_empty());
                summary.with_password += usize::from(findings["password_present"] == json!(true));
                summary.with_access_keys += usize::from(non_empty("access_keys"));
                summary.without_mfa += usize::from(!non_empty("mfa_devices"));
                summary.with_signing_certificates += usize::from(non_empty("signing_certificates"));
            }
        }
        summary
    }

    /// The terminal table.
    pub fn table(&self, task: Task) -> String {
        let mut rows: Vec<(&str, String)> = Vec::new();
        if task == Task::AuditRootUserCredentials {
            rows.push(("accounts audited", (self.succeeded + self.dry_run).to_string()));
            rows.push(("  with a root password", self.with_password.to_string()));
            rows.push(("  with root access keys", self.with_access_keys.to_string()));
            rows.push(("  with signing certificates", self.with_signing_certificates.to_string()));
            rows.push(("  without root MFA", self.without_mfa.to_string()));
        } else if let Some(found) = &self.discovery {
            rows.push(("resources inspected", found.inspected.to_string()));
            rows.push(("  locking everyone out", found.locked.to_string()));
            rows.push(("  unlocked", found.unlocked.to_string()));
            rows.push(("  still locked", found.left_locked.to_string()));
            rows.push(("    left for the next discovery", found.deferred.to_string()));
            rows.push(("  policy unreadable", found.unreadable.to_string()));
        } else {
            rows.push(("changed", self.succeeded.to_string()));
            rows.push(("already as wanted (no_change)", self.no_change.to_string()));
            rows.push(("dry run (nothing changed)", self.dry_run.to_string()));
        }
        rows.push(("failed or rejected", self.failed.to_string()));
        rows.push(("without a result yet", self.missing.to_string()));
        rows.push(("accounts targeted", self.targets.to_string()));
        rows.push(("accounts left out", self.skipped.to_string()));
        let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
        rows.iter().map(|(label, value)| format!("{label:<width$}  {value:>6}\n")).collect()
    }
}

/// Writes the CSV and JSON reports.
pub fn write(state: &SweepState, paths: &Paths) -> Result<Summary, SweepError> {
    let summary = Summary::of(state);
    write_csv(state, &paths.csv)?;
    let document = json!({
        "sweep_id": state.definition.sweep_id,
        "task": state.definition.task,
        "credentials": state.definition.credentials,
        "ticket": state.definition.ticket,
        "dry_run": state.definition.dry_run,
        "regions": state.definition.regions,
        "created_at": state.created_at,
        "complete": state.complete(),
        "summary": summary,
        "accounts": state.targets.iter().map(|account| json!({
            "account_id": account.id,
            "account_name": account.name,
            "result": state.results.get(&account.id),
        })).collect::<Vec<_>>(),
        "skipped": state.skipped,
    });
    let text = serde_json::to_vec_pretty(&document).expect("the report serializes");
    std::fs::write(&paths.json, text).map_err(|e| SweepError::Report(paths.json.clone(), e.to_string()))?;
    Ok(summary)
}

fn write_csv(state: &SweepState, path: &Path) -> Result<(), SweepError> {
    let error = |e: csv::Error| SweepError::Report(path.to_owned(), e.to_string());
    let mut writer = csv::Writer::from_path(path).map_err(error)?;
    let task = state.definition.task;
    let columns: &[&str] = match task {
        Task::AuditRootUserCredentials => &AUDIT_COLUMNS,
        _ if discovers(task) => &DISCOVERY_COLUMNS,
        _ => &CHANGE_COLUMNS,
    };
    writer.write_record(columns).map_err(error)?;
    for account in &state.targets {
        let result = state.results.get(&account.id);
        let rows = match task {
            Task::AuditRootUserCredentials => vec![audit_row(&account.id, &account.name, result)],
            _ if discovers(task) => discovery_report::rows(&account.id, &account.name, result),
            _ => vec![change_row(&account.id, &account.name, result)],
        };
        for row in rows {
            writer.write_record(row).map_err(error)?;
        }
    }
    writer.flush().map_err(|e| SweepError::Report(path.to_owned(), e.to_string()))
}

/// A result's outcome and reason, or `pending` when it has none yet.
pub(super) fn outcome_of(result: Option<&JobResult>) -> (String, String) {
    match result {
        None => ("pending".into(), "no result yet: resume the sweep".into()),
        Some(result) => (result.outcome.as_str().into(), result.reason.clone().unwrap_or_default()),
    }
}

/// The values of `key` in each object of `list`, joined with `;`.
fn joined(list: &Value, key: &str) -> String {
    list.as_array()
        .map_or(String::new(), |items| items.iter().filter_map(|item| item[key].as_str()).collect::<Vec<_>>().join(";"))
}

/// A `SummaryMap` value of the audit, or [`SCRIPT_MISSING`].
fn summary_value(findings: &Value, key: &str) -> String {
    findings["account_summary"][key].as_i64().map_or_else(|| SCRIPT_MISSING.to_owned(), |v| v.to_string())
}

/// A timestamp of the findings (RFC 3339, `2026-01-02T03:04:05Z`) as the AWS CLI v2 prints one:
/// `2026-01-02T03:04:05+00:00`, with microseconds when there are any (Python's `isoformat`).
/// Anything else is written as it is.
fn cli_timestamp(text: &str) -> String {
    let Ok(time) = DateTime::from_str(text, Format::DateTime) else {
        return text.to_owned();
    };
    let Ok(secs) = u64::try_from(time.secs()) else {
        return text.to_owned();
    };
    let whole = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string();
    let base = whole.trim_end_matches('Z');
    match time.subsec_nanos() / 1_000 {
        0 => format!("{base}+00:00"),
        micros => format!("{base}.{micros:06}+00:00"),
    }
}

/// The length of a list finding, or "" when the findings have none.
fn count(list: &Value) -> String {
    list.as_array().map_or(String::new(), |items| items.len().to_string())
}

fn audit_row(id: &str, name: &str, result: Option<&JobResult>) -> Vec<String> {
    let (outcome, reason) = outcome_of(result);
    let job_id = result.and_then(|r| r.job_id.clone()).unwrap_or_default();
    let findings = match result {
        Some(r) if !r.outcome.goes_to_dead_letter_queue() => &r.findings,
        _ => {
            let mut row = vec![id.to_owned()];
            row.extend(std::iter::repeat_n(String::new(), SCRIPT_COLUMNS - 1));
            row.extend([name.to_owned()]);
            row.extend(std::iter::repeat_n(String::new(), AUDIT_COLUMNS.len() - SCRIPT_COLUMNS - 4));
            row.extend([outcome, reason, job_id]);
            return row;
        }
    };
    let keys = &findings["access_keys"];
    let last_used = keys.as_array().map_or(String::new(), |items| {
        items
            .iter()
            .map(|k| format!("{}={}", k["id"].as_str().unwrap_or(""), k["last_used"].as_str().unwrap_or("never")))
            .collect::<Vec<_>>()
            .join(";")
    });
    vec![
        id.to_owned(),
        summary_value(findings, "MFADevices"),
        summary_value(findings, "AccountAccessKeysPresent"),
        summary_value(findings, "AccountMFAEnabled"),
        summary_value(findings, "AccountPasswordPresent"),
        findings["password_last_used"].as_str().map_or_else(|| SCRIPT_NEVER.to_owned(), cli_timestamp),
        name.to_owned(),
        summary_value(findings, "AccountSigningCertificatesPresent"),
        count(&findings["mfa_devices"]),
        joined(keys, "id"),
        last_used,
        joined(&findings["signing_certificates"], "id"),
        joined(&findings["mfa_devices"], "serial"),
        outcome,
        reason,
        job_id,
    ]
}

fn change_row(id: &str, name: &str, result: Option<&JobResult>) -> Vec<String> {
    let (outcome, reason) = outcome_of(result);
    let error_code = result.and_then(|r| r.error_code.clone()).unwrap_or_default();
    let job_id = result.and_then(|r| r.job_id.clone()).unwrap_or_default();
    let findings = result.map_or(&Value::Null, |r| &r.findings);
    // Delete findings are under `deleted` (or `would_delete` in a dry run).
    let changed = if findings["deleted"].is_object() { &findings["deleted"] } else { &findings["would_delete"] };
    let list = |key: &str| {
        changed[key]
            .as_array()
            .map_or(String::new(), |items| items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(";"))
    };
    vec![
        id.to_owned(),
        name.to_owned(),
        outcome,
        reason,
        error_code,
        changed["password"].as_bool().map_or(String::new(), |b| b.to_string()),
        list("access_keys"),
        list("signing_certificates"),
        list("mfa_devices"),
        job_id,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: Outcome, findings: Value) -> JobResult {
        JobResult {
            version: 1,
            job_id: Some("sweep-s-111122223333".into()),
            account_id: Some("111122223333".into()),
            task: Some(Task::AuditRootUserCredentials),
            outcome,
            reason: None,
            error_code: None,
            requested_by: None,
            ticket: None,
            dry_run: false,
            findings,
            root_session_access_key_id: None,
            attempt: 1,
            message_id: "m".into(),
            started_at: String::new(),
            finished_at: String::new(),
        }
    }

    fn column(row: &[String], name: &str) -> String {
        row[AUDIT_COLUMNS.iter().position(|c| *c == name).unwrap()].clone()
    }

    #[test]
    fn audit_rows_start_with_the_script_columns_and_their_meanings() {
        assert_eq!(
            AUDIT_COLUMNS[..SCRIPT_COLUMNS],
            [
                "AccountId",
                "MFADevices",
                "AccountAccessKeysPresent",
                "AccountMFAEnabled",
                "AccountPasswordPresent",
                "PasswordLastUsedTime"
            ]
        );
        // Three MFA devices in the account (two IAM users'), one of them the root user's.
        let findings = json!({
            "password_present": true, "password_last_used": "2026-01-02T03:04:05Z",
            "access_keys": [{"id": "AKIA1", "last_used": null}, {"id": "AKIA2", "last_used": "2026-02-01T00:00:00Z"}],
            "mfa_devices": [{"serial": "arn:mfa"}], "signing_certificates": [],
            "account_summary": {"MFADevices": 3, "AccountAccessKeysPresent": 1, "AccountMFAEnabled": 1, "AccountPasswordPresent": 1,
                                "AccountSigningCertificatesPresent": 0},
        });
        let row = audit_row("111122223333", "prod", Some(&result(Outcome::Succeeded, findings)));
        assert_eq!(row.len(), AUDIT_COLUMNS.len());
        assert_eq!(&row[..SCRIPT_COLUMNS], ["111122223333", "3", "1", "1", "1", "2026-01-02T03:04:05+00:00"]);
        assert_eq!(column(&row, "AccountName"), "prod");
        assert_eq!(column(&row, "AccountSigningCertificatesPresent"), "0");
        assert_eq!(column(&row, "RootMFADevices"), "1");
        assert_eq!(column(&row, "MFADeviceSerials"), "arn:mfa");
        assert_eq!(column(&row, "AccessKeyIds"), "AKIA1;AKIA2");
        assert_eq!(column(&row, "AccessKeysLastUsed"), "AKIA1=never;AKIA2=2026-02-01T00:00:00Z");
        assert_eq!(column(&row, "Outcome"), "succeeded");
    }

    #[test]
    fn audit_rows_write_what_the_script_writes_for_missing_values() {
        // A summary without the keys, a password never used.
        let findings = json!({"password_present": false, "password_last_used": null, "access_keys": [],
                              "mfa_devices": [], "signing_certificates": [], "account_summary": {}});
        let row = audit_row("111122223333", "prod", Some(&result(Outcome::Succeeded, findings)));
        assert_eq!(&row[1..SCRIPT_COLUMNS], ["No", "No", "No", "No", "None"]);
        assert_eq!(column(&row, "AccountSigningCertificatesPresent"), "No");
        assert_eq!(column(&row, "RootMFADevices"), "0");

        // No audit: nothing was read, the outcome says why.
        for row in [audit_row("111122223333", "prod", None), {
            let mut failed = result(Outcome::Failed, Value::Null);
            failed.reason = Some("AccessDenied".into());
            audit_row("111122223333", "prod", Some(&failed))
        }] {
            assert_eq!(row.len(), AUDIT_COLUMNS.len());
            assert_eq!(row[0], "111122223333");
            assert!(row[1..SCRIPT_COLUMNS].iter().all(String::is_empty), "{row:?}");
            assert_eq!(column(&row, "AccountName"), "prod");
            assert_eq!(column(&row, "RootMFADevices"), "");
        }
        let pending = audit_row("111122223333", "prod", None);
        assert_eq!(
            (column(&pending, "Outcome"), column(&pending, "Reason")),
            ("pending".into(), "no result yet: resume the sweep".into())
        );
    }

    #[test]
    fn a_discovery_table_shows_what_was_left_for_the_next_discovery() {
        let counts = DiscoveryCounts { inspected: 50, locked: 30, unlocked: 18, left_locked: 12, deferred: 11, unreadable: 1 };
        let summary = Summary { discovery: Some(counts), targets: 1, ..Summary::default() };
        let table = summary.table(Task::S3UnlockBucketPolicy);
        let row = |label: &str| {
            let line =
                table.lines().find(|line| line.trim_start().starts_with(label)).unwrap_or_else(|| panic!("{label}: {table}"));
            line.split_whitespace().last().unwrap().to_owned()
        };
        assert_eq!(row("locking everyone out"), "30");
        assert_eq!(row("still locked"), "12");
        assert_eq!(row("left for the next discovery"), "11");
    }

    #[test]
    fn timestamps_are_written_as_the_aws_cli_v2_prints_them() {
        assert_eq!(cli_timestamp("2026-01-02T03:04:05Z"), "2026-01-02T03:04:05+00:00");
        assert_eq!(cli_timestamp("2026-01-02T03:04:05.25Z"), "2026-01-02T03:04:05.250000+00:00");
        assert_eq!(cli_timestamp("not a time"), "not a time");
    }
}

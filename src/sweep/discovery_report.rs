//! A discovery sweep's report rows: one per locked (or unreadable) resource, so the CSV lists
//! account, resource, region, the locking statements and what became of each; an account with
//! nothing locked has one row saying so.

use serde_json::Value;

use super::report::outcome_of;
use crate::outcome::JobResult;

/// The columns of a discovery's CSV.
pub const DISCOVERY_COLUMNS: [&str; 9] =
    ["AccountId", "AccountName", "Resource", "Region", "LockingStatements", "Outcome", "Reason", "ErrorCode", "JobId"];

/// What the discoveries of a sweep found, over every account with a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiscoveryCounts {
    /// Buckets or queues whose policy was read.
    pub inspected: usize,
    /// Of those, locking everyone out.
    pub locked: usize,
    /// Locked ones unlocked by the sweep (`--apply`).
    pub unlocked: usize,
    /// Locked ones still locked (a dry run, an unlock that failed, or one deferred).
    pub left_locked: usize,
    /// Locked ones an applied discovery left for the next one: their previous policies would not
    /// have fitted in its result.
    pub deferred: usize,
    /// Resources whose policy could not be read.
    pub unreadable: usize,
}

impl DiscoveryCounts {
    /// Adds one account's findings.
    pub fn add(&mut self, findings: &Value) {
        let locked = findings["locked"].as_array().map_or(&[][..], Vec::as_slice);
        self.inspected += findings["inspected"].as_u64().unwrap_or(0) as usize;
        let unlisted = |list: &str| findings["unlisted"][list].as_u64().unwrap_or(0) as usize;
        self.locked += locked.len() + unlisted("locked");
        self.unlocked += locked.iter().filter(|entry| entry["outcome"] == "succeeded").count();
        self.left_locked += findings["left_locked"].as_u64().unwrap_or(0) as usize;
        self.deferred += findings["deferred"].as_u64().unwrap_or(0) as usize;
        self.unreadable += findings["errors"].as_array().map_or(0, Vec::len) + unlisted("errors");
    }
}

/// The rows of one account.
pub fn rows(id: &str, name: &str, result: Option<&JobResult>) -> Vec<Vec<String>> {
    let (outcome, reason) = outcome_of(result);
    let job_id = result.and_then(|r| r.job_id.clone()).unwrap_or_default();
    let error_code = result.and_then(|r| r.error_code.clone()).unwrap_or_default();
    let findings = result.map_or(&Value::Null, |r| &r.findings);
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let resource = |entry: &Value| text(if entry["bucket"].is_string() { &entry["bucket"] } else { &entry["queue_url"] });
    let mut rows = Vec::new();
    for entry in findings["locked"].as_array().into_iter().flatten() {
        let locking: Vec<&str> = entry["locking_statements"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        rows.push(vec![
            id.to_owned(),
            name.to_owned(),
            resource(entry),
            text(&entry["region"]),
            locking.join(";"),
            text(&entry["outcome"]),
            text(&entry["reason"]),
            text(&entry["error_code"]),
            job_id.clone(),
        ]);
    }
    for entry in findings["errors"].as_array().into_iter().flatten() {
        let (code, why) = (text(&entry["error_code"]), text(&entry["reason"]));
        rows.push(vec![
            id.to_owned(),
            name.to_owned(),
            resource(entry),
            text(&entry["region"]),
            String::new(),
            "failed".into(),
            why,
            code,
            job_id.clone(),
        ]);
    }
    if rows.is_empty() {
        rows.push(vec![
            id.to_owned(),
            name.to_owned(),
            String::new(),
            String::new(),
            String::new(),
            outcome,
            reason,
            error_code,
            job_id,
        ]);
    }
    rows
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn result(outcome: &str, findings: Value) -> JobResult {
        serde_json::from_value(json!({
            "version": 1, "job_id": "sweep-s-111122223333", "account_id": "111122223333", "task": "S3UnlockBucketPolicy",
            "outcome": outcome, "reason": null, "error_code": null, "requested_by": null, "ticket": null, "dry_run": true,
            "findings": findings, "root_session_access_key_id": "ASIA1", "attempt": 1, "message_id": "m",
            "started_at": "t", "finished_at": "t",
        }))
        .unwrap()
    }

    #[test]
    fn a_row_per_locked_or_unreadable_resource_and_one_for_an_account_with_none() {
        let findings = json!({
            "discover": true, "inspected": 3, "left_locked": 1,
            "locked": [{"bucket": "b-1", "region": "eu-west-1", "locking_statements": ["DenyAll", "#2"], "outcome": "dry_run"}],
            "errors": [{"bucket": "b-2", "region": "us-east-1", "error_code": "AccessDenied", "reason": "denied"}],
        });
        let found = rows("111122223333", "prod", Some(&result("dry_run", findings.clone())));
        assert_eq!(found[0][2..6], ["b-1", "eu-west-1", "DenyAll;#2", "dry_run"]);
        assert_eq!(found[1][2..8], ["b-2", "us-east-1", "", "failed", "denied", "AccessDenied"]);
        let mut counts = DiscoveryCounts::default();
        counts.add(&findings);
        assert_eq!(counts, DiscoveryCounts { inspected: 3, locked: 1, unlocked: 0, left_locked: 1, deferred: 0, unreadable: 1 });

        let none = rows("111122223333", "prod", Some(&result("no_change", json!({"inspected": 4, "locked": [], "errors": []}))));
        assert_eq!(none.len(), 1);
        assert_eq!((none[0][2].as_str(), none[0][5].as_str()), ("", "no_change"));
        assert_eq!(rows("111122223333", "prod", None)[0][5], "pending");
    }

    #[test]
    fn resources_counted_but_not_listed_are_in_the_counts() {
        let findings = json!({
            "discover": true, "inspected": 900, "left_locked": 700, "deferred": 650,
            "locked": [{"bucket": "b-1", "region": "eu-west-1", "locking_statements": ["DenyAll"], "outcome": "deferred"}],
            "errors": [], "unlisted": {"locked": 699, "errors": 3},
        });
        let mut counts = DiscoveryCounts::default();
        counts.add(&findings);
        assert_eq!((counts.locked, counts.left_locked, counts.deferred, counts.unreadable), (700, 700, 650, 3));
    }
}

//! A resource policy document as read from AWS or given to restore: its statements, their ids,
//! and the document without some of them, written back with every untouched statement as it was
//! (same JSON, same order, same key order).
//!
//! Statement ids: a statement's `Sid` when it names that statement alone, else `#<index>` (its
//! 0-based position in `Statement`). A `Sid` that is empty, not a string, starts with `#` (it
//! would read as an index), or is shared with another statement is not an id: a statement's id
//! must name one statement, as it is what a report shows and what a job asks to remove. Each
//! statement has exactly one id: `#2` does not name statement 2 when it has a `Sid`, so a job
//! and a report always spell a statement the same way.

use serde_json::Value;

use super::classify::{self, Classification, StatementReport};
use super::restore;

/// The service whose resource policy a document is: it sets the size limit and the actions that
/// write the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// An S3 bucket policy (`GetBucketPolicy`, `PutBucketPolicy`, `DeleteBucketPolicy`).
    S3,
    /// An SQS queue's `Policy` attribute (`GetQueueAttributes`, `SetQueueAttributes`).
    Sqs,
}

impl Service {
    /// The largest policy the service accepts, in bytes of the compact JSON put back.
    pub fn policy_size_limit(self) -> usize {
        match self {
            // "Bucket policies are limited to 20 KB in size": Amazon S3 User Guide, "Bucket
            // policies and user policies" (AmazonS3/latest/userguide/using-iam-policies.html).
            Self::S3 => 20_480,
            // "Bytes: 8,192": Amazon SQS Developer Guide, "Amazon SQS policy quotas"
            // (AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-policies.html). It also caps
            // statements (20), principals (50), conditions (10) and actions per statement (7),
            // which SetQueueAttributes enforces itself; rootwarden checks only the size.
            Self::Sqs => 8_192,
        }
    }

    /// The actions that write the policy: a Deny of these to everyone keeps the policy from being
    /// fixed by anyone but a root session.
    pub fn policy_actions(self) -> &'static [&'static str] {
        match self {
            Self::S3 => &["s3:PutBucketPolicy", "s3:DeleteBucketPolicy"],
            Self::Sqs => &["sqs:SetQueueAttributes"],
        }
    }

    /// What operators call the policy, for messages.
    pub fn policy_name(self) -> &'static str {
        match self {
            Self::S3 => "S3 bucket policy",
            Self::Sqs => "SQS queue policy",
        }
    }
}

/// Why a policy could not be read, validated or changed. Messages are sentences naming the
/// problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The policy read from AWS is not a policy document (AWS validates policies, so this means a
    /// bug or a change of format, not an operator's mistake).
    #[error("the policy read from AWS is not a policy document: {0}")]
    Unreadable(String),
    /// The policy to restore is not valid; every problem found, each a sentence.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// Some ids to remove name no statement; nothing was removed.
    #[error("no statement has the id(s) {}; the policy's statement ids are {}", quoted(.missing), quoted(.known))]
    UnknownStatements {
        /// The ids asked for that name no statement, in the order asked.
        missing: Vec<String>,
        /// Every statement's id, in policy order.
        known: Vec<String>,
    },
}

fn quoted(ids: &[String]) -> String {
    if ids.is_empty() { "(none)".to_owned() } else { ids.iter().map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", ") }
}

/// A resource policy: the parsed JSON object, its key order kept. Its `Statement` is a statement
/// object or a list of them.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    value: Value,
}

impl PolicyDocument {
    /// Parses a policy read from AWS (GetBucketPolicy / the queue's `Policy` attribute). Lenient
    /// as IAM is: `Statement` may be one object or a list.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PolicyError::Unreadable(format!("it is not JSON ({e})")))?;
        let unreadable = |problem: &str| Err(PolicyError::Unreadable(problem.to_owned()));
        let Some(object) = value.as_object() else { return unreadable("it is not a JSON object") };
        match object.get("Statement") {
            None => return unreadable("it has no `Statement`"),
            Some(Value::Object(_)) => {}
            Some(Value::Array(list)) => {
                if let Some(index) = list.iter().position(|s| !s.is_object()) {
                    return unreadable(&format!("statement #{index} is not an object"));
                }
            }
            Some(_) => return unreadable("`Statement` is neither a statement nor a list of statements"),
        }
        Ok(Self { value })
    }

    /// Validates a policy to restore, given as a JSON object or as a string holding one: `Version`
    /// "2012-10-17" or "2008-10-17", `Statement` a non-empty list of objects each with `Effect`
    /// Allow or Deny, and the compact JSON within the service's size limit. Reports every problem
    /// at once.
    pub fn for_restore(value: &Value, service: Service) -> Result<Self, PolicyError> {
        restore::validate(value, service).map(|value| Self { value }).map_err(PolicyError::Invalid)
    }

    /// The statements, in policy order (one when `Statement` is a single object).
    fn statements(&self) -> &[Value] {
        match &self.value["Statement"] {
            Value::Array(list) => list,
            one => std::slice::from_ref(one),
        }
    }

    /// Each statement's id, in policy order: its `Sid` when that names it alone, else `#<index>`
    /// (see the module documentation).
    pub fn statement_ids(&self) -> Vec<String> {
        let sids: Vec<Option<&str>> = self.statements().iter().map(usable_sid).collect();
        let unique = |sid: &str| sids.iter().filter(|other| **other == Some(sid)).count() == 1;
        sids.iter()
            .enumerate()
            .map(|(index, sid)| match sid {
                Some(sid) if unique(sid) => (*sid).to_owned(),
                _ => format!("#{index}"),
            })
            .collect()
    }

    /// The document without the statements named by `ids` (as [`Self::statement_ids`] spells
    /// them). An id that names no statement fails the whole call, naming every such id, and nothing
    /// is removed. `Ok(None)` when no statement is left: the caller then deletes the policy.
    pub fn without(&self, ids: &[String]) -> Result<Option<PolicyDocument>, PolicyError> {
        let known = self.statement_ids();
        let mut missing: Vec<String> = Vec::new();
        for id in ids.iter().filter(|id| !known.contains(id)) {
            if !missing.contains(id) {
                missing.push(id.clone());
            }
        }
        if !missing.is_empty() {
            return Err(PolicyError::UnknownStatements { missing, known });
        }
        let statements = self.statements();
        let kept: Vec<Value> =
            statements.iter().zip(&known).filter(|(_, id)| !ids.contains(id)).map(|(s, _)| s.clone()).collect();
        if kept.is_empty() {
            return Ok(None);
        }
        let mut value = self.value.clone();
        if kept.len() < statements.len() {
            // Only a list can lose some statements and keep others; replacing the value of an
            // existing key keeps its place among the document's keys.
            value["Statement"] = Value::Array(kept);
        }
        Ok(Some(Self { value }))
    }

    /// The compact JSON text, which is what is put back.
    pub fn to_json(&self) -> String {
        self.value.to_string()
    }

    /// The parsed JSON object.
    pub fn as_value(&self) -> &Value {
        &self.value
    }

    /// Every statement's classification, in policy order, with the ids of [`Self::statement_ids`].
    pub fn classify(&self, service: Service, owner_account: &str) -> Vec<StatementReport> {
        let ids = self.statement_ids();
        let statements = self.statements().iter().enumerate();
        statements
            .zip(ids)
            .map(|((index, s), id)| StatementReport { id, ..classify::classify(s, index, service, owner_account) })
            .collect()
    }

    /// The ids of the statements classified `locks_out_everyone`, in policy order.
    pub fn locking_statements(&self, service: Service, owner_account: &str) -> Vec<String> {
        let reports = self.classify(service, owner_account).into_iter();
        reports.filter(|r| r.classification == Classification::LocksOutEveryone).map(|r| r.id).collect()
    }
}

/// A statement's `Sid` when it can serve as an id (see the module documentation).
pub(super) fn usable_sid(statement: &Value) -> Option<&str> {
    statement.get("Sid").and_then(Value::as_str).filter(|sid| !sid.is_empty() && !sid.starts_with('#'))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Classification::{Allows, DeniesSome, LocksOutEveryone};
    use super::*;

    const OWNER: &str = "111122223333";

    /// Keys deliberately out of alphabetical order, so a round trip that sorted them would show.
    const BUCKET_POLICY: &str = r#"{
      "Version": "2012-10-17",
      "Id": "BucketPolicy",
      "Statement": [
        {"Sid": "CrossAccountRead", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
         "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]},
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "DenyOutsideVpce", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"], "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}},
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/Writer"}, "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*"}
      ]
    }"#;

    const QUEUE_POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [
        {"Sid": "SnsSend", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage", "Resource": "*"},
        {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "VpceOnly", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sqs:*", "Resource": "*",
         "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}},
        {"Effect": "Deny", "Principal": "*", "Action": "sqs:SetQueueAttributes", "Resource": "*", "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}
    ]}"#;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn statements(document: &PolicyDocument) -> Vec<Value> {
        document.statements().to_vec()
    }

    #[test]
    fn a_bucket_policy_is_classified_statement_by_statement() {
        let policy = PolicyDocument::parse(BUCKET_POLICY).unwrap();
        assert_eq!(policy.statement_ids(), ["CrossAccountRead", "DenyInsecureTransport", "DenyOutsideVpce", "#3"]);
        let reports = policy.classify(Service::S3, OWNER);
        let verdicts: Vec<(&str, Classification)> = reports.iter().map(|r| (r.id.as_str(), r.classification)).collect();
        let expected = [
            ("CrossAccountRead", Allows),
            ("DenyInsecureTransport", DeniesSome),
            ("DenyOutsideVpce", LocksOutEveryone),
            ("#3", Allows),
        ];
        assert_eq!(verdicts, expected);
        assert!(
            reports[2].reason.contains("unless the request comes through VPC endpoint(s) vpce-1a2b3c4d"),
            "{}",
            reports[2].reason
        );
        assert_eq!(policy.locking_statements(Service::S3, OWNER), ["DenyOutsideVpce"]);
    }

    #[test]
    fn removing_statements_keeps_the_others_as_they_were() {
        let policy = PolicyDocument::parse(BUCKET_POLICY).unwrap();
        let before = statements(&policy);
        let after = policy.without(&ids(&["DenyOutsideVpce", "#3"])).unwrap().unwrap();
        assert_eq!(statements(&after), before[..2]);
        assert_eq!(after.statement_ids(), ["CrossAccountRead", "DenyInsecureTransport"]);
        // Same text as the input's, compacted: document and statement keys in their first order.
        let expected = concat!(
            r#"{"Version":"2012-10-17","Id":"BucketPolicy","Statement":["#,
            r#"{"Sid":"CrossAccountRead","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"#,
            r#""Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]},"#,
            r#"{"Sid":"DenyInsecureTransport","Effect":"Deny","Principal":"*","Action":"s3:*","#,
            r#""Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#,
        );
        assert_eq!(after.to_json(), expected);
        assert_eq!(PolicyDocument::parse(&after.to_json()).unwrap(), after);
    }

    #[test]
    fn unknown_ids_are_all_named_and_nothing_is_removed() {
        let policy = PolicyDocument::parse(BUCKET_POLICY).unwrap();
        let error = policy.without(&ids(&["DenyOutsideVpce", "Nope", "#7", "Nope"])).unwrap_err();
        let known = ids(&["CrossAccountRead", "DenyInsecureTransport", "DenyOutsideVpce", "#3"]);
        assert_eq!(error, PolicyError::UnknownStatements { missing: ids(&["Nope", "#7"]), known });
        assert_eq!(
            error.to_string(),
            "no statement has the id(s) `Nope`, `#7`; the policy's statement ids are `CrossAccountRead`, `DenyInsecureTransport`, `DenyOutsideVpce`, `#3`"
        );
        // A statement with a Sid is named by it alone.
        assert!(matches!(policy.without(&ids(&["#2"])), Err(PolicyError::UnknownStatements { .. })));
    }

    #[test]
    fn removing_every_statement_leaves_no_policy() {
        let policy = PolicyDocument::parse(BUCKET_POLICY).unwrap();
        assert_eq!(policy.without(&policy.statement_ids()).unwrap(), None);
        assert_eq!(policy.without(&[]).unwrap(), Some(policy));
    }

    #[test]
    fn a_single_statement_object_is_read_as_iam_reads_it() {
        let policy =
            PolicyDocument::parse(r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":"*","Action":"*"}}"#)
                .unwrap();
        assert_eq!(policy.statement_ids(), ["#0"]);
        assert_eq!(policy.locking_statements(Service::Sqs, OWNER), ["#0"]);
        assert_eq!(policy.without(&ids(&["#0"])).unwrap(), None);
    }

    #[test]
    fn a_shared_or_index_like_sid_is_not_an_id() {
        let statements = json!([{"Sid": "A", "Effect": "Allow"}, {"Sid": "A", "Effect": "Deny"}, {"Sid": "#0", "Effect": "Allow"}, {"Sid": "", "Effect": "Allow"}]);
        let policy = PolicyDocument::parse(&json!({"Version": "2012-10-17", "Statement": statements}).to_string()).unwrap();
        assert_eq!(policy.statement_ids(), ["#0", "#1", "#2", "#3"]);
    }

    #[test]
    fn what_is_not_a_policy_document_is_unreadable() {
        let problem = |text: &str| match PolicyDocument::parse(text) {
            Err(PolicyError::Unreadable(problem)) => problem,
            other => panic!("{other:?}"),
        };
        assert!(problem("{").starts_with("it is not JSON ("));
        assert_eq!(problem("[]"), "it is not a JSON object");
        assert_eq!(problem(r#"{"Version":"2012-10-17"}"#), "it has no `Statement`");
        assert_eq!(problem(r#"{"Statement":[{}, 1]}"#), "statement #1 is not an object");
        assert_eq!(problem(r#"{"Statement":"x"}"#), "`Statement` is neither a statement nor a list of statements");
        let message = PolicyDocument::parse("[]").unwrap_err().to_string();
        assert_eq!(message, "the policy read from AWS is not a policy document: it is not a JSON object");
    }

    #[test]
    fn a_queue_policy_has_the_same_shapes() {
        let policy = PolicyDocument::parse(QUEUE_POLICY).unwrap();
        let reports = policy.classify(Service::Sqs, OWNER);
        let verdicts: Vec<(&str, Classification)> = reports.iter().map(|r| (r.id.as_str(), r.classification)).collect();
        assert_eq!(
            verdicts,
            [("SnsSend", Allows), ("TlsOnly", DeniesSome), ("VpceOnly", LocksOutEveryone), ("#3", LocksOutEveryone)]
        );
        assert!(reports[3].reason.starts_with(
            "denies sqs:SetQueueAttributes to every principal unless the request comes from IP address(es) 10.0.0.0/8"
        ));
        let before = statements(&policy);
        let unlocked = policy.without(&policy.locking_statements(Service::Sqs, OWNER)).unwrap().unwrap();
        assert_eq!(statements(&unlocked), before[..2]);
        assert!(unlocked.locking_statements(Service::Sqs, OWNER).is_empty());
        assert_eq!(policy.without(&policy.statement_ids()).unwrap(), None);
    }

    #[test]
    fn a_policy_to_restore_is_validated_for_its_service() {
        let queue: Value = serde_json::from_str(QUEUE_POLICY).unwrap();
        let restored = PolicyDocument::for_restore(&Value::String(QUEUE_POLICY.to_owned()), Service::Sqs).unwrap();
        assert_eq!(restored.as_value(), &queue);
        assert_eq!(restored.to_json(), queue.to_string());
        let error = PolicyDocument::for_restore(&json!({"Statement": {}}), Service::Sqs).unwrap_err();
        let message = "restore_policy: `Version` is missing; it must be \"2012-10-17\" or \"2008-10-17\"; restore_policy: `Statement` must be a list of statements";
        assert_eq!(error.to_string(), message);
    }
}

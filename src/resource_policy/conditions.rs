//! Rule 4 of [`mod@super::classify`]'s documentation: whether a Deny's `Condition` block can
//! refuse an administrator's ordinary request. The keys are listed there ([`LOCK_OUT_KEYS`],
//! [`HYGIENE_KEYS`], [`ABSENT_KEYS`], [`FALSE_KEYS`]); this module reads the block and words the reason.

use std::fmt;

use serde_json::{Map, Value};

use super::classify::{ABSENT_KEYS, FALSE_KEYS, HYGIENE_KEYS, LOCK_OUT_KEYS};
use super::scope::list;

/// The verdict on a statement's conditions; each phrase ends the reason sentence.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// No condition: the Deny always applies.
    Unconditional,
    /// A lock-out key and no hygiene test: an administrator's ordinary request can be refused.
    LocksOut(String),
    /// A test an administrator's ordinary request passes (request hygiene), or one only a
    /// service's request can meet: the Deny spares administrators.
    Spares(String),
    /// Only keys rootwarden does not know, or a block it cannot read.
    Unknown(String),
}

#[derive(PartialEq, Eq)]
enum Kind {
    Hygiene,
    /// A test only a request made by or through an AWS service can meet.
    ServiceOnly,
    LockOut,
    Unknown,
}

/// One key tested by one operator.
struct Test<'a> {
    operator: &'a str,
    key: &'a str,
    values: &'a Value,
}

/// Judges a statement's `Condition` (absent when `None`).
pub(super) fn judge(condition: Option<&Value>) -> Verdict {
    let unreadable =
        || Verdict::Unknown("under a `Condition` rootwarden cannot read, so it is not counted as a lock-out".to_owned());
    let Some(condition) = condition else { return Verdict::Unconditional };
    let Some(blocks) = condition.as_object() else { return unreadable() };
    let Some(tests) = tests(blocks) else { return unreadable() };
    // An empty block tests nothing, so, as in IAM, the Deny applies to every request.
    if tests.is_empty() {
        return Verdict::Unconditional;
    }
    // IAM ANDs the tests: one that an administrator's request passes keeps the Deny from it.
    if let Some(test) = tests.iter().find(|t| t.kind() == Kind::Hygiene) {
        return Verdict::Spares(format!(
            "only for requests that fail request hygiene ({test}), which an administrator's ordinary request passes"
        ));
    }
    if let Some(test) = tests.iter().find(|t| t.kind() == Kind::ServiceOnly) {
        return Verdict::Spares(format!(
            "only for requests made by or through an AWS service ({test}), which an administrator's own request is not"
        ));
    }
    if let Some(test) = tests.iter().find(|t| t.kind() == Kind::LockOut) {
        return Verdict::LocksOut(test.lock_out_phrase());
    }
    let keys: Vec<&str> = tests.iter().map(|t| t.key).collect();
    Verdict::Unknown(format!(
        "under condition key(s) {}, which rootwarden does not know and does not count as a lock-out",
        list(&keys)
    ))
}

/// The block's tests, or `None` when an operator's value is not an object of keys.
fn tests(blocks: &Map<String, Value>) -> Option<Vec<Test<'_>>> {
    let mut tests = Vec::new();
    for (operator, keys) in blocks {
        tests.extend(keys.as_object()?.iter().map(|(key, values)| Test { operator, key, values }));
    }
    Some(tests)
}

impl Test<'_> {
    /// The operator lower-cased, its set prefix and `IfExists` suffix set aside: neither changes
    /// whether an administrator's request can meet the test.
    fn operator(&self) -> String {
        let lower = self.operator.to_ascii_lowercase();
        let bare = lower.strip_prefix("foranyvalue:").or_else(|| lower.strip_prefix("forallvalues:")).unwrap_or(&lower);
        bare.strip_suffix("ifexists").unwrap_or(bare).to_owned()
    }

    fn kind(&self) -> Kind {
        if listed(self.key, HYGIENE_KEYS) {
            // Denying when aws:SecureTransport is true refuses every HTTPS request.
            let refuses_tls =
                self.key.eq_ignore_ascii_case("aws:SecureTransport") && self.operator() == "bool" && self.has_true();
            return if refuses_tls { Kind::LockOut } else { Kind::Hygiene };
        }
        if listed(self.key, ABSENT_KEYS) {
            return if self.matches_an_absent_key() { Kind::LockOut } else { Kind::ServiceOnly };
        }
        if listed(self.key, FALSE_KEYS) {
            let spares = self.operator() == "bool" && !self.has_false();
            return if spares { Kind::ServiceOnly } else { Kind::LockOut };
        }
        if listed(self.key, LOCK_OUT_KEYS) { Kind::LockOut } else { Kind::Unknown }
    }

    /// Whether IAM counts the test as met when the request lacks the key: `Null` true, any
    /// `…IfExists`, `ForAllValues:` (nothing to disagree), and negated operators; not
    /// `ForAnyValue:` nor the other operators.
    fn matches_an_absent_key(&self) -> bool {
        let lower = self.operator.to_ascii_lowercase();
        if lower.ends_with("ifexists") || lower.starts_with("forallvalues:") {
            return true;
        }
        if lower.starts_with("foranyvalue:") {
            return false;
        }
        let operator = self.operator();
        if operator == "null" { self.has_true() } else { operator.contains("not") }
    }

    fn has_true(&self) -> bool {
        self.has_bool(true)
    }

    fn has_false(&self) -> bool {
        self.has_bool(false)
    }

    /// Whether one of the test's values is `wanted`, as a JSON boolean or a string.
    fn has_bool(&self, wanted: bool) -> bool {
        let values = match self.values {
            Value::Array(many) => many.iter().collect(),
            one => vec![one],
        };
        let text = if wanted { "true" } else { "false" };
        values.iter().any(|v| v.as_bool() == Some(wanted) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(text)))
    }

    /// The end of a lock-out reason: when the Deny applies, and that an administrator can be
    /// caught by it.
    fn lock_out_phrase(&self) -> String {
        let (key, values) = (self.key, self.rendered_values());
        let operator = self.operator();
        if operator == "null" {
            let state = if self.has_true() { "absent" } else { "present" };
            return format!("when {key} is {state} ({self}), as it can be for an administrator's ordinary request");
        }
        if listed(key, ABSENT_KEYS) {
            return format!(
                "when the request carries no {key} ({self}), as an administrator's own request never does (only AWS services' do)"
            );
        }
        if listed(key, FALSE_KEYS) && operator == "bool" {
            return format!("when {key} is false ({self}), as it is for an administrator's own request");
        }
        let what = match key.to_ascii_lowercase().as_str() {
            "aws:sourcevpce" => format!("the request comes through VPC endpoint(s) {values} ({key})"),
            "aws:sourcevpc" | "aws:sourcevpcarn" => format!("the request comes from VPC(s) {values} ({key})"),
            "aws:sourceip" | "aws:vpcsourceip" => format!("the request comes from IP address(es) {values} ({key})"),
            _ => format!("{key} matches {values} ({})", self.operator),
        };
        // Every negated operator has "not" in its name (StringNotEquals, NotIpAddress, ...).
        if operator.contains("not") {
            format!("unless {what}, which an administrator's ordinary request can fail")
        } else {
            format!("when {what}, which an administrator's ordinary request can meet")
        }
    }

    fn rendered_values(&self) -> String {
        let texts: Vec<String> = match self.values {
            Value::Array(many) => many.iter().map(scalar).collect(),
            one => vec![scalar(one)],
        };
        list(&texts.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

/// A condition value as text: strings bare, anything else as JSON.
fn scalar(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

impl fmt::Display for Test<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.operator, self.key, self.rendered_values())
    }
}

/// Whether `key` is in `keys`, case-insensitively; an entry ending in `/` or `*` is a prefix.
fn listed(key: &str, keys: &[&str]) -> bool {
    let key = key.to_ascii_lowercase();
    keys.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        match entry.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None if entry.ends_with('/') => key.starts_with(&entry),
            None => key == entry,
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn verdict(condition: Value) -> Verdict {
        judge(Some(&condition))
    }

    fn locks_out(condition: Value) -> bool {
        matches!(verdict(condition), Verdict::LocksOut(_))
    }

    #[test]
    fn no_condition_or_an_empty_one_is_unconditional() {
        assert_eq!(judge(None), Verdict::Unconditional);
        assert_eq!(verdict(json!({})), Verdict::Unconditional);
        assert_eq!(verdict(json!({"StringEquals": {}})), Verdict::Unconditional);
    }

    #[test]
    fn every_lock_out_key_locks_out_whatever_the_operator() {
        let tests = [
            ("StringNotEquals", "aws:SourceVpc", json!("vpc-1")),
            ("StringEquals", "aws:SourceVpce", json!(["vpce-1", "vpce-2"])),
            ("NotIpAddress", "aws:SourceIp", json!("203.0.113.0/24")),
            ("IpAddress", "aws:VpcSourceIp", json!("10.0.0.0/8")),
            ("ArnNotLike", "aws:SourceVpcArn", json!("arn:aws:ec2:*:*:vpc/vpc-1")),
            ("ArnNotLike", "aws:PrincipalArn", json!("arn:aws:iam::111122223333:role/Ops")),
            ("StringNotEquals", "aws:PrincipalAccount", json!("111122223333")),
            ("StringNotEquals", "aws:PrincipalOrgID", json!("o-abc")),
            ("ForAnyValue:StringNotLike", "aws:PrincipalOrgPaths", json!("o-abc/r-1/*")),
            ("StringEquals", "aws:PrincipalType", json!("Account")),
            ("StringNotLike", "aws:userid", json!("AROA*")),
            ("StringNotEquals", "aws:username", json!("alice")),
            ("StringNotEquals", "aws:PrincipalTag/team", json!("platform")),
            ("StringEqualsIfExists", "aws:ResourceTag/locked", json!("true")),
            ("StringNotEquals", "aws:RequestTag/owner", json!("ops")),
            ("ForAllValues:StringEquals", "aws:TagKeys", json!(["a"])),
            ("BoolIfExists", "aws:MultiFactorAuthPresent", json!(false)),
        ];
        assert_eq!(tests.len(), LOCK_OUT_KEYS.len());
        for (operator, key, values) in tests {
            assert!(locks_out(json!({operator: {key: values}})), "{operator} {key}");
        }
    }

    #[test]
    fn keys_are_matched_case_insensitively() {
        assert!(locks_out(json!({"StringNotEqualsIgnoreCase": {"AWS:SOURCEVPCE": "vpce-1"}})));
        assert!(matches!(verdict(json!({"Bool": {"AWS:securetransport": "false"}})), Verdict::Spares(_)));
    }

    #[test]
    fn every_hygiene_key_denies_some_even_beside_a_lock_out_key() {
        let tests = [
            ("Bool", "aws:SecureTransport", json!("false")),
            ("StringNotEquals", "s3:x-amz-server-side-encryption", json!("aws:kms")),
            ("Null", "s3:x-amz-server-side-encryption-aws-kms-key-id", json!("true")),
            ("NumericLessThan", "s3:TlsVersion", json!(1.2)),
            ("StringNotEquals", "s3:signatureversion", json!("AWS4-HMAC-SHA256")),
            ("StringNotEquals", "s3:authType", json!("REST-HEADER")),
        ];
        for (operator, key, values) in tests {
            let alone = verdict(json!({operator: {key: values.clone()}}));
            assert!(matches!(alone, Verdict::Spares(_)), "{operator} {key}: {alone:?}");
            let beside = verdict(json!({operator: {key: values}, "StringNotEqualsIfExists": {"aws:SourceVpce": "vpce-1"}}));
            assert!(matches!(beside, Verdict::Spares(_)), "{operator} {key} beside a VPC endpoint test: {beside:?}");
        }
    }

    #[test]
    fn denying_secure_transport_true_refuses_every_https_request() {
        assert!(locks_out(json!({"Bool": {"aws:SecureTransport": "true"}})));
        assert!(locks_out(json!({"BoolIfExists": {"aws:SecureTransport": [true]}})));
    }

    #[test]
    fn an_unknown_key_is_judged_by_the_known_keys_beside_it() {
        let alone = verdict(json!({"StringNotEquals": {"s3:ExistingObjectTag/class": "secret", "s3:prefix": "logs/"}}));
        let reason = "under condition key(s) s3:ExistingObjectTag/class, s3:prefix, which rootwarden does not know and does not count as a lock-out";
        assert_eq!(alone, Verdict::Unknown(reason.to_owned()));
        assert!(locks_out(json!({"StringNotEquals": {"s3:prefix": "logs/"}, "NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})));
    }

    #[test]
    fn a_key_administrators_lack_or_have_false_locks_out_only_when_that_meets_the_test() {
        // An administrator's own request carries none of ABSENT_KEYS, and FALSE_KEYS false.
        let administrators_meet = [
            ("StringNotEquals", "aws:SourceAccount", json!("111122223333")),
            ("ArnNotLike", "aws:SourceArn", json!("arn:aws:cloudfront::111122223333:distribution/*")),
            ("StringNotEqualsIfExists", "aws:SourceOrgID", json!("o-abc")),
            ("StringEqualsIfExists", "aws:SourceAccount", json!("999999999999")),
            ("ForAllValues:StringLike", "aws:SourceOrgPaths", json!("o-abc/r-1/*")),
            ("Null", "aws:SourceArn", json!("true")),
            ("StringNotEquals", "aws:CalledViaFirst", json!("athena.amazonaws.com")),
            ("Bool", "aws:PrincipalIsAWSService", json!("false")),
            ("BoolIfExists", "aws:ViaAWSService", json!(false)),
            ("StringEquals", "aws:ViaAWSService", json!("false")),
        ];
        assert_eq!(administrators_meet.len(), ABSENT_KEYS.len() + FALSE_KEYS.len() + 3);
        for (operator, key, values) in administrators_meet {
            assert!(locks_out(json!({operator: {key: values}})), "{operator} {key}");
        }
        let only_services_meet = [
            ("StringEquals", "aws:SourceAccount", json!("999999999999")),
            ("ArnLike", "aws:SourceArn", json!("arn:aws:sns:*:999999999999:*")),
            ("ForAnyValue:StringNotLike", "aws:SourceOrgPaths", json!("o-abc/*")),
            ("Null", "aws:SourceOrgID", json!("false")),
            ("ForAnyValue:StringEquals", "aws:CalledVia", json!("cloudformation.amazonaws.com")),
            ("Bool", "aws:PrincipalIsAWSService", json!("true")),
            ("Bool", "aws:ViaAWSService", json!(true)),
        ];
        for (operator, key, values) in only_services_meet {
            let alone = verdict(json!({operator: {key: values.clone()}}));
            assert!(matches!(&alone, Verdict::Spares(why) if why.contains("an AWS service")), "{operator} {key}: {alone:?}");
            // IAM ANDs the tests: beside a lock-out key, the Deny still spares administrators.
            let beside = verdict(json!({operator: {key: values}, "NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}));
            assert!(matches!(beside, Verdict::Spares(_)), "{operator} {key} beside an IP test: {beside:?}");
        }
    }

    #[test]
    fn a_condition_that_cannot_be_read_is_not_counted() {
        for condition in [json!("aws:SourceVpce"), json!({"StringEquals": ["aws:SourceVpce"]})] {
            assert!(matches!(verdict(condition.clone()), Verdict::Unknown(_)), "{condition}");
        }
    }

    #[test]
    fn reasons_say_when_the_deny_applies() {
        let phrase = |condition: Value| match verdict(condition) {
            Verdict::LocksOut(phrase) => phrase,
            other => panic!("{other:?}"),
        };
        let ip = phrase(json!({"IpAddress": {"aws:SourceIp": ["198.51.100.0/24", "203.0.113.0/24"]}}));
        assert_eq!(
            ip,
            "when the request comes from IP address(es) 198.51.100.0/24, 203.0.113.0/24 (aws:SourceIp), which an administrator's ordinary request can meet"
        );
        let org = phrase(json!({"StringNotEqualsIfExists": {"aws:PrincipalOrgID": "o-abc"}}));
        assert_eq!(
            org,
            "unless aws:PrincipalOrgID matches o-abc (StringNotEqualsIfExists), which an administrator's ordinary request can fail"
        );
        let null = phrase(json!({"Null": {"aws:SourceVpce": "true"}}));
        assert_eq!(
            null,
            "when aws:SourceVpce is absent (Null aws:SourceVpce true), as it can be for an administrator's ordinary request"
        );
    }
}

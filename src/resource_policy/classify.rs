//! The lock-out rules: which statements of a resource policy keep everyone, the account's root
//! included, from fixing the policy. This is the one place they are written down; the unlock
//! tasks, discovery and reports all use [`classify`].
//!
//! Each statement is one of:
//!
//! - `allows`: its `Effect` is `Allow`. An Allow never locks anyone out.
//! - `locks_out_everyone`: a `Deny` for which all of these hold:
//!   1. **It applies to every principal**: `"Principal": "*"`, `{"AWS": "*"}` (alone or in a
//!      list), or the owner account itself (`"111122223333"` or
//!      `arn:aws:iam::111122223333:root`, which in a resource policy stands for every identity of
//!      the account). A `NotPrincipal` applies to everyone except those it names, so it counts
//!      unless it names the owner account (id or root ARN) or `*`.
//!   2. **It covers an action that writes the policy**: S3 `s3:PutBucketPolicy`,
//!      `s3:DeleteBucketPolicy`; SQS `sqs:SetQueueAttributes`. Patterns are case-insensitive
//!      globs (`*`, `?`). An `Action` counts when one of its patterns matches one of those actions
//!      (`*`, `s3:*`, `s3:Put*`, `s3:*Policy`); a `NotAction` counts when it does not exclude
//!      them all.
//!   3. **It covers the bucket itself** (S3 only): no `Resource`, or a `Resource` pattern without
//!      `/`. A pattern with a `/` can only match objects (`arn:aws:s3:::bucket/*`), never the
//!      bucket whose policy is written. A `NotResource` pattern without `/` might exclude the
//!      bucket, so such a statement is not counted.
//!   4. **An administrator's ordinary request can be refused by it**: it has no `Condition`, or
//!      its conditions pass the condition rules below.
//! - `denies_some`: any other Deny, e.g. one naming specific principals or only actions that do
//!   not write the policy, one on objects only, or one refusing only requests that fail request
//!   hygiene that ordinary clients satisfy.
//!
//! Condition rules. IAM ANDs the conditions of one statement (the Deny applies only when all of
//! them hold), so they are judged together, key names case-insensitively, the operator's
//! `ForAnyValue:` / `ForAllValues:` prefix and `IfExists` suffix set aside:
//!
//! 1. If any condition is a **request hygiene** test ([`HYGIENE_KEYS`]: `aws:SecureTransport`
//!    false, `s3:x-amz-server-side-encryption*`, `s3:TlsVersion`, `s3:signatureversion`,
//!    `s3:authType`), an administrator's ordinary request passes it, so the Deny does not apply
//!    to it: `denies_some`. A `Bool` test of `aws:SecureTransport` **true** is the exception: it
//!    refuses every HTTPS request, which is every SDK's, so it counts as a lock-out test.
//!    Likewise a test of a key **an administrator's own request lacks** ([`ABSENT_KEYS`]: the
//!    service-context keys `aws:SourceArn`, `aws:SourceAccount`, `aws:SourceOrgID`,
//!    `aws:SourceOrgPaths`, and `aws:CalledVia*`, which only requests made by or through an AWS
//!    service carry), when IAM counts the key's absence as no match (a positive operator such as
//!    `StringEquals`, `ForAnyValue:`, or `Null` false); and a `Bool` test for true of a key that
//!    is **false for an administrator** ([`FALSE_KEYS`]: `aws:PrincipalIsAWSService`,
//!    `aws:ViaAWSService`): the Deny spares an administrator's own request, `denies_some`. When
//!    IAM counts the absence as a match (a negated operator such as `StringNotEquals` or
//!    `ArnNotLike`, any `…IfExists`, `ForAllValues:`, `Null` true), or the `Bool` test is for
//!    false, the test refuses every administrator: a lock-out test.
//! 2. Else, if any condition tests a **lock-out key** ([`LOCK_OUT_KEYS`]: network origin,
//!    principal identity, organization, tags, MFA; and the keys of rule 1's second paragraph
//!    tested the other way, or a key of [`FALSE_KEYS`] by another operator than `Bool`), an
//!    administrator's ordinary
//!    request can be refused, whether the operator is positive or negated (an administrator can
//!    both be "not from vpce-1" and "from 10.0.0.0/8"): `locks_out_everyone`.
//! 3. Else (only keys rootwarden does not know, or a `Condition` it cannot read):
//!    `denies_some`, with a reason saying so. This is conservative on purpose: discovery removes
//!    only `locks_out_everyone` statements and must not remove a statement it cannot judge.

use serde::Serialize;
use serde_json::Value;

use super::conditions::{self, Verdict};
use super::document::{Service, usable_sid};
use super::scope::{self, Scope};

/// Condition keys whose test an administrator's ordinary request can fail (or match), matched
/// case-insensitively; those ending in `/` or `*` are prefixes (`aws:PrincipalTag/team`; in
/// [`ABSENT_KEYS`], `aws:CalledViaFirst`).
pub const LOCK_OUT_KEYS: &[&str] = &[
    "aws:SourceVpc",
    "aws:SourceVpce",
    "aws:SourceIp",
    "aws:VpcSourceIp",
    "aws:SourceVpcArn",
    "aws:PrincipalArn",
    "aws:PrincipalAccount",
    "aws:PrincipalOrgID",
    "aws:PrincipalOrgPaths",
    "aws:PrincipalType",
    "aws:userid",
    "aws:username",
    "aws:PrincipalTag/",
    "aws:ResourceTag/",
    "aws:RequestTag/",
    "aws:TagKeys",
    // A root session has no MFA, so "deny unless MFA" refuses it.
    "aws:MultiFactorAuthPresent",
];

/// Condition keys an administrator's own request lacks (see rule 1): only a request an AWS
/// service makes on a resource's behalf, or one made through another service, carries them.
pub const ABSENT_KEYS: &[&str] =
    &["aws:SourceArn", "aws:SourceAccount", "aws:SourceOrgID", "aws:SourceOrgPaths", "aws:CalledVia*"];

/// Condition keys every request carries, `false` in an administrator's own (see rule 1).
pub const FALSE_KEYS: &[&str] = &["aws:PrincipalIsAWSService", "aws:ViaAWSService"];

/// Condition keys of request hygiene that ordinary clients satisfy (same matching as
/// [`LOCK_OUT_KEYS`]). `aws:SecureTransport` counts only as a `Bool` false test (see rule 1).
pub const HYGIENE_KEYS: &[&str] =
    &["aws:SecureTransport", "s3:x-amz-server-side-encryption*", "s3:TlsVersion", "s3:signatureversion", "s3:authType"];

/// What a statement does to the people who would fix the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// A Deny that refuses every principal, the account's root included, the policy's writing.
    LocksOutEveryone,
    /// Any other Deny.
    DeniesSome,
    /// An Allow.
    Allows,
}

/// One statement's classification and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementReport {
    /// The statement's id: its `Sid`, or `#<index>`.
    pub id: String,
    /// The statement's `Effect` as written (empty when it has none).
    pub effect: String,
    /// The rule's verdict.
    pub classification: Classification,
    /// One sentence: which rule applied and why.
    pub reason: String,
}

/// Classifies one statement (the `index`-th of its policy) by the rules of the module
/// documentation. On its own a statement cannot know whether its `Sid` is shared, so its id is
/// its usable `Sid` or `#<index>`; [`super::PolicyDocument::classify`] gives the document's ids.
pub fn classify(statement: &Value, index: usize, service: Service, owner_account: &str) -> StatementReport {
    let effect = statement.get("Effect").and_then(Value::as_str).unwrap_or_default().to_owned();
    let (classification, reason) = judge(statement, &effect, service, owner_account);
    let id = usable_sid(statement).map_or_else(|| format!("#{index}"), str::to_owned);
    StatementReport { id, effect, classification, reason }
}

fn judge(statement: &Value, effect: &str, service: Service, owner: &str) -> (Classification, String) {
    use Classification::{Allows, DeniesSome, LocksOutEveryone};
    match effect {
        "Allow" => return (Allows, "allows; an Allow cannot lock anyone out".to_owned()),
        "Deny" => {}
        other => {
            return (DeniesSome, format!("has `Effect` {other:?}, neither Allow nor Deny, so it is not counted as a lock-out"));
        }
    }
    let who = match scope::principals(statement, owner) {
        Scope::Covered(who) => who,
        Scope::Narrow(reason) => return (DeniesSome, reason),
    };
    let what = match scope::actions(statement, service, &who) {
        Scope::Covered(what) => what,
        Scope::Narrow(reason) => return (DeniesSome, reason),
    };
    if let Scope::Narrow(reason) = scope::resources(statement, service, &what, &who) {
        return (DeniesSome, reason);
    }
    match conditions::judge(statement.get("Condition")) {
        Verdict::Unconditional => (LocksOutEveryone, format!("denies {what} to {who} unconditionally")),
        Verdict::LocksOut(when) => (LocksOutEveryone, format!("denies {what} to {who} {when}")),
        Verdict::Spares(when) => (DeniesSome, format!("denies {what} to {who} {when}")),
        Verdict::Unknown(when) => (DeniesSome, format!("denies {what} to {who} {when}")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Classification::{Allows, DeniesSome, LocksOutEveryone};
    use super::*;

    const OWNER: &str = "111122223333";

    fn report(statement: Value) -> StatementReport {
        classify(&statement, 4, Service::S3, OWNER)
    }

    fn verdict(statement: Value) -> Classification {
        report(statement).classification
    }

    /// A Deny of `s3:*` to everyone on the bucket and its objects, with one element replaced.
    fn deny(field: &str, value: Value) -> Value {
        let mut statement =
            json!({"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]});
        match value {
            Value::Null => drop(statement.as_object_mut().unwrap().shift_remove(field)),
            value => statement[field] = value,
        }
        statement
    }

    #[test]
    fn an_allow_allows() {
        let report = report(json!({"Sid": "Read", "Effect": "Allow", "Principal": "*", "Action": "s3:*"}));
        assert_eq!((report.id.as_str(), report.effect.as_str(), report.classification), ("Read", "Allow", Allows));
        assert_eq!(report.reason, "allows; an Allow cannot lock anyone out");
    }

    #[test]
    fn an_unconditional_deny_of_writing_to_everyone_locks_out() {
        let report = report(deny("Sid", Value::Null));
        assert_eq!((report.id.as_str(), report.classification), ("#4", LocksOutEveryone));
        assert_eq!(report.reason, "denies s3:* to every principal unconditionally");
        assert_eq!(verdict(deny("Condition", json!({}))), LocksOutEveryone);
    }

    #[test]
    fn every_principal_is_star_or_the_owner_account() {
        for principal in
            [json!("*"), json!({"AWS": "*"}), json!({"AWS": ["arn:aws:iam::444455556666:root", "*"]}), json!({"AWS": OWNER})]
        {
            assert_eq!(verdict(deny("Principal", principal.clone())), LocksOutEveryone, "{principal}");
        }
        let root = report(deny("Principal", json!({"AWS": "arn:aws:iam::111122223333:root"})));
        assert_eq!(root.reason, "denies s3:* to every identity of account 111122223333 unconditionally");
        let role = report(deny("Principal", json!({"AWS": "arn:aws:iam::111122223333:role/App"})));
        assert_eq!(role.classification, DeniesSome);
        assert_eq!(role.reason, "denies only the principals it names (arn:aws:iam::111122223333:role/App), not every principal");
        assert_eq!(verdict(deny("Principal", json!({"Service": "cloudtrail.amazonaws.com"}))), DeniesSome);
    }

    #[test]
    fn not_principal_locks_out_unless_it_spares_the_owner_account() {
        let report =
            report(json!({"Effect": "Deny", "NotPrincipal": {"AWS": "arn:aws:iam::111122223333:role/Admin"}, "Action": "*"}));
        assert_eq!(report.classification, LocksOutEveryone);
        assert_eq!(
            report.reason,
            "denies * to every principal except arn:aws:iam::111122223333:role/Admin (NotPrincipal) unconditionally"
        );
        for spared in
            [json!({"AWS": OWNER}), json!({"AWS": ["arn:aws:iam::111122223333:root", "arn:aws:iam::111122223333:role/Admin"]})]
        {
            let statement = json!({"Effect": "Deny", "NotPrincipal": spared, "Action": "*"});
            assert_eq!(verdict(statement), DeniesSome, "{spared}");
        }
        assert_eq!(verdict(json!({"Effect": "Deny", "Action": "*"})), DeniesSome);
    }

    #[test]
    fn actions_count_when_a_pattern_matches_a_policy_writing_action() {
        for action in [
            json!("*"),
            json!("s3:Put*"),
            json!("S3:*POLICY"),
            json!(["s3:GetObject", "s3:DeleteBucketPolicy"]),
            json!("s3:PutBucketPolic?"),
        ] {
            assert_eq!(verdict(deny("Action", action.clone())), LocksOutEveryone, "{action}");
        }
        let reads = report(deny("Action", json!(["s3:GetObject", "s3:PutObject"])));
        assert_eq!(reads.classification, DeniesSome);
        assert_eq!(
            reads.reason,
            "denies only s3:GetObject, s3:PutObject to every principal, none of which writes the policy (s3:PutBucketPolicy, s3:DeleteBucketPolicy)"
        );
    }

    #[test]
    fn not_action_counts_unless_it_excludes_every_policy_writing_action() {
        let mut one_left = deny("Action", Value::Null);
        one_left["NotAction"] = json!("s3:PutBucketPolicy");
        assert_eq!(
            report(one_left).reason,
            "denies every action except s3:PutBucketPolicy (NotAction) to every principal unconditionally"
        );
        let mut none_left = deny("Action", Value::Null);
        none_left["NotAction"] = json!(["s3:Get*", "s3:*BucketPolicy"]);
        assert_eq!(verdict(none_left), DeniesSome);
    }

    #[test]
    fn a_deny_on_objects_only_does_not_cover_the_bucket() {
        let objects = report(deny("Resource", json!("arn:aws:s3:::b/*")));
        assert_eq!(objects.classification, DeniesSome);
        assert_eq!(
            objects.reason,
            "denies s3:* to every principal only on objects (arn:aws:s3:::b/*), not on the bucket whose policy it is"
        );
        assert_eq!(verdict(deny("Resource", json!("*"))), LocksOutEveryone);
        let mut not_resource = deny("Resource", Value::Null);
        not_resource["NotResource"] = json!("arn:aws:s3:::b/public/*");
        assert_eq!(verdict(not_resource.clone()), LocksOutEveryone);
        not_resource["NotResource"] = json!("arn:aws:s3:::b");
        assert_eq!(verdict(not_resource), DeniesSome);
    }

    #[test]
    fn a_condition_an_administrator_can_fail_locks_out() {
        let report = report(deny("Condition", json!({"StringNotEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}})));
        assert_eq!(report.classification, LocksOutEveryone);
        let reason = "denies s3:* to every principal unless the request comes through VPC endpoint(s) vpce-1a2b3c4d (aws:SourceVpce), which an administrator's ordinary request can fail";
        assert_eq!(report.reason, reason);
    }

    #[test]
    fn a_hygiene_condition_denies_some() {
        let report = report(deny("Condition", json!({"Bool": {"aws:SecureTransport": "false"}})));
        assert_eq!(report.classification, DeniesSome);
        let reason = "denies s3:* to every principal only for requests that fail request hygiene (Bool aws:SecureTransport false), which an administrator's ordinary request passes";
        assert_eq!(report.reason, reason);
    }

    #[test]
    fn an_unknown_condition_key_is_not_counted_as_a_lock_out() {
        let report = report(deny("Condition", json!({"StringNotEquals": {"s3:ExistingObjectTag/class": "public"}})));
        assert_eq!(report.classification, DeniesSome);
        assert_eq!(
            report.reason,
            "denies s3:* to every principal under condition key(s) s3:ExistingObjectTag/class, which rootwarden does not know and does not count as a lock-out"
        );
    }

    #[test]
    fn a_deny_unless_a_service_calls_locks_out_and_a_deny_when_one_does_spares_administrators() {
        let arn = "arn:aws:sns:eu-west-1:111122223333:t";
        let report_of = |operator: &str| report(deny("Condition", json!({operator: {"aws:SourceArn": arn}})));
        let unless = report_of("ArnNotEquals");
        assert_eq!(unless.classification, LocksOutEveryone);
        assert_eq!(
            unless.reason,
            format!(
                "denies s3:* to every principal when the request carries no aws:SourceArn (ArnNotEquals aws:SourceArn {arn}), as an administrator's own request never does (only AWS services' do)"
            )
        );
        let when = report_of("ArnEquals");
        assert_eq!(when.classification, DeniesSome);
        assert_eq!(
            when.reason,
            format!(
                "denies s3:* to every principal only for requests made by or through an AWS service (ArnEquals aws:SourceArn {arn}), which an administrator's own request is not"
            )
        );
    }

    #[test]
    fn an_effect_neither_allow_nor_deny_is_not_a_lock_out() {
        let report = report(json!({"Effect": "deny", "Principal": "*", "Action": "*"}));
        assert_eq!((report.effect.as_str(), report.classification), ("deny", DeniesSome));
    }

    #[test]
    fn queue_policies_are_judged_by_sqs_set_queue_attributes() {
        let queue = |action: &str| json!({"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": action, "Resource": "arn:aws:sqs:eu-west-1:111122223333:q"});
        let sqs = |statement: Value| classify(&statement, 0, Service::Sqs, OWNER).classification;
        for action in ["sqs:*", "sqs:SetQueueAttributes", "sqs:Set*", "*"] {
            assert_eq!(sqs(queue(action)), LocksOutEveryone, "{action}");
        }
        for action in ["sqs:SendMessage", "s3:*", "sqs:Get*"] {
            assert_eq!(sqs(queue(action)), DeniesSome, "{action}");
        }
    }

    #[test]
    fn classifications_serialize_in_snake_case() {
        let json = serde_json::to_value(report(deny("Sid", json!("Lock")))).unwrap();
        assert_eq!(json["classification"], "locks_out_everyone");
        assert_eq!(json["id"], "Lock");
        assert_eq!(serde_json::to_value(DeniesSome).unwrap(), "denies_some");
    }
}

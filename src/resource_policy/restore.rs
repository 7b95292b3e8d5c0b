//! Validation of a policy to restore (a job's `restore_policy`): stricter than what is read from
//! AWS, because a policy put back that AWS refuses, or that is not what the approvers meant, is
//! found out only after the root session is spent.

use serde_json::Value;

use super::document::{Service, usable_sid};

/// The job field the messages name.
const FIELD: &str = "restore_policy";

/// The two policy language versions AWS accepts; "2008-10-17" is the old one some policies keep.
const VERSIONS: [&str; 2] = ["2012-10-17", "2008-10-17"];

/// The policy object, or every problem found, each a sentence naming the field.
pub(super) fn validate(given: &Value, service: Service) -> Result<Value, Vec<String>> {
    let parsed;
    let value = match given {
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text).map_err(|e| vec![format!("{FIELD}: the string is not JSON ({e})")])?;
            &parsed
        }
        other => other,
    };
    let Some(object) = value.as_object() else {
        return Err(vec![format!("{FIELD}: must be a policy (a JSON object, or a string holding one), not {}", kind(value))]);
    };
    let mut problems = Vec::new();
    match object.get("Version") {
        Some(Value::String(version)) if VERSIONS.contains(&version.as_str()) => {}
        Some(other) => problems.push(format!("{FIELD}: `Version` is {other}; it must be \"2012-10-17\" or \"2008-10-17\"")),
        None => problems.push(format!("{FIELD}: `Version` is missing; it must be \"2012-10-17\" or \"2008-10-17\"")),
    }
    match object.get("Statement") {
        Some(Value::Array(list)) if list.is_empty() => {
            problems.push(format!("{FIELD}: `Statement` is an empty list; a policy needs at least one statement"));
        }
        Some(Value::Array(list)) => list.iter().enumerate().for_each(|(index, s)| statement_problems(s, index, &mut problems)),
        Some(_) => problems.push(format!("{FIELD}: `Statement` must be a list of statements")),
        None => problems.push(format!("{FIELD}: `Statement` is missing; it must be a list of statements")),
    }
    // The size AWS counts is that of the text put back, which is the compact serialization.
    let (size, limit) = (value.to_string().len(), service.policy_size_limit());
    if size > limit {
        problems.push(format!(
            "{FIELD}: the policy is {size} bytes as compact JSON, over the {} limit of {limit} bytes",
            service.policy_name()
        ));
    }
    if problems.is_empty() { Ok(value.clone()) } else { Err(problems) }
}

fn statement_problems(statement: &Value, index: usize, problems: &mut Vec<String>) {
    let name = match usable_sid(statement) {
        Some(sid) => format!("statement #{index} (`{sid}`)"),
        None => format!("statement #{index}"),
    };
    match statement.get("Effect") {
        _ if !statement.is_object() => problems.push(format!("{FIELD}: {name} is {}, not an object", kind(statement))),
        Some(Value::String(effect)) if effect == "Allow" || effect == "Deny" => {}
        Some(other) => problems.push(format!("{FIELD}: {name} has `Effect` {other}; it must be \"Allow\" or \"Deny\"")),
        None => problems.push(format!("{FIELD}: {name} has no `Effect`; it must be \"Allow\" or \"Deny\"")),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(value: Value, service: Service) -> Vec<String> {
        validate(&value, service).unwrap_err()
    }

    fn policy(statements: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": statements})
    }

    fn allow() -> Value {
        json!({"Sid": "Read", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"})
    }

    #[test]
    fn a_valid_policy_is_kept_as_given_whether_object_or_string() {
        let object = policy(json!([allow()]));
        assert_eq!(validate(&object, Service::S3).unwrap(), object);
        let text = Value::String(object.to_string());
        assert_eq!(validate(&text, Service::S3).unwrap(), object);
        let old = json!({"Version": "2008-10-17", "Statement": [allow()]});
        assert_eq!(validate(&old, Service::Sqs).unwrap(), old);
    }

    #[test]
    fn text_that_is_not_json_or_not_an_object_is_refused() {
        let not_json = problems(json!("{\"Version\": "), Service::S3);
        assert!(not_json[0].starts_with("restore_policy: the string is not JSON ("), "{not_json:?}");
        assert_eq!(
            problems(json!(["a"]), Service::S3),
            ["restore_policy: must be a policy (a JSON object, or a string holding one), not a list"]
        );
        assert_eq!(
            problems(json!("\"text\""), Service::S3)[0],
            "restore_policy: must be a policy (a JSON object, or a string holding one), not a string"
        );
    }

    #[test]
    fn version_must_be_present_and_known() {
        let missing = problems(json!({"Statement": [allow()]}), Service::S3);
        assert_eq!(missing, ["restore_policy: `Version` is missing; it must be \"2012-10-17\" or \"2008-10-17\""]);
        let bad = problems(json!({"Version": "2012-10-18", "Statement": [allow()]}), Service::S3);
        assert_eq!(bad, ["restore_policy: `Version` is \"2012-10-18\"; it must be \"2012-10-17\" or \"2008-10-17\""]);
    }

    #[test]
    fn statement_must_be_a_non_empty_list_of_objects_with_an_effect() {
        assert_eq!(problems(policy(allow()), Service::S3), ["restore_policy: `Statement` must be a list of statements"]);
        assert_eq!(
            problems(json!({"Version": "2012-10-17"}), Service::S3),
            ["restore_policy: `Statement` is missing; it must be a list of statements"]
        );
        assert_eq!(
            problems(policy(json!([])), Service::S3),
            ["restore_policy: `Statement` is an empty list; a policy needs at least one statement"]
        );
        let statements = json!([allow(), {"Sid": "X", "Effect": "allow"}, {"Action": "*"}, 7]);
        assert_eq!(
            problems(policy(statements), Service::S3),
            [
                "restore_policy: statement #1 (`X`) has `Effect` \"allow\"; it must be \"Allow\" or \"Deny\"",
                "restore_policy: statement #2 has no `Effect`; it must be \"Allow\" or \"Deny\"",
                "restore_policy: statement #3 is a number, not an object",
            ]
        );
    }

    #[test]
    fn the_compact_policy_must_fit_the_service_limit() {
        // About 10 KB: within S3's 20 KB, over SQS's 8 KB.
        let statements: Vec<Value> = (0..100).map(|i| json!({"Sid": format!("S{i}"), "Effect": "Deny", "Principal": "*", "Action": "sqs:SendMessage", "Resource": "*"})).collect();
        let value = policy(Value::Array(statements));
        let size = value.to_string().len();
        assert!((8_193..=20_480).contains(&size), "{size}");
        assert!(validate(&value, Service::S3).is_ok());
        assert_eq!(
            problems(value, Service::Sqs),
            [format!(
                "restore_policy: the policy is {size} bytes as compact JSON, over the SQS queue policy limit of 8192 bytes"
            )]
        );
        let big = policy(Value::Array(vec![json!({"Effect": "Allow", "Sid": "x".repeat(20_480)})]));
        assert!(problems(big, Service::S3)[0].contains("over the S3 bucket policy limit of 20480 bytes"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let big = json!({"Version": 1, "Statement": {"Effect": "Deny"}, "Id": "x".repeat(9_000)});
        assert_eq!(problems(big, Service::Sqs).len(), 3);
    }
}

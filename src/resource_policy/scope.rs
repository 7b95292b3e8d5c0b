//! Whom, what and where a Deny statement covers: rules 1 to 3 of
//! [`mod@super::classify`]'s documentation, each answering either with the phrase the reason
//! uses or with the whole reason the statement is not a lock-out.

use serde_json::Value;

use super::document::Service;

/// Whether a statement covers what a lock-out needs.
pub(super) enum Scope {
    /// It does; the phrase names what it covers ("every principal", "s3:*").
    Covered(String),
    /// It does not; the reason sentence of a `denies_some`.
    Narrow(String),
}

/// Rule 1: every principal, the owner account's identities included.
pub(super) fn principals(statement: &Value, owner: &str) -> Scope {
    let spares_owner = |names: &[&str]| names.iter().any(|name| *name == "*" || is_owner(name, owner));
    if let Some(principal) = statement.get("Principal") {
        let aws = aws_principals(principal);
        if principal.as_str() == Some("*") || aws.contains(&"*") {
            return Scope::Covered("every principal".to_owned());
        }
        if aws.iter().any(|name| is_owner(name, owner)) {
            return Scope::Covered(format!("every identity of account {owner}"));
        }
        return Scope::Narrow(format!("denies only the principals it names ({}), not every principal", render(principal)));
    }
    if let Some(not_principal) = statement.get("NotPrincipal") {
        if spares_owner(&aws_principals(not_principal)) {
            let spared = render(not_principal);
            return Scope::Narrow(format!(
                "denies every principal except {spared} (NotPrincipal), which spares the owner account"
            ));
        }
        return Scope::Covered(format!("every principal except {} (NotPrincipal)", render(not_principal)));
    }
    Scope::Narrow("names neither `Principal` nor `NotPrincipal`, so it is not counted as a lock-out".to_owned())
}

/// The `AWS` names of a principal element (`"*"` alone counts as `{"AWS": "*"}`).
fn aws_principals(principal: &Value) -> Vec<&str> {
    match principal {
        Value::String(name) => vec![name.as_str()],
        Value::Object(kinds) => kinds.get("AWS").map(strings).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The owner account itself: its id or its root ARN (in any partition), which in a resource
/// policy stands for every identity of the account.
fn is_owner(name: &str, owner: &str) -> bool {
    if owner.is_empty() {
        return false;
    }
    let parts: Vec<&str> = name.split(':').collect();
    name == owner
        || matches!(parts.as_slice(), ["arn", _, "iam", "", account, root] if *account == owner && root.eq_ignore_ascii_case("root"))
}

/// Rule 2: an action that writes the policy.
pub(super) fn actions(statement: &Value, service: Service, who: &str) -> Scope {
    let writers = service.policy_actions();
    let writers_text = writers.join(", ");
    if let Some(action) = statement.get("Action") {
        let patterns = strings(action);
        let matching: Vec<&str> = patterns.iter().copied().filter(|p| writers.iter().any(|w| glob_matches(p, w))).collect();
        if matching.is_empty() {
            let denied = list(&patterns);
            return Scope::Narrow(format!("denies only {denied} to {who}, none of which writes the policy ({writers_text})"));
        }
        return Scope::Covered(list(&matching));
    }
    if let Some(not_action) = statement.get("NotAction") {
        let patterns = strings(not_action);
        let excepted = list(&patterns);
        if writers.iter().all(|w| patterns.iter().any(|p| glob_matches(p, w))) {
            return Scope::Narrow(format!(
                "denies every action except {excepted} (NotAction) to {who}, which leaves {writers_text} open"
            ));
        }
        return Scope::Covered(format!("every action except {excepted} (NotAction)"));
    }
    Scope::Narrow(format!("denies nothing it names to {who}: it has neither `Action` nor `NotAction`"))
}

/// Rule 3: the bucket itself (S3); a queue policy's resource is always the queue.
pub(super) fn resources(statement: &Value, service: Service, what: &str, who: &str) -> Scope {
    // Only an S3 resource pattern can name something inside the resource (objects, `bucket/*`),
    // and a literal `/` in a pattern can never match the bucket's ARN, which has none.
    let may_be_bucket = |pattern: &&str| !pattern.contains('/');
    if service != Service::S3 {
        return Scope::Covered(String::new());
    }
    if let Some(resource) = statement.get("Resource") {
        let patterns = strings(resource);
        if !patterns.iter().any(may_be_bucket) {
            return Scope::Narrow(format!(
                "denies {what} to {who} only on objects ({}), not on the bucket whose policy it is",
                list(&patterns)
            ));
        }
    }
    if let Some(not_resource) = statement.get("NotResource") {
        let patterns = strings(not_resource);
        if patterns.iter().any(may_be_bucket) {
            let excepted = list(&patterns);
            return Scope::Narrow(format!(
                "denies {what} to {who} except on {excepted} (NotResource), which may be the bucket itself"
            ));
        }
    }
    Scope::Covered(String::new())
}

/// A policy element that is a string or a list of strings, as its strings (others ignored).
pub(super) fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Values for a reason sentence: the first three, then how many more, so a long list of
/// accounts or addresses keeps the sentence readable.
pub(super) fn list(values: &[&str]) -> String {
    const SHOWN: usize = 3;
    let head = values.iter().take(SHOWN).copied().collect::<Vec<_>>().join(", ");
    if values.len() > SHOWN { format!("{head} and {} more", values.len() - SHOWN) } else { head }
}

/// A principal element as a reason shows it: its names, whatever their kind.
fn render(principal: &Value) -> String {
    match principal {
        Value::Object(kinds) => list(&kinds.values().flat_map(strings).collect::<Vec<_>>()),
        other => list(&strings(other)),
    }
}

/// IAM's action globs: `*` any run of characters, `?` one character, case-insensitive.
pub(super) fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    let text: Vec<char> = text.to_lowercase().chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was and how much text it has swallowed, to backtrack on a mismatch.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            (p, t) = (p + 1, t + 1);
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            star = Some((star_p, star_t + 1));
            (p, t) = (star_p + 1, star_t + 1);
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_case_insensitively_with_star_and_question_mark() {
        for pattern in ["*", "s3:*", "S3:PUT*", "s3:*Policy", "s3:PutBucketPolic?", "s3:*Bucket*", "s3:putbucketpolicy"] {
            assert!(glob_matches(pattern, "s3:PutBucketPolicy"), "{pattern}");
        }
        for pattern in ["s3:Get*", "s3:PutBucketPolicy?", "s3:?", "sqs:*", "", "s3:*Acl"] {
            assert!(!glob_matches(pattern, "s3:PutBucketPolicy"), "{pattern}");
        }
    }

    #[test]
    fn the_owner_is_its_account_id_or_root_arn_in_any_partition() {
        let owner = "111122223333";
        for name in ["111122223333", "arn:aws:iam::111122223333:root", "arn:aws-us-gov:iam::111122223333:root"] {
            assert!(is_owner(name, owner), "{name}");
        }
        for name in ["arn:aws:iam::111122223333:role/Admin", "arn:aws:iam::444455556666:root", "11112222333"] {
            assert!(!is_owner(name, owner), "{name}");
        }
        assert!(!is_owner("", ""));
    }

    #[test]
    fn long_lists_are_cut_after_three() {
        assert_eq!(list(&["a", "b"]), "a, b");
        assert_eq!(list(&["a", "b", "c", "d", "e"]), "a, b, c and 2 more");
    }
}

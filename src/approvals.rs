//! The two-person rule: signed approvals of a job's action, and their verification.
//!
//! # What an approver signs
//!
//! Each approval signs the UTF-8 byte string below (its *canonical message*): a fixed first
//! line, then one `key=value` line per field, in exactly this order, each line ending in `\n`
//! (no `\r`, no trailing blank line). Every value is written as JSON (`serde_json`, compact):
//! a string in double quotes with JSON escapes (so no value can contain a raw newline or forge
//! another line), `null` for an absent field, a number or `true`/`false`.
//!
//! ```text
//! rootwarden-approval-v1
//! version=1
//! job_id="CHG-1042-unlock"
//! account_id="111122223333"
//! task="S3UnlockBucketPolicy"
//! bucket="payments-artifacts"
//! queue_url=null
//! region="eu-west-1"
//! credentials=null
//! remove_statements=null
//! restore_policy_sha256=null
//! allow_lockout=false
//! discover=false
//! regions=null
//! ticket="CHG-1042"
//! dry_run=false
//! not_after="2026-12-02T09:00:00Z"
//! ```
//!
//! - `version`: the job's contract version (1).
//! - `job_id`, `account_id`, `task`: as in the job.
//! - `bucket`, `queue_url`, `region`: as in the job, `null` when absent (an absent `region`
//!   means the daemon's region and is signed as `null`, not as that region).
//! - `credentials`: for `IAMDeleteRootUserCredentials`, the kinds the job will delete (the
//!   default, all four, when the job names none), deduplicated, sorted by name (byte order) and
//!   joined with commas, e.g. `"access_keys,mfa_devices,password,signing_certificates"`;
//!   `null` for the other tasks.
//! - `remove_statements`: the statements an unlock job removes, as a compact JSON list in the
//!   job's order with repeats dropped (`["DenyAll","#3"]`), `null` when the job removes none.
//! - `restore_policy_sha256`: the lower-case hex SHA-256 of the policy an unlock job puts back,
//!   taken over its compact JSON text with the keys in the job's order (a `restore_policy`
//!   posted as a string is parsed first), `null` when the job restores none. With `jq`:
//!   `jq -cj .restore_policy job.json | sha256sum` for an object.
//! - `allow_lockout`: `true` when the job accepts a restored policy that locks everyone out.
//! - `discover`: `true` for a discovery job; `regions`: its regions as a compact JSON list
//!   (sorted, repeats dropped), `null` when it names none.
//! - `ticket`: as in the job, `null` when absent; `dry_run`: the job's flag (`false` when
//!   absent).
//! - `not_after`: the approval's own `not_after`, exactly as written in the approval.
//!
//! Not covered: `requested_by` (it does not change the action) and `approvals`.
//!
//! # Signatures
//!
//! An approver's public key is a `SubjectPublicKeyInfo` (PEM `-----BEGIN PUBLIC KEY-----`, or
//! its DER in base64, which is what `aws kms get-public-key` returns), Ed25519 or ECDSA P-256.
//! Ed25519 signs the canonical message itself. ECDSA P-256 signs its SHA-256 digest, the
//! signature DER-encoded (ASN.1): what `aws kms sign --signing-algorithm ECDSA_SHA_256
//! --message-type RAW --message fileb://<canonical message>` produces. The signature is
//! written in standard base64 (with padding).
//!
//! # What counts
//!
//! An approval counts when its approver is configured, its signature verifies over this job's
//! canonical message with that approver's key, and it has not expired: `now` is at most
//! `not_after` plus [`CLOCK_SKEW`]. A `not_after` further than [`MAX_LIFETIME`] (plus the skew)
//! ahead does not count either: an approval is for one change, not a standing permission. Each
//! approver counts once however many of their approvals the job carries.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ED25519, ParsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::job::{Job, PolicyChange, Target};
use crate::resource_policy::PolicyDocument;

/// The first line of every canonical message; a new format gets a new one.
pub const PREFIX: &str = "rootwarden-approval-v1\n";

/// How far the daemon's clock may be behind an approver's: an approval still counts this long
/// after its `not_after`.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// The furthest ahead a `not_after` may be (7 days).
pub const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// One approval as the job carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The approver's id, as configured in `policy.approvers`.
    pub approver: String,
    /// The signature over the canonical message, standard base64.
    pub signature: String,
    /// When the approval stops counting (RFC 3339, UTC), signed with the job.
    pub not_after: String,
}

/// An approver's verification key.
pub struct ApproverKey {
    id: String,
    key: ParsedPublicKey,
    algorithm: &'static str,
}

impl std::fmt::Debug for ApproverKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApproverKey").field("id", &self.id).field("algorithm", &self.algorithm).finish()
    }
}

impl ApproverKey {
    /// Parses a public key: PEM `PUBLIC KEY` (SubjectPublicKeyInfo) or that DER in base64,
    /// Ed25519 or ECDSA P-256.
    pub fn parse(id: &str, public_key: &str) -> Result<Self, String> {
        let der = public_key_der(public_key)?;
        if let Ok(key) = ParsedPublicKey::new(&ED25519, &der) {
            return Ok(Self { id: id.to_owned(), key, algorithm: "Ed25519" });
        }
        match ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &der) {
            Ok(key) => Ok(Self { id: id.to_owned(), key, algorithm: "ECDSA P-256" }),
            Err(_) => Err("not an Ed25519 or ECDSA P-256 public key (SubjectPublicKeyInfo)".into()),
        }
    }

    /// The approver's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// True when `signature` signs `message` with this key.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

/// The DER of a PEM `PUBLIC KEY` block, or of base64 DER.
fn public_key_der(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    let body = match text.strip_prefix("-----BEGIN PUBLIC KEY-----") {
        Some(rest) => rest
            .trim_end()
            .strip_suffix("-----END PUBLIC KEY-----")
            .ok_or("a PEM public key must end with -----END PUBLIC KEY-----")?,
        None if text.starts_with("-----BEGIN") => return Err("the PEM block must be a PUBLIC KEY".into()),
        None => text,
    };
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(compact).map_err(|_| "the key is neither PEM nor base64 DER".to_owned())
}

/// The canonical message an approval of `job` with this `not_after` signs (see the module
/// documentation).
pub fn canonical_message(job: &Job, not_after: &str) -> Vec<u8> {
    let json = |value: Option<&str>| serde_json::to_string(&value).expect("a string serializes");
    let mut fields = ActionFields::default();
    match &job.target {
        Target::Bucket { bucket, change } => {
            fields.bucket = Some(bucket.clone());
            fields.set_change(change);
        }
        Target::Queue { queue_url, change } => {
            fields.queue_url = Some(queue_url.clone());
            fields.set_change(change);
        }
        Target::Credentials(kinds) => {
            let names: BTreeSet<&str> = kinds.iter().map(|kind| kind.as_str()).collect();
            fields.credentials = Some(names.into_iter().collect::<Vec<_>>().join(","));
        }
        Target::Discover { regions } => {
            fields.discover = true;
            fields.regions = (!regions.is_empty()).then(|| compact(regions));
        }
        Target::RootUser => {}
    }
    let mut text = String::from(PREFIX);
    let mut line = |key: &str, value: String| {
        let _ = writeln!(text, "{key}={value}");
    };
    line("version", "1".into());
    line("job_id", json(Some(&job.job_id)));
    line("account_id", json(Some(&job.account_id)));
    line("task", json(Some(job.task.as_str())));
    line("bucket", json(fields.bucket.as_deref()));
    line("queue_url", json(fields.queue_url.as_deref()));
    line("region", json(job.region.as_deref()));
    line("credentials", json(fields.credentials.as_deref()));
    line("remove_statements", fields.remove_statements.unwrap_or_else(|| "null".into()));
    line("restore_policy_sha256", json(fields.restore_policy_sha256.as_deref()));
    line("allow_lockout", fields.allow_lockout.to_string());
    line("discover", fields.discover.to_string());
    line("regions", fields.regions.unwrap_or_else(|| "null".into()));
    line("ticket", json(job.ticket.as_deref()));
    line("dry_run", job.dry_run.to_string());
    line("not_after", json(Some(not_after)));
    text.into_bytes()
}

/// The signed fields that depend on the job's target, as written in the canonical message.
#[derive(Default)]
struct ActionFields {
    bucket: Option<String>,
    queue_url: Option<String>,
    credentials: Option<String>,
    remove_statements: Option<String>,
    restore_policy_sha256: Option<String>,
    allow_lockout: bool,
    discover: bool,
    regions: Option<String>,
}

impl ActionFields {
    fn set_change(&mut self, change: &PolicyChange) {
        match change {
            PolicyChange::Delete => {}
            PolicyChange::RemoveStatements(ids) => self.remove_statements = Some(compact(ids)),
            PolicyChange::Restore { policy, allow_lockout } => {
                self.restore_policy_sha256 = Some(restore_policy_sha256(policy));
                self.allow_lockout = *allow_lockout;
            }
        }
    }
}

/// A list of strings as compact JSON.
fn compact(items: &[String]) -> String {
    serde_json::to_string(items).expect("strings serialize")
}

/// The lower-case hex SHA-256 of a policy's compact JSON text (what approvers sign for a
/// restore, so the signature covers every byte of the policy put back).
pub fn restore_policy_sha256(policy: &PolicyDocument) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, policy.to_json().as_bytes());
    digest.as_ref().iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Why a job's approvals are not enough: a sentence naming what was missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall(pub String);

/// Checks `approvals` against `approvers`: at least `required` valid approvals from distinct
/// approvers. The error lists every approval that did not count and why.
pub fn verify(
    job: &Job,
    approvals: &[Approval],
    approvers: &[ApproverKey],
    required: usize,
    now: SystemTime,
) -> Result<(), Shortfall> {
    let mut valid: Vec<&str> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for approval in approvals {
        let who = &approval.approver;
        match check_one(job, approval, approvers, now) {
            Ok(()) if valid.contains(&who.as_str()) => problems.push(format!("`{who}` approved more than once (counted once)")),
            Ok(()) => valid.push(who),
            Err(problem) => problems.push(format!("`{who}`: {problem}")),
        }
    }
    if valid.len() >= required {
        return Ok(());
    }
    let mut reason = format!("task {} needs {required} valid approvals from distinct approvers, found {}", job.task, valid.len());
    if !valid.is_empty() {
        let names: Vec<String> = valid.iter().map(|v| format!("`{v}`")).collect();
        let _ = write!(reason, " ({})", names.join(", "));
    }
    if approvals.is_empty() {
        reason.push_str(": the job carries no approvals");
    } else if !problems.is_empty() {
        let _ = write!(reason, ": {}", problems.join("; "));
    }
    Err(Shortfall(reason))
}

fn check_one(job: &Job, approval: &Approval, approvers: &[ApproverKey], now: SystemTime) -> Result<(), String> {
    let Some(key) = approvers.iter().find(|key| key.id == approval.approver) else {
        return Err("unknown approver (not in policy.approvers)".into());
    };
    let not_after = humantime::parse_rfc3339(&approval.not_after)
        .map_err(|_| format!("not_after `{}` is not an RFC 3339 UTC time", approval.not_after))?;
    let Ok(signature) = STANDARD.decode(approval.signature.trim()) else {
        return Err("the signature is not base64".into());
    };
    if !key.verifies(&canonical_message(job, &approval.not_after), &signature) {
        return Err("invalid signature (it does not sign this job's action fields)".into());
    }
    if now > not_after + CLOCK_SKEW {
        return Err(format!("expired at {} (clock skew allowed: {}s)", approval.not_after, CLOCK_SKEW.as_secs()));
    }
    if not_after > now + MAX_LIFETIME + CLOCK_SKEW {
        return Err(format!("not_after {} is more than {} days ahead", approval.not_after, MAX_LIFETIME.as_secs() / 86_400));
    }
    Ok(())
}

/// A local signing key (PKCS#8 PEM `PRIVATE KEY`, Ed25519 or ECDSA P-256), for
/// `rootwarden approve`. Its `Debug` shows nothing of the key.
pub struct SigningKey(SigningKeyInner);

enum SigningKeyInner {
    Ed25519(aws_lc_rs::signature::Ed25519KeyPair),
    P256(aws_lc_rs::signature::EcdsaKeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// Reads a PKCS#8 PEM private key. Errors never quote the key.
    pub fn from_pem(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let body = text
            .strip_prefix("-----BEGIN PRIVATE KEY-----")
            .and_then(|rest| rest.trim_end().strip_suffix("-----END PRIVATE KEY-----"))
            .ok_or("the key file must hold one PKCS#8 PEM block (-----BEGIN PRIVATE KEY-----)")?;
        let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD.decode(compact).map_err(|_| "the PEM block is not base64".to_owned())?;
        if let Ok(pair) = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
            return Ok(Self(SigningKeyInner::Ed25519(pair)));
        }
        aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &der)
            .map(|pair| Self(SigningKeyInner::P256(pair)))
            .map_err(|_| "not an Ed25519 or ECDSA P-256 PKCS#8 private key".into())
    }

    /// The signature of `message`, standard base64.
    pub fn sign(&self, message: &[u8]) -> Result<String, String> {
        let bytes = match &self.0 {
            SigningKeyInner::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            SigningKeyInner::P256(pair) => pair
                .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
                .map_err(|_| "ECDSA signing failed".to_owned())?
                .as_ref()
                .to_vec(),
        };
        Ok(STANDARD.encode(bytes))
    }
}

/// Standard base64 (the encoding of signatures and DER keys).
pub fn base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The JSON documents of a file of jobs, each with the line it starts on: JSON Lines (one job a
/// line, as `rootwarden sweep --plan` writes them) or documents one after another (several
/// approvers' files concatenated, pretty-printed or not). Blank lines are skipped.
pub fn documents(text: &str) -> Result<Vec<(usize, serde_json::Value)>, String> {
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    let mut documents = Vec::new();
    loop {
        let before = stream.byte_offset();
        let start = before + (text[before..].len() - text[before..].trim_start().len());
        match stream.next() {
            None => return Ok(documents),
            Some(Ok(value)) => documents.push((line_of(start), value)),
            Some(Err(error)) => return Err(format!("line {}: not JSON: {error}", line_of(start))),
        }
    }
}

/// The jobs of a file of jobs ([`documents`]), each validated as the daemon validates it; an
/// error names the line of the first invalid one.
pub fn read_jobs(text: &str) -> Result<Vec<Job>, String> {
    documents(text)?
        .into_iter()
        .map(|(line, value)| Job::parse(&value.to_string()).map_err(|error| format!("line {line}: the job is invalid: {error}")))
        .collect()
}

/// Every approval of each job id in `jobs`, merged across the copies of a job (one per approver's
/// file), an approval repeated exactly counted once. Jobs without approvals add nothing.
pub fn merged_by_job_id(jobs: &[Job]) -> std::collections::HashMap<String, Vec<Approval>> {
    let mut merged: std::collections::HashMap<String, Vec<Approval>> = std::collections::HashMap::new();
    for job in jobs {
        for approval in &job.approvals {
            let list = merged.entry(job.job_id.clone()).or_default();
            if !list.contains(approval) {
                list.push(approval.clone());
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    use super::*;

    const NOT_AFTER: &str = "2026-12-02T09:00:00Z";

    fn now() -> SystemTime {
        humantime::parse_rfc3339("2026-12-01T09:00:00Z").unwrap()
    }

    fn job(extra: &str) -> Job {
        Job::parse(&format!(
            r#"{{"version":1,"job_id":"CHG-1042-unlock","account_id":"111122223333","task":"S3UnlockBucketPolicy",
            "bucket":"payments-artifacts","region":"eu-west-1","ticket":"CHG-1042"{extra}}}"#
        ))
        .unwrap()
    }

    fn pem(der: &[u8]) -> String {
        let body = base64(der);
        let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
    }

    struct Person {
        id: &'static str,
        pair: Ed25519KeyPair,
    }

    impl Person {
        fn new(id: &'static str) -> Self {
            Self { id, pair: Ed25519KeyPair::generate().unwrap() }
        }
        fn key(&self) -> ApproverKey {
            let der = AsDer::<PublicKeyX509Der>::as_der(self.pair.public_key()).unwrap();
            ApproverKey::parse(self.id, &pem(der.as_ref())).unwrap()
        }
        fn approve(&self, job: &Job, not_after: &str) -> Approval {
            let signature = base64(self.pair.sign(&canonical_message(job, not_after)).as_ref());
            Approval { approver: self.id.into(), signature, not_after: not_after.into() }
        }
    }

    fn three() -> (Vec<Person>, Vec<ApproverKey>) {
        let people: Vec<Person> = ["alice", "bob", "carol"].into_iter().map(Person::new).collect();
        let keys = people.iter().map(Person::key).collect();
        (people, keys)
    }

    #[test]
    fn the_canonical_message_is_the_documented_one() {
        let text = String::from_utf8(canonical_message(&job(""), NOT_AFTER)).unwrap();
        assert_eq!(
            text,
            "rootwarden-approval-v1\nversion=1\njob_id=\"CHG-1042-unlock\"\naccount_id=\"111122223333\"\n\
             task=\"S3UnlockBucketPolicy\"\nbucket=\"payments-artifacts\"\nqueue_url=null\nregion=\"eu-west-1\"\n\
             credentials=null\nremove_statements=null\nrestore_policy_sha256=null\nallow_lockout=false\n\
             discover=false\nregions=null\nticket=\"CHG-1042\"\n\
             dry_run=false\nnot_after=\"2026-12-02T09:00:00Z\"\n"
        );
        let delete = Job::parse(
            r#"{"version":1,"job_id":"j","account_id":"111122223333","task":"IAMDeleteRootUserCredentials",
            "credentials":["password","access_keys"],"ticket":"a\nb"}"#,
        )
        .unwrap();
        let text = String::from_utf8(canonical_message(&delete, NOT_AFTER)).unwrap();
        assert!(text.contains("credentials=\"access_keys,password\"\n"), "{text}");
        assert!(text.contains("ticket=\"a\\nb\"\n"), "a newline in a value cannot forge a line: {text}");
    }

    #[test]
    fn two_of_three_approvals_are_enough() {
        let (people, keys) = three();
        let job = job("");
        let approvals = [people[0].approve(&job, NOT_AFTER), people[2].approve(&job, NOT_AFTER)];
        assert_eq!(verify(&job, &approvals, &keys, 2, now()), Ok(()));
    }

    #[test]
    fn one_approval_is_not_enough() {
        let (people, keys) = three();
        let job = job("");
        let error = verify(&job, &[people[1].approve(&job, NOT_AFTER)], &keys, 2, now()).unwrap_err();
        assert!(error.0.contains("needs 2 valid approvals from distinct approvers, found 1 (`bob`)"), "{error:?}");
        let none = verify(&job, &[], &keys, 2, now()).unwrap_err();
        assert!(none.0.contains("found 0: the job carries no approvals"), "{none:?}");
    }

    #[test]
    fn an_unknown_approver_does_not_count() {
        let (people, keys) = three();
        let mallory = Person::new("mallory");
        let job = job("");
        let approvals = [people[0].approve(&job, NOT_AFTER), mallory.approve(&job, NOT_AFTER)];
        let error = verify(&job, &approvals, &keys, 2, now()).unwrap_err();
        assert!(error.0.contains("`mallory`: unknown approver"), "{error:?}");
    }

    #[test]
    fn the_same_approver_twice_counts_once() {
        let (people, keys) = three();
        let job = job("");
        let approvals = [people[0].approve(&job, NOT_AFTER), people[0].approve(&job, "2026-12-02T08:00:00Z")];
        let error = verify(&job, &approvals, &keys, 2, now()).unwrap_err();
        assert!(error.0.contains("found 1 (`alice`)"), "{error:?}");
        assert!(error.0.contains("`alice` approved more than once (counted once)"), "{error:?}");
    }

    #[test]
    fn an_expired_approval_does_not_count_after_the_skew() {
        let (people, keys) = three();
        let job = job("");
        let early = "2026-12-01T08:57:00Z"; // three minutes ago: within the skew
        let late = "2026-12-01T08:50:00Z"; // ten minutes ago
        let approvals = [people[0].approve(&job, early), people[1].approve(&job, late)];
        let error = verify(&job, &approvals, &keys, 2, now()).unwrap_err();
        assert!(error.0.contains("found 1 (`alice`)"), "{error:?}");
        assert!(error.0.contains("`bob`: expired at 2026-12-01T08:50:00Z (clock skew allowed: 300s)"), "{error:?}");
        let far = people[2].approve(&job, "2027-01-01T00:00:00Z");
        let error = verify(&job, &[far], &keys, 1, now()).unwrap_err();
        assert!(error.0.contains("more than 7 days ahead"), "{error:?}");
    }

    #[test]
    fn a_tampered_restore_policy_or_statement_list_is_invalid() {
        let (people, keys) = three();
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"TlsOnly","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#;
        let restore = job(&format!(r#","restore_policy":{policy}"#));
        let text = String::from_utf8(canonical_message(&restore, NOT_AFTER)).unwrap();
        let digest = text.lines().find_map(|l| l.strip_prefix("restore_policy_sha256=")).unwrap();
        assert!(digest.len() == 66 && digest[1..65].bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
        let approvals = [people[0].approve(&restore, NOT_AFTER), people[1].approve(&restore, NOT_AFTER)];
        assert_eq!(verify(&restore, &approvals, &keys, 2, now()), Ok(()));
        let as_string = job(&format!(r#","restore_policy":{}"#, serde_json::to_string(policy).unwrap()));
        assert_eq!(verify(&as_string, &approvals, &keys, 2, now()), Ok(()), "the same policy posted as a string");
        let tampered = job(&format!(r#","restore_policy":{}"#, policy.replace("s3:*", "s3:GetObject")));
        let lockout_allowed = job(&format!(r#","restore_policy":{policy},"allow_lockout":true"#));
        let removal = job(r#","remove_statements":["DenyAll","TlsOnly"]"#);
        for other in [tampered, lockout_allowed, removal] {
            assert!(verify(&other, &approvals, &keys, 2, now()).unwrap_err().0.contains("invalid signature"));
        }
        let removal = job(r#","remove_statements":["DenyAll","TlsOnly"]"#);
        let text = String::from_utf8(canonical_message(&removal, NOT_AFTER)).unwrap();
        assert!(text.contains("\nremove_statements=[\"DenyAll\",\"TlsOnly\"]\n"), "{text}");
        let approvals = [people[0].approve(&removal, NOT_AFTER)];
        let fewer = job(r#","remove_statements":["DenyAll"]"#);
        assert!(verify(&fewer, &approvals, &keys, 1, now()).unwrap_err().0.contains("invalid signature"));
    }

    #[test]
    fn a_signature_over_another_account_or_bucket_or_not_after_is_invalid() {
        let (people, keys) = three();
        let signed = job("");
        let approvals = [people[0].approve(&signed, NOT_AFTER), people[1].approve(&signed, NOT_AFTER)];
        let other_bucket =
            job("").with(|j| j.target = Target::Bucket { bucket: "other-bucket".into(), change: PolicyChange::Delete });
        let other_account = job("").with(|j| j.account_id = "444455556666".into());
        let no_dry_run = job(r#","dry_run":true"#);
        for tampered in [other_bucket, other_account, no_dry_run] {
            let error = verify(&tampered, &approvals, &keys, 2, now()).unwrap_err();
            assert!(error.0.contains("found 0"), "{error:?}");
            assert!(error.0.contains("`alice`: invalid signature"), "{error:?}");
        }
        let mut moved = people[0].approve(&signed, NOT_AFTER);
        moved.not_after = "2026-12-03T09:00:00Z".into();
        assert!(verify(&signed, &[moved], &keys, 1, now()).unwrap_err().0.contains("invalid signature"));
        // requested_by is not covered.
        let other_requester = job(r#","requested_by":"someone-else""#);
        assert_eq!(verify(&other_requester, &approvals, &keys, 2, now()), Ok(()));
    }

    #[test]
    fn a_kms_style_p256_key_verifies() {
        // KMS: get-public-key returns DER SubjectPublicKeyInfo (base64 in the CLI's JSON), sign
        // with ECDSA_SHA_256 and RAW returns a DER signature over SHA-256 of the message.
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let spki = AsDer::<PublicKeyX509Der>::as_der(pair.public_key()).unwrap();
        let job = job("");
        let (people, mut keys) = three();
        keys.push(ApproverKey::parse("kms-dave", &base64(spki.as_ref())).unwrap());
        let signature = pair.sign(&rng, &canonical_message(&job, NOT_AFTER)).unwrap();
        let kms = Approval { approver: "kms-dave".into(), signature: base64(signature.as_ref()), not_after: NOT_AFTER.into() };
        assert_eq!(verify(&job, &[kms.clone(), people[0].approve(&job, NOT_AFTER)], &keys, 2, now()), Ok(()));
        // The same key in PEM, and signing through SigningKey from a PKCS#8 PEM file.
        assert!(ApproverKey::parse("kms-dave", &pem(spki.as_ref())).is_ok());
        let private = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", base64(pkcs8.as_ref()));
        let local = SigningKey::from_pem(&private).unwrap();
        assert_eq!(format!("{local:?}"), "SigningKey(..)");
        let signature = local.sign(&canonical_message(&job, NOT_AFTER)).unwrap();
        let approval = Approval { approver: "kms-dave".into(), signature, not_after: NOT_AFTER.into() };
        assert_eq!(verify(&job, &[approval], &keys, 1, now()), Ok(()));
    }

    #[test]
    fn files_of_jobs_are_json_lines_or_concatenated_documents_and_approvals_merge_by_job_id() {
        let (people, _) = three();
        let one = job("");
        let other = job("").with(|j| j.job_id = "CHG-1042-other".into());
        let line = |job: &Job, by: &[&Person]| {
            let mut value: serde_json::Value = serde_json::from_str(
                r#"{"version":1,"account_id":"111122223333","task":"S3UnlockBucketPolicy","bucket":"payments-artifacts","region":"eu-west-1","ticket":"CHG-1042"}"#,
            )
            .unwrap();
            value["job_id"] = job.job_id.clone().into();
            let approvals: Vec<Approval> = by.iter().map(|p| p.approve(job, NOT_AFTER)).collect();
            value["approvals"] = serde_json::to_value(approvals).unwrap();
            value
        };
        let alice_file = format!("{}\n{}\n", line(&one, &[&people[0]]), line(&other, &[&people[0]]));
        // Bob's file is pretty-printed, and carries alice's approval of `one` again.
        let pretty = serde_json::to_string_pretty(&line(&one, &[&people[0], &people[1]])).unwrap();
        let bob_file = format!("\n{pretty}\n{}", line(&other, &[&people[1]]));
        let text = format!("{alice_file}{bob_file}");
        let found = documents(&text).unwrap();
        let lines: Vec<usize> = found.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [1, 2, 4, 4 + pretty.lines().count()], "{text}");
        let jobs = read_jobs(&text).unwrap();
        let merged = merged_by_job_id(&jobs);
        assert_eq!(merged.len(), 2);
        let approvers = |id: &str| merged[id].iter().map(|a| a.approver.as_str()).collect::<Vec<_>>();
        assert_eq!(approvers("CHG-1042-unlock"), ["alice", "bob"], "alice's repeated approval counts once");
        assert_eq!(approvers("CHG-1042-other"), ["alice", "bob"]);

        let broken = format!("{alice_file}{{\"version\": 1,\n");
        assert!(documents(&broken).unwrap_err().starts_with("line 3: not JSON"), "{:?}", documents(&broken));
        let invalid = format!("{alice_file}{{\"version\": 1}}\n");
        assert!(read_jobs(&invalid).unwrap_err().starts_with("line 3: the job is invalid"), "{:?}", read_jobs(&invalid));
        assert!(read_jobs("").unwrap().is_empty());
    }

    #[test]
    fn malformed_keys_are_refused_without_quoting_them() {
        assert!(ApproverKey::parse("x", "not base64 !").is_err());
        assert!(ApproverKey::parse("x", &base64(b"not a key")).is_err());
        let error = SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").unwrap_err();
        assert!(!error.contains("AAAA"), "{error}");
    }

    trait With: Sized {
        fn with(self, change: impl FnOnce(&mut Self)) -> Self;
    }
    impl With for Job {
        fn with(mut self, change: impl FnOnce(&mut Self)) -> Self {
            change(&mut self);
            self
        }
    }
}

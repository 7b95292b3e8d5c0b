//! The two-person rule against the local AWS environment: a job of a task in
//! `policy.require_approval` runs with enough valid approvals, and is otherwise rejected
//! (`policy.approval`, with the reason) before any root session is requested.

mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use rootwarden::approvals::{base64, canonical_message};
use rootwarden::config::ApproverConfig;
use rootwarden::job::Job;
use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(120);

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// An approver with a local Ed25519 key, or a KMS-style ECDSA P-256 key (DER public key, DER
/// signatures over SHA-256).
enum Signer {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
}

impl Signer {
    fn public_key(&self) -> String {
        let der = match self {
            Signer::Ed25519(pair) => AsDer::<PublicKeyX509Der>::as_der(pair.public_key()).unwrap(),
            Signer::P256(pair) => AsDer::<PublicKeyX509Der>::as_der(pair.public_key()).unwrap(),
        };
        base64(der.as_ref())
    }

    /// The approval of the job `body` by `id`, valid until `not_after`.
    fn approve(&self, id: &str, body: &str, not_after: SystemTime) -> Value {
        let not_after = rfc3339(not_after);
        let message = canonical_message(&Job::parse(body).unwrap(), &not_after);
        let signature = match self {
            Signer::Ed25519(pair) => base64(pair.sign(&message).as_ref()),
            Signer::P256(pair) => base64(pair.sign(&SystemRandom::new(), &message).unwrap().as_ref()),
        };
        json!({"approver": id, "signature": signature, "not_after": not_after})
    }
}

fn with_approvals(body: &str, approvals: Vec<Value>) -> String {
    let mut job: Value = serde_json::from_str(body).unwrap();
    job["approvals"] = Value::Array(approvals);
    job.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_three_approvals_run_and_every_shortfall_is_rejected_before_assume_root() {
    let local = LocalAws::start();
    let seed = local.seed(2, 1, 0);
    let (bucket, account) = seed.locked_buckets()[0].clone();
    let queues = Queues::new(&local, &seed).await;

    let alice = Signer::Ed25519(Ed25519KeyPair::generate().unwrap());
    let bob = Signer::Ed25519(Ed25519KeyPair::generate().unwrap());
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let carol_kms = Signer::P256(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap());
    let mallory = Signer::Ed25519(Ed25519KeyPair::generate().unwrap());

    let mut config = config(&local, &seed);
    config.policy.require_approval = vec!["S3UnlockBucketPolicy".into()];
    config.policy.approvals_required = 2;
    config.policy.approvers = [("alice", &alice), ("bob", &bob), ("carol-kms", &carol_kms)]
        .into_iter()
        .map(|(id, signer)| ApproverConfig { id: id.into(), public_key: signer.public_key() })
        .collect();
    let daemon = RunningDaemon::start(config).await;

    let later = SystemTime::now() + Duration::from_secs(3600);
    let earlier = SystemTime::now() - Duration::from_secs(3600);
    let unlock = |id: &str, bucket: &str| job(id, &account, "S3UnlockBucketPolicy", json!({"bucket": bucket}));

    let one = unlock("one", &bucket);
    queues.send(&with_approvals(&one, vec![alice.approve("alice", &one, later)])).await;
    let unknown = unlock("unknown", &bucket);
    let approvals = vec![alice.approve("alice", &unknown, later), mallory.approve("mallory", &unknown, later)];
    queues.send(&with_approvals(&unknown, approvals)).await;
    let twice = unlock("twice", &bucket);
    let approvals = vec![alice.approve("alice", &twice, later), alice.approve("alice", &twice, later)];
    queues.send(&with_approvals(&twice, approvals)).await;
    let expired = unlock("expired", &bucket);
    let approvals = vec![alice.approve("alice", &expired, later), bob.approve("bob", &expired, earlier)];
    queues.send(&with_approvals(&expired, approvals)).await;
    // Approved for another bucket, then posted for this one.
    let signed = unlock("tampered", "some-other-bucket");
    let approvals = vec![alice.approve("alice", &signed, later), bob.approve("bob", &signed, later)];
    queues.send(&with_approvals(&unlock("tampered", &bucket), approvals)).await;

    let results = queues.results(5, WAIT).await;
    let by_id: HashMap<String, Value> = results.iter().map(|r| (r["job_id"].as_str().unwrap().to_owned(), r.clone())).collect();
    let expected = [
        ("one", "found 1 (`alice`)"),
        ("unknown", "`mallory`: unknown approver"),
        ("twice", "`alice` approved more than once (counted once)"),
        ("expired", "`bob`: expired at"),
        ("tampered", "`alice`: invalid signature"),
    ];
    for (job_id, reason) in expected {
        let result = &by_id[job_id];
        assert_eq!(result["outcome"], "rejected", "{job_id}: {result}");
        assert_eq!(result["error_code"], "policy.approval", "{job_id}: {result}");
        let text = result["reason"].as_str().unwrap();
        assert!(text.contains("needs 2 valid approvals from distinct approvers"), "{job_id}: {text}");
        assert!(text.contains(reason), "{job_id}: {reason:?} not in {text}");
    }
    assert!(local.assume_root_calls().is_empty(), "no root session for a job without enough approvals");

    // Two of three (one of them the KMS-style key) run; so does a dry run without approvals.
    let approved = unlock("approved", &bucket);
    let approvals = vec![alice.approve("alice", &approved, later), carol_kms.approve("carol-kms", &approved, later)];
    // Posted by `rootwarden submit --approvals FILE` (FILE: the approved job, as `approve` writes it).
    let dir = std::env::temp_dir().join(format!("rootwarden-approvals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rootwarden.toml"), config_toml(&local, &seed, "")).unwrap();
    std::fs::write(dir.join("approved.json"), with_approvals(&approved, approvals)).unwrap();
    let submit = std::process::Command::new(env!("CARGO_BIN_EXE_rootwarden"))
        .args(["--config", dir.join("rootwarden.toml").to_str().unwrap(), "submit"])
        .args(["--account", &account, "--task", "S3UnlockBucketPolicy", "--bucket", &bucket, "--ticket", "CHG-1"])
        .args(["--job-id", "approved", "--approvals", dir.join("approved.json").to_str().unwrap()])
        .env("AWS_ACCESS_KEY_ID", "AKIDMANAGEMENT000001")
        .env("AWS_SECRET_ACCESS_KEY", "management-secret")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    assert!(submit.status.success(), "{}", String::from_utf8_lossy(&submit.stderr));
    std::fs::remove_dir_all(dir).unwrap();
    let results = queues.results(1, WAIT).await;
    assert_eq!(results[0]["job_id"], "approved");
    assert_eq!(results[0]["outcome"], "succeeded", "{}", results[0]);
    assert_eq!(local.assume_root_calls().len(), 1);
    let dry = job("dry", &account, "S3UnlockBucketPolicy", json!({"bucket": bucket, "dry_run": true}));
    queues.send(&dry).await;
    let results = queues.results(1, WAIT).await;
    // The bucket is unlocked by now: the dry run finds nothing to change, but it ran.
    assert_eq!(results[0]["outcome"], "no_change", "a dry run is exempt: {}", results[0]);
    assert_eq!(results[0]["dry_run"], true);
    daemon.stop().await;
}

/// Runs `rootwarden approve ARGS` with `stdin`; returns (status, stdout, stderr).
fn approve_command(args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_rootwarden"))
        .arg("approve")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    (output.status.code().unwrap(), output.stdout, String::from_utf8(output.stderr).unwrap())
}

fn private_pem(pkcs8: &[u8]) -> String {
    format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", base64(pkcs8))
}

#[test]
fn approve_signs_with_a_local_key_and_adds_a_kms_style_signature_made_from_print_digest() {
    use rootwarden::approvals::{ApproverKey, verify};

    let dir = std::env::temp_dir().join(format!("rootwarden-approve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rng = SystemRandom::new();
    let alice_pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let alice = Ed25519KeyPair::from_pkcs8(alice_pkcs8.as_ref()).unwrap();
    let alice_pem = private_pem(alice_pkcs8.as_ref());
    let alice_file = dir.join("alice.pem");
    std::fs::write(&alice_file, &alice_pem).unwrap();
    // Bob's key stays in "KMS": only its public key (DER) and its signatures leave it.
    let bob_pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let bob = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, bob_pkcs8.as_ref()).unwrap();

    let body = r#"{"version":1,"job_id":"CHG-7","account_id":"111122223333","task":"S3UnlockBucketPolicy",
        "bucket":"payments-artifacts","ticket":"CHG-7"}"#;
    let (status, once, stderr) =
        approve_command(&["--key", alice_file.to_str().unwrap(), "--approver", "alice", "--not-after", "2h"], body.as_bytes());
    assert_eq!(status, 0, "{stderr}");
    let key_body: String = alice_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!String::from_utf8_lossy(&once).contains(&key_body) && !stderr.contains(&key_body), "the private key leaked");

    let not_after = rfc3339(SystemTime::now() + Duration::from_secs(3600));
    let (status, message, stderr) = approve_command(&["--print-digest", "--not-after", &not_after], &once);
    assert_eq!(status, 0, "{stderr}");
    assert!(message.starts_with(b"rootwarden-approval-v1\n"));
    assert!(stderr.contains(&not_after), "{stderr}");
    let signature = base64(bob.sign(&rng, &message).unwrap().as_ref());
    let args = ["--add-signature", "--approver", "bob-kms", "--signature", &signature, "--not-after", &not_after];
    let (status, twice, stderr) = approve_command(&args, &once);
    assert_eq!(status, 0, "{stderr}");

    let job = Job::parse(std::str::from_utf8(&twice).unwrap()).unwrap();
    assert_eq!(job.approvals.len(), 2);
    let alice_public = base64(AsDer::<PublicKeyX509Der>::as_der(alice.public_key()).unwrap().as_ref());
    let bob_public = base64(AsDer::<PublicKeyX509Der>::as_der(bob.public_key()).unwrap().as_ref());
    let keys = [ApproverKey::parse("alice", &alice_public).unwrap(), ApproverKey::parse("bob-kms", &bob_public).unwrap()];
    assert_eq!(verify(&job, &job.approvals, &keys, 2, SystemTime::now()), Ok(()));

    // A job not valid for the daemon, or a file that is not a private key: usage errors (64).
    assert_eq!(approve_command(&["--print-digest"], b"{}").0, 64);
    let (status, _, stderr) = approve_command(&["--key", "/etc/hostname", "--approver", "x"], body.as_bytes());
    assert_eq!(status, 64, "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_an_approver_and_removing_one_invalidates_its_pending_approvals() {
    let local = LocalAws::start();
    let seed = local.seed(2, 0, 0);
    let account = seed.accounts()[0].clone();
    let queues = Queues::new(&local, &seed).await;
    let alice = Signer::Ed25519(Ed25519KeyPair::generate().unwrap());
    let bob = Signer::Ed25519(Ed25519KeyPair::generate().unwrap());
    let base = config_toml(&local, &seed, "");
    let policy = |approvers: &[(&str, &Signer)]| {
        let list: Vec<String> = approvers
            .iter()
            .map(|(id, signer)| format!(r#"{{ id = "{id}", public_key = "{}" }}"#, signer.public_key()))
            .collect();
        format!(
            "{base}\n[policy]\nrequire_approval = [\"IAMCreateRootUserPassword\"]\napprovals_required = 1\napprovers = [{}]\n",
            list.join(", ")
        )
    };
    let daemon = DaemonProcess::start(&policy(&[("alice", &alice)]), &[]);
    let path = daemon.dir.join("rootwarden.toml");
    let later = SystemTime::now() + Duration::from_secs(3600);
    let approved = |id: &str, by: &str, signer: &Signer| {
        let body = job(id, &account, "IAMCreateRootUserPassword", json!({}));
        with_approvals(&body, vec![signer.approve(by, &body, later)])
    };
    let reload = |text: String| {
        let count = daemon.log().matches("the policy was reloaded").count();
        std::fs::write(&path, text).unwrap();
        daemon.signal("HUP");
        let start = std::time::Instant::now();
        while daemon.log().matches("the policy was reloaded").count() == count {
            assert!(start.elapsed() < WAIT, "no reload:\n{}", daemon.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    queues.send(&approved("by-bob-before", "bob", &bob)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(result["error_code"], "policy.approval", "{result}");
    assert!(result["reason"].as_str().unwrap().contains("`bob`: unknown approver"), "{result}");

    reload(policy(&[("alice", &alice), ("bob", &bob)]));
    queues.send(&approved("by-bob-after", "bob", &bob)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert!(["succeeded", "no_change"].contains(&result["outcome"].as_str().unwrap()), "bob was added: {result}");

    // Alice approved a job that has not been delivered yet; she is removed before it is.
    let pending = approved("by-alice-pending", "alice", &alice);
    reload(policy(&[("bob", &bob)]));
    queues.send(&pending).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(result["error_code"], "policy.approval", "{result}");
    assert!(result["reason"].as_str().unwrap().contains("`alice`: unknown approver"), "{result}");
    assert_eq!(local.assume_root_calls().len(), 1, "only bob's approved job got a root session");
}

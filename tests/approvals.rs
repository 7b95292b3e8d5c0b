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

/// A directory for one test's files, with the client configuration `rootwarden.toml`.
fn client_dir(name: &str, local: &LocalAws, seed: &Seed) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("approvals-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rootwarden.toml"), config_toml(local, seed, "")).unwrap();
    dir
}

/// Runs `rootwarden --config DIR/rootwarden.toml ARGS` as the management account, off the
/// runtime's threads (a sweep waits for the in-process daemon's results); returns (status,
/// stdout, stderr).
async fn rootwarden(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let config = dir.join("rootwarden.toml");
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_rootwarden"))
            .arg("--config")
            .arg(config)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "AKIDMANAGEMENT000001")
            .env("AWS_SECRET_ACCESS_KEY", "management-secret")
            .env_remove("AWS_PROFILE")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.code().unwrap(), text(output.stdout), text(output.stderr))
}

/// A key pair written as a PKCS#8 PEM file for `approve --key`, and its approver entry.
struct KeyFile {
    path: std::path::PathBuf,
    approver: ApproverConfig,
}

impl KeyFile {
    fn new(dir: &std::path::Path, id: &str, p256: bool) -> Self {
        let rng = SystemRandom::new();
        let (pkcs8, signer) = if p256 {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
            (pkcs8.as_ref().to_vec(), Signer::P256(pair))
        } else {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            (pkcs8.as_ref().to_vec(), Signer::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()))
        };
        let path = dir.join(format!("{id}.pem"));
        std::fs::write(&path, private_pem(&pkcs8)).unwrap();
        Self { path, approver: ApproverConfig { id: id.into(), public_key: signer.public_key() } }
    }

    /// `rootwarden approve --key` over `input` (a job, or JSON Lines).
    fn approve(&self, input: &[u8]) -> Vec<u8> {
        let args = ["--key", self.path.to_str().unwrap(), "--approver", &self.approver.id, "--not-after", "2h"];
        let (status, approved, stderr) = approve_command(&args, input);
        assert_eq!(status, 0, "{stderr}");
        approved
    }
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_planned_then_approved_by_two_runs_everywhere_and_without_approvals_is_rejected_everywhere() {
    let local = LocalAws::start();
    let seed = local.seed(4, 0, 0);
    let mut accounts: Vec<String> = seed.accounts().into_iter().take(3).collect();
    accounts.sort(); // the order of a plan
    let full = json!({"password": true, "access_keys": 1, "mfa_devices": 1, "signing_certificates": 1});
    for account in &accounts {
        local.set_root_state(account, full.clone());
    }
    let dir = client_dir("sweep", &local, &seed);
    let alice = KeyFile::new(&dir, "alice", false);
    let bob = KeyFile::new(&dir, "bob", true);
    let mut config = config(&local, &seed);
    config.policy.require_approval = vec!["IAMDeleteRootUserCredentials".into()];
    config.policy.approvals_required = 2;
    config.policy.approvers = vec![alice.approver.clone(), bob.approver.clone()];
    let daemon = RunningDaemon::start(config).await;
    let queues = Queues::new(&local, &seed).await;
    let include = accounts.join(",");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let sweep_args = |sweep_id: &'static str| {
        let task = ["--task", "IAMDeleteRootUserCredentials", "--credentials", "access_keys", "--ticket", "CHG-SWEEP"];
        let mut args: Vec<String> = ["sweep"].iter().chain(&task).map(|a| (*a).to_owned()).collect();
        args.extend(["--include".into(), include.clone(), "--sweep-id".into(), sweep_id.into()]);
        args.extend(["--report".into(), path(sweep_id), "--idle-timeout".into(), "60s".into()]);
        args
    };
    let run = |sweep_id: &'static str, more: &[String]| {
        let mut args = sweep_args(sweep_id);
        args.extend_from_slice(more);
        let dir = dir.clone();
        async move { rootwarden(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };

    // The plan: one job per account, as the sweep will post them; nothing posted, no state.
    let (status, _, stderr) = run("approved", &["--plan".into(), path("plan.jsonl")]).await;
    assert_eq!(status, 0, "{stderr}");
    assert!(stderr.contains("3 jobs"), "{stderr}");
    let plan = std::fs::read(dir.join("plan.jsonl")).unwrap();
    let planned = lines(&plan);
    let ids: Vec<&str> = planned.iter().map(|job| job["job_id"].as_str().unwrap()).collect();
    let expected: Vec<String> = accounts.iter().map(|a| format!("sweep-approved-{a}")).collect();
    assert_eq!(ids, expected);
    assert!(planned.iter().all(|job| job["ticket"] == "CHG-SWEEP" && job.get("approvals").is_none()));
    assert!(!dir.join("approved.state.json").exists(), "a plan writes no state");
    assert_eq!(queues.intake_depth().await, (0, 0), "a plan posts nothing");

    // Each approver signs the whole plan; their files are concatenated.
    let alice_file = alice.approve(&plan);
    let bob_file = bob.approve(&plan);
    assert_eq!(lines(&alice_file).len(), 3, "JSON Lines in, JSON Lines out");
    std::fs::write(dir.join("approved.jsonl"), [alice_file.clone(), bob_file].concat()).unwrap();

    // A job in the file that is not the sweep's (another ticket) stops it before any post.
    let mut tampered = lines(&alice_file);
    tampered[1]["ticket"] = json!("CHG-OTHER");
    let tampered: String = tampered.iter().map(|job| format!("{job}\n")).collect();
    std::fs::write(dir.join("tampered.jsonl"), tampered).unwrap();
    let (status, _, stderr) = run("approved", &["--approvals".into(), path("tampered.jsonl")]).await;
    assert_eq!(status, 64, "{stderr}");
    assert!(
        stderr.contains(&format!("job `sweep-approved-{}` differs", accounts[1])) && stderr.contains("(ticket)"),
        "{stderr}"
    );
    assert!(!dir.join("approved.state.json").exists() && queues.intake_depth().await == (0, 0), "nothing was posted");

    let (status, stdout, stderr) = run("approved", &["--approvals".into(), path("approved.jsonl")]).await;
    assert_eq!(status, 0, "{stdout}\n{stderr}");
    assert!(!stderr.contains("no approvals"), "{stderr}");
    let rows = csv_rows(&dir.join("approved.csv"));
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(row["Outcome"], "succeeded", "{row:?}");
        let state = local.root_state(&row["AccountId"]);
        assert!(state["access_keys"].as_array().unwrap().is_empty(), "{state}");
        assert!(!state["mfa_devices"].as_array().unwrap().is_empty(), "only the chosen credentials: {state}");
    }
    assert_eq!(local.assume_root_calls().len(), 3);

    // The same sweep without approvals: every job rejected before any root session.
    for account in &accounts {
        local.set_root_state(account, full.clone());
    }
    let (status, _, stderr) = run("unapproved", &[]).await;
    assert_eq!(status, 1, "{stderr}");
    let rows = csv_rows(&dir.join("unapproved.csv"));
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!((row["Outcome"].as_str(), row["ErrorCode"].as_str()), ("rejected", "policy.approval"), "{row:?}");
        assert!(row["Reason"].contains("found 0: the job carries no approvals"), "{row:?}");
        assert_eq!(local.root_state(&row["AccountId"])["access_keys"].as_array().unwrap().len(), 1, "unchanged");
    }
    assert_eq!(local.assume_root_calls().len(), 3, "no AssumeRoot for the unapproved sweep");
    assert_eq!(daemon.metric("rootwarden_jobs_rejected_total{check=\"policy.approval\"}"), 3.0);

    // Approvals for one account only: the sweep says how many go without, and still posts them.
    let (status, plan, stderr) = run("partly", &["--plan".into(), "-".into()]).await;
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(lines(plan.as_bytes()).len(), 3, "--plan - writes the plan on stdout: {plan}");
    let first_line = plan.lines().next().unwrap();
    std::fs::write(dir.join("partly-approved.jsonl"), alice.approve(first_line.as_bytes())).unwrap();
    let (status, _, stderr) = run("partly", &["--approvals".into(), path("partly-approved.jsonl")]).await;
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("2 of the 3 accounts to post have no approvals"), "{stderr}");
    let rows = csv_rows(&dir.join("partly.csv"));
    assert!(rows.iter().all(|row| row["ErrorCode"] == "policy.approval"), "{rows:?}");
    let alice_only = rows.iter().find(|row| row["AccountId"] == accounts[0]).unwrap();
    assert!(alice_only["Reason"].contains("found 1 (`alice`)"), "{alice_only:?}");
    assert_eq!(local.assume_root_calls().len(), 3);
    assert_eq!(daemon.metric("rootwarden_jobs_rejected_total{check=\"policy.approval\"}"), 6.0);
    daemon.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_policy_approved_by_two_runs_and_the_same_approvals_over_an_altered_policy_are_rejected() {
    let local = LocalAws::start();
    let seed = local.seed(2, 0, 0);
    let account = seed.accounts()[0].clone();
    let bucket = format!("approved-restore-{:x}", rand_id() as u32);
    let member = member_clients(&local, &account).await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&member.sdk).force_path_style(true).build());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let resources = json!([format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")]);
    let locked = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "OnlyThroughVpce", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": resources,
         "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}}]});
    s3.put_bucket_policy().bucket(&bucket).policy(locked.to_string()).send().await.unwrap();
    let policy_now = || async {
        let text = s3.get_bucket_policy().bucket(&bucket).send().await.unwrap().policy().unwrap().to_owned();
        serde_json::from_str::<Value>(&text).unwrap()
    };
    // What the approvers agree to put back, and the same with a partner swapped for another.
    let restore = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "PartnerRead", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
         "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": resources},
        {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": resources,
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]});
    let altered: Value = serde_json::from_str(&restore.to_string().replace("444455556666", "999988887777")).unwrap();

    let dir = client_dir("restore", &local, &seed);
    let alice = KeyFile::new(&dir, "alice", false);
    // Bob's key is KMS-style: he signs the bytes --print-digest gives him, elsewhere.
    let rng = SystemRandom::new();
    let bob_pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let bob = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, bob_pkcs8.as_ref()).unwrap();
    let bob_public = base64(AsDer::<PublicKeyX509Der>::as_der(bob.public_key()).unwrap().as_ref());
    let mut config = config(&local, &seed);
    config.policy.require_approval = vec!["S3UnlockBucketPolicy".into()];
    config.policy.approvals_required = 2;
    config.policy.approvers = vec![alice.approver.clone(), ApproverConfig { id: "bob-kms".into(), public_key: bob_public }];
    let daemon = RunningDaemon::start(config).await;
    let queues = Queues::new(&local, &seed).await;

    // The job as the requester hands it to the approvers (pretty-printed: the digest is over the
    // policy's compact text, whatever its layout).
    let job = json!({"version": 1, "job_id": "restore-approved", "account_id": account, "task": "S3UnlockBucketPolicy",
        "bucket": bucket, "restore_policy": restore, "ticket": "CHG-9"});
    let once = alice.approve(serde_json::to_string_pretty(&job).unwrap().as_bytes());
    let not_after = rfc3339(SystemTime::now() + Duration::from_secs(3600));
    let (status, message, stderr) = approve_command(&["--print-digest", "--not-after", &not_after], &once);
    assert_eq!(status, 0, "{stderr}");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, restore.to_string().as_bytes());
    let hex: String = digest.as_ref().iter().map(|byte| format!("{byte:02x}")).collect();
    let text = String::from_utf8(message.clone()).unwrap();
    assert!(text.contains(&format!("\nrestore_policy_sha256=\"{hex}\"\n")), "{text}");
    assert!(text.contains("\nallow_lockout=false\n") && text.contains("\nremove_statements=null\n"), "{text}");
    let signature = base64(bob.sign(&rng, &message).unwrap().as_ref());
    let args = ["--add-signature", "--approver", "bob-kms", "--signature", &signature, "--not-after", &not_after];
    let (status, twice, stderr) = approve_command(&args, &once);
    assert_eq!(status, 0, "{stderr}");
    std::fs::write(dir.join("approved.json"), &twice).unwrap();
    std::fs::write(dir.join("restore.json"), serde_json::to_string_pretty(&restore).unwrap()).unwrap();
    std::fs::write(dir.join("altered.json"), serde_json::to_string_pretty(&altered).unwrap()).unwrap();
    let submit = |policy_file: &'static str| {
        let dir = dir.clone();
        let (account, bucket) = (account.clone(), bucket.clone());
        async move {
            let policy = dir.join(policy_file).to_str().unwrap().to_owned();
            let approvals = dir.join("approved.json").to_str().unwrap().to_owned();
            let args = ["submit", "--account", &account, "--task", "S3UnlockBucketPolicy", "--bucket", &bucket];
            let more =
                ["--ticket", "CHG-9", "--job-id", "restore-approved", "--restore-policy", &policy, "--approvals", &approvals];
            let (status, _, stderr) = rootwarden(&dir, &[&args[..], &more[..]].concat()).await;
            assert_eq!(status, 0, "{stderr}");
        }
    };

    // The approvals, posted with another policy to put back: rejected, no root session.
    submit("altered.json").await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(
        (result["outcome"].as_str(), result["error_code"].as_str()),
        (Some("rejected"), Some("policy.approval")),
        "{result}"
    );
    let reason = result["reason"].as_str().unwrap();
    assert!(reason.contains("found 0") && reason.contains("`alice`: invalid signature"), "{reason}");
    assert!(reason.contains("`bob-kms`: invalid signature"), "{reason}");
    assert!(local.assume_root_calls().is_empty(), "no AssumeRoot for an altered restore_policy");
    assert_eq!(policy_now().await, locked, "nothing changed");

    // The approved policy: put back.
    submit("restore.json").await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["findings"]["change"], "restore_policy");
    assert_eq!(local.assume_root_calls().len(), 1);
    assert_eq!(policy_now().await, restore);
    daemon.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_retry_is_planned_under_its_new_job_ids_and_planning_it_leaves_the_sweep_state_as_it_was() {
    use rootwarden::sweep::accounts::Account;
    use rootwarden::sweep::state::{Definition, SweepState};

    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("approvals-retry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Nothing listens here: a resumed sweep's plan needs no AWS call.
    let config = "[aws]\nendpoint_url = \"http://127.0.0.1:9\"\n[intake]\nqueue_url = \"http://127.0.0.1:9/q\"\n";
    std::fs::write(dir.join("rootwarden.toml"), config).unwrap();
    let definition = Definition {
        sweep_id: "chg-7".into(),
        task: rootwarden::job::Task::DeleteRootUserCredentials,
        credentials: None,
        ticket: Some("CHG-7".into()),
        requested_by: None,
        dry_run: false,
        regions: None,
    };
    let (failed, done) = ("111122223333", "444455556666");
    let targets = [failed, done].map(|id| Account { id: id.into(), name: format!("member-{id}") }).to_vec();
    let mut state = SweepState::new(definition, targets, vec![]);
    for (account, outcome) in [(failed, "failed"), (done, "succeeded")] {
        let result = json!({"version": 1, "job_id": format!("sweep-chg-7-{account}"), "account_id": account,
            "task": "IAMDeleteRootUserCredentials", "outcome": outcome, "reason": null, "error_code": null,
            "requested_by": null, "ticket": "CHG-7", "dry_run": false, "findings": null,
            "root_session_access_key_id": null, "attempt": 1, "message_id": "m", "started_at": "t", "finished_at": "t"});
        state.posted.insert(account.into(), "t".into());
        state.results.insert(account.into(), serde_json::from_value(result).unwrap());
    }
    let state_file = dir.join("chg-7.state.json");
    state.save(&state_file).unwrap();
    let before = std::fs::read(&state_file).unwrap();
    let plan = |more: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_rootwarden"))
            .args(["--config", dir.join("rootwarden.toml").to_str().unwrap(), "sweep"])
            .args(["--task", "IAMDeleteRootUserCredentials", "--resume", "chg-7", "--report"])
            .arg(dir.join("chg-7"))
            .args(["--plan", "-"])
            .args(more)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        lines(&output.stdout)
    };
    assert!(plan(&[]).is_empty(), "every account has a result: a resume posts nothing");
    let retry = plan(&["--retry-failed"]);
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0]["job_id"], format!("sweep-chg-7-{failed}-r1"), "a retry is a new job id, to approve again");
    assert_eq!(retry[0]["ticket"], "CHG-7", "the sweep's first definition");
    assert_eq!(std::fs::read(&state_file).unwrap(), before, "planning changed nothing");
    std::fs::remove_dir_all(dir).unwrap();
}

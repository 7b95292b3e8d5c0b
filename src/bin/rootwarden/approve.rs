//! `rootwarden approve`: adds an approval (two-person rule) to a job or to each job of a sweep's
//! plan, or prints the bytes an external signer must sign.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::exit;

#[derive(clap::Args)]
#[command(after_help = "Reads the job (JSON) on stdin, or JSON Lines (one job a line: a sweep's --plan). With --key or \
    --add-signature, writes it with one more approval on stdout (JSON Lines: each job, one a line; --key only). \
    With --print-digest (one job), writes the exact bytes to sign on stdout and the not_after to use on stderr, e.g.\n  \
    rootwarden approve --print-digest --not-after 2026-12-02T09:00:00Z < job.json > message.bin\n  \
    aws kms sign --key-id alias/approver-bob --signing-algorithm ECDSA_SHA_256 --message-type RAW \
    --message fileb://message.bin --query Signature --output text\n  \
    rootwarden approve --add-signature --approver bob --signature <base64> --not-after 2026-12-02T09:00:00Z \
    < job.json > approved.json")]
pub(crate) struct ApproveArgs {
    /// Signs with this PKCS#8 PEM private key (Ed25519 or ECDSA P-256); the key is never printed.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["print_digest", "add_signature"], requires = "approver")]
    key: Option<PathBuf>,
    /// The approver's id, as in policy.approvers.
    #[arg(long)]
    approver: Option<String>,
    /// When the approval stops counting: an RFC 3339 UTC time, or a duration from now (24h).
    #[arg(long, default_value = "24h", value_parser = parse_not_after)]
    not_after: String,
    /// Prints the canonical message to sign (raw bytes) instead of approving.
    #[arg(long, conflicts_with = "add_signature")]
    print_digest: bool,
    /// Adds a signature made elsewhere (with --approver, --signature and the --not-after it signed).
    #[arg(long, requires_all = ["approver", "signature"])]
    add_signature: bool,
    /// The base64 signature, for --add-signature (what aws kms sign returns).
    #[arg(long, requires = "add_signature")]
    signature: Option<String>,
}

/// `--not-after`: an RFC 3339 time as given, or a duration from now, written in RFC 3339.
fn parse_not_after(text: &str) -> Result<String, String> {
    if humantime::parse_rfc3339(text).is_ok() {
        return Ok(text.to_owned());
    }
    match humantime::parse_duration(text) {
        Ok(duration) => Ok(humantime::format_rfc3339_seconds(std::time::SystemTime::now() + duration).to_string()),
        Err(_) => Err("not an RFC 3339 UTC time (2026-12-02T09:00:00Z) or a duration (24h)".into()),
    }
}

/// `rootwarden approve`: one approval more on the job read on stdin (or on each job of JSON
/// Lines, a sweep's plan), or the message to sign.
pub(crate) fn approve(args: ApproveArgs) -> ExitCode {
    use std::io::{Read, Write};
    let usage = |text: String| {
        eprintln!("rootwarden: {text}");
        ExitCode::from(exit::USAGE)
    };
    let mut body = String::new();
    if let Err(error) = std::io::stdin().read_to_string(&mut body) {
        return usage(format!("could not read the job on stdin: {error}"));
    }
    let documents = match rootwarden::approvals::documents(&body) {
        Ok(documents) if documents.is_empty() => return usage("no job on stdin".into()),
        Ok(documents) => documents,
        Err(error) => return usage(format!("the job on stdin is invalid: {error}")),
    };
    // One job written over several lines comes back pretty-printed; JSON Lines (a plan) come
    // back as JSON Lines, one approved job a line.
    let one_pretty_job = documents.len() == 1 && body.trim().contains('\n');
    let mut jobs = Vec::with_capacity(documents.len());
    for (line, value) in documents {
        match rootwarden::job::Job::parse(&value.to_string()) {
            Ok(job) => jobs.push((job, value)),
            Err(error) if one_pretty_job => return usage(format!("the job on stdin is invalid: {error}")),
            Err(error) => return usage(format!("the job on line {line} of stdin is invalid: {error}")),
        }
    }
    if jobs.len() > 1 && (args.print_digest || args.add_signature) {
        return usage(format!(
            "stdin holds {} jobs: --print-digest and --add-signature take one job (an external signer signs one message at a time); \
             sign them all with --key, or one line at a time (split -l 1 plan.jsonl job-) and concatenate the approved jobs",
            jobs.len()
        ));
    }
    if args.print_digest {
        let message = rootwarden::approvals::canonical_message(&jobs[0].0, &args.not_after);
        eprintln!("rootwarden: sign these bytes; not_after: {} (pass it to --add-signature --not-after)", args.not_after);
        let mut stdout = std::io::stdout();
        return match stdout.write_all(&message).and_then(|()| stdout.flush()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("rootwarden: could not write the message: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let key = match (&args.key, &args.signature) {
        (Some(path), _) => match std::fs::read_to_string(path) {
            Ok(text) => match rootwarden::approvals::SigningKey::from_pem(&text) {
                Ok(key) => Some(key),
                Err(error) => return usage(format!("--key {}: {error}", path.display())),
            },
            Err(error) => return usage(format!("--key {}: {error}", path.display())),
        },
        (None, Some(_)) => None,
        (None, None) => return usage("give --key FILE, --add-signature or --print-digest".into()),
    };
    let mut text = String::new();
    for (job, mut value) in jobs {
        let signature = match (&key, &args.signature) {
            (Some(key), _) => match key.sign(&rootwarden::approvals::canonical_message(&job, &args.not_after)) {
                Ok(signature) => signature,
                Err(error) => return usage(format!("--key: {error}")),
            },
            (None, signature) => signature.as_deref().unwrap_or_default().trim().to_owned(),
        };
        let approver = args.approver.clone().unwrap_or_default();
        let approval = rootwarden::approvals::Approval { approver, signature, not_after: args.not_after.clone() };
        let approvals =
            value.as_object_mut().expect("a job is an object").entry("approvals").or_insert_with(|| serde_json::json!([]));
        match approvals.as_array_mut() {
            Some(list) => list.push(serde_json::to_value(approval).expect("approvals serialize")),
            None => return usage(format!("the approvals of job {} are not a list", job.job_id)),
        }
        let written = if one_pretty_job { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) };
        text.push_str(&written.expect("JSON serializes"));
        text.push('\n');
    }
    let mut stdout = std::io::stdout();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rootwarden: could not write the approved job: {error}");
            ExitCode::FAILURE
        }
    }
}

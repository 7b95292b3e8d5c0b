//! The `rootwarden` command: `run` the daemon, `check-config`, `submit` a job, `sweep` the
//! organization, show or enable its root access `features`, `healthcheck`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use futures::StreamExt;
use rootwarden::config::{Config, ConfigError, DEFAULT_CONFIG_PATH};
use rootwarden::job::{CredentialKind, Task};
use rootwarden::policy::PolicyHandle;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tokio_util::sync::CancellationToken;

/// Exit statuses of every `rootwarden` command (sysexits.h values where one fits):
///
/// - 0: done (a sweep: every account has a result, none failed or was rejected); also `--help`
///   and `--version`.
/// - 1: the work failed: a sweep where an account failed or was rejected, an AWS call that
///   failed (`submit`, `features`, a sweep's organization or queue calls), a sweep state file
///   that cannot be read, `features status` with something off, an unhealthy `healthcheck`, the
///   daemon stopped on an error.
/// - 64 ([`exit::USAGE`], EX_USAGE): the command line is wrong: clap's own parse errors (an
///   unknown command or flag, a missing or malformed value), an unknown task or one the command
///   cannot run, a malformed account or OU id, a job `submit` would post that the daemon would
///   reject, a sweep to resume that is not there. Said before any banner and any AWS call.
/// - 75 ([`exit::INCOMPLETE`], EX_TEMPFAIL): a sweep stopped before every account had a
///   result: resume it.
/// - 78 ([`exit::CONFIG`], EX_CONFIG): the configuration is invalid, or lacks a queue the
///   command needs.
/// - 130 ([`exit::SECOND_SIGNAL`]): `run` got a second stop signal and exited without draining.
mod exit {
    /// A wrong command line.
    pub const USAGE: u8 = 64;
    /// A sweep stopped before every account had a result.
    pub const INCOMPLETE: u8 = 75;
    /// An unusable configuration.
    pub const CONFIG: u8 = rootwarden::config::EXIT_CONFIG as u8;
    /// `run` after a second stop signal.
    pub const SECOND_SIGNAL: i32 = 130;
}

/// The end of the top-level `--help`: where the configuration comes from and the exit statuses.
fn after_help() -> String {
    format!(
        "Configuration: --config PATH (default {DEFAULT_CONFIG_PATH}), then ROOTWARDEN_<SECTION>__<KEY> variables.\n\
         Exit status: 0 done; 1 the work failed (a sweep's account failed or was rejected, an AWS call failed, \
         a feature is off, unhealthy); {} wrong command line (nothing was sent to AWS); \
         {} sweep incomplete (resume it); {} invalid configuration; \
         {} run stopped by a second signal.",
        exit::USAGE,
        exit::INCOMPLETE,
        exit::CONFIG,
        exit::SECOND_SIGNAL
    )
}

#[derive(Parser)]
#[command(version, about = "Runs AWS centralized root access tasks from an SQS job queue", after_help = after_help())]
struct Cli {
    #[arg(
        long,
        global = true,
        env = "ROOTWARDEN_CONFIG",
        value_name = "PATH",
        help = format!(
            "Configuration file (TOML; default {DEFAULT_CONFIG_PATH}); ROOTWARDEN_<SECTION>__<KEY> variables override it"
        )
    )]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Takes jobs from the intake queue until SIGTERM or SIGINT.
    Run,
    /// Validates the configuration and prints the effective one.
    CheckConfig,
    /// Builds a v1 job, validates it, posts it to the intake queue and prints the message id.
    Submit(Box<SubmitArgs>),
    /// Adds an approval to the job read on stdin, or to each job of a sweep's plan (two-person
    /// rule), or prints the bytes an external signer (aws kms sign) must sign.
    Approve(Box<ApproveArgs>),
    /// Posts one job per member account, waits for the results and writes a CSV/JSON report.
    Sweep(Box<SweepArgs>),
    /// Shows or enables the organization's centralized root access set-up.
    Features {
        #[command(subcommand)]
        action: FeaturesAction,
    },
    /// Exits 0 when the local daemon's /healthz answers 200 (for container health checks).
    Healthcheck {
        /// The daemon's health URL.
        #[arg(long, default_value = "http://127.0.0.1:9464/healthz")]
        url: String,
    },
}

#[derive(clap::Args)]
struct SubmitArgs {
    /// Member account id (12 digits).
    #[arg(long)]
    account: String,
    /// IAMAuditRootUserCredentials, IAMDeleteRootUserCredentials, IAMCreateRootUserPassword,
    /// S3UnlockBucketPolicy or SQSUnlockQueuePolicy.
    #[arg(long, value_parser = parse_task)]
    task: Task,
    /// Idempotency key (default: generated).
    #[arg(long)]
    job_id: Option<String>,
    /// Bucket, for S3UnlockBucketPolicy.
    #[arg(long)]
    bucket: Option<String>,
    /// Queue URL, for SQSUnlockQueuePolicy.
    #[arg(long)]
    queue_url: Option<String>,
    /// Region of the resource.
    #[arg(long)]
    region: Option<String>,
    /// Credential kinds to delete (password, access_keys, signing_certificates, mfa_devices).
    #[arg(long, value_delimiter = ',')]
    credentials: Option<Vec<CredentialKind>>,
    /// Who asks.
    #[arg(long)]
    requested_by: Option<String>,
    /// Approving ticket.
    #[arg(long)]
    ticket: Option<String>,
    /// Only read and report.
    #[arg(long)]
    dry_run: bool,
    /// Intake queue URL (default: intake.queue_url from the configuration).
    #[arg(long)]
    intake_url: Option<String>,
    /// Approvals to post with the job: a JSON list of approvals, or a job as `rootwarden
    /// approve` writes it (its `approvals`). They sign the job id: pass --job-id.
    #[arg(long, value_name = "FILE", requires = "job_id")]
    approvals: Option<PathBuf>,
    /// Unlock tasks: remove only these statements (their Sids, or #index for one without) and
    /// put the rest of the policy back.
    #[arg(long, value_delimiter = ',', conflicts_with = "restore_policy")]
    remove_statements: Option<Vec<String>>,
    /// Unlock tasks: put this policy (a JSON file, e.g. an earlier result's previous_policy)
    /// in place of the resource's policy.
    #[arg(long, value_name = "FILE")]
    restore_policy: Option<PathBuf>,
    /// With --restore-policy: accept a policy that itself locks everyone out.
    #[arg(long, requires = "restore_policy")]
    allow_lockout: bool,
    /// Unlock tasks: find (and unless --dry-run, unlock) every locked bucket or queue of the
    /// account, instead of naming one.
    #[arg(long, conflicts_with_all = ["bucket", "queue_url"])]
    discover: bool,
    /// With --discover: only these regions (queues: default the job's region).
    #[arg(long, value_delimiter = ',', requires = "discover")]
    regions: Option<Vec<String>>,
}

#[derive(clap::Args)]
#[command(after_help = "Reads the job (JSON) on stdin, or JSON Lines (one job a line: a sweep's --plan). With --key or \
    --add-signature, writes it with one more approval on stdout (JSON Lines: each job, one a line; --key only). \
    With --print-digest (one job), writes the exact bytes to sign on stdout and the not_after to use on stderr, e.g.\n  \
    rootwarden approve --print-digest --not-after 2026-12-02T09:00:00Z < job.json > message.bin\n  \
    aws kms sign --key-id alias/approver-bob --signing-algorithm ECDSA_SHA_256 --message-type RAW \
    --message fileb://message.bin --query Signature --output text\n  \
    rootwarden approve --add-signature --approver bob --signature <base64> --not-after 2026-12-02T09:00:00Z \
    < job.json > approved.json")]
struct ApproveArgs {
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

#[derive(Subcommand)]
enum FeaturesAction {
    /// Trusted access for iam.amazonaws.com, RootCredentialsManagement, RootSessions and IAM's
    /// delegated administrator (exit 1 when a feature is off).
    Status,
    /// Enables trusted access for iam.amazonaws.com and both features (management account only).
    Enable,
}

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("id").args(["sweep_id", "resume"]))]
#[command(after_help = "Approvals (two-person rule): write the sweep's jobs with --plan, have each approver sign them \
    (rootwarden approve --key KEY --approver ID < plan.jsonl > ID.jsonl), then run the same sweep with \
    --approvals FILE (the approvers' files, concatenated).\n  \
    rootwarden sweep --task IAMDeleteRootUserCredentials --ticket CHG-7 --sweep-id chg-7 --plan plan.jsonl\n  \
    cat alice.jsonl bob.jsonl > approved.jsonl\n  \
    rootwarden sweep --task IAMDeleteRootUserCredentials --ticket CHG-7 --sweep-id chg-7 --approvals approved.jsonl")]
struct SweepArgs {
    /// Any of the five tasks. S3UnlockBucketPolicy and SQSUnlockQueuePolicy discover the locked
    /// buckets or queues of every account (a dry run unless --apply).
    #[arg(long, value_parser = parse_task)]
    task: Task,
    /// For IAMDeleteRootUserCredentials: kinds to delete (password, access_keys,
    /// signing_certificates, mfa_devices); default all.
    #[arg(long, value_delimiter = ',')]
    credentials: Option<Vec<CredentialKind>>,
    /// Accounts never targeted (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    exclude: Vec<String>,
    /// Organizational units whose accounts, at any depth, are never targeted.
    #[arg(long = "exclude-ou", value_delimiter = ',')]
    exclude_ou: Vec<String>,
    /// Only these accounts (default: every ACTIVE member but the management account).
    #[arg(long, value_delimiter = ',')]
    include: Vec<String>,
    /// Approving ticket, copied into every job.
    #[arg(long)]
    ticket: Option<String>,
    /// Only read, and report what would change.
    #[arg(long)]
    dry_run: bool,
    /// A discovery (S3UnlockBucketPolicy, SQSUnlockQueuePolicy): remove the locking statements
    /// of what it finds (needs --ticket). Without it a discovery only reports.
    #[arg(long)]
    apply: bool,
    /// A discovery: only these regions (buckets: default all; queues: default aws.region).
    #[arg(long, value_delimiter = ',')]
    regions: Option<Vec<String>>,
    /// Report base path: writes PATH.csv, PATH.json and PATH.state.json (default sweep-<id>).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Resume this sweep from its state file (same --report as the first run).
    #[arg(long, value_name = "SWEEP_ID", conflicts_with = "sweep_id")]
    resume: Option<String>,
    /// The id of a new sweep (default: generated from the time).
    #[arg(long)]
    sweep_id: Option<String>,
    /// With --resume: post again the jobs posted without a result (only if the intake queue
    /// lost them; otherwise they run twice).
    #[arg(long, requires = "resume")]
    repost_pending: bool,
    /// With --resume: post again, as a new attempt, the accounts whose job ended `failed`
    /// (rejected jobs stay: the same guardrail would refuse them again).
    #[arg(long, requires = "resume")]
    retry_failed: bool,
    /// Jobs posted and not yet answered, at most.
    #[arg(long, default_value_t = 100)]
    max_in_flight: usize,
    /// Stop when no result arrives for this long (e.g. 5m).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    idle_timeout: std::time::Duration,
    /// Intake queue URL (default: intake.queue_url from the configuration).
    #[arg(long)]
    intake_url: Option<String>,
    /// Results queue URL (default: results.queue_url from the configuration).
    #[arg(long)]
    results_url: Option<String>,
    /// Writes the jobs this sweep would post to FILE (- for stdout), JSON Lines, one job per
    /// account, for approvers to sign with `rootwarden approve`; posts nothing and writes no
    /// state. Needs --sweep-id (or --resume): the approvals sign the job ids, which hold it.
    #[arg(long, value_name = "FILE", requires = "id")]
    plan: Option<PathBuf>,
    /// Posts each job with the approvals of the job of the same id in FILE: JSON Lines of approved
    /// jobs as `rootwarden approve` writes them, several approvers' files concatenated (their
    /// approvals are merged). Every job in FILE must be this sweep's as --plan wrote it (same
    /// sweep id, task and fields), else nothing is posted. Accounts without approvals are posted
    /// without, with a warning. A job retried by --retry-failed has a new job id, which the first
    /// approvals do not cover: plan the retry (--resume ID --retry-failed --plan FILE) and have
    /// it approved again.
    #[arg(long, value_name = "FILE", requires = "id", conflicts_with = "plan")]
    approvals: Option<PathBuf>,
}

/// A task name, exact; the error names the five.
fn parse_task(text: &str) -> Result<Task, String> {
    text.parse().map_err(|_| {
        let names: Vec<&str> = Task::ALL.iter().map(|task| task.as_str()).collect();
        let (last, others) = names.split_last().expect("five tasks");
        format!("not a task{}; the five tasks are {} and {last}", did_you_mean(text), others.join(", "))
    })
}

/// " (did you mean T?)" when `text` is a task name in other letter case, else "".
fn did_you_mean(text: &str) -> String {
    let close = Task::ALL.iter().find(|task| task.as_str().eq_ignore_ascii_case(text.trim()));
    close.map_or(String::new(), |task| format!(" (did you mean {task}?)"))
}

/// The daemon's runtime: one thread (a current-thread scheduler, no cross-thread wake-ups) or
/// a multi-thread scheduler with `threads` workers (0: one per CPU).
fn daemon_runtime(threads: usize) -> tokio::runtime::Runtime {
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if threads > 1 {
        builder.worker_threads(threads);
    }
    builder.enable_all().build().expect("a tokio runtime")
}

/// The client commands (`submit`, `sweep`, `features`...) print sentences, not logs; with
/// `RUST_LOG` set they also log to stderr, the AWS SDK's full error chain included
/// (`RUST_LOG=debug`). The daemon sets up its own logging from its configuration.
fn log_client_commands_to_stderr() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).try_init();
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are "errors" that exit 0; every parse error is a usage error.
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { ExitCode::from(exit::USAGE) } else { ExitCode::SUCCESS };
        }
    };
    let explicit = cli.config.is_some();
    let path = cli.config.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    let env: HashMap<String, String> = std::env::vars().collect();
    // The daemon builds its own runtime from its configuration (workers.runtime_threads).
    let runtime = || tokio::runtime::Runtime::new().expect("a tokio runtime");
    if !matches!(cli.command, Command::Run) {
        log_client_commands_to_stderr();
    }
    match cli.command {
        Command::Healthcheck { url } => match url.strip_prefix("http://") {
            Some(rest) => runtime().block_on(healthcheck(rest)),
            None => {
                eprintln!("rootwarden: --url {url}: only http:// URLs are supported");
                ExitCode::from(exit::USAGE)
            }
        },
        Command::CheckConfig => match load(&path, explicit, &env) {
            Ok(config) => {
                if let Some(note) = rootwarden::config::missing_file_note(&path, explicit) {
                    eprintln!("rootwarden: {note}");
                }
                print!("{}", toml_text(&config));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Submit(args) => {
            // The job is validated as the daemon will before anything else: a wrong one is a
            // usage error, whatever the configuration. submit needs only [aws] and [intake]; the
            // queue URL may come from the flag alone.
            let intake_url = args.intake_url.clone();
            let job = match new_job(*args) {
                Ok(job) => job,
                Err(code) => return code,
            };
            match load_for_client(&path, explicit, &env) {
                Ok(config) => runtime().block_on(submit(config, job, intake_url)),
                Err(code) => code,
            }
        }
        Command::Approve(args) => approve(*args),
        Command::Sweep(args) => {
            // Every flag is checked (and a sweep to resume found) before the banner and any AWS
            // call. Like submit: only [aws], [intake] and [results] matter, and flags may replace them.
            let options = match sweep_options(&args) {
                Ok(options) => options,
                Err(code) => return code,
            };
            match load_for_client(&path, explicit, &env) {
                // A plan reads the organization only: no queue is needed.
                Ok(config) if args.plan.is_some() => runtime().block_on(sweep_plan(config, options, args.plan.as_deref())),
                Ok(config) => match with_queues(options, &args, &config) {
                    Ok(options) => runtime().block_on(sweep(config, options)),
                    Err(code) => code,
                },
                Err(code) => code,
            }
        }
        Command::Features { action } => match load_for_client(&path, explicit, &env) {
            Ok(config) => runtime().block_on(features(config, action)),
            Err(code) => code,
        },
        Command::Run => {
            let config = match load(&path, explicit, &env) {
                Ok(config) => config,
                Err(code) => return code,
            };
            let _telemetry = match rootwarden::telemetry::init(&config.telemetry, &env) {
                Ok(guard) => guard,
                Err(error) => {
                    eprintln!("rootwarden: telemetry set-up failed: {error:#}");
                    return ExitCode::from(exit::CONFIG);
                }
            };
            if let Some(note) = rootwarden::config::missing_file_note(&path, explicit) {
                tracing::warn!("{note}");
            }
            let result = daemon_runtime(config.workers.runtime_threads).block_on(run(config, path, explicit));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "rootwarden failed.");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn load(path: &std::path::Path, explicit: bool, env: &HashMap<String, String>) -> Result<Config, ExitCode> {
    Config::load(path, explicit, env.clone()).map_err(|error: ConfigError| {
        eprintln!("rootwarden: {error}");
        ExitCode::from(exit::CONFIG)
    })
}

fn load_for_client(path: &std::path::Path, explicit: bool, env: &HashMap<String, String>) -> Result<Config, ExitCode> {
    Config::load_for_client(path, explicit, env.clone()).map_err(|error: ConfigError| {
        eprintln!("rootwarden: {error}");
        ExitCode::from(exit::CONFIG)
    })
}

fn toml_text(config: &Config) -> String {
    toml::to_string_pretty(config).expect("the configuration serializes")
}

/// Runs the daemon; SIGTERM or SIGINT starts the drain, a second one exits at once, SIGHUP
/// reloads `[policy]`.
async fn run(config: Config, path: PathBuf, explicit: bool) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let daemon = rootwarden::Daemon::new(config, None).await?;
    let policy = daemon.policy();
    let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let handle = signals.handle();
    let listener_shutdown = shutdown.clone();
    let signal_task = tokio::spawn(async move {
        while let Some(signal) = signals.next().await {
            match signal {
                SIGHUP => reload_policy(&policy, &path, explicit),
                _ if listener_shutdown.is_cancelled() => {
                    tracing::warn!("A second stop signal: exiting at once.");
                    std::process::exit(exit::SECOND_SIGNAL);
                }
                _ => {
                    tracing::info!(signal, "Stop signal received: no new jobs; draining.");
                    listener_shutdown.cancel();
                }
            }
        }
    });
    let result = daemon.run(shutdown).await;
    handle.close();
    let _ = signal_task.await;
    result
}

/// Re-reads the configuration and swaps in its `[policy]` section; an invalid one is refused
/// and the old policy stays.
fn reload_policy(policy: &PolicyHandle, path: &std::path::Path, explicit: bool) {
    let env: HashMap<String, String> = std::env::vars().collect();
    let new_policy = match Config::load(path, explicit, env) {
        Ok(config) => config.policy,
        Err(error) => {
            tracing::error!(problems = ?error.problems, "SIGHUP: the configuration is invalid; the old policy stays.");
            return;
        }
    };
    match policy.replace(new_policy) {
        Ok(()) => tracing::info!("SIGHUP: the policy was reloaded."),
        Err(problems) => tracing::error!(?problems, "SIGHUP: the new policy is invalid; the old policy stays."),
    }
}

/// The job the flags describe, validated exactly as the daemon validates it (usage error: 64).
fn new_job(args: SubmitArgs) -> Result<rootwarden::submit::NewJob, ExitCode> {
    let approvals = match &args.approvals {
        None => Vec::new(),
        Some(path) => read_approvals(path).map_err(|error| {
            eprintln!("rootwarden: --approvals {}: {error}", path.display());
            ExitCode::from(exit::USAGE)
        })?,
    };
    let restore_policy = match &args.restore_policy {
        None => None,
        Some(path) => Some(read_policy(path).map_err(|error| {
            eprintln!("rootwarden: --restore-policy {}: {error}", path.display());
            ExitCode::from(exit::USAGE)
        })?),
    };
    let job = rootwarden::submit::NewJob {
        job_id: args.job_id,
        account_id: args.account,
        task: args.task.to_string(),
        bucket: args.bucket,
        queue_url: args.queue_url,
        region: args.region,
        credentials: args.credentials,
        requested_by: args.requested_by.or_else(|| std::env::var("USER").ok()),
        ticket: args.ticket,
        dry_run: args.dry_run,
        traceparent: None,
        approvals,
        remove_statements: args.remove_statements,
        restore_policy,
        allow_lockout: args.allow_lockout,
        discover: args.discover,
        regions: args.regions,
    };
    match job.body() {
        Ok(_) => Ok(job),
        Err(error) => {
            eprintln!("rootwarden: {error}");
            Err(ExitCode::from(exit::USAGE))
        }
    }
}

/// A policy document from a file: JSON, either the document or a string holding it (as a
/// result's `previous_policy` is written).
fn read_policy(path: &std::path::Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))
}

/// A JSON list of approvals, or a job whose `approvals` are taken.
fn read_approvals(path: &std::path::Path) -> Result<Vec<rootwarden::approvals::Approval>, String> {
    let text = std::fs::read_to_string(path).map_err(|error| error.to_string())?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|error| format!("not JSON: {error}"))?;
    let list = match value {
        serde_json::Value::Object(mut job) => job.remove("approvals").ok_or("the job in it has no approvals")?,
        list => list,
    };
    serde_json::from_value(list).map_err(|error| format!("not a list of approvals: {error}"))
}

/// `rootwarden approve`: one approval more on the job read on stdin (or on each job of JSON
/// Lines, a sweep's plan), or the message to sign.
fn approve(args: ApproveArgs) -> ExitCode {
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

async fn submit(config: Config, job: rootwarden::submit::NewJob, intake_url: Option<String>) -> ExitCode {
    let Some(queue_url) = intake_url.or(config.intake.queue_url.clone()) else {
        eprintln!("rootwarden: no intake queue: pass --intake-url or set intake.queue_url");
        return ExitCode::from(exit::CONFIG);
    };
    let clients = rootwarden::aws::Clients::new(rootwarden::aws::sdk_config(&config.aws, None).await);
    match rootwarden::submit::submit(&clients, &queue_url, &job).await {
        Ok(message_id) => {
            println!("{message_id}");
            ExitCode::SUCCESS
        }
        Err(error @ rootwarden::submit::SubmitError::Invalid(_)) => {
            eprintln!("rootwarden: {error}");
            ExitCode::from(exit::USAGE)
        }
        Err(error) => {
            eprintln!("rootwarden: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn features(config: Config, action: FeaturesAction) -> ExitCode {
    let clients = rootwarden::aws::Clients::new(rootwarden::aws::sdk_config(&config.aws, None).await);
    match action {
        FeaturesAction::Status => match rootwarden::features::status(&clients).await {
            Ok(status) => {
                print!("{}", status.render());
                if status.ready() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
            }
            Err(error) => {
                eprintln!("rootwarden: {error}");
                ExitCode::FAILURE
            }
        },
        FeaturesAction::Enable => match rootwarden::features::enable(&clients).await {
            Ok(steps) => {
                steps.iter().for_each(|step| println!("{step}"));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("rootwarden: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The sweep the flags describe, checked without AWS ([`rootwarden::sweep::check`]): every
/// problem of the command line at once (usage error: 64), or a state file that cannot be read (1).
/// The queues are filled in from the configuration afterwards ([`with_queues`]).
fn sweep_options(args: &SweepArgs) -> Result<rootwarden::sweep::SweepOptions, ExitCode> {
    use rootwarden::sweep::{self, SweepError, SweepOptions};
    let sweep_id = args.resume.clone().or(args.sweep_id.clone()).unwrap_or_else(sweep::state::new_sweep_id);
    let report = args.report.clone().unwrap_or_else(|| PathBuf::from(format!("sweep-{sweep_id}")));
    let mut options = SweepOptions::new(args.task, String::new(), String::new(), report);
    options.credentials = args.credentials.clone();
    options.selection =
        sweep::Selection { exclude: args.exclude.clone(), exclude_ous: args.exclude_ou.clone(), include: args.include.clone() };
    options.ticket = args.ticket.clone();
    options.requested_by = std::env::var("USER").ok().map(|user| format!("rootwarden-sweep:{user}"));
    options.dry_run = args.dry_run;
    options.apply = args.apply;
    options.regions = args.regions.clone();
    options.sweep_id = Some(sweep_id);
    options.resume = args.resume.is_some();
    options.retry_failed = args.retry_failed;
    options.repost_pending = args.repost_pending;
    options.max_in_flight = args.max_in_flight;
    options.idle_timeout = args.idle_timeout;
    let mut file_problem = None;
    if let Some(path) = &args.approvals {
        let text = std::fs::read_to_string(path).map_err(|error| error.to_string());
        match text.and_then(|text| rootwarden::approvals::read_jobs(&text)) {
            Ok(jobs) => options.approved = Some(jobs),
            Err(error) => file_problem = Some(format!("--approvals {}: {error}", path.display())),
        }
    }
    let problems = match sweep::check(&options) {
        Ok(()) => Vec::new(),
        Err(SweepError::Invalid(problems)) => problems,
        Err(error) => {
            eprintln!("rootwarden: {error}");
            return Err(ExitCode::FAILURE);
        }
    };
    let problems: Vec<String> = file_problem.into_iter().chain(problems).collect();
    if problems.is_empty() {
        return Ok(options);
    }
    problems.iter().for_each(|problem| eprintln!("rootwarden: {problem}"));
    Err(ExitCode::from(exit::USAGE))
}

/// The intake and results queues from the flags, else the configuration (78 when missing).
fn with_queues(
    mut options: rootwarden::sweep::SweepOptions,
    args: &SweepArgs,
    config: &Config,
) -> Result<rootwarden::sweep::SweepOptions, ExitCode> {
    let (Some(intake_url), Some(results_url)) = (
        args.intake_url.clone().or(config.intake.queue_url.clone()),
        args.results_url.clone().or(config.results.queue_url.clone()),
    ) else {
        eprintln!(
            "rootwarden: a sweep needs the intake and results queues: set intake.queue_url and results.queue_url (or --intake-url, --results-url)"
        );
        return Err(ExitCode::from(exit::CONFIG));
    };
    options.intake_url = intake_url;
    options.results_url = results_url;
    Ok(options)
}

async fn sweep(config: Config, mut options: rootwarden::sweep::SweepOptions) -> ExitCode {
    use rootwarden::sweep::{self, SweepError};
    let sweep_id = options.sweep_id.clone().unwrap_or_default();
    let task = options.task;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} accounts ({msg})")
            .expect("a valid template"),
    );
    let progress_bar = bar.clone();
    options.on_progress = Some(std::sync::Arc::new(move |p: sweep::Progress| {
        progress_bar.set_length(p.total as u64);
        progress_bar.set_position(p.done as u64);
        progress_bar.set_message(format!("{} posted", p.posted));
    }));
    let notice_bar = bar.clone();
    options.on_notice = Some(std::sync::Arc::new(move |text: &str| notice_bar.suspend(|| eprintln!("rootwarden: {text}"))));
    // Ctrl-C, or SIGTERM (a CronJob's deadline, an ECS task stopped), stops posting and
    // collecting; the state and a partial report are written, and a resume takes it from there.
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    match signal_hook_tokio::Signals::new([SIGTERM, SIGINT]) {
        Ok(mut signals) => {
            tokio::spawn(async move {
                if signals.next().await.is_some() {
                    on_signal.cancel();
                }
            });
        }
        Err(error) => eprintln!("rootwarden: stop signals cannot be caught ({error}); a stopped sweep loses its progress"),
    }
    eprintln!("rootwarden: sweep {sweep_id} ({task})");
    let clients = rootwarden::aws::Clients::new(rootwarden::aws::sdk_config(&config.aws, None).await);
    let outcome = sweep::run(&clients, options, cancel).await;
    bar.finish_and_clear();
    match outcome {
        Ok(outcome) => {
            print!("{}", outcome.summary.table(outcome.task));
            println!("report: {} and {}", outcome.paths.csv.display(), outcome.paths.json.display());
            if !outcome.complete {
                let report = outcome.paths.csv.with_extension("");
                eprintln!(
                    "rootwarden: the sweep stopped ({}); resume it with: rootwarden sweep --task {} --resume {} --report {}",
                    outcome.stopped.as_deref().unwrap_or("incomplete"),
                    outcome.task,
                    outcome.sweep_id,
                    report.display()
                );
                ExitCode::from(exit::INCOMPLETE)
            } else if outcome.summary.failed > 0 {
                eprintln!("rootwarden: {} accounts failed or were rejected; see the report", outcome.summary.failed);
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        // Checked before the banner; only a change between the check and the run gets here.
        Err(SweepError::Invalid(problems)) => {
            problems.iter().for_each(|problem| eprintln!("rootwarden: {problem}"));
            ExitCode::from(exit::USAGE)
        }
        Err(error) => {
            eprintln!("rootwarden: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `sweep --plan FILE`: the jobs the sweep would post, JSON Lines, to FILE or (`-`) stdout.
async fn sweep_plan(config: Config, options: rootwarden::sweep::SweepOptions, path: Option<&std::path::Path>) -> ExitCode {
    use rootwarden::sweep::{self, SweepError};
    use std::io::Write;
    let clients = rootwarden::aws::Clients::new(rootwarden::aws::sdk_config(&config.aws, None).await);
    let sweep_id = options.sweep_id.clone().unwrap_or_default();
    let jobs = match sweep::plan(&clients, &options).await {
        Ok(jobs) => jobs,
        Err(SweepError::Invalid(problems)) => {
            problems.iter().for_each(|problem| eprintln!("rootwarden: {problem}"));
            return ExitCode::from(exit::USAGE);
        }
        Err(error) => {
            eprintln!("rootwarden: {error}");
            return ExitCode::FAILURE;
        }
    };
    let text: String = jobs.iter().map(|job| format!("{job}\n")).collect();
    let path = path.unwrap_or(std::path::Path::new("-"));
    let written = if path == std::path::Path::new("-") {
        let mut stdout = std::io::stdout();
        stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush())
    } else {
        std::fs::write(path, text)
    };
    match written {
        Ok(()) => {
            eprintln!(
                "rootwarden: the plan of sweep {sweep_id}: {} jobs ({}), written to {}",
                jobs.len(),
                options.task,
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("rootwarden: the plan could not be written to {}: {error}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// A minimal HTTP/1.0 GET, so distroless images need no curl. `rest` is the URL without its
/// `http://`.
async fn healthcheck(rest: &str) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(host).await?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"))
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), attempt).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

//! `rootwarden sweep`: one job per member account, the results collected into a report; or,
//! with `--plan`, the jobs written for approvers to sign.

use std::path::PathBuf;
use std::process::ExitCode;

use futures::StreamExt;
use rootwarden::config::{Config, not_a_queue_url};
use rootwarden::job::{CredentialKind, Task};
use signal_hook::consts::{SIGINT, SIGTERM};
use tokio_util::sync::CancellationToken;

use crate::{exit, parse_task};

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("id").args(["sweep_id", "resume"]))]
#[command(after_help = "Approvals (two-person rule): write the sweep's jobs with --plan, have each approver sign them \
    (rootwarden approve --key KEY --approver ID < plan.jsonl > ID.jsonl), then run the same sweep with \
    --approvals FILE (the approvers' files, concatenated).\n  \
    rootwarden sweep --task IAMDeleteRootUserCredentials --ticket CHG-7 --sweep-id chg-7 --plan plan.jsonl\n  \
    cat alice.jsonl bob.jsonl > approved.jsonl\n  \
    rootwarden sweep --task IAMDeleteRootUserCredentials --ticket CHG-7 --sweep-id chg-7 --approvals approved.jsonl")]
pub(crate) struct SweepArgs {
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
    pub(crate) plan: Option<PathBuf>,
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

/// The sweep the flags describe, checked without AWS ([`rootwarden::sweep::check`]): every
/// problem of the command line at once (usage error: 64), or a state file that cannot be read (1).
/// The queues are filled in from the configuration afterwards ([`with_queues`]).
pub(crate) fn sweep_options(args: &SweepArgs) -> Result<rootwarden::sweep::SweepOptions, ExitCode> {
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
pub(crate) fn with_queues(
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
    let local = config.aws.endpoint_url.is_some();
    let problems: Vec<String> = [("--intake-url", &args.intake_url), ("--results-url", &args.results_url)]
        .into_iter()
        .filter_map(|(flag, url)| Some(format!("{flag} {}", not_a_queue_url(url.as_deref()?, local)?)))
        .collect();
    if !problems.is_empty() {
        problems.iter().for_each(|problem| eprintln!("rootwarden: {problem}"));
        return Err(ExitCode::from(exit::USAGE));
    }
    options.intake_url = intake_url;
    options.results_url = results_url;
    Ok(options)
}

pub(crate) async fn sweep(config: Config, mut options: rootwarden::sweep::SweepOptions) -> ExitCode {
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
                let failed = outcome.summary.failed;
                let (accounts, were) = if failed == 1 { ("account", "was") } else { ("accounts", "were") };
                eprintln!("rootwarden: {failed} {accounts} failed or {were} rejected; see the report");
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
pub(crate) async fn sweep_plan(
    config: Config,
    options: rootwarden::sweep::SweepOptions,
    path: Option<&std::path::Path>,
) -> ExitCode {
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

//! The `rootwarden` command: `run` the daemon, `check-config`, `submit` a job, `sweep` the
//! organization, show or enable its root access `features`, `healthcheck`.
//!
//! Here: the command line, the exit statuses, what the commands share (task names, the
//! configuration); each command has its module (`run`, `submit`, `approve`, `sweep`,
//! `features`, `healthcheck`; `check-config` is a few lines of `main`).

mod approve;
mod features;
mod healthcheck;
mod run;
mod submit;
mod sweep;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use approve::ApproveArgs;
use clap::{Parser, Subcommand};
use features::FeaturesAction;
use rootwarden::config::{Config, ConfigError, DEFAULT_CONFIG_PATH};
use rootwarden::job::Task;
use submit::SubmitArgs;
use sweep::SweepArgs;

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
///   cannot run, a malformed account or OU id, a `--intake-url` or `--results-url` that is not
///   an SQS queue URL, a job `submit` would post that the daemon would
///   reject, a sweep to resume that is not there, an approvals file that is not the sweep's.
///   Said before any banner and any AWS call.
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
            Some(rest) => runtime().block_on(healthcheck::healthcheck(rest)),
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
            let job = match submit::new_job(*args) {
                Ok(job) => job,
                Err(code) => return code,
            };
            match load_for_client(&path, explicit, &env) {
                Ok(config) => runtime().block_on(submit::submit(config, job, intake_url)),
                Err(code) => code,
            }
        }
        Command::Approve(args) => approve::approve(*args),
        Command::Sweep(args) => {
            // Every flag is checked (and a sweep to resume found) before the banner and any AWS
            // call. Like submit: only [aws], [intake] and [results] matter, and flags may replace them.
            let options = match sweep::sweep_options(&args) {
                Ok(options) => options,
                Err(code) => return code,
            };
            match load_for_client(&path, explicit, &env) {
                // A plan reads the organization only: no queue is needed.
                Ok(config) if args.plan.is_some() => runtime().block_on(sweep::sweep_plan(config, options, args.plan.as_deref())),
                Ok(config) => match sweep::with_queues(options, &args, &config) {
                    Ok(options) => runtime().block_on(sweep::sweep(config, options)),
                    Err(code) => code,
                },
                Err(code) => code,
            }
        }
        Command::Features { action } => match load_for_client(&path, explicit, &env) {
            Ok(config) => runtime().block_on(features::features(config, action)),
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
            let result = run::daemon_runtime(config.workers.runtime_threads).block_on(run::run(config, path, explicit));
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

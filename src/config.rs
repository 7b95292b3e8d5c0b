//! Configuration: plain data with defaults in one place, loaded from a TOML file and
//! `ROOTWARDEN_<SECTION>__<KEY>` environment variables, validated so that every problem is
//! reported at once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::job::{Task, is_account_id};

/// The path used when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/rootwarden/rootwarden.toml";

/// Exit status for an unusable configuration (`EX_CONFIG` from sysexits.h).
pub const EXIT_CONFIG: i32 = 78;

/// The whole daemon configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where and how AWS is reached.
    pub aws: AwsConfig,
    /// The SQS intake queue that jobs arrive on.
    pub intake: IntakeConfig,
    /// Where results are sent besides the log.
    pub results: ResultsConfig,
    /// The worker pool.
    pub workers: WorkersConfig,
    /// The root session cache.
    pub sessions: SessionsConfig,
    /// Guardrails applied before any root session is requested.
    pub policy: PolicyConfig,
    /// Metrics, traces, logs and health endpoints.
    pub telemetry: TelemetryConfig,
    /// Graceful shutdown.
    pub shutdown: ShutdownConfig,
}

/// `[aws]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    /// The daemon's region: its STS regional endpoint, its queues, and the default region of
    /// a job's resources.
    pub region: String,
    /// Sends every AWS call to this endpoint instead of AWS (the local AWS environment).
    pub endpoint_url: Option<String>,
    /// Attempts the SDK makes for one AWS call before the job sees the error (1 = no SDK retry;
    /// job-level retries through the queue still apply).
    pub max_attempts: u32,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self { region: "us-east-1".into(), endpoint_url: None, max_attempts: 3 }
    }
}

/// `[intake]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// URL of the SQS queue that jobs are posted to. Required.
    pub queue_url: Option<String>,
    /// URL of the queue that rejected and failed jobs are moved to. Required.
    pub dead_letter_queue_url: Option<String>,
    /// How long a received message stays hidden; extended while its job runs.
    #[serde(with = "duration")]
    pub visibility_timeout: Duration,
    /// Long-polling wait of one ReceiveMessage call (0 to 20 s).
    #[serde(with = "duration")]
    pub wait_time: Duration,
    /// Attempts before a transient failure becomes `failed`; keep it at most the queue's own
    /// redrive `maxReceiveCount`, so the daemon, not SQS, dead-letters with a reason.
    pub max_receive_count: u32,
    /// First retry delay of a transiently failed job; doubles with each receive.
    #[serde(with = "duration")]
    pub backoff_base: Duration,
    /// Upper bound of the retry delay.
    #[serde(with = "duration")]
    pub backoff_max: Duration,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            queue_url: None,
            dead_letter_queue_url: None,
            visibility_timeout: Duration::from_secs(60),
            wait_time: Duration::from_secs(20),
            max_receive_count: 5,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// `[results]`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ResultsConfig {
    /// URL of a queue that receives every result as a JSON message (optional).
    pub queue_url: Option<String>,
}

/// `[workers]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// Jobs run at once by this replica.
    pub concurrency: usize,
    /// Longest time one job's work may take (its AWS calls); a job past it is retried later.
    /// Waiting for the AssumeRoot pace, for a throttled call's retry or for another job's
    /// AssumeRoot is not work and does not count.
    #[serde(with = "duration")]
    pub job_timeout: Duration,
    /// Longest time one delivery of a job may spend waiting out throttling (the AssumeRoot pace,
    /// throttled calls). Past it the job is retried later like any transient failure, which
    /// costs an attempt: a bound, so that a storm that never ends cannot hold messages forever.
    #[serde(with = "duration")]
    pub max_throttle_wait: Duration,
    /// Jobs run at once for one account by this replica (root actions on one account never race).
    pub per_account: usize,
    /// OS threads that run the daemon's tasks. 1 runs everything on one thread, which costs
    /// the least CPU per job (no cross-thread wake-ups); the work is waiting on AWS, and one
    /// core serves well over a thousand jobs a second. 0 means one thread per CPU. Read at
    /// start-up only.
    pub runtime_threads: usize,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            concurrency: 32,
            job_timeout: Duration::from_secs(60),
            max_throttle_wait: Duration::from_secs(30 * 60),
            per_account: 1,
            runtime_threads: 1,
        }
    }
}

/// `[sessions]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// `DurationSeconds` asked of AssumeRoot (at most 900 s).
    #[serde(with = "duration")]
    pub duration: Duration,
    /// A cached session is handed to a job only with at least this much time left.
    #[serde(with = "duration")]
    pub min_remaining: Duration,
    /// Most (account, task) sessions held at once.
    pub capacity: usize,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self { duration: Duration::from_secs(900), min_remaining: Duration::from_secs(120), capacity: 10_000 }
    }
}

/// `[policy]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Tasks this daemon performs; empty means all five.
    pub allowed_tasks: Vec<String>,
    /// Accounts jobs may target; empty means every member account.
    pub allowed_accounts: Vec<String>,
    /// Accounts no job may target, whatever else says.
    pub denied_accounts: Vec<String>,
    /// Organizational units (`ou-…`, or a root `r-…`) whose accounts, at any depth, no job may
    /// target.
    pub denied_organizational_units: Vec<String>,
    /// SQS `SenderId` values allowed to post jobs (a principal id, or `AROA…:*` for any session
    /// of a role); empty means any sender.
    pub allowed_senders: Vec<String>,
    /// Tasks that need a non-empty `ticket`.
    pub require_ticket: Vec<String>,
    /// Turns every job into a dry run.
    pub dry_run: bool,
    /// Messages older than this (by `SentTimestamp`) are rejected as stale.
    #[serde(with = "duration")]
    pub max_job_age: Duration,
    /// AssumeRoot calls per second across the process.
    pub assume_root_rate: f64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            allowed_tasks: Vec::new(),
            allowed_accounts: Vec::new(),
            denied_accounts: Vec::new(),
            denied_organizational_units: Vec::new(),
            allowed_senders: Vec::new(),
            require_ticket: vec![
                "IAMDeleteRootUserCredentials".into(),
                "IAMCreateRootUserPassword".into(),
                "S3UnlockBucketPolicy".into(),
                "SQSUnlockQueuePolicy".into(),
            ],
            dry_run: false,
            max_job_age: Duration::from_secs(24 * 3600),
            assume_root_rate: 20.0,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (for log shippers).
    Json,
    /// Human-readable lines (for a terminal).
    Pretty,
}

/// `[telemetry]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Address of the HTTP listener serving `/metrics`, `/healthz` and `/readyz`.
    pub listen: String,
    /// OTLP/HTTP endpoint for traces; empty means no export unless
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub otlp_endpoint: String,
    /// `json` or `pretty`.
    pub log_format: LogFormat,
    /// How often queue depths are read for `rootwarden_queue_messages`.
    #[serde(with = "duration")]
    pub queue_metrics_interval: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
            otlp_endpoint: String::new(),
            log_format: LogFormat::Json,
            queue_metrics_interval: Duration::from_secs(30),
        }
    }
}

/// `[shutdown]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long running jobs may take to finish after a stop signal.
    #[serde(with = "duration")]
    pub grace: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self { grace: Duration::from_secs(20) }
    }
}

/// Every problem found in a configuration, reported together.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    /// One sentence per problem.
    pub problems: Vec<String>,
}

/// Environment keys whose values are comma-separated lists.
const LIST_KEYS: [&str; 6] = [
    "policy.allowed_tasks",
    "policy.allowed_accounts",
    "policy.denied_accounts",
    "policy.denied_organizational_units",
    "policy.allowed_senders",
    "policy.require_ticket",
];

impl Config {
    /// Loads defaults, then the TOML file at `path` (which must exist when `required`), then
    /// `ROOTWARDEN_*` variables from `env`, and validates the result. When no file was read, the
    /// problems start with a sentence saying so and where it looked ([`missing_file_note`]).
    pub fn load(path: &Path, required: bool, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let sources = Sources::read(path, required, env)?;
        sources.explain(Self::checked(&sources.merged, &sources.variables))
    }

    /// Loads like [`Config::load`] but checks only that every key is known and well typed: the
    /// client commands (`submit`, `sweep`, `features`) need a few keys, not a complete daemon
    /// configuration.
    pub fn load_for_client(
        path: &Path,
        required: bool,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let sources = Sources::read(path, required, env)?;
        let loaded = Self::from_merged(&sources.merged, &sources.variables);
        let result = if loaded.problems.is_empty() { Ok(loaded.config) } else { Err(ConfigError { problems: loaded.problems }) };
        sources.explain(result)
    }

    /// Parses a TOML document (defaults fill what it leaves out) and validates it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let merged = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .map_err(|error| ConfigError { problems: vec![error.to_string()] })?;
        Self::checked(&merged, &BTreeMap::new())
    }

    /// Deserializes and validates, reporting the problems of both steps together. A key that did
    /// not load keeps its default; what validation would say of that default is left out.
    fn checked(merged: &config::Config, variables: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let Loaded { config, mut problems, failed } = Self::from_merged(merged, variables);
        if let Err(error) = config.validate() {
            problems.extend(error.problems.into_iter().filter(|problem| !failed.iter().any(|key| names(problem, key))));
        }
        if problems.is_empty() { Ok(config) } else { Err(ConfigError { problems }) }
    }

    /// Deserializes key by key, so that a bad key hides neither another section nor the other
    /// keys of its own section: each key that is unknown or does not deserialize is reported
    /// (with the closest valid key, or the accepted forms) and keeps its default.
    fn from_merged(merged: &config::Config, variables: &BTreeMap<String, String>) -> Loaded {
        let mut loaded = Loaded { config: Config::default(), problems: Vec::new(), failed: BTreeSet::new() };
        let table = match merged.clone().try_deserialize::<Table>() {
            Ok(table) => table,
            Err(error) => {
                loaded.problems.push(error.to_string());
                return loaded;
            }
        };
        let sections = sections();
        for (name, value) in &table {
            if !SECTIONS.contains(&name.as_str()) {
                loaded.problems.push(unknown_section(name, value, &sections));
            } else if !value.is_object() {
                loaded.problems.push(format!("`{name}` must be a section (`[{name}]` with its keys below it), not a value"));
            }
        }
        let config = &mut loaded.config;
        let mut section = Section { table: &table, sections: &sections, variables, problems: &mut loaded.problems };
        config.aws = section.load("aws", &mut loaded.failed);
        config.intake = section.load("intake", &mut loaded.failed);
        config.results = section.load("results", &mut loaded.failed);
        config.workers = section.load("workers", &mut loaded.failed);
        config.sessions = section.load("sessions", &mut loaded.failed);
        config.policy = section.load("policy", &mut loaded.failed);
        config.telemetry = section.load("telemetry", &mut loaded.failed);
        config.shutdown = section.load("shutdown", &mut loaded.failed);
        loaded
    }

    /// Checks everything that types alone cannot, listing every problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |text: String| problems.push(text);

        if self.aws.region.trim().is_empty() {
            problem("aws.region must not be empty".into());
        }
        if let Some(url) = &self.aws.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problem(format!("aws.endpoint_url `{url}` must start with http:// or https://"));
        }
        if !(1..=10).contains(&self.aws.max_attempts) {
            problem("aws.max_attempts must be between 1 and 10".into());
        }
        for (key, value) in
            [("intake.queue_url", &self.intake.queue_url), ("intake.dead_letter_queue_url", &self.intake.dead_letter_queue_url)]
        {
            if value.as_deref().is_none_or(|url| url.trim().is_empty()) {
                problem(format!("{key} is required"));
            }
        }
        let local = self.aws.endpoint_url.is_some();
        for (key, value) in [
            ("intake.queue_url", &self.intake.queue_url),
            ("intake.dead_letter_queue_url", &self.intake.dead_letter_queue_url),
            ("results.queue_url", &self.results.queue_url),
        ] {
            if let Some(url) = value.as_deref().filter(|url| !url.trim().is_empty())
                && let Some(reason) = queue_url_problem(url, local)
            {
                let expected = if local {
                    "https://sqs.<region>.amazonaws.com/<12-digit account id>/<queue name>, or \
                     http(s)://<host>/<12-digit account id>/<queue name> as aws.endpoint_url is set"
                } else {
                    "https://sqs.<region>.amazonaws.com/<12-digit account id>/<queue name>"
                };
                problem(format!("{key} `{url}` is not an SQS queue URL: {reason} (expected {expected})"));
            }
        }
        if let (Some(intake), Some(dead_letter)) = (&self.intake.queue_url, &self.intake.dead_letter_queue_url)
            && crate::sqs::is_fifo(intake) != crate::sqs::is_fifo(dead_letter)
        {
            problem(format!(
                "intake.queue_url and intake.dead_letter_queue_url must both be FIFO queues (`.fifo`) or both standard: \
                 SQS moves messages only between queues of one kind (intake `{intake}`, dead-letter queue `{dead_letter}`)"
            ));
        }
        let intake = &self.intake;
        if intake.visibility_timeout < Duration::from_secs(1) || intake.visibility_timeout > Duration::from_secs(12 * 3600) {
            problem("intake.visibility_timeout must be between 1s and 12h".into());
        }
        if intake.wait_time > Duration::from_secs(20) {
            problem("intake.wait_time must be at most 20s (the SQS long-polling limit)".into());
        }
        if intake.max_receive_count == 0 {
            problem("intake.max_receive_count must be at least 1".into());
        }
        if intake.backoff_base.is_zero() || intake.backoff_base > intake.backoff_max {
            problem("intake.backoff_base must be above 0 and at most intake.backoff_max".into());
        }
        if intake.backoff_max > Duration::from_secs(12 * 3600) {
            problem("intake.backoff_max must be at most 12h (the SQS visibility limit)".into());
        }
        if !(1..=4096).contains(&self.workers.concurrency) {
            problem("workers.concurrency must be between 1 and 4096".into());
        }
        if self.workers.runtime_threads > 256 {
            problem("workers.runtime_threads must be between 0 (one per CPU) and 256".into());
        }
        if self.workers.max_throttle_wait < Duration::from_secs(1)
            || self.workers.max_throttle_wait > Duration::from_secs(11 * 3600)
        {
            problem(
                "workers.max_throttle_wait must be between 1s and 11h (a message stays hidden at most 12h after it is received)"
                    .into(),
            );
        }
        if self.workers.per_account == 0 {
            problem("workers.per_account must be at least 1".into());
        }
        let sessions = &self.sessions;
        if sessions.duration < Duration::from_secs(1) || sessions.duration > Duration::from_secs(900) {
            problem("sessions.duration must be between 1s and 900s (the AssumeRoot limit)".into());
        }
        if self.workers.job_timeout >= sessions.min_remaining {
            problem(
                "workers.job_timeout must be shorter than sessions.min_remaining, so a job never outlives its root session"
                    .into(),
            );
        }
        if sessions.min_remaining >= sessions.duration {
            problem("sessions.min_remaining must be shorter than sessions.duration".into());
        }
        if sessions.capacity == 0 {
            problem("sessions.capacity must be at least 1".into());
        }
        problems.extend(self.policy.problems());
        let mut problem = |text: String| problems.push(text);
        if self.telemetry.listen.parse::<SocketAddr>().is_err() {
            problem(format!("telemetry.listen `{}` must be an address like 127.0.0.1:9464", self.telemetry.listen));
        }
        if self.telemetry.queue_metrics_interval < Duration::from_secs(1) {
            problem("telemetry.queue_metrics_interval must be at least 1s".into());
        }
        if problems.is_empty() { Ok(()) } else { Err(ConfigError { problems }) }
    }
}

const SECTIONS: [&str; 8] = ["aws", "intake", "results", "workers", "sessions", "policy", "telemetry", "shutdown"];

/// The sentence saying that no configuration file was read and where one was looked for, when
/// `path` is the default path (`required` false) and there is no file there; `None` when there
/// is one. [`Config::load`] puts it before the problems of a configuration it refuses; print it
/// too when a configuration from defaults and variables alone is accepted.
pub fn missing_file_note(path: &Path, required: bool) -> Option<String> {
    (!required && matches!(path.try_exists(), Ok(false))).then(|| {
        format!(
            "no configuration file was read: there is none at {} (the default path), so only the defaults and \
             ROOTWARDEN_<SECTION>__<KEY> variables apply; pass --config PATH or set ROOTWARDEN_CONFIG to read another file",
            path.display()
        )
    })
}

/// What loading found: the configuration, and each problem as it was found.
struct Loaded {
    config: Config,
    problems: Vec<String>,
    /// `section.key` of every known key whose value did not load.
    failed: BTreeSet<String>,
}

/// The configuration as the file and the variables give it, before it is typed.
type Table = serde_json::Map<String, serde_json::Value>;

/// What [`Config::load`] read: the merged settings, the variables that set some of them, and
/// the note that no file was read.
struct Sources {
    merged: config::Config,
    /// `section.key` → the `ROOTWARDEN_…` variable that set it.
    variables: BTreeMap<String, String>,
    note: Option<String>,
}

impl Sources {
    fn read(path: &Path, required: bool, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        if required && matches!(path.try_exists(), Ok(false)) {
            return Err(ConfigError {
                problems: vec![format!(
                    "no configuration file was read: {} was not found (given by --config or ROOTWARDEN_CONFIG)",
                    path.display()
                )],
            });
        }
        // Only `ROOTWARDEN_<SECTION>__<KEY>` names are settings; others that share the prefix
        // (ROOTWARDEN_CONFIG, the config file's path) are not.
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(key, _)| key.strip_prefix("ROOTWARDEN_").is_some_and(|rest| rest.contains("__")))
            .collect();
        let variables =
            env.keys().map(|name| (name["ROOTWARDEN_".len()..].to_lowercase().replace("__", "."), name.clone())).collect();
        let mut environment = config::Environment::with_prefix("ROOTWARDEN")
            .prefix_separator("_")
            .separator("__")
            .list_separator(",")
            .source(Some(env));
        for key in LIST_KEYS {
            environment = environment.with_list_parse_key(key);
        }
        let merged = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml).required(required))
            .add_source(environment.try_parsing(true))
            .build()
            .map_err(|error| ConfigError { problems: vec![error.to_string()] })?;
        Ok(Self { merged, variables, note: missing_file_note(path, required) })
    }

    /// Puts the note that no file was read before the problems, which it may explain.
    fn explain(&self, result: Result<Config, ConfigError>) -> Result<Config, ConfigError> {
        result.map_err(|mut error| {
            error.problems.splice(0..0, self.note.clone());
            error
        })
    }
}

/// Loads the sections of the merged settings, key by key.
struct Section<'a> {
    table: &'a Table,
    sections: &'a [(&'static str, &'static [&'static str])],
    variables: &'a BTreeMap<String, String>,
    problems: &'a mut Vec<String>,
}

impl Section<'_> {
    /// The section `name` with every key that loads; each other key becomes a problem (and, if
    /// known, a `failed` key) and keeps its default.
    fn load<T: serde::de::DeserializeOwned + Default>(&mut self, name: &str, failed: &mut BTreeSet<String>) -> T {
        let Some(serde_json::Value::Object(keys)) = self.table.get(name) else { return T::default() };
        let known = field_names::<T>();
        let mut good = Table::new();
        for (key, value) in keys {
            let origin = self.variables.get(&format!("{name}.{key}")).map(|variable| format!(" (set by {variable})"));
            let origin = origin.unwrap_or_default();
            if !known.contains(&key.as_str()) {
                self.problems.push(unknown_key(name, key, &origin, self.sections));
                continue;
            }
            let alone = Table::from_iter([(key.clone(), value.clone())]);
            match serde_json::from_value::<T>(alone.into()) {
                Ok(_) => {
                    good.insert(key.clone(), value.clone());
                }
                Err(error) => {
                    self.problems.push(format!("{name}.{key}{origin}: {error}"));
                    failed.insert(format!("{name}.{key}"));
                }
            }
        }
        serde_json::from_value(good.into()).unwrap_or_else(|error| {
            // Each key loaded alone; together they always do. Should that change, say so.
            self.problems.push(format!("[{name}]: {error}"));
            T::default()
        })
    }
}

/// Every section with its keys, as the types declare them.
fn sections() -> [(&'static str, &'static [&'static str]); 8] {
    [
        ("aws", field_names::<AwsConfig>()),
        ("intake", field_names::<IntakeConfig>()),
        ("results", field_names::<ResultsConfig>()),
        ("workers", field_names::<WorkersConfig>()),
        ("sessions", field_names::<SessionsConfig>()),
        ("policy", field_names::<PolicyConfig>()),
        ("telemetry", field_names::<TelemetryConfig>()),
        ("shutdown", field_names::<ShutdownConfig>()),
    ]
}

/// The field names a struct's `Deserialize` asks for (its keys), read by handing it a
/// deserializer that records them and refuses everything.
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{Error, Visitor, value};
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, value::Error> {
            Err(value::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, value::Error> {
            *self.0 = fields;
            Err(value::Error::custom("fields recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

/// An unknown key of a section, with the closest key of that section, or the section that has
/// it, or the section's keys.
fn unknown_key(section: &str, key: &str, origin: &str, sections: &[(&str, &[&str])]) -> String {
    let own = sections.iter().find(|(name, _)| *name == section).map_or(&[][..], |(_, keys)| *keys);
    let unknown = format!("unknown key `{key}` in [{section}]{origin}");
    if let Some(closest) = closest(key, own.iter().copied()) {
        return format!("{unknown}; did you mean `{closest}`?");
    }
    if let Some((other, _)) = sections.iter().find(|(_, keys)| keys.contains(&key)) {
        return format!("{unknown}; did you mean `{key}` in [{other}]?");
    }
    format!("{unknown} (its keys: {})", own.join(", "))
}

/// A top-level name that is not a section: a misspelt section, or a key outside its section.
fn unknown_section(name: &str, value: &serde_json::Value, sections: &[(&str, &[&str])]) -> String {
    if !value.is_object()
        && let Some((section, _)) = sections.iter().find(|(_, keys)| keys.contains(&name))
    {
        return format!("`{name}` is outside any section; did you mean `{name}` in [{section}]?");
    }
    match closest(name, SECTIONS.into_iter()) {
        Some(closest) => format!("unknown section `{name}`; did you mean `{closest}`?"),
        None => format!("unknown section `{name}` (known: {})", SECTIONS.join(", ")),
    }
}

/// The candidate nearest to `word` by edit distance (case aside), if near enough to be a slip:
/// at most one edit per three characters, between one and three. Else the only candidate that
/// `word` begins, if it has four characters or more (`endpoint` for `endpoint_url`).
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str> + Clone) -> Option<&'a str> {
    let word = word.to_lowercase();
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let nearest = candidates
        .clone()
        .map(|candidate| (edit_distance(&word, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate);
    let mut begun = candidates.filter(|candidate| word.len() >= 4 && candidate.starts_with(&word));
    nearest.or_else(|| begun.next().filter(|_| begun.next().is_none()))
}

/// Insertions, deletions, substitutions and swaps of two neighbours that turn `a` into `b`
/// (optimal string alignment).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    rows[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// True when `problem` names the key `key` (`section.key`, not a longer key it begins).
fn names(problem: &str, key: &str) -> bool {
    problem.match_indices(key).any(|(at, _)| {
        !problem[at + key.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && !problem[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    })
}

/// Why `url` is not an SQS queue URL, or `None` when it is one:
/// `https://sqs.<region>.amazonaws.com/<account id>/<queue name>` or the legacy
/// `https://<region>.queue.amazonaws.com/…` (and `https://queue.amazonaws.com/…`). With `local`
/// (`aws.endpoint_url` set) any `http://` or `https://` host is accepted, as local environments
/// name their queues `<endpoint>/<account id>/<queue name>`. A queue name has 1 to 80 letters,
/// digits, `-` and `_`, `.fifo` included for a FIFO queue.
fn queue_url_problem(url: &str, local: bool) -> Option<String> {
    let (https, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) if local => return Some("it must start with http:// or https://".into()),
        (None, None) => return Some("it must start with https://".into()),
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() || host.contains(|c: char| c.is_whitespace()) {
        return Some(format!("`{host}` is not a host name"));
    }
    if !local && !is_sqs_host(host) {
        return Some(format!("the host `{host}` is not SQS's; for a local environment, set aws.endpoint_url"));
    }
    if !local && !https {
        return Some("SQS is reached over https://".into());
    }
    let segments: Vec<&str> = path.split('/').collect();
    let [account, name] = segments[..] else {
        return Some("its path must be /<12-digit account id>/<queue name>".into());
    };
    if !is_account_id(account) {
        return Some(format!("`{account}` is not a 12-digit account id"));
    }
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    let well_formed =
        !base.is_empty() && name.len() <= 80 && base.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Some(format!(
            "the queue name `{name}` must be 1 to 80 letters, digits, `-` or `_` (ending in `.fifo` for a FIFO queue)"
        ));
    }
    None
}

/// `sqs.<region>.amazonaws.com`, `<region>.queue.amazonaws.com` or `queue.amazonaws.com`
/// (`.amazonaws.com.cn` in China).
fn is_sqs_host(host: &str) -> bool {
    let Some(domain) = host.strip_suffix(".amazonaws.com").or_else(|| host.strip_suffix(".amazonaws.com.cn")) else {
        return false;
    };
    let is_region = |region: &str| {
        region.contains('-')
            && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !region.starts_with('-')
            && !region.ends_with('-')
    };
    domain == "queue"
        || domain.strip_prefix("sqs.").is_some_and(is_region)
        || domain.strip_suffix(".queue").is_some_and(is_region)
}

/// Durations in the configuration. They are read as strings with units (`"30s"`, `"15m"`,
/// `"1h"`, `"1h30m"`, anything [`humantime::parse_duration`] accepts), and a number or a
/// malformed string is refused with the forms to write.
///
/// They are written back (`check-config`) in one form, which reads back to the same value:
/// - whole hours as hours: `"1h"`, `"24h"`;
/// - else whole minutes from 5 minutes up as minutes: `"5m"`, `"15m"`, `"90m"`;
/// - else whole seconds as seconds: `"0s"`, `"2s"`, `"60s"`, `"90s"`, `"120s"`, `"301s"`;
/// - else milliseconds (`"1500ms"`), or nanoseconds for what milliseconds cannot hold.
///
/// So a short duration keeps the seconds an operator writes (`"60s"`, not `"1m"`), and a long
/// one the hours (`"24h"`, not `"1day"`).
mod duration {
    use std::fmt;
    use std::time::Duration;

    use serde::{Deserializer, Serializer, de};

    /// The forms named when a duration is refused.
    const FORMS: &str = r#""30s", "15m", "1h" or "1h30m""#;

    /// The written form of `value` (see the module).
    pub fn format(value: Duration) -> String {
        let (seconds, nanos) = (value.as_secs(), value.subsec_nanos());
        match (seconds, nanos) {
            (s, 0) if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
            (s, 0) if s >= 300 && s % 60 == 0 => format!("{}m", s / 60),
            (s, 0) => format!("{s}s"),
            (_, n) if n % 1_000_000 == 0 => format!("{}ms", value.as_millis()),
            _ => format!("{}ns", value.as_nanos()),
        }
    }

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }

    struct DurationVisitor;

    impl de::Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            write!(formatter, "a duration, a string with a unit like {FORMS}")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            if text.trim().is_empty() {
                return Err(E::custom(format!("an empty string is not a duration; write one like {FORMS}")));
            }
            humantime::parse_duration(text.trim())
                .map_err(|_| E::custom(format!("`{text}` is not a duration; write a number with a unit, like {FORMS}")))
        }

        fn visit_u64<E: de::Error>(self, number: u64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "{number} is a number, not a duration; write \"{number}s\" (a string with a unit, like {FORMS})"
            )))
        }

        fn visit_i64<E: de::Error>(self, number: i64) -> Result<Duration, E> {
            match u64::try_from(number) {
                Ok(number) => self.visit_u64(number),
                Err(_) => Err(E::custom(format!("{number} is a negative number, not a duration; write one like {FORMS}"))),
            }
        }

        fn visit_f64<E: de::Error>(self, number: f64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "{number} is a number, not a duration; write a string with a whole number and a unit, like \"90s\" or \"1500ms\""
            )))
        }
    }
}

impl PolicyConfig {
    /// Problems of the `[policy]` section alone (a SIGHUP reload checks only these).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, tasks) in [("policy.allowed_tasks", &self.allowed_tasks), ("policy.require_ticket", &self.require_ticket)] {
            for task in tasks {
                if task.parse::<Task>().is_err() {
                    problems.push(format!("{key}: `{task}` is not one of the five root tasks"));
                }
            }
        }
        for (key, accounts) in
            [("policy.allowed_accounts", &self.allowed_accounts), ("policy.denied_accounts", &self.denied_accounts)]
        {
            for account in accounts {
                if !is_account_id(account) {
                    problems.push(format!("{key}: `{account}` is not a 12-digit account id"));
                }
            }
        }
        let duplicates: BTreeSet<_> =
            self.allowed_accounts.iter().filter(|account| self.denied_accounts.contains(account)).collect();
        if !duplicates.is_empty() {
            problems.push(format!(
                "policy: accounts both allowed and denied: {}",
                duplicates.into_iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        for unit in &self.denied_organizational_units {
            let well_formed = (unit.starts_with("ou-") || unit.starts_with("r-"))
                && unit.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !well_formed {
                problems.push(format!("policy.denied_organizational_units: `{unit}` is not an OU id (ou-…) or root id (r-…)"));
            }
        }
        for sender in &self.allowed_senders {
            if sender.trim().is_empty() || sender.contains(char::is_whitespace) {
                problems.push(format!("policy.allowed_senders: `{sender}` is not a principal id"));
            }
        }
        if !(self.assume_root_rate > 0.0 && self.assume_root_rate.is_finite()) {
            problems.push("policy.assume_root_rate must be a positive number".into());
        }
        if self.max_job_age < Duration::from_secs(1) {
            problems.push("policy.max_job_age must be at least 1s".into());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [intake]
        queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/in"
        dead_letter_queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq"
    "#;

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let config = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(config.sessions.duration, Duration::from_secs(900));
        assert_eq!(config.workers.concurrency, 32);
        assert_eq!(config.policy.require_ticket.len(), 4);
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let error = Config::from_toml(
            r#"
            [sessions]
            duration = "1000s"
            min_remaining = "30s"
            [workers]
            job_timeout = "60s"
            runtime_threads = 1000
            [policy]
            denied_accounts = ["12"]
            allowed_tasks = ["DeleteEverything"]
            "#,
        )
        .unwrap_err();
        let text = error.problems.join("\n");
        for expected in [
            "intake.queue_url is required",
            "intake.dead_letter_queue_url is required",
            "sessions.duration must be between",
            "workers.job_timeout must be shorter",
            "workers.runtime_threads must be between",
            "`12` is not a 12-digit account id",
            "`DeleteEverything` is not one of the five",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn unknown_keys_in_several_sections_are_all_reported() {
        let error = Config::from_toml(&format!("{MINIMAL}\n[workers]\nconcurency = 3\n[sessions]\ncapacty = 1\n[bogus]\nx = 1"))
            .unwrap_err();
        let text = error.problems.join("\n");
        assert!(text.contains("concurency"), "{text}");
        assert!(text.contains("capacty"), "{text}");
        assert!(text.contains("unknown section `bogus`"), "{text}");
    }

    #[test]
    fn environment_overrides_the_file_and_splits_lists() {
        let dir = std::env::temp_dir().join(format!("rootwarden-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rootwarden.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        let env = [
            ("ROOTWARDEN_WORKERS__CONCURRENCY", "7"),
            ("ROOTWARDEN_POLICY__DENIED_ACCOUNTS", "111122223333,444455556666"),
            ("ROOTWARDEN_SESSIONS__MIN_REMAINING", "3m"),
            ("UNRELATED", "x"),
            ("ROOTWARDEN_CONFIG", "/elsewhere/rootwarden.toml"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let config = Config::load(&path, true, env).unwrap();
        assert_eq!(config.workers.concurrency, 7);
        assert_eq!(config.policy.denied_accounts, ["111122223333", "444455556666"]);
        assert_eq!(config.sessions.min_remaining, Duration::from_secs(180));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_required_file_is_an_error() {
        let error = Config::load(Path::new("/nonexistent/rootwarden.toml"), true, []).unwrap_err();
        assert!(error.problems[0].contains("not found"), "{error}");
    }

    #[test]
    fn a_fifo_intake_needs_a_fifo_dead_letter_queue() {
        let mixed = r#"
            [intake]
            queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs.fifo"
            dead_letter_queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs-dlq"
        "#;
        let text = Config::from_toml(mixed).unwrap_err().problems.join("\n");
        assert!(text.contains("must both be FIFO queues (`.fifo`) or both standard"), "{text}");
        let both = mixed.replace("jobs-dlq", "jobs-dlq.fifo");
        Config::from_toml(&both).expect("two FIFO queues are a valid pair");
    }

    #[test]
    fn durations_are_written_in_one_form_that_reads_back() {
        for (seconds, written) in [
            (0, "0s"),
            (2, "2s"),
            (60, "60s"),
            (90, "90s"),
            (120, "120s"),
            (299, "299s"),
            (300, "5m"),
            (301, "301s"),
            (900, "15m"),
            (3600, "1h"),
            (5400, "90m"),
            (86_400, "24h"),
        ] {
            let value = Duration::from_secs(seconds);
            assert_eq!(duration::format(value), written);
            assert_eq!(humantime::parse_duration(written).unwrap(), value, "{written}");
        }
        for value in [Duration::from_millis(1500), Duration::from_nanos(1_000_000_001), Duration::from_micros(3)] {
            assert_eq!(humantime::parse_duration(&duration::format(value)).unwrap(), value, "{value:?}");
        }
        assert_eq!(duration::format(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn the_closest_key_is_a_slip_away() {
        assert_eq!(edit_distance("visiblity_timeout", "visibility_timeout"), 1);
        assert_eq!(edit_distance("conucrrency", "concurrency"), 1, "a swap of neighbours is one edit");
        let keys = field_names::<IntakeConfig>();
        assert_eq!(keys.len(), 7);
        assert_eq!(closest("visiblity_timeout", keys.iter().copied()), Some("visibility_timeout"));
        assert_eq!(closest("Wait_Time", keys.iter().copied()), Some("wait_time"));
        assert_eq!(closest("timeout", keys.iter().copied()), None);
        assert_eq!(closest("queue", keys.iter().copied()), Some("queue_url"), "the only key it begins");
        assert_eq!(closest("backoff", keys.iter().copied()), None, "two keys begin with it");
    }

    #[test]
    fn queue_urls_of_aws_and_of_a_local_environment() {
        for url in [
            "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs-dlq.fifo",
            "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/jobs",
            "https://us-west-2.queue.amazonaws.com/123456789012/jobs_1",
            "https://queue.amazonaws.com/123456789012/jobs",
        ] {
            assert_eq!(queue_url_problem(url, false), None, "{url}");
        }
        let name = "q".repeat(75);
        assert_eq!(queue_url_problem(&format!("http://localhost:4566/000000000000/{name}.fifo"), true), None);
        for (url, local, reason) in [
            ("not a url", false, "it must start with https://"),
            ("http://sqs.us-east-1.amazonaws.com/123456789012/jobs", false, "SQS is reached over https://"),
            ("https://q/123456789012/jobs", false, "the host `q` is not SQS's"),
            ("http://127.0.0.1:4566/123456789012/jobs", false, "the host `127.0.0.1:4566` is not SQS's; for a local"),
            ("https://sqs.us-east-1.amazonaws.com/jobs", false, "its path must be /<12-digit account id>/<queue name>"),
            ("https://sqs.us-east-1.amazonaws.com/123456789012/jobs/", false, "its path must be"),
            ("https://sqs.us-east-1.amazonaws.com/1234/jobs", false, "`1234` is not a 12-digit account id"),
            ("https://sqs.us-east-1.amazonaws.com/123456789012/my jobs", false, "the queue name `my jobs` must be"),
            ("https://sqs.us-east-1.amazonaws.com/123456789012/.fifo", false, "the queue name `.fifo` must be"),
            ("ftp://localhost/123456789012/jobs", true, "it must start with http:// or https://"),
        ] {
            let found = queue_url_problem(url, local).unwrap_or_default();
            assert!(found.starts_with(reason), "{url}: {found:?}");
        }
        let long = format!("https://sqs.us-east-1.amazonaws.com/123456789012/{}", "q".repeat(81));
        assert!(queue_url_problem(&long, false).is_some(), "more than 80 characters");
    }
}

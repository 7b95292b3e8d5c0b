//! rootwarden performs AWS centralized root access tasks (`sts:AssumeRoot`) taken as jobs from
//! an SQS intake queue.
//!
//! Map of the modules, in the order a job meets them:
//! - [`config`]: the configuration, its defaults and validation; loading it from the file and the
//!   environment key by key, with the closest key for an unknown one.
//! - [`daemon`]: `run(config, shutdown)`: the poller, the worker pool, the drain.
//! - [`intake`]: receiving messages and their SQS system attributes.
//! - [`job`]: the v1 job contract, parsed and validated strictly.
//! - [`policy`]: guardrails before any root session (sender, freshness, task, account, ticket,
//!   approvals); [`approvals`]: the two-person rule's canonical message and signature checks.
//! - [`sessions`]: the root session cache; [`ratelimit`]: the AssumeRoot token bucket.
//! - [`tasks`]: the five root tasks, a module each.
//! - [`resource_policy`]: the unlock tasks' policy documents, restore validation, lock-out rules.
//! - [`worker`]: one message from receipt to decision; [`outcome`]: the result contract.
//! - [`ack`] and [`batch`]: deletes, dead letters, results and visibility, batched.
//! - [`aws`]: shared SDK configuration, AWS error classification and the sentence explaining each
//!   error (its cause and what to do next); [`sqs`]: what SQS accepts of a message sent (size,
//!   byte-bounded batches, FIFO fields).
//! - [`metrics`], [`events`], [`telemetry`], [`http`], [`systemd`]: what operators see.
//! - [`submit`]: building and posting a job (the `submit` command).
//! - [`sweep`]: one job per member account, results collected, resumable, reported (`sweep`);
//!   [`features`]: the organization's root access set-up (`features status|enable`).

pub mod ack;
pub mod approvals;
pub mod aws;
pub mod batch;
pub mod config;
pub mod daemon;
pub mod events;
pub mod features;
pub mod http;
pub mod intake;
pub mod job;
pub mod metrics;
pub mod outcome;
pub mod policy;
pub mod ratelimit;
pub mod resource_policy;
pub mod sessions;
pub mod sqs;
pub mod submit;
pub mod sweep;
pub mod systemd;
pub mod tasks;
pub mod telemetry;
pub mod worker;

pub use config::Config;
pub use daemon::{Daemon, run};

//! Resource policies of the unlock tasks (S3 bucket policies, SQS queue policies), as pure logic:
//! parsing what AWS returns, validating a policy to restore, naming and removing statements, and
//! judging which statements lock everyone out.
//!
//! - [`document`]: the policy document and its statement ids; `restore` checks a policy to
//!   restore before it is accepted.
//! - [`mod@classify`]: the lock-out rules, the one place they are written down; `scope` and
//!   `conditions` apply them to a statement's principals, actions, resources and conditions.

pub mod classify;
mod conditions;
pub mod document;
mod restore;
mod scope;

pub use classify::{Classification, StatementReport, classify};
pub use document::{PolicyDocument, PolicyError, Service};

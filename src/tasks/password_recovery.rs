//! IAMCreateRootUserPassword: allow password recovery by creating a login profile without a
//! password; an existing profile is `no_change`.

use serde_json::json;

use super::{TaskContext, TaskReport, iso};
use crate::aws::{self, AwsCallError};
use crate::outcome::Outcome;

/// Creates the login profile unless one exists.
pub async fn run(context: TaskContext<'_>) -> Result<TaskReport, AwsCallError> {
    let iam = context.session.iam(context.clients);
    let metrics = context.metrics;
    match aws::call(metrics, "iam", "GetLoginProfile", iam.get_login_profile().send()).await {
        Ok(output) => {
            let created = output.login_profile().map(|p| iso(Some(p.create_date())));
            return Ok(TaskReport {
                outcome: Outcome::NoChange,
                findings: json!({"login_profile_exists": true, "login_profile_created": created.flatten()}),
                reason: None,
            });
        }
        Err(error) if error.is(&["NoSuchEntity"]) => {}
        Err(error) => return Err(error),
    }
    if context.dry_run {
        return Ok(TaskReport::change(&context, true, json!({"would_create_login_profile": true})));
    }
    match aws::call(metrics, "iam", "CreateLoginProfile", iam.create_login_profile().send()).await {
        Ok(_) => Ok(TaskReport::change(&context, true, json!({"login_profile_created": true}))),
        // Created between our read and our write: the wanted state all the same.
        Err(error) if error.is(&["EntityAlreadyExists"]) => {
            Ok(TaskReport { outcome: Outcome::NoChange, findings: json!({"login_profile_exists": true}), reason: None })
        }
        Err(error) => Err(error),
    }
}

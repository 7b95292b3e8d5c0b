//! IAMDeleteRootUserCredentials: delete the chosen kinds of root credentials (MFA devices are
//! deactivated), reading first so that absent credentials make a `no_change`.

use serde_json::json;

use super::{TaskContext, TaskReport};
use crate::aws::{self, AwsCallError};
use crate::job::CredentialKind;

/// What exists of the chosen kinds.
#[derive(Debug, Default)]
struct Found {
    password: bool,
    access_keys: Vec<String>,
    signing_certificates: Vec<String>,
    mfa_devices: Vec<String>,
}

impl Found {
    fn is_empty(&self) -> bool {
        !self.password && self.access_keys.is_empty() && self.signing_certificates.is_empty() && self.mfa_devices.is_empty()
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "password": self.password,
            "access_keys": self.access_keys,
            "signing_certificates": self.signing_certificates,
            "mfa_devices": self.mfa_devices,
        })
    }
}

/// Deletes what exists of `kinds`.
pub async fn run(kinds: &[CredentialKind], context: TaskContext<'_>) -> Result<TaskReport, AwsCallError> {
    let found = read(kinds, &context).await?;
    if !context.dry_run {
        delete(&found, &context).await?;
    }
    let key = if context.dry_run { "would_delete" } else { "deleted" };
    let findings = json!({ key: found.to_json() });
    Ok(TaskReport::change(&context, !found.is_empty(), findings))
}

async fn read(kinds: &[CredentialKind], context: &TaskContext<'_>) -> Result<Found, AwsCallError> {
    let iam = context.session.iam(context.clients);
    let metrics = context.metrics;
    let mut found = Found::default();
    for kind in kinds {
        match kind {
            CredentialKind::Password => {
                found.password = match aws::call(metrics, "iam", "GetLoginProfile", iam.get_login_profile().send()).await {
                    Ok(_) => true,
                    Err(error) if error.is(&["NoSuchEntity"]) => false,
                    Err(error) => return Err(error),
                };
            }
            CredentialKind::AccessKeys => {
                let keys = aws::call(metrics, "iam", "ListAccessKeys", iam.list_access_keys().send()).await?;
                found.access_keys =
                    keys.access_key_metadata().iter().filter_map(|k| k.access_key_id().map(str::to_owned)).collect();
            }
            CredentialKind::SigningCertificates => {
                let certificates =
                    aws::call(metrics, "iam", "ListSigningCertificates", iam.list_signing_certificates().send()).await?;
                found.signing_certificates = certificates.certificates().iter().map(|c| c.certificate_id().to_owned()).collect();
            }
            CredentialKind::MfaDevices => {
                let devices = aws::call(metrics, "iam", "ListMFADevices", iam.list_mfa_devices().send()).await?;
                found.mfa_devices = devices.mfa_devices().iter().map(|d| d.serial_number().to_owned()).collect();
            }
        }
    }
    Ok(found)
}

/// `NoSuchEntity` means already gone: the wanted state.
fn gone<T>(result: Result<T, AwsCallError>) -> Result<(), AwsCallError> {
    match result {
        Err(error) if !error.is(&["NoSuchEntity"]) => Err(error),
        _ => Ok(()),
    }
}

/// Deletes, tolerating `NoSuchEntity`: a concurrent or earlier attempt may have done it already.
async fn delete(found: &Found, context: &TaskContext<'_>) -> Result<(), AwsCallError> {
    let iam = context.session.iam(context.clients);
    let metrics = context.metrics;

    for id in &found.access_keys {
        gone(aws::call(metrics, "iam", "DeleteAccessKey", iam.delete_access_key().access_key_id(id).send()).await)?;
    }
    for id in &found.signing_certificates {
        let request = iam.delete_signing_certificate().certificate_id(id).send();
        gone(aws::call(metrics, "iam", "DeleteSigningCertificate", request).await)?;
    }
    for serial in &found.mfa_devices {
        let request = iam.deactivate_mfa_device().serial_number(serial).send();
        gone(aws::call(metrics, "iam", "DeactivateMFADevice", request).await)?;
    }
    if found.password {
        gone(aws::call(metrics, "iam", "DeleteLoginProfile", iam.delete_login_profile().send()).await)?;
    }
    Ok(())
}

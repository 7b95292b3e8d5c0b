//! IAMAuditRootUserCredentials: report the root user's password, access keys, MFA devices,
//! signing certificates and their last use.

use serde_json::{Value, json};

use super::{TaskContext, TaskReport, iso};
use crate::aws::{self, AwsCallError};
use crate::metrics::Metrics;
use crate::outcome::Outcome;

// Root users have at most two access keys, two signing certificates and eight MFA devices, so
// every list fits in its first page.

/// Reads every root credential of the account.
///
/// GetAccountSummary says which kinds of root credential exist (`AccountPasswordPresent`,
/// `AccountAccessKeysPresent`, `AccountMFAEnabled`, `AccountSigningCertificatesPresent`), so
/// only the kinds it reports present are listed: a clean account costs GetAccountSummary and
/// GetUser, the same calls as AWS's own sample scripts, and an organization-wide sweep makes
/// no call that cannot find anything. A flag missing from the summary is read anyway. The
/// remaining reads are independent and run at once, so a job waits for two round trips,
/// not seven.
pub async fn run(account_id: &str, context: TaskContext<'_>) -> Result<TaskReport, AwsCallError> {
    let iam = context.session.iam(context.clients);
    let metrics = context.metrics;

    let summary = aws::call(metrics, "iam", "GetAccountSummary", iam.get_account_summary().send()).await?;
    let summary: serde_json::Map<String, Value> = summary
        .summary_map()
        .into_iter()
        .flatten()
        // The root flags (`Account…`) and `MFADevices`, every MFA device of the account: the
        // column of that name in the scripts people run today, which the audit report keeps.
        .filter(|(key, _)| key.as_str().starts_with("Account") || key.as_str() == "MFADevices")
        .map(|(key, value)| (key.as_str().to_owned(), json!(value)))
        .collect();
    let may_exist = |flag: &str| summary.get(flag).and_then(Value::as_i64) != Some(0);

    let user = async {
        let user = aws::call(metrics, "iam", "GetUser", iam.get_user().send()).await?;
        Ok::<_, AwsCallError>(iso(user.user().and_then(|u| u.password_last_used())))
    };
    let login_profile = async {
        if !may_exist("AccountPasswordPresent") {
            return Ok::<_, AwsCallError>(None);
        }
        match aws::call(metrics, "iam", "GetLoginProfile", iam.get_login_profile().send()).await {
            Ok(output) => Ok(output.login_profile().map(|p| iso(Some(p.create_date())))),
            Err(error) if error.is(&["NoSuchEntity"]) => Ok(None),
            Err(error) => Err(error),
        }
    };
    let access_keys = async {
        if !may_exist("AccountAccessKeysPresent") {
            return Ok::<_, AwsCallError>(Vec::new());
        }
        let keys = aws::call(metrics, "iam", "ListAccessKeys", iam.list_access_keys().send()).await?;
        let mut access_keys = Vec::new();
        for key in keys.access_key_metadata() {
            let id = key.access_key_id().unwrap_or_default();
            let used = aws::call(metrics, "iam", "GetAccessKeyLastUsed", iam.get_access_key_last_used().access_key_id(id).send())
                .await?;
            let last_used = used.access_key_last_used();
            access_keys.push(json!({
                "id": id,
                "status": key.status().map(|s| s.as_str()),
                "created": iso(key.create_date()),
                "last_used": iso(last_used.and_then(|u| u.last_used_date())),
                "last_used_service": last_used.map(|u| u.service_name()).filter(|s| *s != "N/A"),
                "last_used_region": last_used.map(|u| u.region()).filter(|s| *s != "N/A"),
            }));
        }
        Ok(access_keys)
    };
    let mfa_devices = async {
        if !may_exist("AccountMFAEnabled") {
            return Ok::<_, AwsCallError>(Vec::new());
        }
        let mfa = aws::call(metrics, "iam", "ListMFADevices", iam.list_mfa_devices().send()).await?;
        Ok(mfa
            .mfa_devices()
            .iter()
            .map(|device| json!({"serial": device.serial_number(), "enabled": iso(Some(device.enable_date()))}))
            .collect::<Vec<Value>>())
    };
    let signing_certificates = async {
        if !may_exist("AccountSigningCertificatesPresent") {
            return Ok::<_, AwsCallError>(Vec::new());
        }
        let certificates = aws::call(metrics, "iam", "ListSigningCertificates", iam.list_signing_certificates().send()).await?;
        Ok(certificates
            .certificates()
            .iter()
            .map(|c| json!({"id": c.certificate_id(), "status": c.status().as_str(), "uploaded": iso(c.upload_date())}))
            .collect::<Vec<Value>>())
    };
    let (password_last_used, login_profile, access_keys, mfa_devices, signing_certificates) =
        tokio::try_join!(user, login_profile, access_keys, mfa_devices, signing_certificates)?;

    let findings = json!({
        "password_present": login_profile.is_some(),
        "password_created": login_profile.flatten(),
        "password_last_used": password_last_used,
        "access_keys": access_keys,
        "mfa_devices": mfa_devices,
        "signing_certificates": signing_certificates,
        "account_summary": summary,
    });
    publish_posture(metrics, account_id, &findings);
    let outcome = if context.dry_run { Outcome::DryRun } else { Outcome::Succeeded };
    Ok(TaskReport { outcome, findings, reason: None })
}

/// Sets `rootwarden_root_credentials_present` from audit findings, so the organization's
/// root-credential posture is a dashboard panel, and when it was observed.
pub fn publish_posture(metrics: &Metrics, account_id: &str, findings: &Value) {
    let non_empty = |key: &str| findings[key].as_array().is_some_and(|list| !list.is_empty());
    let present = [
        ("password", findings["password_present"].as_bool().unwrap_or(false)),
        ("access_keys", non_empty("access_keys")),
        ("mfa_devices", non_empty("mfa_devices")),
        ("signing_certificates", non_empty("signing_certificates")),
    ];
    for (credential, is_present) in present {
        metrics.root_credentials_present.with_label_values(&[account_id, credential]).set(i64::from(is_present));
    }
    metrics.observed(crate::job::Task::AuditRootUserCredentials.as_str(), account_id);
}

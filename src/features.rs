//! The organization's centralized root access set-up (the `features` command): trusted access
//! for `iam.amazonaws.com`, the `RootCredentialsManagement` and `RootSessions` features and
//! IAM's delegated administrator, shown and enabled, with each AWS refusal said in a sentence.

use crate::aws::{self, AwsCallError, Clients};
use crate::metrics::Metrics;

/// IAM's service principal in Organizations.
pub const IAM_PRINCIPAL: &str = "iam.amazonaws.com";

/// Why the set-up could not be read or changed, in the operator's terms.
#[derive(Debug, thiserror::Error)]
pub enum FeaturesError {
    /// AWSOrganizationsNotInUseException, OrganizationNotFoundException.
    #[error(
        "this account is not in an organization: create one (aws organizations create-organization --feature-set ALL) from the future management account"
    )]
    NoOrganization,
    /// AccessDenied from Organizations, AccountNotManagementOrDelegatedAdministratorException.
    #[error("these credentials are neither the management account's nor IAM's delegated administrator's ({0})")]
    NotManagementOrDelegated(String),
    /// CallerIsNotManagementAccountException: a delegated administrator may read, not change.
    #[error("only the management account can enable these features; IAM's delegated administrator can only read them")]
    NotManagementAccount,
    /// OrganizationNotInAllFeaturesModeException, or a consolidated-billing organization.
    #[error(
        "the organization is in consolidated-billing mode: centralized root access needs all features enabled (aws organizations enable-all-features)"
    )]
    NotAllFeatures,
    /// ServiceAccessNotEnabledException.
    #[error("trusted access for iam.amazonaws.com is not enabled: run `rootwarden features enable` from the management account")]
    TrustedAccessNotEnabled,
    /// Anything else, with AWS's words.
    #[error(transparent)]
    Aws(AwsCallError),
}

impl From<AwsCallError> for FeaturesError {
    fn from(error: AwsCallError) -> Self {
        match error.code.as_str() {
            "AWSOrganizationsNotInUseException" | "OrganizationNotFoundException" => Self::NoOrganization,
            "AccessDeniedException" | "AccessDenied" | "AccountNotManagementOrDelegatedAdministratorException" => {
                Self::NotManagementOrDelegated(format!("{}:{} answered {}", error.service, error.operation, error.code))
            }
            "CallerIsNotManagementAccountException" => Self::NotManagementAccount,
            "OrganizationNotInAllFeaturesModeException" => Self::NotAllFeatures,
            "ServiceAccessNotEnabledException" => Self::TrustedAccessNotEnabled,
            _ => Self::Aws(error),
        }
    }
}

/// What `features status` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FeatureStatus {
    /// `o-…`
    pub organization_id: String,
    /// The management account.
    pub management_account: String,
    /// `ALL` or `CONSOLIDATED_BILLING`.
    pub feature_set: String,
    /// Trusted access for iam.amazonaws.com; `None` when it could not be read (see `notes`).
    pub trusted_access: Option<bool>,
    /// IAM's delegated administrators (id, name); `None` when they could not be read.
    pub delegated_administrators: Option<Vec<(String, String)>>,
    /// Enabled root access features; `None` when they could not be read.
    pub enabled_features: Option<Vec<String>>,
    /// Sentences about what could not be read.
    pub notes: Vec<String>,
}

impl FeatureStatus {
    /// Both features on.
    pub fn ready(&self) -> bool {
        self.enabled_features
            .as_ref()
            .is_some_and(|f| ["RootCredentialsManagement", "RootSessions"].iter().all(|wanted| f.iter().any(|x| x == wanted)))
    }

    /// The terminal text.
    pub fn render(&self) -> String {
        let yes_no = |v: Option<bool>| v.map_or("unknown", |b| if b { "enabled" } else { "NOT enabled" });
        let mut text = format!(
            "organization              {} ({} features)\nmanagement account        {}\ntrusted access (IAM)      {}\n",
            self.organization_id,
            self.feature_set,
            self.management_account,
            yes_no(self.trusted_access),
        );
        let admins = match &self.delegated_administrators {
            None => "unknown".to_owned(),
            Some(list) if list.is_empty() => "none (rootwarden then runs in the management account)".to_owned(),
            Some(list) => list.iter().map(|(id, name)| format!("{id} ({name})")).collect::<Vec<_>>().join(", "),
        };
        text.push_str(&format!("delegated administrator   {admins}\n"));
        for feature in ["RootCredentialsManagement", "RootSessions"] {
            let state = self.enabled_features.as_ref().map(|f| f.iter().any(|x| x == feature));
            text.push_str(&format!("{feature:<26}{}\n", yes_no(state)));
        }
        for note in &self.notes {
            text.push_str(&format!("note: {note}\n"));
        }
        text
    }
}

/// Reads the set-up. Only a missing organization (or no access to it at all) is an error; a
/// part that cannot be read is reported as unknown with a note.
pub async fn status(clients: &Clients) -> Result<FeatureStatus, FeaturesError> {
    let metrics = Metrics::new();
    let mut status = FeatureStatus::default();
    let organization =
        aws::call(&metrics, "organizations", "DescribeOrganization", clients.organizations.describe_organization().send())
            .await?;
    if let Some(org) = organization.organization() {
        status.organization_id = org.id().unwrap_or_default().to_owned();
        status.management_account = org.master_account_id().unwrap_or_default().to_owned();
        status.feature_set = org.feature_set().map(|f| f.as_str().to_owned()).unwrap_or_default();
    }
    match trusted_access(clients, &metrics).await {
        Ok(enabled) => status.trusted_access = Some(enabled),
        Err(error) => status.notes.push(format!("trusted access could not be read: {error}")),
    }
    let request = clients.organizations.list_delegated_administrators().service_principal(IAM_PRINCIPAL).send();
    match aws::call(&metrics, "organizations", "ListDelegatedAdministrators", request).await {
        Ok(output) => {
            status.delegated_administrators = Some(
                output
                    .delegated_administrators()
                    .iter()
                    .map(|a| (a.id().unwrap_or_default().to_owned(), a.name().unwrap_or_default().to_owned()))
                    .collect(),
            );
        }
        Err(error) => status.notes.push(format!("delegated administrators could not be read: {}", FeaturesError::from(error))),
    }
    match aws::call(&metrics, "iam", "ListOrganizationsFeatures", clients.iam.list_organizations_features().send()).await {
        Ok(output) => {
            status.enabled_features = Some(output.enabled_features().iter().map(|f| f.as_str().to_owned()).collect());
        }
        Err(error) => status.notes.push(format!("root access features could not be read: {}", FeaturesError::from(error))),
    }
    Ok(status)
}

async fn trusted_access(clients: &Clients, metrics: &Metrics) -> Result<bool, FeaturesError> {
    let mut pages = clients.organizations.list_aws_service_access_for_organization().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            let error = AwsCallError::from_sdk("organizations", "ListAWSServiceAccessForOrganization", e);
            let code = crate::aws::metric_code(&error.code);
            metrics.aws_errors.with_label_values(&["organizations", "ListAWSServiceAccessForOrganization", code]).inc();
            FeaturesError::from(error)
        })?;
        if page.enabled_service_principals().iter().any(|p| p.service_principal() == Some(IAM_PRINCIPAL)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Enables, in order, whatever is not yet on: trusted access for IAM, RootCredentialsManagement,
/// RootSessions. Returns one sentence per step. Stops at the first refusal.
pub async fn enable(clients: &Clients) -> Result<Vec<String>, FeaturesError> {
    let metrics = Metrics::new();
    let before = status(clients).await?;
    if before.feature_set != "ALL" {
        return Err(FeaturesError::NotAllFeatures);
    }
    let mut steps = Vec::new();
    if before.trusted_access == Some(true) {
        steps.push("trusted access for iam.amazonaws.com: already enabled".to_owned());
    } else {
        let request = clients.organizations.enable_aws_service_access().service_principal(IAM_PRINCIPAL).send();
        aws::call(&metrics, "organizations", "EnableAWSServiceAccess", request).await?;
        steps.push("trusted access for iam.amazonaws.com: enabled".to_owned());
    }
    // Read again: the features could not be read before trusted access was on.
    let enabled = aws::call(&metrics, "iam", "ListOrganizationsFeatures", clients.iam.list_organizations_features().send())
        .await?
        .enabled_features()
        .iter()
        .map(|f| f.as_str().to_owned())
        .collect::<Vec<_>>();
    if enabled.iter().any(|f| f == "RootCredentialsManagement") {
        steps.push("RootCredentialsManagement: already enabled".to_owned());
    } else {
        let request = clients.iam.enable_organizations_root_credentials_management().send();
        aws::call(&metrics, "iam", "EnableOrganizationsRootCredentialsManagement", request).await?;
        steps.push("RootCredentialsManagement: enabled (new member accounts get no root password)".to_owned());
    }
    if enabled.iter().any(|f| f == "RootSessions") {
        steps.push("RootSessions: already enabled".to_owned());
    } else {
        let request = clients.iam.enable_organizations_root_sessions().send();
        aws::call(&metrics, "iam", "EnableOrganizationsRootSessions", request).await?;
        steps.push("RootSessions: enabled".to_owned());
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ErrorClass;

    fn error(code: &str) -> AwsCallError {
        AwsCallError {
            service: "iam",
            operation: "ListOrganizationsFeatures",
            code: code.into(),
            message: String::new(),
            class: ErrorClass::Permanent,
            redirect_region: None,
        }
    }

    #[test]
    fn aws_refusals_become_sentences() {
        assert!(matches!(FeaturesError::from(error("AWSOrganizationsNotInUseException")), FeaturesError::NoOrganization));
        assert!(matches!(
            FeaturesError::from(error("OrganizationNotInAllFeaturesModeException")),
            FeaturesError::NotAllFeatures
        ));
        assert!(matches!(
            FeaturesError::from(error("ServiceAccessNotEnabledException")),
            FeaturesError::TrustedAccessNotEnabled
        ));
        let text = FeaturesError::from(error("AccountNotManagementOrDelegatedAdministratorException")).to_string();
        assert!(text.contains("neither the management account"), "{text}");
        assert!(matches!(FeaturesError::from(error("Throttling")), FeaturesError::Aws(_)));
    }
}

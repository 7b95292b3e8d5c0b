//! Which accounts a sweep targets: the organization's ACTIVE members (paginated), minus the
//! management account, narrowed by `--include` and reduced by `--exclude` and `--exclude-ou`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::SweepError;
use crate::aws::{self, AwsCallError, Clients};
use crate::job::is_account_id;
use crate::metrics::Metrics;

/// A member account as the sweep reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Twelve digits.
    pub id: String,
    /// The account's name in Organizations.
    pub name: String,
}

/// An account of the organization the sweep leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Twelve digits.
    pub id: String,
    /// The account's name in Organizations.
    pub name: String,
    /// A short phrase: `management account`, `excluded`, `in excluded OU ou-…`, `SUSPENDED`…
    pub reason: String,
}

/// The operator's narrowing of the organization.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Accounts never targeted.
    pub exclude: Vec<String>,
    /// Organizational units (`ou-…`) whose accounts, at any depth, are never targeted.
    pub exclude_ous: Vec<String>,
    /// When not empty, only these accounts are targeted.
    pub include: Vec<String>,
}

impl Selection {
    /// Every malformed id, at once.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (flag, ids) in [("--exclude", &self.exclude), ("--include", &self.include)] {
            for id in ids.iter().filter(|id| !is_account_id(id)) {
                problems.push(format!("{flag} {id}: an account id is 12 digits"));
            }
        }
        for ou in self.exclude_ous.iter().filter(|ou| !is_parent_id(ou)) {
            problems.push(format!("--exclude-ou {ou}: an organizational unit id looks like ou-ab12-cd34ef56"));
        }
        problems
    }
}

/// `ou-<root suffix>-<ou suffix>` (or a root, `r-…`, which excludes everything).
fn is_parent_id(id: &str) -> bool {
    let valid = |rest: &str| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    id.strip_prefix("ou-").is_some_and(valid) || id.strip_prefix("r-").is_some_and(valid)
}

/// The accounts to target and those left out.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// ACTIVE members to sweep, by id.
    pub accounts: Vec<Account>,
    /// Members left out, with the reason.
    pub skipped: Vec<Skipped>,
}

/// Organizations allows five levels of OUs; the bound keeps a malformed answer from looping.
const MAX_OU_DEPTH: usize = 8;

/// Reads the organization and applies the selection.
pub async fn select(clients: &Clients, metrics: &Metrics, selection: &Selection) -> Result<Targets, SweepError> {
    let problems = selection.problems();
    if !problems.is_empty() {
        return Err(SweepError::Invalid(problems));
    }
    let organization =
        aws::call(metrics, "organizations", "DescribeOrganization", clients.organizations.describe_organization().send())
            .await
            .map_err(SweepError::Organization)?;
    let management = organization.organization().and_then(|o| o.master_account_id()).unwrap_or_default().to_owned();

    let mut members: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut pages = clients.organizations.list_accounts().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| SweepError::Organization(AwsCallError::from_sdk("organizations", "ListAccounts", e)))?;
        for account in page.accounts() {
            let Some(id) = account.id() else { continue };
            // `State` replaced `Status` in 2025; read whichever the service sends.
            let state = account.state().map(|s| s.as_str().to_owned());
            let status = account.status().map(|s| s.as_str().to_owned());
            let state = state.or(status).unwrap_or_else(|| "UNKNOWN".into());
            members.insert(id.to_owned(), (account.name().unwrap_or_default().to_owned(), state));
        }
    }

    let unknown: Vec<String> = selection
        .include
        .iter()
        .filter(|id| !members.contains_key(*id))
        .map(|id| format!("--include {id}: not a member of the organization"))
        .collect();
    if !unknown.is_empty() {
        return Err(SweepError::Invalid(unknown));
    }
    let mut in_excluded_ou: BTreeMap<String, String> = BTreeMap::new();
    for ou in &selection.exclude_ous {
        for id in accounts_under(clients, ou).await? {
            in_excluded_ou.entry(id).or_insert_with(|| ou.clone());
        }
    }

    let include: BTreeSet<&String> = selection.include.iter().collect();
    let exclude: BTreeSet<&String> = selection.exclude.iter().collect();
    let mut targets = Targets::default();
    for (id, (name, state)) in members {
        let reason = if id == management {
            Some("management account".to_owned())
        } else if state != "ACTIVE" {
            Some(state)
        } else if !include.is_empty() && !include.contains(&id) {
            Some("not included".to_owned())
        } else if exclude.contains(&id) {
            Some("excluded".to_owned())
        } else {
            in_excluded_ou.get(&id).map(|ou| format!("in excluded OU {ou}"))
        };
        match reason {
            Some(reason) => targets.skipped.push(Skipped { id, name, reason }),
            None => targets.accounts.push(Account { id, name }),
        }
    }
    Ok(targets)
}

/// Every account under `parent`, at any depth (ListAccountsForParent and ListChildren).
pub async fn accounts_under(clients: &Clients, parent: &str) -> Result<Vec<String>, SweepError> {
    let org = &clients.organizations;
    let mut accounts = Vec::new();
    let mut level = vec![parent.to_owned()];
    for _depth in 0..MAX_OU_DEPTH {
        if level.is_empty() {
            break;
        }
        let mut next = Vec::new();
        for parent in level {
            let mut pages = org.list_accounts_for_parent().parent_id(&parent).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|e| ou_error(&parent, AwsCallError::from_sdk("organizations", "ListAccountsForParent", e)))?;
                accounts.extend(page.accounts().iter().filter_map(|a| a.id().map(str::to_owned)));
            }
            let mut pages = org
                .list_children()
                .parent_id(&parent)
                .child_type(aws_sdk_organizations::types::ChildType::OrganizationalUnit)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| ou_error(&parent, AwsCallError::from_sdk("organizations", "ListChildren", e)))?;
                next.extend(page.children().iter().filter_map(|c| c.id().map(str::to_owned)));
            }
        }
        level = next;
    }
    Ok(accounts)
}

fn ou_error(parent: &str, error: AwsCallError) -> SweepError {
    if error.is(&["ParentNotFoundException"]) {
        SweepError::Invalid(vec![format!("--exclude-ou {parent}: no such organizational unit")])
    } else {
        SweepError::Organization(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_ids_are_all_named() {
        let selection = Selection {
            exclude: vec!["12".into(), "111122223333".into()],
            exclude_ous: vec!["ou-ab12-cd34ef56".into(), "sales".into()],
            include: vec!["x".into()],
        };
        let problems = selection.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("--exclude-ou sales")));
    }
}

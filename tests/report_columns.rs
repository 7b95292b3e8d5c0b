//! The audit sweep's CSV against the script people run today (the AWS sample for centralized
//! root access that writes `root_user_last_login.csv`): an organization of 30 members, some
//! with IAM users holding MFA devices so the account's MFA count differs from the root user's,
//! is swept; then the script's logic runs here, through the SDK (per account: AssumeRoot with
//! the audit task policy, GetAccountSummary's SummaryMap read with `// "No"`, GetUser's
//! PasswordLastUsed printed as the AWS CLI v2 prints it, `None` when absent), and the report's
//! first six columns must equal the script's, header and values, account by account.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_sts::types::PolicyDescriptorType;
use rootwarden::aws::Clients;
use rootwarden::job::Task;
use rootwarden::sweep::{self, SweepOptions};
use support::*;
use tokio_util::sync::CancellationToken;

const ACCOUNTS: usize = 30;

/// The script's header line, as it writes it.
const SCRIPT_HEADER: &str =
    "AccountId,MFADevices,AccountAccessKeysPresent,AccountMFAEnabled,AccountPasswordPresent,PasswordLastUsedTime";

/// Gives a member `users` IAM users, each with an enabled virtual MFA device, and `spare`
/// virtual MFA devices assigned to no one; returns the devices made.
async fn iam_mfa_devices(iam: &aws_sdk_iam::Client, users: usize, spare: usize) -> usize {
    for n in 0..users {
        let name = format!("operator-{n}");
        iam.create_user().user_name(&name).send().await.unwrap();
        let device = iam.create_virtual_mfa_device().virtual_mfa_device_name(&name).send().await.unwrap();
        let serial = device.virtual_mfa_device().unwrap().serial_number().to_owned();
        let enable = iam.enable_mfa_device().user_name(&name).serial_number(serial);
        enable.authentication_code1("123456").authentication_code2("654321").send().await.unwrap();
    }
    for n in 0..spare {
        iam.create_virtual_mfa_device().virtual_mfa_device_name(format!("spare-{n}")).send().await.unwrap();
    }
    users + spare
}

/// A timestamp as the AWS CLI v2 prints it (`--output text`, its default `iso8601` format):
/// Python's `isoformat()` of the UTC time, `2026-01-02T03:04:05+00:00`.
fn cli_v2(time: &aws_smithy_types::DateTime) -> String {
    let seconds = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(time.secs()).unwrap());
    let text = humantime::format_rfc3339_seconds(seconds).to_string();
    let micros = time.subsec_nanos() / 1_000;
    let fraction = if micros == 0 { String::new() } else { format!(".{micros:06}") };
    format!("{}{fraction}+00:00", text.strip_suffix('Z').unwrap())
}

/// The script's row for one account: AssumeRoot with the audit task policy, then
/// `get-account-summary --query SummaryMap` (each value through `jq -r '.<Key> // "No"'`) and
/// `get-user --query User.PasswordLastUsed --output text` (`None` when absent).
async fn script_row(local: &LocalAws, management: &Clients, account: &str) -> Vec<String> {
    let policy = PolicyDescriptorType::builder().arn("arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials").build();
    let session = management.sts.assume_root().target_principal(account).task_policy_arn(policy).send().await.unwrap();
    let c = session.credentials().unwrap();
    let credentials = aws_credential_types::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "root-session",
    );
    let iam = clients_with(local, credentials).await.iam;
    let summary = iam.get_account_summary().send().await.unwrap();
    let map: BTreeMap<String, i32> =
        summary.summary_map().into_iter().flatten().map(|(key, value)| (key.as_str().to_owned(), *value)).collect();
    let value = |key: &str| map.get(key).map_or_else(|| "No".to_owned(), i32::to_string);
    let user = iam.get_user().send().await.unwrap();
    let last_used = user.user().and_then(|u| u.password_last_used()).map_or_else(|| "None".to_owned(), cli_v2);
    vec![
        account.to_owned(),
        value("MFADevices"),
        value("AccountAccessKeysPresent"),
        value("AccountMFAEnabled"),
        value("AccountPasswordPresent"),
        last_used,
    ]
}

fn report_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("report-columns-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("audit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_audit_csv_has_the_script_columns_with_the_script_values() {
    let local = LocalAws::start();
    let seed = local.seed(ACCOUNTS, 0, 0);
    let accounts = seed.accounts();
    let management = clients_with(&local, credentials()).await;

    // IAM users with MFA in some members, an unassigned virtual device in others: the account's
    // MFA devices are then not the root user's, in both directions across the organization
    // (the seed gives every third early member a root MFA device).
    let mut iam_devices: BTreeMap<String, usize> = BTreeMap::new();
    for (index, account) in accounts.iter().enumerate() {
        let (users, spare) = (usize::from(index % 4 == 1) + usize::from(index % 8 == 1), usize::from(index % 5 == 2));
        if users + spare > 0 {
            let iam = member_clients(&local, account).await.iam;
            iam_devices.insert(account.clone(), iam_mfa_devices(&iam, users, spare).await);
        }
    }

    let daemon = RunningDaemon::start(config(&local, &seed)).await;
    let mut options =
        SweepOptions::new(Task::AuditRootUserCredentials, seed.queue("intake"), seed.queue("results"), report_path("audit"));
    options.idle_timeout = Duration::from_secs(60);
    let outcome = sweep::run(&management, options, CancellationToken::new()).await.unwrap();
    daemon.stop().await;
    assert!(outcome.complete, "{:?}", outcome.stopped);
    assert_eq!((outcome.summary.targets, outcome.summary.succeeded), (ACCOUNTS, ACCOUNTS));

    let mut reader = csv::Reader::from_path(&outcome.paths.csv).unwrap();
    let headers: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(headers[..6].join(","), SCRIPT_HEADER, "the script's header, in its order");
    let rows = csv_rows(&outcome.paths.csv);
    assert_eq!(rows.len(), ACCOUNTS);

    let (mut more_than_root, mut never_used, mut used) = (0, 0, 0);
    for row in &rows {
        let account = &row["AccountId"];
        let script = script_row(&local, &management, account).await;
        for (column, expected) in headers[..6].iter().zip(&script) {
            assert_eq!(&row[column], expected, "account {account}, column {column}: report {row:?}, script {script:?}");
        }
        // The root user's own count has its own column, read from the environment's root user.
        let root_devices = local.root_state(account)["mfa_devices"].as_array().unwrap().len();
        assert_eq!(row["RootMFADevices"], root_devices.to_string(), "{account}");
        let in_account: usize = row["MFADevices"].parse().unwrap_or_else(|_| panic!("a count: {row:?}"));
        let iam = iam_devices.get(account).copied().unwrap_or(0);
        assert_eq!(in_account, iam + root_devices, "the IAM users', the unassigned and the root user's devices: {row:?}");
        more_than_root += usize::from(in_account > root_devices);
        never_used += usize::from(row["PasswordLastUsedTime"] == "None");
        used += usize::from(row["PasswordLastUsedTime"].ends_with("+00:00"));
    }
    // The comparison covered both meanings apart, and both kinds of password last use.
    assert!(more_than_root > 0, "no account where MFADevices counts more than the root user's devices");
    assert!(never_used > 0 && used > 0, "{never_used} never used, {used} used");
}

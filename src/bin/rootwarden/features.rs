//! `rootwarden features`: shows or enables the organization's centralized root access set-up.

use std::process::ExitCode;

use clap::Subcommand;
use rootwarden::config::Config;

#[derive(Subcommand)]
pub(crate) enum FeaturesAction {
    /// Trusted access for iam.amazonaws.com, RootCredentialsManagement, RootSessions and IAM's
    /// delegated administrator (exit 1 when a feature is off).
    Status,
    /// Enables trusted access for iam.amazonaws.com and both features (management account only).
    Enable,
}

pub(crate) async fn features(config: Config, action: FeaturesAction) -> ExitCode {
    let clients = rootwarden::aws::Clients::new(rootwarden::aws::sdk_config(&config.aws, None).await);
    match action {
        FeaturesAction::Status => match rootwarden::features::status(&clients).await {
            Ok(status) => {
                print!("{}", status.render());
                if status.ready() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
            }
            Err(error) => {
                eprintln!("rootwarden: {error}");
                ExitCode::FAILURE
            }
        },
        FeaturesAction::Enable => match rootwarden::features::enable(&clients).await {
            Ok(steps) => {
                steps.iter().for_each(|step| println!("{step}"));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("rootwarden: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

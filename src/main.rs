//! The `keyward` command: serve (default), migrate, create-user, gen-master-key.

use std::process::ExitCode;

use clap::Parser;
use keyward::server::{
    cli,
    config::{Cli, Command},
    startup::{leptos_options, shutdown_signal, Application},
};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let Cli { command, config } = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        .init();

    let result = match command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => cli::migrate(&config).await.map_err(|e| e.to_string()),
        Command::CreateUser { email, admin, .. } => cli::create_user(&config, &email, admin)
            .await
            .map_err(|e| e.to_string()),
        Command::DisableUser { email } => cli::set_disabled(&config, &email, true)
            .await
            .map_err(|e| e.to_string()),
        Command::EnableUser { email } => cli::set_disabled(&config, &email, false)
            .await
            .map_err(|e| e.to_string()),
        Command::IssueToken { email, name } => cli::issue_token(&config, &email, &name)
            .await
            .map_err(|e| e.to_string()),
        Command::RevokeToken { email, name } => cli::revoke_token(&config, &email, &name)
            .await
            .map_err(|e| e.to_string()),
        Command::SeedDemo { rows } => cli::seed_demo(&config, rows)
            .await
            .map_err(|e| e.to_string()),
        Command::RotateKeys => cli::rotate_keys(&config).await.map_err(|e| e.to_string()),
        Command::GenMasterKey => {
            cli::gen_master_key();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: keyward::server::config::Config) -> Result<(), String> {
    let app = Application::build(config, leptos_options())
        .await
        .map_err(|e| e.to_string())?;
    app.run_until(shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

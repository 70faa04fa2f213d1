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

/// mimalloc options keyward runs with unless the operator set them: give
/// freed memory back to the OS at once, and commit arena memory only when
/// used. By default mimalloc keeps what was freed for later reuse; an idle
/// server then still holds the 19 MiB of its last argon2 hash and eagerly
/// committed arenas, two thirds of its resident memory.
const ALLOCATOR_OPTIONS: [(&str, &str); 2] = [
    ("MIMALLOC_PURGE_DELAY", "0"),
    ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
];

/// mimalloc reads its options from the environment once, as the process
/// starts, and offers no safe way to change them later; so keyward sets the
/// missing ones and replaces itself with a fresh run of the same command
/// (same pid, arguments and open files). If that fails it goes on as it is.
fn apply_allocator_options() {
    use std::os::unix::process::CommandExt;
    let missing: Vec<_> = ALLOCATOR_OPTIONS
        .iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .collect();
    if missing.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    command.args(args);
    for (name, value) in missing {
        command.env(name, value);
    }
    let err = command.exec();
    eprintln!(
        "warning: could not restart with allocator options ({err}); memory use may be higher"
    );
}

fn main() -> ExitCode {
    apply_allocator_options();
    run()
}

#[tokio::main]
async fn run() -> ExitCode {
    let Cli { command, config } = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        // Logs never mix with what a command prints for scripts to capture
        // (`TOKEN=$(keyward issue-token …)`), whatever the command.
        .with_writer(std::io::stderr)
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
        Command::PrepareAssets { quality } => {
            cli::prepare_assets(quality).map_err(|e| e.to_string())
        }
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
    app.run_until(shutdown_signal()).await;
    Ok(())
}

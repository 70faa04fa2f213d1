//! Operator commands (everything but `serve`).

use std::io::BufRead;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::{
    admin::seed,
    auth,
    clock::Clock,
    config::Config,
    db::{
        audit::{self, AuditAction, AuditEntry},
        users::{self, Role},
    },
    startup::{migrate_database, open_database, resolve_keyring, StartupError},
    tokens,
    user_keys::rotation,
    vault::MasterKey,
};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("{0}")]
    App(#[from] crate::error::AppError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("could not read the password from standard input: {0}")]
    Stdin(std::io::Error),
    #[error("could not prepare the site's assets in {dir}: {source}")]
    Assets { dir: String, source: std::io::Error },
}

pub async fn migrate(config: &Config) -> Result<(), CliError> {
    migrate_database(config).await?;
    println!("database is up to date");
    Ok(())
}

/// `create-user --email E [--admin] --password-stdin`
pub async fn create_user(config: &Config, email: &str, admin: bool) -> Result<(), CliError> {
    let password = read_password_line(std::io::stdin().lock())?;
    let db = open_database(config).await?;
    let role = if admin { Some(Role::Admin) } else { None };
    let now_ms = Clock::default().now_ms();
    let user = auth::create_user(&db, email, password, role, now_ms).await?;
    audit::append(
        &db,
        AuditAction::UserCreatedByCli,
        AuditEntry {
            subject_user_id: Some(user.id),
            ..Default::default()
        },
        now_ms,
    )
    .await?;
    let role = if user.is_admin() { "admin" } else { "user" };
    println!("created {role} {} (id {})", user.email, user.id);
    Ok(())
}

/// Reads one line and drops the trailing newline (and a `\r` before it).
fn read_password_line(mut input: impl BufRead) -> Result<SecretString, CliError> {
    let mut line = Zeroizing::new(String::new());
    input.read_line(&mut line).map_err(CliError::Stdin)?;
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    Ok(SecretString::from(trimmed.to_owned()))
}

/// `disable-user` / `enable-user --email E`
pub async fn set_disabled(config: &Config, email: &str, disabled: bool) -> Result<(), CliError> {
    let db = open_database(config).await?;
    let user = user_by_email(&db, email).await?;
    auth::set_user_disabled(&db, user.id, disabled, Clock::default().now_ms()).await?;
    println!(
        "{} {}",
        if disabled { "disabled" } else { "enabled" },
        user.email
    );
    Ok(())
}

async fn user_by_email(
    db: &crate::server::db::Db,
    email: &str,
) -> Result<users::UserRow, CliError> {
    Ok(users::find_by_email(db, email).await?.ok_or_else(|| {
        crate::error::AppError::Validation(format!("no account with email {email}"))
    })?)
}

/// `issue-token --email E --name N`: prints only the new token on stdout.
pub async fn issue_token(config: &Config, email: &str, name: &str) -> Result<(), CliError> {
    let db = open_database(config).await?;
    let user = user_by_email(&db, email).await?;
    let created = tokens::create_token(&db, &user, name, None, Clock::default().now_ms()).await?;
    println!("{}", created.token.expose_secret());
    eprintln!(
        "issued token \"{}\" for {}; it is shown only now — store it safely",
        created.row.name, user.email
    );
    Ok(())
}

/// `revoke-token --email E --name N`
pub async fn revoke_token(config: &Config, email: &str, name: &str) -> Result<(), CliError> {
    let db = open_database(config).await?;
    let user = user_by_email(&db, email).await?;
    tokens::revoke_token_by_name(&db, &user, name, Clock::default().now_ms()).await?;
    println!("revoked token \"{}\" of {}", name.trim(), user.email);
    Ok(())
}

/// `seed-demo --rows N`
pub async fn seed_demo(config: &Config, rows: usize) -> Result<(), CliError> {
    let db = open_database(config).await?;
    let started = std::time::Instant::now();
    let backend = crate::server::db::Backend::of_url(&config.database_url);
    let report = seed::seed_demo(&db, backend, rows, Clock::default().now_ms()).await?;
    println!(
        "seeded {} ledger rows for {} demo users over the last year in {:.1} s",
        report.rows,
        report.users,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `rotate-keys`: rewraps every stored key under KEYWARD_MASTER_KEY.
pub async fn rotate_keys(config: &Config) -> Result<(), CliError> {
    let keyring = resolve_keyring(config)?;
    let db = open_database(config).await?;
    let report = rotation::rotate_all(&db, &keyring).await?;
    let detail = format!("moved {} to {}", report.moved, keyring.current.id());
    audit::append(
        &db,
        AuditAction::KeysRotated,
        AuditEntry {
            detail: &detail,
            ..Default::default()
        },
        Clock::default().now_ms(),
    )
    .await?;
    println!(
        "rotated {} key(s) to master key {}",
        report.moved,
        keyring.current.id()
    );
    if report.remaining.is_empty() {
        println!("no keys remain on old master keys");
    }
    for (master_key_id, count) in &report.remaining {
        println!("{count} key(s) remain on master key {master_key_id}");
    }
    if !report.unreadable_user_ids.is_empty() {
        let ids: Vec<String> = report
            .unreadable_user_ids
            .iter()
            .map(i64::to_string)
            .collect();
        println!(
            "{} key(s) could not be decrypted with any configured master key (user ids: {}); \
             they were left untouched. Add the missing key to KEYWARD_OLD_MASTER_KEYS and re-run.",
            ids.len(),
            ids.join(", ")
        );
    }
    Ok(())
}

/// `prepare-assets [--quality Q]`: publishes the build in the site's pkg
/// directory under its own id and compresses it, saying what each file saves.
pub fn prepare_assets(quality: u32) -> Result<(), CliError> {
    let options = super::startup::leptos_options();
    let dir = std::path::Path::new(&*options.site_root).join(&*options.site_pkg_dir);
    let published = super::assets::prepare(&dir, quality).map_err(|source| CliError::Assets {
        dir: dir.display().to_string(),
        source,
    })?;
    let how = if published.existed {
        "found whole in place"
    } else {
        "published"
    };
    println!(
        "{}: this build's assets, {how}; pages link them now",
        published.dir.display()
    );
    for asset in published.prepared {
        println!(
            "{}: {} KB, brotli {} KB, gzip {} KB",
            asset.path.file_name().unwrap_or_default().to_string_lossy(),
            asset.bytes / 1024,
            asset.brotli / 1024,
            asset.gzip / 1024
        );
    }
    Ok(())
}

pub fn gen_master_key() {
    println!("{}", MasterKey::generate().to_base64().as_str());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_line_loses_only_the_line_ending() {
        let read = |input: &str| {
            read_password_line(input.as_bytes())
                .unwrap()
                .expose_secret()
                .to_owned()
        };
        assert_eq!(read("  spaced pass \n"), "  spaced pass ");
        assert_eq!(read("windows\r\n"), "windows");
        assert_eq!(read("no newline"), "no newline");
        assert_eq!(read("first\nsecond\n"), "first");
    }
}

//! Account operations shared by the web UI and the CLI.

use std::sync::Arc;

use secrecy::SecretString;

use super::password::{self, Verdict};
use crate::{
    error::AppError,
    server::{
        db::{
            self,
            audit::{self, AuditAction, AuditEntry},
            login_failures,
            users::{self, normalize_email, Role, UserRow},
            Db,
        },
        state::AppState,
    },
};

/// Failed logins allowed per account and per client IP within the window.
#[derive(Debug, Clone, Copy)]
pub struct LoginThrottle {
    pub max_failures: i64,
    pub window_ms: i64,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            max_failures: 10,
            window_ms: 15 * 60 * 1000,
        }
    }
}

pub fn validate_email(email: &str) -> Result<(), AppError> {
    let email = email.trim();
    let plausible = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if plausible {
        Ok(())
    } else {
        Err(AppError::Validation(
            "Enter a valid email address, like name@example.com.".into(),
        ))
    }
}

/// Creates an account from the signup page. The first account becomes admin.
#[tracing::instrument(skip(state, password), fields(email = %email))]
pub async fn signup(
    state: &AppState,
    email: &str,
    password: SecretString,
    ip: &str,
) -> Result<UserRow, AppError> {
    if !state.config.allow_signup {
        return Err(AppError::SignupClosed);
    }
    let now_ms = state.clock.now_ms();
    let user = create_user(&state.db, email, password, None, now_ms).await?;
    audit::append(
        &state.db,
        AuditAction::Signup,
        AuditEntry::own_account(user.id, ip),
        now_ms,
    )
    .await?;
    tracing::info!(
        user_id = user.id,
        admin = user.is_admin(),
        "account created"
    );
    Ok(user)
}

/// Validates and inserts an account, created at `now_ms`; `role: None`
/// means "admin if first".
pub async fn create_user(
    db: &Db,
    email: &str,
    password: SecretString,
    role: Option<Role>,
    now_ms: i64,
) -> Result<UserRow, AppError> {
    validate_email(email)?;
    password::check_policy(&password)?;
    let hash = password::hash(password).await?;
    users::insert(db, email, &hash, role, now_ms)
        .await
        .map_err(|err| {
            if db::is_unique_violation(&err) {
                // Says no more than necessary: no hint whether the account is active.
                AppError::Validation(
                    "This email cannot be used to sign up. If it is yours, log in instead.".into(),
                )
            } else {
                err.into()
            }
        })
}

/// Checks credentials with per-account and per-IP throttling. Unknown email
/// and wrong password give the same error after the same amount of work.
/// Something that is no email address at all (a password typed in the
/// wrong box, say) is refused before anything is recorded or logged.
#[tracing::instrument(skip_all)]
pub async fn login(
    state: &AppState,
    email: &str,
    password: SecretString,
    ip: &str,
) -> Result<UserRow, AppError> {
    validate_email(email)?;
    let db = &state.db;
    let email_norm = normalize_email(email);
    let now = state.clock.now_ms();
    let throttle = state.login_throttle;
    let since = now - throttle.window_ms;

    let attempt =
        login_failures::try_record_attempt(db, &email_norm, ip, now, since, throttle.max_failures)
            .await?;
    if let Err(recent) = attempt {
        let blocked_since = [
            (recent.by_email >= throttle.max_failures)
                .then_some(recent.oldest_by_email)
                .flatten(),
            (recent.by_ip >= throttle.max_failures)
                .then_some(recent.oldest_by_ip)
                .flatten(),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(now);
        let retry_after_secs = ((blocked_since + throttle.window_ms - now).max(1000) / 1000) as u64;
        audit::append(
            db,
            AuditAction::LoginThrottled,
            AuditEntry {
                detail: &email_norm,
                ip: Some(ip),
                ..Default::default()
            },
            now,
        )
        .await?;
        return Err(AppError::TooManyAttempts { retry_after_secs });
    }

    let user = users::find_by_email(db, email).await?;
    let stored_hash = match &user {
        Some(user) => user.password_hash.clone(),
        None => state.dummy_hash.as_ref().clone(),
    };
    let verdict = password::verify(password.clone(), stored_hash).await?;

    let user = match (user, verdict) {
        (Some(user), Verdict::Match { needs_rehash }) => {
            if needs_rehash {
                let hash = password::hash(password).await?;
                users::update_password_hash(db, user.id, &hash).await?;
            }
            user
        }
        (user, _) => {
            // The failure was recorded with the attempt.
            let subject = user.as_ref().map(|u| u.id);
            audit::append(
                db,
                AuditAction::LoginFailed,
                AuditEntry {
                    subject_user_id: subject,
                    detail: &email_norm,
                    ip: Some(ip),
                    ..Default::default()
                },
                now,
            )
            .await?;
            return Err(AppError::InvalidCredentials);
        }
    };
    if user.disabled {
        return Err(AppError::AccountDisabled);
    }
    login_failures::clear_for_email(db, &email_norm).await?;
    let entry = AuditEntry::own_account(user.id, ip);
    audit::append(db, AuditAction::Login, entry, now).await?;
    Ok(user)
}

/// Replaces the password after checking the current one, then ends every
/// session of the user (the caller starts a fresh one for this browser).
#[tracing::instrument(skip_all, fields(user_id = user.id))]
pub async fn change_password(
    state: &AppState,
    user: &UserRow,
    current: SecretString,
    new: SecretString,
    ip: &str,
) -> Result<(), AppError> {
    if password::verify(current, user.password_hash.clone()).await? == Verdict::Mismatch {
        return Err(AppError::Validation(
            "Your current password is not correct.".into(),
        ));
    }
    password::check_policy(&new)?;
    let hash = password::hash(new).await?;
    users::update_password_hash(&state.db, user.id, &hash).await?;
    db::sessions::delete_all_for_user(&state.db, user.id, None).await?;
    audit::append(
        &state.db,
        AuditAction::PasswordChanged,
        AuditEntry::own_account(user.id, ip),
        state.clock.now_ms(),
    )
    .await?;
    Ok(())
}

/// Disables or re-enables an account (an operator at the command line, at
/// `now_ms`), with its audit row, in one transaction. Disabling ends every
/// session at once.
pub async fn set_user_disabled(
    db: &Db,
    user_id: i64,
    disabled: bool,
    now_ms: i64,
) -> Result<bool, AppError> {
    let mut tx = db.begin().await?;
    let changed = users::set_disabled(&mut *tx, user_id, disabled).await?;
    if changed && disabled {
        db::sessions::delete_all_for_user(&mut *tx, user_id, None).await?;
    }
    let action = if disabled {
        AuditAction::UserDisabled
    } else {
        AuditAction::UserEnabled
    };
    let entry = AuditEntry {
        subject_user_id: Some(user_id),
        detail: "cli",
        ..Default::default()
    };
    audit::append(&mut *tx, action, entry, now_ms).await?;
    tx.commit().await?;
    Ok(changed)
}

/// Shared dummy hash, computed once at start-up.
pub fn new_dummy_hash() -> Arc<String> {
    Arc::new(password::dummy_hash())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_validation_accepts_real_addresses_only() {
        assert!(validate_email("ada@example.com").is_ok());
        assert!(validate_email("  Ada.L+kw@mail.example.org ").is_ok());
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@.com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad} should be refused");
        }
    }
}

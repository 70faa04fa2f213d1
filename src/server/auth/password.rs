//! Password policy and argon2id hashing (OWASP: m=19456 KiB, t=2, p=1).

use argon2::{
    password_hash::{phc::PasswordHash, PasswordHasher, PasswordVerifier},
    Algorithm, Argon2, Params, Version,
};
use secrecy::{ExposeSecret, SecretString};
use std::sync::LazyLock;
use tokio::sync::Semaphore;

use crate::error::AppError;

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 128;

const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

/// The most common passwords that satisfy the length rule; refused outright.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

fn hasher() -> Argon2<'static> {
    let params =
        Params::new(M_COST_KIB, T_COST, P_COST, None).expect("static argon2 params are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Length 8–128 characters, no composition rules, not a well-known password.
pub fn check_policy(password: &SecretString) -> Result<(), AppError> {
    let password = password.expose_secret();
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err(AppError::Validation(format!(
            "Password must be at least {MIN_LEN} characters."
        )));
    }
    if chars > MAX_LEN {
        return Err(AppError::Validation(format!(
            "Password must be at most {MAX_LEN} characters."
        )));
    }
    let lowered = password.to_lowercase();
    if COMMON_PASSWORDS.lines().any(|common| common == lowered) {
        return Err(AppError::Validation(
            "This password is too common and easy to guess. Choose another one.".into(),
        ));
    }
    Ok(())
}

/// How many argon2 computations may run at once: one per core. Each takes
/// 19 MiB and a core for tens of milliseconds, so a burst of logins or
/// signups waits its turn instead of taking 19 MiB per request (more at
/// once would not finish sooner anyway).
static HASHING: LazyLock<Semaphore> = LazyLock::new(|| {
    Semaphore::new(std::thread::available_parallelism().map_or(2, |cores| cores.get()))
});

/// Runs argon2 `work` on a blocking thread once a hashing slot is free. The
/// slot goes with the work, so a request dropped meanwhile still holds it
/// until the hash is done.
async fn with_hashing_slot<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    let slot = HASHING.acquire().await.map_err(|_| AppError::Internal)?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    })
    .await
    .map_err(|_| AppError::Internal)
}

/// Hashes on a blocking thread: argon2 takes tens of milliseconds of CPU.
pub async fn hash(password: SecretString) -> Result<String, AppError> {
    with_hashing_slot(move || {
        hasher()
            .hash_password(password.expose_secret().as_bytes())
            .map(|hash| hash.to_string())
    })
    .await?
    .map_err(|err| {
        tracing::error!(error = %err, "password hashing failed");
        AppError::Internal
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Mismatch,
    Match { needs_rehash: bool },
}

/// Verifies on a blocking thread. A malformed stored hash counts as a mismatch.
pub async fn verify(password: SecretString, stored_hash: String) -> Result<Verdict, AppError> {
    with_hashing_slot(move || {
        let Ok(parsed) = PasswordHash::new(&stored_hash) else {
            tracing::error!("stored password hash is not a PHC string");
            return Verdict::Mismatch;
        };
        if hasher()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_err()
        {
            return Verdict::Mismatch;
        }
        Verdict::Match {
            needs_rehash: !has_current_params(&parsed),
        }
    })
    .await
}

fn has_current_params(parsed: &PasswordHash) -> bool {
    let algorithm_ok = parsed.algorithm.as_str() == "argon2id";
    let params_ok = Params::try_from(parsed)
        .map(|p| p.m_cost() == M_COST_KIB && p.t_cost() == T_COST && p.p_cost() == P_COST)
        .unwrap_or(false);
    algorithm_ok && params_ok
}

/// A real hash of a random password, verified against when the email is
/// unknown so that both failure paths cost the same time.
pub fn dummy_hash() -> String {
    let random: String = (0..24)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect();
    hasher()
        .hash_password(random.as_bytes())
        .expect("hashing a random password")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn policy_enforces_length_and_common_list() {
        assert!(check_policy(&secret("short")).is_err());
        assert!(check_policy(&secret(&"x".repeat(129))).is_err());
        assert!(check_policy(&secret("password123")).is_err());
        assert!(check_policy(&secret("Password123")).is_err());
        assert!(check_policy(&secret("correct horse battery")).is_ok());
        // Counted in characters, not bytes.
        assert!(check_policy(&secret("ééééééé")).is_err());
    }

    #[tokio::test]
    async fn hashing_runs_only_with_a_slot_held() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let free_while_running = with_hashing_slot(|| HASHING.available_permits())
            .await
            .unwrap();
        assert!(free_while_running < cores, "the running hash holds a slot");
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_params_and_verify() {
        let hash = hash(secret("a long passphrase")).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let verdict = verify(secret("a long passphrase"), hash.clone())
            .await
            .unwrap();
        assert_eq!(
            verdict,
            Verdict::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            verify(secret("wrong"), hash).await.unwrap(),
            Verdict::Mismatch
        );
    }

    #[tokio::test]
    async fn weaker_params_ask_for_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 1, 1, None).unwrap(),
        )
        .hash_password(b"a long passphrase")
        .unwrap()
        .to_string();
        let verdict = verify(secret("a long passphrase"), weak).await.unwrap();
        assert_eq!(verdict, Verdict::Match { needs_rehash: true });
    }
}

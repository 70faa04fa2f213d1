//! What a pasted key must look like before we spend a network call on it.

use secrecy::{ExposeSecret, SecretString};

use crate::error::AppError;

/// Trims the pasted text and checks it is an Anthropic API key. Subscription
/// (OAuth) tokens are refused with the reason, since they cannot call the API.
pub fn check_shape(pasted: SecretString) -> Result<SecretString, AppError> {
    let key = pasted.expose_secret().trim();
    if key.is_empty() {
        return Err(AppError::Validation(
            "Paste your Anthropic API key first.".into(),
        ));
    }
    if key.starts_with("sk-ant-oat") {
        return Err(AppError::Validation(
            "This is a Claude subscription (Pro/Max) login token, not an API key. Subscriptions \
             cannot be used through the API. Create an API key in the Anthropic Console \
             (console.anthropic.com → API keys) and paste that instead."
                .into(),
        ));
    }
    let plausible = key.starts_with("sk-ant-")
        && (20..=256).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !plausible {
        return Err(AppError::Validation(
            "That does not look like an Anthropic API key. API keys start with \"sk-ant-api\"; \
             copy the whole key from the Anthropic Console."
                .into(),
        ));
    }
    Ok(SecretString::from(key.to_owned()))
}

/// The last four characters, kept in clear for display.
pub fn last4(key: &SecretString) -> String {
    let key = key.expose_secret();
    key[key.len().saturating_sub(4)..].to_owned()
}

/// How the UI shows a saved key.
pub fn mask(last4: &str) -> String {
    format!("sk-ant-…{last4}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<String, String> {
        check_shape(SecretString::from(text.to_owned()))
            .map(|k| k.expose_secret().to_owned())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn trims_and_accepts_api_keys() {
        assert_eq!(
            check("  sk-ant-api03-test-abcdefghijklm_XYZ-1234\n").unwrap(),
            "sk-ant-api03-test-abcdefghijklm_XYZ-1234"
        );
    }

    #[test]
    fn refuses_subscription_tokens_with_the_reason() {
        let err = check("sk-ant-oat01-test-abcdefghijklmnopqrstuv").unwrap_err();
        assert!(err.contains("subscription"), "{err}");
        assert!(err.contains("Anthropic Console"), "{err}");
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            "",
            "sk-proj-abcdefghijklmnopqrstuvwxyz",
            "sk-ant-short",
            "sk-ant-api03 has spaces in it",
        ] {
            assert!(check(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn masks_with_last_four() {
        let key = SecretString::from("sk-ant-api03-test-abcdefghijklWXYZ".to_owned());
        assert_eq!(mask(&last4(&key)), "sk-ant-…WXYZ");
    }
}

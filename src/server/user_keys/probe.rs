//! Checking a key with Anthropic before storing it: `GET /v1/models`.

use std::time::Duration;

use secrecy::SecretString;

use crate::server::anthropic::api_key_header;

const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    Valid,
    /// 401: Anthropic does not know this key.
    Rejected,
    /// 403: the key exists but may not use the API.
    NoPermission,
    /// Network error, timeout, 429 or 5xx: we could not tell.
    Unavailable,
}

#[tracing::instrument(skip(client, key), fields(base_url = %base_url))]
pub async fn probe_key(
    client: &reqwest::Client,
    base_url: &str,
    key: &SecretString,
) -> ProbeOutcome {
    let Some(header) = api_key_header(key) else {
        return ProbeOutcome::Rejected;
    };
    let response = client
        .get(format!("{base_url}/v1/models"))
        .header("x-api-key", header)
        .header("anthropic-version", "2023-06-01")
        .timeout(PROBE_TIMEOUT)
        .send()
        .await;
    let outcome = match response {
        Ok(response) => match response.status().as_u16() {
            200..=299 => ProbeOutcome::Valid,
            401 => ProbeOutcome::Rejected,
            403 => ProbeOutcome::NoPermission,
            _ => ProbeOutcome::Unavailable,
        },
        Err(err) => {
            tracing::warn!(error = %without_url(&err), "key probe failed to reach Anthropic");
            ProbeOutcome::Unavailable
        }
    };
    tracing::info!(?outcome, "probed a user key");
    outcome
}

/// reqwest errors print the URL; ours holds no secret, but keep logs tidy.
fn without_url(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        "could not connect".into()
    } else {
        "request failed".into()
    }
}

//! Who is calling: a personal token from `x-api-key` or
//! `Authorization: Bearer`, resolved through the principal cache.

use std::sync::Arc;

use axum::http::HeaderMap;
use secrecy::SecretString;

use super::error::GatewayError;
use crate::server::{
    db::api_tokens,
    payer::RouteError,
    routing,
    state::AppState,
    tokens::{hash_token, looks_like_token, Principal},
};

const BAD_TOKEN: &str =
    "Invalid or revoked keyward token. Create a personal token in keyward's Settings and send it as x-api-key.";

/// The token the client sent, from either header the SDKs use.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get("x-api-key") {
        return value.to_str().ok().map(str::trim);
    }
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The caller, allowed to use the gateway (a live token of an enabled user).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Arc<Principal>, GatewayError> {
    let token = presented_token(headers)
        .filter(|t| looks_like_token(t))
        .ok_or_else(|| GatewayError::authentication(BAD_TOKEN))?;
    let hash = hash_token(&SecretString::from(token.to_owned()));
    let principal = match state.principals.get(&hash) {
        Some(principal) => principal,
        None => load(state, hash).await?,
    };
    if principal.user.disabled {
        return Err(GatewayError::permission(
            "This keyward account is disabled. Ask an administrator to re-enable it.",
        ));
    }
    Ok(principal)
}

async fn load(state: &AppState, hash: [u8; 32]) -> Result<Arc<Principal>, GatewayError> {
    let epoch = state.principals.epoch();
    let hex = crate::server::tokens::hex(&hash);
    let (token_id, user) = api_tokens::find_live_by_hash(&state.db, &hex)
        .await?
        .ok_or_else(|| GatewayError::authentication(BAD_TOKEN))?;
    let route = routing::route_call(state, &user).await;
    if let Err(err @ (RouteError::Database | RouteError::DatabaseUnreachable)) = route {
        return Err(err.into());
    }
    // "Last used" moves at most once per cache lifetime, off the request path.
    let (db, now) = (state.db.clone(), state.clock.now_ms());
    state.tasks.spawn(async move {
        if let Err(err) = api_tokens::mark_used(&db, token_id, now).await {
            tracing::warn!(error = %err, "could not note a token's use");
        }
    });
    let principal = Arc::new(Principal {
        token_id,
        user,
        route: route.map(Arc::new),
    });
    state.principals.put(hash, epoch, principal.clone());
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_either_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_token(&headers), None);
        headers.insert("authorization", "Bearer kw_abc".parse().unwrap());
        assert_eq!(presented_token(&headers), Some("kw_abc"));
        headers.insert("authorization", "bearer  kw_abc ".parse().unwrap());
        assert_eq!(presented_token(&headers), Some("kw_abc"));
        headers.insert("authorization", "Basic a2V5".parse().unwrap());
        assert_eq!(presented_token(&headers), None);
        headers.insert("x-api-key", "kw_xyz".parse().unwrap());
        assert_eq!(presented_token(&headers), Some("kw_xyz"));
    }
}

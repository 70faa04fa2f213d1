//! Who is making this request: resolved once per request from the session,
//! then read by pages and server functions from the request extensions.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use tower_sessions::Session;

use super::client_ip::client_ip;
use crate::server::{
    db::{self, sessions::USER_ID_KEY, users::UserRow},
    state::AppState,
};

/// When the user authenticated (unix ms); enforces the absolute timeout.
const AUTH_AT_KEY: &str = "auth_at";
/// Sessions end this long after login, however active (idle expiry is the cookie's).
pub const ABSOLUTE_TIMEOUT_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// The logged-in user for this request, if any (inserted by `load_current_user`).
#[derive(Debug, Clone, Default)]
pub struct CurrentUser(pub Option<UserRow>);

/// The client's address: the socket peer, or what a trusted proxy forwarded.
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

/// Middleware: reads the session, drops it when expired or when the account
/// is gone or disabled, and records the user and client IP for later layers.
pub async fn load_current_user(
    State(state): State<AppState>,
    session: Session,
    mut req: Request,
    next: Next,
) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| {
            client_ip(peer.ip(), req.headers(), &state.config.trusted_proxies).to_string()
        })
        .unwrap_or_else(|| "unknown".into());
    let user = match resolve_user(&state, &session).await {
        Ok(user) => user,
        Err(err) => {
            tracing::error!(error = %err, "could not resolve the session's user");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "keyward cannot reach its database; try again shortly.",
            )
                .into_response();
        }
    };
    req.extensions_mut().insert(CurrentUser(user));
    req.extensions_mut().insert(ClientIp(ip));
    next.run(req).await
}

async fn resolve_user(state: &AppState, session: &Session) -> Result<Option<UserRow>, sqlx::Error> {
    let user_id = session.get::<i64>(USER_ID_KEY).await.ok().flatten();
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    let auth_at = session
        .get::<i64>(AUTH_AT_KEY)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    let user = db::users::find_by_id(&state.db, user_id).await?;
    let still_valid = db::now_ms() - auth_at < ABSOLUTE_TIMEOUT_MS;
    match user {
        Some(user) if still_valid && !user.disabled => Ok(Some(user)),
        _ => {
            let _ = session.flush().await;
            Ok(None)
        }
    }
}

/// Logs `user` in on this session: a fresh session id (no fixation), then the
/// user id and login time.
pub async fn start_session(
    session: &Session,
    user: &UserRow,
) -> Result<(), tower_sessions::session::Error> {
    session.cycle_id().await?;
    session.insert(USER_ID_KEY, user.id).await?;
    session.insert(AUTH_AT_KEY, db::now_ms()).await?;
    Ok(())
}

/// Logs out: ends this session and every other session of the same user.
pub async fn end_session(state: &AppState, session: &Session) -> Result<(), sqlx::Error> {
    if let Ok(Some(user_id)) = session.get::<i64>(USER_ID_KEY).await {
        db::sessions::delete_all_for_user(&state.db, user_id, None).await?;
    }
    let _ = session.flush().await;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageAccess {
    Public,
    /// Login and signup: a logged-in user is sent on to the chat.
    GuestOnly,
    User,
    Admin,
}

fn page_access(path: &str) -> PageAccess {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/admin") {
        PageAccess::Admin
    } else if under("/chat") || under("/settings") {
        PageAccess::User
    } else if path == "/login" || path == "/signup" {
        PageAccess::GuestOnly
    } else {
        PageAccess::Public
    }
}

/// Middleware for page loads (GET): access control on the server, not only
/// in the UI. Anonymous users go to `/login`; a non-admin gets the page's
/// "no access" view with HTTP 403.
pub async fn guard_pages(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != axum::http::Method::GET {
        return next.run(req).await;
    }
    let logged_in = req
        .extensions()
        .get::<CurrentUser>()
        .and_then(|u| u.0.as_ref());
    let is_admin = logged_in.is_some_and(UserRow::is_admin);
    let is_logged_in = logged_in.is_some();
    match page_access(req.uri().path()) {
        PageAccess::Public => next.run(req).await,
        PageAccess::GuestOnly if is_logged_in => Redirect::to("/chat").into_response(),
        PageAccess::GuestOnly => next.run(req).await,
        PageAccess::User | PageAccess::Admin if !is_logged_in => {
            let mut response = Redirect::to("/login").into_response();
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                "no-store".parse().expect("static header"),
            );
            response
        }
        PageAccess::Admin if !is_admin => {
            let mut response = next.run(req).await;
            *response.status_mut() = StatusCode::FORBIDDEN;
            response
        }
        PageAccess::User | PageAccess::Admin => {
            let path = req.uri().path().to_owned();
            let user_id = logged_in.map(|u| u.id).unwrap_or_default();
            let mut response = next.run(req).await;
            if !owns_conversation_page(&state, user_id, &path).await {
                *response.status_mut() = StatusCode::NOT_FOUND;
            }
            response
        }
    }
}

/// `/chat/{id}` exists only for the conversation's owner; others get 404,
/// the same as for an id that does not exist (no probing).
async fn owns_conversation_page(state: &AppState, user_id: i64, path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/chat/") else {
        return true;
    };
    let Ok(id) = rest.trim_end_matches('/').parse::<i64>() else {
        return false;
    };
    matches!(
        db::conversations::find_owned(&state.db, user_id, id).await,
        Ok(Some(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_access_matches_whole_path_segments() {
        assert_eq!(page_access("/admin"), PageAccess::Admin);
        assert_eq!(page_access("/admin/users"), PageAccess::Admin);
        assert_eq!(page_access("/administrator"), PageAccess::Public);
        assert_eq!(page_access("/chat/42"), PageAccess::User);
        assert_eq!(page_access("/chatter"), PageAccess::Public);
        assert_eq!(page_access("/settings"), PageAccess::User);
        assert_eq!(page_access("/login"), PageAccess::GuestOnly);
        assert_eq!(page_access("/"), PageAccess::Public);
    }
}

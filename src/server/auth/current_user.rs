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
            // The session stays as it is (its cookie too): it is only unread.
            tracing::error!(error = %err, "could not resolve the session's user");
            return database_unavailable_page();
        }
    };
    req.extensions_mut().insert(CurrentUser(user));
    req.extensions_mut().insert(ClientIp(ip));
    next.run(req).await
}

/// What a page request gets while the database does not answer: a short
/// page that says so and offers to try again, and `Retry-After` for clients.
fn database_unavailable_page() -> Response {
    const PAGE: &str = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
        <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
        <title>keyward is briefly unavailable</title>\
        <style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}</style>\
        </head><body><main><h1>keyward is briefly unavailable</h1>\
        <p role=\"alert\">keyward cannot reach its database right now. You are still signed in \
        and nothing was lost; try again in a few seconds.</p>\
        <p><a href=\"\">Try again</a></p></main></body></html>";
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::RETRY_AFTER, "5"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

/// Why the session's user could not be told.
#[derive(Debug, thiserror::Error)]
enum Unresolved {
    #[error("session store: {0}")]
    Store(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A session value, or nothing if it is absent or unreadable (a session
/// written by another version). A store that cannot be read (the database
/// is down) is an error, not an anonymous visitor: that would send a
/// signed-in user to the login page.
async fn session_value(session: &Session, key: &str) -> Result<Option<i64>, Unresolved> {
    use tower_sessions::{session::Error, session_store};
    match session.get::<i64>(key).await {
        Ok(value) => Ok(value),
        Err(Error::Store(session_store::Error::Backend(err))) => Err(Unresolved::Store(err)),
        Err(_) => Ok(None),
    }
}

async fn resolve_user(state: &AppState, session: &Session) -> Result<Option<UserRow>, Unresolved> {
    let Some(user_id) = session_value(session, USER_ID_KEY).await? else {
        return Ok(None);
    };
    let auth_at = session_value(session, AUTH_AT_KEY).await?.unwrap_or(0);
    let user = db::users::find_by_id(&state.db, user_id).await?;
    let still_valid = state.clock.now_ms() - auth_at < ABSOLUTE_TIMEOUT_MS;
    match user {
        Some(user) if still_valid && !user.disabled => Ok(Some(user)),
        _ => {
            let _ = session.flush().await;
            Ok(None)
        }
    }
}

/// Logs `user` in on this session: a fresh session id (no fixation), then the
/// user id and login time (`now_ms`).
pub async fn start_session(
    session: &Session,
    user: &UserRow,
    now_ms: i64,
) -> Result<(), tower_sessions::session::Error> {
    session.cycle_id().await?;
    session.insert(USER_ID_KEY, user.id).await?;
    session.insert(AUTH_AT_KEY, now_ms).await?;
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

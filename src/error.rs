//! The one error type shared by server functions, pages and (later) the gateway.
//!
//! Every variant's `Display` is a message meant for the person using keyward:
//! what went wrong and what to do. Internal details (SQL, upstream bodies) are
//! logged on the server and never reach this type.

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// Bad input; the message names the field and the rule.
    #[error("{0}")]
    Validation(String),
    /// Same message for an unknown email and a wrong password (no enumeration).
    #[error("Email or password is incorrect.")]
    InvalidCredentials,
    #[error("Too many failed login attempts. Try again in {} minute(s).", retry_after_secs.div_ceil(60).max(1))]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("Please log in to continue.")]
    Unauthenticated,
    #[error("You do not have access to this page.")]
    Forbidden,
    #[error("Not found.")]
    NotFound,
    #[error("Signup is closed on this server. Ask an administrator for an account.")]
    SignupClosed,
    #[error("This account is disabled. Ask an administrator to re-enable it.")]
    AccountDisabled,
    /// A plan limit on the platform key; the message names the limit and when it resets.
    #[error("{message}")]
    LimitReached {
        message: String,
        retry_after_secs: u64,
    },
    /// A service we depend on could not answer; nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// keyward's own database did not answer; nothing was changed.
    #[error("keyward cannot reach its database right now, so nothing was changed. Try again in a few seconds.")]
    DatabaseUnavailable,
    #[error("Something went wrong on our side. Please try again in a moment.")]
    Internal,
    /// The browser could not talk to the server (network, decoding).
    #[error("Could not reach keyward: {0}. Check your connection and try again.")]
    Transport(String),
}

impl AppError {
    /// HTTP status used when this error answers a request.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            AppError::Validation(_) => StatusCode::BAD_REQUEST,
            AppError::InvalidCredentials | AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
            AppError::TooManyAttempts { .. } | AppError::LimitReached { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            AppError::Forbidden | AppError::SignupClosed | AppError::AccountDisabled => {
                StatusCode::FORBIDDEN
            }
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Unavailable(_) | AppError::DatabaseUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Internal | AppError::Transport(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Request(msg) | ServerFnErrorErr::Response(msg) => {
                AppError::Transport(msg)
            }
            // Anything else is a bug or a malformed request: keep details out of the UI.
            _ => AppError::Internal,
        }
    }
}

#[cfg(feature = "ssr")]
impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        tracing::error!(error = %err, "database error");
        if crate::server::db::is_unreachable(&err) {
            AppError::DatabaseUnavailable
        } else {
            AppError::Internal
        }
    }
}

/// Plain axum handlers answer with the same JSON body server functions use.
#[cfg(feature = "ssr")]
impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        (self.status(), axum::Json(self)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_attempts_rounds_minutes_up() {
        let err = AppError::TooManyAttempts {
            retry_after_secs: 61,
        };
        assert_eq!(
            err.to_string(),
            "Too many failed login attempts. Try again in 2 minute(s)."
        );
        let err = AppError::TooManyAttempts {
            retry_after_secs: 0,
        };
        assert!(err.to_string().contains("in 1 minute"));
    }

    #[test]
    fn internal_errors_never_carry_details() {
        let err = AppError::from_server_fn_error(ServerFnErrorErr::ServerError(
            "SELECT * FROM users failed".into(),
        ));
        assert_eq!(err, AppError::Internal);
        assert!(!err.to_string().contains("SELECT"));
    }
}

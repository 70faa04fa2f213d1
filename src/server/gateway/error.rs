//! keyward's own gateway errors, in Anthropic's shape so SDKs raise the
//! matching exception: `{"type":"error","error":{"type":…,"message":…}}`.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

use crate::{error::AppError, server::payer::RouteError};

/// What a client is told to wait when keyward's database is down: long
/// enough not to hammer it, short enough for a restart to go unnoticed.
const DATABASE_RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl GatewayError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn authentication(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
    }

    pub fn permission(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", message)
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", message)
    }

    /// keyward itself is too busy (Anthropic's 529, which clients retry).
    pub fn overloaded(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::from_u16(529).expect("a valid status"),
            "overloaded_error",
            message,
        )
    }

    /// The body did not arrive within `secs` seconds.
    pub fn body_timeout(secs: u64) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout_error",
            format!("The request body did not arrive within {secs} s."),
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("Request exceeds the maximum allowed size of {limit} bytes."),
        )
    }

    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
        }
    }

    pub fn api_error(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, "api_error", message)
    }

    /// keyward's database did not answer: nothing was sent upstream.
    pub fn database_unavailable() -> Self {
        Self {
            retry_after_secs: Some(DATABASE_RETRY_AFTER_SECS),
            ..Self::api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                AppError::DatabaseUnavailable.to_string(),
            )
        }
    }

    pub fn internal() -> Self {
        Self::api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "keyward hit an internal error. Please try again.",
        )
    }

    pub fn body(&self) -> String {
        serde_json::json!({
            "type": "error",
            "error": { "type": self.kind, "message": self.message },
        })
        .to_string()
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body(),
        )
            .into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<AppError> for GatewayError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::LimitReached {
                message,
                retry_after_secs,
            } => Self::rate_limited(message, retry_after_secs),
            AppError::Validation(message) => Self::invalid_request(message),
            AppError::AccountDisabled | AppError::Forbidden | AppError::SignupClosed => {
                Self::permission(err.to_string())
            }
            AppError::InvalidCredentials | AppError::Unauthenticated => {
                Self::authentication(err.to_string())
            }
            AppError::TooManyAttempts { retry_after_secs } => {
                Self::rate_limited(err.to_string(), retry_after_secs)
            }
            AppError::NotFound => Self::not_found(err.to_string()),
            AppError::Unavailable(message) => Self::overloaded(message),
            AppError::DatabaseUnavailable => Self::database_unavailable(),
            // Transport is the browser's own error: the server never raises it.
            AppError::Internal | AppError::Transport(_) => Self::internal(),
        }
    }
}

impl From<RouteError> for GatewayError {
    fn from(err: RouteError) -> Self {
        match err {
            RouteError::KeyRejected => Self::authentication(
                "Anthropic rejected the API key saved in your keyward account. Update it in keyward's Settings.",
            ),
            RouteError::KeyUnreadable => Self::permission(
                "The Anthropic API key saved in your keyward account can no longer be read by this server. Re-enter it in keyward's Settings.",
            ),
            RouteError::NoPlatformKey => Self::permission(
                "This keyward server has no platform key. Add your own Anthropic API key in keyward's Settings.",
            ),
            RouteError::Database => Self::internal(),
            RouteError::DatabaseUnreachable => Self::database_unavailable(),
        }
    }
}

impl From<sqlx::Error> for GatewayError {
    fn from(err: sqlx::Error) -> Self {
        tracing::error!(error = %err, "database error in the gateway");
        if crate::server::db::is_unreachable(&err) {
            Self::database_unavailable()
        } else {
            Self::internal()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_anthropics_shape() {
        let err = GatewayError::rate_limited("slow down", 42);
        let body: serde_json::Value = serde_json::from_str(&err.body()).unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(body["error"]["message"], "slow down");
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
    }

    #[test]
    fn internal_errors_say_nothing_internal() {
        let err = GatewayError::from(AppError::Internal);
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.kind, "api_error");
    }

    #[test]
    fn a_database_outage_is_a_503_to_retry_later() {
        let err = GatewayError::from(sqlx::Error::PoolTimedOut);
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.kind, "api_error");
        assert!(err.message.contains("database"));
        assert_eq!(err.retry_after_secs, Some(DATABASE_RETRY_AFTER_SECS));
        let refused = GatewayError::from(sqlx::Error::RowNotFound);
        assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn keyward_too_busy_is_overloaded_which_clients_retry() {
        let err = GatewayError::from(AppError::Unavailable("busy".into()));
        assert_eq!(err.status.as_u16(), 529);
        assert_eq!(err.kind, "overloaded_error");
        assert_eq!(err.message, "busy");
    }
}

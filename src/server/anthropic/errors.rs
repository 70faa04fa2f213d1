//! What can go wrong upstream, and how each case is told to the user.

use super::transport::TransportError;
use http::HeaderMap;
use serde::Deserialize;

#[derive(Debug, Clone)]
pub enum UpstreamError {
    /// Anthropic answered with an error status.
    Status {
        status: u16,
        /// Anthropic's `error.type`, e.g. `overloaded_error`.
        kind: Option<String>,
        message: Option<String>,
        /// The raw error body, passed through unchanged by the gateway.
        body: bytes::Bytes,
        headers: HeaderMap,
    },
    Timeout,
    Connect,
    /// The connection dropped before `message_stop`.
    StreamCut,
    /// An `error` event inside a stream.
    StreamError {
        kind: String,
        message: String,
    },
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

impl UpstreamError {
    pub fn from_transport(err: TransportError) -> Self {
        match err {
            TransportError::Connect => UpstreamError::Connect,
            TransportError::Exchange(_) => UpstreamError::StreamCut,
        }
    }

    pub async fn from_response(response: super::UpstreamResponse) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        let detail = serde_json::from_slice::<ErrorBody>(&body)
            .ok()
            .map(|b| b.error);
        UpstreamError::Status {
            status,
            kind: detail.as_ref().and_then(|d| d.kind.clone()),
            message: detail.and_then(|d| d.message),
            body,
            headers,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            UpstreamError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The key itself was refused (401/403): mark a user's key unhealthy.
    pub fn is_key_rejection(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            UpstreamError::Status { headers, .. } => headers
                .get("retry-after")?
                .to_str()
                .ok()?
                .trim()
                .parse()
                .ok(),
            _ => None,
        }
    }

    /// Anthropic's `request-id` of the failed call, if it answered.
    pub fn request_id(&self) -> Option<String> {
        match self {
            UpstreamError::Status { headers, .. } => {
                headers.get("request-id")?.to_str().ok().map(str::to_owned)
            }
            _ => None,
        }
    }

    /// The error type for the ledger: Anthropic's, or ours for transport failures.
    pub fn error_type(&self) -> String {
        match self {
            UpstreamError::Status {
                kind: Some(kind), ..
            } => kind.clone(),
            UpstreamError::Status { status, .. } => format!("http_{status}"),
            UpstreamError::StreamError { kind, .. } => kind.clone(),
            UpstreamError::Timeout => "timeout".into(),
            UpstreamError::Connect => "connect_error".into(),
            UpstreamError::StreamCut => "stream_cut".into(),
        }
    }

    /// A short label for metrics and the ledger.
    pub fn label(&self) -> String {
        match self {
            UpstreamError::Status { status, .. } => status.to_string(),
            UpstreamError::Timeout => "timeout".into(),
            UpstreamError::Connect => "connect_error".into(),
            UpstreamError::StreamCut => "stream_cut".into(),
            UpstreamError::StreamError { kind, .. } => kind.clone(),
        }
    }

    /// What the person chatting should read. `own_key` says whether the call
    /// ran on their saved key (their problem to fix) or the platform key.
    pub fn user_message(&self, own_key: bool) -> String {
        match self {
            UpstreamError::Status { status: 401 | 403, .. } if own_key => {
                "Anthropic rejected your key — update it in Settings.".into()
            }
            UpstreamError::Status { status: 401 | 403, .. } => {
                "This server's Anthropic key was refused by Anthropic. Please tell the administrator, or add your own key in Settings.".into()
            }
            UpstreamError::Status { status: 400, message, .. } => match message {
                Some(message) => format!("Anthropic could not accept this request: {}", clip(message)),
                None => "Anthropic could not accept this request.".into(),
            },
            UpstreamError::Status { status: 404, .. } => {
                "This model is not available on Anthropic. Pick another model.".into()
            }
            UpstreamError::Status { status: 413, .. } => {
                "This conversation is too long for one request. Start a new conversation.".into()
            }
            UpstreamError::Status { status: 429, .. } => match self.retry_after_secs() {
                Some(secs) => format!("Anthropic is rate-limiting this key right now. Try again in {secs} seconds."),
                None => "Anthropic is rate-limiting this key right now. Try again in a minute.".into(),
            },
            UpstreamError::Status { status: 529, .. } | UpstreamError::StreamError { .. } if self.is_overloaded() => {
                "Anthropic is overloaded right now. Try again in a moment.".into()
            }
            UpstreamError::Status { .. } => "Anthropic had an internal error. Try again in a moment.".into(),
            UpstreamError::StreamError { .. } => "Anthropic reported an error while replying. Try again.".into(),
            UpstreamError::Timeout => "Anthropic did not answer in time. Try again.".into(),
            UpstreamError::Connect => "Could not reach Anthropic. Try again in a moment.".into(),
            UpstreamError::StreamCut => {
                "The connection to Anthropic was cut before the reply finished. The partial reply was kept; try again to get the rest.".into()
            }
        }
    }

    fn is_overloaded(&self) -> bool {
        match self {
            UpstreamError::Status { status, kind, .. } => {
                *status == 529 || kind.as_deref() == Some("overloaded_error")
            }
            UpstreamError::StreamError { kind, .. } => kind == "overloaded_error",
            _ => false,
        }
    }
}

fn clip(message: &str) -> String {
    let clipped: String = message.chars().take(300).collect();
    if clipped.len() < message.len() {
        format!("{clipped}…")
    } else {
        clipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, kind: &str) -> UpstreamError {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        UpstreamError::Status {
            status: code,
            kind: Some(kind.into()),
            message: Some("prompt is too long".into()),
            body: bytes::Bytes::new(),
            headers,
        }
    }

    #[test]
    fn every_status_gets_a_clear_message() {
        assert_eq!(
            status(401, "authentication_error").user_message(true),
            "Anthropic rejected your key — update it in Settings."
        );
        assert!(status(401, "authentication_error")
            .user_message(false)
            .contains("administrator"));
        assert!(status(400, "invalid_request_error")
            .user_message(false)
            .contains("prompt is too long"));
        assert!(status(404, "not_found_error")
            .user_message(false)
            .contains("model"));
        assert!(status(413, "request_too_large")
            .user_message(false)
            .contains("too long"));
        assert!(status(429, "rate_limit_error")
            .user_message(false)
            .contains("Try again in 7 seconds"));
        assert!(status(500, "api_error")
            .user_message(false)
            .contains("internal error"));
        assert!(status(529, "overloaded_error")
            .user_message(false)
            .contains("overloaded"));
        assert!(UpstreamError::Timeout
            .user_message(false)
            .contains("in time"));
        assert!(UpstreamError::StreamCut
            .user_message(false)
            .contains("partial reply was kept"));
        let overloaded = UpstreamError::StreamError {
            kind: "overloaded_error".into(),
            message: "Overloaded".into(),
        };
        assert!(overloaded.user_message(false).contains("overloaded"));
    }

    #[test]
    fn key_rejection_is_only_401_and_403() {
        assert!(status(401, "x").is_key_rejection());
        assert!(status(403, "x").is_key_rejection());
        assert!(!status(429, "x").is_key_rejection());
        assert!(!UpstreamError::Timeout.is_key_rejection());
    }
}

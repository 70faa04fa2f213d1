//! What can go wrong upstream, and how each case is told to the user.

use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use http::HeaderMap;
use serde::Deserialize;

use super::transport::{Causes, FailureKind, TransportError};

/// How long the body of an error answer may take to arrive.
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an error body kept (Anthropic's are a few hundred bytes).
const ERROR_BODY_CAP: usize = 64 * 1024;

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
    /// The request never left keyward: DNS, TCP or TLS failed, connecting
    /// took too long, or the URL or a header could not be built.
    Unreachable(FailureKind),
    /// The request may have reached Anthropic, but the connection failed
    /// before (or while) the answer's head arrived.
    Exchange(FailureKind),
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
            TransportError::Unreachable(kind) => UpstreamError::Unreachable(kind),
            TransportError::Exchange(kind) => UpstreamError::Exchange(kind),
        }
    }

    /// A failure while reading an answer's body. A plain cut is `StreamCut`,
    /// as callers already treat it (a partial reply is kept); a timeout or
    /// bytes that break HTTP keep their kind as `Exchange`.
    pub fn from_body_error(err: &hyper::Error) -> Self {
        let kind = FailureKind::of_exchange(err);
        tracing::warn!(kind = kind.as_str(), cause = %Causes(err), "upstream body read failed");
        match kind {
            FailureKind::Cut => UpstreamError::StreamCut,
            kind => UpstreamError::Exchange(kind),
        }
    }

    /// The error for a non-2xx answer, its body read for Anthropic's
    /// error type and message.
    pub async fn from_response(response: super::UpstreamResponse) -> Self {
        Self::from_response_within(response, ERROR_BODY_TIMEOUT).await
    }

    /// Reads at most `ERROR_BODY_CAP` of the body for at most `limit`, then
    /// keeps what arrived: a stalled or endless error body must not hold
    /// the call. Dropping the rest closes the connection.
    async fn from_response_within(mut response: super::UpstreamResponse, limit: Duration) -> Self {
        let status = response.status().as_u16();
        let headers = response.take_headers();
        let mut body = BytesMut::new();
        let mut chunks = response.bytes_stream();
        let read = async {
            while let Some(Ok(chunk)) = chunks.next().await {
                let room = ERROR_BODY_CAP - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() == ERROR_BODY_CAP {
                    break;
                }
            }
        };
        if tokio::time::timeout(limit, read).await.is_err() {
            tracing::warn!(status, kept = body.len(), "upstream error body stalled");
        }
        let body = body.freeze();
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

    /// Whether the request could have reached Anthropic (and so been billed
    /// there): false only when it never left keyward.
    pub fn reached_upstream(&self) -> bool {
        !matches!(self, UpstreamError::Unreachable(_))
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
            UpstreamError::Unreachable(kind) | UpstreamError::Exchange(kind) => {
                kind.as_str().into()
            }
            UpstreamError::StreamCut => "stream_cut".into(),
        }
    }

    /// A short label for metrics and the ledger.
    pub fn label(&self) -> String {
        match self {
            UpstreamError::Status { status, .. } => status.to_string(),
            UpstreamError::Timeout => "timeout".into(),
            UpstreamError::Unreachable(kind) | UpstreamError::Exchange(kind) => {
                kind.as_str().into()
            }
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
            UpstreamError::Unreachable(kind) => unreachable_message(*kind).into(),
            UpstreamError::Exchange(kind) => exchange_message(*kind).into(),
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

fn unreachable_message(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Dns => "Could not reach Anthropic (DNS lookup failed). Try again in a moment.",
        FailureKind::Tls => "Could not reach Anthropic (the secure connection could not be set up). Try again in a moment.",
        FailureKind::Timeout => "Could not reach Anthropic (connecting took too long). Try again in a moment.",
        FailureKind::Connect | FailureKind::Protocol | FailureKind::Cut => {
            "Could not reach Anthropic. Try again in a moment."
        }
    }
}

fn exchange_message(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Protocol => {
            "Anthropic's answer could not be understood (it was not valid HTTP). Try again."
        }
        FailureKind::Timeout => "Anthropic did not answer in time. Try again.",
        FailureKind::Tls => {
            "The secure connection to Anthropic failed before it answered. Try again."
        }
        FailureKind::Dns | FailureKind::Connect | FailureKind::Cut => {
            "The connection to Anthropic closed before it answered. Try again."
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
    fn transport_failures_keep_their_kind_and_say_whether_they_reached_upstream() {
        let dns = UpstreamError::Unreachable(FailureKind::Dns);
        assert_eq!(dns.label(), "dns_error");
        assert_eq!(dns.error_type(), "dns_error");
        assert!(dns.user_message(false).contains("DNS lookup failed"));
        assert!(!dns.reached_upstream());
        let tls = UpstreamError::Unreachable(FailureKind::Tls);
        assert!(tls.user_message(true).contains("secure connection"));
        let protocol = UpstreamError::Exchange(FailureKind::Protocol);
        assert_eq!(protocol.label(), "protocol_error");
        assert!(protocol.user_message(false).contains("not valid HTTP"));
        assert!(protocol.reached_upstream());
        assert!(UpstreamError::StreamCut.reached_upstream());
        assert!(UpstreamError::Timeout.reached_upstream());
        assert!(status(500, "api_error").reached_upstream());
    }

    #[test]
    fn key_rejection_is_only_401_and_403() {
        assert!(status(401, "x").is_key_rejection());
        assert!(status(403, "x").is_key_rejection());
        assert!(!status(429, "x").is_key_rejection());
        assert!(!UpstreamError::Timeout.is_key_rejection());
    }
}

#[cfg(test)]
mod body_tests {
    use bytes::Bytes;
    use http::Request;
    use http_body_util::Full;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;
    use crate::server::anthropic::{Transport, UpstreamResponse};

    /// A local server that answers the first request with `head_and_body`
    /// and then holds the connection open without another byte.
    async fn answer_then_stall(head_and_body: &'static [u8]) -> UpstreamResponse {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/messages", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0; 1024];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(head_and_body).await;
            while let Ok(1..) = socket.read(&mut buf).await {}
        });
        let request = Request::post(url)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        Transport::new().send(request).await.unwrap()
    }

    #[tokio::test]
    async fn a_stalled_error_body_still_gives_the_status_in_time() {
        let response = answer_then_stall(
            b"HTTP/1.1 529 Overloaded\r\ncontent-length: 100\r\nrequest-id: req_1\r\n\r\n{\"type\"",
        )
        .await;
        let read = UpstreamError::from_response_within(response, Duration::from_millis(200));
        let err = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the stalled body does not hold the error");
        assert_eq!(err.status(), Some(529));
        assert_eq!(err.request_id().as_deref(), Some("req_1"));
        assert!(matches!(&err, UpstreamError::Status { body, .. } if &body[..] == b"{\"type\""));
    }

    #[tokio::test]
    async fn a_body_cut_short_is_a_stream_cut() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/messages", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            // All of the request, so that closing sends FIN, not RST.
            let mut seen = Vec::new();
            let mut buf = [0; 1024];
            while !seen.ends_with(b"\r\n\r\n{}") {
                let Ok(n @ 1..) = socket.read(&mut buf).await else {
                    return;
                };
                seen.extend_from_slice(&buf[..n]);
            }
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{")
                .await;
        });
        let request = Request::post(url)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let response = Transport::new().send(request).await.unwrap();
        let err = response.bytes().await.unwrap_err();
        let err = UpstreamError::from_body_error(&err);
        assert!(matches!(err, UpstreamError::StreamCut), "{err:?}");
    }
}

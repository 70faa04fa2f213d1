//! Calls to `$ANTHROPIC_BASE_URL/v1/messages` on a shared connection pool.

use std::time::Duration;

use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};

use http_body_util::Full;

use super::{
    errors::UpstreamError,
    transport::{FailureKind, Transport, UpstreamResponse},
};

const USER_AGENT: &str = concat!("keyward/", env!("CARGO_PKG_VERSION"));

// Header names `http` has no constant for, and fixed values: built from a
// `&str` on each call they would be parsed and allocated every time.
static X_API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");
static ANTHROPIC_VERSION: http::HeaderName = http::HeaderName::from_static("anthropic-version");
static ANTHROPIC_BETA: http::HeaderName = http::HeaderName::from_static("anthropic-beta");
static JSON: http::HeaderValue = http::HeaderValue::from_static("application/json");
static KEYWARD_AGENT: http::HeaderValue = http::HeaderValue::from_static(USER_AGENT);

/// The API version keyward speaks when the caller does not choose one.
pub const API_VERSION: &str = "2023-06-01";

/// How long to wait for response headers. Streams answer at once; a long
/// non-streamed completion can take minutes.
const STREAM_HEADERS_TIMEOUT: Duration = Duration::from_secs(120);
pub const JSON_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest silence tolerated between two chunks of a stream (Anthropic pings
/// every few seconds).
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The key as a header value marked sensitive, so it never shows in a
/// header map's `Debug` output. `None` if it holds characters no header can.
pub fn api_key_header(key: &SecretString) -> Option<http::HeaderValue> {
    let mut value = http::HeaderValue::from_str(key.expose_secret()).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[derive(Clone)]
pub struct AnthropicClient {
    transport: Transport,
    base_url: String,
    /// `/v1/messages`, parsed once: it is on every call's path.
    messages_uri: Option<http::Uri>,
}

impl AnthropicClient {
    pub fn new(transport: Transport, base_url: impl Into<String>) -> Self {
        let base_url = base_url.into();
        let messages_uri = format!("{base_url}/v1/messages").parse().ok();
        Self {
            transport,
            base_url,
            messages_uri,
        }
    }

    /// Sends a Messages request with `body` as given (already JSON). Returns
    /// the response when the status is a success; otherwise the upstream
    /// error, with Anthropic's error type, message and headers kept.
    pub async fn post_messages(
        &self,
        key: &SecretString,
        version: &str,
        body: Bytes,
        stream: bool,
    ) -> Result<UpstreamResponse, UpstreamError> {
        self.post("/v1/messages", key, version, body, stream).await
    }

    pub async fn post(
        &self,
        path: &str,
        key: &SecretString,
        version: &str,
        body: Bytes,
        stream: bool,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let version =
            http::HeaderValue::from_str(version).map_err(|_| unbuildable("the API version"))?;
        let forwarded = ForwardedHeaders {
            version,
            beta: None,
        };
        self.post_forwarded(path, key, &forwarded, body, stream)
            .await
    }

    /// Like `post`, with the API version and beta flags a gateway client chose.
    pub async fn post_forwarded(
        &self,
        path: &str,
        key: &SecretString,
        forwarded: &ForwardedHeaders,
        body: Bytes,
        stream: bool,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let uri = match &self.messages_uri {
            Some(uri) if path == "/v1/messages" => uri.clone(),
            _ => format!("{}{path}", self.base_url)
                .parse()
                .map_err(|_| unbuildable("the URL"))?,
        };
        let mut request = http::Request::post(uri)
            .header(
                X_API_KEY.clone(),
                api_key_header(key).ok_or_else(|| unbuildable("the key header"))?,
            )
            .header(ANTHROPIC_VERSION.clone(), forwarded.version.clone())
            .header(http::header::CONTENT_TYPE, JSON.clone())
            .header(http::header::USER_AGENT, KEYWARD_AGENT.clone());
        if let Some(beta) = &forwarded.beta {
            request = request.header(ANTHROPIC_BETA.clone(), beta.clone());
        }
        let request = request
            .body(Full::new(body))
            .map_err(|_| unbuildable("the request"))?;
        let timeout = if stream {
            STREAM_HEADERS_TIMEOUT
        } else {
            JSON_TIMEOUT
        };
        let response = tokio::time::timeout(timeout, self.transport.send(request))
            .await
            .map_err(|_| UpstreamError::Timeout)?
            .map_err(UpstreamError::from_transport)?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(UpstreamError::from_response(response).await)
        }
    }
}

/// A request that could not be built never left keyward. `what` names the
/// part, never its value (one of them is the key).
fn unbuildable(what: &'static str) -> UpstreamError {
    let kind = FailureKind::Connect;
    tracing::warn!(
        kind = kind.as_str(),
        "could not build the upstream request: {what}"
    );
    UpstreamError::Unreachable(kind)
}

/// Request headers a gateway client sets that go upstream with its call.
#[derive(Debug, Clone)]
pub struct ForwardedHeaders {
    pub version: http::HeaderValue,
    pub beta: Option<http::HeaderValue>,
}

impl ForwardedHeaders {
    pub fn from_client(headers: &http::HeaderMap) -> Self {
        Self {
            version: headers
                .get(&ANTHROPIC_VERSION)
                .cloned()
                .unwrap_or_else(|| http::HeaderValue::from_static(API_VERSION)),
            beta: headers.get(&ANTHROPIC_BETA).cloned(),
        }
    }
}

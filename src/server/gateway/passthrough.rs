//! Upstream answers as the client should see them: status, body and the
//! headers SDKs read (`request-id`, `anthropic-ratelimit-*`, `retry-after`).

use axum::{
    body::Body,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use bytes::Bytes;

use super::error::GatewayError;
use crate::{model::domain::PaidBy, server::anthropic::UpstreamError};

fn passes_through(name: &str) -> bool {
    name == "request-id"
        || name == "retry-after"
        || name == "x-should-retry"
        || name.starts_with("anthropic-ratelimit-")
}

/// Moves the headers clients rely on from an upstream answer. Moved, not
/// copied: a header keyward does not know by name (all of these) costs an
/// allocation each time it is copied.
fn move_headers(from: HeaderMap, to: &mut HeaderMap) {
    // A repeated header comes as its name, then values without one.
    let mut passing = false;
    to.extend(from.into_iter().filter(|(name, _)| {
        if let Some(name) = name {
            passing = passes_through(name.as_str());
        }
        passing
    }));
}

/// A response with the upstream status and headers, and `body`.
pub fn response(
    status: StatusCode,
    upstream_headers: HeaderMap,
    content_type: &'static str,
    body: Body,
) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    move_headers(upstream_headers, headers);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// An upstream failure for the client: Anthropic's own status and body,
/// unchanged — except that a refused key says whose key it was — or
/// keyward's error when Anthropic could not be reached.
pub fn upstream_error(err: &UpstreamError, source: PaidBy) -> Response {
    match err {
        UpstreamError::Status {
            status,
            body,
            headers,
            ..
        } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = if err.is_key_rejection() {
                key_rejection_body(err, source)
            } else {
                body.clone()
            };
            response(
                status,
                headers.clone(),
                "application/json",
                Body::from(body),
            )
        }
        UpstreamError::Timeout => GatewayError::api_error(
            StatusCode::GATEWAY_TIMEOUT,
            "Anthropic did not answer in time. Please try again.",
        )
        .into_response(),
        UpstreamError::Unreachable(_)
        | UpstreamError::Exchange(_)
        | UpstreamError::StreamCut
        | UpstreamError::StreamError { .. } => GatewayError::api_error(
            StatusCode::BAD_GATEWAY,
            "keyward could not reach Anthropic. Please try again in a moment.",
        )
        .into_response(),
    }
}

fn key_rejection_body(err: &UpstreamError, source: PaidBy) -> Bytes {
    let (kind, upstream_message) = match err {
        UpstreamError::Status { kind, message, .. } => (
            kind.clone()
                .unwrap_or_else(|| "authentication_error".into()),
            message.clone().unwrap_or_default(),
        ),
        _ => ("authentication_error".into(), String::new()),
    };
    let whose = match source {
        PaidBy::OwnKey => "Anthropic rejected the API key saved in your keyward account; update it in keyward's Settings.",
        PaidBy::Platform => "Anthropic rejected this keyward server's platform key; please tell its administrator.",
    };
    let message = if upstream_message.is_empty() {
        whose.to_owned()
    } else {
        format!("{whose} (Anthropic said: {upstream_message})")
    };
    Bytes::from(
        serde_json::json!({"type": "error", "error": {"type": kind, "message": message}})
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_client_facing_headers_pass() {
        let mut upstream = HeaderMap::new();
        upstream.insert("request-id", "req_1".parse().unwrap());
        upstream.insert(
            "anthropic-ratelimit-requests-remaining",
            "9".parse().unwrap(),
        );
        upstream.insert("retry-after", "3".parse().unwrap());
        upstream.append("set-cookie", "x=y".parse().unwrap());
        upstream.append("set-cookie", "z=w".parse().unwrap());
        upstream.insert("content-length", "10".parse().unwrap());
        upstream.append("x-should-retry", "true".parse().unwrap());
        upstream.append("x-should-retry", "false".parse().unwrap());
        let mut out = HeaderMap::new();
        move_headers(upstream, &mut out);
        assert_eq!(out.len(), 5);
        assert!(out.get("set-cookie").is_none());
        assert!(out.get("content-length").is_none());
        let retry: Vec<_> = out.get_all("x-should-retry").iter().collect();
        assert_eq!(retry, ["true", "false"]);
    }

    #[test]
    fn a_rejected_user_key_says_so_and_keeps_the_status() {
        let err = UpstreamError::Status {
            status: 401,
            kind: Some("authentication_error".into()),
            message: Some("invalid x-api-key".into()),
            body: Bytes::from_static(b"{}"),
            headers: HeaderMap::new(),
        };
        let response = upstream_error(&err, PaidBy::OwnKey);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body = key_rejection_body(&err, PaidBy::OwnKey);
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("saved in your keyward account"), "{text}");
        assert!(text.contains("authentication_error"));
    }
}

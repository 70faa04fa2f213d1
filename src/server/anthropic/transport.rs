//! The HTTP client model calls go through: HTTP/1.1 over rustls (or plain
//! TCP for an `http://` base URL), with idle connections kept for reuse.
//!
//! hyper-util's pooled client runs each connection as a task of its own
//! and spawns one more task per call to put the connection back, so every
//! gateway call woke three tasks, often on both worker threads. Here the
//! caller's task drives the connection itself (`pool`), and a connection
//! whose body was read to the end goes back to the pool.
//!
//! A failure keeps its kind (`FailureKind`) and says whether the request
//! could have reached the upstream; its cause is logged once, here.
//!
//! Like the rest of keyward it never retries a call and never follows a
//! redirect (that would carry the key somewhere else). The one request it
//! sends again is one hyper hands back unwritten because its pooled
//! connection had closed: it never reached the upstream.

mod failure;
mod pool;

use std::{
    fmt::Display,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http::{header::HOST, HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;

pub use failure::{Causes, FailureKind};
use failure::{Resolver, TcpConnector};
use pool::{Exchange, Lease, Origin, Pool};

/// The most a TCP connect may take (hyper-util's own bound).
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most opening a connection may take, DNS and TLS handshake included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// The request never left keyward: no connection (bad URL, DNS, TCP,
    /// TLS, or too slow to open), or one that closed before it was written.
    Unreachable(FailureKind),
    /// The request may have been written; the connection failed before the
    /// answer's head arrived whole.
    Exchange(FailureKind),
}

impl TransportError {
    /// Logs why, once, and returns the failure.
    fn unreachable(kind: FailureKind, cause: impl Display) -> Self {
        tracing::warn!(kind = kind.as_str(), %cause, "upstream unreachable");
        Self::Unreachable(kind)
    }

    fn exchange(err: &hyper::Error) -> Self {
        let kind = FailureKind::of_exchange(err);
        tracing::warn!(kind = kind.as_str(), cause = %Causes(err), "upstream exchange failed");
        Self::Exchange(kind)
    }
}

/// The upstream client; clones share the pool.
#[derive(Clone)]
pub struct Transport(Arc<Pool>);

impl Transport {
    pub fn new() -> Self {
        Self::with_connect_timeout(CONNECT_TIMEOUT)
    }

    /// `connect_timeout` bounds opening a connection, DNS to TLS.
    fn with_connect_timeout(connect_timeout: Duration) -> Self {
        let mut http = HttpConnector::new_with_resolver(Resolver::new());
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(TCP_CONNECT_TIMEOUT));
        let https = HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(TcpConnector(http));
        Self(Pool::new(https, connect_timeout))
    }

    /// Sends `request` (absolute URI); the answer once its head has arrived.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<UpstreamResponse, TransportError> {
        let origin = Origin::of(request.uri()).ok_or_else(|| {
            TransportError::unreachable(FailureKind::Connect, "the URL is not http(s) with a host")
        })?;
        let mut request = in_origin_form(request, &origin)?;
        loop {
            let mut lease = match self.0.checkout(&origin) {
                Some(lease) => lease,
                // Boxed: opening a connection (TCP, maybe TLS) is rare and
                // its future large; unboxed it would grow every call's.
                None => Box::pin(self.0.connect(&origin)).await?,
            };
            match lease.exchange(request).await {
                Ok(response) => return Ok(UpstreamResponse::new(response, lease)),
                // The pooled connection had closed before a byte went out.
                Err(Exchange::Unsent {
                    request: unsent, ..
                }) if lease.reused => request = *unsent,
                Err(Exchange::Unsent { cause, .. }) => {
                    let cause = cause.as_ref().map(|err| Causes(err).to_string());
                    return Err(TransportError::unreachable(
                        FailureKind::Connect,
                        cause
                            .as_deref()
                            .unwrap_or("the new connection closed at once"),
                    ));
                }
                Err(Exchange::Failed(err)) => return Err(TransportError::exchange(&err)),
            }
        }
    }

    /// Idle connections still open, for the tests.
    #[cfg(test)]
    fn open_idle(&self) -> usize {
        self.0.open_idle()
    }
}

impl Default for Transport {
    fn default() -> Self {
        Self::new()
    }
}

/// HTTP/1.1 on a direct connection: the path goes on the request line and
/// the authority in `Host`.
fn in_origin_form(
    request: Request<Full<Bytes>>,
    origin: &Origin,
) -> Result<Request<Full<Bytes>>, TransportError> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().cloned();
    parts.uri = path.map_or_else(|| Uri::from_static("/"), Uri::from);
    let host = HeaderValue::from_str(origin.authority().as_str()).map_err(|_| {
        TransportError::unreachable(FailureKind::Connect, "the host is no header value")
    })?;
    parts.headers.insert(HOST, host);
    Ok(Request::from_parts(parts, body))
}

/// An upstream answer whose body has not been read yet. Dropping it closes
/// the connection mid-body, which cancels the call upstream.
pub struct UpstreamResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: UpstreamBody,
}

impl std::fmt::Debug for UpstreamResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamResponse")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl UpstreamResponse {
    fn new(response: Response<Incoming>, lease: Lease) -> Self {
        let (parts, incoming) = response.into_parts();
        Self {
            status: parts.status,
            headers: parts.headers,
            body: UpstreamBody {
                incoming,
                lease: Some(lease),
            },
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The headers, moved out (the body stays readable).
    pub fn take_headers(&mut self) -> HeaderMap {
        std::mem::take(&mut self.headers)
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes, hyper::Error> {
        let mut chunks = self.body;
        let Some(first) = chunks.next().await.transpose()? else {
            return Ok(Bytes::new());
        };
        let Some(second) = chunks.next().await.transpose()? else {
            return Ok(first);
        };
        let mut whole = BytesMut::with_capacity(first.len() + second.len());
        whole.extend_from_slice(&first);
        whole.extend_from_slice(&second);
        while let Some(chunk) = chunks.next().await.transpose()? {
            whole.extend_from_slice(&chunk);
        }
        Ok(whole.freeze())
    }

    /// The body's chunks as they arrive.
    pub fn bytes_stream(self) -> impl Stream<Item = Result<Bytes, hyper::Error>> + Send + Unpin {
        self.body
    }
}

/// A body being read, with the connection it arrives on.
struct UpstreamBody {
    incoming: Incoming,
    /// Until the body's end, when the connection goes back to the pool.
    lease: Option<Lease>,
}

impl Stream for UpstreamBody {
    type Item = Result<Bytes, hyper::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(lease) = &mut this.lease {
                lease.drive(cx);
            }
            match Pin::new(&mut this.incoming).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                    // Trailers: nothing keyward reads.
                }
                Poll::Ready(Some(Err(err))) => {
                    this.lease = None;
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(None) => {
                    if let Some(lease) = this.lease.take() {
                        lease.release();
                    }
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// A minimal HTTP/1.1 server that answers every request with `reply`
    /// and counts the connections it accepted; with `close_after_reply` it
    /// hangs up after each answer without saying so (as an idle timeout would).
    async fn upstream(close_after_reply: bool) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/messages", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0; 4096];
                    let mut seen = Vec::new();
                    while let Ok(n @ 1..) = socket.read(&mut buf).await {
                        seen.extend_from_slice(&buf[..n]);
                        // Each test request is small: a head and a 2-byte body.
                        let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        if seen.len() < end + 4 + 2 {
                            continue;
                        }
                        seen.drain(..end + 4 + 2);
                        let reply = "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n{\"a\":1}";
                        if socket.write_all(reply.as_bytes()).await.is_err() || close_after_reply {
                            break;
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    fn post(url: &str) -> Request<Full<Bytes>> {
        Request::post(url)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    }

    #[tokio::test]
    async fn a_connection_whose_body_was_read_carries_the_next_call() {
        let (url, accepted) = upstream(false).await;
        let transport = Transport::new();
        for _ in 0..3 {
            let response = transport.send(post(&url)).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(&response.bytes().await.unwrap()[..], br#"{"a":1}"#);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_midway_closes_its_connection() {
        let (url, accepted) = upstream(false).await;
        let transport = Transport::new();
        drop(transport.send(post(&url)).await.unwrap());
        let response = transport.send(post(&url)).await.unwrap();
        assert_eq!(&response.bytes().await.unwrap()[..], br#"{"a":1}"#);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_pooled_connection_the_server_closed_is_replaced() {
        let (url, accepted) = upstream(true).await;
        let transport = Transport::new();
        let first = transport.send(post(&url)).await.unwrap();
        first.bytes().await.unwrap();
        // Wait for the close to arrive, as it would during a pause between calls.
        let noticed = async {
            while transport.open_idle() > 0 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), noticed)
            .await
            .expect("the pool notices the server's close");
        let second = transport.send(post(&url)).await.unwrap();
        assert_eq!(&second.bytes().await.unwrap()[..], br#"{"a":1}"#);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/messages", listener.local_addr().unwrap());
        drop(listener);
        let err = Transport::new().send(post(&url)).await.unwrap_err();
        assert_eq!(err, TransportError::Unreachable(FailureKind::Connect));
        let err = Transport::new().send(post("ftp://x/y")).await.unwrap_err();
        assert_eq!(err, TransportError::Unreachable(FailureKind::Connect));
    }
}

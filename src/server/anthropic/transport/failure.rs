//! What kind of failure stopped an upstream call, so metrics, the ledger and
//! the person chatting can tell a DNS outage from a bad certificate or a
//! dropped connection.
//!
//! hyper-util does not export its connect error and rustls is not a crate
//! keyward depends on, so neither can be recognised by type. Instead each
//! phase marks its own failures where it runs: the resolver wraps them in
//! `DnsFailure`, the TCP connector in `TcpFailure`, and whatever else the
//! HTTPS connector returns came from the TLS handshake.

use std::{
    error::Error,
    fmt,
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use futures::{future::MapErr, TryFutureExt};
use http::Uri;
use hyper_util::{
    client::legacy::connect::{
        dns::{GaiAddrs, GaiFuture, GaiResolver, Name},
        HttpConnector,
    },
    rt::TokioIo,
};
use tokio::net::TcpStream;
use tower::Service;

type BoxError = Box<dyn Error + Send + Sync>;

/// Why an upstream call got no (whole) answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The host name did not resolve.
    Dns,
    /// No TCP connection: refused, unreachable, or nothing to dial.
    Connect,
    /// The TLS handshake failed (certificate, alert, or not TLS at all).
    Tls,
    /// Connecting, or waiting on the connection, took too long.
    Timeout,
    /// The bytes that came back were not the HTTP keyward expects.
    Protocol,
    /// The connection closed or was reset midway.
    Cut,
}

impl FailureKind {
    /// The name metrics and the ledger record.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Dns => "dns_error",
            FailureKind::Connect => "connect_error",
            FailureKind::Tls => "tls_error",
            FailureKind::Timeout => "timeout",
            FailureKind::Protocol => "protocol_error",
            FailureKind::Cut => "stream_cut",
        }
    }

    /// A failure of the connector (DNS, TCP, then TLS for https).
    pub(crate) fn of_connect(err: &(dyn Error + 'static)) -> Self {
        match err.downcast_ref::<TcpFailure>() {
            Some(tcp) => tcp.kind,
            None => FailureKind::Tls,
        }
    }

    /// A failure on an open connection: writing the request or reading
    /// the answer.
    pub(crate) fn of_exchange(err: &hyper::Error) -> Self {
        if err.is_timeout() {
            return FailureKind::Timeout;
        }
        if err.is_parse() {
            return FailureKind::Protocol;
        }
        if err.is_incomplete_message()
            || err.is_closed()
            || err.is_canceled()
            || err.is_body_write_aborted()
            || err.is_shutdown()
        {
            return FailureKind::Cut;
        }
        // Any other user error is a request hyper refused to write.
        if err.is_user() {
            return FailureKind::Protocol;
        }
        for io in causes(err).filter_map(|e| e.downcast_ref::<io::Error>()) {
            match io.kind() {
                io::ErrorKind::TimedOut => return FailureKind::Timeout,
                // hyper's chunk decoder, or rustls refusing a record: the
                // bytes broke the protocol either way (the two cannot be
                // told apart without naming rustls' error type).
                io::ErrorKind::InvalidData => return FailureKind::Protocol,
                _ => {}
            }
        }
        // Reset, aborted, broken pipe, early EOF.
        FailureKind::Cut
    }
}

fn causes<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |&e| e.source())
}

/// An error and its causes on one line, for the log. None of them holds a
/// request header (the key is only ever in one, marked sensitive): they are
/// hyper's and hyper-util's fixed descriptions, OS and resolver messages,
/// and rustls' account of the handshake.
pub struct Causes<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, cause) in causes(self.0).enumerate() {
            if i > 0 {
                f.write_str(": ")?;
            }
            write!(f, "{cause}")?;
        }
        Ok(())
    }
}

/// The system resolver, its failures marked as DNS ones.
#[derive(Clone)]
pub struct Resolver(GaiResolver);

impl Resolver {
    pub fn new() -> Self {
        Self(GaiResolver::new())
    }
}

impl Service<Name> for Resolver {
    type Response = GaiAddrs;
    type Error = DnsFailure;
    type Future = MapErr<GaiFuture, fn(io::Error) -> DnsFailure>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), DnsFailure>> {
        self.0.poll_ready(cx).map_err(DnsFailure)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        self.0.call(name).map_err(DnsFailure as fn(_) -> _)
    }
}

#[derive(Debug)]
pub struct DnsFailure(io::Error);

impl fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Error for DnsFailure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// hyper-util's TCP connector, its failures marked as happening before TLS.
#[derive(Clone)]
pub struct TcpConnector(pub HttpConnector<Resolver>);

impl Service<Uri> for TcpConnector {
    type Response = TokioIo<TcpStream>;
    type Error = TcpFailure;
    // Boxed: hyper-util's future type names its private error type.
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, TcpFailure>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TcpFailure>> {
        self.0.poll_ready(cx).map_err(TcpFailure::new)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.0.call(uri).map_err(TcpFailure::new))
    }
}

/// A failure to open the TCP connection, with its kind.
#[derive(Debug)]
pub struct TcpFailure {
    kind: FailureKind,
    cause: BoxError,
}

impl TcpFailure {
    fn new(cause: impl Into<BoxError>) -> Self {
        let cause = cause.into();
        let kind = if causes(&*cause).any(|e| e.is::<DnsFailure>()) {
            FailureKind::Dns
        } else if causes(&*cause)
            .filter_map(|e| e.downcast_ref::<io::Error>())
            .any(|io| io.kind() == io::ErrorKind::TimedOut)
        {
            // hyper-util's own connect timeout, or the kernel's.
            FailureKind::Timeout
        } else {
            FailureKind::Connect
        };
        Self { kind, cause }
    }
}

impl fmt::Display for TcpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.cause.fmt(f)
    }
}

impl Error for TcpFailure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.source()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        future::Future,
        time::{Duration, Instant},
    };

    use bytes::Bytes;
    use http::Request;
    use http_body_util::Full;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };

    use super::{super::Transport, FailureKind};
    use crate::server::anthropic::UpstreamError;

    /// A local server that hands each connection to `behave`; its URL.
    async fn serve<F, Fut>(scheme: &str, behave: F) -> String
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("{scheme}://{}/v1/messages", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(behave(socket));
            }
        });
        url
    }

    /// Reads until the test request (head and `{}` body) has arrived.
    async fn read_request(socket: &mut TcpStream) {
        let mut seen = Vec::new();
        let mut buf = [0; 1024];
        while !seen.windows(6).any(|w| w == b"\r\n\r\n{}") {
            match socket.read(&mut buf).await {
                Ok(n @ 1..) => seen.extend_from_slice(&buf[..n]),
                _ => return,
            }
        }
    }

    /// Reads and says nothing until the client hangs up.
    async fn listen_silently(socket: &mut TcpStream) {
        let mut buf = [0; 1024];
        while let Ok(1..) = socket.read(&mut buf).await {}
    }

    async fn failure(transport: &Transport, url: &str) -> UpstreamError {
        let request = Request::post(url)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        UpstreamError::from_transport(transport.send(request).await.unwrap_err())
    }

    #[tokio::test]
    async fn a_refused_connection_is_unreachable_connect() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/messages", listener.local_addr().unwrap());
        drop(listener);
        let err = failure(&Transport::new(), &url).await;
        assert!(
            matches!(err, UpstreamError::Unreachable(FailureKind::Connect)),
            "{err:?}"
        );
        assert!(!err.reached_upstream());
        assert_eq!(err.label(), "connect_error");
    }

    #[tokio::test]
    async fn an_unresolvable_host_is_unreachable_dns() {
        // `.invalid` never resolves (RFC 2606); resolvers answer at once.
        let err = failure(&Transport::new(), "http://keyward-test.invalid/v1/messages").await;
        assert!(
            matches!(err, UpstreamError::Unreachable(FailureKind::Dns)),
            "{err:?}"
        );
        assert!(!err.reached_upstream());
        assert_eq!(err.error_type(), "dns_error");
    }

    #[tokio::test]
    async fn a_tls_handshake_left_unanswered_times_out_within_the_bound() {
        let url = serve("https", |mut socket| async move {
            listen_silently(&mut socket).await;
        })
        .await;
        let started = Instant::now();
        let transport = Transport::with_connect_timeout(Duration::from_millis(200));
        let err = failure(&transport, &url).await;
        assert!(
            matches!(err, UpstreamError::Unreachable(FailureKind::Timeout)),
            "{err:?}"
        );
        assert!(!err.reached_upstream());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_server_that_does_not_speak_tls_is_unreachable_tls() {
        let url = serve("https", |mut socket| async move {
            let mut buf = [0; 1024];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        })
        .await;
        let err = failure(&Transport::new(), &url).await;
        assert!(
            matches!(err, UpstreamError::Unreachable(FailureKind::Tls)),
            "{err:?}"
        );
        assert_eq!(err.label(), "tls_error");
    }

    #[tokio::test]
    async fn an_answer_that_is_not_http_is_an_exchange_protocol_error() {
        let url = serve("http", |mut socket| async move {
            read_request(&mut socket).await;
            let _ = socket.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
            listen_silently(&mut socket).await;
        })
        .await;
        let err = failure(&Transport::new(), &url).await;
        assert!(
            matches!(err, UpstreamError::Exchange(FailureKind::Protocol)),
            "{err:?}"
        );
        assert!(err.reached_upstream());
        assert_eq!(err.label(), "protocol_error");
    }

    #[tokio::test]
    async fn a_connection_closed_after_the_request_is_an_exchange_cut() {
        let url = serve("http", |mut socket| async move {
            read_request(&mut socket).await;
        })
        .await;
        let err = failure(&Transport::new(), &url).await;
        assert!(
            matches!(err, UpstreamError::Exchange(FailureKind::Cut)),
            "{err:?}"
        );
        assert!(err.reached_upstream());
        assert_eq!(err.label(), "stream_cut");
    }
}

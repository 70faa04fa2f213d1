//! The accept loop: every connection speaks HTTP/1.1, served by hyper.
//!
//! keyward listens on plain HTTP. TLS, and HTTP/2 towards browsers, are the
//! reverse proxy's job, and proxies talk HTTP/1.1 to the app behind them;
//! browsers and the SDKs do too on a plain `http://` address. Serving
//! HTTP/1.1 alone spares every connection a dual-protocol server's sniffing
//! of its first bytes, and lets hyper close a connection whose request head
//! does not arrive in time: a slow client (or an idle keep-alive one) cannot
//! hold a connection and its buffers for ever.
//!
//! Connections are capped (`MAX_CONNECTIONS`): past the cap, new ones wait
//! in the kernel's accept queue until one closes, so a flood of idle
//! connections costs a bounded amount of memory and file descriptors, and
//! each idle one is closed at the head timeout.
//!
//! Shutdown is bounded: once asked, the loop stops taking new connections
//! (without resetting those the kernel already completed: `drain`), lets the
//! requests under way finish for up to the grace period, then drops every
//! connection still open. Dropping a connection drops its handler and
//! response body, and with them any upstream call (which records itself
//! as `stopped`).

mod drain;

use std::{
    convert::Infallible, future::Future, io, net::SocketAddr, pin::pin, sync::Arc, time::Duration,
};

use axum::{body::Body, extract::ConnectInfo, http::Request, response::Response, Router};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{net::TcpListener, sync::Semaphore, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::Service;

/// How long a client may take to send a request head, counted from the end
/// of the previous answer on a kept-alive connection.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once. Each costs a task and a few kilobytes of
/// buffers; the systemd unit raises the file-descriptor limit above this.
const MAX_CONNECTIONS: usize = 4096;

/// The accept loop's bounds.
#[derive(Clone, Copy)]
struct Bounds {
    header_read_timeout: Duration,
    grace: Duration,
    max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting, lets the connections open then finish their current request
/// for up to `grace`, and cuts the rest. Returns the grace's deadline.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Instant {
    let bounds = Bounds {
        header_read_timeout: HEADER_READ_TIMEOUT,
        grace,
        max_connections: MAX_CONNECTIONS,
    };
    serve_with(listener, router, shutdown, bounds).await
}

async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
    bounds: Bounds,
) -> Instant {
    let connections = GracefulShutdown::new();
    let tracker = TaskTracker::new();
    let cut = CancellationToken::new();
    let places = Arc::new(Semaphore::new(bounds.max_connections));
    let mut shutdown = pin!(shutdown);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(bounds.header_read_timeout);
    let serve_one = |tcp: tokio::net::TcpStream, peer: SocketAddr, place| {
        // Small writes (stream events, response heads) go out at once instead
        // of waiting on Nagle's algorithm and the peer's delayed ACK.
        let _ = tcp.set_nodelay(true);
        let connection = http.serve_connection(TokioIo::new(tcp), routed(&router, peer));
        let connection = connections.watch(connection);
        let cut = cut.clone();
        tracker.spawn(async move {
            tokio::select! {
                ended = connection => if let Err(err) = ended {
                    tracing::debug!(error = %err, %peer, "connection ended with an error");
                },
                () = cut.cancelled() => {}
            }
            drop(place);
        });
    };
    loop {
        let place = tokio::select! {
            place = places.clone().acquire_owned() => place.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((tcp, peer)) => serve_one(tcp, peer, Some(place)),
            Err(err) => pause_after(err).await,
        }
    }
    match drain::ignore_new_connections(&listener) {
        Ok(()) => {
            // What the kernel still completes is served (briefly past the
            // connection cap), then given time to send its request: a
            // connection that has sent nothing when the graceful shutdown
            // starts is closed unread.
            let until = Instant::now() + drain::DRAIN;
            while let Ok(accepted) = tokio::time::timeout_at(until, listener.accept()).await {
                if let Ok((tcp, peer)) = accepted {
                    serve_one(tcp, peer, places.clone().try_acquire_owned().ok());
                }
            }
            tokio::time::sleep(drain::FIRST_REQUEST).await;
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not filter new connections off the listener")
        }
    }
    drop(listener);
    let grace = bounds.grace;
    let deadline = Instant::now() + grace;
    if tokio::time::timeout_at(deadline, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs_f64(),
            "shutdown grace over: cutting the connections still open"
        );
        cut.cancel();
    }
    tracker.close();
    tracker.wait().await;
    deadline
}

/// The connection's service: each request goes to the router with the
/// client's socket address (`ConnectInfo`, as axum's own server sets it).
fn routed(
    router: &Router,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response,
    Error = Infallible,
    Future = impl Future<Output = Result<Response, Infallible>> + Send,
> + Clone {
    let router = router.clone();
    service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().call(request.map(Body::new))
    })
}

/// An accept that failed because the client gave up is nothing to note.
/// Anything else (out of file descriptors, most likely) is logged, and the
/// loop waits a moment for connections to close rather than spin.
async fn pause_after(err: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "cannot accept a connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
        sync::{mpsc, oneshot},
    };

    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    struct TestServer {
        addr: SocketAddr,
        stop: oneshot::Sender<()>,
        /// A message each time `/slow` or `/never` has begun.
        slow_started: mpsc::UnboundedReceiver<()>,
    }

    /// A server whose `/peer` answers with the client address it was given,
    /// whose `/slow` takes a moment and whose `/never` never answers.
    async fn start(header_read_timeout: Duration) -> TestServer {
        start_with(Bounds {
            header_read_timeout,
            grace: LIMIT,
            max_connections: MAX_CONNECTIONS,
        })
        .await
    }

    async fn start_with_grace(header_read_timeout: Duration, grace: Duration) -> TestServer {
        start_with(Bounds {
            header_read_timeout,
            grace,
            max_connections: MAX_CONNECTIONS,
        })
        .await
    }

    async fn start_with(bounds: Bounds) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (started, slow_started) = mpsc::unbounded_channel();
        let never_started = started.clone();
        let router = Router::new()
            .route(
                "/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            )
            .route(
                "/slow",
                get(move || async move {
                    let _ = started.send(());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    "done"
                }),
            )
            .route(
                "/never",
                get(move || async move {
                    let _ = never_started.send(());
                    std::future::pending::<&'static str>().await
                }),
            );
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        tokio::spawn(serve_with(listener, router, shutdown, bounds));
        TestServer {
            addr,
            stop,
            slow_started,
        }
    }

    /// Everything the server sends until it closes the connection.
    async fn read_to_close(socket: &mut TcpStream) -> String {
        let mut answer = Vec::new();
        tokio::time::timeout(LIMIT, socket.read_to_end(&mut answer))
            .await
            .expect("the server closes the connection")
            .unwrap();
        String::from_utf8(answer).unwrap()
    }

    #[tokio::test]
    async fn handlers_see_the_client_socket_address() {
        let server = start(LIMIT).await;
        let mut socket = TcpStream::connect(server.addr).await.unwrap();
        let client = socket.local_addr().unwrap();
        socket
            .write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_to_close(&mut socket).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(&client.to_string()), "{answer}");
    }

    #[tokio::test]
    async fn a_request_head_that_never_ends_loses_its_connection() {
        let server = start(Duration::from_millis(200)).await;
        let mut socket = TcpStream::connect(server.addr).await.unwrap();
        socket
            .write_all(b"GET /peer HTTP/1.1\r\nhost:")
            .await
            .unwrap();
        let answer = read_to_close(&mut socket).await;
        assert!(!answer.contains("200"), "{answer}");
    }

    #[tokio::test]
    async fn shutdown_finishes_the_request_under_way_and_stops_accepting() {
        let mut server = start(LIMIT).await;
        let mut socket = TcpStream::connect(server.addr).await.unwrap();
        socket
            .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        server.slow_started.recv().await.unwrap();
        server.stop.send(()).unwrap();
        // Kept alive by default, yet closed once its answer is out.
        let answer = read_to_close(&mut socket).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        let closed = async {
            while TcpStream::connect(server.addr).await.is_ok() {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(LIMIT, closed)
            .await
            .expect("the listener closes");
    }

    #[tokio::test]
    async fn shutdown_cuts_a_request_that_outlives_the_grace() {
        let grace = Duration::from_millis(300);
        let mut server = start_with_grace(LIMIT, grace).await;
        let mut socket = TcpStream::connect(server.addr).await.unwrap();
        socket
            .write_all(b"GET /never HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        server.slow_started.recv().await.unwrap();
        let asked = std::time::Instant::now();
        server.stop.send(()).unwrap();
        let answer = read_to_close(&mut socket).await;
        assert!(answer.is_empty(), "cut without an answer: {answer}");
        let waited = asked.elapsed();
        assert!(waited >= grace, "the request had its grace: {waited:?}");
        assert!(waited < LIMIT, "and no more: {waited:?}");
    }

    #[tokio::test]
    async fn past_the_cap_a_connection_waits_for_one_to_close() {
        let server = start_with(Bounds {
            header_read_timeout: LIMIT,
            grace: LIMIT,
            max_connections: 1,
        })
        .await;
        let idle = TcpStream::connect(server.addr).await.unwrap();
        let mut waiting = TcpStream::connect(server.addr).await.unwrap();
        waiting
            .write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 1];
        let early =
            tokio::time::timeout(Duration::from_millis(300), waiting.read(&mut first)).await;
        assert!(early.is_err(), "not served while the only place is taken");
        drop(idle);
        let answer = read_to_close(&mut waiting).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test]
    async fn shutdown_ignores_new_connection_attempts_then_refuses_them() {
        let server = start(LIMIT).await;
        server.stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let attempt = tokio::time::timeout(
            drain::DRAIN - Duration::from_millis(30),
            TcpStream::connect(server.addr),
        )
        .await;
        assert!(
            attempt.is_err(),
            "while draining, an attempt is neither taken nor refused: {attempt:?}"
        );
        let later = tokio::time::timeout(LIMIT, TcpStream::connect(server.addr))
            .await
            .expect("answered once the listener is closed");
        assert!(later.is_err(), "then refused, so a proxy tries elsewhere");
    }
}

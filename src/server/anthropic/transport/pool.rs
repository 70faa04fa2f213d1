//! HTTP/1.1 connections to the upstream and the idle ones kept for reuse.
//!
//! A connection is driven by whoever holds it: the caller's task polls it
//! while it waits for the answer's head and while it reads the body. An
//! idle connection in the pool is polled by nobody, so before it is reused
//! one poll with a no-op waker reads any close the server sent meanwhile.

use std::{
    future::{poll_fn, Future},
    pin::{pin, Pin},
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{uri::Authority, Request, Response, Uri};
use http_body_util::Full;
use hyper::{
    body::Incoming,
    client::conn::http1::{self, Connection, SendRequest},
};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::ServiceExt;

use super::{
    failure::{Causes, FailureKind, TcpConnector},
    TransportError,
};

/// Idle connections older than this are closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// At most this many idle connections are kept (the oldest go first).
const MAX_IDLE: usize = 256;

type Io = MaybeHttpsStream<TokioIo<TcpStream>>;

/// Scheme and authority: which connections can carry a request.
#[derive(Clone, PartialEq, Eq)]
pub struct Origin {
    https: bool,
    authority: Authority,
}

impl Origin {
    pub fn of(uri: &Uri) -> Option<Self> {
        let https = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        Some(Self {
            https,
            authority: uri.authority()?.clone(),
        })
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Where the connector dials: the origin's root.
    fn uri(&self) -> Option<Uri> {
        Uri::builder()
            .scheme(if self.https { "https" } else { "http" })
            .authority(self.authority.clone())
            .path_and_query("/")
            .build()
            .ok()
    }
}

/// The request half of a connection and the state machine that drives it.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: Connection<Io, Full<Bytes>>,
    closed: bool,
}

impl Conn {
    /// Lets the connection read and write what it can; true once it closed.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.closed && Pin::new(&mut self.driver).poll(cx).is_ready() {
            self.closed = true;
        }
        self.closed
    }

    fn is_open(&mut self) -> bool {
        !self.drive(&mut Context::from_waker(Waker::noop())) && !self.sender.is_closed()
    }
}

struct Idle {
    origin: Origin,
    conn: Box<Conn>,
    since: Instant,
}

pub struct Pool {
    connector: HttpsConnector<TcpConnector>,
    /// The most opening a connection may take: DNS, TCP and TLS together.
    connect_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
}

/// How an exchange on a connection failed.
pub enum Exchange {
    /// Nothing was written: the request comes back and can go elsewhere.
    Unsent {
        request: Box<Request<Full<Bytes>>>,
        /// Why, when hyper said.
        cause: Option<hyper::Error>,
    },
    Failed(hyper::Error),
}

impl Pool {
    pub fn new(connector: HttpsConnector<TcpConnector>, connect_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            connector,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The newest idle connection to `origin` that is still open.
    pub fn checkout(self: &Arc<Self>, origin: &Origin) -> Option<Lease> {
        loop {
            let idle = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let newest = idle.iter().rposition(|i| i.origin == *origin)?;
                idle.remove(newest)
            };
            let mut conn = idle.conn;
            if idle.since.elapsed() < IDLE_TIMEOUT && conn.is_open() {
                return Some(self.lease(idle.origin, conn, true));
            }
        }
    }

    /// A new connection to `origin` (TCP, and TLS for https).
    pub async fn connect(self: &Arc<Self>, origin: &Origin) -> Result<Lease, TransportError> {
        let uri = origin
            .uri()
            .ok_or_else(|| TransportError::unreachable(FailureKind::Connect, "no URI to dial"))?;
        let opening = async {
            let io = self.connector.clone().oneshot(uri).await.map_err(|err| {
                TransportError::unreachable(FailureKind::of_connect(&*err), Causes(&*err))
            })?;
            // No I/O happens here; a failure would be hyper refusing the stream.
            http1::handshake(io).await.map_err(|err| {
                TransportError::unreachable(FailureKind::of_exchange(&err), Causes(&err))
            })
        };
        // hyper-util bounds TCP alone; without this a silent TLS server (or
        // a resolver that never answers) would hold the call until the
        // caller's own, much longer, timeout.
        let (sender, driver) = tokio::time::timeout(self.connect_timeout, opening)
            .await
            .map_err(|_| {
                TransportError::unreachable(
                    FailureKind::Timeout,
                    format_args!("connecting took over {:?}", self.connect_timeout),
                )
            })??;
        let conn = Box::new(Conn {
            sender,
            driver,
            closed: false,
        });
        Ok(self.lease(origin.clone(), conn, false))
    }

    fn lease(self: &Arc<Self>, origin: Origin, conn: Box<Conn>, reused: bool) -> Lease {
        Lease {
            pool: self.clone(),
            origin,
            conn,
            reused,
        }
    }

    fn put_back(&self, origin: Origin, conn: Box<Conn>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // The oldest are at the front: drop the expired, and one over the cap.
        let expired = idle
            .iter()
            .take_while(|i| i.since.elapsed() >= IDLE_TIMEOUT)
            .count();
        idle.drain(..expired);
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle {
            origin,
            conn,
            since: Instant::now(),
        });
    }

    #[cfg(test)]
    pub fn open_idle(&self) -> usize {
        let mut idle = self.idle.lock().unwrap();
        idle.iter_mut()
            .filter_map(|i| i.conn.is_open().then_some(()))
            .count()
    }
}

/// A connection in use. Dropping it closes the connection (which cancels
/// a call upstream); `release` puts it back in the pool instead.
pub struct Lease {
    pool: Arc<Pool>,
    origin: Origin,
    /// Boxed: a connection is about 2 KB (hyper's state and, for https,
    /// rustls'), and a lease moves from pool to call to body and back.
    conn: Box<Conn>,
    /// Taken from the pool rather than opened for this request.
    pub reused: bool,
}

impl Lease {
    /// Sends `request` and waits for the answer's head, driving the connection.
    pub async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, Exchange> {
        let conn = &mut self.conn;
        let ready = poll_fn(|cx| {
            if conn.drive(cx) {
                return Poll::Ready(Err(None));
            }
            conn.sender.poll_ready(cx).map_err(Some)
        })
        .await;
        if let Err(cause) = ready {
            return Err(Exchange::Unsent {
                request: Box::new(request),
                cause,
            });
        }
        let mut answer = pin!(conn.sender.try_send_request(request));
        poll_fn(|cx| {
            conn.drive(cx);
            answer.as_mut().poll(cx)
        })
        .await
        .map_err(|mut err| match err.take_message() {
            Some(request) => Exchange::Unsent {
                request: Box::new(request),
                cause: Some(err.into_error()),
            },
            None => Exchange::Failed(err.into_error()),
        })
    }

    /// Drives the connection while a body is read from it.
    pub fn drive(&mut self, cx: &mut Context<'_>) {
        self.conn.drive(cx);
    }

    /// The body was read to its end: the connection can carry another call.
    pub fn release(mut self) {
        if self.conn.is_open() {
            self.pool.put_back(self.origin, self.conn);
        }
    }
}

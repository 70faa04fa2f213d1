//! The HTTP client model calls go through: hyper's pooled HTTP/1.1 client
//! over rustls, used directly. Every gateway request makes one upstream
//! call, and reqwest's extra layers (URL re-parsing of each response, a
//! connector clone, redirect and retry machinery keyward turns off anyway)
//! cost a measurable share of the gateway's CPU time.
//!
//! Like the rest of keyward it never retries a call and never follows a
//! redirect (that would carry the key somewhere else).

use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A pooled client; clones share the pool.
#[derive(Clone)]
pub struct Transport(Client<HttpsConnector<HttpConnector>, Full<Bytes>>);

impl Transport {
    pub fn new() -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(https);
        Self(client)
    }

    /// Sends `request`; the answer once its head has arrived.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<UpstreamResponse, hyper_util::client::legacy::Error> {
        self.0.request(request).await.map(UpstreamResponse)
    }
}

impl Default for Transport {
    fn default() -> Self {
        Self::new()
    }
}

/// An upstream answer whose body has not been read yet. Dropping it closes
/// the connection mid-body, which cancels the call upstream.
#[derive(Debug)]
pub struct UpstreamResponse(Response<Incoming>);

impl UpstreamResponse {
    pub fn status(&self) -> StatusCode {
        self.0.status()
    }

    pub fn headers(&self) -> &HeaderMap {
        self.0.headers()
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes, hyper::Error> {
        Ok(self.0.into_body().collect().await?.to_bytes())
    }

    /// The body's chunks as they arrive.
    pub fn bytes_stream(self) -> impl Stream<Item = Result<Bytes, hyper::Error>> + Send + Unpin {
        BodyDataStream::new(self.0.into_body())
    }
}

//! A gateway call whose ledger row is still owed. However the call ends —
//! answered, failed, or dropped midway because the client hung up and the
//! server dropped its handler or response body — it records exactly one
//! ledger row, so the handler needs no task of its own to stay accountable.

use std::time::Instant;

use axum::response::Response;
use secrecy::SecretString;

use super::passthrough;
use crate::server::{
    accounting::{CallEnd, CallInFlight, CallReport},
    anthropic::UpstreamError,
    state::AppState,
};

pub struct OpenCall {
    state: AppState,
    /// `None` once the row is recorded.
    call: Option<CallInFlight>,
    /// What has been seen of the call so far.
    pub report: CallReport,
}

impl OpenCall {
    pub fn new(state: AppState, call: CallInFlight) -> Self {
        Self {
            state,
            call: Some(call),
            report: CallReport::default(),
        }
    }

    fn call(&self) -> &CallInFlight {
        self.call
            .as_ref()
            .expect("an open call holds its call until it ends")
    }

    /// The key the call goes upstream on.
    pub fn secret(&self) -> &SecretString {
        &self.call().routed.secret
    }

    pub fn started_at(&self) -> Instant {
        self.call().started_at
    }

    /// Ends the call: a failure is logged and a key Anthropic refused is
    /// marked first, then the row is queued.
    pub async fn end(mut self, end: CallEnd) {
        if let CallEnd::Failed(err) = &end {
            self.call().note_failure(&self.state, err).await;
        }
        self.record(&end);
    }

    /// Ends a call that failed before its answer began, and gives the
    /// client's response for it (sent only after a rejected key is marked,
    /// so the client's next call is already refused up front).
    pub async fn fail(mut self, err: UpstreamError) -> Response {
        let response = passthrough::upstream_error(&err, self.call().routed.source);
        if self.report.request_id.is_none() {
            self.report.request_id = err.request_id();
        }
        self.end(CallEnd::Failed(err)).await;
        response
    }

    fn record(&mut self, end: &CallEnd) {
        if let Some(call) = self.call.take() {
            call.record(&self.state, end, std::mem::take(&mut self.report));
        }
    }
}

impl Drop for OpenCall {
    /// Dropped before it ended: the client went away mid-call.
    fn drop(&mut self) {
        self.record(&CallEnd::Stopped);
    }
}

//! The end of every upstream call, for chat turns and gateway requests
//! alike: settle or release what was held for it, write the one ledger row,
//! count the metric, and note a user key that was used or rejected.

mod writer;

use std::time::Instant;

pub use writer::{LedgerJob, LedgerSlot, LedgerWriter};

use crate::{
    model::models::{self, TokenCounts},
    server::{
        anthropic::{UpstreamError, Usage},
        db::ledger::LedgerRow,
        limits::Hold,
        routing::{self, RoutedKey},
        state::AppState,
    },
};

/// How an upstream call ended.
#[derive(Debug)]
pub enum CallEnd {
    Complete,
    /// The client went away (Stop, closed tab, dropped connection).
    Stopped,
    Failed(UpstreamError),
}

impl CallEnd {
    /// The status recorded in the ledger and the metrics.
    pub fn label(&self) -> String {
        match self {
            CallEnd::Complete => "200".into(),
            CallEnd::Stopped => "stopped".into(),
            CallEnd::Failed(err) => err.label(),
        }
    }
}

/// Who made a call, and for what.
#[derive(Debug, Clone, Default)]
pub struct CallOrigin {
    pub user_id: i64,
    pub token_id: Option<i64>,
    pub conversation_id: Option<i64>,
    pub message_id: Option<i64>,
}

/// What was seen of one upstream call.
#[derive(Debug, Default)]
pub struct CallReport {
    pub usage: Usage,
    pub ttft_ms: Option<i64>,
    pub request_id: Option<String>,
}

/// The bill for a call.
#[derive(Debug, Clone, Copy)]
pub struct Billed {
    pub tokens: TokenCounts,
    pub cost_micro_usd: i64,
}

/// One call in flight: everything needed to account for it when it ends.
#[derive(Debug)]
pub struct CallInFlight {
    /// Shared with the token cache on the gateway (no copy of the key per call).
    pub routed: std::sync::Arc<RoutedKey>,
    /// What `limits::reserve_call` held for the call.
    pub hold: Option<Hold>,
    pub origin: CallOrigin,
    pub model: String,
    pub started_at: Instant,
    /// Released once the call's ledger row is committed.
    pub slot: LedgerSlot,
}

impl CallInFlight {
    /// Logs a failed call and marks a user key Anthropic refused. Call it
    /// before the caller is told, so their next call already sees the mark.
    pub async fn note_failure(&self, state: &AppState, err: &UpstreamError) {
        tracing::warn!(error = %err.label(), source = self.routed.source.as_str(), "upstream call failed");
        if err.is_key_rejection() {
            routing::note_key_rejection(state, &self.routed).await;
        }
    }

    /// Records the call's end; returns once its ledger row is committed.
    /// Failures must have gone through `note_failure` first.
    pub async fn finish(self, state: &AppState, end: &CallEnd, report: CallReport) -> Billed {
        let (job, slot, billed) = self.settle(state, end, report);
        state.ledger.write(job, slot).await;
        billed
    }

    /// Records the call's end and queues its ledger row without waiting for
    /// the commit (it never blocks, so it also serves a call dropped midway).
    pub fn record(self, state: &AppState, end: &CallEnd, report: CallReport) -> Billed {
        let (job, slot, billed) = self.settle(state, end, report);
        state.ledger.submit(job, slot);
        billed
    }

    /// The metric, the bill and the ledger job for the call's end.
    fn settle(
        self,
        state: &AppState,
        end: &CallEnd,
        report: CallReport,
    ) -> (LedgerJob, LedgerSlot, Billed) {
        let source = self.routed.source.as_str();
        let label = end.label();
        state.metrics.record_upstream(source, &label);
        let usage = &report.usage;
        let tokens = TokenCounts {
            input: usage.input_tokens,
            output: usage.output_tokens,
            cache_creation: usage.cache_creation_input_tokens,
            cache_read: usage.cache_read_input_tokens,
        };
        let cost_micro_usd = models::cost_micro_usd(&self.model, tokens) as i64;
        let served = matches!(end, CallEnd::Complete | CallEnd::Stopped);
        let row = LedgerRow {
            at: state.clock.now_ms(),
            user_id: self.origin.user_id,
            conversation_id: self.origin.conversation_id,
            message_id: self.origin.message_id,
            token_id: self.origin.token_id,
            key_source: source,
            model: self.model,
            input_tokens: tokens.input as i64,
            output_tokens: tokens.output as i64,
            cache_creation_tokens: tokens.cache_creation as i64,
            cache_read_tokens: tokens.cache_read as i64,
            cost_micro_usd,
            status: label,
            error_type: match end {
                CallEnd::Failed(err) => Some(err.error_type()),
                _ => None,
            },
            latency_ms: self.started_at.elapsed().as_millis() as i64,
            ttft_ms: report.ttft_ms,
            request_id: report.request_id,
        };
        let job = LedgerJob {
            row,
            hold: self.hold,
            used_key_id: self.routed.user_key_id.filter(|_| served),
        };
        let billed = Billed {
            tokens,
            cost_micro_usd,
        };
        (job, self.slot, billed)
    }
}

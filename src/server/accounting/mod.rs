//! The end of every upstream call, for chat turns and gateway requests
//! alike: what it is billed, the one ledger row, the metric, and a user
//! key that was used or rejected. `server::calls` decides when; this
//! module decides what is written.

mod admit;
mod connection;
mod handle;
pub mod leases;
mod settle;
mod slots;
mod work;
mod writer;

use std::time::Instant;

pub use handle::{LedgerWriter, ReserveError, Reserved};
pub use slots::{LedgerSlot, SlotsBusy};
pub use work::LedgerJob;

use crate::{
    model::models::{self, TokenCounts},
    server::{
        anthropic::UpstreamError, calls::meter::Observed, db::ledger::LedgerRow, limits::Hold,
        payer::RoutedKey,
    },
};

/// How an upstream call ended.
#[derive(Debug)]
pub enum CallEnd {
    Complete,
    /// The client went away (Stop, closed tab, dropped connection), or
    /// shutdown cut the call.
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
    /// The client's session, for grouping (Claude Code's session id).
    pub client_session: Option<String>,
    /// The agent within it (Claude Code's agent id).
    pub client_agent: Option<String>,
}

/// The bill for a call.
#[derive(Debug, Clone, Copy)]
pub struct Billed {
    pub tokens: TokenCounts,
    pub cost_micro_usd: i64,
}

/// One call as admitted, at its end.
pub struct CallRecord<'a> {
    pub routed: &'a RoutedKey,
    pub hold: Option<Hold>,
    pub origin: CallOrigin,
    pub model: String,
    pub started_at: Instant,
    /// When it ended (by the clock limits use): the ledger row's time.
    pub ended_at_ms: i64,
    /// `false` when the transport never got the request out of keyward.
    pub reached_upstream: bool,
    /// For a JSON call, its `max_tokens`: a reply whose usage never came
    /// (the client left while Anthropic was still writing it) may have
    /// used all of it, and nothing was relayed to tell otherwise.
    pub output_if_unreported: Option<i64>,
}

/// The tokens a call is billed for. What Anthropic reported stands; where
/// the report never came (the stream was cut by either side, the client
/// left, shutdown), the input is at least the estimate and the output at
/// least what was relayed (a JSON call: its `max_tokens`). An answer that
/// was an error status bills what it reported (nothing), and a call that
/// never left keyward bills nothing.
pub fn billed_tokens(
    observed: &Observed,
    end: &CallEnd,
    reached_upstream: bool,
    input_estimate: impl FnOnce() -> i64,
    output_if_unreported: Option<i64>,
) -> TokenCounts {
    if !reached_upstream {
        return TokenCounts::default();
    }
    let mut tokens = observed.usage.token_counts();
    if matches!(end, CallEnd::Failed(UpstreamError::Status { .. })) {
        return tokens;
    }
    if !observed.input_reported {
        tokens.input = tokens.input.max(input_estimate().max(0) as u64);
    }
    if !observed.final_usage {
        let floor = observed
            .relayed
            .tokens()
            .max(output_if_unreported.unwrap_or(0));
        tokens.output = tokens.output.max(floor.max(0) as u64);
    }
    tokens
}

/// The bill and the ledger job for a call's end.
pub fn bill(
    call: CallRecord<'_>,
    end: &CallEnd,
    observed: Observed,
    input_estimate: impl FnOnce() -> i64,
) -> (LedgerJob, Billed) {
    let paid_by = call.routed.paid_by();
    let label = end.label();
    let tokens = billed_tokens(
        &observed,
        end,
        call.reached_upstream,
        input_estimate,
        call.output_if_unreported,
    );
    let cost_micro_usd =
        i64::try_from(models::cost_micro_usd(&call.model, tokens)).unwrap_or(i64::MAX);
    let saved_micro_usd = crate::model::prices::caching_saved_micro_usd(&call.model, tokens);
    let served = matches!(end, CallEnd::Complete | CallEnd::Stopped);
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let row = LedgerRow {
        at: call.ended_at_ms,
        user_id: call.origin.user_id,
        conversation_id: call.origin.conversation_id,
        message_id: call.origin.message_id,
        token_id: call.origin.token_id,
        paid_by,
        model: call.model,
        input_tokens: as_i64(tokens.input),
        output_tokens: as_i64(tokens.output),
        cache_creation_tokens: as_i64(tokens.cache_creation + tokens.cache_creation_1h),
        cache_read_tokens: as_i64(tokens.cache_read),
        cost_micro_usd,
        status: label,
        error_type: match end {
            CallEnd::Failed(err) => Some(err.error_type()),
            _ => None,
        },
        latency_ms: call.started_at.elapsed().as_millis() as i64,
        ttft_ms: observed.ttft_ms,
        request_id: observed.request_id,
        reached_upstream: call.reached_upstream,
        server_tool_uses: as_i64(tokens.web_search_requests),
        client_session: call.origin.client_session,
        client_agent: call.origin.client_agent,
        call_id: Some(crate::server::db::reservations::new_id()),
        saved_micro_usd,
    };
    let job = LedgerJob {
        row,
        hold: call.hold,
        used_key_id: call.routed.own_key_id().filter(|_| served),
    };
    let billed = Billed {
        tokens,
        cost_micro_usd,
    };
    (job, billed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{anthropic::Usage, calls::estimate::TextBytes};

    fn cut_after(relayed: &str) -> Observed {
        Observed {
            usage: Usage {
                input_tokens: 20,
                output_tokens: 1,
                ..Usage::default()
            },
            input_reported: true,
            relayed: TextBytes::of(relayed),
            ..Observed::default()
        }
    }

    #[test]
    fn a_cut_stream_bills_at_least_the_text_it_relayed() {
        let observed = cut_after(&"word ".repeat(300));
        let tokens = billed_tokens(&observed, &CallEnd::Stopped, true, || 999, None);
        assert_eq!(tokens.input, 20, "the reported input stands");
        assert_eq!(tokens.output, 750, "1,500 relayed bytes, half a token each");
    }

    #[test]
    fn a_json_call_left_before_its_reply_bills_its_max_tokens() {
        let tokens = billed_tokens(
            &Observed::default(),
            &CallEnd::Stopped,
            true,
            || 40,
            Some(1024),
        );
        assert_eq!((tokens.input, tokens.output), (40, 1024));
    }

    #[test]
    fn a_call_with_no_answer_bills_the_input_estimate() {
        let tokens = billed_tokens(&Observed::default(), &CallEnd::Stopped, true, || 321, None);
        assert_eq!((tokens.input, tokens.output), (321, 0));
    }

    #[test]
    fn final_usage_is_trusted_over_the_estimate() {
        let mut observed = cut_after(&"x".repeat(3_000));
        observed.final_usage = true;
        observed.usage.output_tokens = 7;
        let tokens = billed_tokens(&observed, &CallEnd::Complete, true, || 999, Some(4096));
        assert_eq!((tokens.input, tokens.output), (20, 7));
    }

    #[test]
    fn an_error_answer_and_a_call_that_never_left_bill_nothing() {
        let status = UpstreamError::Status {
            status: 529,
            kind: Some("overloaded_error".into()),
            message: None,
            body: bytes::Bytes::new(),
            headers: http::HeaderMap::new(),
        };
        let none = billed_tokens(
            &Observed::default(),
            &CallEnd::Failed(status),
            true,
            || 50,
            Some(9),
        );
        assert_eq!(none, TokenCounts::default());
        let unsent = billed_tokens(
            &Observed::default(),
            &CallEnd::Stopped,
            false,
            || 50,
            Some(9),
        );
        assert_eq!(unsent, TokenCounts::default());
    }
}

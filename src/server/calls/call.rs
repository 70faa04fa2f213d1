//! A call admitted and not yet settled. However it ends — answered,
//! failed, cut, or dropped at any await because the client hung up or the
//! server shut down — it settles exactly once, so no caller needs a task
//! of its own to stay accountable.

use std::{sync::Arc, time::Instant};

use bytes::Bytes;

use super::{
    admission::{Admission, InputEstimate},
    meter::Observed,
};
use crate::server::{
    accounting::{self, Billed, CallEnd, CallOrigin, LedgerSlot},
    anthropic::{ForwardedHeaders, UpstreamError, UpstreamResponse},
    limits::Hold,
    payer::RoutedKey,
    routing,
    state::AppState,
};

pub struct Call {
    state: AppState,
    /// `None` once settled.
    open: Option<Open>,
    /// What has been seen of the answer so far.
    pub observed: Observed,
}

struct Open {
    routed: Arc<RoutedKey>,
    hold: Option<Hold>,
    origin: CallOrigin,
    model: String,
    started_at: Instant,
    /// Released once the call's ledger row is committed.
    slot: LedgerSlot,
    input: InputEstimate,
    /// `max_tokens` of a JSON (not streamed) call.
    json_max_tokens: Option<i64>,
    /// Set the moment the request is handed to the transport, cleared only
    /// when the transport says it never left keyward.
    sent: bool,
}

impl Call {
    pub(super) fn new(
        state: AppState,
        admission: Admission,
        hold: Option<Hold>,
        slot: LedgerSlot,
    ) -> Self {
        if let Some(hold) = &hold {
            state.instance.track(hold.reservation_id());
        }
        Self {
            state,
            open: Some(Open {
                routed: admission.routed,
                hold,
                origin: admission.origin,
                model: admission.model,
                started_at: Instant::now(),
                slot,
                input: admission.input,
                json_max_tokens: if admission.stream {
                    admission
                        .thinking_budget
                        .map(|budget| admission.max_tokens.map_or(budget, |most| budget.min(most)))
                } else {
                    admission.max_tokens
                },
                sent: false,
            }),
            observed: Observed::default(),
        }
    }

    fn open(&self) -> &Open {
        self.open
            .as_ref()
            .expect("a call is open until it is settled")
    }

    pub fn routed(&self) -> &RoutedKey {
        &self.open().routed
    }

    pub fn started_at(&self) -> Instant {
        self.open().started_at
    }

    /// Whose call it is.
    pub fn user_id(&self) -> i64 {
        self.open().origin.user_id
    }

    /// Cancelled when this call must end where it is: its user's account
    /// was disabled, or shutdown's grace ran out.
    pub fn cut(&self) -> tokio_util::sync::CancellationToken {
        self.state.cuts.for_user(self.user_id())
    }

    /// Names the conversation and reply this call writes (chat turns).
    pub fn attach_to_message(&mut self, conversation_id: i64, message_id: i64) {
        if let Some(open) = &mut self.open {
            open.origin.conversation_id = Some(conversation_id);
            open.origin.message_id = Some(message_id);
        }
    }

    /// Sends the request upstream. From here on the call counts, unless the
    /// transport says it never left keyward.
    pub async fn send(
        &mut self,
        path: &str,
        forwarded: &ForwardedHeaders,
        body: Bytes,
        stream: bool,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let routed = self.open().routed.clone();
        if let Some(open) = &mut self.open {
            open.sent = true;
        }
        let answer = self
            .state
            .anthropic
            .post_forwarded(path, &routed.secret, forwarded, body, stream)
            .await;
        if let Err(err) = &answer {
            if !err.reached_upstream() {
                if let Some(open) = &mut self.open {
                    open.sent = false;
                }
            }
            self.observed.request_id = err.request_id();
        }
        answer
    }

    /// Ends the call and queues its ledger row without waiting for the
    /// commit. A failure is logged and a key Anthropic refused is marked
    /// first, so the caller's next call already sees the mark.
    pub async fn end(mut self, end: CallEnd) -> Option<Billed> {
        self.note_failure(&end).await;
        self.settle(&end).0
    }

    /// Like `end`, and returns once the ledger row is committed.
    pub async fn end_and_wait(mut self, end: CallEnd) -> Option<Billed> {
        self.note_failure(&end).await;
        let (billed, committed) = self.settle(&end);
        if let Some(committed) = committed {
            let _ = committed.await;
        }
        billed
    }

    async fn note_failure(&self, end: &CallEnd) {
        let (CallEnd::Failed(err), Some(open)) = (end, &self.open) else {
            return;
        };
        routing::note_failure(&self.state, &open.routed, err).await;
    }

    /// Settles the call once: a ledger row for a call that was sent (or
    /// that the transport failed to send), a plain release for one dropped
    /// before it was sent. Returns the bill and, for a row, its commit.
    fn settle(
        &mut self,
        end: &CallEnd,
    ) -> (Option<Billed>, Option<tokio::sync::oneshot::Receiver<()>>) {
        let Some(open) = self.open.take() else {
            return (None, None);
        };
        if let Some(hold) = &open.hold {
            self.state.instance.untrack(hold.reservation_id());
        }
        let Open {
            routed,
            hold,
            origin,
            model,
            started_at,
            slot,
            input,
            json_max_tokens,
            sent,
        } = open;
        if !sent && !matches!(end, CallEnd::Failed(_)) {
            // Dropped before it was handed to the transport.
            if let Some(hold) = hold {
                self.state.ledger.release(hold, slot);
            }
            return (None, None);
        }
        let record = accounting::CallRecord {
            routed: &routed,
            hold,
            origin,
            model,
            started_at,
            ended_at_ms: self.state.clock.now_ms(),
            reached_upstream: sent,
            output_if_unreported: json_max_tokens,
        };
        let observed = std::mem::take(&mut self.observed);
        let paid_by = routed.paid_by();
        let (job, billed) = accounting::bill(record, end, observed, || input.tokens());
        let status = &job.row.status;
        self.state.metrics.record_upstream(paid_by.as_str(), status);
        let committed = self.state.ledger.submit(job, slot);
        (Some(billed), Some(committed))
    }
}

impl Drop for Call {
    /// Dropped before it ended: the client went away, or shutdown cut it.
    fn drop(&mut self) {
        self.settle(&CallEnd::Stopped);
    }
}

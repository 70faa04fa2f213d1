//! The Anthropic Messages API client: one pooled HTTP client, a streaming SSE
//! parser, typed stream events, usage accounting and user-facing errors.

mod client;
mod errors;
mod events;
pub mod sse;
mod transport;

pub use client::{
    api_key_header, AnthropicClient, ForwardedHeaders, API_VERSION, JSON_TIMEOUT,
    STREAM_IDLE_TIMEOUT,
};
pub use errors::UpstreamError;
pub use events::{parse_event, StreamEvent, Usage};
pub use transport::{FailureKind, Transport, UpstreamResponse};

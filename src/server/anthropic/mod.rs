//! The Anthropic Messages API client: one pooled HTTP client, a streaming SSE
//! parser, the usage Anthropic reports, and user-facing errors.

mod client;
mod errors;
pub mod sse;
mod transport;
mod usage;

pub use client::{
    api_key_header, AnthropicClient, ForwardedHeaders, API_VERSION, JSON_TIMEOUT,
    STREAM_IDLE_TIMEOUT,
};
pub use errors::UpstreamError;
pub use transport::{FailureKind, Transport, UpstreamResponse};
pub use usage::Usage;

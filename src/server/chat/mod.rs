//! Chat turns: the conversation bookkeeping around one streamed upstream call.

mod endpoint;
mod history;
mod relay;
mod turn;

pub use endpoint::send_handler;
pub use history::{conversation_view, title_from};
pub use turn::start_turn;

//! One lifecycle for every upstream call, from a chat turn or the gateway:
//!
//! 1. **Admission** (`admission`, `admit`): the plan's rules (models,
//!    server tools), the worst case (`estimate`), a ledger slot, and the
//!    reservation. It hands back a [`Call`] that owns the reservation
//!    from the instant it exists.
//! 2. **The call** (`call`): sent upstream through the `Call`, which notes
//!    that it left keyward; its answer is read by one meter (`meter`) in
//!    both relays.
//! 3. **Settlement**: ending the `Call`, or dropping it at any await, ends
//!    it exactly once. A call that reached Anthropic is one request and is
//!    billed at least what it reported or relayed; only a call that never
//!    left keyward gives its reservation back.
//!
//! Reservations a crashed process left are released by `instance`; calls
//! still running are cut (shutdown, a disabled account) through `cuts`.

mod admission;
mod admit;
mod call;
mod cuts;
pub mod estimate;
mod instance;
pub mod meter;
pub mod server_tools;

pub use admission::{check_model, check_server_tools, Admission, InputEstimate, Refusal};
pub use admit::admit;
pub use call::Call;
pub use cuts::CallCuts;
pub use instance::Instance;

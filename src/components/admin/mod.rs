//! Pieces of the admin pages.

pub mod charts;
pub mod nav;
pub mod period;

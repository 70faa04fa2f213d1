//! The admin dashboard and user/plan management. Every function here is
//! called only after the caller was checked to be an admin.

pub mod audit;
pub mod dashboard;
pub mod export;
pub mod management;
pub mod period;
pub mod plans;
pub mod seed;

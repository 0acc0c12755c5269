//! Scenario test support.

pub mod interop;
pub mod replay;

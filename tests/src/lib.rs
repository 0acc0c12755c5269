//! Scenario test support.

pub mod interop;

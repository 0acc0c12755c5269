//! sip-core
#![warn(missing_docs)]
pub mod message;

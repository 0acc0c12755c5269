//! sip-core
#![warn(missing_docs)]
pub mod auth;
pub mod dialog;
pub mod endpoint;
pub mod message;
pub mod time;
pub mod transaction;

//! The campaign core: campaign definitions, lead lists, calling hours in each lead's time
//! zone, retries, dispositions and callbacks, and the pacing that turns ready agents into
//! lines to dial.
//!
//! Sans-IO like the SIP and media cores: nothing here opens a file, reads a clock or sleeps.
//! Time comes in as an argument (wall-clock UTC for calling hours, since a lead's window is a
//! matter of the civil time where the lead lives); the [`engine::Engine`] reads the call
//! engine's outcomes and the agents' states and says which leads to claim and what to write
//! back; the runtime owns the store and applies those orders in sequence.
//! [`pacing`] holds predictive pacing (its traffic model, abandon budget and decision);
//! [`sim`] runs a campaign's engine against a seeded model of customers and agents in
//! virtual time (`dialer campaign simulate`).

pub mod definition;
pub mod engine;
pub mod hours;
pub mod leads;
pub mod pacing;
pub mod sim;
pub mod types;
pub mod zones;

pub use types::*;

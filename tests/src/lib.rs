//! Scenario test support.

//! Unit tests of the registration helpers and state transitions.

//! trunk-profiles

//! dialer

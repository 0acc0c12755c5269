//! RTP stream analysis over a [`Capture`](crate::Capture).

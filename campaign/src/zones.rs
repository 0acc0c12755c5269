//! Which time zones and region a number lives in: its country calling code, and for NANP
//! numbers its area code.

use chrono_tz::Tz;

/// Zones and region of an E.164 number (`+12125550100`): `None` when the number tells
/// nothing (unknown country code).
pub fn locate(e164: &str) -> Option<(Vec<Tz>, Option<&'static str>)> {
    let _ = e164;
    unimplemented!()
}

//! SIP status to Q.850 cause, RFC 3398 §8.2.6.1 (the direction SIP -> ISUP).

/// Q.850 "normal call clearing".
pub const NORMAL_CLEARING: u8 = 16;
/// Q.850 "no user responding": nobody answered before the originate timeout.
pub const NO_USER_RESPONDING: u8 = 18;
/// Q.850 "no answer from user (user alerted)".
pub const NO_ANSWER: u8 = 19;
/// Q.850 "temporary failure", used for media timeouts and internal failures.
pub const TEMPORARY_FAILURE: u8 = 41;
/// Q.850 "recovery on timer expiry": Timer B/F ran out.
pub const TIMER_EXPIRY: u8 = 102;
/// Q.850 "normal, unspecified".
pub const NORMAL_UNSPECIFIED: u8 = 31;

/// The Q.850 cause for a final SIP status (RFC 3398 §8.2.6.1); 2xx is normal clearing.
pub fn cause_for_status(status: u16) -> u8 {
    listed(status).unwrap_or(match status {
        200..=299 => NORMAL_CLEARING,
        // RFC 3398 §8.2.6.1: codes the table does not list map as their class.
        400..=599 => TEMPORARY_FAILURE,
        _ => NORMAL_UNSPECIFIED,
    })
}

/// The entries of the RFC 3398 §8.2.6.1 table.
fn listed(status: u16) -> Option<u8> {
    Some(match status {
        400 => 41,
        401 | 402 | 403 | 407 => 21,
        404 => 1,
        405 => 63,
        406 => 79,
        408 => 102,
        410 => 22,
        413 | 414 | 416 | 420 | 421 | 423 => 127,
        415 => 79,
        480 => 18,
        481 => 41,
        482 | 483 => 25,
        484 => 28,
        485 => 1,
        486 => 17,
        // 487 has no ISUP mapping in RFC 3398; Q.850 127 (interworking) as common stacks do.
        487 | 488 => 127,
        500 => 41,
        501 => 79,
        502 => 38,
        503 => 41,
        504 => 102,
        505 | 513 => 127,
        600 => 17,
        603 => 21,
        604 => 1,
        606 => 58,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3398_table_entries() {
        for (status, cause) in [
            (404, 1),
            (480, 18),
            (486, 17),
            (408, 102),
            (503, 41),
            (603, 21),
            (200, 16),
            (600, 17),
            (484, 28),
        ] {
            assert_eq!(cause_for_status(status), cause, "{status}");
        }
    }
}

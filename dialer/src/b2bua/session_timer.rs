//! Session timers (RFC 4028) per leg: what we ask for, who refreshes, the refresh we send
//! at half the interval, the refreshes we answer, and the BYE when a session expires.
//!
//! Each leg keeps its own timer: the trunk's and the agent's intervals and refresher
//! roles are negotiated independently, and either one expiring ends the whole call.

use super::*;
use sip_core::message::{parse_delta_with_params, SipMessage};

/// RFC 4028 §4: Min-SE is never below 90 seconds.
pub(super) const MIN_SE_FLOOR: u32 = 90;

/// Session timer settings for one kind of leg (RFC 4028).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionTimerConfig {
    /// Session-Expires we ask for in our INVITE (RFC 4028 §4, §7.1).
    pub session_expires: Duration,
    /// Our Min-SE: the shortest interval we accept (RFC 4028 §5); at least 90 s.
    pub min_se: Duration,
}

/// The timer of a leg whose dialog negotiated one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SessionTimer {
    /// The negotiated Session-Expires.
    pub(super) interval: Duration,
    /// We send the refreshes (the refresher role, RFC 4028 §7.2, §9).
    pub(super) we_refresh: bool,
    /// When to act: send our refresh, or (`expiring`) end the session.
    pub(super) deadline: Time,
    /// The deadline is the session's expiry rather than our next refresh.
    pub(super) expiring: bool,
}

/// How long before the end of the interval a session with no refresh is ended:
/// min(32 s, interval / 3) (RFC 4028 §10).
fn expiry_margin(interval: Duration) -> Duration {
    Duration::from_secs(32).min(interval / 3)
}

/// The value and refresher of a Session-Expires header, when present and well formed.
fn session_expires(m: &impl SipMessage) -> Option<(u32, Option<String>)> {
    let v = m.headers().get(HeaderKind::SessionExpires)?;
    let (secs, params) = parse_delta_with_params("Session-Expires", v).ok()?;
    let refresher = params.value("refresher").map(str::to_ascii_lowercase);
    Some((secs, refresher))
}

impl Leg {
    /// Takes the configured timer of the leg's kind; without one we still offer
    /// `Supported: timer` and follow a timer the peer imposes (RFC 4028 §7.1, §9).
    pub(super) fn apply_timer_config(&mut self, config: Option<SessionTimerConfig>) {
        if let Some(t) = config {
            let min_se = (t.min_se.as_secs() as u32).max(MIN_SE_FLOOR);
            self.min_se = min_se;
            // RFC 4028 §7.1: Session-Expires is never below our own Min-SE.
            self.session_expires = Some((t.session_expires.as_secs() as u32).max(min_se));
        }
    }
}

impl Core {
    /// Starts (or restarts, after a refresh) the timer of a leg with a negotiated interval.
    fn set_session_timer(&mut self, now: Time, call: CallId, side: Side, secs: u32, we: bool) {
        let Some(leg) = self.calls.get_mut(&call).and_then(|c| leg_of(c, side)) else {
            return;
        };
        let interval = Duration::from_secs(u64::from(secs));
        // RFC 4028 §10: the refresher refreshes at half the interval; the other side ends
        // the session when no refresh came by interval - min(32 s, interval / 3).
        let (deadline, expiring) = if we {
            (now + interval / 2, false)
        } else {
            (now + interval - expiry_margin(interval), true)
        };
        leg.session = Some(SessionTimer {
            interval,
            we_refresh: we,
            deadline,
            expiring,
        });
    }

    /// Reads the 2xx to our INVITE, re-INVITE or UPDATE (RFC 4028 §7.2): its
    /// Session-Expires sets the interval and refresher; without one the session has no
    /// timer.
    pub(super) fn start_session_timer(
        &mut self,
        now: Time,
        call: CallId,
        side: Side,
        response: &Response,
    ) {
        match session_expires(response) {
            // RFC 4028 §7.2: the refresher parameter of the 2xx names who refreshes; a
            // 2xx without it (a UAS that does not know timers, a proxy inserted the
            // header) leaves the refreshing to us.
            Some((secs, refresher)) if secs > 0 => {
                let we = refresher.as_deref() != Some("uas");
                self.set_session_timer(now, call, side, secs, we);
            }
            _ => {
                if let Some(leg) = self.calls.get_mut(&call).and_then(|c| leg_of(c, side)) {
                    leg.session = None;
                }
            }
        }
    }

    /// What a refresh request from the peer asks (RFC 4028 §9): `Err(min_se)` when its
    /// interval is below our Min-SE (answer 422), else the interval and whether we refresh.
    pub(super) fn requested_timer(
        &self,
        r: LegRef,
        request: &Request,
    ) -> Result<Option<(u32, bool)>, u32> {
        let min_se = self
            .calls
            .get(&r.call)
            .and_then(|c| match r.side {
                Side::Customer => Some(&c.customer),
                Side::Agent => c.agent.as_ref(),
            })
            .map_or(MIN_SE_FLOOR, |l| l.min_se);
        let Some((secs, refresher)) = session_expires(request) else {
            // RFC 4028 §9: a request without Session-Expires asks for no timer.
            return Ok(None);
        };
        if secs < min_se {
            return Err(min_se);
        }
        // RFC 4028 §9: the request's refresher stands; without one the requester
        // refreshes when it supports timers, else we do.
        let peer_refreshes = match refresher.as_deref() {
            Some("uac") => true,
            Some("uas") => false,
            _ => request.has_option_tag(HeaderKind::Supported, "timer"),
        };
        Ok(Some((secs, !peer_refreshes)))
    }

    /// Adds the RFC 4028 §9 headers to our 2xx for a refresh and restarts the leg's timer.
    pub(super) fn answer_refresh(
        &mut self,
        now: Time,
        r: LegRef,
        timer: Option<(u32, bool)>,
        response: &mut Response,
    ) {
        match timer {
            Some((secs, we)) => {
                let refresher = if we { "uas" } else { "uac" };
                response.headers.add(
                    HeaderKind::SessionExpires,
                    format!("{secs};refresher={refresher}"),
                );
                if !we {
                    // RFC 4028 §9: refresher=uac in the 2xx comes with Require: timer.
                    response.headers.add(HeaderKind::Require, "timer");
                }
                self.set_session_timer(now, r.call, r.side, secs, we);
            }
            None => {
                if let Some(leg) = self.calls.get_mut(&r.call).and_then(|c| leg_of(c, r.side)) {
                    leg.session = None;
                }
            }
        }
    }

    /// A 422 to our INVITE (RFC 4028 §7.3): retry with Session-Expires and Min-SE raised
    /// to the 422's Min-SE. False when the 422 asks for nothing larger (no retry).
    pub(super) fn retry_with_min_se(&mut self, now: Time, r: LegRef, response: &Response) -> bool {
        let asked = response
            .headers
            .get(HeaderKind::MinSe)
            .and_then(|v| parse_delta_with_params("Min-SE", v).ok())
            .map(|(n, _)| n);
        let Some(leg) = self.calls.get_mut(&r.call).and_then(|c| leg_of(c, r.side)) else {
            return false;
        };
        let Some(asked) = asked.filter(|n| Some(*n) > leg.session_expires) else {
            return false;
        };
        let Some(invite) = leg.invite.clone() else {
            return false;
        };
        leg.session_expires = Some(asked);
        leg.min_se = leg.min_se.max(asked);
        self.send_invite(now, r.call, r.side, invite.uri, None);
        true
    }

    /// True when `tx` is the leg's session refresh.
    pub(super) fn is_refresh(&self, r: LegRef, tx: TransactionId) -> bool {
        self.calls
            .get(&r.call)
            .and_then(|c| match r.side {
                Side::Customer => Some(&c.customer),
                Side::Agent => c.agent.as_ref(),
            })
            .and_then(|l| l.refresh.as_ref())
            .is_some_and(|(t, _, _)| *t == tx)
    }

    /// A leg's session timer is due: send our refresh, or end the expired session.
    pub(super) fn session_timer_due(&mut self, now: Time, call: CallId, side: Side) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let ending = c.ending.is_some();
        let Some(leg) = leg_of(c, side) else {
            return;
        };
        let Some(s) = leg.session.as_mut() else {
            return;
        };
        if ending || leg.state != LegState::Confirmed {
            leg.session = None;
            return;
        }
        if s.we_refresh && !s.expiring {
            // If this refresh gets no 2xx, the session ends when it would have expired.
            s.deadline = now + s.interval / 2 - expiry_margin(s.interval).min(s.interval / 2);
            s.expiring = true;
            self.send_refresh(now, call, side);
            return;
        }
        leg.session = None;
        // RFC 4028 §10: no refresh before the session expired: BYE (both legs, as the
        // bridged call cannot go on with one). Q.850 102: recovery on timer expiry.
        self.end_call(
            now,
            call,
            Ending {
                outcome: CallOutcome::SessionTimerExpired,
                status: 408,
                cause: q850::TIMER_EXPIRY,
                by: HungUpBy::Dialer,
            },
        );
    }

    /// Sends our re-INVITE or UPDATE on a leg: a session refresh (RFC 4028 §7.4), a
    /// direction change the other leg's hold asks for (see `hold.rs`), or both at once.
    /// A refresh alone is an UPDATE without a body when the peer allows it, else a
    /// re-INVITE offering our current session unchanged (same version, RFC 3264 §8); a
    /// direction change is a re-INVITE with a new version. Nothing is sent while one of
    /// ours is in progress (RFC 3261 §14.1): its 2xx refreshes the session too.
    pub(super) fn send_refresh(&mut self, now: Time, call: CallId, side: Side) {
        let Some(leg) = self.calls.get_mut(&call).and_then(|c| leg_of(c, side)) else {
            return;
        };
        if leg.reinvite_outstanding {
            return;
        }
        let changed = leg
            .wanted_direction
            .and_then(|d| super::hold::with_direction(leg, d));
        let interval = leg.session.map(|s| s.interval.as_secs());
        let min_se = leg.min_se;
        let method = if leg.peer_allows_update && changed.is_none() {
            Method::Update
        } else {
            Method::Invite
        };
        let sdp = changed
            .clone()
            .or_else(|| leg.local_sdp.clone())
            .or_else(|| leg.offer.clone());
        let Some(dialog) = leg.dialog.as_mut() else {
            return;
        };
        let mut req = dialog.request(method.clone());
        let seq = dialog.local_seq;
        req.headers.add(HeaderKind::Supported, "timer");
        if let Some(interval) = interval {
            // RFC 4028 §7.4: every re-INVITE or UPDATE of a session with a timer refreshes
            // it, and asks for the interval again.
            req.headers.add(
                HeaderKind::SessionExpires,
                format!("{interval};refresher=uac"),
            );
            req.headers.add(HeaderKind::MinSe, min_se.to_string());
        }
        if method == Method::Invite {
            if let Some(sdp) = sdp {
                req.set_body("application/sdp", sdp.to_sdp_string().into_bytes());
            }
        }
        let target = leg.target;
        match self.endpoint.send_request(now, req, target) {
            Ok(tx) => {
                let leg = leg_of(self.calls.get_mut(&call).expect("looked up above"), side)
                    .expect("the leg exists: it was just used");
                leg.refresh = Some((tx, method, seq));
                leg.reinvite_outstanding = true;
                leg.offered = changed;
                leg.reinvite_deadline = Some(now + super::hold::REINVITE_ANSWER_TIMEOUT);
                self.by_tx.insert(tx, LegRef { call, side });
            }
            Err(_) => self.refresh_failed(now, call, side, 500),
        }
    }

    /// The response to our session refresh.
    pub(super) fn on_refresh_response(
        &mut self,
        now: Time,
        r: LegRef,
        tx: TransactionId,
        response: Response,
    ) {
        let status = response.status;
        if status < 200 {
            return;
        }
        let srtp = self.srtp_policy(r.call, r.side);
        let Some(leg) = self.calls.get_mut(&r.call).and_then(|c| leg_of(c, r.side)) else {
            return;
        };
        let Some((_, method, seq)) = leg.refresh.clone() else {
            return;
        };
        // A 2xx to a re-INVITE may be retransmitted (each one is ACKed); every other
        // final response ends the transaction.
        if !(method == Method::Invite && (200..300).contains(&status)) {
            self.by_tx.remove(&tx);
        }
        leg.reinvite_outstanding = false;
        leg.reinvite_deadline = None;
        let offered = leg.offered.take();
        match status {
            200..=299 => {
                if let Some(offered) = offered {
                    // RFC 3264 §8: the offer is accepted; it is our session now.
                    leg.local_sdp = Some(offered);
                }
                if leg.wanted_direction == Some(super::hold::local_direction(leg)) {
                    leg.wanted_direction = None;
                }
                let media_config = Self::media_config_for(&leg_codecs(leg));
                let Some(dialog) = leg.dialog.as_mut() else {
                    return;
                };
                // RFC 3261 §12.2.1.2: the 2xx refreshes the remote target; the route set
                // stays as the dialog was created, with or without Record-Route here.
                dialog.refresh_target(&response);
                if method == Method::Invite {
                    // RFC 3261 §13.2.2.4: ACK to the remote target through the route set.
                    let ack = dialog.ack(seq);
                    self.endpoint.send_stateless(ack, leg.target);
                }
                let answered = (method == Method::Invite && !response.body.is_empty())
                    .then(|| {
                        let offer = leg.local_sdp.as_ref()?;
                        let answer = SessionDescription::parse_bytes(&response.body).ok()?;
                        let n = media::sdp::process_answer_srtp(
                            offer,
                            super::srtp::offered_crypto(offer),
                            &answer,
                            &media_config,
                            srtp,
                        )
                        .ok()?;
                        Some((
                            super::hold::answered_direction(
                                offer,
                                &answer,
                                &n.0,
                                leg.remote_direction,
                            ),
                            n,
                        ))
                    })
                    .flatten();
                let theirs = answered.as_ref().map(|(d, _)| *d);
                let renegotiated = answered
                    .map(|(_, n)| n)
                    .filter(|(n, keys)| leg.negotiated.as_ref() != Some(n) || leg.srtp != *keys);
                if let Some(d) = theirs {
                    self.remote_direction_is(now, r.call, r.side, d);
                }
                if !self.calls.contains_key(&r.call) {
                    return;
                }
                if let Some(n) = renegotiated {
                    self.set_leg_media(r.call, r.side, n);
                }
                self.start_session_timer(now, r.call, r.side, &response);
                self.maybe_send_update(now, r.call, r.side);
            }
            422 => {
                // RFC 4028 §7.3 applies to refreshes too: retry with the larger Min-SE.
                let asked = response
                    .headers
                    .get(HeaderKind::MinSe)
                    .and_then(|v| parse_delta_with_params("Min-SE", v).ok())
                    .map(|(n, _)| n);
                let current = leg.session.map_or(0, |s| s.interval.as_secs() as u32);
                match (asked, leg.session.as_mut()) {
                    (Some(n), Some(s)) if n > current => {
                        s.interval = Duration::from_secs(u64::from(n));
                        leg.min_se = leg.min_se.max(n);
                        self.send_refresh(now, r.call, r.side);
                    }
                    _ => self.refresh_failed(now, r.call, r.side, status),
                }
            }
            // RFC 4028 §10: a refresh that times out or gets 408 or 481 ends the session.
            408 | 481 => self.refresh_failed(now, r.call, r.side, status),
            405 | 501 if method == Method::Update => {
                // The peer does not take UPDATE after all: refresh with re-INVITE.
                leg.peer_allows_update = false;
                self.send_refresh(now, r.call, r.side);
            }
            491 => {
                // RFC 3261 §14.1: glare; try again after the Call-ID owner's back-off,
                // whether the refresh or the direction change is due first.
                let wait = super::hold::glare_backoff(&mut *self.rng);
                let Some(leg) = self.calls.get_mut(&r.call).and_then(|c| leg_of(c, r.side)) else {
                    return;
                };
                if let Some(s) = leg.session.as_mut() {
                    s.deadline = now + wait;
                    s.expiring = false;
                }
                if leg.wanted_direction.is_some() {
                    leg.update_retry = Some(now + wait);
                }
            }
            // Any other failure leaves the session as it was (RFC 3261 §14.1); it ends at
            // the expiry already set if no refresh succeeds. A direction change refused
            // this way is not offered again.
            _ => {
                leg.wanted_direction = None;
            }
        }
    }

    /// Our refresh failed for good (RFC 4028 §10): BYE on both legs.
    pub(super) fn refresh_failed(&mut self, now: Time, call: CallId, side: Side, status: u16) {
        let mut outcome = CallOutcome::SessionRefreshFailed;
        if let Some(leg) = self.calls.get_mut(&call).and_then(|c| leg_of(c, side)) {
            if leg.session.is_none() {
                // RFC 3261 §14.1: a re-INVITE (a direction change on a leg without a
                // session timer) that times out or gets 408/481 ends the dialog too.
                outcome = CallOutcome::ReinviteFailed;
            }
            leg.session = None;
            leg.refresh = None;
            leg.reinvite_outstanding = false;
            leg.reinvite_deadline = None;
            leg.offered = None;
            leg.wanted_direction = None;
        }
        self.end_call(
            now,
            call,
            Ending {
                outcome,
                status,
                cause: q850::TIMER_EXPIRY,
                by: HungUpBy::Dialer,
            },
        );
    }
}

/// The codecs a leg offered, in order: what an answer may pick from.
fn leg_codecs(leg: &Leg) -> Vec<Codec> {
    leg.offer
        .as_ref()
        .and_then(|o| o.media.first())
        .map(|m| m.formats.iter().filter_map(Codec::of_format).collect())
        .unwrap_or_default()
}

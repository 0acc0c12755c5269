//! Hold and unhold passed from one leg to the other, and glare between re-INVITEs.
//!
//! When one party changes the direction of its stream (hold with `a=sendonly`, `a=inactive`
//! or `c=0.0.0.0`, unhold with `a=sendrecv`), the leg it is on is answered at once (see
//! `on_offer`), and the other leg gets a re-INVITE offering the same direction from our
//! side: what the holding party still sends is all there is to send on, and what it no
//! longer wants to hear the other party need not send. The agent's phone then shows the
//! hold, and neither side streams audio nobody hears.
//!
//! One re-INVITE at a time per dialog (RFC 3261 §14.1): a change wanted while ours is in
//! progress waits for its final response; a 491 schedules the next try after a random
//! back-off.

use super::*;

/// How long our re-INVITE may go without a final response before it is cancelled. Longer
/// than Timer B (64*T1, RFC 3261 §17.1.1.2), so one never answered at all times out as a
/// transaction first; this catches the peer that answered 1xx and then nothing.
pub(super) const REINVITE_ANSWER_TIMEOUT: Duration = Duration::from_secs(40);

/// RFC 3261 §14.1: the owner of the dialog's Call-ID waits 2.1-4 s in units of 10 ms before
/// retrying after a 491. The dialer placed both legs' INVITEs, so it generated (owns) both
/// Call-IDs and always takes this range; the peer, not the owner, retries within 0-2 s,
/// which keeps the two retries apart.
pub(super) fn glare_backoff(rng: &mut dyn RngCore) -> Duration {
    Duration::from_millis(2_100 + 10 * u64::from(rng.next_u32() % 191))
}

/// The direction our current session description gives this leg (what we told it last).
pub(super) fn local_direction(leg: &Leg) -> Direction {
    leg.local_sdp
        .as_ref()
        .or(leg.offer.as_ref())
        .and_then(|s| s.media.iter().find(|m| m.is_audio()))
        .map_or(Direction::SendRecv, |m| m.direction)
}

/// The next `o=` session version for a description we send on this leg (RFC 3264 §8: each
/// new description has a higher version than the last one sent).
pub(super) fn next_version(leg: &Leg) -> u64 {
    let last = |s: &Option<SessionDescription>| s.as_ref().map_or(0, |s| s.origin.session_version);
    last(&leg.offer)
        .max(last(&leg.local_sdp))
        .max(last(&leg.offered))
        + 1
}

/// Our session description towards this leg with the audio direction set to `direction`
/// and a new version, when that differs from what the leg has now.
pub(super) fn with_direction(leg: &Leg, direction: Direction) -> Option<SessionDescription> {
    let mut sdp = leg.local_sdp.clone().or_else(|| leg.offer.clone())?;
    let version = next_version(leg);
    let audio = sdp.media.iter_mut().find(|m| m.is_audio())?;
    if audio.direction == direction {
        return None;
    }
    audio.direction = direction;
    sdp.origin.session_version = version;
    Some(sdp)
}

/// What an answer tells of its writer's own wishes. RFC 3264 §6.1 lets an answerer send
/// only if our offer receives, and receive only if it sends: where our offer left it no
/// choice, the answer says nothing new and the earlier wish (`before`) stands. So an agent
/// answering our hold with `recvonly` still wants to send once the hold is over.
pub(super) fn answered_direction(
    offer: &SessionDescription,
    answer: &SessionDescription,
    negotiated: &Negotiated,
    before: Direction,
) -> Direction {
    let ours = offer
        .media
        .get(negotiated.media_index)
        .map_or(Direction::SendRecv, |m| m.direction);
    let theirs = answer.effective_direction(negotiated.media_index);
    Direction::from_flags(
        if ours.receives() {
            theirs.sends()
        } else {
            before.sends()
        },
        if ours.sends() {
            theirs.receives()
        } else {
            before.receives()
        },
    )
}

impl Core {
    /// The party on `from` said (in an offer, or in an answer to ours) that its stream is
    /// `direction` (`c=0.0.0.0` taken as not receiving): the other leg is offered what
    /// follows for it from both parties' wishes, when it is in a confirmed dialog and has
    /// something else now.
    pub(super) fn remote_direction_is(
        &mut self,
        now: Time,
        call: CallId,
        from: Side,
        direction: Direction,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(leg) = leg_of(c, from) {
            leg.remote_direction = direction;
        }
        if c.ending.is_some() || c.bridged.is_none() {
            // Before the bridge the other leg hears the ringback or nothing; its
            // direction is set when it is answered.
            return;
        }
        let Some(leg) = leg_of(c, from.other()) else {
            return;
        };
        if leg.state != LegState::Confirmed {
            return;
        }
        // We send to this leg what the other party sends, if this party wants to hear it,
        // and want to hear from it if the other party does and this one sends.
        let mine = leg.remote_direction;
        let wanted = Direction::from_flags(
            direction.sends() && mine.receives(),
            direction.receives() && mine.sends(),
        );
        let agreed = local_direction(leg);
        leg.wanted_direction = (wanted != agreed || leg.offered.is_some()).then_some(wanted);
        self.maybe_send_update(now, call, from.other());
    }

    /// Sends the re-INVITE for a wanted direction unless one of ours is in progress or a 491
    /// back-off runs (the final response or the back-off timer calls this again).
    pub(super) fn maybe_send_update(&mut self, now: Time, call: CallId, side: Side) {
        let Some(leg) = self.calls.get_mut(&call).and_then(|c| leg_of(c, side)) else {
            return;
        };
        let Some(wanted) = leg.wanted_direction else {
            return;
        };
        if leg.reinvite_outstanding || leg.update_retry.is_some() {
            return;
        }
        if local_direction(leg) == wanted {
            leg.wanted_direction = None;
            return;
        }
        self.send_refresh(now, call, side);
    }

    /// A leg's 491 back-off ran out (offer the wanted direction again), or its re-INVITE
    /// went unanswered too long (CANCEL it: RFC 3261 §14.1 leaves the session as it was,
    /// and the dialog is free for the next offer).
    pub(super) fn media_update_due(&mut self, now: Time, call: CallId, side: Side) {
        let Some(leg) = self.calls.get_mut(&call).and_then(|c| leg_of(c, side)) else {
            return;
        };
        if leg.update_retry.is_some_and(|t| t <= now) {
            leg.update_retry = None;
        }
        if leg.reinvite_deadline.is_some_and(|t| t <= now) {
            leg.reinvite_deadline = None;
            if leg.reinvite_outstanding {
                let pending = leg.refresh.as_ref().map(|(tx, m, _)| (*tx, m.clone()));
                leg.reinvite_outstanding = false;
                leg.offered = None;
                leg.wanted_direction = None;
                if let Some((tx, Method::Invite)) = pending {
                    // RFC 3261 §9.1: a CANCEL for an INVITE answered only provisionally.
                    let _ = self.endpoint.cancel(now, tx);
                }
            }
            return;
        }
        self.maybe_send_update(now, call, side);
    }

    /// Whether an offer from the peer on this leg collides with our re-INVITE in progress:
    /// RFC 3261 §14.2 (an INVITE while ours is pending) and RFC 3311 §5.2 (an UPDATE with an
    /// offer while our offer awaits its answer) both answer it with 491.
    pub(super) fn is_glare(&self, r: LegRef, request: &Request) -> bool {
        let Some(leg) = self.calls.get(&r.call).and_then(|c| match r.side {
            Side::Customer => Some(&c.customer),
            Side::Agent => c.agent.as_ref(),
        }) else {
            return false;
        };
        let ours_is_invite = leg
            .refresh
            .as_ref()
            .is_some_and(|(_, m, _)| *m == Method::Invite);
        if !(leg.reinvite_outstanding && ours_is_invite) {
            return false;
        }
        request.method == Method::Invite || !request.body.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn glare_backoff_stays_in_the_call_id_owners_range_in_10_ms_steps() {
        let mut rng = StdRng::seed_from_u64(7);
        let waits: Vec<Duration> = (0..2000).map(|_| glare_backoff(&mut rng)).collect();
        for w in &waits {
            assert!(
                (Duration::from_millis(2100)..=Duration::from_millis(4000)).contains(w),
                "{w:?}"
            );
            assert_eq!(w.as_millis() % 10, 0, "{w:?}");
        }
        let min = waits.iter().min().copied();
        let max = waits.iter().max().copied();
        assert!(min < Some(Duration::from_millis(2300)), "{min:?}");
        assert!(max > Some(Duration::from_millis(3800)), "{max:?}");
    }
}

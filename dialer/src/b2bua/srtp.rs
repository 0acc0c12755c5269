//! SRTP per leg (RFC 3711), keyed by SDES (RFC 4568 `a=crypto` in the SDP of each leg's
//! offer/answer). Each trunk and each agent has a [`SrtpPolicy`]:
//!
//! - `Off`: plain `RTP/AVP`; an `RTP/SAVP` offer gets 488, an answer with `RTP/SAVP` ends the
//!   call (outcome `failed`, 488).
//! - `Optional`: our offers are `RTP/AVP` with one `a=crypto` line per suite of [`SUITES`],
//!   each with a fresh random key; an answer with a line echoing one of our tags and suites
//!   (RFC 4568 §7.1.3) makes the leg SRTP, a plain answer leaves it plain. An offer with a
//!   usable line is answered with SRTP, one without plainly.
//! - `Required`: our offers are `RTP/SAVP` (RFC 3711 §6); an answer without a usable line ends
//!   the call (outcome `failed`, 488), an offer without one gets 488 and the session stays
//!   as it was.
//!
//! The keys a leg agreed on go to the runtime as [`MediaOp::SetSrtp`] before the leg's
//! [`MediaOp::SetLeg`], only when they change: the relay then decrypts what the leg sends
//! and encrypts what it gets, so an SRTP leg is bridged to a plain one as readily as to
//! another SRTP leg. Keys come from the core's injected random source, are new for every
//! leg and every call, and appear only in SDP bodies and in [`MediaOp::SetSrtp`] (whose
//! `Debug` redacts them); no event, CDR or log carries them.
//!
//! A re-offer (a session refresh, a hold) repeats the session we last described, keys
//! included, and an answer to the peer's re-offer keeps our key when the peer kept its own:
//! RFC 4568 §7.1.4 lets a stream whose address and port stay keep its master keys, so the
//! crypto contexts, their rollover counters and replay lists run on across the change.

use super::*;
use media::sdp::{
    answer_offer_srtp, process_answer_srtp, CryptoAttribute, NotAcceptable, SrtpKeys, SrtpPolicy,
};
use media::srtp::CryptoSuite;

/// The suites we offer, in our order of preference (RFC 4568 §7.1.1), and accept.
pub const SUITES: &[CryptoSuite] = &CryptoSuite::ALL;

/// The SRTP policies of the trunks (by index) and the agents (by extension); `Off` unless
/// set.
#[derive(Debug, Default)]
pub(super) struct SrtpSettings {
    trunks: Vec<SrtpPolicy>,
    agents: HashMap<String, SrtpPolicy>,
}

/// The answer to one of our offers, with the keys when the leg is SRTP.
pub(super) type Answered = (Negotiated, Option<SrtpKeys>);

/// The `a=crypto` lines of the audio section of a session description we sent.
pub(super) fn offered_crypto(sdp: &SessionDescription) -> &[CryptoAttribute] {
    sdp.media
        .iter()
        .find(|m| m.is_audio())
        .map_or(&[], |m| m.crypto.as_slice())
}

/// Our offer's codecs, the ones an answer may pick.
pub(super) fn offered_codecs(offer: &SessionDescription) -> Vec<Codec> {
    offer
        .media
        .first()
        .map(|m| m.formats.iter().filter_map(Codec::of_format).collect())
        .unwrap_or_default()
}

/// The answer `answer` to our `offer` (RFC 3264 §6 for codecs, RFC 4568 §7.1.3 for keys)
/// under `policy`.
pub(super) fn process_answer_with_srtp(
    offer: &SessionDescription,
    answer: &SessionDescription,
    policy: SrtpPolicy,
) -> Result<Answered, NotAcceptable> {
    let config = Core::media_config_for(&offered_codecs(offer));
    process_answer_srtp(offer, offered_crypto(offer), answer, &config, policy)
}

impl Core {
    /// Whether (and how) a trunk, by its index in [`CoreConfig::trunks`], uses SRTP.
    pub fn set_trunk_srtp(&mut self, trunk: usize, policy: SrtpPolicy) {
        let trunks = &mut self.srtp.trunks;
        if trunks.len() <= trunk {
            trunks.resize(trunk + 1, SrtpPolicy::Off);
        }
        trunks[trunk] = policy;
    }

    /// Whether (and how) an agent, by extension, uses SRTP.
    pub fn set_agent_srtp(&mut self, extension: &str, policy: SrtpPolicy) {
        self.srtp.agents.insert(extension.to_owned(), policy);
    }

    /// The SRTP policy of a call's leg.
    pub(super) fn srtp_policy(&self, call: CallId, side: Side) -> SrtpPolicy {
        let Some(c) = self.calls.get(&call) else {
            return SrtpPolicy::Off;
        };
        match side {
            Side::Customer => self.srtp.trunks.get(c.trunk).copied(),
            Side::Agent => c
                .agent_ext
                .as_ref()
                .and_then(|e| self.srtp.agents.get(e))
                .copied(),
        }
        .unwrap_or_default()
    }

    /// Answers a peer's offer on a leg (RFC 3264 §6, RFC 4568 §7.1.2), keeping our key when
    /// the peer kept the one the leg uses (RFC 4568 §7.1.4).
    pub(super) fn answer_offer_with_srtp(
        &mut self,
        r: LegRef,
        offer: &SessionDescription,
        config: &MediaConfig,
        local: &LocalEndpoint,
    ) -> Result<(SessionDescription, Answered), NotAcceptable> {
        let policy = self.srtp_policy(r.call, r.side);
        let current = self
            .calls
            .get_mut(&r.call)
            .and_then(|c| leg_of(c, r.side))
            .and_then(|l| l.srtp.clone());
        let (mut answer, negotiated, mut keys) =
            answer_offer_srtp(offer, config, local, policy, SUITES, &mut *self.rng)?;
        if let (Some(current), Some(new)) = (current, keys.as_mut()) {
            if current.remote == new.remote {
                new.local = current.local;
                if let Some(line) = answer.media[negotiated.media_index].crypto.first_mut() {
                    line.key = new.local.clone();
                }
            }
        }
        Ok((answer, (negotiated, keys)))
    }

    /// Gives the runtime a leg's negotiation: its SRTP keys first when they changed
    /// ([`MediaOp::SetSrtp`]), then [`MediaOp::SetLeg`].
    pub(super) fn set_leg_media(&mut self, call: CallId, side: Side, answered: Answered) {
        let (negotiated, keys) = answered;
        let Some(leg) = self.calls.get_mut(&call).and_then(|c| leg_of(c, side)) else {
            return;
        };
        leg.negotiated = Some(negotiated.clone());
        if leg.srtp != keys {
            leg.srtp = keys.clone();
            self.actions.push_back(Action::Media {
                call,
                op: MediaOp::SetSrtp { side, keys },
            });
        }
        self.actions.push_back(Action::Media {
            call,
            op: MediaOp::SetLeg { side, negotiated },
        });
    }
}

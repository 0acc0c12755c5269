//! 2xx responses that arrive after their call has ended: a carrier that answers long after
//! our CANCEL, or retransmits a 2xx we no longer hold a transaction for. Each is ACKed and
//! its dialog ended with a BYE (RFC 3261 §13.2.2.4: a UAC that does not want the dialog a
//! 2xx created ACKs it and sends BYE), so no call is left half-open on the peer, billing.

use super::*;

/// How long the Call-IDs of ended calls are remembered for late 2xx: past the 64*T1 a
/// UAS keeps retransmitting its 2xx (RFC 3261 §13.3.1.4), with room to spare.
const REMEMBER_ENDED: Duration = Duration::from_secs(120);

/// At most this many ended legs are remembered; the oldest go first.
const MAX_ENDED: usize = 4096;

/// A leg of an ended call, kept for late 2xx.
#[derive(Debug)]
pub(super) struct EndedLeg {
    call_id: String,
    side: Side,
    /// Where the leg's requests went (the proxy, or the agent's NAT binding).
    target: Target,
    until: Time,
    /// Remote tags already sent a BYE: a retransmitted 2xx is ACKed again, not BYEd again.
    byed: Vec<String>,
}

impl Core {
    /// Remembers the legs of a call that ended, for late 2xx.
    pub(super) fn remember_ended(&mut self, now: Time, legs: [Option<(String, Side, Target)>; 2]) {
        for (call_id, side, target) in legs.into_iter().flatten() {
            if self.ended.len() >= MAX_ENDED {
                self.ended.pop_front();
            }
            self.ended.push_back(EndedLeg {
                call_id,
                side,
                target,
                until: now + REMEMBER_ENDED,
                byed: Vec::new(),
            });
        }
    }

    /// A 2xx to an INVITE that no live call owns: ACK it and, once per dialog, BYE it,
    /// when its Call-ID is one of our recently ended legs.
    pub(super) fn on_late_2xx(&mut self, now: Time, response: &Response) {
        while self.ended.front().is_some_and(|e| e.until <= now) {
            self.ended.pop_front();
        }
        let (Ok(cseq), Ok(call_id), Ok(to)) =
            (response.cseq(), response.call_id(), response.to_header())
        else {
            return;
        };
        if cseq.method != Method::Invite || !response.is_success() {
            return;
        }
        let Some(remote_tag) = to.tag().map(str::to_owned) else {
            return;
        };
        let tls_port = self.contact_port_for(Transport::Tls);
        let port = self.config.contact_port;
        let Some(ended) = self.ended.iter_mut().find(|e| e.call_id == call_id) else {
            return;
        };
        let Some(uri) = response.contacts().ok().and_then(|c| {
            c.into_iter()
                .find_map(|c| c.address().map(|a| a.uri.clone()))
        }) else {
            return;
        };
        // The INVITE as far as the dialog needs it (RFC 3261 §12.1.2): From with our tag,
        // Call-ID, CSeq and our Contact; the rest comes from the 2xx.
        let contact = NameAddr::new(Uri::Sip(super::our_contact(
            &self.config.contact_host,
            match ended.target.transport {
                Transport::Tls => tls_port,
                _ => port,
            },
            "dialer",
            ended.target.transport,
            &uri,
        )));
        let mut invite = Request::new(Method::Invite, uri);
        for kind in [HeaderKind::From, HeaderKind::CallId, HeaderKind::CSeq] {
            if let Some(v) = response.headers.get(kind) {
                invite.headers.add(kind, v);
            }
        }
        invite.headers.add(HeaderKind::Contact, contact.to_string());
        let Ok(mut dialog) = Dialog::uac(&invite, response) else {
            return;
        };
        let target = match ended.side {
            // The agent is reached through its NAT binding; the carrier through the 2xx's
            // route set (RFC 3261 §12.2.1.1).
            Side::Agent => ended.target,
            Side::Customer => Target {
                addr: super::legs::hop_address(dialog.next_hop()).unwrap_or(ended.target.addr),
                transport: ended.target.transport,
            },
        };
        let bye = !ended.byed.contains(&remote_tag);
        if bye {
            ended.byed.push(remote_tag);
        }
        self.endpoint.send_stateless(dialog.ack(cseq.seq), target);
        if bye {
            let request = dialog.request(Method::Bye);
            if let Ok(tx) = self.endpoint.send_request(now, request, target) {
                // Nobody waits for its outcome.
                self.ignored_tx.insert(tx);
            }
        }
    }
}

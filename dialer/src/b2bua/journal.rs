//! What the call journal keeps of a call under way, so that a dialer started again after a
//! crash can account for it: the CDR as it would read if the call ended now `interrupted`,
//! and the confirmed dialog of each leg, enough to end it with BYE (RFC 3261 §15.1.1).

use super::*;
use serde::{Deserialize, Serialize};
use sip_core::dialog::{DialogId, DialogState};
use sip_core::message::{NameAddr, Uri};

/// A restart's BYE goes out with the journalled local CSeq plus this: in-dialog requests sent
/// after the last journal write (a session refresh, an INFO) used numbers in between, and a
/// UAS takes any CSeq above the last it saw as in order (RFC 3261 §12.2.2).
const CSEQ_JUMP: u32 = 100;

/// Q.850 41 "temporary failure": the dialer stopped under the call.
const INTERRUPTED_CAUSE: u8 = 41;

/// One leg's confirmed dialog, as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalLeg {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
    /// The CSeq of the last request we sent in the dialog.
    pub local_seq: u32,
    /// From of our requests (no tag).
    pub local_uri: String,
    /// To of our requests (no tag).
    pub remote_uri: String,
    /// The peer's Contact.
    pub remote_target: String,
    /// Route headers, in order.
    pub route_set: Vec<String>,
    /// Where the leg's requests were sent.
    pub addr: SocketAddr,
    /// `udp` or `tcp`.
    pub transport: String,
}

/// A call under way, for the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalCall {
    /// The CDR the call gets if the dialer stops now: outcome `interrupted`, ended now.
    pub cdr: Cdr,
    /// The legs with a confirmed dialog.
    pub legs: Vec<JournalLeg>,
}

/// A journalled leg the dialer cannot use (text it did not write).
#[derive(Debug, thiserror::Error)]
#[error("journalled dialog {call_id}: {what}")]
pub struct JournalLegError {
    call_id: String,
    what: String,
}

fn transport_name(t: Transport) -> String {
    format!("{t:?}").to_ascii_lowercase()
}

fn transport_named(name: &str) -> Option<Transport> {
    [Transport::Udp, Transport::Tcp, Transport::Tls]
        .into_iter()
        .find(|t| transport_name(*t) == name)
}

impl JournalLeg {
    fn of(leg: &Leg) -> Option<JournalLeg> {
        let d = leg.dialog.as_ref()?;
        (d.state == DialogState::Confirmed).then(|| JournalLeg {
            call_id: d.id.call_id.clone(),
            local_tag: d.id.local_tag.clone(),
            remote_tag: d.id.remote_tag.clone(),
            local_seq: d.local_seq,
            local_uri: d.local_uri.to_string(),
            remote_uri: d.remote_uri.to_string(),
            remote_target: d.remote_target.to_string(),
            route_set: d.route_set.iter().map(ToString::to_string).collect(),
            addr: leg.target.addr,
            transport: transport_name(leg.target.transport),
        })
    }

    /// The dialog back, its CSeq moved past anything sent since it was journalled.
    fn dialog(&self) -> Result<(Dialog, Target), JournalLegError> {
        let bad = |what: String| JournalLegError {
            call_id: self.call_id.clone(),
            what,
        };
        let name_addr = |header, text: &str| {
            NameAddr::parse(header, text).map_err(|e| bad(format!("{header}: {e}")))
        };
        let route_set = self
            .route_set
            .iter()
            .map(|r| name_addr("Route", r))
            .collect::<Result<_, _>>()?;
        let transport = transport_named(&self.transport)
            .ok_or_else(|| bad(format!("transport {:?}", self.transport)))?;
        let dialog = Dialog {
            id: DialogId {
                call_id: self.call_id.clone(),
                local_tag: self.local_tag.clone(),
                remote_tag: self.remote_tag.clone(),
            },
            state: DialogState::Confirmed,
            local_seq: self.local_seq.wrapping_add(CSEQ_JUMP),
            remote_seq: None,
            local_uri: name_addr("From", &self.local_uri)?,
            remote_uri: name_addr("To", &self.remote_uri)?,
            remote_target: Uri::parse(&self.remote_target)
                .map_err(|e| bad(format!("Contact: {e}")))?,
            route_set,
            local_contact: None,
        };
        let target = Target {
            addr: self.addr,
            transport,
        };
        Ok((dialog, target))
    }
}

impl Core {
    /// What the journal keeps of `call` now; `None` for an unknown call or an agent session
    /// (a session is a shift, not a call, and has no CDR).
    pub fn journal_call(&self, now: Time, call: CallId) -> Option<JournalCall> {
        let c = self.calls.get(&call)?;
        if matches!(c.role, Role::Session { .. }) {
            return None;
        }
        let ending = Ending {
            outcome: CallOutcome::Interrupted,
            status: 0,
            cause: INTERRUPTED_CAUSE,
            by: HungUpBy::Dialer,
        };
        let cdr = self.cdr_of(now, c, &ending, &MediaTotals::default());
        let legs = std::iter::once(&c.customer)
            .chain(c.agent.as_ref())
            .filter_map(JournalLeg::of)
            .collect();
        Some(JournalCall { cdr, legs })
    }

    /// Ends a dialog a dialer stopped by a crash left up: a BYE in a transaction whose outcome
    /// nobody waits for.
    pub fn bye_journalled(&mut self, now: Time, leg: &JournalLeg) -> Result<(), JournalLegError> {
        let (mut dialog, target) = leg.dialog()?;
        let bye = dialog.request(Method::Bye);
        let tx = self
            .endpoint
            .send_request(now, bye, target)
            .map_err(|e| JournalLegError {
                call_id: leg.call_id.clone(),
                what: e.to_string(),
            })?;
        self.ignored_tx.insert(tx);
        Ok(())
    }

    /// Call ids start at `first` (or above, if some were handed out already): ids of an
    /// earlier run of the dialer are never used again.
    pub fn start_call_ids_at(&mut self, first: u64) {
        self.next_call = self.next_call.max(first);
    }

    /// The id the next call will get.
    pub fn next_call_id(&self) -> u64 {
        self.next_call
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journalled_leg_reads_back_as_the_dialog_with_its_cseq_moved_on() {
        let leg = JournalLeg {
            call_id: "abc@dialer".into(),
            local_tag: "l1".into(),
            remote_tag: "r1".into(),
            local_seq: 3,
            local_uri: "<sip:+15550100@carrier.test>".into(),
            remote_uri: "<sip:+15550200@carrier.test>".into(),
            remote_target: "sip:peer@192.0.2.7:5070".into(),
            route_set: vec!["<sip:proxy.test;lr>".into()],
            addr: "192.0.2.1:5060".parse().unwrap(),
            transport: "udp".into(),
        };
        let (mut dialog, target) = leg.dialog().expect("parses");
        assert_eq!(target.addr, leg.addr);
        assert_eq!(target.transport, Transport::Udp);
        let bye = String::from_utf8(dialog.request(Method::Bye).to_bytes()).unwrap();
        assert!(
            bye.starts_with("BYE sip:peer@192.0.2.7:5070 SIP/2.0"),
            "{bye}"
        );
        assert!(
            bye.contains(&format!("CSeq: {} BYE", 3 + CSEQ_JUMP + 1)),
            "{bye}"
        );
        assert!(bye.contains("Route: <sip:proxy.test;lr>"), "{bye}");
        assert!(bye.contains("tag=l1") && bye.contains("tag=r1"), "{bye}");
        let bad = JournalLeg {
            transport: "carrier-pigeon".into(),
            ..leg
        };
        assert!(bad.dialog().is_err());
    }
}

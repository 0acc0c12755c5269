//! The four transaction state machines of RFC 3261 §17, with RFC 6026's Accepted state.
//!
//! A transaction holds only what it needs to retransmit and to match: the bytes of the
//! request (client) or of the last response (server), its timers and its state. The
//! [`crate::endpoint::Endpoint`] owns them, routes messages to them and runs their timers.

pub mod timer;

use crate::message::Method;
use crate::time::Time;
use std::net::SocketAddr;
use std::time::Duration;
pub use timer::{Timer, TimerConfig};

/// Identifies a transaction inside one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(pub u64);

/// Which side of the transaction we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We sent the request.
    Client,
    /// We received the request.
    Server,
}

/// Transaction states (RFC 3261 Figures 5-8, RFC 6026 Figures 3 and 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// INVITE client: request sent, nothing received.
    Calling,
    /// Non-INVITE: request sent or received, no response yet.
    Trying,
    /// A provisional response was received or sent.
    Proceeding,
    /// A final non-2xx (INVITE) or any final (non-INVITE) response was received or sent.
    Completed,
    /// INVITE: a 2xx was received or sent (RFC 6026).
    Accepted,
    /// INVITE server: the ACK for a non-2xx arrived.
    Confirmed,
    /// Finished; about to be removed.
    Terminated,
}

/// A transport: reliability decides whether timers retransmit (RFC 3261 §17.1.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP: unreliable, the transaction retransmits.
    Udp,
    /// TCP: reliable, no retransmissions.
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2.1): reliable, no retransmissions.
    Tls,
}

impl Transport {
    /// True for transports that deliver reliably.
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }

    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The `transport` URI parameter naming it (RFC 3261 §19.1.1); none for UDP, the default.
    pub fn uri_param(self) -> Option<&'static str> {
        match self {
            Transport::Udp => None,
            Transport::Tcp => Some("tcp"),
            Transport::Tls => Some("tls"),
        }
    }
}

/// The state of one transaction.
#[derive(Debug)]
pub(crate) struct Transaction {
    pub role: Role,
    pub method: Method,
    pub state: State,
    pub transport: Transport,
    /// Where requests (client) or responses (server) go.
    pub peer: SocketAddr,
    /// Client: the request as sent. Server: unused (empty).
    pub request: Vec<u8>,
    /// Server: the last response sent. Client INVITE: the ACK sent for a non-2xx final.
    pub last: Option<Vec<u8>>,
    /// Current retransmit interval of timer A, E or G.
    pub interval: Duration,
    /// Armed timers and when they fire.
    pub timers: Vec<(Timer, Time)>,
    /// Client INVITE: a provisional response has arrived (CANCEL may be sent, §9.1).
    pub provisional_seen: bool,
    /// Client INVITE: CANCEL asked for before any provisional; sent when one arrives.
    pub cancel_pending: bool,
    /// Server INVITE: matching data for the ACK of a 2xx, which has its own branch (§17.1.1.3).
    pub ack_key: Option<AckKey>,
    /// Key in the endpoint's lookup table, removed on termination.
    pub key: TransactionKey,
}

/// What an ACK for a 2xx must share with the INVITE's dialog and CSeq (RFC 3261 §13.2.2.4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct AckKey {
    pub call_id: String,
    pub cseq: u32,
    pub from_tag: String,
    pub to_tag: String,
}

/// How a message finds its transaction (RFC 3261 §17.1.3, §17.2.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TransactionKey {
    /// Client transactions: our branch and the CSeq method.
    Client { branch: String, method: String },
    /// RFC 3261 server transactions: branch, sent-by and method (ACK counts as INVITE).
    Server {
        branch: String,
        sent_by: String,
        method: String,
    },
    /// RFC 2543 fallback: no magic cookie in the branch (§17.2.3).
    Legacy {
        request_uri: String,
        call_id: String,
        from_tag: String,
        cseq: u32,
        top_via: String,
        method: String,
    },
}

impl Transaction {
    pub fn is_invite(&self) -> bool {
        self.method == Method::Invite
    }

    pub fn reliable(&self) -> bool {
        self.transport.is_reliable()
    }

    /// Arms a timer `after` from `now`; a zero duration fires at `now` (the RFC's "fires
    /// immediately" for reliable transports).
    pub fn arm(&mut self, timer: Timer, now: Time, after: Duration) -> Time {
        let at = now + after;
        self.disarm(timer);
        self.timers.push((timer, at));
        at
    }

    pub fn disarm(&mut self, timer: Timer) {
        self.timers.retain(|(t, _)| *t != timer);
    }

    pub fn deadline(&self, timer: Timer) -> Option<Time> {
        self.timers
            .iter()
            .find(|(t, _)| *t == timer)
            .map(|(_, at)| *at)
    }
}

//! Dialogs (RFC 3261 §12) and the requests sent inside them (§12.2, §13.2.2.4).
//!
//! A [`Dialog`] is plain state the call logic keeps per leg: identifiers, CSeq counters,
//! the route set and the remote target. It builds in-dialog requests (BYE, re-INVITE,
//! UPDATE, INFO, OPTIONS, PRACK) and the ACK for a 2xx, and checks incoming requests.
//! It sends nothing itself: requests go through [`crate::endpoint::Endpoint`].

use crate::message::{
    HeaderKind, Method, MissingHeader, NameAddr, Request, Response, SipMessage, Uri,
};
use std::fmt;

/// Dialog identifier: Call-ID, local tag, remote tag (RFC 3261 §12).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// The Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

impl fmt::Display for DialogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{};local={};remote={}",
            self.call_id, self.local_tag, self.remote_tag
        )
    }
}

/// Early (from a 1xx with a To tag) or confirmed (after a 2xx).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
}

/// Why a dialog could not be made or a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    /// A header the dialog needs is missing or malformed.
    #[error(transparent)]
    Header(#[from] MissingHeader),
    /// The response carries no To tag, so it cannot create a dialog (RFC 3261 §12.1).
    #[error("the response has no To tag")]
    NoRemoteTag,
    /// The message has no usable Contact (RFC 3261 §12.1.1, §12.1.2).
    #[error("the message has no Contact URI")]
    NoContact,
    /// The request's CSeq is lower than the last one from the peer: answer 500
    /// (RFC 3261 §12.2.2).
    #[error("CSeq {got} is lower than the last remote CSeq {last}")]
    CSeqOutOfOrder {
        /// Received.
        got: u32,
        /// Last seen.
        last: u32,
    },
}

/// One dialog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID and tags.
    pub id: DialogId,
    /// Early or confirmed.
    pub state: DialogState,
    /// The CSeq of the last request we sent in this dialog.
    pub local_seq: u32,
    /// The CSeq of the last request the peer sent, if any.
    pub remote_seq: Option<u32>,
    /// Our URI (From of our requests), without tag.
    pub local_uri: NameAddr,
    /// The peer's URI (To of our requests), without tag.
    pub remote_uri: NameAddr,
    /// Where our in-dialog requests go: the peer's Contact.
    pub remote_target: Uri,
    /// The route set, in the order Route headers are written.
    pub route_set: Vec<NameAddr>,
    /// Our Contact, put into target-refresh requests.
    pub local_contact: Option<NameAddr>,
}

fn contact_uri(m: &impl SipMessage) -> Result<Uri, DialogError> {
    m.contacts()?
        .into_iter()
        .find_map(|c| c.address().map(|a| a.uri.clone()))
        .ok_or(DialogError::NoContact)
}

fn without_tag(mut a: NameAddr) -> NameAddr {
    a.params.remove("tag");
    a
}

impl Dialog {
    /// The dialog a UAC gets from a 1xx (with a To tag) or 2xx to its INVITE
    /// (RFC 3261 §12.1.2): route set = Record-Route reversed, remote target = Contact.
    pub fn uac(request: &Request, response: &Response) -> Result<Dialog, DialogError> {
        let to = response.to_header()?;
        let remote_tag = to.tag().ok_or(DialogError::NoRemoteTag)?.to_owned();
        let from = request.from_header()?;
        let local_tag = from.tag().unwrap_or_default().to_owned();
        let mut route_set = response.record_routes()?;
        route_set.reverse();
        let remote_target = match contact_uri(response) {
            Ok(u) => u,
            // A 1xx may lack Contact; the 2xx will bring it. Until then, the Request-URI.
            Err(DialogError::NoContact) if response.status < 200 => request.uri.clone(),
            Err(e) => return Err(e),
        };
        let local_contact = request
            .contacts()
            .ok()
            .and_then(|c| c.into_iter().find_map(|c| c.address().cloned()));
        Ok(Dialog {
            id: DialogId {
                call_id: request.call_id()?.to_owned(),
                local_tag,
                remote_tag,
            },
            state: if response.status < 200 {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            local_seq: request.cseq()?.seq,
            remote_seq: None,
            local_uri: without_tag(from),
            remote_uri: without_tag(to),
            remote_target,
            route_set,
            local_contact,
        })
    }

    /// The dialog a UAS gets when it answers `request` with `response` (which carries our
    /// To tag) (RFC 3261 §12.1.1): route set = Record-Route in order, remote target = the
    /// request's Contact.
    pub fn uas(request: &Request, response: &Response) -> Result<Dialog, DialogError> {
        let to = response.to_header()?;
        let local_tag = to.tag().ok_or(DialogError::NoRemoteTag)?.to_owned();
        let from = request.from_header()?;
        let remote_tag = from.tag().unwrap_or_default().to_owned();
        let local_contact = response
            .contacts()
            .ok()
            .and_then(|c| c.into_iter().find_map(|c| c.address().cloned()));
        Ok(Dialog {
            id: DialogId {
                call_id: request.call_id()?.to_owned(),
                local_tag,
                remote_tag,
            },
            state: if response.status < 200 {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            local_seq: 0,
            remote_seq: Some(request.cseq()?.seq),
            local_uri: without_tag(to),
            remote_uri: without_tag(from),
            remote_target: contact_uri(request)?,
            route_set: request.record_routes()?,
            local_contact,
        })
    }

    /// A 2xx confirms an early dialog; the route set and remote target are taken from it
    /// (RFC 3261 §13.2.2.4: the route set is recomputed from the 2xx).
    pub fn confirm(&mut self, response: &Response) -> Result<(), DialogError> {
        let mut rr = response.record_routes()?;
        rr.reverse();
        self.route_set = rr;
        self.remote_target = contact_uri(response)?;
        self.state = DialogState::Confirmed;
        Ok(())
    }

    /// A target refresh (re-INVITE, UPDATE, or their 2xx) replaces the remote target with
    /// the new Contact (RFC 3261 §12.2.1.2, §12.2.2). The route set never changes after
    /// the dialog is confirmed, even when a later 2xx lacks Record-Route.
    pub fn refresh_target(&mut self, m: &impl SipMessage) {
        if let Ok(u) = contact_uri(m) {
            self.remote_target = u;
        }
    }

    /// True when a request we received belongs to this dialog (UAS view of the tags).
    pub fn matches_request(&self, request: &Request) -> bool {
        let (Ok(call_id), Ok(from), Ok(to)) = (
            request.call_id(),
            request.from_header(),
            request.to_header(),
        ) else {
            return false;
        };
        call_id == self.id.call_id
            && from.tag() == Some(self.id.remote_tag.as_str())
            && to.tag() == Some(self.id.local_tag.as_str())
    }

    /// Checks a request from the peer (RFC 3261 §12.2.2): CSeq must not go backwards
    /// (ACK and CANCEL reuse the INVITE's number and are exempt); target refreshes update
    /// the remote target.
    pub fn on_remote_request(&mut self, request: &Request) -> Result<(), DialogError> {
        let seq = request.cseq()?.seq;
        if !matches!(request.method, Method::Ack | Method::Cancel) {
            if let Some(last) = self.remote_seq {
                if seq < last {
                    return Err(DialogError::CSeqOutOfOrder { got: seq, last });
                }
            }
            self.remote_seq = Some(seq);
        }
        if matches!(request.method, Method::Invite | Method::Update) {
            self.refresh_target(request);
        }
        Ok(())
    }

    /// The Request-URI and Route headers for a request in this dialog
    /// (RFC 3261 §12.2.1.1): loose routing keeps the remote target as Request-URI; a
    /// strict router first in the route set becomes the Request-URI and the remote target
    /// is appended as the last Route.
    fn uri_and_routes(&self) -> (Uri, Vec<String>) {
        match self.route_set.first() {
            None => (self.remote_target.clone(), Vec::new()),
            Some(first) if first.uri.as_sip().is_some_and(|u| u.is_loose_router()) => (
                self.remote_target.clone(),
                self.route_set.iter().map(|r| r.to_string()).collect(),
            ),
            Some(first) => {
                let mut uri = first.uri.clone();
                if let Uri::Sip(u) = &mut uri {
                    // §12.2.1.1: parameters not allowed in a Request-URI are stripped.
                    u.headers = None;
                }
                let mut routes: Vec<String> =
                    self.route_set[1..].iter().map(|r| r.to_string()).collect();
                routes.push(NameAddr::new(self.remote_target.clone()).to_string());
                (uri, routes)
            }
        }
    }

    /// The URI of the next hop for requests in this dialog: the first route if there is a
    /// route set, else the remote target. The runtime resolves it to an address.
    pub fn next_hop(&self) -> &Uri {
        self.route_set
            .first()
            .map(|r| &r.uri)
            .unwrap_or(&self.remote_target)
    }

    fn base_request(&self, method: Method, seq: u32) -> Request {
        let (uri, routes) = self.uri_and_routes();
        let mut r = Request::new(method.clone(), uri);
        let mut from = self.local_uri.clone();
        from.params.set("tag", Some(&self.id.local_tag));
        let mut to = self.remote_uri.clone();
        if !self.id.remote_tag.is_empty() {
            to.params.set("tag", Some(&self.id.remote_tag));
        }
        for route in routes {
            r.headers.add(HeaderKind::Route, route);
        }
        r.headers.add(HeaderKind::From, from.to_string());
        r.headers.add(HeaderKind::To, to.to_string());
        r.headers.add(HeaderKind::CallId, self.id.call_id.clone());
        r.headers.add(HeaderKind::CSeq, format!("{seq} {method}"));
        if matches!(
            method,
            Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
        ) {
            if let Some(c) = &self.local_contact {
                r.headers.add(HeaderKind::Contact, c.to_string());
            }
        }
        r
    }

    /// A new request in the dialog with the next local CSeq (RFC 3261 §12.2.1.1): BYE,
    /// re-INVITE, UPDATE, INFO, OPTIONS, PRACK, REFER ...
    pub fn request(&mut self, method: Method) -> Request {
        self.local_seq = self.local_seq.wrapping_add(1);
        self.base_request(method, self.local_seq)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_seq` (RFC 3261 §13.2.2.4): sent
    /// to the 2xx's Contact through the route set, CSeq number of the INVITE.
    pub fn ack(&self, invite_seq: u32) -> Request {
        self.base_request(Method::Ack, invite_seq)
    }
}

#[cfg(test)]
mod tests;

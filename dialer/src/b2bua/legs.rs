//! The per-leg SIP logic of the core: INVITE, challenges, redirects, answers, BYE, CANCEL.

use super::*;

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE";

impl Core {
    fn media_config(codecs: &[Codec]) -> MediaConfig {
        MediaConfig {
            codecs: codecs.to_vec(),
            ..MediaConfig::default()
        }
    }

    /// Builds and sends the INVITE of a leg to `uri` (a new one, an authenticated retry, or
    /// a redirect), with our offer.
    pub(super) fn send_invite(
        &mut self,
        now: Time,
        call: CallId,
        side: Side,
        uri: Uri,
        auth_headers: Option<Vec<(String, String)>>,
    ) {
        let contact_host = self.config.contact_host.clone();
        let contact_port = self.config.contact_port;
        let tls_contact_port = self.contact_port_for(Transport::Tls);
        let media_ip = self.config.media_ip;
        let events = self.takes_telephone_events(call, side);
        let srtp = self.srtp_policy(call, side);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let trunk = self.config.trunks[c.trunk].clone();
        let (codecs, from, to, contact_user) = match side {
            Side::Customer => {
                let caller_id = c.caller_id.clone().unwrap_or(trunk.caller_id.clone());
                let mut from = NameAddr::new(Uri::Sip(SipUri::new(
                    Some(&caller_id),
                    Host::Domain(trunk.domain.clone()),
                    None,
                )));
                from.display = trunk
                    .caller_name
                    .as_deref()
                    .map(sip_core::message::scan::quote);
                let to = NameAddr::new(Uri::Sip(SipUri::new(
                    Some(&c.dialled),
                    Host::Domain(trunk.domain.clone()),
                    None,
                )));
                (trunk.codecs.clone(), from, to, caller_id)
            }
            Side::Agent => {
                let extension = c.agent_ext.clone().unwrap_or_default();
                let codecs = self
                    .board
                    .target(&extension)
                    .map(|t| t.codecs.clone())
                    .unwrap_or_default();
                // The agent sees the customer's number as the caller (RFC 3261 §8.1.1.3),
                // as it was given ("+1 555 0100", "(555) 123-4567"): in the user part escaped
                // (RFC 3261 §25.1 `user` = unreserved / escaped / user-unreserved, so a
                // space, '%', '#', '@', '<' or a control character cannot break the URI or
                // the header), and in the display name quoted, without control characters.
                let user: String = c
                    .number
                    .bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => char::from(b).to_string(),
                        b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')' => {
                            char::from(b).to_string()
                        }
                        b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/' => {
                            char::from(b).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect();
                let shown: String = c.number.chars().filter(|ch| !ch.is_control()).collect();
                let mut from = NameAddr::new(Uri::Sip(SipUri::new(
                    (!user.is_empty()).then_some(user.as_str()),
                    contact_host.clone(),
                    Some(contact_port),
                )));
                from.display = (!shown.trim().is_empty())
                    .then(|| sip_core::message::scan::quote(shown.trim()));
                let to = NameAddr::new(Uri::Sip(SipUri::new(
                    Some(&extension),
                    contact_host.clone(),
                    Some(contact_port),
                )));
                (codecs, from, to, "dialer".to_owned())
            }
        };
        let agent_headers = if side == Side::Agent {
            c.agent_headers.clone()
        } else {
            Vec::new()
        };
        let Some(leg) = leg_of(c, side) else {
            return;
        };
        leg.cseq += 1;
        let mut from = from;
        from.params.set("tag", Some(&leg.local_tag));
        let mut r = Request::new(Method::Invite, uri);
        r.headers.add(HeaderKind::From, from.to_string());
        r.headers.add(HeaderKind::To, to.to_string());
        r.headers.add(HeaderKind::CallId, leg.call_id.clone());
        r.headers
            .add(HeaderKind::CSeq, format!("{} INVITE", leg.cseq));
        let port = match leg.target.transport {
            Transport::Tls => tls_contact_port,
            _ => contact_port,
        };
        let contact = NameAddr::new(Uri::Sip(super::our_contact(
            &contact_host,
            port,
            &contact_user,
            leg.target.transport,
            &r.uri,
        )));
        r.headers.add(HeaderKind::Contact, contact.to_string());
        r.headers.add(HeaderKind::Allow, ALLOW);
        // RFC 3262 §3 (reliable provisionals) towards the trunk, where early media and
        // carrier-side announcements live; RFC 4028 §7.1 (session timers) on both legs.
        r.headers.add(
            HeaderKind::Supported,
            if side == Side::Customer {
                "100rel, timer"
            } else {
                "timer"
            },
        );
        if let Some(se) = leg.session_expires {
            // RFC 4028 §7.1: we prefer to refresh ourselves, so a silent peer is noticed.
            r.headers
                .add(HeaderKind::SessionExpires, format!("{se};refresher=uac"));
            r.headers.add(HeaderKind::MinSe, leg.min_se.to_string());
        }
        if side == Side::Customer && trunk.pai {
            let pai = NameAddr::new(Uri::Sip(SipUri::new(
                Some(&trunk.caller_id),
                Host::Domain(trunk.domain.clone()),
                None,
            )));
            r.headers
                .add(HeaderKind::PAssertedIdentity, pai.to_string());
        }
        for (name, value) in auth_headers
            .unwrap_or_default()
            .into_iter()
            .chain(agent_headers)
        {
            r.headers.push(HeaderName::parse(&name), value);
        }
        // A new offer only for a new INVITE; retries resend the same session version.
        let offer = match &leg.offer {
            Some(o) => o.clone(),
            None => {
                let local = LocalEndpoint {
                    address: media_ip,
                    rtp_port: leg.rtp_port,
                    session_id: leg.session_id,
                    session_version: 1,
                };
                let config = MediaConfig {
                    telephone_event: events,
                    ..Self::media_config(&codecs)
                };
                let mut offer = build_offer(&config, &local);
                // RFC 4568 §7.1.1: fresh keys per leg and per call.
                media::sdp::add_crypto_to_offer(
                    &mut offer,
                    srtp,
                    super::srtp::SUITES,
                    &mut *self.rng,
                );
                offer
            }
        };
        r.set_body("application/sdp", offer.to_sdp_string().into_bytes());
        leg.local_sdp = Some(offer.clone());
        leg.offer = Some(offer);
        leg.invite = Some(r.clone());
        leg.state = LegState::Inviting;
        let target = leg.target;
        match self.endpoint.send_request(now, r, target) {
            Ok(tx) => {
                let leg = leg_of(self.calls.get_mut(&call).expect("looked up above"), side)
                    .expect("the leg exists: it was just used");
                leg.invite_tx = Some(tx);
                self.by_tx.insert(tx, LegRef { call, side });
            }
            Err(_) => self.leg_failed(now, call, side, 500, CallOutcome::Failed),
        }
    }

    /// Endpoint events: responses to our requests, requests from peers, timeouts.
    pub(super) fn on_event(&mut self, e: Event) {
        let now = self.now;
        match e {
            Event::Response {
                transaction,
                response,
            } if self.ignored_tx.contains(&transaction) => {
                if response.status >= 200 {
                    self.ignored_tx.remove(&transaction);
                }
            }
            Event::Timeout { transaction, .. } if self.ignored_tx.remove(&transaction) => {}
            Event::Response {
                transaction,
                response,
            } => match self.by_tx.get(&transaction).copied() {
                Some(r) => self.on_response(now, r, transaction, response),
                None => {
                    // The 2xx of an INVITE whose call has already ended.
                    self.on_late_2xx(now, &response);
                    self.others.push_back(Event::Response {
                        transaction,
                        response,
                    })
                }
            },
            Event::Timeout {
                transaction,
                timer,
                method,
            } => match self.by_tx.remove(&transaction) {
                Some(r) if self.is_refresh(r, transaction) => {
                    self.refresh_failed(now, r.call, r.side, 408)
                }
                Some(_) if method == Method::Prack => {
                    // RFC 3262 §4: a lost PRACK leaves the UAS retransmitting its 1xx, which
                    // it answers itself; the INVITE goes on.
                }
                Some(r) if method == Method::Invite => {
                    if !self.fail_over(now, r, transaction) {
                        self.leg_failed(now, r.call, r.side, 408, CallOutcome::Failed)
                    }
                }
                Some(r) => self.on_bye_done(now, r),
                None => self.others.push_back(Event::Timeout {
                    transaction,
                    timer,
                    method,
                }),
            },
            Event::Request {
                transaction,
                request,
                source,
                transport,
            } => self.on_request(now, transaction, request, source, transport),
            Event::Ack { request, .. } => self.on_dialog_ack(&request),
            Event::StrayResponse { response, source } => {
                self.on_stray(now, &response);
                self.others
                    .push_back(Event::StrayResponse { response, source });
            }
            other => self.others.push_back(other),
        }
    }

    fn on_stray(&mut self, now: Time, response: &Response) {
        // A 2xx retransmitted after the INVITE transaction ended: ACK it again
        // (RFC 3261 §13.2.2.4), or the peer keeps retransmitting and then hangs up.
        let (Ok(cseq), Ok(call_id)) = (response.cseq(), response.call_id()) else {
            return;
        };
        if cseq.method != Method::Invite || !response.is_success() {
            return;
        }
        let Some(r) = self.by_sip_call_id.get(call_id).copied() else {
            self.on_late_2xx(now, response);
            return;
        };
        let Some(c) = self.calls.get_mut(&r.call) else {
            return;
        };
        let Some(leg) = leg_of(c, r.side) else {
            return;
        };
        if let Some(d) = &leg.dialog {
            let ack = d.ack(cseq.seq);
            let target = leg.target;
            self.endpoint.send_stateless(ack, target);
        }
    }

    fn on_response(&mut self, now: Time, r: LegRef, tx: TransactionId, response: Response) {
        let Ok(cseq) = response.cseq() else {
            return;
        };
        if self.is_refresh(r, tx) {
            self.on_refresh_response(now, r, tx, response);
            return;
        }
        match cseq.method {
            Method::Invite => self.on_invite_response(now, r, tx, response),
            Method::Bye if response.status >= 200 => {
                self.by_tx.remove(&tx);
                self.on_bye_done(now, r);
            }
            _ => {
                if response.status >= 200 {
                    self.by_tx.remove(&tx);
                }
            }
        }
    }

    fn on_invite_response(&mut self, now: Time, r: LegRef, tx: TransactionId, response: Response) {
        let status = response.status;
        if status >= 200 && !(200..300).contains(&status) {
            self.by_tx.remove(&tx);
        }
        let Some(c) = self.calls.get_mut(&r.call) else {
            return;
        };
        let Some(leg) = leg_of(c, r.side) else {
            return;
        };
        if leg.invite_tx != Some(tx) {
            // A response to an INVITE this leg already replaced (auth retry): ignore.
            return;
        }
        match status {
            100 => {}
            101..=199 => self.on_provisional(now, r, &response),
            200..=299 => self.on_answer(now, r, response),
            300..=399 => self.on_redirect(now, r, &response),
            401 | 407 => self.on_challenge(now, r, &response),
            422 if leg.state == LegState::Inviting => {
                if !self.retry_with_min_se(now, r, &response) {
                    self.invite_failed(now, r, status);
                }
            }
            503 if self.fail_over(now, r, tx) => {}
            _ => self.invite_failed(now, r, status),
        }
    }

    /// RFC 3263 §4.3: the INVITE of a customer leg that timed out (Timer B) or got a 503
    /// goes to the next target of the trunk's name as a new transaction: the same request
    /// (Call-ID, From tag, CSeq, credentials, offer), a new Via branch. Each target gets its
    /// own Timer B, and a leg tries each at most once ([`sip_core::locate::MAX_TARGETS`]).
    /// Returns false when there is no target left, the leg is no longer inviting (a CANCEL,
    /// the call ending), or a provisional response made an early dialog (the request got
    /// through; a later 503 is the far end's), and the failure stands.
    fn fail_over(&mut self, now: Time, r: LegRef, failed: TransactionId) -> bool {
        let Some(c) = self.calls.get_mut(&r.call) else {
            return false;
        };
        if c.ending.is_some() {
            return false;
        }
        let Some(leg) = leg_of(c, r.side) else {
            return false;
        };
        if r.side != Side::Customer
            || leg.state != LegState::Inviting
            || leg.invite_tx != Some(failed)
            || !leg.early.is_empty()
        {
            return false;
        }
        let (Some(next), Some(invite)) = (leg.failover.next_target(), leg.invite.clone()) else {
            return false;
        };
        leg.target = next;
        match self.endpoint.send_request(now, invite, next) {
            Ok(tx) => {
                leg.invite_tx = Some(tx);
                self.by_tx.remove(&failed);
                self.by_tx.insert(tx, r);
                true
            }
            Err(_) => false,
        }
    }

    /// A final non-2xx to a leg's INVITE that ends the leg.
    fn invite_failed(&mut self, now: Time, r: LegRef, status: u16) {
        let Some(leg) = self.calls.get_mut(&r.call).and_then(|c| leg_of(c, r.side)) else {
            return;
        };
        let cancelled = leg.state == LegState::Cancelling;
        leg.state = LegState::Done;
        if cancelled && status == 487 {
            self.leg_done(now, r.call, r.side);
        } else {
            let outcome = match status {
                486 | 600 => CallOutcome::Busy,
                408 | 480 => CallOutcome::NoAnswer,
                487 => CallOutcome::Cancelled,
                403 | 603 => CallOutcome::Rejected,
                _ => CallOutcome::Failed,
            };
            self.leg_failed(now, r.call, r.side, status, outcome);
        }
    }

    /// Keeps the early dialog of a 1xx with a To tag and PRACKs a reliable one
    /// (RFC 3262 §4). Returns false when the response must not be processed further (a
    /// retransmitted or out-of-order reliable provisional), else the answer it carries.
    fn early_dialog(&mut self, now: Time, r: LegRef, response: &Response) -> Option<bool> {
        let c = self.calls.get_mut(&r.call)?;
        let leg = leg_of(c, r.side)?;
        let invite = leg.invite.as_ref()?;
        // RFC 3261 §12.1: a 1xx without a To tag makes no dialog; it is only progress.
        let tag = response.to_header().ok()?.tag()?.to_owned();
        let index = match leg.early.iter().position(|e| e.dialog.id.remote_tag == tag) {
            Some(i) => i,
            None => {
                let dialog = Dialog::uac(invite, response).ok()?;
                leg.early.push(EarlyDialog {
                    dialog,
                    rseq: None,
                    negotiated: None,
                });
                leg.early.len() - 1
            }
        };
        let reliable = response.has_option_tag(HeaderKind::Require, "100rel");
        let rseq = response
            .headers
            .get(HeaderKind::RSeq)
            .and_then(|v| sip_core::message::parse_u32("RSeq", v).ok());
        let (true, Some(rseq)) = (reliable, rseq) else {
            return Some(true);
        };
        let early = &mut leg.early[index];
        // RFC 3262 §4: the first reliable 1xx sets the sequence; a retransmission (same
        // RSeq) is discarded; one that is not the next number is neither PRACKed nor
        // processed.
        if let Some(last) = early.rseq {
            if rseq != last.wrapping_add(1) {
                return Some(false);
            }
        }
        early.rseq = Some(rseq);
        let invite_seq = response.cseq().map(|c| c.seq).unwrap_or(leg.cseq);
        let mut prack = early.dialog.request(Method::Prack);
        prack.headers.add(
            HeaderKind::RAck,
            sip_core::message::RAck {
                rseq,
                cseq: invite_seq,
                method: Method::Invite,
            }
            .to_string(),
        );
        // RFC 3262 §7.1: the PRACK is a request in the early dialog, sent like any other
        // (route set, then remote target); the agent is reached through its NAT binding.
        let target = match r.side {
            Side::Agent => leg.target,
            Side::Customer => Target {
                addr: hop_address(early.dialog.next_hop()).unwrap_or(leg.target.addr),
                transport: leg.target.transport,
            },
        };
        if let Ok(tx) = self.endpoint.send_request(now, prack, target) {
            self.by_tx.insert(tx, r);
        }
        Some(true)
    }

    fn on_provisional(&mut self, now: Time, r: LegRef, response: &Response) {
        if self.early_dialog(now, r, response) == Some(false) {
            return;
        }
        let srtp = self.srtp_policy(r.call, r.side);
        let Some(c) = self.calls.get_mut(&r.call) else {
            return;
        };
        match r.side {
            Side::Customer => {
                if c.progress.is_none() {
                    c.progress = Some(now);
                }
                if c.state == CallState::Dialing {
                    c.state = CallState::Progress;
                }
                let early = !response.body.is_empty()
                    && response
                        .content_type()
                        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/sdp"));
                let id = c.id;
                // Early media is received but nobody hears it yet: the relay learns the
                // carrier's address, the agent leg does not exist.
                if early {
                    if let Some(n) = Self::negotiate(&c.customer, response, srtp) {
                        let tag = response
                            .to_header()
                            .ok()
                            .and_then(|t| t.tag().map(str::to_owned));
                        if let Some(e) = c
                            .customer
                            .early
                            .iter_mut()
                            .find(|e| Some(&e.dialog.id.remote_tag) == tag.as_ref())
                        {
                            e.negotiated = Some(n.clone());
                        }
                        self.set_leg_media(id, Side::Customer, n);
                    }
                }
                self.emit_call(
                    id,
                    ApiEvent::Progress {
                        call: id,
                        status: response.status,
                        tag: None,
                    },
                );
                if early {
                    self.emit_call(
                        id,
                        ApiEvent::EarlyMedia {
                            call: id,
                            tag: None,
                        },
                    );
                }
            }
            Side::Agent => {
                if response.status == 180 || response.status == 183 {
                    let (id, agent) = (c.id, c.agent_ext.clone().unwrap_or_default());
                    if c.state != CallState::AgentRinging {
                        c.state = CallState::AgentRinging;
                        self.board.ringing(now, &agent, id);
                        self.emit_call(
                            id,
                            ApiEvent::AgentRinging {
                                call: id,
                                agent,
                                tag: None,
                            },
                        );
                    }
                }
            }
        }
    }

    /// The answer in `response` to the leg's offer, with its SRTP keys (see `srtp.rs`).
    fn negotiate(
        leg: &Leg,
        response: &Response,
        policy: SrtpPolicy,
    ) -> Option<super::srtp::Answered> {
        let offer = leg.offer.as_ref()?;
        let answer = SessionDescription::parse_bytes(&response.body).ok()?;
        super::srtp::process_answer_with_srtp(offer, &answer, policy).ok()
    }

    fn on_answer(&mut self, now: Time, r: LegRef, response: Response) {
        let srtp = self.srtp_policy(r.call, r.side);
        let Some(c) = self.calls.get_mut(&r.call) else {
            return;
        };
        let id = c.id;
        let Some(leg) = leg_of(c, r.side) else {
            return;
        };
        let Some(invite) = leg.invite.clone() else {
            return;
        };
        let cseq = response.cseq().map(|c| c.seq).unwrap_or(leg.cseq);
        if let Some(d) = &leg.dialog {
            // RFC 3261 §13.2.2.4: every 2xx is ACKed; a retransmission of the one we took
            // gets the same ACK, a 2xx from another fork gets an ACK and then a BYE.
            let same = response
                .to_header()
                .ok()
                .is_some_and(|t| t.tag() == Some(d.id.remote_tag.as_str()));
            if same {
                let (ack, target) = (d.ack(cseq), leg.target);
                self.endpoint.send_stateless(ack, target);
            } else if let Ok(mut other) = Dialog::uac(&invite, &response) {
                let target = match r.side {
                    Side::Agent => leg.target,
                    Side::Customer => Target {
                        addr: hop_address(other.next_hop()).unwrap_or(leg.target.addr),
                        transport: leg.target.transport,
                    },
                };
                self.endpoint.send_stateless(other.ack(cseq), target);
                let bye = other.request(Method::Bye);
                if let Ok(tx) = self.endpoint.send_request(now, bye, target) {
                    self.ignored_tx.insert(tx);
                }
            }
            return;
        }
        let dialog = match Dialog::uac(&invite, &response) {
            Ok(mut d) => {
                // The 2xx picks one early dialog; requests already sent in it (PRACK)
                // used CSeq numbers the confirmed dialog must not reuse (RFC 3261
                // §12.2.1.1). The other forks' early dialogs end here; a late 2xx from
                // one of them is ACKed and ended above.
                let early = leg
                    .early
                    .iter()
                    .position(|e| e.dialog.id.remote_tag == d.id.remote_tag)
                    .map(|i| leg.early.swap_remove(i));
                leg.early.clear();
                if let Some(e) = &early {
                    d.local_seq = d.local_seq.max(e.dialog.local_seq);
                }
                leg.early_answer = early.and_then(|e| e.negotiated);
                d
            }
            Err(_) => {
                // A 2xx we cannot make a dialog of (no To tag, no Contact): ACK what we can
                // is impossible; end the leg.
                leg.state = LegState::Done;
                self.leg_failed(now, id, r.side, 502, CallOutcome::Failed);
                return;
            }
        };
        // RFC 3261 §13.2.2.4: the ACK goes to the 2xx's Contact through the route set.
        let ack = dialog.ack(cseq);
        let ack_target = match r.side {
            // The agent is always reached through the address it registered from.
            Side::Agent => leg.target,
            Side::Customer => Target {
                addr: hop_address(dialog.next_hop()).unwrap_or(leg.target.addr),
                transport: leg.target.transport,
            },
        };
        let was_cancelling = leg.state == LegState::Cancelling;
        // RFC 3262 §5 / RFC 3264: an answer in a reliable 1xx completes the offer/answer and
        // the 2xx may carry none; when the 2xx does carry SDP, it is what the peer sends
        // with, so it wins for the relay.
        let negotiated = if response.body.is_empty() {
            leg.early_answer.take()
        } else {
            Self::negotiate(leg, &response, srtp)
        };
        leg.peer_allows_update = response
            .headers
            .get_all(HeaderKind::Allow)
            .flat_map(sip_core::message::scan::split_list)
            .any(|m| m.eq_ignore_ascii_case("UPDATE"));
        leg.dialog = Some(dialog);
        leg.state = LegState::Confirmed;
        // In-dialog requests to the customer follow the route set; to the agent, its NAT
        // binding.
        if r.side == Side::Customer {
            leg.target = ack_target;
        }
        self.endpoint.send_stateless(ack, ack_target);
        if was_cancelling || c_is_ending(self.calls.get(&id)) {
            // A 2xx crossed our CANCEL (RFC 3261 §9.1): ACK it, then end it with BYE.
            self.send_bye(now, id, r.side);
            return;
        }
        let Some(answered) = negotiated else {
            // RFC 3264 §6: an answer we cannot use (no codec in common, or no usable
            // a=crypto where SRTP is required, RFC 4568 §7.1.3); end both legs (488
            // semantics).
            self.end_call(
                now,
                id,
                Ending {
                    outcome: CallOutcome::Failed,
                    status: 488,
                    cause: q850::cause_for_status(488),
                    by: HungUpBy::Dialer,
                },
            );
            return;
        };
        let codec = answered.0.codec.encoding_name().to_owned();
        let c = self.calls.get_mut(&id).expect("checked above");
        let leg = leg_of(c, r.side).expect("checked above");
        if let (Some(offer), Ok(answer)) = (
            leg.offer.as_ref(),
            SessionDescription::parse_bytes(&response.body),
        ) {
            // A party that answers on hold (sendonly, inactive) holds from the start.
            leg.remote_direction =
                super::hold::answered_direction(offer, &answer, &answered.0, Direction::SendRecv);
        }
        self.set_leg_media(id, r.side, answered);
        self.start_session_timer(now, id, r.side, &response);
        let session = self.is_session(id);
        let c = self.calls.get_mut(&id).expect("checked above");
        match r.side {
            Side::Customer => {
                c.answered = Some(now);
                c.state = CallState::CustomerAnswered;
                c.deadline = None;
                let ringback = c.ringback.clone();
                self.emit_call(
                    id,
                    ApiEvent::Answered {
                        call: id,
                        codec,
                        tag: None,
                    },
                );
                self.actions.push_back(Action::Media {
                    call: id,
                    op: MediaOp::StartRingback {
                        side: Side::Customer,
                        path: ringback,
                    },
                });
                self.emit_call(
                    id,
                    ApiEvent::RingbackStarted {
                        call: id,
                        tag: None,
                    },
                );
                self.call_agent(now, id);
            }
            Side::Agent if session => self.session_up(now, id),
            Side::Agent => {
                c.bridged = Some(now);
                c.state = CallState::Bridged;
                c.deadline = None;
                c.abandon_at = None;
                let agent = c.agent_ext.clone().unwrap_or_default();
                self.board.talking(now, &agent, id);
                self.waiting.retain(|w| *w != id);
                let c = self.calls.get_mut(&id).expect("checked above");
                let transcoding = c
                    .customer
                    .negotiated
                    .as_ref()
                    .is_some_and(|n| n.codec.encoding_name() != codec);
                self.actions.push_back(Action::Media {
                    call: id,
                    op: MediaOp::StopRingback {
                        side: Side::Customer,
                    },
                });
                self.emit_call(
                    id,
                    ApiEvent::Bridged {
                        call: id,
                        agent,
                        agent_codec: codec,
                        transcoding,
                        tag: None,
                    },
                );
                // A hold from before the bridge (the customer put the ringback on hold, or
                // the agent answered on hold) reaches the other party now.
                for side in [Side::Customer, Side::Agent] {
                    let held = self
                        .calls
                        .get(&id)
                        .and_then(|c| match side {
                            Side::Customer => Some(&c.customer),
                            Side::Agent => c.agent.as_ref(),
                        })
                        .map(|l| l.remote_direction)
                        .filter(|d| *d != Direction::SendRecv);
                    if let Some(held) = held {
                        self.remote_direction_is(now, id, side, held);
                    }
                }
            }
        }
    }

    fn on_redirect(&mut self, now: Time, r: LegRef, response: &Response) {
        let max = self.config.max_redirects;
        let Some(c) = self.calls.get_mut(&r.call) else {
            return;
        };
        let trunk = &self.config.trunks[c.trunk];
        let Some(leg) = leg_of(c, r.side) else {
            return;
        };
        if r.side == Side::Agent {
            // A 3xx from an agent's phone is never followed: an agent login could otherwise
            // make the dialer call any number (premium, the trunk) and bridge it to the
            // customer. It counts as the agent declining.
            leg.state = LegState::Done;
            self.leg_failed(now, r.call, r.side, response.status, CallOutcome::Rejected);
            return;
        }
        // Redirect fraud: a 3xx (from the carrier, or forged towards us) could send the call
        // to any number anywhere, a premium one included. Only the trunk's `redirect_hosts`
        // are followed (names without case, IP literals by address); a Contact elsewhere, or
        // one that is not a SIP URI, is skipped, and a 3xx with none left ends the call.
        let allowed = |uri: &Uri| {
            uri.as_sip().is_some_and(|u| {
                trunk.redirect_hosts.iter().any(|h| match (h, &u.host) {
                    (Host::Domain(a), Host::Domain(b)) => a
                        .trim_end_matches('.')
                        .eq_ignore_ascii_case(b.trim_end_matches('.')),
                    (a, b) => a.ip().is_some() && a.ip() == b.ip(),
                })
            })
        };
        let next = response.contacts().ok().and_then(|cs| {
            cs.into_iter()
                .filter_map(|c| c.address().map(|a| a.uri.clone()))
                .find(|uri| allowed(uri))
        });
        let proxy = trunk.proxy;
        match next {
            Some(uri) if leg.redirects < max => {
                leg.redirects += 1;
                // The new target is the Contact's, not the trunk's name: no failover there.
                leg.failover.clear();
                // RFC 3261 §8.1.3.4: a new request to the new target; a target with an IP
                // address is sent there directly, a name goes through the proxy.
                leg.target.addr = hop_address(&uri).unwrap_or(proxy);
                self.send_invite(now, r.call, r.side, uri, None);
            }
            _ => {
                leg.state = LegState::Done;
                self.leg_failed(now, r.call, r.side, response.status, CallOutcome::Failed);
            }
        }
    }

    fn on_challenge(&mut self, now: Time, r: LegRef, response: &Response) {
        let Some(c) = self.calls.get_mut(&r.call) else {
            return;
        };
        let trunk_creds = self.config.trunks[c.trunk].credentials.clone();
        let realm = self.config.trunks[c.trunk].realm.clone();
        let Some(leg) = leg_of(c, r.side) else {
            return;
        };
        let (Some(creds), Some(invite)) = (
            trunk_creds.filter(|_| r.side == Side::Customer),
            leg.invite.clone(),
        ) else {
            leg.state = LegState::Done;
            self.leg_failed(now, r.call, r.side, response.status, CallOutcome::Rejected);
            return;
        };
        let kind = if response.status == 407 {
            HeaderKind::ProxyAuthenticate
        } else {
            HeaderKind::WwwAuthenticate
        };
        let sent_kind = if response.status == 407 {
            HeaderKind::ProxyAuthorization
        } else {
            HeaderKind::Authorization
        };
        let mut challenges: Vec<&str> = response.headers.get_all(kind).collect();
        if let Some(realm) = &realm {
            // The trunk's password is only given to the trunk's realm: a challenge for any
            // other (a forged 407, a hop that is not the carrier) is not answered.
            let ours = |value: &&str| {
                sip_core::auth::parse_challenges(value).is_ok_and(|cs| {
                    cs.iter()
                        .any(|c| c.as_ref().is_ok_and(|c| c.realm == *realm))
                })
            };
            challenges.retain(ours);
            let chosen = sip_core::auth::select_challenge(challenges.iter().copied());
            if !chosen.is_ok_and(|c| c.realm == *realm) {
                leg.state = LegState::Done;
                self.leg_failed(now, r.call, r.side, response.status, CallOutcome::Rejected);
                return;
            }
        }
        let sent: Vec<&str> = invite.headers.get_all(sent_kind).collect();
        let uri = invite.uri.to_string();
        let outcome = leg.auth.handle_challenge(
            &ChallengedResponse {
                status: response.status,
                challenges: &challenges,
                sent: &sent,
            },
            &creds,
            &DigestRequest {
                method: "INVITE",
                uri: &uri,
                body: &invite.body,
            },
            self.endpoint.rng(),
        );
        match outcome {
            Ok(AuthOutcome::Retry { headers }) => {
                // RFC 3261 §22.2: same Call-ID and From tag, CSeq + 1, the credentials added.
                let headers = headers
                    .into_iter()
                    .map(|h| (h.name.as_str().to_owned(), h.value))
                    .collect();
                self.send_invite(now, r.call, r.side, invite.uri, Some(headers));
            }
            _ => {
                leg.state = LegState::Done;
                self.leg_failed(now, r.call, r.side, response.status, CallOutcome::Rejected);
            }
        }
    }
}

fn c_is_ending(c: Option<&Call>) -> bool {
    c.is_some_and(|c| c.ending.is_some())
}

/// The socket address of a URI whose host is an IP literal (the runtime resolves names
/// before the core sees them; a name falls back to the trunk's proxy).
pub(super) fn hop_address(uri: &Uri) -> Option<SocketAddr> {
    let u = uri.as_sip()?;
    let ip = u.host.ip()?;
    Some(SocketAddr::new(ip, u.port_or_default()))
}

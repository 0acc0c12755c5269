//! Requests from the peers inside the calls' dialogs, and the ending of calls: BYE and
//! CANCEL towards the other leg, media close, and the CDR.

use super::*;

impl Core {
    pub(super) fn on_request(
        &mut self,
        now: Time,
        tx: TransactionId,
        request: Request,
        source: SocketAddr,
        transport: Transport,
    ) {
        let to_tag = request
            .to_header()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned));
        let Some(to_tag) = to_tag else {
            match request.method {
                Method::Invite => {
                    // This dialer places calls; it does not take them. One answer, never
                    // retransmitted: a scanner's INVITE must not start 11 Timer G
                    // retransmissions towards the address it claims (reflection).
                    let tag = self.endpoint.new_tag();
                    let mut r = make_response(&request, 480, Some(&tag));
                    r.reason = "Temporarily Unavailable - no inbound calls".into();
                    let _ = self.endpoint.respond_once(tx, r);
                }
                _ => self.others.push_back(Event::Request {
                    transaction: tx,
                    request,
                    source,
                    transport,
                }),
            }
            return;
        };
        let leg_ref = request
            .call_id()
            .ok()
            .and_then(|id| self.by_sip_call_id.get(id).copied())
            .filter(|r| {
                self.calls
                    .get(&r.call)
                    .and_then(|c| match r.side {
                        Side::Customer => Some(&c.customer),
                        Side::Agent => c.agent.as_ref(),
                    })
                    .is_some_and(|l| l.local_tag == to_tag)
            });
        let Some(r) = leg_ref else {
            // RFC 3261 §12.2.2: a request for a dialog we do not have.
            if request.method != Method::Ack {
                let _ = self
                    .endpoint
                    .respond(now, tx, make_response(&request, 481, None));
            }
            return;
        };
        if request.method == Method::Ack {
            // ACKs reach the core as `Event::Ack` (see `on_dialog_ack`).
            return;
        }
        let c = self.calls.get_mut(&r.call).expect("found above");
        let leg = leg_of(c, r.side).expect("found above");
        if let Some(d) = leg.dialog.as_mut() {
            if d.on_remote_request(&request).is_err() {
                // RFC 3261 §12.2.2: CSeq lower than the last one: 500.
                let _ = self
                    .endpoint
                    .respond(now, tx, make_response(&request, 500, None));
                return;
            }
        }
        match request.method {
            Method::Bye => {
                let _ = self
                    .endpoint
                    .respond(now, tx, make_response(&request, 200, None));
                leg.state = LegState::Done;
                let bridged = c.bridged.is_some();
                let answered = c.answered.is_some();
                let by = match r.side {
                    Side::Customer => HungUpBy::Customer,
                    Side::Agent => HungUpBy::Agent,
                };
                // A customer who hangs up during the abandon message was abandoned by us.
                let outcome = match (c.abandoning.take(), r.side, bridged, answered) {
                    (Some(abandon), _, _, _) => abandon.outcome,
                    (None, _, true, _) => CallOutcome::Bridged,
                    (None, Side::Customer, false, true) => CallOutcome::Abandoned,
                    (None, Side::Agent, false, _) => CallOutcome::AgentFailed,
                    _ => CallOutcome::Failed,
                };
                self.end_call(
                    now,
                    r.call,
                    Ending {
                        outcome,
                        status: 200,
                        cause: q850::NORMAL_CLEARING,
                        by,
                    },
                );
            }
            Method::Invite | Method::Update => self.on_offer(now, tx, r, request),
            Method::Options => {
                let _ = self
                    .endpoint
                    .respond(now, tx, make_response(&request, 200, None));
            }
            Method::Info => self.on_info(now, tx, r, &request),
            _ => {
                let mut resp = make_response(&request, 501, None);
                resp.headers.add(
                    HeaderKind::Allow,
                    "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE",
                );
                let _ = self.endpoint.respond(now, tx, resp);
            }
        }
    }

    /// An ACK for a 2xx we sent (the endpoint matched it to our re-INVITE transaction, or to
    /// nothing): routed to its leg by Call-ID and our tag.
    pub(super) fn on_dialog_ack(&mut self, ack: &Request) {
        let (Ok(call_id), Some(to_tag)) = (
            ack.call_id(),
            ack.to_header()
                .ok()
                .and_then(|t| t.tag().map(str::to_owned)),
        ) else {
            return;
        };
        let Some(r) = self.by_sip_call_id.get(call_id).copied() else {
            return;
        };
        let ours = self
            .calls
            .get(&r.call)
            .and_then(|c| match r.side {
                Side::Customer => Some(&c.customer),
                Side::Agent => c.agent.as_ref(),
            })
            .is_some_and(|l| l.local_tag == to_tag);
        if ours {
            self.on_ack(r, ack);
        }
    }

    /// The ACK of a 2xx we sent to a re-INVITE: when that 2xx carried our offer, the ACK
    /// carries the answer (RFC 3261 §14.2, RFC 3264 §4), which the relay then follows.
    fn on_ack(&mut self, r: LegRef, ack: &Request) {
        let srtp = self.srtp_policy(r.call, r.side);
        let Some(leg) = self.calls.get_mut(&r.call).and_then(|c| leg_of(c, r.side)) else {
            return;
        };
        if !std::mem::take(&mut leg.offer_in_2xx) || ack.body.is_empty() {
            return;
        }
        let (Some(offer), Ok(answer)) = (
            leg.local_sdp.as_ref(),
            SessionDescription::parse_bytes(&ack.body),
        ) else {
            return;
        };
        let Ok(answered) = super::srtp::process_answer_with_srtp(offer, &answer, srtp) else {
            return;
        };
        let theirs =
            super::hold::answered_direction(offer, &answer, &answered.0, leg.remote_direction);
        self.set_leg_media(r.call, r.side, answered);
        self.remote_direction_is(self.now, r.call, r.side, theirs);
    }

    /// A re-INVITE or UPDATE inside a leg's dialog: answer its offer (or, without one,
    /// offer our current session), and give the relay the new negotiation.
    fn on_offer(&mut self, now: Time, tx: TransactionId, r: LegRef, request: Request) {
        if self.is_glare(r, &request) {
            // RFC 3261 §14.2, RFC 3311 §5.2: our re-INVITE is in progress on this dialog.
            let _ = self
                .endpoint
                .respond(now, tx, make_response(&request, 491, None));
            return;
        }
        let timer = match self.requested_timer(r, &request) {
            Ok(t) => t,
            Err(min_se) => {
                // RFC 4028 §9: an interval below our Min-SE is refused with 422 and ours.
                let mut resp = make_response(&request, 422, None);
                resp.headers.add(HeaderKind::MinSe, min_se.to_string());
                let _ = self.endpoint.respond(now, tx, resp);
                return;
            }
        };
        let media_ip = self.config.media_ip;
        let transport = self
            .calls
            .get_mut(&r.call)
            .and_then(|c| leg_of(c, r.side))
            .map_or(Transport::Udp, |l| l.target.transport);
        let contact = NameAddr::new(Uri::Sip(super::our_contact(
            &self.config.contact_host,
            self.contact_port_for(transport),
            "dialer",
            transport,
            &request.uri,
        )))
        .to_string();
        let events = self.takes_telephone_events(r.call, r.side);
        let c = self.calls.get_mut(&r.call).expect("caller checked");
        // A bridged call gives this party no more than the other party allows: while that
        // one holds, our answer here holds too (see `hold.rs`).
        let allowed = match (c.bridged, leg_of(c, r.side.other())) {
            (Some(_), Some(other)) => other.remote_direction,
            _ => Direction::SendRecv,
        };
        let leg = leg_of(c, r.side).expect("caller checked");
        let codecs: Vec<Codec> = leg
            .offer
            .as_ref()
            .and_then(|o| o.media.first())
            .map(|m| m.formats.iter().filter_map(Codec::of_format).collect())
            .unwrap_or_default();
        let version = super::hold::next_version(leg);
        let local = LocalEndpoint {
            address: media_ip,
            rtp_port: leg.rtp_port,
            session_id: leg.session_id,
            session_version: version,
        };
        let mut resp = make_response(&request, 200, None);
        resp.headers.add(HeaderKind::Contact, contact);
        if request.body.is_empty() {
            if request.method == Method::Invite {
                // RFC 3261 §14.2: no offer in the re-INVITE: the 2xx carries ours.
                // Every codec we offered at first, in the direction the other party allows.
                if let Some(mut offer) = leg.offer.clone() {
                    offer.origin.session_version = version;
                    if let Some(audio) = offer.media.iter_mut().find(|m| m.is_audio()) {
                        audio.direction = allowed;
                    }
                    resp.set_body("application/sdp", offer.to_sdp_string().into_bytes());
                    leg.local_sdp = Some(offer);
                    leg.offer_in_2xx = true;
                }
            }
            // RFC 3311 §5.2: an UPDATE without an offer (a session refresh) gets a 2xx
            // without one.
            self.answer_refresh(now, r, timer, &mut resp);
            let _ = self.endpoint.respond(now, tx, resp);
            return;
        }
        let parsed = SessionDescription::parse_bytes(&request.body);
        let config = MediaConfig {
            direction: allowed,
            telephone_event: events,
            ..Self::media_config_for(&codecs)
        };
        let answered = parsed.ok().and_then(|offer| {
            let (answer, answered) = self
                .answer_offer_with_srtp(r, &offer, &config, &local)
                .ok()?;
            let theirs = offer.effective_direction(answered.0.media_index);
            Some((answer, answered, theirs))
        });
        match answered {
            Some((answer, answered, theirs)) => {
                let mut ours = answer;
                ours.origin.session_version = version;
                resp.set_body("application/sdp", ours.to_sdp_string().into_bytes());
                if let Some(leg) = self.calls.get_mut(&r.call).and_then(|c| leg_of(c, r.side)) {
                    leg.local_sdp = Some(ours);
                }
                self.answer_refresh(now, r, timer, &mut resp);
                let _ = self.endpoint.respond(now, tx, resp);
                self.set_leg_media(r.call, r.side, answered);
                self.remote_direction_is(now, r.call, r.side, theirs);
            }
            None => {
                // RFC 3261 §14.2 / RFC 3264 §6 / RFC 4568 §7.1.2: an offer we cannot accept
                // (no codec in common, RTP/SAVP on a leg without SRTP, no usable a=crypto on
                // one that requires it): 488, the session stays as it was.
                let _ = self
                    .endpoint
                    .respond(now, tx, make_response(&request, 488, None));
            }
        }
    }

    pub(super) fn media_config_for(codecs: &[Codec]) -> MediaConfig {
        MediaConfig {
            codecs: codecs.to_vec(),
            ..MediaConfig::default()
        }
    }

    /// A leg ended in failure (a final non-2xx, a timeout): the call ends with its outcome,
    /// or, for the agent leg of a pool call, the next agent is tried (see `pools.rs`).
    pub(super) fn leg_failed(
        &mut self,
        now: Time,
        call: CallId,
        side: Side,
        status: u16,
        outcome: CallOutcome,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(leg) = leg_of(c, side) {
            leg.state = LegState::Done;
        }
        if c.ending.is_some() {
            self.maybe_finish(now, call);
            return;
        }
        match side {
            Side::Customer => self.end_call(
                now,
                call,
                Ending {
                    outcome,
                    status,
                    cause: q850::cause_for_status(status),
                    by: HungUpBy::Customer,
                },
            ),
            Side::Agent => {
                let ending = Self::agent_ending(status, outcome.on_agent_leg());
                self.agent_leg_failed(now, call, ending);
            }
        }
    }

    /// The record of call `c` if it ended now with `ending`.
    pub(super) fn cdr_of(&self, now: Time, c: &Call, ending: &Ending, totals: &MediaTotals) -> Cdr {
        // A customer switched onto a session talked on the session's agent leg.
        let session_leg = match c.role {
            Role::Customer {
                session: Some(session),
            } => self.calls.get(&session).and_then(|s| s.agent.as_ref()),
            _ => None,
        };
        let session_agent = session_leg.map(|l| {
            (
                l.call_id.clone(),
                l.negotiated
                    .as_ref()
                    .map(|n| n.codec.encoding_name().to_owned()),
            )
        });
        Cdr {
            id: c.id,
            customer_call_id: c.customer.call_id.clone(),
            agent_call_id: c
                .agent
                .as_ref()
                .map(|a| a.call_id.clone())
                .or_else(|| session_agent.as_ref().map(|s| s.0.clone())),
            number: c.number.clone(),
            dialled: c.dialled.clone(),
            agent: c.agent_ext.clone(),
            pool: self.pool_name(c),
            tag: c.tag.clone(),
            agent_attempts: c.tried.len() as u32,
            connect_ms: c
                .answered
                .zip(c.bridged)
                .map(|(a, b)| b.since(a).as_millis() as u64),
            trunk: self.config.trunks[c.trunk].name.clone(),
            created: self.unix(c.created),
            progress: c.progress.map(|t| self.unix(t)),
            answered: c.answered.map(|t| self.unix(t)),
            bridged: c.bridged.map(|t| self.unix(t)),
            ended: self.unix(now),
            outcome: ending.outcome,
            sip_status: ending.status,
            q850_cause: ending.cause,
            hung_up_by: ending.by,
            customer_codec: c
                .customer
                .negotiated
                .as_ref()
                .map(|n| n.codec.encoding_name().to_owned()),
            agent_codec: c
                .agent
                .as_ref()
                .and_then(|a| a.negotiated.as_ref())
                .map(|n| n.codec.encoding_name().to_owned())
                .or_else(|| session_agent.and_then(|s| s.1)),
            packets_to_agent: totals.packets_to_agent,
            packets_to_customer: totals.packets_to_customer,
            lost_from_customer: totals.lost_from_customer,
            lost_from_agent: totals.lost_from_agent,
        }
    }

    /// A leg finished as part of ending the call (487 after our CANCEL).
    pub(super) fn leg_done(&mut self, now: Time, call: CallId, side: Side) {
        if let Some(leg) = self.calls.get_mut(&call).and_then(|c| leg_of(c, side)) {
            leg.state = LegState::Done;
        }
        self.maybe_finish(now, call);
    }

    pub(super) fn on_bye_done(&mut self, now: Time, r: LegRef) {
        self.leg_done(now, r.call, r.side);
    }

    pub(super) fn send_bye(&mut self, now: Time, call: CallId, side: Side) {
        let Some(leg) = self.calls.get_mut(&call).and_then(|c| leg_of(c, side)) else {
            return;
        };
        let Some(dialog) = leg.dialog.as_mut() else {
            leg.state = LegState::Done;
            return;
        };
        let bye = dialog.request(Method::Bye);
        leg.state = LegState::Terminating;
        let target = leg.target;
        match self.endpoint.send_request(now, bye, target) {
            Ok(tx) => {
                self.by_tx.insert(tx, LegRef { call, side });
            }
            Err(_) => {
                if let Some(leg) = self.calls.get_mut(&call).and_then(|c| leg_of(c, side)) {
                    leg.state = LegState::Done;
                }
            }
        }
    }

    /// Ends a call: each leg still up gets BYE, each leg still being invited gets CANCEL.
    pub(super) fn end_call(&mut self, now: Time, call: CallId, ending: Ending) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.ending.is_some() {
            self.maybe_finish(now, call);
            return;
        }
        c.state = CallState::Ending;
        c.deadline = None;
        c.abandon_at = None;
        c.abandoning = None;
        let session = matches!(c.role, Role::Session { .. });
        c.ending = Some(ending.clone());
        if session {
            self.session_ending(now, call);
        }
        self.unlink_session(call);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        // The agent is free from now: wrap-up after a conversation, else at once.
        if let Some(ext) = c.agent_ext.clone().filter(|_| !session) {
            let wrap_up = match c.choice {
                Choice::Pool(p) => self.board.pools()[p].wrap_up,
                Choice::Fixed => Duration::ZERO,
            };
            let why = if c.bridged.is_some() {
                agents::Release::CallEnded { wrap_up }
            } else {
                agents::Release::Unused
            };
            self.board.release(now, &ext, call, why, 0);
        }
        self.waiting.retain(|w| *w != call);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.ending = Some(ending);
        // Out of the trunk's queue, or out of the wait for its max_cps INVITE slot.
        self.gates[c.trunk].forget(call);
        for side in [Side::Customer, Side::Agent] {
            let Some(leg) = self.calls.get_mut(&call).and_then(|c| leg_of(c, side)) else {
                continue;
            };
            match leg.state {
                LegState::Inviting => {
                    leg.state = LegState::Cancelling;
                    if let Some(tx) = leg.invite_tx {
                        match self.endpoint.cancel(now, tx) {
                            Ok(Some(cancel_tx)) => {
                                self.by_tx.insert(cancel_tx, LegRef { call, side });
                            }
                            Ok(None) => {}
                            Err(_) => {
                                if let Some(leg) =
                                    self.calls.get_mut(&call).and_then(|c| leg_of(c, side))
                                {
                                    leg.state = LegState::Done;
                                }
                            }
                        }
                    }
                }
                LegState::Confirmed => self.send_bye(now, call, side),
                LegState::Idle => leg.state = LegState::Done,
                _ => {}
            }
        }
        // RFC 3261 §9.1: a CANCELled INVITE still without a final response 64*T1 later is
        // taken as cancelled (see `call_timer`), so a peer that answers the CANCEL and never
        // the INVITE cannot keep the call.
        let give_up_at = now + self.endpoint.config().timers.t1 * 64;
        if let Some(c) = self.calls.get_mut(&call) {
            let cancelling = [Side::Customer, Side::Agent]
                .into_iter()
                .any(|side| leg_of(c, side).is_some_and(|l| l.state == LegState::Cancelling));
            if cancelling {
                c.deadline = Some(give_up_at);
            }
        }
        self.maybe_finish(now, call);
    }

    /// When every leg is over: close the media, then write the CDR and forget the call.
    pub(super) fn maybe_finish(&mut self, now: Time, call: CallId) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.ending.is_none() {
            return;
        }
        let legs_done = matches!(c.customer.state, LegState::Done | LegState::Idle)
            && c.agent
                .as_ref()
                .is_none_or(|a| matches!(a.state, LegState::Done | LegState::Idle));
        if !legs_done {
            return;
        }
        if c.ports.is_some() && c.totals.is_none() {
            if !c.media_closing {
                c.media_closing = true;
                self.actions.push_back(Action::CloseMedia { call });
            }
            return;
        }
        let c = self.calls.remove(&call).expect("looked up above");
        if c.holds_channel {
            self.gates[c.trunk].channel_freed();
        }
        self.by_sip_call_id.remove(&c.customer.call_id);
        if let Some(a) = &c.agent {
            self.by_sip_call_id.remove(&a.call_id);
        }
        let customer = (
            c.customer.call_id.clone(),
            Side::Customer,
            c.customer.target,
        );
        let agent = c
            .agent
            .as_ref()
            .map(|a| (a.call_id.clone(), Side::Agent, a.target));
        self.remember_ended(now, [Some(customer), agent]);
        self.by_tx.retain(|_, r| r.call != call);
        let ending = c.ending.clone().expect("checked above");
        let totals = c.totals.clone().unwrap_or_default();
        let cdr = self.cdr_of(now, &c, &ending, &totals);
        if matches!(c.role, Role::Session { .. }) {
            // A session is the agent's shift, not a call: its end is the agent's logged_out.
            return;
        }
        let tag = c.tag.clone();
        self.emit(ApiEvent::Hangup {
            call,
            cdr: Box::new(cdr),
            tag,
        });
    }

    /// The originate or agent ring timer of a call ran out.
    pub(super) fn call_timer(&mut self, now: Time, call: CallId) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let ending = match c.state {
            CallState::Dialing | CallState::Progress => Ending {
                outcome: CallOutcome::NoAnswer,
                status: 487,
                cause: q850::NO_ANSWER,
                by: HungUpBy::Dialer,
            },
            CallState::CustomerAnswered | CallState::AgentRinging => {
                self.agent_ring_timed_out(now, call);
                return;
            }
            CallState::Abandoning => {
                self.abandon_message_done(now, call);
                return;
            }
            CallState::Ending => {
                // 64*T1 after our CANCEL and still no final response to the INVITE: the
                // INVITE counts as cancelled (RFC 3261 §9.1) and the leg is over.
                for side in [Side::Customer, Side::Agent] {
                    if let Some(leg) = self.calls.get_mut(&call).and_then(|c| leg_of(c, side)) {
                        if leg.state == LegState::Cancelling {
                            leg.state = LegState::Done;
                        }
                    }
                }
                self.maybe_finish(now, call);
                return;
            }
            _ => return,
        };
        self.end_call(now, call, ending);
    }
}

//! The agent side of a call: which agent is offered an answered customer, the next agent
//! when one does not answer, the wait for an agent to become ready, and the abandon path
//! (the pool's message, then BYE) when nobody is connected within `abandon_after`.

use super::agents::Release;
use super::*;

impl Core {
    /// The agent table and pools (replaces any before). Agents with a static contact are
    /// made reachable by the caller with [`Core::agent_reachable`].
    pub fn set_agents(
        &mut self,
        extensions: impl IntoIterator<Item = String>,
        pools: Vec<PoolSettings>,
    ) {
        self.board = AgentBoard::new(extensions, pools);
    }

    /// An agent registered (or refreshed, or has a static contact): it can be called at
    /// `target`.
    pub fn agent_reachable(&mut self, now: Time, extension: &str, target: AgentTarget) {
        self.now = now;
        self.board.reachable(now, extension, target);
        self.service(now);
    }

    /// An agent's registration expired or was removed.
    pub fn agent_unreachable(&mut self, now: Time, extension: &str) {
        self.now = now;
        self.board.unreachable(now, extension);
        self.service(now);
    }

    /// Pauses an agent (one on a call is paused when the call is over).
    pub fn pause_agent(
        &mut self,
        now: Time,
        extension: &str,
        reason: &str,
    ) -> Result<(), agents::AgentError> {
        self.now = now;
        let r = self.board.pause(now, extension, reason);
        self.service(now);
        r
    }

    /// Makes an agent ready.
    pub fn ready_agent(&mut self, now: Time, extension: &str) -> Result<(), agents::AgentError> {
        self.now = now;
        let r = self.board.ready(now, extension);
        self.service(now);
        r
    }

    /// Every agent's state.
    pub fn agent_states(&self) -> Vec<AgentStatusInfo> {
        self.board.list()
    }

    /// The agent board.
    pub fn board(&self) -> &AgentBoard {
        &self.board
    }

    pub(super) fn pool_of(&self, call: &Call) -> Option<&PoolSettings> {
        match call.choice {
            Choice::Pool(p) => self.board.pools().get(p),
            Choice::Fixed => None,
        }
    }

    /// The customer answered: offer the call to its agent, or to the pool's best ready
    /// agent; with none ready the customer waits (hearing the ringback) until one is, or
    /// until the pool's `abandon_after`.
    pub(super) fn call_agent(&mut self, now: Time, call: CallId) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let extension = match (c.role, c.choice) {
            (Role::Session { .. }, _) | (_, Choice::Fixed) => c.agent_ext.clone(),
            (_, Choice::Pool(pool)) => {
                if c.abandon_at.is_none() {
                    let after = self.board.pools()[pool].abandon_after;
                    let answered = c.answered.unwrap_or(now);
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.abandon_at = Some(answered + after);
                    }
                }
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                let session_mode = self.board.pools()[pool].mode == agents::AgentMode::Session;
                match self.board.choose(pool, &c.tried) {
                    Some(ext) if session_mode => {
                        self.connect_to_session(now, call, &ext);
                        return;
                    }
                    Some(ext) => {
                        let reserved = self.board.reserve(now, &ext, call);
                        debug_assert!(reserved.is_ok(), "choose returns ready agents");
                        Some(ext)
                    }
                    None => {
                        if !self.waiting.contains(&call) {
                            self.waiting.push_back(call);
                        }
                        return;
                    }
                }
            }
        };
        let Some(extension) = extension else {
            return;
        };
        let Some(target) = self.board.target(&extension).cloned() else {
            // The agent's registration ran out while the customer was ringing.
            self.agent_leg_failed(now, call, Self::agent_ending(480, CallOutcome::AgentFailed));
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.agent_ext = Some(extension.clone());
        let session = matches!(c.role, Role::Session { .. });
        if !session {
            c.tried.push(extension.clone());
        }
        let pool_call = matches!(c.choice, Choice::Pool(_)) && !session;
        let sip_call_id = self.endpoint.new_call_id();
        let tag = self.endpoint.new_tag();
        let session_id = u64::from(self.rng.next_u32());
        let mut leg = Leg::new(
            sip_call_id.clone(),
            tag,
            Target {
                addr: target.destination,
                transport: target.transport,
            },
            session_id,
        );
        leg.rtp_port = c.ports.map(|p| p.1).unwrap_or(0);
        leg.apply_timer_config(self.agent_timer);
        c.agent = Some(leg);
        c.deadline = Some(now + self.config.agent_ring_timeout);
        self.by_sip_call_id.insert(
            sip_call_id,
            LegRef {
                call,
                side: Side::Agent,
            },
        );
        self.actions.push_back(Action::Media {
            call,
            op: MediaOp::AllowSource {
                side: Side::Agent,
                ip: target.destination.ip(),
            },
        });
        if pool_call {
            // The previous agent of this call may have taken DTMF another way.
            let mode = self.agent_dtmf(&extension);
            self.actions.push_back(Action::Media {
                call,
                op: MediaOp::SetDtmf {
                    side: Side::Agent,
                    mode,
                },
            });
        }
        self.send_invite(now, call, Side::Agent, target.uri, None);
    }

    /// Waiting customers go to the agents that became ready, oldest customer first.
    pub(super) fn offer_to_newly_ready(&mut self, now: Time) {
        for extension in self.board.take_newly_ready() {
            if self.board.state(&extension) != Some(AgentState::Ready) {
                continue;
            }
            let taker = self.waiting.iter().position(|id| {
                self.calls.get(id).is_some_and(|c| {
                    c.ending.is_none()
                        && c.abandoning.is_none()
                        && !c.tried.contains(&extension)
                        && self
                            .pool_of(c)
                            .is_some_and(|p| p.agents.contains(&extension))
                })
            });
            if let Some(i) = taker {
                let call = self.waiting.remove(i).expect("position is in range");
                self.call_agent(now, call);
            }
        }
        self.waiting.retain(|id| self.calls.contains_key(id));
    }

    /// The agent leg of a call ended without an answer (refused, redirected, not answered
    /// in time, unreachable). A pool call offers the customer to the next agent while it
    /// has attempts left, else abandons it; a call for a named agent ends.
    /// How an agent leg's final response `status` ends a call.
    pub(super) fn agent_ending(status: u16, outcome: CallOutcome) -> Ending {
        Ending {
            outcome,
            status,
            cause: q850::cause_for_status(status),
            by: HungUpBy::Agent,
        }
    }

    pub(super) fn agent_leg_failed(&mut self, now: Time, call: CallId, ending: Ending) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let max_no_answer = match c.choice {
            Choice::Pool(p) => self.board.pools()[p].max_no_answer,
            Choice::Fixed => 0,
        };
        if let Some(ext) = c.agent_ext.clone() {
            self.board
                .release(now, &ext, call, Release::NotAnswered, max_no_answer);
        }
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let session = matches!(c.role, Role::Session { .. });
        let Some(pool) = self.pool_of(c).filter(|_| !session) else {
            self.end_call(now, call, ending);
            return;
        };
        let attempts_left = (c.tried.len() as u32) < pool.agent_attempts;
        if c.ending.is_some() || c.abandoning.is_some() {
            self.maybe_finish(now, call);
        } else if attempts_left {
            self.detach_agent_leg(now, call);
            self.call_agent(now, call);
        } else {
            // The agents were tried; the dialer hangs up the answered customer.
            self.detach_agent_leg(now, call);
            let ending = Ending {
                by: HungUpBy::Dialer,
                ..ending
            };
            self.abandon(now, call, ending);
        }
    }

    /// Forgets a call's agent leg that is no longer wanted (after a failure, a CANCEL or an
    /// abandon): a 2xx that still arrives for it is ACKed and ended with BYE (`late.rs`).
    fn detach_agent_leg(&mut self, now: Time, call: CallId) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(mut leg) = c.agent.take() else {
            return;
        };
        c.deadline = None;
        if c.state == CallState::AgentRinging {
            c.state = CallState::CustomerAnswered;
        }
        if leg.state == LegState::Inviting {
            if let Some(tx) = leg.invite_tx {
                let _ = self.endpoint.cancel(now, tx);
            }
            leg.state = LegState::Cancelling;
        }
        if let Some(tx) = leg.invite_tx {
            self.by_tx.remove(&tx);
        }
        self.by_sip_call_id.remove(&leg.call_id);
        self.remember_ended(now, [Some((leg.call_id, Side::Agent, leg.target)), None]);
    }

    /// The agent ring timeout of a pool call: CANCEL that agent, try the next.
    pub(super) fn agent_ring_timed_out(&mut self, now: Time, call: CallId) {
        // Our timer, not the agent's answer, ended the offer: Q.850 19 (no answer), by us.
        let ending = Ending {
            outcome: CallOutcome::AgentNoAnswer,
            status: 480,
            cause: q850::NO_ANSWER,
            by: HungUpBy::Dialer,
        };
        self.agent_leg_failed(now, call, ending);
    }

    /// The pool's `abandon_after` passed with the customer not bridged.
    pub(super) fn abandon_timer(&mut self, now: Time, call: CallId) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.abandon_at = None;
        if c.bridged.is_some() || c.ending.is_some() || c.abandoning.is_some() {
            return;
        }
        // The agent still ringing is let go: this customer is not kept waiting longer.
        if let Some(ext) = c.agent_ext.clone() {
            if c.agent.is_some() {
                self.board.release(now, &ext, call, Release::Unused, 0);
                self.detach_agent_leg(now, call);
            }
        }
        self.abandon(
            now,
            call,
            Ending {
                outcome: CallOutcome::AbandonedNoAgent,
                status: 200,
                cause: q850::NORMAL_CLEARING,
                by: HungUpBy::Dialer,
            },
        );
    }

    /// The abandon path: the customer hears the pool's message once, then BYE. Without a
    /// message the call ends at once.
    fn abandon(&mut self, now: Time, call: CallId, ending: Ending) {
        self.waiting.retain(|id| *id != call);
        let message = self
            .calls
            .get(&call)
            .and_then(|c| self.pool_of(c))
            .and_then(|p| p.abandon_message.clone());
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.abandon_at = None;
        let Some(path) = message.filter(|_| c.answered.is_some()) else {
            self.end_call(now, call, ending);
            return;
        };
        c.abandoning = Some(ending);
        c.state = CallState::Abandoning;
        // The message is short (a safe-harbour announcement); a media task that never
        // reports its end does not keep the customer on the line.
        c.deadline = Some(now + ABANDON_MESSAGE_LIMIT);
        self.actions.push_back(Action::Media {
            call,
            op: MediaOp::StopRingback {
                side: Side::Customer,
            },
        });
        self.actions.push_back(Action::Media {
            call,
            op: MediaOp::PlayMessage {
                side: Side::Customer,
                path,
            },
        });
    }

    /// The abandon message has played: hang the customer up.
    pub(super) fn abandon_message_done(&mut self, now: Time, call: CallId) {
        let Some(ending) = self.calls.get_mut(&call).and_then(|c| c.abandoning.take()) else {
            return;
        };
        self.end_call(now, call, ending);
    }
}

/// The longest an abandon message may play before the dialer hangs up anyway.
pub(super) const ABANDON_MESSAGE_LIMIT: Duration = Duration::from_secs(30);

//! Agent sessions (`agent_mode = "session"`): the agent's phone is called once at login and
//! that dialog stays up for the whole shift; each answered customer is switched onto it at
//! once, without any INVITE or re-INVITE to the agent, which is how a dialer keeps the
//! 2-second rule (16 CFR 310.4(b)(4)(i); Ofcom's persistent misuse policy).
//!
//! A session is a [`Call`] of [`Role::Session`] that uses only its agent leg: the agent leg's
//! dialog, session timers and in-dialog requests are handled as on any call. A customer call
//! switched onto it ([`Role::Customer`] with `session`) has no agent leg of its own; its media
//! moves into the session's media ([`Action::LinkMedia`]), so the agent's stream keeps one
//! SSRC and running sequence numbers across customers. The customer hanging up (or the
//! agent's `hangup_key`, or `DELETE /calls/{id}`) ends only the customer's call: the agent
//! goes through wrap-up to ready with the session still up. The agent's BYE ends the shift,
//! and the customer on the line, if any, with it.

use super::agents::{AgentMode, Release};
use super::*;

impl Core {
    /// Logs an agent of a session-mode pool in: its phone is called, and the dialog that
    /// answer starts is its session.
    pub fn login_agent(&mut self, now: Time, extension: &str) -> Result<CallId, ControlError> {
        self.now = now;
        if self.shutting_down {
            return Err(ControlError::ShuttingDown);
        }
        let pool =
            self.board.pools().iter().position(|p| {
                p.mode == AgentMode::Session && p.agents.iter().any(|a| a == extension)
            });
        let Some(pool) = pool else {
            return Err(if self.board.knows(extension) {
                ControlError::BadRequest(format!(
                    "agent {extension} is in no pool with agent_mode = \"session\""
                ))
            } else {
                ControlError::NoSuchAgent(extension.to_owned())
            });
        };
        if self.board.session(extension).is_some() {
            return Err(ControlError::BadRequest(format!(
                "agent {extension} is logged in already"
            )));
        }
        let Some(target) = self.board.target(extension).cloned() else {
            return Err(ControlError::AgentUnavailable(extension.to_owned()));
        };
        let id = CallId(self.next_call);
        self.board.logging_in(now, extension, id)?;
        self.next_call += 1;
        let pool_name = self.board.pools()[pool].name.clone();
        // The customer leg of a session is never used: it is over from the start.
        let mut customer = Leg::new(
            String::new(),
            String::new(),
            Target {
                addr: target.destination,
                transport: target.transport,
            },
            0,
        );
        customer.state = LegState::Done;
        let call = Call {
            id,
            number: pool_name.clone(),
            dialled: pool_name,
            agent_ext: Some(extension.to_owned()),
            choice: Choice::Pool(pool),
            tried: Vec::new(),
            tag: None,
            agent_headers: Vec::new(),
            caller_id: None,
            ring_timeout: None,
            trunk: 0,
            ringback: None,
            record: None,
            state: CallState::CustomerAnswered,
            customer,
            agent: None,
            ports: None,
            created: now,
            progress: None,
            answered: None,
            bridged: None,
            deadline: None,
            abandon_at: None,
            abandoning: None,
            ending: None,
            totals: None,
            media_closing: false,
            holds_channel: false,
            role: Role::Session { customer: None },
        };
        self.calls.insert(id, call);
        self.actions.push_back(Action::OpenMedia { call: id });
        self.service(now);
        Ok(id)
    }

    /// Ends an agent's session (its shift), and the customer on it.
    pub fn logout_agent(&mut self, now: Time, extension: &str) -> Result<(), ControlError> {
        let session = self
            .board
            .session(extension)
            .or_else(|| {
                // A session still being set up (its INVITE ringing).
                self.calls
                    .values()
                    .find(|c| {
                        matches!(c.role, Role::Session { .. })
                            && c.agent_ext.as_deref() == Some(extension)
                    })
                    .map(|c| c.id)
            })
            .ok_or_else(|| ControlError::AgentLoggedOut(extension.to_owned()))?;
        self.hangup(now, session)
    }

    pub(super) fn is_session(&self, call: CallId) -> bool {
        self.calls
            .get(&call)
            .is_some_and(|c| matches!(c.role, Role::Session { .. }))
    }

    /// The agent answered the session's INVITE: it is ready for the pool's customers and
    /// hears the idle audio.
    pub(super) fn session_up(&mut self, now: Time, session: CallId) {
        let Some(c) = self.calls.get_mut(&session) else {
            return;
        };
        c.state = CallState::Bridged;
        c.deadline = None;
        let extension = c.agent_ext.clone().unwrap_or_default();
        let idle = self
            .pool_of(&self.calls[&session])
            .and_then(|p| p.idle_audio.clone());
        self.actions.push_back(Action::Media {
            call: session,
            op: MediaOp::StartIdle {
                side: Side::Agent,
                path: idle,
            },
        });
        self.board.session_up(now, &extension, session);
    }

    /// Switches an answered customer onto a ready session agent of its pool.
    pub(super) fn connect_to_session(&mut self, now: Time, call: CallId, extension: &str) {
        let Some(session) = self.board.session(extension) else {
            return;
        };
        if self.board.reserve(now, extension, call).is_err() {
            return;
        }
        self.board.talking(now, extension, call);
        let connect_tone = self
            .calls
            .get(&call)
            .and_then(|c| self.pool_of(c))
            .and_then(|p| p.connect_tone.clone());
        let agent_codec = self
            .calls
            .get(&session)
            .and_then(|s| s.agent.as_ref())
            .and_then(|l| l.negotiated.as_ref())
            .map(|n| n.codec.encoding_name().to_owned())
            .unwrap_or_default();
        // What is queued so far for the customer's media (its answer, the ringback) is for
        // its own task, which hands the customer over only after it: routed as it stands.
        let queued: Vec<Action> = self.actions.drain(..).collect();
        for action in queued {
            let action = self.route_media(action);
            self.routed.push_back(action);
        }
        self.routed.push_back(Action::Media {
            call,
            op: MediaOp::StopRingback {
                side: Side::Customer,
            },
        });
        self.routed.push_back(Action::LinkMedia {
            call,
            session,
            connect_tone,
        });
        if let Some(s) = self.calls.get_mut(&session) {
            s.role = Role::Session {
                customer: Some(call),
            };
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.role = Role::Customer {
            session: Some(session),
        };
        c.agent_ext = Some(extension.to_owned());
        c.tried.push(extension.to_owned());
        c.bridged = Some(now);
        c.state = CallState::Bridged;
        c.abandon_at = None;
        c.deadline = None;
        let transcoding = c
            .customer
            .negotiated
            .as_ref()
            .is_some_and(|n| n.codec.encoding_name() != agent_codec);
        self.waiting.retain(|w| *w != call);
        self.emit_call(
            call,
            ApiEvent::Bridged {
                call,
                agent: extension.to_owned(),
                agent_codec,
                transcoding,
                tag: None,
            },
        );
    }

    /// A customer call ends: its session, if it has one, lets it go.
    pub(super) fn unlink_session(&mut self, call: CallId) {
        let Some(Role::Customer {
            session: Some(session),
        }) = self.calls.get(&call).map(|c| c.role)
        else {
            return;
        };
        if let Some(s) = self.calls.get_mut(&session) {
            if s.role
                == (Role::Session {
                    customer: Some(call),
                })
            {
                s.role = Role::Session { customer: None };
            }
        }
    }

    /// A session ends: the customer on it ends too (hung up by the agent), and the agent is
    /// logged out.
    pub(super) fn session_ending(&mut self, now: Time, session: CallId) {
        let Some(c) = self.calls.get(&session) else {
            return;
        };
        let Role::Session { customer } = c.role else {
            return;
        };
        let extension = c.agent_ext.clone().unwrap_or_default();
        if let Some(customer) = customer {
            self.end_call(
                now,
                customer,
                Ending {
                    outcome: CallOutcome::Bridged,
                    status: 200,
                    cause: q850::NORMAL_CLEARING,
                    by: HungUpBy::Agent,
                },
            );
        }
        if self.board.session(&extension) == Some(session) {
            self.board.session_down(now, &extension);
        } else {
            // Its INVITE never got an answer: the agent never logged in.
            self.board
                .release(now, &extension, session, Release::Unused, 0);
            self.board.session_down(now, &extension);
        }
    }

    /// Media commands for a customer call switched onto a session go to the session's media.
    pub(super) fn route_media(&self, action: Action) -> Action {
        let linked = |call: &CallId| match self.calls.get(call).map(|c| c.role) {
            Some(Role::Customer {
                session: Some(session),
            }) => Some(session),
            _ => None,
        };
        match action {
            Action::Media { call, op } => match linked(&call) {
                Some(session) => Action::Media { call: session, op },
                None => Action::Media { call, op },
            },
            Action::CloseMedia { call } => match linked(&call) {
                Some(session) => Action::Media {
                    call: session,
                    op: MediaOp::DetachCustomer { call },
                },
                None => Action::CloseMedia { call },
            },
            other => other,
        }
    }

    /// What a session's media reports about its customer side belongs to the customer call
    /// on it; the agent's `hangup_key` ends that call. Returns the report to handle, and for
    /// which call.
    pub(super) fn session_media_event(
        &mut self,
        now: Time,
        call: CallId,
        report: MediaReport,
    ) -> Option<(CallId, MediaReport)> {
        let Some(Role::Session { customer }) = self.calls.get(&call).map(|c| c.role) else {
            return Some((call, report));
        };
        match report {
            MediaReport::Detached { .. } => Some((call, report)),
            MediaReport::Digit {
                side: Side::Agent,
                event,
                ..
            } => {
                let key = self
                    .calls
                    .get(&call)
                    .and_then(|c| self.pool_of(c))
                    .and_then(|p| p.hangup_key);
                if let (Some(customer), true) = (customer, key == Some(event)) {
                    self.end_call(
                        now,
                        customer,
                        Ending {
                            outcome: CallOutcome::Bridged,
                            status: 200,
                            cause: q850::NORMAL_CLEARING,
                            by: HungUpBy::Agent,
                        },
                    );
                }
                None
            }
            MediaReport::Digit { .. } | MediaReport::MessageDone(_) => None,
            MediaReport::Timeout(Side::Customer) => {
                customer.map(|c| (c, MediaReport::Timeout(Side::Customer)))
            }
            MediaReport::Timeout(Side::Agent) | MediaReport::Failed(_) => Some((call, report)),
        }
    }
}

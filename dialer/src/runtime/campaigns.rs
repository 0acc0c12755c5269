//! The campaign runner: a thread that owns the store and the campaign engine, and carries
//! the engine's orders out in sequence (claim in the store, originate through the signalling
//! task, write the attempt's end), feeding the call events back.
//!
//! It is a client of the signalling task like the HTTP API: originates and agent listings go
//! over [`ControlHandle::requests`], and the call events of campaign calls come in on its own
//! unbounded channel (never the lossy broadcast), so no attempt is left open because a
//! follower lagged. SQLite calls block; a thread of its own keeps them off the signalling
//! loop and the API.

use crate::b2bua::agents::AgentState;
use crate::campaigns::{
    AgentCounts, CampaignError, CampaignMessage, CampaignReply, CampaignRequest, CampaignStatus,
    DispositionRequest,
};
use crate::control::{AgentInfo, ApiEvent, ControlHandle, ControlRequest, OriginateRequest};
use campaign::definition::{AbandonWindow, CampaignDef, Pacing};
use campaign::engine::{CampaignEvent, CampaignState, Claimed, Engine, Order, PoolAgents};
use campaign::{LeadState, RejectedRow};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::time::Duration;
use store::{AttemptEnd, SqliteStore, Store};
use tokio::sync::oneshot;
use trunk_profiles::{Config, NumberRewrite};

/// What reaches the runner.
#[derive(Debug)]
pub enum RunnerInput {
    /// A request from the API.
    Request(CampaignMessage),
    /// An event of a call whose tag is a campaign's.
    Call(ApiEvent),
    /// The dialer is stopping.
    Stop,
}

/// Where the API and the signalling task reach the runner.
#[derive(Clone, Debug)]
pub struct RunnerHandle {
    tx: mpsc::Sender<RunnerInput>,
}

impl RunnerHandle {
    /// Sends a request; the answer comes on the returned channel.
    pub fn ask(&self, request: CampaignRequest) -> oneshot::Receiver<CampaignReply> {
        let (reply, rx) = oneshot::channel();
        // A runner that is gone drops the reply sender: the caller sees the channel closed.
        let _ = self
            .tx
            .send(RunnerInput::Request(CampaignMessage { request, reply }));
        rx
    }

    /// Passes a campaign call's event.
    pub fn call_event(&self, event: ApiEvent) {
        let _ = self.tx.send(RunnerInput::Call(event));
    }

    /// Passes `event` on when it is a campaign call's answer, bridge or end (what the
    /// engine follows).
    pub fn offer(&self, event: &ApiEvent) {
        let campaign_call = match event {
            ApiEvent::Answered { tag, .. }
            | ApiEvent::Bridged { tag, .. }
            | ApiEvent::Hangup { tag, .. } => is_campaign_tag(tag.as_deref()),
            _ => false,
        };
        if campaign_call {
            self.call_event(event.clone());
        }
    }

    /// Asks the runner to stop.
    pub fn stop(&self) {
        let _ = self.tx.send(RunnerInput::Stop);
    }
}

/// Whether a call's tag is a campaign's (`campaign/lead/attempt`).
pub fn is_campaign_tag(tag: Option<&str>) -> bool {
    tag.is_some_and(|t| t.split('/').count() == 3)
}

/// Why the runner could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The store could not be opened.
    #[error("{path}: {source}")]
    Store {
        /// The file.
        path: String,
        /// Why.
        source: store::StoreError,
    },
}

/// Opens the store, recovers attempts left open by a crash, and starts the runner thread.
pub fn start(
    config: &Config,
    control: ControlHandle,
) -> Result<(RunnerHandle, std::thread::JoinHandle<()>), RunnerError> {
    let path = config.store().path.clone();
    let store = SqliteStore::open(&path).map_err(|source| RunnerError::Store {
        path: path.display().to_string(),
        source,
    })?;
    let (tx, rx) = mpsc::channel();
    let mut runner = Runner {
        engine: Engine::new(),
        store: Box::new(store),
        control,
        pools: config
            .pools()
            .iter()
            .map(|p| (p.name.clone(), p.wrap_up.as_secs()))
            .collect(),
        abandon_after_ms: super::settings::pools(config)
            .iter()
            .map(|p| (p.name.clone(), p.abandon_after.as_millis() as u64))
            .collect(),
        numbering: config
            .trunks()
            .iter()
            .map(|t| (t.name.to_ascii_lowercase(), t.numbering.clone()))
            .collect(),
        first_trunk: config.trunks().first().map(|t| t.name.to_ascii_lowercase()),
        record_dir: config.media().record_dir.clone(),
        attempts: HashMap::new(),
    };
    runner.load(now());
    let thread = std::thread::Builder::new()
        .name("campaigns".into())
        .spawn(move || runner.run(rx))
        .expect("spawning a thread only fails when the process is out of resources");
    Ok((RunnerHandle { tx }, thread))
}

fn now() -> DateTime<Utc> {
    let secs = super::clock::unix_now();
    DateTime::from_timestamp(secs as i64, ((secs.fract()) * 1e9) as u32).unwrap_or_default()
}

struct Runner {
    engine: Engine,
    store: Box<dyn Store + Send>,
    control: ControlHandle,
    /// Pool name -> `wrap_up_s`.
    pools: HashMap<String, u64>,
    /// Pool name -> how long an answered customer waits for an agent (ms).
    abandon_after_ms: HashMap<String, u64>,
    /// Trunk name (lowercase) -> its number rules.
    numbering: HashMap<String, NumberRewrite>,
    first_trunk: Option<String>,
    /// `[media] record_dir`: where campaigns with `record = true` record.
    record_dir: Option<std::path::PathBuf>,
    /// Call id -> attempt, for the calls the runner placed.
    attempts: HashMap<String, i64>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}

impl Runner {
    /// Loads every stored campaign and closes the attempts a crash left open.
    fn load(&mut self, at: DateTime<Utc>) {
        match self.store.campaigns() {
            Ok(campaigns) => {
                for c in campaigns {
                    match CampaignDef::parse(&c.name, &c.definition) {
                        Ok(def) => {
                            if let Err(e) = self.check_abandon_after(&def, &c.name) {
                                tracing::error!(target: "dialer::campaign", "{e}");
                                continue;
                            }
                            let state =
                                CampaignState::parse(&c.state).unwrap_or(CampaignState::Stopped);
                            let name = def.name.clone();
                            let window = match &def.pacing {
                                Pacing::Predictive(p) => p.abandon_window,
                                _ => AbandonWindow::Days30,
                            };
                            let since = campaign::pacing::window_start(window, def.time_zone, at);
                            self.engine.add_campaign(def, state);
                            self.restore_abandon_window(&name, since);
                        }
                        Err(e) => tracing::error!(
                            target: "dialer::campaign",
                            "campaign {}: stored definition no longer valid: {e}",
                            c.name
                        ),
                    }
                }
            }
            Err(e) => tracing::error!(target: "dialer::campaign", "cannot list campaigns: {e}"),
        }
        match self.store.open_attempts() {
            Ok(open) => {
                for a in open {
                    tracing::warn!(
                        target: "dialer::campaign",
                        "attempt {} of campaign {} to {} was cut by a restart: interrupted",
                        a.attempt,
                        a.campaign,
                        a.number
                    );
                    self.engine.recover(
                        at,
                        &a.campaign,
                        a.attempt,
                        a.lead,
                        &a.number,
                        a.attempt_no,
                    );
                }
            }
            Err(e) => tracing::error!(target: "dialer::campaign", "cannot list open attempts: {e}"),
        }
        self.carry_out(at);
    }

    fn run(mut self, rx: mpsc::Receiver<RunnerInput>) {
        loop {
            let at = now();
            let wait = match self.engine.poll_timeout() {
                Some(due) if due <= at => Duration::ZERO,
                Some(due) => (due - at).to_std().unwrap_or(Duration::ZERO),
                None => Duration::from_secs(3600),
            };
            let input = if wait.is_zero() {
                rx.try_recv().ok()
            } else {
                match rx.recv_timeout(wait) {
                    Ok(input) => Some(input),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            };
            let at = now();
            match input {
                Some(RunnerInput::Stop) => return,
                Some(RunnerInput::Request(m)) => {
                    let answer = self.request(at, m.request);
                    let _ = m.reply.send(answer);
                }
                Some(RunnerInput::Call(e)) => self.call_event(at, e),
                None => {}
            }
            if self.engine.poll_timeout().is_some_and(|due| due <= at) {
                self.refresh_agents();
                self.engine.tick(at);
            }
            self.carry_out(at);
        }
    }

    /// The pools' agents, from the signalling task.
    fn refresh_agents(&mut self) {
        let (tx, rx) = oneshot::channel();
        if self
            .control
            .requests
            .blocking_send(ControlRequest::ListAgents(tx))
            .is_err()
        {
            return;
        }
        let Ok(agents) = rx.blocking_recv() else {
            return;
        };
        for (pool, wrap_up_s) in &self.pools {
            let mut p = PoolAgents {
                wrap_up_s: *wrap_up_s,
                ..PoolAgents::default()
            };
            for a in agents.iter().filter(|a| a.pools.contains(pool)) {
                if a.state != AgentState::LoggedOut {
                    p.logged_in += 1;
                }
                if a.state == AgentState::Ready {
                    p.ready.push(a.extension.clone());
                }
            }
            self.engine.pool_agents(pool, p);
        }
    }

    fn agent_counts(&self, pool: &str) -> AgentCounts {
        let (tx, rx) = oneshot::channel();
        let mut counts = AgentCounts::default();
        if self
            .control
            .requests
            .blocking_send(ControlRequest::ListAgents(tx))
            .is_err()
        {
            return counts;
        }
        let agents: Vec<AgentInfo> = rx.blocking_recv().unwrap_or_default();
        for a in agents.iter().filter(|a| a.pools.iter().any(|p| p == pool)) {
            match a.state {
                AgentState::LoggedOut => continue,
                AgentState::Ready => counts.ready += 1,
                AgentState::Reserved | AgentState::Ringing | AgentState::Talking => {
                    counts.talking += 1
                }
                AgentState::WrapUp => counts.wrap_up += 1,
                AgentState::Paused => counts.paused += 1,
            }
            counts.logged_in += 1;
        }
        counts
    }

    fn call_event(&mut self, at: DateTime<Utc>, e: ApiEvent) {
        match e {
            ApiEvent::Answered { call, .. } => {
                let call = call.to_string();
                if let Some(attempt) = self.attempts.get(&call) {
                    if let Err(err) = self.store.attempt_answered(*attempt) {
                        tracing::error!(target: "dialer::campaign", "attempt {attempt}: {err}");
                    }
                }
                self.engine.call_answered(at, &call);
            }
            ApiEvent::Bridged { call, agent, .. } => {
                self.engine.call_bridged(at, &call.to_string(), &agent);
            }
            ApiEvent::Hangup { call, cdr, .. } => {
                let call = call.to_string();
                self.attempts.remove(&call);
                self.engine.call_ended(
                    at,
                    &call,
                    cdr.outcome.as_str(),
                    cdr.answered.is_some(),
                    cdr.agent.as_deref(),
                );
            }
            _ => {}
        }
    }

    /// Carries out the engine's orders in sequence, feeding answers back, until none is left.
    fn carry_out(&mut self, at: DateTime<Utc>) {
        while let Some(order) = self.engine.poll_order() {
            if let Err(e) = self.order(at, order) {
                tracing::error!(target: "dialer::campaign", "{e}");
            }
        }
    }

    fn order(&mut self, at: DateTime<Utc>, order: Order) -> Result<(), store::StoreError> {
        match order {
            Order::LoadGroups { campaign } => {
                let groups = self.store.lead_groups(&campaign)?;
                self.engine.groups(at, &campaign, groups);
            }
            Order::Claim {
                campaign,
                count,
                open,
            } => {
                let claimed = match self.store.claim(&campaign, at.timestamp(), &open, count) {
                    Ok(c) => c,
                    Err(e) => {
                        self.engine.claimed(at, &campaign, Vec::new(), count);
                        return Err(e);
                    }
                };
                let lists = self
                    .engine
                    .definition(&campaign)
                    .map(|d| d.dnc.clone())
                    .unwrap_or_default();
                let mut leads = Vec::with_capacity(claimed.len());
                for c in claimed {
                    let dnc = self.store.dnc_find(&lists, &c.number)?;
                    leads.push(Claimed {
                        lead: c.lead,
                        attempt: c.attempt,
                        attempt_no: c.attempt_no,
                        number: c.number,
                        fields: c.fields,
                        last_outcome: c.last_outcome,
                        callback_agent: c.callback_agent,
                        dnc,
                    });
                }
                self.engine.claimed(at, &campaign, leads, count);
            }
            Order::Originate {
                campaign,
                attempt,
                call,
            } => {
                let (pool, agent) = match call.agent {
                    Some(a) => (None, Some(a)),
                    None => (Some(call.pool), None),
                };
                let request = OriginateRequest {
                    number: call.number,
                    agent,
                    pool,
                    tag: Some(call.tag),
                    agent_headers: call.agent_headers.into_iter().collect(),
                    trunk: call.trunk,
                    caller_id: call.caller_id,
                    ring_timeout_s: Some(call.ring_timeout_s),
                    record: match (&call.record, &self.record_dir) {
                        (Some(name), Some(dir)) => Some(dir.join(name)),
                        _ => None,
                    },
                    ..OriginateRequest::default()
                };
                let (tx, rx) = oneshot::channel();
                let sent = self
                    .control
                    .requests
                    .blocking_send(ControlRequest::Originate(request, tx));
                let answer = match sent {
                    Ok(()) => rx
                        .blocking_recv()
                        .map_err(|_| "the dialer is stopping".to_string()),
                    Err(_) => Err("the dialer is stopping".to_string()),
                };
                match answer {
                    Ok(Ok(info)) => {
                        let id = info.id.to_string();
                        self.store.attempt_placed(attempt, &id)?;
                        self.attempts.insert(id.clone(), attempt);
                        self.engine.placed(&campaign, attempt, &id);
                    }
                    Ok(Err(e)) => self
                        .engine
                        .place_failed(at, &campaign, attempt, &e.to_string()),
                    Err(e) => self.engine.place_failed(at, &campaign, attempt, &e),
                }
            }
            Order::FinishAttempt {
                attempt,
                finish,
                dnc_list,
                ..
            } => {
                let end = AttemptEnd {
                    ended: at.timestamp(),
                    outcome: finish.outcome,
                    call_outcome: finish.call_outcome,
                    answered: finish.answered,
                    agent: finish.agent,
                    next: finish.next,
                };
                self.store
                    .finish_attempt(attempt, &end, dnc_list.as_deref())?;
            }
            Order::Disposition {
                attempt,
                code,
                note,
                next,
                dnc_list,
            } => {
                self.store.set_disposition(
                    attempt,
                    &code,
                    note.as_deref(),
                    next.as_ref(),
                    dnc_list.as_deref(),
                    at.timestamp(),
                )?;
            }
            Order::SaveState { campaign, state } => {
                self.store.set_campaign_state(&campaign, state.as_str())?;
            }
            Order::CountRemaining { campaign } => {
                let counts = self.store.counts(&campaign)?;
                let dialable = counts
                    .leads
                    .iter()
                    .filter(|(s, _)| {
                        matches!(
                            s,
                            LeadState::New
                                | LeadState::Retry
                                | LeadState::Callback
                                | LeadState::Dialing
                        )
                    })
                    .map(|(_, n)| n)
                    .sum();
                self.engine.remaining(&campaign, dialable);
            }
            Order::Event(e) => self.publish(e),
        }
        Ok(())
    }

    fn publish(&self, e: CampaignEvent) {
        let event = match e {
            CampaignEvent::CampaignState { campaign, state } => ApiEvent::CampaignState {
                campaign,
                state: state.as_str().to_string(),
            },
            CampaignEvent::AttemptStarted {
                campaign,
                attempt,
                lead,
                number,
                attempt_no,
            } => ApiEvent::AttemptStarted {
                campaign,
                attempt,
                lead,
                number,
                attempt_no,
            },
            CampaignEvent::AttemptEnded {
                campaign,
                attempt,
                lead,
                number,
                outcome,
                call_outcome,
                lead_state,
                next_at,
            } => ApiEvent::AttemptEnded {
                campaign,
                attempt,
                lead,
                number,
                outcome: outcome.as_str().to_string(),
                call_outcome,
                lead_state: lead_state.to_string(),
                next_at,
            },
        };
        let _ = self.control.events.send(event);
    }

    fn request(&mut self, at: DateTime<Utc>, request: CampaignRequest) -> CampaignReply {
        let store_err = |e: store::StoreError| match e {
            store::StoreError::NoSuchCampaign(n) => {
                CampaignError::NotFound(format!("no campaign named {n:?}"))
            }
            store::StoreError::CampaignExists(n) => {
                CampaignError::Conflict(format!("a campaign named {n:?} exists"))
            }
            e => CampaignError::Store(e.to_string()),
        };
        let json = |v: &dyn erased::Json| v.value();
        match request {
            CampaignRequest::Create { text, file } => {
                let def = CampaignDef::parse(&file, &text).map_err(|d| {
                    CampaignError::InvalidDefinition(
                        d.as_slice().iter().map(|d| d.to_string()).collect(),
                    )
                })?;
                if !self.pools.contains_key(&def.pool) {
                    return Err(CampaignError::InvalidDefinition(vec![format!(
                        "{file}: pool: no [[pool]] named {:?} in the dialer's configuration",
                        def.pool
                    )]));
                }
                if let Err(e) = self.check_abandon_after(&def, &file) {
                    return Err(CampaignError::InvalidDefinition(vec![e]));
                }
                if let Some(e) = self.engine.group_conflict(&def) {
                    return Err(CampaignError::InvalidDefinition(vec![format!(
                        "{file}: drop_group: {e}"
                    )]));
                }
                if def.record && self.record_dir.is_none() {
                    return Err(CampaignError::InvalidDefinition(vec![format!(
                        "{file}: record: the dialer's configuration has no [media] record_dir \
                         to record into"
                    )]));
                }
                if let Some(t) = &def.trunk {
                    if !self.numbering.contains_key(&t.to_ascii_lowercase()) {
                        return Err(CampaignError::InvalidDefinition(vec![format!(
                            "{file}: trunk: no [[trunk]] named {t:?} in the dialer's configuration"
                        )]));
                    }
                }
                let record = self
                    .store
                    .create_campaign(&def.name, &text, at.timestamp())
                    .map_err(store_err)?;
                let name = def.name.clone();
                self.engine.add_campaign(def, CampaignState::Created);
                let _ = record;
                Ok(json(&self.status(&name).map_err(store_err)?))
            }
            CampaignRequest::List => {
                let mut all = Vec::new();
                for c in self.store.campaigns().map_err(store_err)? {
                    if self.engine.state(&c.name).is_some() {
                        all.push(self.status(&c.name).map_err(store_err)?);
                    }
                }
                Ok(json(&all))
            }
            CampaignRequest::Status { name } => {
                self.known(&name)?;
                Ok(json(&self.status(&name).map_err(store_err)?))
            }
            CampaignRequest::Import { name, csv } => {
                self.known(&name)?;
                let def = self.engine.definition(&name).cloned().expect("known above");
                let trunk = def
                    .trunk
                    .as_ref()
                    .map(|t| t.to_ascii_lowercase())
                    .or_else(|| self.first_trunk.clone())
                    .unwrap_or_default();
                // Leads keep the number in its normalised (E.164) form; the trunk's
                // strip_plus, dial_prefix and strip_prefix apply when the call is placed, so
                // they must not be applied twice.
                let mut rewrite = self.numbering.get(&trunk).cloned().unwrap_or_default();
                rewrite.strip_plus = false;
                rewrite.dial_prefix.clear();
                rewrite.strip_prefix.clear();
                let mut rows = campaign::leads::read_leads(&def, &rewrite, &csv[..])
                    .map_err(CampaignError::BadRequest)?;
                let report = self
                    .store
                    .import_leads(&name, &mut rows, &def.dnc)
                    .map_err(store_err)?;
                // New leads: groups are reloaded at the next tick.
                self.engine
                    .groups(at, &name, self.store.lead_groups(&name).map_err(store_err)?);
                Ok(serde_json::json!({
                    "imported": report.imported,
                    "rejected": report.rejected.iter().map(rejected_json).collect::<Vec<_>>(),
                }))
            }
            CampaignRequest::Control { name, verb } => {
                self.known(&name)?;
                let result = match verb.as_str() {
                    "start" => self.engine.start(&name),
                    "pause" => self.engine.pause(&name),
                    "resume" => self.engine.resume(&name),
                    "stop" => self.engine.stop(&name),
                    other => {
                        return Err(CampaignError::BadRequest(format!(
                            "unknown action {other:?}, expected start, pause, resume or stop"
                        )))
                    }
                };
                result.map_err(|e| CampaignError::Conflict(e.to_string()))?;
                self.carry_out(at);
                Ok(json(&self.status(&name).map_err(store_err)?))
            }
            CampaignRequest::Leads { name, state } => {
                self.known(&name)?;
                let state = match state.as_deref() {
                    None => None,
                    Some(s) => Some(LeadState::parse(s).ok_or_else(|| {
                        CampaignError::BadRequest(format!(
                            "unknown lead state {s:?}, expected one of new, dialing, retry, \
                             callback, done, dnc, failed"
                        ))
                    })?),
                };
                let leads = self.store.export(&name, state).map_err(store_err)?;
                Ok(json(&leads))
            }
            CampaignRequest::Disposition { call, body } => {
                self.disposition(at, &call, body)?;
                self.carry_out(at);
                Ok(serde_json::json!({"call": call, "recorded": true}))
            }
            CampaignRequest::Dnc {
                list,
                numbers,
                remove,
            } => {
                check_list_name(&list)?;
                let n = if remove {
                    self.store.dnc_remove(&list, &numbers)
                } else {
                    self.store.dnc_add(&list, &numbers, at.timestamp())
                }
                .map_err(store_err)?;
                let key = if remove { "removed" } else { "added" };
                Ok(serde_json::json!({ "list": list, key: n }))
            }
            CampaignRequest::DncList { list } => {
                check_list_name(&list)?;
                let numbers = self.store.dnc_list(&list).map_err(store_err)?;
                Ok(serde_json::json!({ "list": list, "numbers": numbers }))
            }
        }
    }

    fn known(&self, name: &str) -> Result<(), CampaignError> {
        match self.engine.state(name) {
            Some(_) => Ok(()),
            None => Err(CampaignError::NotFound(format!(
                "no campaign named {name:?}"
            ))),
        }
    }

    fn disposition(
        &mut self,
        at: DateTime<Utc>,
        call: &str,
        body: DispositionRequest,
    ) -> Result<(), CampaignError> {
        let callback_at = match &body.callback_at {
            None => None,
            Some(t) => Some(
                DateTime::parse_from_rfc3339(t)
                    .map_err(|e| {
                        CampaignError::BadRequest(format!(
                            "callback_at: {e}, expected RFC 3339 such as 2026-12-08T15:00:00-05:00"
                        ))
                    })?
                    .timestamp(),
            ),
        };
        if body.note.as_ref().is_some_and(|n| n.len() > 1024) {
            return Err(CampaignError::BadRequest(
                "note: at most 1024 characters".into(),
            ));
        }
        self.engine
            .disposition(at, call, &body.code, callback_at, body.note)
            .map_err(|e| match e {
                campaign::engine::EngineError::NotACampaignCall(_) => {
                    CampaignError::NotFound(e.to_string())
                }
                e => CampaignError::BadRequest(e.to_string()),
            })
    }

    /// A predictive campaign needs its pool to give up on an answered customer within 2 s
    /// (`abandon_after_ms` at most 2000: the 2-second rule of 16 CFR 310.4(b)(4)(i) and
    /// Ofcom): the pacer bets that an agent frees in time, and the law says how long.
    fn check_abandon_after(&self, def: &CampaignDef, file: &str) -> Result<(), String> {
        let Pacing::Predictive(_) = def.pacing else {
            return Ok(());
        };
        let most = u64::from(campaign::definition::PREDICTIVE_MAX_ABANDON_AFTER_MS);
        match self.abandon_after_ms.get(&def.pool) {
            Some(&ms) if ms > most => Err(format!(
                "{file}: pacing: predictive pacing needs the pool's abandon_after_ms at most \
                 {most} (the 2-second rule, 16 CFR 310.4(b)(4)(i), Ofcom); pool {:?} waits \
                 {ms} ms, expected abandon_after_ms = 2000 or less in its [[pool]]",
                def.pool
            )),
            _ => Ok(()),
        }
    }

    /// Counts the answered calls of the campaign's abandon window from the store.
    fn restore_abandon_window(&mut self, name: &str, since: i64) {
        match self.store.answered_since(name, since) {
            Ok(rows) => {
                for row in rows {
                    self.engine.count_answered(name, row.ended, row.bridged);
                    if let (true, Some(code)) = (row.bridged, &row.disposition) {
                        self.engine.count_disposition(name, row.ended, code);
                    }
                }
            }
            Err(e) => tracing::error!(target: "dialer::campaign", "campaign {name}: {e}"),
        }
    }

    fn status(&self, name: &str) -> Result<CampaignStatus, store::StoreError> {
        let counts = self.store.counts(name)?;
        let def = self.engine.definition(name);
        let (lines, waiting) = self.engine.lines(name);
        let window = self.engine.abandon_counts(name);
        let group = self.engine.group_counts(name);
        let leads: BTreeMap<String, u64> = counts
            .leads
            .iter()
            .map(|(s, n)| (s.as_str().to_string(), *n))
            .collect();
        let total = leads.values().sum();
        let finished = ["done", "dnc", "failed"]
            .iter()
            .map(|s| leads.get(*s).copied().unwrap_or(0))
            .sum();
        let pool = def.map(|d| d.pool.clone()).unwrap_or_default();
        Ok(CampaignStatus {
            name: name.to_string(),
            state: self
                .engine
                .state(name)
                .map_or("unknown", CampaignState::as_str)
                .to_string(),
            pacing: def.map_or(String::new(), |d| match &d.pacing {
                Pacing::Progressive => "progressive".into(),
                Pacing::Ratio { lines_per_agent } => format!("ratio {lines_per_agent}"),
                Pacing::Predictive(p) => format!(
                    "predictive {}% over {}",
                    p.max_abandon_pct,
                    p.abandon_window.as_str()
                ),
            }),
            agents: self.agent_counts(&pool),
            pool,
            leads,
            total,
            finished,
            dialled: counts.dialled,
            answered: counts.answered,
            bridged: counts.bridged,
            abandoned: counts.abandoned,
            live_answers: counts.answered,
            abandon_rate: percent(counts.abandoned, counts.answered),
            window_abandon_rate: window.map_or(0.0, |w| (w.abandon_rate() * 1000.0).round() / 10.0),
            abandon_window: def.map_or(String::new(), |d| match &d.pacing {
                Pacing::Predictive(p) => p.abandon_window.as_str().to_string(),
                _ => AbandonWindow::Days30.as_str().to_string(),
            }),
            group_window_abandon_rate: group
                .as_ref()
                .map(|(_, c)| (c.abandon_rate() * 1000.0).round() / 10.0),
            drop_group: group.map(|(g, _)| g),
            lines_in_use: lines as u32,
            lines_waiting: waiting as u32,
            next_retry: counts
                .next_retry
                .and_then(|t| DateTime::from_timestamp(t, 0))
                .map(|t| t.to_rfc3339()),
        })
    }
}

/// `part` of `whole` in percent, to one decimal.
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 1000.0 / whole as f64).round() / 10.0
    }
}

fn check_list_name(list: &str) -> Result<(), CampaignError> {
    let ok = !list.is_empty()
        && list.len() <= 64
        && list
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(CampaignError::BadRequest(format!(
            "DNC list name {list:?}: 1 to 64 of A-Z a-z 0-9 - _"
        )))
    }
}

fn rejected_json(r: &RejectedRow) -> serde_json::Value {
    serde_json::json!({
        "line": r.line,
        "number": r.number,
        "reason": r.reason.to_string(),
    })
}

mod erased {
    /// Anything serialisable, as a JSON value (the replies are plain structs).
    pub trait Json {
        fn value(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> Json for T {
        fn value(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("replies are plain structs with string keys")
        }
    }
}

//! What `GET /metrics` reports, in the Prometheus text exposition format (version 0.0.4).
//!
//! # Metrics
//! | name | type | labels | from |
//! | --- | --- | --- | --- |
//! | `dialer_calls_total` | counter | `outcome` ([`CallOutcome::as_str`]) | each call's CDR |
//! | `dialer_calls_in_progress` | gauge | | the live calls (`GET /calls`, queued ones too) |
//! | `dialer_agents` | gauge | `state` (`ready`, `talking`, `wrap_up` ...) | `GET /agents` |
//! | `dialer_trunk_registered` | gauge | `trunk` | 1 while registered, else 0 (`GET /trunks`) |
//! | `dialer_campaign_lines` | gauge | `campaign` | the campaign's calls in flight |
//! | `dialer_campaign_leads` | gauge | `campaign`, `state` (`new`, `retry`, `done` ...) | the campaign's leads |
//! | `dialer_campaign_abandon_rate_percent` | gauge | `campaign` | abandoned over live answers, in percent |
//! | `dialer_campaign_window_abandon_rate_percent` | gauge | `campaign` | the same over the campaign's abandon window (`30d`, `24h`, `calendar_day`) |
//! | `dialer_campaign_group_window_abandon_rate_percent` | gauge | `group` | a drop-rate group's abandoned over its live answers over the window, every member's calls counted |
//! | `dialer_campaign_live_answers` | gauge | `campaign` | attempts answered by a person |
//! | `dialer_campaign_abandoned` | gauge | `campaign` | attempts abandoned (answered, not connected) |
//! | `dialer_sip_requests_total` | counter | `direction` (`in`, `out`), `method` | every SIP datagram |
//! | `dialer_sip_responses_total` | counter | `direction`, `status_class` (`1xx` ... `6xx`) | every SIP datagram |
//! | `dialer_sip_requests_dropped_total` | counter | `reason` (`unknown_source`, `rate_limited`, `overloaded`) | requests dropped by the gate ([`crate::gate`]) or answered 503 for want of a server transaction |
//! | `dialer_rtp_packets_relayed_total` | counter | `to` (`agent`, `customer`) | each call's CDR |
//! | `dialer_rtp_packets_lost_total` | counter | `from` (`customer`, `agent`) | each call's CDR |
//!
//! Every outcome, agent state and RTP direction is reported from the start, at 0, so that
//! `rate()` and `increase()` see the first call of each kind. A trunk that does not register
//! (`register = false`, shown as `static`) has no `dialer_trunk_registered` series: a 0 there
//! would read as a registration that is down. A family with no series yet (no SIP datagram,
//! no campaign) is left out whole, as the format allows. A call's RTP packets are counted when it ends,
//! from its CDR, so a long call adds its packets in one step.
//!
//! # Drive loop
//! [`Metrics`] is shared (`Arc`) between the signalling task, which calls [`Metrics::on_sip`]
//! for each datagram it sends or receives and [`Metrics::on_cdr`] for each call that ends, and
//! the API, which calls [`Metrics::render`] with a [`Snapshot`] of the dialer's state. The
//! counters are atomics behind `prometheus-client`'s families: counting takes no lock the API
//! holds for longer than a map lookup, and never waits for a scrape. The gauges are built anew
//! for each scrape from the snapshot, so a campaign, trunk or agent that is gone has no stale
//! series.
//!
//! # What it deliberately does not do
//! No histograms (call durations, post-dial delay: the CDRs carry them for a warehouse), no
//! per-number or per-call labels, and no label value a peer chooses: a SIP method outside the
//! RFC 3261 set and its extensions known to `sip-core` is counted as `other`, so a peer cannot
//! mint series.
//!
//! # Errors and panics
//! Bytes that are not a SIP start line (keep-alives, garbage) are not counted. Rendering writes
//! into a `String`, which cannot fail: that is the one `expect`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::b2bua::agents::AgentState;
use crate::b2bua::CallOutcome;
use crate::campaigns::CampaignStatus;
use crate::control::{AgentInfo, CallInfo, Cdr, TrunkInfo};

/// The `Content-Type` of `GET /metrics`: `text/plain; version=0.0.4; charset=utf-8`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Whether a SIP message came in or went out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received from a peer.
    In,
    /// Sent to a peer (retransmissions too: each is a datagram on the wire).
    Out,
}

impl Direction {
    /// The label value: `in` or `out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// Every outcome a CDR can carry, reported at 0 before its first call.
const OUTCOMES: [CallOutcome; 18] = [
    CallOutcome::Bridged,
    CallOutcome::Busy,
    CallOutcome::NoAnswer,
    CallOutcome::Rejected,
    CallOutcome::Failed,
    CallOutcome::Cancelled,
    CallOutcome::Abandoned,
    CallOutcome::AbandonedNoAgent,
    CallOutcome::AgentBusy,
    CallOutcome::AgentNoAnswer,
    CallOutcome::AgentRejected,
    CallOutcome::AgentFailed,
    CallOutcome::MediaTimeout,
    CallOutcome::Hangup,
    CallOutcome::SessionTimerExpired,
    CallOutcome::SessionRefreshFailed,
    CallOutcome::ReinviteFailed,
    CallOutcome::Interrupted,
];

/// Every agent state, reported at 0 when no agent is in it.
const AGENT_STATES: [AgentState; 7] = [
    AgentState::LoggedOut,
    AgentState::Ready,
    AgentState::Reserved,
    AgentState::Ringing,
    AgentState::Talking,
    AgentState::WrapUp,
    AgentState::Paused,
];

/// The methods `sip-core` parses by name; any other token is counted as `other`.
const METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "INFO",
    "UPDATE",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
];

const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    direction: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    direction: &'static str,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToLabels {
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FromLabels {
    from: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrunkLabels {
    trunk: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CampaignLabels {
    campaign: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeadLabels {
    campaign: String,
    state: String,
}

/// The dialer's state at one scrape, which the gauges are built from.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// `GET /calls`.
    pub calls: Vec<CallInfo>,
    /// `GET /agents`.
    pub agents: Vec<AgentInfo>,
    /// `GET /trunks`.
    pub trunks: Vec<TrunkInfo>,
    /// `GET /campaigns` (empty when the dialer runs no campaigns).
    pub campaigns: Vec<CampaignStatus>,
}

/// The dialer's counters, and the gauges added at each scrape.
#[derive(Debug)]
pub struct Metrics {
    calls: Family<OutcomeLabels, Counter>,
    sip_requests: Family<RequestLabels, Counter>,
    sip_responses: Family<ResponseLabels, Counter>,
    rtp_relayed: Family<ToLabels, Counter>,
    rtp_lost: Family<FromLabels, Counter>,
    dropped: Family<ReasonLabels, Counter>,
}

/// Why a request was dropped ([`Metrics::on_dropped`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// From a source that is neither a trunk, nor a peer the dialer called, nor inside an
    /// agent's `allow` network.
    UnknownSource,
    /// Over the source's `[security] max_requests_per_s`.
    RateLimited,
    /// Beyond `[security] max_server_transactions` (answered one stateless 503).
    Overloaded,
}

impl DropReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::UnknownSource => "unknown_source",
            DropReason::RateLimited => "rate_limited",
            DropReason::Overloaded => "overloaded",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// A count as a gauge value (counts here never come near `i64::MAX`).
fn gauge_value(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

impl Metrics {
    /// Every counter at 0.
    pub fn new() -> Metrics {
        let metrics = Metrics {
            calls: Family::default(),
            sip_requests: Family::default(),
            sip_responses: Family::default(),
            rtp_relayed: Family::default(),
            rtp_lost: Family::default(),
            dropped: Family::default(),
        };
        for reason in [
            DropReason::UnknownSource,
            DropReason::RateLimited,
            DropReason::Overloaded,
        ] {
            let _ = metrics.dropped.get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            });
        }
        // Each `get_or_create` here only creates the series, at 0.
        for outcome in OUTCOMES {
            let _ = metrics.calls.get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            });
        }
        for to in ["agent", "customer"] {
            let _ = metrics.rtp_relayed.get_or_create(&ToLabels { to });
        }
        for from in ["customer", "agent"] {
            let _ = metrics.rtp_lost.get_or_create(&FromLabels { from });
        }
        metrics
    }

    /// Counts a call that ended: its outcome and its RTP packets.
    pub fn on_cdr(&self, cdr: &Cdr) {
        self.calls
            .get_or_create(&OutcomeLabels {
                outcome: cdr.outcome.as_str(),
            })
            .inc();
        let relayed = [
            ("agent", cdr.packets_to_agent),
            ("customer", cdr.packets_to_customer),
        ];
        for (to, packets) in relayed {
            self.rtp_relayed
                .get_or_create(&ToLabels { to })
                .inc_by(packets);
        }
        let lost = [
            ("customer", cdr.lost_from_customer),
            ("agent", cdr.lost_from_agent),
        ];
        for (from, packets) in lost {
            self.rtp_lost
                .get_or_create(&FromLabels { from })
                .inc_by(packets);
        }
    }

    /// Counts one SIP datagram by its start line; anything else (a CRLF keep-alive, garbage)
    /// is not counted.
    pub fn on_sip(&self, direction: Direction, bytes: &[u8]) {
        let direction = direction.as_str();
        match start_line(bytes) {
            Some(StartLine::Request(method)) => {
                self.sip_requests
                    .get_or_create(&RequestLabels { direction, method })
                    .inc();
            }
            Some(StartLine::Response(status_class)) => {
                self.sip_responses
                    .get_or_create(&ResponseLabels {
                        direction,
                        status_class,
                    })
                    .inc();
            }
            None => {}
        }
    }

    /// Counts a request dropped (or answered 503) before it reached the call logic.
    pub fn on_dropped(&self, reason: DropReason) {
        self.dropped
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// The exposition: the counters, and the gauges of `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let mut registry = Registry::default();
        registry.register(
            "dialer_calls",
            "Calls ended, by the outcome of their CDR",
            self.calls.clone(),
        );
        let in_progress: Gauge = Gauge::default();
        in_progress.set(gauge_value(snapshot.calls.len()));
        registry.register(
            "dialer_calls_in_progress",
            "Live calls, queued ones included",
            in_progress,
        );

        let agents = Family::<StateLabels, Gauge>::default();
        for state in AGENT_STATES {
            let _ = agents.get_or_create(&StateLabels {
                state: state.as_str(),
            });
        }
        for agent in &snapshot.agents {
            agents
                .get_or_create(&StateLabels {
                    state: agent.state.as_str(),
                })
                .inc();
        }
        registry.register("dialer_agents", "Configured agents, by state", agents);

        let registered = Family::<TrunkLabels, Gauge>::default();
        for trunk in snapshot.trunks.iter().filter(|t| t.state != "static") {
            registered
                .get_or_create(&TrunkLabels {
                    trunk: trunk.name.clone(),
                })
                .set(i64::from(trunk.state == "registered"));
        }
        registry.register(
            "dialer_trunk_registered",
            "1 while the trunk's registration is in force, else 0 (trunks that register only)",
            registered,
        );

        let lines = Family::<CampaignLabels, Gauge>::default();
        let leads = Family::<LeadLabels, Gauge>::default();
        let abandon = Family::<CampaignLabels, Gauge<f64, AtomicU64>>::default();
        let window_abandon = Family::<CampaignLabels, Gauge<f64, AtomicU64>>::default();
        let live_answers = Family::<CampaignLabels, Gauge>::default();
        let abandoned = Family::<CampaignLabels, Gauge>::default();
        let group_abandon = Family::<GroupLabels, Gauge<f64, AtomicU64>>::default();
        for campaign in &snapshot.campaigns {
            if let (Some(group), Some(rate)) =
                (&campaign.drop_group, campaign.group_window_abandon_rate)
            {
                group_abandon
                    .get_or_create(&GroupLabels {
                        group: group.clone(),
                    })
                    .set(rate);
            }
            let labels = CampaignLabels {
                campaign: campaign.name.clone(),
            };
            lines
                .get_or_create(&labels)
                .set(gauge_value(campaign.lines_in_use));
            abandon.get_or_create(&labels).set(campaign.abandon_rate);
            window_abandon
                .get_or_create(&labels)
                .set(campaign.window_abandon_rate);
            live_answers
                .get_or_create(&labels)
                .set(gauge_value(campaign.live_answers));
            abandoned
                .get_or_create(&labels)
                .set(gauge_value(campaign.abandoned));
            for (state, count) in &campaign.leads {
                leads
                    .get_or_create(&LeadLabels {
                        campaign: campaign.name.clone(),
                        state: state.clone(),
                    })
                    .set(gauge_value(*count));
            }
        }
        registry.register(
            "dialer_campaign_lines",
            "Calls of the campaign in flight",
            lines,
        );
        registry.register(
            "dialer_campaign_leads",
            "Leads of the campaign, by state",
            leads,
        );
        registry.register(
            "dialer_campaign_abandon_rate_percent",
            "Abandoned attempts over answered ones, in percent",
            abandon,
        );
        registry.register(
            "dialer_campaign_window_abandon_rate_percent",
            "Abandoned over live-answered calls in the campaign's abandon window, in percent",
            window_abandon,
        );
        registry.register(
            "dialer_campaign_group_window_abandon_rate_percent",
            "Abandoned over live-answered calls of a drop-rate group's campaigns in the abandon window, in percent",
            group_abandon,
        );
        registry.register(
            "dialer_campaign_live_answers",
            "Attempts of the campaign answered by a person",
            live_answers,
        );
        registry.register(
            "dialer_campaign_abandoned",
            "Attempts of the campaign answered and not connected to an agent",
            abandoned,
        );

        registry.register(
            "dialer_sip_requests",
            "SIP requests received and sent (retransmissions too), by method",
            self.sip_requests.clone(),
        );
        registry.register(
            "dialer_sip_responses",
            "SIP responses received and sent (retransmissions too), by status class",
            self.sip_responses.clone(),
        );
        registry.register(
            "dialer_sip_requests_dropped",
            "SIP requests dropped unanswered (unknown source, over the rate) or answered 503 (no server transaction left)",
            self.dropped.clone(),
        );
        registry.register(
            "dialer_rtp_packets_relayed",
            "RTP packets relayed between the legs of ended calls, by the leg they went to",
            self.rtp_relayed.clone(),
        );
        registry.register(
            "dialer_rtp_packets_lost",
            "RTP packets lost (RFC 3550 A.3) on ended calls, by the leg they came from",
            self.rtp_lost.clone(),
        );

        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// What a SIP start line says, as label values.
#[derive(Debug, PartialEq, Eq)]
enum StartLine {
    /// `METHOD Request-URI SIP/2.0`: the method, or `other`.
    Request(&'static str),
    /// `SIP/2.0 CODE Reason`: the status class.
    Response(&'static str),
}

/// The start line of `bytes` (RFC 3261 §7.1, §7.2), when it has one.
fn start_line(bytes: &[u8]) -> Option<StartLine> {
    let end = bytes.iter().position(|&b| b == b'\n')?;
    let line = bytes[..end].strip_suffix(b"\r").unwrap_or(&bytes[..end]);
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.splitn(3, ' ');
    let (first, second) = (parts.next()?, parts.next()?);
    if first == "SIP/2.0" {
        let status: u16 = second.parse().ok().filter(|_| second.len() == 3)?;
        let class = STATUS_CLASSES.get(usize::from(status / 100).checked_sub(1)?)?;
        return Some(StartLine::Response(class));
    }
    if parts.next()? != "SIP/2.0" || second.is_empty() || first.is_empty() {
        return None;
    }
    let method = METHODS.iter().find(|m| **m == first).copied();
    Some(StartLine::Request(method.unwrap_or("other")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{CallId, CallState, HungUpBy};

    fn cdr(outcome: CallOutcome) -> Cdr {
        Cdr {
            id: CallId(1),
            customer_call_id: "c1@dialer".into(),
            agent_call_id: None,
            number: "5551234".into(),
            dialled: "+15551234".into(),
            agent: Some("1001".into()),
            pool: None,
            tag: None,
            agent_attempts: 1,
            connect_ms: None,
            trunk: "carrier".into(),
            created: 1000.0,
            progress: None,
            answered: None,
            bridged: None,
            ended: 1001.0,
            outcome,
            sip_status: 200,
            q850_cause: 16,
            hung_up_by: HungUpBy::Agent,
            customer_codec: None,
            agent_codec: None,
            packets_to_agent: 3000,
            packets_to_customer: 2997,
            lost_from_customer: 2,
            lost_from_agent: 5,
        }
    }

    fn agent(extension: &str, state: AgentState) -> AgentInfo {
        AgentInfo {
            extension: extension.into(),
            contact: None,
            source: None,
            nat: false,
            expires_in_s: None,
            user_agent: None,
            busy: false,
            state,
            reason: None,
            state_since: 0.0,
            state_for_s: 0.0,
            calls_taken: 0,
            call: None,
            pools: Vec::new(),
        }
    }

    fn trunk(name: &str, state: &str) -> TrunkInfo {
        TrunkInfo {
            name: name.into(),
            proxy: "192.0.2.1:5060".parse().unwrap(),
            transport: "udp".into(),
            state: state.into(),
            expires_in_s: None,
            contact: None,
            attempts: None,
            retry_in_s: None,
            error: None,
            calls: 0,
            queued: 0,
            max_channels: None,
            max_cps: None,
        }
    }

    fn call(id: u64) -> CallInfo {
        CallInfo {
            id: CallId(id),
            number: "5551234".into(),
            agent: None,
            pool: None,
            tag: None,
            trunk: "carrier".into(),
            state: CallState::Dialing,
            age_s: 0.0,
        }
    }

    /// The sample lines of `text` (no comments).
    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    fn has(text: &str, sample: &str) -> bool {
        samples(text).contains(&sample)
    }

    #[test]
    fn every_outcome_is_listed_and_starts_at_zero() {
        // A new CallOutcome fails to compile here: list it in OUTCOMES too.
        for outcome in OUTCOMES {
            match outcome {
                CallOutcome::Bridged
                | CallOutcome::Busy
                | CallOutcome::NoAnswer
                | CallOutcome::Rejected
                | CallOutcome::Failed
                | CallOutcome::Cancelled
                | CallOutcome::Abandoned
                | CallOutcome::AbandonedNoAgent
                | CallOutcome::AgentBusy
                | CallOutcome::AgentNoAnswer
                | CallOutcome::AgentRejected
                | CallOutcome::AgentFailed
                | CallOutcome::MediaTimeout
                | CallOutcome::Hangup
                | CallOutcome::SessionTimerExpired
                | CallOutcome::SessionRefreshFailed
                | CallOutcome::ReinviteFailed
                | CallOutcome::Interrupted => {}
            }
        }
        let text = Metrics::new().render(&Snapshot::default());
        for outcome in OUTCOMES {
            let line = format!("dialer_calls_total{{outcome=\"{}\"}} 0", outcome.as_str());
            assert!(has(&text, &line), "{line} missing from\n{text}");
        }
        for state in AGENT_STATES {
            let line = format!("dialer_agents{{state=\"{}\"}} 0", state.as_str());
            assert!(has(&text, &line), "{line} missing from\n{text}");
        }
        assert!(has(&text, "dialer_calls_in_progress 0"), "{text}");
        assert!(has(
            &text,
            r#"dialer_rtp_packets_lost_total{from="agent"} 0"#
        ));
    }

    #[test]
    fn a_cdr_counts_its_outcome_and_its_rtp_packets() {
        let metrics = Metrics::new();
        metrics.on_cdr(&cdr(CallOutcome::Bridged));
        metrics.on_cdr(&cdr(CallOutcome::Bridged));
        metrics.on_cdr(&Cdr {
            packets_to_agent: 0,
            packets_to_customer: 0,
            lost_from_customer: 0,
            lost_from_agent: 0,
            ..cdr(CallOutcome::Busy)
        });
        let text = metrics.render(&Snapshot::default());
        for line in [
            r#"dialer_calls_total{outcome="bridged"} 2"#,
            r#"dialer_calls_total{outcome="busy"} 1"#,
            r#"dialer_calls_total{outcome="no_answer"} 0"#,
            r#"dialer_rtp_packets_relayed_total{to="agent"} 6000"#,
            r#"dialer_rtp_packets_relayed_total{to="customer"} 5994"#,
            r#"dialer_rtp_packets_lost_total{from="customer"} 4"#,
            r#"dialer_rtp_packets_lost_total{from="agent"} 10"#,
        ] {
            assert!(has(&text, line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn sip_is_counted_by_direction_method_and_status_class() {
        let metrics = Metrics::new();
        let invite = b"INVITE sip:+15551234@carrier.test SIP/2.0\r\nVia: x\r\n\r\n";
        metrics.on_sip(Direction::Out, invite);
        metrics.on_sip(Direction::Out, invite);
        metrics.on_sip(Direction::In, b"SIP/2.0 100 Trying\r\n\r\n");
        metrics.on_sip(Direction::In, b"SIP/2.0 486 Busy Here\r\n\r\n");
        // A bare LF ends a line too, and the reason phrase may be missing.
        metrics.on_sip(Direction::Out, b"SIP/2.0 200\n\n");
        metrics.on_sip(Direction::In, b"OPTIONS sip:dialer SIP/2.0\r\n\r\n");
        // A method a peer made up is `other`, never a label value of its own.
        metrics.on_sip(Direction::In, b"FROBNICATE sip:dialer SIP/2.0\r\n\r\n");
        // Not SIP: keep-alives, garbage, impossible statuses, a truncated line.
        for junk in [
            &b"\r\n\r\n"[..],
            b"hello world\r\n",
            b"SIP/2.0 700 Nope\r\n",
            b"SIP/2.0 099 Early\r\n",
            b"SIP/2.0 2000 Long\r\n",
            b"INVITE sip:x SIP/2.0",
            b"INVITE sip:x HTTP/1.1\r\n",
        ] {
            metrics.on_sip(Direction::In, junk);
        }
        let text = metrics.render(&Snapshot::default());
        for line in [
            r#"dialer_sip_requests_total{direction="out",method="INVITE"} 2"#,
            r#"dialer_sip_requests_total{direction="in",method="OPTIONS"} 1"#,
            r#"dialer_sip_requests_total{direction="in",method="other"} 1"#,
            r#"dialer_sip_responses_total{direction="in",status_class="1xx"} 1"#,
            r#"dialer_sip_responses_total{direction="in",status_class="4xx"} 1"#,
            r#"dialer_sip_responses_total{direction="out",status_class="2xx"} 1"#,
        ] {
            assert!(has(&text, line), "{line} missing from\n{text}");
        }
        let sip: Vec<&str> = samples(&text)
            .into_iter()
            .filter(|l| {
                l.starts_with("dialer_sip_") && !l.starts_with("dialer_sip_requests_dropped")
            })
            .collect();
        assert_eq!(sip.len(), 6, "{sip:?}");
    }

    #[test]
    fn dropped_requests_are_counted_by_reason_from_zero() {
        let metrics = Metrics::new();
        metrics.on_dropped(DropReason::UnknownSource);
        metrics.on_dropped(DropReason::UnknownSource);
        metrics.on_dropped(DropReason::RateLimited);
        let text = metrics.render(&Snapshot::default());
        for line in [
            r#"dialer_sip_requests_dropped_total{reason="unknown_source"} 2"#,
            r#"dialer_sip_requests_dropped_total{reason="rate_limited"} 1"#,
            r#"dialer_sip_requests_dropped_total{reason="overloaded"} 0"#,
        ] {
            assert!(has(&text, line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn a_drop_group_has_one_series_whatever_its_members() {
        let metrics = Metrics::new();
        let member = |name: &str| CampaignStatus {
            name: name.into(),
            drop_group: Some("floor".into()),
            group_window_abandon_rate: Some(1.5),
            ..CampaignStatus::default()
        };
        let text = metrics.render(&Snapshot {
            campaigns: vec![member("a"), member("b"), CampaignStatus::default()],
            ..Snapshot::default()
        });
        let series: Vec<&str> = samples(&text)
            .into_iter()
            .filter(|l| l.starts_with("dialer_campaign_group_window_abandon_rate_percent"))
            .collect();
        assert_eq!(
            series,
            [r#"dialer_campaign_group_window_abandon_rate_percent{group="floor"} 1.5"#],
            "{text}"
        );
    }

    #[test]
    fn gauges_come_from_the_snapshot() {
        let metrics = Metrics::new();
        let mut leads = std::collections::BTreeMap::new();
        leads.insert("new".to_owned(), 40);
        leads.insert("done".to_owned(), 2);
        let snapshot = Snapshot {
            calls: vec![call(1), call(2), call(3)],
            agents: vec![
                agent("1000", AgentState::Ready),
                agent("1001", AgentState::Ready),
                agent("1002", AgentState::Talking),
            ],
            trunks: vec![
                trunk("carrier", "registered"),
                trunk("backup", "retrying"),
                trunk("ip-auth", "static"),
            ],
            campaigns: vec![CampaignStatus {
                name: "spring \"sale\"".into(),
                leads,
                lines_in_use: 4,
                abandon_rate: 2.5,
                window_abandon_rate: 2.0,
                live_answers: 40,
                abandoned: 1,
                ..CampaignStatus::default()
            }],
        };
        let text = metrics.render(&snapshot);
        for line in [
            "dialer_calls_in_progress 3",
            r#"dialer_agents{state="ready"} 2"#,
            r#"dialer_agents{state="talking"} 1"#,
            r#"dialer_agents{state="paused"} 0"#,
            r#"dialer_trunk_registered{trunk="carrier"} 1"#,
            r#"dialer_trunk_registered{trunk="backup"} 0"#,
            r#"dialer_campaign_lines{campaign="spring \"sale\""} 4"#,
            r#"dialer_campaign_leads{campaign="spring \"sale\"",state="new"} 40"#,
            r#"dialer_campaign_leads{campaign="spring \"sale\"",state="done"} 2"#,
            r#"dialer_campaign_abandon_rate_percent{campaign="spring \"sale\""} 2.5"#,
            r#"dialer_campaign_window_abandon_rate_percent{campaign="spring \"sale\""} 2.0"#,
            r#"dialer_campaign_live_answers{campaign="spring \"sale\""} 40"#,
            r#"dialer_campaign_abandoned{campaign="spring \"sale\""} 1"#,
        ] {
            assert!(has(&text, line), "{line} missing from\n{text}");
        }
        assert!(
            !text.contains("ip-auth"),
            "a static trunk has no series: {text}"
        );
        // The gauges are the snapshot's: a later scrape without the campaign drops it.
        let later = metrics.render(&Snapshot::default());
        assert!(!later.contains("spring"), "{later}");
    }

    #[test]
    fn the_text_is_prometheus_0_0_4_with_help_and_type_for_each_family() {
        let metrics = Metrics::new();
        let empty = metrics.render(&Snapshot::default());
        // A family without a series is left out whole, comments included.
        assert!(!empty.contains("dialer_sip_requests_total"), "{empty}");
        assert!(!empty.contains("dialer_sip_requests "), "{empty}");
        assert!(!empty.contains("dialer_trunk_registered"), "{empty}");
        metrics.on_sip(Direction::In, b"BYE sip:dialer SIP/2.0\r\n\r\n");
        metrics.on_sip(Direction::Out, b"SIP/2.0 200 OK\r\n\r\n");
        let text = metrics.render(&Snapshot {
            trunks: vec![trunk("carrier", "registering")],
            campaigns: vec![CampaignStatus {
                name: "c".into(),
                leads: [("new".to_owned(), 1)].into_iter().collect(),
                ..CampaignStatus::default()
            }],
            ..Snapshot::default()
        });
        assert!(!text.contains("# EOF"), "OpenMetrics, not 0.0.4: {text}");
        assert!(text.ends_with('\n'));
        for (name, kind) in [
            ("dialer_calls_total", "counter"),
            ("dialer_calls_in_progress", "gauge"),
            ("dialer_agents", "gauge"),
            ("dialer_trunk_registered", "gauge"),
            ("dialer_campaign_lines", "gauge"),
            ("dialer_campaign_leads", "gauge"),
            ("dialer_campaign_abandon_rate_percent", "gauge"),
            ("dialer_campaign_window_abandon_rate_percent", "gauge"),
            ("dialer_campaign_live_answers", "gauge"),
            ("dialer_campaign_abandoned", "gauge"),
            ("dialer_sip_requests_total", "counter"),
            ("dialer_sip_responses_total", "counter"),
            ("dialer_sip_requests_dropped_total", "counter"),
            ("dialer_rtp_packets_relayed_total", "counter"),
            ("dialer_rtp_packets_lost_total", "counter"),
        ] {
            let type_line = format!("# TYPE {name} {kind}");
            assert!(text.lines().any(|l| l == type_line), "{type_line}\n{text}");
            let help = format!("# HELP {name} ");
            assert!(text.lines().any(|l| l.starts_with(&help)), "{help}\n{text}");
        }
        assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    }
}

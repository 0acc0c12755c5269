//! One bridged call through `dialer run` for the robustness tests: a SIPp carrier scenario
//! (directly, or behind a proxy such as Kamailio), baresip as agent 1000 answering at once,
//! and one tshark tap on `lo` that sees the SIP of every party and the RTP to and from the
//! carrier and to the agent, so every check reads one capture on one clock (and the
//! carrier's steady stream makes [`Capture::wait_capture_time`] a clock of the call).
//!
//! Drive: [`Bridged::start`] (returns once the agent has answered), let the scenario do its
//! in-call work (waiting on the wire or the peers, never on a fixed delay), then
//! [`Bridged::finish`], which ends the call the chosen way and collects the carrier's trace,
//! the CDR, the capture and the agent's recording.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use super::audio::{self, Pcm};
use super::baresip::{AnswerMode, Baresip};
use super::call::{wait_cdr, CallOptions, CallTest};
use super::ports::{free_baresip_port, free_port, free_udp_range, LOOPBACK};
use super::sipp::{Sipp, SippConfig, SippOutcome};
use super::tshark::{self, RtpPacket};
use super::wire::{self, Capture, WireSip};
use super::{HarnessError, Peer};

/// The agent's RTP range length (baresip takes 20 ports from its base).
pub const AGENT_RTP_PORTS: u16 = 20;

/// A call placed and answered by the agent.
#[derive(Debug)]
pub struct Bridged<'t> {
    /// The dialer's files and ports (owned by the test, so its directory is kept when the
    /// test panics).
    pub test: &'t CallTest,
    /// The carrier's RTP port (`-mp`).
    pub media_port: u16,
    /// The carrier.
    pub carrier: Sipp,
    /// The capture on `lo`.
    pub tap: Capture,
    /// `dialer run`.
    pub run: Peer,
    /// The agent.
    pub agent: Baresip,
    /// The agent's first RTP port.
    pub agent_rtp: u16,
    /// The agent's SIP address.
    pub agent_sip: SocketAddr,
    /// `dialer call`, following the call.
    pub call: Peer,
}

/// Who ends the call in [`Bridged::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hangup {
    /// The agent hangs up (the dialer sends BYE to the carrier).
    Agent,
    /// The carrier's scenario sends BYE itself.
    Carrier,
}

/// What a finished call left behind.
#[derive(Debug)]
pub struct Ended {
    /// The agent's SIP address.
    pub agent_sip: SocketAddr,
    /// The agent's first RTP port.
    pub agent_rtp: u16,
    /// The carrier's SIPp trace (it exited 0).
    pub carrier: SippOutcome,
    /// The CDR line of `dialer run`.
    pub cdr: serde_json::Value,
    /// `dialer call`'s exit status.
    pub exit: ExitStatus,
    /// The tap's capture.
    pub pcap: PathBuf,
    /// What the agent heard.
    pub heard: Pcm,
}

impl<'t> Bridged<'t> {
    /// Starts the tap, the carrier (`carrier` settings; a `proxy` in front of it is already
    /// running and is the dialer's trunk proxy), `dialer run` and the agent, then places
    /// the call and waits for the agent to answer. `also_capture` are further BPF terms the
    /// tap takes (OR'ed to the SIP and RTP it always captures).
    pub fn start(
        test: &'t CallTest,
        carrier: SippConfig,
        proxy: Option<SocketAddr>,
        also_capture: &[String],
    ) -> Result<Bridged<'t>, HarnessError> {
        Self::start_with(test, carrier, proxy, also_capture, &CallOptions::default())
    }

    /// [`Bridged::start`] with the dialer configured by `options`.
    pub fn start_with(
        test: &'t CallTest,
        carrier: SippConfig,
        proxy: Option<SocketAddr>,
        also_capture: &[String],
        options: &CallOptions,
    ) -> Result<Bridged<'t>, HarnessError> {
        let media_port = carrier
            .media
            .map(|(_, port)| port)
            .ok_or_else(|| HarnessError::Setup("the carrier scenario needs media".into()))?;
        let agent_rtp = free_udp_range(LOOPBACK, AGENT_RTP_PORTS)?;
        let agent_sip = SocketAddr::new(LOOPBACK, free_baresip_port(LOOPBACK)?);
        let mut sip_ports = vec![carrier.local.port(), test.sip.port(), agent_sip.port()];
        sip_ports.extend(proxy.map(|p| p.port()));
        let mut sip_filter: Vec<String> = sip_ports.iter().map(|p| format!("port {p}")).collect();
        sip_filter.extend(also_capture.iter().map(|t| format!("({t})")));
        let tap = Capture::start(
            "wire",
            "lo",
            &format!(
                "udp and ({} or port {media_port} or dst portrange {agent_rtp}-{})",
                sip_filter.join(" or "),
                agent_rtp + AGENT_RTP_PORTS - 1
            ),
            SocketAddr::new(LOOPBACK, super::ports::free_udp_port(LOOPBACK)?),
            test.dir.path(),
        )?;
        let carrier = Sipp::start(carrier, test.dir.path())?;
        let config = test.config(proxy.unwrap_or(carrier.addr()), options)?;
        let run = test.run(&config)?;
        let agent_config = test.agent_config(
            AnswerMode::Auto,
            &["PCMA"],
            agent_sip,
            agent_rtp,
            SocketAddr::new(LOOPBACK, free_port(LOOPBACK)?),
        )?;
        let agent = Baresip::start(agent_config, test.dir.path())?;
        agent.wait_registered(Duration::from_secs(10))?;
        let call = test.call("+15551234")?;
        agent.wait_established(Duration::from_secs(20))?;
        Ok(Bridged {
            test,
            media_port,
            carrier,
            tap,
            run,
            agent,
            agent_rtp,
            agent_sip,
            call,
        })
    }

    /// Waits until the agent has recorded `seconds` of the call.
    pub fn wait_heard(&self, seconds: f64, timeout: Duration) -> Result<(), HarnessError> {
        super::poll_until(
            &format!("{seconds} s of audio heard by the agent"),
            timeout,
            Duration::from_millis(50),
            || (self.agent.heard_seconds() >= seconds).then_some(()),
        )
    }

    /// Ends the call (`hangup`), waits for every party and collects what they left.
    pub fn finish(self, hangup: Hangup) -> Result<Ended, HarnessError> {
        if hangup == Hangup::Agent {
            self.agent.hangup()?;
        }
        self.agent.wait_terminated(Duration::from_secs(30))?;
        let exit = self.call.wait_exit(Duration::from_secs(20))?;
        let carrier = self.carrier.expect_success(Duration::from_secs(30))?;
        let cdr = wait_cdr(&self.run, Duration::from_secs(5))?;
        let pcap = self.tap.stop()?;
        self.run.stop("TERM", Duration::from_secs(10))?;
        let heard = Pcm::read_wav(&self.agent.heard()?)?;
        self.agent.stop()?;
        Ok(Ended {
            agent_sip: self.agent_sip,
            agent_rtp: self.agent_rtp,
            carrier,
            cdr,
            exit,
            pcap,
            heard,
        })
    }
}

impl Ended {
    /// The SIP the carrier's port sent and received, as captured.
    pub fn carrier_sip(&self, carrier: SocketAddr) -> Result<Vec<WireSip>, HarnessError> {
        wire::sip_messages(&self.pcap, carrier.port())
    }

    /// The RTP captured towards `port`.
    pub fn rtp_to(&self, port: u16) -> Result<Vec<RtpPacket>, HarnessError> {
        tshark::rtp_to_port(&self.pcap, port)
    }
}

/// Whether the G.711 packets captured in `[from, to)` carry `freq` (laid out by sequence
/// number, [`tshark::g711_timeline`]), and the tone timeline for the assertion message.
pub fn tone_between(
    packets: &[RtpPacket],
    from: f64,
    to: f64,
    freq: f64,
) -> (bool, Vec<(f64, Option<f64>)>) {
    let pcm = tshark::g711_timeline(&wire::rtp_between(packets, from, to));
    let timeline = audio::tone_timeline(&pcm, &super::call::TONES);
    let present =
        pcm.duration_s() >= 0.4 && audio::tone_present_in(&pcm, freq, 0.0, pcm.duration_s());
    (present, timeline)
}

/// The first message in `messages` labelled `label` (`INVITE`, `200 INVITE`) whose CSeq
/// number is `cseq` (any, for `None`).
pub fn find<'a>(messages: &'a [WireSip], label: &str, cseq: Option<u32>) -> Option<&'a WireSip> {
    messages.iter().find(|m| {
        m.label() == label
            && cseq.is_none_or(|n| {
                m.message
                    .header("CSeq")
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u32>().ok())
                    == Some(n)
            })
    })
}

//! The dialer restarting (issue 6, item 5): `dialer run` un-registers and re-registers cleanly
//! and leaves no call half-open on the carrier.
//!
//! - With Kamailio as the trunk's registrar (`usrloc` read through `kamcmd ul.dump`): one
//!   binding while running, none after SIGTERM, exactly one again after the restart (a new
//!   Call-ID). A dialer killed outright (SIGKILL, no un-REGISTER) and started again on the
//!   same address still leaves exactly one binding: the new REGISTER has the same Contact and
//!   a new Call-ID, so Kamailio updates the binding (RFC 3261 §10.3 step 7).
//! - A call whose customer is still ringing at SIGTERM (SIPp as a carrier that answers 180
//!   and never 200, `carrier_ringing_forever.xml`) is CANCELled (RFC 3261 §9.1: same branch
//!   and CSeq number as the INVITE); SIPp answers 200 and 487, the dialer ACKs, writes the
//!   CDR, un-registers from Kamailio and exits 0.
//! - A call whose customer answered and whose agent (baresip, not answering) still rings at
//!   SIGTERM: CANCEL to the agent (its 487 ACKed), BYE to the customer (SIPp's `carrier.xml`),
//!   CDR, exit 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use dialer::control::{CallState, OriginateRequest};
use regex::Regex;
use scenario_tests::interop::baresip::AnswerMode;
use scenario_tests::interop::call::{carrier, in_dialog, text, wait_cdr, CallOptions, CallTest};
use scenario_tests::interop::kamailio::{self, Binding, Kamailio, KamailioConfig};
use scenario_tests::interop::ports::{free_port, free_udp_port, free_udp_range, LOOPBACK};
use scenario_tests::interop::process::Stream;
use scenario_tests::interop::sipp::{Sipp, SippConfig};
use scenario_tests::interop::trace::Direction;
use scenario_tests::interop::{
    dialer as dialer_bin, poll_until, render_fixture, require_tools, Peer, TestDir,
};

const PASSWORD: &str = "s3cret";
/// What Kamailio grants.
const GRANTED_S: u32 = 10;

/// Kamailio as the registrar of trunk `kamailio`; optionally a second trunk `carrier`
/// (IP-authenticated, no REGISTER) and agent 1000 at a fixed contact nobody answers.
struct Setup {
    dir: TestDir,
    dialer: PathBuf,
    sip_port: u16,
    api_port: u16,
    kamailio: Kamailio,
    config: PathBuf,
}

impl Setup {
    fn new(name: &str, carrier: Option<SocketAddr>) -> Setup {
        kamailio::require().expect("kamailio installed");
        let dialer = dialer_bin::require(&["run"]).unwrap_or_else(|e| panic!("{e}"));
        let dir = TestDir::new(name).expect("temp dir");
        let listen = SocketAddr::new(LOOPBACK, free_udp_port(LOOPBACK).expect("Kamailio port"));
        let mut kconfig = KamailioConfig::new("kamailio", listen, PASSWORD);
        kconfig.max_expires = GRANTED_S;
        let kamailio = Kamailio::start(kconfig, dir.path()).expect("kamailio starts");
        let sip_port = free_port(LOOPBACK).expect("dialer SIP port");
        let api_port = free_port(LOOPBACK).expect("API port");
        let config = dir.join("dialer.toml");
        render_fixture(
            "kamailio/dialer.toml.tmpl",
            &[
                ("SIP_PORT", sip_port.to_string()),
                ("KAMAILIO_PORT", kamailio.addr().port().to_string()),
                ("TRUNK_PASSWORD", PASSWORD.to_owned()),
                ("API_PORT", api_port.to_string()),
            ],
            &config,
        )
        .expect("dialer config");
        if let Some(carrier) = carrier {
            let mut rtp = free_udp_range(LOOPBACK, 20).expect("RTP ports");
            while (rtp..rtp + 20).contains(&sip_port) {
                rtp = free_udp_range(LOOPBACK, 20).expect("RTP ports");
            }
            let agent = free_udp_port(LOOPBACK).expect("agent port");
            let extra = format!(
                r#"
[[trunk]]
name = "carrier"
proxy = "{carrier}"
domain = "carrier.test"
register = false
transport = "udp"
codecs = ["PCMA"]
keepalive = "none"
session_expires_s = 0

[[agent]]
extension = "1000"
password = "agentpw"
contact = "sip:1000@127.0.0.1:{agent}"

[media]
rtp_ports = "{rtp}-{last}"
"#,
                last = rtp + 19
            );
            let mut text = std::fs::read_to_string(&config).expect("read dialer.toml");
            text.push_str(&extra);
            std::fs::write(&config, text).expect("write dialer.toml");
        }
        dialer_bin::check_config(&dialer, &config).expect("valid dialer configuration");
        Setup {
            dir,
            dialer,
            sip_port,
            api_port,
            kamailio,
            config,
        }
    }

    /// `dialer run --ladder` (named `name` for its log files), once its trunk is registered.
    fn run(&self, name: &str) -> Peer {
        let mut cmd = Command::new(&self.dialer);
        cmd.args(["run", "--ladder", "--config"])
            .arg(&self.config)
            .current_dir(self.dir.path());
        let run = Peer::spawn(name, cmd, self.dir.path()).expect("dialer run starts");
        run.wait_for_line(
            &Regex::new(&format!(
                r"INFO dialer: trunk kamailio: registered expires in {GRANTED_S} s"
            ))
            .unwrap(),
            Duration::from_secs(10),
        )
        .expect("dialer run registers its trunk");
        run
    }

    /// The dialer's bindings once there are `count` of them (Kamailio saves the binding
    /// before it answers, so this does not wait long).
    fn bindings(&self, count: usize) -> Vec<Binding> {
        let found = poll_until(
            &format!("{count} bindings of dialer at Kamailio"),
            Duration::from_secs(3),
            Duration::from_millis(50),
            || {
                let b = self.kamailio.bindings_of("dialer").expect("kamcmd ul.dump");
                (b.len() == count).then_some(b)
            },
        );
        found.unwrap_or_else(|_| {
            let now = self.kamailio.bindings_of("dialer").expect("kamcmd ul.dump");
            panic!("expected {count} bindings, Kamailio has {now:?}")
        })
    }

    fn contact(&self) -> String {
        format!("127.0.0.1:{}", self.sip_port)
    }

    fn stop(&self, run: &Peer) {
        let status = run
            .stop("TERM", Duration::from_secs(10))
            .expect("dialer run exits on SIGTERM");
        assert!(status.success(), "exit {status}:\n{}", run.tail());
        assert!(
            run.output(Stream::Stderr)
                .contains("dialer: trunk kamailio: unregistered"),
            "{}",
            run.tail()
        );
    }
}

#[test]
fn a_restarted_dialer_leaves_exactly_one_binding_at_kamailio() {
    let setup = Setup::new("dialer-restart-bindings", None);
    let first = setup.run("dialer-run-1");
    let bound = setup.bindings(1);
    assert!(bound[0].contact.contains(&setup.contact()), "{bound:?}");

    setup.stop(&first);
    assert_eq!(setup.bindings(0), vec![], "SIGTERM removes the binding");

    let second = setup.run("dialer-run-2");
    let rebound = setup.bindings(1);
    assert!(rebound[0].contact.contains(&setup.contact()), "{rebound:?}");
    assert_ne!(
        rebound[0].call_id, bound[0].call_id,
        "a new process registers with a new Call-ID"
    );

    // A crash: no un-REGISTER, the binding stays until it expires.
    let status = second
        .stop("KILL", Duration::from_secs(5))
        .expect("dialer run killed");
    assert!(!status.success());
    let left = setup.bindings(1);
    assert_eq!(left[0].call_id, rebound[0].call_id, "{left:?}");
    // Restarted on the same address: the same Contact with a new Call-ID updates that binding
    // rather than adding one.
    let third = setup.run("dialer-run-3");
    let after_crash = setup.bindings(1);
    assert_ne!(after_crash[0].call_id, left[0].call_id, "{after_crash:?}");
    assert!(
        after_crash[0].contact.contains(&setup.contact()),
        "{after_crash:?}"
    );
    setup.stop(&third);
    assert_eq!(setup.bindings(0), vec![]);
    let status = setup
        .kamailio
        .stop(Duration::from_secs(10))
        .expect("kamailio stops");
    assert!(status.success(), "{}", setup.kamailio.peer().tail());
}

#[test]
fn sigterm_while_the_customer_rings_cancels_the_invite_writes_the_cdr_and_unregisters() {
    require_tools(&["sipp"]).expect("sipp installed");
    let dir_name = "dialer-restart-ringing";
    let carrier_addr = SocketAddr::new(LOOPBACK, free_udp_port(LOOPBACK).expect("carrier port"));
    let setup = Setup::new(dir_name, Some(carrier_addr));
    let mut sipp = SippConfig::new("carrier", "carrier_ringing_forever.xml", carrier_addr);
    sipp.timeout = Duration::from_secs(40);
    let carrier = Sipp::start(sipp, setup.dir.path()).expect("SIPp carrier");
    let run = setup.run("dialer-run");
    setup.bindings(1);

    let client = dialer::client::Client::new(&format!("http://127.0.0.1:{}", setup.api_port), None)
        .expect("API client");
    let info = client
        .originate(&OriginateRequest {
            number: "+15551234".into(),
            agent: Some("1000".into()),
            trunk: Some("carrier".into()),
            ..OriginateRequest::default()
        })
        .expect("the dialer places the call");
    poll_until(
        "the customer ringing (180 received)",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            client
                .calls()
                .ok()?
                .iter()
                .any(|c| c.id == info.id && c.state == CallState::Progress)
                .then_some(())
        },
    )
    .expect("the call is ringing");

    run.signal("TERM").expect("SIGTERM to dialer run");
    let outcome = carrier
        .expect_success(Duration::from_secs(15))
        .expect("SIPp gets the CANCEL, answers 200 and 487, and gets the ACK");
    let cdr = wait_cdr(&run, Duration::from_secs(10)).expect("CDR");
    let status = run
        .wait_exit(Duration::from_secs(10))
        .expect("dialer run exits");
    assert!(status.success(), "exit {status}:\n{}", run.tail());

    let invite = outcome
        .received("INVITE")
        .next()
        .unwrap_or_else(|| panic!("no INVITE: {:?}", outcome.ladder()));
    let cancel = outcome
        .received("CANCEL")
        .next()
        .unwrap_or_else(|| panic!("no CANCEL: {:?}", outcome.ladder()));
    assert_eq!(cancel.direction, Direction::Received);
    // RFC 3261 §9.1: the CANCEL matches the INVITE's transaction.
    assert_eq!(cancel.request_uri(), invite.request_uri());
    assert_eq!(cancel.header("Call-ID"), invite.header("Call-ID"));
    assert_eq!(cancel.header("Via"), invite.header("Via"));
    let number = |m: &scenario_tests::interop::trace::TracedMessage| {
        m.header("CSeq")
            .and_then(|c| c.split_whitespace().next().map(str::to_owned))
    };
    assert_eq!(number(cancel), number(invite));
    assert_eq!(cancel.cseq_method(), Some("CANCEL"));
    assert!(
        outcome.with_status(487).next().is_some(),
        "{:?}",
        outcome.ladder()
    );
    let ack = outcome
        .received("ACK")
        .next()
        .unwrap_or_else(|| panic!("no ACK for the 487: {:?}", outcome.ladder()));
    assert_eq!(
        ack.header("Via"),
        invite.header("Via"),
        "the 487's ACK is hop by hop"
    );
    assert_eq!(
        outcome.received("BYE").count(),
        0,
        "no BYE for a call never answered"
    );

    assert_eq!(text(&cdr, "id"), info.id.to_string(), "CDR: {cdr}");
    assert_eq!(text(&cdr, "hung_up_by"), "dialer", "CDR: {cdr}");
    assert!(cdr["answered"].is_null(), "CDR: {cdr}");
    assert!(
        !cdr["progress"].is_null(),
        "the 180 is in the CDR's progress time: {cdr}"
    );
    assert!(
        run.output(Stream::Stderr)
            .contains("dialer: trunk kamailio: unregistered"),
        "{}",
        run.tail()
    );
    assert_eq!(setup.bindings(0), vec![], "the binding is removed");
}

#[test]
fn sigterm_while_the_agent_rings_cancels_the_agent_and_byes_the_answered_customer() {
    let test =
        CallTest::new("dialer-restart-agent-ringing", &["sipp", "baresip", "sox"]).expect("setup");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let carrier = carrier(&test.dir, "carrier.xml", media_port).expect("carrier");
    let config = test
        .config(carrier.addr(), &CallOptions::default())
        .expect("config");
    let run = test.run(&config).expect("dialer run");
    let agent = test
        .agent(AnswerMode::Manual, &["PCMA"])
        .expect("agent that does not answer");
    let call = test.call("+15551234").expect("dialer call");
    agent
        .wait_incoming(Duration::from_secs(15))
        .expect("the agent rings once the customer answered");

    run.signal("TERM").expect("SIGTERM to dialer run");
    let outcome = carrier
        .expect_success(Duration::from_secs(15))
        .expect("the answered customer gets a BYE and answers 200");
    agent
        .wait_terminated(Duration::from_secs(10))
        .expect("the agent stops ringing");
    let cdr = wait_cdr(&run, Duration::from_secs(10)).expect("CDR");
    let status = run
        .wait_exit(Duration::from_secs(10))
        .expect("dialer run exits");
    let _ = call.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit {status}:\n{}", run.tail());

    assert!(
        in_dialog(&outcome, "BYE").is_some(),
        "{:?}",
        outcome.ladder()
    );
    // The ladder on the dialer's stderr: CANCEL to the ringing agent, its 487, no BYE to it.
    let stderr = run.output(Stream::Stderr);
    let to_agent = format!("-> {}", agent.sip_addr());
    let from_agent = format!("<- {}", agent.sip_addr());
    let ladder: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(&to_agent) || l.contains(&from_agent))
        .collect();
    assert!(
        ladder
            .iter()
            .any(|l| l.contains(&to_agent) && l.contains("CANCEL")),
        "no CANCEL to the agent: {ladder:#?}"
    );
    assert!(
        ladder
            .iter()
            .any(|l| l.contains(&from_agent) && l.contains("487")),
        "no 487 from the agent: {ladder:#?}"
    );
    assert!(
        !ladder
            .iter()
            .any(|l| l.contains(&to_agent) && l.contains(" BYE ")),
        "a BYE to an agent that never answered: {ladder:#?}"
    );
    assert_eq!(text(&cdr, "hung_up_by"), "dialer", "CDR: {cdr}");
    assert!(!cdr["answered"].is_null(), "CDR: {cdr}");
    assert!(cdr["bridged"].is_null(), "CDR: {cdr}");
}

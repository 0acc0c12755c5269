//! An agent behind NAT on this machine: two network namespaces and two veth pairs, built with
//! ip(8) and iptables(8) and torn down on drop (also when the test fails).
//!
//! ```text
//!  host (dialer, SIPp)            router namespace                    agent namespace
//!  10.213.N.1 ──veth── 10.213.N.2 [MASQUERADE 10.214.N.0/24]
//!                                  10.214.N.1 ──veth── 10.214.N.2 (baresip)
//! ```
//!
//! The NAT runs in its own namespace rather than on the host: iptables' `nat POSTROUTING`
//! chain, the only one where MASQUERADE is allowed, is traversed by forwarded and outgoing
//! packets, never by packets delivered to a local address, so a namespace talking straight to
//! a host address would reach the dialer un-NATed. The router is a plain home NAT: the LAN is
//! masqueraded behind its WAN address and new flows from the WAN side are dropped (no port
//! forwarding), so the dialer can reach the agent only through the binding the agent's own
//! packets opened. The host routes the LAN prefix to the router, so a packet the dialer sends
//! to the agent's private address stays on this machine (and is dropped there) instead of
//! leaving through the default route.
//!
//! Every rule lives inside the router namespace and is deleted with it; the host keeps only
//! the veth end and its route, which go when the namespaces do. Names and subnets carry the
//! test process's PID, and a subnet already present on the host is refused, so nothing of the
//! machine's own networking is touched.

use std::net::Ipv4Addr;
use std::process::Command;

use super::HarnessError;

/// A NAT'd LAN with one host in it; dropped, it removes both namespaces and the host's veth.
#[derive(Debug)]
pub struct NatLan {
    agent_ns: String,
    router_ns: String,
    host_veth: String,
    router_wan: String,
    /// The host's end of the WAN link: where the dialer listens.
    pub host_ip: Ipv4Addr,
    /// The router's WAN address: what the dialer sees as the agent's source.
    pub public_ip: Ipv4Addr,
    /// The agent's private address inside the LAN.
    pub agent_ip: Ipv4Addr,
}

/// Fails unless this process runs as root (`id -u` is 0), saying `why` root is needed: for
/// ip-netns(8) and iptables(8), or SIPp's raw socket for `play_pcap_audio`.
pub fn require_root(why: &str) -> Result<(), HarnessError> {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| HarnessError::Setup(format!("running id -u: {e}")))?;
    let uid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if uid == "0" {
        Ok(())
    } else {
        Err(HarnessError::Setup(format!(
            "this test {why} and must run as root; `id -u` says {uid}. CI runs as root; \
             locally run it with sudo"
        )))
    }
}

fn run(args: &[&str]) -> Result<(), HarnessError> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| HarnessError::Setup(format!("running {}: {e}", args.join(" "))))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(HarnessError::Setup(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl NatLan {
    /// Builds the namespaces, links, addresses, routes and NAT rules.
    pub fn create() -> Result<NatLan, HarnessError> {
        require_root("builds network namespaces (ip netns, veth, iptables MASQUERADE)")?;
        let pid = std::process::id();
        // Interface names are limited to 15 bytes (IFNAMSIZ - 1).
        let tag = pid % 10_000_000;
        let n = u8::try_from(pid % 250 + 1).expect("1..=250 fits in u8");
        let wan_ip = |host: u8| Ipv4Addr::new(10, 213, n, host);
        let lan_ip = |host: u8| Ipv4Addr::new(10, 214, n, host);
        let existing = Command::new("ip")
            .args(["-4", "-o", "addr", "show"])
            .output()
            .map_err(|e| HarnessError::Setup(format!("running ip addr (Debian iproute2): {e}")))?;
        let existing = String::from_utf8_lossy(&existing.stdout).into_owned();
        for prefix in [format!("10.213.{n}."), format!("10.214.{n}.")] {
            if existing.contains(&prefix) {
                return Err(HarnessError::Setup(format!(
                    "{prefix}0/24 is already configured on this host; the NAT test uses it \
                     only inside its own namespaces and will not share it"
                )));
            }
        }
        let lan_net = format!("10.214.{n}.0/24");
        let lan = NatLan {
            agent_ns: format!("dialer-agent-{pid}"),
            router_ns: format!("dialer-nat-{pid}"),
            host_veth: format!("dnh{tag}"),
            router_wan: format!("dnw{tag}"),
            host_ip: wan_ip(1),
            public_ip: wan_ip(2),
            agent_ip: lan_ip(2),
        };
        let router_lan = format!("dnl{tag}");
        let agent_if = format!("dna{tag}");
        let (r, a) = (lan.router_ns.as_str(), lan.agent_ns.as_str());
        let (h, w, l, g) = (
            lan.host_veth.as_str(),
            lan.router_wan.as_str(),
            router_lan.as_str(),
            agent_if.as_str(),
        );
        let cidr = |ip: Ipv4Addr| format!("{ip}/24");
        // From here on a failure returns early and `lan` is dropped, removing what was made.
        run(&["ip", "netns", "add", r])?;
        run(&["ip", "netns", "add", a])?;
        run(&["ip", "link", "add", h, "type", "veth", "peer", "name", w])?;
        run(&["ip", "link", "set", w, "netns", r])?;
        run(&["ip", "link", "add", l, "type", "veth", "peer", "name", g])?;
        run(&["ip", "link", "set", l, "netns", r])?;
        run(&["ip", "link", "set", g, "netns", a])?;
        run(&["ip", "addr", "add", &cidr(wan_ip(1)), "dev", h])?;
        run(&["ip", "link", "set", h, "up"])?;
        run(&["ip", "-n", r, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", r, "addr", "add", &cidr(wan_ip(2)), "dev", w])?;
        run(&["ip", "-n", r, "link", "set", w, "up"])?;
        run(&["ip", "-n", r, "addr", "add", &cidr(lan_ip(1)), "dev", l])?;
        run(&["ip", "-n", r, "link", "set", l, "up"])?;
        run(&["ip", "-n", a, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", a, "addr", "add", &cidr(lan_ip(2)), "dev", g])?;
        run(&["ip", "-n", a, "link", "set", g, "up"])?;
        run(&[
            "ip",
            "-n",
            a,
            "route",
            "add",
            "default",
            "via",
            &lan_ip(1).to_string(),
        ])?;
        let in_router = |args: &[&str]| {
            let mut full = vec!["ip", "netns", "exec", r];
            full.extend_from_slice(args);
            run(&full)
        };
        in_router(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        in_router(&[
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-s",
            &lan_net,
            "-o",
            w,
            "-j",
            "MASQUERADE",
        ])?;
        in_router(&[
            "iptables",
            "-A",
            "FORWARD",
            "-i",
            w,
            "-o",
            l,
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            "-j",
            "ACCEPT",
        ])?;
        in_router(&["iptables", "-A", "FORWARD", "-i", w, "-o", l, "-j", "DROP"])?;
        run(&[
            "ip",
            "route",
            "add",
            &lan_net,
            "via",
            &wan_ip(2).to_string(),
            "dev",
            h,
        ])?;
        Ok(lan)
    }

    /// The agent namespace's name, for `ip netns exec`.
    pub fn agent_namespace(&self) -> &str {
        &self.agent_ns
    }

    /// Lets the host open TCP connections to `port` on the agent (its ctrl_tcp control
    /// socket), as an administrator's management exception; SIP and RTP stay NAT-only.
    pub fn allow_tcp_to_agent(&self, port: u16) -> Result<(), HarnessError> {
        run(&[
            "ip",
            "netns",
            "exec",
            &self.router_ns,
            "iptables",
            "-I",
            "FORWARD",
            "1",
            "-i",
            &self.router_wan,
            "-p",
            "tcp",
            "-d",
            &self.agent_ip.to_string(),
            "--dport",
            &port.to_string(),
            "-j",
            "ACCEPT",
        ])
    }
}

impl Drop for NatLan {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veths inside it and so their peers on the host,
        // with the route through them; the explicit link delete covers a host veth whose
        // peer never made it into the router namespace. Errors only mean it is gone already.
        for ns in [&self.agent_ns, &self.router_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_veth])
            .output();
    }
}

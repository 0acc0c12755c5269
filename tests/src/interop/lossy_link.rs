//! A lossy path to a peer on this machine: the peer in its own network namespace behind a
//! router namespace, joined to the host by veth pairs, with iptables rules in the router's
//! FORWARD chain that drop a share of the datagrams to and from one UDP port of the peer.
//! Built with ip(8) and iptables(8), torn down on drop (also when the test fails).
//!
//! ```text
//!  host (dialer, agent)          router namespace                       peer namespace (SIPp)
//!  10.215.N.1 ──veth── 10.215.N.2  FORWARD: udp port P -m statistic -j DROP
//!                                  10.216.N.1 ──veth── 10.216.N.2
//! ```
//!
//! The loss is in a router rather than in the peer's own OUTPUT chain because a datagram a
//! local sender's own netfilter drops fails its `sendto` with EPERM (SIPp counts that as a
//! failed call), while a datagram dropped on the way is silently lost, as on a real network.
//!
//! Why iptables' `statistic` match and not netem: this VM's kernel has no `sch_netem`, so
//! `tc qdisc add ... netem loss` fails; `-m statistic` needs only the xt_statistic match.
//! `--mode nth --every K` drops exactly one datagram in K in each direction, so every run
//! loses datagrams (a random 10 % over the few dozen datagrams of a short test drops none
//! often enough to make "the peers retransmitted" a coin toss) and a failure replays the
//! same way. The drop counters are read back from the rules.
//!
//! Every rule lives inside the router namespace and goes with it; the host keeps only its
//! veth end and the route to the peer's subnet through it, which go when the namespaces do.
//! Names and subnets carry the test process's PID, and a subnet already present on the host
//! is refused, so the machine's own networking is not touched.

use std::net::Ipv4Addr;
use std::process::Command;

use super::netns::require_root;
use super::HarnessError;

/// The namespace, its link and its rules; dropped, it removes them.
#[derive(Debug)]
pub struct LossyLink {
    ns: String,
    router_ns: String,
    host_veth: String,
    /// The host's end of the link.
    pub host_ip: Ipv4Addr,
    /// The peer's address inside the namespace.
    pub peer_ip: Ipv4Addr,
}

fn run(args: &[&str]) -> Result<String, HarnessError> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| HarnessError::Setup(format!("running {}: {e}", args.join(" "))))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(HarnessError::Setup(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl LossyLink {
    /// Builds the namespaces, links and routes (no loss yet: see [`LossyLink::drop_every`]).
    pub fn create() -> Result<LossyLink, HarnessError> {
        require_root("builds network namespaces with iptables rules (ip netns, veth)")?;
        let pid = std::process::id();
        let tag = pid % 10_000_000;
        let n = u8::try_from(pid % 250 + 1).expect("1..=250 fits in u8");
        let existing = run(&["ip", "-4", "-o", "addr", "show"])?;
        for prefix in [format!("10.215.{n}."), format!("10.216.{n}.")] {
            if existing.contains(&prefix) {
                return Err(HarnessError::Setup(format!(
                    "{prefix}0/24 is already configured on this host; the lossy-link test \
                     uses it only for its own namespaces and will not share it"
                )));
            }
        }
        let link = LossyLink {
            ns: format!("dialer-loss-{pid}"),
            router_ns: format!("dialer-lossr-{pid}"),
            host_veth: format!("dlh{tag}"),
            host_ip: Ipv4Addr::new(10, 215, n, 1),
            peer_ip: Ipv4Addr::new(10, 216, n, 2),
        };
        let router_wan = Ipv4Addr::new(10, 215, n, 2);
        let router_lan = Ipv4Addr::new(10, 216, n, 1);
        let (w, l, p) = (
            format!("dlw{tag}"),
            format!("dll{tag}"),
            format!("dlp{tag}"),
        );
        let (ns, r, h) = (
            link.ns.as_str(),
            link.router_ns.as_str(),
            link.host_veth.as_str(),
        );
        let cidr = |ip: Ipv4Addr| format!("{ip}/24");
        // From here on a failure returns early and `link` is dropped, removing what was made.
        run(&["ip", "netns", "add", r])?;
        run(&["ip", "netns", "add", ns])?;
        run(&["ip", "link", "add", h, "type", "veth", "peer", "name", &w])?;
        run(&["ip", "link", "set", &w, "netns", r])?;
        run(&["ip", "link", "add", &l, "type", "veth", "peer", "name", &p])?;
        run(&["ip", "link", "set", &l, "netns", r])?;
        run(&["ip", "link", "set", &p, "netns", ns])?;
        run(&["ip", "addr", "add", &cidr(link.host_ip), "dev", h])?;
        run(&["ip", "link", "set", h, "up"])?;
        run(&["ip", "-n", r, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", r, "addr", "add", &cidr(router_wan), "dev", &w])?;
        run(&["ip", "-n", r, "link", "set", &w, "up"])?;
        run(&["ip", "-n", r, "addr", "add", &cidr(router_lan), "dev", &l])?;
        run(&["ip", "-n", r, "link", "set", &l, "up"])?;
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        run(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &cidr(link.peer_ip),
            "dev",
            &p,
        ])?;
        run(&["ip", "-n", ns, "link", "set", &p, "up"])?;
        run(&[
            "ip",
            "-n",
            ns,
            "route",
            "add",
            "default",
            "via",
            &router_lan.to_string(),
        ])?;
        run(&[
            "ip",
            "netns",
            "exec",
            r,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])?;
        run(&[
            "ip",
            "route",
            "add",
            &format!("10.216.{n}.0/24"),
            "via",
            &router_wan.to_string(),
            "dev",
            h,
        ])?;
        Ok(link)
    }

    /// The peer namespace's name, for `ip netns exec`.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The host's veth interface (capture there to see every datagram the host sent, before
    /// the router drops any, and every one the router let through from the peer).
    pub fn host_interface(&self) -> &str {
        &self.host_veth
    }

    fn iptables(&self, args: &[&str]) -> Result<String, HarnessError> {
        let mut full = vec!["ip", "netns", "exec", self.router_ns.as_str(), "iptables"];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Drops one datagram in `every` to the peer's UDP port `port` and one in `every` from
    /// it, in the router.
    pub fn drop_every(&self, port: u16, every: u32) -> Result<(), HarnessError> {
        let (port, every, peer) = (
            port.to_string(),
            every.to_string(),
            self.peer_ip.to_string(),
        );
        for (address, direction) in [("-d", "--dport"), ("-s", "--sport")] {
            self.iptables(&[
                "-A",
                "FORWARD",
                address,
                &peer,
                "-p",
                "udp",
                direction,
                &port,
                "-m",
                "statistic",
                "--mode",
                "nth",
                "--every",
                &every,
                "--packet",
                "0",
                "-j",
                "DROP",
            ])?;
        }
        Ok(())
    }

    /// Datagrams the rules dropped so far: (towards the peer, from the peer).
    pub fn dropped(&self) -> Result<(u64, u64), HarnessError> {
        let listing = self.iptables(&["-L", "FORWARD", "-v", "-x", "-n"])?;
        let peer = self.peer_ip.to_string();
        let mut counts = (0, 0);
        for line in listing.lines().filter(|l| l.contains("statistic")) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(packets) = fields.first().and_then(|p| p.parse::<u64>().ok()) else {
                continue;
            };
            // Columns: pkts bytes target prot opt in out source destination ...
            if fields.get(8) == Some(&peer.as_str()) {
                counts.0 += packets;
            } else if fields.get(7) == Some(&peer.as_str()) {
                counts.1 += packets;
            }
        }
        Ok(counts)
    }
}

impl Drop for LossyLink {
    fn drop(&mut self) {
        // Deleting the namespaces destroys their veth ends and so the host's, with the route
        // through it; the explicit link delete covers a host veth whose peer never made it
        // into the router namespace. Errors only mean it is gone already.
        for ns in [&self.ns, &self.router_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_veth])
            .output();
    }
}

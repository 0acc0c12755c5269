//! `dialer config check` output: every effective setting, defaults included, secrets masked.

use std::fmt::Write;
use std::time::Duration;

use crate::profile::{AgentMode, AgentSecret, Codec};
use crate::Config;

const NOT_SET: &str = "(not set)";
const MASK: &str = "***";

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| NOT_SET.to_string(), |v| quoted(&v.to_string()))
}

fn codecs(list: &[Codec]) -> String {
    let names: Vec<String> = list.iter().map(|c| quoted(c.name())).collect();
    format!("[{}]", names.join(", "))
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

/// Lines are built with `writeln!` into a `String`, which cannot fail.
pub(crate) fn render(c: &Config) -> String {
    let mut o = format!(
        "# effective settings of {:?}: defaults filled in, secrets shown as {MASK}\n",
        c.name()
    );
    let mut line = |k: &str, v: String| {
        writeln!(o, "{k} = {v}").expect("writing to a String cannot fail");
    };

    let s = c.sip();
    line("\n[sip]\nlisten", quoted(&s.listen.to_string()));
    line("external_ip", opt(s.external_ip));
    line("user_agent", quoted(&s.user_agent));
    line("t1_ms", s.timers.t1.as_millis().to_string());
    line("t2_ms", s.timers.t2.as_millis().to_string());
    line("t4_ms", s.timers.t4.as_millis().to_string());
    line("max_message_bytes", s.max_message_bytes.to_string());
    line(
        "tcp_connections_per_source",
        s.tcp.connections_per_source.to_string(),
    );
    let off_secs = |d: Option<std::time::Duration>| d.map_or(0, |d| d.as_secs()).to_string();
    line("tcp_idle_timeout_s", off_secs(s.tcp.idle_timeout));
    line("tcp_keepalive_s", off_secs(s.tcp.keepalive));
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map_or("(not set)".to_owned(), |p| quoted(&p.display().to_string()))
    };
    line("tls_listen", opt(s.tls.listen));
    line("tls_cert", path(&s.tls.cert));
    line("tls_key", path(&s.tls.key));
    line(
        "tls_ca",
        s.tls
            .ca
            .as_ref()
            .map_or("(the system's roots)".to_owned(), |p| {
                quoted(&p.display().to_string())
            }),
    );
    line("tls_verify", s.tls.verify.to_string());
    line(
        "dns_servers",
        if s.dns_servers.is_empty() {
            "(the system's, /etc/resolv.conf)".to_owned()
        } else {
            let list: Vec<String> = s
                .dns_servers
                .iter()
                .map(|a| quoted(&a.to_string()))
                .collect();
            format!("[{}]", list.join(", "))
        },
    );

    for t in c.trunks() {
        line("\n[[trunk]]\nname", quoted(&t.name));
        line(
            "proxy",
            if t.proxy_port_given || t.proxy.host.ip().is_some() {
                quoted(&t.proxy.to_string())
            } else {
                format!(
                    "{} (located by DNS: NAPTR, SRV, then A/AAAA; RFC 3263)",
                    quoted(&t.proxy.host.to_string())
                )
            },
        );
        line("domain", quoted(&t.domain.to_string()));
        line("username", opt(t.username.as_ref()));
        match &t.credentials {
            Some(cr) => {
                line("auth_username", quoted(&cr.auth_username));
                line("password", format!("{MASK} ({})", cr.password_source()));
                line(
                    "realm",
                    cr.realm
                        .as_deref()
                        .map_or("(any realm the trunk sends)".into(), quoted),
                );
            }
            None => line("password", "(not set: no digest authentication)".into()),
        }
        line("register", t.register.to_string());
        line("expires", secs(t.expires).to_string());
        line("transport", quoted(t.transport.name()));
        line("codecs", codecs(&t.codecs));
        line("caller_id", opt(t.caller_id.as_ref()));
        line("caller_name", opt(t.caller_name.as_ref()));
        line("pai", t.pai.to_string());
        line(
            "max_channels",
            t.max_channels
                .map_or("(no limit)".into(), |n| n.to_string()),
        );
        line(
            "max_cps",
            t.max_cps.map_or("(no limit)".into(), |n| n.to_string()),
        );
        line("max_queue", t.max_queue.to_string());
        let n = &t.numbering;
        line("strip_prefix", quoted(&n.strip_prefix));
        line("e164", n.e164.to_string());
        line("country_code", opt(n.country_code.as_ref()));
        line("national_prefix", quoted(&n.national_prefix));
        line("international_prefix", quoted(&n.international_prefix));
        line("strip_plus", n.strip_plus.to_string());
        line("dial_prefix", quoted(&n.dial_prefix));
        line("keepalive", quoted(t.keepalive.name()));
        line(
            "keepalive_interval_s",
            secs(t.keepalive_interval).to_string(),
        );
        line(
            "register_retry_min_s",
            secs(t.register_retry_min).to_string(),
        );
        line(
            "register_retry_max_s",
            secs(t.register_retry_max).to_string(),
        );
        line("dtmf", quoted(t.dtmf.name()));
        line("srtp", quoted(t.srtp.name()));
        line(
            "session_expires_s",
            t.session_expires
                .map_or("0 (session timers off)".into(), |d| secs(d).to_string()),
        );
        line("min_se_s", secs(t.min_se).to_string());
        let hosts: Vec<String> = t
            .redirect_hosts
            .iter()
            .map(|h| quoted(&h.to_string()))
            .collect();
        line(
            "redirect_hosts",
            match hosts.is_empty() {
                true => "[] (no redirect is followed)".into(),
                false => format!("[{}]", hosts.join(", ")),
            },
        );
    }

    let r = c.registrar();
    line(
        "\n[registrar]\ndomain",
        opt(r.domain.as_ref()).replace(NOT_SET, "(any)"),
    );
    line("realm", quoted(&r.realm));
    line("min_expires", secs(r.min_expires).to_string());
    line("max_expires", secs(r.max_expires).to_string());
    line("nonce_ttl_s", secs(r.nonce_ttl).to_string());

    for a in c.agents() {
        line("\n[[agent]]\nextension", quoted(&a.extension));
        match a.secret {
            AgentSecret::Password(_) => line("password", MASK.into()),
            AgentSecret::A1Hash(_) => line("a1_hash", MASK.into()),
        }
        let nets: Vec<String> = a.allow.iter().map(|n| quoted(&n.to_string())).collect();
        line("allow", format!("[{}]", nets.join(", ")));
        line("codecs", codecs(&a.codecs));
        line("dtmf", quoted(a.dtmf.name()));
        line("srtp", quoted(a.srtp.name()));
        if a.contact.is_none() {
            line(
                "transport",
                a.transport
                    .map_or("(not set: registers over any listener)".into(), |t| {
                        quoted(t.name())
                    }),
            );
        }
        line(
            "contact",
            a.contact
                .as_ref()
                .map_or("(not set: agent registers)".into(), |c| quoted(&c.uri)),
        );
        line("max_expires", secs(a.max_expires).to_string());
    }

    for p in c.pools() {
        line("\n[[pool]]\nname", quoted(&p.name));
        let agents: Vec<String> = p.agents.iter().map(|a| quoted(a)).collect();
        line("agents", format!("[{}]", agents.join(", ")));
        line("strategy", quoted(p.strategy.name()));
        line("wrap_up_s", secs(p.wrap_up).to_string());
        line("max_no_answer", p.max_no_answer.to_string());
        line("agent_attempts", p.agent_attempts.to_string());
        line("agent_mode", quoted(p.agent_mode.name()));
        line(
            "abandon_after_ms",
            match p.abandon_after {
                Some(d) => d.as_millis().to_string(),
                None => format!(
                    "{} (not set: calls.agent_ring_timeout_s)",
                    c.calls().agent_ring_timeout.as_millis()
                ),
            },
        );
        line(
            "abandon_message",
            opt(p.abandon_message.as_ref().map(|p| p.display()))
                .replace(NOT_SET, "(not set: hang up at once)"),
        );
        line("login_paused", p.login_paused.to_string());
        if p.agent_mode == AgentMode::Session {
            line("login_extension", opt(p.login_extension.as_ref()));
            line("hangup_key", opt(p.hangup_key));
            line(
                "connect_tone",
                opt(p.connect_tone.as_ref().map(|p| p.display())),
            );
            line(
                "idle_audio",
                opt(p.idle_audio.as_ref().map(|p| p.display())),
            );
        }
    }

    let m = c.media();
    line(
        "\n[media]\nrtp_ports",
        format!(
            "\"{}\" ({} RTP/RTCP pairs)",
            m.rtp_ports,
            m.rtp_ports.pairs()
        ),
    );
    line("ringback", opt(m.ringback.as_ref().map(|p| p.display())));
    line(
        "media_timeout_s",
        m.media_timeout
            .map_or("0 (off)".into(), |d| secs(d).to_string()),
    );
    line(
        "latch_window_ms",
        match m.latch_window.as_millis() {
            0 => "0 (never latches: only the SDP address)".into(),
            ms => ms.to_string(),
        },
    );
    line(
        "record_dir",
        opt(m.record_dir.as_ref().map(|p| p.display())).replace(NOT_SET, "(not set: no recording)"),
    );
    line(
        "ringback_dir",
        opt(m.ringback_dir.as_ref().map(|p| p.display()))
            .replace(NOT_SET, "(not set: a request's ringback is refused)"),
    );
    line(
        "pcap_dir",
        opt(m.pcap_dir.as_ref().map(|p| p.display()))
            .replace(NOT_SET, "(not set: a request's pcap is refused)"),
    );

    let calls = c.calls();
    line(
        "\n[calls]\noriginate_timeout_s",
        secs(calls.originate_timeout).to_string(),
    );
    line(
        "agent_ring_timeout_s",
        secs(calls.agent_ring_timeout).to_string(),
    );

    let sec = c.security();
    line(
        "\n[security]\nmax_auth_failures",
        sec.max_auth_failures.to_string(),
    );
    line("ban_window_s", secs(sec.ban_window).to_string());
    line(
        "ban_s",
        match secs(sec.ban) {
            0 => "0 (failures logged, nobody banned)".into(),
            s => s.to_string(),
        },
    );
    let nets: Vec<String> = sec
        .ban_exempt
        .iter()
        .map(|n| quoted(&n.to_string()))
        .collect();
    line("ban_exempt", format!("[{}]", nets.join(", ")));
    line("max_requests_per_s", sec.max_requests_per_s.to_string());
    line(
        "max_server_transactions",
        sec.max_server_transactions.to_string(),
    );

    line(
        "\n[store]\npath",
        quoted(&c.store().path.display().to_string()),
    );

    let api = c.api();
    line("\n[api]\nlisten", quoted(&api.listen.to_string()));
    let token = match (&api.token, &api.token_env) {
        (Some(_), Some(var)) => format!("{MASK} (from ${var})"),
        (Some(_), None) => format!("{MASK} (inline)"),
        _ => "(not set: loopback only)".into(),
    };
    line("token", token);
    let hosts: Vec<String> = api.allowed_hosts.iter().map(|h| quoted(h)).collect();
    line("allowed_hosts", format!("[{}]", hosts.join(", ")));
    o
}

//! A trunk registrar that can die and come back: a small UDP peer on loopback standing in for
//! a carrier that restarts, for the tests of what the dialer does meanwhile
//! (`tests/tests/interop_carrier_restart.rs`).
//!
//! Each life of the registrar is one thread owning one socket. [`RestartingRegistrar::go_down`]
//! ends the thread and closes the socket, so the dialer's datagrams are answered by the kernel
//! with ICMP port unreachable, as for a carrier whose process died.
//! [`RestartingRegistrar::come_up`] binds the same address again with a script of answers for
//! the REGISTERs to come (503 with or without Retry-After, RFC 3261 §21.5.4, §20.33); once the
//! script is used up every REGISTER gets 200 granting the configured expiry in the Contact's
//! `expires` parameter (RFC 3261 §10.3 step 8). An un-REGISTER (`Expires: 0`) always gets 200
//! and uses nothing from the script; OPTIONS get 200; any other request gets 503, unless
//! [`RestartingRegistrar::ring_and_lose_cancelled_calls`] was called: then an INVITE gets 100
//! and 180 and nothing more, and a CANCEL gets its 200 but the INVITE never gets its 487, as
//! from a carrier that restarted with the call ringing and answers the CANCEL without knowing
//! the call any more; or, after [`RestartingRegistrar::ignore_invites`], INVITEs get no answer
//! at all while REGISTERs still do.
//!
//! SIPp could play the 503s but not a scripted sequence across its own restart with the
//! arrival times this test measures; here every request is logged with the [`Instant`] it
//! arrived. No digest challenge: the dialer's answer to 401 is covered by the SIPp and
//! Kamailio tests.
//!
//! Retransmissions (same CSeq as a request already answered) get the same answer again and are
//! logged only once.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sip_core::endpoint::make_response;
use sip_core::message::{HeaderKind, Message, Method, Request, SipMessage};

use super::process::{now, poll_until};
use super::HarnessError;

/// The answer to one REGISTER.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// 503 Service Unavailable, with `Retry-After: N` when set.
    Unavailable {
        /// Seconds in Retry-After.
        retry_after: Option<u32>,
    },
}

/// A request the registrar received.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// When it arrived.
    pub at: Instant,
    /// Its method.
    pub method: String,
    /// Its CSeq number.
    pub cseq: u32,
    /// Its Call-ID.
    pub call_id: String,
    /// Its Expires header, if any.
    pub expires: Option<u32>,
    /// The status answered.
    pub status: u16,
}

#[derive(Default)]
struct Shared {
    script: VecDeque<Reply>,
    arrivals: Vec<Arrival>,
    ring_and_lose: bool,
    ignore_invites: bool,
}

struct Life {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The registrar; see the module docs.
pub struct RestartingRegistrar {
    addr: SocketAddr,
    expires: u32,
    shared: Arc<Mutex<Shared>>,
    life: Option<Life>,
}

impl std::fmt::Debug for RestartingRegistrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestartingRegistrar")
            .field("addr", &self.addr)
            .field("up", &self.life.is_some())
            .finish_non_exhaustive()
    }
}

impl RestartingRegistrar {
    /// Starts up at `addr`, granting `expires` seconds.
    pub fn start(addr: SocketAddr, expires: u32) -> Result<RestartingRegistrar, HarnessError> {
        let mut r = RestartingRegistrar {
            addr,
            expires,
            shared: Arc::new(Mutex::new(Shared::default())),
            life: None,
        };
        r.come_up(&[])?;
        Ok(r)
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Dies: the socket is closed when this returns.
    pub fn go_down(&mut self) {
        if let Some(life) = self.life.take() {
            life.stop.store(true, Ordering::SeqCst);
            let _ = life.thread.join();
        }
    }

    /// Comes back on the same address; the next REGISTERs get `script`, in order, then 200.
    pub fn come_up(&mut self, script: &[Reply]) -> Result<(), HarnessError> {
        self.go_down();
        // The port was ours a moment ago; nothing else on loopback should take it, but a bind
        // racing the kernel's release is retried briefly.
        let socket = poll_until(
            &format!("registrar bound to {}", self.addr),
            Duration::from_secs(2),
            Duration::from_millis(10),
            || UdpSocket::bind(self.addr).ok(),
        )?;
        socket
            .set_read_timeout(Some(Duration::from_millis(10)))
            .map_err(|e| HarnessError::Setup(format!("registrar socket: {e}")))?;
        self.shared
            .lock()
            .expect("registrar lock")
            .script
            .extend(script.iter().copied());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            let shared = self.shared.clone();
            let expires = self.expires;
            std::thread::spawn(move || serve(socket, &stop, &shared, expires))
        };
        self.life = Some(Life { stop, thread });
        Ok(())
    }

    /// From now on INVITEs ring (100, 180) and are never answered, and a CANCEL gets 200
    /// without the INVITE's 487 (see the module docs).
    pub fn ring_and_lose_cancelled_calls(&self) {
        self.shared.lock().expect("registrar lock").ring_and_lose = true;
    }

    /// From now on INVITEs (and CANCELs) are logged and never answered.
    pub fn ignore_invites(&self) {
        self.shared.lock().expect("registrar lock").ignore_invites = true;
    }

    /// Every request received so far, in order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.shared.lock().expect("registrar lock").arrivals.clone()
    }

    /// The REGISTERs (not the un-REGISTERs) received so far.
    pub fn registers(&self) -> Vec<Arrival> {
        self.arrivals()
            .into_iter()
            .filter(|a| a.method == "REGISTER" && a.expires != Some(0))
            .collect()
    }

    /// Waits until `count` REGISTERs have arrived, returning them.
    pub fn wait_registers(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Arrival>, HarnessError> {
        poll_until(
            &format!("{count} REGISTERs at the registrar"),
            timeout,
            Duration::from_millis(10),
            || {
                let r = self.registers();
                (r.len() >= count).then_some(r)
            },
        )
    }
}

impl Drop for RestartingRegistrar {
    fn drop(&mut self) {
        self.go_down();
    }
}

/// Call-ID, CSeq number and method: what tells a retransmission from a new request here.
type TransactionKey = (String, u32, String);

/// The answers sent to each request, so a retransmission gets them again.
fn serve(socket: UdpSocket, stop: &AtomicBool, shared: &Mutex<Shared>, expires: u32) {
    let mut buf = vec![0u8; 65_535];
    let mut answered: Vec<(TransactionKey, Vec<Vec<u8>>)> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let at = now();
        let Ok(Message::Request(request)) = Message::parse(&buf[..n]) else {
            continue;
        };
        if request.method == Method::Ack {
            continue;
        }
        let call_id = request.call_id().unwrap_or_default().to_owned();
        let cseq = request.cseq().map(|c| c.seq).unwrap_or(0);
        let key = (call_id.clone(), cseq, request.method.as_str().to_owned());
        if let Some((_, sent)) = answered.iter().find(|(k, _)| *k == key) {
            for bytes in sent {
                let _ = socket.send_to(bytes, from);
            }
            continue;
        }
        let request_expires = request.expires().ok().flatten();
        let mut shared = shared.lock().expect("registrar lock");
        let responses =
            if shared.ignore_invites && matches!(request.method, Method::Invite | Method::Cancel) {
                Vec::new()
            } else if shared.ring_and_lose && request.method == Method::Invite {
                let mut ringing = make_response(&request, 180, Some("callee"));
                ringing.headers.add(
                    HeaderKind::Contact,
                    format!("<sip:callee@{}>", socket.local_addr().map_or(from, |a| a)),
                );
                vec![make_response(&request, 100, None), ringing]
            } else if shared.ring_and_lose && request.method == Method::Cancel {
                vec![make_response(&request, 200, Some("callee"))]
            } else {
                vec![answer(
                    &request,
                    request_expires,
                    &mut shared.script,
                    expires,
                )]
            };
        shared.arrivals.push(Arrival {
            at,
            method: request.method.as_str().to_owned(),
            cseq,
            call_id,
            expires: request_expires,
            status: responses.last().map_or(0, |r| r.status),
        });
        drop(shared);
        let sent: Vec<Vec<u8>> = responses.iter().map(|r| r.to_bytes()).collect();
        for bytes in &sent {
            let _ = socket.send_to(bytes, from);
        }
        answered.push((key, sent));
    }
}

fn answer(
    request: &Request,
    request_expires: Option<u32>,
    script: &mut VecDeque<Reply>,
    expires: u32,
) -> sip_core::message::Response {
    match request.method {
        Method::Register if request_expires == Some(0) => make_response(request, 200, Some("reg")),
        Method::Register => match script.pop_front() {
            Some(Reply::Unavailable { retry_after }) => {
                let mut r = make_response(request, 503, Some("reg"));
                if let Some(s) = retry_after {
                    r.headers.add(HeaderKind::RetryAfter, s.to_string());
                }
                r
            }
            None => {
                let mut r = make_response(request, 200, Some("reg"));
                if let Some(contact) = request.headers.get(HeaderKind::Contact) {
                    r.headers
                        .add(HeaderKind::Contact, format!("{contact};expires={expires}"));
                }
                r
            }
        },
        Method::Options => make_response(request, 200, Some("reg")),
        _ => make_response(request, 503, Some("reg")),
    }
}

//! A softphone that REGISTERs over UDP with sip-core's digest client: enough of a phone to
//! tell whether the dialer answers a registration, and how fast.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use sip_core::auth::{
    AuthOutcome, ChallengedResponse, ClientAuthState, Credentials, DigestRequest,
};
use sip_core::message::{HeaderKind, Message, Response, SipMessage};

use super::ports::LOOPBACK;
use super::process;

/// An agent's phone: one UDP socket on 127.0.0.1, one Call-ID, CSeq counting up.
pub struct Phone {
    sock: UdpSocket,
    dialer: SocketAddr,
    extension: String,
    credentials: Credentials,
    auth: ClientAuthState,
    rng: StdRng,
    call_id: String,
    cseq: u32,
    authorization: Vec<String>,
}

impl std::fmt::Debug for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phone")
            .field("extension", &self.extension)
            .field("dialer", &self.dialer)
            .field("cseq", &self.cseq)
            .finish()
    }
}

impl Phone {
    pub fn new(dialer: SocketAddr, extension: &str, password: &str) -> Phone {
        let sock = UdpSocket::bind(SocketAddr::new(LOOPBACK, 0)).expect("phone socket");
        Phone {
            sock,
            dialer,
            extension: extension.into(),
            credentials: Credentials::with_password(extension, password),
            auth: ClientAuthState::new(),
            rng: StdRng::seed_from_u64(7),
            call_id: format!("security-{extension}-{}", std::process::id()),
            cseq: 0,
            authorization: Vec::new(),
        }
    }

    pub fn uri(&self) -> String {
        format!("sip:{}:{}", self.dialer.ip(), self.dialer.port())
    }

    fn request(&mut self) -> String {
        self.cseq += 1;
        let local = self.sock.local_addr().expect("phone address");
        let ext = &self.extension;
        let mut text = format!(
            "REGISTER {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-sec-{cseq}-{pid};rport\r\n\
             Max-Forwards: 70\r\n\
             To: <sip:{ext}@{host}>\r\n\
             From: <sip:{ext}@{host}>;tag=sec{cseq}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{ext}@{local}>\r\n\
             Expires: 60\r\n\
             User-Agent: interop-security\r\n",
            uri = self.uri(),
            cseq = self.cseq,
            pid = std::process::id(),
            host = self.dialer.ip(),
            call_id = self.call_id,
        );
        for a in &self.authorization {
            text.push_str(&format!("Authorization: {a}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        text
    }

    /// Sends one REGISTER and waits up to `wait` for its final response (retransmitting as
    /// RFC 3261 Timer E would, every 500 ms); `None` when nothing came back.
    pub fn send(&mut self, wait: Duration) -> Option<Response> {
        let request = self.request();
        let deadline = process::now() + wait;
        let mut buf = vec![0u8; 65_535];
        while process::now() < deadline {
            self.sock
                .send_to(request.as_bytes(), self.dialer)
                .expect("sending REGISTER");
            let slice = (deadline - process::now()).min(Duration::from_millis(500));
            if slice.is_zero() {
                break;
            }
            self.sock.set_read_timeout(Some(slice)).expect("timeout");
            let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            if let Ok(Message::Response(r)) = Message::parse(&buf[..n]) {
                let ours = r.cseq().is_ok_and(|c| c.seq == self.cseq)
                    && r.call_id().is_ok_and(|c| c == self.call_id);
                if ours && r.status >= 200 {
                    return Some(r);
                }
            }
        }
        None
    }

    /// Answers a 401; false when the digest client gives up.
    fn answer(&mut self, response: &Response) -> bool {
        let challenges: Vec<&str> = response
            .headers
            .get_all(HeaderKind::WwwAuthenticate)
            .collect();
        let sent: Vec<&str> = self.authorization.iter().map(String::as_str).collect();
        let uri = self.uri();
        let outcome = self
            .auth
            .handle_challenge(
                &ChallengedResponse {
                    status: response.status,
                    challenges: &challenges,
                    sent: &sent,
                },
                &self.credentials,
                &DigestRequest {
                    method: "REGISTER",
                    uri: &uri,
                    body: b"",
                },
                &mut self.rng,
            )
            .expect("a digest challenge");
        match outcome {
            AuthOutcome::Retry { headers } => {
                self.authorization = headers.into_iter().map(|h| h.value).collect();
                true
            }
            AuthOutcome::Rejected { .. } => false,
        }
    }

    /// REGISTER, answering 401s; the final status, `None` when the dialer stays silent.
    pub fn register(&mut self, wait: Duration) -> Option<u16> {
        self.authorization.clear();
        for _ in 0..3 {
            let response = self.send(wait)?;
            if response.status != 401 || !self.answer(&response) {
                return Some(response.status);
            }
        }
        Some(401)
    }
}

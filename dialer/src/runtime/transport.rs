//! The SIP transports: one UDP socket and one TCP listener on `[sip] listen`, a TLS listener
//! on `[sip] tls_listen`, and the TCP and TLS connections, inbound and outbound.
//!
//! A connection is known to the cores by its flow, `(transport, remote address)` (sip-core's
//! [`Target`]; RFC 5626 §3.3 names a flow by its transport and addresses, and our side of
//! every inbound connection is one listener). [`Transports::send`] maps a [`Transmit`] to its
//! socket: a datagram for UDP; for TCP and TLS the open connection of that flow, or a new
//! outbound one for a request (TLS: the certificate checked against the name registered
//! with [`Transports::set_tls_name`], RFC 5922 §7.2). What happens on the connections comes
//! back as [`TransportEvent`]s from a task per connection, which frames the stream (RFC 3261
//! §18.3, sip-core's [`StreamDeframer`]), answers CRLF keep-alive pings and, on connections
//! we open, sends them (RFC 5626 §4.4.1).
//!
//! A response whose request's connection has closed goes over a new connection to the
//! address its top Via names (RFC 3261 §18.2.2, [`sip_core::endpoint::reliable_fallback`]);
//! a Via naming a host without `received` is not looked up (RFC 3263 §5): that response is
//! dropped, and the client's transaction times out and retries.

use sip_core::endpoint::{Target, Transmit};
use sip_core::framing::{RawFrame, StreamDeframer};
use sip_core::message::ParseLimits;
use sip_core::transaction::Transport;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// How long a keep-alive ping waits for its pong before the flow counts as failed
/// (RFC 5626 §4.4.1).
pub const PONG_WAIT: Duration = Duration::from_secs(10);

/// How long an outbound connection (with its TLS handshake) may take to be established, and
/// an accepted one's TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Limits and timers of the connection-oriented transports.
#[derive(Clone, Debug)]
pub struct TcpSettings {
    /// Most inbound connections from one IP address; more are closed as they are accepted.
    pub connections_per_source: usize,
    /// An inbound connection with no traffic either way for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// A connection we opened with nothing received for this long is pinged with a double
    /// CRLF (RFC 5626 §4.4.1).
    pub keepalive: Option<Duration>,
    /// How long a ping waits for its pong ([`PONG_WAIT`] but in tests).
    pub pong_wait: Duration,
    /// Framing limits; a message over `max_message_bytes` closes the connection.
    pub limits: ParseLimits,
}

impl Default for TcpSettings {
    fn default() -> Self {
        TcpSettings {
            connections_per_source: 16,
            idle_timeout: Some(Duration::from_secs(600)),
            keepalive: Some(Duration::from_secs(90)),
            pong_wait: PONG_WAIT,
            limits: ParseLimits::default(),
        }
    }
}

/// Identifies one connection, so that news of a closed one is not taken for its successor
/// to the same address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(u64);

/// What happened on a connection.
#[derive(Debug)]
pub enum TransportEvent {
    /// A whole message arrived.
    Message {
        /// The flow it came on.
        from: Target,
        /// Its bytes as received.
        bytes: Vec<u8>,
    },
    /// An outbound connection was established (for TLS, with its handshake).
    Connected {
        /// The flow.
        peer: Target,
        /// Which connection.
        id: ConnectionId,
    },
    /// A connection closed or could not be opened.
    Closed {
        /// The flow.
        peer: Target,
        /// Which connection.
        id: ConnectionId,
        /// Why, for the log.
        reason: String,
    },
}

struct Connection {
    id: ConnectionId,
    outbound: bool,
    to_peer: mpsc::UnboundedSender<Vec<u8>>,
}

/// The TLS side: the listener and its acceptor when `tls_listen` is set, the connector for
/// TLS trunks, and the name each TLS peer's certificate must carry.
#[derive(Default)]
pub struct TlsSide {
    /// `tls_listen` and its certificate.
    pub listener: Option<(Arc<TcpListener>, TlsAcceptor)>,
    /// Outbound TLS.
    pub connector: Option<TlsConnector>,
    names: HashMap<SocketAddr, ServerName<'static>>,
}

impl std::fmt::Debug for TlsSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSide")
            .field("listening", &self.listener.is_some())
            .field("client", &self.connector.is_some())
            .finish_non_exhaustive()
    }
}

/// The UDP socket, the TCP listener and the open connections.
pub struct Transports {
    udp: Arc<UdpSocket>,
    tcp: Arc<TcpListener>,
    tls: TlsSide,
    /// Outbound connections are bound to this address when it is not the wildcard, so
    /// that peers see the same IP as in our Via.
    local_ip: IpAddr,
    connections: HashMap<Target, Connection>,
    events: mpsc::UnboundedSender<TransportEvent>,
    settings: TcpSettings,
    next_id: u64,
}

impl std::fmt::Debug for Transports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transports")
            .field("connections", &self.connections.len())
            .finish_non_exhaustive()
    }
}

/// Binds UDP and TCP on one port: `listen`'s, or, for port 0, one the system picks for UDP
/// that TCP can take as well.
pub async fn bind(listen: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind(listen).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(listen.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if listen.port() == 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port free for UDP and TCP")))
}

impl Transports {
    /// The transports over bound sockets, and the receiver of their connections' events.
    pub fn new(
        udp: UdpSocket,
        tcp: TcpListener,
        settings: TcpSettings,
    ) -> (Transports, mpsc::UnboundedReceiver<TransportEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let local_ip = udp
            .local_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let transports = Transports {
            udp: Arc::new(udp),
            tcp: Arc::new(tcp),
            tls: TlsSide::default(),
            local_ip,
            connections: HashMap::new(),
            events,
            settings,
            next_id: 1,
        };
        (transports, rx)
    }

    /// Adds TLS: a listener with its acceptor, and a connector for outbound connections.
    pub fn with_tls(mut self, tls: TlsSide) -> Transports {
        self.tls = tls;
        self
    }

    /// The name the certificate of the TLS peer at `addr` must carry (RFC 5922 §7.2); a peer
    /// without one is checked against its IP address.
    pub fn set_tls_name(&mut self, addr: SocketAddr, name: ServerName<'static>) {
        self.tls.names.insert(addr, name);
    }

    /// The TLS listener, for the accept loop.
    pub fn tls_listener(&self) -> Option<Arc<TcpListener>> {
        self.tls.listener.as_ref().map(|(l, _)| l.clone())
    }

    /// The UDP socket, for the receive loop.
    pub fn udp(&self) -> Arc<UdpSocket> {
        self.udp.clone()
    }

    /// The TCP listener, for the accept loop.
    pub fn tcp(&self) -> Arc<TcpListener> {
        self.tcp.clone()
    }

    /// Sends one message on the transport it names. Returns false when it could not be
    /// handed to a socket.
    pub fn send(&mut self, t: &Transmit) -> bool {
        let flow = Target {
            addr: t.to,
            transport: t.transport,
        };
        match t.transport {
            Transport::Udp => self.udp.try_send_to(&t.bytes, t.to).is_ok(),
            Transport::Tcp | Transport::Tls => self.send_stream(flow, t.bytes.clone()),
        }
    }

    /// A double-CRLF keep-alive ping on a flow (RFC 5626 §4.4.1; §3.5.1 for UDP).
    pub fn send_keepalive(&mut self, flow: Target) {
        let t = Transmit {
            transport: flow.transport,
            to: flow.addr,
            bytes: b"\r\n\r\n".to_vec(),
        };
        if flow.transport == Transport::Udp || self.connections.contains_key(&flow) {
            self.send(&t);
        }
    }

    fn send_stream(&mut self, mut flow: Target, bytes: Vec<u8>) -> bool {
        if let Some(c) = self.connections.get(&flow) {
            return c.to_peer.send(bytes).is_ok();
        }
        if bytes.starts_with(b"SIP/") {
            // RFC 3261 §18.2.2: the request's connection has closed; a new one to where its
            // Via says the client listens.
            use sip_core::message::SipMessage;
            let fallback = sip_core::message::Message::parse(&bytes)
                .ok()
                .and_then(|m| m.top_via().ok())
                .and_then(|v| sip_core::endpoint::reliable_fallback(&v, flow.transport));
            let Some(addr) = fallback else {
                tracing::debug!(target: "dialer::transport", "{} {}: connection closed, response dropped (no address in its Via)", name(flow.transport), flow.addr);
                return false;
            };
            flow.addr = addr;
        }
        // A no-op when the flow has a connection open or opening.
        self.connect(flow);
        self.connections
            .get(&flow)
            .is_some_and(|c| c.to_peer.send(bytes).is_ok())
    }

    /// Opens a connection for `flow` unless one is open or opening; what is sent meanwhile
    /// waits for it.
    pub fn connect(&mut self, flow: Target) {
        if self.connections.contains_key(&flow) || flow.transport == Transport::Udp {
            return;
        }
        let tls = match flow.transport {
            Transport::Tls => {
                let Some(connector) = self.tls.connector.clone() else {
                    tracing::warn!(target: "dialer::transport", "tls {}: no TLS client configured", flow.addr);
                    return;
                };
                let name = self
                    .tls
                    .names
                    .get(&flow.addr)
                    .cloned()
                    .unwrap_or_else(|| ServerName::IpAddress(flow.addr.ip().into()));
                Some((connector, name))
            }
            _ => None,
        };
        let (id, rx) = self.register(flow, true);
        let events = self.events.clone();
        let options = self.connection_options(true);
        let local = self.local_ip;
        tokio::spawn(async move {
            let closed = |reason: String| TransportEvent::Closed {
                peer: flow,
                id,
                reason,
            };
            let stream = match open(local, flow.addr).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = events.send(closed(format!("cannot connect: {e}")));
                    return;
                }
            };
            let Some((connector, name)) = tls else {
                let _ = events.send(TransportEvent::Connected { peer: flow, id });
                return run_connection(stream, flow, id, rx, events, options).await;
            };
            let handshake = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, stream));
            match handshake.await {
                Ok(Ok(tls)) => {
                    let _ = events.send(TransportEvent::Connected { peer: flow, id });
                    run_connection(tls, flow, id, rx, events, options).await;
                }
                Ok(Err(e)) => {
                    let _ = events.send(closed(format!("TLS handshake failed: {e}")));
                }
                Err(_) => {
                    let _ = events.send(closed("TLS handshake timed out".into()));
                }
            }
        });
    }

    /// Takes an accepted connection (`transport` TCP or TLS, by listener), unless its source
    /// already has as many as allowed.
    pub fn accepted(&mut self, stream: TcpStream, peer: SocketAddr, transport: Transport) {
        let flow = Target {
            addr: peer,
            transport,
        };
        let from_source = self
            .connections
            .iter()
            .filter(|(a, c)| a.addr.ip() == peer.ip() && !c.outbound)
            .count();
        if from_source >= self.settings.connections_per_source {
            tracing::warn!(
                target: "dialer::transport",
                "tcp {peer}: refused, {from_source} connections from {} already",
                peer.ip()
            );
            return;
        }
        if let Some(old) = self.connections.remove(&flow) {
            // The same address and port again: the old connection is gone for the kernel.
            drop(old);
        }
        let _ = stream.set_nodelay(true);
        let acceptor = match transport {
            Transport::Tls => match &self.tls.listener {
                Some((_, acceptor)) => Some(acceptor.clone()),
                None => return,
            },
            _ => None,
        };
        let (id, rx) = self.register(flow, false);
        let events = self.events.clone();
        let options = self.connection_options(false);
        let Some(acceptor) = acceptor else {
            tokio::spawn(run_connection(stream, flow, id, rx, events, options));
            return;
        };
        tokio::spawn(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => run_connection(tls, flow, id, rx, events, options).await,
                Ok(Err(e)) => {
                    let reason = format!("TLS handshake failed: {e}");
                    let _ = events.send(TransportEvent::Closed {
                        peer: flow,
                        id,
                        reason,
                    });
                }
                Err(_) => {
                    let reason = "TLS handshake timed out".to_owned();
                    let _ = events.send(TransportEvent::Closed {
                        peer: flow,
                        id,
                        reason,
                    });
                }
            }
        });
    }

    /// Forgets a closed connection. False when `id` is not the current connection of `flow`
    /// (news of one already replaced).
    pub fn closed(&mut self, flow: Target, id: ConnectionId) -> bool {
        match self.connections.get(&flow) {
            Some(c) if c.id == id => {
                self.connections.remove(&flow);
                true
            }
            _ => false,
        }
    }

    /// True while a connection of `flow` is open or opening.
    pub fn has_connection(&self, flow: Target) -> bool {
        self.connections.contains_key(&flow)
    }

    fn register(
        &mut self,
        peer: Target,
        outbound: bool,
    ) -> (ConnectionId, mpsc::UnboundedReceiver<Vec<u8>>) {
        let id = ConnectionId(self.next_id);
        self.next_id += 1;
        let (to_peer, rx) = mpsc::unbounded_channel();
        self.connections.insert(
            peer,
            Connection {
                id,
                outbound,
                to_peer,
            },
        );
        (id, rx)
    }

    fn connection_options(&self, outbound: bool) -> ConnectionOptions {
        ConnectionOptions {
            // We keep alive the connections we opened (RFC 5626 §4.4.1 puts it on the
            // client); a peer's idle connection is closed instead.
            keepalive: self.settings.keepalive.filter(|_| outbound),
            idle_timeout: self.settings.idle_timeout.filter(|_| !outbound),
            pong_wait: self.settings.pong_wait,
            limits: self.settings.limits.clone(),
        }
    }
}

/// The lowercase name of a transport, for log lines (`tcp 192.0.2.1:5060: connected`).
pub fn name(t: Transport) -> String {
    t.via_token().to_ascii_lowercase()
}

async fn open(local: IpAddr, peer: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match peer {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if !local.is_unspecified() && local.is_ipv4() == peer.is_ipv4() {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(peer))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

#[derive(Clone, Debug)]
struct ConnectionOptions {
    keepalive: Option<Duration>,
    idle_timeout: Option<Duration>,
    pong_wait: Duration,
    limits: ParseLimits,
}

/// Why a connection's loop ended.
enum Ended {
    Closed(String),
}

/// One connection's loop: frames what arrives, writes what the signalling task hands it,
/// pings and answers pings, and reports its end.
async fn run_connection<S>(
    stream: S,
    peer: Target,
    id: ConnectionId,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    events: mpsc::UnboundedSender<TransportEvent>,
    options: ConnectionOptions,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut deframer = StreamDeframer::new(options.limits.clone());
    let mut buf = vec![0u8; 16 * 1024];
    let mut last_received = Instant::now();
    let mut last_traffic = last_received;
    let mut ping_sent: Option<Instant> = None;
    let Ended::Closed(reason) = loop {
        let ping_at = options.keepalive.map(|k| last_received + k);
        let pong_by = ping_sent.map(|at| at + options.pong_wait);
        let idle_at = options.idle_timeout.map(|i| last_traffic + i);
        tokio::select! {
            r = reader.read(&mut buf) => {
                let n = match r {
                    Ok(0) => break Ended::Closed("closed by the peer".into()),
                    Ok(n) => n,
                    Err(e) => break Ended::Closed(e.to_string()),
                };
                last_received = Instant::now();
                last_traffic = last_received;
                ping_sent = None;
                deframer.push(&buf[..n]);
                if let Err(reason) = deliver(&mut deframer, &mut writer, peer, &events).await {
                    break Ended::Closed(reason);
                }
            }
            m = outgoing.recv() => {
                let Some(bytes) = m else {
                    break Ended::Closed("closed by the dialer".into());
                };
                if let Err(e) = writer.write_all(&bytes).await {
                    break Ended::Closed(e.to_string());
                }
                last_traffic = Instant::now();
            }
            _ = sleep_until(ping_at), if ping_sent.is_none() && ping_at.is_some() => {
                if let Err(e) = writer.write_all(b"\r\n\r\n").await {
                    break Ended::Closed(e.to_string());
                }
                ping_sent = Some(Instant::now());
            }
            _ = sleep_until(pong_by), if pong_by.is_some() => {
                break Ended::Closed(format!(
                    "no keep-alive pong within {:.1} s (RFC 5626 §4.4.1)",
                    options.pong_wait.as_secs_f64()
                ));
            }
            _ = sleep_until(idle_at), if idle_at.is_some() => {
                break Ended::Closed("idle".into());
            }
        }
    };
    let _ = writer.shutdown().await;
    let _ = events.send(TransportEvent::Closed { peer, id, reason });
}

/// Hands every whole message buffered to the signalling task and answers pings; an error
/// is a stream that cannot be framed any more (RFC 3261 §18.3: the connection is closed).
async fn deliver<W: AsyncWrite + Unpin>(
    deframer: &mut StreamDeframer,
    writer: &mut W,
    peer: Target,
    events: &mpsc::UnboundedSender<TransportEvent>,
) -> Result<(), String> {
    loop {
        match deframer.next_bytes() {
            Ok(None) => return Ok(()),
            Ok(Some(RawFrame::Message(bytes))) => {
                let _ = events.send(TransportEvent::Message { from: peer, bytes });
            }
            Ok(Some(RawFrame::Ping)) => {
                writer.write_all(b"\r\n").await.map_err(|e| e.to_string())?
            }
            Ok(Some(RawFrame::Pong)) => {}
            Err(e) => return Err(format!("cannot frame the stream: {e}")),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    async fn transports(
        settings: TcpSettings,
    ) -> (Transports, mpsc::UnboundedReceiver<TransportEvent>) {
        let (udp, tcp) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        Transports::new(udp, tcp, settings)
    }

    fn tcp(addr: SocketAddr) -> Target {
        Target {
            addr,
            transport: Transport::Tcp,
        }
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<TransportEvent>) -> TransportEvent {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an event within 5 s")
            .expect("the channel is open")
    }

    #[tokio::test]
    async fn udp_and_tcp_share_the_port() {
        let (t, _rx) = transports(TcpSettings::default()).await;
        assert_eq!(
            t.udp().local_addr().unwrap().port(),
            t.tcp().local_addr().unwrap().port()
        );
    }

    #[tokio::test]
    async fn a_tcp_transmit_goes_over_tcp_and_the_answer_comes_back_framed() {
        let (mut t, mut rx) = transports(TcpSettings::default()).await;
        let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = peer.local_addr().unwrap();
        assert!(t.send(&Transmit {
            transport: Transport::Tcp,
            to,
            bytes: OPTIONS.to_vec(),
        }));
        let (mut s, _) = peer.accept().await.unwrap();
        assert!(
            matches!(next(&mut rx).await, TransportEvent::Connected { peer, .. } if peer.addr == to)
        );
        let mut got = vec![0u8; OPTIONS.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, OPTIONS);
        // A ping is answered with a pong; a message split in two arrives whole.
        s.write_all(b"\r\n\r\n").await.unwrap();
        let mut pong = [0u8; 2];
        s.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"\r\n");
        s.write_all(&OPTIONS[..20]).await.unwrap();
        s.write_all(&OPTIONS[20..]).await.unwrap();
        match next(&mut rx).await {
            TransportEvent::Message { from, bytes } => {
                assert_eq!((from, bytes.as_slice()), (tcp(to), OPTIONS));
            }
            other => panic!("{other:?}"),
        }
        drop(s);
        assert!(
            matches!(next(&mut rx).await, TransportEvent::Closed { peer, .. } if peer.addr == to)
        );
    }

    #[tokio::test]
    async fn a_response_for_a_closed_connection_goes_over_a_new_one_to_its_via() {
        let (mut t, mut rx) = transports(TcpSettings::default()).await;
        let client = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listens = client.local_addr().unwrap();
        // The request came from an ephemeral port whose connection is gone; the Via names
        // where the client listens (RFC 3261 §18.2.2).
        let gone: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let response = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP client.invalid:{};branch=z9hG4bK1;received=127.0.0.1\r\n\
             From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            listens.port()
        );
        assert!(t.send(&Transmit {
            transport: Transport::Tcp,
            to: gone,
            bytes: response.clone().into_bytes(),
        }));
        let (mut s, _) = tokio::time::timeout(Duration::from_secs(5), client.accept())
            .await
            .expect("a connection within 5 s")
            .unwrap();
        assert!(
            matches!(next(&mut rx).await, TransportEvent::Connected { peer, .. } if peer.addr == listens)
        );
        let mut got = vec![0u8; response.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, response.as_bytes());
        assert!(!t.has_connection(tcp(gone)));
    }

    #[tokio::test]
    async fn a_response_whose_via_names_no_address_is_dropped_and_opens_no_connection() {
        let (mut t, _rx) = transports(TcpSettings::default()).await;
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(!t.send(&Transmit {
            transport: Transport::Tcp,
            to,
            bytes: b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
        }));
        assert!(!t.has_connection(tcp(to)));
    }

    #[tokio::test]
    async fn outbound_connections_are_pinged_and_fail_without_a_pong() {
        let settings = TcpSettings {
            keepalive: Some(Duration::from_millis(100)),
            pong_wait: Duration::from_millis(200),
            ..TcpSettings::default()
        };
        let (mut t, mut rx) = transports(settings).await;
        let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = peer.local_addr().unwrap();
        t.connect(tcp(to));
        let (s, _) = peer.accept().await.unwrap();
        assert!(matches!(
            next(&mut rx).await,
            TransportEvent::Connected { .. }
        ));
        let mut s = tokio::io::BufReader::new(s);
        let mut line = String::new();
        s.read_line(&mut line).await.unwrap();
        assert_eq!(line, "\r\n", "the first CRLF of the ping");
        match next(&mut rx).await {
            TransportEvent::Closed { reason, .. } => assert!(reason.contains("pong"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_source_over_its_connection_limit_is_refused_and_idle_connections_close() {
        let settings = TcpSettings {
            connections_per_source: 1,
            idle_timeout: Some(Duration::from_millis(300)),
            ..TcpSettings::default()
        };
        let (mut t, mut rx) = transports(settings).await;
        let listen = t.tcp().local_addr().unwrap();
        let first = TcpStream::connect(listen).await.unwrap();
        let (s, from) = t.tcp().accept().await.unwrap();
        t.accepted(s, from, Transport::Tcp);
        let mut second = TcpStream::connect(listen).await.unwrap();
        let (s, from2) = t.tcp().accept().await.unwrap();
        t.accepted(s, from2, Transport::Tcp);
        assert!(!t.has_connection(tcp(from2)));
        let mut b = [0u8; 1];
        assert_eq!(second.read(&mut b).await.unwrap(), 0, "refused at once");
        match next(&mut rx).await {
            TransportEvent::Closed { peer, reason, .. } => {
                assert_eq!((peer, reason.as_str()), (tcp(from), "idle"));
            }
            other => panic!("{other:?}"),
        }
        drop(first);
    }

    #[tokio::test]
    async fn an_oversized_message_closes_the_connection() {
        let settings = TcpSettings {
            limits: ParseLimits {
                max_message_bytes: 512,
                ..ParseLimits::default()
            },
            ..TcpSettings::default()
        };
        let (mut t, mut rx) = transports(settings).await;
        let mut c = TcpStream::connect(t.tcp().local_addr().unwrap())
            .await
            .unwrap();
        let (s, from) = t.tcp().accept().await.unwrap();
        t.accepted(s, from, Transport::Tcp);
        c.write_all(b"OPTIONS sip:a@b SIP/2.0\r\nX: ")
            .await
            .unwrap();
        c.write_all(&[b'a'; 1024]).await.unwrap();
        match next(&mut rx).await {
            TransportEvent::Closed { reason, .. } => assert!(reason.contains("frame"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}

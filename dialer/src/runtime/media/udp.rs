//! Batched UDP datagrams for the media tasks: `recvmmsg(2)` and `sendmmsg(2)` through nix's
//! safe wrappers, into buffers that belong to the worker thread rather than to a call.
//!
//! Why batches: one `recvmmsg` returns every datagram queued on a socket, and when it returns
//! fewer than it had room for, the socket is known to be drained, so the task clears its
//! readiness without the extra `recvfrom` that would only say `EAGAIN`. One `sendmmsg` sends
//! everything a batch produced for one socket.
//!
//! Why per-thread buffers: a call's task uses them only between two awaits, on the thread it
//! runs on, so every call on a worker thread shares one set ([`with_scratch`]). A call then
//! holds no packet buffer of its own, which is most of the memory a pass-through call would
//! otherwise need. nix's `MultiHeaders` holds raw pointers and is not `Send`: kept per thread,
//! it never has to cross one.

use std::cell::RefCell;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};

/// Datagrams read by one `recvmmsg`.
pub const BATCH: usize = 16;
/// Room per datagram: an Ethernet MTU. A longer datagram is truncated (`MSG_TRUNC`) and
/// reported with length 0, which the relay drops as malformed.
pub const SLOT: usize = 1500;
/// Packets the relay may produce beyond the forwarded ones in one batch (concealment,
/// ringback, RTCP) before they are sent and the slots reused.
pub const EXTRA: usize = 3 * BATCH;

/// Where a queued packet's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffer {
    /// A received datagram, rewritten in place: `rx[i]`.
    Rx(u8),
    /// A packet the relay wrote: `extra[i]`.
    Extra(u8),
}

/// A packet waiting for [`Scratch::flush`].
#[derive(Debug, Clone, Copy)]
pub struct Outgoing {
    /// Where its bytes are.
    pub buffer: Buffer,
    /// Its length.
    pub len: u16,
    /// Destination.
    pub to: SocketAddr,
    /// Index of the socket to send it from, in the slice given to [`Scratch::flush`].
    pub socket: u8,
    /// A tag the caller counts sent packets by (the leg, RTP or RTCP).
    pub tag: u8,
}

/// One worker thread's datagram buffers and message headers.
pub struct Scratch {
    /// Received datagrams.
    pub rx: Box<[[u8; SLOT]; BATCH]>,
    /// Length of each received datagram.
    pub rx_len: [usize; BATCH],
    /// Source of each received datagram (`None` for a family we do not serve).
    pub rx_from: [Option<SocketAddr>; BATCH],
    /// Buffers for packets the relay writes.
    pub extra: Box<[[u8; SLOT]; EXTRA]>,
    extra_used: usize,
    queue: Vec<Outgoing>,
    rx_headers: MultiHeaders<SockaddrStorage>,
    tx_headers: MultiHeaders<SockaddrStorage>,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// Runs `f` with this thread's [`Scratch`]. `f` must not re-enter (it cannot await, so the
/// only way would be a nested call, which is a bug and panics on the `RefCell`).
pub fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| f(&mut cell.borrow_mut()))
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

impl Scratch {
    /// Buffers for one thread.
    pub fn new() -> Scratch {
        Scratch {
            rx: Box::new([[0; SLOT]; BATCH]),
            rx_len: [0; BATCH],
            rx_from: [None; BATCH],
            extra: Box::new([[0; SLOT]; EXTRA]),
            extra_used: 0,
            queue: Vec::with_capacity(BATCH + EXTRA),
            rx_headers: MultiHeaders::preallocate(BATCH, None),
            tx_headers: MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Reads up to [`BATCH`] datagrams from `fd` (non-blocking) into `rx`; returns how many.
    /// `Err(WouldBlock)` when none was queued.
    pub fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut received = [(0usize, None::<SockaddrStorage>, false); BATCH];
        let mut count = 0;
        {
            let mut slices: [[IoSliceMut<'_>; 1]; BATCH] =
                self.rx.each_mut().map(|b| [IoSliceMut::new(&mut b[..])]);
            let results = recvmmsg(
                fd,
                &mut self.rx_headers,
                slices.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )?;
            for (slot, message) in received.iter_mut().zip(results) {
                *slot = (
                    message.bytes,
                    message.address,
                    message.flags.contains(MsgFlags::MSG_TRUNC),
                );
                count += 1;
            }
        }
        for (i, (bytes, address, truncated)) in received[..count].iter().enumerate() {
            self.rx_len[i] = if *truncated { 0 } else { *bytes };
            self.rx_from[i] = address.as_ref().and_then(socket_addr);
        }
        Ok(count)
    }

    /// A free extra buffer, or `None` when all are queued (flush, then ask again).
    pub fn extra_slot(&mut self) -> Option<(u8, &mut [u8; SLOT])> {
        let i = self.extra_used;
        let buf = self.extra.get_mut(i)?;
        Some((i as u8, buf))
    }

    /// Marks the buffer [`Scratch::extra_slot`] gave as holding `packet`.
    pub fn queue_extra(&mut self, mut packet: Outgoing) {
        packet.buffer = Buffer::Extra(self.extra_used as u8);
        self.extra_used += 1;
        self.queue.push(packet);
    }

    /// Queues a rewritten received datagram.
    pub fn queue(&mut self, packet: Outgoing) {
        self.queue.push(packet);
    }

    /// Whether any packet waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Sends every queued packet from `sockets[packet.socket]`, socket by socket with one
    /// `sendmmsg` per [`BATCH`], and calls `sent(tag)` for each packet the kernel took. A
    /// packet the kernel refuses (full send buffer, unreachable network) is dropped: late
    /// audio is worth nothing, and RTP tolerates loss. Frees every buffer.
    pub fn flush(&mut self, sockets: &[RawFd], mut sent: impl FnMut(u8)) {
        for (index, &fd) in sockets.iter().enumerate() {
            let mut start = 0;
            loop {
                let mut slices = [[IoSlice::new(&[])]; BATCH];
                let mut addresses = [None::<SockaddrStorage>; BATCH];
                let mut tags = [0u8; BATCH];
                let mut n = 0;
                let mut next = start;
                while next < self.queue.len() && n < BATCH {
                    let packet = self.queue[next];
                    next += 1;
                    if usize::from(packet.socket) != index {
                        continue;
                    }
                    let bytes = match packet.buffer {
                        Buffer::Rx(i) => &self.rx[usize::from(i)][..usize::from(packet.len)],
                        Buffer::Extra(i) => &self.extra[usize::from(i)][..usize::from(packet.len)],
                    };
                    slices[n] = [IoSlice::new(bytes)];
                    addresses[n] = Some(SockaddrStorage::from(packet.to));
                    tags[n] = packet.tag;
                    n += 1;
                }
                if n == 0 {
                    break;
                }
                let mut done = 0;
                while done < n {
                    let cmsgs: [ControlMessage<'_>; 0] = [];
                    match sendmmsg(
                        fd,
                        &mut self.tx_headers,
                        slices[done..n].iter(),
                        &addresses[done..n],
                        cmsgs,
                        MsgFlags::MSG_DONTWAIT,
                    ) {
                        Ok(results) => {
                            let k = results.count();
                            for &tag in &tags[done..done + k] {
                                sent(tag);
                            }
                            // A partial send stops at a packet the kernel refused: skip it.
                            done += k.max(1);
                        }
                        // Refused outright: drop this one and try the rest.
                        Err(_) => done += 1,
                    }
                }
                start = next;
            }
        }
        self.queue.clear();
        self.extra_used = 0;
    }
}

fn socket_addr(storage: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    storage
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_batch_is_read_in_one_call_and_sent_back_in_one_call() {
        let a = UdpSocket::bind("127.0.0.1:0").expect("loopback");
        let b = UdpSocket::bind("127.0.0.1:0").expect("loopback");
        for i in 0..5u8 {
            a.send_to(&[i; 20], b.local_addr().expect("bound"))
                .expect("loopback send");
        }
        let mut scratch = Scratch::new();
        // Loopback delivery is synchronous: all five are queued once send_to returns.
        let n = scratch.receive(b.as_raw_fd()).expect("queued");
        assert_eq!(n, 5);
        for i in 0..n {
            assert_eq!(scratch.rx_len[i], 20);
            assert_eq!(scratch.rx[i][0], i as u8);
            assert_eq!(scratch.rx_from[i], Some(a.local_addr().expect("bound")));
            scratch.queue(Outgoing {
                buffer: Buffer::Rx(i as u8),
                len: 20,
                to: a.local_addr().expect("bound"),
                socket: 0,
                tag: 7,
            });
        }
        let mut sent = 0;
        scratch.flush(&[b.as_raw_fd()], |tag| {
            assert_eq!(tag, 7);
            sent += 1;
        });
        assert_eq!(sent, 5);
        assert!(scratch.is_empty());
        a.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 64];
        for i in 0..5u8 {
            let (len, _) = a.recv_from(&mut buf).expect("echoed");
            assert_eq!((len, buf[0]), (20, i), "order kept");
        }
        assert_eq!(
            scratch.receive(b.as_raw_fd()).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
    }
}

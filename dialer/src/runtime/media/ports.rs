//! The pool of local RTP ports: even ports of the configured range (`media.rtp_ports` of the
//! trunk profile), each with the odd port above it for RTCP (RFC 3550 §11).
//!
//! Each lease is drawn at random, so that an off-path attacker who saw one call's port cannot
//! guess the next call's and stream at it before the peer does (the relay's latching accepts
//! a new source only for a short while after the answer; an unguessable port keeps strangers
//! from even trying). The random source is injected ([`PortPool::with_rng`]) so tests are
//! exact; [`PortPool::new`] seeds one from the operating system.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// Even RTP ports from a range, lent out one at a time and returned when the lease drops.
///
/// A lease is drawn at random from the older half of the free pairs (those free the longest):
/// a port just returned, by an ended call or by a bind that found it taken by another process,
/// waits until half the pool has been drawn before it can come back, and each draw still has
/// half the free pairs to choose from. Cloning shares the pool.
#[derive(Clone)]
pub struct PortPool {
    free: Arc<Mutex<Free>>,
}

/// The free pairs, oldest first, and the random source that picks among them.
struct Free {
    ports: Vec<u16>,
    rng: Box<dyn RngCore + Send>,
}

impl fmt::Debug for PortPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortPool")
            .field("free", &self.free_pairs())
            .finish()
    }
}

/// Why a port range cannot make a pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("RTP port range {first}-{last} holds no even port with its odd neighbour")]
pub struct EmptyPortRange {
    /// First port given.
    pub first: u16,
    /// Last port given.
    pub last: u16,
}

impl PortPool {
    /// Every even `p` with `first <= p` and `p + 1 <= last`, drawn with a random source seeded
    /// from the operating system.
    pub fn new(first: u16, last: u16) -> Result<PortPool, EmptyPortRange> {
        PortPool::with_rng(first, last, StdRng::from_entropy())
    }

    /// [`PortPool::new`] drawing from `rng` (seeded in tests, for exact orders).
    pub fn with_rng(
        first: u16,
        last: u16,
        rng: impl RngCore + Send + 'static,
    ) -> Result<PortPool, EmptyPortRange> {
        let start = u32::from(first).next_multiple_of(2);
        let ports: Vec<u16> = (start..u32::from(last))
            .step_by(2)
            .filter_map(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0)
            .collect();
        if ports.is_empty() {
            return Err(EmptyPortRange { first, last });
        }
        Ok(PortPool {
            free: Arc::new(Mutex::new(Free {
                ports,
                rng: Box::new(rng),
            })),
        })
    }

    /// How many RTP/RTCP pairs are free now.
    pub fn free_pairs(&self) -> usize {
        self.lock().ports.len()
    }

    fn lock(&self) -> MutexGuard<'_, Free> {
        // A panic while the lock is held leaves the list itself consistent (each operation is
        // one removal or push), so a poisoned lock is still usable.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A free even port drawn at random, if any.
    pub(crate) fn take(&self) -> Option<PortLease> {
        let mut free = self.lock();
        let Free { ports, rng } = &mut *free;
        if ports.is_empty() {
            return None;
        }
        let index = rng.gen_range(0..ports.len().div_ceil(2));
        // `remove`, not `swap_remove`, keeps the rest oldest first (a memmove of at most
        // 64 KiB, once per call leg).
        let port = ports.remove(index);
        drop(free);
        Some(PortLease {
            pool: self.clone(),
            port,
        })
    }
}

/// One even port lent by a [`PortPool`]; it goes back to the pool when dropped.
#[derive(Debug)]
pub(crate) struct PortLease {
    pool: PortPool,
    port: u16,
}

impl PortLease {
    /// The RTP port; RTCP is the one above it.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.pool.lock().ports.push(self.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(first: u16, last: u16, seed: u64) -> PortPool {
        PortPool::with_rng(first, last, StdRng::seed_from_u64(seed)).expect("a pair fits")
    }

    /// Takes every pair, in the order drawn.
    fn drain(pool: &PortPool) -> Vec<PortLease> {
        std::iter::from_fn(|| pool.take()).collect()
    }

    #[test]
    fn only_even_ports_with_room_for_rtcp_are_lent() {
        let pool = pool(10001, 10006, 1);
        let mut ports: Vec<u16> = drain(&pool).iter().map(PortLease::port).collect();
        ports.sort_unstable();
        assert_eq!(
            ports,
            [10002, 10004],
            "10006 has no odd port above it in range"
        );
    }

    #[test]
    fn leases_are_distinct_even_ports_with_rtcp_inside_the_range() {
        let (first, last) = (16384, 16483);
        let pool = pool(first, last, 7);
        let leases = drain(&pool);
        let mut ports: Vec<u16> = leases.iter().map(PortLease::port).collect();
        for &port in &ports {
            assert_eq!(port % 2, 0, "{port} is even");
            assert!(
                first <= port && port < last,
                "{port} and {} in range",
                port + 1
            );
        }
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), leases.len(), "no port lent twice");
    }

    #[test]
    fn every_pair_is_handed_out_before_the_pool_is_exhausted() {
        let pool = pool(20000, 20199, 3);
        let leases = drain(&pool);
        let mut ports: Vec<u16> = leases.iter().map(PortLease::port).collect();
        ports.sort_unstable();
        let all: Vec<u16> = (20000..20199).step_by(2).collect();
        assert_eq!(ports, all);
        assert_eq!(pool.free_pairs(), 0);
        assert!(pool.take().is_none());
    }

    #[test]
    fn leases_are_not_handed_out_in_order() {
        let pool = pool(20000, 20199, 3);
        let ports: Vec<u16> = drain(&pool).iter().map(PortLease::port).collect();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        assert_ne!(ports, sorted, "not from the bottom of the range up");
        assert_ne!(ports[0], 20000);
    }

    #[test]
    fn two_pools_with_different_seeds_give_different_orders() {
        let order = |seed| -> Vec<u16> {
            let pool = pool(30000, 30999, seed);
            drain(&pool).iter().map(PortLease::port).collect()
        };
        assert_eq!(order(1), order(1), "a seed gives one order");
        assert_ne!(order(1), order(2));
    }

    #[test]
    fn returned_ports_come_back() {
        let pool = pool(40000, 40009, 5);
        let leases = drain(&pool);
        assert_eq!(leases.len(), 5);
        let returned = leases[2].port();
        drop(leases);
        assert_eq!(pool.free_pairs(), 5);
        let again: Vec<u16> = drain(&pool).iter().map(PortLease::port).collect();
        assert_eq!(again.len(), 5);
        assert!(again.contains(&returned));
    }

    #[test]
    fn a_port_just_returned_waits_for_half_the_pool() {
        let pool = pool(40000, 40019, 9);
        let first = pool.take().expect("free");
        let port = first.port();
        drop(first);
        // Ten pairs free, the returned one last: the next four draws come from the others.
        let next: Vec<PortLease> = (0..4).map(|_| pool.take().expect("free")).collect();
        assert!(next.iter().all(|l| l.port() != port));
    }

    #[test]
    fn a_range_without_a_pair_is_an_error() {
        assert_eq!(
            PortPool::new(30001, 30001).map(|_| ()),
            Err(EmptyPortRange {
                first: 30001,
                last: 30001
            })
        );
    }

    #[test]
    fn an_os_seeded_pool_lends_ports() {
        let pool = PortPool::new(50000, 50003).expect("two pairs");
        let a = pool.take().expect("free");
        let b = pool.take().expect("free");
        assert_ne!(a.port(), b.port());
        assert!(pool.take().is_none());
    }
}

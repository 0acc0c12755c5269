//! The pool of local RTP ports: even ports of the configured range (`media.rtp_ports` of the
//! trunk profile), each with the odd port above it for RTCP (RFC 3550 §11).

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Even RTP ports from a range, lent out one at a time and returned when the lease drops.
///
/// A returned port goes to the back of the queue: it is reused as late as possible, so that
/// stray packets of an ended call rarely reach the next one. Cloning shares the pool.
#[derive(Clone)]
pub struct PortPool {
    free: Arc<Mutex<VecDeque<u16>>>,
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
    /// Every even `p` with `first <= p` and `p + 1 <= last`.
    pub fn new(first: u16, last: u16) -> Result<PortPool, EmptyPortRange> {
        let start = u32::from(first).next_multiple_of(2);
        let free: VecDeque<u16> = (start..u32::from(last))
            .step_by(2)
            .filter_map(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0)
            .collect();
        if free.is_empty() {
            return Err(EmptyPortRange { first, last });
        }
        Ok(PortPool {
            free: Arc::new(Mutex::new(free)),
        })
    }

    /// How many RTP/RTCP pairs are free now.
    pub fn free_pairs(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<u16>> {
        // A panic while the lock is held leaves the queue itself consistent (each operation is
        // one push or pop), so a poisoned lock is still usable.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next free even port, if any.
    pub(crate) fn take(&self) -> Option<PortLease> {
        let port = self.lock().pop_front()?;
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
        self.pool.lock().push_back(self.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_even_ports_with_room_for_rtcp_are_lent() {
        let pool = PortPool::new(10001, 10006).expect("two pairs fit");
        let a = pool.take().expect("free");
        let b = pool.take().expect("free");
        assert_eq!((a.port(), b.port()), (10002, 10004));
        assert!(
            pool.take().is_none(),
            "10006 has no odd port above it in range"
        );
    }

    #[test]
    fn a_dropped_lease_returns_to_the_back_of_the_queue() {
        let pool = PortPool::new(20000, 20005).expect("three pairs");
        let first = pool.take().expect("free");
        assert_eq!(first.port(), 20000);
        drop(first);
        assert_eq!(pool.free_pairs(), 3);
        let next = pool.take().expect("free");
        assert_eq!(next.port(), 20002, "the port just freed is reused last");
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
}

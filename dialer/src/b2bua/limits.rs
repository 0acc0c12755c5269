//! A trunk's limits, enforced: `max_channels` live calls and `max_cps` new INVITEs a
//! second. Above either limit a call waits in the trunk's FIFO queue (state `queued`); more
//! than `max_queue` waiting are refused.
//!
//! Two gates keep the carrier's view exact: a call leaves the queue at most once per
//! `1/max_cps` (when a channel is free), and its INVITE goes out no sooner than `1/max_cps`
//! after the previous INVITE on the trunk, however long opening its media took.

use crate::control::CallId;
use sip_core::time::Time;
use std::collections::VecDeque;
use std::time::Duration;

/// What became of a call offered to the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// It holds a channel: open its media now.
    Now,
    /// It waits in the queue.
    Queued,
    /// The queue is full.
    Full,
}

/// One trunk's limits and queue.
#[derive(Debug)]
pub struct TrunkGate {
    max_channels: Option<u32>,
    interval: Option<Duration>,
    max_queue: u32,
    /// Calls holding a channel: out of the queue and not yet over.
    live: u32,
    queue: VecDeque<CallId>,
    /// No call leaves the queue before this.
    next_release: Time,
    /// The last INVITE sent on the trunk.
    last_invite: Option<Time>,
    /// Calls whose media is open, waiting for their INVITE slot.
    deferred: VecDeque<CallId>,
}

impl TrunkGate {
    /// A gate for these limits (`max_cps` of `None` or 0: no rate limit).
    pub fn new(max_channels: Option<u32>, max_cps: Option<u32>, max_queue: u32) -> Self {
        TrunkGate {
            max_channels,
            interval: max_cps
                .filter(|c| *c > 0)
                .map(|c| Duration::from_secs(1) / c),
            max_queue,
            live: 0,
            queue: VecDeque::new(),
            next_release: Time::ZERO,
            last_invite: None,
            deferred: VecDeque::new(),
        }
    }

    fn channel_free(&self) -> bool {
        self.max_channels.is_none_or(|m| self.live < m)
    }

    /// Calls holding a channel.
    pub fn live(&self) -> u32 {
        self.live
    }

    /// Calls waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The trunk's `max_queue`.
    pub fn max_queue(&self) -> u32 {
        self.max_queue
    }

    /// A new call: it takes a channel now, waits, or is refused.
    pub fn admit(&mut self, now: Time, call: CallId) -> Admit {
        if self.queue.is_empty() && self.channel_free() && now >= self.next_release {
            self.take(now);
            return Admit::Now;
        }
        if self.queue.len() >= self.max_queue as usize {
            return Admit::Full;
        }
        self.queue.push_back(call);
        Admit::Queued
    }

    fn take(&mut self, now: Time) {
        self.live += 1;
        if let Some(i) = self.interval {
            self.next_release = now + i;
        }
    }

    /// The next queued call allowed out at `now`, which then holds a channel.
    pub fn poll_release(&mut self, now: Time) -> Option<CallId> {
        if self.queue.is_empty() || !self.channel_free() || now < self.next_release {
            return None;
        }
        let call = self.queue.pop_front()?;
        self.take(now);
        Some(call)
    }

    /// A call that held a channel is over.
    pub fn channel_freed(&mut self) {
        self.live = self.live.saturating_sub(1);
    }

    /// A queued or deferred call ended before it went out; returns whether it was queued
    /// (so it held no channel).
    pub fn forget(&mut self, call: CallId) -> bool {
        self.deferred.retain(|c| *c != call);
        let before = self.queue.len();
        self.queue.retain(|c| *c != call);
        before != self.queue.len()
    }

    /// Whether the call's INVITE may go out at `now`; when it may not, the call waits
    /// (see [`TrunkGate::poll_invite`]).
    pub fn invite_now(&mut self, now: Time, call: CallId) -> bool {
        if self.deferred.is_empty() && self.invite_slot_open(now) {
            self.last_invite = Some(now);
            return true;
        }
        self.deferred.push_back(call);
        false
    }

    fn invite_slot_open(&self, now: Time) -> bool {
        match (self.interval, self.last_invite) {
            (Some(i), Some(last)) => now >= last + i,
            _ => true,
        }
    }

    /// The next deferred call whose INVITE may go out at `now`.
    pub fn poll_invite(&mut self, now: Time) -> Option<CallId> {
        if self.deferred.is_empty() || !self.invite_slot_open(now) {
            return None;
        }
        self.last_invite = Some(now);
        self.deferred.pop_front()
    }

    /// When a queued or deferred call may next go out.
    pub fn next_timeout(&self) -> Option<Time> {
        let release = (!self.queue.is_empty() && self.channel_free()).then_some(self.next_release);
        let invite = match (self.deferred.is_empty(), self.interval, self.last_invite) {
            (false, Some(i), Some(last)) => Some(last + i),
            (false, _, _) => Some(Time::ZERO),
            _ => None,
        };
        release.into_iter().chain(invite).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Time {
        Time(Duration::from_millis(n))
    }

    #[test]
    fn without_limits_every_call_goes_out_at_once() {
        let mut g = TrunkGate::new(None, None, 0);
        for n in 0..100 {
            assert_eq!(g.admit(ms(0), CallId(n)), Admit::Now);
            assert!(g.invite_now(ms(0), CallId(n)));
        }
    }

    #[test]
    fn max_cps_spaces_releases_and_invites_by_its_interval() {
        let mut g = TrunkGate::new(None, Some(5), 1000);
        assert_eq!(g.admit(ms(0), CallId(0)), Admit::Now);
        for n in 1..20 {
            assert_eq!(g.admit(ms(0), CallId(n)), Admit::Queued);
        }
        assert!(g.invite_now(ms(1), CallId(0)));
        let mut released = vec![(0, 0)];
        let mut invites = vec![1];
        let mut now;
        while released.len() < 20 {
            now = g.next_timeout().expect("calls wait");
            while let Some(c) = g.poll_release(now) {
                released.push((c.0, now.0.as_millis()));
                // Media opens in 0 to 30 ms; the INVITE still keeps its spacing.
                let opened = now + Duration::from_millis(c.0 % 4 * 10);
                if g.invite_now(opened, c) {
                    invites.push(opened.0.as_millis());
                }
            }
            while let Some(_c) = g.poll_invite(now) {
                invites.push(now.0.as_millis());
            }
        }
        while let Some(t) = g.next_timeout() {
            while g.poll_invite(t).is_some() {
                invites.push(t.0.as_millis());
            }
        }
        let order: Vec<u64> = released.iter().map(|r| r.0).collect();
        assert_eq!(order, (0..20).collect::<Vec<_>>(), "FIFO");
        for w in released.windows(2) {
            assert_eq!(w[1].1 - w[0].1, 200, "{released:?}");
        }
        assert_eq!(invites.len(), 20);
        invites.sort_unstable();
        for w in invites.windows(2) {
            assert!(w[1] - w[0] >= 200, "{invites:?}");
        }
    }

    #[test]
    fn max_channels_holds_calls_until_one_ends() {
        let mut g = TrunkGate::new(Some(2), None, 1);
        assert_eq!(g.admit(ms(0), CallId(1)), Admit::Now);
        assert_eq!(g.admit(ms(0), CallId(2)), Admit::Now);
        assert_eq!(g.admit(ms(0), CallId(3)), Admit::Queued);
        assert_eq!(g.admit(ms(0), CallId(4)), Admit::Full);
        assert_eq!(g.poll_release(ms(10)), None);
        assert_eq!(
            g.next_timeout(),
            None,
            "nothing can leave while both channels are held"
        );
        g.channel_freed();
        assert_eq!(g.poll_release(ms(10)), Some(CallId(3)));
        assert_eq!(g.live(), 2);
    }

    #[test]
    fn a_queued_call_that_is_hung_up_leaves_the_queue() {
        let mut g = TrunkGate::new(Some(1), None, 10);
        assert_eq!(g.admit(ms(0), CallId(1)), Admit::Now);
        assert_eq!(g.admit(ms(0), CallId(2)), Admit::Queued);
        assert!(g.forget(CallId(2)));
        g.channel_freed();
        assert_eq!(g.poll_release(ms(1)), None);
        assert!(!g.forget(CallId(1)));
    }
}

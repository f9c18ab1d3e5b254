//! When each installed SA's time lifetimes run out, soonest first.
//!
//! Visiting every SA once a second to compare its age with its lifetimes stalled the worker:
//! with 10,000 outbound and 10,000 inbound SAs the sweep took 2.4 to 3.2 ms (measured on the
//! 10,000-policy bench), long enough for a 1,024-descriptor receive ring to overflow at a few
//! Mpps. Instead each SA's soft and hard deadlines go into a heap when the worker installs it,
//! and a burst looks only at the top: one comparison when nothing is due, and at most
//! [`PER_BURST`] SAs when something is.
//!
//! Entries are not removed with their SA: a replaced or removed SA's entries stay until they
//! are due (or until [`Deadlines::compact`] drops them), and visiting one is harmless because
//! the SA found then judges its age from its own installation time.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::ctl::SaKey;
use crate::sa::{IpsecProto, Sa};

/// SAs looked at per burst, at most, when many are due at once (installed together).
pub(crate) const PER_BURST: usize = 32;

/// Where a due SA is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// An SA of the outbound bundle of a policy.
    Out { policy_id: u32, proto: IpsecProto, spi: u32 },
    /// An inbound SA.
    In(SaKey),
}

/// A moment (seconds, on the worker's clock) and the SA to look at then.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    at: u64,
    target: Target,
}

// The heap orders by time only, soonest on top.
impl PartialEq for Deadline {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at
    }
}
impl Eq for Deadline {}
impl PartialOrd for Deadline {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Deadline {
    fn cmp(&self, o: &Self) -> Ordering {
        o.at.cmp(&self.at)
    }
}

/// The pending deadlines of a worker's SAs.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    heap: BinaryHeap<Deadline>,
}

impl Deadlines {
    /// Adds the time lifetimes of `sa`, just installed at `target`. Allocates when the heap
    /// grows (between bursts, as a control message).
    pub(crate) fn schedule<S>(&mut self, sa: &Sa<S>, target: Target) {
        self.heap.extend(moments(sa).map(|at| Deadline { at, target }));
    }

    /// Takes the next deadline due at `now`, if any.
    #[inline]
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<Target> {
        if self.heap.peek()?.at > now {
            return None;
        }
        self.heap.pop().map(|d| d.target)
    }

    /// Returns the number of pending entries, stale ones included.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Keeps only the entries `live(target, at)` keeps. The caller runs it when stale entries
    /// may outnumber live ones, so the heap stays proportional to the installed SAs.
    pub(crate) fn compact(&mut self, mut live: impl FnMut(&Target, u64) -> bool) {
        self.heap.retain(|d| live(&d.target, d.at));
    }
}

/// Tells whether `at` is one of `sa`'s deadlines: an SA installed later at the same place,
/// even under the same SPI, has other ones.
pub(crate) fn is_deadline_of<S>(sa: &Sa<S>, at: u64) -> bool {
    moments(sa).any(|m| m == at)
}

/// Returns the moments an SA's soft and hard time lifetimes run out (seconds; none for 0).
fn moments<S>(sa: &Sa<S>) -> impl Iterator<Item = u64> {
    let lt = sa.lifetimes();
    let start = sa.added_at();
    [lt.soft_secs, lt.hard_secs].into_iter().filter(|&s| s != 0).map(move |s| start.saturating_add(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn target(spi: u32) -> Target {
        Target::In(SaKey {
            src: Ipv4Addr::new(1, 1, 1, 1),
            dst: Ipv4Addr::new(2, 2, 2, 2),
            proto: IpsecProto::Esp,
            spi,
        })
    }

    #[test]
    fn due_deadlines_come_out_soonest_first_and_only_when_due() {
        let mut d = Deadlines::default();
        for (at, spi) in [(30, 3), (10, 1), (20, 2), (10, 4)] {
            d.heap.push(Deadline { at, target: target(spi) });
        }
        assert_eq!(d.pop_due(9), None);
        let mut first: Vec<Target> = std::iter::from_fn(|| d.pop_due(10)).collect();
        first.sort_by_key(|t| match t {
            Target::In(k) => k.spi,
            Target::Out { spi, .. } => *spi,
        });
        assert_eq!(first, [target(1), target(4)]);
        assert_eq!(d.pop_due(25), Some(target(2)));
        assert_eq!(d.pop_due(25), None);
        assert_eq!(d.len(), 1);
    }
}

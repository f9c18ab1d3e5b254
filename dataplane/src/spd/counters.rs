//! Per-policy counters: packets and bytes per outcome, owned by one worker and merged when read
//! (`print stats`).

use super::PolicyIdx;

/// What happened to a packet that matched a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Outcome {
    /// Matched an `accept` policy.
    Accepted,
    /// Handed to the policy's SAs.
    Encrypted,
    /// Sent in clear for want of an SA (level `use` or `acquire`).
    ClearNoSa,
    /// Dropped for want of an SA (level `require`).
    DroppedNoSa,
    /// Matched a `drop` policy.
    Dropped,
    /// Sent without encrypting again: it matched the policy that had just encrypted it.
    LoopClear,
    /// Arrived in clear and passed the incoming check on this (reversed) policy.
    IncomingPassed,
    /// Arrived in clear though this policy has an SA: dropped by the incoming check.
    IncomingDropped,
    /// Decrypted by an SA of this policy and matched it.
    InnerMatched,
    /// Decrypted by an SA of this policy but did not match it: dropped.
    InnerMismatch,
}

impl Outcome {
    /// Every outcome, in counter order.
    pub const ALL: [Outcome; 10] = [
        Outcome::Accepted,
        Outcome::Encrypted,
        Outcome::ClearNoSa,
        Outcome::DroppedNoSa,
        Outcome::Dropped,
        Outcome::LoopClear,
        Outcome::IncomingPassed,
        Outcome::IncomingDropped,
        Outcome::InnerMatched,
        Outcome::InnerMismatch,
    ];
    /// Number of outcomes.
    pub const COUNT: usize = Self::ALL.len();

    /// Returns the outcome's name as `print stats` shows it.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Encrypted => "encrypted",
            Outcome::ClearNoSa => "clear-no-sa",
            Outcome::DroppedNoSa => "dropped-no-sa",
            Outcome::Dropped => "dropped",
            Outcome::LoopClear => "loop-clear",
            Outcome::IncomingPassed => "incoming-passed",
            Outcome::IncomingDropped => "incoming-dropped",
            Outcome::InnerMatched => "decrypted-matched",
            Outcome::InnerMismatch => "decrypted-mismatch",
        }
    }
}

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Count {
    /// Packets counted.
    pub packets: u64,
    /// Bytes of those packets.
    pub bytes: u64,
}

impl Count {
    fn add(&mut self, other: Count) {
        self.packets += other.packets;
        self.bytes += other.bytes;
    }
}

/// One worker's counters, indexed by outcome then policy. Sized when an SPD is installed
/// ([`Spd::counters`](super::Spd::counters)), never resized on the packet path.
///
/// Outcome first: a packet adds to one count, and the counts of one outcome sit together. With
/// 10,000 encrypt policies their `encrypted` counts take 160 KB, four to a cache line; kept
/// per policy, the same counts were spread over 1.6 MB, a line each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyCounters {
    counts: [Vec<Count>; Outcome::COUNT],
}

impl PolicyCounters {
    /// Creates zeroed counters for `policies` policies.
    pub fn new(policies: usize) -> PolicyCounters {
        PolicyCounters { counts: std::array::from_fn(|_| vec![Count::default(); policies]) }
    }

    /// Returns the number of policies counted.
    pub fn len(&self) -> usize {
        self.counts[0].len()
    }

    /// Tells whether there are no policies to count.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts one packet of `len` bytes for `policy`; counters sized for another SPD ignore a
    /// policy they do not have rather than panic.
    #[inline]
    pub fn add(&mut self, policy: PolicyIdx, outcome: Outcome, len: u32) {
        if let Some(c) = self.counts[outcome as usize].get_mut(policy as usize) {
            c.packets += 1;
            c.bytes += u64::from(len);
        }
    }

    /// Hints that `policy`'s count of `outcome` is about to be added to.
    #[inline]
    pub fn prefetch(&self, policy: PolicyIdx, outcome: Outcome) {
        if let Some(c) = self.counts[outcome as usize].get(policy as usize) {
            crate::prefetch::front(c, size_of::<Count>());
        }
    }

    /// Returns the count of `policy` for `outcome` (zero for an unknown policy).
    pub fn get(&self, policy: PolicyIdx, outcome: Outcome) -> Count {
        self.counts[outcome as usize].get(policy as usize).copied().unwrap_or_default()
    }

    /// Returns the count of `policy` over every outcome: packets and bytes matched.
    pub fn total(&self, policy: PolicyIdx) -> Count {
        let mut t = Count::default();
        for &o in &Outcome::ALL {
            t.add(self.get(policy, o));
        }
        t
    }

    /// Adds another worker's counters to these (policies beyond this length are added too).
    pub fn merge(&mut self, other: &PolicyCounters) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            if theirs.len() > mine.len() {
                mine.resize(theirs.len(), Count::default());
            }
            for (x, y) in mine.iter_mut().zip(theirs) {
                x.add(*y);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Merging counters of a longer SPD into shorter ones (the control plane sums workers
    /// whose SPDs differ for a moment) keeps every count under its policy and outcome.
    #[test]
    fn merging_longer_counters_keeps_each_count_in_place() {
        let mut a = PolicyCounters::new(2);
        a.add(1, Outcome::Encrypted, 100);
        a.add(0, Outcome::Dropped, 10);
        let mut b = PolicyCounters::new(5);
        b.add(1, Outcome::Encrypted, 50);
        b.add(4, Outcome::InnerMismatch, 7);
        a.merge(&b);
        assert_eq!(a.len(), 5);
        assert_eq!(a.get(1, Outcome::Encrypted), Count { packets: 2, bytes: 150 });
        assert_eq!(a.get(0, Outcome::Dropped), Count { packets: 1, bytes: 10 });
        assert_eq!(a.get(4, Outcome::InnerMismatch), Count { packets: 1, bytes: 7 });
        assert_eq!(a.total(2), Count::default());
        assert_eq!(a.get(5, Outcome::Encrypted), Count::default(), "beyond the policies");
        // A shorter one adds into the first policies only.
        let mut c = PolicyCounters::new(1);
        c.add(0, Outcome::Dropped, 1);
        a.merge(&c);
        assert_eq!((a.len(), a.get(0, Outcome::Dropped)), (5, Count { packets: 2, bytes: 11 }));
    }
}

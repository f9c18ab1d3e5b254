//! A worker's cache of classifier answers by exact 5-tuple, in front of the decision trees.
//!
//! A flow's packets keep asking the classifier the same question; the answer (the first
//! matching rule, or none) is a pure function of the key and the compiled rule list, so it can
//! be remembered exactly. One probe costs a hash and one cache line, where a tree walk costs a
//! few dependent loads and a leaf of several lines: with thousands of policies that is most of
//! the SPD's time. Entries belong to one classifier (its serial number): a new rule list makes
//! every entry stale at once, by a generation number, without touching the table.
//!
//! The table is set-associative (three ways in a 64-byte bucket), fixed in size when the worker
//! starts: no allocation, lock or syscall on a lookup. The hash is seeded per cache, so packets
//! an attacker chooses cannot be aimed at one bucket; a flood of new flows only evicts entries
//! (each miss costs what a lookup without the cache costs).

use arrayvec::ArrayVec;

use super::{Classifier, Key, NONE};
use crate::buf::BURST;

/// One remembered answer: the key, and the rule (`NONE` for no match).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
struct Slot {
    src: u32,
    dst: u32,
    /// Source port (high half) and destination port (low half).
    ports: u32,
    /// The protocol (bits 24..32) and the rule (bits 0..24; all ones for no match).
    word: u32,
}

/// The rule field of a slot that means no rule matched.
const NO_RULE: u32 = 0x00ff_ffff;

impl Slot {
    #[inline(always)]
    fn of(key: &Key) -> Slot {
        Slot {
            src: key.src,
            dst: key.dst,
            ports: u32::from(key.src_port) << 16 | u32::from(key.dst_port),
            word: u32::from(key.proto) << 24,
        }
    }

    /// Tells whether the slot holds `probe`'s key (`probe` as made by `of`).
    #[inline(always)]
    fn holds(&self, probe: &Slot) -> bool {
        ((self.src ^ probe.src)
            | (self.dst ^ probe.dst)
            | (self.ports ^ probe.ports)
            | ((self.word ^ probe.word) >> 24))
            == 0
    }

    #[inline(always)]
    fn rule(&self) -> u32 {
        match self.word & NO_RULE {
            NO_RULE => NONE,
            r => r,
        }
    }
}

/// Three slots, most recently filled first, valid only when `generation` is the cache's generation.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Bucket {
    slots: [Slot; WAYS],
    generation: u32,
    /// Valid slots, from the first.
    len: u32,
}

const WAYS: usize = 3;

/// Counts of a cache's lookups (per worker; read with the worker's other counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Keys answered from the table.
    pub hits: u64,
    /// Keys that went to the classifier.
    pub misses: u64,
}

impl CacheStats {
    /// Adds another worker's counts.
    pub fn merge(&mut self, o: &CacheStats) {
        self.hits += o.hits;
        self.misses += o.misses;
    }
}

/// The cache of one worker for one kind of lookup (outbound, or the incoming check).
#[derive(Debug)]
pub struct FlowCache {
    buckets: Box<[Bucket]>,
    mask: usize,
    seed: u64,
    /// The classifier the valid entries belong to.
    serial: u64,
    generation: u32,
    /// Lookups so far.
    pub stats: CacheStats,
}

impl FlowCache {
    /// Creates a cache holding at least `flows` flows (three per bucket, a power of two of
    /// buckets). Allocates; call it when the worker is set up.
    pub fn new(flows: usize) -> FlowCache {
        let buckets = flows.div_ceil(WAYS).next_power_of_two().max(1);
        FlowCache {
            buckets: vec![Bucket::default(); buckets].into_boxed_slice(),
            mask: buckets - 1,
            seed: seed(),
            serial: 0,
            generation: 1,
            stats: CacheStats::default(),
        }
    }

    /// Returns the bytes of the table.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.buckets)
    }

    /// Answers as `c.classify_burst(keys, out)` does, from the table where it can: only keys it
    /// has not seen since `c` was built reach the classifier, and their answers are kept. Keys
    /// no rule of `c` could match (outside its envelope) are answered without a probe.
    pub fn classify_burst(&mut self, c: &Classifier, keys: &[Key], out: &mut [Option<u32>]) {
        if c.is_few() {
            // A scan of a few rules answers faster than a probe: nothing is kept.
            c.classify_burst(keys, out);
            return;
        }
        if c.serial != self.serial {
            self.serial = c.serial;
            self.next_generation();
        }
        for (keys, out) in keys.chunks(BURST).zip(out.chunks_mut(BURST)) {
            self.classify_chunk(c, keys, out);
        }
    }

    fn classify_chunk(&mut self, c: &Classifier, keys: &[Key], out: &mut [Option<u32>]) {
        let n = keys.len().min(out.len()).min(BURST);
        // The keys to probe, by position in `keys`, with their buckets.
        let mut pos = [0u8; BURST];
        let mut at = [0usize; BURST];
        let mut m = 0;
        for (i, k) in keys[..n].iter().enumerate() {
            out[i] = None;
            pos[m % BURST] = i as u8;
            at[m % BURST] = self.bucket_of(k);
            m += usize::from(c.might_match(k));
        }
        // Ask for every bucket before probing any: the misses of a burst overlap.
        for &a in &at[..m] {
            crate::prefetch::front(&self.buckets[a], size_of::<Bucket>());
        }
        let mut miss_keys: ArrayVec<Key, BURST> = ArrayVec::new();
        let mut miss_at: ArrayVec<u8, BURST> = ArrayVec::new();
        for (j, (&p, &a)) in pos[..m].iter().zip(&at[..m]).enumerate() {
            let k = &keys[usize::from(p)];
            let probe = Slot::of(k);
            let b = &self.buckets[a];
            let live = if b.generation == self.generation { b.len as usize } else { 0 };
            match b.slots[..live.min(WAYS)].iter().find(|s| s.holds(&probe)) {
                Some(s) => out[usize::from(p)] = (s.rule() != NONE).then_some(s.rule()),
                None => {
                    miss_keys.push(*k);
                    miss_at.push(j as u8);
                }
            }
        }
        let misses = miss_keys.len();
        self.stats.hits += (m - misses) as u64;
        self.stats.misses += misses as u64;
        if misses == 0 {
            return;
        }
        let mut found: ArrayVec<Option<u32>, BURST> = ArrayVec::new();
        found.extend(std::iter::repeat_n(None, misses));
        c.classify_burst(&miss_keys, &mut found);
        for ((k, &j), &f) in miss_keys.iter().zip(&miss_at).zip(&found) {
            let j = usize::from(j);
            out[usize::from(pos[j])] = f;
            self.insert(at[j], k, f);
        }
    }

    #[inline(always)]
    fn bucket_of(&self, k: &Key) -> usize {
        let a = (u64::from(k.src) << 32 | u64::from(k.dst)) ^ self.seed;
        let b = u64::from(k.src_port) << 24 | u64::from(k.dst_port) << 8 | u64::from(k.proto);
        let h =
            a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (b ^ self.seed.rotate_left(29)).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        (h ^ h >> 31) as usize & self.mask
    }

    fn insert(&mut self, at: usize, k: &Key, rule: Option<u32>) {
        // Rule numbers that do not fit the slot are not kept (they are looked up each time).
        let rule = match rule {
            None => NO_RULE,
            Some(r) if r < NO_RULE => r,
            Some(_) => return,
        };
        let generation = self.generation;
        let b = &mut self.buckets[at];
        if b.generation != generation {
            *b = Bucket { generation, ..Bucket::default() };
        }
        let mut s = Slot::of(k);
        // A key that missed twice in one burst is kept once.
        if b.slots[..b.len as usize].iter().any(|o| o.holds(&s)) {
            return;
        }
        s.word |= rule;
        b.slots.copy_within(0..WAYS - 1, 1);
        b.slots[0] = s;
        b.len = (b.len + 1).min(WAYS as u32);
    }

    /// Makes every entry stale; on the rare wrap of the generation, clears the table so that
    /// no entry of an old generation can come back to life.
    fn next_generation(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.buckets.fill(Bucket::default());
            self.generation = 1;
        }
    }
}

/// Returns a seed no packet sender can know: std's per-process random hash keys.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x0069_7073_6563_6777);
    h.finish()
}

//! Packet classification: an ordered rule list over the IPv4 5-tuple compiled into an immutable
//! decision structure, looked up a burst at a time; the first matching rule (lowest index) wins.
//!
//! The design, after HiCuts/HyperCuts and EffiCuts (see `build`): the rules are split into a few
//! groups by how wide their address prefixes are, so a wildcard address does not get copied into
//! every leaf of a tree that cuts on that address; each group becomes a decision tree whose
//! internal nodes cut one or two fields into equal power-of-two slices (a child index is a shift
//! and a mask, no comparisons), and whose leaves hold a handful of rules in priority order, stored
//! as blocks of eight in a structure of arrays so that one subtract-and-compare per field checks
//! the whole block in vector registers (portable code the compiler vectorises, no `unsafe`). A rule that covers a node's whole
//! region hides every later rule there, so the builder cuts the list after it. Lookups walk every
//! tree and keep the lowest rule index, and a tree whose lowest index cannot beat the best match
//! so far is skipped. A burst walks all its packets one tree level at a time, so the cache misses
//! of 32 independent walks overlap instead of queueing.
//!
//! Building allocates and runs off the worker; lookups never allocate, lock or make a syscall.

mod build;
mod key;
#[cfg(test)]
mod tests;

pub use key::Key;

use crate::buf::BURST;

/// Counts the fields a rule constrains: source, destination, source port, destination port, protocol.
const DIMS: usize = 5;

/// An address prefix `addr/len`; bits of `addr` past `len` are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The address, host byte order.
    pub addr: u32,
    /// The prefix length, 0 (any address) to 32.
    pub len: u8,
}

impl Prefix {
    /// Matches every address.
    pub const ANY: Prefix = Prefix { addr: 0, len: 0 };

    /// Creates `addr/len`, clearing the host bits; a length over 32 is taken as 32.
    pub fn new(addr: u32, len: u8) -> Prefix {
        let len = len.min(32);
        Prefix { addr: addr & Self::mask(len), len }
    }

    /// Creates the prefix matching exactly one address.
    pub fn host(addr: u32) -> Prefix {
        Prefix { addr, len: 32 }
    }

    fn mask(len: u8) -> u32 {
        if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) }
    }

    /// Returns the lowest address in the prefix.
    pub fn first(&self) -> u32 {
        self.addr & Self::mask(self.len)
    }

    /// Returns the highest address in the prefix.
    pub fn last(&self) -> u32 {
        self.first() | !Self::mask(self.len)
    }

    /// Tells whether `addr` lies in the prefix.
    pub fn contains(&self, addr: u32) -> bool {
        (addr ^ self.addr) & Self::mask(self.len) == 0
    }
}

/// An inclusive port range; `0..=65535` is any port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// The lowest port matched.
    pub lo: u16,
    /// The highest port matched; a range with `hi < lo` matches nothing.
    pub hi: u16,
}

impl PortRange {
    /// Matches every port.
    pub const ANY: PortRange = PortRange { lo: 0, hi: u16::MAX };

    /// Creates the range matching exactly `port`.
    pub fn exact(port: u16) -> PortRange {
        PortRange { lo: port, hi: port }
    }

    /// Tells whether `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

/// One classification rule: every field must match. Its index in the list is its priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// The source address prefix.
    pub src: Prefix,
    /// The destination address prefix.
    pub dst: Prefix,
    /// The source port range.
    pub src_port: PortRange,
    /// The destination port range.
    pub dst_port: PortRange,
    /// The IP protocol number, or `None` for any protocol.
    pub proto: Option<u8>,
}

impl Rule {
    /// Matches every packet.
    pub const ANY: Rule =
        Rule { src: Prefix::ANY, dst: Prefix::ANY, src_port: PortRange::ANY, dst_port: PortRange::ANY, proto: None };

    /// Tells whether `key` matches the rule: the reference semantics the classifier must agree with.
    pub fn matches(&self, key: &Key) -> bool {
        self.src.contains(key.src)
            && self.dst.contains(key.dst)
            && self.src_port.contains(key.src_port)
            && self.dst_port.contains(key.dst_port)
            && self.proto.is_none_or(|p| p == key.proto)
    }

    /// Returns the rule as a box: per field, the lowest and highest value matched; `None` if
    /// some range is empty, so the rule can never match.
    fn bounds(&self) -> Option<[(u32, u32); DIMS]> {
        if self.src_port.lo > self.src_port.hi || self.dst_port.lo > self.dst_port.hi {
            return None;
        }
        let proto = self.proto.map_or((0, 255), |p| (u32::from(p), u32::from(p)));
        Some([
            (self.src.first(), self.src.last()),
            (self.dst.first(), self.dst.last()),
            (u32::from(self.src_port.lo), u32::from(self.src_port.hi)),
            (u32::from(self.dst_port.lo), u32::from(self.dst_port.hi)),
            proto,
        ])
    }
}

/// Returns the index of the first rule of `rules` that matches `key`, by a plain scan: the
/// reference the compiled classifier is tested against, and the fallback for tiny lists.
pub fn linear_first_match(rules: &[Rule], key: &Key) -> Option<u32> {
    rules.iter().position(|r| r.matches(key)).map(|i| i as u32)
}

/// Means "no rule" inside the lookup loops, which compare indices with `<`.
const NONE: u32 = u32::MAX;

/// A child reference, 64 bits, that carries everything needed to take the next step, so a step
/// costs one dependent load (as `rte_acl`'s transitions do), not a node load then a child load.
/// A leaf (top bit set) holds the start (bits 0..32) and length (bits 32..63) of its rules in
/// `Tree::rules`. An internal node holds the base of its children in `Tree::children` (bits
/// 0..32) and two cut fields: field, shift and bit count of the key field cut first (the high
/// part of the child index) and second (the low part; 0 bits when the node cuts one field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Entry(u64);

impl Entry {
    const LEAF: u64 = 1 << 63;

    fn leaf(start: u32, len: u32) -> Entry {
        Entry(Self::LEAF | u64::from(len) << 32 | u64::from(start))
    }

    fn node(base: u32, cuts: [(usize, u32, u32); 2]) -> Entry {
        let [(d0, s0, b0), (d1, s1, b1)] = cuts;
        let f = |d: usize, s: u32, b: u32| (d as u64) << 10 | u64::from(s) << 4 | u64::from(b);
        Entry(f(d0, s0, b0) << 32 | f(d1, s1, b1) << 45 | u64::from(base))
    }

    #[inline(always)]
    fn is_leaf(self) -> bool {
        self.0 & Self::LEAF != 0
    }

    /// Returns the child slot for `key` of an internal node.
    #[inline(always)]
    fn slot(self, key: &[i32; DIMS]) -> usize {
        let cut0 = (self.0 >> 32) as u32;
        let cut1 = (self.0 >> 45) as u32;
        let part = |cut: u32| {
            let (d, s, b) = ((cut >> 10) & 7, (cut >> 4) & 63, cut & 15);
            // Fields are below 5 and shifts below 32 by construction; the `min` and mask keep a
            // corrupt entry from panicking.
            ((key[(d as usize).min(DIMS - 1)] as u32 ^ BIAS) >> (s & 31)) & ((1u32 << b) - 1)
        };
        let b1 = cut1 & 15;
        (self.0 as u32 as usize) + (((part(cut0) << b1) | part(cut1)) as usize)
    }

    #[inline(always)]
    fn leaf_range(self) -> std::ops::Range<usize> {
        let start = self.0 as u32 as usize;
        start..start + ((self.0 >> 32) as u32 & 0x7fff_ffff) as usize
    }
}

/// Is the number of leaf rules checked together: the compares of one field over a block of
/// `LANES` rules are independent, so the compiler turns them into vector instructions.
const LANES: usize = 8;

/// Flips the top bit, mapping unsigned order onto signed order (SSE2 compares only signed).
const BIAS: u32 = 0x8000_0000;

/// Is the index a lane without a match reports (above every rule index, see `build`).
const NO_LANE: i32 = i32::MAX;

/// Up to `LANES` leaf rules as a structure of arrays, so each field is compared for all of them
/// at once. Field `d` of lane `j` matches key value `k` when `k - lo <= width` in wrapping
/// unsigned arithmetic; both sides are kept with the top bit flipped (the key is flipped once
/// per lookup), which turns the test into one subtraction and one signed compare. Unused lanes
/// hold a protocol range no key can reach and the index `NO_LANE`.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct Block {
    lo: [[i32; LANES]; DIMS],
    width: [[i32; LANES]; DIMS],
    id: [i32; LANES],
}

impl Block {
    /// Holds no rule in any lane.
    const EMPTY: Block = {
        let mut lo = [[0; LANES]; DIMS];
        lo[DIMS - 1] = [256; LANES];
        Block { lo, width: [[BIAS as i32; LANES]; DIMS], id: [NO_LANE; LANES] }
    };

    /// Stores the rule with per-field bounds `bounds` and index `id` in lane `j`.
    fn set(&mut self, j: usize, bounds: &[(u32, u32); DIMS], id: u32) {
        for (d, &(lo, hi)) in bounds.iter().enumerate() {
            self.lo[d][j] = lo as i32;
            self.width[d][j] = ((hi - lo) ^ BIAS) as i32;
        }
        self.id[j] = id as i32;
    }

    /// Returns the lowest index among the lanes matching `key` (fields with the top bit
    /// flipped), or `NO_LANE`. Written lane by lane without branches, so that it compiles to
    /// vector subtractions, compares and a horizontal minimum.
    #[inline(always)]
    fn first(&self, key: &[i32; DIMS]) -> i32 {
        let mut miss = [0i32; LANES];
        for ((&k, lo), width) in key.iter().zip(&self.lo).zip(&self.width) {
            for ((m, &lo), &width) in miss.iter_mut().zip(lo).zip(width) {
                *m |= if k.wrapping_sub(lo) > width { NO_LANE } else { 0 };
            }
        }
        miss.iter().zip(&self.id).fold(NO_LANE, |first, (&m, &id)| first.min(id | m))
    }
}

/// Returns the key's fields in dimension order with the top bit flipped, as `Block` wants them.
#[inline(always)]
fn biased(key: &Key) -> [i32; DIMS] {
    key.fields().map(|f| (f ^ BIAS) as i32)
}

/// One decision tree over a group of rules.
#[derive(Debug)]
struct Tree {
    children: Vec<Entry>,
    /// The leaves' rules, each leaf a run of blocks in priority order.
    blocks: Vec<Block>,
    /// The rules stored in leaves (copies included).
    leaf_rules: usize,
    root: Entry,
    /// The lowest rule index in the tree: a lookup that already matched a lower one skips it.
    min_id: u32,
    depth: u32,
    nodes: usize,
    leaves: usize,
}

impl Tree {
    /// Scans `leaf` for the first rule matching `key` with an index below `best`, a block of
    /// rules at a time; the leaf is in priority order, so the first block with a match holds
    /// the answer, and a block whose first index is not below `best` ends the scan.
    #[inline(always)]
    fn scan(&self, leaf: Entry, key: &[i32; DIMS], best: u32) -> u32 {
        for b in &self.blocks[leaf.leaf_range()] {
            if b.id[0] as u32 >= best {
                break;
            }
            let first = b.first(key);
            if first != NO_LANE {
                return best.min(first as u32);
            }
        }
        best
    }

    /// Takes one step down from internal node `at` for `key`.
    #[inline(always)]
    fn step(&self, at: Entry, key: &[i32; DIMS]) -> Entry {
        self.children[at.slot(key)]
    }

    fn memory_bytes(&self) -> usize {
        self.children.len() * std::mem::size_of::<Entry>() + self.blocks.len() * std::mem::size_of::<Block>()
    }
}

/// Describes the shape of a compiled classifier, for benches and `print` output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// Decision trees (rule groups that are not empty).
    pub trees: usize,
    /// Internal nodes over all trees.
    pub nodes: usize,
    /// Distinct leaves over all trees.
    pub leaves: usize,
    /// Rules stored in leaves: the rule count times the replication.
    pub leaf_rules: usize,
    /// The deepest path from a root to a leaf, in nodes.
    pub max_depth: u32,
}

/// An ordered rule list compiled for fast first-match lookups; immutable once built, so one
/// copy can be shared by every worker (it is `Send + Sync`).
#[derive(Debug)]
pub struct Classifier {
    trees: Vec<Tree>,
    rules: usize,
}

impl Classifier {
    /// Compiles `rules`; a rule's priority is its index. Allocates; call it off the worker.
    pub fn build(rules: &[Rule]) -> Classifier {
        build::build(rules)
    }

    /// Returns the number of rules the classifier was built from.
    pub fn len(&self) -> usize {
        self.rules
    }

    /// Tells whether the classifier was built from an empty list (it matches nothing).
    pub fn is_empty(&self) -> bool {
        self.rules == 0
    }

    /// Returns the bytes of the compiled structure (heap, excluding allocator slack).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.trees.iter().map(|t| t.memory_bytes() + std::mem::size_of::<Tree>()).sum::<usize>()
    }

    /// Returns the shape of the compiled structure.
    pub fn shape(&self) -> Shape {
        Shape {
            trees: self.trees.len(),
            nodes: self.trees.iter().map(|t| t.nodes).sum(),
            leaves: self.trees.iter().map(|t| t.leaves).sum(),
            leaf_rules: self.trees.iter().map(|t| t.leaf_rules).sum(),
            max_depth: self.trees.iter().map(|t| t.depth).max().unwrap_or(0),
        }
    }

    /// Returns the index of the first rule matching `key`.
    pub fn classify(&self, key: &Key) -> Option<u32> {
        let fields = biased(key);
        let mut best = NONE;
        for t in &self.trees {
            if t.min_id >= best {
                continue;
            }
            let mut at = t.root;
            while !at.is_leaf() {
                at = t.step(at, &fields);
            }
            best = t.scan(at, &fields, best);
        }
        (best != NONE).then_some(best)
    }

    /// Classifies a burst: `out[i]` is the index of the first rule matching `keys[i]`. Only the
    /// first `min(keys.len(), out.len())` entries are written. Allocates nothing.
    pub fn classify_burst(&self, keys: &[Key], out: &mut [Option<u32>]) {
        for (keys, out) in keys.chunks(BURST).zip(out.chunks_mut(BURST)) {
            self.classify_chunk(keys, out);
        }
    }

    /// Classifies up to `BURST` keys, walking all of them down each tree one level at a time so
    /// that their memory accesses overlap.
    fn classify_chunk(&self, keys: &[Key], out: &mut [Option<u32>]) {
        let n = keys.len().min(out.len()).min(BURST);
        let mut best = [NONE; BURST];
        let mut fields = [[0i32; DIMS]; BURST];
        for (f, k) in fields.iter_mut().zip(&keys[..n]) {
            *f = biased(k);
        }
        let mut at = [Entry(0); BURST];
        for t in &self.trees {
            at[..n].fill(t.root);
            // Walk level by level; packets whose walk ended stay parked on their leaf.
            for _ in 0..t.depth {
                for i in 0..n {
                    if !at[i].is_leaf() {
                        at[i] = t.step(at[i], &fields[i]);
                    }
                }
            }
            for i in 0..n {
                if t.min_id < best[i] {
                    best[i] = t.scan(at[i], &fields[i], best[i]);
                }
            }
        }
        for (o, &b) in out[..n].iter_mut().zip(&best[..n]) {
            *o = (b != NONE).then_some(b);
        }
    }
}

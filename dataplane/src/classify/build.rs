//! Compilation of a rule list into decision trees: one tree when the rules allow it, else one
//! per address-width group (EffiCuts), each made of recursive equal-size cuts on one field
//! (HiCuts) under a space budget.

use std::collections::HashMap;

use super::{Block, Classifier, DIMS, Entry, FEW, LANES, NO_LANE, Rule, Tree};

/// Is the leaf size below which a node is not cut further (HiCuts's `binth`): three blocks.
const BINTH: usize = 24;
/// Bounds the rule copies a cut may make: the children together may hold at most `SPFAC` times
/// the node's rules, plus one slot per child (HiCuts's space factor).
const SPFAC: usize = 8;
/// Caps the bits a field is cut into at one node (up to 2^MAX_BITS children).
const MAX_BITS: u32 = 12;
/// Stops pathological lists from recursing forever; their leaf is scanned linearly.
const MAX_DEPTH: u32 = 16;
/// Makes an address "wide" when its prefix is shorter than this: wide and narrow addresses go
/// to separate trees, so a tree cutting on an address never copies a wide rule into its leaves.
const WIDE_LEN: u8 = 8;
/// Bounds the rule copies of a single tree, relative to the rule count, before the build falls
/// back to one tree per address-width group.
const REPLICATION: usize = 4;

/// Is the log2 of each field's size: 32-bit addresses, 16-bit ports, 8-bit protocol.
const FIELD_BITS: [u8; DIMS] = [32, 32, 16, 16, 8];

/// A rule as a box: per field, the lowest and highest value matched.
type Bounds = [(u32, u32); DIMS];

/// A node's region: per field, an aligned power-of-two block given by its low end and log2 size.
type Region = [(u32, u8); DIMS];

pub(super) fn build(rules: &[Rule]) -> Classifier {
    assert!(rules.len() < NO_LANE as usize, "too many rules");
    // Rules with an empty range can never match: they are left out (their box stays a
    // placeholder so that indices keep their meaning). A rule matching every key hides all
    // later ones, so the list ends there.
    let boxes: Vec<Option<Bounds>> = rules.iter().map(Rule::bounds).collect();
    let everything: Region = std::array::from_fn(|d| (0, FIELD_BITS[d]));
    let mut live = Vec::new();
    for (i, b) in boxes.iter().enumerate() {
        if let Some(b) = b {
            live.push(i as u32);
            if covers(b, &everything) {
                break;
            }
        }
    }
    let boxes: Vec<Bounds> = boxes.into_iter().map(|b| b.unwrap_or([(0, 0); DIMS])).collect();
    if live.is_empty() {
        return Classifier { trees: Vec::new(), rules: rules.len(), envelope: None, few: None, serial: 0 };
    }
    // The smallest box holding every live rule: a key outside it matches nothing.
    let mut hull = boxes[live[0] as usize];
    for &i in &live[1..] {
        for (h, b) in hull.iter_mut().zip(&boxes[i as usize]) {
            *h = (h.0.min(b.0), h.1.max(b.1));
        }
    }
    let envelope = Some(hull.map(|(lo, hi)| (lo, hi - lo)));
    let few = (live.len() <= FEW)
        .then(|| live.iter().map(|&i| (i, boxes[i as usize].map(|(lo, hi)| (lo, hi - lo)))).collect());
    // One tree is fastest to walk; if wide rules would be copied into too many leaves, split
    // the rules by address width instead (EffiCuts) and walk one tree per group.
    let limit = REPLICATION * live.len() + (1 << 12);
    let mut trees = match Builder::new(&boxes, limit).tree(&live) {
        Some(t) => vec![t],
        None => {
            let mut groups: [Vec<u32>; 4] = Default::default();
            for &i in &live {
                let r = &rules[i as usize];
                let g = usize::from(r.src.len < WIDE_LEN) * 2 + usize::from(r.dst.len < WIDE_LEN);
                groups[g].push(i);
            }
            groups
                .iter()
                .filter(|g| !g.is_empty())
                .map(|g| Builder::new(&boxes, usize::MAX).tree(g).expect("no limit"))
                .collect()
        }
    };
    trees.sort_by_key(|t| t.min_id);
    Classifier { trees, rules: rules.len(), envelope, few, serial: 0 }
}

struct Builder<'a> {
    boxes: &'a [Bounds],
    /// Caps the rules stored in leaves; past it the build gives up.
    limit: usize,
    tree: Tree,
    /// Leaves by content: a leaf is correct for any region whose first matches it holds, so
    /// identical lists share one leaf.
    leaf_ids: HashMap<Vec<u32>, Entry>,
    /// Scratch per-child counters, reused across nodes.
    counts: Vec<i64>,
}

impl<'a> Builder<'a> {
    fn new(boxes: &'a [Bounds], limit: usize) -> Self {
        Builder {
            boxes,
            limit,
            tree: Tree {
                children: Vec::new(),
                blocks: Vec::new(),
                leaf_rules: 0,
                root: Entry(0),
                min_id: 0,
                depth: 0,
                nodes: 0,
                leaves: 0,
            },
            leaf_ids: HashMap::new(),
            counts: Vec::new(),
        }
    }

    /// Builds the tree of `ids`, or `None` if its leaves would hold more than `limit` rules.
    fn tree(mut self, ids: &[u32]) -> Option<Tree> {
        let region: Region = std::array::from_fn(|d| (0, FIELD_BITS[d]));
        self.tree.min_id = ids[0];
        self.tree.root = self.node(ids.to_vec(), &region, 0);
        self.tree.children.shrink_to_fit();
        self.tree.blocks.shrink_to_fit();
        (self.tree.leaf_rules <= self.limit).then_some(self.tree)
    }

    /// Builds the subtree for `ids` (rule indices in priority order, all intersecting `region`)
    /// and returns its reference.
    fn node(&mut self, mut ids: Vec<u32>, region: &Region, depth: u32) -> Entry {
        // Only keys inside every rule's bounds can match here, so the node may cut the smallest
        // aligned block that holds them all (region compaction): thousands of host rules under
        // one /16 are then cut on their own bits instead of staying in one leaf. A key outside
        // that block reaches some leaf whose exact checks all fail, as they must.
        let region = &self.compact(&ids, region);
        // A rule covering the whole region matches every packet that gets here: later rules
        // can never be first.
        if let Some(i) = ids.iter().position(|&id| covers(&self.boxes[id as usize], region)) {
            ids.truncate(i + 1);
        }
        if ids.len() <= BINTH || depth >= MAX_DEPTH || self.tree.leaf_rules > self.limit {
            return self.leaf(ids);
        }
        let Some((d, bits)) = self.choose(&ids, region) else {
            return self.leaf(ids);
        };
        let n_children = 1usize << bits;
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); n_children];
        for &id in &ids {
            let (lo, hi) = span(&self.boxes[id as usize], region, d, bits);
            for list in &mut lists[lo as usize..=hi as usize] {
                list.push(id);
            }
        }
        drop(ids);
        let base = self.tree.children.len();
        let shift = u32::from(region[d].1) - bits;
        let at = Entry::node(base as u32, d, shift, bits);
        self.tree.nodes += 1;
        self.tree.children.resize(base + n_children, Entry(0));
        self.tree.depth = self.tree.depth.max(depth + 1);
        for (c, list) in lists.into_iter().enumerate() {
            let mut child = *region;
            child[d] = (region[d].0 + sub_offset(c as u32, shift), shift as u8);
            let r = if list.is_empty() { self.leaf(list) } else { self.node(list, &child, depth + 1) };
            // Lookups see addresses with bit 31 flipped (see `Fields`): a cut reaching that bit
            // finds child `c` at `c` with its top bit flipped.
            let flip = if FIELD_BITS[d] == 32 && shift + bits == 32 { 1 << (bits - 1) } else { 0 };
            self.tree.children[base + (c ^ flip)] = r;
        }
        at
    }

    /// Returns, per field, the smallest aligned power-of-two block of `region` that holds the
    /// part of every rule of `ids` inside `region`.
    fn compact(&self, ids: &[u32], region: &Region) -> Region {
        let mut r = *region;
        for (d, field) in r.iter_mut().enumerate() {
            let (lo0, hi0) = (region[d].0, region_hi(region, d));
            let (mut lo, mut hi) = (u32::MAX, 0u32);
            for &id in ids {
                let (a, b) = self.boxes[id as usize][d];
                lo = lo.min(a.max(lo0));
                hi = hi.max(b.min(hi0));
            }
            if lo > hi {
                continue;
            }
            let bits = (32 - (lo ^ hi).leading_zeros()).min(u32::from(region[d].1));
            let base = if bits >= 32 { 0 } else { lo & !((1u32 << bits) - 1) };
            *field = (base, bits as u8);
        }
        r
    }

    /// Picks the cut: per field, the most bits within the space budget (or the fewest that
    /// bring every child down to `binth`); then the field whose cut leaves the fewest rules in
    /// the fullest child (ties: fewer copies). `None` if no cut separates any rule from another.
    fn choose(&mut self, ids: &[u32], region: &Region) -> Option<(usize, u32)> {
        let n = ids.len();
        let budget = SPFAC * n;
        let mut best: Option<(usize, usize, usize, u32)> = None;
        for d in 0..DIMS {
            let max_b = u32::from(region[d].1).min(MAX_BITS);
            let mut field = None;
            for b in 1..=max_b {
                let (max_child, total) = self.measure(ids, region, d, b);
                if total + (1 << b) > budget + n {
                    break;
                }
                field = Some((max_child, total, d, b));
                if max_child <= BINTH {
                    break;
                }
            }
            if let Some(f) = field
                && best.is_none_or(|x| (f.0, f.1) < (x.0, x.1))
            {
                best = Some(f);
            }
        }
        let (max_child, _, d, b) = best?;
        (max_child < n).then_some((d, b))
    }

    /// Returns (rules in the fullest child, rule copies over all children) for a cut of field
    /// `d` into `2^bits` slices: a difference array counts every child in O(1) per rule.
    fn measure(&mut self, ids: &[u32], region: &Region, d: usize, bits: u32) -> (usize, usize) {
        let w = 1usize << bits;
        self.counts.clear();
        self.counts.resize(w + 1, 0);
        let mut total = 0;
        for &id in ids {
            let (lo, hi) = span(&self.boxes[id as usize], region, d, bits);
            total += (hi - lo + 1) as usize;
            self.counts[lo as usize] += 1;
            self.counts[hi as usize + 1] -= 1;
        }
        let mut run = 0i64;
        let max_child = self.counts[..w]
            .iter()
            .map(|&c| {
                run += c;
                run
            })
            .max()
            .unwrap_or(0) as usize;
        (max_child, total)
    }

    fn leaf(&mut self, ids: Vec<u32>) -> Entry {
        if let Some(&r) = self.leaf_ids.get(&ids) {
            return r;
        }
        let start = self.tree.blocks.len() as u32;
        // Every leaf has a block, even an empty one, so a lookup can check a first block
        // without testing the length.
        if ids.is_empty() {
            self.tree.blocks.push(Block::EMPTY);
        }
        for chunk in ids.chunks(LANES) {
            let mut b = Block::EMPTY;
            for (j, &id) in chunk.iter().enumerate() {
                b.set(j, &self.boxes[id as usize], id);
            }
            self.tree.blocks.push(b);
        }
        self.tree.leaf_rules += ids.len();
        let r = Entry::leaf(start, ids.len().div_ceil(LANES).max(1) as u32);
        self.tree.leaves += 1;
        self.leaf_ids.insert(ids, r);
        r
    }
}

/// Returns the offset of sub-block `i` of size `2^shift` (0 for a shift of 32, where `i` is 0).
fn sub_offset(i: u32, shift: u32) -> u32 {
    if shift >= 32 { 0 } else { i << shift }
}

/// Returns the last value of a region's field.
fn region_hi(region: &Region, d: usize) -> u32 {
    let (lo, bits) = region[d];
    (u64::from(lo) + (1u64 << bits) - 1) as u32
}

/// Tells whether the box covers the whole region.
fn covers(bx: &Bounds, region: &Region) -> bool {
    (0..DIMS).all(|d| bx[d].0 <= region[d].0 && bx[d].1 >= region_hi(region, d))
}

/// Returns the first and last child, of `2^bits` equal slices of the region's field `d`, that
/// the box overlaps (the box is known to intersect the region).
#[inline]
fn span(bx: &Bounds, region: &Region, d: usize, bits: u32) -> (u32, u32) {
    let (lo, rbits) = region[d];
    let hi = region_hi(region, d);
    let shift = u32::from(rbits) - bits;
    let a = (bx[d].0.max(lo) - lo) >> shift;
    let b = (bx[d].1.min(hi) - lo) >> shift;
    (a, b)
}

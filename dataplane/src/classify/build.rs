//! Compilation of a rule list into decision trees: grouping by address width (EffiCuts), then
//! recursive equal-size cuts on one or two fields (HiCuts/HyperCuts) under a space budget.

use std::collections::HashMap;

use super::{Block, Classifier, DIMS, Entry, LANES, NO_LANE, Rule, Tree};

/// Is the leaf size below which a node is not cut further (HiCuts's `binth`).
const BINTH: usize = 8;
/// Bounds the rule copies a cut may make: the children together may hold at most `SPFAC` times
/// the node's rules, plus one slot per child (HiCuts's space factor).
const SPFAC: usize = 8;
/// Caps the bits one field is cut into at one node (up to 2^MAX_BITS children).
const MAX_BITS: u32 = 10;
/// Caps the children of a two-field cut.
const MAX_BITS_TOTAL: u32 = 12;
/// Stops pathological lists from recursing forever; their leaf is scanned linearly.
const MAX_DEPTH: u32 = 16;
/// Makes an address "wide" when its prefix is shorter than this: wide and narrow addresses go
/// to separate trees, so a tree cutting on an address never copies a wide rule into its leaves.
const WIDE_LEN: u8 = 8;

/// Is the log2 of each field's size: 32-bit addresses, 16-bit ports, 8-bit protocol.
const FIELD_BITS: [u8; DIMS] = [32, 32, 16, 16, 8];

/// A rule as a box: per field, the lowest and highest value matched.
type Bounds = [(u32, u32); DIMS];

/// A node's region: per field, an aligned power-of-two block given by its low end and log2 size.
type Region = [(u32, u8); DIMS];

pub(super) fn build(rules: &[Rule]) -> Classifier {
    assert!(rules.len() < NO_LANE as usize, "too many rules");
    // Rules with an empty range can never match: they are left out (their box stays a
    // placeholder so that indices keep their meaning).
    let boxes: Vec<Option<Bounds>> = rules.iter().map(Rule::bounds).collect();
    let mut groups: [Vec<u32>; 4] = Default::default();
    for (i, (r, b)) in rules.iter().zip(&boxes).enumerate() {
        if b.is_some() {
            let g = usize::from(r.src.len < WIDE_LEN) * 2 + usize::from(r.dst.len < WIDE_LEN);
            groups[g].push(i as u32);
        }
    }
    let boxes: Vec<Bounds> = boxes.into_iter().map(|b| b.unwrap_or([(0, 0); DIMS])).collect();
    let mut trees: Vec<Tree> = groups.iter().filter(|g| !g.is_empty()).map(|g| Builder::new(&boxes).tree(g)).collect();
    trees.sort_by_key(|t| t.min_id);
    Classifier { trees, rules: rules.len() }
}

/// A chosen cut: up to two (field, bits) pairs; `bits` 0 means unused.
#[derive(Clone, Copy, Debug)]
struct Cut {
    dims: [(usize, u32); 2],
}

struct Builder<'a> {
    boxes: &'a [Bounds],
    tree: Tree,
    /// Leaves by content: a leaf is correct for any region whose first matches it holds, so
    /// identical lists share one leaf.
    leaf_ids: HashMap<Vec<u32>, Entry>,
    /// Scratch per-child counters, reused across nodes.
    counts: Vec<i64>,
}

impl<'a> Builder<'a> {
    fn new(boxes: &'a [Bounds]) -> Self {
        Builder {
            boxes,
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

    fn tree(mut self, ids: &[u32]) -> Tree {
        let region: Region = std::array::from_fn(|d| (0, FIELD_BITS[d]));
        self.tree.min_id = ids[0];
        self.tree.root = self.node(ids.to_vec(), &region, 0);
        self.tree.children.shrink_to_fit();
        self.tree.blocks.shrink_to_fit();
        self.tree
    }

    /// Builds the subtree for `ids` (rule indices in priority order, all intersecting `region`)
    /// and returns its reference.
    fn node(&mut self, mut ids: Vec<u32>, region: &Region, depth: u32) -> Entry {
        // A rule covering the whole region matches every packet that gets here: later rules
        // can never be first.
        if let Some(i) = ids.iter().position(|&id| covers(&self.boxes[id as usize], region)) {
            ids.truncate(i + 1);
        }
        if ids.len() <= BINTH || depth >= MAX_DEPTH {
            return self.leaf(ids);
        }
        let Some(cut) = self.choose(&ids, region) else {
            return self.leaf(ids);
        };
        let [(d0, b0), (d1, b1)] = cut.dims;
        let n_children = 1usize << (b0 + b1);
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); n_children];
        for &id in &ids {
            let bx = &self.boxes[id as usize];
            let (lo0, hi0) = span(bx, region, d0, b0);
            let (lo1, hi1) = span(bx, region, d1, b1);
            for a in lo0..=hi0 {
                for b in lo1..=hi1 {
                    lists[((a << b1) | b) as usize].push(id);
                }
            }
        }
        drop(ids);
        let base = self.tree.children.len();
        let (s0, s1) = (u32::from(region[d0].1) - b0, u32::from(region[d1].1) - b1);
        let at =
            Entry::node(base as u32, [(d0, if b0 == 0 { 0 } else { s0 }, b0), (d1, if b1 == 0 { 0 } else { s1 }, b1)]);
        self.tree.nodes += 1;
        self.tree.children.resize(base + n_children, Entry(0));
        self.tree.depth = self.tree.depth.max(depth + 1);
        for (c, list) in lists.into_iter().enumerate() {
            let (a, b) = ((c >> b1) as u32, (c & ((1 << b1) - 1)) as u32);
            let mut child = *region;
            child[d0] = (region[d0].0 + sub_offset(a, s0), region[d0].1 - b0 as u8);
            if b1 > 0 {
                child[d1] = (region[d1].0 + sub_offset(b, s1), region[d1].1 - b1 as u8);
            }
            let r = if list.is_empty() { self.leaf(list) } else { self.node(list, &child, depth + 1) };
            self.tree.children[base + c] = r;
        }
        at
    }

    /// Picks the cut that leaves the fewest rules in the fullest child within the space budget;
    /// `None` if no cut separates any rule from any other.
    fn choose(&mut self, ids: &[u32], region: &Region) -> Option<Cut> {
        let n = ids.len();
        let budget = SPFAC * n;
        // Per field, the best single cut: (max child, total copies, bits).
        let mut per_dim: [Option<(usize, usize, u32)>; DIMS] = [None; DIMS];
        for (d, best) in per_dim.iter_mut().enumerate() {
            let max_b = u32::from(region[d].1).min(MAX_BITS);
            for b in 1..=max_b {
                let (max_child, total) = self.measure(ids, region, [(d, b), (d, 0)]);
                if total + (1 << b) > budget + n {
                    break;
                }
                *best = Some((max_child, total, b));
                if max_child <= BINTH {
                    break;
                }
            }
        }
        let mut ranked: Vec<(usize, usize, usize, u32)> =
            per_dim.iter().enumerate().filter_map(|(d, s)| s.map(|(m, t, b)| (m, t, d, b))).collect();
        ranked.sort_unstable();
        let &(m0, t0, d0, b0) = ranked.first()?;
        if m0 >= n {
            return None;
        }
        let mut cut = Cut { dims: [(d0, b0), (d0, 0)] };
        // HyperCuts: if the best single cut still leaves a big child, try adding the second
        // best field, splitting the bit budget between the two.
        if m0 > BINTH {
            if let Some(&(_, _, d1, b1max)) = ranked.get(1) {
                let mut best = (m0, t0);
                for b1 in 1..=b1max.min(4) {
                    let b = b0.min(MAX_BITS_TOTAL - b1);
                    let (m, t) = self.measure(ids, region, [(d0, b), (d1, b1)]);
                    if t + (1 << (b + b1)) <= budget + n && (m, t) < best {
                        best = (m, t);
                        cut = Cut { dims: [(d0, b), (d1, b1)] };
                    }
                }
            }
        }
        Some(cut)
    }

    /// Returns (rules in the fullest child, rule copies over all children) for a cut.
    fn measure(&mut self, ids: &[u32], region: &Region, dims: [(usize, u32); 2]) -> (usize, usize) {
        let [(d0, b0), (d1, b1)] = dims;
        let (w0, w1) = (1usize << b0, 1usize << b1);
        self.counts.clear();
        self.counts.resize(w0 * w1 + 1, 0);
        let mut total = 0;
        for &id in ids {
            let bx = &self.boxes[id as usize];
            let (lo0, hi0) = span(bx, region, d0, b0);
            let (lo1, hi1) = span(bx, region, d1, b1);
            total += (hi0 - lo0 + 1) as usize * (hi1 - lo1 + 1) as usize;
            if b1 == 0 {
                // One field: a difference array counts every child in O(1) per rule.
                self.counts[lo0 as usize] += 1;
                self.counts[hi0 as usize + 1] -= 1;
            } else {
                for a in lo0..=hi0 {
                    for b in lo1..=hi1 {
                        self.counts[((a << b1) | b) as usize] += 1;
                    }
                }
            }
        }
        let max_child = if b1 == 0 {
            let mut run = 0i64;
            self.counts[..w0]
                .iter()
                .map(|&c| {
                    run += c;
                    run
                })
                .max()
                .unwrap_or(0) as usize
        } else {
            self.counts[..w0 * w1].iter().copied().max().unwrap_or(0) as usize
        };
        (max_child, total)
    }

    fn leaf(&mut self, ids: Vec<u32>) -> Entry {
        if let Some(&r) = self.leaf_ids.get(&ids) {
            return r;
        }
        let start = self.tree.blocks.len() as u32;
        for chunk in ids.chunks(LANES) {
            let mut b = Block::EMPTY;
            for (j, &id) in chunk.iter().enumerate() {
                b.set(j, &self.boxes[id as usize], id);
            }
            self.tree.blocks.push(b);
        }
        self.tree.leaf_rules += ids.len();
        let r = Entry::leaf(start, ids.len().div_ceil(LANES) as u32);
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
/// the box overlaps (the box is known to intersect the region). `bits` 0 gives (0, 0).
#[inline]
fn span(bx: &Bounds, region: &Region, d: usize, bits: u32) -> (u32, u32) {
    if bits == 0 {
        return (0, 0);
    }
    let (lo, rbits) = region[d];
    let hi = region_hi(region, d);
    let shift = u32::from(rbits) - bits;
    let a = (bx[d].0.max(lo) - lo) >> shift;
    let b = (bx[d].1.min(hi) - lo) >> shift;
    (a, b)
}

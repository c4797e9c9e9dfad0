//! The scoring loops: walk every tree for one row, or for a block of rows.
//!
//! A tree is walked for exactly `depth` steps (leaves loop to themselves or
//! sit at the bottom of a complete tree), so several walks can run in
//! lockstep — eight trees for one row, [`ROW_BLOCK`] rows for one tree in a
//! batch — and the CPU overlaps their independent loads.
//!
//! A block of rows is stored feature-major (`x[feature * ROW_BLOCK + row]`),
//! so one base pointer serves every row, and plain splits store their
//! feature index already multiplied by `ROW_BLOCK`. Buffers have
//! power-of-two lengths so indices are masked rather than bounds-checked.
//!
//! In a batch, a tree with few enough leaves is not walked at all but
//! scored from its bitvector form ([`crate::forest::Bitvec`]): one pass over
//! its real splits, each comparing 16 contiguous values, which the optimiser
//! vectorises.

use crate::forest::{
    Bitvec, FEATURE_MASK, Float, Forest, Layout, NAN_LEFT, ROW_BLOCK, SPECIAL, Split, TreeMeta,
    Word,
};

/// Walks run in lockstep: trees for one row, rows for one tree in a batch.
const LANES: usize = 8;
const _: () = assert!(
    ROW_BLOCK.is_multiple_of(LANES),
    "a row block is whole lanes"
);

impl<F: Float> Forest<F> {
    /// Whether split `s` sends row `r` of `x` right.
    #[inline(always)]
    fn goes_right<const SPECIALS: bool, const BLOCK: bool>(
        &self,
        s: Split<F>,
        x: &[F],
        r: usize,
    ) -> bool {
        if SPECIALS && s.feat & SPECIAL != 0 {
            return self.special_goes_right::<BLOCK>(s, x, r);
        }
        // Plain splits store the feature index times `ROW_BLOCK`.
        let i = if BLOCK {
            s.feat as usize + r
        } else {
            s.feat as usize / ROW_BLOCK
        };
        F::goes_right(masked(x, i), s.threshold)
    }

    #[cold]
    #[inline(never)]
    fn special_goes_right<const BLOCK: bool>(&self, s: Split<F>, x: &[F], r: usize) -> bool {
        // Special splits read the first copy of the row, where NaN is NaN.
        let feature = (s.feat & FEATURE_MASK) as usize;
        let i = if BLOCK {
            feature * ROW_BLOCK + r
        } else {
            feature
        };
        let v = x.get(i).copied().unwrap_or(F::NAN);
        self.specials
            .get(s.threshold.to_index())
            .is_some_and(|sp| sp.goes_right(v.to_f64(), s.feat & NAN_LEFT != 0))
    }

    /// One step down a complete tree whose nodes start at `base`.
    #[inline(always)]
    fn perfect_step<const SPECIALS: bool, const BLOCK: bool>(
        &self,
        base: usize,
        j: u32,
        x: &[F],
        r: usize,
    ) -> u32 {
        let s = self
            .perfect
            .get(base + j as usize)
            .copied()
            .unwrap_or_else(Split::always_left);
        2 * j + 1 + u32::from(self.goes_right::<SPECIALS, BLOCK>(s, x, r))
    }

    /// One step down a linked tree.
    #[inline(always)]
    fn linked_step<const SPECIALS: bool, const BLOCK: bool>(
        &self,
        i: u32,
        x: &[F],
        r: usize,
    ) -> u32 {
        match self.linked.get(i as usize) {
            Some(n) => n.left + u32::from(self.goes_right::<SPECIALS, BLOCK>(n.split, x, r)),
            None => i,
        }
    }

    /// Where a walk of tree `t` starts.
    #[inline(always)]
    fn start(t: &TreeMeta) -> u32 {
        match t.layout {
            Layout::Perfect { .. } => 0,
            Layout::Linked { root } => root,
        }
    }

    #[inline(always)]
    fn step<const SPECIALS: bool, const BLOCK: bool>(
        &self,
        t: &TreeMeta,
        at: u32,
        x: &[F],
        r: usize,
    ) -> u32 {
        match t.layout {
            Layout::Perfect { nodes, .. } => {
                self.perfect_step::<SPECIALS, BLOCK>(nodes as usize, at, x, r)
            }
            Layout::Linked { .. } => self.linked_step::<SPECIALS, BLOCK>(at, x, r),
        }
    }

    /// The value of the leaf a walk of tree `t` ended at.
    #[inline(always)]
    fn leaf(&self, t: &TreeMeta, at: u32) -> F {
        let v = match t.layout {
            Layout::Perfect { leaves, .. } => {
                let first_leaf = (1u32 << t.depth) - 1;
                self.leaves
                    .get(leaves as usize + at.wrapping_sub(first_leaf) as usize)
            }
            Layout::Linked { .. } => self.linked_values.get(at as usize),
        };
        v.copied().unwrap_or_default()
    }

    /// Add every tree's output for one row into `acc` (`num_outputs` values,
    /// already holding the base margin). `x` holds `2 * num_features` values
    /// made by [`crate::forest::prepare_row`], padded to `1 << x_log2`.
    pub(crate) fn accumulate_row(&self, x: &[F], x_log2: u32, acc: &mut [F]) {
        let (Some(x), Some(p)) = (pow2(x, x_log2), pow2(&self.perfect, self.perfect_log2)) else {
            return;
        };
        if self.specials.is_empty() {
            self.accumulate_row_impl::<false>(p, x, acc);
        } else {
            self.accumulate_row_impl::<true>(p, x, acc);
        }
    }

    fn accumulate_row_impl<const SPECIALS: bool>(&self, p: &[Split<F>], x: &[F], acc: &mut [F]) {
        let mut groups = self.trees.chunks_exact(LANES);
        for group in &mut groups {
            let mut at = [0u32; LANES];
            match perfect_starts(group) {
                Some(starts) => {
                    for _ in 0..group[0].depth {
                        for (a, start) in at.iter_mut().zip(starts) {
                            let s = masked(p, start + *a as usize);
                            *a =
                                2 * *a + 1 + u32::from(self.goes_right::<SPECIALS, false>(s, x, 0));
                        }
                    }
                }
                None => self.walk_mixed::<SPECIALS>(group, x, &mut at),
            }
            // Added in tree order, as the libraries do.
            for (a, t) in at.iter().zip(group) {
                if let Some(o) = acc.get_mut(t.output as usize) {
                    *o += self.leaf(t, *a);
                }
            }
        }
        let rest = groups.remainder();
        let mut at = [0u32; LANES];
        self.walk_trees::<SPECIALS>(rest, x, &mut at);
        for (a, t) in at.iter().zip(rest) {
            if let Some(o) = acc.get_mut(t.output as usize) {
                *o += self.leaf(t, *a);
            }
        }
    }

    /// Walk one row down `LANES` trees of any layout and depth in lockstep.
    fn walk_mixed<const SPECIALS: bool>(&self, group: &[TreeMeta], x: &[F], at: &mut [u32; LANES]) {
        let mut depth = 0;
        for (a, t) in at.iter_mut().zip(group) {
            *a = Self::start(t);
            depth = depth.max(t.depth);
        }
        for level in 0..depth {
            for (a, t) in at.iter_mut().zip(group) {
                if level < t.depth {
                    *a = self.step::<SPECIALS, false>(t, *a, x, 0);
                }
            }
        }
    }

    /// Walk one row down each of `trees` (any layout), one after another.
    fn walk_trees<const SPECIALS: bool>(&self, trees: &[TreeMeta], x: &[F], at: &mut [u32; LANES]) {
        for (a, t) in at.iter_mut().zip(trees) {
            *a = Self::start(t);
            for _ in 0..t.depth {
                *a = self.step::<SPECIALS, false>(t, *a, x, 0);
            }
        }
    }

    /// Add every tree's output for `ROW_BLOCK` rows into `acc` (`num_outputs`
    /// per row, already holding the base margin). `x` holds the prepared
    /// rows feature-major (value `f` of row `r` at `f * ROW_BLOCK + r`),
    /// padded to `1 << x_log2`.
    pub(crate) fn accumulate_block(&self, x: &[F], x_log2: u32, acc: &mut [F]) {
        let (Some(x), Some(p)) = (pow2(x, x_log2), pow2(&self.perfect, self.perfect_log2)) else {
            return;
        };
        if self.specials.is_empty() {
            self.accumulate_block_impl::<false>(p, x, acc);
        } else {
            self.accumulate_block_impl::<true>(p, x, acc);
        }
    }

    fn accumulate_block_impl<const SPECIALS: bool>(&self, p: &[Split<F>], x: &[F], acc: &mut [F]) {
        for t in &self.trees {
            self.tree_block::<SPECIALS>(t, p, x, acc);
        }
    }

    /// Add tree `t`'s output for the `ROW_BLOCK` rows of `x` into `acc` (see
    /// [`Forest::accumulate_block`]; `p` is `self.perfect` cut by [`pow2`]).
    #[inline]
    pub(crate) fn tree_block<const SPECIALS: bool>(
        &self,
        t: &TreeMeta,
        p: &[Split<F>],
        x: &[F],
        acc: &mut [F],
    ) {
        let k = self.num_outputs;
        let out = t.output as usize;
        if let Some(b) = t.bitvec {
            self.bitvec_block(b, out, x, acc);
            return;
        }
        let mut at = [Self::start(t); ROW_BLOCK];
        match t.layout {
            Layout::Perfect { nodes, leaves } => {
                let start = nodes as usize;
                let mut vals = [F::default(); ROW_BLOCK];
                let first_leaf = (1u32 << t.depth) - 1;
                let tree_leaves = self.leaves.get(leaves as usize..).unwrap_or_default();
                // Eight rows at a time keep every cursor in a register.
                for (half, v) in vals.chunks_exact_mut(LANES).enumerate() {
                    let mut cur = [0u32; LANES];
                    for _ in 0..t.depth {
                        for (l, a) in cur.iter_mut().enumerate() {
                            let s = masked(p, start + *a as usize);
                            let right = self.goes_right::<SPECIALS, true>(s, x, half * LANES + l);
                            *a = 2 * *a + 1 + u32::from(right);
                        }
                    }
                    for (v, a) in v.iter_mut().zip(cur) {
                        let leaf = a.wrapping_sub(first_leaf);
                        *v = tree_leaves.get(leaf as usize).copied().unwrap_or_default();
                    }
                }
                for (r, v) in vals.into_iter().enumerate() {
                    if let Some(o) = acc.get_mut(r * k + out) {
                        *o += v;
                    }
                }
            }
            Layout::Linked { .. } => {
                for _ in 0..t.depth {
                    for (r, a) in at.iter_mut().enumerate() {
                        *a = self.linked_step::<SPECIALS, true>(*a, x, r);
                    }
                }
                for (r, a) in at.iter().enumerate() {
                    if let Some(o) = acc.get_mut(r * k + out) {
                        *o += self.leaf(t, *a);
                    }
                }
            }
        }
    }

    /// Add the output of a tree in bitvector form for the `ROW_BLOCK` rows
    /// of `x` into output `out` of `acc`: every row starts with all leaves
    /// alive, each split that sends it right kills its left subtree's
    /// leaves, and the leftmost leaf alive is the one a walk would reach.
    #[inline]
    fn bitvec_block(&self, b: Bitvec, out: usize, x: &[F], acc: &mut [F]) {
        let k = self.num_outputs;
        let first = b.nodes as usize;
        let nodes = self
            .bitvec_nodes
            .get(first..first + b.len as usize)
            .unwrap_or_default();
        let mut alive = [F::Word::ONES; ROW_BLOCK];
        for n in nodes {
            // The split's value for every row of the block, side by side.
            let f = n.split.feat as usize;
            let Some(xs) = x.get(f..).and_then(|x| x.first_chunk::<ROW_BLOCK>()) else {
                continue;
            };
            let (t, kill) = (n.split.threshold, n.kill);
            for (a, v) in alive.iter_mut().zip(xs) {
                // Branch-free, so the optimiser can vectorise it.
                *a = *a & !(kill & F::Word::all_if(F::goes_right(*v, t)));
            }
        }
        let leaves = self
            .bitvec_leaves
            .get(b.leaves as usize..)
            .unwrap_or_default();
        let mut vals = [F::default(); ROW_BLOCK];
        for (v, a) in vals.iter_mut().zip(alive) {
            *v = leaves
                .get(a.trailing_zeros() as usize)
                .copied()
                .unwrap_or_default();
        }
        if k == 1
            && let Some(acc) = acc.first_chunk_mut::<ROW_BLOCK>()
        {
            for (o, v) in acc.iter_mut().zip(vals) {
                *o += v;
            }
            return;
        }
        for (r, v) in vals.into_iter().enumerate() {
            if let Some(o) = acc.get_mut(r * k + out) {
                *o += v;
            }
        }
    }
}

/// `s` cut to `1 << log2` values, so the optimiser knows its length is a
/// power of two and [`masked`] needs no bounds check.
#[inline(always)]
pub(crate) fn pow2<T>(s: &[T], log2: u32) -> Option<&[T]> {
    s.get(..1usize.checked_shl(log2)?)
}

/// `s[i]` for an `i` the builder has shown to be in range; masking with a
/// power-of-two length keeps it in range whatever `i` is, and lets the
/// optimiser drop the bounds check (`s` is never empty: see [`pow2`]).
#[inline(always)]
fn masked<T: Copy>(s: &[T], i: usize) -> T {
    s[i & s.len().wrapping_sub(1)]
}

/// Where the nodes of `LANES` complete trees of equal depth start, if
/// `group` is that.
#[inline(always)]
fn perfect_starts(group: &[TreeMeta]) -> Option<[usize; LANES]> {
    let depth = group.first()?.depth;
    let mut starts = [0usize; LANES];
    for (s, t) in starts.iter_mut().zip(group) {
        match t.layout {
            Layout::Perfect { nodes, .. } if t.depth == depth => *s = nodes as usize,
            _ => return None,
        }
    }
    Some(starts)
}

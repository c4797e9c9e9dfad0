//! The compiled tree layout shared by both libraries, and the scoring loops.
//!
//! All trees live in one `Vec<Node>`. The two children of a split sit next to
//! each other, so a node stores only its left child and the step to the next
//! node is `left + go_right`. A leaf is a node that loops to itself (its
//! threshold is NaN, which no comparison passes, and NaN goes left), so a
//! tree can be walked for a fixed number of steps — its depth — without
//! testing for leaves. That lets the scorer walk several trees (one row) or
//! several rows (a batch) in lockstep, which keeps the CPU busy with
//! independent loads instead of waiting on one chain of them.
//!
//! Missing values cost nothing in the hot loop: the scorer reads each row as
//! two copies side by side, `[x_0..x_n, x'_0..x'_n]`, where the second copy
//! has NaN replaced by +inf. A split whose missing values go left reads the
//! first copy (NaN fails every comparison, so it goes left); one whose
//! missing values go right reads the second (+inf goes right). The node's
//! feature index already points at the right copy, so a step is a load, a
//! compare and an add.
//!
//! Every index is validated when the forest is built, so the hot loops index
//! with `get` only as a belt and braces that the optimiser turns into a
//! predictable compare.

use crate::ModelError;

/// Feature index bits of [`Node::feat`] for special splits.
const FEATURE_MASK: u32 = (1 << 30) - 1;
/// Missing values (NaN) go left (special splits only; plain splits encode it
/// in which copy of the row they read).
const NAN_LEFT: u32 = 1 << 30;
/// The split needs the slow path ([`Special`]); the threshold field holds the
/// index of its entry in [`Forest::specials`] as raw bits.
const SPECIAL: u32 = 1 << 31;

/// Largest feature count accepted: beyond this a file is not a real model.
pub(crate) const MAX_FEATURES: usize = 1 << 24;
/// Deepest tree accepted (xgboost defaults to 6, LightGBM trees rarely pass 40).
pub(crate) const MAX_DEPTH: usize = 128;
/// Largest total node count accepted (~100 MB of nodes).
pub(crate) const MAX_NODES: usize = 1 << 26;

/// The numeric type a library scores in, which also fixes its split rule.
pub(crate) trait Float:
    Copy + Default + PartialOrd + std::ops::AddAssign + std::fmt::Debug + Send + Sync + 'static
{
    const NAN: Self;
    const INFINITY: Self;
    /// Whether +inf standing in for a missing value goes right at `threshold`.
    fn infinity_goes_right(threshold: Self) -> bool {
        Self::goes_right(Self::INFINITY, threshold)
    }
    /// Whether a present value goes right: XGBoost sends `x < t` left (so
    /// `x >= t` right), LightGBM sends `x <= t` left. False for NaN.
    fn goes_right(x: Self, threshold: Self) -> bool;
    fn is_nan(self) -> bool;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn from_index(i: u32) -> Self;
    fn to_index(self) -> usize;
}

impl Float for f32 {
    const NAN: Self = f32::NAN;
    const INFINITY: Self = f32::INFINITY;
    #[inline(always)]
    fn goes_right(x: f32, threshold: f32) -> bool {
        x >= threshold
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        self.is_nan()
    }
    #[inline(always)]
    fn from_f64(x: f64) -> f32 {
        x as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_index(i: u32) -> f32 {
        f32::from_bits(i)
    }
    fn to_index(self) -> usize {
        self.to_bits() as usize
    }
}

impl Float for f64 {
    const NAN: Self = f64::NAN;
    const INFINITY: Self = f64::INFINITY;
    #[inline(always)]
    fn goes_right(x: f64, threshold: f64) -> bool {
        x > threshold
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        self.is_nan()
    }
    #[inline(always)]
    fn from_f64(x: f64) -> f64 {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn from_index(i: u32) -> f64 {
        f64::from_bits(u64::from(i))
    }
    fn to_index(self) -> usize {
        // Only ever holds a u32 written by `from_index`.
        usize::try_from(self.to_bits()).unwrap_or(usize::MAX)
    }
}

/// A split decided off the fast path.
#[derive(Debug, Clone)]
pub(crate) enum Special {
    /// XGBoost categorical split: the listed categories go right; negative,
    /// too large (≥ 2^24) or unlisted values go left; NaN follows the default.
    XgbCategories { bits: Vec<u64> },
    /// LightGBM categorical split: categories in the bitset go left; NaN,
    /// negative and unlisted values go right.
    LgbCategories { bits: Vec<u32> },
    /// LightGBM numeric split whose missing type is "zero": NaN is read as 0
    /// and anything within ±1e-35 follows the default direction.
    LgbZeroMissing { threshold: f64, default_left: bool },
    /// LightGBM numeric split at +inf whose missing values go right (the
    /// +inf stand-in for NaN would go left there).
    LgbNanRight { threshold: f64 },
}

impl Special {
    fn goes_right(&self, x: f64, nan_left: bool) -> bool {
        match self {
            Special::XgbCategories { bits } => {
                if x.is_nan() {
                    return !nan_left;
                }
                if !(0.0..16_777_216.0).contains(&x) {
                    return false;
                }
                let c = x as usize;
                bits.get(c / 64).is_some_and(|w| (w >> (c % 64)) & 1 == 1)
            }
            Special::LgbCategories { bits } => {
                if x.is_nan() {
                    return true;
                }
                let c = x as i32;
                if c < 0 {
                    return true;
                }
                let c = c as usize;
                bits.get(c / 32).is_none_or(|w| (w >> (c % 32)) & 1 == 0)
            }
            Special::LgbZeroMissing {
                threshold,
                default_left,
            } => {
                let x = if x.is_nan() { 0.0 } else { x };
                let zero = f64::from(1e-35_f32);
                if (-zero..=zero).contains(&x) {
                    !default_left
                } else {
                    // NaN was replaced by 0 above, so `>` is the negation of `<=`.
                    x > *threshold
                }
            }
            Special::LgbNanRight { threshold } => x.is_nan() || x > *threshold,
        }
    }
}

/// A tree node before compilation, as a loader reads it from the file.
#[derive(Debug, Clone)]
pub(crate) enum RawNode<F> {
    Leaf(F),
    Split {
        feature: usize,
        threshold: F,
        nan_left: bool,
        special: Option<Special>,
        left: usize,
        right: usize,
    },
}

#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Node<F> {
    threshold: F,
    feat: u32,
    left: u32,
}

#[derive(Debug, Clone, Copy)]
struct TreeMeta {
    root: u32,
    depth: u32,
    output: u32,
}

/// A compiled ensemble: sums tree outputs per output slot, in tree order.
#[derive(Debug, Clone)]
pub(crate) struct Forest<F> {
    nodes: Vec<Node<F>>,
    /// Leaf values, parallel to `nodes` (meaningless for splits).
    values: Vec<F>,
    trees: Vec<TreeMeta>,
    specials: Vec<Special>,
    num_features: usize,
    num_outputs: usize,
}

/// Builds a [`Forest`] one tree at a time, validating as it goes.
#[derive(Debug)]
pub(crate) struct ForestBuilder<F> {
    forest: Forest<F>,
}

impl<F: Float> ForestBuilder<F> {
    pub(crate) fn new(num_features: usize, num_outputs: usize) -> Result<Self, ModelError> {
        if num_features > MAX_FEATURES {
            return Err(ModelError::Invalid(format!(
                "{num_features} features is more than the {MAX_FEATURES} supported"
            )));
        }
        if num_outputs == 0 || num_outputs > 1 << 16 {
            return Err(ModelError::Invalid(format!(
                "{num_outputs} outputs per row is not supported"
            )));
        }
        Ok(ForestBuilder {
            forest: Forest {
                nodes: Vec::new(),
                values: Vec::new(),
                trees: Vec::new(),
                specials: Vec::new(),
                num_features,
                num_outputs,
            },
        })
    }

    /// Compile one tree whose root is `raw[0]`, adding to output slot `output`.
    ///
    /// Walks the tree breadth first with an explicit queue (no recursion), so
    /// depth, cycles and shared nodes are caught without risking the stack.
    pub(crate) fn add_tree(
        &mut self,
        tree: usize,
        raw: &[RawNode<F>],
        output: usize,
    ) -> Result<(), ModelError> {
        let f = &mut self.forest;
        let err = |msg: String| ModelError::Invalid(format!("tree {tree}: {msg}"));
        if raw.is_empty() {
            return Err(err("has no nodes".into()));
        }
        if output >= f.num_outputs {
            return Err(err(format!(
                "output {output} out of range ({} outputs)",
                f.num_outputs
            )));
        }
        if f.nodes.len() + raw.len() > MAX_NODES {
            return Err(err(format!("model has more than {MAX_NODES} nodes")));
        }
        let base = f.nodes.len();
        let mut seen = vec![false; raw.len()];
        // (raw index, flat slot, depth); the slot is reserved by the parent.
        let mut queue = std::collections::VecDeque::new();
        f.nodes.push(leaf_node(0));
        f.values.push(F::default());
        queue.push_back((0usize, base, 0usize));
        seen[0] = true;
        let mut depth = 0;
        while let Some((idx, slot, d)) = queue.pop_front() {
            depth = depth.max(d);
            let slot32 = u32::try_from(slot).map_err(|_| err("too many nodes".into()))?;
            match &raw[idx] {
                RawNode::Leaf(value) => {
                    f.nodes[slot] = leaf_node(slot32);
                    f.values[slot] = *value;
                }
                RawNode::Split {
                    feature,
                    threshold,
                    nan_left,
                    special,
                    left,
                    right,
                } => {
                    if d >= MAX_DEPTH {
                        return Err(err(format!("deeper than {MAX_DEPTH} levels")));
                    }
                    if *feature >= f.num_features {
                        return Err(err(format!(
                            "node {idx}: feature index {feature} out of range (model has {} features)",
                            f.num_features
                        )));
                    }
                    if special.is_none() && threshold.is_nan() {
                        return Err(err(format!("node {idx}: threshold is not a number")));
                    }
                    for (side, child) in [("left", *left), ("right", *right)] {
                        if child >= raw.len() {
                            return Err(err(format!(
                                "node {idx}: {side} child {child} out of range (tree has {} nodes)",
                                raw.len()
                            )));
                        }
                        if seen[child] {
                            return Err(err(format!(
                                "node {idx}: {side} child {child} is reached twice (cycle or shared node)"
                            )));
                        }
                        seen[child] = true;
                    }
                    let first = f.nodes.len();
                    let first32 = u32::try_from(first).map_err(|_| err("too many nodes".into()))?;
                    f.nodes.push(leaf_node(first32));
                    f.nodes.push(leaf_node(first32 + 1));
                    f.values.push(F::default());
                    f.values.push(F::default());
                    queue.push_back((*left, first, d + 1));
                    queue.push_back((*right, first + 1, d + 1));
                    let special = match special {
                        Some(s) => Some(s.clone()),
                        None if !*nan_left && !F::infinity_goes_right(*threshold) => {
                            Some(Special::LgbNanRight {
                                threshold: threshold.to_f64(),
                            })
                        }
                        None => None,
                    };
                    let (feat, threshold) = match special {
                        Some(s) => {
                            let i = u32::try_from(f.specials.len())
                                .map_err(|_| err("too many special splits".into()))?;
                            f.specials.push(s);
                            let flags = SPECIAL | if *nan_left { NAN_LEFT } else { 0 };
                            (*feature as u32 | flags, F::from_index(i))
                        }
                        // Missing values going right read the NaN-as-+inf copy.
                        None if *nan_left => (*feature as u32, *threshold),
                        None => ((*feature + f.num_features) as u32, *threshold),
                    };
                    f.nodes[slot] = Node {
                        threshold,
                        feat,
                        left: first32,
                    };
                }
            }
        }
        f.trees.push(TreeMeta {
            root: base as u32,
            depth: depth as u32,
            output: output as u32,
        });
        Ok(())
    }

    pub(crate) fn finish(self) -> Forest<F> {
        self.forest
    }
}

fn leaf_node<F: Float>(slot: u32) -> Node<F> {
    Node {
        threshold: F::NAN,
        feat: 0,
        left: slot,
    }
}

/// Lay out one row as the scorer reads it: the values converted to `F`, then
/// the same with NaN replaced by +inf. `dst` holds `2 * src.len()` values.
#[inline]
pub(crate) fn prepare_row<F: Float>(src: &[f64], dst: &mut [F]) {
    let (raw, filled) = dst.split_at_mut(src.len().min(dst.len()));
    for ((r, f), s) in raw.iter_mut().zip(filled.iter_mut()).zip(src) {
        let x = F::from_f64(*s);
        *r = x;
        *f = if s.is_nan() { F::INFINITY } else { x };
    }
}

/// Trees walked together when scoring one row.
const TREE_GROUP: usize = 8;
/// Rows walked together through each tree when scoring a batch.
pub(crate) const ROW_BLOCK: usize = 16;

impl<F: Float> Forest<F> {
    pub(crate) fn num_trees(&self) -> usize {
        self.trees.len()
    }

    pub(crate) fn num_features(&self) -> usize {
        self.num_features
    }

    #[inline(always)]
    fn step<const SPECIALS: bool>(&self, i: u32, row: &[F]) -> u32 {
        let Some(n) = self.nodes.get(i as usize) else {
            return i;
        };
        if SPECIALS && n.feat & SPECIAL != 0 {
            return n.left + u32::from(self.special_goes_right(n, row));
        }
        let x = row.get(n.feat as usize).copied().unwrap_or(F::NAN);
        n.left + u32::from(F::goes_right(x, n.threshold))
    }

    #[cold]
    #[inline(never)]
    fn special_goes_right(&self, n: &Node<F>, row: &[F]) -> bool {
        // Special splits read the first copy, where NaN is still NaN.
        let x = row
            .get((n.feat & FEATURE_MASK) as usize)
            .copied()
            .unwrap_or(F::NAN);
        let nan_left = n.feat & NAN_LEFT != 0;
        self.specials
            .get(n.threshold.to_index())
            .is_some_and(|s| s.goes_right(x.to_f64(), nan_left))
    }

    #[inline(always)]
    fn value(&self, i: u32) -> F {
        self.values.get(i as usize).copied().unwrap_or_default()
    }

    /// Add every tree's output for one row (`2 * num_features` values made by
    /// [`prepare_row`]) into `acc` (`num_outputs` values, already holding the
    /// base margin).
    pub(crate) fn accumulate_row(&self, row: &[F], acc: &mut [F]) {
        if self.specials.is_empty() {
            self.accumulate_row_impl::<false>(row, acc);
        } else {
            self.accumulate_row_impl::<true>(row, acc);
        }
    }

    fn accumulate_row_impl<const SPECIALS: bool>(&self, row: &[F], acc: &mut [F]) {
        let mut groups = self.trees.chunks_exact(TREE_GROUP);
        for group in &mut groups {
            let mut idx = [0u32; TREE_GROUP];
            let mut depth = 0;
            for (k, t) in group.iter().enumerate() {
                idx[k] = t.root;
                depth = depth.max(t.depth);
            }
            for _ in 0..depth {
                for i in idx.iter_mut() {
                    *i = self.step::<SPECIALS>(*i, row);
                }
            }
            for (t, i) in group.iter().zip(idx) {
                if let Some(a) = acc.get_mut(t.output as usize) {
                    *a += self.value(i);
                }
            }
        }
        for t in groups.remainder() {
            let mut i = t.root;
            for _ in 0..t.depth {
                i = self.step::<SPECIALS>(i, row);
            }
            if let Some(a) = acc.get_mut(t.output as usize) {
                *a += self.value(i);
            }
        }
    }

    /// Add every tree's output for `ROW_BLOCK` rows (each made by
    /// [`prepare_row`], back to back) into `acc` (`num_outputs` per row,
    /// already holding the base margin).
    pub(crate) fn accumulate_block(&self, rows: &[F], acc: &mut [F]) {
        if self.specials.is_empty() {
            self.accumulate_block_impl::<false>(rows, acc);
        } else {
            self.accumulate_block_impl::<true>(rows, acc);
        }
    }

    fn accumulate_block_impl<const SPECIALS: bool>(&self, rows: &[F], acc: &mut [F]) {
        let nf = 2 * self.num_features;
        let k = self.num_outputs;
        let empty: &[F] = &[];
        let mut row_slices = [empty; ROW_BLOCK];
        for (r, slot) in row_slices.iter_mut().enumerate() {
            *slot = rows.get(r * nf..(r + 1) * nf).unwrap_or(empty);
        }
        for t in &self.trees {
            let mut idx = [t.root; ROW_BLOCK];
            for _ in 0..t.depth {
                for (i, row) in idx.iter_mut().zip(row_slices) {
                    *i = self.step::<SPECIALS>(*i, row);
                }
            }
            let out = t.output as usize;
            for (r, i) in idx.into_iter().enumerate() {
                if let Some(a) = acc.get_mut(r * k + out) {
                    *a += self.value(i);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(feature: usize, threshold: f64, left: usize, right: usize) -> RawNode<f64> {
        RawNode::Split {
            feature,
            threshold,
            nan_left: true,
            special: None,
            left,
            right,
        }
    }

    #[test]
    fn stump_scores_both_sides() {
        let mut b = ForestBuilder::<f64>::new(1, 1).expect("builder");
        b.add_tree(
            0,
            &[split(0, 0.5, 1, 2), RawNode::Leaf(-1.0), RawNode::Leaf(2.0)],
            0,
        )
        .expect("valid tree");
        let f = b.finish();
        for (x, want) in [(0.5, -1.0), (0.6, 2.0), (f64::NAN, -1.0)] {
            let mut acc = [0.0];
            let mut row = [0.0; 2];
            prepare_row(&[x], &mut row);
            f.accumulate_row(&row, &mut acc);
            assert_eq!(acc[0], want, "x = {x}");
        }
    }

    #[test]
    fn structural_errors_are_named() {
        let mut b = ForestBuilder::<f64>::new(2, 1).expect("builder");
        let e = b
            .add_tree(3, &[split(0, 0.5, 1, 9), RawNode::Leaf(0.0)], 0)
            .expect_err("out of range");
        assert_eq!(
            e.to_string(),
            "invalid model: tree 3: node 0: right child 9 out of range (tree has 2 nodes)"
        );
        let e = b
            .add_tree(0, &[split(0, 0.5, 1, 0), RawNode::Leaf(0.0)], 0)
            .expect_err("cycle");
        assert!(e.to_string().contains("reached twice"), "{e}");
        let e = b
            .add_tree(
                0,
                &[split(5, 0.5, 1, 2), RawNode::Leaf(0.0), RawNode::Leaf(0.0)],
                0,
            )
            .expect_err("feature");
        assert!(e.to_string().contains("feature index 5"), "{e}");
        let e = b
            .add_tree(
                0,
                &[
                    split(0, f64::NAN, 1, 2),
                    RawNode::Leaf(0.0),
                    RawNode::Leaf(0.0),
                ],
                0,
            )
            .expect_err("nan");
        assert!(e.to_string().contains("not a number"), "{e}");
    }

    #[test]
    fn absurd_depth_is_rejected() {
        // A chain: node 2i splits into leaf 2i+1 and the next split 2i+2.
        let levels = MAX_DEPTH + 5;
        let mut raw: Vec<_> = (0..levels)
            .flat_map(|i| [split(0, 0.0, 2 * i + 1, 2 * i + 2), RawNode::Leaf(0.0)])
            .collect();
        raw.push(RawNode::Leaf(0.0));
        let mut b = ForestBuilder::<f64>::new(1, 1).expect("builder");
        let e = b.add_tree(0, &raw, 0).expect_err("too deep");
        assert!(e.to_string().contains("deeper than"), "{e}");
    }

    #[test]
    fn xgboost_categories_go_right() {
        let s = Special::XgbCategories { bits: vec![0b1010] };
        assert!(s.goes_right(1.0, true));
        assert!(s.goes_right(3.9, true));
        assert!(!s.goes_right(2.0, true));
        assert!(!s.goes_right(-0.5, true));
        assert!(!s.goes_right(1e9, true));
        assert!(!s.goes_right(f64::INFINITY, true));
        assert!(s.goes_right(f64::NAN, false));
        assert!(!s.goes_right(f64::NAN, true));
    }

    #[test]
    fn lightgbm_categories_go_left() {
        let s = Special::LgbCategories { bits: vec![0b1011] };
        assert!(!s.goes_right(0.0, false));
        assert!(!s.goes_right(-0.5, false));
        assert!(s.goes_right(2.0, false));
        assert!(s.goes_right(-1.0, false));
        assert!(s.goes_right(f64::NAN, false));
        assert!(s.goes_right(1e12, false));
    }
}

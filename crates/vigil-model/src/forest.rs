//! The compiled tree layout shared by both libraries (scoring is in `walk`).
//!
//! Most trees are stored *complete*: a tree of depth `d` becomes `2^d - 1`
//! split slots in level order (children of slot `j` at `2j+1` and `2j+2`, so
//! no child pointers) and `2^d` leaf values. A leaf above the last level
//! becomes a split that sends everything left (a NaN threshold fails every
//! comparison), with its value at the leftmost leaf below it. Deep or very
//! lopsided trees, which would not fit in cache that way, are *linked*: the
//! two children of a split sit next to each other, so a node stores only its
//! left child, and a leaf is an always-left node that loops to itself.
//! Either way a tree is walked for exactly `depth` steps without testing for
//! leaves, which lets the scorer run several walks in lockstep.
//!
//! Missing values cost nothing in the hot loop: the scorer reads each row as
//! two copies side by side, `[x_0..x_n, x'_0..x'_n]`, where the second copy
//! has NaN replaced by +inf. A split whose missing values go left reads the
//! first copy (NaN fails every comparison, so it goes left); one whose
//! missing values go right reads the second (+inf goes right). The split's
//! feature index already points at the right copy, so a step is two loads, a
//! compare and an add.
//!
//! Every tree is validated (children in range, no node reached twice,
//! features in range, thresholds not NaN, depth at most [`MAX_DEPTH`]) with
//! an explicit queue before anything is emitted.

use crate::ModelError;
pub(crate) use crate::special::Special;

/// Rows scored together in a batch (a multiple of the walk's lanes). Split
/// nodes store their feature index already multiplied by it, since a block
/// of rows is laid out feature-major.
pub(crate) const ROW_BLOCK: usize = 16;

/// Feature index bits of [`Split::feat`] for special splits.
pub(crate) const FEATURE_MASK: u32 = (1 << 30) - 1;
/// Missing values (NaN) go left (special splits only; plain splits encode it
/// in which copy of the row they read).
pub(crate) const NAN_LEFT: u32 = 1 << 30;
/// The split needs the slow path ([`Special`]); the threshold field holds the
/// index of its entry in [`Forest::specials`] as raw bits.
pub(crate) const SPECIAL: u32 = 1 << 31;

/// Largest feature count accepted: beyond this a file is not a real model.
pub(crate) const MAX_FEATURES: usize = 1 << 20;
/// Deepest tree accepted (xgboost defaults to 6, LightGBM trees rarely pass 40).
pub(crate) const MAX_DEPTH: usize = 128;
/// Largest total node count accepted (~100 MB of nodes).
pub(crate) const MAX_NODES: usize = 1 << 26;

/// The numeric type a library scores in, which also fixes its split rule.
pub(crate) trait Float:
    Copy + Default + PartialOrd + std::ops::AddAssign + std::fmt::Debug + Send + Sync + 'static
{
    /// A row's live leaves in a [`Bitvec`] tree: as wide as `Self`, so
    /// comparisons and masks line up and the optimiser can vectorise them.
    type Word: Word;
    /// Whether batches score small trees in [`Bitvec`] form. Not for f64:
    /// the optimiser turns its comparisons into branches there, which is
    /// slower than walking.
    const BITVEC: bool;
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
    type Word = u32;
    const BITVEC: bool = true;
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
    type Word = u64;
    const BITVEC: bool = false;
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

/// A set of leaves of a [`Bitvec`] tree, one bit each.
pub(crate) trait Word:
    Copy
    + std::ops::BitAnd<Output = Self>
    + std::ops::Not<Output = Self>
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    const ONES: Self;
    const BITS: u32;
    /// All ones if `right`, else zero.
    fn all_if(right: bool) -> Self;
    /// The `width` leaves from `start`.
    fn range(start: u32, width: u32) -> Self;
    fn trailing_zeros(self) -> u32;
}

impl Word for u32 {
    const ONES: Self = u32::MAX;
    const BITS: u32 = u32::BITS;
    #[inline(always)]
    fn all_if(right: bool) -> Self {
        u32::from(right).wrapping_neg()
    }
    fn range(start: u32, width: u32) -> Self {
        (u64::MAX.checked_shl(width).map_or(u64::MAX, |m| !m) << start) as u32
    }
    #[inline(always)]
    fn trailing_zeros(self) -> u32 {
        self.trailing_zeros()
    }
}

impl Word for u64 {
    const ONES: Self = u64::MAX;
    const BITS: u32 = u64::BITS;
    #[inline(always)]
    fn all_if(right: bool) -> Self {
        u64::from(right).wrapping_neg()
    }
    fn range(start: u32, width: u32) -> Self {
        (u128::MAX.checked_shl(width).map_or(u128::MAX, |m| !m) << start) as u64
    }
    #[inline(always)]
    fn trailing_zeros(self) -> u32 {
        self.trailing_zeros()
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

/// A split as the scorer reads it: `feat` indexes the prepared row (and so
/// already says where missing values go). With the [`SPECIAL`] flag, `feat`
/// holds the feature and [`NAN_LEFT`], and the threshold's raw bits index
/// [`Forest::specials`].
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct Split<F> {
    pub(crate) threshold: F,
    pub(crate) feat: u32,
}

impl<F: Float> Split<F> {
    /// Sends every value left: NaN thresholds fail every comparison. Pads
    /// perfect trees below early leaves and makes linked leaves loop.
    pub(crate) fn always_left() -> Self {
        Split {
            threshold: F::NAN,
            feat: 0,
        }
    }
}

/// A node of a linked (deep) tree; its right child is `left + 1`. A leaf is
/// an always-left split whose left child is itself.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct Linked<F> {
    pub(crate) split: Split<F>,
    pub(crate) left: u32,
}

/// Where a tree's nodes live.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Layout {
    /// A complete tree of `depth` levels in level order from `nodes` in
    /// [`Forest::perfect`] (children of `j` at `2j+1`, `2j+2`; `2^depth`
    /// slots, the last unused), and its `2^depth` leaf values from `leaves`
    /// in [`Forest::leaves`].
    Perfect { nodes: u32, leaves: u32 },
    /// Linked nodes from `root` in [`Forest::linked`].
    Linked { root: u32 },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct TreeMeta {
    pub(crate) layout: Layout,
    pub(crate) depth: u32,
    pub(crate) output: u32,
    /// The tree's bitvector form, if it has one (see [`Bitvec`]).
    pub(crate) bitvec: Option<Bitvec>,
}

/// A tree in QuickScorer's bitvector form, which a batch uses instead of
/// walking it: its leaves are numbered left to right, every row starts with
/// all of them alive, and every split that sends the row right kills the
/// leaves of its left subtree. The leftmost leaf left alive is the one a
/// walk would reach. A block of rows then costs one vectorisable pass over
/// the tree's real splits (no padding, no dependent loads), which beats
/// walking it when trees are small and sparse, as boosted trees are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bitvec {
    /// The tree's splits are `len` entries from `nodes` in
    /// [`Forest::bitvec_nodes`], its leaf values from `leaves` in
    /// [`Forest::bitvec_leaves`] in left-to-right order.
    pub(crate) nodes: u32,
    pub(crate) len: u32,
    pub(crate) leaves: u32,
}

/// A split of a [`Bitvec`] tree: `kill` holds the leaves of its left
/// subtree, killed when a row goes right.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BitvecNode<F: Float> {
    pub(crate) split: Split<F>,
    pub(crate) kill: F::Word,
}

/// Deepest tree stored complete. Deeper or sparse trees are linked.
const PERFECT_MAX_DEPTH: usize = 12;
/// A tree is stored complete only if that costs at most this many times its
/// own node count (a lopsided LightGBM tree would not fit in cache).
const PERFECT_MAX_BLOWUP: usize = 8;

/// A compiled ensemble: sums tree outputs per output slot, in tree order.
#[derive(Debug, Clone)]
pub(crate) struct Forest<F: Float> {
    pub(crate) perfect: Vec<Split<F>>,
    /// `perfect.len()` is `1 << perfect_log2` once built.
    pub(crate) perfect_log2: u32,
    pub(crate) leaves: Vec<F>,
    pub(crate) linked: Vec<Linked<F>>,
    /// Leaf values of linked trees, parallel to `linked`.
    pub(crate) linked_values: Vec<F>,
    pub(crate) trees: Vec<TreeMeta>,
    pub(crate) bitvec_nodes: Vec<BitvecNode<F>>,
    pub(crate) bitvec_leaves: Vec<F>,
    pub(crate) specials: Vec<Special>,
    pub(crate) num_features: usize,
    pub(crate) num_outputs: usize,
}

/// Builds a [`Forest`] one tree at a time, validating as it goes.
#[derive(Debug)]
pub(crate) struct ForestBuilder<F: Float> {
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
                perfect: Vec::new(),
                perfect_log2: 0,
                leaves: Vec::new(),
                linked: Vec::new(),
                linked_values: Vec::new(),
                trees: Vec::new(),
                bitvec_nodes: Vec::new(),
                bitvec_leaves: Vec::new(),
                specials: Vec::new(),
                num_features,
                num_outputs,
            },
        })
    }

    /// Compile one tree whose root is `raw[0]`, adding to output slot `output`.
    pub(crate) fn add_tree(
        &mut self,
        tree: usize,
        raw: &[RawNode<F>],
        output: usize,
    ) -> Result<(), ModelError> {
        let err = |msg: String| ModelError::Invalid(format!("tree {tree}: {msg}"));
        if output >= self.forest.num_outputs {
            return Err(err(format!(
                "output {output} out of range ({} outputs)",
                self.forest.num_outputs
            )));
        }
        let depth = validate(raw, self.forest.num_features).map_err(err)?;
        let f = &self.forest;
        let used = f.perfect.len() + f.leaves.len() + f.linked.len();
        let perfect =
            depth <= PERFECT_MAX_DEPTH && (1usize << depth) <= PERFECT_MAX_BLOWUP * raw.len();
        let size = if perfect {
            2usize << depth
        } else {
            2 * raw.len()
        };
        if used + size > MAX_NODES {
            return Err(err(format!("model has more than {MAX_NODES} nodes")));
        }
        let layout = if perfect {
            self.emit_perfect(raw, depth)
        } else {
            self.emit_linked(raw)
        }
        .map_err(err)?;
        let bitvec = self.emit_bitvec(raw);
        self.forest.trees.push(TreeMeta {
            layout,
            depth: depth as u32,
            output: output as u32,
            bitvec,
        });
        Ok(())
    }

    /// The scorer's form of a split, registering special splits.
    fn encode(
        &mut self,
        feature: usize,
        threshold: F,
        nan_left: bool,
        special: &Option<Special>,
    ) -> Result<Split<F>, String> {
        let special = match special {
            Some(s) => s.clone(),
            None => match self.plain(feature, threshold, nan_left) {
                Some(split) => return Ok(split),
                // +inf standing in for a missing value would go left.
                None => Special::LgbNanRight {
                    threshold: threshold.to_f64(),
                },
            },
        };
        let f = &mut self.forest;
        let i =
            u32::try_from(f.specials.len()).map_err(|_| "too many special splits".to_owned())?;
        f.specials.push(special);
        let flags = SPECIAL | if nan_left { NAN_LEFT } else { 0 };
        Ok(Split {
            threshold: F::from_index(i),
            feat: feature as u32 | flags,
        })
    }

    /// The scorer's form of a split that needs no special handling, if it
    /// is one. Missing values going right read the NaN-as-+inf copy; the
    /// index is premultiplied for the block layout (see `walk`).
    fn plain(&self, feature: usize, threshold: F, nan_left: bool) -> Option<Split<F>> {
        let copy = if nan_left {
            0
        } else if F::infinity_goes_right(threshold) {
            self.forest.num_features
        } else {
            return None;
        };
        Some(Split {
            threshold,
            feat: ((feature + copy) * ROW_BLOCK) as u32,
        })
    }

    /// The bitvector form of a tree (see [`Bitvec`]), if it has at most
    /// `F::Word::BITS` leaves and only plain splits. `validate` has shown
    /// `raw` is a tree.
    fn emit_bitvec(&mut self, raw: &[RawNode<F>]) -> Option<Bitvec> {
        if !F::BITVEC {
            return None;
        }
        // Breadth-first order; more than 2 * BITS - 1 nodes means too many
        // leaves.
        let mut order = vec![0usize];
        let mut i = 0;
        while let Some(&n) = order.get(i) {
            if let RawNode::Split { left, right, .. } = raw.get(n)? {
                order.extend([*left, *right]);
                if order.len() >= 2 * F::Word::BITS as usize {
                    return None;
                }
            }
            i += 1;
        }
        // Leaves under each node, then the number of the first of them.
        let mut count = vec![0u32; raw.len()];
        for &n in order.iter().rev() {
            count[n] = match raw.get(n)? {
                RawNode::Leaf(_) => 1,
                RawNode::Split { left, right, .. } => count.get(*left)? + count.get(*right)?,
            };
        }
        let mut first = vec![0u32; raw.len()];
        let mut nodes = Vec::new();
        let mut leaves = vec![F::default(); *count.first()? as usize];
        for &n in &order {
            match raw.get(n)? {
                RawNode::Leaf(value) => *leaves.get_mut(first[n] as usize)? = *value,
                RawNode::Split {
                    feature,
                    threshold,
                    nan_left,
                    special,
                    left,
                    right,
                } => {
                    if special.is_some() {
                        return None;
                    }
                    let split = self.plain(*feature, *threshold, *nan_left)?;
                    let (start, width) = (first[n], count[*left]);
                    *first.get_mut(*left)? = start;
                    *first.get_mut(*right)? = start + width;
                    nodes.push(BitvecNode {
                        split,
                        kill: F::Word::range(start, width),
                    });
                }
            }
        }
        let f = &mut self.forest;
        let bitvec = Bitvec {
            nodes: u32::try_from(f.bitvec_nodes.len()).ok()?,
            len: u32::try_from(nodes.len()).ok()?,
            leaves: u32::try_from(f.bitvec_leaves.len()).ok()?,
        };
        f.bitvec_nodes.extend(nodes);
        f.bitvec_leaves.extend(leaves);
        Some(bitvec)
    }

    fn emit_perfect(&mut self, raw: &[RawNode<F>], depth: usize) -> Result<Layout, String> {
        let nodes = self.forest.perfect.len();
        let leaves = self.forest.leaves.len();
        let internal = (1usize << depth) - 1;
        let layout = Layout::Perfect {
            nodes: u32::try_from(nodes).map_err(|_| "too many nodes".to_owned())?,
            leaves: u32::try_from(leaves).map_err(|_| "too many nodes".to_owned())?,
        };
        // One unused slot pads the tree to 2^depth nodes, so the scorer can
        // mask node indices instead of checking them.
        self.forest
            .perfect
            .resize(nodes + internal + 1, Split::always_left());
        self.forest
            .leaves
            .resize(leaves + internal + 1, F::default());
        // (raw index, position in level order, level); `validate` has shown
        // the tree is a tree, so every raw node is queued once.
        let mut queue = std::collections::VecDeque::from([(0usize, 0usize, 0usize)]);
        while let Some((idx, j, d)) = queue.pop_front() {
            match &raw[idx] {
                RawNode::Leaf(value) => {
                    // Below an early leaf everything goes left: its value
                    // sits at the leftmost leaf under it.
                    let mut pos = j;
                    for _ in d..depth {
                        pos = 2 * pos + 1;
                    }
                    self.forest.leaves[leaves + pos - internal] = *value;
                }
                RawNode::Split {
                    feature,
                    threshold,
                    nan_left,
                    special,
                    left,
                    right,
                } => {
                    let split = self.encode(*feature, *threshold, *nan_left, special)?;
                    self.forest.perfect[nodes + j] = split;
                    queue.push_back((*left, 2 * j + 1, d + 1));
                    queue.push_back((*right, 2 * j + 2, d + 1));
                }
            }
        }
        Ok(layout)
    }

    fn emit_linked(&mut self, raw: &[RawNode<F>]) -> Result<Layout, String> {
        let too_many = || "too many nodes".to_owned();
        let base = self.forest.linked.len();
        let root = u32::try_from(base).map_err(|_| too_many())?;
        let leaf = |slot: u32| Linked {
            split: Split::always_left(),
            left: slot,
        };
        self.forest.linked.push(leaf(root));
        self.forest.linked_values.push(F::default());
        // (raw index, slot reserved by the parent).
        let mut queue = std::collections::VecDeque::from([(0usize, base)]);
        while let Some((idx, slot)) = queue.pop_front() {
            let slot32 = u32::try_from(slot).map_err(|_| too_many())?;
            match &raw[idx] {
                RawNode::Leaf(value) => {
                    self.forest.linked[slot] = leaf(slot32);
                    self.forest.linked_values[slot] = *value;
                }
                RawNode::Split {
                    feature,
                    threshold,
                    nan_left,
                    special,
                    left,
                    right,
                } => {
                    let split = self.encode(*feature, *threshold, *nan_left, special)?;
                    let first = self.forest.linked.len();
                    let first32 = u32::try_from(first + 1).map_err(|_| too_many())? - 1;
                    self.forest.linked.push(leaf(first32));
                    self.forest.linked.push(leaf(first32 + 1));
                    self.forest.linked_values.push(F::default());
                    self.forest.linked_values.push(F::default());
                    queue.push_back((*left, first));
                    queue.push_back((*right, first + 1));
                    self.forest.linked[slot] = Linked {
                        split,
                        left: first32,
                    };
                }
            }
        }
        Ok(Layout::Linked { root })
    }

    pub(crate) fn finish(mut self) -> Forest<F> {
        // A power-of-two length lets the scorer mask node indices.
        let len = self.forest.perfect.len().max(1).next_power_of_two();
        self.forest.perfect.resize(len, Split::always_left());
        self.forest.perfect_log2 = len.trailing_zeros();
        self.forest
    }
}

/// Check that `raw` is a tree rooted at node 0 with valid children, features
/// and thresholds, and return its depth. Breadth first with an explicit
/// queue (no recursion), so cycles, shared nodes and absurd depth are caught
/// without risking the stack.
fn validate<F: Float>(raw: &[RawNode<F>], num_features: usize) -> Result<usize, String> {
    if raw.is_empty() {
        return Err("has no nodes".into());
    }
    let mut seen = vec![false; raw.len()];
    seen[0] = true;
    let mut queue = std::collections::VecDeque::from([(0usize, 0usize)]);
    let mut depth = 0;
    while let Some((idx, d)) = queue.pop_front() {
        depth = depth.max(d);
        let RawNode::Split {
            feature,
            threshold,
            special,
            left,
            right,
            ..
        } = &raw[idx]
        else {
            continue;
        };
        if d >= MAX_DEPTH {
            return Err(format!("deeper than {MAX_DEPTH} levels"));
        }
        if *feature >= num_features {
            return Err(format!(
                "node {idx}: feature index {feature} out of range (model has {num_features} features)"
            ));
        }
        if special.is_none() && threshold.is_nan() {
            return Err(format!("node {idx}: threshold is not a number"));
        }
        for (side, child) in [("left", *left), ("right", *right)] {
            if child >= raw.len() {
                return Err(format!(
                    "node {idx}: {side} child {child} out of range (tree has {} nodes)",
                    raw.len()
                ));
            }
            if seen[child] {
                return Err(format!(
                    "node {idx}: {side} child {child} is reached twice (cycle or shared node)"
                ));
            }
            seen[child] = true;
            queue.push_back((child, d + 1));
        }
    }
    Ok(depth)
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

impl<F: Float> Forest<F> {
    pub(crate) fn num_trees(&self) -> usize {
        self.trees.len()
    }

    pub(crate) fn num_features(&self) -> usize {
        self.num_features
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
            f.accumulate_row(&row, 1, &mut acc);
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

    /// A chain of `depth` splits: node 2i sends `x <= i` to leaf 2i+1 (value
    /// i) and the rest on; the last node is a leaf of value -1.
    fn chain(depth: usize) -> Vec<RawNode<f64>> {
        let mut raw: Vec<_> = (0..depth)
            .flat_map(|i| {
                [
                    split(0, i as f64, 2 * i + 1, 2 * i + 2),
                    RawNode::Leaf(i as f64),
                ]
            })
            .collect();
        raw.push(RawNode::Leaf(-1.0));
        raw
    }

    #[test]
    fn complete_and_linked_layouts_score_alike() {
        // Depth 3 is stored complete, depth 20 linked; both are lopsided.
        for depth in [3, 20] {
            let mut b = ForestBuilder::<f64>::new(1, 1).expect("builder");
            b.add_tree(0, &chain(depth), 0).expect("valid tree");
            let f = b.finish();
            let perfect = matches!(f.trees[0].layout, Layout::Perfect { .. });
            assert_eq!(perfect, depth <= PERFECT_MAX_DEPTH, "depth {depth}");
            for (x, want) in [
                (-1.0, 0.0),
                (0.0, 0.0),
                (1.5, 2.0),
                (2.0, 2.0),
                (99.0, -1.0),
                (f64::NAN, 0.0),
            ] {
                let want = if x > (depth - 1) as f64 { -1.0 } else { want };
                let mut row = [0.0; 2];
                prepare_row(&[x], &mut row);
                let mut acc = [0.0];
                f.accumulate_row(&row, 1, &mut acc);
                assert_eq!(acc[0], want, "depth {depth}, x = {x}");
            }
        }
    }

    #[test]
    fn leaf_ranges() {
        assert_eq!(<u32 as Word>::range(0, 32), u32::MAX);
        assert_eq!(<u32 as Word>::range(3, 2), 0b11000);
        assert_eq!(<u64 as Word>::range(0, 64), u64::MAX);
        assert_eq!(<u64 as Word>::range(63, 1), 1 << 63);
    }

    #[test]
    fn bitvec_trees_score_like_walks() {
        // A chain of depth 20 has 21 leaves (bitvector form in f32), one of
        // depth 40 has 41 (walked). Both must score a block like single rows.
        for (depth, bitvec) in [(20, true), (40, false)] {
            let raw: Vec<RawNode<f32>> = chain(depth)
                .into_iter()
                .map(|n| match n {
                    RawNode::Leaf(v) => RawNode::Leaf(v as f32),
                    RawNode::Split {
                        feature,
                        threshold,
                        left,
                        right,
                        ..
                    } => RawNode::Split {
                        feature,
                        threshold: threshold as f32,
                        nan_left: left % 4 == 1,
                        special: None,
                        left,
                        right,
                    },
                })
                .collect();
            let mut b = ForestBuilder::<f32>::new(1, 1).expect("builder");
            b.add_tree(0, &raw, 0).expect("valid tree");
            let f = b.finish();
            assert_eq!(f.trees[0].bitvec.is_some(), bitvec, "depth {depth}");
            let xs: Vec<f64> = (0..ROW_BLOCK)
                .map(|r| match r {
                    0 => f64::NAN,
                    1 => f64::INFINITY,
                    2 => f64::NEG_INFINITY,
                    _ => r as f64 * 2.7 - 3.0,
                })
                .collect();
            let mut block = vec![f32::NAN; 2 * ROW_BLOCK];
            for (r, x) in xs.iter().enumerate() {
                let mut row = [0.0f32; 2];
                prepare_row(&[*x], &mut row);
                block[r] = row[0];
                block[ROW_BLOCK + r] = row[1];
            }
            let mut acc = vec![0.0f32; ROW_BLOCK];
            f.accumulate_block(&block, 5, &mut acc);
            for (x, got) in xs.iter().zip(&acc) {
                let mut row = [0.0f32; 2];
                prepare_row(&[*x], &mut row);
                let mut want = [0.0f32];
                f.accumulate_row(&row, 1, &mut want);
                assert_eq!(got.to_bits(), want[0].to_bits(), "depth {depth}, x = {x}");
            }
        }
    }
}

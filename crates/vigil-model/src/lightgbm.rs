//! LightGBM text models (`Booster.save_model`), scored as LightGBM does:
//! features as f64, `x <= t` goes left, missing values per the node's
//! missing type, tree outputs summed in f64, then the objective's transform.

use crate::forest::{Forest, ForestBuilder, MAX_FEATURES, RawNode, Special};
use crate::{ModelError, OutputKind};

/// How raw scores become the model's output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Link {
    Identity,
    /// `1 / (1 + exp(-scale * x))` per output (binary, cross-entropy, one-vs-all).
    Sigmoid {
        scale: f64,
    },
    Exp,
    /// `regression` trained with `reg_sqrt`: `sign(x) * x²`.
    SignedSquare,
    Softmax,
}

/// A loaded LightGBM model.
#[derive(Debug, Clone)]
pub(crate) struct LgbModel {
    pub(crate) forest: Forest<f64>,
    pub(crate) link: Link,
    /// `average_output` models (random forest mode) divide by the iterations.
    pub(crate) divisor: Option<f64>,
    pub(crate) objective: String,
    pub(crate) feature_names: Vec<String>,
    /// Whether the file carried the names (else they are `Column_0..`).
    pub(crate) named: bool,
    pub(crate) output: OutputKind,
}

fn invalid(msg: impl Into<String>) -> ModelError {
    ModelError::Invalid(msg.into())
}

/// Largest leaf count per tree accepted (LightGBM caps num_leaves at 131072).
const MAX_LEAVES: usize = 1 << 17;

pub(crate) fn load(bytes: &[u8]) -> Result<LgbModel, ModelError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| invalid(format!("lightgbm model is not utf-8 text: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r')).peekable();
    match lines.next() {
        Some("tree") => {}
        _ => return Err(invalid("lightgbm model must start with a \"tree\" line")),
    }
    let mut header = rustc_hash::FxHashMap::default();
    let mut average_output = false;
    while let Some(line) = lines.peek() {
        if line.starts_with("Tree=") || *line == "end of trees" {
            break;
        }
        if *line == "average_output" {
            average_output = true;
        } else if let Some((k, v)) = line.split_once('=') {
            header.insert(k, v);
        }
        lines.next();
    }
    let num_class: usize = header_int(&header, "num_class", Some(1))?;
    let per_iteration: usize = header_int(&header, "num_tree_per_iteration", Some(num_class))?;
    let max_feature_idx: usize = header_int(&header, "max_feature_idx", None)?;
    if max_feature_idx >= MAX_FEATURES {
        return Err(invalid(format!(
            "max_feature_idx {max_feature_idx} is out of range"
        )));
    }
    let num_features = max_feature_idx + 1;
    let objective_line = header
        .get("objective")
        .ok_or_else(|| invalid("lightgbm model has no objective line"))?;
    let (objective, link, output) = parse_objective(objective_line, num_class)?;
    let num_outputs = match output {
        OutputKind::ClassProbabilities { classes } => classes,
        _ => 1,
    };
    if per_iteration != num_outputs {
        return Err(invalid(format!(
            "num_tree_per_iteration is {per_iteration} but objective {objective} has {num_outputs} outputs"
        )));
    }
    let named = header.contains_key("feature_names");
    let feature_names = match header.get("feature_names") {
        Some(v) => {
            let names: Vec<String> = v
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if names.len() != num_features {
                return Err(invalid(format!(
                    "{} feature names for {num_features} features (max_feature_idx={max_feature_idx})",
                    names.len()
                )));
            }
            names
        }
        None => (0..num_features).map(|i| format!("Column_{i}")).collect(),
    };

    let mut builder = ForestBuilder::new(num_features, num_outputs)?;
    let mut num_trees = 0usize;
    let mut ended = false;
    while let Some(line) = lines.next() {
        if line == "end of trees" {
            ended = true;
            break;
        }
        let Some(id) = line.strip_prefix("Tree=") else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(invalid(format!(
                "unexpected line {:?} between trees",
                truncate(line)
            )));
        };
        if id.trim().parse::<usize>().ok() != Some(num_trees) {
            return Err(invalid(format!(
                "expected Tree={num_trees}, found Tree={}",
                truncate(id)
            )));
        }
        let mut fields = rustc_hash::FxHashMap::default();
        while let Some(l) = lines.peek() {
            if l.starts_with("Tree=") || *l == "end of trees" {
                break;
            }
            if let Some((k, v)) = l.split_once('=') {
                fields.insert(k, v);
            }
            lines.next();
        }
        let raw = parse_tree(num_trees, &fields)?;
        builder.add_tree(num_trees, &raw, num_trees % num_outputs)?;
        num_trees += 1;
    }
    if !ended {
        return Err(invalid(
            "lightgbm model is truncated: no \"end of trees\" line",
        ));
    }
    if !num_trees.is_multiple_of(num_outputs) {
        return Err(invalid(format!(
            "{num_trees} trees is not a whole number of iterations of {num_outputs} trees"
        )));
    }
    let divisor = (average_output && num_trees > 0).then(|| (num_trees / num_outputs) as f64);
    Ok(LgbModel {
        forest: builder.finish(),
        link,
        divisor,
        objective,
        feature_names,
        named,
        output,
    })
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn header_int(
    header: &rustc_hash::FxHashMap<&str, &str>,
    key: &str,
    default: Option<usize>,
) -> Result<usize, ModelError> {
    match (header.get(key), default) {
        (Some(v), _) => v.trim().parse().map_err(|_| {
            invalid(format!(
                "{key}: expected a non-negative integer, found {:?}",
                truncate(v)
            ))
        }),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(invalid(format!("lightgbm model has no {key} line"))),
    }
}

fn parse_objective(line: &str, num_class: usize) -> Result<(String, Link, OutputKind), ModelError> {
    let mut tokens = line.split_whitespace();
    let name = tokens.next().unwrap_or_default().to_owned();
    let mut sigmoid = 1.0f64;
    let mut sqrt = false;
    let mut classes = num_class;
    for t in tokens {
        if t == "sqrt" {
            sqrt = true;
        } else if let Some(v) = t.strip_prefix("sigmoid:") {
            sigmoid = v
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s > 0.0)
                .ok_or_else(|| invalid(format!("objective: bad sigmoid parameter {v:?}")))?;
        } else if let Some(v) = t.strip_prefix("num_class:") {
            classes = v
                .parse()
                .map_err(|_| invalid(format!("objective: bad num_class {v:?}")))?;
        }
    }
    let single = |link, kind| {
        if num_class == 1 {
            Ok((link, kind))
        } else {
            Err(invalid(format!(
                "objective {name} with num_class={num_class}"
            )))
        }
    };
    let (link, kind) = match name.as_str() {
        "binary" => single(Link::Sigmoid { scale: sigmoid }, OutputKind::Probability)?,
        "cross_entropy" | "xentropy" => {
            single(Link::Sigmoid { scale: 1.0 }, OutputKind::Probability)?
        }
        "regression" | "regression_l2" | "regression_l1" | "huber" | "fair" | "quantile"
        | "mape" => {
            let link = if sqrt {
                Link::SignedSquare
            } else {
                Link::Identity
            };
            single(link, OutputKind::Regression)?
        }
        "poisson" | "gamma" | "tweedie" => single(Link::Exp, OutputKind::Regression)?,
        "multiclass" | "multiclassova" => {
            if classes < 2 || classes != num_class || classes > 1 << 16 {
                return Err(invalid(format!(
                    "objective {name}: num_class {classes} does not match the model's {num_class}"
                )));
            }
            let link = if name == "multiclass" {
                Link::Softmax
            } else {
                Link::Sigmoid { scale: sigmoid }
            };
            (link, OutputKind::ClassProbabilities { classes })
        }
        "" => return Err(invalid("lightgbm model has an empty objective")),
        other => {
            return Err(invalid(format!(
                "unsupported objective \"{}\"",
                truncate(other)
            )));
        }
    };
    Ok((name, link, kind))
}

fn parse_list<T: std::str::FromStr>(
    t: usize,
    fields: &rustc_hash::FxHashMap<&str, &str>,
    key: &str,
    expected: usize,
) -> Result<Vec<T>, ModelError> {
    let Some(v) = fields.get(key) else {
        return Err(invalid(format!("tree {t}: missing {key}")));
    };
    let out = v
        .split(' ')
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, s)| {
            s.parse::<T>().map_err(|_| {
                invalid(format!(
                    "tree {t}: {key}[{i}]: cannot read {:?}",
                    truncate(s)
                ))
            })
        })
        .collect::<Result<Vec<T>, _>>()?;
    if out.len() != expected {
        return Err(invalid(format!(
            "tree {t}: {key} has {} entries, expected {expected}",
            out.len()
        )));
    }
    Ok(out)
}

fn parse_tree(
    t: usize,
    fields: &rustc_hash::FxHashMap<&str, &str>,
) -> Result<Vec<RawNode<f64>>, ModelError> {
    let num_leaves: usize = fields
        .get("num_leaves")
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| (1..=MAX_LEAVES).contains(n))
        .ok_or_else(|| invalid(format!("tree {t}: missing or bad num_leaves")))?;
    if fields.get("is_linear").is_some_and(|v| v.trim() != "0") {
        return Err(invalid(format!("tree {t}: linear trees are not supported")));
    }
    let leaf_value: Vec<f64> = parse_list(t, fields, "leaf_value", num_leaves)?;
    if let Some(i) = leaf_value.iter().position(|v| v.is_nan()) {
        return Err(invalid(format!(
            "tree {t}: leaf {i}: value is not a number"
        )));
    }
    let internal = num_leaves - 1;
    if internal == 0 {
        return Ok(vec![RawNode::Leaf(leaf_value[0])]);
    }
    let split_feature: Vec<i64> = parse_list(t, fields, "split_feature", internal)?;
    let threshold: Vec<f64> = parse_list(t, fields, "threshold", internal)?;
    let decision_type: Vec<i64> = parse_list(t, fields, "decision_type", internal)?;
    let left_child: Vec<i64> = parse_list(t, fields, "left_child", internal)?;
    let right_child: Vec<i64> = parse_list(t, fields, "right_child", internal)?;
    let num_cat: usize = match fields.get("num_cat") {
        Some(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|n| *n <= internal)
            .ok_or_else(|| invalid(format!("tree {t}: bad num_cat {:?}", truncate(v))))?,
        None => 0,
    };
    let (cat_boundaries, cat_threshold): (Vec<usize>, Vec<u32>) = if num_cat > 0 {
        let b: Vec<usize> = parse_list(t, fields, "cat_boundaries", num_cat + 1)?;
        let words = fields
            .get("cat_threshold")
            .map_or(0, |v| v.split(' ').filter(|s| !s.is_empty()).count());
        let th: Vec<u32> = parse_list(t, fields, "cat_threshold", words)?;
        (b, th)
    } else {
        (Vec::new(), Vec::new())
    };

    // Internal nodes keep their ids; leaf k becomes node `internal + k`.
    let child = |i: usize, c: i64, side: &str| -> Result<usize, ModelError> {
        if c >= 0 {
            usize::try_from(c).ok().filter(|c| *c < internal).ok_or_else(|| {
                invalid(format!(
                    "tree {t}: node {i}: {side} child {c} out of range (tree has {internal} internal nodes)"
                ))
            })
        } else {
            let leaf = usize::try_from(!c).unwrap_or(usize::MAX);
            if leaf < num_leaves {
                Ok(internal + leaf)
            } else {
                Err(invalid(format!(
                    "tree {t}: node {i}: {side} child leaf {leaf} out of range (tree has {num_leaves} leaves)"
                )))
            }
        }
    };
    let mut raw = Vec::with_capacity(internal + num_leaves);
    for i in 0..internal {
        let feature = usize::try_from(split_feature[i]).map_err(|_| {
            invalid(format!(
                "tree {t}: node {i}: negative feature index {}",
                split_feature[i]
            ))
        })?;
        let dt = decision_type[i];
        if !(0..16).contains(&dt) {
            return Err(invalid(format!(
                "tree {t}: node {i}: bad decision_type {dt}"
            )));
        }
        let categorical = dt & 1 != 0;
        let default_left = dt & 2 != 0;
        let missing_type = (dt >> 2) & 3;
        let thr = threshold[i];
        if thr.is_nan() {
            return Err(invalid(format!(
                "tree {t}: node {i}: threshold is not a number"
            )));
        }
        let (nan_left, special) = if categorical {
            let idx = Some(thr)
                .filter(|x| *x >= 0.0 && *x < num_cat as f64 && x.fract() == 0.0)
                .map(|x| x as usize)
                .ok_or_else(|| {
                    invalid(format!(
                        "tree {t}: node {i}: category set {thr} out of range ({num_cat} sets)"
                    ))
                })?;
            let (start, end) = (cat_boundaries[idx], cat_boundaries[idx + 1]);
            let bits = cat_threshold
                .get(start..end)
                .ok_or_else(|| {
                    invalid(format!(
                        "tree {t}: node {i}: cat_boundaries {start}..{end} outside cat_threshold ({} words)",
                        cat_threshold.len()
                    ))
                })?
                .to_vec();
            (false, Some(Special::LgbCategories { bits }))
        } else {
            match missing_type {
                // None: NaN is read as 0 and compared.
                0 => (0.0 <= thr, None),
                1 => (
                    default_left,
                    Some(Special::LgbZeroMissing {
                        threshold: thr,
                        default_left,
                    }),
                ),
                2 => (default_left, None),
                _ => {
                    return Err(invalid(format!(
                        "tree {t}: node {i}: unknown missing type 3"
                    )));
                }
            }
        };
        raw.push(RawNode::Split {
            feature,
            threshold: thr,
            nan_left,
            special,
            left: child(i, left_child[i], "left")?,
            right: child(i, right_child[i], "right")?,
        });
    }
    raw.extend(leaf_value.into_iter().map(RawNode::Leaf));
    Ok(raw)
}

impl LgbModel {
    /// Turn accumulated scores into outputs.
    pub(crate) fn finish(&self, scores: &mut [f64], out: &mut [f64]) {
        if let Some(d) = self.divisor {
            for s in scores.iter_mut() {
                *s /= d;
            }
        }
        match self.link {
            Link::Identity => {}
            Link::Sigmoid { scale } => {
                for s in scores.iter_mut() {
                    *s = 1.0 / (1.0 + (-scale * *s).exp());
                }
            }
            Link::Exp => {
                for s in scores.iter_mut() {
                    *s = s.exp();
                }
            }
            Link::SignedSquare => {
                for s in scores.iter_mut() {
                    *s = s.signum() * *s * *s;
                }
            }
            Link::Softmax => {
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                for s in scores.iter_mut() {
                    *s /= sum;
                }
            }
        }
        for (o, s) in out.iter_mut().zip(scores.iter()) {
            *o = *s;
        }
    }
}

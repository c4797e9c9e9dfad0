//! XGBoost models saved with `Booster.save_model` as JSON or UBJ (1.7–3.x),
//! scored exactly as xgboost's CPU predictor does: features as f32, `x < t`
//! goes left, tree outputs summed in f32 in tree order from the f32 margin of
//! `base_score`, then the objective's transform in f32.

use serde_json::Value;

use crate::forest::{Forest, ForestBuilder, RawNode, Special};
use crate::{ModelError, OutputKind};

/// How raw margins become the model's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Identity,
    Sigmoid,
    Exp,
    Softmax,
}

/// A loaded XGBoost model.
#[derive(Debug, Clone)]
pub(crate) struct XgbModel {
    pub(crate) forest: Forest<f32>,
    /// Starting margin per output.
    pub(crate) base_margin: Vec<f32>,
    pub(crate) link: Link,
    pub(crate) objective: String,
    pub(crate) feature_names: Vec<String>,
    /// Whether the file carried the names (else they are `f0..`).
    pub(crate) named: bool,
    pub(crate) output: OutputKind,
}

fn invalid(msg: impl Into<String>) -> ModelError {
    ModelError::Invalid(msg.into())
}

fn field<'a>(v: &'a Value, key: &str, what: &str) -> Result<&'a Value, ModelError> {
    v.get(key)
        .ok_or_else(|| invalid(format!("{what}: missing \"{key}\"")))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string<'a>(v: &'a Value, what: &str) -> Result<&'a str, ModelError> {
    v.as_str()
        .ok_or_else(|| invalid(format!("{what}: expected a string, found {}", type_name(v))))
}

fn array<'a>(v: &'a Value, what: &str) -> Result<&'a [Value], ModelError> {
    v.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| invalid(format!("{what}: expected an array, found {}", type_name(v))))
}

/// An integer parameter, which xgboost stores as a string ("30") but older
/// or hand-edited files may hold as a number.
fn int_param(v: &Value, what: &str) -> Result<i64, ModelError> {
    match v {
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| invalid(format!("{what}: expected an integer, found {s:?}"))),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| invalid(format!("{what}: expected an integer, found {n}"))),
        other => Err(invalid(format!(
            "{what}: expected an integer, found {}",
            type_name(other)
        ))),
    }
}

fn count_param(v: &Value, what: &str, max: usize) -> Result<usize, ModelError> {
    let n = int_param(v, what)?;
    usize::try_from(n)
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| invalid(format!("{what}: {n} is out of range (0..={max})")))
}

fn ints(v: &Value, what: &str) -> Result<Vec<i64>, ModelError> {
    array(v, what)?
        .iter()
        .enumerate()
        .map(|(i, x)| {
            match x {
                Value::Number(n) => n.as_i64(),
                Value::Bool(b) => Some(i64::from(*b)),
                _ => None,
            }
            .ok_or_else(|| invalid(format!("{what}[{i}]: expected an integer, found {x}")))
        })
        .collect()
}

fn floats(v: &Value, what: &str) -> Result<Vec<f32>, ModelError> {
    array(v, what)?
        .iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_f64().map(|f| f as f32).ok_or_else(|| {
                invalid(format!(
                    "{what}[{i}]: expected a number, found {}",
                    type_name(x)
                ))
            })
        })
        .collect()
}

/// `base_score`: a number, a numeric string ("5E-1") or, from 3.x, a bracketed
/// list ("[1.7292458E-3]" or one value per class).
fn parse_base_score(v: &Value) -> Result<Vec<f32>, ModelError> {
    let what = "learner_model_param.base_score";
    let values = match v {
        Value::Number(n) => vec![n.as_f64().unwrap_or(f64::NAN) as f32],
        Value::String(s) => {
            let s = s.trim();
            let inner = s
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(s);
            inner
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<f32>()
                        .map_err(|_| invalid(format!("{what}: cannot read {s:?} as a number")))
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        other => {
            return Err(invalid(format!(
                "{what}: expected a number or a string, found {}",
                type_name(other)
            )));
        }
    };
    if values.is_empty() || values.iter().any(|x| !x.is_finite()) {
        return Err(invalid(format!("{what}: not a finite number")));
    }
    Ok(values)
}

/// Parse a document (from JSON or UBJ) into a scoring-ready model.
pub(crate) fn load(doc: &Value) -> Result<XgbModel, ModelError> {
    let learner = field(doc, "learner", "xgboost model")?;
    let objective_v = field(learner, "objective", "learner")?;
    let objective = string(
        field(objective_v, "name", "learner.objective")?,
        "learner.objective.name",
    )?
    .to_owned();
    let lmp = field(learner, "learner_model_param", "learner")?;
    let num_features = count_param(
        field(lmp, "num_feature", "learner_model_param")?,
        "learner_model_param.num_feature",
        crate::forest::MAX_FEATURES,
    )?;
    let num_class = match lmp.get("num_class") {
        Some(v) => count_param(v, "learner_model_param.num_class", 1 << 16)?,
        None => 0,
    };
    if let Some(v) = lmp.get("num_target") {
        let n = count_param(v, "learner_model_param.num_target", 1 << 16)?;
        if n > 1 {
            return Err(invalid(format!(
                "multi-target models ({n} targets) are not supported"
            )));
        }
    }
    let base_score = match lmp.get("base_score") {
        Some(v) => parse_base_score(v)?,
        None => vec![0.5],
    };

    let (link, output) = match objective.as_str() {
        "binary:logistic" | "reg:logistic" => (Link::Sigmoid, OutputKind::Probability),
        "binary:logitraw" => (Link::Identity, OutputKind::Margin),
        "reg:squarederror"
        | "reg:linear"
        | "reg:squaredlogerror"
        | "reg:absoluteerror"
        | "reg:pseudohubererror" => (Link::Identity, OutputKind::Regression),
        "count:poisson" | "reg:gamma" | "reg:tweedie" => (Link::Exp, OutputKind::Regression),
        "multi:softprob" | "multi:softmax" => {
            if num_class < 2 {
                return Err(invalid(format!(
                    "objective {objective} needs num_class of at least 2, found {num_class}"
                )));
            }
            (
                Link::Softmax,
                OutputKind::ClassProbabilities { classes: num_class },
            )
        }
        other => return Err(invalid(format!("unsupported objective \"{other}\""))),
    };
    let num_outputs = match output {
        OutputKind::ClassProbabilities { classes } => classes,
        _ => 1,
    };

    let base_margin = base_margins(&objective, link, &base_score, num_outputs)?;
    let (feature_names, named) = feature_names(learner, num_features)?;

    let booster = field(learner, "gradient_booster", "learner")?;
    let name = string(
        field(booster, "name", "learner.gradient_booster")?,
        "learner.gradient_booster.name",
    )?;
    if name != "gbtree" {
        return Err(invalid(format!(
            "gradient booster \"{name}\" is not supported (only gbtree)"
        )));
    }
    let model = field(booster, "model", "learner.gradient_booster")?;
    let trees = array(
        field(model, "trees", "gradient_booster.model")?,
        "gradient_booster.model.trees",
    )?;
    let tree_info = match model.get("tree_info") {
        Some(v) => ints(v, "gradient_booster.model.tree_info")?,
        None => vec![0; trees.len()],
    };
    if tree_info.len() != trees.len() {
        return Err(invalid(format!(
            "tree_info has {} entries for {} trees",
            tree_info.len(),
            trees.len()
        )));
    }

    let mut builder = ForestBuilder::new(num_features, num_outputs)?;
    for (t, (tree, group)) in trees.iter().zip(&tree_info).enumerate() {
        let raw = parse_tree(t, tree)?;
        let group = usize::try_from(*group)
            .ok()
            .filter(|g| *g < num_outputs)
            .ok_or_else(|| {
                invalid(format!(
                    "tree {t}: tree_info class {group} out of range ({num_outputs} outputs)"
                ))
            })?;
        builder.add_tree(t, &raw, group)?;
    }
    Ok(XgbModel {
        forest: builder.finish(),
        base_margin,
        link,
        objective,
        feature_names,
        named,
        output,
    })
}

/// The starting margin per output: `base_score` through the objective's link
/// function, computed in f32 as xgboost does.
fn base_margins(
    objective: &str,
    link: Link,
    base: &[f32],
    outputs: usize,
) -> Result<Vec<f32>, ModelError> {
    let per_output: Vec<f32> = match base.len() {
        1 => vec![base[0]; outputs],
        n if n == outputs => base.to_vec(),
        n => {
            return Err(invalid(format!(
                "base_score has {n} values for {outputs} outputs"
            )));
        }
    };
    // `binary:logitraw` keeps its base_score as a raw margin (checked
    // against xgboost 3.2), so only the sigmoid objectives take the logit.
    let logit = link == Link::Sigmoid;
    per_output
        .into_iter()
        .map(|p| {
            if logit {
                if p > 0.0 && p < 1.0 {
                    Ok(-(1.0f32 / p - 1.0f32).ln())
                } else {
                    Err(invalid(format!(
                        "base_score {p} must be between 0 and 1 for {objective}"
                    )))
                }
            } else if link == Link::Exp {
                if p > 0.0 {
                    Ok(p.ln())
                } else {
                    Err(invalid(format!(
                        "base_score {p} must be positive for {objective}"
                    )))
                }
            } else {
                Ok(p)
            }
        })
        .collect()
}

/// The names in the file, with `true`; or `f0..` as xgboost calls the
/// features of a model trained without names, with `false`.
fn feature_names(learner: &Value, num_features: usize) -> Result<(Vec<String>, bool), ModelError> {
    let names = match learner.get("feature_names") {
        Some(v) => array(v, "learner.feature_names")?
            .iter()
            .enumerate()
            .map(|(i, n)| string(n, &format!("learner.feature_names[{i}]")).map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    if names.is_empty() {
        return Ok(((0..num_features).map(|i| format!("f{i}")).collect(), false));
    }
    if names.len() != num_features {
        return Err(invalid(format!(
            "{} feature names for {num_features} features",
            names.len()
        )));
    }
    Ok((names, true))
}

fn parse_tree(t: usize, tree: &Value) -> Result<Vec<RawNode<f32>>, ModelError> {
    let ctx = format!("tree {t}");
    let get = |key: &str| field(tree, key, &ctx);
    let what = |key: &str| format!("tree {t}: {key}");
    if let Some(v) = tree
        .get("tree_param")
        .and_then(|p| p.get("size_leaf_vector"))
    {
        let n = int_param(v, &what("tree_param.size_leaf_vector"))?;
        if n > 1 {
            return Err(invalid(format!(
                "tree {t}: vector-leaf trees are not supported"
            )));
        }
    }
    let left = ints(get("left_children")?, &what("left_children"))?;
    let right = ints(get("right_children")?, &what("right_children"))?;
    let feature = ints(get("split_indices")?, &what("split_indices"))?;
    let cond = floats(get("split_conditions")?, &what("split_conditions"))?;
    let default_left = ints(get("default_left")?, &what("default_left"))?;
    let split_type = match tree.get("split_type") {
        Some(v) => ints(v, &what("split_type"))?,
        None => vec![0; left.len()],
    };
    let n = left.len();
    if let Some(v) = tree.get("tree_param").and_then(|p| p.get("num_nodes")) {
        let declared = int_param(v, &what("tree_param.num_nodes"))?;
        if usize::try_from(declared).ok() != Some(n) {
            return Err(invalid(format!(
                "tree {t}: tree_param.num_nodes is {declared} but left_children has {n} entries"
            )));
        }
    }
    for (key, len) in [
        ("right_children", right.len()),
        ("split_indices", feature.len()),
        ("split_conditions", cond.len()),
        ("default_left", default_left.len()),
        ("split_type", split_type.len()),
    ] {
        if len != n {
            return Err(invalid(format!(
                "tree {t}: {key} has {len} entries but left_children has {n}"
            )));
        }
    }
    let mut categories = categorical_splits(t, tree, n)?;

    let mut raw = Vec::with_capacity(n);
    for i in 0..n {
        if left[i] == -1 {
            if right[i] != -1 {
                return Err(invalid(format!(
                    "tree {t}: node {i}: has a right child {} but no left child",
                    right[i]
                )));
            }
            if cond[i].is_nan() {
                return Err(invalid(format!(
                    "tree {t}: node {i}: leaf value is not a number"
                )));
            }
            raw.push(RawNode::Leaf(cond[i]));
            continue;
        }
        let child = |c: i64, side: &str| {
            usize::try_from(c).map_err(|_| {
                invalid(format!(
                    "tree {t}: node {i}: {side} child {c} out of range (tree has {n} nodes)"
                ))
            })
        };
        let (l, r) = (child(left[i], "left")?, child(right[i], "right")?);
        let f = usize::try_from(feature[i]).map_err(|_| {
            invalid(format!(
                "tree {t}: node {i}: negative feature index {}",
                feature[i]
            ))
        })?;
        let special = match split_type[i] {
            0 => None,
            1 => Some(categories.remove(&i).ok_or_else(|| {
                invalid(format!(
                    "tree {t}: node {i}: categorical split without categories"
                ))
            })?),
            other => {
                return Err(invalid(format!(
                    "tree {t}: node {i}: unknown split_type {other}"
                )));
            }
        };
        raw.push(RawNode::Split {
            feature: f,
            threshold: cond[i],
            nan_left: default_left[i] != 0,
            special,
            left: l,
            right: r,
        });
    }
    Ok(raw)
}

/// The category sets of a tree's categorical splits, by node id.
fn categorical_splits(
    t: usize,
    tree: &Value,
    n: usize,
) -> Result<rustc_hash::FxHashMap<usize, Special>, ModelError> {
    let what = |key: &str| format!("tree {t}: {key}");
    let mut out = rustc_hash::FxHashMap::default();
    let (Some(nodes), Some(segments), Some(sizes), Some(cats)) = (
        tree.get("categories_nodes"),
        tree.get("categories_segments"),
        tree.get("categories_sizes"),
        tree.get("categories"),
    ) else {
        return Ok(out);
    };
    let nodes = ints(nodes, &what("categories_nodes"))?;
    let segments = ints(segments, &what("categories_segments"))?;
    let sizes = ints(sizes, &what("categories_sizes"))?;
    let cats = ints(cats, &what("categories"))?;
    if segments.len() != nodes.len() || sizes.len() != nodes.len() {
        return Err(invalid(format!(
            "tree {t}: categories_nodes, categories_segments and categories_sizes differ in length ({}, {}, {})",
            nodes.len(),
            segments.len(),
            sizes.len()
        )));
    }
    for j in 0..nodes.len() {
        let node = usize::try_from(nodes[j])
            .ok()
            .filter(|x| *x < n)
            .ok_or_else(|| {
                invalid(format!(
                    "tree {t}: categories_nodes[{j}] = {} is not a node",
                    nodes[j]
                ))
            })?;
        let start = usize::try_from(segments[j]).ok();
        let len = usize::try_from(sizes[j]).ok();
        let list = match (start, len) {
            (Some(s), Some(l)) => s.checked_add(l).and_then(|e| cats.get(s..e)),
            _ => None,
        }
        .ok_or_else(|| {
            invalid(format!(
                "tree {t}: node {node}: category segment {}+{} outside categories ({} entries)",
                segments[j],
                sizes[j],
                cats.len()
            ))
        })?;
        let mut bits: Vec<u64> = Vec::new();
        for &c in list {
            let c = usize::try_from(c)
                .ok()
                .filter(|c| *c < 1 << 24)
                .ok_or_else(|| {
                    invalid(format!("tree {t}: node {node}: category {c} out of range"))
                })?;
            if bits.len() <= c / 64 {
                bits.resize(c / 64 + 1, 0);
            }
            bits[c / 64] |= 1 << (c % 64);
        }
        out.insert(node, Special::XgbCategories { bits });
    }
    Ok(out)
}

impl XgbModel {
    /// Turn accumulated margins into outputs.
    pub(crate) fn finish(&self, margins: &mut [f32], out: &mut [f64]) {
        match self.link {
            Link::Identity => {}
            Link::Sigmoid => {
                for m in margins.iter_mut() {
                    *m = sigmoid(*m);
                }
            }
            Link::Exp => {
                for m in margins.iter_mut() {
                    *m = m.exp();
                }
            }
            Link::Softmax => softmax(margins),
        }
        for (o, m) in out.iter_mut().zip(margins.iter()) {
            *o = f64::from(*m);
        }
    }
}

/// xgboost's f32 sigmoid: the exponent is clamped so it cannot overflow.
fn sigmoid(x: f32) -> f32 {
    let e = (-x).min(88.7f32).exp();
    1.0f32 / (e + 1.0f32 + 1e-16f32)
}

/// xgboost's softmax: f32 exponentials summed in f64.
fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += f64::from(*x);
    }
    let sum = sum as f32;
    for x in v.iter_mut() {
        *x /= sum;
    }
}

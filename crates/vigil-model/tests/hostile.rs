//! Broken and hostile model files must give a clear error, never a panic, a
//! hang or an absurd allocation; scoring must never panic either.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Value, json};
use vigil_model::{Model, ModelError, ModelFormat};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A two-tree binary:logistic model with a numeric and a categorical split.
fn tiny_xgb() -> Value {
    json!({
      "learner": {
        "feature_names": ["amount", "kind"],
        "learner_model_param": {"base_score": "[5E-1]", "num_class": "0", "num_feature": "2"},
        "objective": {"name": "binary:logistic"},
        "gradient_booster": {"name": "gbtree", "model": {
          "tree_info": [0, 0],
          "trees": [
            {"tree_param": {"num_nodes": "3"},
             "left_children": [1, -1, -1], "right_children": [2, -1, -1],
             "split_indices": [0, 0, 0], "split_conditions": [0.5, 0.1, -0.2],
             "default_left": [1, 0, 0], "split_type": [0, 0, 0],
             "categories": [], "categories_nodes": [], "categories_segments": [], "categories_sizes": []},
            {"tree_param": {"num_nodes": "3"},
             "left_children": [1, -1, -1], "right_children": [2, -1, -1],
             "split_indices": [1, 0, 0], "split_conditions": [0.0, -0.4, 0.3],
             "default_left": [0, 0, 0], "split_type": [1, 0, 0],
             "categories": [1, 3], "categories_nodes": [0], "categories_segments": [0], "categories_sizes": [2]}
          ]}}
      }
    })
}

fn load_json(v: &Value) -> Result<Model, ModelError> {
    Model::from_bytes(v.to_string().as_bytes(), None)
}

/// Load a mutated copy of the tiny model and return the error text.
fn xgb_error(mutate: impl FnOnce(&mut Value)) -> String {
    let mut v = tiny_xgb();
    mutate(&mut v);
    match load_json(&v) {
        Ok(_) => panic!("mutated model loaded"),
        Err(e) => e.to_string(),
    }
}

fn tree(v: &mut Value, t: usize) -> &mut Value {
    &mut v["learner"]["gradient_booster"]["model"]["trees"][t]
}

#[test]
fn tiny_model_is_valid() {
    let m = load_json(&tiny_xgb()).expect("tiny model loads");
    assert_eq!(m.num_trees(), 2);
}

type Mutation = Box<dyn FnOnce(&mut Value)>;

#[test]
fn structural_errors_name_the_problem() {
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|v| tree(v, 1)["right_children"][0] = json!(99)),
            "tree 1: node 0: right child 99 out of range (tree has 3 nodes)",
        ),
        (
            Box::new(|v| tree(v, 0)["left_children"][0] = json!(0)),
            "tree 0: node 0: left child 0 is reached twice",
        ),
        (
            Box::new(|v| tree(v, 0)["left_children"][0] = json!(-7)),
            "tree 0: node 0: left child -7 out of range",
        ),
        (
            Box::new(|v| tree(v, 0)["split_indices"][0] = json!(2)),
            "tree 0: node 0: feature index 2 out of range (model has 2 features)",
        ),
        (
            Box::new(|v| tree(v, 0)["split_conditions"] = json!([0.5, 0.1])),
            "tree 0: split_conditions has 2 entries but left_children has 3",
        ),
        (
            Box::new(|v| tree(v, 0)["split_conditions"] = json!("0.5")),
            "tree 0: split_conditions: expected an array, found a string",
        ),
        (
            Box::new(|v| tree(v, 0)["split_conditions"][0] = json!(null)),
            "tree 0: split_conditions[0]: expected a number, found null",
        ),
        (
            Box::new(|v| tree(v, 0)["tree_param"]["num_nodes"] = json!("4")),
            "tree 0: tree_param.num_nodes is 4 but left_children has 3 entries",
        ),
        (
            Box::new(|v| v["learner"]["objective"]["name"] = json!("rank:pairwise")),
            "unsupported objective \"rank:pairwise\"",
        ),
        (
            Box::new(|v| v["learner"]["learner_model_param"]["base_score"] = json!("abc")),
            "learner_model_param.base_score: cannot read \"abc\" as a number",
        ),
        (
            Box::new(|v| v["learner"]["learner_model_param"]["num_feature"] = json!("-1")),
            "learner_model_param.num_feature: -1 is out of range",
        ),
        (
            Box::new(|v| v["learner"]["learner_model_param"]["num_feature"] = json!("3")),
            "2 feature names for 3 features",
        ),
        (
            Box::new(|v| v["learner"]["gradient_booster"]["model"]["tree_info"] = json!([0, 5])),
            "tree 1: tree_info class 5 out of range (1 outputs)",
        ),
        (
            Box::new(|v| v["learner"]["gradient_booster"]["model"]["tree_info"] = json!([0])),
            "tree_info has 1 entries for 2 trees",
        ),
        (
            Box::new(|v| v["learner"]["gradient_booster"]["name"] = json!("gblinear")),
            "gradient booster \"gblinear\" is not supported",
        ),
        (
            Box::new(|v| tree(v, 1)["categories_sizes"] = json!([9])),
            "tree 1: node 0: category segment 0+9 outside categories (2 entries)",
        ),
        (
            Box::new(|v| tree(v, 1)["categories_nodes"] = json!([])),
            "categories_nodes, categories_segments and categories_sizes differ in length",
        ),
        (
            Box::new(|v| tree(v, 1)["categories"] = json!([1, -3])),
            "tree 1: node 0: category -3 out of range",
        ),
        (
            Box::new(|v| tree(v, 0)["split_type"][0] = json!(7)),
            "tree 0: node 0: unknown split_type 7",
        ),
        (
            Box::new(|v| v["learner"]["gradient_booster"]["model"]["trees"] = json!({})),
            "gradient_booster.model.trees: expected an array, found an object",
        ),
        (
            Box::new(|v| *v = json!({"learner": 5})),
            "learner: missing \"objective\"",
        ),
        (
            Box::new(|v| *v = json!({"version": [3, 2, 0]})),
            "xgboost model: missing \"learner\"",
        ),
    ];
    for (mutate, want) in cases {
        let got = xgb_error(mutate);
        assert!(got.starts_with("invalid model: "), "{got}");
        assert!(got.contains(want), "expected {want:?} in {got:?}");
    }
}

/// A chain `depth` splits deep: node 2i splits into leaf 2i+1 and node 2i+2.
fn chain(depth: usize) -> Value {
    let n = 2 * depth + 1;
    let left: Vec<i64> = (0..n)
        .map(|i| {
            if i % 2 == 0 && i < n - 1 {
                i as i64 + 1
            } else {
                -1
            }
        })
        .collect();
    let right: Vec<i64> = (0..n)
        .map(|i| {
            if i % 2 == 0 && i < n - 1 {
                i as i64 + 2
            } else {
                -1
            }
        })
        .collect();
    let mut v = tiny_xgb();
    *tree(&mut v, 0) = json!({
        "tree_param": {"num_nodes": n.to_string()},
        "left_children": left, "right_children": right,
        "split_indices": vec![0; n], "split_conditions": (0..n).map(|i| i as f64).collect::<Vec<_>>(),
        "default_left": vec![0; n], "split_type": vec![0; n],
    });
    v
}

#[test]
fn depth_is_limited() {
    let m = load_json(&chain(100)).expect("100 levels is fine");
    let mut out = [0.0];
    m.predict_row(&[1e9, 1.0], &mut out).expect("scores");
    let e = load_json(&chain(1000))
        .expect_err("1000 levels is absurd")
        .to_string();
    assert!(e.contains("tree 0: deeper than"), "{e}");
}

#[test]
fn truncated_files_are_errors() {
    // Every cut in the header, then ~150 cuts spread over the rest.
    for name in [
        "xgb_categorical.json",
        "xgb_categorical.ubj",
        "xgb_v1_7.ubj",
        "lgb_categorical.txt",
    ] {
        let bytes = fixture(name);
        Model::from_bytes(&bytes, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let end_of_trees = bytes
            .windows(12)
            .position(|w| w == b"end of trees")
            .unwrap_or(bytes.len());
        let mut cut = 0;
        while cut < bytes.len() {
            let r = Model::from_bytes(&bytes[..cut], None);
            if cut < end_of_trees {
                assert!(r.is_err(), "{name} cut at {cut} loaded");
            }
            cut += if cut < 300 { 1 } else { bytes.len() / 150 + 1 };
        }
    }
}

#[test]
fn lightgbm_errors_name_the_problem() {
    let text = String::from_utf8(fixture("lgb_categorical.txt")).expect("utf-8");
    // (line prefix, new first value or whole replacement, expected message)
    let cases = [
        (
            "left_child=",
            "999",
            "tree 0: node 0: left child 999 out of range",
        ),
        (
            "left_child=",
            "-999",
            "tree 0: node 0: left child leaf 998 out of range",
        ),
        (
            "left_child=",
            "0",
            "tree 0: node 0: left child 0 is reached twice",
        ),
        (
            "decision_type=",
            "99",
            "tree 0: node 0: bad decision_type 99",
        ),
        (
            "threshold=",
            "nan",
            "tree 0: node 0: threshold is not a number",
        ),
        (
            "threshold=",
            "abc",
            "tree 0: threshold[0]: cannot read \"abc\"",
        ),
        (
            "split_feature=",
            "77",
            "feature index 77 out of range (model has 5 features)",
        ),
        ("num_leaves=", "3", "tree 0: leaf_value has"),
        (
            "objective=",
            "lambdarank",
            "unsupported objective \"lambdarank\"",
        ),
        ("max_feature_idx=", "9", "feature names for 10 features"),
    ];
    for (prefix, value, want) in cases {
        let broken = replace_first_value(&text, prefix, value);
        let e = Model::from_bytes(broken.as_bytes(), None)
            .err()
            .unwrap_or_else(|| panic!("{prefix}{value} loaded"))
            .to_string();
        assert!(e.contains(want), "expected {want:?} in {e:?}");
    }
}

/// Replace the first value on the first line starting with `prefix`.
fn replace_first_value(text: &str, prefix: &str, value: &str) -> String {
    let start = text.find(&format!("\n{prefix}")).expect("line exists") + 1 + prefix.len();
    let end = text[start..]
        .find([' ', '\n'])
        .map_or(text.len(), |e| start + e);
    format!("{}{value}{}", &text[..start], &text[end..])
}

#[test]
fn lightgbm_without_end_of_trees_is_truncated() {
    let text = String::from_utf8(fixture("lgb_categorical.txt")).expect("utf-8");
    let broken = text.replace("end of trees", "the end");
    let e = Model::from_bytes(broken.as_bytes(), None)
        .expect_err("truncated")
        .to_string();
    assert!(e.contains("truncated"), "{e}");
    let renumbered = text.replacen("\nTree=1\n", "\nTree=7\n", 1);
    let e = Model::from_bytes(renumbered.as_bytes(), None)
        .expect_err("renumbered")
        .to_string();
    assert!(e.contains("expected Tree=1, found Tree=7"), "{e}");
    let cut = &text[..text.find("end of trees").expect("marker")];
    let e = Model::from_bytes(cut.as_bytes(), None)
        .expect_err("truncated")
        .to_string();
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn garbage_is_rejected_by_every_loader() {
    for format in [
        None,
        Some(ModelFormat::XgboostJson),
        Some(ModelFormat::XgboostUbj),
        Some(ModelFormat::LightgbmText),
    ] {
        for bytes in [
            &b""[..],
            b"{",
            b"[1,2]",
            b"tree\n",
            b"\xff\xfe",
            b"{\"learner\":{}}",
            b"{L\x7f\xff\xff\xff\xff\xff\xff\xff",
        ] {
            assert!(
                Model::from_bytes(bytes, format).is_err(),
                "{format:?} {bytes:?}"
            );
        }
    }
}

/// Apply random byte edits to a valid model.
fn mutate(base: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut b = base.to_vec();
    for &(pos, byte, op) in edits {
        if b.is_empty() {
            break;
        }
        let p = pos % b.len();
        match op % 3 {
            0 => b[p] = byte,
            1 => b.insert(p, byte),
            _ => {
                b.remove(p);
            }
        }
    }
    b
}

/// Score a few rows if the model loaded; batch must equal row-by-row.
fn exercise(model: &Model, values: &[f64]) {
    let nf = model.num_features();
    let k = model.num_outputs();
    let rows = 3;
    let data: Vec<f64> = (0..rows * nf).map(|i| values[i % values.len()]).collect();
    let mut batch = vec![0.0; rows * k];
    model
        .predict_batch(&data, &mut batch)
        .expect("batch scores");
    for r in 0..rows {
        let mut out = vec![0.0; k];
        model
            .predict_row(&data[r * nf..(r + 1) * nf], &mut out)
            .expect("row scores");
        for (a, b) in out.iter().zip(&batch[r * k..(r + 1) * k]) {
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
        }
    }
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(1e300),
        Just(-1e-40),
        -5.0f64..5.0,
        -1e6f64..1e6,
        (0u32..200).prop_map(f64::from),
    ]
}

/// Real models, loaded once for all proptest cases.
fn real_models() -> &'static [Model] {
    static MODELS: std::sync::OnceLock<Vec<Model>> = std::sync::OnceLock::new();
    MODELS.get_or_init(|| {
        [
            "ulb_xgb_200.json",
            "xgb_categorical.json",
            "xgb_softprob.json",
            "lgb_categorical.txt",
            "lgb_multiclass.txt",
            "lgb_zero_as_missing.txt",
        ]
        .iter()
        .map(|name| Model::from_bytes(&fixture(name), None).expect("fixture loads"))
        .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), hint in 0u8..4) {
        let format = [None, Some(ModelFormat::XgboostJson), Some(ModelFormat::XgboostUbj), Some(ModelFormat::LightgbmText)][hint as usize];
        let _ = Model::from_bytes(&bytes, format);
        // A UBJ-looking prefix with random content behind it.
        let mut ubj = b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner".to_vec();
        ubj.extend_from_slice(&bytes);
        let _ = Model::from_bytes(&ubj, None);
    }

    #[test]
    fn mutated_models_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
        values in proptest::collection::vec(value(), 1..8),
    ) {
        let name = ["xgb_v1_7.json", "xgb_v1_7.ubj", "lgb_categorical.txt", "xgb_categorical.ubj"][which];
        let bytes = mutate(&fixture(name), &edits);
        if let Ok(model) = Model::from_bytes(&bytes, None) {
            exercise(&model, &values);
        }
    }

    #[test]
    fn batch_equals_rows_on_real_models(
        which in 0usize..6,
        values in proptest::collection::vec(value(), 1..64),
    ) {
        exercise(&real_models()[which], &values);
    }
}

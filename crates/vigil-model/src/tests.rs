//! Unit tests on small hand-written models.

use super::*;

pub(crate) const TINY_XGB: &str = r#"{
  "learner": {
    "feature_names": ["amount", "kind"],
    "learner_model_param": {"base_score": "[5E-1]", "num_class": "0", "num_feature": "2", "num_target": "1"},
    "objective": {"name": "binary:logistic", "reg_loss_param": {"scale_pos_weight": "1"}},
    "gradient_booster": {
      "name": "gbtree",
      "model": {
        "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": "2"},
        "tree_info": [0, 0],
        "trees": [
          {"id": 0, "tree_param": {"num_nodes": "3", "num_feature": "2", "size_leaf_vector": "1"},
           "left_children": [1, -1, -1], "right_children": [2, -1, -1],
           "split_indices": [0, 0, 0], "split_conditions": [0.5, 0.1, -0.2],
           "default_left": [1, 0, 0], "split_type": [0, 0, 0],
           "categories": [], "categories_nodes": [], "categories_segments": [], "categories_sizes": []},
          {"id": 1, "tree_param": {"num_nodes": "3", "num_feature": "2", "size_leaf_vector": "1"},
           "left_children": [1, -1, -1], "right_children": [2, -1, -1],
           "split_indices": [1, 0, 0], "split_conditions": [0.0, -0.4, 0.3],
           "default_left": [0, 0, 0], "split_type": [1, 0, 0],
           "categories": [1, 3], "categories_nodes": [0], "categories_segments": [0], "categories_sizes": [2]}
        ]
      }
    }
  },
  "version": [3, 0, 0]
}"#;

pub(crate) const TINY_LGB: &str = "tree
version=v4
num_class=1
num_tree_per_iteration=1
label_index=0
max_feature_idx=1
objective=binary sigmoid:1
feature_names=a b
feature_infos=[0:1] [0:4]
tree_sizes=1 1 1

Tree=0
num_leaves=3
num_cat=0
split_feature=0 1
split_gain=1 1
threshold=0.5 1.5
decision_type=10 2
left_child=-1 -2
right_child=1 -3
leaf_value=0.1 0.2 -0.3
leaf_weight=1 1 1
leaf_count=1 1 1
internal_value=0 0
internal_weight=0 0
internal_count=2 1
is_linear=0
shrinkage=1


Tree=1
num_leaves=2
num_cat=1
split_feature=1
split_gain=1
threshold=0
decision_type=1
left_child=-1
right_child=-2
leaf_value=0.01 -0.02
leaf_weight=1 1
leaf_count=1 1
internal_value=0
internal_weight=0
internal_count=2
cat_boundaries=0 1
cat_threshold=10
is_linear=0
shrinkage=1


Tree=2
num_leaves=1
num_cat=0
split_feature=
split_gain=
threshold=
decision_type=
left_child=
right_child=
leaf_value=0.005
leaf_weight=
leaf_count=
internal_value=
internal_weight=
internal_count=
is_linear=0
shrinkage=1


end of trees

feature_importances:
a=1
b=1

parameters:
[objective: binary]
end of parameters

pandas_categorical:null
";

fn xgb_expected(margin: f32) -> f64 {
    f64::from(1.0f32 / ((-margin).min(88.7).exp() + 1.0f32))
}

fn predict(m: &Model, row: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; m.num_outputs()];
    m.predict_row(row, &mut out).expect("row scores");
    out
}

#[test]
fn detects_formats() {
    assert_eq!(
        ModelFormat::detect(TINY_XGB.as_bytes()),
        Some(ModelFormat::XgboostJson)
    );
    assert_eq!(
        ModelFormat::detect(TINY_LGB.as_bytes()),
        Some(ModelFormat::LightgbmText)
    );
    assert_eq!(
        ModelFormat::detect(b"{i\x07learner{"),
        Some(ModelFormat::XgboostUbj)
    );
    assert_eq!(ModelFormat::detect(b"PK\x03\x04"), None);
    assert_eq!(ModelFormat::detect(b""), None);
}

#[test]
fn format_names_round_trip() {
    for f in [
        ModelFormat::XgboostJson,
        ModelFormat::XgboostUbj,
        ModelFormat::LightgbmText,
    ] {
        assert_eq!(ModelFormat::parse_name(&f.to_string()), Some(f));
    }
    assert_eq!(
        ModelFormat::parse_name("xgboost"),
        Some(ModelFormat::XgboostJson)
    );
    assert_eq!(
        ModelFormat::parse_name("LightGBM"),
        Some(ModelFormat::LightgbmText)
    );
    assert_eq!(ModelFormat::parse_name("onnx"), None);
    assert!("onnx".parse::<ModelFormat>().is_err());
}

#[test]
fn tiny_xgboost_routes_numeric_categorical_and_missing() {
    let m = Model::from_bytes(TINY_XGB.as_bytes(), None).expect("tiny model loads");
    assert_eq!(m.format(), ModelFormat::XgboostJson);
    assert_eq!(m.feature_names(), ["amount", "kind"]);
    assert_eq!(m.feature_index("kind"), Some(1));
    assert_eq!(m.feature_index("nope"), None);
    assert_eq!(m.output_kind(), OutputKind::Probability);
    assert_eq!(m.objective(), "binary:logistic");
    assert_eq!(m.num_trees(), 2);
    let nan = f64::NAN;
    let cases = [
        // (amount, kind) -> leaf of tree 0 + leaf of tree 1
        ([0.4, 1.0], 0.1f32 + 0.3f32),
        ([0.5, 3.0], -0.2f32 + 0.3f32),
        ([0.6, 2.0], -0.2f32 + -0.4f32),
        ([nan, nan], 0.1f32 + 0.3f32), // default left / categorical default right
        ([0.0, 3.7], 0.1f32 + 0.3f32), // 3.7 truncates to category 3
        ([0.0, -1.0], 0.1f32 + -0.4f32), // negative category goes left
        ([0.0, 1e30], 0.1f32 + -0.4f32), // out of range goes left
    ];
    for (row, margin) in cases {
        assert_eq!(
            predict(&m, &row),
            [xgb_expected(0.0f32 + margin)],
            "row {row:?}"
        );
    }
    // Features are compared as f32: 0.49999999999 rounds to 0.5, which goes right.
    assert_eq!(
        predict(&m, &[0.499_999_999_99, 2.0]),
        [xgb_expected(-0.2f32 + -0.4f32)]
    );
}

#[test]
fn tiny_lightgbm_routes_numeric_categorical_and_missing() {
    let m = Model::from_bytes(TINY_LGB.as_bytes(), None).expect("tiny model loads");
    assert_eq!(m.format(), ModelFormat::LightgbmText);
    assert_eq!(m.feature_names(), ["a", "b"]);
    assert_eq!(m.objective(), "binary");
    assert_eq!(m.num_trees(), 3);
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    let nan = f64::NAN;
    let cases = [
        ([0.5, 1.0], 0.1 + 0.01 + 0.005),
        ([0.6, 1.5], 0.2 + 0.01 + 0.005),
        ([0.6, 3.0], -0.3 + 0.01 + 0.005),
        ([nan, 0.0], 0.1 + -0.02 + 0.005),
        ([0.6, nan], 0.2 + -0.02 + 0.005),
        ([0.6, -0.5], 0.2 + -0.02 + 0.005),
        ([0.6, 1.9], -0.3 + 0.01 + 0.005),
    ];
    for (row, score) in cases {
        let got = predict(&m, &row)[0];
        assert!(
            (got - sig(score)).abs() < 1e-15,
            "row {row:?}: {got} vs {}",
            sig(score)
        );
    }
}

#[test]
fn batch_matches_rows_across_block_sizes() {
    for text in [TINY_XGB, TINY_LGB] {
        let m = Model::from_bytes(text.as_bytes(), None).expect("loads");
        for n in [0usize, 1, 15, 16, 17, 40] {
            let rows: Vec<f64> = (0..n * 2)
                .map(|i| {
                    if i % 7 == 3 {
                        f64::NAN
                    } else {
                        (i as f64 * 0.37) % 4.0 - 0.5
                    }
                })
                .collect();
            let mut batch = vec![0.0; n];
            m.predict_batch(&rows, &mut batch).expect("batch scores");
            for (r, want) in rows.chunks(2).zip(&batch) {
                assert_eq!(
                    predict(&m, r)[0].to_bits(),
                    want.to_bits(),
                    "{} n={n} row {r:?}",
                    m.objective()
                );
            }
        }
    }
}

#[test]
fn wrong_lengths_are_shape_errors() {
    let m = Model::from_bytes(TINY_XGB.as_bytes(), None).expect("loads");
    let mut out = [0.0];
    assert!(matches!(
        m.predict_row(&[1.0], &mut out),
        Err(ModelError::Shape {
            expected: 2,
            got: 1
        })
    ));
    assert!(matches!(
        m.predict_row(&[1.0, 2.0], &mut []),
        Err(ModelError::Shape {
            expected: 1,
            got: 0
        })
    ));
    assert!(matches!(
        m.predict_batch(&[1.0, 2.0, 3.0], &mut out),
        Err(ModelError::Ragged { row_len: 2, got: 3 })
    ));
    assert!(matches!(
        m.predict_batch(&[1.0, 2.0, 3.0, 4.0], &mut out),
        Err(ModelError::Shape {
            expected: 2,
            got: 1
        })
    ));
}

#[test]
fn ubj_encoding_of_the_tiny_model_scores_the_same() {
    let doc: serde_json::Value = serde_json::from_str(TINY_XGB).expect("json");
    let mut bytes = Vec::new();
    to_ubj(&doc, &mut bytes);
    let json = Model::from_bytes(TINY_XGB.as_bytes(), None).expect("json loads");
    let ubj = Model::from_bytes(&bytes, None).expect("ubj loads");
    assert_eq!(ubj.format(), ModelFormat::XgboostUbj);
    for row in [[0.4, 1.0], [0.6, 2.0], [f64::NAN, 3.0]] {
        assert_eq!(predict(&json, &row), predict(&ubj, &row));
    }
}

/// A plain UBJSON writer for tests: floats as float32, like xgboost.
pub(crate) fn to_ubj(v: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    fn key(s: &str, out: &mut Vec<u8>) {
        out.push(b'L');
        out.extend_from_slice(&(s.len() as i64).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    match v {
        Value::Null => out.push(b'Z'),
        Value::Bool(b) => out.push(if *b { b'T' } else { b'F' }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push(b'L');
                out.extend_from_slice(&i.to_be_bytes());
            } else {
                out.push(b'd');
                out.extend_from_slice(&(n.as_f64().unwrap_or(0.0) as f32).to_be_bytes());
            }
        }
        Value::String(s) => {
            out.push(b'S');
            key(s, out);
        }
        Value::Array(items) => {
            out.push(b'[');
            for i in items {
                to_ubj(i, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (k, v) in map {
                key(k, out);
                to_ubj(v, out);
            }
            out.push(b'}');
        }
    }
}

#[test]
fn objectives_and_base_scores() {
    let with = |objective: &str, base: &str, num_class: &str| {
        TINY_XGB
            .replace("binary:logistic", objective)
            .replace("\"[5E-1]\"", base)
            .replace(
                "\"num_class\": \"0\"",
                &format!("\"num_class\": \"{num_class}\""),
            )
    };
    let m = Model::from_bytes(with("reg:squarederror", "\"2.5E0\"", "0").as_bytes(), None)
        .expect("loads");
    assert_eq!(m.output_kind(), OutputKind::Regression);
    assert_eq!(
        predict(&m, &[0.4, 1.0]),
        [f64::from(2.5f32 + 0.1f32 + 0.3f32)]
    );
    let m = Model::from_bytes(with("binary:logitraw", "0.5", "0").as_bytes(), None).expect("loads");
    assert_eq!(m.output_kind(), OutputKind::Margin);
    assert_eq!(
        predict(&m, &[0.4, 1.0]),
        [f64::from(0.5f32 + 0.1f32 + 0.3f32)]
    );
    let e =
        Model::from_bytes(with("rank:ndcg", "0.5", "0").as_bytes(), None).expect_err("unsupported");
    assert_eq!(
        e.to_string(),
        "invalid model: unsupported objective \"rank:ndcg\""
    );
    let e = Model::from_bytes(with("binary:logistic", "\"[1.5E0]\"", "0").as_bytes(), None)
        .expect_err("range");
    assert!(e.to_string().contains("between 0 and 1"), "{e}");
    // Two classes, tree 0 -> class 0, tree 1 -> class 1.
    let text = with("multi:softprob", "\"[5E-1,5E-1]\"", "2")
        .replace("\"tree_info\": [0, 0]", "\"tree_info\": [0, 1]");
    let m = Model::from_bytes(text.as_bytes(), None).expect("loads");
    assert_eq!(
        m.output_kind(),
        OutputKind::ClassProbabilities { classes: 2 }
    );
    let p = predict(&m, &[0.4, 1.0]);
    let (a, b) = (0.5f32 + 0.1f32, 0.5f32 + 0.3f32);
    let ea = (a - b).exp();
    let eb = (b - b).exp();
    let sum = (f64::from(ea) + f64::from(eb)) as f32;
    assert_eq!(p, [f64::from(ea / sum), f64::from(eb / sum)]);
}

#[test]
fn model_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model>();
}

#[test]
fn absurd_feature_count_is_rejected() {
    let text = TINY_XGB
        .replace("\"num_feature\": \"2\"", "\"num_feature\": \"900000000\"")
        .replace("\"feature_names\": [\"amount\", \"kind\"],", "");
    let e = Model::from_bytes(text.as_bytes(), None).expect_err("absurd");
    assert!(
        e.to_string()
            .contains("num_feature: 900000000 is out of range"),
        "{e}"
    );
}

//! The rules for names given to a model's features by its user
//! ([`crate::Model::rename_features`]).

use rustc_hash::FxHashMap;

use crate::ModelError;

/// `names` fit a model of `count` features: as many, non-empty (not only
/// whitespace), unique. The first problem found is reported.
pub(crate) fn check(names: &[String], count: usize) -> Result<(), ModelError> {
    if names.len() != count {
        return Err(ModelError::FeatureNames(format!(
            "{} names for a model of {count} features",
            names.len()
        )));
    }
    let mut seen = FxHashMap::default();
    for (i, name) in names.iter().enumerate() {
        if name.trim().is_empty() {
            return Err(ModelError::FeatureNames(format!("name {i} is empty")));
        }
        if let Some(first) = seen.insert(name.as_str(), i) {
            return Err(ModelError::FeatureNames(format!(
                "{name:?} is given twice (names {first} and {i})"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Model;
    use crate::tests::{TINY_LGB, TINY_XGB};

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    fn unnamed_xgb() -> Model {
        let text = TINY_XGB.replace("\"feature_names\": [\"amount\", \"kind\"],", "");
        Model::from_bytes(text.as_bytes(), None).expect("tiny model without names loads")
    }

    #[test]
    fn names_from_the_file_are_told_apart_from_made_up_ones() {
        let named = Model::from_bytes(TINY_XGB.as_bytes(), None).expect("loads");
        assert!(named.has_feature_names());
        let unnamed = unnamed_xgb();
        assert!(!unnamed.has_feature_names());
        assert_eq!(unnamed.feature_names(), ["f0", "f1"]);
        // xgboost writes `"feature_names": []` for a model without names.
        let empty = TINY_XGB.replace("[\"amount\", \"kind\"]", "[]");
        let empty = Model::from_bytes(empty.as_bytes(), None).expect("loads");
        assert!(!empty.has_feature_names());

        let lgb = Model::from_bytes(TINY_LGB.as_bytes(), None).expect("loads");
        assert!(lgb.has_feature_names());
        let text = TINY_LGB.replace("feature_names=a b\n", "");
        let lgb = Model::from_bytes(text.as_bytes(), None).expect("loads without names");
        assert!(!lgb.has_feature_names());
        assert_eq!(lgb.feature_names(), ["Column_0", "Column_1"]);
    }

    #[test]
    fn a_rename_changes_names_and_lookup_but_not_scores() {
        let mut model = unnamed_xgb();
        let row = [0.4, 1.0];
        let mut before = [0.0];
        model.predict_row(&row, &mut before).expect("score");
        model
            .rename_features(names(&["amount", "kind"]))
            .expect("valid names");
        assert_eq!(model.feature_names(), ["amount", "kind"]);
        assert_eq!(model.feature_index("kind"), Some(1));
        assert_eq!(model.feature_index("f1"), None);
        assert!(!model.has_feature_names(), "the file still had no names");
        let mut after = [0.0];
        model.predict_row(&row, &mut after).expect("score");
        assert_eq!(before[0].to_bits(), after[0].to_bits());
    }

    #[test]
    fn a_bad_rename_is_refused_and_keeps_the_old_names() {
        let mut model = unnamed_xgb();
        let cases: [(&[&str], &str); 5] = [
            (&["a"], "1 names for a model of 2 features"),
            (&["a", "b", "c"], "3 names for a model of 2 features"),
            (&["a", ""], "name 1 is empty"),
            (&["  ", "b"], "name 0 is empty"),
            (&["a", "a"], "\"a\" is given twice (names 0 and 1)"),
        ];
        for (list, message) in cases {
            let err = model
                .rename_features(names(list))
                .expect_err("invalid names");
            assert!(matches!(err, ModelError::FeatureNames(_)), "{err:?}");
            assert_eq!(err.to_string(), format!("invalid feature names: {message}"));
            assert_eq!(model.feature_names(), ["f0", "f1"]);
            assert_eq!(model.feature_index("f0"), Some(0));
        }
    }
}

//! Tree-ensemble models (XGBoost JSON/UBJ, LightGBM text) compiled into a
//! flat layout and scored in microseconds. Pure: no I/O beyond reading the
//! model file, no async.

use std::path::Path;

/// The on-disk format of a model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// XGBoost `Booster.save_model("m.json")`.
    XgboostJson,
    /// XGBoost `Booster.save_model("m.ubj")` (Universal Binary JSON).
    XgboostUbj,
    /// LightGBM `Booster.save_model("m.txt")`.
    LightgbmText,
}

impl ModelFormat {
    /// Guess the format from the first bytes of a file.
    pub fn detect(_bytes: &[u8]) -> Option<ModelFormat> {
        None
    }
}

/// What the numbers a model produces mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// One probability of the positive class (`binary:logistic`, `reg:logistic`, LightGBM `binary`).
    Probability,
    /// One raw margin (`binary:logitraw`).
    Margin,
    /// One regression value.
    Regression,
    /// One probability per class (`multi:softprob`, `multi:softmax`, LightGBM `multiclass`).
    ClassProbabilities { classes: usize },
}

/// Why a model could not be loaded or scored.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("invalid model: {0}")]
    Invalid(String),
    #[error("expected {expected} values, got {got}")]
    Shape { expected: usize, got: usize },
}

/// A compiled model, ready to score. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Model {
    format: ModelFormat,
    feature_names: Vec<String>,
    output: OutputKind,
}

impl Model {
    /// Load a model file; `format` `None` detects it from the content.
    pub fn load(path: &Path, format: Option<ModelFormat>) -> Result<Model, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Model::from_bytes(&bytes, format)
    }

    /// Parse and compile a model from its bytes.
    pub fn from_bytes(_bytes: &[u8], _format: Option<ModelFormat>) -> Result<Model, ModelError> {
        Err(ModelError::Invalid("not implemented yet".into()))
    }

    pub fn format(&self) -> ModelFormat {
        self.format
    }
    /// Feature names in model order (`f0..` when the model has none).
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }
    /// Position of a feature by name.
    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.feature_names.iter().position(|n| n == name)
    }
    pub fn num_features(&self) -> usize {
        self.feature_names.len()
    }
    /// Numbers produced per row: 1, or the class count.
    pub fn num_outputs(&self) -> usize {
        match self.output {
            OutputKind::ClassProbabilities { classes } => classes,
            _ => 1,
        }
    }
    pub fn output_kind(&self) -> OutputKind {
        self.output
    }
    pub fn num_trees(&self) -> usize {
        0
    }

    /// Score one row (`num_features` values, NaN = missing) into `out` (`num_outputs` values).
    pub fn predict_row(&self, row: &[f64], out: &mut [f64]) -> Result<(), ModelError> {
        self.predict_batch(row, out)
    }

    /// Score `rows.len() / num_features` rows laid out row-major into `out`
    /// (`num_outputs` values per row).
    pub fn predict_batch(&self, rows: &[f64], _out: &mut [f64]) -> Result<(), ModelError> {
        Err(ModelError::Shape {
            expected: self.num_features(),
            got: rows.len(),
        })
    }
}

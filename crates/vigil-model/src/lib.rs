//! Tree-ensemble models (XGBoost JSON/UBJ, LightGBM text) compiled into a
//! flat layout and scored in microseconds. Pure: no I/O beyond reading the
//! model file, no async.
//!
//! Scores match the training library: XGBoost binary models bit for bit
//! (f32 features and sums, `expf` sigmoid), LightGBM within 1e-6 (f64).

mod forest;
mod lightgbm;
mod names;
mod score;
mod special;
mod ubjson;
mod walk;
mod xgboost;

use std::fmt;
use std::path::Path;

use rustc_hash::FxHashMap;

/// The on-disk format of a model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelFormat {
    /// XGBoost `Booster.save_model("m.json")`.
    XgboostJson,
    /// XGBoost `Booster.save_model("m.ubj")` (Universal Binary JSON).
    XgboostUbj,
    /// LightGBM `Booster.save_model("m.txt")`.
    LightgbmText,
}

impl ModelFormat {
    /// Names accepted by [`ModelFormat::parse_name`], for help texts.
    pub const NAMES: &'static [&'static str] =
        &["xgboost", "xgboost-json", "xgboost-ubj", "lightgbm"];

    /// Guess the format from the first bytes of a file.
    pub fn detect(bytes: &[u8]) -> Option<ModelFormat> {
        let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        if bytes.starts_with(b"tree\n") || bytes.starts_with(b"tree\r\n") {
            return Some(ModelFormat::LightgbmText);
        }
        let start = bytes.iter().position(|b| !b.is_ascii_whitespace())?;
        if bytes[start] != b'{' {
            return None;
        }
        // JSON follows `{` with a key string, whitespace or `}`; UBJSON with
        // the length marker of a key or a container optimisation marker.
        match bytes.get(start + 1) {
            Some(b'i' | b'U' | b'I' | b'l' | b'L' | b'$' | b'#' | b'N') => {
                Some(ModelFormat::XgboostUbj)
            }
            Some(b'"' | b'}') => Some(ModelFormat::XgboostJson),
            Some(b) if b.is_ascii_whitespace() => Some(ModelFormat::XgboostJson),
            _ => None,
        }
    }

    /// Parse a format name as a user writes it: `xgboost` (JSON or UBJ,
    /// told apart from the content when loading), `xgboost-json`,
    /// `xgboost-ubj` or `lightgbm`.
    pub fn parse_name(name: &str) -> Option<ModelFormat> {
        match name.trim().to_ascii_lowercase().as_str() {
            "xgboost" | "xgboost-json" | "xgboost_json" | "json" => Some(ModelFormat::XgboostJson),
            "xgboost-ubj" | "xgboost_ubj" | "ubj" => Some(ModelFormat::XgboostUbj),
            "lightgbm" | "lightgbm-text" | "lightgbm_text" | "lgbm" => {
                Some(ModelFormat::LightgbmText)
            }
            _ => None,
        }
    }

    /// The canonical name (`xgboost-json`, `xgboost-ubj`, `lightgbm`).
    pub fn name(self) -> &'static str {
        match self {
            ModelFormat::XgboostJson => "xgboost-json",
            ModelFormat::XgboostUbj => "xgboost-ubj",
            ModelFormat::LightgbmText => "lightgbm",
        }
    }
}

impl fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ModelFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelFormat::parse_name(s).ok_or_else(|| {
            format!(
                "unknown model format {s:?} (expected one of: {})",
                ModelFormat::NAMES.join(", ")
            )
        })
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
    ClassProbabilities {
        /// Number of classes, and of outputs per row.
        classes: usize,
    },
}

/// Why a model could not be loaded or scored.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model file could not be read.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The path as given.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a model this crate can load; the message names the problem.
    #[error("invalid model: {0}")]
    Invalid(String),
    /// A row or output buffer has the wrong length.
    #[error("expected {expected} values, got {got}")]
    Shape {
        /// Values the model needs.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A batch is not a whole number of rows.
    #[error("batch of {got} values is not a whole number of rows of {row_len} features")]
    Ragged {
        /// Features per row.
        row_len: usize,
        /// Values given.
        got: usize,
    },
    /// Names given to [`Model::rename_features`] do not fit the model.
    #[error("invalid feature names: {0}")]
    FeatureNames(String),
}

#[derive(Debug)]
enum Engine {
    Xgb(xgboost::XgbModel),
    Lgb {
        model: lightgbm::LgbModel,
        /// LightGBM starts every output from zero.
        zeros: Vec<f64>,
    },
}

/// A compiled model, ready to score. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Model {
    format: ModelFormat,
    feature_names: Vec<String>,
    feature_index: FxHashMap<String, usize>,
    /// Whether the file carried the names (see [`Model::has_feature_names`]).
    named: bool,
    output: OutputKind,
    objective: String,
    engine: Engine,
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

    /// Parse and compile a model from its bytes; `format` `None` detects it.
    /// Either XGBoost format accepts both encodings (JSON and UBJ are told
    /// apart from the content).
    pub fn from_bytes(bytes: &[u8], format: Option<ModelFormat>) -> Result<Model, ModelError> {
        let detected = ModelFormat::detect(bytes);
        let format = match (format, detected) {
            (Some(ModelFormat::LightgbmText), _) => ModelFormat::LightgbmText,
            (Some(f @ (ModelFormat::XgboostJson | ModelFormat::XgboostUbj)), d) => match d {
                Some(d @ (ModelFormat::XgboostJson | ModelFormat::XgboostUbj)) => d,
                _ => f,
            },
            (None, Some(d)) => d,
            (None, None) => {
                return Err(ModelError::Invalid(
                    "unrecognised model format (expected xgboost json or ubj, or lightgbm text)"
                        .into(),
                ));
            }
        };
        let engine = match format {
            ModelFormat::XgboostJson => {
                let doc: serde_json::Value = serde_json::from_slice(bytes)
                    .map_err(|e| ModelError::Invalid(format!("xgboost json: {e}")))?;
                Engine::Xgb(xgboost::load(&doc)?)
            }
            ModelFormat::XgboostUbj => {
                let doc = ubjson::parse(bytes).map_err(ModelError::Invalid)?;
                Engine::Xgb(xgboost::load(&doc)?)
            }
            ModelFormat::LightgbmText => {
                let model = lightgbm::load(bytes)?;
                let zeros = vec![0.0; output_count(model.output)];
                Engine::Lgb { model, zeros }
            }
        };
        Ok(Model::new(format, engine))
    }

    fn new(format: ModelFormat, mut engine: Engine) -> Model {
        let (feature_names, named, output, objective) = match &mut engine {
            Engine::Xgb(m) => (
                std::mem::take(&mut m.feature_names),
                m.named,
                m.output,
                std::mem::take(&mut m.objective),
            ),
            Engine::Lgb { model, .. } => (
                std::mem::take(&mut model.feature_names),
                model.named,
                model.output,
                std::mem::take(&mut model.objective),
            ),
        };
        let feature_index = index_of(&feature_names);
        Model {
            format,
            feature_names,
            feature_index,
            named,
            output,
            objective,
            engine,
        }
    }

    /// The format the model was loaded from.
    pub fn format(&self) -> ModelFormat {
        self.format
    }

    /// Feature names in model order (`f0..` for XGBoost models without
    /// names, `Column_0..` for LightGBM ones, unless renamed).
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Whether the model file named its features. `false` for a model
    /// trained on a bare array, whose names [`Model::feature_names`] made up
    /// (`f0..`, `Column_0..`); a rename does not change it.
    pub fn has_feature_names(&self) -> bool {
        self.named
    }

    /// Give the features new names, in model order: as many as the model
    /// has features, each non-empty, no two alike. On error the model keeps
    /// its names. Scoring is by position, so scores do not change.
    pub fn rename_features(&mut self, names: Vec<String>) -> Result<(), ModelError> {
        names::check(&names, self.num_features())?;
        self.feature_index = index_of(&names);
        self.feature_names = names;
        Ok(())
    }

    /// Position of a feature by name.
    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.feature_index.get(name).copied()
    }

    /// Values per row.
    pub fn num_features(&self) -> usize {
        self.feature_names.len()
    }

    /// Numbers produced per row: 1, or the class count.
    pub fn num_outputs(&self) -> usize {
        output_count(self.output)
    }

    /// What the produced numbers mean.
    pub fn output_kind(&self) -> OutputKind {
        self.output
    }

    /// The training objective as the library names it (`binary:logistic`, `binary`, …).
    pub fn objective(&self) -> &str {
        &self.objective
    }

    /// Trees in the ensemble (all classes).
    pub fn num_trees(&self) -> usize {
        match &self.engine {
            Engine::Xgb(m) => m.forest.num_trees(),
            Engine::Lgb { model, .. } => model.forest.num_trees(),
        }
    }

    /// Score one row (`num_features` values, NaN = missing) into `out` (`num_outputs` values).
    pub fn predict_row(&self, row: &[f64], out: &mut [f64]) -> Result<(), ModelError> {
        check(row.len(), self.num_features())?;
        check(out.len(), self.num_outputs())?;
        match &self.engine {
            Engine::Xgb(m) => {
                score::row(&m.forest, &m.base_margin, row, out, |a, o| m.finish(a, o))
            }
            Engine::Lgb { model, zeros } => {
                score::row(&model.forest, zeros, row, out, |a, o| model.finish(a, o))
            }
        }
        Ok(())
    }

    /// Score `rows.len() / num_features` rows laid out row-major into `out`
    /// (`num_outputs` values per row).
    pub fn predict_batch(&self, rows: &[f64], out: &mut [f64]) -> Result<(), ModelError> {
        let nf = self.num_features();
        let k = self.num_outputs();
        let n = if nf == 0 {
            if !rows.is_empty() {
                return Err(ModelError::Ragged {
                    row_len: 0,
                    got: rows.len(),
                });
            }
            out.len() / k
        } else {
            if !rows.len().is_multiple_of(nf) {
                return Err(ModelError::Ragged {
                    row_len: nf,
                    got: rows.len(),
                });
            }
            rows.len() / nf
        };
        check(out.len(), n * k)?;
        match &self.engine {
            Engine::Xgb(m) => {
                score::batch(&m.forest, &m.base_margin, rows, out, |a, o| m.finish(a, o))
            }
            Engine::Lgb { model, zeros } => {
                score::batch(&model.forest, zeros, rows, out, |a, o| model.finish(a, o));
            }
        }
        Ok(())
    }
}

/// Name → position; a name given twice (only possible in a model file)
/// keeps its first position.
fn index_of(names: &[String]) -> FxHashMap<String, usize> {
    let mut index = FxHashMap::default();
    for (i, name) in names.iter().enumerate() {
        index.entry(name.clone()).or_insert(i);
    }
    index
}

fn output_count(kind: OutputKind) -> usize {
    match kind {
        OutputKind::ClassProbabilities { classes } => classes,
        _ => 1,
    }
}

fn check(got: usize, expected: usize) -> Result<(), ModelError> {
    if got == expected {
        Ok(())
    } else {
        Err(ModelError::Shape { expected, got })
    }
}

#[cfg(test)]
mod tests;

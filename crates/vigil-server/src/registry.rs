//! The model registry: every loaded model with its settings (version,
//! threshold, labels, the feature names the inference log keeps).
//!
//! A registry is immutable once built; a reload builds a new one and swaps
//! it into the gateway's runtime, so a request keeps the model it found.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use vigil_model::{Model, ModelFormat, OutputKind};

use crate::config::{Config, FeatureNames, ModelConfig, ModelSource, UnknownFeatures};
use crate::error::ApiError;
use crate::telemetry::{ModelHandles, Telemetry};

/// The loaded models by name.
#[derive(Debug, Default)]
pub struct Registry {
    models: HashMap<String, Arc<ModelEntry>>,
}

impl Registry {
    /// Load and compile every model in `config`; an error names each model
    /// and file that failed.
    pub fn load(config: &Config, telemetry: &Telemetry) -> anyhow::Result<Registry> {
        let mut models = HashMap::with_capacity(config.models.len());
        let mut problems = Vec::new();
        for model_config in &config.models {
            match ModelEntry::load(model_config) {
                Ok(mut entry) => {
                    entry.attach(telemetry);
                    models.insert(model_config.name.clone(), Arc::new(entry));
                }
                Err(err) => problems.push(format!("{err:#}")),
            }
        }
        if !problems.is_empty() {
            anyhow::bail!("cannot load models:\n  - {}", problems.join("\n  - "));
        }
        Ok(Registry { models })
    }

    /// A model by name.
    pub fn get(&self, name: &str) -> Option<&Arc<ModelEntry>> {
        self.models.get(name)
    }

    /// All models, in no particular order.
    pub fn models(&self) -> impl Iterator<Item = &Arc<ModelEntry>> {
        self.models.values()
    }
}

/// A loaded model with its serving settings.
#[derive(Debug)]
pub struct ModelEntry {
    /// Name used in URLs.
    pub name: Arc<str>,
    /// Version reported in responses.
    pub version: String,
    /// The compiled model.
    pub model: Model,
    /// Positive label at or above it (binary probability models).
    pub threshold: f64,
    /// `[negative, positive]` label names.
    pub labels: [String; 2],
    /// What to do with feature names the model does not know.
    pub unknown_features: UnknownFeatures,
    /// Feature name → position, so that a request needs no linear search.
    feature_lookup: HashMap<Box<str>, usize>,
    /// The features in the inference log's key order (sorted by name), so
    /// that a logged input is written without sorting.
    log_keys: Vec<LogKey>,
    /// Unique per load: the in-process cache keys on it, so a reloaded
    /// model never sees the scores of the one it replaced.
    pub load_id: u64,
    /// Its metric handles (name and version), resolved once at load.
    pub(crate) metrics: ModelHandles,
}

/// One feature as the inference log writes it.
#[derive(Debug, Clone)]
pub struct LogKey {
    /// Position in a feature row.
    pub index: usize,
    /// The feature's name.
    pub name: Box<str>,
}

/// Features sorted by name (a name given twice keeps its last position, as
/// a JSON object would).
fn log_keys(names: &[String]) -> Vec<LogKey> {
    let mut keys: Vec<LogKey> = names
        .iter()
        .enumerate()
        .rev()
        .map(|(index, name)| LogKey {
            index,
            name: name.as_str().into(),
        })
        .collect();
    // Stable: among equal names the last position (first after `rev`) wins.
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    keys.dedup_by(|later, earlier| later.name == earlier.name);
    keys
}

/// Give `model` the config's feature names. A model whose file names its
/// features keeps them: the config may only repeat them exactly, so that a
/// stale `features` list cannot silently reorder a named model's inputs.
fn name_features(model: &mut Model, features: &FeatureNames) -> anyhow::Result<()> {
    let origin = &features.origin;
    let (given, wanted) = (features.names.len(), model.num_features());
    if given != wanted {
        anyhow::bail!("{origin} gives {given} feature names but the model has {wanted} features");
    }
    if model.has_feature_names() {
        let differs = model
            .feature_names()
            .iter()
            .zip(&features.names)
            .enumerate()
            .find(|(_, (file, config))| file != config);
        if let Some((i, (file, config))) = differs {
            anyhow::bail!(
                "the model file already names its features and {origin} differs: feature {i} is \
                 `{file}` in the file, `{config}` in the config (remove the key, or repeat the \
                 file's names exactly)"
            );
        }
        return Ok(());
    }
    model
        .rename_features(features.names.clone())
        .with_context(|| format!("{origin} cannot name the model's features"))
}

impl ModelEntry {
    /// Scores `batch` rows (row-major, in model feature order): `batch ×
    /// num_outputs` values. A failure is the server's, never the client's:
    /// the rows were checked against the model before.
    pub(crate) fn predict(&self, rows: &[f64], batch: usize) -> Result<Vec<f64>, ApiError> {
        let mut scores = vec![0.0; batch * self.model.num_outputs()];
        self.model.predict_batch(rows, &mut scores).map_err(|err| {
            ApiError::internal(format!("model `{}` failed to score: {err}", self.name))
        })?;
        Ok(scores)
    }

    /// Load the model of one `[[models]]` entry, with the entry's feature
    /// names if it gives them.
    pub fn load(config: &ModelConfig) -> anyhow::Result<ModelEntry> {
        let mut model = match &config.source {
            ModelSource::Path(path) => Model::load(path, config.format)
                .with_context(|| format!("model `{}` from {}", config.name, path.display()))?,
            ModelSource::Bytes(bytes) => Model::from_bytes(bytes, config.format)
                .with_context(|| format!("model `{}` (bundled)", config.name))?,
        };
        if let Some(features) = &config.features {
            name_features(&mut model, features)
                .with_context(|| format!("model `{}`", config.name))?;
        }
        Ok(ModelEntry::new(config, model))
    }

    /// Wrap an already compiled model.
    pub fn new(config: &ModelConfig, model: Model) -> ModelEntry {
        let feature_lookup = model
            .feature_names()
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str().into(), i))
            .collect();
        let log_keys = log_keys(model.feature_names());
        let mut entry = ModelEntry {
            name: config.name.as_str().into(),
            version: config.version.clone(),
            model,
            threshold: config.threshold,
            labels: config.labels.clone(),
            unknown_features: config.unknown_features,
            feature_lookup,
            log_keys,
            load_id: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
            // Counted in a registry of its own until a server attaches it.
            metrics: ModelHandles::resolve(
                &vigil_metrics::registry::Registry::new(),
                &config.name,
                &config.version,
                &[],
            ),
        };
        entry.attach_to(&vigil_metrics::registry::Registry::new());
        entry
    }

    /// Counts this model's metrics in `telemetry`'s registry.
    pub fn attach(&mut self, telemetry: &Telemetry) {
        self.attach_to(telemetry.registry());
    }

    fn attach_to(&mut self, registry: &vigil_metrics::registry::Registry) {
        let labels: Vec<String> = if self.has_threshold() {
            self.labels.to_vec()
        } else if self.is_multiclass() {
            (0..self.model.num_outputs())
                .map(|i| i.to_string())
                .collect()
        } else {
            Vec::new()
        };
        self.metrics = ModelHandles::resolve(registry, &self.name, &self.version, &labels);
    }

    /// The features in the order the inference log writes them.
    pub fn log_keys(&self) -> &[LogKey] {
        &self.log_keys
    }

    /// Position of a feature by name.
    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.feature_lookup.get(name).copied()
    }

    /// The OIP platform string.
    pub fn platform(&self) -> &'static str {
        match self.model.format() {
            ModelFormat::XgboostJson | ModelFormat::XgboostUbj => "xgboost",
            ModelFormat::LightgbmText => "lightgbm",
        }
    }

    /// Whether responses carry a label decided by the threshold.
    pub fn has_threshold(&self) -> bool {
        matches!(self.model.output_kind(), OutputKind::Probability)
    }

    /// Whether the model gives one probability per class.
    pub fn is_multiclass(&self) -> bool {
        matches!(
            self.model.output_kind(),
            OutputKind::ClassProbabilities { .. }
        )
    }

    /// The label for one row's outputs, if the model kind has labels.
    pub fn label(&self, outputs: &[f64]) -> Option<Label<'_>> {
        match self.model.output_kind() {
            OutputKind::Probability => {
                let positive = outputs.first().is_some_and(|&s| s >= self.threshold);
                Some(Label::Name(&self.labels[usize::from(positive)]))
            }
            OutputKind::ClassProbabilities { .. } => {
                let mut best = 0;
                for (i, &p) in outputs.iter().enumerate() {
                    if p > outputs[best] {
                        best = i;
                    }
                }
                Some(Label::Class(best))
            }
            OutputKind::Margin | OutputKind::Regression => None,
        }
    }

    /// Check that `version` (from a `/versions/{v}` URL) is the served one.
    pub fn check_version(&self, version: &str) -> Result<(), crate::error::ApiError> {
        if version == self.version {
            Ok(())
        } else {
            Err(crate::error::ApiError::not_found(format!(
                "model `{}` has no version `{version}` (served version: `{}`)",
                self.name, self.version
            )))
        }
    }
}

/// A row's label: a configured name or a class index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label<'a> {
    /// One of the configured `labels`.
    Name(&'a str),
    /// The most probable class.
    Class(usize),
}

impl serde::Serialize for Label<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Label::Name(name) => serializer.serialize_str(name),
            Label::Class(class) => serializer.collect_str(class),
        }
    }
}

impl Registry {
    /// Find a model, or a 404 naming it.
    pub fn find(&self, name: &str) -> Result<&Arc<ModelEntry>, crate::error::ApiError> {
        self.get(name)
            .ok_or_else(|| crate::error::ApiError::not_found(format!("model `{name}` not found")))
    }
}

#[cfg(test)]
mod tests;

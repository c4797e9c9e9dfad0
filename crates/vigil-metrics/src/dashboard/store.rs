//! The dashboards in force: the built-in ones, the config file's
//! `[[dashboards]]`, and the API's changes laid over both and kept in
//! `dashboards.json` in the data directory (written atomically), so that a
//! restart keeps them. A config dashboard the API never touched follows the
//! config file; a built-in always exists: deleting one the API replaced
//! brings the built-in back, deleting an untouched one is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{validate_body, validate_name};
use crate::alarm::Problem;

/// The file's name, in the directory given to [`Dashboards::open`].
pub const FILE_NAME: &str = "dashboards.json";

/// Where a dashboard comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Shipped with Vigil.
    Builtin,
    /// The config file's `[[dashboards]]`.
    Config,
    /// Put through the API (persisted in `dashboards.json`).
    Api,
}

/// One dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dashboard {
    /// Its name (letters, digits, `-`, `_`).
    pub name: String,
    /// Where it comes from.
    pub source: Source,
    /// The dashboard body, as sent.
    pub body: Value,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A bad name or body; every problem, each naming its field.
    #[error("{}", join(.0))]
    Invalid(Vec<Problem>),
    /// No dashboard of that name.
    #[error("no dashboard named `{0}`")]
    NotFound(String),
    /// A built-in dashboard cannot be deleted.
    #[error("`{0}` is built in and cannot be deleted (a PUT replaces it)")]
    Builtin(String),
    /// `dashboards.json` could not be read or written.
    #[error("{path}: {message}")]
    Storage {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// Problems as one message: `field: message; field: message`.
pub fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            if p.field.is_empty() {
                p.message.clone()
            } else {
                format!("{}: {}", p.field, p.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What `dashboards.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Overlay {
    /// Bodies put through the API, by name (they win over the config's
    /// and the built-ins: they are newer).
    #[serde(default)]
    put: BTreeMap<String, Value>,
    /// Config dashboards deleted through the API.
    #[serde(default)]
    deleted: Vec<String>,
}

/// Every problem of `name` and `body`, fields prefixed with `prefix`.
pub fn check(name: &str, body: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Err(message) = validate_name(name) {
        problems.push(Problem {
            field: "name".into(),
            message,
        });
    }
    problems.extend(validate_body(body));
    problems
}

/// The dashboards in force.
#[derive(Debug)]
pub struct Dashboards {
    path: Option<PathBuf>,
    /// Its lock also serialises writers.
    inner: Mutex<Inner>,
}

/// The three layers; a config reload replaces the first two.
#[derive(Debug)]
struct Inner {
    builtin: BTreeMap<String, Value>,
    config: BTreeMap<String, Value>,
    /// The API's changes.
    overlay: Overlay,
}

impl Dashboards {
    /// Built-in and config dashboards (validated: every problem reported,
    /// each field named `dashboards[i].field` for the config's), the API's
    /// changes kept in memory only.
    pub fn new(
        builtin: Vec<(String, Value)>,
        config: Vec<(String, Value)>,
    ) -> Result<Dashboards, DashboardError> {
        Dashboards::with(None, builtin, config, Overlay::default())
    }

    /// As [`Dashboards::new`], with the API's changes kept in
    /// `dir/dashboards.json` (read now when it exists).
    pub fn open(
        dir: &Path,
        builtin: Vec<(String, Value)>,
        config: Vec<(String, Value)>,
    ) -> Result<Dashboards, DashboardError> {
        let path = dir.join(FILE_NAME);
        let overlay = load(&path)?;
        Dashboards::with(Some(path), builtin, config, overlay)
    }

    fn with(
        path: Option<PathBuf>,
        builtin: Vec<(String, Value)>,
        config: Vec<(String, Value)>,
        overlay: Overlay,
    ) -> Result<Dashboards, DashboardError> {
        let (builtin, config) = validated(builtin, config)?;
        Ok(Dashboards {
            path,
            inner: Mutex::new(Inner {
                builtin,
                config,
                overlay,
            }),
        })
    }

    /// Replaces the built-in and config dashboards (a config reload), checked
    /// as [`Dashboards::new`] checks them; on a problem nothing changes. The
    /// API's changes stay laid over them: a config dashboard deleted through
    /// the API stays deleted, one the API replaced stays replaced.
    pub fn reconfigure(
        &self,
        builtin: Vec<(String, Value)>,
        config: Vec<(String, Value)>,
    ) -> Result<(), DashboardError> {
        let (builtin, config) = validated(builtin, config)?;
        let mut inner = self.lock();
        inner.builtin = builtin;
        inner.config = config;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn resolve(&self, name: &str) -> Option<Dashboard> {
        let overlay = &self.overlay;
        if let Some(body) = overlay.put.get(name) {
            return Some(Dashboard {
                name: name.to_owned(),
                source: Source::Api,
                body: body.clone(),
            });
        }
        if let Some(body) = self.config.get(name)
            && !overlay.deleted.iter().any(|d| d == name)
        {
            return Some(Dashboard {
                name: name.to_owned(),
                source: Source::Config,
                body: body.clone(),
            });
        }
        self.builtin.get(name).map(|body| Dashboard {
            name: name.to_owned(),
            source: Source::Builtin,
            body: body.clone(),
        })
    }
}

impl Dashboards {
    /// Every dashboard, by name.
    pub fn list(&self) -> Vec<Dashboard> {
        let inner = self.lock();
        let mut names: Vec<&String> = inner
            .builtin
            .keys()
            .chain(inner.config.keys())
            .chain(inner.overlay.put.keys())
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|name| inner.resolve(name))
            .collect()
    }

    /// One dashboard.
    pub fn get(&self, name: &str) -> Option<Dashboard> {
        self.lock().resolve(name)
    }

    /// Creates or replaces `name` (validated; persisted before it is in
    /// force).
    pub fn put(&self, name: &str, body: Value) -> Result<Dashboard, DashboardError> {
        let problems = check(name, &body);
        if !problems.is_empty() {
            return Err(DashboardError::Invalid(problems));
        }
        let mut inner = self.lock();
        let mut next = inner.overlay.clone();
        next.put.insert(name.to_owned(), body);
        next.deleted.retain(|d| d != name);
        self.persist(&next)?;
        inner.overlay = next;
        inner.resolve(name).ok_or_else(|| {
            let path = self.path.as_deref().unwrap_or(Path::new(FILE_NAME));
            storage(
                path,
                format!("dashboard {name:?} was stored but does not resolve"),
            )
        })
    }

    /// Deletes `name`: what the API put goes (a built-in or config
    /// dashboard of that name shows again, as a config dashboard deleted
    /// through the API does not); a config dashboard is marked deleted; an
    /// untouched built-in is refused.
    pub fn delete(&self, name: &str) -> Result<(), DashboardError> {
        let mut inner = self.lock();
        let mut next = inner.overlay.clone();
        if next.put.remove(name).is_some() {
            if inner.config.contains_key(name) && !next.deleted.iter().any(|d| d == name) {
                next.deleted.push(name.to_owned());
            }
        } else if inner.config.contains_key(name) && !next.deleted.iter().any(|d| d == name) {
            next.deleted.push(name.to_owned());
        } else if inner.builtin.contains_key(name) {
            return Err(DashboardError::Builtin(name.to_owned()));
        } else {
            return Err(DashboardError::NotFound(name.to_owned()));
        }
        self.persist(&next)?;
        inner.overlay = next;
        Ok(())
    }

    fn persist(&self, overlay: &Overlay) -> Result<(), DashboardError> {
        match &self.path {
            Some(path) => store(path, overlay),
            None => Ok(()),
        }
    }
}

type Layers = (BTreeMap<String, Value>, BTreeMap<String, Value>);

/// The built-in and config dashboards by name, every problem reported, each
/// field named `dashboards[i].field` for the config's.
fn validated(
    builtin: Vec<(String, Value)>,
    config: Vec<(String, Value)>,
) -> Result<Layers, DashboardError> {
    let mut problems = Vec::new();
    let mut builtins = BTreeMap::new();
    for (name, body) in builtin {
        for p in check(&name, &body) {
            problems.push(Problem {
                field: format!("built-in dashboard {name}: {}", p.field),
                message: p.message,
            });
        }
        builtins.insert(name, body);
    }
    let mut configured = BTreeMap::new();
    for (i, (name, body)) in config.into_iter().enumerate() {
        for p in check(&name, &body) {
            let field = if p.field.is_empty() {
                format!("dashboards[{i}]")
            } else {
                format!("dashboards[{i}].{}", p.field)
            };
            problems.push(Problem {
                field,
                message: p.message,
            });
        }
        if configured.insert(name.clone(), body).is_some() {
            problems.push(Problem {
                field: format!("dashboards[{i}].name"),
                message: format!("`{name}` is already the name of another dashboard"),
            });
        }
    }
    if !problems.is_empty() {
        return Err(DashboardError::Invalid(problems));
    }
    Ok((builtins, configured))
}

fn storage(path: &Path, message: String) -> DashboardError {
    DashboardError::Storage {
        path: path.to_owned(),
        message,
    }
}

/// Reads the overlay (empty when the file does not exist); an invalid
/// dashboard in it is an error naming it.
fn load(path: &Path) -> Result<Overlay, DashboardError> {
    let overlay: Overlay = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| storage(path, format!("not a dashboards file: {e}")))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Overlay::default(),
        Err(e) => return Err(storage(path, e.to_string())),
    };
    for (name, body) in &overlay.put {
        if let Some(p) = check(name, body).first() {
            return Err(storage(
                path,
                format!("dashboard `{name}`: {}: {}", p.field, p.message),
            ));
        }
    }
    Ok(overlay)
}

/// Writes the overlay atomically (the metric store's `write_atomic`: a
/// synced temporary file renamed over the old one, the directory synced).
fn store(path: &Path, overlay: &Overlay) -> Result<(), DashboardError> {
    let bytes = serde_json::to_vec_pretty(overlay).map_err(|e| storage(path, e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .and_then(|()| crate::tsdb::persist::write_atomic(path, &bytes))
        .map_err(|e| storage(path, e.to_string()))
}

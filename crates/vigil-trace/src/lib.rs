//! Vigil's traces, without HTTP: the span model (`model`), with X-Ray's
//! semantics (`../shared/SEMANTICS.md` §6) and OpenTelemetry's ids.
//! Propagation headers (`propagation`), sampling rules (`sampling`), the
//! trace store, the filter language, the service map and the OTLP codec
//! build on it.

pub mod filter;
pub mod model;
pub mod propagation;
pub mod sampling;
pub mod service_map;

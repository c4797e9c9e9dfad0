//! Vigil's traces, without HTTP: the span model (`model`), with X-Ray's
//! semantics (`../shared/SEMANTICS.md` §6) and OpenTelemetry's ids.
//! Propagation headers, sampling rules, the trace store, the filter
//! language, the service map and the OTLP codec build on it.

pub mod filter;
pub mod model;
pub mod service_map;

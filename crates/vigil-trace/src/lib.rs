//! Vigil's traces, without HTTP: the span model (`model`), with X-Ray's
//! semantics (`../shared/SEMANTICS.md` §6) and OpenTelemetry's ids.
//! Propagation headers, sampling rules, the trace store, the filter
//! language, the service map and the OTLP codec build on it.
//! `store` keeps spans and trace summaries on the segment log; `otlp`
//! encodes and decodes OTLP trace exports (protobuf and JSON).

pub mod model;
pub mod otlp;
pub mod store;

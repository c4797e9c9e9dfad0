//! Vigil's traces, without HTTP: the span model (`model`), with X-Ray's
//! semantics (`../shared/SEMANTICS.md` §6) and OpenTelemetry's ids.
//! Propagation headers (`propagation`), sampling rules (`sampling`), the
//! filter language (`filter`) and the service map (`service_map`) build on
//! it.
//! `store` keeps spans and trace summaries on the segment log; `otlp`
//! encodes and decodes OTLP trace exports (protobuf and JSON).

pub mod filter;
pub mod model;
pub mod otlp;
pub mod propagation;
pub mod sampling;
pub mod service_map;
pub mod store;

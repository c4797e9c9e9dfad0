//! OTLP trace codec (placeholder while the store builds).

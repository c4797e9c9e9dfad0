//! The gateway in front of the handlers: API keys, token-bucket throttling,
//! the concurrency limit and the request timeout, plus the [`Runtime`] that
//! a reload swaps atomically.
//!
//! Order for a scoring request: key check (401/403) → the key's bucket →
//! the global bucket (429 + `Retry-After`) → a concurrency permit
//! (429/503 at once, never a queue) → the handler under the timeout (504).
//! A throttled request never reaches the handler, the model or the store.

pub mod keys;
mod middleware;
#[cfg(test)]
mod reload_tests;
pub mod runtime;
#[cfg(test)]
pub(crate) mod tests;
pub mod throttle;

pub use crate::telemetry::ThrottleReason;
pub use keys::{KeyName, hash_key};
pub(crate) use middleware::{
    Admitted, IntegrationLatency, Refused, RouteClass, admit, classify, middleware,
};
pub use runtime::{Gateway, Runtime};

//! Vigil's logs, without HTTP: the filter-pattern language of metric
//! filters and subscriptions (`pattern`), the Insights-style query
//! language (`query`), log groups stored on the segment log (`store`), and
//! the pipeline every batch goes through (`pipeline`), and subscription
//! filters that forward matching events (`subscription`).
//! Semantics: `../shared/SEMANTICS.md` §3–§5.

pub mod pattern;
pub mod pipeline;
pub mod query;
pub mod store;
pub mod subscription;

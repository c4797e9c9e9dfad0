//! Vigil's logs, without HTTP: the filter-pattern language of metric
//! filters and subscriptions (`pattern`), the Insights-style query
//! language (`query`), log groups stored on the segment log (`store`), the
//! pipeline every batch goes through (`pipeline`), metric filters
//! (`metric_filter`) and metrics embedded in events (`emf`).
//! Semantics: `../shared/SEMANTICS.md` §3–§5.

pub mod emf;
pub mod metric_filter;
pub mod pattern;
pub mod pipeline;
pub mod query;
pub mod store;

//! Vigil's logs, without HTTP: the filter-pattern language of metric
//! filters and subscriptions (`pattern`), the Insights-style query
//! language (`query`), log groups stored on the segment log (`store`), the
//! pipeline every batch goes through (`pipeline`), metric filters
//! (`metric_filter`), metrics embedded in events (`emf`), subscription
//! filters that forward matching events (`subscription`), the live tail
//! that watches the pipeline (`tail`), and the context lines around a
//! query's matches (`context`).
//! Semantics: `../shared/SEMANTICS.md` §3–§5.

pub mod context;
pub mod emf;
pub mod metric_filter;
pub mod pattern;
pub mod pipeline;
pub mod query;
pub mod store;
pub mod subscription;
pub mod tail;

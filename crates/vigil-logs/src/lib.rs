//! Vigil's logs, without HTTP: the filter-pattern language of metric
//! filters and subscriptions (`pattern`), the Insights-style query
//! language (`query`), and log groups stored on the segment log (`store`).
//! Semantics: `../shared/SEMANTICS.md` §3–§5.

pub mod pattern;
pub mod query;
pub mod store;

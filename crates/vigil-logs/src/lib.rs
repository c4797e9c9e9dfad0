//! Vigil's logs, without HTTP: the filter-pattern language of metric
//! filters and subscriptions (`pattern`), and the Insights-style query
//! language (`query`). Semantics: `../shared/SEMANTICS.md` §3–§5.

pub mod pattern;
pub mod query;

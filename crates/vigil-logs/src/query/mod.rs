//! The Insights-style query language (SEMANTICS §4): parse and run.

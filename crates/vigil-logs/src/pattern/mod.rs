//! The filter-pattern language (SEMANTICS §3.1): parse, match, extract.

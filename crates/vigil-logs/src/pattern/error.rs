//! The one error a pattern can fail to parse with.

/// A pattern that does not parse: where (1-based column, in characters) and
/// what was expected. Displays as `column 14: expected a value after "=",
/// found end of pattern`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct PatternError {
    /// 1-based column, counted in characters, where the problem starts.
    pub column: usize,
    /// What was expected and what came, or which limit was passed.
    pub message: String,
}

impl PatternError {
    /// Builds an error at `column` with `message`.
    pub fn new(column: usize, message: impl Into<String>) -> Self {
        PatternError {
            column,
            message: message.into(),
        }
    }

    /// The error code at the API boundary: always the client's mistake.
    pub fn code(&self) -> &'static str {
        "bad_request"
    }
}

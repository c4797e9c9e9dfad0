//! The store's error type and its classification for the server.

/// What kind of failure an error is; the server maps each code to an HTTP
/// status in its one code→status table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The caller sent something invalid (HTTP 400).
    BadRequest,
    /// The thing asked for does not exist (HTTP 404).
    NotFound,
    /// The request collides with stored state (HTTP 409).
    Conflict,
    /// The store cannot take the request now; retrying later may work (HTTP 503).
    Unavailable,
    /// A bug or an unexpected state (HTTP 500).
    Internal,
}

impl ErrorCode {
    /// The code's stable snake_case name, usable as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// Errors returned by the inference log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A request id is empty, longer than 128 bytes or holds control characters.
    #[error("invalid request id: {reason}")]
    InvalidRequestId {
        /// What is wrong with the id.
        reason: &'static str,
    },
    /// A list cursor could not be decoded.
    #[error("invalid cursor")]
    InvalidCursor,
    /// A query parameter is out of range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No record has this id.
    #[error("no inference record with id `{request_id}`")]
    NotFound {
        /// The id looked for.
        request_id: String,
    },
    /// The backend (database, disk) failed or cannot be reached.
    #[error("store backend unavailable: {0}")]
    Unavailable(String),
    /// The spill queue is full and the policy is `reject`.
    #[error("store unavailable and spill queue full")]
    SpillFull,
    /// The store is shutting down or its writer has stopped.
    #[error("store is closed")]
    Closed,
    /// The backend refused the data itself (e.g. a PostgreSQL data
    /// exception); retrying or spilling it would fail again.
    #[error("store rejected the record: {0}")]
    Rejected(String),
    /// The configuration is invalid.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// The data directory cannot be used as it is (held by another
    /// process, or holding a file that is not the store's); found at open.
    #[error("unusable data directory: {0}")]
    DataDir(String),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A local file operation failed.
    #[error("store i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// The error's classification.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::InvalidRequestId { .. }
            | StoreError::InvalidCursor
            | StoreError::InvalidParameter { .. }
            | StoreError::Rejected(_) => ErrorCode::BadRequest,
            StoreError::NotFound { .. } => ErrorCode::NotFound,
            // A local file that cannot be written (a full disk) is a write
            // the log cannot take now, like an unreachable database.
            StoreError::Unavailable(_)
            | StoreError::SpillFull
            | StoreError::Closed
            | StoreError::Io(_) => ErrorCode::Unavailable,
            StoreError::Config(_) | StoreError::DataDir(_) | StoreError::Corrupt(_) => {
                ErrorCode::Internal
            }
        }
    }

    /// True when the failure lies with the backend rather than the request,
    /// so the record may go to the spill queue instead.
    pub fn is_backend_failure(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::Io(_) | StoreError::Closed
        )
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::Unavailable(format!("sqlite: {err}"))
    }
}

impl From<vigil_segments::Error> for StoreError {
    fn from(err: vigil_segments::Error) -> Self {
        use vigil_segments::Error as E;
        match err {
            // A full disk or a failing file: retrying later may work (503).
            E::Full { .. } | E::Io { .. } => StoreError::Unavailable(err.to_string()),
            // Found at open: the data directory needs a person.
            E::Locked { .. } | E::Foreign { .. } => StoreError::DataDir(err.to_string()),
            E::TooLarge { .. } => StoreError::Rejected(err.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        // SQLSTATE class 22 is "data exception": the row, not the server, is at fault.
        match err.code() {
            Some(state) if state.code().starts_with("22") => {
                StoreError::Rejected(format!("postgres: {err}"))
            }
            _ => StoreError::Unavailable(format!("postgres: {err}")),
        }
    }
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_classify_errors() {
        let err = StoreError::InvalidRequestId { reason: "too long" };
        assert_eq!(err.code(), ErrorCode::BadRequest);
        assert_eq!(err.to_string(), "invalid request id: too long");
        assert_eq!(StoreError::SpillFull.code().as_str(), "unavailable");
        assert!(StoreError::Unavailable("x".into()).is_backend_failure());
        assert!(!StoreError::InvalidCursor.is_backend_failure());
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(StoreError::Io(full).code(), ErrorCode::Unavailable);
    }
}

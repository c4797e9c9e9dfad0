//! PostgreSQL backend (placeholder while the SQLite path is built).

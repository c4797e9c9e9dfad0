//! The SQLite schema and its migrations.

use rusqlite::{Connection, TransactionBehavior, params};

use crate::error::Result;

/// Migrations, applied in order; the index is the schema version minus one.
pub(super) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE inferences (
        request_id TEXT NOT NULL,
        received_at_us INTEGER NOT NULL,
        model TEXT NOT NULL,
        version TEXT NOT NULL,
        input TEXT NOT NULL,
        input_fingerprint TEXT NOT NULL,
        scores BLOB NOT NULL,
        label TEXT,
        threshold REAL,
        latency_us INTEGER NOT NULL,
        cached INTEGER NOT NULL,
        api_key_name TEXT,
        trace_id TEXT,
        UNIQUE (request_id, model)
    );
    CREATE INDEX inferences_received_at ON inferences (received_at_us, request_id, model);",
    // v2: inputs in binary form (rows written as JSON text stay readable),
    // no stored fingerprint, and a time index of times alone (SQLite adds the
    // rowid): for a fraud row the input alone shrinks from 702 to 386 bytes
    // and the 64-byte fingerprint goes.
    "CREATE TABLE inferences_v2 (
        request_id TEXT NOT NULL,
        received_at_us INTEGER NOT NULL,
        model TEXT NOT NULL,
        version TEXT NOT NULL,
        input BLOB NOT NULL,
        scores BLOB NOT NULL,
        label TEXT,
        threshold REAL,
        latency_us INTEGER NOT NULL,
        cached INTEGER NOT NULL,
        api_key_name TEXT,
        trace_id TEXT,
        UNIQUE (request_id, model)
    );
    INSERT INTO inferences_v2
        SELECT request_id, received_at_us, model, version, input, scores, label, threshold,
            latency_us, cached, api_key_name, trace_id
        FROM inferences ORDER BY rowid;
    DROP TABLE inferences;
    ALTER TABLE inferences_v2 RENAME TO inferences;
    CREATE INDEX inferences_received_at ON inferences (received_at_us);",
    // v3: records are journaled first and applied by the indexer; this is
    // the journal position of the last record applied (no row: none yet).
    "CREATE TABLE journal_applied (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        segment INTEGER NOT NULL,
        offset INTEGER NOT NULL
    );",
];

pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version INTEGER PRIMARY KEY,
            applied_at_us INTEGER NOT NULL
        )",
    )?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    let now = crate::clock::Clock::now_us(&crate::clock::SystemClock);
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
        if version > current {
            if current > 0 {
                // v2 rewrites the table: say why a large log takes a while to open.
                tracing::info!(
                    from = current,
                    to = version,
                    "migrating the inference log schema"
                );
            }
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_version (version, applied_at_us) VALUES (?1, ?2)",
                params![version, now],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

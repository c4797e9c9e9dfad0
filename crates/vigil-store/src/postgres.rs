//! The PostgreSQL backend: same schema and behaviour as SQLite, one
//! group-commit writer task doing batched conditional inserts, and a
//! separate connection for reads. Migrations run at start-up.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

use crate::InferenceLog;
use crate::config::StoreConfig;
use crate::error::{Result, StoreError};
use crate::input::Input;
use crate::record::{
    AppendOutcome, InferenceRecord, ListQuery, Page, page_from_rows, scores_from_bytes,
    scores_to_bytes,
};
use crate::sql::{COLUMNS, Param, first_occurrences, list_sql};
use crate::sqlite::judge;

/// Serialises concurrent migrations from several replicas.
const MIGRATION_LOCK: i64 = 0x5649_4749_4c53; // "VIGILS"

/// Migrations, applied in order; the index is the schema version minus one.
const MIGRATIONS: &[&str] = &[
    r#"CREATE TABLE inferences (
        request_id TEXT COLLATE "C" NOT NULL,
        received_at_us BIGINT NOT NULL,
        model TEXT COLLATE "C" NOT NULL,
        version TEXT NOT NULL,
        input TEXT NOT NULL,
        input_fingerprint TEXT NOT NULL,
        scores BYTEA NOT NULL,
        label TEXT,
        threshold DOUBLE PRECISION,
        latency_us BIGINT NOT NULL,
        cached BOOLEAN NOT NULL,
        api_key_name TEXT,
        trace_id TEXT,
        PRIMARY KEY (request_id, model)
    );
    CREATE INDEX inferences_received_at ON inferences (received_at_us, request_id, model);"#,
    // v2: inputs in binary form (rows written as JSON text keep it, as
    // UTF-8 bytes, and stay readable); no stored fingerprint.
    "ALTER TABLE inferences DROP COLUMN input_fingerprint;
    ALTER TABLE inferences ALTER COLUMN input TYPE BYTEA USING convert_to(input, 'UTF8');",
];

type Ack = oneshot::Sender<Result<Vec<AppendOutcome>>>;

/// The PostgreSQL inference log.
#[derive(Debug)]
pub struct PostgresLog {
    pg: tokio_postgres::Config,
    tx: mpsc::Sender<(Vec<InferenceRecord>, Ack)>,
    reader: Mutex<Option<Arc<Client>>>,
}

impl PostgresLog {
    /// Connects to `config.url`, applies migrations and starts the writer.
    /// Fails when the server cannot be reached.
    pub async fn connect(config: &StoreConfig) -> Result<Self> {
        let url = config
            .url
            .as_deref()
            .ok_or_else(|| StoreError::Config("`url` is unset".into()))?;
        let mut pg = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Config(format!("bad postgres url: {e}")))?;
        pg.connect_timeout(Duration::from_millis(config.connect_timeout_ms));
        pg.application_name("vigil");
        let mut client = connect(&pg).await?;
        migrate(&mut client).await?;
        let (tx, rx) = mpsc::channel(config.writer_queue_capacity);
        tokio::spawn(writer(
            pg.clone(),
            Some(client),
            rx,
            config.max_batch_records,
        ));
        Ok(PostgresLog {
            pg,
            tx,
            reader: Mutex::new(None),
        })
    }

    async fn reader(&self) -> Result<Arc<Client>> {
        if let Ok(slot) = self.reader.lock()
            && let Some(client) = slot.as_ref()
            && !client.is_closed()
        {
            return Ok(Arc::clone(client));
        }
        let client = Arc::new(connect(&self.pg).await?);
        if let Ok(mut slot) = self.reader.lock() {
            *slot = Some(Arc::clone(&client));
        }
        Ok(client)
    }
}

async fn connect(pg: &tokio_postgres::Config) -> Result<Client> {
    let (client, connection) = pg.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "postgres connection closed");
        }
    });
    Ok(client)
}

async fn migrate(client: &mut Client) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let current: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await?
        .try_get(0)?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        if version > current {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&version],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Drains the queue and writes what it finds in one statement per chunk.
async fn writer(
    pg: tokio_postgres::Config,
    mut client: Option<Client>,
    mut rx: mpsc::Receiver<(Vec<InferenceRecord>, Ack)>,
    max_batch: usize,
) {
    while let Some(first) = rx.recv().await {
        let mut count = first.0.len();
        let mut pending = vec![first];
        while count < max_batch {
            match rx.try_recv() {
                Ok(next) => {
                    count += next.0.len();
                    pending.push(next);
                }
                Err(_) => break,
            }
        }
        let records: Vec<InferenceRecord> = pending
            .iter()
            .flat_map(|(r, _)| r.iter().cloned())
            .collect();
        let result = match client.as_ref().filter(|c| !c.is_closed()) {
            Some(c) => insert_all(c, &records).await,
            None => match connect(&pg).await {
                Ok(c) => {
                    let r = insert_all(&c, &records).await;
                    client = Some(c);
                    r
                }
                Err(err) => Err(err),
            },
        };
        match result {
            Ok(mut outcomes) => {
                for (records, ack) in pending.into_iter().rev() {
                    let tail = outcomes.split_off(outcomes.len().saturating_sub(records.len()));
                    let _ = ack.send(Ok(tail));
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "postgres group commit failed");
                let msg = err.to_string();
                for (_, ack) in pending {
                    let _ = ack.send(Err(StoreError::Unavailable(msg.clone())));
                }
            }
        }
    }
}

async fn insert_all(client: &Client, records: &[InferenceRecord]) -> Result<Vec<AppendOutcome>> {
    let firsts = first_occurrences(records);
    let unique: Vec<&InferenceRecord> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| firsts[*i] == *i)
        .map(|(_, r)| r)
        .collect();
    let mut inserted: HashSet<(String, String)> = HashSet::with_capacity(unique.len());
    for chunk in unique.chunks(2000) {
        let sql = format!(
            "INSERT INTO inferences ({COLUMNS}) \
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::bytea[], \
                 $6::bytea[], $7::text[], $8::float8[], $9::int8[], $10::bool[], $11::text[], \
                 $12::text[]) \
             ON CONFLICT (request_id, model) DO NOTHING RETURNING request_id, model"
        );
        let ids: Vec<&str> = chunk.iter().map(|r| r.request_id.as_str()).collect();
        let times: Vec<i64> = chunk.iter().map(|r| r.received_at_us).collect();
        let models: Vec<&str> = chunk.iter().map(|r| r.model.as_str()).collect();
        let versions: Vec<&str> = chunk.iter().map(|r| r.version.as_str()).collect();
        let inputs: Vec<&[u8]> = chunk.iter().map(|r| r.input.as_bytes()).collect();
        let scores: Vec<Vec<u8>> = chunk.iter().map(|r| scores_to_bytes(&r.scores)).collect();
        let labels: Vec<Option<&str>> = chunk.iter().map(|r| r.label.as_deref()).collect();
        let thresholds: Vec<Option<f64>> = chunk.iter().map(|r| r.threshold).collect();
        let latencies: Vec<i64> = chunk.iter().map(|r| r.latency_us).collect();
        let cached: Vec<bool> = chunk.iter().map(|r| r.cached).collect();
        let keys: Vec<Option<&str>> = chunk.iter().map(|r| r.api_key_name.as_deref()).collect();
        let traces: Vec<Option<&str>> = chunk.iter().map(|r| r.trace_id.as_deref()).collect();
        let rows = client
            .query(
                &sql,
                &[
                    &ids,
                    &times,
                    &models,
                    &versions,
                    &inputs,
                    &scores,
                    &labels,
                    &thresholds,
                    &latencies,
                    &cached,
                    &keys,
                    &traces,
                ],
            )
            .await?;
        for row in rows {
            inserted.insert((row.try_get(1)?, row.try_get(0)?));
        }
    }
    // Keys that were not inserted by us: read what is stored.
    let missing: Vec<&InferenceRecord> = unique
        .iter()
        .copied()
        .filter(|r| !inserted.contains(&(r.model.clone(), r.request_id.clone())))
        .collect();
    let mut stored = std::collections::HashMap::with_capacity(missing.len());
    if !missing.is_empty() {
        let ids: Vec<&str> = missing.iter().map(|r| r.request_id.as_str()).collect();
        let models: Vec<&str> = missing.iter().map(|r| r.model.as_str()).collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM inferences WHERE (request_id, model) IN \
             (SELECT * FROM unnest($1::text[], $2::text[]))"
        );
        for row in client.query(&sql, &[&ids, &models]).await? {
            let r = from_row(&row)?;
            stored.insert((r.model.clone(), r.request_id.clone()), r);
        }
    }
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let key = (r.model.clone(), r.request_id.clone());
            let first = &records[firsts[i]];
            if inserted.contains(&key) {
                if firsts[i] == i {
                    Ok(AppendOutcome::Inserted)
                } else {
                    Ok(judge(r, first.clone()))
                }
            } else {
                let existing = stored
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| StoreError::Unavailable("conflicting row vanished".into()))?;
                Ok(judge(r, existing))
            }
        })
        .collect()
}

fn from_row(row: &Row) -> Result<InferenceRecord> {
    let input: Vec<u8> = row.try_get(4)?;
    let scores: Vec<u8> = row.try_get(5)?;
    Ok(InferenceRecord {
        request_id: row.try_get(0)?,
        received_at_us: row.try_get(1)?,
        model: row.try_get(2)?,
        version: row.try_get(3)?,
        input: Input::from_stored(input)?,
        scores: scores_from_bytes(&scores)?,
        label: row.try_get(6)?,
        threshold: row.try_get(7)?,
        latency_us: row.try_get(8)?,
        cached: row.try_get(9)?,
        api_key_name: row.try_get(10)?,
        trace_id: row.try_get(11)?,
    })
}

#[async_trait]
impl InferenceLog for PostgresLog {
    async fn lookup(&self, model: &str, request_id: &str) -> Result<Option<InferenceRecord>> {
        let client = self.reader().await?;
        let sql = format!("SELECT {COLUMNS} FROM inferences WHERE request_id = $1 AND model = $2");
        let row = client.query_opt(&sql, &[&request_id, &model]).await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn append_batch(&self, records: Vec<InferenceRecord>) -> Result<Vec<AppendOutcome>> {
        for r in &records {
            r.validate()?;
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let (ack, done) = oneshot::channel();
        self.tx
            .send((records, ack))
            .await
            .map_err(|_| StoreError::Closed)?;
        done.await.map_err(|_| StoreError::Closed)?
    }

    async fn get(&self, request_id: &str) -> Result<Vec<InferenceRecord>> {
        let client = self.reader().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM inferences WHERE request_id = $1 \
             ORDER BY received_at_us DESC, model DESC"
        );
        let rows = client.query(&sql, &[&request_id]).await?;
        rows.iter().map(from_row).collect()
    }

    async fn list(&self, query: &ListQuery) -> Result<Page> {
        let limit = query.effective_limit()?;
        let (sql, params) = list_sql(query, limit, |n| format!("${n}"))?;
        let boxed: Vec<Box<dyn ToSql + Sync + Send>> = params
            .into_iter()
            .map(|p| -> Box<dyn ToSql + Sync + Send> {
                match p {
                    Param::Int(i) => Box::new(i),
                    Param::Text(s) => Box::new(s),
                }
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = boxed
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let client = self.reader().await?;
        let rows = client.query(&sql, &refs).await?;
        let records = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok(page_from_rows(records, limit))
    }

    async fn delete_expired(&self, before_us: i64, batch_size: usize) -> Result<u64> {
        let client = self.reader().await?;
        let limit = i64::try_from(batch_size).unwrap_or(i64::MAX);
        let deleted = client
            .execute(
                "DELETE FROM inferences WHERE ctid IN \
                 (SELECT ctid FROM inferences WHERE received_at_us < $1 LIMIT $2)",
                &[&before_us, &limit],
            )
            .await?;
        Ok(deleted)
    }
}

/// `url` with its database name replaced by `db` (query parameters kept):
/// how the test suites point a server URL at a throwaway database.
pub fn url_with_database(url: &str, db: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let host_part = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    format!("{host_part}/{db}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            url_with_database("postgres://u@127.0.0.1:5432/postgres", "x"),
            "postgres://u@127.0.0.1:5432/x"
        );
        assert_eq!(
            url_with_database("postgres://u@h:1", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(
            url_with_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}

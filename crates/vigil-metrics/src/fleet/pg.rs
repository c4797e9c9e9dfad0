//! The shared store's tables and statements.
//!
//! - `vigil_metric_series`: one row per series (its key as canonical JSON,
//!   and whether it holds 1 s and/or 60 s data, for the period rules).
//! - `vigil_metric_points`: rows of (series, tier resolution, bucket start,
//!   replica, part, encoded [`Aggregate`]); part 0 is a replica's running
//!   aggregate of a coarse bucket (replaced as it grows), other parts are
//!   rows of their own (every 1 s row, late data). A reader merges every row
//!   of a bucket, whichever replica wrote it. Writes are idempotent, so a
//!   retried batch that had landed counts nothing twice.
//! - `vigil_alarm_state`: the evaluating replica's alarm state document.

use std::collections::HashMap;

use tokio_postgres::{Client, NoTls};

use crate::aggregate::Aggregate;
use crate::model::SeriesKey;

use super::outbox::Row;

/// Serializes schema changes of replicas starting together.
const MIGRATION_LOCK: i64 = 0x5649_474c_4d49_4752; // "VIGLMIGR"
/// The lock whose holder evaluates the alarms.
pub(crate) const ALARM_LOCK: i64 = 0x5649_474c_414c_524d; // "VIGLALRM"

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vigil_metric_series (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    has_high BOOLEAN NOT NULL DEFAULT FALSE,
    has_standard BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE IF NOT EXISTS vigil_metric_points (
    series_id BIGINT NOT NULL,
    resolution_s INTEGER NOT NULL,
    bucket_ms BIGINT NOT NULL,
    replica TEXT NOT NULL,
    part BIGINT NOT NULL,
    aggregate BYTEA NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS vigil_metric_points_key
    ON vigil_metric_points (series_id, resolution_s, bucket_ms, replica, part);
CREATE INDEX IF NOT EXISTS vigil_metric_points_by_time
    ON vigil_metric_points USING BRIN (bucket_ms);
CREATE TABLE IF NOT EXISTS vigil_alarm_state (
    id INTEGER PRIMARY KEY,
    document BYTEA NOT NULL,
    replica TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
";

/// Opens a connection whose driver runs on the current runtime.
pub(crate) async fn connect(pg: &tokio_postgres::Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = pg.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "metrics.url: postgres connection closed");
        }
    });
    Ok(client)
}

/// Creates the tables if they are missing.
pub(crate) async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(SCHEMA).await?;
    tx.commit().await
}

/// The key of a series as stored (serde's field order; dimensions sorted).
pub(crate) fn key_text(key: &SeriesKey) -> String {
    serde_json::to_string(key).unwrap_or_default()
}

/// What the writer knows of a series row: its id and flags.
pub(crate) type SeriesCache = HashMap<SeriesKey, (i64, bool, bool)>;

/// Writes `rows` in one transaction, creating series rows as needed.
pub(crate) async fn write_rows(
    client: &mut Client,
    cache: &mut SeriesCache,
    replica: &str,
    rows: &[Row],
) -> Result<(), tokio_postgres::Error> {
    let mut flags: HashMap<&SeriesKey, (bool, bool)> = HashMap::new();
    for row in rows {
        let f = flags.entry(&row.key).or_default();
        f.0 |= row.high;
        f.1 |= !row.high;
    }
    let tx = client.transaction().await?;
    let upsert = tx
        .prepare(
            "INSERT INTO vigil_metric_series (key, namespace, name, has_high, has_standard)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (key) DO UPDATE SET
                has_high = vigil_metric_series.has_high OR EXCLUDED.has_high,
                has_standard = vigil_metric_series.has_standard OR EXCLUDED.has_standard
             RETURNING id, has_high, has_standard",
        )
        .await?;
    let mut learned = Vec::new();
    for (key, (high, standard)) in &flags {
        let known = cache
            .get(*key)
            .is_some_and(|&(_, h, s)| (h || !high) && (s || !standard));
        if !known {
            let row = tx
                .query_one(
                    &upsert,
                    &[&key_text(key), &key.namespace, &key.name, high, standard],
                )
                .await?;
            learned.push(((*key).clone(), (row.get(0), row.get(1), row.get(2))));
        }
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut resolutions = Vec::with_capacity(rows.len());
    let mut buckets = Vec::with_capacity(rows.len());
    let mut parts = Vec::with_capacity(rows.len());
    let mut blobs = Vec::with_capacity(rows.len());
    for row in rows {
        let id = learned
            .iter()
            .find(|(k, _)| *k == row.key)
            .map(|(_, v)| v.0)
            .or_else(|| cache.get(&row.key).map(|v| v.0));
        let Some(id) = id else { continue };
        ids.push(id);
        resolutions.push(i32::try_from(row.resolution_s).unwrap_or(i32::MAX));
        buckets.push(row.bucket_ms);
        parts.push(row.part);
        let mut blob = Vec::new();
        row.aggregate.encode(&mut blob);
        blobs.push(blob);
    }
    tx.execute(
        "INSERT INTO vigil_metric_points (series_id, resolution_s, bucket_ms, replica, part, aggregate)
         SELECT s, r, b, $4, p, a
             FROM UNNEST($1::BIGINT[], $2::INTEGER[], $3::BIGINT[], $5::BIGINT[], $6::BYTEA[])
             AS t(s, r, b, p, a)
         ON CONFLICT (series_id, resolution_s, bucket_ms, replica, part)
             DO UPDATE SET aggregate = EXCLUDED.aggregate",
        &[&ids, &resolutions, &buckets, &replica, &parts, &blobs],
    )
    .await?;
    tx.commit().await?;
    cache.extend(learned);
    Ok(())
}

/// The ids of the stored series among `keys` and whether any holds 1 s and
/// 60 s data.
pub(crate) async fn find_series(
    client: &Client,
    keys: &[SeriesKey],
) -> Result<(Vec<i64>, bool, bool), tokio_postgres::Error> {
    let texts: Vec<String> = keys.iter().map(key_text).collect();
    let rows = client
        .query(
            "SELECT id, has_high, has_standard FROM vigil_metric_series WHERE key = ANY($1)",
            &[&texts],
        )
        .await?;
    let (mut high, mut standard) = (false, false);
    let ids = rows
        .iter()
        .map(|r| {
            high |= r.get::<_, bool>(1);
            standard |= r.get::<_, bool>(2);
            r.get(0)
        })
        .collect();
    Ok((ids, high, standard))
}

/// Every row of `ids` in tier `resolution_s` with a bucket in
/// `from_ms..to_ms`, decoded; damaged rows are skipped and logged.
pub(crate) async fn read_buckets(
    client: &Client,
    ids: &[i64],
    resolution_s: u32,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<(i64, Aggregate)>, tokio_postgres::Error> {
    let resolution = i32::try_from(resolution_s).unwrap_or(i32::MAX);
    let rows = client
        .query(
            "SELECT bucket_ms, aggregate FROM vigil_metric_points
             WHERE series_id = ANY($1) AND resolution_s = $2 AND bucket_ms >= $3 AND bucket_ms < $4",
            &[&ids, &resolution, &from_ms, &to_ms],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let bucket: i64 = row.get(0);
        let bytes: &[u8] = row.get(1);
        match Aggregate::decode(bytes) {
            Ok((aggregate, _)) => out.push((bucket, aggregate)),
            Err(reason) => {
                tracing::error!(%reason, bucket, "metrics.url: skipping a damaged aggregate")
            }
        }
    }
    Ok(out)
}

/// Every stored series key.
pub(crate) async fn all_series(client: &Client) -> Result<Vec<SeriesKey>, tokio_postgres::Error> {
    let rows = client
        .query("SELECT key FROM vigil_metric_series", &[])
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| serde_json::from_str(r.get::<_, &str>(0)).ok())
        .collect())
}

/// Deletes the rows of each tier older than its retention.
pub(crate) async fn prune(
    client: &Client,
    tiers: &[crate::tsdb::TierConfig],
    now_ms: i64,
) -> Result<u64, tokio_postgres::Error> {
    let mut deleted = 0;
    for tier in tiers {
        let keep_ms = i64::try_from(tier.retention_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let before = now_ms.saturating_sub(keep_ms);
        let resolution = i32::try_from(tier.resolution_s).unwrap_or(i32::MAX);
        deleted += client
            .execute(
                "DELETE FROM vigil_metric_points WHERE resolution_s = $1 AND bucket_ms < $2",
                &[&resolution, &before],
            )
            .await?;
    }
    Ok(deleted)
}

/// Takes the alarm lock if it is free (session level: held until this
/// session ends).
pub(crate) async fn try_lock(client: &Client) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&ALARM_LOCK])
        .await?;
    Ok(row.get(0))
}

/// The shared alarm state document.
pub(crate) async fn load_state(client: &Client) -> Result<Option<Vec<u8>>, tokio_postgres::Error> {
    let row = client
        .query_opt("SELECT document FROM vigil_alarm_state WHERE id = 1", &[])
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Replaces the shared alarm state document.
pub(crate) async fn save_state(
    client: &Client,
    document: &[u8],
    replica: &str,
    now_ms: i64,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO vigil_alarm_state (id, document, replica, updated_at_ms)
             VALUES (1, $1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET document = EXCLUDED.document,
                replica = EXCLUDED.replica, updated_at_ms = EXCLUDED.updated_at_ms",
            &[&document, &replica, &now_ms],
        )
        .await?;
    Ok(())
}

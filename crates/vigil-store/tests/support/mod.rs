//! Harnesses for the behaviour suite: a fresh SQLite directory or a fresh
//! PostgreSQL database per case, and a backend that can be made to fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use vigil_store::{
    AppendOutcome, InferenceLog, InferenceRecord, ListQuery, ManualClock, Page, PostgresLog,
    SqliteLog, Store, StoreConfig, StoreError,
};

/// A fresh store location plus an injected clock.
#[derive(Debug)]
pub struct Harness {
    pub config: StoreConfig,
    pub clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new(url: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::with_data_dir(dir.path().join("vigil-data"));
        config.url = url;
        // Replays run only when a case asks, so cases are deterministic.
        config.spill_replay_interval_ms = 3_600_000;
        Harness {
            config,
            clock: Arc::new(ManualClock::new(1_700_000_000_000_000)),
            _dir: dir,
        }
    }

    /// Opens a store on this location (again, after a shutdown, to reopen).
    pub async fn open(&self) -> Arc<Store> {
        Store::open_with_clock(&self.config, self.clock.clone())
            .await
            .unwrap()
    }

    /// A bare backend on this location.
    pub async fn backend(&self) -> Arc<dyn InferenceLog> {
        match &self.config.url {
            None => Arc::new(SqliteLog::open(&self.config).await.unwrap()),
            Some(_) => Arc::new(PostgresLog::connect(&self.config).await.unwrap()),
        }
    }
}

pub async fn sqlite_harness() -> Harness {
    Harness::new(None)
}

/// The server the PostgreSQL tests use. They are `#[ignore]`d, so they run
/// only when asked (`-- --include-ignored`, as `.ci/run` does); asked without
/// a server, they fail rather than pass having checked nothing.
pub fn postgres_url() -> String {
    match std::env::var("VIGIL_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "VIGIL_TEST_POSTGRES_URL is not set: this test needs a PostgreSQL server \
             (`source .ci/services.sh; start_services` starts one and sets it)"
        ),
    }
}

/// A harness on a new database of the server in `VIGIL_TEST_POSTGRES_URL`.
pub async fn postgres_harness() -> Harness {
    let base = postgres_url();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "vigil_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000
    );
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    drop(client);
    let _ = driver.await;
    Harness::new(Some(vigil_store::postgres::url_with_database(&base, &name)))
}

/// A backend that fails every call while `fail` is set, as a stopped
/// database or a full disk would.
#[derive(Debug)]
pub struct FlakyLog {
    inner: Arc<dyn InferenceLog>,
    pub fail: AtomicBool,
}

impl FlakyLog {
    pub fn new(inner: Arc<dyn InferenceLog>) -> Self {
        FlakyLog {
            inner,
            fail: AtomicBool::new(false),
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("injected failure".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl InferenceLog for FlakyLog {
    async fn lookup(&self, model: &str, id: &str) -> Result<Option<InferenceRecord>, StoreError> {
        self.check()?;
        self.inner.lookup(model, id).await
    }
    async fn append_batch(
        &self,
        records: Vec<InferenceRecord>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        self.check()?;
        // Stands for a row the database itself refuses (a data exception).
        if records.iter().any(|r| r.request_id.starts_with("poison")) {
            return Err(StoreError::Rejected("injected poison record".into()));
        }
        self.inner.append_batch(records).await
    }
    async fn get(&self, id: &str) -> Result<Vec<InferenceRecord>, StoreError> {
        self.check()?;
        self.inner.get(id).await
    }
    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        self.check()?;
        self.inner.list(query).await
    }
    async fn delete_expired(&self, before: i64, batch: usize) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.delete_expired(before, batch).await
    }
}

/// Every record in `log`, by request id, paging with the cursor; panics on a
/// request id stored twice.
#[allow(dead_code)] // each test binary uses its own subset of this module
pub async fn read_all(
    log: &dyn InferenceLog,
) -> std::collections::HashMap<String, InferenceRecord> {
    let mut stored = std::collections::HashMap::new();
    let mut query = ListQuery {
        limit: Some(1000),
        ..ListQuery::default()
    };
    loop {
        let page = log.list(&query).await.unwrap();
        for r in page.records {
            let id = r.request_id.clone();
            assert!(stored.insert(id.clone(), r).is_none(), "{id} stored twice");
        }
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return stored,
        }
    }
}

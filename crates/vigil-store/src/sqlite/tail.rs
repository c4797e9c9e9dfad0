//! The unapplied tail: records in the journal that the indexer has not yet
//! applied to SQLite, in memory, so lookups, replays and `get` see them.
//!
//! Sharded by request id: an append locks the shards of its ids for the
//! few microseconds of its idempotency check and journal write, so two
//! appends of one key are serialised and appends of other keys are not.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::FxHasher;
use vigil_segments::Position;

use crate::error::{Result, StoreError};
use crate::record::InferenceRecord;

const SHARDS: usize = 64;

/// One journaled record and where it lies in the journal.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub record: Arc<InferenceRecord>,
    pub position: Position,
}

/// A shard: request id → the journaled records with that id (one per
/// model; almost always just one).
pub(super) type Shard = HashMap<String, Vec<Entry>>;

#[derive(Debug)]
pub(super) struct Tail {
    shards: Box<[Mutex<Shard>]>,
    hasher: BuildHasherDefault<FxHasher>,
    len: AtomicUsize,
}

impl Default for Tail {
    fn default() -> Self {
        Tail {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: BuildHasherDefault::default(),
            len: AtomicUsize::new(0),
        }
    }
}

impl Tail {
    /// The shard holding `request_id`.
    pub fn shard_of(&self, request_id: &str) -> usize {
        (self.hasher.hash_one(request_id) as usize) % SHARDS
    }

    pub fn lock(&self, shard: usize) -> Result<MutexGuard<'_, Shard>> {
        self.shards[shard]
            .lock()
            .map_err(|_| StoreError::Unavailable("journal tail lock poisoned".into()))
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Adds a journaled record to its (locked) shard.
    pub fn insert(&self, shard: &mut Shard, entry: Entry) {
        shard
            .entry(entry.record.request_id.clone())
            .or_default()
            .push(entry);
        self.len.fetch_add(1, Ordering::AcqRel);
    }

    /// The journaled record with this key.
    pub fn get(&self, model: &str, request_id: &str) -> Result<Option<Arc<InferenceRecord>>> {
        let shard = self.lock(self.shard_of(request_id))?;
        Ok(find(&shard, model, request_id).map(|e| Arc::clone(&e.record)))
    }

    /// Every journaled record with this id.
    pub fn with_id(&self, request_id: &str) -> Result<Vec<InferenceRecord>> {
        let shard = self.lock(self.shard_of(request_id))?;
        Ok(shard
            .get(request_id)
            .map(|entries| entries.iter().map(|e| (*e.record).clone()).collect())
            .unwrap_or_default())
    }

    /// Forgets records now applied to SQLite (each at the position it was
    /// journaled at; a key journaled again later stays).
    pub fn remove_applied(&self, applied: &[(Position, InferenceRecord)]) -> Result<()> {
        let mut removed = 0;
        for (position, record) in applied {
            let mut shard = self.lock(self.shard_of(&record.request_id))?;
            let Some(entries) = shard.get_mut(&record.request_id) else {
                continue;
            };
            let before = entries.len();
            entries.retain(|e| e.position != *position);
            removed += before - entries.len();
            if entries.is_empty() {
                shard.remove(&record.request_id);
            }
        }
        self.len.fetch_sub(removed, Ordering::AcqRel);
        Ok(())
    }
}

/// The entry with this key in a locked shard.
pub(super) fn find<'a>(shard: &'a Shard, model: &str, request_id: &str) -> Option<&'a Entry> {
    shard
        .get(request_id)?
        .iter()
        .find(|e| e.record.model == model)
}

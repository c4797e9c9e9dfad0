//! The unapplied tail: records in the journal that the indexer has not yet
//! applied to SQLite, in memory, so lookups, replays and `get` see them.
//!
//! Sharded by request id: an append locks the shards of its ids for the
//! few microseconds of its idempotency check and journal write, so two
//! appends of one key are serialised and appends of other keys are not.
//!
//! A shard also remembers the keys a lookup just found in neither the tail
//! nor SQLite, so the append that follows (lookup, score, append is how a
//! client's id is handled) need not read SQLite again. Such a key can only
//! reach SQLite through this tail, and every removal of applied records
//! from a shard forgets what it remembered; a lookup whose check spanned a
//! removal remembers nothing.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::FxHasher;
use vigil_segments::Position;

use crate::error::{Result, StoreError};
use crate::record::InferenceRecord;

const SHARDS: usize = 64;

/// Keys remembered as absent per shard, at most (a flood of lookups that
/// are never followed by an append costs no more than this).
const MAX_ABSENT: usize = 1024;

/// One journaled record and where it lies in the journal.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub record: Arc<InferenceRecord>,
    pub position: Position,
}

/// One shard of the tail.
#[derive(Debug, Default)]
pub(super) struct Shard {
    /// Request id → the journaled records with that id (one per model;
    /// almost always just one).
    entries: HashMap<String, Vec<Entry>>,
    /// Times applied records were removed from this shard.
    removals: u64,
    /// Keys (see [`absent_key`]) found in neither the tail nor SQLite since
    /// the last removal.
    absent: HashSet<String>,
}

impl Shard {
    /// The entry with this key.
    pub fn find(&self, model: &str, request_id: &str) -> Option<&Entry> {
        self.entries
            .get(request_id)?
            .iter()
            .find(|e| e.record.model == model)
    }

    /// True (once) when a lookup since the last removal found this key in
    /// neither the tail nor SQLite: it is still in neither.
    pub fn take_absent(&mut self, model: &str, request_id: &str) -> bool {
        !self.absent.is_empty() && self.absent.remove(&absent_key(model, request_id))
    }
}

/// A request id holds no control character, so the first NUL separates.
fn absent_key(model: &str, request_id: &str) -> String {
    let mut key = String::with_capacity(request_id.len() + 1 + model.len());
    key.push_str(request_id);
    key.push('\0');
    key.push_str(model);
    key
}

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

/// What a tail lookup found.
pub(super) enum Found {
    /// The key is journaled.
    Journaled(Arc<InferenceRecord>),
    /// Not journaled; `generation` identifies the shard's state for
    /// [`Tail::remember_absent`].
    Missing { generation: u64 },
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
            .entries
            .entry(entry.record.request_id.clone())
            .or_default()
            .push(entry);
        self.len.fetch_add(1, Ordering::AcqRel);
    }

    /// The journaled record with this key.
    pub fn get(&self, model: &str, request_id: &str) -> Result<Found> {
        let shard = self.lock(self.shard_of(request_id))?;
        Ok(match shard.find(model, request_id) {
            Some(e) => Found::Journaled(Arc::clone(&e.record)),
            None => Found::Missing {
                generation: shard.removals,
            },
        })
    }

    /// Remembers that SQLite, read after [`Tail::get`] said `Missing`, does
    /// not hold the key either; forgotten if records were removed meanwhile.
    pub fn remember_absent(&self, model: &str, request_id: &str, generation: u64) -> Result<()> {
        let mut shard = self.lock(self.shard_of(request_id))?;
        if shard.removals == generation && shard.absent.len() < MAX_ABSENT {
            shard.absent.insert(absent_key(model, request_id));
        }
        Ok(())
    }

    /// Every journaled record with this id.
    pub fn with_id(&self, request_id: &str) -> Result<Vec<InferenceRecord>> {
        let shard = self.lock(self.shard_of(request_id))?;
        Ok(shard
            .entries
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
            // Applied records are in SQLite now: what lookups remembered as
            // absent may not be any more.
            shard.removals += 1;
            shard.absent.clear();
            let Some(entries) = shard.entries.get_mut(&record.request_id) else {
                continue;
            };
            let before = entries.len();
            entries.retain(|e| e.position != *position);
            removed += before - entries.len();
            if entries.is_empty() {
                shard.entries.remove(&record.request_id);
            }
        }
        self.len.fetch_sub(removed, Ordering::AcqRel);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, model: &str) -> InferenceRecord {
        InferenceRecord::new(id, 0, model, "1", crate::Input::default())
    }

    fn generation(tail: &Tail, model: &str, id: &str) -> u64 {
        match tail.get(model, id) {
            Ok(Found::Missing { generation }) => generation,
            _ => panic!("{id} should be missing"),
        }
    }

    fn take(tail: &Tail, model: &str, id: &str) -> bool {
        let mut shard = tail
            .lock(tail.shard_of(id))
            .unwrap_or_else(|e| panic!("{e}"));
        shard.take_absent(model, id)
    }

    /// Applying records of a shard to SQLite: remove one record of `id`'s shard.
    fn apply(tail: &Tail, id: &str, model: &str) {
        let position = Position::default();
        {
            let mut shard = tail
                .lock(tail.shard_of(id))
                .unwrap_or_else(|e| panic!("{e}"));
            let record = Arc::new(record(id, model));
            tail.insert(&mut shard, Entry { record, position });
        }
        let removed = tail.remove_applied(&[(position, record(id, model))]);
        assert!(removed.is_ok());
    }

    #[test]
    fn an_absent_key_is_remembered_once() {
        let tail = Tail::default();
        let g = generation(&tail, "fraud", "a");
        assert!(tail.remember_absent("fraud", "a", g).is_ok());
        assert!(!take(&tail, "churn", "a"), "another model's key");
        assert!(take(&tail, "fraud", "a"));
        assert!(!take(&tail, "fraud", "a"), "taken twice");
    }

    #[test]
    fn a_removal_forgets_absent_keys_and_voids_a_lookup_in_flight() {
        let tail = Tail::default();
        let g = generation(&tail, "fraud", "a");
        assert!(tail.remember_absent("fraud", "a", g).is_ok());
        // The key itself was journaled by another request and applied.
        apply(&tail, "a", "fraud");
        assert!(!take(&tail, "fraud", "a"), "remembered across a removal");

        // A lookup that read SQLite while records were applied remembers nothing.
        let g = generation(&tail, "fraud", "a");
        apply(&tail, "a", "fraud");
        assert!(tail.remember_absent("fraud", "a", g).is_ok());
        assert!(!take(&tail, "fraud", "a"), "a stale lookup was remembered");
        assert_eq!(tail.len(), 0);
    }
}

//! Finding each span's caller across batches: a bounded map of recent
//! spans (id → service and node) and a bounded list of children waiting
//! for a parent that has not arrived yet.
//!
//! Bounds: the recent map keeps at most `recent_spans` spans, each for at
//! most `recent_max_age_ms` of arrival time (two generations of half that
//! each: a span is remembered for at least half the bound and half the
//! age, and forgetting is dropping the older generation whole, with no
//! per-span bookkeeping); the pending list at most
//! `pending_spans` children, each for at most `pending_timeout_ms`. A child
//! still waiting then (or pushed out by newer ones) is counted as called by
//! the client. Children of one missing parent wait together and time out
//! together, from the first one's arrival; when that parent is itself
//! waiting, they get one more timeout, so a chain times out from its top
//! (a cycle of parents still ends after two).

use std::collections::VecDeque;

use crate::model::{Outcome, SpanId, TraceId};

/// A span's identity.
pub(super) type Key = (TraceId, SpanId);

/// Maps keyed by span identity use a per-process seeded hash (foldhash):
/// ids come from clients, so a fixed unkeyed hash (FxHash) could be made
/// to probe long chains.
pub(super) type KeyMap<V> = std::collections::HashMap<Key, V, foldhash::fast::RandomState>;
/// The set of the same keys.
pub(super) type KeySet = std::collections::HashSet<Key, foldhash::fast::RandomState>;

/// The client node's id.
pub(super) const CLIENT: u32 = 0;

/// No next pending slot.
const NONE: u32 = u32::MAX;

/// One span reduced to what the map needs, node names interned.
#[derive(Debug, Clone, Copy)]
pub(super) struct SpanIn {
    pub key: Key,
    pub parent: Option<SpanId>,
    /// The node of the span's service.
    pub service_node: u32,
    /// Its node when it is not its service's root: a stage, or the remote
    /// node for a remote call.
    pub inner_node: u32,
    pub remote: bool,
    /// Minute (of its end) since the epoch.
    pub minute: i64,
    pub duration_us: i64,
    pub outcome: Outcome,
    /// Whether a later batch may name this span as a parent, so it is kept
    /// among the recent spans; not for the spans of a whole trace (Vigil's
    /// own), whose children all come in its batch.
    pub remember: bool,
}

/// A call found: `caller` → `callee` in `minute`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Call {
    pub minute: i64,
    pub caller: u32,
    pub callee: u32,
    pub duration_us: i64,
    pub outcome: Outcome,
}

/// What a span's children need of it: its service's node and its own.
#[derive(Debug, Clone, Copy)]
pub(super) struct Known {
    service_node: u32,
    node: u32,
}

/// Recent spans in two generations.
#[derive(Debug)]
struct Recent {
    current: KeyMap<Known>,
    previous: KeyMap<Known>,
    /// When `current` began.
    since_ms: i64,
    max_len: usize,
    max_age_ms: i64,
}

impl Recent {
    fn get(&self, key: &Key) -> Option<&Known> {
        self.current.get(key).or_else(|| self.previous.get(key))
    }

    fn insert(&mut self, key: Key, known: Known, now_ms: i64) {
        if self.current.len() >= self.max_len {
            self.rotate(now_ms);
        }
        self.current.insert(key, known);
    }

    /// Starts a new generation when the current one is half the age bound.
    fn age(&mut self, now_ms: i64) {
        if now_ms.saturating_sub(self.since_ms) >= self.max_age_ms {
            self.rotate(now_ms);
        }
    }

    fn rotate(&mut self, now_ms: i64) {
        std::mem::swap(&mut self.current, &mut self.previous);
        self.current.clear();
        self.since_ms = now_ms;
    }
}

/// One missing parent's list of waiting children.
#[derive(Debug, Clone, Copy)]
struct Head {
    first: u32,
    /// When the list began, or was given more time.
    since_ms: i64,
    /// Given more time once already, because its parent was waiting too.
    extended: bool,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    span: SpanIn,
    next: u32,
}

/// The bounds, from the service map's config.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    pub recent_spans: usize,
    pub recent_max_age_ms: i64,
    pub pending_spans: usize,
    pub pending_timeout_ms: i64,
}

/// The resolver's state.
#[derive(Debug)]
pub(super) struct Resolver {
    bounds: Bounds,
    recent: Recent,
    /// Pending children in singly linked lists, one per missing parent.
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Missing parent → its list.
    heads: KeyMap<Head>,
    /// The pending spans themselves: a list whose parent is one of them
    /// waits for it rather than timing out on its own.
    waiting: KeySet,
    pending_order: VecDeque<(i64, Key)>,
    pending_len: usize,
    /// Work list, kept to reuse its allocation.
    work: Vec<(SpanIn, Option<Known>)>,
}

impl Resolver {
    pub fn new(bounds: Bounds) -> Resolver {
        Resolver {
            bounds,
            recent: Recent {
                current: KeyMap::default(),
                previous: KeyMap::default(),
                since_ms: i64::MIN,
                max_len: bounds.recent_spans.div_ceil(2),
                max_age_ms: (bounds.recent_max_age_ms / 2).max(1),
            },
            slots: Vec::new(),
            free: Vec::new(),
            heads: KeyMap::default(),
            waiting: KeySet::default(),
            pending_order: VecDeque::new(),
            pending_len: 0,
            work: Vec::new(),
        }
    }

    /// Children waiting for their parent.
    pub fn pending(&self) -> usize {
        self.pending_len
    }

    /// Takes one span: its call goes to `out` now if its parent is known
    /// (or it has none), else once the parent comes or the wait times out.
    /// `in_batch` is what the caller knows of a parent in the same batch:
    /// `Some(Some(known))` resolved, `Some(None)` itself waiting, `None`
    /// not in the batch (looked up among the recent spans). Returns what
    /// the span's children need when it is resolved now.
    pub fn add(
        &mut self,
        span: SpanIn,
        in_batch: Option<Option<Known>>,
        now_ms: i64,
        out: &mut Vec<Call>,
    ) -> Option<Known> {
        let Some(parent) = span.parent else {
            return Some(self.resolve(span, None, now_ms, out));
        };
        let parent_key = (span.key.0, parent);
        match in_batch.unwrap_or_else(|| self.recent.get(&parent_key).copied()) {
            Some(known) => Some(self.resolve(span, Some(known), now_ms, out)),
            None => {
                self.wait(parent_key, span, now_ms);
                None
            }
        }
    }

    /// Drops recent spans past their age and counts children waiting past
    /// the timeout (or beyond the bound) as called by the client.
    pub fn expire(&mut self, now_ms: i64, out: &mut Vec<Call>) {
        self.recent.age(now_ms);
        while let Some(&(created, key)) = self.pending_order.front() {
            if created > now_ms - self.bounds.pending_timeout_ms
                && self.pending_len <= self.bounds.pending_spans
            {
                break;
            }
            self.pending_order.pop_front();
            let over = self.pending_len > self.bounds.pending_spans;
            let Some(head) = self.heads.get_mut(&key) else {
                continue;
            };
            if head.since_ms != created {
                continue;
            }
            if !over && !head.extended && self.waiting.contains(&key) {
                // The parent waits for its own parent: a chain times out
                // from its top, so that its spans keep their callers.
                head.since_ms = now_ms;
                head.extended = true;
                self.pending_order.push_back((now_ms, key));
                continue;
            }
            self.release(key, None);
            self.drain(now_ms, out);
        }
    }

    fn wait(&mut self, parent: Key, span: SpanIn, now_ms: i64) {
        let head = self.heads.get(&parent).map_or(NONE, |h| h.first);
        let slot = Slot { span, next: head };
        let index = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                u32::try_from(self.slots.len() - 1).unwrap_or(NONE)
            }
        };
        self.pending_len += 1;
        self.waiting.insert(span.key);
        match self.heads.get_mut(&parent) {
            Some(h) => h.first = index,
            None => {
                let head = Head {
                    first: index,
                    since_ms: now_ms,
                    extended: false,
                };
                self.heads.insert(parent, head);
                self.pending_order.push_back((now_ms, parent));
            }
        }
    }

    /// Moves the children waiting for `parent` to the work list.
    fn release(&mut self, parent: Key, known: Option<Known>) {
        let Some(head) = self.heads.remove(&parent) else {
            return;
        };
        let mut index = head.first;
        while let Some(slot) = self.slots.get(index as usize).copied() {
            self.waiting.remove(&slot.span.key);
            self.work.push((slot.span, known));
            self.free.push(index);
            self.pending_len -= 1;
            index = slot.next;
        }
    }

    fn resolve(
        &mut self,
        span: SpanIn,
        parent: Option<Known>,
        now_ms: i64,
        out: &mut Vec<Call>,
    ) -> Known {
        let known = self.settle(span, parent, now_ms, out);
        self.drain(now_ms, out);
        known
    }

    /// Resolves the work list, whose spans' parents are known (`None`:
    /// the client), and then their waiting children.
    fn drain(&mut self, now_ms: i64, out: &mut Vec<Call>) {
        while let Some((span, parent)) = self.work.pop() {
            self.settle(span, parent, now_ms, out);
        }
    }

    /// Counts one span whose parent is known and moves its waiting
    /// children to the work list.
    fn settle(
        &mut self,
        span: SpanIn,
        parent: Option<Known>,
        now_ms: i64,
        out: &mut Vec<Call>,
    ) -> Known {
        let own_root = if span.remote {
            span.inner_node
        } else {
            span.service_node
        };
        let (caller, callee) = match parent {
            None => (CLIENT, own_root),
            Some(p) if p.service_node == span.service_node => (p.node, span.inner_node),
            Some(p) => (p.service_node, own_root),
        };
        out.push(Call {
            minute: span.minute,
            caller,
            callee,
            duration_us: span.duration_us,
            outcome: span.outcome,
        });
        let known = Known {
            service_node: span.service_node,
            node: callee,
        };
        if span.remember {
            self.recent.insert(span.key, known, now_ms);
        }
        if !self.heads.is_empty() {
            self.release(span.key, Some(known));
        }
        known
    }
}

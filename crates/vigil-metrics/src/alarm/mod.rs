//! The alarm engine (SEMANTICS.md §2): metric alarms evaluated over period
//! slots, composite alarms over other alarms' states, forced states,
//! history, and what to notify on each transition.

pub mod evaluate;

pub use evaluate::{Basis, Decision, Outcome, Slot, TreatMissingData, decide, range_len};

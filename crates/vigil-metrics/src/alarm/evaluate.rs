//! The pure core of a metric alarm's evaluation (SEMANTICS.md §2.2): a
//! decision over the last R period slots, oldest → newest, each breaching
//! (`Some(true)`), not breaching (`Some(false)`) or missing (`None`).
//!
//! Nothing here knows about time, data sources or configuration beyond N, M
//! and the treatment of missing data, so the golden vectors of §2.2 are a
//! table test of [`decide`].

use serde::{Deserialize, Serialize};

use crate::notify::AlarmState;

/// One period slot: breaching, not breaching, or missing.
pub type Slot = Option<bool>;

/// How missing data points are treated (`treat_missing_data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TreatMissingData {
    /// Missing points count neither way; may end in INSUFFICIENT_DATA (the default).
    #[default]
    #[serde(rename = "missing")]
    Missing,
    /// Missing points are filled with not-breaching ones.
    #[serde(rename = "notBreaching")]
    NotBreaching,
    /// Missing points are filled with breaching ones.
    #[serde(rename = "breaching")]
    Breaching,
    /// As `missing`, but the alarm keeps its state instead of going to
    /// INSUFFICIENT_DATA or alarming prematurely.
    #[serde(rename = "ignore")]
    Ignore,
}

impl TreatMissingData {
    /// The name as written in a configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            TreatMissingData::Missing => "missing",
            TreatMissingData::NotBreaching => "notBreaching",
            TreatMissingData::Breaching => "breaching",
            TreatMissingData::Ignore => "ignore",
        }
    }
}

/// What an evaluation decides: a state, or keep the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Go to (or stay in) this state.
    State(AlarmState),
    /// Keep whatever state the alarm is in (`ignore`).
    Keep,
}

/// Why the decision was reached; the slot indices point into the slice
/// given to [`decide`] (oldest → newest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Basis {
    /// At least N real points: the N most recent were counted (§2.2 step 3).
    RealPoints {
        /// Indices of the counted slots, oldest first.
        evaluated: Vec<usize>,
    },
    /// Fewer than N real points, filled with synthetic points (`breaching` /
    /// `notBreaching`).
    Filled {
        /// Indices of the real slots, oldest first.
        evaluated: Vec<usize>,
        /// Number of synthetic points added.
        synthetic: usize,
    },
    /// `missing`/`ignore`: at least M real breaching points in range.
    Breaching {
        /// Indices of the real slots, oldest first.
        evaluated: Vec<usize>,
    },
    /// `missing`/`ignore`: the premature-alarm rule (§2.2 step 5).
    Premature {
        /// Indices of the real slots, oldest first.
        evaluated: Vec<usize>,
    },
    /// `missing`/`ignore`: some real not-breaching point in range.
    SomeOk {
        /// Indices of the real slots, oldest first.
        evaluated: Vec<usize>,
    },
    /// `missing`/`ignore`: nothing decides.
    Undecided {
        /// Indices of the real slots, oldest first.
        evaluated: Vec<usize>,
    },
}

/// A decision and its basis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The state to go to, or keep.
    pub outcome: Outcome,
    /// Why.
    pub basis: Basis,
}

/// R, the number of period slots an alarm with N evaluation periods looks at:
/// N + max(⌊N/3⌋, 2) (SEMANTICS.md §2.2 step 1; N = 3 → 5).
pub fn range_len(evaluation_periods: usize) -> usize {
    evaluation_periods + (evaluation_periods / 3).max(2)
}

/// Decides the state from period slots (oldest → newest) for "M out of N"
/// with the given treatment of missing data.
///
/// Only the last [`range_len`]`(n)` slots are looked at; older ones in the
/// slice are ignored. `n` and `m` are clamped to `1 ≤ m ≤ n` (a validated
/// configuration already has that).
pub fn decide(slots: &[Slot], n: usize, m: usize, treat: TreatMissingData) -> Decision {
    let n = n.max(1);
    let m = m.clamp(1, n);
    let r = range_len(n);
    let offset = slots.len().saturating_sub(r);
    let window = &slots[offset..];
    let real: Vec<usize> = window
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_some())
        .map(|(i, _)| i + offset)
        .collect();
    let breaching_in = |idx: &[usize]| idx.iter().filter(|&&i| slots[i] == Some(true)).count();

    // Step 3: N real points decide alone.
    if real.len() >= n {
        let evaluated = real[real.len() - n..].to_vec();
        let state = if breaching_in(&evaluated) >= m {
            AlarmState::Alarm
        } else {
            AlarmState::Ok
        };
        return Decision {
            outcome: Outcome::State(state),
            basis: Basis::RealPoints { evaluated },
        };
    }

    let breaching = breaching_in(&real);
    let synthetic = n - real.len();
    match treat {
        TreatMissingData::Breaching | TreatMissingData::NotBreaching => {
            let filled = if treat == TreatMissingData::Breaching {
                breaching + synthetic
            } else {
                breaching
            };
            let state = if filled >= m {
                AlarmState::Alarm
            } else {
                AlarmState::Ok
            };
            Decision {
                outcome: Outcome::State(state),
                basis: Basis::Filled {
                    evaluated: real,
                    synthetic,
                },
            }
        }
        TreatMissingData::Missing | TreatMissingData::Ignore => {
            let ignore = treat == TreatMissingData::Ignore;
            let any_ok = real.iter().any(|&i| slots[i] == Some(false));
            if breaching >= m {
                return Decision {
                    outcome: Outcome::State(AlarmState::Alarm),
                    basis: Basis::Breaching { evaluated: real },
                };
            }
            if premature(window, m) {
                return Decision {
                    outcome: if ignore {
                        Outcome::Keep
                    } else {
                        Outcome::State(AlarmState::Alarm)
                    },
                    basis: Basis::Premature { evaluated: real },
                };
            }
            if any_ok {
                return Decision {
                    outcome: Outcome::State(AlarmState::Ok),
                    basis: Basis::SomeOk { evaluated: real },
                };
            }
            Decision {
                outcome: if ignore {
                    Outcome::Keep
                } else {
                    Outcome::State(AlarmState::InsufficientData)
                },
                basis: Basis::Undecided { evaluated: real },
            }
        }
    }
}

/// The premature rule (§2.2 step 5): the oldest breaching point in range is
/// at least M slots old (the newest slot is 1 slot old), every newer slot is
/// breaching or missing, and no real not-breaching point is in range.
fn premature(window: &[Slot], m: usize) -> bool {
    if window.contains(&Some(false)) {
        return false;
    }
    match window.iter().position(|s| *s == Some(true)) {
        // With no 0 in range every newer slot is X or missing by construction.
        Some(oldest) => window.len() - oldest >= m,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn slots(s: &str) -> Vec<Slot> {
        s.split_whitespace()
            .map(|c| match c {
                "X" => Some(true),
                "0" => Some(false),
                "-" => None,
                other => panic!("bad slot {other}"),
            })
            .collect()
    }

    fn parse_expected(s: &str) -> Outcome {
        match s {
            "OK" => Outcome::State(AlarmState::Ok),
            "ALARM" => Outcome::State(AlarmState::Alarm),
            "INSUFFICIENT_DATA" => Outcome::State(AlarmState::InsufficientData),
            "keep" => Outcome::Keep,
            other => panic!("bad expectation {other}"),
        }
    }

    /// SEMANTICS.md §2.2, N = 3: slots, M, missing, ignore, breaching, notBreaching.
    const GOLDEN: [(&str, usize, [&str; 4]); 12] = [
        ("0 - X - X", 3, ["OK", "OK", "OK", "OK"]),
        ("0 - - - -", 3, ["OK", "OK", "OK", "OK"]),
        ("- - - - -", 3, ["INSUFFICIENT_DATA", "keep", "ALARM", "OK"]),
        ("0 X X - X", 3, ["ALARM", "ALARM", "ALARM", "ALARM"]),
        ("- - X - -", 3, ["ALARM", "keep", "ALARM", "OK"]),
        ("- - - - X", 3, ["INSUFFICIENT_DATA", "keep", "ALARM", "OK"]),
        ("X - - - -", 3, ["ALARM", "keep", "ALARM", "OK"]),
        ("0 - X - X", 2, ["ALARM", "ALARM", "ALARM", "ALARM"]),
        ("0 0 X 0 X", 2, ["ALARM", "ALARM", "ALARM", "ALARM"]),
        ("0 - X - -", 2, ["OK", "OK", "ALARM", "OK"]),
        ("- - - - 0", 2, ["OK", "OK", "ALARM", "OK"]),
        ("- - - X -", 2, ["ALARM", "keep", "ALARM", "OK"]),
    ];

    #[test]
    fn golden_vectors_of_semantics_2_2() {
        let treatments = [
            TreatMissingData::Missing,
            TreatMissingData::Ignore,
            TreatMissingData::Breaching,
            TreatMissingData::NotBreaching,
        ];
        assert_eq!(range_len(3), 5);
        for (row, m, expected) in GOLDEN {
            for (treat, want) in treatments.into_iter().zip(expected) {
                let got = decide(&slots(row), 3, m, treat).outcome;
                assert_eq!(
                    got,
                    parse_expected(want),
                    "slots `{row}`, M = {m}, {}",
                    treat.as_str()
                );
            }
        }
    }

    #[test]
    fn range_len_follows_n_plus_max_of_third_and_two() {
        assert_eq!(range_len(1), 3);
        assert_eq!(range_len(5), 7);
        assert_eq!(range_len(6), 8);
        assert_eq!(range_len(9), 12);
    }

    #[test]
    fn real_points_basis_lists_the_n_most_recent_real_slots() {
        let d = decide(&slots("0 0 X 0 X"), 3, 2, TreatMissingData::Missing);
        assert_eq!(
            d.basis,
            Basis::RealPoints {
                evaluated: vec![2, 3, 4]
            }
        );
    }

    fn slot() -> impl Strategy<Value = Slot> {
        prop_oneof![Just(None), Just(Some(true)), Just(Some(false))]
    }

    fn treat() -> impl Strategy<Value = TreatMissingData> {
        prop_oneof![
            Just(TreatMissingData::Missing),
            Just(TreatMissingData::Ignore),
            Just(TreatMissingData::Breaching),
            Just(TreatMissingData::NotBreaching),
        ]
    }

    /// (n, m, slots of length R plus up to 6 older ones, treatment).
    fn case() -> impl Strategy<Value = (usize, usize, Vec<Slot>, TreatMissingData)> {
        (1usize..12).prop_flat_map(|n| {
            (
                Just(n),
                1..=n,
                proptest::collection::vec(slot(), range_len(n)..range_len(n) + 6),
                treat(),
            )
        })
    }

    proptest! {
        #[test]
        fn n_real_breaching_points_alarm_whatever_the_treatment(
            (n, m, s, t) in case(), pick in any::<proptest::sample::Index>(), other in slot()
        ) {
            // N breaching points anywhere in range, the rest missing, plus
            // whatever slot is older than the range.
            let r = range_len(n);
            let mut s = s;
            let len = s.len();
            let skip = pick.index(r - n + 1);
            for (k, slot) in s[len - r..].iter_mut().enumerate() {
                *slot = if k >= skip && k < skip + n { Some(true) } else { None };
            }
            if len > r { s[0] = other; }
            prop_assert_eq!(decide(&s, n, m, t).outcome, Outcome::State(AlarmState::Alarm));
        }

        #[test]
        fn no_real_points_and_not_breaching_is_ok(n in 1usize..12, m in 1usize..12) {
            let s = vec![None; range_len(n)];
            prop_assert_eq!(
                decide(&s, n, m.min(n), TreatMissingData::NotBreaching).outcome,
                Outcome::State(AlarmState::Ok)
            );
            prop_assert_eq!(
                decide(&s, n, m.min(n), TreatMissingData::Breaching).outcome,
                Outcome::State(AlarmState::Alarm)
            );
        }

        #[test]
        fn slots_older_than_r_never_matter(
            (n, m, s, t) in case(), older in proptest::collection::vec(slot(), 0..8)
        ) {
            let mut longer = older.clone();
            longer.extend_from_slice(&s);
            let tail = &s[s.len() - range_len(n)..];
            prop_assert_eq!(decide(&longer, n, m, t).outcome, decide(tail, n, m, t).outcome);
        }

        #[test]
        fn ignore_never_reaches_insufficient_data((n, m, s, _t) in case()) {
            prop_assert_ne!(
                decide(&s, n, m, TreatMissingData::Ignore).outcome,
                Outcome::State(AlarmState::InsufficientData)
            );
        }

        #[test]
        fn ignore_agrees_with_missing_except_where_missing_guesses((n, m, s, _t) in case()) {
            let missing = decide(&s, n, m, TreatMissingData::Missing);
            let ignore = decide(&s, n, m, TreatMissingData::Ignore);
            match missing.basis {
                Basis::Premature { .. } | Basis::Undecided { .. } => {
                    prop_assert_eq!(ignore.outcome, Outcome::Keep)
                }
                _ => prop_assert_eq!(ignore.outcome, missing.outcome),
            }
        }

        #[test]
        fn with_n_real_points_the_treatment_plays_no_part((n, m, s, t) in case()) {
            let real = s[s.len() - range_len(n)..].iter().filter(|x| x.is_some()).count();
            prop_assume!(real >= n);
            prop_assert_eq!(
                decide(&s, n, m, t).outcome,
                decide(&s, n, m, TreatMissingData::Missing).outcome
            );
        }

        #[test]
        fn only_missing_reaches_insufficient_data((n, m, s, t) in case()) {
            let out = decide(&s, n, m, t).outcome;
            if out == Outcome::State(AlarmState::InsufficientData) {
                prop_assert_eq!(t, TreatMissingData::Missing);
                prop_assert!(s[s.len() - range_len(n)..].iter().all(|x| *x != Some(false)));
            }
        }

        #[test]
        fn breaching_treatment_alarms_at_least_as_often_as_not_breaching((n, m, s, _t) in case()) {
            let b = decide(&s, n, m, TreatMissingData::Breaching).outcome;
            let nb = decide(&s, n, m, TreatMissingData::NotBreaching).outcome;
            if nb == Outcome::State(AlarmState::Alarm) {
                prop_assert_eq!(b, Outcome::State(AlarmState::Alarm));
            }
        }
    }
}

//! X-Ray sampling rules (§6) and the decision they make for each request.
//!
//! Rules are evaluated in ascending priority, ties by name; the first whose
//! four matchers (service name, host, HTTP method, URL path) all match
//! decides: sampled while the rule's reservoir for the current wall-clock
//! second lasts, then with probability `fixed_rate`. The built-in `Default`
//! rule (priority 10000, 1 per second + 5%) matches everything and comes
//! last; it cannot be deleted, but its reservoir and rate can be changed.
//! A caller's sampling decision, when the request brings one, is honoured
//! before any rule.
//!
//! The decision is on every request's path, so its read side takes no
//! lock: the compiled rules sit behind an [`ArcSwap`], each rule's
//! reservoir is one `AtomicU64` (second and count packed) and its counters
//! are atomics. Time and randomness are arguments, so the sampler holds no
//! clock and no RNG.
//!
//! Sources and precedence: the config's rules are loaded at start; changes
//! made through the API (put, delete) are persisted in
//! [`FILE_NAME`] and laid over them, winning over a config rule of the
//! same name because they are newer. [`Rule::source`] shows which is which.

mod matcher;
mod persist;
mod rule;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use serde::Serialize;

use matcher::Glob;
pub use persist::FILE_NAME;
use persist::Overlay;
pub use rule::{
    DEFAULT_PRIORITY, DEFAULT_RULE, MAX_NAME_LEN, MAX_PATTERN_LEN, MAX_RULES, Problem, Rule,
    RuleError, Source,
};

/// What a decision looks at of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleRequest<'a> {
    /// The service handling it (`vigil`).
    pub service_name: &'a str,
    /// Its `Host`.
    pub host: &'a str,
    /// Its method (`GET`, `POST`, …).
    pub http_method: &'a str,
    /// Its URL path.
    pub url_path: &'a str,
}

/// Why a request was or was not sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The caller's decision (its header's sampled flag) was followed.
    Parent,
    /// The matching rule's reservoir for this second had room.
    Reservoir,
    /// The reservoir was used up and the random draw fell under the
    /// rule's fixed rate.
    FixedRate,
    /// The reservoir was used up and the draw fell over the fixed rate.
    NotSampled,
}

/// The outcome of [`Sampler::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether to record the trace.
    pub sampled: bool,
    /// Why.
    pub reason: Reason,
    /// The rule that decided; `None` for [`Reason::Parent`].
    pub rule: Option<Arc<str>>,
}

/// What [`Sampler::put_rule`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// No rule had that name.
    Created,
    /// A rule of that name was replaced.
    Replaced,
}

/// One rule's counters since start (or since it was created). A replaced
/// rule keeps its counters and its reservoir's count for the second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleStats {
    /// The rule.
    pub name: String,
    /// Requests it decided (the sum of the three below).
    pub matched: u64,
    /// Sampled from its reservoir.
    pub sampled_reservoir: u64,
    /// Sampled by its fixed rate.
    pub sampled_fixed_rate: u64,
    /// Not sampled.
    pub not_sampled: u64,
}

/// A rule's mutable state, kept across rule-set swaps by name.
#[derive(Debug, Default)]
struct State {
    /// `second << 32 | count`: reservoir samples taken in that epoch second.
    reservoir: AtomicU64,
    sampled_reservoir: AtomicU64,
    sampled_fixed_rate: AtomicU64,
    not_sampled: AtomicU64,
}

impl State {
    /// Takes one from the reservoir of second `now_s` if `limit` allows.
    /// Never more than `limit` per second, whatever the threads; a caller
    /// whose clock is behind the stored second counts against the stored
    /// second, so a late thread cannot reopen a second already used.
    fn take(&self, limit: u32, now_s: u32) -> bool {
        if limit == 0 {
            return false;
        }
        let mut cur = self.reservoir.load(Ordering::Relaxed);
        loop {
            let (second, count) = ((cur >> 32) as u32, cur as u32);
            let next = if now_s > second {
                (u64::from(now_s) << 32) | 1
            } else if count < limit {
                cur + 1
            } else {
                return false;
            };
            match self.reservoir.compare_exchange_weak(
                cur,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }
}

/// A rule ready to match.
#[derive(Debug)]
struct Compiled {
    rule: Rule,
    name: Arc<str>,
    service_name: Glob,
    host: Glob,
    http_method: Glob,
    url_path: Glob,
    state: Arc<State>,
}

impl Compiled {
    fn new(rule: Rule, state: Arc<State>) -> Compiled {
        Compiled {
            name: rule.name.as_str().into(),
            service_name: Glob::new(&rule.service_name, false),
            host: Glob::new(&rule.host, true),
            http_method: Glob::new(&rule.http_method, true),
            url_path: Glob::new(&rule.url_path, false),
            rule,
            state,
        }
    }

    fn matches(&self, req: &SampleRequest<'_>) -> bool {
        // The method is the cheapest test and the one most rules differ
        // in; the path is the dearest.
        self.http_method.matches(req.http_method)
            && self.host.matches(req.host)
            && self.service_name.matches(req.service_name)
            && self.url_path.matches(req.url_path)
    }

    fn decide(&self, now_ms: i64, random: f64) -> Decision {
        let now_s =
            u32::try_from(now_ms.div_euclid(1000)).unwrap_or(if now_ms < 0 { 0 } else { u32::MAX });
        let (sampled, reason, counter) = if self.state.take(self.rule.reservoir, now_s) {
            (true, Reason::Reservoir, &self.state.sampled_reservoir)
        } else if random < self.rule.fixed_rate {
            (true, Reason::FixedRate, &self.state.sampled_fixed_rate)
        } else {
            (false, Reason::NotSampled, &self.state.not_sampled)
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Decision {
            sampled,
            reason,
            rule: Some(Arc::clone(&self.name)),
        }
    }
}

/// The rules in evaluation order.
#[derive(Debug, Default)]
struct RuleSet {
    rules: Vec<Compiled>,
}

impl RuleSet {
    /// Compiles `rules` (sorted), reusing the state of `old`'s rules by name.
    fn build(rules: Vec<Rule>, old: &RuleSet) -> RuleSet {
        let rules = rules
            .into_iter()
            .map(|rule| {
                let state = old
                    .rules
                    .iter()
                    .find(|c| c.rule.name == rule.name)
                    .map(|c| Arc::clone(&c.state))
                    .unwrap_or_default();
                Compiled::new(rule, state)
            })
            .collect();
        RuleSet { rules }
    }
}

/// The sampling rules in force and their reservoirs.
#[derive(Debug)]
pub struct Sampler {
    /// `sampling_rules.json`; `None` keeps API changes in memory only.
    path: Option<PathBuf>,
    /// The config's rules by name, validated.
    config: BTreeMap<String, Rule>,
    /// The API's changes; its lock also serialises writers.
    edits: Mutex<Overlay>,
    rules: ArcSwap<RuleSet>,
}

impl Sampler {
    /// A sampler over `config_rules` (validated) whose API changes live in
    /// memory only.
    pub fn new(config_rules: Vec<Rule>) -> Result<Sampler, RuleError> {
        Sampler::with(None, config_rules, Overlay::default())
    }

    /// A sampler over `config_rules` (the config file's
    /// `[[traces.sampling_rules]]`, every problem reported at once, each
    /// field named `sampling_rules[i].field`) with the API's changes kept
    /// in `dir/sampling_rules.json` (read now when it exists).
    pub fn open(dir: &Path, config_rules: Vec<Rule>) -> Result<Sampler, RuleError> {
        let path = dir.join(FILE_NAME);
        let overlay = persist::load(&path)?;
        Sampler::with(Some(path), config_rules, overlay)
    }

    fn with(
        path: Option<PathBuf>,
        config_rules: Vec<Rule>,
        mut overlay: Overlay,
    ) -> Result<Sampler, RuleError> {
        let mut problems = Vec::new();
        let mut config = BTreeMap::new();
        for (i, mut rule) in config_rules.into_iter().enumerate() {
            let prefix = |p: Problem| Problem {
                field: format!("sampling_rules[{i}].{}", p.field),
                message: p.message,
            };
            problems.extend(rule.problems().into_iter().map(prefix));
            if config.contains_key(&rule.name) {
                problems.push(Problem {
                    field: format!("sampling_rules[{i}].name"),
                    message: format!("{:?} is already the name of another rule", rule.name),
                });
            }
            rule.source = Source::Config;
            config.insert(rule.name.clone(), rule);
        }
        for rule in &mut overlay.rules {
            rule.source = Source::Api;
        }
        let effective = effective(&config, &overlay);
        let counted = effective.iter().filter(|r| !r.is_default()).count();
        if counted > MAX_RULES {
            problems.push(Problem {
                field: "sampling_rules".into(),
                message: format!(
                    "{counted} rules besides Default (counting those added through the API), \
                     at most {MAX_RULES}"
                ),
            });
        }
        if !problems.is_empty() {
            return Err(RuleError::Invalid(problems));
        }
        Ok(Sampler {
            path,
            config,
            edits: Mutex::new(overlay),
            rules: ArcSwap::from_pointee(RuleSet::build(effective, &RuleSet::default())),
        })
    }

    /// Decides whether to sample a request: the caller's `parent_sampled`
    /// flag when it sent one, else the first matching rule. `now_ms` is
    /// wall-clock milliseconds since the epoch (the reservoir counts per
    /// second of it); `random` is a uniform draw in `[0, 1)`.
    pub fn decide(
        &self,
        req: &SampleRequest<'_>,
        parent_sampled: Option<bool>,
        now_ms: i64,
        random: f64,
    ) -> Decision {
        if let Some(sampled) = parent_sampled {
            return Decision {
                sampled,
                reason: Reason::Parent,
                rule: None,
            };
        }
        let set = self.rules.load();
        match set.rules.iter().find(|r| r.matches(req)) {
            Some(rule) => rule.decide(now_ms, random),
            // The Default rule matches everything, so this is not reached.
            None => Decision {
                sampled: false,
                reason: Reason::NotSampled,
                rule: None,
            },
        }
    }

    /// Creates or replaces a rule (through the API: persisted, and winning
    /// over a config rule of the same name). The next decision sees it.
    pub fn put_rule(&self, mut rule: Rule) -> Result<Change, RuleError> {
        rule.validate()?;
        rule.source = Source::Api;
        let mut edits = self.edits.lock().unwrap_or_else(PoisonError::into_inner);
        let current = effective(&self.config, &edits);
        let exists = current.iter().any(|r| r.name == rule.name);
        let counted = current.iter().filter(|r| !r.is_default()).count();
        if !exists && counted >= MAX_RULES {
            return Err(RuleError::TooMany);
        }
        let mut next = edits.clone();
        next.rules.retain(|r| r.name != rule.name);
        next.deleted.retain(|n| *n != rule.name);
        next.rules.push(rule);
        next.rules.sort_by(|a, b| a.name.cmp(&b.name));
        self.commit(&mut edits, next)?;
        Ok(if exists {
            Change::Replaced
        } else {
            Change::Created
        })
    }

    /// Deletes a rule (a config rule stays deleted across restarts). The
    /// `Default` rule cannot be deleted.
    pub fn delete_rule(&self, name: &str) -> Result<(), RuleError> {
        if name == DEFAULT_RULE {
            return Err(RuleError::DeleteDefault);
        }
        let mut edits = self.edits.lock().unwrap_or_else(PoisonError::into_inner);
        if !effective(&self.config, &edits)
            .iter()
            .any(|r| r.name == name)
        {
            return Err(RuleError::NotFound(name.to_owned()));
        }
        let mut next = edits.clone();
        next.rules.retain(|r| r.name != name);
        if self.config.contains_key(name) && !next.deleted.iter().any(|n| n == name) {
            next.deleted.push(name.to_owned());
            next.deleted.sort();
        }
        self.commit(&mut edits, next)
    }

    /// Persists `next`, then makes it the edits and swaps the rules in.
    fn commit(&self, edits: &mut Overlay, next: Overlay) -> Result<(), RuleError> {
        if let Some(path) = &self.path {
            persist::store(path, &next)?;
        }
        *edits = next;
        let set = RuleSet::build(effective(&self.config, edits), &self.rules.load());
        self.rules.store(Arc::new(set));
        Ok(())
    }

    /// The rules in force, in evaluation order (`Default` last).
    pub fn rules(&self) -> Vec<Rule> {
        self.rules
            .load()
            .rules
            .iter()
            .map(|c| c.rule.clone())
            .collect()
    }

    /// The rule named `name`.
    pub fn rule(&self, name: &str) -> Option<Rule> {
        let set = self.rules.load();
        let found = set.rules.iter().find(|c| c.rule.name == name);
        found.map(|c| c.rule.clone())
    }

    /// Each rule's counters, in evaluation order.
    pub fn stats(&self) -> Vec<RuleStats> {
        self.rules
            .load()
            .rules
            .iter()
            .map(|c| {
                let s = &c.state;
                let sampled_reservoir = s.sampled_reservoir.load(Ordering::Relaxed);
                let sampled_fixed_rate = s.sampled_fixed_rate.load(Ordering::Relaxed);
                let not_sampled = s.not_sampled.load(Ordering::Relaxed);
                RuleStats {
                    name: c.rule.name.clone(),
                    matched: sampled_reservoir + sampled_fixed_rate + not_sampled,
                    sampled_reservoir,
                    sampled_fixed_rate,
                    not_sampled,
                }
            })
            .collect()
    }
}

/// The rules in force: the built-in `Default`, then the config's, minus
/// those the API deleted, then the API's over them; sorted by priority,
/// then name.
fn effective(config: &BTreeMap<String, Rule>, overlay: &Overlay) -> Vec<Rule> {
    let mut by_name: BTreeMap<&str, &Rule> = BTreeMap::new();
    let builtin = Rule::builtin_default();
    by_name.insert(DEFAULT_RULE, &builtin);
    for (name, rule) in config {
        if !overlay.deleted.contains(name) {
            by_name.insert(name, rule);
        }
    }
    for rule in &overlay.rules {
        by_name.insert(&rule.name, rule);
    }
    let mut rules: Vec<Rule> = by_name.into_values().cloned().collect();
    rules.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then_with(|| a.name.cmp(&b.name))
    });
    rules
}

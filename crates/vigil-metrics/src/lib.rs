//! Vigil's metrics, knowing no HTTP: the data model and its validation
//! (CloudWatch's PutMetricData rules), a mergeable sketch for percentiles,
//! the statistics, the embedded time-series tiers, metric math, the alarm
//! engine, the notification targets, and the fleet's shared store in
//! PostgreSQL.
//!
//! The reference for every rule here is `SEMANTICS.md` §1, §2 and §7.

pub mod aggregate;
pub mod alarm;
pub mod dashboard;
pub mod datum;
pub mod fleet;
pub mod math;
pub mod model;
pub mod notify;
pub mod registry;
pub mod service;
pub mod sketch;
pub mod statistic;
pub mod tsdb;

pub use aggregate::Aggregate;
pub use model::{Dimensions, Resolution, SeriesKey, Unit};
pub use statistic::Statistic;

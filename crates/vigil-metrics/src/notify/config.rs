//! The notifier's configuration: [`NotifierSettings`] is what a config file
//! holds (every key optional, with its default), [`NotifierSettings::validate`]
//! turns it into a [`NotifierConfig`] that cannot be invalid and reports every
//! problem at once.

use std::time::Duration;

use lettre::message::Mailbox;
use serde::Deserialize;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain text (a relay on localhost or a test server).
    None,
    /// Plain connect, then STARTTLS, which is required (port 587).
    Starttls,
    /// TLS from the first byte, "SMTPS" (port 465).
    Tls,
}

impl SmtpTls {
    /// The usual port of each mode: 25, 587, 465.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        }
    }
}

/// A valid SMTP configuration.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Server host name (also the name its certificate is checked against).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Connection security.
    pub tls: SmtpTls,
    /// Login, if the server wants one (with `password`).
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<String>,
    /// The `From:` mailbox of every notification email.
    pub from: Mailbox,
}

/// When and how often a failed delivery is tried again.
///
/// Attempt 1 runs at once; after a failed attempt `k` the next one waits
/// `min(initial_backoff × 2^(k−1), max_backoff)` (a 429's `Retry-After`, when
/// longer, wins, still capped at `max_backoff`). No attempt starts once
/// `deadline` has passed since the first one, and each attempt's timeout is
/// cut to what remains of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub max_attempts: u32,
    /// Wait after the first failure.
    pub initial_backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
    /// Time budget for all attempts and waits of one delivery.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: default_max_attempts(),
            initial_backoff: Duration::from_millis(default_initial_backoff_ms()),
            max_backoff: Duration::from_millis(default_max_backoff_ms()),
            deadline: Duration::from_millis(default_deadline_ms()),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .map_or(self.max_backoff, |d| d.min(self.max_backoff))
    }
}

/// A valid notifier configuration.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// The SMTP server for email actions; without it an email action fails.
    pub smtp: Option<SmtpConfig>,
    /// TCP (and TLS handshake, for HTTP) connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one attempt: request sent and answer read.
    pub request_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// `severity` label put on every Alertmanager alert, if set.
    pub alertmanager_severity: Option<String>,
    /// `endsAt` of a firing alert, counted from the transition: alarms
    /// notify on transitions only, so without it Alertmanager would resolve
    /// the alert after its `resolve_timeout` (5 min) while the alarm still
    /// fires. The OK transition resolves it earlier.
    pub alertmanager_firing_ttl: Duration,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            smtp: None,
            connect_timeout: Duration::from_millis(default_connect_timeout_ms()),
            request_timeout: Duration::from_millis(default_request_timeout_ms()),
            retry: RetryPolicy::default(),
            alertmanager_severity: None,
            alertmanager_firing_ttl: Duration::from_millis(default_firing_ttl_ms()),
        }
    }
}

/// The `[notify]` table of a config file. Every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierSettings {
    /// `[notify.smtp]`; no email actions without it.
    #[serde(default)]
    pub smtp: Option<SmtpSettings>,
    /// Default 5000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Default 10000.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// `[notify.retry]`.
    #[serde(default)]
    pub retry: RetrySettings,
    /// `[notify.alertmanager]`.
    #[serde(default)]
    pub alertmanager: AlertmanagerSettings,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        NotifierSettings {
            smtp: None,
            connect_timeout_ms: default_connect_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            retry: RetrySettings::default(),
            alertmanager: AlertmanagerSettings::default(),
        }
    }
}

/// `[notify.smtp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// Required.
    pub host: String,
    /// Default: 25, 587 or 465 after `tls`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `none`, `starttls` (default) or `tls`.
    #[serde(default = "default_smtp_tls")]
    pub tls: SmtpTls,
    /// Optional, with `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// Optional, with `username`.
    #[serde(default)]
    pub password: Option<String>,
    /// Required: `alarms@example.com` or `Vigil <alarms@example.com>`.
    pub from: String,
}

/// `[notify.retry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// Default 3.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Default 1000.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Default 30000.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Default 120000.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            deadline_ms: default_deadline_ms(),
        }
    }
}

/// `[notify.alertmanager]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerSettings {
    /// Optional `severity` label.
    #[serde(default)]
    pub severity: Option<String>,
    /// Default 86400000 (one day).
    #[serde(default = "default_firing_ttl_ms")]
    pub firing_ttl_ms: u64,
}

impl Default for AlertmanagerSettings {
    fn default() -> Self {
        AlertmanagerSettings {
            severity: None,
            firing_ttl_ms: default_firing_ttl_ms(),
        }
    }
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_max_attempts() -> u32 {
    3
}
fn default_initial_backoff_ms() -> u64 {
    1_000
}
fn default_max_backoff_ms() -> u64 {
    30_000
}
fn default_deadline_ms() -> u64 {
    120_000
}
fn default_firing_ttl_ms() -> u64 {
    86_400_000
}
fn default_smtp_tls() -> SmtpTls {
    SmtpTls::Starttls
}

/// Every problem of a [`NotifierSettings`], one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid notify config: {}", .0.join("; "))]
pub struct ConfigErrors(pub Vec<String>);

impl NotifierSettings {
    /// Checks every key and returns the config, or all the problems found.
    pub fn validate(self) -> Result<NotifierConfig, ConfigErrors> {
        let mut errors = Vec::new();
        let mut positive = |key: &str, value: u64| {
            if value == 0 {
                errors.push(format!("notify.{key}: must be greater than 0"));
            }
            Duration::from_millis(value)
        };
        let connect_timeout = positive("connect_timeout_ms", self.connect_timeout_ms);
        let request_timeout = positive("request_timeout_ms", self.request_timeout_ms);
        let initial_backoff = positive("retry.initial_backoff_ms", self.retry.initial_backoff_ms);
        let max_backoff = positive("retry.max_backoff_ms", self.retry.max_backoff_ms);
        let deadline = positive("retry.deadline_ms", self.retry.deadline_ms);
        let firing_ttl = positive(
            "alertmanager.firing_ttl_ms",
            self.alertmanager.firing_ttl_ms,
        );
        if self.retry.max_attempts == 0 {
            errors.push("notify.retry.max_attempts: must be at least 1, got 0".to_owned());
        }
        if initial_backoff > max_backoff {
            errors.push(format!(
                "notify.retry.initial_backoff_ms: must not exceed retry.max_backoff_ms ({}), got {}",
                self.retry.max_backoff_ms, self.retry.initial_backoff_ms
            ));
        }
        if let Some(severity) = &self.alertmanager.severity
            && severity.trim().is_empty()
        {
            errors.push("notify.alertmanager.severity: must not be empty".to_owned());
        }
        let smtp = self.smtp.and_then(|s| validate_smtp(s, &mut errors));
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(NotifierConfig {
            smtp,
            connect_timeout,
            request_timeout,
            retry: RetryPolicy {
                max_attempts: self.retry.max_attempts,
                initial_backoff,
                max_backoff,
                deadline,
            },
            alertmanager_severity: self.alertmanager.severity,
            alertmanager_firing_ttl: firing_ttl,
        })
    }
}

fn validate_smtp(s: SmtpSettings, errors: &mut Vec<String>) -> Option<SmtpConfig> {
    let before = errors.len();
    if s.host.trim().is_empty() {
        errors.push("notify.smtp.host: must not be empty".to_owned());
    }
    if s.port == Some(0) {
        errors.push("notify.smtp.port: must be 1-65535, got 0".to_owned());
    }
    if s.username.is_some() != s.password.is_some() {
        errors.push("notify.smtp.username: username and password go together".to_owned());
    }
    let from = match s.from.parse::<Mailbox>() {
        Ok(from) => Some(from),
        Err(err) => {
            errors.push(format!(
                "notify.smtp.from: expected a mailbox like `Vigil <alarms@example.com>`, got {:?} ({err})",
                s.from
            ));
            None
        }
    };
    match from {
        Some(from) if errors.len() == before => Some(SmtpConfig {
            host: s.host,
            port: s.port.unwrap_or(s.tls.default_port()),
            tls: s.tls,
            username: s.username,
            password: s.password,
            from,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn settings(json: serde_json::Value) -> NotifierSettings {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults_are_three_attempts_one_to_thirty_seconds() {
        let config = settings(serde_json::json!({})).validate().unwrap();
        assert_eq!(config.retry.max_attempts, 3);
        assert_eq!(config.retry.initial_backoff, Duration::from_secs(1));
        assert_eq!(config.retry.max_backoff, Duration::from_secs(30));
        assert_eq!(config.retry.deadline, Duration::from_secs(120));
        assert!(config.smtp.is_none());
        assert_eq!(config.retry, NotifierConfig::default().retry);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let waits: Vec<u64> = (1..=7).map(|k| policy.backoff(k).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(policy.backoff(200), Duration::from_secs(30));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = settings(serde_json::json!({
            "request_timeout_ms": 0,
            "retry": {"max_attempts": 0, "initial_backoff_ms": 5000, "max_backoff_ms": 10},
            "smtp": {"host": "", "from": "not a mailbox", "username": "u"}
        }))
        .validate()
        .unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.split(':').next().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "notify.request_timeout_ms",
                "notify.retry.max_attempts",
                "notify.retry.initial_backoff_ms",
                "notify.smtp.host",
                "notify.smtp.username",
                "notify.smtp.from",
            ]
        );
    }

    #[test]
    fn smtp_port_follows_tls_mode() {
        let config = settings(serde_json::json!({
            "smtp": {"host": "mail.example.com", "tls": "tls", "from": "Vigil <alarms@example.com>"}
        }))
        .validate()
        .unwrap();
        let smtp = config.smtp.unwrap();
        assert_eq!(smtp.port, 465);
        assert_eq!(smtp.from.email.to_string(), "alarms@example.com");
        assert_eq!(smtp.from.name.as_deref(), Some("Vigil"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_json::from_value::<NotifierSettings>(serde_json::json!({"retries": 3}))
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `retries`"), "{err}");
    }
}

//! Notification targets of alarm actions: webhook, Prometheus Alertmanager
//! and email (SMTP).
//!
//! The alarm engine produces a `(Notification, Vec<Action>)` for each
//! transition (SEMANTICS.md §2.3); [`Notifier::send`] delivers one
//! notification to one action, retrying with backoff ([`RetryPolicy`]) on
//! connection errors, timeouts, HTTP 5xx/429 and transient SMTP replies, and
//! counts the outcome ([`Notifier::stats`]). The payload builders of each
//! target are public and pure, so their output can be checked without I/O.

mod alertmanager;
mod config;
mod email;
mod http;
mod retry;
mod webhook;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::Instrument;

use crate::model::Dimensions;

pub use self::config::{
    AlertmanagerSettings, ConfigErrors, NotifierConfig, NotifierSettings, RetryPolicy,
    RetrySettings, SmtpConfig, SmtpSettings, SmtpTls,
};
pub use self::http::{HttpClient, parse_url};
pub use self::retry::{SendError, run as send_with_retry};

/// The payload builders, for tests and for documentation of the wire format.
pub mod payload {
    pub use super::alertmanager::{
        alerts_url, labels as alertmanager_labels, payload as alertmanager, sanitize_label_name,
    };
    pub use super::email::{
        body as email_body, email_time, message as email_message, recipients as email_recipients,
        subject as email_subject,
    };
    pub use super::webhook::{
        SIGNATURE_HEADER, TIMESTAMP_HEADER, payload as webhook, signature as webhook_signature,
    };
}

/// One action of an alarm, as written in its `alarm_actions`, `ok_actions`
/// or `insufficient_data_actions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// POST a JSON body to `url`, signed with HMAC-SHA256 when `secret` is set.
    Webhook {
        /// http(s) URL.
        url: String,
        /// Key for the `X-Vigil-Signature` header.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    /// POST to a Prometheus Alertmanager's `/api/v2/alerts`.
    Alertmanager {
        /// The Alertmanager's base URL (`http://127.0.0.1:9093`).
        url: String,
    },
    /// Send an email through the configured SMTP server.
    Email {
        /// Recipients.
        to: Vec<String>,
    },
}

/// The alarm states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    /// Within the threshold.
    Ok,
    /// Breaching.
    Alarm,
    /// Not enough data to decide (a new alarm starts here).
    InsufficientData,
}

impl AlarmState {
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// What an alarm's transition sends to its actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The alarm's name.
    pub alarm_name: String,
    /// The alarm's description, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_description: Option<String>,
    /// State before the transition.
    pub old_state: AlarmState,
    /// State after the transition.
    pub new_state: AlarmState,
    /// Reason text ("Threshold Crossed: ...").
    pub reason: String,
    /// Reason data (JSON), as the alarm history has it.
    pub reason_data: serde_json::Value,
    /// Transition time, Unix milliseconds.
    pub timestamp_ms: i64,
    /// The metric's namespace (metric alarms on one metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The metric's name (metric alarms on one metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    /// The metric's dimensions.
    #[serde(default)]
    pub dimensions: Dimensions,
}

impl Action {
    /// Which target this action sends to.
    pub fn target(&self) -> Target {
        match self {
            Action::Webhook { .. } => Target::Webhook,
            Action::Alertmanager { .. } => Target::Alertmanager,
            Action::Email { .. } => Target::Email,
        }
    }
}

/// The kinds of notification target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// [`Action::Webhook`].
    Webhook,
    /// [`Action::Alertmanager`].
    Alertmanager,
    /// [`Action::Email`].
    Email,
}

impl Target {
    /// `webhook`, `alertmanager` or `email` (a bounded metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Webhook => "webhook",
            Target::Alertmanager => "alertmanager",
            Target::Email => "email",
        }
    }
}

/// A delivered notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Attempts made, the last one successful (1 = no retry).
    pub attempts: u32,
}

/// A notification that was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target} notification failed after {attempts} attempt(s): {last_error}")]
pub struct NotifyError {
    /// The target kind.
    pub target: &'static str,
    /// Attempts made; 0 when the action or notification was invalid and
    /// nothing was sent.
    pub attempts: u32,
    /// The error of the last attempt (or of the preparation).
    pub last_error: SendError,
}

/// Counters of one target kind since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetStats {
    /// Notifications delivered.
    pub delivered: u64,
    /// Notifications given up on (including invalid ones).
    pub failed: u64,
    /// Attempts made, successful or not.
    pub attempts: u64,
}

/// [`Notifier::stats`]: counters per target kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyStats {
    /// Webhook actions.
    pub webhook: TargetStats,
    /// Alertmanager actions.
    pub alertmanager: TargetStats,
    /// Email actions.
    pub email: TargetStats,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    attempts: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> TargetStats {
        TargetStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            attempts: self.attempts.load(Ordering::Relaxed),
        }
    }
}

/// Sends notifications to webhooks, Alertmanagers and email recipients.
/// Cheap to clone; clones share the HTTP connection pool and the counters.
#[derive(Debug, Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: NotifierConfig,
    http: http::HttpClient,
    /// Built once; a TLS setup error is kept and reported by every email send,
    /// so that `Notifier::new` cannot fail.
    smtp: Option<Result<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>, SendError>>,
    /// Indexed by `Target as usize`, in `Target`'s order.
    counters: [Counters; 3],
}

impl Notifier {
    /// A notifier for `config`. Nothing connects until a send.
    pub fn new(config: NotifierConfig) -> Notifier {
        let smtp = config
            .smtp
            .as_ref()
            .map(|smtp| email::transport(smtp, config.request_timeout));
        Notifier {
            inner: Arc::new(Inner {
                http: http::HttpClient::new(config.connect_timeout),
                smtp,
                config,
                counters: Default::default(),
            }),
        }
    }

    /// The configuration this notifier was built with.
    pub fn config(&self) -> &NotifierConfig {
        &self.inner.config
    }

    /// Counters per target kind.
    pub fn stats(&self) -> NotifyStats {
        let [webhook, alertmanager, email] = &self.inner.counters;
        NotifyStats {
            webhook: webhook.snapshot(),
            alertmanager: alertmanager.snapshot(),
            email: email.snapshot(),
        }
    }

    /// Delivers `n` to `action`, retrying as the [`RetryPolicy`] says.
    pub async fn send(&self, n: &Notification, action: &Action) -> Result<Delivery, NotifyError> {
        let target = action.target();
        let span = tracing::info_span!(
            "notify",
            target = target.as_str(),
            alarm = %n.alarm_name,
            state = n.new_state.as_str()
        );
        let (attempts, result) = self.deliver(n, action).instrument(span).await;
        let counters = &self.inner.counters[target as usize];
        counters
            .attempts
            .fetch_add(u64::from(attempts), Ordering::Relaxed);
        match result {
            Ok(()) => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                Ok(Delivery { attempts })
            }
            Err(last_error) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    target_kind = target.as_str(),
                    alarm = %n.alarm_name,
                    attempts,
                    error = %last_error,
                    "alarm notification failed"
                );
                Err(NotifyError {
                    target: target.as_str(),
                    attempts,
                    last_error,
                })
            }
        }
    }

    async fn deliver(&self, n: &Notification, action: &Action) -> (u32, Result<(), SendError>) {
        let config = &self.inner.config;
        match action {
            Action::Webhook { url, secret } => {
                let prepared = http::parse_url("webhook url", url).and_then(|uri| {
                    let body = serde_json::to_vec(&webhook::payload(n)?).map_err(json_error)?;
                    Ok((uri, Bytes::from(body)))
                });
                let (uri, body) = match prepared {
                    Ok(prepared) => prepared,
                    Err(err) => return (0, Err(err)),
                };
                retry::run(&config.retry, config.request_timeout, |_| {
                    let headers =
                        webhook::signing_headers(secret.as_deref(), &body, unix_now_ms() / 1000);
                    let (uri, body) = (&uri, body.clone());
                    async move { self.inner.http.post_json(uri, &headers, body).await }
                })
                .await
            }
            Action::Alertmanager { url } => {
                let uri = match http::parse_url("alertmanager url", url).and_then(|_| {
                    http::parse_url("alertmanager url", &alertmanager::alerts_url(url))
                }) {
                    Ok(uri) => uri,
                    Err(err) => return (0, Err(err)),
                };
                retry::run(&config.retry, config.request_timeout, |_| {
                    // `endsAt` of a resolve is the send time, so built per attempt.
                    let body = alertmanager::payload(
                        n,
                        config.alertmanager_severity.as_deref(),
                        config.alertmanager_firing_ttl,
                        unix_now_ms(),
                    )
                    .and_then(|v| serde_json::to_vec(&v).map_err(json_error));
                    let uri = &uri;
                    async move {
                        self.inner
                            .http
                            .post_json(uri, &[], Bytes::from(body?))
                            .await
                    }
                })
                .await
            }
            Action::Email { to } => {
                let prepared = match (&self.inner.smtp, &config.smtp) {
                    (Some(Ok(transport)), Some(smtp)) => {
                        email::message(n, &smtp.from, to).map(|m| (transport, m))
                    }
                    (Some(Err(err)), _) => Err(err.clone()),
                    _ => Err(SendError::Invalid {
                        field: "email",
                        message: "no [notify.smtp] server is configured".to_owned(),
                    }),
                };
                let (transport, message) = match prepared {
                    Ok(prepared) => prepared,
                    Err(err) => return (0, Err(err)),
                };
                retry::run(&config.retry, config.request_timeout, |_| {
                    email::send_once(transport, message.clone())
                })
                .await
            }
        }
    }
}

fn json_error(err: serde_json::Error) -> SendError {
    SendError::Invalid {
        field: "notification",
        message: format!("cannot encode as json ({err})"),
    }
}

fn unix_now_ms() -> i64 {
    let now = OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// `timestamp_ms` (Unix milliseconds) in RFC 3339, UTC (`…T22:13:20.123Z`).
pub fn rfc3339(timestamp_ms: i64) -> Result<String, SendError> {
    let invalid = |message: String| SendError::Invalid {
        field: "notification timestamp_ms",
        message,
    };
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(timestamp_ms) * 1_000_000)
        .map_err(|err| invalid(format!("{timestamp_ms} is out of range ({err})")))?
        .format(&Rfc3339)
        .map_err(|err| {
            invalid(format!(
                "{timestamp_ms} cannot be written as rfc 3339 ({err})"
            ))
        })
}

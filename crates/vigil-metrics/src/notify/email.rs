//! The email target: a plain-text message in the cloud's alarm-email style,
//! sent through the configured SMTP server with lettre.

use std::fmt::Write as _;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::Value;
use time::OffsetDateTime;

use super::retry::SendError;
use super::{Notification, SmtpConfig, SmtpTls};

/// `ALARM: "High-Latency-Alarm" in Vigil`.
pub fn subject(n: &Notification) -> String {
    format!("{}: \"{}\" in Vigil", n.new_state.as_str(), n.alarm_name)
}

/// `Tuesday 14 November, 2023 22:13:20 UTC`, as the cloud's alarm emails
/// write times.
pub fn email_time(timestamp_ms: i64) -> Result<String, SendError> {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(timestamp_ms) * 1_000_000)
        .map_err(|err| SendError::Invalid {
            field: "notification timestamp_ms",
            message: format!("{timestamp_ms} is out of range ({err})"),
        })?;
    Ok(format!(
        "{} {} {}, {} {:02}:{:02}:{:02} UTC",
        t.weekday(),
        t.day(),
        t.month(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// The text body: the opening sentence, then the Alarm Details, Threshold
/// and Monitored Metric sections. Threshold, period, statistic and unit come
/// from the reason data when it has them (CloudWatch's camelCase keys or
/// snake_case).
pub fn body(n: &Notification) -> Result<String, SendError> {
    let time = email_time(n.timestamp_ms)?;
    let state = n.new_state.as_str();
    let mut out = String::new();
    // `write!` into a String cannot fail.
    let _ = writeln!(
        out,
        "You are receiving this email because your Vigil alarm \"{}\" has entered the {state} state, because \"{}\" at \"{time}\".",
        n.alarm_name, n.reason
    );
    out.push_str("\nAlarm Details:\n");
    line(&mut out, "Name", &n.alarm_name);
    line(
        &mut out,
        "Description",
        n.alarm_description.as_deref().unwrap_or(""),
    );
    line(
        &mut out,
        "State Change",
        &format!("{} -> {state}", n.old_state.as_str()),
    );
    line(&mut out, "Reason for State Change", &n.reason);
    line(&mut out, "Timestamp", &time);

    let data = &n.reason_data;
    let threshold = field(data, &["threshold"]).map(scalar);
    let operator = field(data, &["comparisonOperator", "comparison_operator"]).map(scalar);
    let period = field(data, &["period"]).map(scalar);
    let statistic = field(
        data,
        &["statistic", "extendedStatistic", "extended_statistic"],
    )
    .map(scalar);
    let evaluation = field(data, &["evaluationPeriods", "evaluation_periods"]).map(scalar);
    let to_alarm = field(data, &["datapointsToAlarm", "datapoints_to_alarm"])
        .map(scalar)
        .or_else(|| evaluation.clone());
    out.push_str("\nThreshold:\n");
    match (&threshold, &operator) {
        (Some(threshold), Some(operator)) => {
            let _ = write!(
                out,
                "- The alarm is in the ALARM state when the metric is {operator} {threshold}"
            );
            if let (Some(m), Some(n)) = (&to_alarm, &evaluation) {
                let _ = write!(out, " for at least {m} of the last {n} period(s)");
                if let Some(period) = &period {
                    let _ = write!(out, " of {period} seconds");
                }
            }
            out.push_str(".\n");
        }
        (Some(threshold), None) => line(&mut out, "Threshold", threshold),
        _ => out.push_str("- Not given in the alarm's reason data.\n"),
    }

    out.push_str("\nMonitored Metric:\n");
    match (&n.namespace, &n.metric_name) {
        (Some(namespace), Some(metric)) => {
            line(&mut out, "MetricNamespace", namespace);
            line(&mut out, "MetricName", metric);
            let dimensions: Vec<String> = n
                .dimensions
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            line(
                &mut out,
                "Dimensions",
                &format!("[{}]", dimensions.join(", ")),
            );
            line(
                &mut out,
                "Period",
                &period.map_or_else(|| "not specified".to_owned(), |p| format!("{p} seconds")),
            );
            line(
                &mut out,
                "Statistic",
                statistic.as_deref().unwrap_or("not specified"),
            );
            let unit = field(data, &["unit"]).map(scalar);
            line(&mut out, "Unit", unit.as_deref().unwrap_or("not specified"));
        }
        _ => out.push_str("- Not a single-metric alarm (metric math or composite).\n"),
    }
    Ok(out)
}

/// `- Name:<padding to column 31>value`, as the cloud aligns them.
fn line(out: &mut String, key: &str, value: &str) {
    let _ = writeln!(out, "- {:<28}{value}", format!("{key}:"));
}

fn field<'a>(data: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter()
        .find_map(|k| data.get(k))
        .filter(|v| !v.is_null())
}

/// Numbers as JSON writes them (`250.0` stays `250.0`), strings as they are.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The recipients, each checked as a mailbox.
pub fn recipients(to: &[String]) -> Result<Vec<Mailbox>, SendError> {
    if to.is_empty() {
        return Err(SendError::Invalid {
            field: "email to",
            message: "expected at least one recipient, got none".to_owned(),
        });
    }
    to.iter()
        .map(|address| {
            address
                .parse::<Mailbox>()
                .map_err(|err| SendError::Invalid {
                    field: "email to",
                    message: format!("expected a mailbox, got {address:?} ({err})"),
                })
        })
        .collect()
}

/// The whole message.
pub fn message(n: &Notification, from: &Mailbox, to: &[String]) -> Result<Message, SendError> {
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject(n))
        .header(ContentType::TEXT_PLAIN);
    for mailbox in recipients(to)? {
        builder = builder.to(mailbox);
    }
    builder.body(body(n)?).map_err(|err| SendError::Invalid {
        field: "email",
        message: err.to_string(),
    })
}

/// The SMTP transport of `config` (it connects per message).
pub(crate) fn transport(
    config: &SmtpConfig,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
    let tls_parameters = || {
        TlsParameters::new(config.host.clone()).map_err(|err| SendError::Invalid {
            field: "smtp tls",
            message: err.to_string(),
        })
    };
    let tls = match config.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls => Tls::Required(tls_parameters()?),
        SmtpTls::Tls => Tls::Wrapper(tls_parameters()?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.clone())
        .port(config.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

/// Sends `message` once.
pub(crate) async fn send_once(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    message: Message,
) -> Result<(), SendError> {
    match transport.send(message).await {
        Ok(_) => Ok(()),
        Err(err) if err.is_timeout() => Err(SendError::Connect(err.to_string())),
        Err(err) => Err(SendError::Smtp {
            // A 5yz reply or a malformed message will not get better.
            permanent: err.is_permanent() || err.is_client(),
            message: err.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::notify::AlarmState;

    fn notification() -> Notification {
        Notification {
            alarm_name: "High-Latency-Alarm".into(),
            alarm_description: Some("p99 latency of the fraud model".into()),
            old_state: AlarmState::Ok,
            new_state: AlarmState::Alarm,
            reason: "Threshold Crossed: 3 out of the last 3 datapoints were greater than the threshold (250.0)".into(),
            reason_data: json!({
                "threshold": 250.0,
                "comparisonOperator": "GreaterThanThreshold",
                "evaluationPeriods": 3,
                "period": 60,
                "statistic": "p99",
                "unit": "Milliseconds",
            }),
            timestamp_ms: 1_700_000_000_123,
            namespace: Some("InferencePipeline".into()),
            metric_name: Some("LatencyMs".into()),
            dimensions: [
                ("Model".to_owned(), "fraud".to_owned()),
                ("Stage".to_owned(), "prod".to_owned()),
            ]
            .into(),
        }
    }

    #[test]
    fn subject_names_state_and_alarm() {
        let mut n = notification();
        assert_eq!(subject(&n), "ALARM: \"High-Latency-Alarm\" in Vigil");
        n.new_state = AlarmState::Ok;
        assert_eq!(subject(&n), "OK: \"High-Latency-Alarm\" in Vigil");
    }

    #[test]
    fn time_is_written_the_cloud_way() {
        assert_eq!(
            email_time(1_700_000_000_123).unwrap(),
            "Tuesday 14 November, 2023 22:13:20 UTC"
        );
        assert_eq!(
            email_time(0).unwrap(),
            "Thursday 1 January, 1970 00:00:00 UTC"
        );
        assert!(email_time(i64::MAX).is_err());
    }

    #[test]
    fn body_has_the_sentence_and_the_three_sections() {
        let body = body(&notification()).unwrap();
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(
            lines[0],
            "You are receiving this email because your Vigil alarm \"High-Latency-Alarm\" has entered the ALARM state, because \"Threshold Crossed: 3 out of the last 3 datapoints were greater than the threshold (250.0)\" at \"Tuesday 14 November, 2023 22:13:20 UTC\"."
        );
        for expected in [
            "Alarm Details:",
            "- Name:                       High-Latency-Alarm",
            "- Description:                p99 latency of the fraud model",
            "- State Change:               OK -> ALARM",
            "- Timestamp:                  Tuesday 14 November, 2023 22:13:20 UTC",
            "Threshold:",
            "- The alarm is in the ALARM state when the metric is GreaterThanThreshold 250.0 for at least 3 of the last 3 period(s) of 60 seconds.",
            "Monitored Metric:",
            "- MetricNamespace:            InferencePipeline",
            "- MetricName:                 LatencyMs",
            "- Dimensions:                 [Model = fraud, Stage = prod]",
            "- Period:                     60 seconds",
            "- Statistic:                  p99",
            "- Unit:                       Milliseconds",
        ] {
            assert!(lines.contains(&expected), "missing {expected:?} in\n{body}");
        }
    }

    #[test]
    fn body_without_threshold_or_metric_says_so() {
        let mut n = notification();
        n.reason_data = json!({});
        n.namespace = None;
        n.metric_name = None;
        let body = body(&n).unwrap();
        assert!(
            body.contains("Threshold:\n- Not given in the alarm's reason data.\n"),
            "{body}"
        );
        assert!(
            body.contains("Monitored Metric:\n- Not a single-metric alarm"),
            "{body}"
        );
    }

    #[test]
    fn recipients_are_validated() {
        let ok = recipients(&["ops@example.com".into(), "Ops <ops2@example.com>".into()]).unwrap();
        assert_eq!(ok[1].email.to_string(), "ops2@example.com");
        assert!(matches!(recipients(&[]), Err(SendError::Invalid { .. })));
        let err = recipients(&["ops@example.com".into(), "not an address".into()]).unwrap_err();
        assert!(err.to_string().contains("\"not an address\""), "{err}");
    }

    #[test]
    fn message_headers() {
        let from: Mailbox = "Vigil <alarms@example.com>".parse().unwrap();
        let message = message(&notification(), &from, &["ops@example.com".into()]).unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(
            raw.contains("From: Vigil <alarms@example.com>\r\n"),
            "{raw}"
        );
        assert!(raw.contains("To: ops@example.com\r\n"), "{raw}");
        assert!(
            raw.contains("Subject: ALARM: \"High-Latency-Alarm\" in Vigil\r\n"),
            "{raw}"
        );
        assert!(
            raw.contains("Content-Type: text/plain; charset=utf-8\r\n"),
            "{raw}"
        );
        let envelope = message.envelope();
        assert_eq!(envelope.to().len(), 1);
        assert_eq!(envelope.to()[0].to_string(), "ops@example.com");
    }
}

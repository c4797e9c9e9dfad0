//! Delivery without external peers: the webhook target against an
//! in-process HTTP receiver (retries, the body and the signature as a
//! receiver sees them), and the failure paths of every target.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use vigil_metrics::notify::{
    Action, AlarmState, Notification, Notifier, NotifierConfig, NotifierSettings, RetryPolicy,
    SendError, payload,
};

#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Receiver {
    statuses: Arc<Mutex<VecDeque<StatusCode>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.received.lock().unwrap().push(Received { headers, body });
    r.statuses
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(StatusCode::OK)
}

/// A receiver answering `statuses` in order (then 200), and its URL.
async fn receiver(statuses: &[u16]) -> (Receiver, String) {
    let state = Receiver::default();
    state
        .statuses
        .lock()
        .unwrap()
        .extend(statuses.iter().map(|s| StatusCode::from_u16(*s).unwrap()));
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, url)
}

fn notifier() -> Notifier {
    Notifier::new(NotifierConfig {
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            deadline: Duration::from_secs(30),
        },
        ..NotifierConfig::default()
    })
}

fn notification() -> Notification {
    Notification {
        alarm_name: "High-Latency-Alarm".into(),
        alarm_description: None,
        old_state: AlarmState::Ok,
        new_state: AlarmState::Alarm,
        reason: "Threshold Crossed: 1 out of the last 1 datapoints".into(),
        reason_data: serde_json::json!({"threshold": 250.0}),
        timestamp_ms: 1_700_000_000_000,
        namespace: Some("InferencePipeline".into()),
        metric_name: Some("LatencyMs".into()),
        dimensions: [("Model".to_owned(), "fraud".to_owned())].into(),
    }
}

#[tokio::test]
async fn two_500s_then_200_is_delivered_on_the_third_attempt() {
    let (receiver, url) = receiver(&[500, 500]).await;
    let notifier = notifier();
    let action = Action::Webhook {
        url,
        secret: Some("s3cr3t".into()),
    };
    let delivery = notifier.send(&notification(), &action).await.unwrap();
    assert_eq!(delivery.attempts, 3);

    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(received.len(), 3);
    let last = &received[2];
    assert_eq!(last.headers["content-type"], "application/json");
    // The receiver recomputes the signature over the bytes it got.
    let expected = payload::webhook_signature(b"s3cr3t", &last.body);
    assert_eq!(last.headers["x-vigil-signature"], expected.as_str());
    let sent_at: i64 = last.headers["x-vigil-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(sent_at > 1_700_000_000, "{sent_at}");
    let body: serde_json::Value = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(body["alarm_name"], "High-Latency-Alarm");
    assert_eq!(body["new_state"], "ALARM");
    assert_eq!(body["time"], "2023-11-14T22:13:20Z");
    // Every attempt carries the same body.
    assert!(received.iter().all(|r| r.body == last.body));

    let stats = notifier.stats().webhook;
    assert_eq!((stats.delivered, stats.failed, stats.attempts), (1, 0, 3));
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let (receiver, url) = receiver(&[400]).await;
    let notifier = notifier();
    let action = Action::Webhook { url, secret: None };
    let err = notifier.send(&notification(), &action).await.unwrap_err();
    assert_eq!(err.attempts, 1);
    assert!(
        matches!(err.last_error, SendError::Status { status: 400, .. }),
        "{err}"
    );
    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    assert!(received[0].headers.get("x-vigil-signature").is_none());
    let stats = notifier.stats().webhook;
    assert_eq!((stats.delivered, stats.failed, stats.attempts), (0, 1, 1));
}

#[tokio::test]
async fn persistent_503_gives_up_after_max_attempts() {
    let (receiver, url) = receiver(&[503, 503, 503, 503]).await;
    let err = notifier()
        .send(&notification(), &Action::Webhook { url, secret: None })
        .await
        .unwrap_err();
    assert_eq!(err.attempts, 3);
    assert!(matches!(
        err.last_error,
        SendError::Status { status: 503, .. }
    ));
    assert_eq!(receiver.received.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn connection_refused_is_retried() {
    // Bind then drop: nothing listens on the port afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let action = Action::Webhook {
        url: format!("http://127.0.0.1:{port}/hook"),
        secret: None,
    };
    let err = notifier().send(&notification(), &action).await.unwrap_err();
    assert_eq!(err.attempts, 3);
    assert!(matches!(err.last_error, SendError::Connect(_)), "{err}");
}

#[tokio::test]
async fn an_invalid_url_makes_no_attempt() {
    let notifier = notifier();
    let action = Action::Webhook {
        url: "ftp://example.com/x".into(),
        secret: None,
    };
    let err = notifier.send(&notification(), &action).await.unwrap_err();
    assert_eq!(err.attempts, 0);
    assert!(matches!(err.last_error, SendError::Invalid { .. }), "{err}");
    assert_eq!(notifier.stats().webhook.failed, 1);
}

#[tokio::test]
async fn email_without_smtp_config_fails_without_attempts() {
    let notifier = notifier();
    let action = Action::Email {
        to: vec!["ops@example.com".into()],
    };
    let err = notifier.send(&notification(), &action).await.unwrap_err();
    assert_eq!(err.attempts, 0);
    assert!(err.to_string().contains("no [notify.smtp] server"), "{err}");
    assert_eq!(notifier.stats().email.failed, 1);
    assert_eq!(notifier.stats().webhook.failed, 0);
}

#[tokio::test]
async fn email_to_a_closed_port_is_retried_then_fails() {
    // Bind then drop: nothing listens on the port afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings: NotifierSettings = serde_json::from_value(serde_json::json!({
        "smtp": {"host": "127.0.0.1", "port": port, "tls": "none", "from": "alarms@vigil.test"},
        "retry": {"initial_backoff_ms": 10, "max_backoff_ms": 20}
    }))
    .unwrap();
    let notifier = Notifier::new(settings.validate().unwrap());
    let n = notification();
    let err = notifier
        .send(
            &n,
            &Action::Email {
                to: vec!["ops@example.com".into()],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.attempts, 3, "{err}");
    assert_eq!(notifier.stats().email.failed, 1);
}

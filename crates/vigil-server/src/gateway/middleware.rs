//! The gateway's admission: key check, the key's and the global token
//! buckets, the concurrency permit and the request timeout, in that order.
//! [`admit`] is the one implementation; the HTTP middleware and the gRPC
//! handlers both call it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::OwnedSemaphorePermit;

use super::keys::{self, ApiKey, KeyName};
use super::runtime::{Gateway, Runtime};
use super::throttle::retry_after_secs;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::telemetry::Telemetry;
use crate::telemetry::events::{
    AuthFailed, GatewayChecked, ScoringEnded, ScoringStarted, ThrottleReason, Throttled, TimedOut,
};

/// What a route needs from the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteClass<'a> {
    /// Health, server metadata, the OpenAPI document, unmatched paths.
    Open,
    /// A model endpoint: key with the score role allowed on this model,
    /// throttling, concurrency, timeout.
    Model(&'a str),
    /// The admin API (and the OTLP receiver, `/v1/traces`): a key with the
    /// admin role (or loopback without keys).
    Admin,
}

/// The class of a request on `route` (its template) and `path`; the OpenAPI
/// document asks the same question of each template, so what it says a
/// route needs is what this middleware enforces.
pub(crate) fn classify<'a>(route: Option<&str>, path: &'a str) -> RouteClass<'a> {
    let Some(route) = route else {
        return RouteClass::Open;
    };
    // The OTLP receiver writes to the trace store like the trace API does
    // (exporters send the key with `OTEL_EXPORTER_OTLP_HEADERS`).
    if route.starts_with("/api/") || route == "/v1/traces" {
        return RouteClass::Admin;
    }
    if route.starts_with("/v1/models/{name}") || route.starts_with("/v2/models/{name}") {
        // Both templates put the name in the fourth segment.
        if let Some(name) = path.split('/').nth(3) {
            return RouteClass::Model(name);
        }
    }
    RouteClass::Open
}

/// The gateway middleware (inside the access log, so throttled and refused
/// requests are logged and get the JSON error body): [`admit`], then the
/// handler through [`Admitted::run`].
pub(crate) async fn middleware(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    // Borrowed from the request until the key check is done: no allocation.
    let route = request.extensions().get::<MatchedPath>();
    let class = classify(route.map(MatchedPath::as_str), request.uri().path());
    if class == RouteClass::Open {
        return next.run(request).await;
    }
    let admitted = match admit(&state.gateway, request.headers(), class) {
        Ok(admitted) => admitted,
        Err(refused) => return refused.into_response(),
    };
    let key_name = admitted.key_name().cloned();
    if let Some(name) = &key_name {
        request.extensions_mut().insert(name.clone());
    }
    let started = std::time::Instant::now();
    let mut response = match admitted.run(next.run(request)).await {
        Ok(response) => response,
        Err(timeout) => timeout.into_response(),
    };
    response
        .extensions_mut()
        .insert(IntegrationLatency(started.elapsed()));
    if let Some(name) = key_name {
        response.extensions_mut().insert(name);
    }
    response
}

/// Time the handler took behind the gateway's checks, handed to the
/// outermost middleware in the response's extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IntegrationLatency(pub std::time::Duration);

/// A request the gateway let through. It holds the concurrency permit (a
/// scoring request's) until it is dropped.
#[derive(Debug)]
pub(crate) struct Admitted<'g> {
    key_name: Option<KeyName>,
    /// Set for scoring requests: the permit, the in-flight count and the
    /// deadline.
    limits: Option<Limits<'g>>,
}

#[derive(Debug)]
struct Limits<'g> {
    _permit: OwnedSemaphorePermit,
    _in_flight: InFlight<'g>,
    timeout: Duration,
    telemetry: &'g Telemetry,
}

impl Admitted<'_> {
    /// The name of the key the request presented, if keys are configured.
    pub(crate) fn key_name(&self) -> Option<&KeyName> {
        self.key_name.as_ref()
    }

    /// Run the handler's `work`, under `request_timeout_ms` for a scoring
    /// request (a timeout is counted and becomes a [`ErrorCode::Timeout`]).
    pub(crate) async fn run<T>(&self, work: impl Future<Output = T>) -> Result<T, ApiError> {
        let Some(limits) = &self.limits else {
            return Ok(work.await);
        };
        match tokio::time::timeout(limits.timeout, work).await {
            Ok(out) => Ok(out),
            Err(_) => {
                limits.telemetry.emit(TimedOut);
                Err(ApiError::public(
                    ErrorCode::Timeout,
                    format!(
                        "request took longer than request_timeout_ms ({} ms)",
                        limits.timeout.as_millis()
                    ),
                ))
            }
        }
    }
}

/// Why the gateway refused a request, and when to come back if it was
/// throttled.
#[derive(Debug)]
pub(crate) struct Refused {
    /// The error (401, 403, 429 or 503 over HTTP).
    pub error: ApiError,
    /// Seconds to wait before retrying (throttled requests only).
    pub retry_after_secs: Option<u64>,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The gateway's admission, the one code path for HTTP (the middleware) and
/// gRPC (whose model name is in the message, so the handler calls it): the
/// key check, then for a model request the key's and the global buckets and
/// a concurrency permit. Every refusal is counted here.
pub(crate) fn admit<'g>(
    gateway: &'g Gateway,
    headers: &HeaderMap,
    class: RouteClass<'_>,
) -> Result<Admitted<'g>, Refused> {
    if class == RouteClass::Open {
        return Ok(Admitted {
            key_name: None,
            limits: None,
        });
    }
    let started = std::time::Instant::now();
    let admitted = check(gateway, headers, class);
    gateway.telemetry().emit(GatewayChecked {
        duration: started.elapsed(),
        refused: admitted
            .as_ref()
            .err()
            .map(|refused| refused.error.code.status().as_u16()),
    });
    admitted
}

/// [`admit`]'s checks, in order.
fn check<'g>(
    gateway: &'g Gateway,
    headers: &HeaderMap,
    class: RouteClass<'_>,
) -> Result<Admitted<'g>, Refused> {
    let runtime = gateway.runtime();
    let key = authenticate(gateway, &runtime, headers, class).map_err(|error| {
        gateway.telemetry().emit(AuthFailed);
        Refused {
            error,
            retry_after_secs: None,
        }
    })?;
    let key_name = key.map(|key| key.name.clone());
    if !matches!(class, RouteClass::Model(_)) {
        return Ok(Admitted {
            key_name,
            limits: None,
        });
    }
    let key_bucket = key.and_then(|key| key.bucket.as_ref());
    let checks = [
        (key_bucket, ThrottleReason::KeyRate),
        (runtime.global.as_ref(), ThrottleReason::Rate),
    ];
    for (bucket, reason) in checks {
        if let Some(Err(wait)) = bucket.map(|b| b.check()) {
            gateway.telemetry().emit(Throttled { reason });
            return Err(throttled(
                reason,
                retry_after_secs(wait),
                ErrorCode::TooManyRequests,
            ));
        }
    }
    let Ok(permit) = Arc::clone(&runtime.concurrency).try_acquire_owned() else {
        gateway.telemetry().emit(Throttled {
            reason: ThrottleReason::Concurrency,
        });
        return Err(throttled(
            ThrottleReason::Concurrency,
            1,
            runtime.concurrency_code,
        ));
    };
    Ok(Admitted {
        key_name,
        limits: Some(Limits {
            _permit: permit,
            _in_flight: InFlight::enter(gateway.telemetry()),
            timeout: runtime.request_timeout,
            telemetry: gateway.telemetry(),
        }),
    })
}

/// Keeps the in-flight count right even when the request is cancelled.
#[derive(Debug)]
struct InFlight<'a>(&'a Telemetry);

impl<'a> InFlight<'a> {
    fn enter(telemetry: &'a Telemetry) -> InFlight<'a> {
        telemetry.emit(ScoringStarted);
        InFlight(telemetry)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.emit(ScoringEnded);
    }
}

fn throttled(reason: ThrottleReason, retry_after: u64, code: ErrorCode) -> Refused {
    let message = match reason {
        ThrottleReason::Rate => "too many requests: the server's rate limit is reached",
        ThrottleReason::KeyRate => "too many requests: this api key's rate limit is reached",
        ThrottleReason::Concurrency => {
            "too many requests in flight: max_concurrent_requests is reached"
        }
    };
    Refused {
        error: ApiError::public(code, message),
        retry_after_secs: Some(retry_after),
    }
}

/// The key a request may go on with (`None` when no key is needed).
fn authenticate<'r>(
    gateway: &Gateway,
    runtime: &'r Runtime,
    headers: &HeaderMap,
    class: RouteClass<'_>,
) -> Result<Option<&'r ApiKey>, ApiError> {
    if runtime.keys.is_empty() {
        return match class {
            RouteClass::Admin if !gateway.is_loopback() => Err(ApiError::new(
                ErrorCode::Forbidden,
                "the admin api needs an admin key: add a [[keys]] entry with roles = [\"admin\"] \
                 (without keys it is only open on a loopback listener)",
            )),
            _ => Ok(None),
        };
    }
    let presented = keys::presented_key(headers)
        .map_err(|message| ApiError::new(ErrorCode::Unauthorized, message))?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "missing api key: send `Authorization: Bearer KEY` or `x-api-key: KEY`",
            )
        })?;
    let key = runtime
        .keys
        .find(presented)
        .ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "unknown api key"))?;
    let name = &key.name.0;
    if !key.enabled {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("api key `{name}` is disabled"),
        ));
    }
    match class {
        RouteClass::Admin if !key.roles.admin => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("api key `{name}` does not have the admin role"),
        )),
        RouteClass::Model(_) if !key.roles.score => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("api key `{name}` does not have the score role"),
        )),
        RouteClass::Model(model) if !key.allows_model(model) => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("api key `{name}` may not use model `{model}`"),
        )),
        _ => Ok(Some(key)),
    }
}

//! The gateway middleware: key check, the key's and the global token
//! buckets, the concurrency permit and the request timeout, in that order.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::http::header::RETRY_AFTER;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::keys::{self, ApiKey};
use super::metrics::{GatewayMetrics, ThrottleReason};
use super::runtime::{Gateway, Runtime};
use super::throttle::retry_after_secs;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// What a route needs from the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteClass<'a> {
    /// Health, server metadata, the OpenAPI document, unmatched paths.
    Open,
    /// A model endpoint: key with the score role allowed on this model,
    /// throttling, concurrency, timeout.
    Model(&'a str),
    /// The admin API: a key with the admin role (or loopback without keys).
    Admin,
}

/// The class of a request on `route` (its template) and `path`; the OpenAPI
/// document asks the same question of each template, so what it says a
/// route needs is what this middleware enforces.
pub(crate) fn classify<'a>(route: Option<&str>, path: &'a str) -> RouteClass<'a> {
    let Some(route) = route else {
        return RouteClass::Open;
    };
    if route.starts_with("/api/") {
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
/// requests are logged and get the JSON error body).
pub(crate) async fn middleware(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    // Borrowed from the request until the key check is done: no allocation.
    let route = request.extensions().get::<MatchedPath>();
    let class = classify(route.map(MatchedPath::as_str), request.uri().path());
    if class == RouteClass::Open {
        return next.run(request).await;
    }
    let gateway = &state.gateway;
    let runtime = gateway.runtime();
    let key = match authenticate(gateway, &runtime, &request, class) {
        Ok(key) => key,
        Err(err) => {
            gateway.metrics().auth_failed();
            return err.into_response();
        }
    };
    let key_name = key.map(|key| key.name.clone());
    if matches!(class, RouteClass::Model(_)) {
        let key_bucket = key.and_then(|key| key.bucket.as_ref());
        let checks = [
            (key_bucket, ThrottleReason::KeyRate),
            (runtime.global.as_ref(), ThrottleReason::Rate),
        ];
        for (bucket, reason) in checks {
            if let Some(Err(wait)) = bucket.map(|b| b.check()) {
                gateway.metrics().throttled(reason);
                return throttled(reason, retry_after_secs(wait), ErrorCode::TooManyRequests);
            }
        }
        let Ok(_permit) = Arc::clone(&runtime.concurrency).try_acquire_owned() else {
            gateway.metrics().throttled(ThrottleReason::Concurrency);
            return throttled(ThrottleReason::Concurrency, 1, runtime.concurrency_code);
        };
        let _in_flight = InFlight::enter(gateway.metrics());
        let timeout = runtime.request_timeout;
        drop(runtime);
        let mut request = request;
        if let Some(name) = &key_name {
            request.extensions_mut().insert(name.clone());
        }
        let mut response = match tokio::time::timeout(timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                gateway.metrics().timed_out();
                ApiError::public(
                    ErrorCode::Timeout,
                    format!(
                        "request took longer than request_timeout_ms ({} ms)",
                        timeout.as_millis()
                    ),
                )
                .into_response()
            }
        };
        if let Some(name) = key_name {
            response.extensions_mut().insert(name);
        }
        return response;
    }
    drop(runtime);
    let mut request = request;
    if let Some(name) = &key_name {
        request.extensions_mut().insert(name.clone());
    }
    let mut response = next.run(request).await;
    if let Some(name) = key_name {
        response.extensions_mut().insert(name);
    }
    response
}

/// Keeps the in-flight count right even when the request is cancelled.
struct InFlight<'a>(&'a GatewayMetrics);

impl<'a> InFlight<'a> {
    fn enter(metrics: &'a GatewayMetrics) -> InFlight<'a> {
        metrics.enter();
        InFlight(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

fn throttled(reason: ThrottleReason, retry_after: u64, code: ErrorCode) -> Response {
    let message = match reason {
        ThrottleReason::Rate => "too many requests: the server's rate limit is reached".to_owned(),
        ThrottleReason::KeyRate => {
            "too many requests: this api key's rate limit is reached".to_owned()
        }
        ThrottleReason::Concurrency => {
            "too many requests in flight: max_concurrent_requests is reached".to_owned()
        }
    };
    let mut response = ApiError::public(code, message).into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// The key a request may go on with (`None` when no key is needed).
fn authenticate<'r>(
    gateway: &Gateway,
    runtime: &'r Runtime,
    request: &Request,
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
    let presented = keys::presented_key(request.headers())
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

//! Sampling rules (SEMANTICS.md §6, X-Ray's): `PUT`, `GET`, `DELETE
//! /api/traces/sampling-rules/{name}` and the list, applied to the next
//! request without a restart and kept across restarts (they win over the
//! config file's rules of the same name).
//!
//! ```json
//! {"priority": 100, "reservoir": 5, "fixed_rate": 0.1,
//!  "http_method": "POST", "url_path": "/v1/models/*/score"}
//! ```

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use vigil_trace::sampling::{Change, Rule, RuleError, RuleStats, Sampler};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// A rule with its counters since start.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    /// The rule: `name`, `priority`, `reservoir`, `fixed_rate`, the
    /// matchers `service_name`, `host`, `http_method`, `url_path`, and its
    /// `source` (`builtin`, `config` or `api`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub rule: Rule,
    /// Requests it decided, and how: `matched`, `sampled_reservoir`,
    /// `sampled_fixed_rate`, `not_sampled`.
    #[schema(value_type = Object)]
    pub stats: Option<RuleStats>,
}

/// Every rule, in the order they are evaluated.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleList {
    /// The rules, `Default` last.
    pub rules: Vec<RuleView>,
    /// What the trace writer did with the sampled traces since start:
    /// `queued`, `dropped` (the queue was full), `spans_written`,
    /// `write_errors`, and `export`: the OTLP export's `queued_spans`,
    /// `dropped_spans`, `exported_spans`, `exported_batches`,
    /// `failed_batches`, `failed_spans`, `rejected_batches`, `retries`
    /// (`null` without `traces.otlp_endpoint`).
    #[schema(value_type = Object)]
    pub writer: crate::trace_writer::WriterStats,
}

fn view(sampler: &Sampler, rule: Rule) -> RuleView {
    let stats = sampler.stats().into_iter().find(|s| s.name == rule.name);
    RuleView { rule, stats }
}

fn rule_error(err: &RuleError) -> ApiError {
    let code = match err {
        RuleError::Invalid(_) | RuleError::DeleteDefault => ErrorCode::BadRequest,
        RuleError::TooMany => ErrorCode::Conflict,
        RuleError::NotFound(_) => ErrorCode::NotFound,
        RuleError::Storage { .. } => return ApiError::internal(err.to_string()),
    };
    ApiError::public(code, err.to_string())
}

/// Creates or replaces a sampling rule; `201` when created. The body is
/// the rule without its name (or with the same name): `priority` 1–9999
/// (the `Default` rule keeps 10000 and its `*` matchers; only its
/// reservoir and rate change), `reservoir` (traces per second),
/// `fixed_rate` (0–1), and optional matchers with `*` and `?`.
#[utoipa::path(put, path = "/api/traces/sampling-rules/{name}", tag = "traces",
    params(("name" = String, Path, description = "1–32 characters of `A-Z a-z 0-9 _ -`")),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, description = "replaced", body = RuleView),
        (status = 201, description = "created", body = RuleView),
        (status = 400, description = "a field is missing or out of range (the message names it), or the body's name differs from the path's", body = crate::error::ErrorBody),
        (status = 409, description = "there are already 100 rules besides Default", body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody),
        (status = 415, body = crate::error::ErrorBody),
        (status = 503, description = "traces are off", body = crate::error::ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: crate::extract::JsonBody,
) -> Result<(StatusCode, Json<RuleView>), ApiError> {
    let sampler = Arc::clone(&state.traces()?.sampler);
    let mut value: serde_json::Value = serde_json::from_slice(&body.0)
        .map_err(|err| ApiError::bad_request(format!("invalid sampling rule body: {err}")))?;
    let Some(object) = value.as_object_mut() else {
        return Err(ApiError::bad_request(
            "invalid sampling rule body: expected a JSON object",
        ));
    };
    match object.get("name") {
        None => {
            object.insert("name".into(), name.clone().into());
        }
        Some(given) if given.as_str() == Some(name.as_str()) => {}
        Some(given) => {
            return Err(ApiError::bad_request(format!(
                "name: the body names {given}, the path {name:?}"
            )));
        }
    }
    let rule: Rule = serde_json::from_value(value)
        .map_err(|err| ApiError::bad_request(format!("invalid sampling rule body: {err}")))?;
    let (change, rule) = tokio::task::spawn_blocking(move || {
        let change = sampler.put_rule(rule)?;
        let rule = sampler
            .rule(&name)
            .ok_or_else(|| RuleError::NotFound(name.clone()))?;
        Ok::<_, RuleError>((change, view(&sampler, rule)))
    })
    .await
    .map_err(|err| ApiError::internal(format!("sampling rule task: {err}")))?
    .map_err(|err| rule_error(&err))?;
    let status = match change {
        Change::Created => StatusCode::CREATED,
        Change::Replaced => StatusCode::OK,
    };
    Ok((status, Json(rule)))
}

/// One sampling rule with its counters.
#[utoipa::path(get, path = "/api/traces/sampling-rules/{name}", tag = "traces",
    params(("name" = String, Path, description = "the rule's name")),
    responses((status = 200, body = RuleView),
        (status = 404, description = "no such rule", body = crate::error::ErrorBody),
        (status = 503, description = "traces are off", body = crate::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<RuleView>, ApiError> {
    let sampler = &state.traces()?.sampler;
    let rule = sampler
        .rule(&name)
        .ok_or_else(|| rule_error(&RuleError::NotFound(name)))?;
    Ok(Json(view(sampler, rule)))
}

/// Every sampling rule, in evaluation order (ascending priority, then
/// name; `Default` last), with its counters.
#[utoipa::path(get, path = "/api/traces/sampling-rules", tag = "traces",
    responses((status = 200, body = RuleList),
        (status = 503, description = "traces are off", body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<RuleList>, ApiError> {
    let traces = state.traces()?;
    let sampler = &traces.sampler;
    let stats = sampler.stats();
    let rules = sampler
        .rules()
        .into_iter()
        .map(|rule| {
            let stats = stats.iter().find(|s| s.name == rule.name).cloned();
            RuleView { rule, stats }
        })
        .collect();
    Ok(Json(RuleList {
        rules,
        writer: traces.writer.stats(),
    }))
}

/// Deletes a sampling rule (a config rule stays deleted across restarts
/// until it is put again); `Default` cannot be deleted.
#[utoipa::path(delete, path = "/api/traces/sampling-rules/{name}", tag = "traces",
    params(("name" = String, Path, description = "the rule's name")),
    responses((status = 204, description = "deleted"),
        (status = 400, description = "`Default` cannot be deleted", body = crate::error::ErrorBody),
        (status = 404, description = "no such rule", body = crate::error::ErrorBody),
        (status = 503, description = "traces are off", body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let sampler = Arc::clone(&state.traces()?.sampler);
    tokio::task::spawn_blocking(move || sampler.delete_rule(&name))
        .await
        .map_err(|err| ApiError::internal(format!("sampling rule task: {err}")))?
        .map_err(|err| rule_error(&err))?;
    Ok(StatusCode::NO_CONTENT)
}

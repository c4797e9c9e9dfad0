//! Request body handling shared by the scoring endpoints: content type,
//! size limit and JSON errors with their position.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::de::DeserializeSeed;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// A request body that is declared `application/json` and fits
/// `server.max_body_bytes`; parsing is left to the handler.
#[derive(Debug)]
pub struct JsonBody(pub Bytes);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        check_content_type(request.headers().get(CONTENT_TYPE))?;
        let limit = state.max_body_bytes;
        let body = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|err| body_error(err, limit))?;
        Ok(JsonBody(body))
    }
}

fn body_error(err: axum::Error, limit: usize) -> ApiError {
    let inner = err.into_inner();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("request body is larger than max_body_bytes ({limit} bytes)"),
            );
        }
        source = e.source();
    }
    ApiError::bad_request(format!("cannot read request body: {inner}"))
}

fn check_content_type(value: Option<&axum::http::HeaderValue>) -> Result<(), ApiError> {
    let Some(value) = value else {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "missing content-type: expected application/json",
        ));
    };
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("content-type must be application/json, got `{text}`"),
        ))
    }
}

/// Parse `bytes` with `seed`, turning serde errors into precise 400s with
/// their line and column.
pub(crate) fn parse_with<'de, S: DeserializeSeed<'de>>(
    bytes: &'de [u8],
    seed: S,
) -> Result<S::Value, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = seed.deserialize(&mut deserializer).map_err(json_error)?;
    deserializer.end().map_err(json_error)?;
    Ok(value)
}

/// A serde_json error as a 400.
pub(crate) fn json_error(err: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof => ApiError::bad_request(format!("malformed json: {err}")),
        Category::Data | Category::Io => ApiError::bad_request(format!("invalid request: {err}")),
    }
}

/// Fallback for unmatched routes: a JSON 404 naming the path.
pub(crate) async fn not_found(uri: axum::http::Uri) -> impl IntoResponse {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn content_type_allows_parameters_only() {
        assert!(check_content_type(Some(&HeaderValue::from_static("application/json"))).is_ok());
        assert!(
            check_content_type(Some(&HeaderValue::from_static(
                "Application/JSON; charset=utf-8"
            )))
            .is_ok()
        );
        let err =
            check_content_type(Some(&HeaderValue::from_static("text/plain"))).expect_err("415");
        assert_eq!(err.code, ErrorCode::UnsupportedMediaType);
        assert!(err.message.contains("got `text/plain`"), "{}", err.message);
        let err = check_content_type(None).expect_err("415");
        assert!(
            err.message.contains("missing content-type"),
            "{}",
            err.message
        );
    }
}

/// A JSON string borrowed from the body when it has no escapes (serde's own
/// `Cow<str>` always allocates).
#[derive(Debug)]
pub struct CowStr<'de>(pub std::borrow::Cow<'de, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = CowStr<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(CowStr(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(std::borrow::Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V(std::marker::PhantomData))
    }
}

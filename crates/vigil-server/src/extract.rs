//! Request body handling shared by the scoring endpoints: content type,
//! size limit and JSON errors with their position; the infer routes' own
//! body (JSON, or JSON plus binary tensor data).

use axum::body::Bytes;
use axum::extract::{FromRequest, RawPathParams, Request};
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

/// Request header of the binary tensor data extension: the length of the
/// JSON header at the start of the body, binary tensor data after it.
pub const INFERENCE_HEADER_LENGTH: &str = "inference-header-content-length";

/// An Open Inference Protocol infer body that fits `server.max_body_bytes`.
///
/// Unlike [`JsonBody`], no `Content-Type` means JSON (tritonclient's
/// `infer()` sends none), and with `Inference-Header-Content-Length` the
/// body may also be declared `application/octet-stream`; any other declared
/// type is a 415.
#[derive(Debug)]
pub struct InferBody {
    /// The whole body.
    pub bytes: Bytes,
    /// `Inference-Header-Content-Length`: how many leading bytes are the
    /// JSON header; `None` when the whole body is JSON.
    pub header_length: Option<usize>,
}

impl FromRequest<AppState> for InferBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let header_length = request
            .headers()
            .get(INFERENCE_HEADER_LENGTH)
            .map(parse_header_length)
            .transpose()?;
        check_infer_content_type(request.headers().get(CONTENT_TYPE), header_length.is_some())?;
        let limit = state.max_body_bytes;
        let bytes = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|err| body_error(err, limit))?;
        Ok(InferBody {
            bytes,
            header_length,
        })
    }
}

fn parse_header_length(value: &axum::http::HeaderValue) -> Result<usize, ApiError> {
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Inference-Header-Content-Length must be a byte count, got `{}`",
                String::from_utf8_lossy(value.as_bytes())
            ))
        })
}

/// The infer routes' rule: JSON when undeclared; octet-stream only with a
/// header length (it says where the JSON ends).
fn check_infer_content_type(
    value: Option<&axum::http::HeaderValue>,
    binary: bool,
) -> Result<(), ApiError> {
    let Some(value) = value else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json")
        || (binary && essence.eq_ignore_ascii_case("application/octet-stream"))
    {
        return Ok(());
    }
    let (expected, hint) = if binary {
        ("application/json or application/octet-stream", "")
    } else {
        (
            "application/json",
            " (application/octet-stream goes with Inference-Header-Content-Length)",
        )
    };
    Err(ApiError::new(
        ErrorCode::UnsupportedMediaType,
        format!("content-type must be {expected}, got `{text}`{hint}"),
    ))
}

/// The body as sent, or inflated when `Content-Encoding: gzip`; either
/// way at most `limit` bytes (a 413 past it, without inflating further).
/// Another encoding is a 415.
pub(crate) fn inflated<'a>(
    headers: &axum::http::HeaderMap,
    body: &'a [u8],
    limit: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, ApiError> {
    use std::io::Read as _;
    let encoding = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") => Ok(std::borrow::Cow::Borrowed(body)),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|err| ApiError::bad_request(format!("invalid gzip body: {err}")))?;
            if out.len() > limit {
                return Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the inflated body is larger than {limit} bytes"),
                ));
            }
            Ok(std::borrow::Cow::Owned(out))
        }
        Some(other) => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("content-encoding `{other}` is not supported: send identity or gzip"),
        )),
    }
}

pub(crate) fn body_error(err: axum::Error, limit: usize) -> ApiError {
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

pub(crate) fn check_content_type(value: Option<&axum::http::HeaderValue>) -> Result<(), ApiError> {
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

/// A model route's `{name}` and optional `{version}` path parameters,
/// borrowed from the request.
pub(crate) fn path_params(params: &RawPathParams) -> (&str, Option<&str>) {
    let mut name = "";
    let mut version = None;
    for (key, value) in params {
        match key {
            "name" => name = value,
            "version" => version = Some(value),
            _ => {}
        }
    }
    (name, version)
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

    #[test]
    fn infer_content_type_defaults_to_json() {
        let json = HeaderValue::from_static("application/json; charset=utf-8");
        let octets = HeaderValue::from_static("application/octet-stream");
        for binary in [false, true] {
            assert!(check_infer_content_type(None, binary).is_ok());
            assert!(check_infer_content_type(Some(&json), binary).is_ok());
            for wrong in ["text/plain", "application/x-www-form-urlencoded"] {
                let err = check_infer_content_type(Some(&HeaderValue::from_static(wrong)), binary)
                    .expect_err("415");
                assert_eq!(err.code, ErrorCode::UnsupportedMediaType);
                assert!(
                    err.message.contains(&format!("got `{wrong}`")),
                    "{}",
                    err.message
                );
            }
        }
        assert!(check_infer_content_type(Some(&octets), true).is_ok());
        let err = check_infer_content_type(Some(&octets), false).expect_err("415");
        assert!(
            err.message
                .contains("got `application/octet-stream` (application/octet-stream goes with Inference-Header-Content-Length)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn header_length_is_a_byte_count() {
        assert_eq!(
            parse_header_length(&HeaderValue::from_static("42")).expect("valid"),
            42
        );
        for bad in ["-1", "x", "1.5", ""] {
            let err = parse_header_length(&HeaderValue::from_static(bad)).expect_err("400");
            assert_eq!(err.code, ErrorCode::BadRequest);
            assert!(
                err.message.contains(&format!("got `{bad}`")),
                "{}",
                err.message
            );
        }
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

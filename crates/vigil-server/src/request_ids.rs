//! The rules of a client's request id, shared by every route that takes
//! one (`/v1` score, `/v2` infer, gRPC ModelInfer) and by the OpenAPI
//! document that states them, so that the routes and the document cannot
//! drift apart. The store decides what an id may be
//! (`vigil_store::validate_request_id`); this module says it once for the
//! server.

use utoipa::openapi::ObjectBuilder;
use utoipa::openapi::schema::Type;

use crate::error::ApiError;

/// The rules of a request id (`vigil_store::validate_request_id`): 1 to
/// 128 bytes, no control characters (Unicode `Cc`, what
/// `char::is_control` rejects).
pub(crate) fn request_id(max_bytes: usize, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max_bytes))
        .pattern(Some(REQUEST_ID_PATTERN))
        .description(Some(description))
}

/// `vigil_store`'s limit (a test below holds the two together).
pub(crate) const REQUEST_ID_MAX_BYTES: usize = 128;

/// The longest top-level `id` of an `instances` request: rows without an id
/// of their own are logged as `id#0`, `id#1`…, and a suffix of up to eight
/// bytes (ten million rows) must still fit the store's limit. A fixed bound
/// rather than one that depends on the row count, so the document can say it.
pub(crate) const BATCH_ID_MAX_BYTES: usize = REQUEST_ID_MAX_BYTES - 8;

/// A request's top-level `id` against the store's rules and, when its rows
/// are logged as `id#0`, `id#1`… (`suffixed` says why, e.g. "with
/// `instances`"), against [`BATCH_ID_MAX_BYTES`]. Shared by every route
/// that takes an `id`, so that they cannot drift apart.
pub(crate) fn check_base_id(id: &str, suffixed: Option<&str>) -> Result<(), ApiError> {
    vigil_store::validate_request_id(id)
        .map_err(|err| ApiError::bad_request(format!("invalid `id`: {err}")))?;
    match suffixed {
        Some(why) if id.len() > BATCH_ID_MAX_BYTES => Err(ApiError::bad_request(format!(
            "invalid `id`: {why} at most {BATCH_ID_MAX_BYTES} bytes, got {} \
             (rows without an id are logged as `id#0`, `id#1`…)",
            id.len()
        ))),
        _ => Ok(()),
    }
}

/// No control character: U+0000–U+001F and U+007F–U+009F.
pub(crate) const REQUEST_ID_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_id_rules_are_the_stores() {
        let longest = "a".repeat(REQUEST_ID_MAX_BYTES);
        assert!(vigil_store::validate_request_id(&longest).is_ok());
        assert!(vigil_store::validate_request_id(&format!("{longest}a")).is_err());
        assert!(vigil_store::validate_request_id("").is_err());
        // The pattern excludes exactly these two ranges, and they are
        // exactly the characters the store refuses.
        assert_eq!(REQUEST_ID_PATTERN, "^[^\\u0000-\\u001f\\u007f-\\u009f]+$");
        let excluded = |c: char| matches!(u32::from(c), 0..=0x1f | 0x7f..=0x9f);
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            assert_eq!(c.is_control(), excluded(c), "{c:?}");
            assert_eq!(
                vigil_store::validate_request_id(&format!("a{c}")).is_err(),
                excluded(c),
                "{c:?}"
            );
        }
    }
}

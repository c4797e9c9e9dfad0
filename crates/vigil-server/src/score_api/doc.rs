//! The documented form of a scoring request. Parsing is streaming (see
//! `wire`), so these schemas are written out by hand; they say what the
//! parser and the inference log accept: exactly one of `features` and
//! `instances`, no other field, and request ids the log can store.

use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

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

/// The request's ids against the documented rules, whether or not the
/// inference log is on (the same request must not be valid on one server
/// and invalid on another).
pub(crate) fn check_ids(request: &super::wire::ScoreRequest<'_>) -> Result<(), ApiError> {
    if let Some(id) = &request.id {
        check_base_id(id, request.batch.then_some("with `instances`"))?;
    }
    for (i, id) in request.ids.iter().enumerate() {
        if let Some(id) = id {
            vigil_store::validate_request_id(id).map_err(|err| {
                ApiError::bad_request(format!("invalid `instances[{i}].id`: {err}"))
            })?;
        }
    }
    Ok(())
}

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

/// Feature name → number, or null for missing. Which names a model takes is
/// the model's (one path template serves every model), so the values of
/// other names are left open: `unknown_features` decides what they do.
fn features() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(true)))
        .description(Some(
            "feature name → number, or null for missing; absent features are missing. \
             The names are the model's (`GET /v2/models/{name}` lists them as inputs). \
             Any other name is a 400 under `unknown_features = \"reject\"` (the default) \
             and skipped, whatever its value, under `\"ignore\"`",
        ))
}

/// One row of `instances`.
#[derive(Debug)]
pub struct Instance;

impl PartialSchema for Instance {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "id",
                request_id(
                    REQUEST_ID_MAX_BYTES,
                    "echoed in the prediction; logged as this row's id",
                ),
            )
            .property("features", features())
            .required("features")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for Instance {}

/// `POST /v1/models/{name}/score` body: `features` (one row) or `instances`
/// (many), never both.
#[derive(Debug)]
pub struct ScoreRequest;

impl PartialSchema for ScoreRequest {
    fn schema() -> RefOr<Schema> {
        let one = ObjectBuilder::new()
            .title(Some("one row"))
            .schema_type(Type::Object)
            .property(
                "id",
                request_id(
                    REQUEST_ID_MAX_BYTES,
                    "echoed in the response; the inference log's id",
                ),
            )
            .property("features", features())
            .required("features")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let many = ObjectBuilder::new()
            .title(Some("many rows"))
            .schema_type(Type::Object)
            .property(
                "id",
                request_id(
                    BATCH_ID_MAX_BYTES,
                    "echoed in the response; rows without an id of their own are logged as \
                     `id#0`, `id#1`…",
                ),
            )
            .property(
                "instances",
                ArrayBuilder::new().items(Ref::from_schema_name("Instance")),
            )
            .required("instances")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        OneOfBuilder::new()
            .item(one)
            .item(many)
            .description(Some(
                "`features` (one row) or `instances` (many rows), not both",
            ))
            .into()
    }
}

impl ToSchema for ScoreRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Instance::name().into_owned(), Instance::schema()));
    }
}

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

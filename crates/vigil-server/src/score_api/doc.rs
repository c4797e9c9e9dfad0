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
use crate::request_ids::{BATCH_ID_MAX_BYTES, REQUEST_ID_MAX_BYTES, check_base_id, request_id};

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

//! The documented form of an infer request. Parsing is streaming (see
//! `wire`), so these schemas are written out by hand; they say what the
//! parser and [`build_rows`](super::build_rows) accept: the fields each
//! object may have, which are required, the datatypes, shapes of one or two
//! dimensions, `data` as numbers, nulls or nested arrays of them, and
//! request ids the inference log can store. Two rules stay in prose because
//! JSON Schema cannot relate values: the number of `data` values is the
//! product of `shape`, and tensor names are the model's features.

use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::rows::NUMERIC_DATATYPES;
use crate::error::ApiError;
use crate::request_ids::{BATCH_ID_MAX_BYTES, REQUEST_ID_MAX_BYTES, check_base_id, request_id};

/// The request's `id` against the documented rules, whether or not the
/// inference log is on: a batch of more than one row is logged as `id#0`,
/// `id#1`…, so its id has the score route's batch limit.
pub(crate) fn check_id(id: Option<&str>, batch: usize) -> Result<(), ApiError> {
    match id {
        Some(id) => check_base_id(id, (batch > 1).then_some("with more than one row")),
        None => Ok(()),
    }
}

/// `type: [object, null]` with the given properties; other keys are
/// allowed (and ignored by the server).
fn parameters(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .additional_properties(Some(AdditionalProperties::FreeForm(true)))
        .description(Some(description))
}

fn nullable(kind: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([kind, Type::Null]))
}

/// One value of `data`: a number, `null` (missing) or a nested array.
#[derive(Debug)]
pub struct TensorValue;

impl PartialSchema for TensorValue {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .schema_type(SchemaType::from_iter([
                Type::Number,
                Type::Null,
                Type::Array,
            ]))
            .items(Ref::from_schema_name("TensorValue"))
            .description(Some(
                "a number, null (a missing value) or a nested array of them",
            ))
            .into()
    }
}

impl ToSchema for TensorValue {}

/// The fields every input tensor has; `binary` picks the form of its
/// values.
fn tensor(binary: bool) -> ObjectBuilder {
    let base = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "name",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "a feature name (`GET /v2/models/{name}` lists them as inputs), or any name \
                 for the `[batch, n_features]` form. An unknown feature name is a 400 under \
                 `unknown_features = \"reject\"` (the default) and skipped under `\"ignore\"`",
                )),
        )
        .property(
            "datatype",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(NUMERIC_DATATYPES.iter().copied()))
                .description(Some(
                    "values of INT and UINT tensors must be whole numbers (UINT: not negative)",
                )),
        )
        .property(
            "shape",
            ArrayBuilder::new()
                .items(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
                .min_items(Some(1))
                .max_items(Some(2))
                .description(Some(
                    "`[batch, n_features]` (one tensor, features in model order), or \
                     `[batch]` / `[batch, 1]` (one tensor per feature, every one with the same \
                     batch). The number of values must be the product of the shape",
                )),
        )
        .required("name")
        .required("datatype")
        .required("shape")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    if binary {
        base.title(Some("binary data"))
            .property(
                "parameters",
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .additional_properties(Some(AdditionalProperties::FreeForm(true)))
                    .property(
                        "binary_data_size",
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .minimum(Some(0))
                            .description(Some(
                                "the tensor's values are this many raw little-endian bytes \
                                 after the JSON header (shape × datatype size); needs the \
                                 `Inference-Header-Content-Length` header",
                            )),
                    )
                    .required("binary_data_size")
                    .description(Some("other parameters are ignored")),
            )
            .required("parameters")
    } else {
        base.title(Some("JSON data"))
            .property(
                "data",
                ArrayBuilder::new()
                    .items(Ref::from_schema_name("TensorValue"))
                    .description(Some(
                        "the values row-major, flat or nested; null is a missing value",
                    )),
            )
            .property(
                "parameters",
                parameters("other parameters are ignored").property(
                    "binary_data_size",
                    ObjectBuilder::new()
                        .schema_type(Type::Null)
                        .description(Some("absent or null: the values are in `data`")),
                ),
            )
            .required("data")
    }
}

/// An input tensor: values in `data`, or (binary tensor data extension)
/// after the JSON header, never both.
#[derive(Debug)]
pub struct RequestTensor;

impl PartialSchema for RequestTensor {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(tensor(false))
            .item(tensor(true))
            .description(Some(
                "an input tensor: its values in `data`, or with `parameters.binary_data_size` \
                 after the JSON header; not both",
            ))
            .into()
    }
}

impl ToSchema for RequestTensor {}

/// A requested output.
#[derive(Debug)]
pub struct RequestOutput;

impl PartialSchema for RequestOutput {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "name",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["score", "label"]))
                    .description(Some(
                        "`label` only for models with one (binary probability models: \
                         `GET /v2/models/{name}` lists it); else a 400",
                    )),
            )
            .property(
                "parameters",
                parameters("other parameters are ignored").property(
                    "binary_data",
                    nullable(Type::Boolean).description(Some(
                        "return this output as binary data after the JSON header \
                         (absent or null: the request's `binary_data_output`)",
                    )),
                ),
            )
            .required("name")
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .description(Some("other fields are ignored"))
            .into()
    }
}

impl ToSchema for RequestOutput {}

/// `POST /v2/models/{name}/infer` body.
#[derive(Debug)]
pub struct InferRequestDoc;

impl PartialSchema for InferRequestDoc {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "id",
                request_id(
                    REQUEST_ID_MAX_BYTES,
                    &format!(
                        "echoed in the response; the inference log's id. With more than one \
                         row at most {BATCH_ID_MAX_BYTES} bytes: the rows are logged as `id#0`, \
                         `id#1`…"
                    ),
                ),
            )
            .property(
                "parameters",
                parameters("other parameters are ignored").property(
                    "binary_data_output",
                    ObjectBuilder::new()
                        .schema_type(Type::Boolean)
                        .description(Some(
                            "return every output as binary data unless it says otherwise",
                        )),
                ),
            )
            .property(
                "inputs",
                ArrayBuilder::new()
                    .items(Ref::from_schema_name("RequestTensor"))
                    .min_items(Some(1))
                    .description(Some(
                        "one tensor `[batch, n_features]`, or one tensor per feature \
                         (absent features are missing)",
                    )),
            )
            .property(
                "outputs",
                ArrayBuilder::new()
                    .items(Ref::from_schema_name("RequestOutput"))
                    .description(Some("outputs to return (absent: all the model has)")),
            )
            .required("inputs")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for InferRequestDoc {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((RequestTensor::name().into_owned(), RequestTensor::schema()));
        schemas.push((RequestOutput::name().into_owned(), RequestOutput::schema()));
        schemas.push((TensorValue::name().into_owned(), TensorValue::schema()));
    }
}

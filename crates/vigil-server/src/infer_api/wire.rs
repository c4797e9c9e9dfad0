//! Parsing an Open Inference Protocol infer request without building a
//! JSON tree: every tensor's `data` is flattened straight into one shared
//! `Vec<f64>` (`null` → NaN, i.e. missing), names are borrowed from the body
//! where JSON escapes allow. The binary tensor data extension's parameters
//! (`binary_data_size`, `binary_data`, `binary_data_output`) are read; other
//! parameters are ignored.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use super::rows::{MAX_DIMS, Shape, Tensor};
use crate::extract::CowStr;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// A parsed request: tensors refer to ranges of `data`.
#[derive(Debug, Default)]
pub(crate) struct InferRequest<'a> {
    pub id: Option<Cow<'a, str>>,
    pub inputs: Vec<Tensor<'a>>,
    pub data: Vec<f64>,
    pub outputs: Option<Vec<RequestedOutput<'a>>>,
    /// `parameters.binary_data_output`: outputs are binary unless they say
    /// otherwise.
    pub binary_output: bool,
    /// `(input index, parameters.binary_data_size)` of the binary inputs, in
    /// input order (empty for a JSON-only request).
    pub binary_inputs: Vec<(usize, u64)>,
}

/// One entry of `outputs`.
#[derive(Debug)]
pub(crate) struct RequestedOutput<'a> {
    pub name: Cow<'a, str>,
    /// `parameters.binary_data`, when given.
    pub binary: Option<bool>,
}

/// Seed for the whole request; `current_input` tells, after an error, which
/// tensor was being read.
pub(crate) struct RequestSeed<'c> {
    pub current_input: &'c Cell<Option<usize>>,
}

impl<'de> DeserializeSeed<'de> for RequestSeed<'_> {
    type Value = InferRequest<'de>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

#[derive(Deserialize)]
struct OutputRequest<'a> {
    #[serde(borrow)]
    name: CowStr<'a>,
    #[serde(default)]
    parameters: Option<Object<OutputParameters>>,
}

/// The parameters read from an output (others are ignored).
#[derive(Deserialize, Default)]
struct OutputParameters {
    binary_data: Option<bool>,
}

/// The parameters read from the request (others are ignored).
#[derive(Deserialize, Default)]
struct RequestParameters {
    #[serde(default)]
    binary_data_output: bool,
}

/// The parameters read from an input tensor (others are ignored).
#[derive(Deserialize, Default)]
struct TensorParameters {
    binary_data_size: Option<u64>,
}

impl<'de> Visitor<'de> for RequestSeed<'_> {
    type Value = InferRequest<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an inference request object with `inputs`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut request = InferRequest::default();
        let mut saw_inputs = false;
        while let Some(key) = map.next_key::<CowStr<'de>>()?.map(|k| k.0) {
            match key.as_ref() {
                "id" => request.id = Some(map.next_value::<CowStr<'de>>()?.0),
                "parameters" => {
                    request.binary_output = map
                        .next_value::<Option<Object<RequestParameters>>>()?
                        .is_some_and(|p| p.0.binary_data_output);
                }
                "inputs" => {
                    saw_inputs = true;
                    map.next_value_seed(InputsSeed {
                        request: &mut request,
                        current_input: self.current_input,
                    })?;
                    self.current_input.set(None);
                }
                "outputs" => {
                    let outputs: Vec<Object<OutputRequest<'de>>> = map.next_value()?;
                    request.outputs = Some(
                        outputs
                            .into_iter()
                            .map(|Object(o)| RequestedOutput {
                                name: o.name.0,
                                binary: o.parameters.and_then(|p| p.0.binary_data),
                            })
                            .collect(),
                    );
                }
                other => {
                    return Err(de::Error::unknown_field(
                        other,
                        &["id", "parameters", "inputs", "outputs"],
                    ));
                }
            }
        }
        if !saw_inputs {
            return Err(de::Error::missing_field("inputs"));
        }
        Ok(request)
    }
}

struct InputsSeed<'r, 'de, 'c> {
    request: &'r mut InferRequest<'de>,
    current_input: &'c Cell<Option<usize>>,
}

impl<'de> DeserializeSeed<'de> for InputsSeed<'_, 'de, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for InputsSeed<'_, 'de, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of input tensors")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            self.current_input.set(Some(index));
            let mut binary_size = None;
            let seed = TensorSeed {
                data: &mut self.request.data,
                binary_size: &mut binary_size,
            };
            match seq.next_element_seed(seed)? {
                Some(tensor) => self.request.inputs.push(tensor),
                None => return Ok(()),
            }
            if let Some(size) = binary_size {
                self.request.binary_inputs.push((index, size));
            }
            index += 1;
        }
    }
}

struct TensorSeed<'b> {
    data: &'b mut Vec<f64>,
    binary_size: &'b mut Option<u64>,
}

impl<'de> DeserializeSeed<'de> for TensorSeed<'_> {
    type Value = Tensor<'de>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TensorSeed<'_> {
    type Value = Tensor<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tensor object with `name`, `shape`, `datatype` and `data`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut tensor = Tensor::default();
        while let Some(key) = map.next_key::<CowStr<'de>>()?.map(|k| k.0) {
            match key.as_ref() {
                "name" => tensor.name = Some(map.next_value::<CowStr<'de>>()?.0),
                "datatype" => tensor.datatype = Some(map.next_value::<CowStr<'de>>()?.0),
                "shape" => tensor.shape = Some(map.next_value_seed(ShapeSeed)?),
                "data" => {
                    if tensor.data.is_some() {
                        return Err(de::Error::duplicate_field("data"));
                    }
                    let start = self.data.len();
                    map.next_value_seed(DataSeed {
                        out: &mut *self.data,
                        top: true,
                    })?;
                    tensor.data = Some(start..self.data.len());
                }
                "parameters" => {
                    *self.binary_size = map
                        .next_value::<Option<Object<TensorParameters>>>()?
                        .and_then(|p| p.0.binary_data_size);
                }
                other => {
                    return Err(de::Error::unknown_field(
                        other,
                        &["name", "shape", "datatype", "parameters", "data"],
                    ));
                }
            }
        }
        Ok(tensor)
    }
}

/// A struct read only from a JSON object: serde's derived structs also
/// take an array of their fields in order (`"parameters": [true]`), which
/// the documented wire form does not allow.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        deserializer.deserialize_map(ObjectVisitor(std::marker::PhantomData))
    }
}

struct ShapeSeed;

impl<'de> DeserializeSeed<'de> for ShapeSeed {
    type Value = Shape;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Shape, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ShapeSeed {
    type Value = Shape;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a shape: an array of at most {MAX_DIMS} non-negative integers"
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut shape = Shape::default();
        while let Some(dim) = seq.next_element::<u64>()? {
            if shape.push(dim).is_err() {
                return Err(de::Error::invalid_length(MAX_DIMS + 1, &self));
            }
        }
        Ok(shape)
    }
}

/// Flattens nested arrays of numbers and nulls into `out`.
struct DataSeed<'b> {
    out: &'b mut Vec<f64>,
    top: bool,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.top {
            deserializer.deserialize_seq(self)
        } else {
            deserializer.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.top {
            f.write_str("`data`: an array of numbers or nulls (flat or nested)")
        } else {
            f.write_str("a number, null or a nested array of them")
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(hint) = seq.size_hint() {
            self.out.reserve(hint);
        }
        while seq
            .next_element_seed(DataSeed {
                out: &mut *self.out,
                top: false,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.out.push(v);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.out.push(v as f64);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.out.push(v as f64);
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.out.push(f64::NAN);
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<InferRequest<'_>, (serde_json::Error, Option<usize>)> {
        let current = Cell::new(None);
        let mut de = serde_json::Deserializer::from_str(text);
        RequestSeed {
            current_input: &current,
        }
        .deserialize(&mut de)
        .map_err(|e| (e, current.get()))
    }

    #[test]
    fn nested_and_flat_data_flatten_into_one_buffer() {
        let request = parse(
            r#"{"id":"r1","parameters":{"x":1},"inputs":[
                {"name":"a","shape":[2,2],"datatype":"FP32","data":[[1,2.5],[null,-4]]},
                {"data":[7],"name":"b","datatype":"INT64","shape":[1],"parameters":{}}]}"#,
        )
        .expect("valid");
        assert_eq!(request.id.as_deref(), Some("r1"));
        assert_eq!(request.inputs.len(), 2);
        assert_eq!(request.inputs[0].data, Some(0..4));
        assert_eq!(request.inputs[1].data, Some(4..5));
        assert_eq!(request.inputs[0].shape.expect("shape").dims(), &[2, 2]);
        assert_eq!(request.data[..2], [1.0, 2.5]);
        assert!(request.data[2].is_nan());
        assert_eq!(request.data[3..], [-4.0, 7.0]);
        assert!(matches!(request.inputs[0].name, Some(Cow::Borrowed("a"))));
    }

    #[test]
    fn binary_parameters_are_read_and_others_ignored() {
        let request = parse(
            r#"{"parameters":{"binary_data_output":true,"priority":1},"inputs":[
                {"name":"a","shape":[1],"datatype":"FP32","data":[1]},
                {"name":"b","shape":[2],"datatype":"FP64","parameters":{"binary_data_size":16,"x":"y"}}],
                "outputs":[{"name":"score","parameters":{"binary_data":false,"classification":0}},{"name":"label"}]}"#,
        )
        .expect("valid");
        assert!(request.binary_output);
        assert_eq!(request.binary_inputs, vec![(1, 16)]);
        assert_eq!(request.inputs[1].data, None);
        let outputs = request.outputs.expect("outputs");
        assert_eq!(outputs[0].binary, Some(false));
        assert_eq!(outputs[1].binary, None);
        let (err, index) =
            parse(r#"{"inputs":[{"name":"a","parameters":{"binary_data_size":-1}}]}"#)
                .expect_err("negative size");
        assert_eq!(index, Some(0));
        assert!(
            err.to_string().contains("invalid value: integer `-1`"),
            "{err}"
        );
    }

    #[test]
    fn errors_say_which_input() {
        let (err, index) =
            parse(r#"{"inputs":[{"name":"a","data":[1]},{"name":"b","data":[1,"x"]}]}"#)
                .expect_err("string in data");
        assert_eq!(index, Some(1));
        let text = err.to_string();
        assert!(
            text.contains("expected a number, null or a nested array of them"),
            "{text}"
        );
        let (err, _) = parse(r#"{"inputs":[{"shape":[1,2,3,4,5]}]}"#).expect_err("too many dims");
        assert!(err.to_string().contains("at most 4"), "{err}");
        let (err, _) = parse(r#"{"inputs":[{"shape":[-1]}]}"#).expect_err("negative dim");
        assert!(
            err.to_string().contains("invalid value: integer `-1`"),
            "{err}"
        );
        for body in [
            r#"{"parameters":[true],"inputs":[]}"#,
            r#"{"inputs":[{"parameters":[16]}]}"#,
            r#"{"inputs":[],"outputs":[["score"]]}"#,
            r#"{"inputs":[],"outputs":[{"name":"score","parameters":[true]}]}"#,
        ] {
            let (err, _) = parse(body).expect_err("an array for an object");
            assert!(
                err.to_string().contains("expected an object"),
                "{body}: {err}"
            );
        }
        let request = parse(
            r#"{"parameters":null,"inputs":[{"parameters":null}],"outputs":[{"name":"score","parameters":null}]}"#,
        )
        .expect("null parameters");
        assert!(!request.binary_output);
        assert!(request.binary_inputs.is_empty());
        let (err, _) = parse(r#"{"id":"x"}"#).expect_err("no inputs");
        assert!(err.to_string().contains("missing field `inputs`"), "{err}");
    }
}

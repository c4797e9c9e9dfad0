//! Laying input tensors out as model rows, whatever transport decoded them:
//! the JSON body, the binary tensor extension or gRPC all hand over
//! [`Tensor`]s whose values sit in one shared `f64` buffer (NaN = missing),
//! so every transport gets the same checks and the same error messages.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use crate::config::UnknownFeatures;
use crate::error::ApiError;
use crate::registry::ModelEntry;

/// Most dimensions a tensor may have; scoring needs at most two.
pub(crate) const MAX_DIMS: usize = 4;

/// Datatypes accepted for input tensors.
pub(crate) const NUMERIC_DATATYPES: &[&str] = &[
    "FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32",
    "UINT64",
];

/// One input tensor; fields are optional so that a missing one is reported
/// by [`build_rows`] with the tensor's name. `data` is a range of the
/// request's shared value buffer.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tensor<'a> {
    pub name: Option<Cow<'a, str>>,
    pub datatype: Option<Cow<'a, str>>,
    pub shape: Option<Shape>,
    pub data: Option<Range<usize>>,
}

// Constructors for transports that decode whole tensors (gRPC).
#[allow(dead_code)]
impl<'a> Tensor<'a> {
    /// A tensor with every field present.
    pub(crate) fn new(
        name: impl Into<Cow<'a, str>>,
        datatype: impl Into<Cow<'a, str>>,
        shape: Shape,
        data: Range<usize>,
    ) -> Tensor<'a> {
        Tensor {
            name: Some(name.into()),
            datatype: Some(datatype.into()),
            shape: Some(shape),
            data: Some(data),
        }
    }
}

/// A small inline shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    dims: [u64; MAX_DIMS],
    len: usize,
}

impl Shape {
    /// A shape of `dims`; `None` past [`MAX_DIMS`] dimensions.
    #[allow(dead_code)] // for transports that decode whole tensors (gRPC)
    pub(crate) fn new(dims: &[u64]) -> Option<Shape> {
        let mut shape = Shape::default();
        for &dim in dims {
            shape.push(dim).ok()?;
        }
        Some(shape)
    }

    /// A shape from signed dimensions (gRPC's `int64 shape`), or a 400
    /// naming the tensor for a negative dimension or too many of them.
    #[allow(dead_code)] // for the gRPC transport
    pub(crate) fn from_signed(name: &str, dims: &[i64]) -> Result<Shape, ApiError> {
        let mut shape = Shape::default();
        for &dim in dims {
            let dim = u64::try_from(dim).map_err(|_| {
                ApiError::bad_request(format!(
                    "tensor `{name}` has dimension {dim}; dimensions must be non-negative"
                ))
            })?;
            shape.push(dim).map_err(|()| {
                ApiError::bad_request(format!(
                    "tensor `{name}` has {} dimensions; at most {MAX_DIMS} are accepted",
                    dims.len()
                ))
            })?;
        }
        Ok(shape)
    }

    /// Appends a dimension; `Err` when the shape is full.
    pub(crate) fn push(&mut self, dim: u64) -> Result<(), ()> {
        let slot = self.dims.get_mut(self.len).ok_or(())?;
        *slot = dim;
        self.len += 1;
        Ok(())
    }

    pub fn dims(&self) -> &[u64] {
        &self.dims[..self.len]
    }

    /// Product of the dimensions, `None` on overflow.
    pub fn elements(&self) -> Option<u64> {
        self.dims()
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.dims().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// Which outputs a request wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub score: bool,
    pub label: bool,
}

/// The outputs named by a request (`None`: all the model has), or a 400
/// naming an unknown one.
pub(crate) fn wanted_outputs<'n>(
    entry: &ModelEntry,
    requested: Option<impl IntoIterator<Item = &'n str>>,
) -> Result<Wanted, ApiError> {
    let has_label = entry.has_threshold();
    let Some(requested) = requested else {
        return Ok(Wanted {
            score: true,
            label: has_label,
        });
    };
    let mut wanted = Wanted {
        score: false,
        label: false,
    };
    for name in requested {
        match name {
            "score" => wanted.score = true,
            "label" if has_label => wanted.label = true,
            other => {
                let known = if has_label {
                    "`score` or `label`"
                } else {
                    "`score`"
                };
                return Err(ApiError::bad_request(format!(
                    "unknown output `{other}`: model `{}` has {known}",
                    entry.name
                )));
            }
        }
    }
    Ok(wanted)
}

fn tensor_name<'a>(tensor: &'a Tensor<'_>, index: usize) -> Result<&'a str, ApiError> {
    tensor
        .name
        .as_deref()
        .ok_or_else(|| ApiError::bad_request(format!("inputs[{index}]: missing `name`")))
}

/// Check one tensor's datatype, shape and data against each other; return
/// its name, shape and data.
fn check_tensor<'r>(
    inputs: &'r [Tensor<'_>],
    values: &'r [f64],
    index: usize,
) -> Result<(&'r str, &'r [u64], &'r [f64]), ApiError> {
    let tensor = &inputs[index];
    let name = tensor_name(tensor, index)?;
    let datatype = tensor
        .datatype
        .as_deref()
        .ok_or_else(|| ApiError::bad_request(format!("tensor `{name}`: missing `datatype`")))?;
    if !NUMERIC_DATATYPES.contains(&datatype) {
        return Err(ApiError::bad_request(format!(
            "tensor `{name}` has datatype {datatype}; expected one of {}",
            NUMERIC_DATATYPES.join(", ")
        )));
    }
    let shape = tensor
        .shape
        .as_ref()
        .ok_or_else(|| ApiError::bad_request(format!("tensor `{name}`: missing `shape`")))?;
    let range = tensor
        .data
        .clone()
        .ok_or_else(|| ApiError::bad_request(format!("tensor `{name}`: missing `data`")))?;
    let data = values.get(range).ok_or_else(|| {
        ApiError::internal(format!(
            "tensor `{name}`: data range outside the value buffer"
        ))
    })?;
    if shape.elements() != Some(data.len() as u64) {
        return Err(ApiError::bad_request(format!(
            "tensor `{name}` has shape {shape} but {} data value(s); the element count must be the product of the shape",
            data.len()
        )));
    }
    let integer = datatype.starts_with("INT") || datatype.starts_with("UINT");
    if integer {
        let unsigned = datatype.starts_with('U');
        if let Some(bad) = data
            .iter()
            .find(|v| !v.is_nan() && (v.fract() != 0.0 || (unsigned && **v < 0.0)))
        {
            return Err(ApiError::bad_request(format!(
                "tensor `{name}` has datatype {datatype} but holds {bad}"
            )));
        }
    }
    Ok((name, shape.dims(), data))
}

/// Lay `inputs` (their values in `values`) out as row-major rows; returns
/// rows and batch size. One `[batch, n_features]` tensor covering all of
/// `values` takes the buffer itself instead of copying it.
pub(crate) fn build_rows(
    entry: &ModelEntry,
    inputs: &[Tensor<'_>],
    values: &mut Vec<f64>,
) -> Result<(Vec<f64>, usize), ApiError> {
    let n = entry.model.num_features();
    if inputs.is_empty() {
        return Err(ApiError::bad_request(
            "`inputs` is empty: send one tensor [batch, n_features] or one tensor per feature",
        ));
    }
    if inputs.len() == 1 {
        let (name, dims, data) = check_tensor(inputs, values, 0)?;
        if let [batch, width] = *dims {
            // `[batch, 1]` named after a feature is the per-feature form
            // (identical to the batch form when the model has one feature).
            let per_feature = width == 1 && n > 1 && entry.feature_index(name).is_some();
            if !per_feature {
                if width as usize != n {
                    return Err(ApiError::bad_request(format!(
                        "tensor `{name}` has shape [{batch}, {width}]; expected [batch, {n}] (the model's {n} features) or one tensor per feature of shape [batch]"
                    )));
                }
                let rows = if data.len() == values.len() {
                    std::mem::take(values)
                } else {
                    data.to_vec()
                };
                return Ok((rows, batch as usize));
            }
        }
    }
    // One tensor per feature.
    let mut batch: Option<(usize, &str)> = None;
    let mut rows: Vec<f64> = Vec::new();
    let mut seen = vec![false; n];
    for index in 0..inputs.len() {
        let (name, dims, data) = check_tensor(inputs, values, index)?;
        let rows_here = match *dims {
            [b] | [b, 1] => b as usize,
            _ => {
                let shape = inputs[index].shape.unwrap_or_default();
                return Err(ApiError::bad_request(format!(
                    "tensor `{name}` has shape {shape}; a per-feature tensor must have shape [batch] or [batch, 1]"
                )));
            }
        };
        let Some(feature) = entry.feature_index(name) else {
            match entry.unknown_features {
                UnknownFeatures::Ignore => continue,
                UnknownFeatures::Reject => {
                    return Err(ApiError::bad_request(format!(
                        "unknown feature `{name}`: model `{}` has no such feature",
                        entry.name
                    )));
                }
            }
        };
        match batch {
            None => {
                batch = Some((rows_here, name));
                rows = vec![f64::NAN; rows_here * n];
            }
            Some((b, first)) if b != rows_here => {
                return Err(ApiError::bad_request(format!(
                    "tensor `{name}` has {rows_here} row(s) but tensor `{first}` has {b}; every feature tensor needs the same batch size"
                )));
            }
            Some(_) => {}
        }
        if std::mem::replace(&mut seen[feature], true) {
            return Err(ApiError::bad_request(format!(
                "feature `{name}` is given twice"
            )));
        }
        for (row, &value) in data.iter().enumerate() {
            rows[row * n + feature] = value;
        }
    }
    match batch {
        Some((batch, _)) => Ok((rows, batch)),
        None => Err(ApiError::bad_request(
            "no input tensor names a feature of the model (unknown names are ignored)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_from_any_transport() {
        assert_eq!(Shape::new(&[2, 3]).expect("2 dims").dims(), &[2, 3]);
        assert!(Shape::new(&[1; MAX_DIMS + 1]).is_none());
        assert_eq!(
            Shape::from_signed("x", &[4, 1]).expect("valid"),
            Shape::new(&[4, 1]).expect("valid")
        );
        let err = Shape::from_signed("x", &[-1, 8]).expect_err("negative");
        assert!(
            err.message.contains("tensor `x` has dimension -1"),
            "{}",
            err.message
        );
        let err = Shape::from_signed("x", &[1; MAX_DIMS + 1]).expect_err("too many");
        assert!(err.message.contains("at most 4"), "{}", err.message);
        let tensor = Tensor::new("x", "FP32", Shape::new(&[1]).expect("1 dim"), 0..1);
        assert_eq!(tensor.name.as_deref(), Some("x"));
    }
}

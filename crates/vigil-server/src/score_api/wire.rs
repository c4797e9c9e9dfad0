//! Parsing a plain JSON scoring request straight into the model's row
//! buffer: each feature key is looked up once and its value written in
//! place; keys are borrowed from the body, nothing is allocated per feature.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::config::UnknownFeatures;
use crate::extract::CowStr;
use crate::registry::ModelEntry;

/// A parsed request: `rows` holds `ids.len()` rows of `num_features` values.
#[derive(Debug)]
pub(crate) struct ScoreRequest<'a> {
    /// The top-level `id`.
    pub id: Option<Cow<'a, str>>,
    /// Row-major feature values, NaN = missing.
    pub rows: Vec<f64>,
    /// Per-instance ids (`instances` form), one per row.
    pub ids: Vec<Option<Cow<'a, str>>>,
    /// `instances` (many rows) rather than `features` (one row).
    pub batch: bool,
}

/// Seed for the whole request.
pub(crate) struct RequestSeed<'e> {
    pub entry: &'e ModelEntry,
}

impl<'de> DeserializeSeed<'de> for RequestSeed<'_> {
    type Value = ScoreRequest<'de>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RequestSeed<'_> {
    type Value = ScoreRequest<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with `features` (one row) or `instances` (many rows)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let n = self.entry.model.num_features();
        let mut request = ScoreRequest {
            id: None,
            rows: Vec::new(),
            ids: Vec::new(),
            batch: false,
        };
        let mut form: Option<&'static str> = None;
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            match key.0.as_ref() {
                "id" => request.id = Some(map.next_value::<CowStr<'de>>()?.0),
                field @ ("features" | "instances") => {
                    if let Some(previous) = form {
                        return Err(de::Error::custom(format!(
                            "`{field}` given after `{previous}`: send either `features` or `instances`"
                        )));
                    }
                    if field == "features" {
                        form = Some("features");
                        request.rows = vec![f64::NAN; n];
                        map.next_value_seed(FeaturesSeed {
                            entry: self.entry,
                            row: &mut request.rows,
                        })?;
                    } else {
                        form = Some("instances");
                        request.batch = true;
                        map.next_value_seed(InstancesSeed {
                            entry: self.entry,
                            rows: &mut request.rows,
                            ids: &mut request.ids,
                        })?;
                    }
                }
                other => {
                    return Err(de::Error::unknown_field(
                        other,
                        &["id", "features", "instances"],
                    ));
                }
            }
        }
        if form.is_none() {
            return Err(de::Error::custom(
                "the request needs `features` (one row) or `instances` (an array of rows)",
            ));
        }
        if !request.batch {
            request.ids.push(None);
        }
        Ok(request)
    }
}

struct InstancesSeed<'e, 'b, 'de> {
    entry: &'e ModelEntry,
    rows: &'b mut Vec<f64>,
    ids: &'b mut Vec<Option<Cow<'de, str>>>,
}

impl<'de> DeserializeSeed<'de> for InstancesSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for InstancesSeed<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`instances`: an array of {\"id\"?, \"features\": {...}} objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let n = self.entry.model.num_features();
        loop {
            let start = self.rows.len();
            self.rows.resize(start + n, f64::NAN);
            let seed = InstanceSeed {
                entry: self.entry,
                row: &mut self.rows[start..],
            };
            match seq.next_element_seed(seed)? {
                Some(id) => self.ids.push(id),
                None => {
                    self.rows.truncate(start);
                    return Ok(());
                }
            }
        }
    }
}

struct InstanceSeed<'e, 'b> {
    entry: &'e ModelEntry,
    row: &'b mut [f64],
}

impl<'de> DeserializeSeed<'de> for InstanceSeed<'_, '_> {
    type Value = Option<Cow<'de, str>>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for InstanceSeed<'_, '_> {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an instance object {\"id\"?, \"features\": {...}}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id = None;
        let mut saw_features = false;
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            match key.0.as_ref() {
                "id" => id = Some(map.next_value::<CowStr<'de>>()?.0),
                "features" => {
                    if saw_features {
                        return Err(de::Error::duplicate_field("features"));
                    }
                    saw_features = true;
                    map.next_value_seed(FeaturesSeed {
                        entry: self.entry,
                        row: &mut *self.row,
                    })?;
                }
                other => return Err(de::Error::unknown_field(other, &["id", "features"])),
            }
        }
        if !saw_features {
            return Err(de::Error::missing_field("features"));
        }
        Ok(id)
    }
}

/// Writes a `{"name": value, ...}` map into a NaN-filled row.
struct FeaturesSeed<'e, 'b> {
    entry: &'e ModelEntry,
    row: &'b mut [f64],
}

impl<'de> DeserializeSeed<'de> for FeaturesSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FeaturesSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`features`: an object of feature name to number or null")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            let name = key.0.as_ref();
            match self.entry.feature_index(name) {
                Some(index) => {
                    self.row[index] = map.next_value_seed(ValueSeed { name })?;
                }
                None => match self.entry.unknown_features {
                    UnknownFeatures::Ignore => {
                        map.next_value::<IgnoredAny>()?;
                    }
                    UnknownFeatures::Reject => {
                        return Err(de::Error::custom(format_args!(
                            "unknown feature `{name}`: model `{}` has no such feature",
                            self.entry.name
                        )));
                    }
                },
            }
        }
        Ok(())
    }
}

/// One feature value: a number, or null for missing.
struct ValueSeed<'n> {
    name: &'n str,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = f64;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<f64, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a number or null for feature `{}`", self.name)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }
    fn visit_none<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }
}

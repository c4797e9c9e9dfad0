//! The Parquet form of an export: records buffered column by column, a row
//! group written whenever the buffer is full and at the end.

use std::io::Write;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DataType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};

use super::io_err;
use crate::error::Result;
use crate::record::InferenceRecord;

/// The Parquet schema: the CSV columns in the same order, typed. `input` is
/// JSON text; `scores` a list, empty when the model gave none.
pub const PARQUET_SCHEMA: &str = "
message inference_record {
  required binary request_id (STRING);
  required int64 received_at_us (TIMESTAMP(MICROS,true));
  required binary model (STRING);
  required binary version (STRING);
  required binary input (JSON);
  required binary input_fingerprint (STRING);
  required group scores (LIST) {
    repeated group list {
      required double element;
    }
  }
  optional binary label (STRING);
  optional double threshold;
  required int64 latency_us;
  required boolean cached;
  optional binary api_key_name (STRING);
  optional binary trace_id (STRING);
}";

/// Records a Parquet export holds in memory before writing them as a row
/// group, so memory stays bounded however long the range.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// Text bytes after which a row group is written before [`ROW_GROUP_ROWS`]:
/// inputs can be large.
const ROW_GROUP_TEXT_BYTES: usize = 64 << 20;

/// A Parquet file being written: records are buffered column by column and
/// written as a row group when the buffer is full and at the end.
pub(super) struct ParquetSink<W: Write> {
    writer: SerializedFileWriter<W>,
    columns: Columns,
    /// [`ROW_GROUP_ROWS`]; smaller in tests.
    row_group_rows: usize,
}

/// The buffered rows of the next row group, one vector per column.
#[derive(Default)]
struct Columns {
    rows: usize,
    text_bytes: usize,
    request_id: Vec<ByteArray>,
    received_at_us: Vec<i64>,
    model: Vec<ByteArray>,
    version: Vec<ByteArray>,
    input: Vec<ByteArray>,
    input_fingerprint: Vec<ByteArray>,
    scores: Levels<f64>,
    label: Levels<ByteArray>,
    threshold: Levels<f64>,
    latency_us: Vec<i64>,
    cached: Vec<bool>,
    api_key_name: Levels<ByteArray>,
    trace_id: Levels<ByteArray>,
}

/// The values of an optional or list column with their definition levels
/// (and repetition levels for a list): a null or an empty list is a level 0
/// without a value.
struct Levels<T> {
    values: Vec<T>,
    def: Vec<i16>,
    rep: Vec<i16>,
}

impl<T> Default for Levels<T> {
    fn default() -> Self {
        Levels {
            values: Vec::new(),
            def: Vec::new(),
            rep: Vec::new(),
        }
    }
}

impl<T> Levels<T> {
    fn push_option(&mut self, value: Option<T>) {
        match value {
            Some(v) => {
                self.values.push(v);
                self.def.push(1);
            }
            None => self.def.push(0),
        }
    }

    fn push_list(&mut self, values: impl IntoIterator<Item = T>) {
        let mut first = true;
        for v in values {
            self.values.push(v);
            self.def.push(1);
            self.rep.push(if first { 0 } else { 1 });
            first = false;
        }
        if first {
            self.def.push(0);
            self.rep.push(0);
        }
    }
}

impl Columns {
    fn push(&mut self, r: &InferenceRecord) -> Result<()> {
        let input = r.input.to_json();
        let fingerprint = r.input.fingerprint();
        let texts = [&r.request_id, &r.model, &r.version, &input, &fingerprint];
        let options = [&r.label, &r.api_key_name, &r.trace_id];
        self.text_bytes += texts.iter().map(|s| s.len()).sum::<usize>()
            + options
                .iter()
                .flat_map(|s| s.as_deref())
                .map(str::len)
                .sum::<usize>();
        let opt = |s: &Option<String>| s.as_deref().map(ByteArray::from);
        self.request_id.push(r.request_id.as_str().into());
        self.received_at_us.push(r.received_at_us);
        self.model.push(r.model.as_str().into());
        self.version.push(r.version.as_str().into());
        self.input.push(input.into_bytes().into());
        self.input_fingerprint.push(fingerprint.into_bytes().into());
        self.scores.push_list(r.scores.iter().copied());
        self.label.push_option(opt(&r.label));
        self.threshold.push_option(r.threshold);
        self.latency_us.push(r.latency_us);
        self.cached.push(r.cached);
        self.api_key_name.push_option(opt(&r.api_key_name));
        self.trace_id.push_option(opt(&r.trace_id));
        self.rows += 1;
        Ok(())
    }
}

impl<W: Write + Send> ParquetSink<W> {
    pub(super) fn new(out: W) -> Result<Self> {
        let schema = parquet::schema::parser::parse_message_type(PARQUET_SCHEMA).map_err(io_err)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let writer =
            SerializedFileWriter::new(out, Arc::new(schema), Arc::new(props)).map_err(io_err)?;
        Ok(ParquetSink {
            writer,
            columns: Columns::default(),
            row_group_rows: ROW_GROUP_ROWS,
        })
    }

    pub(super) fn write(&mut self, r: &InferenceRecord) -> Result<()> {
        self.columns.push(r)?;
        if self.columns.rows >= self.row_group_rows
            || self.columns.text_bytes >= ROW_GROUP_TEXT_BYTES
        {
            self.write_row_group()?;
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<W> {
        if self.columns.rows > 0 {
            self.write_row_group()?;
        }
        let mut out = self.writer.into_inner().map_err(io_err)?;
        out.flush()?;
        Ok(out)
    }

    /// Writes the buffered rows as one row group, columns in schema order.
    fn write_row_group(&mut self) -> Result<()> {
        let c = std::mem::take(&mut self.columns);
        let mut group = self.writer.next_row_group().map_err(io_err)?;
        column::<ByteArrayType, W>(&mut group, &c.request_id, None, None)?;
        column::<Int64Type, W>(&mut group, &c.received_at_us, None, None)?;
        column::<ByteArrayType, W>(&mut group, &c.model, None, None)?;
        column::<ByteArrayType, W>(&mut group, &c.version, None, None)?;
        column::<ByteArrayType, W>(&mut group, &c.input, None, None)?;
        column::<ByteArrayType, W>(&mut group, &c.input_fingerprint, None, None)?;
        let scores = &c.scores;
        column::<DoubleType, W>(
            &mut group,
            &scores.values,
            Some(&scores.def),
            Some(&scores.rep),
        )?;
        column::<ByteArrayType, W>(&mut group, &c.label.values, Some(&c.label.def), None)?;
        column::<DoubleType, W>(
            &mut group,
            &c.threshold.values,
            Some(&c.threshold.def),
            None,
        )?;
        column::<Int64Type, W>(&mut group, &c.latency_us, None, None)?;
        column::<BoolType, W>(&mut group, &c.cached, None, None)?;
        let key = &c.api_key_name;
        column::<ByteArrayType, W>(&mut group, &key.values, Some(&key.def), None)?;
        column::<ByteArrayType, W>(&mut group, &c.trace_id.values, Some(&c.trace_id.def), None)?;
        group.close().map_err(io_err)?;
        Ok(())
    }
}

/// Writes the next column of `group`; `T` must be the schema's type for it.
fn column<T: DataType, W: Write + Send>(
    group: &mut SerializedRowGroupWriter<'_, W>,
    values: &[T::T],
    def: Option<&[i16]>,
    rep: Option<&[i16]>,
) -> Result<()> {
    let mut writer = group
        .next_column()
        .map_err(io_err)?
        .ok_or_else(|| io_err("the parquet schema has fewer columns than a record"))?;
    writer
        .typed::<T>()
        .write_batch(values, def, rep)
        .map_err(io_err)?;
    writer.close().map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::CSV_HEADER;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    use serde_json::json;

    /// Records covering every field: options set and unset, one score,
    /// several, none, and non-ASCII text.
    fn varied() -> Vec<InferenceRecord> {
        let input = match json!({"amount": 12.5, "note": "a,\"b\""}) {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        let mut a = InferenceRecord::new("id-1", 42, "fraud", "3", input);
        a.scores = vec![0.75];
        a.label = Some("fraud".into());
        a.threshold = Some(0.5);
        a.latency_us = 812;
        a.cached = true;
        a.api_key_name = Some("ops-ключ".into());
        a.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        let input = match json!({"città": "Zürich 名前 🚀", "n": [1, 2.5, null]}) {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        let mut b = InferenceRecord::new("id-2 é", -7, "iris", "v2", input);
        b.scores = vec![0.1, 0.7, 0.2];
        b.label = Some("versicolor 🌸".into());
        let mut c =
            InferenceRecord::new("id-3", 1_764_547_200_000_000, "fraud", "3", a.input.clone());
        c.threshold = Some(0.25);
        vec![a, b, c]
    }

    fn parquet_export(records: &[InferenceRecord], row_group_rows: usize) -> std::fs::File {
        let file = tempfile::tempfile().unwrap_or_else(|e| panic!("{e}"));
        let mut sink = ParquetSink::new(file).unwrap_or_else(|e| panic!("{e}"));
        sink.row_group_rows = row_group_rows;
        for r in records {
            sink.write(r).unwrap_or_else(|e| panic!("{e}"));
        }
        sink.finish().unwrap_or_else(|e| panic!("{e}"))
    }

    /// A row as the record's serde form, checking each column's Parquet type.
    fn row_json(row: &parquet::record::Row) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        for (name, field) in row.get_column_iter() {
            let value = match (name.as_str(), field) {
                ("received_at_us", Field::TimestampMicros(t)) => json!(t),
                ("received_at_us", other) => panic!("received_at_us is {other:?}"),
                ("input", Field::Str(s)) => {
                    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}"))
                }
                ("scores", Field::ListInternal(list)) => list
                    .elements()
                    .iter()
                    .map(|f| match f {
                        Field::Double(d) => json!(d),
                        other => panic!("score {other:?}"),
                    })
                    .collect(),
                (_, Field::Str(s)) => json!(s),
                (_, Field::Long(n)) => json!(n),
                (_, Field::Double(d)) => json!(d),
                (_, Field::Bool(b)) => json!(b),
                (_, Field::Null) => serde_json::Value::Null,
                (name, other) => panic!("{name} is {other:?}"),
            };
            object.insert(name.clone(), value);
        }
        serde_json::Value::Object(object)
    }

    #[test]
    fn parquet_round_trips_every_field() {
        let records = varied();
        let reader = SerializedFileReader::new(parquet_export(&records, ROW_GROUP_ROWS))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reader.metadata().file_metadata().num_rows(), 3);
        assert_eq!(reader.metadata().num_row_groups(), 1);
        let rows: Vec<serde_json::Value> = reader
            .get_row_iter(None)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|row| row_json(&row.unwrap_or_else(|e| panic!("{e}"))))
            .collect();
        let expected: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                let mut value = serde_json::to_value(r).unwrap_or_default();
                value["input_fingerprint"] = json!(r.input.fingerprint());
                value
            })
            .collect();
        assert_eq!(rows, expected);
        assert_eq!(rows[1]["scores"], json!([0.1, 0.7, 0.2]));
        assert_eq!(rows[2]["scores"], json!([]));
        assert_eq!(rows[1]["input"]["città"], json!("Zürich 名前 🚀"));
    }

    #[test]
    fn parquet_writes_a_row_group_per_batch() {
        let mut records = varied();
        records.extend(varied());
        records.truncate(5);
        let reader = SerializedFileReader::new(parquet_export(&records, 2))
            .unwrap_or_else(|e| panic!("{e}"));
        let sizes: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(sizes, [2, 2, 1]);
        let ids: Vec<String> = reader
            .get_row_iter(None)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|row| row_json(&row.unwrap_or_else(|e| panic!("{e}")))["request_id"].to_string())
            .collect();
        assert_eq!(
            ids,
            [
                r#""id-1""#,
                r#""id-2 é""#,
                r#""id-3""#,
                r#""id-1""#,
                r#""id-2 é""#
            ]
        );
    }

    #[test]
    fn empty_parquet_export_is_a_valid_file_with_the_schema() {
        let reader = SerializedFileReader::new(parquet_export(&[], ROW_GROUP_ROWS))
            .unwrap_or_else(|e| panic!("{e}"));
        let meta = reader.metadata().file_metadata();
        assert_eq!(meta.num_rows(), 0);
        assert_eq!(reader.metadata().num_row_groups(), 0);
        let names: Vec<&str> = meta
            .schema()
            .get_fields()
            .iter()
            .map(|f| f.name())
            .collect();
        assert_eq!(names, CSV_HEADER);
        let column = |name: &str| {
            meta.schema_descr()
                .columns()
                .iter()
                .find(|c| c.path().parts()[0] == name)
                .map(|c| (c.physical_type(), c.logical_type_ref().cloned()))
        };
        use parquet::basic::{LogicalType, TimeUnit, Type};
        assert_eq!(
            column("received_at_us"),
            Some((
                Type::INT64,
                Some(LogicalType::timestamp(true, TimeUnit::MICROS))
            ))
        );
        assert_eq!(
            column("input"),
            Some((Type::BYTE_ARRAY, Some(LogicalType::Json)))
        );
        assert_eq!(
            column("label"),
            Some((Type::BYTE_ARRAY, Some(LogicalType::String)))
        );
        assert_eq!(column("scores"), Some((Type::DOUBLE, None)));
    }
}

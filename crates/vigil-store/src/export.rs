//! Export of records to JSON Lines, CSV and Parquet.

mod parquet_file;

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::InferenceLog;
use crate::error::{Result, StoreError};
use crate::record::{InferenceRecord, ListQuery, MAX_LIST_LIMIT};
use parquet_file::ParquetSink;
pub use parquet_file::{PARQUET_SCHEMA, ROW_GROUP_ROWS};

/// An export file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// One JSON object per line, the record's serde form.
    Jsonl,
    /// A header line, then one row per record; `input` and `scores` hold JSON text.
    Csv,
    /// Apache Parquet, one typed column per CSV column (see [`PARQUET_SCHEMA`]),
    /// Snappy-compressed, a row group every [`ROW_GROUP_ROWS`] records.
    Parquet,
}

impl std::str::FromStr for ExportFormat {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "jsonl" => Ok(ExportFormat::Jsonl),
            "csv" => Ok(ExportFormat::Csv),
            "parquet" => Ok(ExportFormat::Parquet),
            other => Err(StoreError::InvalidParameter {
                name: "format",
                reason: format!("expected jsonl, csv or parquet, got `{other}`"),
            }),
        }
    }
}

/// The CSV header, in column order.
pub const CSV_HEADER: [&str; 13] = [
    "request_id",
    "received_at_us",
    "model",
    "version",
    "input",
    "input_fingerprint",
    "scores",
    "label",
    "threshold",
    "latency_us",
    "cached",
    "api_key_name",
    "trace_id",
];

/// The `parquet` crate the exporter writes with, for reading an export back
/// with the same version.
pub use parquet;

/// A JSON Lines row: the record and its input's fingerprint.
#[derive(Serialize)]
struct WithFingerprint<'a> {
    #[serde(flatten)]
    record: &'a InferenceRecord,
    input_fingerprint: String,
}

/// Writes records one at a time in a format.
pub struct Exporter<W: Write> {
    format: ExportFormat,
    inner: ExporterInner<W>,
    written: u64,
}

enum ExporterInner<W: Write> {
    Jsonl(W),
    Csv(Box<csv::Writer<W>>),
    Parquet(Box<ParquetSink<W>>),
}

impl<W: Write> std::fmt::Debug for Exporter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("format", &self.format)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

fn io_err(err: impl std::fmt::Display) -> StoreError {
    StoreError::Io(std::io::Error::other(err.to_string()))
}

impl<W: Write + Send> Exporter<W> {
    /// An exporter writing to `out` (the CSV header and the Parquet magic
    /// are written at once).
    pub fn new(format: ExportFormat, out: W) -> Result<Self> {
        let inner = match format {
            ExportFormat::Jsonl => ExporterInner::Jsonl(out),
            ExportFormat::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(CSV_HEADER).map_err(io_err)?;
                ExporterInner::Csv(Box::new(w))
            }
            ExportFormat::Parquet => ExporterInner::Parquet(Box::new(ParquetSink::new(out)?)),
        };
        Ok(Exporter {
            format,
            inner,
            written: 0,
        })
    }

    /// Writes one record.
    pub fn write(&mut self, r: &InferenceRecord) -> Result<()> {
        match &mut self.inner {
            ExporterInner::Jsonl(out) => {
                let line = WithFingerprint {
                    record: r,
                    input_fingerprint: r.input.fingerprint(),
                };
                serde_json::to_writer(&mut *out, &line).map_err(io_err)?;
                out.write_all(b"\n")?;
            }
            ExporterInner::Csv(w) => {
                let opt = |v: &Option<String>| v.clone().unwrap_or_default();
                let row = [
                    r.request_id.clone(),
                    r.received_at_us.to_string(),
                    r.model.clone(),
                    r.version.clone(),
                    r.input.to_json(),
                    r.input.fingerprint(),
                    serde_json::to_string(&r.scores).map_err(io_err)?,
                    opt(&r.label),
                    r.threshold.map(|t| t.to_string()).unwrap_or_default(),
                    r.latency_us.to_string(),
                    r.cached.to_string(),
                    opt(&r.api_key_name),
                    opt(&r.trace_id),
                ];
                w.write_record(&row).map_err(io_err)?;
            }
            ExporterInner::Parquet(sink) => sink.write(r)?,
        }
        self.written += 1;
        Ok(())
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes (for Parquet: writes the last row group and the footer) and
    /// returns the writer.
    pub fn finish(self) -> Result<W> {
        match self.inner {
            ExporterInner::Jsonl(mut out) => {
                out.flush()?;
                Ok(out)
            }
            ExporterInner::Csv(w) => w.into_inner().map_err(io_err),
            ExporterInner::Parquet(sink) => sink.finish(),
        }
    }
}

/// Streams every record received in `[from_us, to_us)` (newest first) into
/// `out`, page by page; `progress` is called with the running count.
pub async fn export_range<W: Write + Send>(
    log: &dyn InferenceLog,
    from_us: Option<i64>,
    to_us: Option<i64>,
    format: ExportFormat,
    out: W,
    mut progress: impl FnMut(u64),
) -> Result<W> {
    let mut exporter = Exporter::new(format, out)?;
    let mut query = ListQuery {
        from_us,
        to_us,
        limit: Some(MAX_LIST_LIMIT),
        ..ListQuery::default()
    };
    loop {
        let page = log.list(&query).await?;
        for r in &page.records {
            exporter.write(r)?;
        }
        progress(exporter.written());
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return exporter.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec() -> InferenceRecord {
        let input = match json!({"amount": 12.5, "note": "a,\"b\""}) {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        let mut r = InferenceRecord::new("id-1", 42, "fraud", "3", input);
        r.scores = vec![0.75];
        r.label = Some("fraud".into());
        r.threshold = Some(0.5);
        r
    }

    #[test]
    fn jsonl_round_trips() {
        let mut e =
            Exporter::new(ExportFormat::Jsonl, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        assert!(e.write(&rec()).is_ok());
        let text = String::from_utf8(e.finish().unwrap_or_default()).unwrap_or_default();
        assert!(text.ends_with('\n'));
        let back: InferenceRecord =
            serde_json::from_str(text.trim_end()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, rec());
    }

    #[test]
    fn csv_has_header_and_quoted_json() {
        let mut e = Exporter::new(ExportFormat::Csv, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        assert!(e.write(&rec()).is_ok());
        let bytes = e.finish().unwrap_or_default();
        let mut rd = csv::Reader::from_reader(bytes.as_slice());
        let header: Vec<String> = rd
            .headers()
            .map(|h| h.iter().map(str::to_owned).collect())
            .unwrap_or_default();
        assert_eq!(header, CSV_HEADER);
        let row = rd.records().next().and_then(|r| r.ok());
        let row = row.unwrap_or_default();
        assert_eq!(row.get(0), Some("id-1"));
        assert_eq!(row.get(6), Some("[0.75]"));
        let input: serde_json::Value =
            serde_json::from_str(row.get(4).unwrap_or_default()).unwrap_or_default();
        assert_eq!(input["note"], json!("a,\"b\""));
    }

    #[test]
    fn format_parses() {
        assert_eq!("csv".parse::<ExportFormat>().ok(), Some(ExportFormat::Csv));
        assert_eq!(
            "parquet".parse::<ExportFormat>().ok(),
            Some(ExportFormat::Parquet)
        );
        assert!("xlsx".parse::<ExportFormat>().is_err());
    }

    #[test]
    fn parquet_export_streams_to_a_plain_writer() {
        let mut e =
            Exporter::new(ExportFormat::Parquet, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        let mut second = rec();
        second.request_id = "id-2".into();
        assert!(e.write(&rec()).is_ok() && e.write(&second).is_ok());
        assert_eq!(e.written(), 2);
        let bytes = e.finish().unwrap_or_default();
        assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));

        use parquet::file::reader::{FileReader, SerializedFileReader};
        let mut file = tempfile::tempfile().unwrap_or_else(|e| panic!("{e}"));
        file.write_all(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let reader = SerializedFileReader::new(file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reader.metadata().file_metadata().num_rows(), 2);
        let ids: Vec<String> = reader
            .get_row_iter(None)
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|row| {
                row.ok()?
                    .get_column_iter()
                    .next()
                    .map(|(_, f)| f.to_string())
            })
            .collect();
        assert_eq!(ids, [r#""id-1""#, r#""id-2""#]);
    }
}

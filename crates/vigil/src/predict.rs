//! `vigil predict`: score a CSV file in batch.
//!
//! A reader thread splits the CSV into records; the main thread parses the
//! cells into floats and scores each batch (two halves on two threads), then
//! writes the output. Record buffers go back and forth between the reader
//! and the scorer, so the steady state allocates nothing.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use csv::ByteRecord;
use vigil_model::{Model, ModelFormat};

/// Rows scored per `predict_batch` call.
const BATCH_ROWS: usize = 4096;
/// Batches in flight between the reader and the scorer.
const BATCHES_IN_FLIGHT: usize = 3;

#[derive(Debug, Args)]
#[command(
    about = "Score a CSV file with a model, one output row per input row",
    long_about = "Score a CSV file with a model, one output row per input row.\n\n\
        The input's header names the columns; they are matched to the model's feature \
        names by name, in any order. Columns the model does not use are dropped unless \
        named with --keep. An empty cell is a missing value.\n\n\
        A model saved without feature names (XGBoost trained on a bare array) calls its \
        features f0..fN. When the header does not use those names, the columns are taken \
        by position, as xgboost does: the input must then have exactly as many columns as \
        the model has features, not counting the --keep columns, and stderr says which \
        column became which feature.\n\n\
        The output has the kept \
        columns first, then `score` (a probability or a regression value) or \
        `score_0..score_{k-1}` for a k-class model, printed so they read back to the \
        same f64.\n\n\
        Example:\n  \
        vigil predict --model fraud.json --input transactions.csv --output scores.csv --keep id"
)]
pub struct PredictArgs {
    /// Model file: XGBoost JSON or UBJ (`Booster.save_model`), or LightGBM text.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,

    /// Model format: xgboost or lightgbm (xgboost-json, xgboost-ubj also accepted).
    /// Default: detected from the file's content.
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,

    /// Input CSV with a header row; `-` reads standard input.
    #[arg(long, short, value_name = "IN.csv", default_value = "-")]
    input: PathBuf,

    /// Output CSV; `-` writes standard output.
    #[arg(long, short, value_name = "OUT.csv", default_value = "-")]
    output: PathBuf,

    /// Copy this input column to the output, before the scores (repeatable;
    /// kept columns appear in the order given). Default: none.
    #[arg(long, value_name = "COL")]
    keep: Vec<String>,
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let format = args.format.as_deref().map(parse_format).transpose()?;
    let model = Model::load(&args.model, format)
        .with_context(|| format!("cannot load model {}", args.model.display()))?;

    let (reader, input_len) = open_input(&args.input)?;
    let mut csv_reader = csv::ReaderBuilder::new()
        .buffer_capacity(1 << 20)
        .from_reader(reader);
    let header = csv_reader
        .byte_headers()
        .context("cannot read the input's header")?
        .clone();
    let columns = Columns::resolve(&model, &header, &args.keep)?;
    if let Some(notice) = &columns.positional {
        eprintln!("{notice}");
    }

    let writer = open_output(&args.output)?;
    let mut csv_writer = csv::WriterBuilder::new()
        .buffer_capacity(1 << 20)
        .from_writer(writer);
    write_header(&mut csv_writer, &args.keep, model.num_outputs())?;

    let progress = progress_bar(input_len);
    let rows = std::thread::scope(|scope| -> anyhow::Result<u64> {
        let (full_tx, full_rx) = mpsc::sync_channel::<anyhow::Result<Batch>>(BATCHES_IN_FLIGHT);
        let (empty_tx, empty_rx) = mpsc::channel::<Batch>();
        for _ in 0..BATCHES_IN_FLIGHT {
            // Cannot fail: the receiver is alive until the end of this scope.
            let _ = empty_tx.send(Batch::new());
        }
        scope.spawn(move || read_batches(csv_reader, full_tx, empty_rx));
        let mut scorer = Scorer::new(&model, &columns);
        let mut rows = 0u64;
        for batch in full_rx {
            let batch = batch?;
            scorer.score(&batch, &mut csv_writer)?;
            rows += batch.len as u64;
            if let Some(bar) = &progress {
                bar.set_position(batch.bytes_read);
            }
            // Fails once the reader has finished: the batches already sent
            // are still drained by this loop.
            let _ = empty_tx.send(batch);
        }
        Ok(rows)
    })?;
    csv_writer.flush().context("cannot write the output")?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if std::io::stderr().is_terminal() {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "scored {rows} rows in {secs:.3} s ({:.0} rows/s)",
            rows as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}

/// Map a `--format` name to a model format.
fn parse_format(name: &str) -> anyhow::Result<ModelFormat> {
    match name.to_ascii_lowercase().as_str() {
        "xgboost" | "xgboost-json" | "xgb" => Ok(ModelFormat::XgboostJson),
        "xgboost-ubj" | "ubj" => Ok(ModelFormat::XgboostUbj),
        "lightgbm" | "lgbm" | "lightgbm-text" => Ok(ModelFormat::LightgbmText),
        other => bail!("unknown model format {other:?}: expected xgboost or lightgbm"),
    }
}

fn open_input(path: &Path) -> anyhow::Result<(Box<dyn Read + Send>, Option<u64>)> {
    if path == Path::new("-") {
        return Ok((Box::new(std::io::stdin()), None));
    }
    let file = File::open(path).with_context(|| format!("cannot open input {}", path.display()))?;
    let len = file.metadata().ok().map(|m| m.len());
    Ok((Box::new(file), len))
}

fn open_output(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufWriter::with_capacity(
            1 << 16,
            std::io::stdout().lock(),
        )));
    }
    let file =
        File::create(path).with_context(|| format!("cannot create output {}", path.display()))?;
    Ok(Box::new(file))
}

fn progress_bar(input_len: Option<u64>) -> Option<indicatif::ProgressBar> {
    let len = input_len?;
    if !std::io::stderr().is_terminal() || len < (1 << 20) {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .ok()?;
    bar.set_style(style);
    Some(bar)
}

fn write_header<W: Write>(
    writer: &mut csv::Writer<W>,
    keep: &[String],
    outputs: usize,
) -> anyhow::Result<()> {
    for name in keep {
        writer.write_field(name)?;
    }
    if outputs == 1 {
        writer.write_field("score")?;
    } else {
        for k in 0..outputs {
            writer.write_field(format!("score_{k}"))?;
        }
    }
    writer.write_record(None::<&[u8]>)?;
    Ok(())
}

/// Where each model feature and each kept column sits in the input.
#[derive(Debug)]
struct Columns {
    /// Input column index per model feature, in model order.
    features: Vec<usize>,
    /// Names of the model's features, for error messages.
    feature_names: Vec<String>,
    /// Input column index per `--keep` column, in the order given.
    keep: Vec<usize>,
    /// Set when the features were taken by position: the notice for stderr
    /// saying which column became which feature.
    positional: Option<String>,
}

impl Columns {
    fn resolve(model: &Model, header: &ByteRecord, keep: &[String]) -> anyhow::Result<Columns> {
        let find = |name: &str| header.iter().position(|h| trim(h) == name.as_bytes());
        let mut keep_idx = Vec::with_capacity(keep.len());
        let mut keep_missing = Vec::new();
        for name in keep {
            match find(name) {
                Some(i) => keep_idx.push(i),
                None => keep_missing.push(name.as_str()),
            }
        }
        if !keep_missing.is_empty() {
            bail!(
                "the input has no column {} named by --keep",
                quote_list(&keep_missing)
            );
        }
        let mut missing = Vec::new();
        let mut features = Vec::with_capacity(model.num_features());
        for name in model.feature_names() {
            match find(name) {
                Some(i) => features.push(i),
                None => missing.push(name.as_str()),
            }
        }
        let mut positional = None;
        if !missing.is_empty() {
            if model.has_feature_names() {
                bail!(
                    "the input has no column {} required by the model",
                    quote_list(&missing)
                );
            }
            features = by_position(model, header, &keep_idx)?;
            positional = Some(positional_notice(model, header, &features));
        }
        Ok(Columns {
            features,
            feature_names: model.feature_names().to_vec(),
            keep: keep_idx,
            positional,
        })
    }
}

/// The columns of a model without feature names, taken by position as
/// xgboost scores an unnamed frame: every column but the kept ones, in
/// order, as many as the model has features.
fn by_position(model: &Model, header: &ByteRecord, keep: &[usize]) -> anyhow::Result<Vec<usize>> {
    let columns: Vec<usize> = (0..header.len()).filter(|i| !keep.contains(i)).collect();
    if columns.len() != model.num_features() {
        bail!(
            "the model has no feature names and the input's header does not name its features \
             {}, so the columns are taken by position: the model has {} features but the input \
             has {} columns (not counting --keep columns)",
            name_range(model.feature_names()),
            model.num_features(),
            columns.len()
        );
    }
    Ok(columns)
}

fn positional_notice(model: &Model, header: &ByteRecord, features: &[usize]) -> String {
    let pairs: Vec<String> = model
        .feature_names()
        .iter()
        .zip(features)
        .map(|(name, &col)| {
            let column = String::from_utf8_lossy(trim(header.get(col).unwrap_or(b"")));
            format!("{name} = {column:?}")
        })
        .collect();
    format!(
        "the model has no feature names: taking its {} features by position from the input's \
         columns ({})",
        features.len(),
        pairs.join(", ")
    )
}

/// `f0..f29`, or the one name.
fn name_range(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [first, .., last] => format!("{first}..{last}"),
    }
}

fn quote_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// A batch of raw records, handed between the reader and the scorer.
#[derive(Debug)]
struct Batch {
    records: Vec<ByteRecord>,
    len: usize,
    bytes_read: u64,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            records: (0..BATCH_ROWS).map(|_| ByteRecord::new()).collect(),
            len: 0,
            bytes_read: 0,
        }
    }
}

fn read_batches<R: Read>(
    mut reader: csv::Reader<R>,
    full: mpsc::SyncSender<anyhow::Result<Batch>>,
    empty: mpsc::Receiver<Batch>,
) {
    for mut batch in empty {
        batch.len = 0;
        let mut done = false;
        while batch.len < BATCH_ROWS {
            match reader.read_byte_record(&mut batch.records[batch.len]) {
                Ok(true) => batch.len += 1,
                Ok(false) => {
                    done = true;
                    break;
                }
                Err(err) => {
                    let _ =
                        full.send(Err(anyhow::Error::new(err).context("cannot read the input")));
                    return;
                }
            }
        }
        batch.bytes_read = reader.position().byte();
        if batch.len > 0 && full.send(Ok(batch)).is_err() {
            return;
        }
        if done {
            return;
        }
    }
}

/// Below this many rows a batch is scored on one thread.
const SPLIT_ROWS: usize = 512;

/// Parses cells into a row-major feature matrix and scores it. Each batch is
/// cut in two halves scored on two threads: parsing and scoring are most of
/// the run, and the reader thread needs far less than a core.
struct Scorer<'a> {
    model: &'a Model,
    columns: &'a Columns,
    halves: [Half; 2],
    text: ryu::Buffer,
}

/// The buffers for one half of a batch.
#[derive(Debug, Default)]
struct Half {
    features: Vec<f64>,
    scores: Vec<f64>,
}

impl Half {
    fn compute(
        &mut self,
        model: &Model,
        columns: &Columns,
        records: &[ByteRecord],
    ) -> anyhow::Result<()> {
        self.features.clear();
        for record in records {
            for (f, &col) in columns.features.iter().enumerate() {
                let cell = record.get(col).unwrap_or(b"");
                match parse_cell(cell) {
                    Some(v) => self.features.push(v),
                    None => {
                        let line = record.position().map_or(0, |p| p.line());
                        bail!(
                            "line {line}, column {:?}: {:?} is not a number",
                            columns.feature_names[f],
                            String::from_utf8_lossy(cell)
                        );
                    }
                }
            }
        }
        self.scores.clear();
        self.scores.resize(records.len() * model.num_outputs(), 0.0);
        model
            .predict_batch(&self.features, &mut self.scores)
            .context("cannot score the input")
    }
}

impl<'a> Scorer<'a> {
    fn new(model: &'a Model, columns: &'a Columns) -> Scorer<'a> {
        Scorer {
            model,
            columns,
            halves: [Half::default(), Half::default()],
            text: ryu::Buffer::new(),
        }
    }

    fn score<W: Write>(&mut self, batch: &Batch, out: &mut csv::Writer<W>) -> anyhow::Result<()> {
        let records = &batch.records[..batch.len];
        let mid = if records.len() < SPLIT_ROWS {
            records.len()
        } else {
            records.len() / 2
        };
        let (first, second) = records.split_at(mid);
        let (model, columns) = (self.model, self.columns);
        let [a, b] = &mut self.halves;
        std::thread::scope(|scope| -> anyhow::Result<()> {
            let other = scope.spawn(|| b.compute(model, columns, second));
            let first_result = a.compute(model, columns, first);
            let second_result = other
                .join()
                .map_err(|_| anyhow::anyhow!("the scoring thread panicked"))?;
            // The earlier line's error first.
            first_result.and(second_result)
        })?;
        let outputs = model.num_outputs();
        for (records, half) in [(first, &self.halves[0]), (second, &self.halves[1])] {
            for (record, scores) in records.iter().zip(half.scores.chunks_exact(outputs)) {
                for &col in &columns.keep {
                    out.write_field(record.get(col).unwrap_or(b""))?;
                }
                for &s in scores {
                    out.write_field(self.text.format(s))?;
                }
                out.write_record(None::<&[u8]>)
                    .context("cannot write the output")?;
            }
        }
        Ok(())
    }
}

/// An empty cell is missing (NaN); anything else must be a number.
fn parse_cell(cell: &[u8]) -> Option<f64> {
    let cell = trim(cell);
    if cell.is_empty() {
        return Some(f64::NAN);
    }
    // Parses the bytes in place (no UTF-8 pass); measurably faster than
    // `str::parse` here, where float parsing is a fifth of the run.
    fast_float2::parse(cell).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_parse_as_numbers_or_missing() {
        assert_eq!(parse_cell(b"1.5"), Some(1.5));
        assert_eq!(parse_cell(b" -2e3 "), Some(-2000.0));
        assert!(parse_cell(b"").is_some_and(f64::is_nan));
        assert!(parse_cell(b"  ").is_some_and(f64::is_nan));
        assert_eq!(parse_cell(b"abc"), None);
        assert_eq!(parse_cell(b"1,5"), None);
    }

    #[test]
    fn format_names_map_to_formats() {
        assert_eq!(parse_format("xgboost").ok(), Some(ModelFormat::XgboostJson));
        assert_eq!(
            parse_format("LightGBM").ok(),
            Some(ModelFormat::LightgbmText)
        );
        assert!(parse_format("onnx").is_err());
    }

    #[test]
    fn name_ranges_show_first_and_last() {
        let names: Vec<String> = (0..30).map(|i| format!("f{i}")).collect();
        assert_eq!(name_range(&names), "f0..f29");
        assert_eq!(name_range(&names[..1]), "f0");
        assert_eq!(name_range(&[]), "");
    }

    #[test]
    fn header_lists_kept_columns_then_scores() {
        let mut w = csv::Writer::from_writer(Vec::new());
        write_header(&mut w, &["id".to_string()], 3).expect("write");
        let text = String::from_utf8(w.into_inner().expect("flush")).expect("utf8");
        assert_eq!(text, "id,score_0,score_1,score_2\n");
    }
}

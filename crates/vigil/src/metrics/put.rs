//! `vigil metrics put`: the PutMetricData body from flags or a file, and
//! the accepted/rejected report.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{PutArgs, parse};
use crate::api_client::{Api, encode};
use crate::table;

/// Reads a JSON file, or stdin for `-`, naming the file in errors.
pub fn read_json(path: &Path) -> anyhow::Result<Value> {
    let (text, name) = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        (text, "stdin".to_owned())
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        (text, path.display().to_string())
    };
    serde_json::from_str(&text).with_context(|| format!("{name} is not valid json"))
}

/// The PutMetricData body of the flag form.
pub(super) fn put_body(args: &PutArgs) -> anyhow::Result<Value> {
    let name = args
        .name
        .as_deref()
        .context("--name is required without --file")?;
    let mut metric = json!({
        "name": name,
        "dimensions": parse::dimensions(&args.dim).map_err(anyhow::Error::msg)?,
    });
    if let Some(unit) = &args.unit {
        metric["unit"] = json!(unit);
    }
    if let Some(t) = &args.timestamp {
        metric["timestamp"] = parse::time(t);
    }
    if let Some(r) = &args.resolution {
        metric["resolution"] = json!(r.parse::<u32>().unwrap_or(60));
    }
    if args.counts.is_some() && args.values.is_none() {
        bail!("--counts goes with --values: one count per value");
    }
    if let Some(v) = args.value {
        metric["value"] = json!(v);
    } else if let Some(values) = &args.values {
        let values = parse::numbers("--values", values).map_err(anyhow::Error::msg)?;
        if let Some(counts) = &args.counts {
            let counts = parse::numbers("--counts", counts).map_err(anyhow::Error::msg)?;
            if counts.len() != values.len() {
                bail!(
                    "--counts has {} numbers but --values has {}: give one count per value",
                    counts.len(),
                    values.len()
                );
            }
            metric["counts"] = json!(counts);
        }
        metric["values"] = json!(values);
    } else if let Some(stats) = &args.stats {
        let stats = parse::numbers("--stats", stats).map_err(anyhow::Error::msg)?;
        let [count, sum, min, max] = stats.as_slice() else {
            bail!(
                "--stats takes 4 numbers COUNT,SUM,MIN,MAX, got {}",
                stats.len()
            );
        };
        metric["stats"] = json!({"count": count, "sum": sum, "min": min, "max": max});
    } else {
        bail!("give one of --value, --values, --stats or --file");
    }
    Ok(json!({ "metrics": [metric] }))
}

#[derive(Debug, Deserialize)]
struct PutAnswer {
    accepted: u64,
    #[serde(default)]
    rejected: Vec<RejectedMetric>,
}

#[derive(Debug, Deserialize)]
struct RejectedMetric {
    index: u64,
    field: String,
    reason: String,
}

pub(super) async fn run_put(api: &Api, args: &PutArgs) -> anyhow::Result<()> {
    let body = match &args.file {
        Some(file) => read_json(file)?,
        None => put_body(args)?,
    };
    let answer = api
        .send(
            hyper::Method::POST,
            &format!("/api/metrics/{}", encode(&args.namespace)),
            Some(serde_json::to_vec(&body)?),
        )
        .await?;
    let answer: PutAnswer =
        serde_json::from_slice(&answer).context("the server's answer is not a put result")?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "accepted {}, rejected {}",
        answer.accepted,
        answer.rejected.len()
    )?;
    if !answer.rejected.is_empty() {
        let rows: Vec<Vec<String>> = answer
            .rejected
            .iter()
            .map(|r| vec![r.index.to_string(), r.field.clone(), r.reason.clone()])
            .collect();
        write!(
            out,
            "{}",
            table::render(&["index", "field", "reason"], &rows)
        )?;
    }
    if answer.accepted == 0 {
        bail!("no metric was accepted");
    }
    Ok(())
}

//! The `vigil` binary: wires the library crates behind a clap CLI.
//!
//! `serve` runs the HTTP server, `predict` scores a CSV file in batch and
//! `bench` is a fixed-rate load generator that corrects for coordinated
//! omission; `inferences`, `metrics` and `alarms` read (and write) the inference log,
//! the metric store and the alarms of a running server through its HTTP
//! API. The work lives in `vigil-model`, `vigil-metrics` and
//! `vigil-server`; this crate only parses flags, sets up the runtime and
//! reports.

mod alarms;
mod api_client;
mod bench;
mod dashboards;
mod inferences;
mod keys;
mod logs;
mod logs_stream;
mod metrics;
mod predict;
mod serve;
mod table;
mod traces;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "vigil",
    version,
    about = "Real-time scoring of XGBoost and LightGBM models, in one binary",
    long_about = "Real-time scoring of XGBoost and LightGBM models, in one binary.\n\n\
        Serve models over HTTP (Open Inference Protocol V2 REST and gRPC, and a plain JSON API), \
        score a CSV file in batch, or load-test a running server.\n\n\
        Examples:\n  \
        vigil serve                                   # demo fraud model on 127.0.0.1:8080\n  \
        vigil predict --model model.json --input tx.csv --output scores.csv\n  \
        vigil bench --rate 1000 --duration 10         # against the local demo server\n  \
        vigil inferences list --limit 20              # the latest logged decisions\n  \
        vigil metrics get InferencePipeline LatencyMs --stat p99\n  \
        vigil alarms list --state ALARM\n  \
        vigil dashboards list                        # what the console at / draws"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Serve(serve::ServeArgs),
    Predict(predict::PredictArgs),
    Bench(bench::BenchArgs),
    Keys(keys::KeysArgs),
    Inferences(inferences::InferencesArgs),
    Metrics(metrics::MetricsArgs),
    Alarms(alarms::AlarmsArgs),
    Dashboards(dashboards::DashboardsArgs),
    Logs(logs::LogsArgs),
    Traces(traces::TracesArgs),
}

/// mimalloc: the logged request path allocates a few dozen small objects
/// across two worker threads; glibc's malloc cost 5-10% of the req/s.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Inferences(args) => inferences::run(args),
        Command::Metrics(args) => metrics::run(args),
        Command::Alarms(args) => alarms::run(args),
        Command::Dashboards(args) => dashboards::run(args),
        Command::Logs(args) => logs::run(args),
        Command::Traces(args) => traces::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! `vigil serve`: bind the listener, load the models, announce, serve until a signal.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use vigil_server::Config;

#[derive(Debug, Args)]
#[command(
    about = "Serve models over HTTP (Open Inference Protocol V2 REST and gRPC, plain JSON)",
    long_about = "Serve models over HTTP: the Open Inference Protocol V2 REST API \
        (/v2/..., JSON or binary tensors), its gRPC service inference.GRPCInferenceService \
        on the same port (HTTP/2), and a plain JSON scoring API (/v1/models/{name}/score).\n\n\
        Models come from a TOML config (--config), from --model NAME=PATH flags, or, \
        with neither, the bundled demo fraud model is served as `fraud`. One JSON line \
        goes to stdout when the server listens, then one per request (the access log); \
        diagnostics go to stderr. Every scoring decision is written to the inference log \
        ([store]: SQLite in ./vigil-data by default, or PostgreSQL) before it is answered; \
        read it with `vigil inferences`. SIGTERM or SIGINT \
        stops accepting, finishes the requests in flight and exits 0.\n\n\
        Examples:\n  \
        vigil serve\n  \
        curl -s localhost:8080/v1/models/fraud/score -H 'content-type: application/json' \\\n    \
        -d '{\"features\": {\"amount\": 950.0}}'\n  \
        vigil serve --model fraud=model.json --listen 0.0.0.0:9000\n  \
        vigil serve --config vigil.toml"
)]
pub struct ServeArgs {
    /// TOML config file. Default: none (the --model flags, or the demo model).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Serve the model file PATH under NAME (repeatable; format detected from
    /// the content). Added to the config's models.
    #[arg(long = "model", value_name = "NAME=PATH", value_parser = parse_model_arg)]
    models: Vec<(String, PathBuf)>,

    /// Address to listen on; port 0 picks a free port (printed at startup).
    /// Default: the config's `listen`, else 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Directory of the inference log (SQLite file and spill queue).
    /// Default: the config's `store.data_dir`, else ./vigil-data.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Threads that handle requests.
    #[arg(
        long,
        value_name = "N",
        env = "VIGIL_WORKER_THREADS",
        default_value_t = 2
    )]
    worker_threads: usize,
}

fn parse_model_arg(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("expected NAME=PATH, got {text:?}")),
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.worker_threads == 0 {
        bail!("--worker-threads must be at least 1");
    }
    init_logging();
    let (config, listen) = build_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener
            .local_addr()
            .context("cannot read the bound address")?;
        let models = model_names(&config);
        vigil_server::serve_with_ready(config, listener, shutdown_signal(), |_| {
            announce(addr, &models);
        })
        .await
    })
}

/// The config from `--config`, plus the `--model` flags, or the demo; and
/// the address to bind.
fn build_config(args: &ServeArgs) -> anyhow::Result<(Config, SocketAddr)> {
    let config = match &args.config {
        None if args.models.is_empty() => Config::demo(),
        None => Config::from_models(args.models.clone()).context("invalid --model")?,
        Some(path) => {
            let mut config = Config::load(path)?;
            if !args.models.is_empty() {
                let extra = Config::from_models(args.models.clone()).context("invalid --model")?;
                for model in extra.models {
                    if config.models.iter().any(|m| m.name == model.name) {
                        bail!("model {:?} is named twice", model.name);
                    }
                    config.models.push(model);
                }
            }
            config
        }
    };
    let mut config = config;
    if let Some(dir) = &args.data_dir {
        config.store.store.data_dir = dir.clone();
    }
    let listen = args.listen.unwrap_or(config.server.listen);
    Ok((config, listen))
}

fn model_names(config: &Config) -> Vec<String> {
    config.models.iter().map(|m| m.name.clone()).collect()
}

/// The one startup line: tests and scripts read the port from it.
fn announce(addr: SocketAddr, models: &[String]) {
    use std::io::Write;
    let line = serde_json::json!({
        "msg": "listening",
        "addr": addr.to_string(),
        "models": models,
    });
    let mut out = std::io::stdout().lock();
    // A closed stdout must not stop the server.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Diagnostics as JSON lines on stderr (and in `/vigil/system`), so stdout
/// carries only the startup line and the access log; `RUST_LOG` filters
/// (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        // stderr, and (with logs on) the same line into /vigil/system.
        .with_writer(vigil_server::system_log::writer)
        .try_init();
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (term, int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(err), _) | (_, Err(err)) => {
            tracing::error!(error = %err, "cannot listen for signals; stop with SIGKILL");
            std::future::pending::<()>().await;
            return;
        }
    };
    let (mut term, mut int) = (term, int);
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
        _ = int.recv() => tracing::info!(signal = "SIGINT", "shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_args_split_on_the_first_equals() {
        assert_eq!(
            parse_model_arg("fraud=m/a=b.json"),
            Ok(("fraud".to_string(), PathBuf::from("m/a=b.json")))
        );
        assert!(parse_model_arg("fraud").is_err());
        assert!(parse_model_arg("=x.json").is_err());
        assert!(parse_model_arg("fraud=").is_err());
    }
}

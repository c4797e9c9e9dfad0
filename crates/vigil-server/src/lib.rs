//! Vigil's HTTP server. The binary wires it; the library crates do the work.

pub mod config;

pub use config::Config;

/// The bundled demo fraud model, served as `fraud` when no config is given.
pub const DEMO_MODEL: &[u8] = b"";

/// Serve `config` on `listener` until `shutdown` resolves, then finish in-flight requests.
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let _ = (config, listener);
    shutdown.await;
    Ok(())
}

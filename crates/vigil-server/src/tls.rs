//! TLS termination with rustls (ring; no OpenSSL), HTTP/1.1 and HTTP/2 by
//! ALPN. The certificate is part of the reloadable runtime: a reload reads
//! `server.tls.cert_path`/`key_path` again and new handshakes use the new
//! certificate; an unreadable pair rejects the reload.
//!
//! Handshakes run on their own tasks (with a deadline) so that one slow
//! client never holds up accepting the others.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::server::TlsStream;

/// Longest a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const READY_QUEUE: usize = 128;

/// Read a PEM certificate chain and private key into a signing pair.
pub fn load_certified_key(cert_path: &Path, key_path: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| anyhow::anyhow!("{err}"))
        .with_context(|| {
            format!(
                "server.tls.cert_path: cannot read certificates from {}",
                cert_path.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "server.tls.cert_path: no certificate in {}",
            cert_path.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|err| anyhow::anyhow!("{err}"))
        .with_context(|| {
            format!(
                "server.tls.key_path: cannot read a private key from {}",
                key_path.display()
            )
        })?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|err| anyhow::anyhow!("server.tls.key_path: unsupported private key: {err}"))?;
    let certified = CertifiedKey::new(certs, signing_key);
    certified.keys_match().map_err(|err| {
        anyhow::anyhow!("server.tls: the key does not match the certificate: {err}")
    })?;
    Ok(Arc::new(certified))
}

/// Where each handshake gets its certificate: the gateway's current runtime,
/// so a reload changes it for new connections.
pub trait CertificateSource: Send + Sync + std::fmt::Debug {
    /// The certificate to present now.
    fn current_certificate(&self) -> Option<Arc<CertifiedKey>>;
}

/// Hands every handshake the source's current certificate.
#[derive(Debug)]
struct CurrentCertificate(Arc<dyn CertificateSource>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.current_certificate()
    }
}

/// The rustls server config: TLS 1.2 and 1.3, `h2` and `http/1.1` by ALPN.
fn server_config(
    certificates: Arc<dyn CertificateSource>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("tls protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(CurrentCertificate(certificates)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener that yields finished TLS connections.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor_task: JoinHandle<()>,
}

impl TlsListener {
    /// Terminate TLS on `listener` with the certificate `certificates`
    /// holds at each handshake (the gateway, in the server).
    pub fn new(
        listener: TcpListener,
        certificates: Arc<dyn CertificateSource>,
    ) -> anyhow::Result<TlsListener> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(server_config(certificates)?);
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let acceptor_task = tokio::spawn(accept_loop(listener, acceptor, tx));
        Ok(TlsListener {
            ready,
            local,
            acceptor_task,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off, do not spin.
                tracing::warn!(error = %err, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send((stream, addr)).await;
                }
                Ok(Err(err)) => tracing::debug!(%addr, error = %err, "tls handshake failed"),
                Err(_) => tracing::debug!(%addr, "tls handshake timed out"),
            }
        });
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

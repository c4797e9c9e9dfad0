//! The CLI's HTTP client for a running server's API (`vigil inferences`,
//! `vigil metrics`, `vigil alarms`): http or https with the system's
//! trusted roots plus `--ca-cert`, an optional bearer key, and the server's
//! JSON error message in the error when it answers non-2xx.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Where the server is and how to authenticate (flattened into each
/// command that talks to one).
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The server's base URL, `http://` or `https://`.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,

    /// API key with the admin role (sent as `Authorization: Bearer KEY`).
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        env = "VIGIL_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,

    /// PEM certificate(s) to trust for an `https://` URL, besides the
    /// system's trusted roots: the server's own certificate when it is
    /// self-signed, or the private CA that signed it.
    #[arg(long, global = true, value_name = "FILE", env = "VIGIL_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

impl ServerArgs {
    /// A client for this server.
    pub fn api(&self) -> anyhow::Result<Api> {
        Api::new(&self.url, self.api_key.clone(), self.ca_cert.as_deref())
    }

    /// Runs one command against this server on a single-threaded runtime.
    pub fn block_on<F, Fut>(&self, command: F) -> anyhow::Result<()>
    where
        F: FnOnce(Api) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the runtime")?;
        let api = self.api()?;
        runtime.block_on(command(api))
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The server's API.
#[derive(Debug)]
pub struct Api {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    api_key: Option<String>,
}

impl Api {
    /// A client for `url`.
    pub fn new(url: &str, api_key: Option<String>, ca_cert: Option<&Path>) -> anyhow::Result<Api> {
        let uri: hyper::Uri = url
            .parse()
            .with_context(|| format!("invalid --url {url:?}"))?;
        let roots = match uri.scheme_str() {
            Some("https") => trusted_roots(ca_cert)?,
            // An http:// URL never makes a handshake; the connector still
            // takes a TLS config.
            Some("http") => RootCertStore::empty(),
            _ => bail!("--url must start with http:// or https://, not {url:?}"),
        };
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("tls protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Api {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base: url.trim_end_matches('/').to_owned(),
            api_key,
        })
    }

    /// `GET path`; the body of a 2xx answer.
    pub async fn get(&self, path: &str) -> anyhow::Result<Bytes> {
        self.send(hyper::Method::GET, path, None).await
    }

    /// `GET path`, for an answer read as it comes (JSON lines, server-sent
    /// events): the headers and the open body of a 2xx answer.
    pub async fn open(
        &self,
        path: &str,
    ) -> anyhow::Result<(hyper::HeaderMap, hyper::body::Incoming)> {
        let response = self.request(hyper::Method::GET, path, None).await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.into_body().collect().await?.to_bytes();
            bail!("the server answered {status}: {}", error_message(&body));
        }
        let (parts, body) = response.into_parts();
        Ok((parts.headers, body))
    }

    async fn request(
        &self,
        method: hyper::Method,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
        let uri: hyper::Uri = format!("{}{path}", self.base)
            .parse()
            .context("invalid request url")?;
        let mut request = hyper::Request::builder().method(method).uri(uri);
        if let Some(key) = &self.api_key {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {key}"));
        }
        if json.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(Bytes::from(json.unwrap_or_default())))?;
        self.client
            .request(request)
            .await
            .with_context(|| format!("cannot reach {}", self.base))
    }

    /// `method path` with an optional JSON body; the body of a 2xx answer.
    pub async fn send(
        &self,
        method: hyper::Method,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> anyhow::Result<Bytes> {
        let response = self.request(method, path, json).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("the server answered {status}: {}", error_message(&body));
        }
        Ok(body)
    }
}

/// The `error` of a JSON error body, or the body as text.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

/// The certificates an `https://` URL is checked against: the system's
/// trusted roots plus `--ca-cert`.
fn trusted_roots(ca_cert: Option<&Path>) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    // A system certificate that does not parse is skipped, as browsers do.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_cert {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|err| anyhow::anyhow!("{err}"))
            .with_context(|| format!("--ca-cert: cannot read {}", path.display()))?;
        if certs.is_empty() {
            bail!("--ca-cert: no PEM certificate in {}", path.display());
        }
        for cert in certs {
            roots
                .add(cert)
                .with_context(|| format!("--ca-cert: a certificate in {}", path.display()))?;
        }
    }
    if roots.is_empty() {
        bail!(
            "no trusted certificates for https: the system has none (install the \
             ca-certificates package) and no --ca-cert was given"
        );
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_values_are_percent_encoded() {
        assert_eq!(encode("batch-7#3"), "batch-7%233");
        assert_eq!(
            encode("2026-11-23T00:00:00+01:00"),
            "2026-11-23T00%3A00%3A00%2B01%3A00"
        );
        assert_eq!(encode("é"), "%C3%A9");
    }
}

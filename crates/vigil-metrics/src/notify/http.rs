//! The HTTP(S) client of the webhook and Alertmanager targets (and of the
//! log subscriptions' destinations): hyper with rustls (ring) and the
//! system's trusted roots, as the CLI's.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::retry::SendError;

/// Bytes of an error answer kept for the log.
const ERROR_BODY_BYTES: usize = 512;
/// Answers longer than this are not read to the end.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A POST client: one connection pool, shared by clones.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpClient {
    /// A client whose TCP connect (and TLS handshake) gives up after
    /// `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> HttpClient {
        let mut roots = RootCertStore::empty();
        // A system certificate that does not parse is skipped, as browsers do.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports rustls's safe default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        HttpClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// POSTs `body` as JSON; a 2xx answer is success.
    pub async fn post_json(
        &self,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<(), SendError> {
        self.post(uri, "application/json", headers, body).await
    }

    /// POSTs `body` with `content_type`; a 2xx answer is success, any other
    /// is [`SendError::Status`] with the start of the answer.
    pub async fn post(
        &self,
        uri: &Uri,
        content_type: &'static str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<(), SendError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri.clone())
            .header(CONTENT_TYPE, content_type)
            .header(USER_AGENT, concat!("vigil/", env!("CARGO_PKG_VERSION")));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|err| SendError::Invalid {
                field: "request",
                message: err.to_string(),
            })?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|err| SendError::Connect(error_chain(&err)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Read the answer so the connection can be reused; a broken or huge
        // one does not change the outcome the status gave.
        let answer = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        let end = answer.len().min(ERROR_BODY_BYTES);
        Err(SendError::Status {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&answer[..end]).into_owned(),
            retry_after,
        })
    }
}

/// An http(s) URL with a host, or why not. The message leaves the URL out:
/// webhook URLs often carry a token, and errors go to the log.
pub fn parse_url(field: &'static str, url: &str) -> Result<Uri, SendError> {
    let invalid = |message: String| SendError::Invalid { field, message };
    let uri: Uri = url
        .parse()
        .map_err(|err| invalid(format!("expected an http(s) url ({err})")))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some_and(|h| !h.is_empty()) => Ok(uri),
        other => Err(invalid(format!(
            "expected an http:// or https:// url with a host, got scheme {:?}",
            other.unwrap_or("")
        ))),
    }
}

/// hyper-util's error says "client error (Connect)"; the cause says why.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host() {
        assert!(parse_url("webhook url", "https://hooks.example.com/x?y=1").is_ok());
        assert!(parse_url("webhook url", "http://127.0.0.1:9093").is_ok());
        for bad in [
            "ftp://example.com/",
            "/relative",
            "example.com",
            "http://",
            "",
        ] {
            let err = parse_url("webhook url", bad).err();
            assert!(
                matches!(
                    err,
                    Some(SendError::Invalid {
                        field: "webhook url",
                        ..
                    })
                ),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn errors_leave_the_url_out() {
        let err = parse_url("webhook url", "ftp://hooks.example.com/T0KEN").err();
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("got scheme \"ftp\""), "{message}");
        assert!(!message.contains("T0KEN"), "{message}");
    }
}

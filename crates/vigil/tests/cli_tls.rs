//! Black-box test of `vigil inferences` against a server that serves HTTPS
//! with a self-signed certificate: trusted with `--ca-cert`, refused without.

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use common::{Serve, cli, score_body, workspace};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A self-signed certificate for `localhost`, written as `cert.pem` and
/// `key.pem`, and a config serving the demo model over HTTPS with it.
fn tls_config(dir: &std::path::Path) -> std::path::PathBuf {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).expect("write cert");
    std::fs::write(dir.join("key.pem"), made.key_pair.serialize_pem()).expect("write key");
    let model = workspace().join("crates/vigil-server/assets/demo-fraud.json");
    let config = format!(
        "[server.tls]\ncert_path = \"cert.pem\"\nkey_path = \"key.pem\"\n\n\
         [[models]]\nname = \"fraud\"\npath = {:?}\n",
        model.display().to_string()
    );
    let path = dir.join("vigil.toml");
    std::fs::write(&path, config).expect("write config");
    path
}

/// One scoring request over TLS, trusting only `cert`; returns the body.
fn score_over_tls(addr: &str, cert: &std::path::Path, body: &str) -> String {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).expect("read cert") {
        roots.add(c.expect("cert")).expect("add cert");
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("name");
    let conn = ClientConnection::new(Arc::new(config), name).expect("tls client");
    let mut tls = StreamOwned::new(conn, TcpStream::connect(addr).expect("connect"));
    let request = format!(
        "POST /v1/models/fraud/score HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).expect("send");
    let mut raw = String::new();
    // The server may close without a TLS close_notify after the answer.
    let _ = tls.read_to_string(&mut raw);
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

#[test]
fn the_cli_reads_the_log_over_https_when_it_trusts_the_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = tls_config(dir.path());
    let data = dir.path().join("data");
    let server = Serve::start(&[
        OsStr::new("--config"),
        config.as_os_str(),
        OsStr::new("--data-dir"),
        data.as_os_str(),
    ]);
    let port = server.addr.rsplit(':').next().expect("port");
    let cert = dir.path().join("cert.pem");
    let answer = score_over_tls(&server.addr, &cert, &score_body("tls-1", 420.0));
    let score = serde_json::from_str::<serde_json::Value>(&answer).expect("json")["score"]
        .as_f64()
        .expect("score");

    let url = format!("https://localhost:{port}");
    let cert_arg = cert.to_str().expect("utf-8 path");
    let (ok, out, err) = cli(&[
        "inferences",
        "--url",
        &url,
        "--ca-cert",
        cert_arg,
        "get",
        "tls-1",
    ]);
    assert!(ok, "{err}");
    let value: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(value["records"][0]["scores"][0].as_f64(), Some(score));

    // Without the certificate the server is not trusted, and the error says why.
    let (ok, _, err) = cli(&["inferences", "--url", &url, "get", "tls-1"]);
    assert!(!ok);
    assert!(err.contains("certificate"), "{err}");

    // A file that holds no certificate is named.
    let (ok, _, err) = cli(&[
        "inferences",
        "--url",
        &url,
        "--ca-cert",
        config.to_str().expect("utf-8 path"),
        "get",
        "tls-1",
    ]);
    assert!(!ok);
    assert!(
        err.contains("--ca-cert") && err.contains("vigil.toml"),
        "{err}"
    );
}

//! TLS: HTTPS with a certificate made at test time, HTTP/2 and HTTP/1.1 by
//! ALPN, and a new certificate picked up by a reload.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

struct Pair {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn make_pair() -> Pair {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
    Pair {
        cert_pem: made.cert.pem(),
        key_pem: made.key_pair.serialize_pem(),
        der: made.cert.der().clone(),
    }
}

fn connector(trusted: &[&Pair], alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for pair in trusted {
        roots.add(pair.der.clone()).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// Connect, and return the ALPN protocol and the server's certificate.
async fn handshake(
    addr: std::net::SocketAddr,
    connector: &TlsConnector,
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Option<Vec<u8>>,
    Vec<u8>,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let stream = connector.connect(name, tcp).await.expect("tls handshake");
    let (_, session) = stream.get_ref();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let cert = session.peer_certificates().expect("certificate")[0].to_vec();
    (stream, alpn, cert)
}

#[tokio::test]
async fn serves_https_and_reloads_the_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let first = make_pair();
    std::fs::write(&cert_path, &first.cert_pem).expect("write");
    std::fs::write(&key_path, &first.key_pem).expect("write");

    let mut config = vigil_server::Config::demo();
    config.server.access_log = false;
    config.server.tls = Some(vigil_server::TlsConfig {
        cert_path: cert_path.clone(),
        key_path: key_path.clone(),
    });
    let state = vigil_server::AppState::from_config(&config).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let listener =
        vigil_server::tls::TlsListener::new(listener, state.gateway().clone()).expect("tls");
    let server = tokio::spawn(async move {
        axum::serve(listener, vigil_server::app(state.clone()))
            .await
            .expect("serve");
    });
    let _ = &server;

    // HTTP/2 is offered by ALPN.
    let (_, alpn, cert) = handshake(addr, &connector(&[&first], &[b"h2", b"http/1.1"])).await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(cert, first.der.to_vec());

    // HTTP/1.1 over TLS answers.
    let (mut stream, alpn, _) = handshake(addr, &connector(&[&first], &[b"http/1.1"])).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    stream
        .write_all(b"GET /v2/health/live HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");

    // A client that does not trust the certificate is refused.
    let stranger = make_pair();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let refused = connector(&[&stranger], &[b"http/1.1"])
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn a_reload_picks_up_a_new_certificate_and_a_broken_one_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let first = make_pair();
    std::fs::write(&cert_path, &first.cert_pem).expect("write");
    std::fs::write(&key_path, &first.key_pem).expect("write");
    let mut config = vigil_server::Config::demo();
    config.server.tls = Some(vigil_server::TlsConfig {
        cert_path: cert_path.clone(),
        key_path: key_path.clone(),
    });
    let state = vigil_server::AppState::from_config(&config).expect("state");
    let gateway = Arc::clone(state.gateway());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let listener = vigil_server::tls::TlsListener::new(listener, gateway.clone()).expect("tls");
    tokio::spawn(async move {
        let _ = axum::serve(listener, vigil_server::app(state)).await;
    });

    let second = make_pair();
    let both = connector(&[&first, &second], &[b"http/1.1"]);
    assert_eq!(handshake(addr, &both).await.2, first.der.to_vec());
    std::fs::write(&cert_path, &second.cert_pem).expect("write");
    std::fs::write(&key_path, &second.key_pem).expect("write");
    gateway.reload().await.expect("reload");
    assert_eq!(handshake(addr, &both).await.2, second.der.to_vec());

    // A key that does not match the certificate rejects the reload.
    std::fs::write(&key_path, &first.key_pem).expect("write");
    let err = format!("{:#}", gateway.reload().await.expect_err("mismatch"));
    assert!(err.contains("server.tls"), "{err}");
    assert_eq!(handshake(addr, &both).await.2, second.der.to_vec());
}

//! `serve` over a real socket: answers, then stops cleanly on shutdown.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

#[tokio::test]
async fn serves_the_demo_model_and_shuts_down_gracefully() {
    let mut config = vigil_server::Config::demo();
    config.server.access_log = false;
    let data = tempfile::tempdir().expect("tempdir");
    config.store.store.data_dir = data.path().to_path_buf();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(vigil_server::serve(config, listener, async {
        let _ = stopped.await;
    }));

    let response = get(addr, "/v2/models/fraud").await;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("\"platform\":\"xgboost\""), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("x-request-id: "),
        "{response}"
    );

    stop.send(()).expect("server still running");
    let result = tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("stops within 5 s")
        .expect("task did not panic");
    assert!(result.is_ok(), "{result:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting"
    );
}

#[tokio::test]
async fn a_bad_model_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.json");
    std::fs::write(&path, "{\"learner\": 1}").expect("write");
    let config = vigil_server::Config::from_models(vec![("broken".into(), path.clone())])
        .expect("valid config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let err = vigil_server::serve(config, listener, async {})
        .await
        .expect_err("cannot serve a broken model");
    let text = format!("{err:#}");
    assert!(text.contains("model `broken`"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
}

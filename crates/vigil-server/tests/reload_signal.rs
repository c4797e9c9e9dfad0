//! `SIGHUP` reloads the config file of a running `serve` (its own test
//! binary, so the signal reaches no other test).

#![cfg(unix)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

fn write_config(dir: &std::path::Path, version: &str) -> std::path::PathBuf {
    let path = dir.join("vigil.toml");
    let text = format!(
        "[server]\naccess_log = false\n\n[[models]]\nname = \"fraud\"\npath = \"demo.json\"\nversion = \"{version}\"\n\n\
         [store]\ndata_dir = \"data\"\n"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

#[tokio::test]
async fn sighup_reloads_the_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("demo.json"), vigil_server::DEMO_MODEL).expect("model");
    let path = write_config(dir.path(), "1");
    let config = vigil_server::Config::load(&path).expect("valid");
    // Our own SIGHUP listener keeps the default action (exit) away even
    // before the server's listener is installed.
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .expect("signal handler");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(vigil_server::serve(config, listener, async {
        let _ = stopped.await;
    }));
    let response = get(addr, "/v2/models/fraud").await;
    assert!(response.contains("\"versions\":[\"1\"]"), "{response}");

    write_config(dir.path(), "2");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        hangups.recv().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let response = get(addr, "/v2/models/fraud").await;
        if response.contains("\"versions\":[\"2\"]") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not reloaded: {response}"
        );
    }

    // A broken file is rejected; the running config keeps serving.
    std::fs::write(&path, "[[models]]\nname = \"fraud\"\n").expect("write");
    std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill");
    hangups.recv().await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let response = get(addr, "/v2/models/fraud").await;
    assert!(response.contains("\"versions\":[\"2\"]"), "{response}");

    stop.send(()).expect("server still running");
    let result = tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("stops within 5 s")
        .expect("task did not panic");
    assert!(result.is_ok(), "{result:?}");
}

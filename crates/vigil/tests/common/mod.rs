//! Helpers shared by the black-box tests.
#![allow(dead_code)]

pub mod logged;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One HTTP/1.1 request with `Connection: close`; returns status and body.
pub fn http(addr: &str, method: &str, path: &str, json: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set timeout");
    let body = json.unwrap_or("");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if json.is_some() {
        request.push_str("Content-Type: application/json\r\n");
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {text:?}"));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// Wait for the child to exit; kill it after `limit`. Returns its exit code.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A response with its headers (names lowercased).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first header with this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Like [`http`], with the headers; `Err` when the connection fails (the
/// server is gone), so load generators can stop instead of panicking.
pub fn try_http(
    addr: &str,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = json.unwrap_or("");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if json.is_some() {
        request.push_str("Content-Type: application/json\r\n");
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let broken = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated response");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(broken)?;
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(broken)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        // A response cut short by a killed server is not a response.
        if length.is_some_and(|len| len != body.len()) {
            return Err(broken());
        }
        body.to_string()
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Spawn `vigil serve --listen 127.0.0.1:0 ARGS...` and return it with its
/// JSON listening line; stdout (the access log) is drained on a thread so
/// the server never blocks on it.
#[allow(dead_code)] // each test binary uses its own subset of this module
pub fn launch(args: &[&std::ffi::OsStr]) -> (Child, serde_json::Value) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn vigil serve");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if value["msg"] == "listening"
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(value);
            }
        }
    });
    let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) else {
        let _ = child.kill();
        panic!("vigil serve printed no listening line within 20 s");
    };
    (child, line)
}

/// A running `vigil serve` on port 0 with its own data directory argument;
/// killed (SIGKILL) when dropped.
pub struct Serve {
    pub child: Child,
    pub addr: String,
}

impl Serve {
    /// Start `vigil serve --listen 127.0.0.1:0 ARGS...` and wait for its
    /// listening line.
    pub fn start(args: &[&std::ffi::OsStr]) -> Serve {
        let (child, line) = launch(args);
        let addr = line["addr"].as_str().unwrap_or_default().to_owned();
        Serve { child, addr }
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        wait_exit(&mut self.child, Duration::from_secs(10))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `dir/vigil.toml` for the tracing tests and returns its path: the
/// demo model, the access log off, `extra` (more sections or sampling
/// rules), then every scoring request sampled and none of the admin API's
/// (so the service map's `client` → `vigil` edge counts the scoring
/// requests alone).
pub fn traced_config(dir: &std::path::Path, extra: &str) -> PathBuf {
    let model = workspace().join("crates/vigil-server/assets/demo-fraud.json");
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\naccess_log = false\n\n[[models]]\nname = \"fraud\"\npath = \"{}\"\n\n{extra}\n\n\
             [[traces.sampling_rules]]\nname = \"Default\"\nreservoir = 0\nfixed_rate = 1.0\n\n\
             [[traces.sampling_rules]]\nname = \"no-admin\"\npriority = 1\nreservoir = 0\nfixed_rate = 0.0\nurl_path = \"/api/*\"\n",
            model.display()
        ),
    )
    .expect("test setup");
    config
}

/// A new, empty database on the PostgreSQL server of `base`, named
/// `{prefix}_{pid}_{nanos}` (unique per run); its URL.
pub fn fresh_database(base: &str, prefix: &str) -> String {
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() % 1_000_000_000)
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test setup");
    runtime.block_on(async {
        let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
            .await
            .expect("connect to VIGIL_TEST_POSTGRES_URL");
        let driver = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        drop(client);
        let _ = driver.await;
    });
    vigil_store::postgres::url_with_database(base, &name)
}

/// A demo-model scoring body with id `id` and `amount`.
pub fn score_body(id: &str, amount: f64) -> String {
    format!(
        r#"{{"id": "{id}", "features": {{"amount": {amount}, "merchant_category": 5, "hour": 3, "card_age_days": 12,
        "tx_last_hour": 4, "distance_from_home_km": 800, "foreign": 1, "new_device": 1}}}}"#
    )
}

/// Runs `vigil ARGS` without the API key and CA variables of the caller's
/// environment; returns success, stdout and stderr.
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .env_remove("VIGIL_API_KEY")
        .env_remove("VIGIL_CA_CERT")
        .output()
        .expect("run vigil");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `vigil ARGS --url http://ADDR` against `server`: success, stdout, stderr.
pub fn run(server: &Serve, args: &[&str]) -> (bool, String, String) {
    let url = format!("http://{}", server.addr);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--url", &url]);
    cli(&all)
}

/// [`run`], which must succeed: its stdout.
pub fn ok(server: &Serve, args: &[&str]) -> String {
    let (success, stdout, stderr) = run(server, args);
    assert!(success, "vigil {args:?} failed: {stderr}");
    stdout
}

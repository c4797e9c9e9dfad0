//! A PostgreSQL outage under load: the store talks to the server through a
//! TCP proxy that the test cuts (resetting live connections and refusing
//! new ones) and restores. Every append acknowledged during the run must be
//! in the database afterwards, exactly once, with its exact scores.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use vigil_store::{AppendOutcome, InferenceLog, InferenceRecord, Store};

/// Forwards 127.0.0.1:<port> to `upstream` while `up` is true; going down
/// closes every live connection.
async fn proxy(upstream: String, up: watch::Receiver<bool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            // Without this, Nagle plus delayed ACKs stall each round trip by ~40 ms.
            let _ = client.set_nodelay(true);
            if !*up.borrow() {
                drop(client);
                continue;
            }
            let upstream = upstream.clone();
            let mut up = up.clone();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = server.set_nodelay(true);
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = up.wait_for(|u| !*u) => {}
                }
            });
        }
    });
    port
}

fn record(id: u64) -> InferenceRecord {
    let input = match json!({"amount": id as f64 * 1.5, "country": "FR"}) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    let mut r = InferenceRecord::new(format!("o-{id}"), id as i64, "fraud", "v1", input);
    r.scores = vec![(id as f64).sqrt() / 100.0];
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs VIGIL_TEST_POSTGRES_URL (started by .ci/run)"]
async fn postgres_outage_under_load_loses_nothing_acknowledged() {
    let h = support::postgres_harness().await;
    let url = h.config.url.clone().unwrap();
    let pg: tokio_postgres::Config = url.parse().unwrap();
    let (host, port) = match (pg.get_hosts().first(), pg.get_ports().first()) {
        (Some(tokio_postgres::config::Host::Tcp(host)), Some(port)) => (host.clone(), *port),
        _ => panic!("VIGIL_TEST_POSTGRES_URL must name a TCP host and port"),
    };
    let (up_tx, up_rx) = watch::channel(true);
    let proxy_port = proxy(format!("{host}:{port}"), up_rx).await;

    let mut config = h.config.clone();
    config.url = Some(url.replacen(&format!(":{port}/"), &format!(":{proxy_port}/"), 1));
    config.spill_replay_interval_ms = 100;
    config.connect_timeout_ms = 500;
    let store = Store::open(&config).await.unwrap();

    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (store, next, stop) = (Arc::clone(&store), Arc::clone(&next), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut spilled = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = record(next.fetch_add(1, Ordering::Relaxed));
                match store.append(r.clone()).await {
                    Ok(AppendOutcome::Inserted) => acked.push(r),
                    Ok(AppendOutcome::Spilled) => {
                        spilled += 1;
                        acked.push(r);
                    }
                    Ok(other) => panic!("unexpected outcome {other:?}"),
                    // Not acknowledged: the client would have seen a 503.
                    Err(err) => assert_eq!(err.code(), vigil_store::ErrorCode::Unavailable),
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (acked, spilled)
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    up_tx.send(false).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    up_tx.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);

    let mut acked: HashMap<String, InferenceRecord> = HashMap::new();
    let mut spilled = 0;
    for w in workers {
        let (records, s) = w.await.unwrap();
        spilled += s;
        for r in records {
            assert!(
                acked.insert(r.request_id.clone(), r).is_none(),
                "id acked twice"
            );
        }
    }
    assert!(spilled > 0, "the outage never reached the store");

    let deadline = Instant::now() + Duration::from_secs(20);
    while store.is_degraded() || store.spill_bytes() > 0 {
        assert!(Instant::now() < deadline, "spill was never replayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Read back through a direct connection, not the proxy.
    let direct = Store::open(&h.config).await.unwrap();
    let stored = support::read_all(direct.as_ref()).await;
    for (id, r) in &acked {
        let s = stored
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged {id} is missing"));
        assert_eq!(s.scores, r.scores);
        assert_eq!(s.input, r.input);
    }
    let stats = store.stats_snapshot();
    assert_eq!(stats.records_unspilled, spilled);
    eprintln!(
        "outage: {} acknowledged, {spilled} spilled and replayed, {} stored",
        acked.len(),
        stored.len()
    );
    store.shutdown().await;
    direct.shutdown().await;
}

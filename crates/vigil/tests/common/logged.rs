//! Load and checks for the inference-log tests: client threads that keep
//! the acknowledged answers, and the checks that each one is logged.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{http, score_body, try_http};

/// The demo model's scoring route.
pub const SCORE: &str = "/v1/models/fraud/score";

/// Client threads send unique ids until `stop`; returns every id that got
/// a complete 200 with its score.
pub fn load(
    addr: &str,
    threads: usize,
    prefix: &str,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<(String, f64, Instant)>>> {
    let next = Arc::new(AtomicU64::new(0));
    (0..threads)
        .map(|_| {
            let (addr, prefix) = (addr.to_owned(), prefix.to_owned());
            let (next, stop) = (Arc::clone(&next), Arc::clone(stop));
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let id = format!("{prefix}-{n}");
                    let body = score_body(&id, 10.0 + n as f64 * 0.37);
                    match try_http(&addr, "POST", SCORE, Some(&body)) {
                        Ok(reply) if reply.status == 200 => {
                            let value: serde_json::Value =
                                serde_json::from_str(&reply.body).expect("json answer");
                            let score = value["score"].as_f64().expect("score");
                            acked.push((id, score, Instant::now()));
                        }
                        // Refused or cut by the kill: not acknowledged.
                        Ok(_) | Err(_) => {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
                acked
            })
        })
        .collect()
}

/// Every acknowledged id is logged exactly once with its exact score.
pub fn assert_all_logged(addr: &str, acked: &HashMap<String, f64>) {
    for (id, score) in acked {
        let path = format!("/api/inferences/{id}");
        let (status, body) = http(addr, "GET", &path, None);
        assert_eq!(status, 200, "acknowledged id {id} is missing: {body}");
        let value: serde_json::Value = serde_json::from_str(&body).expect("json");
        let records = value["records"].as_array().expect("records");
        assert_eq!(
            records.len(),
            1,
            "id {id} is logged {} times",
            records.len()
        );
        assert_eq!(
            records[0]["scores"][0].as_f64(),
            Some(*score),
            "id {id}: logged score differs from the acknowledged one"
        );
    }
}

pub fn count_logged(addr: &str) -> usize {
    try_count_logged(addr).expect("the read api answers")
}

/// The number of logged records, `None` while the read API fails.
pub fn try_count_logged(addr: &str) -> Option<usize> {
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/inferences?limit=1000&cursor={c}"),
            None => "/api/inferences?limit=1000".to_owned(),
        };
        let reply = try_http(addr, "GET", &path, None).ok()?;
        if reply.status != 200 {
            eprintln!("read api: {} {}", reply.status, reply.body);
            return None;
        }
        let value: serde_json::Value = serde_json::from_str(&reply.body).ok()?;
        count += value["records"].as_array().map_or(0, Vec::len);
        match value["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Some(count),
        }
    }
}

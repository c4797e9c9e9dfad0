//! `vigil keys create` end to end: a fresh key each time, and a block whose
//! hash is the key's.

use std::process::Command;

fn create(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["keys", "create"])
        .args(args)
        .output()
        .expect("run vigil");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("utf8")
}

fn key_of(out: &str) -> &str {
    out.lines()
        .find_map(|line| line.strip_prefix("# vgl_").map(|_| &line[2..]))
        .expect("key line")
}

#[test]
fn prints_a_new_key_and_its_hash() {
    let a = create(&["checkout"]);
    let b = create(&["checkout", "--role", "admin"]);
    assert_ne!(key_of(&a), key_of(&b));
    let hash = vigil_server::gateway::hash_key(key_of(&a));
    assert!(a.contains(&format!("hash = \"{hash}\"")), "{a}");
    assert!(a.contains("roles = [\"score\"]"), "{a}");
    assert!(b.contains("roles = [\"admin\"]"), "{b}");
}

#[test]
fn refuses_a_bad_name() {
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["keys", "create", "bad name"])
        .output()
        .expect("run vigil");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("key name must be"), "{stderr}");
}

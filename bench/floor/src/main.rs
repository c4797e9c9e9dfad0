//! Bare axum endpoint: the machine's HTTP floor for `bench/run.sh`.
fn main() {}

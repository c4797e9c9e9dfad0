//! Placeholder until the service map lands in this branch.
fn main() {}

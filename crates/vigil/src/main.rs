//! The `vigil` binary: wires the library crates behind a clap CLI.

fn main() -> anyhow::Result<()> {
    Ok(())
}

//! `vigil keys create`: make a new API key, print it once with the
//! `[[keys]]` block to paste into the config (which holds only its hash).

use std::fmt::Write as _;

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use vigil_server::gateway::hash_key;
use vigil_server::gateway::keys::generate_key;

#[derive(Debug, Args)]
#[command(about = "Manage API keys for the gateway")]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a new random key; prints it once, and the `[[keys]]` block to paste
    /// into the config (only the key's SHA-256 goes there).
    #[command(
        long_about = "Make a new random key; prints it once, and the [[keys]] block \
        to paste into the config. Only the key's SHA-256 goes into the config, so the key \
        cannot be shown again: give it to the client now.\n\n\
        Example:\n  vigil keys create checkout --model fraud --rate-per-s 200"
    )]
    Create(CreateArgs),
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The key's name, logged with every request it makes (letters, digits, `_`, `-`).
    name: String,
    /// `score` for the model endpoints; `admin` for the admin API as well.
    #[arg(long, value_enum, default_value = "score")]
    role: Role,
    /// A model the key may use (repeatable); every model when not given.
    #[arg(long = "model", value_name = "NAME")]
    models: Vec<String>,
    /// The key's own rate limit, requests per second.
    #[arg(long, value_name = "N")]
    rate_per_s: Option<f64>,
    /// Burst of the key's rate limit (needs --rate-per-s).
    #[arg(long, value_name = "N", requires = "rate_per_s")]
    burst: Option<u32>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Role {
    Score,
    Admin,
}

/// Run `vigil keys ...`.
pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Create(args) => {
            let key = generate_key().map_err(|err| anyhow::anyhow!("no os randomness: {err}"))?;
            print!("{}", create(&args, &key)?);
            Ok(())
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The text `keys create` prints for `key`.
fn create(args: &CreateArgs, key: &str) -> anyhow::Result<String> {
    if !valid_name(&args.name) {
        bail!(
            "key name must be made of a-z, A-Z, 0-9, `_` and `-`, got `{}`",
            args.name
        );
    }
    if let Some(model) = args.models.iter().find(|m| !valid_name(m)) {
        bail!("model name must be made of a-z, A-Z, 0-9, `_` and `-`, got `{model}`");
    }
    if let Some(rate) = args.rate_per_s
        && !(rate.is_finite() && rate > 0.0 && rate <= 1e9)
    {
        bail!("--rate-per-s must be above 0 and at most 1e9, got {rate}");
    }
    if args.burst == Some(0) {
        bail!("--burst must be at least 1");
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# api key `{}` (shown once; the config holds only its hash):\n# {key}\n",
        args.name
    );
    let _ = writeln!(
        out,
        "[[keys]]\nname = \"{}\"\nhash = \"{}\"",
        args.name,
        hash_key(key)
    );
    let role = match args.role {
        Role::Score => "score",
        Role::Admin => "admin",
    };
    let _ = writeln!(out, "roles = [\"{role}\"]");
    if let Some(rate) = args.rate_per_s {
        let _ = writeln!(out, "rate_per_s = {rate:?}");
    }
    if let Some(burst) = args.burst {
        let _ = writeln!(out, "burst = {burst}");
    }
    if !args.models.is_empty() {
        let names: Vec<String> = args.models.iter().map(|m| format!("\"{m}\"")).collect();
        let _ = writeln!(out, "models = [{}]", names.join(", "));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str) -> CreateArgs {
        CreateArgs {
            name: name.to_owned(),
            role: Role::Admin,
            models: vec!["fraud".to_owned()],
            rate_per_s: Some(5.0),
            burst: Some(10),
        }
    }

    #[test]
    fn the_block_parses_and_holds_the_hash_not_the_key() {
        let out = create(&args("ops"), "vgl_secret").expect("valid");
        let block = &out[out.find("[[keys]]").expect("block")..];
        assert!(!block.contains("vgl_secret"), "{block}");
        let config = vigil_server::Config::from_toml(&format!(
            "[[models]]\nname = \"fraud\"\npath = \"m.json\"\n\n{block}"
        ))
        .expect("the printed block is valid config");
        let key = &config.keys[0];
        assert_eq!(key.name, "ops");
        assert!(key.roles.admin);
        assert_eq!(key.rate_per_s, Some(5.0));
        assert_eq!(key.burst, Some(10));
        assert_eq!(key.models.as_deref(), Some(&["fraud".to_owned()][..]));
        let expected = vigil_server::config::parse_key_hash(&hash_key("vgl_secret"));
        assert_eq!(Some(key.hash), expected);
    }

    #[test]
    fn bad_names_are_refused() {
        let err = create(&args("has space"), "k").expect_err("bad name");
        assert!(err.to_string().contains("key name must be"), "{err}");
    }
}

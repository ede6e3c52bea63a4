//! Keys on this machine: named keys under `$VERITY_HOME/keys`, key files, and the devnet's
//! public dev keys; and how a secret file is written.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use verity_node::devnet;
use verity_types::{Address, Keypair};

pub fn verity_home() -> PathBuf {
    std::env::var_os("VERITY_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".verity")))
        .unwrap_or_else(|| PathBuf::from(".verity"))
}

pub fn read_key_file(path: &Path) -> Result<Keypair> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim().trim_start_matches("0x"), &mut seed)
        .with_context(|| format!("key file {} must hold 64 hex digits", path.display()))?;
    Ok(Keypair::from_seed(seed))
}

pub fn resolve_key(name: &str) -> Result<Keypair> {
    let as_path = Path::new(name);
    if as_path.is_file() {
        return read_key_file(as_path);
    }
    let named = verity_home().join("keys").join(format!("{name}.key"));
    if named.is_file() {
        return read_key_file(&named);
    }
    if devnet::DEV_ACCOUNTS.contains(&name) {
        return Ok(devnet::dev_key(name));
    }
    bail!(
        "no key `{name}`: not a file, not in {}, not a devnet account",
        verity_home().join("keys").display()
    )
}

pub fn resolve_address(s: &str) -> Result<Address> {
    if s.starts_with("0x") || s.len() == 64 {
        return s
            .parse()
            .map_err(|e| anyhow::anyhow!("`{s}` is not an address: {e}"));
    }
    Ok(resolve_key(s)?.address())
}

/// Writes a new file only its owner can read: created with mode 0600 (never readable by
/// others, not even for an instant), and never over an existing file.
pub fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

//! `verity keys new | list`.

use anyhow::{Result, bail};
use clap::Subcommand;
use verity_node::devnet;
use verity_types::Keypair;

use crate::keystore::{read_key_file, verity_home, write_secret};

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Create a new random key in $VERITY_HOME/keys.
    New { name: String },
    /// List keys in $VERITY_HOME/keys, and the devnet accounts.
    List,
}

pub fn run(cmd: KeysCmd) -> Result<()> {
    let dir = verity_home().join("keys");
    match cmd {
        KeysCmd::New { name } => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                bail!("key names use letters, digits, - and _");
            }
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("{name}.key"));
            if path.exists() {
                bail!("{} already exists", path.display());
            }
            let key = Keypair::generate();
            write_secret(&path, &hex::encode(key.seed()))?;
            println!("{name} {} ({})", key.address(), path.display());
        }
        KeysCmd::List => {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                let mut names: Vec<_> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "key"))
                    .collect();
                names.sort();
                for p in names {
                    let k = read_key_file(&p)?;
                    println!(
                        "{:<12} {}",
                        p.file_stem().unwrap_or_default().to_string_lossy(),
                        k.address()
                    );
                }
            }
            for name in devnet::DEV_ACCOUNTS {
                println!("{name:<12} {} (devnet)", devnet::dev_key(name).address());
            }
        }
    }
    Ok(())
}

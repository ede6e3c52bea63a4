//! What the process tests share: free ports and `verity` child processes that die with the
//! test.
#![allow(dead_code, unused_imports)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use verity_client::Client;
pub use verity_testkit::process::{Proc, free_port};

/// `verity ARGS`, quiet logs.
pub fn verity(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_verity"));
    cmd.args(args).env("VERITY_LOG", "warn");
    cmd
}

/// Starts `verity ARGS` in the background; its stderr goes to `log` (or nowhere).
pub fn spawn(args: &[&str], log: Option<&Path>) -> Proc {
    verity_testkit::process::spawn(verity(args), log)
}

/// Waits until the node behind `client` answers with a height of at least `at_least`, and
/// returns that height; fails the test after `timeout`.
pub async fn wait_height(client: &Client, at_least: u64, what: &str, timeout: Duration) -> u64 {
    let start = Instant::now();
    loop {
        if let Ok(head) = client.head().await
            && head.height >= at_least
        {
            return head.height;
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: height {at_least} not reached in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `genesis` with every validator stake moved to `validator` (a network of one other key).
pub fn with_validator(
    mut genesis: verity_ledger::Genesis,
    validator: verity_types::Address,
) -> verity_ledger::Genesis {
    for stake in &mut genesis.stakes {
        if stake.role == verity_types::Role::Validator {
            stake.address = validator;
        }
    }
    genesis
}

/// Writes `genesis` to `dir/name.json`; returns the path, as a command-line argument.
pub fn write_genesis(dir: &Path, name: &str, genesis: &verity_ledger::Genesis) -> String {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec(genesis).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

//! What the process tests share: free ports and `verity` child processes that die with the
//! test.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use verity_client::Client;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed when dropped (a failing test leaves nothing running).
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `verity ARGS`, quiet logs.
pub fn verity(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_verity"));
    cmd.args(args).env("VERITY_LOG", "warn");
    cmd
}

/// Starts `verity ARGS` in the background; its stderr goes to `log` (or nowhere).
pub fn spawn(args: &[&str], log: Option<&Path>) -> Proc {
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
        None => Stdio::null(),
    };
    Proc(
        verity(args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    )
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

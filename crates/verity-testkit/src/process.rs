//! Child processes for tests that run real binaries: free loopback ports, and children that
//! are killed when the test ends, passing or failing.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a loopback port")
        .local_addr()
        .expect("a bound socket has an address")
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

/// Starts `command` in the background; its stderr goes to `log` (or nowhere), its stdout
/// nowhere.
pub fn spawn(mut command: Command, log: Option<&Path>) -> Proc {
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).expect("a log file")),
        None => Stdio::null(),
    };
    Proc(
        command
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("the binary starts"),
    )
}

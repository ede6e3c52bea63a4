//! A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`, for what a single
//! page load cannot show: a page open while the network changes (live updates). The browser
//! reads commands on its fd 3 and writes answers and events on fd 4, each a JSON message ended
//! by a NUL byte; no WebSocket is involved.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A headless Chromium driven through its DevTools pipe; killed on drop.
pub struct Browser {
    child: Child,
    to_browser: std::io::PipeWriter,
    from_browser: Receiver<Value>,
    next_id: u64,
}

/// One open page (a target with its own session).
pub struct Tab {
    session: String,
}

impl Browser {
    pub fn launch(browser: &Path, profile: &Path) -> Browser {
        let (commands_read, to_browser) = std::io::pipe().unwrap();
        let (from_browser_read, answers_write) = std::io::pipe().unwrap();
        let (commands, answers) = (commands_read.as_raw_fd(), answers_write.as_raw_fd());
        let mut cmd = Command::new(browser);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // Its own process group, so dropping the browser ends its renderers too.
        cmd.process_group(0);
        // SAFETY: between fork and exec only async-signal-safe calls (fcntl, dup2) are made.
        // The pipe ends become the child's fds 3 and 4 (dup2 clears close-on-exec); each is
        // first copied above 4 (close-on-exec) so that one landing on 3 or 4 is not
        // overwritten by the other.
        unsafe {
            cmd.pre_exec(move || {
                let high = |fd| match libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) {
                    -1 => Err(std::io::Error::last_os_error()),
                    copy => Ok(copy),
                };
                let (commands, answers) = (high(commands)?, high(answers)?);
                if libc::dup2(commands, 3) == -1 || libc::dup2(answers, 4) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop((commands_read, answers_write));
        let (sender, from_browser) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from_browser_read);
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                message.pop();
                if let Ok(value) = serde_json::from_slice(&message)
                    && sender.send(value).is_err()
                {
                    return;
                }
                message.clear();
            }
        });
        Browser {
            child,
            to_browser,
            from_browser,
            next_id: 0,
        }
    }

    /// Sends a command (to a page's session, or to the browser) and waits for its answer.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to_browser.write_all(&bytes).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = self
                .from_browser
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method} in 30 s"));
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// Opens `url` in a new page.
    pub fn open(&mut self, url: &str) -> Tab {
        let target = self.call(None, "Target.createTarget", json!({"url": url}));
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        Tab {
            session: attached["sessionId"].as_str().unwrap().to_string(),
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    pub fn eval(&mut self, tab: &Tab, expression: &str) -> Value {
        let result = self.call(
            Some(&tab.session),
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page; `false` if it is not within `timeout`.
    pub fn wait_for(&mut self, tab: &Tab, expression: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.eval(tab, expression) == json!(true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: the browser and the renderers it started.
        // SAFETY: kill(2) with the child's own process group id, which it leads.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

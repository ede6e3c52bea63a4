//! The explorer as a person meets it: a devnet runs a job, then its pages are read over HTTP
//! and in a real headless Chromium (JavaScript on: live updates and the verify button), with
//! screenshots saved to `target/explorer-screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use verity_client::Client;
use verity_node::devnet;

use common::{free_port, verity, wait_height};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A devnet (no auditor) that has finalized one proven job: fib(10) = 55. Returns the node's
/// URL, the job id and the process.
async fn devnet_with_a_job(home: &Path) -> (common::Proc, String, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{listen}");
    let mut cmd = verity(&["devnet", "--listen", &listen, "--no-audit"]);
    cmd.env("VERITY_HOME", home);
    let proc = verity_testkit::process::spawn(cmd, None);
    wait_height(&Client::new(&url), 1, "devnet", Duration::from_secs(30)).await;
    let fib = workspace().join("examples/fib.masm");
    let out = verity(&["job", "submit", fib.to_str().unwrap(), "--input", "10"])
        .args(["--max-price", "500", "--wait", "--node", &url])
        .env("VERITY_HOME", home)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = stdout
        .lines()
        .find_map(|l| l.strip_prefix("job "))
        .unwrap()
        .trim()
        .to_string();
    (proc, url, job)
}

async fn page(http: &reqwest::Client, url: &str) -> (u16, String) {
    let r = http.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_shows_a_job_from_offer_to_verified_result() {
    let home = tempfile::tempdir().unwrap();
    let (_devnet, url, job) = devnet_with_a_job(home.path()).await;
    let provider = devnet::dev_key("provider").address().to_string();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let (status, overview) = page(&http, &format!("{url}/")).await;
    assert_eq!(status, 200, "{overview}");
    assert!(
        overview.contains("Network overview") && overview.contains(&job[..10]),
        "{overview}"
    );

    let (status, html) = page(&http, &format!("{url}/jobs/{job}")).await;
    assert_eq!(status, 200, "{html}");
    for expected in [
        "badge finalized",
        r#"<strong id="result">55</strong>"#,
        "Download receipt",
        "locked at +",
        "Provenance",
    ] {
        assert!(
            html.contains(expected),
            "job page lacks {expected:?}: {html}"
        );
    }
    // Submitted, locked and finalized, each a row of the timeline.
    let rows = html.split("<table class=\"timeline\">").nth(1).unwrap();
    let rows = rows
        .split("</table>")
        .next()
        .unwrap()
        .matches("<tr>")
        .count();
    assert!(rows >= 4, "timeline has {rows} rows (header included)");

    // The id as a table prints it opens the same page.
    let r = http
        .get(format!("{url}/jobs/{}", &job[..10]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], format!("/jobs/{job}").as_str());

    let (status, html) = page(&http, &format!("{url}/providers/{provider}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("term by term") && html.contains("Evidence"),
        "{html}"
    );
    let score = Client::new(&url)
        .provider(&provider.parse().unwrap())
        .await
        .unwrap()
        .trust_score;
    assert!(
        html.contains(&format!(r#"title="Trust score, 0–1000">{score}<"#)),
        "{html}"
    );

    // The node's verifier, as the job page's button calls it.
    let verified: serde_json::Value = http
        .post(format!("{url}/v1/jobs/{job}/verify"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verified["valid"], true, "{verified}");

    // What an operator scrapes: the job, its proof and its transactions are counted.
    let (status, metrics) = page(&http, &format!("{url}/metrics")).await;
    assert_eq!(status, 200, "{metrics}");
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in {metrics}"))
            .parse()
            .unwrap()
    };
    assert!(value("verity_chain_height") >= 3.0);
    assert_eq!(value(r#"verity_jobs{state="finalized"}"#), 1.0);
    assert!(value(r#"verity_proofs_verified_total{result="valid"}"#) >= 1.0);
    // Submit, lock and fulfil: three admitted, three applied.
    assert!(
        value(r#"verity_transactions_total{stage="mempool",result="accepted",reason="none"}"#)
            >= 3.0
    );
    assert!(
        value(r#"verity_transactions_total{stage="block",result="accepted",reason="none"}"#) >= 3.0
    );
    assert!(value("verity_block_interval_seconds_count") >= 2.0);
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    // The provider serves its own beside its liveness endpoint: the job's proof is counted.
    let view = Client::new(&url)
        .provider(&provider.parse().unwrap())
        .await
        .unwrap();
    let endpoint = view
        .profile
        .endpoint
        .expect("the devnet's provider announces itself");
    let (status, proving) = page(&http, &format!("{endpoint}/metrics")).await;
    assert_eq!(status, 200, "{proving}");
    assert!(
        proving.contains("verity_provider_jobs_locked_total 1\n")
            && proving.contains("verity_provider_proving_seconds_count 1\n"),
        "{proving}"
    );

    // Hostile paths get a page that says what is wrong, never a panic.
    assert_eq!(page(&http, &format!("{url}/jobs/not-hex")).await.0, 400);
    assert_eq!(
        page(&http, &format!("{url}/jobs/0x{}", "f".repeat(64)))
            .await
            .0,
        404
    );
    assert_eq!(page(&http, &format!("{url}/blocks/99999999")).await.0, 404);
    let (status, html) = page(&http, &format!("{url}/jobs?state=<script>")).await;
    assert_eq!(status, 400);
    assert!(
        !html.contains("<script>") && html.contains("&lt;script&gt;"),
        "{html}"
    );

    tokio::task::spawn_blocking(move || in_a_browser(&url, &job, &provider))
        .await
        .unwrap();
}

/// Where headless Chromium is (installed by `scripts/chromium.sh` if it can be), or `None`
/// with the reason printed.
fn chromium() -> Option<PathBuf> {
    let out = Command::new(workspace().join("scripts/chromium.sh"))
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "SKIPPED the explorer's browser checks: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Chromium headless with JavaScript, a fresh profile, and `extra` flags; killed if it has
/// not finished in a minute.
fn headless(browser: &Path, profile: &Path, extra: &[String], url: &str) -> std::process::Output {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish loading {url} in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Lets a page's scripts run (and their requests finish) for up to 5 s of virtual time before
/// the browser dumps or shoots it. Only for pages that open no event stream: a stream is a
/// request that never finishes, which holds virtual time still.
const LET_SCRIPTS_RUN: &str = "--virtual-time-budget=5000";

/// The page as the browser has it once loaded (after its scripts ran, with `wait`).
fn rendered(browser: &Path, profile: &Path, url: &str, wait: bool) -> String {
    let mut flags = vec!["--dump-dom".to_string()];
    if wait {
        flags.push(LET_SCRIPTS_RUN.into());
    }
    let out = headless(browser, profile, &flags, url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screenshot(browser: &Path, profile: &Path, url: &str, file: &Path, size: &str) {
    let out = headless(
        browser,
        profile,
        &[
            format!("--screenshot={}", file.display()),
            format!("--window-size={size}"),
        ],
        url,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(file).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{} is no screenshot",
        file.display()
    );
}

fn in_a_browser(url: &str, job: &str, provider: &str) {
    let Some(browser) = chromium() else { return };
    let profile = tempfile::tempdir().unwrap();
    let profile = profile.path();

    // `#verify` has the page's script press the verify button on load.
    let dom = rendered(&browser, profile, &format!("{url}/jobs/{job}#verify"), true);
    assert!(dom.contains("badge finalized"), "{dom}");
    assert!(
        dom.contains("✓ Proof verified"),
        "the verify button's result is missing: {dom}"
    );
    let dom = rendered(&browser, profile, &format!("{url}/"), false);
    assert!(
        dom.contains(&job[..10]) && dom.contains("Proving throughput"),
        "{dom}"
    );
    let dom = rendered(
        &browser,
        profile,
        &format!("{url}/providers/{provider}"),
        false,
    );
    assert!(dom.contains("Trust score, term by term"), "{dom}");

    let shots = workspace().join("target/explorer-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    screenshot(
        &browser,
        profile,
        &format!("{url}/"),
        &shots.join("overview.png"),
        "1280,900",
    );
    screenshot(
        &browser,
        profile,
        &format!("{url}/jobs/{job}#verify"),
        &shots.join("job.png"),
        "1280,1400",
    );
    screenshot(
        &browser,
        profile,
        &format!("{url}/providers/{provider}"),
        &shots.join("provider.png"),
        "1280,1100",
    );
    screenshot(
        &browser,
        profile,
        &format!("{url}/jobs/{job}"),
        &shots.join("job-phone.png"),
        "390,1400",
    );
}

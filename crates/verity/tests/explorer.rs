//! The explorer as a person meets it: a devnet runs a job, then its pages are read over HTTP
//! and in a real headless Chromium (JavaScript on: live updates and the verify button), with
//! screenshots saved to `target/explorer-screenshots/`.

#[path = "support/cdp.rs"]
mod cdp;
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

/// A devnet (no auditor); returns its process and URL.
async fn devnet(home: &Path) -> (common::Proc, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{listen}");
    let mut cmd = verity(&["devnet", "--listen", &listen, "--no-audit"]);
    cmd.env("VERITY_HOME", home);
    let proc = verity_testkit::process::spawn(cmd, None);
    wait_height(&Client::new(&url), 1, "devnet", Duration::from_secs(30)).await;
    (proc, url)
}

/// Submits fib(10) = 55 as a proven job and waits for it to finalize; returns its id.
fn run_a_job(home: &Path, url: &str) -> String {
    submit_fib(home, url, 10, true)
}

/// Submits fib(`n`) as a proven job, waiting for it to finalize if `wait`; returns its id.
fn submit_fib(home: &Path, url: &str, n: u64, wait: bool) -> String {
    let fib = workspace().join("examples/fib.masm");
    let n = n.to_string();
    let out = verity(&["job", "submit", fib.to_str().unwrap(), "--input", &n])
        .args(["--max-price", "500", "--node", url])
        .args(wait.then_some("--wait"))
        .env("VERITY_HOME", home)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("job "))
        .unwrap()
        .trim()
        .to_string()
}

async fn page(http: &reqwest::Client, url: &str) -> (u16, String) {
    let r = http.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Where a request was redirected to (`None` if it was not).
async fn redirect(http: &reqwest::Client, url: &str) -> Option<String> {
    let r = http.get(url).send().await.unwrap();
    r.status()
        .is_redirection()
        .then(|| r.headers()["location"].to_str().unwrap().to_string())
}

/// A metrics scrape, read one series at a time (absent series read as 0).
struct Scrape(String);

impl Scrape {
    async fn of(http: &reqwest::Client, url: &str) -> Scrape {
        let (status, text) = page(http, &format!("{url}/metrics")).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        Scrape(text)
    }

    fn value(&self, series: &str) -> f64 {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |v| v.parse().unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_shows_a_job_from_offer_to_verified_result() {
    let home = tempfile::tempdir().unwrap();
    let (_devnet, url) = devnet(home.path()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let before = Scrape::of(&http, &url).await;
    let job = run_a_job(home.path(), &url);
    let after = Scrape::of(&http, &url).await;
    metrics_moved(&http, &url, &before, &after).await;

    let provider = devnet::dev_key("provider").address().to_string();
    pages_read_as_a_person_would(&http, &url, &job, &provider).await;
    ids_and_searches_find_their_pages(&http, &url, &job).await;

    // The node's verifier, as the job page's button calls it (a JSON body: no cross-site forms).
    let verify = format!("{url}/v1/jobs/{job}/verify");
    let r = http.post(&verify).body("").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 415, "verify without a JSON body");
    let verified: serde_json::Value = http
        .post(&verify)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verified["valid"], true, "{verified}");

    let home = home.path().to_path_buf();
    tokio::task::spawn_blocking(move || in_a_browser(&home, &url, &job, &provider))
        .await
        .unwrap();
}

/// What an operator scrapes moved with the job: the job, its proof (verified once by the
/// ledger; nothing else has asked yet) and its transactions are counted, by node and provider.
async fn metrics_moved(http: &reqwest::Client, url: &str, before: &Scrape, after: &Scrape) {
    let finalized = r#"verity_jobs{state="finalized"}"#;
    let proofs = r#"verity_proofs_verified_total{result="valid"}"#;
    let admitted = r#"verity_transactions_total{stage="mempool",result="accepted",reason="none"}"#;
    let applied = r#"verity_transactions_total{stage="block",result="accepted",reason="none"}"#;
    assert_eq!(
        (before.value(finalized), after.value(finalized)),
        (0.0, 1.0)
    );
    assert_eq!(
        after.value(proofs) - before.value(proofs),
        1.0,
        "{}",
        after.0
    );
    // Submit, lock and fulfil: three admitted, three applied.
    assert!(
        after.value(admitted) - before.value(admitted) >= 3.0,
        "{}",
        after.0
    );
    assert!(
        after.value(applied) - before.value(applied) >= 3.0,
        "{}",
        after.0
    );
    assert!(after.value("verity_chain_height") > before.value("verity_chain_height"));
    assert!(after.value("verity_block_interval_seconds_count") >= 2.0);
    // The job added entries to the state (a job, its provenance record, its schedule, ...);
    // the node holds at most those blocks touched in memory, never more than the state has.
    let (entries, held) = (
        after.value("verity_state_entries"),
        after.value("verity_state_entries_in_memory"),
    );
    assert!(
        entries > before.value("verity_state_entries"),
        "{}",
        after.0
    );
    assert!(held <= entries, "{}", after.0);

    // The provider serves its own beside its liveness endpoint.
    let provider = devnet::dev_key("provider").address();
    let view = Client::new(url).provider(&provider).await.unwrap();
    let endpoint = view
        .profile
        .endpoint
        .expect("the devnet's provider announces itself");
    let (status, proving) = page(http, &format!("{endpoint}/metrics")).await;
    assert_eq!(status, 200, "{proving}");
    assert!(
        proving.contains("verity_provider_jobs_locked_total 1\n")
            && proving.contains("verity_provider_proving_seconds_count 1\n"),
        "{proving}"
    );
}

async fn pages_read_as_a_person_would(
    http: &reqwest::Client,
    url: &str,
    job: &str,
    provider: &str,
) {
    let (status, overview) = page(http, &format!("{url}/")).await;
    assert_eq!(status, 200, "{overview}");
    assert!(
        overview.contains("Network overview") && overview.contains(&job[..10]),
        "{overview}"
    );
    let (status, html) = page(http, &format!("{url}/jobs/{job}")).await;
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
    // The proof's work, as the ledger records it (the prover's cycles, the proof's trace).
    let view: serde_json::Value = http
        .get(format!("{url}/v1/jobs/{job}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let delivery = &view["job"]["delivery"];
    let work = format!(
        r#"<span id="work">{} cycles, trace of {} rows</span>"#,
        delivery["cycles"], delivery["trace_len"]
    );
    assert!(delivery["cycles"].as_u64().unwrap() > 0, "{view}");
    assert!(html.contains(&work), "job page lacks {work:?}: {html}");
    // A block says who made it final, checked by the node as a client would check it.
    let (status, block) = page(http, &format!("{url}/blocks/1")).await;
    assert_eq!(status, 200, "{block}");
    assert!(
        block.contains(r#"id="finality""#) && block.contains("certified by 1 of 1 validators"),
        "{block}"
    );
    // Submitted, locked and finalized, each a row of the timeline.
    let rows = html.split("<table class=\"timeline\">").nth(1).unwrap();
    let rows = rows
        .split("</table>")
        .next()
        .unwrap()
        .matches("<tr>")
        .count();
    assert!(rows >= 4, "timeline has {rows} rows (header included)");

    let (status, html) = page(http, &format!("{url}/providers/{provider}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("term by term") && html.contains("Evidence"),
        "{html}"
    );
    let score = Client::new(url)
        .provider(&provider.parse().unwrap())
        .await
        .unwrap()
        .trust_score;
    assert!(
        html.contains(&format!(r#"title="Trust score, 0–1000">{score}<"#)),
        "{html}"
    );
}

/// Prefixes, searches, and hostile paths: a redirect to the page meant, or a page that says
/// what is wrong (shown as text), never a panic.
async fn ids_and_searches_find_their_pages(http: &reqwest::Client, url: &str, job: &str) {
    let at = |path: &str| format!("{url}{path}");
    let job_page = Some(format!("/jobs/{job}"));
    assert_eq!(
        redirect(http, &at(&format!("/jobs/{}", &job[..10]))).await,
        job_page
    );
    assert_eq!(
        redirect(http, &at(&format!("/jobs?q={}", &job[..10]))).await,
        job_page
    );
    assert_eq!(
        redirect(http, &at(&format!("/search?q={}", &job[..10]))).await,
        job_page
    );
    assert_eq!(
        redirect(http, &at("/search?q=2")).await,
        Some("/blocks/2".into())
    );
    let (status, block) = page(http, &at("/blocks/2")).await;
    assert_eq!(status, 200, "{block}");
    assert!(
        block.contains("submit_job") && block.contains(&job[..10]),
        "{block}"
    );

    assert_eq!(page(http, &at("/jobs/not-hex")).await.0, 400);
    assert_eq!(
        page(http, &at(&format!("/jobs/0x{}", "f".repeat(64))))
            .await
            .0,
        404
    );
    assert_eq!(page(http, &at("/blocks/99999999")).await.0, 404);
    // Only an id prefix leaves the jobs page's search box: no fragment, no other path.
    assert_eq!(page(http, &at("/jobs?q=ab%23verify")).await.0, 400);
    assert_eq!(page(http, &at("/jobs?q=..%2F..%2Fmetrics")).await.0, 400);
    let (status, html) = page(http, &at("/jobs?state=<script>")).await;
    assert_eq!(status, 400);
    assert!(
        !html.contains("<script>") && html.contains("&lt;script&gt;"),
        "{html}"
    );
}

/// Where headless Chromium is (installed by `scripts/chromium.sh` if it can be), or `None`
/// with the reason printed where no browser can exist (no apt-get, no root). A failed install
/// fails the test, and so does a skip when `VERITY_REQUIRE_BROWSER` is set (CI sets it).
fn chromium() -> Option<PathBuf> {
    let out = Command::new(workspace().join("scripts/chromium.sh"))
        .output()
        .unwrap();
    let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
    match out.status.code() {
        Some(0) => Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())),
        Some(3) if std::env::var_os("VERITY_REQUIRE_BROWSER").is_none() => {
            eprintln!("SKIPPED the explorer's browser checks: {why}");
            None
        }
        _ => panic!("no headless Chromium for the explorer's browser checks: {why}"),
    }
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

fn in_a_browser(home: &Path, url: &str, job: &str, provider: &str) {
    let Some(browser) = chromium() else { return };
    let profile = tempfile::tempdir().unwrap();
    let profile = profile.path();
    pages_follow_the_network_live(&browser, home, url);

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

/// Pages left open follow the chain through the event stream, without reloading: the overview
/// shows a job submitted after it opened, and that job's page moves to finalized by itself.
fn pages_follow_the_network_live(browser: &Path, home: &Path, url: &str) {
    let profile = tempfile::tempdir().unwrap();
    let mut chrome = cdp::Browser::launch(browser, profile.path());
    let live = "document.getElementById('live')?.classList.contains('on') === true";
    let overview = chrome.open(&format!("{url}/"));
    assert!(
        chrome.wait_for(&overview, live, Duration::from_secs(20)),
        "the overview's event stream did not open"
    );
    // A page that reloads loses this; one that updates in place keeps it.
    chrome.eval(&overview, "window.stayed = true");

    let job = submit_fib(home, url, 12, false);
    let shows_job = format!(
        "document.getElementById('page').innerText.includes('{}')",
        &job[..10]
    );
    assert!(
        chrome.wait_for(&overview, &shows_job, Duration::from_secs(20)),
        "the open overview never showed job {job}"
    );
    assert_eq!(chrome.eval(&overview, "window.stayed === true"), true);

    let page = chrome.open(&format!("{url}/jobs/{job}"));
    assert!(chrome.wait_for(&page, live, Duration::from_secs(20)));
    chrome.eval(&page, "window.stayed = true");
    let finalized = "document.querySelector('#page .badge.finalized') !== null \
        && document.getElementById('result')?.textContent === '144'";
    assert!(
        chrome.wait_for(&page, finalized, Duration::from_secs(90)),
        "the open job page never showed fib(12) = 144 finalized: {}",
        chrome.eval(&page, "document.getElementById('page').innerText")
    );
    assert_eq!(chrome.eval(&page, "window.stayed === true"), true);
}

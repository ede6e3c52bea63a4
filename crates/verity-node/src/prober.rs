//! The liveness prober a validator runs: it pings every announced provider endpoint each
//! `probe_interval` (a signed answer to a fresh nonce counts), tallies the answers per audit
//! epoch, and after each epoch files one signed `Audit` with what it saw.
//!
//! The tallying and filing are a plain state machine ([`Prober`]); the network sits behind
//! [`Pinger`], so tests run whole epochs against scripted providers without sockets or
//! waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::{info, warn};
use verity_ledger::State;
use verity_ledger::trust::{AUDIT_EPOCH_BLOCKS, MAX_AUDIT_ENTRIES, MAX_PROBES_PER_EPOCH};
use verity_types::{Address, AuditReport, Liveness, TxBody};

use crate::auditor::{AuditorConfig, AuditorCounters};
use crate::handle::NodeHandle;

/// What one ping found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// The provider answered with a valid signature over the nonce.
    pub answered: bool,
    pub latency_ms: u32,
}

/// Reaches a provider's endpoint.
pub trait Pinger: Send + Sync + 'static {
    /// Asks `provider` at `endpoint` to sign `nonce`.
    fn ping(
        &self,
        provider: Address,
        endpoint: String,
        nonce: String,
    ) -> impl Future<Output = Ping> + Send;
}

/// Probes of one provider in one epoch.
#[derive(Debug, Default)]
struct Tally {
    probes: u32,
    answered: u32,
    latencies_ms: Vec<u32>,
}

/// The prober's memory: tallies of the epochs not yet filed, and which were filed.
#[derive(Debug, Default)]
pub struct Prober {
    tallies: BTreeMap<(u64, Address), Tally>,
    filed: BTreeSet<u64>,
}

impl Prober {
    /// Counts one ping of `provider` in `epoch`.
    pub fn record(&mut self, epoch: u64, provider: Address, ping: Ping) {
        let tally = self.tallies.entry((epoch, provider)).or_default();
        tally.probes += 1;
        if ping.answered {
            tally.answered += 1;
            tally.latencies_ms.push(ping.latency_ms);
        }
    }

    /// The audits of the epochs that ended before `epoch` and were not filed yet (at most
    /// two epochs back: the ledger takes no older ones). Each epoch is reported once.
    pub fn reports_due(&mut self, epoch: u64) -> Vec<AuditReport> {
        let ready: BTreeSet<u64> = self
            .tallies
            .keys()
            .map(|(e, _)| *e)
            .filter(|e| *e < epoch && !self.filed.contains(e))
            .collect();
        let mut reports = Vec::new();
        for e in ready {
            self.filed.insert(e);
            let keys: Vec<_> = self
                .tallies
                .keys()
                .filter(|(te, _)| *te == e)
                .copied()
                .collect();
            let mut liveness: Vec<Liveness> = keys
                .into_iter()
                .filter_map(|k| self.tallies.remove(&k).map(|t| liveness(k.1, t)))
                .collect();
            liveness.truncate(MAX_AUDIT_ENTRIES);
            if !liveness.is_empty() && e + 2 >= epoch {
                reports.push(AuditReport { epoch: e, liveness });
            }
        }
        self.filed.retain(|e| e + 3 >= epoch);
        reports
    }

    /// Files the audits due at this height, then pings this epoch's share of the endpoints
    /// (concurrently) and tallies the answers.
    pub async fn step<H: NodeHandle, P: Pinger>(
        &mut self,
        node: &H,
        pinger: &P,
        config: &AuditorConfig,
        counters: &AuditorCounters,
    ) {
        let state = node.state();
        let epoch = state.height / AUDIT_EPOCH_BLOCKS;
        for report in self.reports_due(epoch) {
            let e = report.epoch;
            match node.sign_and_submit(&config.key, TxBody::Audit(report)) {
                Ok(_) => {
                    counters.audits_filed.fetch_add(1, Ordering::Relaxed);
                    info!(epoch = e, "filed a liveness audit");
                }
                Err(err) => warn!(epoch = e, "cannot file the liveness audit: {err}"),
            }
        }
        let pings = targets(&state, epoch, config.probe_private_hosts)
            .into_iter()
            .map(|(provider, endpoint)| {
                let nonce = hex::encode(config.entropy.bytes::<16>());
                async move { (provider, pinger.ping(provider, endpoint, nonce).await) }
            });
        for (provider, ping) in futures_util::future::join_all(pings).await {
            counters.probes.fetch_add(1, Ordering::Relaxed);
            if ping.answered {
                counters.probes_answered.fetch_add(1, Ordering::Relaxed);
            }
            self.record(epoch, provider, ping);
        }
    }
}

/// One provider's line of an audit: probe counts (capped as the ledger caps them) and the
/// median latency of the answered probes.
fn liveness(provider: Address, mut tally: Tally) -> Liveness {
    tally.latencies_ms.sort_unstable();
    let probes = tally.probes.min(MAX_PROBES_PER_EPOCH);
    Liveness {
        provider,
        probes,
        answered: tally.answered.min(probes),
        median_latency_ms: tally
            .latencies_ms
            .get(tally.latencies_ms.len() / 2)
            .copied()
            .unwrap_or(0),
    }
}

/// The endpoints probed in `epoch` that may be probed at all: an audit covers at most
/// `MAX_AUDIT_ENTRIES` providers, so with more of them the window rotates with the epoch and
/// every provider is audited in turn.
fn targets(state: &State, epoch: u64, private_ok: bool) -> Vec<(Address, String)> {
    probe_window(state.endpoints.iter(), epoch, MAX_AUDIT_ENTRIES)
        .into_iter()
        .filter(|(_, endpoint)| probe_allowed(endpoint, private_ok))
        .collect()
}

/// Runs until `shutdown` fires: one [`Prober::step`] every `probe_interval`.
pub async fn run_prober<H: NodeHandle, P: Pinger>(
    node: Arc<H>,
    pinger: P,
    config: AuditorConfig,
    counters: Arc<AuditorCounters>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut prober = Prober::default();
    let mut ticker = tokio::time::interval(config.probe_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        prober.step(&*node, &pinger, &config, &counters).await;
    }
}

/// Pings over HTTP: bounded in time, no redirects (a redirect could lead anywhere), answers
/// read up to a cap.
#[derive(Debug, Clone)]
pub struct HttpPinger {
    http: reqwest::Client,
}

impl HttpPinger {
    pub fn new() -> HttpPinger {
        HttpPinger {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(2))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a plain HTTP client"),
        }
    }
}

impl Default for HttpPinger {
    fn default() -> HttpPinger {
        HttpPinger::new()
    }
}

impl Pinger for HttpPinger {
    async fn ping(&self, provider: Address, endpoint: String, nonce: String) -> Ping {
        let url = format!(
            "{}{}?nonce={nonce}",
            endpoint.trim_end_matches('/'),
            verity_api::routes::PING
        );
        let started = tokio::time::Instant::now();
        let answered = match self.http.get(&url).send().await {
            Ok(r) if r.status().is_success() => read_capped(r, MAX_PING_BYTES)
                .await
                .and_then(|b| serde_json::from_slice::<verity_api::PingAnswer>(&b).ok())
                .is_some_and(|a| signed_by(&a, &provider, &nonce)),
            _ => false,
        };
        let ms = started.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
        Ping {
            answered,
            latency_ms: ms,
        }
    }
}

/// Whether `answer` is `provider`'s signature over `nonce`.
fn signed_by(answer: &verity_api::PingAnswer, provider: &Address, nonce: &str) -> bool {
    let mut sig = [0u8; 64];
    answer.provider == *provider
        && hex::decode_to_slice(&answer.signature, &mut sig).is_ok()
        && provider.verify(
            &verity_api::ping_message(provider, nonce),
            &verity_types::Signature(sig),
        )
}

/// Largest ping answer read (an answer is ~200 bytes).
const MAX_PING_BYTES: usize = 4 * 1024;

/// Reads a response body up to `cap` bytes; `None` if it is longer or fails.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        if body.len() + chunk.len() > cap {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

/// The endpoints probed in `epoch`: all of them if they fit in `max`, else a window of `max`
/// that starts further along each epoch (wrapping), in address order.
pub fn probe_window<'a>(
    endpoints: impl IntoIterator<Item = (verity_types::Address, std::borrow::Cow<'a, String>)>,
    epoch: u64,
    max: usize,
) -> Vec<(verity_types::Address, String)> {
    let all: Vec<_> = endpoints
        .into_iter()
        .map(|(a, e)| (a, e.into_owned()))
        .collect();
    if all.len() <= max {
        return all;
    }
    let start = (epoch as usize).wrapping_mul(max) % all.len();
    all.iter().cycle().skip(start).take(max).cloned().collect()
}

/// Whether an announced endpoint may be probed: http(s) only, and unless `private_ok`, not a
/// loopback, private, link-local or unspecified address (or `localhost`). Host names are
/// not resolved here; docs/SECURITY.md notes what that leaves open.
pub fn probe_allowed(endpoint: &str, private_ok: bool) -> bool {
    let Ok(url) = reqwest::Url::parse(endpoint) else {
        return false;
    };
    // This build's HTTP client has no TLS, so an https probe fails and counts as unanswered
    // (docs/SECURITY.md, open items). Not probing such endpoints would be worse: a provider
    // without a liveness record keeps its whole score, so a dead one could hide behind https.
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    if private_ok {
        return true;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Err(_) => {
            let d = host.trim_end_matches('.').to_ascii_lowercase();
            d != "localhost" && !d.ends_with(".localhost")
        }
        Ok(std::net::IpAddr::V4(ip)) => public_v4(ip),
        Ok(std::net::IpAddr::V6(ip)) if ip.is_loopback() || ip.is_unspecified() => false,
        Ok(std::net::IpAddr::V6(ip)) => {
            let seg = ip.segments();
            // Forms that embed an IPv4 address are judged by it: mapped (::ffff:a.b.c.d),
            // compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
            let embedded = if seg[..2] == [0x64, 0xff9b] && seg[2..6] == [0; 4] {
                Some(std::net::Ipv4Addr::new(
                    (seg[6] >> 8) as u8,
                    seg[6] as u8,
                    (seg[7] >> 8) as u8,
                    seg[7] as u8,
                ))
            } else if seg[0] == 0x2002 {
                Some(std::net::Ipv4Addr::new(
                    (seg[1] >> 8) as u8,
                    seg[1] as u8,
                    (seg[2] >> 8) as u8,
                    seg[2] as u8,
                ))
            } else {
                ip.to_ipv4()
            };
            match embedded {
                Some(v4) => public_v4(v4),
                None => !((seg[0] & 0xfe00) == 0xfc00 || (seg[0] & 0xffc0) == 0xfe80),
            }
        }
    }
}

/// A public IPv4 address: not loopback, private, link-local, unspecified, broadcast, shared
/// (100.64/10), benchmarking (198.18/15) or reserved (240/4).
fn public_v4(ip: std::net::Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || (a == 100 && (b & 0xc0) == 64)
        || (a == 198 && (b & 0xfe) == 18)
        || a >= 240)
}

#[cfg(test)]
mod tests {
    use super::*;
    use verity_types::Keypair;

    #[test]
    fn probes_go_only_to_public_http_hosts_unless_allowed() {
        for bad in [
            "http://127.0.0.1:9000",
            "http://10.1.2.3",
            "http://192.168.0.1/x",
            "http://172.16.0.1",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost:8080",
            "http://[::1]:80",
            "http://[fd00::1]",
            "http://[::ffff:127.0.0.1]",
            "http://localhost.:8080",
            "http://[64:ff9b::a00:1]",
            "http://[2002:c0a8:1::]",
            "http://[::10.0.0.1]",
            "http://198.18.0.1",
            "http://240.0.0.1",
            "file:///etc/passwd",
            "gopher://example.com",
            "not a url",
        ] {
            assert!(!probe_allowed(bad, false), "{bad} must not be probed");
        }
        assert!(probe_allowed("http://provider.example.com:8443", false));
        // Probed, and (without TLS) unanswered: never a way to escape audits.
        assert!(probe_allowed("https://provider.example.com:8443", false));
        assert!(probe_allowed("http://203.0.113.7:9000", false));
        assert!(
            probe_allowed("http://127.0.0.1:9000", true),
            "devnets allow loopback"
        );
        assert!(!probe_allowed("file:///etc/passwd", true));
    }

    #[test]
    fn every_endpoint_is_probed_within_a_few_epochs() {
        let endpoints: std::collections::BTreeMap<_, _> = (0u32..600)
            .map(|i| {
                (
                    Keypair::dev(&format!("p{i}")).address(),
                    format!("https://p{i}.example"),
                )
            })
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for epoch in 0..3 {
            let window = probe_window(
                endpoints
                    .iter()
                    .map(|(a, e)| (*a, std::borrow::Cow::Borrowed(e))),
                epoch,
                256,
            );
            assert_eq!(window.len(), 256);
            seen.extend(window.into_iter().map(|(a, _)| a));
        }
        assert_eq!(seen.len(), 600, "three windows of 256 cover 600 endpoints");
    }

    fn ping(answered: bool, latency_ms: u32) -> Ping {
        Ping {
            answered,
            latency_ms,
        }
    }

    #[test]
    fn an_epoch_is_reported_once_after_it_ends_with_median_latencies() {
        let (steady, flaky) = (
            Keypair::dev("steady").address(),
            Keypair::dev("flaky").address(),
        );
        let mut prober = Prober::default();
        for i in 0..10u32 {
            prober.record(4, steady, ping(true, 10 + i));
            prober.record(4, flaky, ping(i % 3 == 0, 100 + i));
        }
        assert!(prober.reports_due(4).is_empty(), "epoch 4 has not ended");
        let reports = prober.reports_due(5);
        assert_eq!(reports.len(), 1);
        let line = |who| {
            reports[0]
                .liveness
                .iter()
                .find(|l| l.provider == who)
                .cloned()
                .unwrap()
        };
        assert_eq!(reports[0].epoch, 4);
        assert_eq!((line(steady).probes, line(steady).answered), (10, 10));
        assert_eq!(line(steady).median_latency_ms, 15);
        // Answered 4 of 10 (i = 0, 3, 6, 9); the median of 100, 103, 106, 109.
        assert_eq!((line(flaky).probes, line(flaky).answered), (10, 4));
        assert_eq!(line(flaky).median_latency_ms, 106);
        assert!(prober.reports_due(5).is_empty(), "filed once");
        assert!(prober.reports_due(6).is_empty());
    }

    #[test]
    fn an_epoch_too_old_for_the_ledger_is_dropped_not_filed() {
        let p = Keypair::dev("p").address();
        let mut prober = Prober::default();
        prober.record(1, p, ping(true, 5));
        // The ledger takes audits of the last two epochs only.
        assert!(prober.reports_due(4).is_empty());
        assert!(prober.tallies.is_empty(), "its tally is gone");
    }
}

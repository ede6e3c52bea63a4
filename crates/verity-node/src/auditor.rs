//! The re-execution auditor a validator runs: it watches optimistic fulfilments, re-executes
//! a sample of them with Miden's fast processor, and when a provider's outputs are wrong it
//! proves the right ones and challenges through the ledger's existing challenge path (the
//! bond pays the auditor, the client is refunded, the provider's record shows the overturn).
//!
//! Which fulfilments are checked is decided by the hash of the block that recorded them, so
//! a provider cannot know in advance whether its result will be checked, and anyone can verify
//! which ones the auditor was supposed to check.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};
use verity_api::AuditorView;
use verity_ledger::{Job, JobState};
use verity_types::{BlockId, Digest, JobId, Keypair, Mode, ProgramSource, TxBody, TxId};
use verity_vm::{Inputs, Program, ProveOptions};

use crate::node::Node;

#[derive(Debug, Clone)]
pub struct AuditorConfig {
    /// Signs challenges (and receives the bonds they win): the validator's key.
    pub key: Keypair,
    /// Fulfilments checked, per 10,000.
    pub sample_per_10k: u32,
    /// How often each announced provider endpoint is probed for liveness.
    pub probe_interval: std::time::Duration,
    /// Canary slots committed per audit epoch (0: none); each is sent with probability 1/V
    /// (V validators), so the network sends about this many per epoch.
    pub canaries_per_epoch: u32,
    /// Pays for canaries (their client accounts are funded from it). `None`: the validator's
    /// own key, which links each canary's funding to a validator on the ledger; an operator
    /// should fund a separate key through the channels ordinary clients use.
    pub canary_funder: Option<Keypair>,
    /// Probe endpoints on loopback and private addresses too (devnets and tests). Off by
    /// default, so a provider cannot point validators at their own internal services.
    pub probe_private_hosts: bool,
    /// Scripted misbehaviour, for tests of what the ledger does to a lying auditor (`mocks`
    /// feature only).
    #[cfg(feature = "mocks")]
    pub fault: Option<AuditorFault>,
}

/// How a scripted auditor misbehaves (`mocks` feature only: a production auditor cannot be
/// told to lie).
#[cfg(feature = "mocks")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditorFault {
    /// Reveals canaries with answers that differ from the right ones.
    FalseCanaryClaims,
}

impl AuditorConfig {
    pub fn new(key: Keypair) -> AuditorConfig {
        AuditorConfig {
            key,
            sample_per_10k: 2_500,
            probe_interval: std::time::Duration::from_secs(2),
            canaries_per_epoch: 1,
            canary_funder: None,
            probe_private_hosts: false,
            #[cfg(feature = "mocks")]
            fault: None,
        }
    }

    /// Whether this auditor was told to reveal false canary claims (never, without `mocks`).
    pub(crate) fn claims_falsely(&self) -> bool {
        #[cfg(feature = "mocks")]
        return self.fault == Some(AuditorFault::FalseCanaryClaims);
        #[cfg(not(feature = "mocks"))]
        false
    }
}

/// What an auditor has done since it started.
#[derive(Debug, Default)]
pub struct AuditorCounters {
    pub sampled: AtomicU64,
    pub matched: AtomicU64,
    pub challenged: AtomicU64,
    /// Sampled, but the job's private inputs are sealed to its locker, so it cannot re-execute.
    pub unverifiable: AtomicU64,
    pub probes: AtomicU64,
    pub probes_answered: AtomicU64,
    pub audits_filed: AtomicU64,
    pub canary_commits: AtomicU64,
    pub canaries_sent: AtomicU64,
    pub canaries_challenged: AtomicU64,
    pub canary_reveals: AtomicU64,
}

impl AuditorCounters {
    pub fn view(&self, sample_per_10k: u32) -> AuditorView {
        AuditorView {
            sample_per_10k,
            sampled: self.sampled.load(Ordering::Relaxed),
            matched: self.matched.load(Ordering::Relaxed),
            challenged: self.challenged.load(Ordering::Relaxed),
            unverifiable: self.unverifiable.load(Ordering::Relaxed),
            probes: self.probes.load(Ordering::Relaxed),
            probes_answered: self.probes_answered.load(Ordering::Relaxed),
            audits_filed: self.audits_filed.load(Ordering::Relaxed),
            canary_commits: self.canary_commits.load(Ordering::Relaxed),
            canaries_sent: self.canaries_sent.load(Ordering::Relaxed),
            canaries_challenged: self.canaries_challenged.load(Ordering::Relaxed),
            canary_reveals: self.canary_reveals.load(Ordering::Relaxed),
        }
    }
}

/// Is the fulfilment of `job` recorded in block `block_id` in the sample? A pure function of
/// public data: anyone can recompute which fulfilments an auditor had to check.
pub fn sampled(block_id: &BlockId, job: &JobId, sample_per_10k: u32) -> bool {
    let mut bytes = block_id.0.0.to_vec();
    bytes.extend_from_slice(&job.0.0);
    let h = Digest::blake3(&bytes);
    let draw = u64::from_le_bytes(h.0[..8].try_into().expect("8 bytes")) % 10_000;
    draw < u64::from(sample_per_10k)
}

/// Runs until `shutdown` fires.
pub async fn run_auditor(
    node: Arc<Node>,
    config: AuditorConfig,
    counters: Arc<AuditorCounters>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut events = node.subscribe();
    info!(
        auditor = %config.key.address().short(),
        rate = config.sample_per_10k,
        "re-execution auditor started (per 10,000 optimistic fulfilments)"
    );
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = shutdown.changed() => return,
        };
        let event = match event {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                warn!("auditor fell behind and skipped {n} events");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if event.state != JobState::Fulfilled {
            continue;
        }
        let Ok(Some(block)) = node.storage().block(event.height) else {
            continue;
        };
        if !sampled(&block.to_block().id(), &event.job_id, config.sample_per_10k) {
            continue;
        }
        let Some(job) = node.state().jobs.get(&event.job_id).cloned() else {
            continue;
        };
        if job.request.mode != Mode::Optimistic || job.state != JobState::Fulfilled {
            continue;
        }
        counters.sampled.fetch_add(1, Ordering::Relaxed);
        let node = node.clone();
        let config = config.clone();
        let counters = counters.clone();
        // Each check runs on its own: a slow proof must not delay the next check.
        tokio::spawn(async move { audit(node, config, counters, job).await });
    }
}

async fn audit(node: Arc<Node>, config: AuditorConfig, counters: Arc<AuditorCounters>, job: Job) {
    let id = job.id;
    // Private inputs are sealed to the locker: only it and the client know them, so an
    // auditor cannot re-execute the job (the client can still challenge a wrong result).
    if job.request.private_inputs.is_some() {
        counters.unverifiable.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let source = match &job.request.program {
        ProgramSource::Inline(source) => source.clone(),
        ProgramSource::Published(hash) => match node.state().programs.get(hash) {
            Some(published) => published.source.clone(),
            None => return,
        },
    };
    let Ok(job_program) =
        tokio::task::spawn_blocking(move || verity_vm::assemble_job(&source, None, u64::MAX))
            .await
            .unwrap_or_else(|e| Err(verity_vm::VmError::Assembly(e.to_string())))
    else {
        return;
    };
    let program = job_program.program;
    let Ok(inputs) = verity_vm::job_inputs(&job.request.stack_inputs, None) else {
        return;
    };
    let max = job.request.max_cycles;
    let claimed = job.outputs;
    let bond = job.bond;
    let min_bond = min_bond_to_prove(max, &node.state().params);
    // Re-execute (fast processor, no proof), and prove only if the result differs.
    let checked = tokio::task::spawn_blocking(move || {
        let outputs = verity_vm::execute_outputs(&program, &inputs, max)?;
        if Some(outputs) == claimed {
            return Ok(None);
        }
        // A proof costs up to the cycle cap in time and memory. Prove only when the bond
        // pays for it, and one proof at a time: wrong results fed in bulk (say, from an
        // attacker's own client to its own provider) cannot exhaust the auditor.
        if bond < min_bond {
            return Err(verity_vm::VmError::Proving(format!(
                "bond {bond} does not cover a proof of up to {max} cycles; not challenging"
            )));
        }
        let Ok(_permit) = CHALLENGE_PROOFS.try_lock() else {
            return Err(verity_vm::VmError::Proving(
                "another challenge proof is in progress; not challenging this one".into(),
            ));
        };
        prove_within(&program, &inputs, max).map(Some)
    })
    .await;
    let receipt = match checked {
        Ok(Ok(None)) => {
            counters.matched.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Ok(Ok(Some(receipt))) => receipt,
        Ok(Err(e)) => {
            warn!(job = %id.short(), "re-execution failed: {e}");
            return;
        }
        Err(_) => return,
    };
    warn!(job = %id.short(), fulfiller = ?job.fulfiller.map(|f| f.short()), "wrong outputs: challenging with a proof");
    match submit_challenge(&node, &config.key, id, receipt) {
        Ok(_) => {
            counters.challenged.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => warn!(job = %id.short(), "cannot submit the challenge: {e}"),
    }
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
pub fn probe_window(
    endpoints: &std::collections::BTreeMap<verity_types::Address, String>,
    epoch: u64,
    max: usize,
) -> Vec<(verity_types::Address, String)> {
    let all: Vec<_> = endpoints.iter().map(|(a, e)| (*a, e.clone())).collect();
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

/// One challenge proof at a time per process (a proof uses every core and up to ~10 GB).
static CHALLENGE_PROOFS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The smallest bond worth a challenge proof of a job capped at `max_cycles`: the half the
/// challenger wins must pay the challenge's fee (a proof of up to 256 KiB) and one unit per
/// 1,024 cycles of the cap for the proving itself.
pub fn min_bond_to_prove(max_cycles: u32, params: &verity_ledger::Params) -> u64 {
    let fee = params.fee_base + params.fee_per_kib * 256 + params.fee_per_proof;
    2 * (fee + u64::from(max_cycles).div_ceil(1024))
}

/// Proves `program` on `inputs` within the job's cycle cap: the proof a challenge carries.
/// CPU-heavy: call it from a blocking thread.
pub(crate) fn prove_within(
    program: &Program,
    inputs: &Inputs,
    max_cycles: u32,
) -> Result<verity_types::Receipt, verity_vm::VmError> {
    let options = ProveOptions {
        max_cycles,
        ..Default::default()
    };
    verity_vm::prove(program, inputs, options)
}

/// Challenges `job_id`'s outputs with `receipt` (a proof of different ones), signed by `key`.
pub(crate) fn submit_challenge(
    node: &Node,
    key: &Keypair,
    job_id: JobId,
    receipt: verity_types::Receipt,
) -> Result<TxId, crate::mempool::AdmitError> {
    let body = TxBody::Challenge {
        job_id,
        outputs: receipt.stack_outputs,
        proof: receipt.proof,
    };
    node.sign_and_submit(key, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_is_proven_only_when_half_the_bond_pays_for_it() {
        let params = verity_ledger::Params::default();
        let min = min_bond_to_prove(1 << 20, &params);
        // The largest challenge the ledger takes (proof at its 512 KiB cap is refused; 256 KiB
        // is the planning size) costs less than what the challenger wins.
        let fee = params.fee_base + params.fee_per_kib * 256 + params.fee_per_proof;
        assert!(min / 2 >= fee + 1024, "min bond {min}, fee {fee}");
        // A zero bond (an attacker feeding wrong results to itself for free) never qualifies.
        assert!(min_bond_to_prove(verity_vm::MIN_MAX_CYCLES, &params) > 0);
    }

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
            let window = probe_window(&endpoints, epoch, 256);
            assert_eq!(window.len(), 256);
            seen.extend(window.into_iter().map(|(a, _)| a));
        }
        assert_eq!(seen.len(), 600, "three windows of 256 cover 600 endpoints");
    }

    #[test]
    fn the_sample_is_a_function_of_public_data_at_the_configured_rate() {
        let block = BlockId(Digest::blake3(b"block"));
        let jobs: Vec<JobId> = (0u32..10_000)
            .map(|i| JobId(Digest::blake3(&i.to_le_bytes())))
            .collect();
        let count = |rate| jobs.iter().filter(|j| sampled(&block, j, rate)).count();
        assert_eq!(count(0), 0);
        assert_eq!(count(10_000), 10_000);
        let quarter = count(2_500);
        assert!(
            (2_300..2_700).contains(&quarter),
            "{quarter} of 10,000 at 25%"
        );
        // Same inputs, same answer; another block draws another sample.
        let again = jobs.iter().filter(|j| sampled(&block, j, 2_500)).count();
        assert_eq!(again, quarter);
        let other = BlockId(Digest::blake3(b"other block"));
        let differs = jobs
            .iter()
            .filter(|j| sampled(&block, j, 2_500) != sampled(&other, j, 2_500))
            .count();
        assert!(differs > 1_000);
    }
}

/// Probes of one provider in one epoch.
#[derive(Default)]
struct Tally {
    probes: u32,
    answered: u32,
    latencies_ms: Vec<u32>,
}

/// Runs until `shutdown` fires: probes every announced provider endpoint each
/// `probe_interval`, and after each audit epoch ends files one signed `Audit` with what it saw.
pub async fn run_prober(
    node: Arc<Node>,
    config: AuditorConfig,
    counters: Arc<AuditorCounters>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use std::collections::BTreeMap;
    use verity_ledger::trust::{AUDIT_EPOCH_BLOCKS, MAX_AUDIT_ENTRIES, MAX_PROBES_PER_EPOCH};
    // Bounded in time, no redirects (a redirect could lead anywhere), bodies read up to a cap.
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a plain HTTP client");
    let tallies: Arc<std::sync::Mutex<BTreeMap<(u64, verity_types::Address), Tally>>> =
        Arc::default();
    let mut filed: std::collections::BTreeSet<u64> = Default::default();
    let mut ticker = tokio::time::interval(config.probe_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let state = node.state();
        let epoch = state.height / AUDIT_EPOCH_BLOCKS;

        // File audits for epochs that have ended (and can still be reported).
        let ready: Vec<u64> = {
            let t = tallies.lock().unwrap_or_else(|e| e.into_inner());
            t.keys()
                .map(|(e, _)| *e)
                .filter(|e| *e < epoch && !filed.contains(e))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        for e in ready {
            filed.insert(e);
            let liveness: Vec<verity_types::Liveness> = {
                let mut t = tallies.lock().unwrap_or_else(|e| e.into_inner());
                let keys: Vec<_> = t.keys().filter(|(te, _)| *te == e).copied().collect();
                keys.into_iter()
                    .filter_map(|k| t.remove(&k).map(|tally| (k.1, tally)))
                    .take(MAX_AUDIT_ENTRIES)
                    .map(|(provider, mut tally)| {
                        tally.latencies_ms.sort_unstable();
                        verity_types::Liveness {
                            provider,
                            probes: tally.probes.min(MAX_PROBES_PER_EPOCH),
                            answered: tally.answered.min(tally.probes.min(MAX_PROBES_PER_EPOCH)),
                            median_latency_ms: tally
                                .latencies_ms
                                .get(tally.latencies_ms.len() / 2)
                                .copied()
                                .unwrap_or(0),
                        }
                    })
                    .collect()
            };
            if liveness.is_empty() || e + 2 < epoch {
                continue;
            }
            let body = TxBody::Audit(verity_types::AuditReport { epoch: e, liveness });
            match node.sign_and_submit(&config.key, body) {
                Ok(_) => {
                    counters.audits_filed.fetch_add(1, Ordering::Relaxed);
                    info!(epoch = e, "filed a liveness audit");
                }
                Err(err) => warn!(epoch = e, "cannot file the liveness audit: {err}"),
            }
        }
        filed.retain(|e| e + 3 >= epoch);

        // Probe this epoch's share of the announced endpoints, concurrently: an audit covers
        // at most MAX_AUDIT_ENTRIES providers, so with more of them the window rotates with
        // the epoch and every provider is audited in turn.
        for (provider, endpoint) in probe_window(&state.endpoints, epoch, MAX_AUDIT_ENTRIES) {
            if !probe_allowed(&endpoint, config.probe_private_hosts) {
                continue;
            }
            let (http, tallies, counters) = (http.clone(), tallies.clone(), counters.clone());
            tokio::spawn(async move {
                let nonce = hex::encode(rand::random::<[u8; 16]>());
                let url = format!(
                    "{}{}?nonce={nonce}",
                    endpoint.trim_end_matches('/'),
                    verity_api::routes::PING
                );
                let started = std::time::Instant::now();
                let answered = match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        match read_capped(r, MAX_PING_BYTES)
                            .await
                            .and_then(|b| serde_json::from_slice::<verity_api::PingAnswer>(&b).ok())
                        {
                            Some(a) => {
                                let mut sig = [0u8; 64];
                                a.provider == provider
                                    && hex::decode_to_slice(&a.signature, &mut sig).is_ok()
                                    && provider.verify(
                                        &verity_api::ping_message(&provider, &nonce),
                                        &verity_types::Signature(sig),
                                    )
                            }
                            None => false,
                        }
                    }
                    _ => false,
                };
                let ms = started.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
                counters.probes.fetch_add(1, Ordering::Relaxed);
                if answered {
                    counters.probes_answered.fetch_add(1, Ordering::Relaxed);
                }
                let mut t = tallies.lock().unwrap_or_else(|e| e.into_inner());
                let tally = t.entry((epoch, provider)).or_default();
                tally.probes += 1;
                if answered {
                    tally.answered += 1;
                    tally.latencies_ms.push(ms);
                }
            });
        }
    }
}

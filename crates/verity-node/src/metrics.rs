//! Prometheus metrics (`GET /metrics`, the text exposition format), with the official
//! `prometheus-client`. Events update counters and histograms as they happen (a block
//! committed, a transaction admitted or refused, a proof verified); values the node already
//! holds (heights, mempool, jobs by state, consensus and auditor figures) are read at scrape
//! time. Every name and label is listed in `docs/API.md`; labels take values from fixed sets
//! only (states, stages, reasons), so no client can grow the series.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use verity_api::{AuditorView, Head, NetworkStats};
use verity_ledger::{BlockOutcome, TxError};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TxLabels {
    /// `mempool` (admission from a client), `gossip` (from another validator) or `block` (the
    /// ledger's verdict in a committed block).
    pub stage: &'static str,
    /// `accepted` or `rejected`.
    pub result: &'static str,
    /// Why it was rejected (`TxError::reason`, `AdmitError::reason`), `none` if accepted.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `valid` or `invalid`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuditLabel {
    pub activity: &'static str,
}

/// The state's size, as a scrape reports it.
#[derive(Debug, Clone, Copy, Default)]
pub struct StateFigures {
    /// Entries of the state.
    pub entries: u64,
    /// Of which this node holds in memory.
    pub in_memory: u64,
}

impl StateFigures {
    pub fn of(state: &verity_ledger::State) -> StateFigures {
        StateFigures {
            entries: state.entry_count(),
            in_memory: state.held_in_memory() as u64,
        }
    }
}

/// Every metric the node exports.
pub struct Metrics {
    registry: Registry,
    height: Gauge,
    finalized_height: Gauge,
    block_timestamp: Gauge,
    block_interval: Histogram,
    finality_latency: Histogram,
    block_txs: Histogram,
    mempool: Gauge,
    providers_online: Gauge,
    transactions: Family<TxLabels, Counter>,
    jobs: Family<StateLabel, Gauge>,
    proofs: Family<ResultLabel, Counter>,
    proof_verify: Histogram,
    validators: Gauge,
    validators_seen: Gauge,
    state_entries: Gauge,
    state_entries_in_memory: Gauge,
    nullified_views: Counter,
    audits: Family<AuditLabel, Counter>,
    /// The previous block's timestamp, for the interval.
    last_block_ms: Mutex<Option<u64>>,
    /// One scrape at a time: counters that catch up to totals kept elsewhere read, then add.
    scrape: Mutex<()>,
}

fn seconds_buckets(start: f64, count: u16) -> Histogram {
    Histogram::new(exponential_buckets(start, 2.0, count))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("verity");
        let m = Metrics {
            height: Gauge::default(),
            finalized_height: Gauge::default(),
            block_timestamp: Gauge::default(),
            // 10 ms to ~80 s.
            block_interval: seconds_buckets(0.01, 14),
            finality_latency: seconds_buckets(0.01, 14),
            block_txs: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            mempool: Gauge::default(),
            providers_online: Gauge::default(),
            transactions: Family::default(),
            jobs: Family::default(),
            proofs: Family::default(),
            // 100 µs to ~3 s.
            proof_verify: seconds_buckets(0.0001, 16),
            validators: Gauge::default(),
            validators_seen: Gauge::default(),
            state_entries: Gauge::default(),
            state_entries_in_memory: Gauge::default(),
            nullified_views: Counter::default(),
            audits: Family::default(),
            last_block_ms: Mutex::new(None),
            scrape: Mutex::new(()),
            registry: Registry::default(),
        };
        m.register_chain(&mut registry);
        m.register_work(&mut registry);
        Metrics { registry, ..m }
    }

    /// The chain's progress and this node's view of it.
    fn register_chain(&self, r: &mut Registry) {
        let m = self;
        r.register(
            "chain_height",
            "Height of the newest committed block",
            m.height.clone(),
        );
        r.register(
            "state_entries",
            "Entries of the ledger state (accounts, stakes, jobs, ...) after the newest block",
            m.state_entries.clone(),
        );
        r.register(
            "state_entries_in_memory",
            "Entries of the state this node holds in memory; the rest it reads from its database",
            m.state_entries_in_memory.clone(),
        );
        r.register(
            "finalized_height",
            "Newest finalized block (equal to the height for a single producer)",
            m.finalized_height.clone(),
        );
        r.register_with_unit(
            "block_timestamp",
            "The newest block's timestamp, by its proposer's clock (Unix time)",
            Unit::Seconds,
            m.block_timestamp.clone(),
        );
        r.register_with_unit(
            "block_interval",
            "Time between consecutive blocks, by their timestamps",
            Unit::Seconds,
            m.block_interval.clone(),
        );
        r.register_with_unit(
            "finality_latency",
            "From a block's timestamp (its proposer's clock) to this node committing it as final",
            Unit::Seconds,
            m.finality_latency.clone(),
        );
        r.register(
            "block_transactions",
            "Transactions per committed block",
            m.block_txs.clone(),
        );
        r.register(
            "mempool_transactions",
            "Transactions waiting in this node's mempool",
            m.mempool.clone(),
        );
        r.register(
            "providers_online",
            "Staked providers that sent a heartbeat recently",
            m.providers_online.clone(),
        );
    }

    /// What flows through: transactions, jobs, proofs, consensus and auditing.
    fn register_work(&self, r: &mut Registry) {
        let m = self;
        r.register(
            "transactions",
            "Transactions admitted or refused by the mempool, and applied or rejected in blocks, by reason",
            m.transactions.clone(),
        );
        r.register("jobs", "Jobs on the ledger, by state", m.jobs.clone());
        r.register(
            "proofs_verified",
            "STARK proofs this process verified, by result",
            m.proofs.clone(),
        );
        r.register_with_unit(
            "proof_verify",
            "Time to verify one STARK proof",
            Unit::Seconds,
            m.proof_verify.clone(),
        );
        r.register(
            "consensus_validators",
            "Validators in the BFT set (0 for a single producer)",
            m.validators.clone(),
        );
        r.register(
            "consensus_validators_seen",
            "Validators whose votes this node saw in the last 20 views: its live peers",
            m.validators_seen.clone(),
        );
        r.register(
            "consensus_nullified_views",
            "Views skipped without a block",
            m.nullified_views.clone(),
        );
        r.register(
            "auditor_activity",
            "What this node's auditor has done since it started, by activity",
            m.audits.clone(),
        );
    }

    /// A block was committed: its interval, latency to commit, and each transaction's verdict.
    pub fn block_committed(&self, timestamp_ms: u64, now_ms: u64, outcome: &BlockOutcome) {
        let mut last = self.last_block_ms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(previous) = last.replace(timestamp_ms) {
            self.block_interval
                .observe(timestamp_ms.saturating_sub(previous) as f64 / 1000.0);
        }
        drop(last);
        self.finality_latency
            .observe(now_ms.saturating_sub(timestamp_ms) as f64 / 1000.0);
        self.block_txs.observe(outcome.tx_results.len() as f64);
        for result in &outcome.tx_results {
            self.transaction("block", result.as_ref().err().map(TxError::reason));
        }
    }

    /// A transaction reached the mempool: `refused` with the reason, or admitted.
    pub fn admission(&self, refused: Option<&'static str>) {
        self.transaction("mempool", refused);
    }

    /// A transaction another validator gossiped: taken, or not (often `duplicate`).
    pub fn gossip_admission(&self, refused: Option<&'static str>) {
        self.transaction("gossip", refused);
    }

    fn transaction(&self, stage: &'static str, rejected: Option<&'static str>) {
        let labels = TxLabels {
            stage,
            result: if rejected.is_some() {
                "rejected"
            } else {
                "accepted"
            },
            reason: rejected.unwrap_or("none"),
        };
        self.transactions.get_or_create(&labels).inc();
    }

    pub fn proof_verified(&self, took: Duration, valid: bool) {
        self.proof_verify.observe(took.as_secs_f64());
        let result = if valid { "valid" } else { "invalid" };
        self.proofs.get_or_create(&ResultLabel { result }).inc();
    }

    /// The scrape: gauges set from what the node holds now, then everything encoded.
    pub fn render(&self, head: &Head, stats: &NetworkStats, state: StateFigures) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.state_entries.set(state.entries as i64);
        self.state_entries_in_memory.set(state.in_memory as i64);
        self.height.set(head.height as i64);
        self.block_timestamp.set((head.timestamp_ms / 1000) as i64);
        self.mempool.set(head.mempool as i64);
        self.providers_online.set(head.providers_online as i64);
        let finalized = head
            .consensus
            .as_ref()
            .map_or(head.height, |c| c.finalized_height);
        self.finalized_height.set(finalized as i64);
        if let Some(c) = &head.consensus {
            self.validators.set(c.validators as i64);
            self.validators_seen.set(c.validators_seen as i64);
            catch_up(&self.nullified_views, c.nullified_views);
        }
        for (state, n) in &stats.jobs_by_state {
            let label = StateLabel {
                state: state.name(),
            };
            self.jobs.get_or_create(&label).set(*n as i64);
        }
        if let Some(a) = &head.auditor {
            // The auditor keeps its own totals; the counters catch up to them.
            for (activity, n) in auditor_figures(a) {
                catch_up(&self.audits.get_or_create(&AuditLabel { activity }), n);
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Raises `counter` to `total`, a count kept elsewhere (callers hold the scrape lock).
fn catch_up(counter: &Counter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

fn auditor_figures(a: &AuditorView) -> [(&'static str, u64); 11] {
    [
        ("sampled", a.sampled),
        ("matched", a.matched),
        ("challenged", a.challenged),
        ("unverifiable", a.unverifiable),
        ("probes", a.probes),
        ("probes_answered", a.probes_answered),
        ("audits_filed", a.audits_filed),
        ("canary_commits", a.canary_commits),
        ("canaries_sent", a.canaries_sent),
        ("canaries_challenged", a.canaries_challenged),
        ("canary_reveals", a.canary_reveals),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use verity_api::{AuditorView, ConsensusView, Head, NetworkStats};
    use verity_types::Digest;

    use super::*;

    fn head() -> Head {
        Head {
            chain_id: "test".into(),
            height: 7,
            timestamp_ms: 1_000,
            state_root: Digest::blake3(b"root"),
            mempool: 2,
            providers_online: 1,
            block_interval_ms: 250,
            consensus: Some(ConsensusView {
                validators: 4,
                validators_seen: 3,
                voters: vec![],
                finalized_height: 7,
                finalized_view: 9,
                current_view: 10,
                last_finalized_ms: 1_000,
                blocks_proposed: 2,
                blocks_rejected: 0,
                store_failures: 0,
                nullified_views: 1,
                faults_seen: 0,
            }),
            auditor: Some(AuditorView {
                probes: 5,
                ..AuditorView::default()
            }),
        }
    }

    /// The metric families a text exposition declares (`# TYPE name kind`).
    fn families(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_scrape_reports_what_the_node_holds_and_counts_catch_up() {
        let m = Metrics::new();
        let text = m.render(&head(), &NetworkStats::default(), StateFigures::default());
        assert!(text.contains("verity_finalized_height 7\n"), "{text}");
        assert!(
            text.contains("verity_consensus_validators_seen 3\n"),
            "{text}"
        );
        assert!(
            text.contains("verity_auditor_activity_total{activity=\"probes\"} 5\n"),
            "{text}"
        );
        // The auditor's totals grew by 2: the counter follows, once, not by 5 again.
        let mut later = head();
        later.auditor.as_mut().unwrap().probes = 7;
        let text = m.render(&later, &NetworkStats::default(), StateFigures::default());
        assert!(
            text.contains("verity_auditor_activity_total{activity=\"probes\"} 7\n"),
            "{text}"
        );
        m.admission(Some("bad_nonce"));
        m.proof_verified(Duration::from_millis(3), false);
        let text = m.render(&later, &NetworkStats::default(), StateFigures::default());
        assert!(
            text.contains(r#"verity_transactions_total{stage="mempool",result="rejected",reason="bad_nonce"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"verity_proofs_verified_total{result="invalid"} 1"#),
            "{text}"
        );
    }

    /// `deploy/grafana/verity-dashboard.json` queries only metrics the node or the provider
    /// exports: renaming one without the dashboard fails here.
    #[test]
    fn the_dashboard_reads_only_metrics_the_node_exports() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/grafana/verity-dashboard.json"
        );
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        // A labelled family is declared once it has a series: give each one.
        let node = Metrics::new();
        node.admission(None);
        node.proof_verified(Duration::from_millis(1), true);
        let mut stats = NetworkStats::default();
        stats
            .jobs_by_state
            .insert(verity_ledger::JobState::Finalized, 1);
        let mut exported = families(&node.render(&head(), &stats, StateFigures::default()));
        exported.extend(families(
            &verity_provider::metrics::ProviderMetrics::new().render(),
        ));
        let mut queried = 0;
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for (i, _) in expr.match_indices("verity_") {
                    let name: String = expr[i..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    let family = ["_bucket", "_sum", "_count", "_total"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s))
                        .unwrap_or(&name);
                    assert!(
                        exported.contains(family),
                        "panel {} queries {name}, which nothing exports ({exported:?})",
                        panel["title"]
                    );
                    queried += 1;
                }
            }
        }
        assert!(queried >= 20, "only {queried} metric references found");
    }
}

//! Trust profiles: a deterministic function of what the ledger recorded about a provider.
//!
//! The formula and the reasons for each term are in `docs/TRUST.md`. Everything is integer
//! arithmetic over ledger data, so every node computes the same profile, and an offer's
//! `min_trust` is enforced by the state transition itself.

use serde::{Deserialize, Serialize};
use verity_types::Address;

use crate::state::{Job, JobState, ProviderStats, State};

/// How many recent lock-to-fulfil latencies each provider's record keeps (for the median and
/// the 95th percentile): recent behaviour, bounded state.
pub const LATENCY_WINDOW: usize = 64;

/// Provider stake at which the stake term stops limiting the score.
pub const FULL_TRUST_STAKE: u64 = 100_000;

/// Blocks per audit epoch: each validator files at most one `Audit` per epoch.
pub const AUDIT_EPOCH_BLOCKS: u64 = 100;
/// Providers in one audit.
pub const MAX_AUDIT_ENTRIES: usize = 256;
/// Probes of one provider in one audit (a probe every ~second of a 100-block epoch is far less).
pub const MAX_PROBES_PER_EPOCH: u32 = 10_000;
/// Longest announced endpoint.
pub const MAX_ENDPOINT_BYTES: usize = 256;
/// Canaries one validator may commit to per epoch.
pub const MAX_CANARIES_PER_EPOCH: u32 = 64;
/// Epochs after a canary epoch ends within which its seed may be revealed.
pub const CANARY_REVEAL_EPOCHS: u64 = 5;
/// Share of validator stake (per 10,000) burned when a proof contradicts its canary reveal.
pub const FALSE_AUDIT_SLASH_BP: u32 = 1_000;

/// A provider's public record and score.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustProfile {
    pub provider: Address,
    /// Provider stake (total, including what is locked as collateral).
    pub stake: u64,
    pub locked: u64,
    /// Jobs it locked and delivered in time (jobs it submitted itself are not counted).
    pub fulfilled: u64,
    /// Jobs it delivered after another provider's lock lapsed.
    pub rescued: u64,
    /// Locks it let lapse (collateral slashed).
    pub slashed: u64,
    /// Optimistic results proven wrong (bond lost).
    pub overturned: u64,
    /// Fulfilments of its own jobs: recorded, but not evidence of anything.
    pub self_dealt: u64,
    /// Locks of private-input jobs released without a verdict (inputs never provided, or
    /// given up as unusable): neither a success nor a failure, shown for clients to judge.
    pub released: u64,
    /// Delivered in time, per 10,000 locks that have ended (`None` before any has).
    pub fulfilment_rate_bp: Option<u32>,
    /// Lock-to-fulfil latency over the last [`LATENCY_WINDOW`] fulfilments, in blocks.
    pub latency_p50_blocks: Option<u64>,
    pub latency_p95_blocks: Option<u64>,
    /// Announced probe endpoint.
    pub endpoint: Option<String>,
    /// Stake-weighted share of audit probes answered, per 10,000 (`None` before any audit).
    pub uptime_bp: Option<u32>,
    /// Audits that covered it, and the median probe latency in the latest one.
    pub audits: u64,
    pub probe_latency_ms: Option<u32>,
    /// Revealed canaries it answered right, and those it got wrong or let lapse.
    pub canaries_passed: u64,
    pub canaries_failed: u64,
    /// Canaries passed per 10,000 judged (`None` before any).
    pub canary_pass_bp: Option<u32>,
    /// 0..=1000; see [`score`], [`with_uptime`] and [`with_canaries`].
    pub score: u32,
}

/// The score with liveness audits: `score × (10,000 + uptime_bp) / 20,000`, i.e. a provider
/// that never answers keeps half its score, one that always answers keeps all of it; before
/// any audit the score is unchanged.
pub fn with_uptime(score: u32, uptime_bp: Option<u32>) -> u32 {
    match uptime_bp {
        None => score,
        Some(u) => (u64::from(score) * (10_000 + u64::from(u.min(10_000))) / 20_000) as u32,
    }
}

/// The score with canaries: `score × (10,000 + pass_bp) / 20,000`, the same shape as
/// [`with_uptime`]: failing every known-answer job halves the score; before any canary it is
/// unchanged.
pub fn with_canaries(score: u32, pass_bp: Option<u32>) -> u32 {
    with_uptime(score, pass_bp)
}

/// The score, 0..=1000.
///
/// `evidence = 1000 · (good + 1) / (good + bad + 2)` with `good = fulfilled + rescued` and
/// `bad = slashed + 3 · overturned`, i.e. a success rate with a prior of one success and one
/// failure (a new provider starts at 500); then capped by stake:
/// `cap = 500 + 500 · min(stake, FULL_TRUST_STAKE) / FULL_TRUST_STAKE`.
pub fn score(stats: &ProviderStats, stake: u64) -> u32 {
    let good = u128::from(stats.fulfilled) + u128::from(stats.rescued);
    let bad = u128::from(stats.slashed) + 3 * u128::from(stats.overturned);
    let evidence = 1000 * (good + 1) / (good + bad + 2);
    let stake = u128::from(stake.min(FULL_TRUST_STAKE));
    let cap = 500 + 500 * stake / u128::from(FULL_TRUST_STAKE);
    evidence.min(cap) as u32
}

/// The `p`-th percentile (0..=100) of `values`, nearest-rank.
fn percentile(values: &[u64], p: usize) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

impl TrustProfile {
    /// The profile of `provider` in `state` (a provider with no record gets the prior).
    pub fn of(state: &State, provider: &Address) -> TrustProfile {
        let stats = state.providers.get(provider).cloned().unwrap_or_default();
        let stake = state.stakes.get(provider).map_or(0, |s| s.provider);
        let ended = stats.fulfilled + stats.slashed + stats.overturned;
        let liveness = state.liveness.get(provider);
        let uptime_bp = liveness
            .filter(|l| l.weighted_probes > 0)
            .map(|l| (l.weighted_answered * 10_000 / l.weighted_probes).min(10_000) as u32);
        let canaries = state.canaries.get(provider).cloned().unwrap_or_default();
        let judged = canaries.passed + canaries.failed;
        let canary_pass_bp = (judged > 0)
            .then(|| (u128::from(canaries.passed) * 10_000 / u128::from(judged)) as u32);
        TrustProfile {
            provider: *provider,
            stake,
            locked: stats.locked,
            fulfilled: stats.fulfilled,
            rescued: stats.rescued,
            slashed: stats.slashed,
            overturned: stats.overturned,
            self_dealt: stats.self_dealt,
            released: stats.released,
            fulfilment_rate_bp: (ended > 0)
                .then(|| (u128::from(stats.fulfilled) * 10_000 / u128::from(ended)) as u32),
            latency_p50_blocks: percentile(&stats.recent_latencies, 50),
            latency_p95_blocks: percentile(&stats.recent_latencies, 95),
            endpoint: state.endpoints.get(provider).cloned(),
            uptime_bp,
            audits: liveness.map_or(0, |l| l.reports),
            probe_latency_ms: liveness
                .filter(|l| l.weighted_answered > 0)
                .map(|l| l.last_median_latency_ms),
            canaries_passed: canaries.passed,
            canaries_failed: canaries.failed,
            canary_pass_bp,
            score: with_canaries(with_uptime(score(&stats, stake), uptime_bp), canary_pass_bp),
        }
    }
}

/// A validator's public record as an auditor.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditorProfile {
    pub validator: Address,
    /// Validator stake: the weight of its liveness audits.
    pub stake: u64,
    pub record: crate::state::AuditorRecord,
    /// Canary commitments whose reveal window closed without a reveal.
    pub unrevealed: u64,
}

impl AuditorProfile {
    pub fn of(state: &State, validator: &Address) -> AuditorProfile {
        let epoch = state.height / AUDIT_EPOCH_BLOCKS;
        let unrevealed = state
            .canary_commits
            .iter()
            .filter(|((e, who), c)| {
                who == validator && !c.revealed && e + CANARY_REVEAL_EPOCHS < epoch
            })
            .count() as u64;
        AuditorProfile {
            validator: *validator,
            stake: state.stakes.get(validator).map_or(0, |s| s.validator),
            record: state.auditors.get(validator).cloned().unwrap_or_default(),
            unrevealed,
        }
    }

    /// Every staked validator, and every address with an auditor record.
    pub fn all(state: &State) -> Vec<AuditorProfile> {
        let mut who: std::collections::BTreeSet<Address> = state.auditors.keys().collect();
        who.extend(
            state
                .stakes
                .iter()
                .filter(|(_, s)| s.validator > 0)
                .map(|(a, _)| a),
        );
        who.iter().map(|a| AuditorProfile::of(state, a)).collect()
    }
}

/// A provider's record rebuilt from `jobs`, every job since genesis with its lock,
/// fulfilment and final state: the state's, and the archive's for jobs past their retention
/// (`Params::job_retention`). The ledger keeps [`ProviderStats`] incrementally; this is the
/// independent definition it must agree with, and what an explorer or auditor can recompute.
pub fn stats_from_history<'a>(
    jobs: impl IntoIterator<Item = &'a Job>,
    provider: &Address,
) -> ProviderStats {
    let mut stats = ProviderStats::default();
    let mut fulfilments: Vec<(u64, u64)> = Vec::new();
    for job in jobs {
        let Some(lock) = job.phase.lock() else {
            continue;
        };
        let delivery = job.phase.delivery();
        let rescued = delivery.is_some_and(|d| d.prover != lock.provider);
        if lock.provider == *provider {
            stats.locked += 1;
            if job.state() == JobState::Slashed || rescued {
                stats.slashed += 1;
            }
            // A locked job ends expired only when its lock was released (private inputs).
            if job.state() == JobState::Expired {
                stats.released += 1;
            }
        }
        if let Some(delivery) = delivery.filter(|d| d.prover == *provider) {
            if rescued {
                stats.rescued += 1;
            } else if job.client == *provider {
                stats.self_dealt += 1;
            } else {
                let latency = delivery.height - lock.height;
                stats.fulfilled += 1;
                stats.total_latency_blocks += latency;
                fulfilments.push((delivery.height, latency));
            }
            if job.state() == JobState::Overturned {
                stats.overturned += 1;
            }
        }
    }
    fulfilments.sort_unstable();
    let skip = fulfilments.len().saturating_sub(LATENCY_WINDOW);
    stats.recent_latencies = fulfilments.into_iter().skip(skip).map(|(_, l)| l).collect();
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(fulfilled: u64, slashed: u64, overturned: u64) -> ProviderStats {
        ProviderStats {
            locked: fulfilled + slashed + overturned,
            fulfilled,
            slashed,
            overturned,
            ..ProviderStats::default()
        }
    }

    #[test]
    fn a_new_provider_starts_at_the_prior_and_moves_with_evidence() {
        assert_eq!(score(&stats(0, 0, 0), FULL_TRUST_STAKE), 500);
        assert_eq!(score(&stats(8, 0, 0), FULL_TRUST_STAKE), 900);
        assert_eq!(score(&stats(0, 1, 0), FULL_TRUST_STAKE), 333);
        // A wrong result weighs three missed deadlines.
        assert_eq!(
            score(&stats(10, 0, 1), FULL_TRUST_STAKE),
            score(&stats(10, 3, 0), FULL_TRUST_STAKE)
        );
    }

    #[test]
    fn stake_caps_the_score() {
        let perfect = stats(1_000, 0, 0);
        assert_eq!(score(&perfect, 0), 500);
        assert_eq!(score(&perfect, FULL_TRUST_STAKE / 2), 750);
        assert_eq!(score(&perfect, FULL_TRUST_STAKE * 10), 999);
    }

    #[test]
    fn uptime_scales_the_score_between_half_and_all() {
        assert_eq!(with_uptime(800, None), 800);
        assert_eq!(with_uptime(800, Some(10_000)), 800);
        assert_eq!(with_uptime(800, Some(5_000)), 600);
        assert_eq!(with_uptime(800, Some(0)), 400);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=20).collect();
        assert_eq!(percentile(&v, 50), Some(10));
        assert_eq!(percentile(&v, 95), Some(19));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }
}

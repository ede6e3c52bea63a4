//! `/providers/{address}`: a provider's record and its trust score explained term by term,
//! with the arithmetic of `docs/TRUST.md` filled in with its numbers.

use maud::{Markup, html};
use verity_api::{Head, JobSummary, ProviderView};
use verity_ledger::trust::{FULL_TRUST_STAKE, score, with_canaries, with_uptime};

use super::jobs::job_rows;
use super::{layout, row};
use crate::format::{full_id, or_dash, percent_bp};

/// Each step of the score, as the ledger computes it (`verity_ledger::trust`).
#[derive(Debug, PartialEq, Eq)]
pub struct ScoreSteps {
    pub good: u64,
    pub bad: u64,
    pub evidence: u64,
    pub cap: u64,
    pub base: u32,
    pub after_uptime: u32,
    pub after_canaries: u32,
}

pub fn score_steps(p: &ProviderView) -> ScoreSteps {
    let good = p.stats.fulfilled + p.stats.rescued;
    let bad = p.stats.slashed + 3 * p.stats.overturned;
    let evidence = 1000 * (good + 1) / (good + bad + 2);
    let stake = p.profile.stake.min(FULL_TRUST_STAKE);
    let cap = 500 + 500 * stake / FULL_TRUST_STAKE;
    // The ledger's own functions, so the page cannot drift from the rule it explains.
    let base = score(&p.stats, p.profile.stake);
    let after_uptime = with_uptime(base, p.profile.uptime_bp);
    ScoreSteps {
        good,
        bad,
        evidence,
        cap,
        base,
        after_uptime,
        after_canaries: with_canaries(after_uptime, p.profile.canary_pass_bp),
    }
}

fn explanation(p: &ProviderView) -> Markup {
    let s = score_steps(p);
    let f = &p.profile;
    html! {
        ol.score-terms {
            li { strong { "Evidence" } ": good = fulfilled + rescued = " (f.fulfilled) " + " (f.rescued) " = " (s.good)
                 "; bad = slashed + 3 × overturned = " (f.slashed) " + 3 × " (f.overturned) " = " (s.bad)
                 "; 1000 × (good + 1) / (good + bad + 2) = " strong { (s.evidence) } }
            li { strong { "Stake cap" } ": 500 + 500 × min(stake, " (FULL_TRUST_STAKE) ") / " (FULL_TRUST_STAKE)
                 " with stake " (f.stake) " = " strong { (s.cap) } "; the lower of the two: " strong { (s.base) } }
            li { strong { "Uptime" } ": " @match f.uptime_bp {
                Some(u) => { "answered " (percent_bp(u)) " of audit probes: × (10000 + " (u) ") / 20000 = " strong { (s.after_uptime) } }
                None => { "no liveness audit yet: unchanged, " strong { (s.after_uptime) } }
            } }
            li { strong { "Canaries" } ": " @match f.canary_pass_bp {
                Some(c) => { "passed " (f.canaries_passed) " of " (f.canaries_passed + f.canaries_failed) " known-answer jobs: × (10000 + " (c) ") / 20000 = " strong { (s.after_canaries) } }
                None => { "none judged yet: unchanged, " strong { (s.after_canaries) } }
            } }
        }
        // The page's own arithmetic against the ledger's: a formula changed in one place only.
        @if u64::from(s.base) != s.evidence.min(s.cap) || s.after_canaries != p.trust_score {
            p.error { "This explanation gives " (s.evidence.min(s.cap)) " before uptime and canaries, and "
                (s.after_canaries) " in all, but the ledger says " (s.base) " and " (p.trust_score) "." }
        }
        p.muted { "Why each term is there: docs/TRUST.md in the repository." }
    }
}

fn record(p: &ProviderView) -> Markup {
    let f = &p.profile;
    html! {
        dl.summary {
            (row("Stake", html! { (p.stake.provider) " (" (p.stake.provider_locked) " locked as collateral)" }))
            (row("Online", html! { @if p.online { span.ok { "online" } } @else { span.muted { "offline" } }
                @if let Some(h) = p.last_seen_height { ", last heartbeat at block " (h) } }))
            (row("Endpoint", html! { (or_dash(f.endpoint.as_deref())) }))
            (row("Fulfilled", html! { (f.fulfilled) }))
            (row("Rescued", html! { (f.rescued) }))
            (row("Slashed", html! { (f.slashed) }))
            (row("Overturned", html! { (f.overturned) }))
            (row("Own jobs (not counted)", html! { (f.self_dealt) }))
            (row("Released", html! { (f.released) }))
            (row("Delivered in time", html! { (or_dash(f.fulfilment_rate_bp.map(percent_bp))) }))
            (row("Latency, lock to result", html! {
                "p50 " (or_dash(f.latency_p50_blocks)) ", p95 " (or_dash(f.latency_p95_blocks)) " blocks"
            }))
            (row("Uptime", html! { (or_dash(f.uptime_bp.map(percent_bp))) " over " (f.audits) " audits"
                @if let Some(ms) = f.probe_latency_ms { ", probe latency " (ms) " ms" } }))
            (row("Canaries", html! { (f.canaries_passed) " passed, " (f.canaries_failed) " failed" }))
        }
    }
}

pub fn provider(head: &Head, p: &ProviderView, jobs: &[JobSummary]) -> Markup {
    layout(
        "Provider",
        head,
        html! {
            h1 { "Provider " span.score-big title="Trust score, 0–1000" { (p.trust_score) } }
            p { (full_id(&p.address.to_string())) }
            h2 { "Trust score, term by term" }
            (explanation(p))
            h2 { "Record" }
            (record(p))
            h2 { "Jobs" }
            (job_rows(jobs))
        },
    )
}

#[cfg(test)]
mod tests {
    use verity_api::{Head, ProviderView};
    use verity_ledger::{ProviderStats, StakeInfo, TrustProfile};
    use verity_types::{Digest, Keypair};

    use super::*;

    fn head() -> Head {
        Head {
            chain_id: "test".into(),
            height: 10,
            timestamp_ms: 0,
            state_root: Digest::blake3(b"root"),
            mempool: 0,
            providers_online: 1,
            block_interval_ms: 250,
            consensus: None,
            auditor: None,
        }
    }

    /// A provider with a mixed record: 8 fulfilled, 1 rescued, 1 slashed, 1 overturned,
    /// 90% uptime, 3 of 4 canaries, 40,000 stake.
    fn provider(endpoint: &str) -> ProviderView {
        let address = Keypair::from_seed([7; 32]).address();
        let stats = ProviderStats {
            fulfilled: 8,
            rescued: 1,
            slashed: 1,
            overturned: 1,
            ..ProviderStats::default()
        };
        let (uptime_bp, canary_pass_bp) = (Some(9_000), Some(7_500));
        let score = with_canaries(
            with_uptime(score(&stats, 40_000), uptime_bp),
            canary_pass_bp,
        );
        ProviderView {
            address,
            stake: StakeInfo {
                provider: 40_000,
                ..StakeInfo::default()
            },
            trust_score: score,
            profile: TrustProfile {
                provider: address,
                stake: 40_000,
                locked: 0,
                fulfilled: 8,
                rescued: 1,
                slashed: 1,
                overturned: 1,
                self_dealt: 0,
                released: 0,
                fulfilment_rate_bp: Some(8_000),
                latency_p50_blocks: Some(3),
                latency_p95_blocks: Some(9),
                endpoint: Some(endpoint.into()),
                uptime_bp,
                audits: 2,
                probe_latency_ms: Some(12),
                canaries_passed: 3,
                canaries_failed: 1,
                canary_pass_bp,
                score,
            },
            stats,
            online: true,
            last_seen_height: Some(9),
        }
    }

    #[test]
    fn the_score_is_explained_with_the_ledgers_numbers() {
        let p = provider("http://127.0.0.1:1");
        let steps = score_steps(&p);
        // good 9, bad 1 + 3 = 4: 1000 × 10 / 15 = 666; cap 500 + 500 × 0.4 = 700.
        assert_eq!(
            (steps.good, steps.bad, steps.evidence, steps.cap),
            (9, 4, 666, 700)
        );
        assert_eq!(u64::from(steps.base), steps.evidence.min(steps.cap));
        // × 19,000 / 20,000 = 632, then × 17,500 / 20,000 = 553.
        assert_eq!((steps.after_uptime, steps.after_canaries), (632, 553));
        assert_eq!(steps.after_canaries, p.trust_score);
        let html = super::provider(&head(), &p, &[]).into_string();
        assert!(html.contains("= <strong>666</strong>"), "{html}");
        assert!(html.contains("<strong>553</strong>"), "{html}");
        assert!(!html.contains("the ledger says"), "{html}");
    }

    #[test]
    fn a_hostile_endpoint_is_shown_as_text() {
        let p = provider("http://x/<script>alert(1)</script>");
        let html = super::provider(&head(), &p, &[]).into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
    }
}

//! Provider endpoints and liveness audits: who may file them, when, and how they weigh.

mod common;

use common::*;
use verity_ledger::{TrustProfile, TxError};
use verity_types::{AuditReport, Liveness, Role, TxBody};

fn liveness(provider: &str, probes: u32, answered: u32) -> Liveness {
    Liveness {
        provider: addr(provider),
        probes,
        answered,
        median_latency_ms: 12,
    }
}

fn audit(epoch: u64, entries: Vec<Liveness>) -> TxBody {
    TxBody::Audit(AuditReport {
        epoch,
        liveness: entries,
    })
}

/// A chain where `p1` announced an endpoint and `watcher` (3,000) and `client` (1,000) are
/// staked validators, past the end of audit epoch 0.
fn audited_chain() -> Chain {
    // `client` joins the genesis validator set (1,000); `watcher` is in it with 1,000 and
    // stakes 2,000 more.
    let mut genesis = Chain::new().genesis;
    genesis.stakes.push(verity_ledger::GenesisStake {
        address: addr("client"),
        role: Role::Validator,
        amount: 1_000,
    });
    let mut chain = Chain::from_genesis(genesis);
    let announce = TxBody::Announce {
        endpoint: "http://127.0.0.1:7000".into(),
    };
    chain.send("p1", announce).unwrap();
    let stake = TxBody::Stake {
        role: Role::Validator,
        amount: 2_000,
    };
    chain.send("watcher", stake).unwrap();
    chain.advance_to(100);
    chain
}

#[test]
fn only_staked_providers_announce_http_endpoints() {
    let mut chain = Chain::new();
    let ok = |e: &str| TxBody::Announce { endpoint: e.into() };
    assert!(matches!(
        chain.send("client", ok("http://x")),
        Err(TxError::BadEndpoint(_))
    ));
    assert!(matches!(
        chain.send("p1", ok("ftp://x")),
        Err(TxError::BadEndpoint(_))
    ));
    assert!(matches!(
        chain.send("p1", ok(&format!("http://{}", "a".repeat(300)))),
        Err(TxError::Oversized { .. })
    ));
    chain.send("p1", ok("https://p1.example:8080")).unwrap();
    assert_eq!(
        TrustProfile::of(&chain.state, &addr("p1"))
            .endpoint
            .as_deref(),
        Some("https://p1.example:8080")
    );
}

#[test]
fn audits_are_weighted_by_the_auditors_stake() {
    let mut chain = audited_chain();
    chain
        .send("watcher", audit(0, vec![liveness("p1", 10, 10)]))
        .unwrap();
    chain
        .send("client", audit(0, vec![liveness("p1", 10, 0)]))
        .unwrap();
    let p = TrustProfile::of(&chain.state, &addr("p1"));
    // 3,000 × 10 answered out of 3,000 × 10 + 1,000 × 10 probes.
    assert_eq!(p.uptime_bp, Some(7_500));
    assert_eq!(p.audits, 2);
    assert_eq!(p.probe_latency_ms, Some(12));
    // The history is kept, by epoch and auditor.
    assert_eq!(chain.state.audits.len(), 2);
    // Uptime scales the score: the prior 500 (p1's 10,000 stake caps it at 550, above) times
    // (10,000 + 7,500) / 20,000.
    assert_eq!(p.score, 437);
}

#[test]
fn malformed_or_untimely_audits_are_rejected_and_change_nothing() {
    let mut chain = audited_chain();
    let bad = |e: Result<(), TxError>| assert!(matches!(e, Err(TxError::BadAudit(_))), "{e:?}");
    // Not in the validator set.
    assert!(matches!(
        chain.send("p2", audit(0, vec![liveness("p1", 1, 1)])),
        Err(TxError::NotValidator(_))
    ));
    // The epoch has not ended.
    bad(chain.send("watcher", audit(1, vec![liveness("p1", 1, 1)])));
    // More answers than probes; a provider twice; a provider without an endpoint.
    bad(chain.send("watcher", audit(0, vec![liveness("p1", 1, 2)])));
    bad(chain.send(
        "watcher",
        audit(0, vec![liveness("p1", 1, 1), liveness("p1", 1, 1)]),
    ));
    bad(chain.send("watcher", audit(0, vec![liveness("p2", 1, 1)])));
    assert!(chain.state.audits.is_empty() && chain.state.liveness.is_empty());
    // One audit per validator per epoch.
    chain
        .send("watcher", audit(0, vec![liveness("p1", 5, 5)]))
        .unwrap();
    bad(chain.send("watcher", audit(0, vec![liveness("p1", 5, 5)])));
    // Too old once two more epochs have passed.
    chain.advance_to(400);
    bad(chain.send("client", audit(0, vec![liveness("p1", 5, 5)])));
}

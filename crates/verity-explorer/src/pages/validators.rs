//! `/validators`: consensus as this node sees it, and every validator's record as an auditor.

use maud::{Markup, html};
use verity_api::Head;
use verity_ledger::trust::AuditorProfile;

use super::{layout, row};
use crate::format::address_link;

fn consensus(head: &Head) -> Markup {
    match &head.consensus {
        Some(c) => html! {
            dl.summary {
                (row("Validators", html! { (c.validators) " in the set, " (c.validators_seen) " voted in the last 20 views" }))
                (row("Votes seen", html! {
                    ul.voters {
                        @for v in &c.voters {
                            li {
                                (address_link(&v.validator)) " "
                                @match v.last_view {
                                    Some(view) if v.voting => { span.ok { "voting" } " (view " (view) ")" }
                                    Some(view) => { span.error { "silent" } " since view " (view) }
                                    None => { span.muted { "never seen voting" } }
                                }
                            }
                        }
                    }
                }))
                (row("Finalized", html! { "block " (c.finalized_height) " in view " (c.finalized_view) "; current view " (c.current_view) }))
                (row("Blocks", html! { (c.blocks_proposed) " proposed by this node, " (c.blocks_rejected) " rejected as invalid" }))
                (row("Views skipped", html! { (c.nullified_views) " nullified" }))
                (row("Faults", html! { (c.faults_seen) " pieces of equivocation evidence" }))
            }
        },
        None => {
            html! { p { "This node is a single block producer (a devnet): there is no BFT vote to show." } }
        }
    }
}

pub fn validators(head: &Head, auditors: &[AuditorProfile]) -> Markup {
    layout(
        "Validators",
        head,
        html! {
            h1 { "Validators" }
            h2 { "Consensus" }
            (consensus(head))
            @if let Some(a) = &head.auditor {
                h2 { "This node's auditor" }
                p { "Sampled " (a.sampled) " optimistic results (" (a.sample_per_10k) " per 10,000): "
                    (a.matched) " matched, " (a.challenged) " challenged, " (a.unverifiable) " not checkable here. "
                    (a.probes_answered) " of " (a.probes) " liveness probes answered; "
                    (a.canaries_sent) " canaries sent, " (a.canaries_challenged) " challenged." }
            }
            h2 { "Audit records" }
            @if auditors.is_empty() {
                p.empty { "No validator has staked." }
            } @else {
                div.scroll { table.auditors {
                    thead { tr {
                        th { "Validator" } th { "Stake" } th { "Liveness audits" } th { "Canary commits" }
                        th { "Reveals" } th.wide { "Judged" } th.wide { "Unrevealed" } th { "Contradicted" } th.wide { "Slashed" }
                    } }
                    tbody {
                        @for v in auditors {
                            tr {
                                td { (address_link(&v.validator)) } td { (v.stake) }
                                td { (v.record.liveness_audits) } td { (v.record.canary_commitments) }
                                td { (v.record.canary_reveals) } td.wide { (v.record.canaries_judged) }
                                td.wide { (v.unrevealed) } td { (v.record.contradicted) } td.wide { (v.record.slashed) }
                            }
                        }
                    }
                } }
            }
        },
    )
}

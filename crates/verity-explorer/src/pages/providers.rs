//! `/providers`: providers ranked by trust score.

use maud::{Markup, html};
use verity_api::{Head, ProviderView};

use super::layout;
use crate::format::{address_link, or_dash, percent_bp};

pub fn providers(head: &Head, providers: &[ProviderView]) -> Markup {
    layout(
        "Providers",
        head,
        html! {
            h1 { "Providers" }
            p { "Ranked by trust score (0–1000): what an offer's minimum trust is checked against. "
                "Each score is a function of the ledger's record, explained on the provider's page." }
            @if providers.is_empty() {
                p.empty { "No provider has staked yet." }
            } @else {
                div.scroll { table.providers {
                    thead { tr {
                        th { "#" } th { "Provider" } th { "Score" } th { "Online" } th { "Stake" }
                        th { "Fulfilled" } th.wide { "Slashed" } th.wide { "Overturned" }
                        th.wide { "Uptime" } th.wide { "Canaries" } th.wide { "Latency p50" }
                    } }
                    tbody {
                        @for (rank, p) in providers.iter().enumerate() {
                            tr data-provider=(p.address) {
                                td { (rank + 1) }
                                td { (address_link(&p.address)) }
                                td.score { (p.trust_score) }
                                td { @if p.online { span.ok { "online" } } @else { span.muted { "offline" } } }
                                td { (p.stake.provider) }
                                td { (p.profile.fulfilled) }
                                td.wide { (p.profile.slashed) }
                                td.wide { (p.profile.overturned) }
                                td.wide { (or_dash(p.profile.uptime_bp.map(percent_bp))) }
                                td.wide { (p.profile.canaries_passed) " / " (p.profile.canaries_passed + p.profile.canaries_failed) }
                                td.wide { (or_dash(p.profile.latency_p50_blocks.map(|b| format!("{b} blocks")))) }
                            }
                        }
                    }
                } }
            }
        },
    )
}

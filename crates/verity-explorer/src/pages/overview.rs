//! `/`: the network at a glance.

use maud::{Markup, html};
use verity_api::{Head, JobSummary, NetworkStats};

use super::jobs::job_rows;
use super::layout;
use crate::BlockSummary;
use crate::format::{address_link, age, block_link, when};

/// Blocks per minute over the recent blocks shown (newest first), by their producers' clocks.
fn blocks_per_minute(recent: &[BlockSummary]) -> Option<f64> {
    let (newest, oldest) = (recent.first()?, recent.last()?);
    let span_ms = newest.timestamp_ms.checked_sub(oldest.timestamp_ms)?;
    (span_ms > 0).then(|| (newest.height - oldest.height) as f64 * 60_000.0 / span_ms as f64)
}

fn plural(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn card(label: &str, value: Markup, note: Markup) -> Markup {
    html! { div.card { div.label { (label) } div.value { (value) } div.note { (note) } } }
}

fn finality(head: &Head, now_ms: u64) -> Markup {
    match &head.consensus {
        Some(c) => card(
            "Finalized",
            html! { (c.finalized_height) },
            html! {
                "BFT, " (c.validators_seen) " of " (c.validators) " validators voting; last "
                (age(c.last_finalized_ms, now_ms))
            },
        ),
        None => card(
            "Finalized",
            html! { (head.height) },
            html! { "single producer: each block is final" },
        ),
    }
}

pub fn overview(
    head: &Head,
    stats: &NetworkStats,
    recent_jobs: &[JobSummary],
    recent_blocks: &[BlockSummary],
    now_ms: u64,
) -> Markup {
    let rate = blocks_per_minute(recent_blocks);
    let window_min = stats.window_ms as f64 / 60_000.0;
    let throughput = (window_min > 0.0).then(|| stats.proofs_in_window as f64 / window_min);
    layout(
        "Overview",
        head,
        html! {
            h1 { "Network overview" }
            section.cards {
                (card("Height", html! { (head.height) }, html! { "last block " (when(head.timestamp_ms, now_ms)) }))
                (finality(head, now_ms))
                (card("Block rate", html! {
                    @match rate { Some(r) => { (format!("{r:.0}")) span.unit { " /min" } } None => "–" }
                }, html! { "target every " (head.block_interval_ms) " ms" }))
                (card("Mempool", html! { (head.mempool) }, html! { "transactions waiting" }))
                (card("Providers online", html! { (head.providers_online) }, html! { a href="/providers" { "ranked by trust" } }))
                (card("Proving throughput", html! {
                    @match throughput { Some(t) => { (format!("{t:.1}")) span.unit { " proofs/min" } } None => "–" }
                }, html! {
                    (plural(stats.proofs_in_window, "proof")) ", " (plural(stats.results_in_window, "result"))
                    " in the last " (plural(stats.window_blocks, "block"))
                }))
            }
            h2 { "Jobs by state" }
            table.states {
                tr { @for (state, _) in &stats.jobs_by_state { th { a href={"/jobs?state=" (state.name())} { (state.name()) } } } }
                tr { @for (state, n) in &stats.jobs_by_state { td data-state=(state.name()) { (n) } } }
            }
            h2 { "Latest jobs" }
            (job_rows(recent_jobs))
            p { a href="/jobs" { "All jobs →" } }
            h2 { "Latest blocks" }
            div.scroll { table {
                thead { tr { th { "Height" } th { "Time" } th { "Transactions" } th.wide { "Proposer" } } }
                tbody {
                    @for b in recent_blocks {
                        tr { td { (block_link(b.height)) } td { (when(b.timestamp_ms, now_ms)) } td { (b.txs) } td.wide { (address_link(&b.proposer)) } }
                    }
                }
            } }
        },
    )
}

//! `/blocks/{height}`: a block and what each of its transactions did.

use maud::{Markup, html};
use verity_api::{BlockView, Head};

use super::{layout, row};
use crate::format::{address_link, full_id, job_link, short, utc, when};

pub fn block(head: &Head, b: &BlockView, now_ms: u64) -> Markup {
    layout(
        &format!("Block {}", b.height),
        head,
        html! {
            h1 { "Block " (b.height) }
            nav.pager {
                @if b.height > 1 { a href={"/blocks/" (b.height - 1)} { "← " (b.height - 1) } }
                @if b.height < head.height { a href={"/blocks/" (b.height + 1)} { (b.height + 1) " →" } }
            }
            dl.summary {
                (row("Id", full_id(&b.id.to_string())))
                (row("Parent", full_id(&b.parent_id.to_string())))
                (row("Time", html! { (utc(b.timestamp_ms)) " (" (when(b.timestamp_ms, now_ms)) ")" }))
                (row("Proposer", address_link(&b.proposer)))
                (row("State root after", full_id(&b.state_root.to_string())))
                (row("Final", html! {
                    @match &b.finality {
                        Some(f) => span.ok #finality { "certified by " (f.signers) " of " (f.validators) " validators (view " (f.view) "), signatures checked by this node" },
                        None => span.empty { "no certificate kept on this node (a later block's covers it)" },
                    }
                }))
            }
            h2 { (b.txs.len()) " transactions" }
            @if !b.txs.is_empty() {
                div.scroll { table.txs {
                    thead { tr { th { "Transaction" } th { "Kind" } th { "Signer" } th { "Job" } th { "Outcome" } } }
                    tbody {
                        @for t in &b.txs {
                            tr {
                                td { code title=(t.id) { (short(&t.id.to_string())) } }
                                td { (t.kind) }
                                td { (address_link(&t.signer)) }
                                td { @match &t.job_id { Some(j) => (job_link(j)), None => "–" } }
                                td { @match &t.error { Some(e) => span.error { "refused: " (e) }, None => span.ok { "applied" } } }
                            }
                        }
                    }
                } }
            }
        },
    )
}

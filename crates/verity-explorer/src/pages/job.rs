//! `/jobs/{id}`: one job from offer to result: the auction, the timeline, the outputs, the
//! receipt, the provenance record, and a button that has the node verify the proof.

use maud::{Markup, html};
use verity_api::{Head, JobView, ProvenanceView};
use verity_ledger::{Job, JobPhase};
use verity_types::{Mode, StackOutputs};

use super::{auction, row};
use crate::format::{address_link, age, block_link, full_id, or_dash, short, state_badge, utc};

fn outputs_list(outputs: &StackOutputs) -> Markup {
    html! {
        ol.outputs start="0" {
            @for v in outputs.as_slice() { li { code { (v) } } }
        }
    }
}

fn summary(view: &JobView, head: &Head) -> Markup {
    let job = &view.job;
    let offer = &job.request.offer;
    html! {
        dl.summary {
            (row("State", state_badge(job.state())))
            (row("Mode", html! { @match job.request.mode {
                Mode::Proof => "proof: every result carries a STARK proof the ledger verified",
                Mode::Optimistic => "optimistic: a bonded result anyone may overturn with a proof",
            } }))
            (row("Client", address_link(&job.client)))
            (row("Program", html! { a href=(verity_api::routes::path(verity_api::routes::PROGRAM, job.program_hash)) { code { (short(&job.program_hash.to_string())) } } }))
            (row("Public inputs", html! { code { (format!("{:?}", job.request.stack_inputs)) } }))
            (row("Private inputs", html! { @match &job.request.private_inputs {
                Some(_) => { "committed; the data is sealed to the locker only" }
                None => "none",
            } }))
            (row("Submitted", html! { "block " (block_link(job.submitted_height)) }))
            (row("Price", html! {
                @match job.lock_price() {
                    Some(p) => { (p) " (locked)" }
                    None => { (view.current_price) " now, up to " (offer.max_price) }
                }
            }))
            (row("Collateral", html! { (offer.collateral) }))
            (row("Max cycles", html! { (job.request.max_cycles) }))
            (row("Min trust", html! { (or_dash(job.request.min_trust)) }))
            (row("Lock by", html! { "block " (view.lock_deadline) @if head.height < view.lock_deadline && job.locker().is_none() { " (" (view.lock_deadline - head.height) " blocks left)" } }))
            (row("Deliver by", html! { "block " (view.deadline) }))
            @if let Some(p) = job.locker() { (row("Locked by", address_link(&p))) }
            @if let Some((p, h)) = job.prover() { (row("Proven by", html! { (address_link(&p)) " at block " (block_link(h)) })) }
            @if let Some(f) = &view.failure { (row("Why it failed", html! { span.error { (f) } })) }
            @if view.archived { (row("Archived", html! { "ended over the chain's retention period ago: this record is the node's archive; its provenance record is still in the state" })) }
        }
    }
}

fn timeline(job: &Job, now_ms: u64) -> Markup {
    html! {
        div.scroll { table.timeline {
            thead { tr { th { "Block" } th { "Time" } th { "State" } th.wide { "Transaction" } th { "What happened" } } }
            tbody {
                @for e in &job.timeline {
                    tr {
                        td { (block_link(e.height)) }
                        td { time datetime=(e.timestamp_ms) title=(utc(e.timestamp_ms)) { (age(e.timestamp_ms, now_ms)) } }
                        td { (state_badge(e.state)) }
                        td.wide { @match &e.tx { Some(tx) => code title=(tx) { (short(&tx.to_string())) }, None => "deadline" } }
                        td { (e.note) }
                    }
                }
            }
        } }
    }
}

fn result(view: &JobView) -> Markup {
    let job = &view.job;
    let id = job.id.to_string();
    html! {
        @match &job.phase {
            JobPhase::Overturned { delivery, correction, .. } => {
                p.error { "The delivered outputs were proven wrong by " (address_link(&correction.challenger)) "." }
                h3 { "Proven outputs" } (outputs_list(&correction.outputs))
                details { summary { "Outputs delivered (wrong), by " (short(&delivery.prover.to_string())) } (outputs_list(&delivery.outputs)) }
            }
            _ => {
                @if let Some(outputs) = job.outputs() {
                    p.result { "Result (top of the stack): " strong #result { (outputs.top()) } }
                    details { summary { "All 16 stack outputs" } (outputs_list(outputs)) }
                } @else {
                    p.empty { "No result yet." }
                }
            }
        }
        @if let Some(proof_hash) = job.proof_hash() {
            p {
                "Proof " code title=(proof_hash) { (short(&proof_hash.to_string())) }
                @if let (Some(cycles), Some(trace_len)) = (job.cycles(), job.trace_len()) {
                    " · " span #work { (cycles) " cycles, trace of " (trace_len) " rows" }
                }
            }
            p.actions {
                a.button href=(verity_api::routes::path(verity_api::routes::JOB_RECEIPT, &id)) download={(short(&id).trim_end_matches('…')) ".receipt"} { "Download receipt" }
                button #verify-button type="button" data-job=(id) { "Verify the proof" }
            }
            p #verify-result aria-live="polite" {}
        }
    }
}

fn provenance(record: &ProvenanceView) -> Markup {
    let r = &record.record;
    html! {
        dl.summary {
            (row("Program", html! { code title=(r.program_hash) { (short(&r.program_hash.to_string())) } }))
            (row("Input hash", full_id(&r.input_hash.to_string())))
            (row("Output hash", html! { @match &r.output_hash { Some(h) => (full_id(&h.to_string())), None => "–" } }))
            (row("Proof hash", html! { @match &r.proof_hash { Some(h) => (full_id(&h.to_string())), None => "–" } }))
            (row("Prover", html! { @match &r.prover { Some(p) => (address_link(p)), None => "–" } }))
            (row("Price", html! { (r.price) }))
            (row("Heights", html! { "submitted " (r.submitted_height) ", fulfilled " (or_dash(r.fulfilled_height)) ", finished " (r.finished_height) }))
            (row("In state root", html! { (full_id(&record.state_root.to_string())) " after block " (block_link(record.height)) "; proof of " (record.proof.proof.len()) " bytes" }))
        }
        p { a href=(verity_api::routes::path(verity_api::routes::JOB_PROVENANCE, r.job_id)) { "Record and proof as JSON" } }
    }
}

pub fn job(head: &Head, view: &JobView, record: Option<&ProvenanceView>, now_ms: u64) -> Markup {
    let job = &view.job;
    let lock = job
        .phase
        .lock()
        .map(|l| (l.height.saturating_sub(job.submitted_height), l.price));
    let id = job.id.to_string();
    super::layout_of(
        &format!("Job {}", short(&id)),
        head,
        Some(&id),
        html! {
            h1 { "Job " (state_badge(job.state())) }
            p { (full_id(&job.id.to_string())) }
            (summary(view, head))
            h2 { "Result" }
            (result(view))
            h2 { "Auction" }
            (auction::curve(&job.request.offer, lock))
            h2 { "Timeline" }
            (timeline(job, now_ms))
            h2 { "Provenance" }
            @match record {
                Some(r) => (provenance(r)),
                None => p.empty { "Recorded when the job ends." },
            }
        },
    )
}

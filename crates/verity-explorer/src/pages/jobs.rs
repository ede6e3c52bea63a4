//! `/jobs`: every job, filtered by state, client or provider.

use maud::{Markup, html};
use verity_api::{Head, JobPage, JobQuery, JobSummary};
use verity_ledger::JobState;

use super::layout;
use crate::format::{address_link, block_link, job_link, or_dash, short, state_badge};

/// A table of job summaries (also on the overview and provider pages).
pub fn job_rows(jobs: &[JobSummary]) -> Markup {
    html! {
        @if jobs.is_empty() {
            p.empty { "No jobs." }
        } @else {
            div.scroll { table.jobs {
                thead { tr {
                    th { "Job" } th { "State" } th.wide { "Mode" } th { "Submitted" }
                    th.wide { "Client" } th { "Provider" } th { "Price" }
                } }
                tbody {
                    @for j in jobs {
                        tr data-job=(j.id) {
                            td { (job_link(&j.id)) } td { (state_badge(j.state)) }
                            td.wide { (format!("{:?}", j.mode).to_lowercase()) }
                            td { (block_link(j.submitted_height)) }
                            td.wide { (address_link(&j.client)) }
                            td { @match &j.locker { Some(p) => (address_link(p)), None => "–" } }
                            td { (or_dash(j.lock_price)) " / " (j.max_price) }
                        }
                    }
                }
            } }
        }
    }
}

fn filter_link(query: &JobQuery, state: Option<JobState>) -> Markup {
    let mut href = String::from("/jobs?");
    if let Some(s) = state {
        href.push_str(&format!("state={}&", s.name()));
    }
    if let Some(c) = &query.client {
        href.push_str(&format!("client={c}&"));
    }
    if let Some(p) = &query.provider {
        href.push_str(&format!("provider={p}&"));
    }
    let label = state.map_or("all", JobState::name);
    let current = query.state == state;
    html! { a.filter.current[current] href=(href.trim_end_matches(['&', '?'])) { (label) } }
}

pub fn jobs(head: &Head, query: &JobQuery, page: &JobPage) -> Markup {
    layout(
        "Jobs",
        head,
        html! {
            h1 { "Jobs" }
            form.inline action="/jobs" method="get" {
                input type="search" name="q" placeholder="Job id prefix" aria-label="Job id prefix";
                button { "Open" }
            }
            nav.filters {
                (filter_link(query, None))
                @for s in JobState::ALL { (filter_link(query, Some(s))) }
            }
            @if let Some(c) = &query.client { p { "Submitted by " (address_link(c)) } }
            @if let Some(p) = &query.provider { p { "Locked or delivered by " (address_link(p)) } }
            (job_rows(&page.jobs))
            @if let Some(next) = &page.next {
                p { a href={"/jobs?after=" (next) @if let Some(s) = query.state { "&state=" (s.name()) }} {
                    "Next page (after " (short(&next.to_string())) ") →"
                } }
            }
        },
    )
}

//! `/jobs`: every job, filtered by state, client or provider.

use maud::{Markup, html};
use verity_api::{Head, JobPage, JobQuery, JobSummary};
use verity_ledger::JobState;
use verity_types::JobId;

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

/// `/jobs` with `query`'s client and provider filters, `state`, and a cursor.
fn list_href(query: &JobQuery, state: Option<JobState>, after: Option<&JobId>) -> String {
    let mut params = Vec::new();
    if let Some(s) = state {
        params.push(format!("state={}", s.name()));
    }
    if let Some(c) = &query.client {
        params.push(format!("client={c}"));
    }
    if let Some(p) = &query.provider {
        params.push(format!("provider={p}"));
    }
    if let Some(a) = after {
        params.push(format!("after={a}"));
    }
    if params.is_empty() {
        "/jobs".into()
    } else {
        format!("/jobs?{}", params.join("&"))
    }
}

fn filter_link(query: &JobQuery, state: Option<JobState>) -> Markup {
    let label = state.map_or("all", JobState::name);
    let current = query.state == state;
    html! { a.filter.current[current] href=(list_href(query, state, None)) { (label) } }
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
                p { a href=(list_href(query, query.state, Some(next))) {
                    "Next page (after " (short(&next.to_string())) ") →"
                } }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use verity_types::{Digest, Keypair};

    use super::*;

    #[test]
    fn the_next_page_keeps_every_filter() {
        let provider = Keypair::from_seed([3; 32]).address();
        let query = JobQuery {
            state: Some(JobState::Finalized),
            provider: Some(provider),
            ..JobQuery::default()
        };
        let next = JobId(Digest::blake3(b"last"));
        assert_eq!(
            list_href(&query, query.state, Some(&next)),
            format!("/jobs?state=finalized&provider={provider}&after={next}")
        );
        assert_eq!(list_href(&JobQuery::default(), None, None), "/jobs");
    }
}

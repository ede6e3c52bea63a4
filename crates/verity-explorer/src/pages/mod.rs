//! The pages: each a function from views to markup (maud escapes every value it inserts, so a
//! hostile string from the ledger, such as a provider's announced endpoint, stays text).

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};
use verity_api::{Head, IdKind, Resolution};

use crate::format::short;
use crate::routes::{JOB_PAGE, PROVIDER_PAGE};

mod auction;
mod block;
mod job;
mod jobs;
mod overview;
mod provider;
mod providers;
mod validators;

pub use block::block;
pub use job::job;
pub use jobs::jobs;
pub use overview::overview;
pub use provider::provider;
pub use providers::providers;
pub use validators::validators;

/// The frame every page shares: header with navigation and search, the page, a footer with
/// the chain it reads.
fn layout(title: &str, head: &Head, body: Markup) -> Markup {
    layout_of(title, head, None, body)
}

/// The frame, for the page of one job (`job`: live updates then follow that job only).
fn layout_of(title: &str, head: &Head, job: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Verity explorer" }
                link rel="stylesheet" href="/assets/explorer.css";
                script src="/assets/explorer.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Verity" }
                    nav {
                        a href="/" { "Overview" }
                        a href="/jobs" { "Jobs" }
                        a href="/providers" { "Providers" }
                        a href="/validators" { "Validators" }
                    }
                    form.search action="/search" method="get" role="search" {
                        input type="search" name="q" placeholder="Job, address or block height"
                            aria-label="Search by id prefix or block height";
                    }
                    span #live title="Updates as blocks arrive" { "●" }
                }
                main #page data-height=(head.height) data-job=[job] { (body) }
                footer {
                    "Chain " code { (head.chain_id) } " · height " (head.height)
                    " · state root " code title=(head.state_root) { (short(&head.state_root.to_string())) }
                    " · " a href="/v1/head" { "API" } " · " a href="/metrics" { "metrics" }
                }
            }
        }
    }
}

pub fn error(head: &Head, status: StatusCode, message: &str) -> Markup {
    layout(
        status.canonical_reason().unwrap_or("Error"),
        head,
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            p.error { (message) }
        },
    )
}

/// Where an id of `kind` is shown: its page (a program's is the API's JSON).
pub fn id_href(kind: IdKind, id: &str) -> String {
    match kind {
        IdKind::Job => crate::page_path(JOB_PAGE, id),
        IdKind::Account => crate::page_path(PROVIDER_PAGE, id),
        IdKind::Program => verity_api::routes::path(verity_api::routes::PROGRAM, id),
    }
}

fn match_link(kind: IdKind, id: &str) -> Markup {
    html! { a href=(id_href(kind, id)) { code { (id) } } }
}

fn kind_name(kind: IdKind) -> &'static str {
    match kind {
        IdKind::Job => "job",
        IdKind::Account => "account",
        IdKind::Program => "program",
    }
}

/// A prefix that names no id of `kind`, or several.
pub fn ambiguous(head: &Head, resolution: &Resolution, kind: IdKind, why: &str) -> Markup {
    layout(
        "Which one?",
        head,
        html! {
            h1 { "No single " (kind_name(kind)) }
            p.error { (why) }
            ul.matches {
                @for m in resolution.matches.iter().filter(|m| m.kind == kind) {
                    li { (match_link(m.kind, &m.id)) }
                }
            }
        },
    )
}

pub fn search_results(head: &Head, resolution: &Resolution) -> Markup {
    layout(
        "Search",
        head,
        html! {
            h1 { "Ids starting with " code { (resolution.prefix) } }
            @if resolution.matches.is_empty() {
                p.error { "Nothing on the ledger starts with " (resolution.prefix) "." }
            } @else {
                ul.matches {
                    @for m in &resolution.matches {
                        li { (kind_name(m.kind)) " " (match_link(m.kind, &m.id)) }
                    }
                }
            }
        },
    )
}

/// A definition list row.
fn row(term: &str, value: Markup) -> Markup {
    html! { div.row { dt { (term) } dd { (value) } } }
}

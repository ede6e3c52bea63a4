//! The explorer's addresses and what answers them. Ids in paths may be any unique prefix (as
//! tables print them): a prefix redirects to the whole id, an ambiguous one lists the ids it
//! could mean.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::Markup;
use tokio::sync::Semaphore;
use verity_api::{IdKind, JobQuery};
use verity_ledger::JobState;
use verity_types::{Address, IdPrefix, JobId};

use crate::Source;
use crate::pages;

pub const OVERVIEW_PAGE: &str = "/";
pub const JOBS_PAGE: &str = "/jobs";
pub const JOB_PAGE: &str = "/jobs/{id}";
pub const PROVIDERS_PAGE: &str = "/providers";
pub const PROVIDER_PAGE: &str = "/providers/{id}";
pub const VALIDATORS_PAGE: &str = "/validators";
pub const BLOCK_PAGE: &str = "/blocks/{id}";
pub const SEARCH: &str = "/search";
const STYLE: &str = "/assets/explorer.css";
const SCRIPT: &str = "/assets/explorer.js";

/// Every page's route (for the node's route table and docs).
pub const PAGES: [&str; 8] = [
    OVERVIEW_PAGE,
    JOBS_PAGE,
    JOB_PAGE,
    PROVIDERS_PAGE,
    PROVIDER_PAGE,
    VALIDATORS_PAGE,
    BLOCK_PAGE,
    SEARCH,
];

/// Jobs a list page shows at most (the API's page limit is larger).
const JOBS_PER_PAGE: usize = 50;

pub fn router<S: Source>(source: Arc<S>) -> Router {
    Router::new()
        .route(OVERVIEW_PAGE, get(overview::<S>))
        .route(JOBS_PAGE, get(jobs::<S>))
        .route(JOB_PAGE, get(job::<S>))
        .route(PROVIDERS_PAGE, get(providers::<S>))
        .route(PROVIDER_PAGE, get(provider::<S>))
        .route(VALIDATORS_PAGE, get(validators::<S>))
        .route(BLOCK_PAGE, get(block::<S>))
        .route(SEARCH, get(search::<S>))
        .route(STYLE, get(style))
        .route(SCRIPT, get(script))
        .with_state(source)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Pages rendered at once; more wait their turn. Rendering reads state and the database and
/// costs milliseconds of CPU, so it runs on blocking threads, a few at a time, never on the
/// async executor that serves the API.
static RENDERERS: Semaphore = Semaphore::const_new(4);

async fn rendered(render: impl FnOnce() -> Response + Send + 'static) -> Response {
    let Ok(_turn) = RENDERERS.acquire().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    tokio::task::spawn_blocking(render)
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn page(markup: Markup) -> Response {
    page_at(StatusCode::OK, markup)
}

fn page_at(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

fn error_page<S: Source>(source: &S, status: StatusCode, message: &str) -> Response {
    page_at(status, pages::error(&source.head(), status, message))
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/explorer.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/explorer.js"),
    )
        .into_response()
}

async fn overview<S: Source>(State(source): State<Arc<S>>) -> Response {
    rendered(move || {
        let head = source.head();
        let stats = source.stats();
        let recent_blocks = source.recent_blocks(10);
        let recent_jobs = source.recent_jobs(10);
        page(pages::overview(
            &head,
            &stats,
            &recent_jobs,
            &recent_blocks,
            now_ms(),
        ))
    })
    .await
}

async fn jobs<S: Source>(
    State(source): State<Arc<S>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    rendered(move || {
        // A search box on the page: a prefix goes to the job it names (only a prefix: whatever
        // else was typed never reaches the redirect).
        if let Some(typed) = q.get("q").map(|p| p.trim()).filter(|p| !p.is_empty()) {
            return match typed.parse::<IdPrefix>() {
                Ok(prefix) => match resolve(&*source, &prefix.to_string(), IdKind::Job, JOB_PAGE) {
                    Ok(id) => Redirect::to(&crate::page_path(JOB_PAGE, id)).into_response(),
                    Err(response) => *response,
                },
                Err(e) => error_page(
                    &*source,
                    StatusCode::BAD_REQUEST,
                    &format!("`{typed}` is not a job id prefix: {e}"),
                ),
            };
        }
        let query = match job_query(&q) {
            Ok(query) => query,
            Err(e) => return error_page(&*source, StatusCode::BAD_REQUEST, &e),
        };
        match source.jobs(&query) {
            Ok(found) => page(pages::jobs(&source.head(), &query, &found)),
            Err(e) => error_page(&*source, StatusCode::BAD_REQUEST, &e),
        }
    })
    .await
}

/// The list's filters, from its query string (empty values are no filter).
fn job_query(q: &BTreeMap<String, String>) -> Result<JobQuery, String> {
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let address = |k: &str| {
        get(k)
            .map(|v| {
                v.parse::<Address>()
                    .map_err(|e| format!("{k} `{v}` is not an address: {e}"))
            })
            .transpose()
    };
    Ok(JobQuery {
        state: get("state").map(str::parse::<JobState>).transpose()?,
        client: address("client")?,
        provider: address("provider")?,
        after: get("after")
            .map(|v| {
                v.parse::<JobId>()
                    .map_err(|e| format!("cursor `{v}` is not a job id: {e}"))
            })
            .transpose()?,
        limit: Some(JOBS_PER_PAGE),
    })
}

/// The one id of `kind` a path segment names, or the response that says otherwise (a
/// redirect for a prefix, a list for an ambiguous one, a 404 for none).
fn resolve<S: Source>(
    source: &S,
    segment: &str,
    kind: IdKind,
    template: &str,
) -> Result<String, Box<Response>> {
    let resolution = source
        .resolve(segment)
        .map_err(|e| Box::new(error_page(source, StatusCode::BAD_REQUEST, &e)))?;
    match resolution.one(kind) {
        Ok(id) if id.eq_ignore_ascii_case(segment) => Ok(id.to_string()),
        Ok(id) => Err(Box::new(
            Redirect::to(&crate::page_path(template, id)).into_response(),
        )),
        Err(why) => {
            let status = if resolution.matches.iter().any(|m| m.kind == kind) {
                StatusCode::MULTIPLE_CHOICES
            } else {
                StatusCode::NOT_FOUND
            };
            let page = pages::ambiguous(&source.head(), &resolution, kind, &why);
            Err(Box::new(page_at(status, page)))
        }
    }
}

async fn job<S: Source>(State(source): State<Arc<S>>, Path(segment): Path<String>) -> Response {
    rendered(move || {
        let id = match resolve(&*source, &segment, IdKind::Job, JOB_PAGE) {
            Ok(id) => id,
            Err(response) => return *response,
        };
        let Ok(id) = id.parse::<JobId>() else {
            return error_page(&*source, StatusCode::BAD_REQUEST, "not a job id");
        };
        let Some(view) = source.job(&id) else {
            return error_page(
                &*source,
                StatusCode::NOT_FOUND,
                &format!("job {id} is unknown"),
            );
        };
        let provenance = source.provenance(&id);
        page(pages::job(
            &source.head(),
            &view,
            provenance.as_ref(),
            now_ms(),
        ))
    })
    .await
}

async fn providers<S: Source>(State(source): State<Arc<S>>) -> Response {
    rendered(move || page(pages::providers(&source.head(), &source.providers()))).await
}

async fn provider<S: Source>(
    State(source): State<Arc<S>>,
    Path(segment): Path<String>,
) -> Response {
    rendered(move || {
        let address = match resolve(&*source, &segment, IdKind::Account, PROVIDER_PAGE) {
            Ok(a) => a,
            Err(response) => return *response,
        };
        let Ok(address) = address.parse::<Address>() else {
            return error_page(&*source, StatusCode::BAD_REQUEST, "not an address");
        };
        let view = source.provider(&address);
        let jobs = source
            .jobs(&JobQuery {
                provider: Some(address),
                limit: Some(JOBS_PER_PAGE),
                ..JobQuery::default()
            })
            .map(|p| p.jobs)
            .unwrap_or_default();
        page(pages::provider(&source.head(), &view, &jobs))
    })
    .await
}

async fn validators<S: Source>(State(source): State<Arc<S>>) -> Response {
    rendered(move || page(pages::validators(&source.head(), &source.auditors()))).await
}

async fn block<S: Source>(State(source): State<Arc<S>>, Path(segment): Path<String>) -> Response {
    rendered(move || {
        let Ok(height) = segment.parse::<u64>() else {
            return error_page(
                &*source,
                StatusCode::BAD_REQUEST,
                &format!("`{segment}` is not a block height"),
            );
        };
        match source.block(height) {
            Ok(Some(block)) => page(pages::block(&source.head(), &block, now_ms())),
            Ok(None) => error_page(
                &*source,
                StatusCode::NOT_FOUND,
                &format!("no block at height {height} on this node"),
            ),
            Err(e) => error_page(&*source, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    })
    .await
}

/// The header's search box: a height opens its block, an id prefix the job, provider or
/// account it names.
async fn search<S: Source>(
    State(source): State<Arc<S>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    rendered(move || {
        let term = q.get("q").map(|s| s.trim()).unwrap_or_default();
        if term.is_empty() {
            return Redirect::to(OVERVIEW_PAGE).into_response();
        }
        if let Ok(height) = term.parse::<u64>() {
            return Redirect::to(&crate::page_path(BLOCK_PAGE, height)).into_response();
        }
        let resolution = match source.resolve(term) {
            Ok(r) => r,
            Err(e) => return error_page(&*source, StatusCode::BAD_REQUEST, &e),
        };
        match resolution.matches.as_slice() {
            [one] => Redirect::to(&pages::id_href(one.kind, &one.id)).into_response(),
            _ => {
                let status = if resolution.matches.is_empty() {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::MULTIPLE_CHOICES
                };
                page_at(status, pages::search_results(&source.head(), &resolution))
            }
        }
    })
    .await
}

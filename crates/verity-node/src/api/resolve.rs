//! `GET /v1/resolve/{prefix}`: ids as tables print them, back to whole ids.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use verity_api::{IdKind, IdMatch, Resolution};
use verity_types::prefix::AMBIGUOUS_SHOWN;
use verity_types::{Address, Digest, IdPrefix, JobId, ProgramHash};

use super::{ApiResult, bad};
use crate::StorageError;
use crate::node::Node;

/// The jobs, accounts and programs whose ids start with a prefix (as tables print them).
pub(super) async fn resolve(
    State(node): State<Arc<Node>>,
    Path(prefix): Path<String>,
) -> ApiResult<Resolution> {
    let prefix: IdPrefix = prefix
        .parse()
        .map_err(|e| bad(format!("id prefix `{prefix}` is not valid: {e}")))?;
    resolve_prefix(&node, &prefix)
        .map(Json)
        .map_err(super::internal)
}

/// The ids of each kind in the node's state (and, for jobs, its archive) that start with
/// `prefix`, at most [`AMBIGUOUS_SHOWN`] + 1 of a kind.
pub(crate) fn resolve_prefix(node: &Node, prefix: &IdPrefix) -> Result<Resolution, StorageError> {
    let state = node.state();
    let named = |ids: Vec<String>, kind| ids.into_iter().map(move |id| IdMatch { kind, id });
    let (lo, hi) = prefix.bounds();
    let archived =
        node.storage()
            .archived_ids(&JobId(Digest(lo)), &JobId(Digest(hi)), AMBIGUOUS_SHOWN + 1)?;
    let jobs: BTreeSet<JobId> = prefix
        .matches(
            |r| state.jobs.range(r).map(|(k, _)| k),
            |b| JobId(Digest(b)),
        )
        .into_iter()
        .chain(archived)
        .collect();
    let jobs: Vec<JobId> = jobs.into_iter().take(AMBIGUOUS_SHOWN + 1).collect();
    // Accounts, and staked addresses that hold no balance.
    let accounts: BTreeSet<Address> = prefix
        .matches(|r| state.accounts.range(r).map(|(k, _)| k), Address)
        .into_iter()
        .chain(prefix.matches(|r| state.stakes.range(r).map(|(k, _)| k), Address))
        .collect();
    let programs = prefix.matches(
        |r| state.programs.range(r).map(|(k, _)| k),
        |b| ProgramHash(Digest(b)),
    );
    let matches = named(jobs.iter().map(ToString::to_string).collect(), IdKind::Job)
        .chain(named(
            accounts
                .iter()
                .take(AMBIGUOUS_SHOWN + 1)
                .map(ToString::to_string)
                .collect(),
            IdKind::Account,
        ))
        .chain(named(
            programs.iter().map(ToString::to_string).collect(),
            IdKind::Program,
        ))
        .collect();
    Ok(Resolution {
        prefix: prefix.to_string(),
        matches,
    })
}

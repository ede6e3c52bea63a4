//! `GET /v1/resolve/{prefix}`: ids as tables print them, back to whole ids.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use verity_api::{IdKind, IdMatch, Resolution};
use verity_types::prefix::AMBIGUOUS_SHOWN;
use verity_types::{Address, Digest, IdPrefix, JobId, ProgramHash, Resolved};

use super::{ApiResult, bad};
use crate::node::Node;

/// The jobs, accounts and programs whose ids start with a prefix (as tables print them).
pub(super) async fn resolve(
    State(node): State<Arc<Node>>,
    Path(prefix): Path<String>,
) -> ApiResult<Resolution> {
    let prefix: IdPrefix = prefix
        .parse()
        .map_err(|e| bad(format!("id prefix `{prefix}` is not valid: {e}")))?;
    let state = node.state();
    let found = |resolved: Resolved<String>| match resolved {
        Resolved::One(id) => vec![id],
        Resolved::None => Vec::new(),
        Resolved::Many(ids) => ids,
    };
    let hex = |b: [u8; 32]| Digest(b).to_string();
    let jobs = found(
        prefix
            .resolve(&state.jobs, |b| JobId(Digest(b)))
            .map_keys(|j| j.to_string()),
    );
    // Accounts, and staked addresses that hold no balance.
    let mut accounts: BTreeSet<String> = BTreeSet::new();
    for resolved in [
        prefix
            .resolve(&state.accounts, Address)
            .map_keys(|a| hex(a.0)),
        prefix
            .resolve(&state.stakes, Address)
            .map_keys(|a| hex(a.0)),
    ] {
        accounts.extend(found(resolved));
    }
    let programs = found(
        prefix
            .resolve(&state.programs, |b| ProgramHash(Digest(b)))
            .map_keys(|p| p.to_string()),
    );
    let tagged = |kind, ids: Vec<String>| ids.into_iter().map(move |id| IdMatch { kind, id });
    let matches = tagged(IdKind::Job, jobs)
        .chain(tagged(
            IdKind::Account,
            accounts.into_iter().take(AMBIGUOUS_SHOWN + 1).collect(),
        ))
        .chain(tagged(IdKind::Program, programs))
        .collect();
    Ok(Json(Resolution {
        prefix: prefix.to_string(),
        matches,
    }))
}

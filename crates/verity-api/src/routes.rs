//! Every route, once: the node registers the templates (`{id}` is a path parameter, in axum's
//! syntax), the SDK fills them in with the functions below.

use std::fmt::Display;

pub const HEAD: &str = "/v1/head";
pub const TXS: &str = "/v1/txs";
pub const TX: &str = "/v1/txs/{id}";
pub const JOBS: &str = "/v1/jobs";
pub const JOB: &str = "/v1/jobs/{id}";
pub const JOB_RECEIPT: &str = "/v1/jobs/{id}/receipt";
pub const JOB_PROVENANCE: &str = "/v1/jobs/{id}/provenance";
pub const JOB_PRIVATE: &str = "/v1/jobs/{id}/private";
/// The node checks the job's proof with its verifier (`POST`).
pub const JOB_VERIFY: &str = "/v1/jobs/{id}/verify";
pub const BLOCK: &str = "/v1/blocks/{id}";
/// A block's encoding with its finalization certificate, for clients that check finality.
pub const BLOCK_CERTIFIED: &str = "/v1/blocks/{id}/certified";
pub const STATS: &str = "/v1/stats";
pub const PROGRAM: &str = "/v1/programs/{id}";
pub const ACCOUNT: &str = "/v1/accounts/{id}";
pub const PROVIDERS: &str = "/v1/providers";
pub const HEARTBEAT: &str = "/v1/providers/heartbeat";
pub const PROVIDER: &str = "/v1/providers/{id}";
pub const AUDITORS: &str = "/v1/auditors";
pub const EVENTS: &str = "/v1/events";
/// Which jobs, accounts and programs an id prefix names.
pub const RESOLVE: &str = "/v1/resolve/{id}";
/// One state entry with its inclusion proof: `{kind}` is `account`, `stake`, `job` or
/// `provenance`; fill it in with [`proof_path`].
pub const STATE_PROOF: &str = "/v1/proofs/{kind}/{id}";
/// State sync, for a node that starts from another's state (`verity node run --sync-from`):
/// the committed state as a [`crate::StateSnapshot`] (borsh, `application/octet-stream`).
pub const SYNC_SNAPSHOT: &str = "/v1/sync/snapshot";
/// State sync: operations of the state store's log with their proof (`?size=&start=&max=`;
/// QMDB's encoding, `application/octet-stream`).
pub const SYNC_OPERATIONS: &str = "/v1/sync/operations";
/// State sync: the operation where a synced log begins, with the Merkle nodes pinned there
/// (`?size=&start=`; QMDB's encoding).
pub const SYNC_BOUNDARY: &str = "/v1/sync/boundary";
/// This API's OpenAPI 3 description (`verity_api::openapi`).
pub const OPENAPI: &str = "/v1/openapi.json";
/// Prometheus metrics, in the text exposition format (OpenMetrics), served as
/// [`METRICS_CONTENT_TYPE`] by nodes and by providers.
pub const METRICS: &str = "/metrics";
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Served by a provider at its announced endpoint (not by nodes): `?nonce=…`.
pub const PING: &str = "/v1/ping";

/// `template` with its `{id}` filled in.
pub fn path(template: &str, id: impl Display) -> String {
    debug_assert!(template.contains("{id}"), "{template} takes no id");
    template.replace("{id}", &id.to_string())
}

/// [`STATE_PROOF`] for an entry of `kind` (`account`, `stake`, `job`, `provenance`) under `id`.
pub fn proof_path(kind: &str, id: impl Display) -> String {
    STATE_PROOF
        .replace("{kind}", kind)
        .replace("{id}", &id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_fills_in_the_id() {
        assert_eq!(path(JOB_RECEIPT, "ab12"), "/v1/jobs/ab12/receipt");
        assert_eq!(path(ACCOUNT, 7), "/v1/accounts/7");
    }
}

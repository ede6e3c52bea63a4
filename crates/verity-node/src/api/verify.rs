//! `POST /v1/jobs/{id}/verify`: the node checks a job's stored proof with its verifier, so a
//! person in the explorer (or a script) sees the check happen rather than taking the ledger's
//! word for it.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tokio::sync::Semaphore;
use verity_api::{ErrorCode, Verification};

use super::{ApiResult, error, find_job, internal, not_found};
use crate::node::Node;

/// Verifications running at once. Each takes milliseconds of CPU; a caller asking for more
/// gets `busy` instead of queueing work for the node's two cores.
static VERIFY_SLOTS: Semaphore = Semaphore::const_new(2);

pub(super) async fn verify(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<Verification> {
    let state = node.state();
    let job = find_job(&state, &id)?;
    let (Some(outputs), Some(proof_hash)) = (job.outputs().copied(), job.proof_hash()) else {
        return Err(not_found(format!(
            "job {} has no proof to verify ({})",
            job.id,
            job.state()
        )));
    };
    let proof = node
        .storage()
        .blob(&proof_hash)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("proof {proof_hash} is not stored on this node")))?;
    let Ok(_slot) = VERIFY_SLOTS.try_acquire() else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Busy,
            "the node is verifying other proofs; try again in a moment",
        ));
    };
    let (job_id, program_hash, inputs) = (job.id, job.program_hash, job.proof_inputs());
    // CPU work stays off the async executor's threads.
    let (result, took) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let result = verity_vm::verify_proof(&program_hash, &inputs, &outputs, &proof);
        (result, started.elapsed())
    })
    .await
    .map_err(internal)?;
    let (valid, message) = match result {
        Ok(v) => (
            true,
            format!(
                "program {program_hash} gives these outputs on the job's inputs ({}-bit security)",
                v.security_bits
            ),
        ),
        Err(e) => (false, e.to_string()),
    };
    Ok(Json(Verification {
        job_id,
        valid,
        message,
        program_hash,
        proof_hash,
        verify_us: took.as_micros() as u64,
    }))
}

//! `POST /v1/jobs/{id}/verify`: the node checks a job's stored proof with its verifier, so a
//! person in the explorer (or a script) sees the check happen rather than taking the ledger's
//! word for it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tokio::sync::Semaphore;
use verity_api::{ErrorCode, Verification};
use verity_types::Digest;

use super::{ApiResult, error, find_any_job, internal, not_found, stored_proof};
use crate::node::Node;

/// Verifications running at once. Each takes milliseconds of CPU; a caller asking for more
/// gets `busy` instead of queueing work for the node's cores. The permit is held by the
/// verification itself, so a caller that hangs up does not free its slot early.
static VERIFY_SLOTS: Semaphore = Semaphore::const_new(2);

/// Takes every verification slot until the guard is dropped, so a test sees the node answer
/// `busy` (only in builds with the `mocks` feature).
#[cfg(feature = "mocks")]
pub fn occupy_verifiers() -> tokio::sync::SemaphorePermit<'static> {
    VERIFY_SLOTS
        .try_acquire_many(2)
        .expect("no verification is running in this test")
}

/// Answers already given, by proof hash: a stored proof was accepted by the ledger and its
/// verdict cannot change, so asking again costs nothing. Bounded: cleared when full.
static VERDICTS: Mutex<BTreeMap<Digest, Verdict>> = Mutex::new(BTreeMap::new());
const MAX_VERDICTS: usize = 4096;

#[derive(Clone)]
struct Verdict {
    valid: bool,
    message: String,
    verify_us: u64,
}

/// The body must be JSON (`{}`): a cross-site form cannot send that without the browser asking
/// the node first (CORS), so other sites cannot make their visitors spend this node's CPU.
pub(super) async fn verify(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> ApiResult<Verification> {
    let Json(_) = body?;
    let (job, _) = find_any_job(&node, &id)?;
    let (Some(outputs), Some(proof_hash)) = (job.outputs().copied(), job.proof_hash()) else {
        return Err(not_found(format!(
            "job {} has no proof to verify ({})",
            job.id,
            job.state()
        )));
    };
    let (job_id, program_hash) = (job.id, job.program_hash);
    let answer = |v: Verdict| Verification {
        job_id,
        valid: v.valid,
        message: v.message,
        program_hash,
        proof_hash,
        verify_us: v.verify_us,
    };
    let known = VERDICTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&proof_hash)
        .cloned();
    if let Some(v) = known {
        return Ok(Json(answer(v)));
    }
    let Ok(slot) = VERIFY_SLOTS.try_acquire() else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Busy,
            "the node is verifying other proofs; try again in a moment",
        ));
    };
    let proof = stored_proof(&node, &proof_hash)?;
    let inputs = job.proof_inputs();
    // CPU work stays off the async executor's threads, holding its slot to the end.
    let verdict = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let started = Instant::now();
        let result = verity_vm::verify_proof(&program_hash, &inputs, &outputs, &proof);
        let verify_us = started.elapsed().as_micros() as u64;
        match result {
            Ok(v) => Verdict {
                valid: true,
                message: format!(
                    "program {program_hash} gives these outputs on the job's inputs ({}-bit security)",
                    v.security_bits
                ),
                verify_us,
            },
            Err(e) => Verdict {
                valid: false,
                message: e.to_string(),
                verify_us,
            },
        }
    })
    .await
    .map_err(internal)?;
    let mut verdicts = VERDICTS.lock().unwrap_or_else(|e| e.into_inner());
    if verdicts.len() >= MAX_VERDICTS {
        verdicts.clear();
    }
    verdicts.insert(proof_hash, verdict.clone());
    drop(verdicts);
    Ok(Json(answer(verdict)))
}

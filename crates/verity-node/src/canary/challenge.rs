//! Challenging a canary answered wrong: prove the right outputs, submit a `Challenge`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::warn;
use verity_types::JobId;
use verity_vm::{Inputs, Program};

use super::derive::{Canary, FIB};
use crate::auditor::{AuditorConfig, AuditorCounters};
use crate::handle::NodeHandle;

pub(super) async fn challenge<H: NodeHandle>(
    node: Arc<H>,
    config: AuditorConfig,
    counters: Arc<AuditorCounters>,
    proving: Arc<std::sync::Mutex<BTreeSet<JobId>>>,
    c: Canary,
) {
    prove_and_challenge(&node, &config, &counters, &c).await;
    proving
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&c.job_id);
}

async fn prove_and_challenge<H: NodeHandle>(
    node: &Arc<H>,
    config: &AuditorConfig,
    counters: &AuditorCounters,
    c: &Canary,
) {
    let request = c.request.clone();
    let proved = tokio::task::spawn_blocking(move || {
        // Every canary runs the same program (see `derive`).
        let program = Program::assemble(FIB, "fib.masm")?;
        let inputs = Inputs {
            stack: request.stack_inputs.clone(),
            ..Inputs::default()
        };
        crate::auditor::prove_within(&program, &inputs, request.max_cycles)
    })
    .await;
    let receipt = match proved {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return warn!("cannot prove a canary's outputs: {e}"),
        Err(_) => return,
    };
    match crate::auditor::submit_challenge(&**node, &config.key, c.job_id, receipt) {
        Ok(_) => {
            counters.canaries_challenged.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => warn!(job = %c.job_id.short(), "cannot submit the challenge: {e}"),
    }
}

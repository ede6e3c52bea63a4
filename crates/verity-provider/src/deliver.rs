//! Delivering held jobs: executing or proving on blocking threads, then fulfilling.

use super::*;

impl Provider {
    /// Collects a finished delivery and starts the next. Optimistic jobs need only fast
    /// execution, so they go first; proofs run one at a time (a proof uses every core) in a
    /// background task, while this loop keeps watching and locking.
    pub(crate) async fn drive_deliveries(&mut self, height: u64, block_ms: u64) {
        if self.busy.as_ref().is_some_and(|(_, h)| h.is_finished()) {
            let (job, handle) = self.busy.take().expect("checked");
            match handle.await {
                Ok(Outcome::Done(Some((trace_len, took)))) => self.speed.observe(trace_len, took),
                // Delivered without a proof, or given up: never picked up again as "lost".
                Ok(Outcome::Done(None)) => {
                    self.given_up.insert(job);
                }
                Ok(Outcome::Retry(held)) => self.queue.push_back(*held),
                Ok(Outcome::ProvingFailed) | Err(_) => {
                    // Stop taking new work while proving fails: locking more would only lose
                    // collateral.
                    self.given_up.insert(job);
                    self.paused_until = Some(Instant::now() + Duration::from_secs(30));
                }
            }
        }
        if self.busy.is_none() {
            let next = self
                .queue
                .iter()
                .position(|h| h.job.request.mode == Mode::Optimistic)
                .unwrap_or(0);
            if let Some(held) = self.queue.remove(next) {
                // Say so before a proof misses, not after: the estimate against the time left
                // before the lock deadline (after it, anyone may rescue and we are slashed).
                if held.job.request.mode == Mode::Proof && held.trace_len > 0 {
                    let expected = self.speed.estimate(held.trace_len);
                    let left = Duration::from_millis(
                        held.job.lock_deadline().saturating_sub(height) * block_ms,
                    );
                    if expected > left {
                        warn!(
                            job = %held.job.id.short(),
                            "this proof is expected to take ~{expected:.1?}, {left:.1?} before the lock deadline (block {}): it will probably miss",
                            held.job.lock_deadline()
                        );
                    }
                }
                let (client, key) = (self.client.clone(), self.cfg.key.clone());
                let faults = self.cfg.faults();
                let advice = held_advice(&self.cfg.held_data, &held.job);
                let hints: Vec<_> = held_for(&self.cfg.held_data, &held.job)
                    .filter_map(|h| h.job_hints.clone())
                    .collect();
                let programs = self.programs.clone();
                let metrics = self.metrics.clone();
                let job = held.job.id;
                self.busy = Some((
                    job,
                    tokio::spawn(deliver(
                        client,
                        key,
                        held,
                        HeldAdvice { advice, hints },
                        programs,
                        faults,
                        metrics,
                    )),
                ));
            }
        }
    }
}

/// How a delivery ended.
pub(crate) enum Outcome {
    /// Fulfilled (or given up on); with the trace length and time if a proof was made.
    Done(Option<(u64, Duration)>),
    /// Could not start yet (e.g. advice not available): queue it again.
    Retry(Box<Held>),
    ProvingFailed,
}

/// The advice a held job gets from data this provider holds: fixed entries, and what is
/// derived from the job's private inputs once they are opened.
pub(crate) struct HeldAdvice {
    pub(crate) advice: Vec<(Digest, Vec<u64>)>,
    pub(crate) hints: Vec<std::sync::Arc<dyn JobHints>>,
}

/// Proves (or, in optimistic mode, executes) a held job and fulfils it.
pub(crate) async fn deliver(
    client: Client,
    key: Keypair,
    held: Held,
    held_advice: HeldAdvice,
    programs: Programs,
    faults: Faults,
    metrics: std::sync::Arc<crate::metrics::ProviderMetrics>,
) -> Outcome {
    let id = held.job.id;
    let private = match private_inputs(&client, &key, &held.job).await {
        Ok(private) => private,
        Err(Some(why)) => {
            debug!(job = %id.short(), "private inputs not ready: {why}");
            return Outcome::Retry(Box::new(held));
        }
        Err(None) => return Outcome::Done(None),
    };
    let job = held.job;
    let HeldAdvice { mut advice, hints } = held_advice;
    if let (false, Some((_, values))) = (hints.is_empty(), &private) {
        // Running a model's reference is CPU work: off the executor.
        let values = values.clone();
        let derived = tokio::task::spawn_blocking(move || {
            hints
                .iter()
                .map(|h| h.hints(&values))
                .collect::<Result<Vec<_>, String>>()
        })
        .await;
        match derived {
            Ok(Ok(entries)) => advice.extend(entries.into_iter().flatten()),
            Ok(Err(why)) => {
                // Nobody can prove it without them: give the lock up rather than be slashed.
                warn!(job = %id.short(), "cannot derive the job's hints ({why}); releasing the lock");
                release(&client, &key, id).await;
                return Outcome::Done(None);
            }
            Err(e) => {
                // A panic in the model's code: this job will not be proven here either.
                warn!(job = %id.short(), "deriving the job's hints failed ({e}); releasing the lock");
                release(&client, &key, id).await;
                return Outcome::Done(None);
            }
        }
    }
    let program = match programs.of(&client, &job).await {
        Ok(p) => p,
        Err(e) => {
            warn!(job = %id.short(), "cannot assemble a locked job: {e}");
            return Outcome::Done(None);
        }
    };
    let inputs = match verity_vm::job_inputs(
        &job.request.stack_inputs,
        private.as_ref().map(|(c, v)| (c, v.as_slice())),
    ) {
        Ok(mut i) => {
            i.advice.map.extend(advice);
            i
        }
        Err(e) => {
            warn!(job = %id.short(), "cannot build the job's inputs: {e}");
            return Outcome::Done(None);
        }
    };
    let mode = job.request.mode;
    let started = Instant::now();
    let Some((mut outputs, receipt)) =
        compute(id, program, inputs, mode, job.request.max_cycles).await
    else {
        metrics.failed();
        return Outcome::ProvingFailed;
    };
    let proving = started.elapsed();
    if faults.wrong_outputs() && mode == Mode::Optimistic {
        // A different, still valid, field element.
        let mut wrong = outputs.to_vec();
        wrong[0] = if wrong[0] == 0 { 1 } else { wrong[0] - 1 };
        outputs = StackOutputs::new(&wrong).expect("still 16 field elements");
    }
    if let Some(delay) = faults.delay() {
        tokio::time::sleep(delay).await;
    }
    let took = started.elapsed();
    if let Some(r) = &receipt {
        info!(job = %id.short(), cycles = r.cycles, "proved in {took:.2?}");
        metrics.proved(r.trace_len, proving);
    }
    let observed = receipt.as_ref().map(|r| (r.trace_len, took));
    fulfil(&client, &key, id, outputs, receipt).await;
    Outcome::Done(observed)
}

/// The job's private inputs, opened (`None` if it has none). `Err(Some(why))`: not provided
/// yet, try later; `Err(None)`: the job is given up (gone, or the data is unusable and the
/// lock was released rather than slashed at the deadline).
async fn private_inputs(
    client: &Client,
    key: &Keypair,
    job: &Job,
) -> Result<Option<(PrivateCommitment, Vec<u64>)>, Option<String>> {
    let id = job.id;
    let Some(commitment) = job.request.private_inputs else {
        return Ok(None);
    };
    match fetch_private(client, key, &id, &commitment).await {
        Fetched::Ready(values) => Ok(Some((commitment, values))),
        Fetched::NotYet(why) => Err(Some(why)),
        Fetched::Gone(why) => {
            info!(job = %id.short(), "dropping the job: {why}");
            Err(None)
        }
        // Opened and unusable: nobody can prove this job, so give the lock up rather than
        // be slashed at the deadline.
        Fetched::Unusable(why) => {
            warn!(job = %id.short(), "the client's private inputs are unusable ({why}); releasing the lock");
            release(client, key, id).await;
            Err(None)
        }
    }
}

/// Proves (proof mode) or executes (optimistic mode) on a blocking thread: the outputs, and
/// the receipt of a proof. `None` if it failed (logged).
async fn compute(
    id: JobId,
    program: Program,
    inputs: Inputs,
    mode: Mode,
    max_cycles: u32,
) -> Option<(StackOutputs, Option<verity_types::Receipt>)> {
    let result = tokio::task::spawn_blocking(move || match mode {
        Mode::Proof => verity_vm::prove(
            &program,
            &inputs,
            ProveOptions {
                max_cycles,
                ..Default::default()
            },
        )
        .map(|r| (r.stack_outputs, Some(r))),
        Mode::Optimistic => {
            verity_vm::execute_outputs(&program, &inputs, max_cycles).map(|o| (o, None))
        }
    })
    .await;
    match result {
        Ok(Ok(x)) => Some(x),
        Ok(Err(e)) => {
            // Stop taking new work while proving fails: locking more would only lose collateral.
            warn!(job = %id.short(), "proving failed: {e}; pausing new locks for 30 s");
            None
        }
        Err(e) => {
            warn!(job = %id.short(), "proving task failed: {e}");
            None
        }
    }
}

/// Sends the fulfilment (with the proof and its cycle count, so every node can serve the
/// receipt).
async fn fulfil(
    client: &Client,
    key: &Keypair,
    id: JobId,
    outputs: StackOutputs,
    receipt: Option<verity_types::Receipt>,
) {
    let body = TxBody::Fulfil {
        job_id: id,
        outputs,
        proof: receipt.as_ref().map(|r| r.proof.clone()),
        cycles: receipt.as_ref().map_or(0, |r| r.cycles),
    };
    let sent = submit_until_included(client, key, body).await;
    match sent {
        Ok(h) => info!(job = %id.short(), height = h, "fulfilled at height {h}"),
        Err(e) => warn!(job = %id.short(), "fulfilment not accepted: {e}"),
    }
}

/// Submits `body` signed by `key` and waits for it to be in a block. A signed transaction
/// that may have arrived is only ever resent as the same bytes (nodes take it again as the
/// same transaction), for up to a minute while no node answers or the one answering has not
/// seen it: a made proof is worth that, and re-signing could pay twice. It is signed again
/// only when its nonce went to another of this worker's transactions (a lock), up to 10
/// times. Any other answer is final.
async fn submit_until_included(
    client: &Client,
    key: &Keypair,
    body: TxBody,
) -> Result<u64, ClientError> {
    let give_up = Instant::now() + Duration::from_secs(60);
    let retry = |e: &ClientError| {
        Instant::now() < give_up
            && matches!(
                e,
                ClientError::Unreachable { .. }
                    | ClientError::Protocol(_)
                    | ClientError::Refused {
                        code: ErrorCode::NotFound,
                        ..
                    }
            )
    };
    let mut signed_again = 0;
    'sign: loop {
        let signed = match client.sign(key, body.clone()).await {
            Ok(signed) => signed,
            Err(e) if retry(&e) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let id = signed.id();
        loop {
            let outcome = match client.submit(&signed).await {
                Ok(_) => client.wait_tx(&id, Duration::from_secs(30)).await,
                Err(e) => Err(e),
            };
            match outcome {
                Err(ClientError::Refused {
                    code: ErrorCode::WrongNonce,
                    ..
                }) if signed_again < 10 => {
                    signed_again += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue 'sign;
                }
                Err(e) if retry(&e) => tokio::time::sleep(Duration::from_secs(1)).await,
                outcome => return outcome,
            }
        }
    }
}

/// Gives up the lock on a job nobody can prove, rather than be slashed at its deadline.
async fn release(client: &Client, key: &Keypair, id: JobId) {
    let body = TxBody::ReleaseLock { job_id: id };
    match client.send(key, body).await {
        Ok(tx) => {
            if let Err(e) = client.wait_tx(&tx, Duration::from_secs(30)).await {
                warn!(job = %id.short(), "release not accepted: {e}");
            }
        }
        Err(e) => warn!(job = %id.short(), "cannot release the lock: {e}"),
    }
}

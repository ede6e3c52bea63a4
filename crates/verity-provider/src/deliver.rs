//! Delivering held jobs: executing or proving on blocking threads, then fulfilling.

use super::*;

impl Provider {
    /// Collects a finished delivery and starts the next. Optimistic jobs need only fast
    /// execution, so they go first; proofs run one at a time (a proof uses every core) in a
    /// background task, while this loop keeps watching and locking.
    pub(crate) async fn drive_deliveries(&mut self, height: u64, block_ms: u64) {
        if self.busy.as_ref().is_some_and(|h| h.is_finished()) {
            match self.busy.take().expect("checked").await {
                Ok(Outcome::Done(Some((trace_len, took)))) => self.speed.observe(trace_len, took),
                Ok(Outcome::Done(None)) => {}
                Ok(Outcome::Retry(held)) => self.queue.push_back(*held),
                Ok(Outcome::ProvingFailed) | Err(_) => {
                    // Stop taking new work while proving fails: locking more would only lose
                    // collateral.
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
                let programs = self.programs.clone();
                self.busy = Some(tokio::spawn(deliver(
                    client, key, held, advice, programs, faults,
                )));
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

/// Proves (or, in optimistic mode, executes) a held job and fulfils it.
pub(crate) async fn deliver(
    client: Client,
    key: Keypair,
    held: Held,
    advice: Vec<(Digest, Vec<u64>)>,
    programs: Programs,
    faults: Faults,
) -> Outcome {
    let job = held.job;
    let id = job.id;
    let private = match job.request.private_inputs {
        None => None,
        Some(commitment) => match fetch_private(&client, &key, &id, &commitment).await {
            Fetched::Ready(values) => Some((commitment, values)),
            Fetched::NotYet(why) => {
                debug!(job = %id.short(), "private inputs not ready: {why}");
                return Outcome::Retry(Box::new(Held {
                    job,
                    trace_len: held.trace_len,
                }));
            }
            Fetched::Gone(why) => {
                info!(job = %id.short(), "dropping the job: {why}");
                return Outcome::Done(None);
            }
            // Opened and unusable: nobody can prove this job, so give the lock up rather than
            // be slashed at the deadline.
            Fetched::Unusable(why) => {
                warn!(job = %id.short(), "the client's private inputs are unusable ({why}); releasing the lock");
                let body = TxBody::ReleaseLock { job_id: id };
                match client.send(&key, body).await {
                    Ok(tx) => {
                        if let Err(e) = client.wait_tx(&tx, Duration::from_secs(30)).await {
                            warn!(job = %id.short(), "release not accepted: {e}");
                        }
                    }
                    Err(e) => warn!(job = %id.short(), "cannot release the lock: {e}"),
                }
                return Outcome::Done(None);
            }
        },
    };
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
    let max = job.request.max_cycles;
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || match mode {
        Mode::Proof => verity_vm::prove(
            &program,
            &inputs,
            ProveOptions {
                max_cycles: max,
                ..Default::default()
            },
        )
        .map(|r| (r.stack_outputs, Some(r))),
        Mode::Optimistic => verity_vm::execute_outputs(&program, &inputs, max).map(|o| (o, None)),
    })
    .await;
    let (mut outputs, receipt) = match result {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            // Stop taking new work while proving fails: locking more would only lose collateral.
            warn!(job = %id.short(), "proving failed: {e}; pausing new locks for 30 s");
            return Outcome::ProvingFailed;
        }
        Err(e) => {
            warn!(job = %id.short(), "proving task failed: {e}");
            return Outcome::ProvingFailed;
        }
    };
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
    let observed = receipt.as_ref().map(|r| (r.trace_len, took));
    if let Some(r) = &receipt {
        info!(job = %id.short(), cycles = r.cycles, "proved in {took:.2?}");
    }
    let body = TxBody::Fulfil {
        job_id: id,
        outputs,
        proof: receipt.as_ref().map(|r| r.proof.clone()),
    };
    // The worker's other transactions (locks) race this one for the account's next nonce;
    // a refusal for a stale nonce is worth retrying, anything else is final.
    let mut attempts = 0;
    let sent = loop {
        let sent = match client.send(&key, body.clone()).await {
            Ok(tx) => client.wait_tx(&tx, Duration::from_secs(30)).await,
            Err(e) => Err(e),
        };
        match &sent {
            Err(verity_client::ClientError::Refused {
                code: verity_client::ErrorCode::WrongNonce,
                ..
            }) if attempts < 10 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => break sent,
        }
    };
    match sent {
        Ok(h) => {
            info!(job = %id.short(), height = h, "fulfilled at height {h}");
            if let Some(r) = &receipt
                && let Err(e) = client.put_receipt(&id, r, &key).await
            {
                warn!(job = %id.short(), "could not upload the receipt: {e}");
            }
        }
        Err(e) => warn!(job = %id.short(), "fulfilment not accepted: {e}"),
    }
    Outcome::Done(observed)
}

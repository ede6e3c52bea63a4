//! Which jobs to take: the auction price against this provider's floor, what it can deliver in
//! time behind its queue, and rescues of jobs whose locker let them lapse.

use super::*;

impl Provider {
    /// Decides whether to lock a job, and locks it. Logs the reason either way.
    pub(crate) async fn consider(
        &mut self,
        view: verity_client::JobView,
        height: u64,
        block_ms: u64,
    ) -> Result<Option<Held>, StepError> {
        let job = view.job;
        let id = job.id;
        let me = self.cfg.key.address();
        let program = match self.programs.of(&self.client, &job).await {
            Ok(p) => p,
            Err(e) => return self.skip(id, e),
        };
        // Estimate the cost by fast execution; private inputs are released only after the
        // lock, so a job with them is priced at its cycle cap.
        let advice = held_advice(&self.cfg.held_data, &job);
        let trace_len = if job.request.private_inputs.is_some() {
            // Unverified hints the job does not carry must come from data we hold: without
            // it the proof would fail after the lock, and the collateral with it.
            if job.unverified_hints && advice.is_empty() {
                return self.skip(
                    id,
                    "it reads advice (hints) that neither it nor I hold, and its private inputs \
                     arrive only after the lock: it may not be provable"
                        .into(),
                );
            }
            u64::from(job.request.max_cycles).next_power_of_two()
        } else {
            let mut inputs = Inputs {
                stack: job.request.stack_inputs.clone(),
                ..Inputs::default()
            };
            inputs.advice.map.extend(advice);
            let max = job.request.max_cycles;
            match tokio::task::spawn_blocking(move || verity_vm::execute(&program, &inputs, max))
                .await?
            {
                Ok(run) => run.trace_len,
                Err(e) => return self.skip(id, format!("program fails: {e}")),
            }
        };
        let ask = (u128::from(self.cfg.price_per_mcycle) * u128::from(trace_len))
            .div_ceil(1_000_000) as u64;
        if view.current_price < ask {
            if job.request.offer.max_price < ask {
                return self.skip(
                    id,
                    format!(
                        "max price {} is below my ask {ask} for {trace_len} cycles",
                        job.request.offer.max_price
                    ),
                );
            }
            // The auction is still rising; look again next round.
            return Ok(None);
        }
        let provider = self.client.provider(&me).await?;
        if provider.stake.provider_free() < job.request.offer.collateral {
            return self.skip(
                id,
                format!(
                    "collateral {} exceeds my free stake {}",
                    job.request.offer.collateral,
                    provider.stake.provider_free()
                ),
            );
        }
        if job
            .request
            .min_trust
            .is_some_and(|t| provider.trust_score < t)
        {
            return self.skip(
                id,
                format!(
                    "requires trust {:?}, mine is {}",
                    job.request.min_trust, provider.trust_score
                ),
            );
        }
        // Never lock what we cannot deliver: queued work plus this job must fit, with margin,
        // before the *lock* deadline. After it anyone may rescue the job and the locker is
        // slashed, so the final deadline is not ours to plan against.
        // Proofs run one after another, so the queue's proofs come first; an optimistic
        // result needs only a fast execution. Four blocks cover including the lock and the
        // fulfilment.
        let queued: Duration = self
            .queue
            .iter()
            .filter(|h| h.job.request.mode == Mode::Proof)
            .map(|h| self.speed.estimate(h.trace_len))
            .sum();
        let own = match job.request.mode {
            Mode::Proof => self.speed.estimate(trace_len),
            Mode::Optimistic => Duration::ZERO,
        };
        // Half again the estimate: a margin for a machine busier than when it was measured.
        let needed = |proving: Duration| proving * 3 / 2 + Duration::from_millis(4 * block_ms);
        let remaining =
            Duration::from_millis(view.lock_deadline.saturating_sub(height + 1) * block_ms);
        if needed(own) > remaining {
            return self.skip(
                id,
                format!(
                    "cannot deliver in time: need ~{:?}, {remaining:?} left",
                    needed(own)
                ),
            );
        }
        // It would fit alone but not behind the queue: look again as the queue drains (a
        // job passed over for good here once expired unlocked while the queue emptied).
        if own > Duration::ZERO && needed(queued + own) > remaining {
            if self.deferred.insert(id) {
                info!(job = %id.short(), "deferred: need ~{:?} behind my queue, {remaining:?} left", needed(queued + own));
            }
            return Ok(None);
        }
        self.deferred.remove(&id);
        let tx = self
            .client
            .send(&self.cfg.key, TxBody::LockJob { job_id: id })
            .await?;
        match self.client.wait_tx(&tx, Duration::from_secs(30)).await {
            Ok(h) => {
                info!(job = %id.short(), price = view.current_price, height = h, "locked at price {} ({trace_len} cycles)", view.current_price);
                let job = self.client.job(&id).await?.job;
                Ok(Some(Held { job, trace_len }))
            }
            Err(e) => {
                info!(job = %id.short(), "lock not taken: {e}");
                self.skipped.insert(id);
                Ok(None)
            }
        }
    }

    /// Anyone may fulfil a locked job whose lock deadline has passed: the locker is slashed and
    /// the rescuer paid. One provider cannot sit on a job.
    pub(crate) async fn rescue(&mut self, height: u64) -> Result<(), StepError> {
        let me = self.cfg.key.address();
        let locked = self
            .client
            .jobs(&JobQuery {
                state: Some(JobState::Locked),
                limit: Some(50),
                ..Default::default()
            })
            .await?;
        for s in locked.jobs {
            if s.locker == Some(me)
                || self.skipped.contains(&s.id)
                || self.queue.len() >= self.cfg.max_queue
            {
                continue;
            }
            let view = self.client.job(&s.id).await?;
            if height < view.lock_deadline || height >= view.deadline {
                continue;
            }
            if view.job.request.mode == Mode::Optimistic {
                let mine = self.client.provider(&me).await?;
                if mine.stake.provider_free() < view.job.request.offer.collateral {
                    continue;
                }
            }
            info!(job = %s.id.short(), "rescuing: its locker missed the lock deadline (block {})", view.lock_deadline);
            self.skipped.insert(s.id);
            self.queue.push_back(Held {
                job: view.job,
                trace_len: 0,
            });
        }
        Ok(())
    }
}

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
        let id = view.job.id;
        let decision = match self.trace_len_of(&view.job).await? {
            Err(why) => Decision::Skip(why),
            Ok(trace_len) => match self.judge_terms(&view, trace_len).await? {
                Decision::Take => self.judge_time(&view, trace_len, height, block_ms),
                other => other,
            }
            .with_trace(trace_len),
        };
        match decision {
            Decision::Skip(why) => self.skip(id, why),
            Decision::Later | Decision::Take => Ok(None),
            Decision::Lock(trace_len) => self.lock(id, view.current_price, trace_len).await,
        }
    }

    /// The padded trace length the job would prove, from a fast execution; a job with private
    /// inputs (released only after the lock) is priced at its cycle cap. `Err`: why not.
    async fn trace_len_of(&self, job: &Job) -> Result<Result<u64, String>, StepError> {
        let program = match self.programs.of(&self.client, job).await {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let advice = held_advice(&self.cfg.held_data, job);
        if job.request.private_inputs.is_some() {
            // Unverified hints the job does not carry must come from data we hold: without
            // it the proof would fail after the lock, and the collateral with it.
            if job.unverified_hints && advice.is_empty() {
                return Ok(Err(
                    "it reads advice (hints) that neither it nor I hold, and its private inputs \
                     arrive only after the lock: it may not be provable"
                        .into(),
                ));
            }
            return Ok(Ok(u64::from(job.request.max_cycles).next_power_of_two()));
        }
        let mut inputs = Inputs {
            stack: job.request.stack_inputs.clone(),
            ..Inputs::default()
        };
        inputs.advice.map.extend(advice);
        let max = job.request.max_cycles;
        let run =
            tokio::task::spawn_blocking(move || verity_vm::execute(&program, &inputs, max)).await?;
        Ok(run
            .map(|run| run.trace_len)
            .map_err(|e| format!("program fails: {e}")))
    }

    /// The offer's terms against this provider: its price per cycle, its free stake for the
    /// collateral, its trust score for `min_trust`.
    async fn judge_terms(
        &self,
        view: &verity_client::JobView,
        trace_len: u64,
    ) -> Result<Decision, StepError> {
        let request = &view.job.request;
        let ask = (u128::from(self.cfg.price_per_mcycle) * u128::from(trace_len))
            .div_ceil(1_000_000) as u64;
        if view.current_price < ask {
            if request.offer.max_price < ask {
                return Ok(Decision::Skip(format!(
                    "max price {} is below my ask {ask} for {trace_len} cycles",
                    request.offer.max_price
                )));
            }
            // The auction is still rising; look again next round.
            return Ok(Decision::Later);
        }
        let me = self.client.provider(&self.cfg.key.address()).await?;
        let free = me.stake.provider_free();
        if free < request.offer.collateral {
            return Ok(Decision::Skip(format!(
                "collateral {} exceeds my free stake {free}",
                request.offer.collateral
            )));
        }
        if request.min_trust.is_some_and(|t| me.trust_score < t) {
            return Ok(Decision::Skip(format!(
                "requires trust {:?}, mine is {}",
                request.min_trust, me.trust_score
            )));
        }
        Ok(Decision::Take)
    }

    /// Whether the job can be delivered in time. Never lock what cannot be: queued work plus
    /// this job must fit, with margin, before the *lock* deadline. After it anyone may rescue
    /// the job and the locker is slashed, so the final deadline is not ours to plan against.
    fn judge_time(
        &mut self,
        view: &verity_client::JobView,
        trace_len: u64,
        height: u64,
        block_ms: u64,
    ) -> Decision {
        let id = view.job.id;
        // Proofs run one after another, so the queue's proofs come first; an optimistic
        // result needs only a fast execution. Four blocks cover including the lock and the
        // fulfilment.
        let queued: Duration = self
            .queue
            .iter()
            .filter(|h| h.job.request.mode == Mode::Proof)
            .map(|h| self.speed.estimate(h.trace_len))
            .sum();
        let own = match view.job.request.mode {
            Mode::Proof => self.speed.estimate(trace_len),
            Mode::Optimistic => Duration::ZERO,
        };
        // Half again the estimate: a margin for a machine busier than when it was measured.
        let needed = |proving: Duration| proving * 3 / 2 + Duration::from_millis(4 * block_ms);
        let remaining =
            Duration::from_millis(view.lock_deadline.saturating_sub(height + 1) * block_ms);
        if needed(own) > remaining {
            return Decision::Skip(format!(
                "cannot deliver in time: need ~{:?}, {remaining:?} left",
                needed(own)
            ));
        }
        // It would fit alone but not behind the queue: look again as the queue drains (a
        // job passed over for good here once expired unlocked while the queue emptied).
        if own > Duration::ZERO && needed(queued + own) > remaining {
            if self.deferred.insert(id) {
                info!(job = %id.short(), "deferred: need ~{:?} behind my queue, {remaining:?} left", needed(queued + own));
            }
            return Decision::Later;
        }
        self.deferred.remove(&id);
        Decision::Take
    }

    /// Locks the job; a lock that is not taken (another provider was first) is not retried.
    async fn lock(
        &mut self,
        id: JobId,
        price: u64,
        trace_len: u64,
    ) -> Result<Option<Held>, StepError> {
        let included = match self
            .client
            .send(&self.cfg.key, TxBody::LockJob { job_id: id })
            .await
        {
            Ok(tx) => self.client.wait_tx(&tx, Duration::from_secs(30)).await,
            Err(e) => Err(e),
        };
        match included {
            Ok(h) => {
                self.metrics.locked();
                // The ledger charges the auction price at the block that included the lock,
                // which can be above the price seen when sending it.
                let job = self.client.job(&id).await?.job;
                let charged = job.lock_price().unwrap_or(price);
                info!(job = %id.short(), price = charged, height = h, "locked at price {charged} ({trace_len} cycles; {price} when sent)");
                Ok(Some(Held { job, trace_len }))
            }
            Err(e) => {
                // The lock may have landed all the same (a node that took it died before
                // answering): `rescue` holds any job the ledger says this key locked.
                info!(job = %id.short(), "lock not taken (or not known to be): {e}");
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
            // A job this key locked that the worker is not delivering (a lock whose answer was
            // lost with a node): deliver it, or be slashed for it.
            if s.locker == Some(me) {
                if !self.holds(&s.id) && !self.given_up.contains(&s.id) {
                    let job = self.client.job(&s.id).await?.job;
                    info!(job = %s.id.short(), "holding a job the ledger says this key locked");
                    self.queue.push_back(Held { job, trace_len: 0 });
                }
                continue;
            }
            if self.skipped.contains(&s.id) || self.queue.len() >= self.cfg.max_queue {
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

/// What to do with an open job.
enum Decision {
    /// Pass it over for good (logged with the reason).
    Skip(String),
    /// Not now (the auction is still rising, or the queue must drain first).
    Later,
    /// Everything checked so far allows it.
    Take,
    /// Lock it; it proves a trace of this many rows.
    Lock(u64),
}

impl Decision {
    /// A `Take` after the last check becomes a lock of a `trace_len` trace.
    fn with_trace(self, trace_len: u64) -> Decision {
        match self {
            Decision::Take => Decision::Lock(trace_len),
            other => other,
        }
    }
}

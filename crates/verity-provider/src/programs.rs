//! The programs and data a job runs with: assembled programs (cached by hash), the private
//! inputs sealed to this provider, and the committed data it holds.

use std::sync::{Arc, Mutex};

use super::*;

/// The held data for `job`, as advice-map entries: data for the job's program whose
/// commitment is the job's first public input (where that program reads it).
pub(crate) fn held_advice(held: &[CommittedData], job: &Job) -> Vec<(Digest, Vec<u64>)> {
    held_for(held, job)
        .flat_map(|h| h.entries.iter().cloned())
        .collect()
}

/// The held data `job` gets: data for the job's program whose commitment is the job's first
/// public input.
pub(crate) fn held_for<'a>(
    held: &'a [CommittedData],
    job: &'a Job,
) -> impl Iterator<Item = &'a CommittedData> {
    held.iter().filter(|h| {
        h.program == job.program_hash
            && job.request.stack_inputs.get(..4) == Some(&h.commitment[..])
    })
}

/// Most assembled programs a provider keeps.
pub(crate) const MAX_CACHED_PROGRAMS: usize = 64;

/// Assembled job programs by the hash their proofs are about, so a program is fetched and
/// assembled once however many jobs name it (a compiled model is hundreds of KiB).
#[derive(Clone, Default)]
pub(crate) struct Programs(Arc<Mutex<BTreeMap<ProgramHash, Program>>>);

impl Programs {
    /// The program a job's proof is about (wrapped with Verity's loader for private inputs),
    /// assembled exactly as the ledger assembled it, from the job's source or the published
    /// one it names. Assembly runs on a blocking thread: a large program takes a while.
    pub(crate) async fn of(&self, client: &Client, job: &Job) -> Result<Program, String> {
        let cached = self
            .0
            .lock()
            .expect("program cache")
            .get(&job.program_hash)
            .cloned();
        if let Some(program) = cached {
            return Ok(program);
        }
        let source = match &job.request.program {
            ProgramSource::Inline(source) => source.clone(),
            ProgramSource::Published(hash) => {
                client
                    .program(hash)
                    .await
                    .map_err(|e| format!("cannot fetch published program {hash}: {e}"))?
                    .ok_or_else(|| format!("program {hash} is not published"))?
                    .source
            }
            // Nodes serve jobs with their source inline; this is the ledger's own form.
            ProgramSource::Stored(_) => {
                return Err("the node served the job without its program source".into());
            }
        };
        let private = job.request.private_inputs;
        // The node is not trusted: bound what it serves before assembling it, as the ledger
        // bounded it before storing it.
        let params = verity_ledger::Params::default();
        let max_ops = u64::from(
            params
                .max_published_program_nodes
                .max(params.max_program_nodes),
        );
        let program = tokio::task::spawn_blocking(move || {
            verity_vm::assemble_job(&source, private.as_ref(), max_ops).map(|j| j.program)
        })
        .await
        .map_err(|e| format!("assembly did not finish: {e}"))?
        .map_err(|e| format!("program does not assemble: {e}"))?;
        // The node is not trusted: what it served must be what the ledger named.
        if program.hash() != job.program_hash {
            return Err("program source does not match its hash".into());
        }
        let mut cache = self.0.lock().expect("program cache");
        if cache.len() >= MAX_CACHED_PROGRAMS {
            cache.pop_first();
        }
        cache.insert(job.program_hash, program.clone());
        Ok(program)
    }
}

/// What fetching a held job's private inputs came to.
pub(crate) enum Fetched {
    Ready(Vec<u64>),
    /// Not provided yet, or the node is behind or unreachable: try again.
    NotYet(String),
    /// The job is no longer ours to prove (released, expired).
    Gone(String),
    /// The ledger's sealed inputs do not open with our key or do not match the commitment.
    Unusable(String),
}

pub(crate) async fn fetch_private(
    client: &Client,
    key: &Keypair,
    id: &JobId,
    commitment: &verity_types::PrivateCommitment,
) -> Fetched {
    let job = match client.job(id).await {
        Ok(view) => view.job,
        Err(e) => return Fetched::NotYet(e.to_string()),
    };
    if job.state() != JobState::Locked || job.locker() != Some(key.address()) {
        return Fetched::Gone(format!("it is {} and not locked by us", job.state()));
    }
    let Some(recorded) = job.sealed_inputs_hash() else {
        return Fetched::NotYet("the client has not provided them".into());
    };
    let sealed = match client.sealed_inputs(id).await {
        Ok(s) => s,
        Err(e) => return Fetched::NotYet(e.to_string()),
    };
    // The node's copy must be the ledger's: anyone can seal a box to our key.
    if Digest::blake3(&sealed) != recorded {
        return Fetched::NotYet("the node served sealed inputs that are not the ledger's".into());
    }
    match verity_client::sealing::open(id, &sealed, key) {
        Err(e) => Fetched::Unusable(e.to_string()),
        Ok(values) => match verity_vm::check_private(&values, commitment) {
            Ok(()) => Fetched::Ready(values),
            Err(e) => Fetched::Unusable(e.to_string()),
        },
    }
}

//! Programs: publishing one under its hash, and resolving what a job request proves.

use verity_types::{Address, Digest, JobRequest, ProgramHash, ProgramSource};

use super::Ctx;
use crate::error::TxError;
use crate::state::PublishedProgram;

/// A program's first raw advice read (unverified hint), as "`instruction` on line N": what
/// keeps its jobs out of optimistic mode, named in the refusal.
fn first_advice_read(shape: &verity_vm::ProgramShape) -> Option<String> {
    shape
        .advice_reads
        .first()
        .map(|r| format!("`{}` on line {}", r.instruction, r.line))
}

impl Ctx<'_> {
    /// What a job request proves: the hash of its program (behind the loader, for private
    /// inputs) and its first raw advice read, if any. An inline program is assembled here;
    /// a published one was assembled when it was published.
    pub(super) fn job_program(
        &self,
        req: &JobRequest,
    ) -> Result<(ProgramHash, Option<String>), TxError> {
        let published = match &req.program {
            ProgramSource::Inline(source) => {
                // Assembling is deterministic: the MAST root is a function of the source
                // (and, for private inputs, Verity's loader) alone. Its size was bounded at
                // admission.
                let job = verity_vm::assemble_job(
                    source,
                    req.private_inputs.as_ref(),
                    u64::from(self.state.params.max_program_nodes),
                )
                .map_err(|e| TxError::BadProgram(e.to_string()))?;
                return Ok((job.program.hash(), first_advice_read(&job.shape)));
            }
            ProgramSource::Published(hash) => self
                .state
                .programs
                .get(hash)
                .ok_or(TxError::UnknownProgram(*hash))?,
            // Refused at admission; never reaches here from a transaction.
            ProgramSource::Stored(_) => {
                return Err(TxError::BadProgram("a stored source in a request".into()));
            }
        };
        let program_hash = match &req.private_inputs {
            None => published.program_hash,
            Some(private) => {
                verity_vm::check_private_words(private).map_err(|e| match e {
                    verity_vm::VmError::Inputs(reason) => TxError::BadInputs(reason),
                    other => TxError::BadInputs(other.to_string()),
                })?;
                published.wrapped_hash.ok_or_else(|| {
                    TxError::BadProgram(
                        "the published program has no instruction to load private inputs before"
                            .into(),
                    )
                })?
            }
        };
        Ok((program_hash, published.advice_read.clone()))
    }

    /// Holds an inline source for one more job: stored once per source, counted per job.
    pub(super) fn hold_source(&mut self, source: &str) -> Digest {
        let digest = Digest::blake3(source.as_bytes());
        if !self.state.sources.contains_key(&digest) {
            self.state.sources.insert(digest, source.to_string());
        }
        *self.state.source_jobs.entry(digest).or_insert(0) += 1;
        digest
    }

    /// One job fewer names a stored source: the last one takes it out of the state.
    pub(super) fn release_source(&mut self, digest: Digest) {
        let Some(jobs) = self.state.source_jobs.get_mut(&digest) else {
            return;
        };
        *jobs = jobs.saturating_sub(1);
        if *jobs == 0 {
            self.state.source_jobs.remove(&digest);
            self.state.sources.remove(&digest);
        }
    }

    /// Stores a program under its hash for jobs to name. Assembled here, twice (as written and
    /// behind the loader); its size was bounded at admission and its assembly paid by the fee.
    pub(super) fn publish(&mut self, publisher: Address, source: &str) -> Result<(), TxError> {
        let publication = verity_vm::assemble_publication(
            source,
            u64::from(self.state.params.max_published_program_nodes),
        )
        .map_err(|e| TxError::BadProgram(e.to_string()))?;
        let hash = publication.program_hash;
        if self.state.programs.contains_key(&hash) {
            return Err(TxError::AlreadyPublished(hash));
        }
        let published = PublishedProgram {
            program_hash: hash,
            wrapped_hash: publication.wrapped_hash,
            advice_read: first_advice_read(&publication.shape),
            expanded_ops: publication.shape.expanded_ops,
            publisher,
            published_height: self.h(),
            source: source.to_string(),
        };
        self.state.programs.insert(hash, published);
        Ok(())
    }
}

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("state store I/O: {0}")]
    Io(String),
    /// QMDB refused an operation; the store's thread has stopped (a failed mutation consumes
    /// the database), so every later call fails with `Closed`.
    #[error("state store: {0}")]
    Database(String),
    #[error("state store: no staged batch {0} (committed, discarded, or on another branch)")]
    NoSuchBatch(u64),
    #[error("state store: an entry of {0} bytes is larger than any the ledger writes")]
    TooLarge(usize),
    #[error("state store: asked to stage on root {expected}, but it holds {actual}")]
    BaseMoved {
        expected: verity_types::Digest,
        actual: verity_types::Digest,
    },
    /// A state sync failed: a peer's answer did not check out, or could not be had.
    #[error("state sync: {0}")]
    Sync(String),
    /// A state-sync request this store cannot answer (its log was pruned past it, or has not
    /// reached it).
    #[error("state sync: {0}")]
    Unavailable(String),
    /// The store's state is not what the caller was told it is.
    #[error("state store: {0}")]
    Mismatch(String),
    #[error("the state store is closed")]
    Closed,
}

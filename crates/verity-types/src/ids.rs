//! Typed ids. Jobs, transactions, blocks and programs are all named by 32-byte digests; each kind gets
//! its own type so that one cannot be passed where another is meant (`lock(provider, tx,
//! job)` with the two swapped does not compile). On the wire and in the state they are the
//! digest itself, so encodings and state roots are unchanged.

use std::fmt;
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestError};

macro_rules! digest_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone,
            Copy,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            Default,
            BorshSerialize,
            BorshDeserialize,
            Serialize,
            Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub Digest);

        impl $name {
            /// Abbreviated form for logs and tables: `0x1234abcd…`.
            pub fn short(&self) -> String {
                self.0.short()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = DigestError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

digest_id!(
    /// A transaction's id: the Blake3 hash of the signed transaction's encoding.
    TxId
);

digest_id!(
    /// A job's id: the id of the transaction that submitted it.
    JobId
);

digest_id!(
    /// A block's id: the SHA-256 of its encoding, what consensus votes on.
    BlockId
);

digest_id!(
    /// A program's hash: the MAST root of its Miden Assembly, what a proof attests to (for a
    /// job with private inputs, of the program behind Verity's loader). A model's id too.
    ProgramHash
);

impl JobId {
    /// The job a `SubmitJob` transaction creates.
    pub fn submitted_by(tx: TxId) -> JobId {
        JobId(tx.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_encode_as_their_digest() {
        let d = Digest::blake3(b"x");
        let job = JobId(d);
        assert_eq!(borsh::to_vec(&job).unwrap(), borsh::to_vec(&d).unwrap());
        assert_eq!(
            serde_json::to_string(&job).unwrap(),
            serde_json::to_string(&d).unwrap()
        );
        assert_eq!(job.to_string().parse::<JobId>().unwrap(), job);
        assert_eq!(format!("{job:?}"), format!("JobId({d})"));
    }
}

//! OpenAPI schemas for the types whose JSON has a format of its own (hex strings, the output
//! stack), which a derive cannot see through their hand-written serde impls. The other wire
//! types derive theirs (`utoipa::ToSchema`); the node serves them all at `/v1/openapi.json`.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::{
    Address, BlockId, Digest, JobId, ProgramHash, STACK_OUTPUTS, Signature, StackOutputs, TxId,
};

/// `0x` and `bytes` bytes in lowercase hex.
fn hex(bytes: usize, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^0x[0-9a-f]{{{}}}$", bytes * 2)))
        .description(Some(description))
        .into()
}

macro_rules! hex_schema {
    ($($ty:ident: $bytes:expr, $what:expr;)*) => {$(
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                hex($bytes, $what)
            }
        }

        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($ty))
            }
        }
    )*};
}

hex_schema! {
    Digest: 32, "A 32-byte digest (Blake3 unless said otherwise).";
    Address: 32, "An account: its ed25519 public key.";
    Signature: 64, "An ed25519 signature.";
    JobId: 32, "A job's id: derived from the id of the transaction that submitted it.";
    TxId: 32, "A transaction's id: the Blake3 of its signed encoding.";
    BlockId: 32, "A block's id.";
    ProgramHash: 32, "A program's MAST root (its Miden program hash), as a 32-byte digest.";
}

impl PartialSchema for StackOutputs {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Int64,
                    )))
                    .minimum(Some(0)),
            )
            .min_items(Some(STACK_OUTPUTS))
            .max_items(Some(STACK_OUTPUTS))
            .description(Some(
                "The 16 output stack elements, top first: canonical field elements \
                 (below 2^64 - 2^32 + 1).",
            ))
            .into()
    }
}

impl ToSchema for StackOutputs {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("StackOutputs")
    }
}

//! Transactions arrive from the API and from p2p gossip as borsh bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verity_types::SignedTx;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = SignedTx::from_bytes(data) {
        // One encoding per value: what decodes re-encodes to the same bytes.
        assert_eq!(tx.to_bytes(), data);
        assert_eq!(tx.encoded_len(), data.len());
        let _ = tx.signature_is_valid();
        let _ = tx.id();
    }
});

//! Results are 16 canonical field elements, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verity_types::{MODULUS, StackOutputs};

fuzz_target!(|data: &[u8]| {
    if let Ok(o) = borsh::from_slice::<StackOutputs>(data) {
        assert_eq!(data.len(), 128);
        assert!(o.iter().all(|v| *v < MODULUS));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(o) = serde_json::from_str::<StackOutputs>(text) {
            assert!(o.iter().all(|v| *v < MODULUS));
        }
    }
});

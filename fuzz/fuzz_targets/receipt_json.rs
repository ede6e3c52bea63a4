//! Receipts arrive as files and API bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verity_types::Receipt;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Receipt::from_json(data) {
        let again = Receipt::from_json(r.to_json().as_bytes()).expect("a parsed receipt re-parses");
        assert_eq!(again, r);
    }
});

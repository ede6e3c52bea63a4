//! What checking a transaction's signature costs: one at a time by the old strict rule
//! (`ed25519-dalek`'s `verify_strict`), one at a time by the rule nodes apply now
//! (`Address::verify`: ZIP 215, keys of small order refused), and as one batch of 1,000
//! (`verify_batch`, what `apply_block` does with a block's signatures).
//!
//! Run: `cargo bench --workspace --profile dev --bench signatures`.

use std::time::Instant;

use verity_types::{Keypair, verify_batch};

fn main() {
    let n = 1_000;
    let keys: Vec<Keypair> = (0..n)
        .map(|i| Keypair::dev(&format!("signer {i}")))
        .collect();
    let messages: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("verity/tx/v1 a transfer of {i} to someone, nonce {i}").into_bytes())
        .collect();
    let signatures: Vec<_> = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
    let addresses: Vec<_> = keys.iter().map(Keypair::address).collect();
    let per = |took: std::time::Duration| took.as_secs_f64() * 1e6 / n as f64;

    println!(
        "| round | `verify_strict`, one at a time | `Address::verify` (ZIP 215), one at a time | `verify_batch`, 1,000 at once |"
    );
    println!("|---|---|---|---|");
    for round in 1..=3 {
        let t = Instant::now();
        for ((a, m), s) in addresses.iter().zip(&messages).zip(&signatures) {
            let key = ed25519_dalek::VerifyingKey::from_bytes(&a.0).unwrap();
            let sig = ed25519_dalek::Signature::from_bytes(&s.0);
            assert!(key.verify_strict(m, &sig).is_ok());
        }
        let strict = per(t.elapsed());
        let t = Instant::now();
        for ((a, m), s) in addresses.iter().zip(&messages).zip(&signatures) {
            assert!(a.verify(m, s));
        }
        let single = per(t.elapsed());
        let items: Vec<_> = addresses
            .iter()
            .zip(&messages)
            .zip(&signatures)
            .map(|((a, m), s)| (a, m.as_slice(), s))
            .collect();
        let t = Instant::now();
        assert!(verify_batch(&items));
        let batch = per(t.elapsed());
        println!("| {round} | {strict:.1} µs | {single:.1} µs | {batch:.1} µs |");
    }
}

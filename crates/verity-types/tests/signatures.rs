//! The signature rule: ZIP 215 with weak keys refused, and a batch of signatures checked as
//! one equation answers exactly what checking each does, for honest signatures and for the
//! edge cases an attacker would try (a torsion component in `R`, a non-canonical `s`, a key of
//! small order, a signature moved to another message or signer). Blocks rely on it: a
//! validator checks a block's signatures as one batch, and must reach the answer of one that
//! checks each.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use proptest::prelude::*;
use sha2::{Digest as _, Sha512};
use verity_types::{Address, Keypair, Signature, verify_batch};

fn scalar(seed: u8, salt: u8) -> Scalar {
    let mut wide = [0u8; 64];
    wide[0] = seed;
    wide[1] = salt;
    wide[2] = 0x5a;
    Scalar::from_bytes_mod_order_wide(&Sha512::digest(wide).into())
}

/// The curve's point of order 2, `(0, -1)`.
fn order_two() -> curve25519_dalek::EdwardsPoint {
    let mut y = [0xffu8; 32];
    y[0] = 0xec;
    y[31] = 0x7f;
    CompressedEdwardsY(y).decompress().unwrap()
}

/// A signature by secret `a` whose `R` carries a torsion component: it satisfies the
/// cofactored equation (ZIP 215) but not the cofactorless one (`verify_strict`). Only the
/// holder of the key can make one.
fn torsion_signature(a: Scalar, message: &[u8]) -> (Address, Signature) {
    let public = (a * B).compress().to_bytes();
    let r = scalar(9, message.len() as u8);
    let big_r = (r * B + order_two()).compress().to_bytes();
    let mut h = Sha512::new();
    h.update(big_r);
    h.update(public);
    h.update(message);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    let s = r + k * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&big_r);
    sig[32..].copy_from_slice(&s.to_bytes());
    (Address(public), Signature(sig))
}

/// `s + l`: the same signature with a non-canonical scalar (a third party's malleation).
fn non_canonical(sig: &Signature) -> Signature {
    // l = 2^252 + 27742317777372353535851937790883648493, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = *sig;
    let mut carry = 0u16;
    for (byte, l) in out.0[32..].iter_mut().zip(L) {
        let sum = u16::from(*byte) + u16::from(l) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Honest,
    OtherMessage,
    FlippedBit,
    NonCanonicalS,
    TorsionR,
    SmallOrderKey,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        6 => Just(Kind::Honest),
        1 => Just(Kind::OtherMessage),
        1 => Just(Kind::FlippedBit),
        1 => Just(Kind::NonCanonicalS),
        1 => Just(Kind::TorsionR),
        1 => Just(Kind::SmallOrderKey),
    ]
}

fn item(i: usize, kind: Kind) -> (Address, Vec<u8>, Signature) {
    let message = format!("transaction {i} of the batch").into_bytes();
    let key = Keypair::dev(&format!("signer {i}"));
    let honest = key.sign(&message);
    match kind {
        Kind::Honest => (key.address(), message, honest),
        Kind::OtherMessage => (key.address(), b"another".to_vec(), honest),
        Kind::FlippedBit => {
            let mut sig = honest;
            sig.0[40] ^= 1;
            (key.address(), message, sig)
        }
        Kind::NonCanonicalS => (key.address(), message, non_canonical(&honest)),
        Kind::TorsionR => {
            let (address, sig) = torsion_signature(scalar(i as u8, 1), &message);
            (address, message, sig)
        }
        // The identity's encoding: a key of small order, for which `R = [s]B` signs anything.
        Kind::SmallOrderKey => {
            let s = scalar(i as u8, 2);
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&(s * B).compress().to_bytes());
            sig[32..].copy_from_slice(&s.to_bytes());
            let mut identity = [0u8; 32];
            identity[0] = 1;
            (Address(identity), message, Signature(sig))
        }
    }
}

#[test]
fn each_edge_case_gets_the_rules_answer() {
    let check = |kind| {
        let (address, message, sig) = item(3, kind);
        address.verify(&message, &sig)
    };
    assert!(check(Kind::Honest));
    assert!(!check(Kind::OtherMessage));
    assert!(!check(Kind::FlippedBit));
    assert!(!check(Kind::NonCanonicalS), "a relayer cannot malleate s");
    assert!(!check(Kind::SmallOrderKey), "no key of small order signs");
    // The signer's own torsion-laden R holds under ZIP 215 (cofactored), alone and in a batch
    // alike; it was refused by the cofactorless check.
    assert!(check(Kind::TorsionR));
    let (address, message, sig) = item(3, Kind::TorsionR);
    let key = ed25519_dalek_strict(&address);
    assert!(
        key.is_some_and(|k| k
            .verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&sig.0))
            .is_err()),
        "verify_strict refuses what ZIP 215 accepts here"
    );
}

fn ed25519_dalek_strict(address: &Address) -> Option<ed25519_dalek::VerifyingKey> {
    ed25519_dalek::VerifyingKey::from_bytes(&address.0).ok()
}

proptest! {
    /// A batch is valid exactly when each of its signatures is, whatever mix of honest and
    /// attacking signatures it holds; and its answer does not depend on its order.
    #[test]
    fn a_batch_answers_what_checking_each_answers(kinds in proptest::collection::vec(kind(), 0..24)) {
        let items: Vec<_> = kinds.iter().enumerate().map(|(i, k)| item(i, *k)).collect();
        let each = items.iter().all(|(a, m, s)| a.verify(m, s));
        let refs: Vec<_> = items.iter().map(|(a, m, s)| (a, m.as_slice(), s)).collect();
        prop_assert_eq!(verify_batch(&refs), each, "{:?}", kinds);
        let reversed: Vec<_> = refs.iter().rev().copied().collect();
        prop_assert_eq!(verify_batch(&reversed), each);
    }
}

//! Keys, addresses and signatures (ed25519).
//!
//! An account's address is its ed25519 public key: no hashing step, so a signature can be
//! checked against the address directly and there is no second name for the same key.

use std::fmt;
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::{Digest, DigestError};

/// An account address: an ed25519 public key.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Address(pub [u8; 32]);

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

/// Whether every `(signer, message, signature)` is valid by [`Address::verify`], checked as
/// one batch equation: about half the cost per signature of checking each, with the
/// same answer (ZIP 215 makes the batch and single rules agree). The batch's random
/// coefficients are drawn from a seed hashed from all of its items, so the answer is a
/// function of the items alone, as the state transition needs. An empty batch is valid.
/// `false` says only that some signature is not: check each to know which.
pub fn verify_batch(items: &[(&Address, &[u8], &Signature)]) -> bool {
    use rand_core::SeedableRng;
    let mut seed = blake3::Hasher::new_derive_key("verity 2026 signature batch coefficients");
    let mut batch = ed25519_zebra::batch::Verifier::new();
    for (signer, message, signature) in items {
        if signer.is_weak_key() {
            return false;
        }
        seed.update(&signer.0);
        seed.update(&signature.0);
        seed.update(blake3::hash(message).as_bytes());
        batch.queue((
            ed25519_zebra::VerificationKeyBytes::from(signer.0),
            ed25519_zebra::Signature::from_bytes(&signature.0),
            message,
        ));
    }
    let rng = rand_chacha::ChaCha20Rng::from_seed(*seed.finalize().as_bytes());
    items.is_empty() || batch.verify(rng).is_ok()
}

/// A signing key. Never serialized by the wire types; key files are handled by the CLI.
#[derive(Clone)]
pub struct Keypair(SigningKey);

impl Keypair {
    /// A fresh random key.
    pub fn generate() -> Keypair {
        Keypair(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// A key derived from a 32-byte seed (deterministic: tests and dev accounts).
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        Keypair(SigningKey::from_bytes(&seed))
    }

    /// A well-known dev key derived from a name (never use for real funds).
    pub fn dev(name: &str) -> Keypair {
        Keypair::from_seed(*blake3::hash(format!("verity-dev-key:{name}").as_bytes()).as_bytes())
    }

    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn address(&self) -> Address {
        Address(self.0.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.address())
    }
}

impl Address {
    /// Checks `signature` over `message` by this address's key, by the rule every node applies:
    /// ZIP 215 (the cofactored equation `[8][s]B = [8]R + [8][k]A`, with `s` canonical and `R`
    /// a point), and the key not of small order (anyone can sign for such a key). Checking many
    /// at once ([`verify_batch`]) gives exactly the answer of checking each, which is what lets
    /// a block's signatures be checked as one batch inside the state transition.
    ///
    /// Nobody but the signer can make a second valid signature of a message (`s` must be
    /// canonical, and an honest `R` has no other encoding), so a transaction id, which covers
    /// the signature, cannot be changed by whoever relays it.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        if self.is_weak_key() {
            return false;
        }
        let Ok(key) = ed25519_zebra::VerificationKey::try_from(self.0) else {
            return false;
        };
        key.verify(&ed25519_zebra::Signature::from_bytes(&signature.0), message)
            .is_ok()
    }

    /// Whether this address is no key at all (not a point of the curve) or one of small order,
    /// for which a signature holds for any message.
    fn is_weak_key(&self) -> bool {
        VerifyingKey::from_bytes(&self.0).map_or(true, |key| key.is_weak())
    }

    pub fn short(&self) -> String {
        format!("0x{}…", hex::encode(&self.0[..4]))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.short())
    }
}

impl FromStr for Address {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Address(s.parse::<Digest>()?.0))
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <String as Deserialize>::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(0x{}…)", hex::encode(&self.0[..8]))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("0x{}", hex::encode(self.0)))
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        let mut out = [0u8; 64];
        hex::decode_to_slice(s.strip_prefix("0x").unwrap_or(&s), &mut out)
            .map_err(|e| serde::de::Error::custom(format!("signature: {e}")))?;
        Ok(Signature(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let k = Keypair::dev("alice");
        let sig = k.sign(b"hello");
        assert!(k.address().verify(b"hello", &sig));
        assert!(!k.address().verify(b"hellp", &sig));
        assert!(!Keypair::dev("bob").address().verify(b"hello", &sig));
        assert_eq!(
            Keypair::dev("alice").address(),
            k.address(),
            "dev keys are deterministic"
        );
    }

    #[test]
    fn address_text_round_trip() {
        let a = Keypair::dev("x").address();
        assert_eq!(a.to_string().parse::<Address>().unwrap(), a);
    }
}

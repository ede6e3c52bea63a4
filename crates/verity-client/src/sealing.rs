//! Private inputs sealed to one provider: what a client puts on the ledger for its job's
//! locker, so every node can hold and relay the data and only the locker can read it.
//!
//! A NaCl sealed box (`crypto_box`: an ephemeral X25519 key, XSalsa20-Poly1305) to the
//! X25519 form of the provider's ed25519 address (the same key, mapped to Montgomery form;
//! the provider opens with the matching scalar of its signing key). The plaintext names the
//! job, so a sealed input cannot be replayed into another job.

use borsh::{BorshDeserialize, BorshSerialize};
use crypto_box::{PublicKey, SecretKey};
use verity_types::{Address, JobId, Keypair};

/// Why sealed inputs could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("{0} is not a valid ed25519 public key")]
    BadRecipient(Address),
    #[error("sealing failed")]
    Seal,
    #[error("the sealed inputs do not open with this key (not sealed to it, or altered)")]
    Open,
    #[error("the sealed inputs are malformed: {0}")]
    Malformed(String),
    #[error("the sealed inputs are for job {got}, not {expected}")]
    WrongJob { expected: JobId, got: JobId },
}

#[derive(BorshSerialize, BorshDeserialize)]
struct Plain {
    job: JobId,
    values: Vec<u64>,
}

fn x25519_public(address: &Address) -> Result<PublicKey, SealError> {
    let key = ed25519_dalek::VerifyingKey::from_bytes(&address.0)
        .map_err(|_| SealError::BadRecipient(*address))?;
    Ok(PublicKey::from(key.to_montgomery().to_bytes()))
}

fn x25519_secret(key: &Keypair) -> SecretKey {
    SecretKey::from(ed25519_dalek::SigningKey::from_bytes(&key.seed()).to_scalar_bytes())
}

/// Seals `values` (job `job`'s private inputs) to provider `to`.
pub fn seal(job: &JobId, values: &[u64], to: &Address) -> Result<Vec<u8>, SealError> {
    let plain = borsh::to_vec(&Plain {
        job: *job,
        values: values.to_vec(),
    })
    .expect("encoding to a Vec cannot fail");
    x25519_public(to)?
        .seal(&mut crypto_box::aead::OsRng, &plain)
        .map_err(|_| SealError::Seal)
}

/// Opens inputs sealed to `key` for job `job`.
pub fn open(job: &JobId, sealed: &[u8], key: &Keypair) -> Result<Vec<u64>, SealError> {
    let plain = x25519_secret(key)
        .unseal(sealed)
        .map_err(|_| SealError::Open)?;
    let plain: Plain =
        borsh::from_slice(&plain).map_err(|e| SealError::Malformed(e.to_string()))?;
    if plain.job != *job {
        return Err(SealError::WrongJob {
            expected: *job,
            got: plain.job,
        });
    }
    Ok(plain.values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_recipient_opens_and_only_for_its_job() {
        let provider = Keypair::dev("provider");
        let job = JobId(verity_types::Digest::blake3(b"job"));
        let sealed = seal(&job, &[3, 4], &provider.address()).unwrap();
        assert_eq!(open(&job, &sealed, &provider).unwrap(), vec![3, 4]);
        // Not the values in clear.
        let three = 3u64.to_le_bytes();
        assert!(!sealed.windows(8).any(|w| w == three));
        // Another provider, another job, or a flipped bit: refused.
        assert_eq!(
            open(&job, &sealed, &Keypair::dev("provider2")),
            Err(SealError::Open)
        );
        assert!(matches!(
            open(
                &JobId(verity_types::Digest::blake3(b"other")),
                &sealed,
                &provider
            ),
            Err(SealError::WrongJob { .. })
        ));
        let mut altered = sealed.clone();
        altered[40] ^= 1;
        assert_eq!(open(&job, &altered, &provider), Err(SealError::Open));
        // Any truncation or single-byte change is refused, never a panic.
        for cut in 0..sealed.len() {
            assert!(open(&job, &sealed[..cut], &provider).is_err());
        }
        for at in 0..sealed.len() {
            let mut changed = sealed.clone();
            changed[at] = changed[at].wrapping_add(1);
            assert!(open(&job, &changed, &provider).is_err(), "byte {at}");
        }
        // Two seals of the same data differ (ephemeral keys): nothing links them.
        assert_ne!(sealed, seal(&job, &[3, 4], &provider.address()).unwrap());
    }
}

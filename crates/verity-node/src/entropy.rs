//! Where the node's background tasks draw their secrets (canary seeds, probe nonces): the
//! operating system's randomness in production, a seed in tests, so a test run repeats
//! exactly.

use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// A shared cryptographic random source (ChaCha, seeded once).
#[derive(Clone)]
pub struct Entropy(Arc<Mutex<StdRng>>);

impl Entropy {
    /// Seeded from the operating system: what a running node uses.
    pub fn os() -> Entropy {
        Entropy(Arc::new(Mutex::new(StdRng::from_entropy())))
    }

    /// The same numbers for the same seed (`mocks` feature only: a production node must not
    /// draw canary seeds anyone could predict).
    #[cfg(feature = "mocks")]
    pub fn seeded(seed: u64) -> Entropy {
        Entropy(Arc::new(Mutex::new(StdRng::seed_from_u64(seed))))
    }

    pub fn bytes<const N: usize>(&self) -> [u8; N] {
        let mut out = [0u8; N];
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fill_bytes(&mut out);
        out
    }
}

impl Default for Entropy {
    fn default() -> Entropy {
        Entropy::os()
    }
}

impl std::fmt::Debug for Entropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Entropy(..)")
    }
}

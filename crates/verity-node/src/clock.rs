//! Block time. The single-validator producer stamps blocks with it; tests inject a clock
//! they move by hand, so block timestamps (and everything the ledger derives from them) are
//! the same on every run.

#[cfg(feature = "mocks")]
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn unix_ms(&self) -> u64;
}

/// The machine's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// A clock that moves only when told to (`mocks` feature: tests).
#[cfg(feature = "mocks")]
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

#[cfg(feature = "mocks")]
impl ManualClock {
    pub fn starting_at(unix_ms: u64) -> ManualClock {
        ManualClock(AtomicU64::new(unix_ms))
    }

    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(feature = "mocks")]
impl Clock for ManualClock {
    fn unix_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

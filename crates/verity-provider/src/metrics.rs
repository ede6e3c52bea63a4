//! The provider's Prometheus metrics, served at `/metrics` beside its liveness endpoint: how
//! long its proofs take and how fast it proves, what it locked and delivered.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

pub struct ProviderMetrics {
    registry: Registry,
    proving: Histogram,
    speed: Gauge<f64, AtomicU64>,
    cycles: Counter,
    locked: Counter,
    failed: Counter,
}

impl ProviderMetrics {
    pub fn new() -> ProviderMetrics {
        let mut registry = Registry::with_prefix("verity_provider");
        // 50 ms to ~27 min.
        let proving = Histogram::new(exponential_buckets(0.05, 2.0, 16));
        let speed = Gauge::<f64, AtomicU64>::default();
        let (cycles, locked, failed) = Default::default();
        let r = &mut registry;
        r.register_with_unit(
            "proving",
            "Time to execute and prove one job (its count: proofs made)",
            Unit::Seconds,
            proving.clone(),
        );
        r.register(
            "proving_speed_cycles_per_second",
            "Padded trace cycles per second of the latest proof (what proving cost scales with)",
            speed.clone(),
        );
        r.register(
            "cycles_proven",
            "Padded trace cycles proven",
            Clone::clone(&cycles),
        );
        r.register(
            "jobs_locked",
            "Jobs this provider locked",
            Clone::clone(&locked),
        );
        r.register(
            "proving_failures",
            "Jobs it could not prove",
            Clone::clone(&failed),
        );
        ProviderMetrics {
            registry,
            proving,
            speed,
            cycles,
            locked,
            failed,
        }
    }

    /// A proof of `trace_len` padded cycles took `took`.
    pub fn proved(&self, trace_len: u64, took: Duration) {
        self.proving.observe(took.as_secs_f64());
        self.cycles.inc_by(trace_len);
        if !took.is_zero() {
            self.speed.set(trace_len as f64 / took.as_secs_f64());
        }
    }

    pub fn locked(&self) {
        self.locked.inc();
    }

    pub fn failed(&self) {
        self.failed.inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for ProviderMetrics {
    fn default() -> Self {
        ProviderMetrics::new()
    }
}

//! How fast this machine proves, measured at start-up and after every proof.

use super::*;

/// Proving speed, measured: a proof of `n` rows takes `base · (n / 2^12)^exponent`.
///
/// Measured on 2 cores (Miden 0.23): 2^10 0.15 s, 2^12 0.56 s, 2^14 1.8 s, 2^16 7.7 s, 2^19
/// 58 s. Small proofs use the cores less well, so time grows a little slower than `n` at
/// first and like `n log n` later; an exponent fit on two small proofs and kept at least 1
/// errs on the slow side by ~1.2x at 2^16..2^19. (The `n log n` rate of a single 2^12 proof
/// overestimated 2^16 by 2x, and the provider skipped jobs it could have delivered.) Starts
/// from half the SDK's reference speed, is calibrated when the worker starts, and follows
/// every proof since.
pub(crate) struct Speed {
    /// Time of a 2^12-row proof.
    base: Duration,
    exponent: f64,
}

pub(crate) const BASE_ROWS: f64 = 4096.0;

impl Speed {
    pub(crate) fn reference() -> Speed {
        Speed {
            base: verity_client::expected_prove_time(1 << 12, verity_client::REFERENCE_PROVE_RATE)
                * 2,
            exponent: 1.1,
        }
    }

    /// The power law through two measured proofs `(trace_len, took)`, the second the larger,
    /// its exponent kept within [1, 1.5] (noise cannot make big proofs look cheap).
    pub(crate) fn fit(small: (u64, Duration), large: (u64, Duration)) -> Speed {
        let (n1, t1) = (small.0.max(1) as f64, small.1.as_secs_f64().max(1e-4));
        let (n2, t2) = (large.0.max(1) as f64, large.1.as_secs_f64().max(1e-4));
        let exponent = if n2 > n1 {
            (t2 / t1).ln() / (n2 / n1).ln()
        } else {
            1.0
        };
        let exponent = if exponent.is_finite() {
            exponent.clamp(1.0, 1.5)
        } else {
            1.0
        };
        Speed {
            base: Duration::from_secs_f64(t2 * (BASE_ROWS / n2).powf(exponent)),
            exponent,
        }
    }

    pub(crate) fn scale(&self, trace_len: u64) -> f64 {
        (trace_len.max(1) as f64 / BASE_ROWS).powf(self.exponent)
    }

    pub(crate) fn observe(&mut self, trace_len: u64, took: Duration) {
        let implied = took.as_secs_f64() / self.scale(trace_len);
        self.base = Duration::from_secs_f64(0.7 * self.base.as_secs_f64() + 0.3 * implied);
    }

    pub(crate) fn estimate(&self, trace_len: u64) -> Duration {
        Duration::from_secs_f64(self.base.as_secs_f64() * self.scale(trace_len))
    }
}

/// Measures this machine's proving speed with real proofs of a small program (fib, traces
/// 2^10 and 2^12, about 1.5 s in all). Each size is proven twice and the faster run counts,
/// so that sharing the CPU with whatever else is starting does not read as a slow machine.
pub(crate) fn calibration_proofs() -> Option<Speed> {
    let program = Program::assemble(verity_vm::examples::FIB, "fib.masm").ok()?;
    let mut points = Vec::new();
    for n in ["60", "250"] {
        let inputs = Inputs::from_stack_list(n).ok()?;
        let mut best: Option<(u64, Duration)> = None;
        for _ in 0..2 {
            let started = Instant::now();
            let receipt = verity_vm::prove(&program, &inputs, ProveOptions::default()).ok()?;
            let took = started.elapsed();
            if best.is_none_or(|(_, b)| took < b) {
                best = Some((receipt.trace_len, took));
            }
        }
        points.push(best?);
    }
    info!(
        "calibration proofs: 2^{} in {:.2?}, 2^{} in {:.2?}",
        points[0].0.trailing_zeros(),
        points[0].1,
        points[1].0.trailing_zeros(),
        points[1].1
    );
    Some(Speed::fit(points[0], points[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn off(estimate: Duration, truth: Duration) -> f64 {
        estimate.as_secs_f64() / truth.as_secs_f64() - 1.0
    }

    #[test]
    fn speed_fits_the_growth_of_proving_time() {
        // A machine on which proving grows like n^1.2 from 0.5 s at 2^12.
        let truth = |n: u64| secs(0.5 * (n as f64 / 4096.0).powf(1.2));
        let speed = Speed::fit((1 << 10, truth(1 << 10)), (1 << 12, truth(1 << 12)));
        for n in [1 << 16, 1 << 20] {
            assert!(
                off(speed.estimate(n), truth(n)).abs() < 0.01,
                "2^{}",
                n.trailing_zeros()
            );
        }
        // Measured growth below linear (cores idle on small proofs) is not carried to big
        // proofs: they are estimated linearly, on the slow side.
        let sub = |n: u64| secs(0.56 * (n as f64 / 4096.0).powf(0.93));
        let speed = Speed::fit((1 << 10, sub(1 << 10)), (1 << 12, sub(1 << 12)));
        assert_eq!(speed.exponent, 1.0);
        assert!(speed.estimate(1 << 16) > sub(1 << 16));
        assert!(off(speed.estimate(1 << 16), sub(1 << 16)) < 0.25);
    }

    #[test]
    fn a_noisy_fit_errs_slow_never_fast() {
        // The small proof measured slower than the large one: linear growth from the large.
        let speed = Speed::fit((1 << 10, secs(0.9)), (1 << 12, secs(0.6)));
        assert_eq!(speed.exponent, 1.0);
        assert!(off(speed.estimate(1 << 14), secs(2.4)).abs() < 0.01);
        // Absurd growth is capped.
        let speed = Speed::fit((1 << 10, secs(0.001)), (1 << 12, secs(0.6)));
        assert_eq!(speed.exponent, 1.5);
    }

    #[test]
    fn observed_proofs_move_the_estimate() {
        let mut speed = Speed::fit((1 << 10, secs(0.15)), (1 << 12, secs(0.6)));
        let before = speed.estimate(1 << 16);
        speed.observe(1 << 16, before * 2);
        assert!(speed.estimate(1 << 16) > before * 5 / 4);
    }
}

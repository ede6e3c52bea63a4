//! Programs built into the binary, so they need no source tree: validators' canary jobs and
//! providers' speed calibration run the first, and tests and benchmarks use it as the
//! canonical small job.

/// `examples/fib.masm`: the n-th Fibonacci number mod p, for `n` on the stack.
pub const FIB: &str = include_str!("../../../examples/fib.masm");

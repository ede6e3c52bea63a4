//! Proof-layer benchmark: for programs of 2^10 to 2^16 cycles, prints execution time, proving
//! time, proof size, verification time (median of 15 in-process verifications) and the ratio
//! of Verity's `prove` to a direct call of Miden's prover on the same program.
//!
//! Run: `cargo bench -p verity-vm --bench proof` (add `-- --max-log 14` for a quicker run).

use std::path::Path;
use std::time::{Duration, Instant};

use verity_vm::{Inputs, Program, ProveOptions};

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let max_log: u32 = args
        .iter()
        .position(|a| a == "--max-log")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fib.masm");
    let program = Program::from_file(&path).expect("fib assembles");
    println!("fib.masm, blake3-256, 96-bit, {threads} threads; times are medians");
    println!(
        "{:>6} {:>8} {:>9} {:>10} {:>11} {:>9} {:>11} {:>12} {:>8}",
        "log2",
        "cycles",
        "trace",
        "exec ms",
        "prove ms",
        "proof KB",
        "verify ms",
        "miden ms",
        "ratio"
    );
    for log in 10..=max_log {
        // fib spends ~9 cycles per step; pick n so the run lands just under 2^log cycles.
        let target = 1u64 << log;
        let mut n = target / 9;
        let inputs = loop {
            let inputs = Inputs::from_stack_list(&n.to_string()).unwrap();
            let run = verity_vm::execute(&program, &inputs, 1 << 20).unwrap();
            if run.trace_len <= target || n == 0 {
                break inputs;
            }
            n -= n / 20 + 1;
        };
        let run = verity_vm::execute(&program, &inputs, 1 << 20).unwrap();
        let reps = if log <= 14 { 5 } else { 3 };

        let exec = median(
            (0..reps)
                .map(|_| {
                    let t = Instant::now();
                    verity_vm::execute_outputs(&program, &inputs, 1 << 20).unwrap();
                    t.elapsed()
                })
                .collect(),
        );
        let mut receipt = None;
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        // Interleave the two provers so drift in machine load affects both alike.
        for _ in 0..reps {
            let t = Instant::now();
            receipt = Some(verity_vm::prove(&program, &inputs, ProveOptions::default()).unwrap());
            ours.push(t.elapsed());
            let t = Instant::now();
            verity_vm::baseline_miden_prove(&program, &inputs, 1 << 20).unwrap();
            theirs.push(t.elapsed());
        }
        let receipt = receipt.unwrap();
        let verify = median(
            (0..15)
                .map(|_| {
                    let t = Instant::now();
                    verity_vm::verify_receipt(&receipt).unwrap();
                    t.elapsed()
                })
                .collect(),
        );
        let (ours, theirs) = (median(ours), median(theirs));
        println!(
            "{:>6} {:>8} {:>9} {:>10.2} {:>11.1} {:>9.1} {:>11.2} {:>12.1} {:>8.3}",
            log,
            run.cycles,
            run.trace_len,
            ms(exec),
            ms(ours),
            receipt.proof.len() as f64 / 1024.0,
            ms(verify),
            ms(theirs),
            ours.as_secs_f64() / theirs.as_secs_f64()
        );
    }
}

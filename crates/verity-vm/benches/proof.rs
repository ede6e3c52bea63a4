//! Proof-layer benchmark: for programs of 2^10 to 2^16 cycles (`--max-log N` for more),
//! prints execution time, proving time, proof size, verification time warm (median of 15
//! in-process verifications) and cold (a fresh process per verification, as a user runs
//! `verity verify`: p50 of 20 processes, the verification itself and the whole process), and
//! the ratio of Verity's `prove` to a direct call of Miden's prover on the same program.
//!
//! Run: `cargo bench --workspace --profile dev --bench proof` (add `-- --max-log 14` for a
//! quicker run).

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

/// Cold verification: this binary, run again as `--cold-verify RECEIPT`, verifies once and
/// prints how long the verification took in microseconds.
fn cold_verify(path: &str) {
    let bytes = std::fs::read(path).expect("receipt file");
    let receipt = verity_types::Receipt::from_json(&bytes).expect("receipt");
    let t = Instant::now();
    verity_vm::verify_receipt(&receipt).expect("verifies");
    println!("{}", t.elapsed().as_micros());
}

/// p50 over 20 fresh processes: (the verification, the whole process).
fn cold(receipt: &verity_types::Receipt) -> (Duration, Duration) {
    let path = std::env::temp_dir().join(format!("verity-bench-{}.receipt", std::process::id()));
    std::fs::write(&path, receipt.to_json()).expect("write receipt");
    let exe = std::env::current_exe().expect("own path");
    let (mut inner, mut whole) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let t = Instant::now();
        let out = std::process::Command::new(&exe)
            .arg("--cold-verify")
            .arg(&path)
            .output()
            .expect("spawn");
        whole.push(t.elapsed());
        assert!(out.status.success(), "cold verification failed");
        let us: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("microseconds");
        inner.push(Duration::from_micros(us));
    }
    let _ = std::fs::remove_file(&path);
    (median(inner), median(whole))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--cold-verify") {
        return cold_verify(&args[i + 1]);
    }
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
        "{:>6} {:>8} {:>9} {:>10} {:>11} {:>9} {:>11} {:>10} {:>10} {:>12} {:>8}",
        "log2",
        "cycles",
        "trace",
        "exec ms",
        "prove ms",
        "proof KB",
        "verify ms",
        "cold ms",
        "process ms",
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
        let (cold_verify, cold_process) = cold(&receipt);
        let (ours, theirs) = (median(ours), median(theirs));
        println!(
            "{:>6} {:>8} {:>9} {:>10.2} {:>11.1} {:>9.1} {:>11.2} {:>10.2} {:>10.1} {:>12.1} {:>8.3}",
            log,
            run.cycles,
            run.trace_len,
            ms(exec),
            ms(ours),
            receipt.proof.len() as f64 / 1024.0,
            ms(verify),
            ms(cold_verify),
            ms(cold_process),
            ms(theirs),
            ours.as_secs_f64() / theirs.as_secs_f64()
        );
    }
}

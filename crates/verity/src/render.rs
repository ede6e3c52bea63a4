//! How the CLI prints things people read: modes, outputs, timelines, trust profiles, times.

use std::time::Duration;

use verity_ledger::{TimelineEntry, TrustProfile};
use verity_types::{Mode, PrivateCommitment, format_felts};

/// `value` as pretty JSON on stdout: what `--json` prints.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Proof => "proof",
        Mode::Optimistic => "optimistic",
    }
}

pub fn short_outputs(o: &[u64]) -> String {
    let shown = format_felts(&o[..o.len().min(2)]);
    if o.len() > 2 {
        format!("{shown},…")
    } else {
        shown
    }
}

pub fn print_profile(p: &TrustProfile) {
    println!("provider   {}", p.provider);
    println!("score      {} / 1000", p.score);
    println!("stake      {}", p.stake);
    println!(
        "jobs       {} locked, {} fulfilled, {} rescued, {} slashed, {} overturned ({} self-dealt, not counted)",
        p.locked, p.fulfilled, p.rescued, p.slashed, p.overturned, p.self_dealt
    );
    match p.fulfilment_rate_bp {
        Some(r) => println!("fulfilled  {}.{:02}% of ended locks", r / 100, r % 100),
        None => println!("fulfilled  - (no lock has ended)"),
    }
    match p.uptime_bp {
        Some(u) => println!(
            "uptime     {}.{:02}% of audit probes answered ({} audits, stake-weighted; last median {} ms)",
            u / 100,
            u % 100,
            p.audits,
            p.probe_latency_ms.unwrap_or(0)
        ),
        None => println!("uptime     - (not audited yet)"),
    }
    println!(
        "endpoint   {}",
        p.endpoint.as_deref().unwrap_or("- (none announced)")
    );
    match (p.latency_p50_blocks, p.latency_p95_blocks) {
        (Some(a), Some(b)) => {
            println!("latency    p50 {a} blocks, p95 {b} blocks (lock to fulfil)")
        }
        _ => println!("latency    - (nothing fulfilled yet)"),
    }
    match p.canary_pass_bp {
        Some(r) => println!(
            "canaries   {} passed, {} failed ({}.{:02}% passed; revealed known-answer jobs)",
            p.canaries_passed,
            p.canaries_failed,
            r / 100,
            r % 100
        ),
        None => println!("canaries   - (none revealed yet)"),
    }
}

pub fn print_entry(e: &TimelineEntry) {
    let tx =
        e.tx.map(|t| format!(" tx {}", t.short()))
            .unwrap_or_default();
    println!(
        "  block {:>6}  {}  {:<10} {}{tx}",
        e.height,
        utc_time(e.timestamp_ms),
        e.state.to_string(),
        e.note
    );
}

/// `HH:MM:SS.mmm` UTC of a block timestamp (the block's time, not this machine's).
fn utc_time(ms: u64) -> String {
    let secs = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}Z",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        ms % 1000
    )
}

/// A duration as people read it: milliseconds below a second.
pub fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// `2^k`: the power of two at or above `n` (a trace length).
pub fn pow2_label(n: u64) -> String {
    format!("2^{}", n.max(1).next_power_of_two().trailing_zeros())
}

/// A private-input commitment as one hex string (its four words).
pub fn commitment_hex(c: &PrivateCommitment) -> String {
    words_hex(&c.commitment)
}

pub fn words_hex(words: &[u64]) -> String {
    words.iter().map(|v| format!("{v:016x}")).collect()
}

/// Which segment sets an execution's trace length, when it is not the cycles: the chiplets
/// (hashing the program's blocks as they run, memory, bitwise) or the range checker.
pub fn trace_segments(run: &verity_vm::Execution) -> Option<String> {
    let rows = &run.rows;
    (rows.chiplets.max(rows.range) > run.cycles).then(|| {
        format!(
            "set by the {} ({} rows: hasher {}, memory {}, bitwise {}; range checker {})",
            if rows.chiplets >= rows.range {
                "chiplets"
            } else {
                "range checker"
            },
            rows.chiplets.max(rows.range),
            rows.hasher,
            rows.memory,
            rows.bitwise,
            rows.range
        )
    })
}

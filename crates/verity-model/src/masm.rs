//! Compiling a quantized model to Miden Assembly.
//!
//! The program is straight-line code with the weights as immediates, split into procedures
//! of bounded size (the assembler caps a basic block at 65,535 operations). Values are field
//! elements; a negative integer v is the element p - |v|. Because every accumulator is
//! bounded (see [`crate::quant`]), field arithmetic on them is exact integer arithmetic, and
//! the only steps that leave the field are requantization and comparisons, done on 32-bit
//! halves after adding an offset that makes the value non-negative.
//!
//! Layout: the input is read where Verity's loader puts a job's private inputs
//! (2^28 + i); a public input (on the stack, first value on top) is first stored there. Each
//! layer writes its outputs to its own memory region from address 0.
//! Output stack: `[class, logit_0, ..., logit_{n-1}, ...]`, logits as field elements.
//!
//! Cost: a multiply-accumulate is `mem_load.a mul.w add` (5 cycles; weights 0, 1 and -1 are
//! cheaper). Two outputs that read the same inputs share those 5 cycles when their
//! accumulators provably fit 32-bit lanes of one field element (see [`emit_neurons`]).

use std::fmt::Write;

use crate::quant::{ACT_MAX, QLayer, QuantModel, REQUANT_OFFSET, Requant, acc_bound};

/// Where Verity's loader writes a job's private inputs (must equal
/// `verity_vm::PRIVATE_INPUTS_ADDR`; a test checks it).
pub const INPUT_ADDR: u64 = 1 << 28;
/// Where committed weights are loaded (`--private-weights`), clear of the private inputs.
pub const WEIGHTS_ADDR: u64 = 1 << 29;
/// The field's modulus.
pub const P: u64 = 0xFFFF_FFFF_0000_0001;
/// Offset that makes any activation a valid u32 for comparisons.
const CMP_OFFSET: u64 = 1 << 31;
/// Cycles of `u32min.x` / `u32max.x`, rounded up (a compare and a conditional drop).
const U32_MINMAX_OPS: usize = 12;
/// Cycles of `mem_store.a`, rounded up.
const STORE_OPS: usize = 3;
/// Operations per generated procedure (well under the assembler's 65,535 per block).
const PROC_BUDGET: usize = 20_000;

/// A signed integer as a field element.
pub fn to_felt(v: i64) -> u64 {
    if v >= 0 {
        v as u64
    } else {
        P - v.unsigned_abs()
    }
}

/// A field element as a signed integer (elements above p/2 are negative).
pub fn from_felt(f: u64) -> i64 {
    if f > P / 2 {
        -((P - f) as i64)
    } else {
        f as i64
    }
}

/// The generated program and what it costs.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub source: String,
    /// Multiply-accumulates (non-zero weights and pooling taps).
    pub macs: u64,
    /// VM cycles the program runs, counted as it was generated from what each instruction
    /// expands to, rounded up where an expansion varies: an upper bound (tested), used to
    /// refuse models that cannot fit a proof before running them.
    pub estimated_cycles: u64,
    /// Private input elements the program reads.
    pub inputs: usize,
    /// Outputs computed two to a field element (the rest, whose accumulators could overflow
    /// a 32-bit lane, one at a time).
    pub packed_outputs: usize,
    /// Committed-weights mode: the values the program loads at [`WEIGHTS_ADDR`] (weights,
    /// biases, requantization parameters), whose commitment is its first public input.
    pub weights: Option<Vec<u64>>,
}

impl Compiled {
    /// Refuses a program that would run longer than `limit` cycles, saying by how much.
    pub fn check_fits(&self, limit: u64) -> Result<(), crate::ModelError> {
        if self.estimated_cycles > limit {
            return Err(crate::ModelError::TooLarge {
                needed: self.estimated_cycles,
                limit,
                factor: self.estimated_cycles as f64 / limit as f64,
            });
        }
        Ok(())
    }
}

/// Straight-line code being split into procedures.
struct Emitter {
    procs: Vec<String>,
    current: String,
    ops_in_current: usize,
    total_ops: u64,
}

impl Emitter {
    fn new() -> Emitter {
        Emitter {
            procs: Vec::new(),
            current: String::new(),
            ops_in_current: 0,
            total_ops: 0,
        }
    }

    /// Appends one unit of work (a neuron, a pooled value): never split across procedures.
    fn unit(&mut self, code: &str, ops: usize) {
        if self.ops_in_current + ops > PROC_BUDGET && self.ops_in_current > 0 {
            self.flush();
        }
        self.current.push_str(code);
        self.ops_in_current += ops;
        self.total_ops += ops as u64;
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            self.procs.push(std::mem::take(&mut self.current));
            self.ops_in_current = 0;
        }
    }
}

/// Code for one output: `acc` on the stack becomes its requantized, clamped value.
fn requant_code(out: &mut String, r: &Requant, lo: i64, hi: i64) -> usize {
    let mut ops = 0;
    if r.m != 1 {
        let _ = write!(out, " mul.{}", r.m);
        ops += 2;
    }
    let offset = REQUANT_OFFSET + (1u128 << (r.shift - 1));
    // High half of (acc * m + 2^(shift-1) + 2^62), then the rest of the shift.
    let _ = write!(out, " add.{offset} u32split drop");
    ops += 4;
    if r.shift > 32 {
        let _ = write!(out, " u32shr.{}", r.shift - 32);
        ops += 3;
    }
    // The offset contributes exactly c = 2^(62 - shift) after the shift: clamp in that frame.
    let c = 1i64 << (62 - r.shift);
    if lo + c > 0 {
        let _ = write!(out, " u32max.{}", lo + c);
        ops += U32_MINMAX_OPS;
    }
    let _ = write!(out, " u32min.{} sub.{c}", hi + c);
    ops + U32_MINMAX_OPS + 2
}

/// Committed parameters, laid out in memory from [`WEIGHTS_ADDR`] in the order the program
/// reads them; and the multiply-accumulates that read them.
struct Params(Vec<u64>, u64);

impl Params {
    /// Appends a value and returns its address.
    fn slot(&mut self, v: i64) -> u64 {
        self.0.push(to_felt(v));
        WEIGHTS_ADDR + self.0.len() as u64 - 1
    }
}

/// Cycles of [`requant_private_code`], rounded up.
const REQUANT_PRIVATE_OPS: usize = 12 + 2 * U32_MINMAX_OPS + 16;

/// [`requant_code`] with the parameters read from memory instead of immediates, so that the
/// program does not depend on them: `[m, 2^62 + 2^(s-1), s - 32, max(lo + c, 0), hi + c, c]`.
fn requant_private_code(
    out: &mut String,
    params: &mut Params,
    r: &Requant,
    lo: i64,
    hi: i64,
) -> usize {
    let c = 1i64 << (62 - r.shift);
    let offset = (REQUANT_OFFSET + (1u128 << (r.shift - 1))) as i64;
    let a = [
        params.slot(r.m as i64),
        params.slot(offset),
        params.slot(i64::from(r.shift - 32)),
        params.slot((lo + c).max(0)),
        params.slot(hi + c),
        params.slot(c),
    ];
    let _ = write!(
        out,
        " mem_load.{} mul mem_load.{} add u32split drop mem_load.{} u32shr mem_load.{} u32max mem_load.{} u32min mem_load.{} sub",
        a[0], a[1], a[2], a[3], a[4], a[5]
    );
    REQUANT_PRIVATE_OPS
}

fn mac_code(out: &mut String, addr: u64, w: i64) -> usize {
    match w {
        0 => 0,
        1 => {
            let _ = write!(out, " mem_load.{addr} add");
            3
        }
        -1 => {
            let _ = write!(out, " mem_load.{addr} sub");
            3
        }
        w => {
            let _ = write!(out, " mem_load.{addr} mul.{} add", to_felt(w));
            5
        }
    }
}

/// One output of a linear layer: `requant(bias + sum w * mem[addr])` stored at `out`.
struct Neuron {
    taps: Vec<(u64, i64)>,
    bias: i64,
    requant: Requant,
    out: u64,
}

impl Neuron {
    /// Largest magnitude its accumulator reaches on inputs bounded by `in_bound`.
    fn bound(&self, in_bound: i64) -> u128 {
        acc_bound(self.bias, self.taps.iter().map(|(_, w)| w), in_bound)
    }
}

/// `[acc_a + 2^31, acc_b + 2^31]` (two lanes, as [`packed_acc_code`] leaves them) requantized
/// and stored at `a.1` and `b.1`.
fn store_pair_code(
    code: &mut String,
    a: (&Requant, u64),
    b: (&Requant, u64),
    lo: i64,
    hi: i64,
) -> usize {
    let half = 1u64 << 31;
    // Each lane minus its offset is the exact accumulator.
    let _ = write!(code, " sub.{half}");
    let mut ops = 2 + requant_code(code, a.0, lo, hi);
    let _ = write!(code, " mem_store.{} sub.{half}", a.1);
    ops += STORE_OPS + 2 + requant_code(code, b.0, lo, hi);
    let _ = writeln!(code, " mem_store.{}", b.1);
    ops + STORE_OPS
}

/// `[acc]` requantized and stored at `out`.
fn store_one_code(code: &mut String, r: &Requant, out: u64, lo: i64, hi: i64) -> usize {
    let ops = requant_code(code, r, lo, hi);
    let _ = writeln!(code, " mem_store.{out}");
    ops + STORE_OPS
}

/// Accumulators packed two to a field element must stay below this in magnitude, so each
/// 32-bit lane holds `acc + 2^31` without borrowing from or carrying into the other, and the
/// packed value stays below the field's modulus.
const LANE_LIMIT: u128 = (1 << 31) - 1;

/// `[acc]`: one output's accumulator.
fn single_acc_code(code: &mut String, n: &Neuron) -> usize {
    let _ = write!(code, "    push.{}", to_felt(n.bias));
    let mut ops = 1;
    for (addr, w) in &n.taps {
        ops += mac_code(code, *addr, *w);
    }
    ops
}

/// `[acc_a + 2^31, acc_b + 2^31]`: two outputs over the same inputs, accumulated in the two
/// 32-bit lanes of one field element and split (both accumulators must fit a lane).
fn packed_acc_code(code: &mut String, a: &Neuron, b: &Neuron) -> usize {
    let half = 1i128 << 31;
    let init = half + i128::from(a.bias) + (half + i128::from(b.bias)) * (1i128 << 32);
    let _ = write!(code, "    push.{}", init as u64);
    let mut ops = 1;
    for ((addr, wa), (_, wb)) in a.taps.iter().zip(&b.taps) {
        let w = i128::from(*wa) + i128::from(*wb) * (1i128 << 32);
        ops += match w {
            0 => 0,
            1 => {
                let _ = write!(code, " mem_load.{addr} add");
                3
            }
            w => {
                let felt = if w >= 0 {
                    w as u64
                } else {
                    P - w.unsigned_abs() as u64
                };
                let _ = write!(code, " mem_load.{addr} mul.{felt} add");
                5
            }
        };
    }
    code.push_str(" u32split");
    ops + 1
}

/// Emits a linear layer's outputs. Two neighbouring outputs that read the same inputs are
/// computed together when both accumulators provably fit a lane (from the actual weights
/// and the input range): one field element holds `(acc_a + 2^31) + 2^32 (acc_b + 2^31)`, so
/// one load, one multiply by `w_a + 2^32 w_b` and one add serve two multiply-accumulates,
/// and `u32split` separates them. Otherwise each output is computed alone.
fn emit_neurons(
    e: &mut Emitter,
    neurons: &[Neuron],
    lo: i64,
    hi: i64,
    in_bound: i64,
    packed: &mut usize,
    params: Option<&mut Params>,
) {
    let mut code = String::new();
    // Committed weights: every tap is a load and a multiply (which weights are zero, or
    // small enough to pack, is not the program's to know).
    if let Some(params) = params {
        for n in neurons {
            code.clear();
            let _ = write!(code, "    mem_load.{}", params.slot(n.bias));
            let mut ops = 2;
            for (addr, w) in &n.taps {
                let _ = write!(
                    code,
                    " mem_load.{addr} mem_load.{} mul add",
                    params.slot(*w)
                );
                ops += 6;
                params.1 += 1;
            }
            ops += requant_private_code(&mut code, params, &n.requant, lo, hi);
            let _ = writeln!(code, " mem_store.{}", n.out);
            e.unit(&code, ops + STORE_OPS);
        }
        return;
    }
    let mut k = 0;
    while k < neurons.len() {
        code.clear();
        let a = &neurons[k];
        let pair = neurons.get(k + 1).filter(|b| {
            b.taps.len() == a.taps.len()
                && b.taps.iter().zip(&a.taps).all(|(x, y)| x.0 == y.0)
                && a.bound(in_bound) < LANE_LIMIT
                && b.bound(in_bound) < LANE_LIMIT
        });
        let ops = match pair {
            Some(b) => {
                *packed += 2;
                k += 2;
                packed_acc_code(&mut code, a, b)
                    + store_pair_code(&mut code, (&a.requant, a.out), (&b.requant, b.out), lo, hi)
            }
            None => {
                k += 1;
                single_acc_code(&mut code, a) + store_one_code(&mut code, &a.requant, a.out, lo, hi)
            }
        };
        e.unit(&code, ops);
    }
}

/// A convolution's outputs, in the order `emit_neurons` takes them (position-major,
/// channel-minor), to be max-pooled.
struct PooledConv<'a> {
    neurons: &'a [Neuron],
    channels: usize,
    /// The convolution's output width.
    width: usize,
    pool: &'a crate::onnx::Window,
    lo: i64,
    hi: i64,
    out_base: u64,
}

impl PooledConv<'_> {
    fn at(&self, co: usize, y: usize, x: usize) -> &Neuron {
        &self.neurons[(y * self.width + x) * self.channels + co]
    }
}

/// Convolution then max pooling, fused: requantization and clamping never decrease, so the
/// max of requantized outputs is the requantized max of the accumulators, and each pooled
/// output needs one requantization instead of one per window position (and no pass over
/// stored activations). Accumulators are compared as 32-bit lanes offset by 2^31, so the
/// caller fuses only when every accumulator provably fits a lane; two channels share each
/// multiply-accumulate as when packing. Outputs are the pooling's layout, `[c][py][px]`.
fn emit_conv_pool(e: &mut Emitter, c: &PooledConv, packed: &mut usize) {
    let half = 1u64 << 31;
    let (ph, pw) = (c.pool.out_h(), c.pool.out_w());
    let mut code = String::new();
    for py in 0..ph {
        for px in 0..pw {
            let positions: Vec<(usize, usize)> =
                c.pool.taps(py, px).map(|(_, _, y, x)| (y, x)).collect();
            let out = |co: usize| c.out_base + ((co * ph + py) * pw + px) as u64;
            let mut co = 0;
            while co < c.channels {
                code.clear();
                let mut ops = 0;
                let requant = |co: usize| &c.at(co, 0, 0).requant;
                if co + 1 < c.channels {
                    for (t, &(y, x)) in positions.iter().enumerate() {
                        ops += packed_acc_code(&mut code, c.at(co, y, x), c.at(co + 1, y, x));
                        if t > 0 {
                            // [a, b, A, B] -> [max(a, A), max(b, B)]
                            code.push_str(" movup.2 u32max movdn.2 u32max swap");
                            ops += 3 + 2 * U32_MINMAX_OPS;
                        }
                    }
                    ops += store_pair_code(
                        &mut code,
                        (requant(co), out(co)),
                        (requant(co + 1), out(co + 1)),
                        c.lo,
                        c.hi,
                    );
                    *packed += 2;
                    co += 2;
                } else {
                    for (t, &(y, x)) in positions.iter().enumerate() {
                        ops += single_acc_code(&mut code, c.at(co, y, x));
                        let _ = write!(code, " add.{half}");
                        ops += 2;
                        if t > 0 {
                            code.push_str(" u32max");
                            ops += U32_MINMAX_OPS;
                        }
                    }
                    let _ = write!(code, " sub.{half}");
                    ops += 2 + store_one_code(&mut code, requant(co), out(co), c.lo, c.hi);
                    co += 1;
                }
                e.unit(&code, ops);
            }
        }
    }
}

/// Cycles of Verity's private-input loader for `n` elements, rounded up (it hashes the data
/// two words at a time as it copies it into memory).
/// `push.a.b.c.d dropw`: the interpretation digest in an immediates program.
const INTERPRETATION_CYCLES: u64 = 8;

fn loader_cycles(n: usize) -> u64 {
    64 + n.div_ceil(8) as u64 * 24
}

/// The count plus a tenth: instruction expansions vary a little between Miden releases, and
/// the estimate must stay an upper bound (tests compare it with executions).
fn upper_bound(counted: u64) -> u64 {
    counted + counted / 10
}

/// Compiles a model (validated first).
pub fn compile(model: &QuantModel) -> Result<Compiled, crate::ModelError> {
    model.validate()?;
    let mut e = Emitter::new();
    let n_in = model.input.len();
    let mut params = model.private_weights.then(|| Params(Vec::new(), 0));

    if model.public_input {
        for i in 0..n_in {
            e.unit(
                &format!("    mem_store.{}\n", INPUT_ADDR + i as u64),
                STORE_OPS,
            );
        }
    }
    // Range-check the input: every element must be a quantized value.
    for i in 0..n_in {
        e.unit(
            &format!(
                "    mem_load.{} add.{ACT_MAX} u32lt.{} assert\n",
                INPUT_ADDR + i as u64,
                2 * ACT_MAX + 1
            ),
            12,
        );
    }

    let mut in_base = INPUT_ADDR;
    let mut in_bound = ACT_MAX;
    let mut packed = 0usize;
    let mut out_base = 0u64;
    // The layer after a convolution, when the two were emitted as one.
    let mut fused_next = false;
    for (k, layer) in model.layers.iter().enumerate() {
        if std::mem::take(&mut fused_next) {
            continue;
        }
        let mut code = String::new();
        let mut out_len = layer.output_len();
        match layer {
            QLayer::Dense {
                n_in,
                n_out,
                weights,
                bias,
                requant,
                lo,
                hi,
            } => {
                let neurons: Vec<Neuron> = (0..*n_out)
                    .map(|j| Neuron {
                        taps: (0..*n_in)
                            .map(|i| (in_base + i as u64, weights[j * n_in + i]))
                            .collect(),
                        bias: bias[j],
                        requant: requant[j],
                        out: out_base + j as u64,
                    })
                    .collect();
                emit_neurons(
                    &mut e,
                    &neurons,
                    *lo,
                    *hi,
                    in_bound,
                    &mut packed,
                    params.as_mut(),
                );
                in_bound = (*hi).max(-*lo);
            }
            QLayer::Conv {
                window,
                c_out,
                weights,
                bias,
                requant,
                lo,
                hi,
            } => {
                // Position-major, channel-minor: neighbouring channels at one position read
                // the same inputs, so they can share packed accumulators.
                let (oh, ow) = (window.out_h(), window.out_w());
                let mut neurons = Vec::with_capacity(c_out * oh * ow);
                for oy in 0..oh {
                    for ox in 0..ow {
                        for co in 0..*c_out {
                            neurons.push(Neuron {
                                taps: window
                                    .conv_taps(co, oy, ox)
                                    .map(|(w, i)| (in_base + i as u64, weights[w]))
                                    .collect(),
                                bias: bias[co],
                                requant: requant[co],
                                out: out_base + ((co * oh + oy) * ow + ox) as u64,
                            });
                        }
                    }
                }
                // Followed by a max pooling of whole, disjoint windows over its output, with
                // every accumulator within a lane: one pass (see `emit_conv_pool`).
                match (&params, model.layers.get(k + 1)) {
                    (None, Some(next @ QLayer::MaxPool { window: pool }))
                        if pool.input
                            == (crate::Shape {
                                c: *c_out,
                                h: oh,
                                w: ow,
                            })
                            && pool.stride_h == pool.kh
                            && pool.stride_w == pool.kw
                            && neurons.iter().all(|n| n.bound(in_bound) < LANE_LIMIT) =>
                    {
                        emit_conv_pool(
                            &mut e,
                            &PooledConv {
                                neurons: &neurons,
                                channels: *c_out,
                                width: ow,
                                pool,
                                lo: *lo,
                                hi: *hi,
                                out_base,
                            },
                            &mut packed,
                        );
                        out_len = next.output_len();
                        fused_next = true;
                    }
                    _ => emit_neurons(
                        &mut e,
                        &neurons,
                        *lo,
                        *hi,
                        in_bound,
                        &mut packed,
                        params.as_mut(),
                    ),
                }
                in_bound = (*hi).max(-*lo);
            }
            QLayer::MaxPool { window } | QLayer::AvgPool { window, .. } => {
                let mut o = 0u64;
                for ch in 0..window.input.c {
                    for oy in 0..window.out_h() {
                        for ox in 0..window.out_w() {
                            code.clear();
                            let mut ops = 0;
                            let addrs = window.pool_taps(ch, oy, ox).map(|i| in_base + i as u64);
                            match layer {
                                QLayer::MaxPool { .. } => {
                                    // Compare as u32 after an offset; a window always has a tap.
                                    for (k, a) in addrs.enumerate() {
                                        let _ = write!(code, " mem_load.{a} add.{CMP_OFFSET}");
                                        ops += 4;
                                        if k > 0 {
                                            code.push_str(" u32max");
                                            ops += U32_MINMAX_OPS;
                                        }
                                    }
                                    let _ = write!(code, " sub.{CMP_OFFSET}");
                                    ops += 2;
                                }
                                QLayer::AvgPool {
                                    requant, lo, hi, ..
                                } => {
                                    in_bound = (*hi).max(-*lo);
                                    code.push_str(" push.0");
                                    ops += 1;
                                    for a in addrs {
                                        ops += mac_code(&mut code, a, 1);
                                    }
                                    let r = &requant[oy * window.out_w() + ox];
                                    ops += match params.as_mut() {
                                        Some(p) => requant_private_code(&mut code, p, r, *lo, *hi),
                                        None => requant_code(&mut code, r, *lo, *hi),
                                    };
                                }
                                _ => unreachable!(),
                            }
                            let _ = writeln!(code, " mem_store.{}", out_base + o);
                            e.unit(&format!("   {code}"), ops + STORE_OPS);
                            o += 1;
                        }
                    }
                }
            }
            QLayer::Relu { n } => {
                for k in 0..*n as u64 {
                    let code = format!(
                        "    mem_load.{} add.{CMP_OFFSET} u32max.{CMP_OFFSET} sub.{CMP_OFFSET} mem_store.{}\n",
                        in_base + k,
                        out_base + k
                    );
                    e.unit(&code, 6 + U32_MINMAX_OPS + STORE_OPS);
                }
            }
        }
        in_base = out_base;
        out_base += out_len as u64;
    }
    e.flush();

    // Argmax (first maximum), stored after the logits, then the outputs onto the stack.
    let logits = in_base;
    let classes = model.classes() as u64;
    let class_addr = out_base;
    let mut out = String::new();
    let _ = writeln!(out, "    mem_load.{logits} add.{CMP_OFFSET} push.0");
    for j in 1..classes {
        // [best_index, best_value] -> compare the next logit, keep the first maximum.
        let _ = writeln!(
            out,
            "    mem_load.{} add.{CMP_OFFSET} dup dup.3 u32gt if.true movdn.2 drop drop push.{j} else drop end",
            logits + j
        );
    }
    let _ = writeln!(out, "    mem_store.{class_addr} drop");
    // The stack is 16 elements deep; each output pushed replaces one of the bottom ones.
    for j in (0..classes).rev() {
        let _ = writeln!(out, "    mem_load.{} movup.15 drop", logits + j);
    }
    let _ = writeln!(out, "    mem_load.{class_addr} movup.15 drop");
    let output_ops = 8 + (classes as usize) * 24 + (classes as usize + 1) * 6;
    e.unit(&out, output_ops);
    e.flush();

    let mut source = String::new();
    let input_kind = if model.public_input {
        "public elements on the stack"
    } else {
        "private elements at 2^28"
    };
    match &params {
        // An architecture's program: nothing in it may depend on the weights or the scales.
        Some(p) => {
            let _ = writeln!(
                source,
                "# Generated by Verity: do not edit. An architecture program: weights, biases and\n\
                 # requantization ({} elements) come from the advice map, checked against the\n\
                 # commitment that is the first public input, into memory at 2^29.\n\
                 # Inputs: {n_in} {input_kind} (quantized).\n\
                 # Outputs: [class, logit_0 .. logit_{}] (field elements; negative as p - |v|).\n\
                 use miden::core::mem",
                p.0.len(),
                classes.saturating_sub(1),
            );
        }
        None => {
            let _ = writeln!(
                source,
                "# Generated by Verity from model '{}' (ONNX blake3 {}): do not edit.\n\
                 # Inputs: {} {input_kind} (quantized, scale {:e}).\n\
                 # Outputs: [class, logit_0 .. logit_{}] (field elements; negative as p - |v|; scale {:e}).",
                model.name.replace(['\n', '\r'], " "),
                model.source_hash,
                n_in,
                model.input_scale,
                classes.saturating_sub(1),
                model.logit_scale
            );
        }
    }
    for (k, body) in e.procs.iter().enumerate() {
        let _ = write!(source, "\nproc part_{k}\n{body}end\n");
    }
    source.push_str("\nbegin\n");
    let mut loading = 0;
    if params.is_none() {
        // The model's interpretation (labels, scales), bound into the program and so into
        // the model id; pushed and dropped, it costs 8 cycles.
        let [a, b, c, d] = model.interpretation_digest();
        let _ = writeln!(source, "    push.{a}.{b}.{c}.{d} dropw");
        loading += INTERPRETATION_CYCLES;
    }
    if let Some(p) = &params {
        // [W0..W3, ...] -> the committed parameters in memory, or a failed assertion.
        let words = p.0.len().div_ceil(4);
        let _ = writeln!(
            source,
            "    adv.push_mapval push.{WEIGHTS_ADDR} push.{words} exec.mem::pipe_preimage_to_memory drop"
        );
        loading = loader_cycles(p.0.len());
    }
    for k in 0..e.procs.len() {
        let _ = writeln!(source, "    exec.part_{k}");
    }
    source.push_str("end\n");
    // With committed weights every tap is computed, zero or not.
    let macs = match &params {
        Some(p) => {
            p.1 + model
                .layers
                .iter()
                .filter(|l| matches!(l, QLayer::AvgPool { .. } | QLayer::MaxPool { .. }))
                .map(QLayer::macs)
                .sum::<u64>()
        }
        None => model.macs(),
    };
    Ok(Compiled {
        source,
        macs,
        estimated_cycles: upper_bound(
            e.total_ops + e.procs.len() as u64 * 8 + loader_cycles(n_in) + loading,
        ),
        inputs: n_in,
        packed_outputs: packed,
        weights: params.map(|p| p.0),
    })
}

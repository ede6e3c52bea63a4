//! The code of single outputs: requantization (with immediates or committed parameters),
//! multiply-accumulates, two accumulators packed into 32-bit lanes of one field element, and
//! a convolution fused with the max pooling after it.

use std::fmt::Write;

use super::{Emitter, P, STORE_OPS, U32_MINMAX_OPS, WEIGHTS_ADDR, to_felt};
use crate::quant::{REQUANT_OFFSET, Requant, acc_bound};

/// Code for one output: `acc` on the stack becomes its requantized, clamped value.
pub(super) fn requant_code(out: &mut String, r: &Requant, lo: i64, hi: i64) -> usize {
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
pub(super) struct Params(pub(super) Vec<u64>, pub(super) u64);

impl Params {
    /// Appends a value and returns its address.
    pub(super) fn slot(&mut self, v: i64) -> u64 {
        self.0.push(to_felt(v));
        WEIGHTS_ADDR + self.0.len() as u64 - 1
    }
}

/// Cycles of [`requant_private_code`], rounded up.
pub(super) const REQUANT_PRIVATE_OPS: usize = 12 + 2 * U32_MINMAX_OPS + 16;

/// [`requant_code`] with the parameters read from memory instead of immediates, so that the
/// program does not depend on them: `[m, 2^62 + 2^(s-1), s - 32, max(lo + c, 0), hi + c, c]`.
pub(super) fn requant_private_code(
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

pub(super) fn mac_code(out: &mut String, addr: u64, w: i64) -> usize {
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
pub(super) struct Neuron {
    pub(super) taps: Vec<(u64, i64)>,
    pub(super) bias: i64,
    pub(super) requant: Requant,
    pub(super) out: u64,
}

impl Neuron {
    /// Largest magnitude its accumulator reaches on inputs bounded by `in_bound`.
    pub(super) fn bound(&self, in_bound: i64) -> u128 {
        acc_bound(self.bias, self.taps.iter().map(|(_, w)| w), in_bound)
    }
}

/// `[acc_a + 2^31, acc_b + 2^31]` (two lanes, as [`packed_acc_code`] leaves them) requantized
/// and stored at `a.1` and `b.1`.
pub(super) fn store_pair_code(
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
pub(super) fn store_one_code(code: &mut String, r: &Requant, out: u64, lo: i64, hi: i64) -> usize {
    let ops = requant_code(code, r, lo, hi);
    let _ = writeln!(code, " mem_store.{out}");
    ops + STORE_OPS
}

/// Accumulators packed two to a field element must stay below this in magnitude, so each
/// 32-bit lane holds `acc + 2^31` without borrowing from or carrying into the other, and the
/// packed value stays below the field's modulus.
pub(super) const LANE_LIMIT: u128 = (1 << 31) - 1;

/// `[acc]`: one output's accumulator.
pub(super) fn single_acc_code(code: &mut String, n: &Neuron) -> usize {
    let _ = write!(code, "    push.{}", to_felt(n.bias));
    let mut ops = 1;
    for (addr, w) in &n.taps {
        ops += mac_code(code, *addr, *w);
    }
    ops
}

/// `[acc_a + 2^31, acc_b + 2^31]`: two outputs over the same inputs, accumulated in the two
/// 32-bit lanes of one field element and split (both accumulators must fit a lane).
pub(super) fn packed_acc_code(code: &mut String, a: &Neuron, b: &Neuron) -> usize {
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
pub(super) fn emit_neurons(
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
pub(super) struct PooledConv<'a> {
    pub(super) neurons: &'a [Neuron],
    pub(super) channels: usize,
    /// The convolution's output width.
    pub(super) width: usize,
    pub(super) pool: &'a crate::onnx::Window,
    pub(super) lo: i64,
    pub(super) hi: i64,
    pub(super) out_base: u64,
}

impl PooledConv<'_> {
    pub(super) fn at(&self, co: usize, y: usize, x: usize) -> &Neuron {
        &self.neurons[(y * self.width + x) * self.channels + co]
    }
}

/// Convolution then max pooling, fused: requantization and clamping never decrease, so the
/// max of requantized outputs is the requantized max of the accumulators, and each pooled
/// output needs one requantization instead of one per window position (and no pass over
/// stored activations). Accumulators are compared as 32-bit lanes offset by 2^31, so the
/// caller fuses only when every accumulator provably fits a lane; two channels share each
/// multiply-accumulate as when packing. Outputs are the pooling's layout, `[c][py][px]`.
pub(super) fn emit_conv_pool(e: &mut Emitter, c: &PooledConv, packed: &mut usize) {
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

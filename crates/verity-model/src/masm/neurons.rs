//! The code of single outputs: requantization (with immediates or committed parameters),
//! multiply-accumulates, two accumulators packed into 32-bit lanes of one field element, and
//! a convolution fused with the max pooling after it.

use std::fmt::Write;

use super::{Emitter, ONE_ADDR, STORE_OPS, U32_MINMAX_OPS, WEIGHTS_ADDR, to_felt, wide_felt};
use crate::quant::{REQUANT_OFFSET, Requant, acc_bound};

/// Code for one output: `acc + pre` on the stack becomes the requantized, clamped `acc`.
/// (`pre` is the lane offset a packed or compared accumulator carries: it is taken out in the
/// constant added after the multiply, not by a subtraction of its own.)
pub(super) fn requant_code(out: &mut String, r: &Requant, lo: i64, hi: i64, pre: i128) -> usize {
    let mut ops = 0;
    if r.m != 1 {
        let _ = write!(out, " mul.{}", r.m);
        ops += 2;
    }
    // High half of (acc * m + 2^(shift-1) + 2^62), then the rest of the shift. Adding
    // `offset - pre * m` (mod p) to `(acc + pre) * m` gives the same field element, so the
    // same result (`pre * m` can exceed p: reduced here).
    let offset = ((REQUANT_OFFSET + (1u128 << (r.shift - 1))) as i128 - pre * i128::from(r.m))
        .rem_euclid(i128::from(super::P)) as u64;
    let _ = write!(out, " add.{offset} u32split drop");
    ops += 4;
    if r.shift > 32 {
        let _ = write!(out, " u32shr.{}", r.shift - 32);
        ops += 3;
    }
    // The offset contributes exactly c = 2^(62 - shift) after the shift: clamp in that frame.
    let c = 1i64 << (62 - r.shift);
    if lo + c > 0 {
        // max(v, lo + c) by compare and swap: 8 cycles, against 10 for `u32max.x`.
        let _ = write!(out, " push.{} dup.1 dup.1 u32lt cswap drop", lo + c);
        ops += U32_MINMAX_OPS;
    }
    let _ = write!(out, " u32min.{} sub.{c}", hi + c);
    ops + U32_MINMAX_OPS + 2
}

/// Committed parameters, laid out in memory from [`WEIGHTS_ADDR`] in the order the program
/// reads them; and how the program reads them.
#[derive(Default)]
pub(super) struct Params {
    pub(super) values: Vec<u64>,
    /// Multiply-accumulates that read them.
    pub(super) macs: u64,
    /// Whether the layer being emitted computes its streamed outputs in a loop
    /// ([`looped_acc_code`]) instead of straight-line code.
    pub(super) looped: bool,
}

impl Params {
    /// Appends a value (a field element) and returns its address.
    pub(super) fn slot(&mut self, felt: u64) -> u64 {
        self.values.push(felt);
        WEIGHTS_ADDR + self.values.len() as u64 - 1
    }

    /// Appends `felts` from a multiple of [`LOOP_TAPS`], followed by zeros up to the next
    /// one, and returns their first address: a region [`looped_acc_code`] reads whole.
    fn region(&mut self, felts: impl IntoIterator<Item = u64>) -> u64 {
        let start = self.values.len().next_multiple_of(LOOP_TAPS);
        self.values.resize(start, 0);
        self.values.extend(felts);
        self.values
            .resize(self.values.len().next_multiple_of(LOOP_TAPS), 0);
        WEIGHTS_ADDR + start as u64
    }
}

/// Where a program's constants (biases, weights, requantization) come from: immediates in
/// the code, or committed parameters read from memory. An architecture's program (committed)
/// must not depend on their values, so it never special-cases one; which outputs it packs
/// is decided from the architecture alone (see [`crate::quant::committed_acc_bound`]).
pub(super) enum Consts<'a> {
    Immediate,
    Committed(&'a mut Params),
}

impl Consts<'_> {
    /// `[] -> [v]`.
    pub(super) fn push(&mut self, code: &mut String, v: i128) -> usize {
        match self {
            Consts::Immediate => {
                let _ = write!(code, "    push.{}", wide_felt(v));
                1
            }
            Consts::Committed(p) => {
                let _ = write!(code, "    mem_load.{}", p.slot(wide_felt(v)));
                2
            }
        }
    }

    /// `[acc] -> [acc + w * mem[addr]]`, `w` a weight or `lanes` packed weights.
    pub(super) fn mac(&mut self, code: &mut String, addr: u64, w: i128, lanes: u64) -> usize {
        match self {
            Consts::Committed(p) => {
                let _ = write!(
                    code,
                    " mem_load.{addr} mem_load.{} mul add",
                    p.slot(wide_felt(w))
                );
                p.macs += lanes;
                6
            }
            Consts::Immediate => match w {
                0 => 0,
                1 => {
                    let _ = write!(code, " mem_load.{addr} add");
                    3
                }
                -1 => {
                    let _ = write!(code, " mem_load.{addr} sub");
                    3
                }
                w => {
                    let _ = write!(code, " mem_load.{addr} mul.{} add", wide_felt(w));
                    5
                }
            },
        }
    }

    /// `[x] -> [w x]`, `w` a weight or `lanes` packed weights.
    fn scale(&mut self, code: &mut String, w: i128, lanes: u64) -> usize {
        match self {
            Consts::Committed(p) => {
                let _ = write!(code, " mem_load.{} mul", p.slot(wide_felt(w)));
                p.macs += lanes;
                3
            }
            Consts::Immediate => match w {
                0 => {
                    code.push_str(" drop push.0");
                    2
                }
                1 => 0,
                -1 => {
                    code.push_str(" neg");
                    1
                }
                w => {
                    let _ = write!(code, " mul.{}", wide_felt(w));
                    2
                }
            },
        }
    }

    /// `[acc + pre] -> [requantized, clamped acc]`.
    pub(super) fn requant(
        &mut self,
        code: &mut String,
        r: &Requant,
        lo: i64,
        hi: i64,
        pre: i128,
    ) -> usize {
        match self {
            Consts::Immediate => requant_code(code, r, lo, hi, pre),
            Consts::Committed(p) if pre != 0 => {
                // The committed parameters are the architecture's: the offset is taken out
                // here, not folded into them.
                let _ = write!(code, " sub.{}", wide_felt(pre));
                2 + requant_private_code(code, p, r, lo, hi)
            }
            Consts::Committed(p) => requant_private_code(code, p, r, lo, hi),
        }
    }
}

/// Cycles of [`requant_private_code`], rounded up.
pub(super) const REQUANT_PRIVATE_OPS: usize = 12 + 2 * U32_MINMAX_OPS + 16;

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
        params.slot(to_felt(r.m as i64)),
        params.slot(to_felt(offset)),
        params.slot(to_felt(i64::from(r.shift - 32))),
        params.slot(to_felt((lo + c).max(0))),
        params.slot(to_felt(hi + c)),
        params.slot(to_felt(c)),
    ];
    let _ = write!(
        out,
        " mem_load.{} mul mem_load.{} add u32split drop mem_load.{} u32shr mem_load.{} u32max mem_load.{} u32min mem_load.{} sub",
        a[0], a[1], a[2], a[3], a[4], a[5]
    );
    REQUANT_PRIVATE_OPS
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
    consts: &mut Consts,
    a: (&Requant, u64),
    b: (&Requant, u64),
    lo: i64,
    hi: i64,
) -> usize {
    let half = 1u64 << 31;
    // Each lane minus its offset is the exact accumulator.
    let mut ops = consts.requant(code, a.0, lo, hi, half.into());
    let _ = write!(code, " mem_store.{}", a.1);
    ops += STORE_OPS + consts.requant(code, b.0, lo, hi, half.into());
    let _ = writeln!(code, " mem_store.{}", b.1);
    ops + STORE_OPS
}

/// `[acc]` requantized and stored at `out`.
pub(super) fn store_one_code(
    code: &mut String,
    consts: &mut Consts,
    r: &Requant,
    out: u64,
    lo: i64,
    hi: i64,
) -> usize {
    let ops = consts.requant(code, r, lo, hi, 0);
    let _ = writeln!(code, " mem_store.{out}");
    ops + STORE_OPS
}

/// Accumulators packed two to a field element must stay below this in magnitude, so each
/// 32-bit lane holds `acc + 2^31` without borrowing from or carrying into the other, and the
/// packed value stays below the field's modulus.
pub(super) const LANE_LIMIT: u128 = (1 << 31) - 1;

/// `[acc]`: one output's accumulator.
pub(super) fn single_acc_code(code: &mut String, consts: &mut Consts, n: &Neuron) -> usize {
    if let Some(base) = streamable(n) {
        let weights: Vec<i128> = n.taps.iter().map(|(_, w)| i128::from(*w)).collect();
        return streamed_acc_code(code, consts, base, i128::from(n.bias), &weights, 1);
    }
    let mut ops = consts.push(code, i128::from(n.bias));
    for (addr, w) in &n.taps {
        ops += consts.mac(code, *addr, i128::from(*w), 1);
    }
    ops
}

/// The first address of `n`'s inputs when they are a whole region from a multiple of 8
/// (what [`streamed_acc_code`] reads).
fn streamable(n: &Neuron) -> Option<u64> {
    let base = n.taps.first()?.0;
    // Whole groups of eight only: a partial group would add whatever lies past the taps,
    // which is zero after a dense layer's input but not within a convolution's input.
    (base.is_multiple_of(8)
        && n.taps.len().is_multiple_of(8)
        && n.taps
            .iter()
            .zip(base..)
            .all(|((addr, _), want)| *addr == want))
    .then_some(base)
}

/// `[acc]`, `acc = init + sum weights[i] * mem[base + i]`, streaming the inputs eight at a
/// time: `mem_stream` puts eight on the stack, each is scaled where it lies (brought up by
/// `movup`, so the products land in the same eight slots), and `horner_eval_base` at the
/// point 1 (kept at [`ONE_ADDR`]) adds all eight to the accumulator in one cycle. Stack during
/// the loop: `[8 values, 4 spare, pointer, ONE_ADDR, acc, 0]`. Past the last input the
/// stream reads zeros (regions are 8-aligned and nothing writes between them), which are
/// left as they are.
fn streamed_acc_code(
    code: &mut String,
    consts: &mut Consts,
    base: u64,
    init: i128,
    weights: &[i128],
    lanes: u64,
) -> usize {
    if let Consts::Committed(p) = consts
        && p.looped
    {
        return looped_acc_code(code, p, base, init, weights, lanes);
    }
    code.push_str("    push.0");
    let mut ops = 1 + consts.push(code, init);
    let _ = write!(code, " push.{ONE_ADDR} push.{base} padw padw padw");
    // `padw` is four operations.
    ops += 2 + 12;
    for chunk in weights.chunks(8) {
        code.push_str(" mem_stream");
        ops += 1;
        // The r inputs lie at 0..r; each turn brings the last unscaled one up.
        let r = chunk.len();
        for w in chunk.iter().rev() {
            match r - 1 {
                0 => {}
                1 => code.push_str(" swap"),
                d => {
                    let _ = write!(code, " movup.{d}");
                }
            }
            ops += usize::from(r > 1) + consts.scale(code, *w, lanes);
        }
        code.push_str(" horner_eval_base");
        ops += 1;
    }
    // `dropw` is four operations.
    code.push_str(" dropw dropw dropw drop drop swap drop");
    ops + 16
}

/// Taps per turn of [`looped_acc_code`]'s loop: two streams of eight.
const LOOP_TAPS: usize = 16;
/// Cycles of one turn of that loop, measured (103) and rounded up: per eight taps a stream,
/// two word loads with their padding and addresses, eight products brought together and
/// their sum (about 40); the pointer's step and the test; the loop's own cycles and the
/// padding its immediates need.
const LOOP_TURN_OPS: usize = 104;
/// Cycles around the loop: its setup (the initial value, the pointers, padding) and the
/// cleanup that leaves the accumulator, measured (51) and rounded up.
const LOOP_AROUND_OPS: usize = 56;

/// [`streamed_acc_code`] for committed parameters, as a loop: the weights lie in one region
/// of the committed parameters, read a word at a time beside the streamed inputs, so the
/// code is the same few dozen instructions however many taps the output has (an
/// architecture's program stays small enough to publish at MNIST size) and holds no address
/// per tap. Stack during the loop: `[8 values, weights pointer, weights end, 0, 0, pointer,
/// ONE_ADDR, acc, 0]`; each word of weights is loaded above the values and multiplied into
/// them, then `horner_eval_base` sums the eight products. The inputs are read in whole
/// turns of [`LOOP_TAPS`]: past the last input the weights are zeros, whatever is read.
fn looped_acc_code(
    code: &mut String,
    p: &mut Params,
    base: u64,
    init: i128,
    weights: &[i128],
    lanes: u64,
) -> usize {
    let init = p.slot(wide_felt(init));
    let w = p.region(weights.iter().map(|w| wide_felt(*w)));
    p.macs += lanes * weights.len() as u64;
    let turns = weights.len().div_ceil(LOOP_TAPS);
    let end = w + (turns * LOOP_TAPS) as u64;
    let _ = write!(
        code,
        "    push.0 mem_load.{init} push.{ONE_ADDR} push.{base} push.0 push.0 push.{end} push.{w} padw padw push.1
    while.true
"
    );
    // x_i at i (i < 4), w_i above them: each product replaces its input's slot.
    let half = |code: &mut String, x: usize| {
        let _ = write!(
            code,
            " movup.{x} mul swap movup.{x} mul movup.2 movup.{x} mul movup.3 movup.{x} mul"
        );
    };
    code.push_str("       ");
    for g in 0..LOOP_TAPS / 8 {
        let at = |offset: usize| match offset {
            0 => String::new(),
            k => format!(" add.{k}"),
        };
        let _ = write!(code, " mem_stream padw dup.12{} mem_loadw_le", at(8 * g));
        half(code, 4);
        let _ = write!(code, " padw dup.12{} mem_loadw_le", at(8 * g + 4));
        half(code, 8);
        code.push_str(" horner_eval_base");
    }
    // [.., w, end] -> w' = w + LOOP_TAPS; continue while w' != end.
    let _ = writeln!(
        code,
        " movup.8 add.{LOOP_TAPS} movdn.8 dup.8 dup.10 neq\n    end\n    dropw dropw dropw drop drop swap drop"
    );
    LOOP_AROUND_OPS + turns * LOOP_TURN_OPS
}

/// `[acc_a + 2^31, acc_b + 2^31]`: two outputs over the same inputs, accumulated in the two
/// 32-bit lanes of one field element and split (both accumulators must fit a lane).
pub(super) fn packed_acc_code(
    code: &mut String,
    consts: &mut Consts,
    a: &Neuron,
    b: &Neuron,
) -> usize {
    let half = 1i128 << 31;
    let lane = 1i128 << 32;
    let init = half + i128::from(a.bias) + (half + i128::from(b.bias)) * lane;
    let weights: Vec<i128> = a
        .taps
        .iter()
        .zip(&b.taps)
        .map(|((_, wa), (_, wb))| i128::from(*wa) + i128::from(*wb) * lane)
        .collect();
    let mut ops = match streamable(a) {
        Some(base) => streamed_acc_code(code, consts, base, init, &weights, 2),
        None => {
            let mut ops = consts.push(code, init);
            for ((addr, _), w) in a.taps.iter().zip(&weights) {
                ops += consts.mac(code, *addr, *w, 2);
            }
            ops
        }
    };
    code.push_str(" u32split");
    ops += 1;
    ops
}

/// Emits a linear layer's outputs. Two neighbouring outputs that read the same inputs are
/// computed together when `lane_safe` says both accumulators provably fit a lane (from the
/// actual weights and the input range, or for committed weights from the architecture): one
/// field element holds `(acc_a + 2^31) + 2^32 (acc_b + 2^31)`, so one load, one multiply by
/// `w_a + 2^32 w_b` and one add serve two multiply-accumulates, and `u32split` separates
/// them. Otherwise each output is computed alone.
pub(super) fn emit_neurons(
    e: &mut Emitter,
    consts: &mut Consts,
    neurons: &[Neuron],
    lo: i64,
    hi: i64,
    lane_safe: &dyn Fn(&Neuron) -> bool,
    packed: &mut usize,
) {
    let mut code = String::new();
    let mut k = 0;
    while k < neurons.len() {
        code.clear();
        let a = &neurons[k];
        let pair = neurons.get(k + 1).filter(|b| {
            b.taps.len() == a.taps.len()
                && b.taps.iter().zip(&a.taps).all(|(x, y)| x.0 == y.0)
                && lane_safe(a)
                && lane_safe(b)
        });
        let ops = match pair {
            Some(b) => {
                *packed += 2;
                k += 2;
                packed_acc_code(&mut code, consts, a, b)
                    + store_pair_code(
                        &mut code,
                        consts,
                        (&a.requant, a.out),
                        (&b.requant, b.out),
                        lo,
                        hi,
                    )
            }
            None => {
                k += 1;
                single_acc_code(&mut code, consts, a)
                    + store_one_code(&mut code, consts, &a.requant, a.out, lo, hi)
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
pub(super) fn emit_conv_pool(
    e: &mut Emitter,
    consts: &mut Consts,
    c: &PooledConv,
    packed: &mut usize,
) {
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
                        ops +=
                            packed_acc_code(&mut code, consts, c.at(co, y, x), c.at(co + 1, y, x));
                        if t > 0 {
                            // [a, b, A, B] -> [max(a, A), max(b, B)]
                            code.push_str(" movup.2 u32max movdn.2 u32max swap");
                            ops += 3 + 2 * U32_MINMAX_OPS;
                        }
                    }
                    ops += store_pair_code(
                        &mut code,
                        consts,
                        (requant(co), out(co)),
                        (requant(co + 1), out(co + 1)),
                        c.lo,
                        c.hi,
                    );
                    *packed += 2;
                    co += 2;
                } else {
                    for (t, &(y, x)) in positions.iter().enumerate() {
                        ops += single_acc_code(&mut code, consts, c.at(co, y, x));
                        let _ = write!(code, " add.{half}");
                        ops += 2;
                        if t > 0 {
                            code.push_str(" u32max");
                            ops += U32_MINMAX_OPS;
                        }
                    }
                    let _ = write!(code, " sub.{half}");
                    ops += 2 + store_one_code(&mut code, consts, requant(co), out(co), c.lo, c.hi);
                    co += 1;
                }
                e.unit(&code, ops);
            }
        }
    }
}

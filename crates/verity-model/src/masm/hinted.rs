//! A convolution checked instead of computed: its accumulators are supplied (with the private
//! input, or by the prover from the advice map when the weights are committed), and the
//! program checks all of them at once with a random linear combination (Freivalds'
//! technique), then max-pools and requantizes them.
//!
//! Why: a 3x3 convolution reuses each weight at every position, so computing it costs a
//! multiply-accumulate per tap (about 5 cycles and 7 chiplet rows each in Miden), while
//! checking it costs work proportional to its inputs, outputs and weights. For the digits
//! CNN that is ~19k cycles of taps and pooling against ~8k.
//!
//! The check. Let `h` be the supplied values, `acc + 2^31` laid out `[c_out][y][x]`, and ρ a
//! challenge in Miden's quadratic extension field. With `N = H W` positions per channel,
//! `β = ρ^N`, and Horner weights (`horner_eval_base` gives the first of `n` values the power
//! `n - 1`), the program evaluates
//!
//!   ρ^m Σ_j ρ^(C N - 1 - j) h_j  =  ρ^m P B + Σ_(ci, k) V_(ci,k) ρ^(off_k + m) T_(ci,k)
//!
//! where `P = Σ_idx ρ^(N-1-idx)`, `B = Σ_co β^(C-1-co) (bias_co + 2^31)`, `V_(ci,k) =
//! Σ_co β^(C-1-co) w[co][ci][k]`, and `T_(ci,k)` is the Horner sum of input plane `ci` over the
//! pixels kernel tap `k` reads (all of them but the rows and columns it would read past the
//! image: whole-plane sums minus edge rows and columns, plus their corners). A tap that reads
//! pixel `idx` for output `idx - off_k` (stride 1 and same-size output make this a shift of
//! the flat index) turns the output's weight into the input's times `ρ^off_k`; `m` makes every
//! exponent non-negative. The left side is a polynomial in ρ whose coefficients are the
//! supplied values; the right side, the same polynomial with the true accumulators. If any
//! supplied value is wrong their difference is a non-zero polynomial of degree below
//! `C N + m`, which vanishes at a random ρ with probability at most `(C N + m) / p^2`
//! (about 2^-119 for the digits CNN).
//!
//! ρ is Fiat-Shamir: the first two elements of the private data's commitment, which Verity's
//! loader checked and left at [`COMMITMENT_ADDR`]. The commitment hashes the input and the
//! supplied values together, so neither can be chosen after ρ; a client grinding for a
//! commitment that passes a false value tries at 2^-119 a hash.
//!
//! With committed weights the client does not know the weights, so the prover supplies the
//! accumulators, in the advice map, and ρ is taken from their hash together with the input's
//! and the model's commitments instead (see [`prover_hints_code`]); the weights and biases in
//! the check are then the committed ones, read from memory.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::neurons::Consts;
use super::{Emitter, INPUT_ADDR, ONE_ADDR, STORE_OPS, to_felt, wide_felt};
use crate::onnx::Window;
use crate::quant::Requant;

/// Where Verity's loader leaves the private data's commitment (must equal
/// `verity_vm::PRIVATE_COMMITMENT_ADDR`; a test checks it). Its first two elements are ρ.
pub const COMMITMENT_ADDR: u64 = INPUT_ADDR - 4;
/// Where a committed-weights program keeps its model commitment (its first public input) when
/// a check's accumulators come from the prover: the challenge binds it.
pub(super) const MODEL_ADDR: u64 = ONE_ADDR - 8;
/// Where such a program keeps the challenge of the layer it is checking (ρ is the first two
/// elements; the last checked layer's stays).
pub const RHO_ADDR: u64 = ONE_ADDR - 4;
/// Where accumulators the prover supplies are copied: above the largest private data, below
/// the scratch memory, with room for [`MAX_PRIVATE_ELEMENTS`] of them.
pub(super) const PROVER_HINTS_ADDR: u64 = INPUT_ADDR + (1 << 20);
/// Scratch memory for extension-field values (two elements each): above the largest private
/// data ([`MAX_PRIVATE_ELEMENTS`] from [`INPUT_ADDR`]), below [`MODEL_ADDR`]; a check that would
/// need more is not made (the convolution is computed instead).
const SCRATCH: u64 = INPUT_ADDR + (1 << 24);
/// Largest private data Verity's loader takes, in elements (must equal
/// `verity_vm::MAX_PRIVATE_WORDS * 4`; a test checks it): a convolution whose accumulators
/// would not fit after the input is computed instead.
pub const MAX_PRIVATE_ELEMENTS: u64 = 65_536;
/// The offset that makes an accumulator a u32 for comparisons.
const HALF: i64 = 1 << 31;

/// Whether a convolution over `window` can be checked this way: stride 1 and an output the
/// size of its input (so a tap is a shift of the flat index), planes of whole groups of eight
/// (streamed), and a kernel no larger than the image.
pub(super) fn checkable(window: &Window) -> bool {
    window.stride_h == 1
        && window.stride_w == 1
        && window.out_h() == window.input.h
        && window.out_w() == window.input.w
        && (window.input.h * window.input.w).is_multiple_of(8)
        && window.kh <= window.input.h
        && window.kw <= window.input.w
}

/// A convolution followed by a max pooling, checked from supplied accumulators.
pub(super) struct CheckedConv<'a> {
    pub(super) window: &'a Window,
    pub(super) c_out: usize,
    /// `[c_out][c_in][kh][kw]`.
    pub(super) weights: &'a [i64],
    pub(super) bias: &'a [i64],
    pub(super) requant: &'a [Requant],
    pub(super) lo: i64,
    pub(super) hi: i64,
    pub(super) pool: &'a Window,
    pub(super) in_base: u64,
    /// Where the supplied accumulators are: in the private data, or where the prover's are
    /// copied ([`PROVER_HINTS_ADDR`]).
    pub(super) hints: u64,
    pub(super) out_base: u64,
    /// Whether the accumulators come from the prover (committed weights), not with the input:
    /// the check then copies them from the advice map and derives its own challenge (see
    /// [`prover_hints_code`]). `Some(first)`: whether this is the first such layer, which asks
    /// for the entry.
    pub(super) from_prover: Option<bool>,
}

/// A value the program pushes: from memory or an immediate.
#[derive(Clone, Copy)]
enum Item {
    Addr(u64),
    Const(u64),
}

/// Code over extension-field values kept in scratch memory, each op loading its operands and
/// storing its result. Counts cycles (rounded up) as it goes.
struct Ext {
    /// The code so far, one unit per operation (the emitter splits procedures between them).
    units: Vec<(String, usize)>,
    code: String,
    ops: usize,
    next: u64,
    powers: BTreeMap<u64, u64>,
}

impl Ext {
    /// Values over ρ = the two elements at `rho`.
    fn new(rho: u64) -> Ext {
        Ext {
            units: Vec::new(),
            code: String::new(),
            ops: 0,
            next: SCRATCH,
            // ρ^0 = (1, 0) is kept for `horner_eval_base`; ρ^1 is at `rho` (the private data's
            // commitment, or the challenge derived from the prover's accumulators).
            powers: BTreeMap::from([(0, ONE_ADDR), (1, rho)]),
        }
    }

    fn slot(&mut self) -> u64 {
        let s = self.next;
        self.next += 2;
        s
    }

    /// `[] -> [v0, v1]`.
    fn load(&mut self, s: u64) {
        let _ = write!(self.code, " mem_load.{} mem_load.{s}", s + 1);
        self.ops += 4;
    }

    /// `[v0, v1] -> []`, into a new slot; ends the operation.
    fn store(&mut self) -> u64 {
        let s = self.slot();
        let _ = write!(self.code, " mem_store.{s} mem_store.{}", s + 1);
        self.ops += 2 * STORE_OPS;
        self.end_unit();
        s
    }

    /// Appends `code` as a unit of its own.
    fn unit(&mut self, code: &str, ops: usize) {
        self.code.push_str(code);
        self.ops += ops;
        self.end_unit();
    }

    fn end_unit(&mut self) {
        let code = std::mem::take(&mut self.code);
        self.units
            .push((format!("   {code}\n"), std::mem::take(&mut self.ops)));
    }

    fn binary(&mut self, a: u64, b: u64, op: &str, ops: usize) -> u64 {
        self.load(a);
        self.load(b);
        let _ = write!(self.code, " {op}");
        self.ops += ops;
        self.store()
    }

    fn mul(&mut self, a: u64, b: u64) -> u64 {
        self.binary(a, b, "ext2mul", 3)
    }

    fn add(&mut self, a: u64, b: u64) -> u64 {
        self.binary(a, b, "ext2add", 5)
    }

    /// `a - b`.
    fn sub(&mut self, a: u64, b: u64) -> u64 {
        self.binary(a, b, "ext2sub", 7)
    }

    /// `a * mem[addr]`, a base-field element.
    fn scale(&mut self, a: u64, addr: u64) -> u64 {
        self.load(a);
        // [x, a0, a1] -> [x a0, x a1]
        let _ = write!(
            self.code,
            " mem_load.{addr} dup movup.2 mul movdn.2 mul swap"
        );
        self.ops += 2 + 6;
        self.store()
    }

    /// ρ^e, by squaring (each power computed once).
    fn pow(&mut self, e: u64) -> u64 {
        if let Some(s) = self.powers.get(&e) {
            return *s;
        }
        let half = self.pow(e / 2);
        let mut s = self.mul(half, half);
        if e % 2 == 1 {
            let rho = self.pow(1);
            s = self.mul(s, rho);
        }
        self.powers.insert(e, s);
        s
    }

    /// Horner sum at `alpha` of `groups * 8` values in memory from `base` (8-aligned).
    fn horner_region(&mut self, alpha: u64, base: u64, groups: usize) -> u64 {
        let _ = write!(
            self.code,
            " push.0 push.0 push.{alpha} push.{base} padw padw padw"
        );
        for _ in 0..groups {
            self.code.push_str(" mem_stream horner_eval_base");
        }
        self.code.push_str(" dropw dropw dropw drop drop");
        self.ops += 4 + 12 + 2 * groups + 14;
        self.store()
    }

    /// Horner sum at `alpha` of `items`, the first with the highest power (zeros before it
    /// fill the first group of eight, which changes nothing).
    fn horner_items(&mut self, alpha: u64, items: &[Item]) -> u64 {
        let mut all = vec![Item::Const(0); items.len().next_multiple_of(8) - items.len()];
        all.extend_from_slice(items);
        // [pad, 0, alpha, acc0, acc1] below the eight values.
        let _ = write!(self.code, " push.0 push.0 push.{alpha} push.0 padw");
        self.ops += 4 + 4;
        for group in all.chunks(8) {
            // The group's first value ends on top.
            for item in group.iter().rev() {
                match item {
                    Item::Addr(a) => {
                        let _ = write!(self.code, " mem_load.{a}");
                        self.ops += 2;
                    }
                    Item::Const(v) => {
                        let _ = write!(self.code, " push.{v}");
                        self.ops += 1;
                    }
                }
            }
            self.code.push_str(" horner_eval_base dropw dropw");
            self.ops += 1 + 8;
        }
        self.code.push_str(" dropw drop drop");
        self.ops += 6;
        self.store()
    }

    /// Fails unless `a == b`.
    fn assert_eq(&mut self, a: u64, b: u64) {
        self.load(a);
        self.load(b);
        self.code.push_str(" movup.2 assert_eq assert_eq");
        self.ops += 5;
        self.end_unit();
    }
}

/// Emits the check of the supplied accumulators, then the pooled, requantized outputs; or
/// nothing, returning false, when the check would need more scratch memory than there is.
pub(super) fn emit_checked_conv(e: &mut Emitter, consts: &mut Consts, c: &CheckedConv) -> bool {
    let w = c.window;
    let (ci_n, h, wd) = (w.input.c, w.input.h, w.input.w);
    let n = (h * wd) as u64;
    let (pt, pl) = (w.pads[0] as i64, w.pads[1] as i64);
    let taps: Vec<(usize, usize, i64, i64)> = (0..w.kh)
        .flat_map(|ky| (0..w.kw).map(move |kx| (ky, kx, ky as i64 - pt, kx as i64 - pl)))
        .collect();
    let off = |sy: i64, sx: i64| sy * wd as i64 + sx;
    let m = taps
        .iter()
        .map(|&(_, _, sy, sx)| -off(sy, sx))
        .max()
        .unwrap_or(0)
        .max(0);

    let committed_before = match consts {
        Consts::Committed(p) => p.values.len(),
        Consts::Immediate => 0,
    };
    let mut x = match c.from_prover {
        Some(first) => {
            let mut x = Ext::new(RHO_ADDR);
            let (code, ops) = prover_hints_code(c.c_out * n as usize, first, c.hints);
            x.unit(&code, ops);
            x
        }
        None => Ext::new(COMMITMENT_ADDR),
    };
    let rho = x.pow(1);
    let beta = x.pow(n);
    let rho_w = x.pow(wd as u64);
    let lhs = x.horner_region(rho, c.hints, c.c_out * (n as usize) / 8);
    let ones = vec![Item::Const(1); n as usize];
    let p = x.horner_items(rho, &ones);
    let biases: Vec<Item> = c.bias.iter().map(|b| item(consts, b + HALF)).collect();
    let b = x.horner_items(beta, &biases);
    let rho_m = x.pow(m as u64);
    let pb = x.mul(p, b);
    let mut rhs = x.mul(rho_m, pb);
    for ci in 0..ci_n {
        let plane = c.in_base + ci as u64 * n;
        let at = |r: usize, col: usize| plane + (r * wd + col) as u64;
        let whole = x.horner_region(rho, plane, n as usize / 8);
        let mut rows: BTreeMap<i64, u64> = BTreeMap::new();
        let mut cols: BTreeMap<usize, u64> = BTreeMap::new();
        let mut pixels: BTreeMap<(usize, usize), u64> = BTreeMap::new();
        for &(ky, kx, sy, sx) in &taps {
            let v: Vec<Item> = (0..c.c_out)
                .map(|co| {
                    item(
                        consts,
                        c.weights[((co * ci_n + ci) * w.kh + ky) * w.kw + kx],
                    )
                })
                .collect();
            if v.iter().all(|i| matches!(i, Item::Const(0))) {
                continue;
            }
            // The rows and columns this tap reads past the image, excluded from the plane.
            let ex_rows: Vec<usize> = match sy {
                s if s > 0 => (0..s as usize).collect(),
                s if s < 0 => (h - (-s) as usize..h).collect(),
                _ => Vec::new(),
            };
            let ex_cols: Vec<usize> = match sx {
                s if s > 0 => (0..s as usize).collect(),
                s if s < 0 => (wd - (-s) as usize..wd).collect(),
                _ => Vec::new(),
            };
            let mut t = whole;
            if !ex_rows.is_empty() {
                let rows_sum = match rows.get(&sy) {
                    Some(s) => *s,
                    None => {
                        // Streamed when the rows are whole groups of eight, else gathered.
                        let mut rows_sum = |first: usize, count: usize| {
                            if (first * wd).is_multiple_of(8) && (count * wd).is_multiple_of(8) {
                                x.horner_region(rho, at(first, 0), count * wd / 8)
                            } else {
                                let items: Vec<Item> = (first * wd..(first + count) * wd)
                                    .map(|i| Item::Addr(plane + i as u64))
                                    .collect();
                                x.horner_items(rho, &items)
                            }
                        };
                        let s = if sy > 0 {
                            // The first rows: their Horner sum, shifted past the rest.
                            let k = sy as usize;
                            let head = rows_sum(0, k);
                            let shift = x.pow(n - (k * wd) as u64);
                            x.mul(head, shift)
                        } else {
                            let k = (-sy) as usize;
                            rows_sum(h - k, k)
                        };
                        rows.insert(sy, s);
                        s
                    }
                };
                t = x.sub(t, rows_sum);
            }
            for &col in &ex_cols {
                let col_sum = match cols.get(&col) {
                    Some(s) => *s,
                    None => {
                        let items: Vec<Item> = (0..h).map(|r| Item::Addr(at(r, col))).collect();
                        let g = x.horner_items(rho_w, &items);
                        let shift = x.pow((wd - 1 - col) as u64);
                        let s = x.mul(g, shift);
                        cols.insert(col, s);
                        s
                    }
                };
                t = x.sub(t, col_sum);
            }
            for &r in &ex_rows {
                for &col in &ex_cols {
                    let px = match pixels.get(&(r, col)) {
                        Some(s) => *s,
                        None => {
                            let power = x.pow(n - 1 - (r * wd + col) as u64);
                            let s = x.scale(power, at(r, col));
                            pixels.insert((r, col), s);
                            s
                        }
                    };
                    t = x.add(t, px);
                }
            }
            let v = x.horner_items(beta, &v);
            let shift = x.pow((off(sy, sx) + m) as u64);
            let shifted = x.mul(shift, t);
            let term = x.mul(v, shifted);
            rhs = x.add(rhs, term);
        }
    }
    let lhs = x.mul(rho_m, lhs);
    x.assert_eq(lhs, rhs);
    if x.next > MODEL_ADDR {
        // The convolution is computed instead: drop the committed constants this check took,
        // which the program would otherwise load and hash for nothing.
        if let Consts::Committed(p) = consts {
            p.values.truncate(committed_before);
        }
        return false;
    }
    for (code, ops) in &x.units {
        e.unit(code, *ops);
    }

    // Max pooling of the checked values (u32 comparisons: each is acc + 2^31), then one
    // requantization per pooled output.
    let (ph, pw) = (c.pool.out_h(), c.pool.out_w());
    let mut code = String::new();
    for co in 0..c.c_out {
        for py in 0..ph {
            for px in 0..pw {
                code.clear();
                let mut ops = 0;
                for (k, (_, _, y, xx)) in c.pool.taps(py, px).enumerate() {
                    let a = c.hints + ((co * h + y) * wd + xx) as u64;
                    let _ = write!(code, " mem_load.{a}");
                    ops += 2;
                    if k > 0 {
                        // [b, a] -> [max(a, b)]
                        code.push_str(" dup.1 dup.1 u32lt cswap drop");
                        ops += 7;
                    }
                }
                ops += consts.requant(&mut code, &c.requant[co], c.lo, c.hi, HALF.into());
                let out = c.out_base + ((co * ph + py) * pw + px) as u64;
                let _ = writeln!(code, " mem_store.{out}");
                e.unit(&format!("   {code}"), ops + STORE_OPS);
            }
        }
    }
    true
}

/// A constant of the check: an immediate, or for committed weights a committed parameter read
/// from memory (an architecture's program must not depend on its value).
fn item(consts: &mut Consts, v: i64) -> Item {
    match consts {
        Consts::Immediate => Item::Const(to_felt(v)),
        Consts::Committed(p) => Item::Addr(p.slot(wide_felt(v.into()))),
    }
}

/// `[] -> []`: copies `count` accumulators the prover supplies to `hints` and sets ρ.
///
/// With committed weights the client cannot supply the accumulators (it does not know the
/// weights), so the prover does, in the advice map under `K = hash(C, M)` (C the private
/// input's commitment, M the model commitment), every checked layer's after the last's. The
/// program copies a layer's into memory while hashing them (digest `A`) and takes ρ from
/// `hash(A, K)`: the challenge is fixed only after the accumulators, the input and the weights
/// are, so none of them can be chosen to fit it.
fn prover_hints_code(count: usize, first: bool, hints: u64) -> (String, usize) {
    // Whole words, an even number of them: the copy hashes exactly the entry the provider
    // builds (`checkable` makes every plane a multiple of eight).
    debug_assert!(
        count.is_multiple_of(8),
        "prover accumulators in whole double words"
    );
    let words = count.div_ceil(4);
    let ask = if first { " adv.push_mapval" } else { "" };
    let code = format!(
        "    padw mem_loadw_le.{MODEL_ADDR} padw mem_loadw_le.{COMMITMENT_ADDR} hmerge{ask} \
         push.{hints} push.{words} exec.mem::pipe_words_to_memory swapw.2 dropw dropw movup.4 drop \
         hmerge mem_storew_le.{RHO_ADDR} dropw\n"
    );
    // Loads and merges (48), the copy (`pipe_words_to_memory`: at most 60 + 9 per two
    // words), the digest and ρ (36).
    (code, 48 + 60 + 9 * words.div_ceil(2) + 36)
}

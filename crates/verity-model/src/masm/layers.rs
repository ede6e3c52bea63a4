//! Emitting a model's layers, one after another, from the output code in [`super::neurons`].

use std::fmt::Write;

use super::INPUT_ADDR;
use super::hinted::{
    CheckedConv, MAX_PRIVATE_ELEMENTS, PROVER_HINTS_ADDR, checkable, emit_checked_conv,
};
use super::neurons::{Consts, LANE_LIMIT, Neuron, PooledConv, emit_conv_pool, emit_neurons};
use super::{CMP_OFFSET, Emitter, STORE_OPS, U32_MINMAX_OPS};
use crate::quant::QLayer;

/// Dense layers of committed weights with at least this many multiply-accumulates are
/// computed in loops. Smaller ones are straight-line code, about a quarter fewer cycles per
/// tap (no loop bookkeeping) for a program that stays small anyway.
const LOOP_MIN_MACS: usize = 8192;

/// Emits the layers one after another: each reads its input at `in_base` (values bounded by
/// `in_bound` in magnitude) and writes its outputs from `out_base`.
pub(super) struct LayerWriter<'a> {
    pub(super) e: &'a mut Emitter,
    pub(super) consts: Consts<'a>,
    pub(super) in_base: u64,
    pub(super) in_bound: i64,
    pub(super) out_base: u64,
    /// Outputs computed two to a field element so far.
    pub(super) packed: usize,
    /// Where the next checked convolution's accumulators are in the private data, when the
    /// program may take them from there (a private input and immediate weights).
    pub(super) hints: Option<u64>,
    /// Whether the last convolution was checked from supplied accumulators.
    pub(super) checked: bool,
    /// Where the next checked convolution's accumulators go when the prover supplies them
    /// (committed weights and a private input; see [`super::hinted`]).
    pub(super) prover_hints: Option<u64>,
}

impl LayerWriter<'_> {
    /// A dense layer; returns its output length.
    pub(super) fn dense(&mut self, layer: &QLayer) -> usize {
        let QLayer::Dense {
            n_in,
            n_out,
            weights,
            bias,
            requant,
            lo,
            hi,
        } = layer
        else {
            unreachable!("called on a dense layer")
        };
        let neurons: Vec<Neuron> = (0..*n_out)
            .map(|j| Neuron {
                taps: (0..*n_in)
                    .map(|i| (self.in_base + i as u64, weights[j * n_in + i]))
                    .collect(),
                bias: bias[j],
                requant: requant[j],
                out: self.out_base + j as u64,
            })
            .collect();
        // A large committed layer loops over its weights: straight-line code would hold an
        // address per tap and put an MNIST-size architecture over the publication limit.
        let looped = n_in * n_out >= LOOP_MIN_MACS;
        if let Consts::Committed(p) = &mut self.consts {
            p.looped = looped;
        }
        self.neurons(&neurons, *lo, *hi);
        if let Consts::Committed(p) = &mut self.consts {
            p.looped = false;
        }
        layer.output_len()
    }

    pub(super) fn neurons(&mut self, neurons: &[Neuron], lo: i64, hi: i64) {
        let in_bound = self.in_bound;
        let committed = matches!(self.consts, Consts::Committed(_));
        emit_neurons(
            self.e,
            &mut self.consts,
            neurons,
            lo,
            hi,
            &|n| lane_safe(committed, n, in_bound),
            &mut self.packed,
        );
        self.in_bound = hi.max(-lo);
    }

    /// A convolution, fused with the max pooling `next` when it can be (see
    /// [`emit_conv_pool`]): then returns the pooled output length.
    pub(super) fn conv(&mut self, layer: &QLayer, next: Option<&QLayer>) -> Option<usize> {
        let QLayer::Conv {
            window,
            c_out,
            weights,
            bias,
            requant,
            lo,
            hi,
        } = layer
        else {
            unreachable!("called on a convolution")
        };
        // Position-major, channel-minor: neighbouring channels at one position read the same
        // inputs, so they can share packed accumulators.
        let (oh, ow) = (window.out_h(), window.out_w());
        let mut neurons = Vec::with_capacity(c_out * oh * ow);
        for oy in 0..oh {
            for ox in 0..ow {
                for co in 0..*c_out {
                    neurons.push(Neuron {
                        taps: window
                            .conv_taps(co, oy, ox)
                            .map(|(w, i)| (self.in_base + i as u64, weights[w]))
                            .collect(),
                        bias: bias[co],
                        requant: requant[co],
                        out: self.out_base + ((co * oh + oy) * ow + ox) as u64,
                    });
                }
            }
        }
        // Followed by a max pooling of whole, disjoint windows over its output, with every
        // accumulator within a lane: one pass.
        let committed = matches!(self.consts, Consts::Committed(_));
        match next {
            Some(next @ QLayer::MaxPool { window: pool })
                if pool.input
                    == (crate::Shape {
                        c: *c_out,
                        h: oh,
                        w: ow,
                    })
                    && pool.stride_h == pool.kh
                    && pool.stride_w == pool.kw
                    && neurons
                        .iter()
                        .all(|n| lane_safe(committed, n, self.in_bound)) =>
            {
                // Checked from supplied accumulators where it can be (then the end of
                // those accumulators), else computed: the client supplies them with the input
                // (immediate weights), or the prover does (committed weights).
                let (supplied, base, from_prover) = match (&self.consts, self.hints) {
                    (Consts::Immediate, Some(h)) => (Some(h), INPUT_ADDR, None),
                    (Consts::Committed(_), _) => (
                        self.prover_hints,
                        PROVER_HINTS_ADDR,
                        Some(self.prover_hints == Some(PROVER_HINTS_ADDR)),
                    ),
                    _ => (None, INPUT_ADDR, None),
                };
                let checked = match supplied {
                    Some(hints)
                        if checkable(window)
                            && hints + neurons.len() as u64 - base <= MAX_PRIVATE_ELEMENTS =>
                    {
                        let check = CheckedConv {
                            window,
                            c_out: *c_out,
                            weights,
                            bias,
                            requant,
                            lo: *lo,
                            hi: *hi,
                            pool,
                            in_base: self.in_base,
                            hints,
                            out_base: self.out_base,
                            from_prover,
                        };
                        emit_checked_conv(self.e, &mut self.consts, &check)
                            .then_some(hints + neurons.len() as u64)
                    }
                    _ => None,
                };
                match checked {
                    Some(end) => {
                        if from_prover.is_some() {
                            self.prover_hints = Some(end.next_multiple_of(8));
                        } else {
                            self.hints = Some(end.next_multiple_of(8));
                        }
                        self.checked = true;
                    }
                    None => emit_conv_pool(
                        self.e,
                        &mut self.consts,
                        &PooledConv {
                            neurons: &neurons,
                            channels: *c_out,
                            width: ow,
                            pool,
                            lo: *lo,
                            hi: *hi,
                            out_base: self.out_base,
                        },
                        &mut self.packed,
                    ),
                }
                self.in_bound = (*hi).max(-*lo);
                Some(next.output_len())
            }
            _ => {
                self.neurons(&neurons, *lo, *hi);
                None
            }
        }
    }

    /// A max or average pooling over `window`; returns its output length.
    pub(super) fn pool(&mut self, layer: &QLayer, window: &crate::onnx::Window) -> usize {
        let mut code = String::new();
        let mut o = 0u64;
        for ch in 0..window.input.c {
            for oy in 0..window.out_h() {
                for ox in 0..window.out_w() {
                    code.clear();
                    let mut ops = 0;
                    let addrs = window
                        .pool_taps(ch, oy, ox)
                        .map(|i| self.in_base + i as u64);
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
                            self.in_bound = (*hi).max(-*lo);
                            code.push_str(" push.0");
                            ops += 1;
                            // Every tap's weight is 1, in any mode: part of the architecture.
                            for a in addrs {
                                let _ = write!(code, " mem_load.{a} add");
                                ops += 3;
                            }
                            let r = &requant[oy * window.out_w() + ox];
                            ops += self.consts.requant(&mut code, r, *lo, *hi, 0);
                        }
                        _ => unreachable!("called on a pooling layer"),
                    }
                    let _ = writeln!(code, " mem_store.{}", self.out_base + o);
                    self.e.unit(&format!("   {code}"), ops + STORE_OPS);
                    o += 1;
                }
            }
        }
        layer.output_len()
    }

    /// A Relu over `n` values; returns `n`.
    pub(super) fn relu(&mut self, n: usize) -> usize {
        for k in 0..n as u64 {
            let code = format!(
                "    mem_load.{} add.{CMP_OFFSET} u32max.{CMP_OFFSET} sub.{CMP_OFFSET} mem_store.{}\n",
                self.in_base + k,
                self.out_base + k
            );
            self.e.unit(&code, 6 + U32_MINMAX_OPS + STORE_OPS);
        }
        n
    }
}

/// Whether `n`'s accumulator provably fits a 32-bit lane on inputs bounded by `in_bound`:
/// from its weights, or, for committed weights (which the program must not depend on), from
/// the architecture and the bounds every committed model is held to.
fn lane_safe(committed: bool, n: &Neuron, in_bound: i64) -> bool {
    let bound = if committed {
        crate::quant::committed_acc_bound(n.taps.len(), in_bound)
    } else {
        n.bound(in_bound)
    };
    bound < LANE_LIMIT
}

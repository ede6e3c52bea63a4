//! The float model as read from ONNX: shapes, windows, layers, and the float forward pass
//! used to check a quantized model against it.

use tract_onnx::pb;

use super::MAX_TENSOR_ELEMENTS;
use crate::error::ModelError;

/// An activation's shape without the batch dimension: channels, height, width (a flat
/// vector of n values is `n x 1 x 1`). Memory order is ONNX's row-major NCHW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape {
    pub fn flat(n: usize) -> Shape {
        Shape { c: n, h: 1, w: 1 }
    }
    /// Element count (saturating: a hostile shape reads as too large, never overflows).
    pub fn len(&self) -> usize {
        self.c.saturating_mul(self.h).saturating_mul(self.w)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A 2-D window (convolution kernel or pooling) over an input of shape `input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    pub input: Shape,
    pub kh: usize,
    pub kw: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    /// Padding: top, left, bottom, right.
    pub pads: [usize; 4],
}

impl Window {
    pub fn out_h(&self) -> usize {
        (self.input.h + self.pads[0] + self.pads[2] - self.kh) / self.stride_h + 1
    }
    pub fn out_w(&self) -> usize {
        (self.input.w + self.pads[1] + self.pads[3] - self.kw) / self.stride_w + 1
    }
    /// The input positions `(y, x)` under the window of output `(oy, ox)`, padding skipped.
    pub fn taps(
        &self,
        oy: usize,
        ox: usize,
    ) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
        (0..self.kh).flat_map(move |ky| {
            (0..self.kw).filter_map(move |kx| {
                let y = (oy * self.stride_h + ky).checked_sub(self.pads[0])?;
                let x = (ox * self.stride_w + kx).checked_sub(self.pads[1])?;
                (y < self.input.h && x < self.input.w).then_some((ky, kx, y, x))
            })
        })
    }
    /// For a convolution over this window, the `(weight index, input index)` pairs output
    /// channel `co` sums at `(oy, ox)`: input channels outer, kernel taps inner, padding
    /// skipped. Weights are laid out `[c_out][c_in][kh][kw]`, inputs `[c][h][w]`.
    pub fn conv_taps(
        &self,
        co: usize,
        oy: usize,
        ox: usize,
    ) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (ci_n, ih, iw) = (self.input.c, self.input.h, self.input.w);
        (0..ci_n).flat_map(move |ci| {
            self.taps(oy, ox).map(move |(ky, kx, y, x)| {
                (
                    ((co * ci_n + ci) * self.kh + ky) * self.kw + kx,
                    (ci * ih + y) * iw + x,
                )
            })
        })
    }

    /// For pooling over this window, the input indices under output `(oy, ox)` of channel `ch`.
    pub fn pool_taps(&self, ch: usize, oy: usize, ox: usize) -> impl Iterator<Item = usize> + '_ {
        let (ih, iw) = (self.input.h, self.input.w);
        self.taps(oy, ox)
            .map(move |(_, _, y, x)| (ch * ih + y) * iw + x)
    }

    /// Pools `x`: `f` gets each window's values and the output's position within its
    /// channel; outputs are channel-major, then rows, then columns.
    pub fn pool<T: Copy>(&self, x: &[T], f: impl Fn(&[T], usize) -> T) -> Vec<T> {
        let (oh, ow) = (self.out_h(), self.out_w());
        let mut out = Vec::with_capacity(self.input.c * oh * ow);
        for ch in 0..self.input.c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let vals: Vec<T> = self.pool_taps(ch, oy, ox).map(|i| x[i]).collect();
                    out.push(f(&vals, oy * ow + ox));
                }
            }
        }
        out
    }

    pub(super) fn check(&self, node: &str) -> Result<(), ModelError> {
        self.validate().map_err(|reason| ModelError::Structure {
            node: node.into(),
            reason,
        })
    }

    /// The window is well formed and small enough to compile.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |reason: String| reason;
        if self.input.is_empty() || self.input.len() > MAX_TENSOR_ELEMENTS {
            return Err(bad("input size out of range".into()));
        }
        if self.kh == 0 || self.kw == 0 || self.stride_h == 0 || self.stride_w == 0 {
            return Err(bad("kernel and strides must be positive".into()));
        }
        if self.kh > 64 || self.kw > 64 || self.pads.iter().any(|p| *p >= 64) {
            return Err(bad("kernels and padding are limited to 64".into()));
        }
        if self.input.h + self.pads[0] + self.pads[2] < self.kh
            || self.input.w + self.pads[1] + self.pads[3] < self.kw
        {
            return Err(bad("the kernel is larger than the padded input".into()));
        }
        Ok(())
    }
}

/// One layer of the float model, as read from ONNX.
#[derive(Debug, Clone)]
pub enum FloatLayer {
    /// `y = W x + b`; `weights[j * n_in + i]` is the weight from input i to output j.
    Dense {
        n_in: usize,
        n_out: usize,
        weights: Vec<f32>,
        bias: Vec<f32>,
    },
    /// 2-D convolution; `weights[((co * c_in + ci) * kh + ky) * kw + kx]`.
    Conv {
        window: Window,
        c_out: usize,
        weights: Vec<f32>,
        bias: Vec<f32>,
    },
    MaxPool {
        window: Window,
    },
    AvgPool {
        window: Window,
        count_include_pad: bool,
    },
    Relu,
    /// A change of shape only (Flatten, Reshape): memory order is unchanged.
    Reshape {
        to: Shape,
    },
}

impl FloatLayer {
    /// For a Dense or Conv layer: outputs (channels), weights per output, weights, biases.
    pub fn linear(&self) -> Option<(usize, usize, &[f32], &[f32])> {
        match self {
            FloatLayer::Dense {
                n_in,
                n_out,
                weights,
                bias,
            } => Some((*n_out, *n_in, weights, bias)),
            FloatLayer::Conv {
                window,
                c_out,
                weights,
                bias,
            } => Some((
                *c_out,
                window.input.c * window.kh * window.kw,
                weights,
                bias,
            )),
            _ => None,
        }
    }

    /// The shape this layer produces from `input`.
    pub fn output_shape(&self, input: Shape) -> Shape {
        match self {
            FloatLayer::Dense { n_out, .. } => Shape::flat(*n_out),
            FloatLayer::Conv { window, c_out, .. } => Shape {
                c: *c_out,
                h: window.out_h(),
                w: window.out_w(),
            },
            FloatLayer::MaxPool { window } | FloatLayer::AvgPool { window, .. } => Shape {
                c: window.input.c,
                h: window.out_h(),
                w: window.out_w(),
            },
            FloatLayer::Relu => input,
            FloatLayer::Reshape { to } => *to,
        }
    }
}

/// A model as read from ONNX: its input, its layers up to the logits, and class labels.
#[derive(Debug, Clone)]
pub struct FloatModel {
    pub name: String,
    /// The ONNX file's bytes' BLAKE3 hash, hex.
    pub source_hash: String,
    pub input_name: String,
    /// The input's dimensions as ONNX declares them, batch dimension set to 1.
    pub input_dims: Vec<usize>,
    pub input: Shape,
    /// Layers with the ONNX node each came from.
    pub layers: Vec<(String, FloatLayer)>,
    pub logits_name: String,
    pub labels: Option<Vec<String>>,
    /// The decoded file, kept to run the float reference.
    pub(crate) proto: pb::ModelProto,
}

impl FloatModel {
    pub fn output_shape(&self) -> Shape {
        self.layers
            .iter()
            .fold(self.input, |s, (_, l)| l.output_shape(s))
    }

    /// Runs the float model (Verity's own interpretation, in f64) on one input, returning
    /// every layer's output. Used to choose quantization scales; `reference` cross-checks it
    /// against tract.
    pub fn forward(&self, x: &[f32]) -> Vec<Vec<f64>> {
        let mut cur: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
        let mut outs = Vec::with_capacity(self.layers.len());
        for (_, layer) in &self.layers {
            cur = forward_layer(layer, &cur);
            outs.push(cur.clone());
        }
        outs
    }
}

fn forward_layer(layer: &FloatLayer, x: &[f64]) -> Vec<f64> {
    match layer {
        FloatLayer::Dense {
            n_in,
            n_out,
            weights,
            bias,
        } => (0..*n_out)
            .map(|j| {
                let row = &weights[j * n_in..(j + 1) * n_in];
                f64::from(bias[j])
                    + row
                        .iter()
                        .zip(x)
                        .map(|(w, v)| f64::from(*w) * v)
                        .sum::<f64>()
            })
            .collect(),
        FloatLayer::Conv {
            window,
            c_out,
            weights,
            bias,
        } => {
            let (oh, ow) = (window.out_h(), window.out_w());
            let mut out = Vec::with_capacity(c_out * oh * ow);
            for (co, b) in bias.iter().enumerate().take(*c_out) {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let taps = window.conv_taps(co, oy, ox);
                        let sum: f64 = taps.map(|(w, i)| f64::from(weights[w]) * x[i]).sum();
                        out.push(f64::from(*b) + sum);
                    }
                }
            }
            out
        }
        FloatLayer::MaxPool { window } => window.pool(x, |vals, _| {
            vals.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        }),
        FloatLayer::AvgPool {
            window,
            count_include_pad,
        } => window.pool(x, |vals, _| {
            let n = if *count_include_pad {
                window.kh * window.kw
            } else {
                vals.len()
            };
            vals.iter().sum::<f64>() / n as f64
        }),
        FloatLayer::Relu => x.iter().map(|v| v.max(0.0)).collect(),
        FloatLayer::Reshape { .. } => x.to_vec(),
    }
}

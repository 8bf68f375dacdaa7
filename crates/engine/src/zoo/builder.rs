//! A small graph builder shared by the zoo architectures: it creates the tensors and
//! operators the TFLite converter emits for a frozen TF-slim graph (batch norm folded
//! into conv weights + bias, activations fused), and draws deterministic weights.
//!
//! Weight scaling emulates what a trained, BN-folded network looks like at run time:
//! the builder keeps an estimate of each activation's second moment `E[x²]` and scales
//! every folded conv so its pre-activation has roughly unit variance (that is what the
//! folded `γ/σ` factor does in a real checkpoint), with a log-normal per-channel `γ` so
//! per-channel weight ranges differ as they do in real models.

use crate::error::{EngineError, Result};
use crate::ir::{
    Activation, Conv2DOptions, DType, DepthwiseConv2DOptions, Graph, Model, Op, OpKind, Padding,
    Pool2DOptions, Tensor, TensorId,
};

/// splitmix64: tiny, fast and good enough for weight initialisation.
pub(crate) struct Rng {
    state: u64,
    spare: Option<f64>,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng {
            state: seed,
            spare: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: never 0, so `ln` below is finite.
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box–Muller, both values used). Gaussian rather than uniform
    /// weights so that tensors have realistic tails for quantization experiments.
    pub(crate) fn normal(&mut self) -> f32 {
        if let Some(v) = self.spare.take() {
            return v as f32;
        }
        let (a, b) = self.normal_pair();
        self.spare = Some(b);
        a as f32
    }

    fn normal_pair(&mut self) -> (f64, f64) {
        let r = (-2.0 * self.unit().ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * self.unit()).sin_cos();
        (r * c, r * s)
    }

    /// Append `n` normals times `std` as little-endian f32 bytes. The bulk path for
    /// weights: written directly as bytes, two values per Box–Muller draw, because
    /// the big models have tens of millions of weights.
    pub(crate) fn extend_normal_bytes(&mut self, out: &mut Vec<u8>, n: usize, std: f32) {
        let std = f64::from(std);
        let mut left = n;
        if left > 0 && self.spare.is_some() {
            out.extend_from_slice(&(self.normal() * std as f32).to_le_bytes());
            left -= 1;
        }
        while left >= 2 {
            let (a, b) = self.normal_pair();
            out.extend_from_slice(&((a * std) as f32).to_le_bytes());
            out.extend_from_slice(&((b * std) as f32).to_le_bytes());
            left -= 2;
        }
        if left == 1 {
            out.extend_from_slice(&(self.normal() * std as f32).to_le_bytes());
        }
    }
}

/// An activation tensor plus the builder's estimate of its second moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Act {
    pub id: TensorId,
    pub m2: f32,
}

/// How a convolution's weights come about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Init {
    /// Conv followed by batch norm in the checkpoint: BN folded into weights + bias.
    FoldedBn,
    /// Conv with its own bias and no normalizer; the output std is about `gain`.
    Plain { gain: f32 },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvCfg {
    pub out_c: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: Padding,
    pub act: Activation,
    pub init: Init,
}

impl ConvCfg {
    /// A BN-folded conv (the slim default inside every architecture here).
    pub(crate) fn bn(out_c: usize, kh: usize, kw: usize, stride: usize, act: Activation) -> Self {
        ConvCfg {
            out_c,
            kh,
            kw,
            stride,
            padding: Padding::Same,
            act,
            init: Init::FoldedBn,
        }
    }

    pub(crate) fn valid(mut self) -> Self {
        self.padding = Padding::Valid;
        self
    }

    /// A conv with bias and no normalizer/activation (logits, resnet conv3/shortcut).
    pub(crate) fn plain(out_c: usize, k: usize, stride: usize, gain: f32) -> Self {
        ConvCfg {
            out_c,
            kh: k,
            kw: k,
            stride,
            padding: Padding::Same,
            act: Activation::None,
            init: Init::Plain { gain },
        }
    }
}

/// Spread of the per-channel BN scale `γ` (log-normal sigma).
const GAMMA_LOG_SIGMA: f32 = 0.3;
/// Std of a folded BN bias relative to the unit pre-activation std.
const FOLDED_BIAS_STD: f32 = 0.15;
/// Std of a plain conv's bias relative to its output gain.
const PLAIN_BIAS_STD: f32 = 0.02;

/// Output length of a conv/pool along one axis, TFLite arithmetic.
pub(crate) fn out_len(input: usize, k: usize, stride: usize, padding: Padding) -> Option<usize> {
    if stride == 0 || k == 0 || input == 0 {
        return None;
    }
    match padding {
        Padding::Same => Some(input.div_ceil(stride)),
        Padding::Valid => (input >= k).then(|| (input - k) / stride + 1),
    }
}

/// Second moment after a fused activation of a pre-activation with second moment
/// `m2` (zero-mean Gaussian assumption: ReLU keeps half of it).
fn after_activation(act: Activation, m2: f32) -> f32 {
    match act {
        Activation::Relu | Activation::Relu6 => 0.5 * m2,
        _ => m2,
    }
}

pub(crate) struct Net {
    g: Graph,
    rng: Rng,
}

impl Net {
    pub(crate) fn new(name: &str, seed: u64) -> Net {
        Net {
            g: Graph {
                name: name.to_string(),
                ..Default::default()
            },
            rng: Rng::new(seed),
        }
    }

    pub(crate) fn shape(&self, a: Act) -> [usize; 4] {
        let s = &self.g.tensors[a.id].shape;
        [s[0], s[1], s[2], s[3]]
    }

    fn activation(&mut self, name: String, shape: Vec<usize>) -> TensorId {
        self.g
            .add_tensor(Tensor::activation(name, shape, DType::F32))
    }

    fn constant(&mut self, name: String, shape: Vec<usize>, values: &[f32]) -> TensorId {
        self.g.add_tensor(Tensor::constant_f32(name, shape, values))
    }

    fn normals(&mut self, n: usize, std: f32) -> Vec<f32> {
        (0..n).map(|_| self.rng.normal() * std).collect()
    }

    fn gammas(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| (self.rng.normal() * GAMMA_LOG_SIGMA).exp())
            .collect()
    }

    /// Per-output-channel weight std and bias values for a conv whose every output
    /// sums `fan_in` products of an input with second moment `m2_in`.
    fn weight_plan(&mut self, init: Init, out_c: usize, fan_in: usize, m2_in: f32) -> WeightPlan {
        let base = 1.0 / (fan_in as f32 * m2_in.max(1e-6)).sqrt();
        match init {
            Init::FoldedBn => {
                let gammas = self.gammas(out_c);
                let bias = self.normals(out_c, FOLDED_BIAS_STD);
                let m2_out = gammas.iter().map(|g| g * g).sum::<f32>() / out_c as f32
                    + FOLDED_BIAS_STD * FOLDED_BIAS_STD;
                WeightPlan {
                    std: gammas.iter().map(|g| g * base).collect(),
                    bias,
                    m2_out,
                }
            }
            Init::Plain { gain } => WeightPlan {
                std: vec![gain * base; out_c],
                bias: self.normals(out_c, gain * PLAIN_BIAS_STD),
                m2_out: gain * gain * (1.0 + PLAIN_BIAS_STD * PLAIN_BIAS_STD),
            },
        }
    }

    pub(crate) fn input(&mut self, name: &str, h: usize, w: usize, c: usize, m2: f32) -> Act {
        let id = self.activation(name.to_string(), vec![1, h, w, c]);
        self.g.inputs.push(id);
        Act { id, m2 }
    }

    fn spatial(
        &self,
        x: Act,
        name: &str,
        kh: usize,
        kw: usize,
        stride: usize,
        padding: Padding,
    ) -> Result<(usize, usize)> {
        let [_, h, w, _] = self.shape(x);
        match (
            out_len(h, kh, stride, padding),
            out_len(w, kw, stride, padding),
        ) {
            (Some(oh), Some(ow)) => Ok((oh, ow)),
            _ => Err(EngineError::unsupported(format!(
                "{name}: a {kh}x{kw} window with stride {stride} ({padding:?}) does not fit \
                 the {h}x{w} feature map; the input resolution is too small"
            ))),
        }
    }

    pub(crate) fn conv(&mut self, x: Act, name: &str, c: ConvCfg) -> Result<Act> {
        let [_, _, _, in_c] = self.shape(x);
        let (oh, ow) = self.spatial(x, name, c.kh, c.kw, c.stride, c.padding)?;
        let per_out = c.kh * c.kw * in_c;
        let plan = self.weight_plan(c.init, c.out_c, per_out, x.m2);
        let mut w = Vec::with_capacity(4 * c.out_c * per_out);
        for &std in &plan.std {
            self.rng.extend_normal_bytes(&mut w, per_out, std);
        }
        let wid = self.g.add_tensor(Tensor::constant(
            format!("{name}/weights"),
            vec![c.out_c, c.kh, c.kw, in_c],
            DType::F32,
            w,
        ));
        let bid = self.constant(format!("{name}/biases"), vec![c.out_c], &plan.bias);
        let out = self.activation(name.to_string(), vec![1, oh, ow, c.out_c]);
        let opts = Conv2DOptions {
            padding: c.padding,
            stride_h: c.stride,
            stride_w: c.stride,
            dilation_h: 1,
            dilation_w: 1,
            activation: c.act,
        };
        self.g.add_op(Op::new(
            OpKind::Conv2D(opts),
            vec![x.id, wid, bid],
            vec![out],
        ));
        Ok(Act {
            id: out,
            m2: after_activation(c.act, plan.m2_out),
        })
    }

    /// Depthwise conv (multiplier 1) with folded BN; filter `[1, k, k, C]`.
    pub(crate) fn depthwise(
        &mut self,
        x: Act,
        name: &str,
        k: usize,
        stride: usize,
        act: Activation,
    ) -> Result<Act> {
        let [_, _, _, ch] = self.shape(x);
        let (oh, ow) = self.spatial(x, name, k, k, stride, Padding::Same)?;
        let plan = self.weight_plan(Init::FoldedBn, ch, k * k, x.m2);
        // Filter layout is [1, kh, kw, C]: the channel runs fastest.
        let mut w = Vec::with_capacity(k * k * ch);
        for _ in 0..k * k {
            for &std in &plan.std {
                w.push(self.rng.normal() * std);
            }
        }
        let wid = self.constant(format!("{name}/depthwise_weights"), vec![1, k, k, ch], &w);
        let bid = self.constant(format!("{name}/biases"), vec![ch], &plan.bias);
        let out = self.activation(name.to_string(), vec![1, oh, ow, ch]);
        let opts = DepthwiseConv2DOptions {
            padding: Padding::Same,
            stride_h: stride,
            stride_w: stride,
            depth_multiplier: 1,
            dilation_h: 1,
            dilation_w: 1,
            activation: act,
        };
        self.g.add_op(Op::new(
            OpKind::DepthwiseConv2D(opts),
            vec![x.id, wid, bid],
            vec![out],
        ));
        Ok(Act {
            id: out,
            m2: after_activation(act, plan.m2_out),
        })
    }

    /// MAX_POOL_2D or AVERAGE_POOL_2D.
    pub(crate) fn pool(
        &mut self,
        x: Act,
        name: &str,
        max: bool,
        k: usize,
        stride: usize,
        padding: Padding,
    ) -> Result<Act> {
        self.pool_hw(x, name, max, k, k, stride, padding)
    }

    #[allow(clippy::too_many_arguments)]
    fn pool_hw(
        &mut self,
        x: Act,
        name: &str,
        max: bool,
        kh: usize,
        kw: usize,
        stride: usize,
        padding: Padding,
    ) -> Result<Act> {
        let [_, _, _, ch] = self.shape(x);
        let (oh, ow) = self.spatial(x, name, kh, kw, stride, padding)?;
        let out = self.activation(name.to_string(), vec![1, oh, ow, ch]);
        let opts = Pool2DOptions {
            padding,
            stride_h: stride,
            stride_w: stride,
            filter_h: kh,
            filter_w: kw,
            activation: Activation::None,
        };
        let kind = if max {
            OpKind::MaxPool2D(opts)
        } else {
            OpKind::AveragePool2D(opts)
        };
        self.g.add_op(Op::new(kind, vec![x.id], vec![out]));
        // Rough moment bookkeeping: a max over a window of non-negative values grows
        // the second moment, an average over a window shrinks its variance part.
        let m2 = if kh * kw == 1 {
            x.m2
        } else if max {
            2.0 * x.m2
        } else {
            0.7 * x.m2
        };
        Ok(Act { id: out, m2 })
    }

    /// AVERAGE_POOL_2D over the whole feature map (VALID, kernel = h × w), the way
    /// the slim classifiers pool before their logits. `stride` does not change the
    /// 1×1 result; it is whatever the slim graph had (`avg_pool2d` defaults to 2).
    pub(crate) fn global_avg_pool(&mut self, x: Act, name: &str, stride: usize) -> Result<Act> {
        let [_, h, w, _] = self.shape(x);
        let a = self.pool_hw(x, name, false, h, w, stride, Padding::Valid)?;
        // Averaging many ReLU outputs leaves about their squared mean (1/π of E[x²]
        // for a rectified Gaussian).
        Ok(Act {
            id: a.id,
            m2: x.m2 / std::f32::consts::PI,
        })
    }

    /// MEAN over H and W with keep_dims (slim resnet's global pool: `reduce_mean`).
    pub(crate) fn mean_hw(&mut self, x: Act, name: &str) -> Act {
        let [n, _, _, ch] = self.shape(x);
        let axes = self.g.add_tensor(Tensor::constant_i32(
            format!("{name}/reduction_indices"),
            vec![2],
            &[1, 2],
        ));
        let out = self.activation(name.to_string(), vec![n, 1, 1, ch]);
        self.g.add_op(Op::new(
            OpKind::Mean { keep_dims: true },
            vec![x.id, axes],
            vec![out],
        ));
        Act {
            id: out,
            m2: x.m2 / std::f32::consts::PI,
        }
    }

    pub(crate) fn add(&mut self, a: Act, b: Act, name: &str, act: Activation) -> Result<Act> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        if sa != sb {
            return Err(EngineError::invalid(format!(
                "{name}: residual shapes differ, {sa:?} vs {sb:?}"
            )));
        }
        let out = self.activation(name.to_string(), sa.to_vec());
        self.g.add_op(Op::new(
            OpKind::Add {
                activation: act,
                pot_scale_int16: false,
            },
            vec![a.id, b.id],
            vec![out],
        ));
        Ok(Act {
            id: out,
            m2: after_activation(act, a.m2 + b.m2),
        })
    }

    /// CONCATENATION along channels.
    pub(crate) fn concat(&mut self, xs: &[Act], name: &str) -> Result<Act> {
        let first = xs
            .first()
            .ok_or_else(|| EngineError::invalid(format!("{name}: nothing to concatenate")))?;
        let [n, h, w, _] = self.shape(*first);
        let mut ch = 0;
        let mut m2 = 0.0;
        for &x in xs {
            let [xn, xh, xw, xc] = self.shape(x);
            if (xn, xh, xw) != (n, h, w) {
                return Err(EngineError::invalid(format!(
                    "{name}: branch shapes differ, {:?} vs {:?}",
                    self.shape(*first),
                    self.shape(x)
                )));
            }
            ch += xc;
            m2 += x.m2 * xc as f32;
        }
        let out = self.activation(name.to_string(), vec![n, h, w, ch]);
        self.g.add_op(Op::new(
            OpKind::Concatenation {
                axis: 3,
                activation: Activation::None,
            },
            xs.iter().map(|x| x.id).collect(),
            vec![out],
        ));
        Ok(Act {
            id: out,
            m2: m2 / ch as f32,
        })
    }

    /// PAD of H and W by `beg` before and `end` after (slim `conv2d_same`).
    pub(crate) fn pad_hw(&mut self, x: Act, name: &str, beg: usize, end: usize) -> Result<Act> {
        let [n, h, w, ch] = self.shape(x);
        let (b, e) = (
            i32::try_from(beg).map_err(|_| EngineError::unsupported("padding too large"))?,
            i32::try_from(end).map_err(|_| EngineError::unsupported("padding too large"))?,
        );
        let pads = self.g.add_tensor(Tensor::constant_i32(
            format!("{name}/paddings"),
            vec![4, 2],
            &[0, 0, b, e, b, e, 0, 0],
        ));
        let out = self.activation(name.to_string(), vec![n, h + beg + end, w + beg + end, ch]);
        self.g
            .add_op(Op::new(OpKind::Pad, vec![x.id, pads], vec![out]));
        Ok(Act { id: out, m2: x.m2 })
    }

    /// An unfoldable batch norm as the converter leaves it: MUL by the per-channel
    /// scale `γ/σ`, then ADD of the offset `β − γμ/σ`, with the following activation
    /// fused into the ADD. Normalises using the builder's moment estimate.
    pub(crate) fn batch_norm(&mut self, x: Act, name: &str, act: Activation) -> Act {
        let [n, h, w, ch] = self.shape(x);
        let inv = 1.0 / x.m2.max(1e-6).sqrt();
        let gammas = self.gammas(ch);
        let scale: Vec<f32> = gammas.iter().map(|g| g * inv).collect();
        let offset = self.normals(ch, FOLDED_BIAS_STD);
        let m2_pre = gammas.iter().map(|g| g * g).sum::<f32>() / ch as f32
            + FOLDED_BIAS_STD * FOLDED_BIAS_STD;
        let sid = self.constant(format!("{name}/mul/scale"), vec![ch], &scale);
        let mid = self.activation(format!("{name}/mul"), vec![n, h, w, ch]);
        self.g.add_op(Op::new(
            OpKind::Mul {
                activation: Activation::None,
            },
            vec![x.id, sid],
            vec![mid],
        ));
        let oid = self.constant(format!("{name}/add/offset"), vec![ch], &offset);
        let out = self.activation(name.to_string(), vec![n, h, w, ch]);
        self.g.add_op(Op::new(
            OpKind::Add {
                activation: act,
                pot_scale_int16: false,
            },
            vec![mid, oid],
            vec![out],
        ));
        Act {
            id: out,
            m2: after_activation(act, m2_pre),
        }
    }

    /// RESHAPE `[1, 1, 1, C]` → `[1, C]` (the converter's form of slim's squeeze).
    pub(crate) fn squeeze_to_2d(&mut self, x: Act, name: &str) -> Result<Act> {
        let [n, h, w, ch] = self.shape(x);
        if (h, w) != (1, 1) {
            return Err(EngineError::invalid(format!(
                "{name}: cannot squeeze a {h}x{w} feature map"
            )));
        }
        let dims = [
            i32::try_from(n).map_err(|_| EngineError::unsupported("batch too large"))?,
            i32::try_from(ch).map_err(|_| EngineError::unsupported("too many classes"))?,
        ];
        let shape = self.g.add_tensor(Tensor::constant_i32(
            format!("{name}/shape"),
            vec![2],
            &dims,
        ));
        let out = self.activation(name.to_string(), vec![n, ch]);
        self.g.add_op(Op::new(
            OpKind::Reshape {
                new_shape: Some(dims.to_vec()),
            },
            vec![x.id, shape],
            vec![out],
        ));
        Ok(Act { id: out, m2: x.m2 })
    }

    pub(crate) fn softmax(&mut self, x: Act, name: &str) -> Act {
        let shape = self.g.tensors[x.id].shape.clone();
        let out = self.activation(name.to_string(), shape);
        self.g.add_op(Op::new(
            OpKind::Softmax { beta: 1.0 },
            vec![x.id],
            vec![out],
        ));
        Act { id: out, m2: 0.0 }
    }

    pub(crate) fn finish(mut self, output: Act, description: String) -> Model {
        self.g.outputs.push(output.id);
        Model::from_graph(self.g, description)
    }
}

struct WeightPlan {
    /// Weight std per output channel.
    std: Vec<f32>,
    bias: Vec<f32>,
    /// Expected second moment of the pre-activation output.
    m2_out: f32,
}

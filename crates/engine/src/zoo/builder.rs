//! A small graph builder shared by the zoo architectures: it creates the tensors and
//! operators the TFLite converter emits for a frozen TF-slim graph (batch norm folded
//! into conv weights + bias, activations fused), and draws deterministic weights.
//!
//! Weights emulate what a trained, BN-folded network looks like at run time, so the
//! models can be executed and quantized meaningfully (they do not classify). The
//! builder tracks an estimate of each activation channel's mean and variance
//! (Gaussian, independent-inputs approximation) and:
//! - scales every folded conv so its pre-activation has about `γ_c²` variance, with
//!   a log-normal per-channel `γ` (per-channel weight ranges differ as in real
//!   models) and a small `β` as bias;
//! - makes dense conv filters zero-sum when their input carries an offset (ReLU
//!   outputs). That removes the input-independent part of every channel exactly,
//!   as BN's mean subtraction does; with plain zero-mean random filters that part
//!   dominates and the classifier gives the same class for every image. (Cancelling
//!   it through the bias with the estimated means was tried: estimate errors grow
//!   through Inception's depth until activations explode.)
//! - normalises by second moments where a mean estimate would otherwise be
//!   trusted (depthwise, unfoldable BN), so estimate errors only misjudge scales.
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

    /// Append `n` normals times `std`: the bulk path for weights (two values per
    /// Box–Muller draw), because the big models have tens of millions of them.
    pub(crate) fn extend_normals(&mut self, out: &mut Vec<f32>, n: usize, std: f32) {
        let std = f64::from(std);
        let mut left = n;
        if left > 0 && self.spare.is_some() {
            out.push(self.normal() * std as f32);
            left -= 1;
        }
        while left >= 2 {
            let (a, b) = self.normal_pair();
            out.push((a * std) as f32);
            out.push((b * std) as f32);
            left -= 2;
        }
        if left == 1 {
            out.push(self.normal() * std as f32);
        }
    }
}

/// An activation tensor of the graph being built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Act {
    pub id: TensorId,
}

/// Estimated per-channel statistics of an activation tensor.
#[derive(Debug, Clone)]
struct Stats {
    mean: Vec<f32>,
    var: Vec<f32>,
}

impl Stats {
    fn mean_var(&self) -> f32 {
        self.var.iter().sum::<f32>() / self.var.len().max(1) as f32
    }
    fn mean_m2(&self) -> f32 {
        self.mean
            .iter()
            .zip(&self.var)
            .map(|(m, v)| m * m + v)
            .sum::<f32>()
            / self.var.len().max(1) as f32
    }
}

/// How a convolution's weights come about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Init {
    /// Conv followed by batch norm in the checkpoint: BN folded into weights + bias.
    FoldedBn,
    /// Conv with its own bias and no normalizer; the output RMS is about `gain`.
    Plain { gain: f32 },
    /// The classifier: like `Plain`, but its bias cancels the input-independent part
    /// of the logits (a trained classifier's logits depend on the image).
    Logits { gain: f32 },
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

    /// A conv with bias and no normalizer/activation (resnet conv3/shortcut/root).
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

    /// The 1×1 logits conv.
    pub(crate) fn logits(classes: usize, gain: f32) -> Self {
        ConvCfg {
            init: Init::Logits { gain },
            ..ConvCfg::plain(classes, 1, 1, gain)
        }
    }
}

/// Spread of the per-channel BN scale `γ` (log-normal sigma).
const GAMMA_LOG_SIGMA: f32 = 0.3;
/// Std of the per-channel BN shift `β` (in units of the unit pre-activation std).
const BETA_STD: f32 = 0.15;
/// Std of a plain conv's bias relative to its output gain.
const PLAIN_BIAS_STD: f32 = 0.02;
/// Fraction of the per-position variance that survives a global average pool:
/// neighbouring positions are strongly correlated, so much more than 1/(h·w) does.
const GLOBAL_POOL_VAR: f32 = 0.05;

/// Relative size of the input offset above which conv filters are made zero-sum.
const CENTER_THRESHOLD: f32 = 0.1;
/// Window pools over correlated neighbours: max shifts the mean by this many stds
/// and keeps this fraction of the variance; average keeps this fraction.
const MAX_POOL_MEAN_SHIFT: f32 = 0.4;
const MAX_POOL_VAR: f32 = 0.8;
const AVG_POOL_VAR: f32 = 0.8;

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

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 erf, error < 1.5e-7).
fn norm_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// Mean and variance after a fused activation of a Gaussian `N(mean, var)`
/// (rectified Gaussian moments; RELU6's upper clip is ignored, it is rarely hit at
/// unit pre-activation scale).
fn activate(act: Activation, mean: f32, var: f32) -> (f32, f32) {
    match act {
        Activation::Relu | Activation::Relu6 => {
            let (m, s) = (f64::from(mean), f64::from(var.max(1e-12)).sqrt());
            let a = m / s;
            let cdf = norm_cdf(a);
            let pdf = (-0.5 * a * a).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let e1 = m * cdf + s * pdf;
            let e2 = (m * m + s * s) * cdf + m * s * pdf;
            (e1 as f32, (e2 - e1 * e1).max(0.0) as f32)
        }
        _ => (mean, var),
    }
}

fn activate_all(act: Activation, mean: &[f32], var: &[f32]) -> Stats {
    let (mean, var) = mean
        .iter()
        .zip(var)
        .map(|(&m, &v)| activate(act, m, v))
        .unzip();
    Stats { mean, var }
}

pub(crate) struct Net {
    g: Graph,
    rng: Rng,
    /// Statistics estimate of every activation tensor, by tensor id.
    stats: Vec<Option<Stats>>,
}

impl Net {
    pub(crate) fn new(name: &str, seed: u64) -> Net {
        Net {
            g: Graph {
                name: name.to_string(),
                ..Default::default()
            },
            rng: Rng::new(seed),
            stats: Vec::new(),
        }
    }

    pub(crate) fn shape(&self, a: Act) -> [usize; 4] {
        let s = &self.g.tensors[a.id].shape;
        [s[0], s[1], s[2], s[3]]
    }

    fn stats(&self, a: Act) -> &Stats {
        self.stats[a.id]
            .as_ref()
            .expect("every activation gets statistics when created")
    }

    /// A new activation tensor with its statistics.
    fn activation(&mut self, name: String, shape: Vec<usize>, st: Stats) -> Act {
        let id = self
            .g
            .add_tensor(Tensor::activation(name, shape, DType::F32));
        self.stats.resize(id + 1, None);
        self.stats[id] = Some(st);
        Act { id }
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

    /// The graph input, zero-mean with variance `var` in every channel.
    pub(crate) fn input(&mut self, name: &str, h: usize, w: usize, c: usize, var: f32) -> Act {
        let st = Stats {
            mean: vec![0.0; c],
            var: vec![var; c],
        };
        let a = self.activation(name.to_string(), vec![1, h, w, c], st);
        self.g.inputs.push(a.id);
        a
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
        let (in_mean, in_var, in_m2) = {
            let st = self.stats(x);
            (st.mean.clone(), st.mean_var(), st.mean_m2())
        };
        let grand_mean = in_mean.iter().sum::<f32>() / in_c as f32;
        // Inputs with an offset (ReLU outputs) get zero-sum filters: the common
        // offset then cancels exactly, whatever its true size, which is what BN's
        // mean subtraction achieves in a trained net. The scale budget is then the
        // centred second moment.
        let center = grand_mean.abs() > CENTER_THRESHOLD * in_m2.max(1e-12).sqrt();
        let budget = match c.init {
            // Only the input-dependent part (the variance) reaches the logits.
            Init::Logits { .. } => in_var,
            _ if center => in_m2 - grand_mean * grand_mean,
            _ => in_m2,
        }
        .max(1e-6);
        let gains: Vec<f32> = match c.init {
            Init::FoldedBn => self.gammas(c.out_c),
            Init::Plain { gain } | Init::Logits { gain } => vec![gain; c.out_c],
        };
        let mut w = Vec::with_capacity(4 * c.out_c * per_out);
        let mut filter = Vec::with_capacity(per_out);
        let mut pre_mean = Vec::with_capacity(c.out_c);
        let mut pre_var = Vec::with_capacity(c.out_c);
        for &g in &gains {
            let sd = g / (per_out as f32 * budget).sqrt();
            filter.clear();
            self.rng.extend_normals(&mut filter, per_out, sd);
            if center {
                let m = filter.iter().sum::<f32>() / per_out as f32;
                filter.iter_mut().for_each(|v| *v -= m);
            }
            // What is left of the input offsets: Σ w·μ (border padding ignored).
            let mut offset = 0f64;
            for tap in filter.chunks_exact(in_c) {
                for (wv, m) in tap.iter().zip(&in_mean) {
                    offset += f64::from(wv * m);
                }
            }
            for v in &filter {
                w.extend_from_slice(&v.to_le_bytes());
            }
            pre_mean.push(offset as f32);
            pre_var.push(per_out as f32 * sd * sd * in_var);
        }
        let bias: Vec<f32> = match c.init {
            Init::FoldedBn => self.normals(c.out_c, BETA_STD),
            Init::Plain { gain } => self.normals(c.out_c, gain * PLAIN_BIAS_STD),
            Init::Logits { gain } => {
                // Also cancel the estimated residual offset: the classifier's
                // scores should depend on the image, not on fixed channel means.
                let noise = self.normals(c.out_c, gain * PLAIN_BIAS_STD);
                let b: Vec<f32> = pre_mean.iter().zip(&noise).map(|(m, n)| n - m).collect();
                pre_mean.iter_mut().for_each(|m| *m = 0.0);
                b
            }
        };
        for (m, b) in pre_mean.iter_mut().zip(&bias) {
            *m += b;
        }
        let wid = self.g.add_tensor(Tensor::constant(
            format!("{name}/weights"),
            vec![c.out_c, c.kh, c.kw, in_c],
            DType::F32,
            w,
        ));
        let bid = self.constant(format!("{name}/biases"), vec![c.out_c], &bias);
        let st = activate_all(c.act, &pre_mean, &pre_var);
        let out = self.activation(name.to_string(), vec![1, oh, ow, c.out_c], st);
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
            vec![out.id],
        ));
        Ok(out)
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
        let (in_mean, in_var) = {
            let st = self.stats(x);
            (st.mean.clone(), st.var.clone())
        };
        let gammas = self.gammas(ch);
        let beta = self.normals(ch, BETA_STD);
        // Each output channel sees one input channel: scale by that channel's
        // second moment (its offset stays, as a per-channel shift of the output).
        let std: Vec<f32> = (0..ch)
            .map(|c| {
                gammas[c]
                    / ((k * k) as f32 * (in_var[c] + in_mean[c] * in_mean[c]).max(1e-6)).sqrt()
            })
            .collect();
        // Filter layout is [1, kh, kw, C]: the channel runs fastest.
        let mut w = Vec::with_capacity(k * k * ch);
        let mut tap_sum = vec![0f32; ch];
        let mut tap_sq = vec![0f32; ch];
        for _ in 0..k * k {
            for (c, &sd) in std.iter().enumerate() {
                let v = self.rng.normal() * sd;
                tap_sum[c] += v;
                tap_sq[c] += v * v;
                w.push(v);
            }
        }
        let wid = self.constant(format!("{name}/depthwise_weights"), vec![1, k, k, ch], &w);
        let bid = self.constant(format!("{name}/biases"), vec![ch], &beta);
        let mean: Vec<f32> = (0..ch).map(|c| beta[c] + tap_sum[c] * in_mean[c]).collect();
        let var: Vec<f32> = (0..ch).map(|c| tap_sq[c] * in_var[c]).collect();
        let st = activate_all(act, &mean, &var);
        let out = self.activation(name.to_string(), vec![1, oh, ow, ch], st);
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
            vec![out.id],
        ));
        Ok(out)
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
        // Rough moment bookkeeping. Neighbouring activations are strongly
        // correlated, so a window max raises the mean by a fraction of a std and an
        // average keeps most of the variance. Erring towards "little change" is the
        // safe side: an overestimated mean makes the next folded bias wrong.
        let st = self.stats(x);
        let st = if k == 1 {
            st.clone()
        } else if max {
            Stats {
                mean: st
                    .mean
                    .iter()
                    .zip(&st.var)
                    .map(|(m, v)| m + MAX_POOL_MEAN_SHIFT * v.sqrt())
                    .collect(),
                var: st.var.iter().map(|v| MAX_POOL_VAR * v).collect(),
            }
        } else {
            Stats {
                mean: st.mean.clone(),
                var: st.var.iter().map(|v| AVG_POOL_VAR * v).collect(),
            }
        };
        self.pool_hw(x, name, max, (k, k), stride, padding, st)
    }

    #[allow(clippy::too_many_arguments)]
    fn pool_hw(
        &mut self,
        x: Act,
        name: &str,
        max: bool,
        (kh, kw): (usize, usize),
        stride: usize,
        padding: Padding,
        st: Stats,
    ) -> Result<Act> {
        let [_, _, _, ch] = self.shape(x);
        let (oh, ow) = self.spatial(x, name, kh, kw, stride, padding)?;
        let out = self.activation(name.to_string(), vec![1, oh, ow, ch], st);
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
        self.g.add_op(Op::new(kind, vec![x.id], vec![out.id]));
        Ok(out)
    }

    /// Statistics after averaging the whole map: the means stay, most of the
    /// per-position variance goes.
    fn globally_pooled(&self, x: Act) -> Stats {
        let st = self.stats(x);
        Stats {
            mean: st.mean.clone(),
            var: st.var.iter().map(|v| v * GLOBAL_POOL_VAR).collect(),
        }
    }

    /// AVERAGE_POOL_2D over the whole feature map (VALID, kernel = h × w), the way
    /// the slim classifiers pool before their logits. `stride` does not change the
    /// 1×1 result; it is whatever the slim graph had (`avg_pool2d` defaults to 2).
    pub(crate) fn global_avg_pool(&mut self, x: Act, name: &str, stride: usize) -> Result<Act> {
        let [_, h, w, _] = self.shape(x);
        let st = self.globally_pooled(x);
        self.pool_hw(x, name, false, (h, w), stride, Padding::Valid, st)
    }

    /// MEAN over H and W with keep_dims (slim resnet's global pool: `reduce_mean`).
    pub(crate) fn mean_hw(&mut self, x: Act, name: &str) -> Act {
        let [n, _, _, ch] = self.shape(x);
        let axes = self.g.add_tensor(Tensor::constant_i32(
            format!("{name}/reduction_indices"),
            vec![2],
            &[1, 2],
        ));
        let st = self.globally_pooled(x);
        let out = self.activation(name.to_string(), vec![n, 1, 1, ch], st);
        self.g.add_op(Op::new(
            OpKind::Mean { keep_dims: true },
            vec![x.id, axes],
            vec![out.id],
        ));
        out
    }

    pub(crate) fn add(&mut self, a: Act, b: Act, name: &str, act: Activation) -> Result<Act> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        if sa != sb {
            return Err(EngineError::invalid(format!(
                "{name}: residual shapes differ, {sa:?} vs {sb:?}"
            )));
        }
        let (x, y) = (self.stats(a), self.stats(b));
        let mean: Vec<f32> = x.mean.iter().zip(&y.mean).map(|(p, q)| p + q).collect();
        let var: Vec<f32> = x.var.iter().zip(&y.var).map(|(p, q)| p + q).collect();
        let st = activate_all(act, &mean, &var);
        let out = self.activation(name.to_string(), sa.to_vec(), st);
        self.g.add_op(Op::new(
            OpKind::Add {
                activation: act,
                pot_scale_int16: false,
            },
            vec![a.id, b.id],
            vec![out.id],
        ));
        Ok(out)
    }

    /// CONCATENATION along channels.
    pub(crate) fn concat(&mut self, xs: &[Act], name: &str) -> Result<Act> {
        let first = xs
            .first()
            .ok_or_else(|| EngineError::invalid(format!("{name}: nothing to concatenate")))?;
        let [n, h, w, _] = self.shape(*first);
        let mut ch = 0;
        let mut st = Stats {
            mean: Vec::new(),
            var: Vec::new(),
        };
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
            st.mean.extend_from_slice(&self.stats(x).mean);
            st.var.extend_from_slice(&self.stats(x).var);
        }
        let out = self.activation(name.to_string(), vec![n, h, w, ch], st);
        self.g.add_op(Op::new(
            OpKind::Concatenation {
                axis: 3,
                activation: Activation::None,
            },
            xs.iter().map(|x| x.id).collect(),
            vec![out.id],
        ));
        Ok(out)
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
        let st = self.stats(x).clone();
        let out = self.activation(
            name.to_string(),
            vec![n, h + beg + end, w + beg + end, ch],
            st,
        );
        self.g
            .add_op(Op::new(OpKind::Pad, vec![x.id, pads], vec![out.id]));
        Ok(out)
    }

    /// An unfoldable batch norm as the converter leaves it: MUL by the per-channel
    /// scale `γ/σ`, then ADD of the offset `β − γμ/σ`, with the following activation
    /// fused into the ADD. `μ`, `σ` are the builder's estimates, so it normalises
    /// like the trained BN would.
    pub(crate) fn batch_norm(&mut self, x: Act, name: &str, act: Activation) -> Act {
        let [n, h, w, ch] = self.shape(x);
        let (in_mean, in_var) = {
            let st = self.stats(x);
            (st.mean.clone(), st.var.clone())
        };
        let gammas = self.gammas(ch);
        let offset = self.normals(ch, BETA_STD);
        // Scale by the second moment, not the variance: an error in the mean
        // estimate then only misjudges the scale a little instead of leaving an
        // offset that the following layers would amplify.
        let scale: Vec<f32> = (0..ch)
            .map(|c| gammas[c] / (in_var[c] + in_mean[c] * in_mean[c]).max(1e-6).sqrt())
            .collect();
        let sid = self.constant(format!("{name}/mul/scale"), vec![ch], &scale);
        let scaled = Stats {
            mean: (0..ch).map(|c| scale[c] * in_mean[c]).collect(),
            var: (0..ch).map(|c| scale[c] * scale[c] * in_var[c]).collect(),
        };
        let pre_mean: Vec<f32> = (0..ch).map(|c| scaled.mean[c] + offset[c]).collect();
        let pre_var = scaled.var.clone();
        let mid = self.activation(format!("{name}/mul"), vec![n, h, w, ch], scaled);
        self.g.add_op(Op::new(
            OpKind::Mul {
                activation: Activation::None,
            },
            vec![x.id, sid],
            vec![mid.id],
        ));
        let oid = self.constant(format!("{name}/add/offset"), vec![ch], &offset);
        let st = activate_all(act, &pre_mean, &pre_var);
        let out = self.activation(name.to_string(), vec![n, h, w, ch], st);
        self.g.add_op(Op::new(
            OpKind::Add {
                activation: act,
                pot_scale_int16: false,
            },
            vec![mid.id, oid],
            vec![out.id],
        ));
        out
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
        let st = self.stats(x).clone();
        let out = self.activation(name.to_string(), vec![n, ch], st);
        self.g.add_op(Op::new(
            OpKind::Reshape {
                new_shape: Some(dims.to_vec()),
            },
            vec![x.id, shape],
            vec![out.id],
        ));
        Ok(out)
    }

    pub(crate) fn softmax(&mut self, x: Act, name: &str) -> Act {
        let shape = self.g.tensors[x.id].shape.clone();
        let n = *shape.last().unwrap_or(&1);
        let st = Stats {
            mean: vec![1.0 / n as f32; n],
            var: vec![0.0; n],
        };
        let out = self.activation(name.to_string(), shape, st);
        self.g.add_op(Op::new(
            OpKind::Softmax { beta: 1.0 },
            vec![x.id],
            vec![out.id],
        ));
        out
    }

    pub(crate) fn finish(mut self, output: Act, description: String) -> Model {
        self.g.outputs.push(output.id);
        Model::from_graph(self.g, description)
    }
}

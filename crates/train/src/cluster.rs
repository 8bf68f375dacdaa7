//! Weight clustering (TFMOT's `cluster_weights`), centroid fine-tuning, and the
//! distinct-value count that checks it in an exported file.
//!
//! The nets fine-tuned here hold BN-folded kernels (see [`crate::import`]), so each
//! output channel `c` carries its own scale. As TFMOT clusters the kernel *before* the
//! batch norm that the converter later folds in, a kernel is factored as
//! `w[r, c] = s_c · v[r, c]` with `s_c = max_r |w[r, c]|`, and the normalised values
//! `v ∈ [−1, 1]` of the whole layer share one set of centroids. The centroids come in
//! ± pairs (k-means on `|v|` into `K/2` magnitudes, the sign kept per weight): then
//! every channel's largest weight sits in the top magnitude cluster, its max-abs
//! int8 scale is `s_c · m_top / 127`, and all channels of a layer quantize to the same
//! ≤ K integers — which is what lets gzip shrink the int8 file (one 16-symbol
//! alphabet per layer instead of a different one per channel).
//!
//! Every conv, depthwise and dense kernel is clustered: a 3×3 depthwise kernel has at
//! most 9 values per channel anyway, but clustered it shares its layer's small
//! alphabet, and unclustered its 8-bit values would cost a tenth of the gzip size.
//!
//! Fine-tuning keeps each weight's cluster and, after every optimizer step, moves
//! each centroid to the mean of its members' normalised magnitudes (TFMOT's `AVG`
//! gradient aggregation: a plain SGD step on a centroid with the mean of its
//! members' gradients); momentum is tied the same way.

use std::ops::ControlFlow;

use quantfarm_engine::ir::{DType, Model, OpKind};
use quantfarm_engine::{EngineError, Result};

use crate::data::ImageSet;
use crate::net::{Kind, Net, Weights};
use crate::optim::Sgd;
use crate::prune::{Prunable, prunable};
use crate::qat::{self, Phase, QatConfig};
use crate::rng::Rng;

/// How the centroids start (TFMOT's `CentroidInitialization`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// Evenly spaced between the smallest and largest value.
    Linear,
    /// k-means++ seeding: each next centroid drawn with probability ∝ squared
    /// distance to the nearest chosen one.
    KmeansPlusPlus,
    /// Evenly spaced on the values' cumulative distribution (quantiles).
    Density,
}

impl Init {
    pub fn parse(s: &str) -> std::result::Result<Init, String> {
        match s {
            "linear" => Ok(Init::Linear),
            "kmeans++" => Ok(Init::KmeansPlusPlus),
            "density" => Ok(Init::Density),
            other => Err(format!(
                "unknown centroid initialisation {other:?} (linear, kmeans++ or density)"
            )),
        }
    }
}

/// Starting centroids for `sorted` (ascending, non-empty) values: `k` of them,
/// ascending.
pub fn init_centroids(sorted: &[f32], k: usize, init: Init, rng: &mut Rng) -> Vec<f32> {
    let n = sorted.len();
    let (lo, hi) = (sorted[0], sorted[n - 1]);
    let mut c: Vec<f32> = match init {
        Init::Linear => (0..k)
            .map(|j| {
                if k == 1 {
                    (lo + hi) / 2.0
                } else {
                    lo + (hi - lo) * j as f32 / (k - 1) as f32
                }
            })
            .collect(),
        Init::Density => (0..k)
            .map(|j| {
                let pos = if k == 1 {
                    (n - 1) / 2
                } else {
                    ((n - 1) as f64 * j as f64 / (k - 1) as f64).round() as usize
                };
                sorted[pos]
            })
            .collect(),
        Init::KmeansPlusPlus => {
            let mut c = vec![sorted[rng.below(n)]];
            let mut d2: Vec<f64> = sorted
                .iter()
                .map(|&x| f64::from(x - c[0]).powi(2))
                .collect();
            while c.len() < k {
                let sum: f64 = d2.iter().sum();
                if sum <= 0.0 {
                    break; // fewer distinct values than k: every one is a centroid
                }
                let mut t = rng.unit() * sum;
                let mut pick = n - 1;
                for (i, &d) in d2.iter().enumerate() {
                    if t < d {
                        pick = i;
                        break;
                    }
                    t -= d;
                }
                let x = sorted[pick];
                c.push(x);
                for (d, &y) in d2.iter_mut().zip(sorted) {
                    *d = d.min(f64::from(y - x).powi(2));
                }
            }
            c
        }
    };
    c.sort_by(f32::total_cmp);
    c
}

/// Index of the nearest of ascending `centroids` (ties to the lower one).
fn nearest(centroids: &[f32], x: f32) -> usize {
    let i = centroids.partition_point(|&c| c < x);
    if i == 0 {
        0
    } else if i == centroids.len() || (x - centroids[i - 1]) <= (centroids[i] - x) {
        i - 1
    } else {
        i
    }
}

/// 1-D clustering: ascending centroids and each value's (nearest) cluster. From a
/// k-means++ start, Lloyd's iterations (at most 100, until no assignment changes; an
/// empty cluster keeps its centroid); linear and density starts are kept.
pub fn kmeans_1d(values: &[f32], k: usize, init: Init, rng: &mut Rng) -> (Vec<f32>, Vec<u16>) {
    assert!(k >= 1 && k <= usize::from(u16::MAX), "cluster count");
    if values.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let mut c = init_centroids(&sorted, k, init, rng);
    let mut assign: Vec<u16> = vec![u16::MAX; values.len()];
    // TFMOT assigns to the initial centroids and lets training move them. Lloyd's
    // iterations refine k-means++ seeds (a handful of sampled values); linear and
    // density starts are kept as TFMOT keeps them: an evenly spaced grid leaves most
    // weights in the few clusters near zero, which is what makes the file compress.
    let rounds = if init == Init::KmeansPlusPlus { 100 } else { 1 };
    for _ in 0..rounds {
        let mut changed = false;
        let mut sum = vec![0f64; c.len()];
        let mut count = vec![0usize; c.len()];
        for (a, &x) in assign.iter_mut().zip(values) {
            let j = nearest(&c, x);
            if usize::from(*a) != j {
                *a = j as u16;
                changed = true;
            }
            sum[j] += f64::from(x);
            count[j] += 1;
        }
        if rounds == 1 {
            break;
        }
        for ((cj, s), n) in c.iter_mut().zip(&sum).zip(&count) {
            if *n > 0 {
                *cj = (s / *n as f64) as f32;
            }
        }
        if !changed {
            break;
        }
        // Means keep the order of 1-D clusters; sort anyway against rounding ties.
        let mut order: Vec<usize> = (0..c.len()).collect();
        order.sort_by(|&a, &b| c[a].total_cmp(&c[b]));
        if order.iter().enumerate().any(|(i, &o)| i != o) {
            let rank: Vec<u16> = {
                let mut r = vec![0u16; c.len()];
                for (i, &o) in order.iter().enumerate() {
                    r[o] = i as u16;
                }
                r
            };
            c = order.iter().map(|&o| c[o]).collect();
            assign.iter_mut().for_each(|a| *a = rank[usize::from(*a)]);
        }
    }
    (c, assign)
}

/// One clustered kernel: per-channel scales, the layer's ± magnitude centroids and
/// each weight's cluster (`rows × cols`, row-major like the kernel).
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub kernel: Prunable,
    pub scale: Vec<f32>,
    pub magnitudes: Vec<f32>,
    pub cluster: Vec<u16>,
    pub negative: Vec<bool>,
    /// The lowest magnitude is exactly 0 and stays there (linear starts: TFMOT's
    /// sparsity-preserving zero centroid), so its weights stay exact zeros.
    pub pin_zero: bool,
}

impl Layer {
    /// Write the clustered values into `w`.
    fn write(&self, w: &mut [f32]) {
        let cols = self.kernel.cols;
        for (i, x) in w.iter_mut().enumerate() {
            let m = self.magnitudes[usize::from(self.cluster[i])] * self.scale[i % cols];
            *x = if self.negative[i] { -m } else { m };
        }
    }

    /// Move each magnitude to the mean normalised magnitude of its members in `w`,
    /// then write the clustered values back; tie `velocity` (if any) per cluster.
    fn update(&mut self, w: &mut [f32], velocity: Option<&mut [f32]>) {
        let cols = self.kernel.cols;
        let k = self.magnitudes.len();
        let mut sum = vec![0f64; k];
        let mut count = vec![0usize; k];
        for (i, &x) in w.iter().enumerate() {
            let s = self.scale[i % cols];
            if s > 0.0 {
                let j = usize::from(self.cluster[i]);
                let signed = if self.negative[i] { -x } else { x };
                sum[j] += f64::from(signed / s);
                count[j] += 1;
            }
        }
        let skip = usize::from(self.pin_zero);
        for ((m, s), n) in self.magnitudes.iter_mut().zip(&sum).zip(&count).skip(skip) {
            if *n > 0 {
                *m = (s / *n as f64) as f32;
            }
        }
        self.write(w);
        if let Some(v) = velocity {
            let mut vs = vec![0f64; k];
            for (i, &x) in v.iter().enumerate() {
                let s = self.scale[i % cols];
                if s > 0.0 {
                    let signed = if self.negative[i] { -x } else { x };
                    vs[usize::from(self.cluster[i])] += f64::from(signed / s);
                }
            }
            for (i, x) in v.iter_mut().enumerate() {
                let j = usize::from(self.cluster[i]);
                let m = (vs[j] / count[j].max(1) as f64) as f32 * self.scale[i % cols];
                *x = if self.negative[i] { -m } else { m };
            }
        }
    }
}

/// The clustering of a net's kernels.
#[derive(Debug, Clone, PartialEq)]
pub struct Clusters {
    pub clusters: usize,
    pub layers: Vec<Layer>,
}

/// Is parameter `param` a dense kernel? Its int8 weights get one scale per tensor
/// (TFLite's FULLY_CONNECTED), so it is normalised by one scale too.
fn is_dense(net: &Net, param: usize) -> bool {
    net.nodes
        .iter()
        .any(|n| matches!(n.kind, Kind::Dense { w, .. } if w == param))
}

/// Split `w` (`rows × cols`) into max-abs scales (per output channel, or one for the
/// whole tensor when `per_tensor`) and normalised magnitudes with signs.
fn normalise(w: &[f32], cols: usize, per_tensor: bool) -> (Vec<f32>, Vec<f32>, Vec<bool>) {
    let mut scale = vec![0f32; cols];
    for (i, &x) in w.iter().enumerate() {
        scale[i % cols] = scale[i % cols].max(x.abs());
    }
    if per_tensor {
        let m = scale.iter().fold(0f32, |a, &b| a.max(b));
        scale.iter_mut().for_each(|s| *s = m);
    }
    let mag = w
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let s = scale[i % cols];
            if s > 0.0 { x.abs() / s } else { 0.0 }
        })
        .collect();
    let neg = w.iter().map(|&x| x < 0.0).collect();
    (scale, mag, neg)
}

impl Clusters {
    /// Cluster every kernel of `w` (`clusters`: an even count ≥ 2, `clusters / 2`
    /// magnitudes, each with both signs).
    pub fn compute(
        net: &Net,
        w: &Weights,
        clusters: usize,
        init: Init,
        seed: u64,
    ) -> Result<Clusters> {
        if clusters < 2 || !clusters.is_multiple_of(2) || clusters > 256 {
            return Err(EngineError::bad_input(format!(
                "cluster count {clusters}: an even number from 2 to 256 (centroids come in ± pairs)"
            )));
        }
        let layers = prunable(net)
            .into_iter()
            .enumerate()
            .map(|(li, p)| {
                let (scale, mag, negative) =
                    normalise(&w.params[p.param], p.cols, is_dense(net, p.param));
                let mut rng = Rng::derive(seed, &[li as u64]);
                let (mut magnitudes, cluster) = kmeans_1d(&mag, clusters / 2, init, &mut rng);
                // A linear grid starts at the smallest |v|, about 0: make it 0 exactly.
                let pin_zero = init == Init::Linear;
                if pin_zero {
                    magnitudes[0] = 0.0;
                }
                Layer {
                    kernel: p,
                    scale,
                    magnitudes,
                    cluster,
                    negative,
                    pin_zero,
                }
            })
            .collect();
        Ok(Clusters { clusters, layers })
    }

    /// Recover the clustering of weights that are already clustered (a file written
    /// after [`finetune`]): normalised magnitudes within `1e-4` of each other are one
    /// cluster; a zero magnitude stays pinned.
    pub fn recover(net: &Net, w: &Weights, clusters: usize) -> Result<Clusters> {
        let mut layers = Vec::new();
        for p in prunable(net) {
            let (scale, mag, negative) =
                normalise(&w.params[p.param], p.cols, is_dense(net, p.param));
            let mut sorted = mag.clone();
            sorted.sort_by(f32::total_cmp);
            let mut magnitudes: Vec<f32> = Vec::new();
            let mut members: Vec<(f64, usize)> = Vec::new();
            for &x in &sorted {
                match magnitudes.last() {
                    Some(&m) if x - m <= 1e-4 => {
                        let last = members.last_mut().expect("paired");
                        last.0 += f64::from(x);
                        last.1 += 1;
                    }
                    _ => {
                        magnitudes.push(x);
                        members.push((f64::from(x), 1));
                    }
                }
            }
            // Each group's first value opened it; use the group means.
            let means: Vec<f32> = members
                .iter()
                .map(|(s, n)| (s / *n as f64) as f32)
                .collect();
            if means.len() * 2 > clusters {
                return Err(EngineError::bad_input(format!(
                    "{}: {} distinct weight magnitudes per layer, more than the {} of {clusters} \
                     ± clusters (is this a model written by `optimize --technique cluster \
                     --clusters {clusters}`?)",
                    p.name,
                    means.len(),
                    clusters / 2
                )));
            }
            let cluster = mag.iter().map(|&x| nearest(&means, x) as u16).collect();
            let pin_zero = means.first() == Some(&0.0);
            layers.push(Layer {
                kernel: p,
                scale,
                magnitudes: means,
                cluster,
                negative,
                pin_zero,
            });
        }
        Ok(Clusters { clusters, layers })
    }

    /// Write the clustered values into `w` and tie momentum; centroids move to their
    /// members' mean first (after an optimizer step).
    pub fn apply(&mut self, w: &mut Weights, sgd: Option<&mut Sgd>) {
        let mut sgd = sgd;
        for l in &mut self.layers {
            let v = sgd
                .as_deref_mut()
                .map(|s| s.velocity[l.kernel.param].as_mut_slice());
            l.update(&mut w.params[l.kernel.param], v);
        }
    }

    /// Snap `w` to the current centroids without moving them.
    pub fn write(&self, w: &mut Weights) {
        for l in &self.layers {
            l.write(&mut w.params[l.kernel.param]);
        }
    }
}

/// Clustering fine-tuning settings: QAT's loop settings (`tune`; the seed also seeds
/// k-means++) and the clustering.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub tune: QatConfig,
    pub clusters: usize,
    pub init: Init,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            tune: QatConfig::default(),
            clusters: 16,
            init: Init::KmeansPlusPlus,
        }
    }
}

/// Cluster `w` and fine-tune the centroids on `data` (frozen batch norm, no fake
/// quantization; QAT's loop, SGD and cosine schedule). `progress` as in
/// [`crate::prune::finetune`]; `Ok(None)` when stopped.
pub fn finetune(
    net: &Net,
    w: &mut Weights,
    data: &ImageSet,
    cfg: &ClusterConfig,
    threads: usize,
    progress: impl FnMut(usize, usize, f64) -> ControlFlow<()>,
) -> Result<Option<Clusters>> {
    let qc = &cfg.tune;
    if qc.epochs == 0 || qc.batch == 0 {
        return Err(EngineError::bad_input(
            "epochs and batch must be at least 1",
        ));
    }
    data.check_batch(qc.batch)?;
    let mut clusters = Clusters::compute(net, w, cfg.clusters, cfg.init, qc.seed)?;
    clusters.write(w);
    let hook = |phase: Phase, _: usize, w: &mut Weights, sgd: &mut Sgd| {
        if phase == Phase::After {
            clusters.apply(w, Some(sgd));
        }
    };
    let done = qat::finetune_with(net, w, data, qc, threads, false, hook, progress);
    Ok(done.map(|_| clusters))
}

/// Distinct values per output channel of every conv, depthwise and dense kernel of
/// a float or quantized model: `(weight tensor name, largest count over channels)`.
pub fn distinct_per_channel(model: &Model) -> Vec<(String, usize)> {
    let g = model.main();
    let mut out = Vec::new();
    for op in &g.ops {
        // Output-channel axis of the TFLite layouts: conv/FC [O, ...], depthwise [1, H, W, C].
        let axis = match op.kind {
            OpKind::Conv2D(_) | OpKind::FullyConnected(_) => 0,
            OpKind::DepthwiseConv2D(_) => 3,
            _ => continue,
        };
        let Some(t) = op.inputs.get(1).and_then(|&i| i).map(|i| &g.tensors[i]) else {
            continue;
        };
        let Some(data) = t.data.as_ref() else {
            continue;
        };
        if axis >= t.shape.len() {
            continue;
        }
        let dim = t.shape[axis].max(1);
        let inner: usize = t.shape.iter().skip(axis + 1).product::<usize>().max(1);
        let keys: Vec<u32> = match t.dtype {
            DType::F32 => match t.data_f32() {
                // -0.0 and 0.0 are one value.
                Some(v) => v.iter().map(|x| (x + 0.0).to_bits()).collect(),
                None => continue,
            },
            DType::I8 | DType::U8 => data.iter().map(|&b| u32::from(b)).collect(),
            _ => continue,
        };
        let mut per: Vec<Vec<u32>> = vec![Vec::new(); dim];
        for (i, k) in keys.into_iter().enumerate() {
            per[(i / inner) % dim].push(k);
        }
        let most = per
            .into_iter()
            .map(|mut v| {
                v.sort_unstable();
                v.dedup();
                v.len()
            })
            .max()
            .unwrap_or(0);
        out.push((t.name.clone(), most));
    }
    out
}

//! Quantization-aware fine-tuning of a trained net, and its full-integer export.
//!
//! The QAT graph is the one the converter will produce: batch norm is frozen (running
//! statistics) and folded into each conv/depthwise as TFLite folds it,
//! `w_f = w·γ/√(σ²+ε)`, `b_f = β − μ·γ/√(σ²+ε)`; the folded weights are fake-quantized
//! per output channel (symmetric int8, narrow range, `max|w_f|/127` — the quantizer's
//! `MaxAbs` rule, so the exported int8 weights are exactly the ones trained with), and
//! every tensor the integer model quantizes (input, each folded conv's activated
//! output, ADD, pool, logits) is fake-quantized over a moving-average range (decay
//! 0.999, TensorFlow's nudging). Gradients pass straight through the fake-quant
//! inside the ranges; they reach `w`, `γ` and `β` through the folding.
//!
//! Export: the folded float model ([`crate::export`]) quantized by the engine's PTQ
//! quantizer with the QAT ranges instead of calibration ranges.

use std::ops::ControlFlow;

use quantfarm_engine::Result;
use quantfarm_engine::ir::Model;
use quantfarm_engine::quant::calibrate::{TensorRange, TensorRanges};
use quantfarm_engine::quant::ptq::{
    IoType, PtqOptions, PtqSummary, QuantMode, WeightRange, quantize_model,
};

use crate::data::ImageSet;
use crate::export;
use crate::net::{Kind, Net, Weights};
use crate::ops::fake_quant::{self, EmaRange};
use crate::ops::{Geom, bn, conv, dense, depthwise, loss, pool};
use crate::optim::{Schedule, Sgd};
use crate::rng::Rng;

/// Is node `i`'s output a quantized tensor of the integer model?
fn quantized_output(kind: &Kind) -> bool {
    !matches!(kind, Kind::Conv { .. } | Kind::Depthwise { .. })
}

/// Per-node fake-quant ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranges {
    pub of: Vec<EmaRange>,
}

impl Ranges {
    pub fn new(net: &Net) -> Ranges {
        Ranges {
            of: vec![EmaRange::new(); net.nodes.len()],
        }
    }
}

/// What the QAT forward pass keeps.
struct Tape {
    n: usize,
    /// Node outputs after fake-quant.
    outs: Vec<Vec<f32>>,
    /// Node outputs before fake-quant (for the straight-through mask).
    raw: Vec<Vec<f32>>,
    /// Pre-activation of each folded conv (BN nodes), for the activation mask.
    pre: Vec<Vec<f32>>,
    /// Fake-quantized folded weights (BN nodes, dense).
    wq: Vec<Vec<f32>>,
}

fn geom(net: &Net, conv_node: usize, n: usize) -> Geom {
    let node = &net.nodes[conv_node];
    let [h, w, c] = net.nodes[node.inputs[0]].shape;
    match node.kind {
        Kind::Conv { k, stride, .. } | Kind::Depthwise { k, stride, .. } => {
            Geom::same(n, h, w, c, k, stride)
        }
        _ => unreachable!("a folded batch norm follows a conv"),
    }
}

/// The folding of BN node `kind` with its running statistics: `(scale, shift)`.
fn fold(w: &Weights, kind: &Kind) -> (Vec<f32>, Vec<f32>) {
    match *kind {
        Kind::BnAct {
            gamma, beta, stat, ..
        } => bn::affine(
            &w.params[gamma],
            &w.params[beta],
            &w.running_mean[stat],
            &w.running_var[stat],
        ),
        _ => unreachable!("only BN nodes fold"),
    }
}

fn act_range(a: bn::Act) -> (f32, f32) {
    match a {
        bn::Act::None => (f32::NEG_INFINITY, f32::INFINITY),
        bn::Act::Relu => (0.0, f32::INFINITY),
        bn::Act::Relu6 => (0.0, 6.0),
    }
}

fn min_max(v: &[f32]) -> (f32, f32) {
    v.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        })
}

/// QAT forward over `n` images. Ranges not yet initialised are taken from this
/// batch (first step). Returns the tape and each quantized node's batch min/max.
/// With `fq` false nothing is fake-quantized: the plain float graph with frozen batch
/// norm (pruning's fine-tuning shares this pass).
fn forward(
    net: &Net,
    w: &Weights,
    r: &Ranges,
    x: Vec<f32>,
    n: usize,
    fq: bool,
) -> (Tape, Vec<Option<(f32, f32)>>) {
    let len = net.nodes.len();
    let mut t = Tape {
        n,
        outs: Vec::with_capacity(len),
        raw: vec![Vec::new(); len],
        pre: vec![Vec::new(); len],
        wq: vec![Vec::new(); len],
    };
    let mut seen = vec![None; len];
    let mut col = Vec::new();
    let mut x = Some(x);
    for (i, node) in net.nodes.iter().enumerate() {
        let mut y = vec![0f32; n * node.len()];
        match &node.kind {
            Kind::Input => y = x.take().expect("one input"),
            Kind::Conv { .. } | Kind::Depthwise { .. } => y = Vec::new(),
            Kind::BnAct { act, .. } => {
                let src = node.inputs[0];
                let g = geom(net, src, n);
                let input = &t.outs[net.nodes[src].inputs[0]];
                let (scale, shift) = fold(w, &node.kind);
                let c = node.shape[2];
                let wp = match net.nodes[src].kind {
                    Kind::Conv { w, .. } | Kind::Depthwise { w, .. } => w,
                    _ => unreachable!(),
                };
                let folded: Vec<f32> = w.params[wp]
                    .chunks_exact(c)
                    .flat_map(|row| row.iter().zip(&scale).map(|(a, s)| a * s))
                    .collect();
                let wq = if fq {
                    let mut wq = vec![0f32; folded.len()];
                    fake_quant::weights_per_channel(&folded, c, &mut wq);
                    wq
                } else {
                    folded
                };
                let mut z = vec![0f32; n * node.len()];
                match net.nodes[src].kind {
                    Kind::Conv { .. } => conv::forward(&g, c, input, &wq, &mut z, &mut col),
                    _ => depthwise::forward(&g, input, &wq, &mut z),
                }
                let (lo, hi) = act_range(*act);
                for (row, yr) in z.chunks_exact_mut(c).zip(y.chunks_exact_mut(c)) {
                    for ((zv, yv), b) in row.iter_mut().zip(yr.iter_mut()).zip(&shift) {
                        *zv += b;
                        *yv = zv.max(lo).min(hi);
                    }
                }
                t.pre[i] = z;
                t.wq[i] = wq;
            }
            Kind::Add => {
                pool::add_forward(&t.outs[node.inputs[0]], &t.outs[node.inputs[1]], &mut y)
            }
            Kind::Mul => {
                pool::mul_forward(&t.outs[node.inputs[0]], &t.outs[node.inputs[1]], &mut y)
            }
            Kind::Gap => {
                let [h, wd, c] = net.nodes[node.inputs[0]].shape;
                pool::gap_forward(n, h * wd, c, &t.outs[node.inputs[0]], &mut y)
            }
            Kind::Dense { w: wp, b } => {
                let cin = net.nodes[node.inputs[0]].len();
                let cout = node.shape[2];
                let wq = if fq {
                    let mut wq = vec![0f32; w.params[*wp].len()];
                    fake_quant::weights_per_channel(&w.params[*wp], cout, &mut wq);
                    wq
                } else {
                    w.params[*wp].clone()
                };
                dense::forward(
                    n,
                    cin,
                    cout,
                    &t.outs[node.inputs[0]],
                    &wq,
                    &w.params[*b],
                    &mut y,
                );
                t.wq[i] = wq;
            }
        }
        if fq && quantized_output(&node.kind) {
            let mm = min_max(&y);
            seen[i] = Some(mm);
            let range = if r.of[i].initialized {
                (r.of[i].min, r.of[i].max)
            } else {
                mm
            };
            let mut q = vec![0f32; y.len()];
            fake_quant::activations_forward(&y, range.0, range.1, &mut q);
            t.raw[i] = y;
            t.outs.push(q);
        } else {
            t.outs.push(y);
        }
    }
    (t, seen)
}

/// QAT backward: gradients of every parameter (zero for frozen BN statistics).
fn backward(
    net: &Net,
    w: &Weights,
    r: &Ranges,
    t: Tape,
    dlogits: Vec<f32>,
    fq: bool,
) -> Vec<Vec<f32>> {
    let n = t.n;
    let mut grads: Vec<Vec<f32>> = net.params.iter().map(|p| vec![0f32; p.len]).collect();
    let mut d: Vec<Option<Vec<f32>>> = vec![None; net.nodes.len()];
    *d.last_mut().expect("non-empty") = Some(dlogits);
    let mut col = Vec::new();
    for (i, node) in net.nodes.iter().enumerate().rev() {
        let Some(mut dy) = d[i].take() else { continue };
        if fq && quantized_output(&node.kind) {
            // Straight through the fake-quant, inside its range.
            let range = if r.of[i].initialized {
                (r.of[i].min, r.of[i].max)
            } else {
                min_max(&t.raw[i])
            };
            let mut g = vec![0f32; dy.len()];
            fake_quant::activations_backward(&t.raw[i], range.0, range.1, &dy, &mut g);
            dy = g;
        }
        let slot = |d: &mut [Option<Vec<f32>>], j: usize| -> Vec<f32> {
            d[j].take()
                .unwrap_or_else(|| vec![0f32; n * net.nodes[j].len()])
        };
        match &node.kind {
            Kind::Input | Kind::Conv { .. } | Kind::Depthwise { .. } => {}
            Kind::BnAct {
                gamma,
                beta,
                stat,
                act,
            } => {
                let src = node.inputs[0];
                let inp = net.nodes[src].inputs[0];
                let g = geom(net, src, n);
                let c = node.shape[2];
                let (lo, hi) = act_range(*act);
                let mut dz = dy;
                for (dv, zv) in dz.iter_mut().zip(&t.pre[i]) {
                    if !(*zv > lo && *zv < hi) {
                        *dv = 0.0;
                    }
                }
                let mut db = vec![0f32; c];
                for row in dz.chunks_exact(c) {
                    db.iter_mut().zip(row).for_each(|(a, b)| *a += b);
                }
                let wp = match net.nodes[src].kind {
                    Kind::Conv { w, .. } | Kind::Depthwise { w, .. } => w,
                    _ => unreachable!(),
                };
                let mut dwf = vec![0f32; w.params[wp].len()];
                let mut dx = (inp != 0).then(|| slot(&mut d, inp));
                match net.nodes[src].kind {
                    Kind::Conv { .. } => conv::backward(
                        &g,
                        c,
                        &t.outs[inp],
                        &t.wq[i],
                        &dz,
                        dx.as_deref_mut(),
                        &mut dwf,
                        &mut col,
                    ),
                    _ => {
                        let mut tmp;
                        let dxs = match dx.as_deref_mut() {
                            Some(s) => s,
                            None => {
                                tmp = vec![0f32; t.outs[inp].len()];
                                &mut tmp
                            }
                        };
                        depthwise::backward(&g, &t.outs[inp], &t.wq[i], &dz, dxs, &mut dwf)
                    }
                }
                if dx.is_some() {
                    d[inp] = dx;
                }
                // Through the folding: w_f = w·s, s = γ/√(σ²+ε), b_f = β − μ·s.
                let inv: Vec<f32> = w.running_var[*stat]
                    .iter()
                    .map(|v| 1.0 / (v + bn::EPS).sqrt())
                    .collect();
                let gm = &w.params[*gamma];
                let scale: Vec<f32> = gm.iter().zip(&inv).map(|(g, i)| g * i).collect();
                let wv = &w.params[wp];
                let mut dgam = vec![0f32; c];
                for ((dwr, wr), gwr) in dwf
                    .chunks_exact(c)
                    .zip(wv.chunks_exact(c))
                    .zip(grads[wp].chunks_exact_mut(c))
                {
                    for ch in 0..c {
                        gwr[ch] += dwr[ch] * scale[ch];
                        dgam[ch] += dwr[ch] * wr[ch] * inv[ch];
                    }
                }
                let mu = &w.running_mean[*stat];
                for ch in 0..c {
                    grads[*gamma][ch] += dgam[ch] - db[ch] * mu[ch] * inv[ch];
                    grads[*beta][ch] += db[ch];
                }
            }
            Kind::Add => {
                for &src in &node.inputs {
                    match &mut d[src] {
                        Some(acc) => acc.iter_mut().zip(&dy).for_each(|(a, b)| *a += b),
                        s => *s = Some(dy.clone()),
                    }
                }
            }
            Kind::Mul => {
                let (a, b) = (node.inputs[0], node.inputs[1]);
                let mut da = slot(&mut d, a);
                pool::mul_backward(&dy, &t.outs[b], &mut da);
                d[a] = Some(da);
                let mut db = slot(&mut d, b);
                pool::mul_backward(&dy, &t.outs[a], &mut db);
                d[b] = Some(db);
            }
            Kind::Gap => {
                let src = node.inputs[0];
                let [h, wd, c] = net.nodes[src].shape;
                let mut dx = slot(&mut d, src);
                pool::gap_backward(n, h * wd, c, &dy, &mut dx);
                d[src] = Some(dx);
            }
            Kind::Dense { w: wp, b } => {
                let src = node.inputs[0];
                let cin = net.nodes[src].len();
                let cout = node.shape[2];
                let mut dx = slot(&mut d, src);
                let (mut gw, mut gb) = (vec![0f32; w.params[*wp].len()], vec![0f32; cout]);
                dense::backward(
                    n,
                    cin,
                    cout,
                    &t.outs[src],
                    &t.wq[i],
                    &dy,
                    &mut dx,
                    &mut gw,
                    &mut gb,
                );
                grads[*wp].iter_mut().zip(&gw).for_each(|(a, v)| *a += v);
                grads[*b].iter_mut().zip(&gb).for_each(|(a, v)| *a += v);
                d[src] = Some(dx);
            }
        }
    }
    grads
}

/// Fine-tuning settings.
#[derive(Debug, Clone)]
pub struct QatConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub seed: u64,
}

impl Default for QatConfig {
    fn default() -> Self {
        QatConfig {
            epochs: 1,
            batch: 64,
            lr: 0.005,
            momentum: 0.9,
            weight_decay: 5e-5,
            seed: 1,
        }
    }
}

/// Fine-tune `w` with fake-quant on `data` (augmented), micro-batches of 32 on
/// `threads` threads; returns the ranges. `progress(step, steps, mean loss)` runs after
/// every step; returning `Break` stops the fine-tuning, and then `None` is returned.
pub fn finetune(
    net: &Net,
    w: &mut Weights,
    data: &ImageSet,
    cfg: &QatConfig,
    threads: usize,
    progress: impl FnMut(usize, usize, f64) -> ControlFlow<()>,
) -> Option<Ranges> {
    finetune_with(net, w, data, cfg, threads, true, |_, _, _, _| {}, progress)
}

/// When a [`finetune_with`] hook runs: before the step's forward pass or after its
/// optimizer update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Before,
    After,
}

/// The fine-tuning loop, with fake quantization (`fq`) or without (frozen batch norm,
/// float weights), and `hook(phase, global step, weights, sgd)` around every step.
#[allow(clippy::too_many_arguments)]
pub(crate) fn finetune_with(
    net: &Net,
    w: &mut Weights,
    data: &ImageSet,
    cfg: &QatConfig,
    threads: usize,
    fq: bool,
    mut hook: impl FnMut(Phase, usize, &mut Weights, &mut Sgd),
    mut progress: impl FnMut(usize, usize, f64) -> ControlFlow<()>,
) -> Option<Ranges> {
    crate::trainer::keep_freed_memory();
    let mut ranges = Ranges::new(net);
    let steps = data.len() / cfg.batch;
    let total = steps * cfg.epochs;
    let sched = Schedule {
        peak: cfg.lr,
        warmup: 1,
        total: total.max(1),
    };
    let sizes: Vec<usize> = net.params.iter().map(|p| p.len).collect();
    let decay: Vec<bool> = net.params.iter().map(|p| p.decay).collect();
    let mut sgd = Sgd::new(&sizes, cfg.momentum, true, cfg.weight_decay);
    let mut master = Rng::new(cfg.seed);
    let mb = 32.min(cfg.batch);
    let scale = 1.0 / cfg.batch as f32;
    let k = net.classes();
    let mut loss_sum = 0f64;
    let mut seen = 0usize;
    for epoch in 0..cfg.epochs {
        let key = master.next_u64();
        let mut order: Vec<usize> = (0..data.len()).collect();
        Rng::derive(key, &[1]).shuffle(&mut order);
        let aug = Rng::derive(key, &[2]).next_u64();
        for step in 0..steps {
            hook(Phase::Before, epoch * steps + step, w, &mut sgd);
            let idx = &order[step * cfg.batch..(step + 1) * cfg.batch];
            let chunks: Vec<&[usize]> = idx.chunks(mb).collect();
            let (wr, rr) = (&*w, &ranges);
            let run = |ids: &[usize]| {
                let x = data.batch(ids, Some(aug));
                let labels: Vec<u8> = ids.iter().map(|&i| data.labels[i]).collect();
                let (tape, mm) = forward(net, wr, rr, x, ids.len(), fq);
                let mut dl = vec![0f32; ids.len() * k];
                let logits = tape.outs.last().expect("non-empty");
                let (l, _) = loss::softmax_xent(ids.len(), k, logits, &labels, scale, &mut dl);
                (l, backward(net, wr, rr, tape, dl, fq), mm)
            };
            let results: Vec<_> = std::thread::scope(|s| {
                let t = threads.clamp(1, chunks.len());
                let handles: Vec<_> = (0..t)
                    .map(|ti| {
                        let (chunks, run) = (&chunks, &run);
                        s.spawn(move || {
                            (ti..chunks.len())
                                .step_by(t)
                                .map(|c| (c, run(chunks[c])))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                let mut all: Vec<_> = handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("QAT thread panicked"))
                    .collect();
                all.sort_by_key(|(c, _)| *c);
                all.into_iter().map(|(_, r)| r).collect()
            });
            let mut grads: Option<Vec<Vec<f32>>> = None;
            for (l, g, mm) in results {
                loss_sum += l;
                match &mut grads {
                    None => grads = Some(g),
                    Some(acc) => {
                        for (a, v) in acc.iter_mut().zip(&g) {
                            a.iter_mut().zip(v).for_each(|(x, y)| *x += y);
                        }
                    }
                }
                for (r, m) in ranges.of.iter_mut().zip(mm) {
                    if let Some((lo, hi)) = m {
                        r.update(&[lo, hi]);
                    }
                }
            }
            seen += cfg.batch;
            let lr = sched.lr(epoch * steps + step);
            sgd.step(&mut w.params, &grads.expect("micro-batches"), &decay, lr);
            hook(Phase::After, epoch * steps + step, w, &mut sgd);
            if progress(epoch * steps + step + 1, total, loss_sum / seen as f64).is_break() {
                return None;
            }
        }
    }
    Some(ranges)
}

/// Top-1 of the QAT graph (fake-quant with the ranges) on `data`.
pub fn evaluate(net: &Net, w: &Weights, r: &Ranges, data: &ImageSet) -> f64 {
    let mut hits = 0usize;
    let k = net.classes();
    let idx: Vec<usize> = (0..data.len()).collect();
    for ids in idx.chunks(100) {
        let (tape, _) = forward(net, w, r, data.batch(ids, None), ids.len(), true);
        let logits = tape.outs.last().expect("non-empty");
        for (b, &i) in ids.iter().enumerate() {
            let z = &logits[b * k..(b + 1) * k];
            let arg = (0..k)
                .max_by(|&x, &y| z[x].total_cmp(&z[y]))
                .expect("k > 0");
            hits += usize::from(arg == usize::from(data.labels[i]));
        }
    }
    hits as f64 / data.len().max(1) as f64
}

/// The full-integer model: folded float export, quantized with the QAT ranges and
/// the max-abs weight rule (int8 activations, int8 per-channel weights, int32 biases).
pub fn export_int8(net: &Net, w: &Weights, r: &Ranges, io: IoType) -> Result<(Model, PtqSummary)> {
    let ex = export::to_model_mapped(net, w)?;
    let g = ex.model.main();
    let mut ranges = TensorRanges {
        ranges: vec![None; g.tensors.len()],
        samples: 1,
    };
    for (i, t) in ex.tensor_of.iter().enumerate() {
        if let (Some(t), true) = (t, r.of[i].initialized) {
            let (lo, hi, _) = fake_quant::nudge(r.of[i].min, r.of[i].max);
            ranges.ranges[*t] = Some(TensorRange { min: lo, max: hi });
        }
    }
    ranges.ranges[ex.probabilities] = Some(TensorRange { min: 0.0, max: 1.0 });
    let opts = PtqOptions {
        io,
        weight_range: WeightRange::MaxAbs,
        ..PtqOptions::new(QuantMode::Int8)
    };
    quantize_model(&ex.model, &opts, Some(&ranges))
}

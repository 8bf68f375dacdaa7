//! Batch normalisation over `[M, C]` rows (M = N·H·W) fused with its activation:
//! `y = act(γ·(x − μ)/√(σ² + ε) + β)`. Training mode normalises with the batch's own
//! mean and (biased) variance; inference uses the running statistics. The backward
//! pass recomputes `x̂` and the activation mask from `x`, so only `x` is kept.

/// Keras' default epsilon (TFLite exports fold it into the conv).
pub const EPS: f32 = 1e-3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    Relu,
    Relu6,
}

impl Act {
    /// The clamp range `[lo, hi]` of the activation.
    #[inline]
    fn range(self) -> (f32, f32) {
        match self {
            Act::None => (f32::NEG_INFINITY, f32::INFINITY),
            Act::Relu => (0.0, f32::INFINITY),
            Act::Relu6 => (0.0, 6.0),
        }
    }
}

/// Rows summed in f32 before being added to the f64 totals (keeps the inner loops
/// vectorised over channels while bounding the rounding error).
const BLOCK: usize = 64;

/// Per-channel batch statistics of one training forward pass.
#[derive(Debug, Clone, Default)]
pub struct BatchStats {
    pub mean: Vec<f32>,
    /// Biased variance (divided by M).
    pub var: Vec<f32>,
}

/// Mean and biased variance per channel (two passes; f32 partial sums over
/// blocks of rows, f64 totals).
pub fn batch_stats(m: usize, c: usize, x: &[f32]) -> BatchStats {
    let x = &x[..m * c];
    let mut sum = vec![0f64; c];
    let mut part = vec![0f32; c];
    for block in x.chunks(BLOCK * c) {
        part.fill(0.0);
        for row in block.chunks_exact(c) {
            part.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
        }
        sum.iter_mut()
            .zip(&part)
            .for_each(|(s, &p)| *s += f64::from(p));
    }
    let mean: Vec<f32> = sum.iter().map(|s| (s / m as f64) as f32).collect();
    let mut sq = vec![0f64; c];
    for block in x.chunks(BLOCK * c) {
        part.fill(0.0);
        for row in block.chunks_exact(c) {
            for ((s, &v), &mu) in part.iter_mut().zip(row).zip(&mean) {
                let d = v - mu;
                *s += d * d;
            }
        }
        sq.iter_mut()
            .zip(&part)
            .for_each(|(s, &p)| *s += f64::from(p));
    }
    BatchStats {
        mean,
        var: sq.iter().map(|s| (s / m as f64) as f32).collect(),
    }
}

/// `y = act(γ·(x − mean)/√(var + ε) + β)` with the given statistics.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    m: usize,
    c: usize,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    act: Act,
    y: &mut [f32],
) {
    let (scale, shift) = affine(gamma, beta, mean, var);
    let (lo, hi) = act.range();
    for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)).take(m) {
        for (((o, &v), &s), &t) in yr.iter_mut().zip(xr).zip(&scale).zip(&shift) {
            *o = (v * s + t).max(lo).min(hi);
        }
    }
}

/// The per-channel `scale, shift` with `bn(x) = x·scale + shift` (the folding too).
pub fn affine(gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = gamma
        .iter()
        .zip(var)
        .map(|(g, v)| g / (v + EPS).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    (scale, shift)
}

/// Training-mode backward (statistics were the batch's own): adds into `dx`,
/// `dgamma`, `dbeta`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    m: usize,
    c: usize,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    st: &BatchStats,
    act: Act,
    dy: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let inv: Vec<f32> = st.var.iter().map(|v| 1.0 / (v + EPS).sqrt()).collect();
    // z = x·scale + shift is the pre-activation; x̂ = x·inv − mean·inv.
    let (scale, shift) = affine(gamma, beta, &st.mean, &st.var);
    let off: Vec<f32> = st.mean.iter().zip(&inv).map(|(m, i)| m * i).collect();
    let (lo, hi) = act.range();
    let (x, dy) = (&x[..m * c], &dy[..m * c]);
    // Pass 1: dz = dy·act'(z) (dy where lo < z < hi, else 0; identity passes
    // everything); sums of dz and dz·x̂.
    let mut sum_dz = vec![0f64; c];
    let mut sum_dzx = vec![0f64; c];
    let (mut p_dz, mut p_dzx) = (vec![0f32; c], vec![0f32; c]);
    for (xb, db) in x.chunks(BLOCK * c).zip(dy.chunks(BLOCK * c)) {
        p_dz.fill(0.0);
        p_dzx.fill(0.0);
        for (xr, dyr) in xb.chunks_exact(c).zip(db.chunks_exact(c)) {
            let it = xr
                .iter()
                .zip(dyr)
                .zip(&scale)
                .zip(&shift)
                .zip(&inv)
                .zip(&off);
            for ((((((&xv, &dv), &s), &t), &i), &o), (pz, pzx)) in
                it.zip(p_dz.iter_mut().zip(p_dzx.iter_mut()))
            {
                let z = xv * s + t;
                let d = if z > lo && z < hi { dv } else { 0.0 };
                *pz += d;
                *pzx += d * (xv * i - o);
            }
        }
        for ch in 0..c {
            sum_dz[ch] += f64::from(p_dz[ch]);
            sum_dzx[ch] += f64::from(p_dzx[ch]);
        }
    }
    for ch in 0..c {
        dbeta[ch] += sum_dz[ch] as f32;
        dgamma[ch] += sum_dzx[ch] as f32;
    }
    // Pass 2 (dz recomputed): dx += γ/σ · (dz − mean(dz) − x̂·mean(dz·x̂)).
    let mf = m as f64;
    let a: Vec<f32> = (0..c).map(|ch| gamma[ch] * inv[ch]).collect();
    let mdz: Vec<f32> = sum_dz.iter().map(|s| (s / mf) as f32).collect();
    let mdzx: Vec<f32> = sum_dzx.iter().map(|s| (s / mf) as f32).collect();
    for ((dxr, xr), dyr) in dx
        .chunks_exact_mut(c)
        .zip(x.chunks_exact(c))
        .zip(dy.chunks_exact(c))
    {
        let coef = scale
            .iter()
            .zip(&shift)
            .zip(&inv)
            .zip(&off)
            .zip(a.iter().zip(mdz.iter().zip(&mdzx)));
        for (((dxv, &xv), &dv), ((((&s, &t), &i), &o), (&av, (&mz, &mzx)))) in
            dxr.iter_mut().zip(xr).zip(dyr).zip(coef)
        {
            let z = xv * s + t;
            let d = if z > lo && z < hi { dv } else { 0.0 };
            *dxv += av * (d - mz - (xv * i - o) * mzx);
        }
    }
}

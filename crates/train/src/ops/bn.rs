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
    #[inline]
    fn apply(self, z: f32) -> f32 {
        match self {
            Act::None => z,
            Act::Relu => z.max(0.0),
            Act::Relu6 => z.clamp(0.0, 6.0),
        }
    }
    /// Derivative at the pre-activation `z` (0 at the kinks' flat side).
    #[inline]
    fn pass(self, z: f32) -> bool {
        match self {
            Act::None => true,
            Act::Relu => z > 0.0,
            Act::Relu6 => z > 0.0 && z < 6.0,
        }
    }
}

/// Per-channel batch statistics of one training forward pass.
#[derive(Debug, Clone, Default)]
pub struct BatchStats {
    pub mean: Vec<f32>,
    /// Biased variance (divided by M).
    pub var: Vec<f32>,
}

/// Mean and biased variance per channel (two passes, f64 sums).
pub fn batch_stats(m: usize, c: usize, x: &[f32]) -> BatchStats {
    let mut sum = vec![0f64; c];
    for row in x.chunks_exact(c).take(m) {
        sum.iter_mut()
            .zip(row)
            .for_each(|(s, &v)| *s += f64::from(v));
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / m as f64).collect();
    let mut sq = vec![0f64; c];
    for row in x.chunks_exact(c).take(m) {
        for ((s, &v), &mu) in sq.iter_mut().zip(row).zip(&mean) {
            let d = f64::from(v) - mu;
            *s += d * d;
        }
    }
    BatchStats {
        mean: mean.iter().map(|&v| v as f32).collect(),
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
    for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)).take(m) {
        for (((o, &v), &s), &t) in yr.iter_mut().zip(xr).zip(&scale).zip(&shift) {
            *o = act.apply(v * s + t);
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
    // Pass 1: dz = dy·act'(z); sums of dz and dz·x̂.
    let mut dz = vec![0f32; m * c];
    let mut sum_dz = vec![0f64; c];
    let mut sum_dzx = vec![0f64; c];
    for ((dzr, xr), dyr) in dz
        .chunks_exact_mut(c)
        .zip(x.chunks_exact(c))
        .zip(dy.chunks_exact(c))
    {
        for ch in 0..c {
            let xh = (xr[ch] - st.mean[ch]) * inv[ch];
            let z = gamma[ch] * xh + beta[ch];
            let d = if act.pass(z) { dyr[ch] } else { 0.0 };
            dzr[ch] = d;
            sum_dz[ch] += f64::from(d);
            sum_dzx[ch] += f64::from(d * xh);
        }
    }
    for ch in 0..c {
        dbeta[ch] += sum_dz[ch] as f32;
        dgamma[ch] += sum_dzx[ch] as f32;
    }
    // Pass 2: dx = γ/σ · (dz − mean(dz) − x̂·mean(dz·x̂)).
    let mf = m as f64;
    let a: Vec<f32> = (0..c).map(|ch| gamma[ch] * inv[ch]).collect();
    let mdz: Vec<f32> = sum_dz.iter().map(|s| (s / mf) as f32).collect();
    let mdzx: Vec<f32> = sum_dzx.iter().map(|s| (s / mf) as f32).collect();
    for ((dxr, xr), dzr) in dx
        .chunks_exact_mut(c)
        .zip(x.chunks_exact(c))
        .zip(dz.chunks_exact(c))
    {
        for ch in 0..c {
            let xh = (xr[ch] - st.mean[ch]) * inv[ch];
            dxr[ch] += a[ch] * (dzr[ch] - mdz[ch] - xh * mdzx[ch]);
        }
    }
}

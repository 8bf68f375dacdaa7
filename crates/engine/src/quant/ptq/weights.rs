//! Weight and bias quantization (quantization spec §3, §6, §16).

/// How the scale of symmetric int8 weights is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightRange {
    /// `s_c = max|w_c| / 127`, as TFLite's converter does.
    MaxAbs,
    /// Per channel, the scale with the smallest squared rounding error among the
    /// max-abs scale, clipped scales (up to half the range) and the steps of a grid the
    /// weights already lie on. The grid matters for models dequantized from a per-tensor
    /// 8-bit file: re-rounding their weights onto a per-channel max-abs grid adds error
    /// that the original step (or a multiple of it) does not.
    Mse,
}

impl WeightRange {
    pub fn parse(s: &str) -> crate::error::Result<WeightRange> {
        match s {
            "maxabs" => Ok(WeightRange::MaxAbs),
            "mse" => Ok(WeightRange::Mse),
            other => Err(crate::error::EngineError::bad_input(format!(
                "unknown weight range method '{other}' (maxabs, mse)"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WeightRange::MaxAbs => "maxabs",
            WeightRange::Mse => "mse",
        }
    }
}

/// Symmetric int8 quantization of `w` along `axis` of `shape` (per channel) or per
/// tensor (`axis = None`) with max-abs scales: `h = max|w_c|`, `s_c = h / 127`,
/// `q = clamp(round(w · (127 / h)), −127, 127)` with the inverse in f32.
/// An all-zero channel gets scale 1 (its values are 0 either way) so that no kernel
/// divides by a zero scale.
pub fn quantize_weights_symmetric(
    w: &[f32],
    shape: &[usize],
    axis: Option<usize>,
) -> (Vec<i8>, Vec<f32>) {
    quantize_weights_symmetric_with(w, shape, axis, WeightRange::MaxAbs)
}

/// [`quantize_weights_symmetric`] with the scale chosen by `range`.
pub fn quantize_weights_symmetric_with(
    w: &[f32],
    shape: &[usize],
    axis: Option<usize>,
    range: WeightRange,
) -> (Vec<i8>, Vec<f32>) {
    let (channels, inner) = channel_layout(shape, axis);
    let mut hmax = vec![0f32; channels];
    for_each_channel(w.len(), channels, inner, |i, c| {
        hmax[c] = hmax[c].max(w[i].abs());
    });
    let mut q = vec![0i8; w.len()];
    if range == WeightRange::Mse {
        let step = tensor_grid_step(w);
        let mut per_channel: Vec<Vec<f32>> = vec![Vec::new(); channels];
        for_each_channel(w.len(), channels, inner, |i, c| per_channel[c].push(w[i]));
        let scales: Vec<f32> = per_channel
            .iter()
            .zip(&hmax)
            .map(|(v, &h)| mse_scale(v, h, step))
            .collect();
        let inv: Vec<f32> = scales.iter().map(|&s| 1.0 / s).collect();
        for_each_channel(w.len(), channels, inner, |i, c| {
            q[i] = (w[i] * inv[c]).round().clamp(-127.0, 127.0) as i8;
        });
        return (q, scales);
    }
    let scales: Vec<f32> = hmax
        .iter()
        .map(|&h| if h > 0.0 { h / 127.0 } else { 1.0 })
        .collect();
    let inv: Vec<f32> = hmax
        .iter()
        .map(|&h| if h > 0.0 { 127.0 / h } else { 0.0 })
        .collect();
    for_each_channel(w.len(), channels, inner, |i, c| {
        q[i] = (w[i] * inv[c]).round().clamp(-127.0, 127.0) as i8;
    });
    (q, scales)
}

/// Squared error of `v` rounded onto the symmetric int8 grid of step `s`.
fn rounding_error(v: &[f32], s: f32) -> f64 {
    let inv = 1.0 / s;
    v.iter()
        .map(|&x| {
            let r = (x * inv).round().clamp(-127.0, 127.0) * s;
            let d = (r - x) as f64;
            d * d
        })
        .sum()
}

/// The MSE-optimal scale of one channel (see [`WeightRange::Mse`]); `h = max|v|`.
/// Candidates: `h/127` first (kept on ties), `h/127 · (1 − j/32)` for `j = 1..16`,
/// the tensor's grid step and its smallest multiple that spans the channel, and the
/// channel's smallest non-zero magnitude when it divides the channel evenly.
fn mse_scale(v: &[f32], h: f32, tensor_step: Option<f32>) -> f32 {
    if h <= 0.0 || !h.is_finite() {
        return 1.0;
    }
    let maxabs = h / 127.0;
    let mut candidates: Vec<f32> = (1..=16).map(|j| maxabs * (1.0 - j as f32 / 32.0)).collect();
    if let Some(s) = tensor_step {
        let n = (h / s).round();
        candidates.push(s);
        if n > 127.0 {
            candidates.push(s * (n / 127.0).ceil());
        }
    }
    let smallest = v
        .iter()
        .map(|x| x.abs())
        .filter(|&a| a > 0.0)
        .fold(f32::INFINITY, f32::min);
    if smallest.is_finite() && h / smallest <= 254.0 && on_grid(v, smallest) {
        candidates.push(smallest);
    }
    let mut best = (rounding_error(v, maxabs), maxabs);
    for s in candidates {
        if !(s > 0.0 && s.is_finite()) {
            continue;
        }
        let e = rounding_error(v, s);
        if e < best.0 {
            best = (e, s);
        }
    }
    best.1
}

/// Whether every value is (to f32 rounding) an integer multiple of `step`.
fn on_grid(v: &[f32], step: f32) -> bool {
    v.iter().all(|&x| {
        let k = x / step;
        (k - k.round()).abs() <= 1e-3
    })
}

/// The step of a uniform grid every value of the tensor lies on (a tensor dequantized
/// from a per-tensor 8-bit one: `w = S·(q − z)`), or `None`. The step is the smallest
/// gap between distinct values (or a small divisor of it), refined through the largest
/// magnitude so that its rounding error does not grow with the level count.
fn tensor_grid_step(w: &[f32]) -> Option<f32> {
    let mut sorted: Vec<f32> = w.iter().copied().filter(|x| x.is_finite()).collect();
    if sorted.len() < 2 || sorted.len() != w.len() {
        return None;
    }
    sorted.sort_by(f32::total_cmp);
    sorted.dedup();
    let gap = sorted
        .windows(2)
        .map(|p| p[1] - p[0])
        .filter(|&d| d > 0.0)
        .fold(f32::INFINITY, f32::min);
    let h = sorted[0].abs().max(sorted[sorted.len() - 1].abs());
    if !gap.is_finite() || h <= 0.0 {
        return None;
    }
    // The smallest gap is the step itself when two adjacent levels occur, as in any
    // sizeable tensor; a few divisors cover small ones.
    (1..=8).find_map(|j| {
        let levels = (h * j as f32 / gap).round();
        if !(1.0..=65_536.0).contains(&levels) {
            return None;
        }
        let step = h / levels;
        on_grid(&sorted, step).then_some(step)
    })
}

/// Requantize one channel of a symmetric int8 tensor with a new (wider) scale.
pub(crate) fn requantize_channel(
    w: &[f32],
    q: &mut [i8],
    shape: &[usize],
    axis: Option<usize>,
    channel: usize,
    scale: f32,
) {
    let (channels, inner) = channel_layout(shape, axis);
    let inv = 1.0 / scale;
    for_each_channel(w.len(), channels, inner, |i, c| {
        if c == channel {
            q[i] = (w[i] * inv).round().clamp(-127.0, 127.0) as i8;
        }
    });
}

/// Per-tensor asymmetric uint8 (TF1 scheme): range `[min(w,0), max(w,0)]`,
/// `s = (max − min)/255`, zero point `round(−min/s)` clamped to [0, 255].
/// Returns the values, scale and zero point.
pub fn quantize_weights_asymmetric_u8(w: &[f32]) -> (Vec<u8>, f32, i64) {
    let lo = w.iter().copied().fold(0f32, f32::min);
    let hi = w.iter().copied().fold(0f32, f32::max);
    let (scale, zp) = asymmetric_params(lo, hi, 0, 255);
    let inv = 1.0 / scale;
    let q = w
        .iter()
        .map(|&v| ((v * inv).round() + zp as f32).clamp(0.0, 255.0) as u8)
        .collect();
    (q, scale, zp)
}

/// Scale and zero point of an asymmetric range on `[qmin, qmax]` (spec §16): the
/// range is extended to include 0; a degenerate range gets scale 1.
pub(crate) fn asymmetric_params(lo: f32, hi: f32, qmin: i64, qmax: i64) -> (f32, i64) {
    let lo = lo.min(0.0);
    let hi = hi.max(0.0);
    let scale = (hi - lo) / (qmax - qmin) as f32;
    if scale.is_nan() || scale <= 0.0 || !scale.is_finite() {
        return (1.0, qmin.max(0).min(qmax));
    }
    let zp_real = qmin as f32 - lo / scale;
    let zp = if zp_real < qmin as f32 {
        qmin
    } else if zp_real > qmax as f32 {
        qmax
    } else {
        zp_real.round() as i64
    };
    (scale, zp)
}

/// Symmetric scale for `[lo, hi]` on `±qmax` (zero point 0); degenerate → 1.
pub(crate) fn symmetric_scale(lo: f32, hi: f32, qmax: f32) -> f32 {
    let s = lo.abs().max(hi.abs()) / qmax;
    if s > 0.0 && s.is_finite() { s } else { 1.0 }
}

/// Quantize a bias: `q = clamp(round(b · (1/s_c)), −limit, limit)`.
pub(crate) fn quantize_bias(b: &[f32], scales: &[f32], limit: i64) -> Vec<i64> {
    b.iter()
        .enumerate()
        .map(|(i, &v)| {
            let s = if scales.len() == 1 {
                scales[0]
            } else {
                scales[i]
            };
            let q = (v as f64 * (1.0 / s) as f64).round();
            q.clamp(-(limit as f64), limit as f64) as i64
        })
        .collect()
}

/// (channels, elements between consecutive channel steps) for per-axis iteration.
fn channel_layout(shape: &[usize], axis: Option<usize>) -> (usize, usize) {
    match axis {
        Some(a) if a < shape.len() => (shape[a].max(1), shape[a + 1..].iter().product()),
        _ => (1, 1),
    }
}

fn for_each_channel(n: usize, channels: usize, inner: usize, mut f: impl FnMut(usize, usize)) {
    let inner = inner.max(1);
    for i in 0..n {
        f(i, (i / inner) % channels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_per_channel() {
        // shape [2, 3]: channel 0 = first row.
        let w = [1.0, -0.5, 0.25, 0.0, 0.0, 0.0];
        let (q, s) = quantize_weights_symmetric(&w, &[2, 3], Some(0));
        assert_eq!(q, vec![127, -64, 32, 0, 0, 0]);
        assert_eq!(s, vec![1.0 / 127.0, 1.0]);
        // Depthwise layout: axis 3 is the last dim.
        let (q, s) = quantize_weights_symmetric(&[2.0, 1.0, -1.0, 0.5], &[1, 2, 1, 2], Some(3));
        assert_eq!(q, vec![127, 127, -64, 64]);
        assert_eq!(s, vec![2.0 / 127.0, 1.0 / 127.0]);
    }

    #[test]
    fn mse_recovers_a_per_tensor_grid() {
        // Two channels of a tensor dequantized from uint8 with step 0.02 and zero point
        // 100: max-abs rescales channel 1 (max 37 steps) onto a finer, misaligned grid;
        // MSE keeps the step and so represents every weight exactly.
        let s = 0.02f32;
        let ks: [i32; 8] = [-100, 3, 17, 155, -37, 5, 36, -2];
        let w: Vec<f32> = ks.iter().map(|&k| s * k as f32).collect();
        let (q, sc) = quantize_weights_symmetric_with(&w, &[2, 4], Some(0), WeightRange::Mse);
        assert!((sc[1] - s).abs() < 1e-7, "{sc:?}");
        assert_eq!(&q[4..], &[-37, 5, 36, -2]);
        // Channel 0 spans 155 steps: the grid step would clip 155, twice the step
        // halves odd values; whichever wins has less error than max-abs.
        let err = |sc: f32, q: &[i8], v: &[f32]| -> f32 {
            q.iter()
                .zip(v)
                .map(|(&a, &b)| (a as f32 * sc - b).powi(2))
                .sum()
        };
        let (qm, sm) = quantize_weights_symmetric(&w, &[2, 4], Some(0));
        assert!(err(sc[0], &q[..4], &w[..4]) <= err(sm[0], &qm[..4], &w[..4]));
        assert!(err(sc[1], &q[4..], &w[4..]) < 1e-12);
        assert!(err(sm[1], &qm[4..], &w[4..]) > 1e-8);
    }

    #[test]
    fn mse_never_worse_than_maxabs() {
        // Values on no grid: MSE may clip, but its squared error is never larger.
        let w: Vec<f32> = (0..512)
            .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * (1.0 + (i % 5) as f32))
            .collect();
        let (qa, sa) = quantize_weights_symmetric(&w, &[4, 128], Some(0));
        let (qb, sb) = quantize_weights_symmetric_with(&w, &[4, 128], Some(0), WeightRange::Mse);
        for c in 0..4 {
            let e = |q: &[i8], s: f32| -> f64 {
                q[c * 128..(c + 1) * 128]
                    .iter()
                    .zip(&w[c * 128..(c + 1) * 128])
                    .map(|(&a, &b)| ((a as f32 * s - b) as f64).powi(2))
                    .sum()
            };
            assert!(e(&qb, sb[c]) <= e(&qa, sa[c]) * (1.0 + 1e-6));
        }
        assert!(WeightRange::parse("bogus").is_err());
        assert_eq!(WeightRange::parse("mse").unwrap().name(), "mse");
    }

    #[test]
    fn asymmetric_u8_and_params() {
        let (q, s, zp) = quantize_weights_asymmetric_u8(&[-1.0, 0.0, 3.0]);
        assert_eq!(s, 4.0 / 255.0);
        assert_eq!(zp, 64);
        assert_eq!(q, vec![0, 64, 255]);
        let (s, zp) = asymmetric_params(0.0, 6.0, -128, 127);
        assert_eq!((s, zp), (6.0 / 255.0, -128));
        assert_eq!(asymmetric_params(0.0, 0.0, -128, 127), (1.0, 0));
    }

    #[test]
    fn bias_rounding() {
        assert_eq!(
            quantize_bias(&[1.0, -2.5], &[0.5], i32::MAX as i64),
            vec![2, -5]
        );
        assert_eq!(
            quantize_bias(&[1e12], &[1.0], i32::MAX as i64),
            vec![i32::MAX as i64]
        );
    }
}

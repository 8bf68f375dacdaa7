//! Weight and bias quantization (quantization spec §3, §6, §16).

/// Symmetric int8 quantization of `w` along `axis` of `shape` (per channel) or per
/// tensor (`axis = None`): `h = max|w_c|`, `s_c = h / 127`,
/// `q = clamp(round(w · (127 / h)), −127, 127)` with the inverse in f32.
/// An all-zero channel gets scale 1 (its values are 0 either way) so that no kernel
/// divides by a zero scale.
pub fn quantize_weights_symmetric(
    w: &[f32],
    shape: &[usize],
    axis: Option<usize>,
) -> (Vec<i8>, Vec<f32>) {
    let (channels, inner) = channel_layout(shape, axis);
    let mut hmax = vec![0f32; channels];
    for_each_channel(w.len(), channels, inner, |i, c| {
        hmax[c] = hmax[c].max(w[i].abs());
    });
    let scales: Vec<f32> = hmax
        .iter()
        .map(|&h| if h > 0.0 { h / 127.0 } else { 1.0 })
        .collect();
    let inv: Vec<f32> = hmax
        .iter()
        .map(|&h| if h > 0.0 { 127.0 / h } else { 0.0 })
        .collect();
    let mut q = vec![0i8; w.len()];
    for_each_channel(w.len(), channels, inner, |i, c| {
        q[i] = (w[i] * inv[c]).round().clamp(-127.0, 127.0) as i8;
    });
    (q, scales)
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

//! Fake quantization for quantization-aware training (groundwork: the kernels and
//! their straight-through gradients; not yet wired into the graph or the export).
//!
//! - Weights: per output channel, symmetric int8 on TFLite's narrow range [-127, 127],
//!   `scale_c = max|w_c| / 127` (TFMOT's default weight quantizer for conv/depthwise).
//!   The straight-through estimator passes the gradient unchanged (every weight lies
//!   inside its channel's range by construction).
//! - Activations: asymmetric 8-bit over a range `[min, max]` tracked by moving averages,
//!   with TensorFlow's `FakeQuantWithMinMaxVars` nudging (the zero point is rounded to
//!   an integer, and the range shifted so that 0.0 is exactly representable). The
//!   gradient passes where the input lies inside the nudged range and is 0 outside.

/// Fake-quantize weights whose output channel is the innermost index (our conv
/// `[k·k·Cin, Cout]` and depthwise `[k·k, C]` layouts): `out = round(w/s_c)·s_c`,
/// clamped to ±127 steps. Returns the per-channel scales (0 for an all-zero channel,
/// whose weights stay 0).
pub fn weights_per_channel(w: &[f32], channels: usize, out: &mut [f32]) -> Vec<f32> {
    let mut max = vec![0f32; channels];
    for row in w.chunks_exact(channels) {
        for (m, v) in max.iter_mut().zip(row) {
            *m = m.max(v.abs());
        }
    }
    let scale: Vec<f32> = max.iter().map(|m| m / 127.0).collect();
    for (orow, row) in out.chunks_exact_mut(channels).zip(w.chunks_exact(channels)) {
        for ((o, &v), &s) in orow.iter_mut().zip(row).zip(&scale) {
            *o = if s > 0.0 {
                (v / s).round().clamp(-127.0, 127.0) * s
            } else {
                0.0
            };
        }
    }
    scale
}

/// TensorFlow's nudged 8-bit range for `[min, max]`: `(nudged_min, nudged_max, scale)`.
pub fn nudge(min: f32, max: f32) -> (f32, f32, f32) {
    const QMIN: f32 = 0.0;
    const QMAX: f32 = 255.0;
    // A range must hold 0 and have some width.
    let (min, max) = (min.min(0.0), max.max(0.0));
    let max = if max - min < 1e-6 { min + 1e-6 } else { max };
    let scale = (max - min) / (QMAX - QMIN);
    let zp_from_min = QMIN - min / scale;
    let zp = if zp_from_min < QMIN {
        QMIN
    } else if zp_from_min > QMAX {
        QMAX
    } else {
        zp_from_min.round()
    };
    ((QMIN - zp) * scale, (QMAX - zp) * scale, scale)
}

/// `y = fake_quant(x)` over the nudged range of `[min, max]`.
pub fn activations_forward(x: &[f32], min: f32, max: f32, y: &mut [f32]) {
    let (lo, hi, scale) = nudge(min, max);
    let inv = 1.0 / scale;
    for (o, &v) in y.iter_mut().zip(x) {
        let c = v.clamp(lo, hi);
        *o = ((c - lo) * inv + 0.5).floor() * scale + lo;
    }
}

/// Straight-through gradient: adds `dy` into `dx` where `x` is inside the nudged range.
pub fn activations_backward(x: &[f32], min: f32, max: f32, dy: &[f32], dx: &mut [f32]) {
    let (lo, hi, _) = nudge(min, max);
    for ((d, &g), &v) in dx.iter_mut().zip(dy).zip(x) {
        if v >= lo && v <= hi {
            *d += g;
        }
    }
}

/// Moving-average range of an activation (TFMOT's `MovingAverageQuantizer`: the batch
/// min/max averaged with decay 0.999; the first batch sets it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmaRange {
    pub min: f32,
    pub max: f32,
    pub initialized: bool,
}

impl EmaRange {
    pub const DECAY: f32 = 0.999;

    pub fn new() -> EmaRange {
        EmaRange {
            min: 0.0,
            max: 0.0,
            initialized: false,
        }
    }

    pub fn update(&mut self, x: &[f32]) {
        let (lo, hi) = x
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if !lo.is_finite() || !hi.is_finite() {
            return;
        }
        if self.initialized {
            self.min = Self::DECAY * self.min + (1.0 - Self::DECAY) * lo;
            self.max = Self::DECAY * self.max + (1.0 - Self::DECAY) * hi;
        } else {
            (self.min, self.max, self.initialized) = (lo, hi, true);
        }
    }
}

impl Default for EmaRange {
    fn default() -> Self {
        EmaRange::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_land_on_a_symmetric_per_channel_grid() {
        // Two channels, innermost: channel 0 max 1.27, channel 1 max 0.5.
        let w = [1.27f32, 0.5, -0.3, -0.25, 0.011, 0.0];
        let mut q = [0f32; 6];
        let s = weights_per_channel(&w, 2, &mut q);
        assert!((s[0] - 0.01).abs() < 1e-7 && (s[1] - 0.5 / 127.0).abs() < 1e-9);
        for (i, (&v, &o)) in w.iter().zip(&q).enumerate() {
            let sc = s[i % 2];
            let steps = o / sc;
            assert!((steps - steps.round()).abs() < 1e-4, "{o} not on the grid");
            assert!((o - v).abs() <= sc / 2.0 + 1e-6, "{v} → {o}");
        }
        assert_eq!(q[0], 1.27f32 / 127.0 * 127.0);
        let mut z = [1f32; 2];
        assert_eq!(weights_per_channel(&[0.0, 0.0], 2, &mut z), vec![0.0, 0.0]);
        assert_eq!(z, [0.0, 0.0]);
    }

    #[test]
    fn activations_follow_tensorflow_nudging() {
        // TF's FakeQuantWithMinMaxVars test "no nudging": [-10, 53.75], scale 0.25.
        let (lo, hi, s) = nudge(-10.0, 53.75);
        assert_eq!((lo, hi, s), (-10.0, 53.75, 0.25));
        let x = [-10.1f32, -10.0, -9.9, -9.8, 53.75, 53.8];
        let mut y = [0f32; 6];
        activations_forward(&x, -10.0, 53.75, &mut y);
        assert_eq!(y, [-10.0, -10.0, -10.0, -9.75, 53.75, 53.75]);
        // TF's "nudging" case: [-0.1, 63.65] has scale 0.25 and zero point 0.4 from
        // min, rounded to 0, so the range becomes [0, 63.75] and -0.1 maps to 0.
        let (lo, hi, s) = nudge(-0.1, 63.65);
        assert!((s - 0.25).abs() < 1e-6 && lo == 0.0 && (hi - 63.75).abs() < 1e-4);
        let mut z = [1f32; 3];
        activations_forward(&[-0.1, 0.0, 0.13], -0.1, 63.65, &mut z);
        assert_eq!(z, [0.0, 0.0, 0.25]);
        // Straight-through: gradient inside the range only.
        let mut dx = [0f32; 6];
        activations_backward(&x, -10.0, 53.75, &[1.0; 6], &mut dx);
        assert_eq!(dx, [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn moving_average_starts_at_the_first_batch() {
        let mut r = EmaRange::new();
        r.update(&[-1.0, 2.0]);
        assert_eq!((r.min, r.max), (-1.0, 2.0));
        r.update(&[-3.0, 4.0]);
        assert!((r.min + 1.002).abs() < 1e-6 && (r.max - 2.002).abs() < 1e-6);
    }
}

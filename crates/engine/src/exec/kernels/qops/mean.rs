//! Quantized MEAN, following the branches of TFLite's `reduce.cc` reference path:
//! 4-D over {H, W} with keep_dims uses the integer recipe (int8/int16) or the uint8
//! recipe; equal input/output parameters average raw values with a truncating
//! integer division; anything else goes through the float `QuantizedMeanOrSum`.

use super::{QInt, clamp_to};
use crate::quant::fixed_point::{Multiplier, Rounding, mbqm, quantize_multiplier};

/// Sum of `x` (shape `shape`) over `axes` (sorted, unique), one i32 per kept element
/// in row-major order.
pub fn reduce_sum<T: QInt>(x: &[T], shape: &[usize], axes: &[usize], sub: i32) -> Vec<i32> {
    let rank = shape.len();
    // Output strides for kept dims (0 for reduced ones).
    let mut ostr = vec![0usize; rank];
    let mut s = 1usize;
    for d in (0..rank).rev() {
        if !axes.contains(&d) {
            ostr[d] = s;
            s *= shape[d];
        }
    }
    let mut out = vec![0i32; s];
    let mut idx = vec![0usize; rank];
    for v in x {
        let o: usize = idx.iter().zip(&ostr).map(|(i, st)| i * st).sum();
        out[o] = out[o].wrapping_add(v.get() - sub);
        for k in (0..rank).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// The branch TFLite takes for a quantized MEAN, with its prepared constants.
#[derive(Debug, Clone, PartialEq)]
pub enum QMean {
    /// int8/int16, 4-D, axes {1,2}, keep_dims: `MBQM(Σ(x − zi), in_s/out_s)` then a
    /// rounded division by the count.
    IntHw {
        m: Multiplier,
        in_zp: i32,
        out_zp: i32,
    },
    /// uint8, 4-D, axes {1,2}, keep_dims: `MBQM(Σx, in_s/(n·out_s)) + bias`.
    U8Hw { m: Multiplier, bias: i32 },
    /// Same input/output parameters: `Σx / n`, truncating.
    Same,
    /// Float rescale of the integer mean (`QuantizedMeanOrSum`).
    Float { scale: f32, bias: f32, out_zp: i32 },
}

impl QMean {
    /// Pick the branch. `hw_case`: 4-D input, axes exactly {1,2}, keep_dims.
    pub fn new(
        is_u8: bool,
        hw_case: bool,
        count: usize,
        (in_s, in_zp): (f32, i32),
        (out_s, out_zp): (f32, i32),
    ) -> Self {
        if hw_case && !is_u8 {
            QMean::IntHw {
                m: quantize_multiplier(in_s as f64 / out_s as f64, Rounding::Double),
                in_zp,
                out_zp,
            }
        } else if hw_case {
            let n = count as f32;
            let bias = out_zp - (in_zp as f32 * in_s / out_s) as i32;
            let real = (in_s / (n * out_s)) as f64;
            QMean::U8Hw {
                m: quantize_multiplier(real, Rounding::Double),
                bias,
            }
        } else if in_zp == out_zp && in_s == out_s {
            QMean::Same
        } else {
            let scale = in_s / out_s;
            QMean::Float {
                scale,
                bias: -(in_zp as f32) * scale + 0.5,
                out_zp,
            }
        }
    }

    /// Mean of `x` over `axes`; `y` holds the kept elements in row-major order.
    pub fn run<T: QInt>(&self, x: &[T], shape: &[usize], axes: &[usize], y: &mut [T]) {
        let count: usize = axes.iter().map(|&a| shape[a]).product();
        if count == 0 {
            y.iter_mut().for_each(|v| *v = T::put(0.max(T::MIN)));
            return;
        }
        let n = count as i32;
        let r = Rounding::Double;
        match *self {
            QMean::IntHw { m, in_zp, out_zp } => {
                let sums = reduce_sum(x, shape, axes, in_zp);
                for (o, &s) in y.iter_mut().zip(&sums) {
                    let a = mbqm(s, m, r);
                    let a = if a > 0 {
                        (a + n / 2) / n
                    } else {
                        (a - n / 2) / n
                    };
                    *o = clamp_to(a + out_zp, T::MIN, T::MAX);
                }
            }
            QMean::U8Hw { m, bias } => {
                let sums = reduce_sum(x, shape, axes, 0);
                for (o, &s) in y.iter_mut().zip(&sums) {
                    *o = clamp_to(mbqm(s, m, r) + bias, T::MIN, T::MAX);
                }
            }
            QMean::Same => {
                let sums = reduce_sum(x, shape, axes, 0);
                for (o, &s) in y.iter_mut().zip(&sums) {
                    // TFLite casts the quotient without clamping; it is in range.
                    *o = clamp_to(s / n, T::MIN, T::MAX);
                }
            }
            QMean::Float {
                scale,
                bias,
                out_zp,
            } => {
                let sums = reduce_sum(x, shape, axes, 0);
                for (o, &s) in y.iter_mut().zip(&sums) {
                    let mean = s as f32 / count as f32;
                    let v = ((mean * scale + bias).round() + out_zp as f32)
                        .min(T::MAX as f32)
                        .max(T::MIN as f32);
                    *o = T::put(v as i32);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_hw_mean() {
        // 1×2×2×1, values {−1, 2, 3, 5} with zp −1: Σ(x+1) = 13; scale ratio 1 →
        // MBQM = 13, (13 + 2)/4 = 3, + out_zp 0.
        let q = QMean::new(false, true, 4, (0.5, -1), (0.5, 0));
        let mut y = [0i8; 1];
        q.run(&[-1i8, 2, 3, 5], &[1, 2, 2, 1], &[1, 2], &mut y);
        assert_eq!(y, [3]);
        // Negative sums round away from zero: Σ = −6 → (−6 − 2)/4 = −2.
        q.run(&[-3i8, -3, -1, -3], &[1, 2, 2, 1], &[1, 2], &mut y);
        assert_eq!(y, [-2]);
    }

    #[test]
    fn uint8_hw_and_other_branches() {
        // uint8: Σx = 10, real = 0.5/(4·0.5) = 0.25 → 2.5 → MBQM rounds to 3; bias = 0 − 0.
        let q = QMean::new(true, true, 4, (0.5, 0), (0.5, 0));
        let mut y = [0u8; 1];
        q.run(&[1u8, 2, 3, 4], &[1, 2, 2, 1], &[1, 2], &mut y);
        assert_eq!(y, [3]);
        // Same params, over the last axis of [2, 3]: truncating division.
        let q = QMean::new(false, false, 3, (0.1, 4), (0.1, 4));
        assert_eq!(q, QMean::Same);
        let mut y = [0i8; 2];
        q.run(&[1i8, 2, 2, -5, -5, -4], &[2, 3], &[1], &mut y);
        assert_eq!(y, [1, -4]);
        // Float branch: scale 2, bias = −(1)·2 + 0.5.
        let q = QMean::new(false, false, 2, (0.2, 1), (0.1, 0));
        let mut y = [0i8; 1];
        q.run(&[3i8, 4], &[2], &[0], &mut y);
        // mean 3.5 → 3.5·2 − 2 + 0.5 = 5.5 → round 6.
        assert_eq!(y, [6]);
    }
}

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

/// Quantized MEAN as TFLite's reference `QuantizedMeanOrSum` (LiteRT 2.x): the sum
/// of raw values minus `n·in_zp`, requantized by `in_s/out_s` with the division by
/// the element count folded into the multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QMean {
    pub m: Multiplier,
    pub in_zp: i32,
    pub out_zp: i32,
    pub count: i64,
}

impl QMean {
    /// `count` = number of reduced elements per output (≥ 1).
    pub fn new(count: usize, (in_s, in_zp): (f32, i32), (out_s, out_zp): (f32, i32)) -> Self {
        let base = quantize_multiplier(in_s as f64 / out_s as f64, Rounding::Double);
        let n = count.max(1) as i64;
        // floor(log2 n), limited so that the final shift stays ≥ −31.
        let shift = (63 - (n as u64).leading_zeros() as i32)
            .min(32)
            .min(31 + base.shift);
        let m = (((base.m as i64) << shift) / n) as i32;
        QMean {
            m: Multiplier {
                m,
                shift: base.shift - shift,
            },
            in_zp,
            out_zp,
            count: n,
        }
    }

    /// Mean of `x` over `axes`; `y` holds the kept elements in row-major order.
    pub fn run<T: QInt>(&self, x: &[T], shape: &[usize], axes: &[usize], y: &mut [T]) {
        if x.is_empty() {
            // TFLite leaves the zero-initialized output.
            y.iter_mut()
                .for_each(|v| *v = T::put(0.clamp(T::MIN, T::MAX)));
            return;
        }
        let sums = reduce_sum(x, shape, axes, 0);
        let offset = (self.in_zp as i64 * self.count) as i32;
        for (o, &s) in y.iter_mut().zip(&sums) {
            let v = mbqm(s.wrapping_sub(offset), self.m, Rounding::Double) + self.out_zp;
            *o = clamp_to(v, T::MIN, T::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplier_folds_the_count() {
        // in/out 1.0 → (2^30, 1); n = 4 → shift 2, m = 2^32/4 = 2^30, shift −1.
        let q = QMean::new(4, (0.5, 0), (0.5, 0));
        assert_eq!((q.m.m, q.m.shift), (1 << 30, -1));
        // n = 49: floor(log2) = 5, m = (2^30 << 5)/49.
        let q = QMean::new(49, (0.5, 0), (0.5, 0));
        assert_eq!((q.m.m, q.m.shift), (((1i64 << 35) / 49) as i32, -4));
    }

    #[test]
    fn int8_and_uint8_means() {
        // 1×2×2×1, {−1, 2, 3, 5}, in zp −1: Σ(x+1) = 13, 13/4 = 3.25, but the
        // multiplier is (2^30, −1): SRDHM gives 6.5 → 7, RDBPOT(7, 1) → 4 (double
        // rounding, as TFLite).
        let q = QMean::new(4, (0.5, -1), (0.5, 0));
        let mut y = [0i8; 1];
        q.run(&[-1i8, 2, 3, 5], &[1, 2, 2, 1], &[1, 2], &mut y);
        assert_eq!(y, [4]);
        q.run(&[-1i8, 1, 3, 5], &[1, 2, 2, 1], &[1, 2], &mut y);
        assert_eq!(y, [3]);
        // Σ = 10 over 4 = 2.5 → MBQM rounds half away from zero → 3; −2.5 → −3.
        let q = QMean::new(4, (1.0, 0), (1.0, 0));
        q.run(&[1i8, 2, 3, 4], &[4], &[0], &mut y);
        assert_eq!(y, [3]);
        q.run(&[-1i8, -2, -3, -4], &[4], &[0], &mut y);
        assert_eq!(y, [-3]);
        // uint8 with rescale ×2 and output zp 10, over the last axis of [2, 3].
        let q = QMean::new(3, (0.2, 100), (0.1, 10));
        let mut y = [0u8; 2];
        q.run(&[100u8, 101, 102, 90, 90, 93], &[2, 3], &[1], &mut y);
        // row 0: mean 101 → 2·1 + 10 = 12; row 1: mean 91 → 2·(−9) + 10 = −8 → 0.
        assert_eq!(y, [12, 0]);
    }
}

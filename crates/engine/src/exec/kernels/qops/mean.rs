//! Quantized MEAN, following the branches of TFLite's `reduce.cc` reference path:
//! 4-D over {H, W} with keep_dims uses the integer recipe (int8/int16) or the uint8
//! recipe; equal input/output parameters average raw values with a truncating
//! integer division; anything else goes through the float `QuantizedMeanOrSum`.

use super::{QInt, clamp_to};
use crate::quant::fixed_point::{Multiplier, Rounding, mbqm, quantize_multiplier};

/// Sum of `x` (shape `shape`) over `axes` (sorted, unique), minus `sub` per element,
/// one wrapping i32 per kept element in row-major order. Adjacent dims with the same
/// reduced/kept status are merged first, so `[N,H,W,C]` over {1,2} runs as
/// contiguous channel rows added into the output (integer sums: order-free).
pub fn reduce_sum<T: QInt>(x: &[T], shape: &[usize], axes: &[usize], sub: i32) -> Vec<i32> {
    let kept: usize = shape
        .iter()
        .enumerate()
        .filter(|(d, _)| !axes.contains(d))
        .map(|(_, &n)| n)
        .product();
    let mut out = vec![0i32; kept];
    if x.is_empty() {
        return out;
    }
    let mut dims: Vec<(usize, bool)> = Vec::new();
    for (d, &n) in shape.iter().enumerate() {
        if n == 1 {
            continue;
        }
        let red = axes.contains(&d);
        match dims.last_mut() {
            Some(last) if last.1 == red => last.0 *= n,
            _ => dims.push((n, red)),
        }
    }
    let Some((&(n, inner_reduced), outer)) = dims.split_last() else {
        out[0] = x[0].get() - sub;
        return out;
    };
    // Output strides of the outer dims (0 for reduced ones).
    let mut ostr = vec![0usize; outer.len()];
    let mut st = if inner_reduced { 1 } else { n };
    for (k, &(d, red)) in outer.iter().enumerate().rev() {
        if !red {
            ostr[k] = st;
            st *= d;
        }
    }
    let mut idx = vec![0usize; outer.len()];
    let mut o0 = 0usize;
    for row in x.chunks_exact(n) {
        if inner_reduced {
            let s = row
                .iter()
                .fold(0i32, |acc, v| acc.wrapping_add(v.get() - sub));
            out[o0] = out[o0].wrapping_add(s);
        } else {
            for (o, v) in out[o0..o0 + n].iter_mut().zip(row) {
                *o = o.wrapping_add(v.get() - sub);
            }
        }
        for k in (0..outer.len()).rev() {
            idx[k] += 1;
            o0 += ostr[k];
            if idx[k] < outer[k].0 {
                break;
            }
            o0 -= ostr[k] * outer[k].0;
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

    #[test]
    fn reduce_sum_matches_index_arithmetic() {
        let shape = [2usize, 3, 1, 4, 5];
        let x: Vec<i8> = (0..120).map(|i| (i * 53 % 256) as u8 as i8).collect();
        for axes in [
            vec![0],
            vec![1, 3],
            vec![4],
            vec![0, 1, 2, 3, 4],
            vec![2],
            vec![0, 4],
        ] {
            let got = reduce_sum(&x, &shape, &axes, 3);
            // Plain odometer over every element.
            let mut ostr = [0usize; 5];
            let mut st = 1;
            for d in (0..5).rev() {
                if !axes.contains(&d) {
                    ostr[d] = st;
                    st *= shape[d];
                }
            }
            let mut want = vec![0i32; st];
            for (i, v) in x.iter().enumerate() {
                let mut r = i;
                let mut o = 0;
                for d in (0..5).rev() {
                    o += (r % shape[d]) * ostr[d];
                    r /= shape[d];
                }
                want[o] += *v as i32 - 3;
            }
            assert_eq!(got, want, "{axes:?}");
        }
    }
}

//! Quantized SOFTMAX (int8/uint8 in and out) over the last axis.
//!
//! `softmax_fixed_point` is TFLite's reference kernel (gemmlowp fixed point, §13 of
//! the spec); `softmax_table` is the float-table kernel TFLite's optimized path uses.

use super::gemmlowp::{exp_on_negative_values, get_reciprocal, rescale};
use super::{QInt, clamp_to};
use crate::quant::fixed_point::{Rounding, quantize_multiplier, rdbpot, srdhm};

const SCALED_DIFF_INTEGER_BITS: i32 = 5;
const ACCUMULATION_INTEGER_BITS: i32 = 12;

/// Parameters of the fixed-point softmax (`PreprocessSoftmaxScaling`,
/// `CalculateInputRadius`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftmaxParams {
    pub input_multiplier: i32,
    pub input_left_shift: i32,
    pub diff_min: i32,
}

impl SoftmaxParams {
    pub fn new(beta: f32, input_scale: f32) -> Self {
        let real =
            (beta as f64 * input_scale as f64 * (1i64 << (31 - SCALED_DIFF_INTEGER_BITS)) as f64)
                .min((1i64 << 31) as f64 - 1.0);
        let m = quantize_multiplier(real, Rounding::Double);
        let left_shift = m.shift.max(0);
        let radius = ((1i64 << SCALED_DIFF_INTEGER_BITS) - 1) as f64
            * (1i64 << (31 - SCALED_DIFF_INTEGER_BITS)) as f64
            / 2f64.powi(left_shift);
        SoftmaxParams {
            input_multiplier: m.m,
            input_left_shift: left_shift,
            diff_min: -(radius.floor() as i32),
        }
    }
}

/// TFLite's reference quantized softmax; `x` and `y` hold whole rows of `depth`.
/// The output is (1/256, qmin) quantized: `y = p·256 + T::MIN`.
pub fn softmax_fixed_point<T: QInt>(p: &SoftmaxParams, x: &[T], y: &mut [T], depth: usize) {
    if depth == 0 {
        return;
    }
    let rescaled = |d: i32| srdhm(d.wrapping_mul(1 << p.input_left_shift), p.input_multiplier);
    for (xr, yr) in x.chunks_exact(depth).zip(y.chunks_exact_mut(depth)) {
        let max = xr.iter().map(|v| v.get()).max().unwrap_or(T::MIN);
        let mut sum: i32 = 0;
        for v in xr {
            let d = v.get() - max;
            if d >= p.diff_min {
                let e = exp_on_negative_values(rescaled(d), SCALED_DIFF_INTEGER_BITS);
                sum = sum.wrapping_add(rescale(e, 0, ACCUMULATION_INTEGER_BITS));
            }
        }
        let (scale, bits_over_unit) = get_reciprocal(sum, ACCUMULATION_INTEGER_BITS);
        let exponent = bits_over_unit + 31 - 8;
        for (v, o) in xr.iter().zip(yr.iter_mut()) {
            let d = v.get() - max;
            *o = if d >= p.diff_min {
                let e = exp_on_negative_values(rescaled(d), SCALED_DIFF_INTEGER_BITS);
                let prod = srdhm(scale, e);
                // A shift of 32 or more leaves less than half a quantum: 0.
                let unsat = if exponent > 31 {
                    0
                } else {
                    rdbpot(prod, exponent.max(0))
                };
                clamp_to::<T>(unsat + T::MIN, T::MIN, T::MAX)
            } else {
                T::put(T::MIN)
            };
        }
    }
}

/// The float-table softmax (TFLite's optimized kernel): `table[k] = exp(-in_s·β·k)`.
pub struct SoftmaxTable {
    table: [f32; 256],
    out_scale: f32,
    out_zp: i32,
}

impl SoftmaxTable {
    pub fn new(beta: f32, input_scale: f32, out_scale: f32, out_zp: i32) -> Self {
        let scale = -input_scale * beta;
        let mut table = [0f32; 256];
        for (k, t) in table.iter_mut().enumerate() {
            *t = (scale * k as f32).exp();
        }
        SoftmaxTable {
            table,
            out_scale,
            out_zp,
        }
    }

    pub fn run<T: QInt>(&self, x: &[T], y: &mut [T], depth: usize) {
        if depth == 0 {
            return;
        }
        for (xr, yr) in x.chunks_exact(depth).zip(y.chunks_exact_mut(depth)) {
            let max = xr.iter().map(|v| v.get()).max().unwrap_or(T::MIN);
            let idx = |v: &T| (max - v.get()).clamp(0, 255) as usize;
            let sum: f32 = xr.iter().map(|v| self.table[idx(v)]).sum();
            let inv = 1.0 / (sum * self.out_scale);
            for (v, o) in xr.iter().zip(yr.iter_mut()) {
                let q = (self.table[idx(v)] * inv).round() as i32 + self.out_zp;
                *o = clamp_to::<T>(q, T::MIN, T::MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_for_unit_scale() {
        // beta·s·2^26 = 2^26·0.5 → m = 2^30, shift 26; radius = 31·2^26/2^26 = 31.
        let p = SoftmaxParams::new(1.0, 0.5);
        assert_eq!(p.input_multiplier, 1 << 30);
        assert_eq!(p.input_left_shift, 26);
        assert_eq!(p.diff_min, -31);
    }

    #[test]
    fn uniform_and_peaked_rows() {
        let p = SoftmaxParams::new(1.0, 0.1);
        // Four equal logits: 1/4 each = 64/256.
        let x = [10u8; 4];
        let mut y = [0u8; 4];
        softmax_fixed_point(&p, &x, &mut y, 4);
        assert_eq!(y, [64; 4]);
        let mut yi = [0i8; 4];
        softmax_fixed_point(&p, &[5i8; 4], &mut yi, 4);
        assert_eq!(yi, [-64; 4]);
        // One dominant logit saturates at the top of the range; far-below ones are 0.
        let x = [0u8, 255, 0];
        let mut y = [9u8; 3];
        softmax_fixed_point(&SoftmaxParams::new(1.0, 1.0), &x, &mut y, 3);
        assert_eq!(y, [0, 255, 0]);
    }

    #[test]
    fn close_to_float_softmax() {
        let s = 0.05f32;
        let p = SoftmaxParams::new(1.0, s);
        let x: Vec<u8> = (0..40).map(|i| (i * 37 % 200) as u8).collect();
        let mut y = vec![0u8; 40];
        softmax_fixed_point(&p, &x, &mut y, 40);
        let m = *x.iter().max().unwrap() as f32;
        let e: Vec<f32> = x.iter().map(|&v| ((v as f32 - m) * s).exp()).collect();
        let sum: f32 = e.iter().sum();
        for (k, &v) in y.iter().enumerate() {
            assert!((v as f32 - e[k] / sum * 256.0).abs() <= 1.0, "{k}: {v}");
        }
        let t = SoftmaxTable::new(1.0, s, 1.0 / 256.0, 0);
        let mut yt = vec![0u8; 40];
        t.run(&x, &mut yt, 40);
        for (a, b) in y.iter().zip(&yt) {
            assert!((*a as i32 - *b as i32).abs() <= 1);
        }
    }
}

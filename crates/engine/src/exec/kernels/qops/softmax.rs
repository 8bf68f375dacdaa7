//! Quantized SOFTMAX over the last axis.
//!
//! `softmax_fixed_point` is TFLite's reference kernel for int8/uint8 (gemmlowp fixed
//! point, §13 of the spec); `softmax_table` is the float-table kernel TFLite's
//! optimized path uses. [`Softmax16`] is TFLite's only int16 kernel
//! (`reference_ops::SoftmaxInt16`, used by both its kernel variants): interpolated
//! 513-entry tables for `exp` and `1/(1+x)`.

use super::gemmlowp::{exp_on_negative_values, get_reciprocal, rescale};
use super::lut::{LUT16_LEN, lut16_lookup, lut16_populate};
use super::{QInt, clamp_to};
use crate::quant::fixed_point::{Multiplier, Rounding, mbqm, quantize_multiplier, rdbpot, srdhm};

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
    let rescaled = |d: i32| srdhm(d.wrapping_mul(1 << p.input_left_shift), p.input_multiplier);
    softmax_rows(x, y, depth, |d| {
        (d >= p.diff_min).then(|| exp_on_negative_values(rescaled(d), SCALED_DIFF_INTEGER_BITS))
    });
}

/// [`softmax_fixed_point`] with the fixed-point exp of each possible 8-bit difference
/// from the row maximum computed once per call (256 values) instead of twice per
/// element: the same function of the same integers, so the same bytes.
pub fn softmax_fixed_point_fast<T: QInt>(p: &SoftmaxParams, x: &[T], y: &mut [T], depth: usize) {
    // Wider types, or too few elements for the table to pay: the plain kernel.
    if depth == 0 || T::MAX - T::MIN > 255 || x.len() * 2 <= 256 {
        return softmax_fixed_point(p, x, y, depth);
    }
    let rescaled = |d: i32| srdhm(d.wrapping_mul(1 << p.input_left_shift), p.input_multiplier);
    // exps[k] for the difference -k; differences below diff_min contribute nothing.
    let valid = (-p.diff_min).clamp(-1, 255);
    let mut exps = [0i32; 256];
    for (k, e) in exps.iter_mut().enumerate().take((valid + 1) as usize) {
        *e = exp_on_negative_values(rescaled(-(k as i32)), SCALED_DIFF_INTEGER_BITS);
    }
    softmax_rows(x, y, depth, |d| (-d <= valid).then(|| exps[(-d) as usize]));
}

/// The fixed-point softmax over rows, given `exp_of(d)`: the fixed-point exp of the
/// difference `d ≤ 0` from the row maximum, or `None` below the input radius.
#[inline(always)]
fn softmax_rows<T: QInt>(x: &[T], y: &mut [T], depth: usize, exp_of: impl Fn(i32) -> Option<i32>) {
    if depth == 0 {
        return;
    }
    for (xr, yr) in x.chunks_exact(depth).zip(y.chunks_exact_mut(depth)) {
        let max = xr.iter().map(|v| v.get()).max().unwrap_or(T::MIN);
        let mut sum: i32 = 0;
        for v in xr {
            if let Some(e) = exp_of(v.get() - max) {
                sum = sum.wrapping_add(rescale(e, 0, ACCUMULATION_INTEGER_BITS));
            }
        }
        let (scale, bits_over_unit) = get_reciprocal(sum, ACCUMULATION_INTEGER_BITS);
        let exponent = bits_over_unit + 31 - 8;
        for (v, o) in xr.iter().zip(yr.iter_mut()) {
            *o = match exp_of(v.get() - max) {
                Some(e) => {
                    let prod = srdhm(scale, e);
                    // A shift of 32 or more leaves less than half a quantum: 0.
                    let unsat = if exponent > 31 {
                        0
                    } else {
                        rdbpot(prod, exponent.max(0))
                    };
                    clamp_to::<T>(unsat + T::MIN, T::MIN, T::MAX)
                }
                None => T::put(T::MIN),
            };
        }
    }
}

/// Prepared int16 softmax (TFLite `SoftmaxPrepare` for int16 in and out; the output
/// is (1/32768, 0)).
pub struct Softmax16 {
    /// Rescales `x − max` so that −65535 stands for −10.0 (`in_s·β / (10/65535)`).
    pub input_multiplier: Multiplier,
    /// `exp(v)` for `v` in [−10, 0], in Q0.15 (output range [−1, 1]).
    pub exp_lut: Box<[i16; LUT16_LEN]>,
    /// `1/(1+v)` for `v` in [0, 1], in Q0.15.
    pub one_over_one_plus_x_lut: Box<[i16; LUT16_LEN]>,
}

impl Softmax16 {
    pub fn new(beta: f32, input_scale: f32) -> Self {
        // The tables are built in f64 ("for backward compatibility" in TFLite).
        let range = (i16::MAX as i32 - i16::MIN as i32) as f64;
        let exp_lut = lut16_populate((10.0 / range, i16::MAX as i32), (2.0 / range, 0), f64::exp);
        let one_over_one_plus_x_lut =
            lut16_populate((1.0 / range, i16::MIN as i32), (2.0 / range, 0), |v| {
                1.0 / (1.0 + v)
            });
        let real = input_scale as f64 * beta as f64 / (10.0 / 65535.0);
        Softmax16 {
            input_multiplier: quantize_multiplier(real, Rounding::Double),
            exp_lut,
            one_over_one_plus_x_lut,
        }
    }

    /// `exp(x − max)` in Q0.15.
    #[inline(always)]
    fn exp_of_diff(&self, diff: i32) -> i16 {
        let scaled = mbqm(diff, self.input_multiplier, Rounding::Double);
        // Recentre [−65535, 0] on the table's symmetric input range.
        let sym = scaled.wrapping_add(32767).clamp(-32768, 32767) as i16;
        lut16_lookup(sym, &self.exp_lut)
    }

    /// TFLite's `SoftmaxInt16`; `x` and `y` hold whole rows of `depth`.
    pub fn run(&self, x: &[i16], y: &mut [i16], depth: usize) {
        if depth == 0 {
            return;
        }
        for (xr, yr) in x.chunks_exact(depth).zip(y.chunks_exact_mut(depth)) {
            let max = xr.iter().copied().max().unwrap_or(i16::MIN) as i32;
            // The exps are cached in the output row, as TFLite does.
            let mut sum: i32 = 0; // Q16.15
            for (v, o) in xr.iter().zip(yr.iter_mut()) {
                *o = self.exp_of_diff(*v as i32 - max);
                sum = sum.wrapping_add(*o as i32);
            }
            // 1/sum: normalize sum to [1, 2) in Q1.15, look up 1/(1+x) at x = sum − 1.
            let headroom_plus_one = (sum as u32).leading_zeros() as i32;
            // The max element contributes exp(0) > 0, so sum > 0 and the shifts
            // below are in range; clamp anyway rather than panic on odd tables.
            let hp1 = headroom_plus_one.clamp(1, 30);
            let shifted_sum = (((sum as i64) << (hp1 - 1)) + (1 << 13)) >> 14;
            let sym_shifted_sum = (shifted_sum as i32).wrapping_sub((1 << 15) + (1 << 16));
            let sym = sym_shifted_sum.clamp(-32768, 32767) as i16;
            let reciprocal = lut16_lookup(sym, &self.one_over_one_plus_x_lut) as i64;
            let right_shift = 31 - hp1;
            let round = 1i64 << (right_shift - 1);
            for o in yr.iter_mut() {
                let r = ((*o as i64 * reciprocal + round) >> right_shift) as i32;
                *o = r.clamp(0, 32767) as i16;
            }
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
    use crate::exec::kernels::test_util::Rng;

    #[test]
    fn fast_8bit_softmax_matches_the_reference() {
        let mut rng = Rng::new(0x1234_5678);
        let mut next = || rng.next_u31();
        // Scales that put diff_min inside and outside the 8-bit range, incl. beta != 1.
        for &(beta, scale) in &[
            (1.0f32, 0.1f32),
            (1.0, 0.02),
            (0.5, 0.25),
            (1.0, 1.5),
            (2.0, 0.004),
        ] {
            let p = SoftmaxParams::new(beta, scale);
            for &(depth, rows) in &[(1001usize, 1usize), (10, 40), (300, 3)] {
                let x: Vec<i8> = (0..depth * rows).map(|_| next() as u8 as i8).collect();
                let (mut want, mut got) = (vec![0i8; x.len()], vec![0i8; x.len()]);
                softmax_fixed_point(&p, &x, &mut want, depth);
                softmax_fixed_point_fast(&p, &x, &mut got, depth);
                assert_eq!(got, want, "beta {beta} scale {scale} depth {depth}");
                let x: Vec<u8> = x.iter().map(|&v| (v as u8) / 3).collect();
                let (mut want, mut got) = (vec![0u8; x.len()], vec![0u8; x.len()]);
                softmax_fixed_point(&p, &x, &mut want, depth);
                softmax_fixed_point_fast(&p, &x, &mut got, depth);
                assert_eq!(got, want, "u8 beta {beta} scale {scale} depth {depth}");
            }
        }
    }

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
    fn int16_tables() {
        let p = Softmax16::new(1.0, 0.001);
        // exp table: exp(−10) ≈ 0 at the start, exp(0) = 1.0 → 32768 clamped at the end;
        // monotone in between.
        // (32768·exp(−10) = 1.5, moved by the midpoint correction.)
        assert!((p.exp_lut[0] - 1).abs() <= 1);
        assert_eq!(p.exp_lut[512], 32767);
        assert!(p.exp_lut.windows(2).all(|w| w[0] <= w[1]));
        // 1/(1+x): 1.0 (clamped) at x = 0, 0.5 at x = 1.
        assert_eq!(p.one_over_one_plus_x_lut[0], 32767);
        assert_eq!(p.one_over_one_plus_x_lut[512], 16384);
        assert!(p.one_over_one_plus_x_lut.windows(2).all(|w| w[0] >= w[1]));
        // Table reads at the sample points are the entries themselves.
        assert_eq!(lut16_lookup(-32768, &p.exp_lut), p.exp_lut[0]);
        assert_eq!(lut16_lookup(0, &p.exp_lut), p.exp_lut[256]);
        // in_s·β/(10/65535) = 6.5535 = 0.8192 · 2^3.
        assert_eq!(p.input_multiplier.shift, 3);
    }

    #[test]
    fn int16_rows() {
        let p = Softmax16::new(1.0, 0.001);
        // Equal logits: 1/4 each = 8192 (within the table's interpolation error).
        let mut y = [0i16; 4];
        p.run(&[500i16; 4], &mut y, 4);
        assert!(
            y.iter().all(|&v| v == y[0] && (v - 8192).abs() <= 2),
            "{y:?}"
        );
        // A row far below the max (> 10 apart) gets exp ≈ 0: one-hot.
        let mut y = [0i16; 3];
        p.run(&[-30000, 30000, -30000], &mut y, 3);
        assert!(y[1] >= 32760 && y[0] <= 2 && y[2] <= 2, "{y:?}");
        // Against float softmax on random rows of 10.
        let s = 0.0004f32;
        let mut rng = Rng::new(5);
        let x: Vec<i16> = (0..200).map(|_| (rng.next_u64() >> 48) as i16).collect();
        let p = Softmax16::new(1.0, s);
        let mut y = vec![0i16; 200];
        p.run(&x, &mut y, 10);
        for (xr, yr) in x.chunks(10).zip(y.chunks(10)) {
            let m = *xr.iter().max().unwrap() as f64;
            let e: Vec<f64> = xr
                .iter()
                .map(|&v| ((v as f64 - m) * s as f64).exp())
                .collect();
            let sum: f64 = e.iter().sum();
            for (k, &v) in yr.iter().enumerate() {
                let want = e[k] / sum * 32768.0;
                assert!((v as f64 - want).abs() <= 40.0, "{xr:?} {k}: {v} vs {want}");
            }
        }
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

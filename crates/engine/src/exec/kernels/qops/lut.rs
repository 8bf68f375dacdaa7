//! Element-wise quantized activations of one input: LOGISTIC and TANH (float-built
//! tables, as TFLite desktop builds them even for its reference kernels, spec §14),
//! HARD_SWISH (TFLite's 16-bit fixed-point reference) and RELU/RELU6/RELU_N1_TO_1.
//!
//! On 8-bit types each of them is a function of one byte, so the fast path is a
//! 256-entry table filled by the reference function itself.

use super::{QInt, clamp_to};
use crate::quant::fixed_point::{Multiplier, Rounding, mbqm, quantize_multiplier, rdbpot};

/// TFLite's `LUTPopulate` for 8-bit types: dequantize in f32, apply `f`, requantize
/// with `round(f · (1/out_s))` and add the zero point in f32, clamp. Indexed by
/// `value − T::MIN`.
pub fn float_table<T: QInt>(
    (in_s, in_zp): (f32, i32),
    (out_s, out_zp): (f32, i32),
    f: impl Fn(f32) -> f32,
) -> Vec<T> {
    let inverse_scale = 1.0 / out_s;
    (T::MIN..=T::MAX)
        .map(|v| {
            let dequantized = in_s * (v - in_zp) as f32;
            let transformed = f(dequantized);
            let rescaled = (transformed * inverse_scale).round();
            let q = (rescaled + out_zp as f32) as i32;
            clamp_to(q, T::MIN, T::MAX)
        })
        .collect()
}

pub fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

pub fn tanh(v: f32) -> f32 {
    v.tanh()
}

/// Apply a 256-entry table.
pub fn apply_table<T: QInt>(table: &[T], x: &[T], y: &mut [T]) {
    for (o, v) in y.iter_mut().zip(x) {
        *o = table[(v.get() - T::MIN) as usize];
    }
}

/// HARD_SWISH parameters (TFLite `HardSwishPrepare`): 16-bit multipliers from the
/// "hi-res" input scale (`in_s/128`) to the output scale and to the relu-ish scale
/// (3/32768).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HardSwishParams {
    pub input_zero_point: i32,
    pub output_zero_point: i32,
    pub reluish_multiplier_fixedpoint_int16: i16,
    pub reluish_multiplier_exponent: i32,
    pub output_multiplier_fixedpoint_int16: i16,
    pub output_multiplier_exponent: i32,
}

fn downscale_to_int16(m: i32) -> i16 {
    const ROUNDING: i32 = 1 << 15;
    if m >= i32::MAX - ROUNDING {
        return i16::MAX;
    }
    ((m + ROUNDING) >> 16) as i16
}

impl HardSwishParams {
    /// `None` when the output multiplier would need a left shift (TFLite rejects it).
    pub fn new((in_s, in_zp): (f32, i32), (out_s, out_zp): (f32, i32)) -> Option<Self> {
        let hires_input_scale = (1.0f32 / 128.0) * in_s;
        let reluish_scale = 3.0f32 / 32768.0;
        let om = quantize_multiplier((hires_input_scale / out_s) as f64, Rounding::Double);
        let rm = quantize_multiplier((hires_input_scale / reluish_scale) as f64, Rounding::Double);
        if om.shift > 0 {
            return None;
        }
        Some(HardSwishParams {
            input_zero_point: in_zp,
            output_zero_point: out_zp,
            reluish_multiplier_fixedpoint_int16: downscale_to_int16(rm.m),
            reluish_multiplier_exponent: rm.shift,
            output_multiplier_fixedpoint_int16: downscale_to_int16(om.m),
            output_multiplier_exponent: om.shift,
        })
    }

    /// TFLite's reference `HardSwish` for one 8-bit value.
    pub fn apply<T: QInt>(&self, x: i32) -> T {
        let input_value = (x - self.input_zero_point) as i16;
        let hires = input_value.wrapping_mul(1 << 7);
        let preshift_out = srdhm16(hires, self.output_multiplier_fixedpoint_int16);
        let mut reluish = hires;
        let e = self.reluish_multiplier_exponent;
        if e > 0 {
            reluish = sat_left_shift16(reluish, e - 1);
        }
        reluish = srdhm16(reluish, self.reluish_multiplier_fixedpoint_int16);
        if e > 0 {
            reluish = sat_left_shift16(reluish, 1);
        }
        if e < 0 {
            reluish = rdbpot(reluish as i32, (-e).min(31)) as i16;
        }
        let reluish = ((reluish as i32 + (1 << 15)) >> 1) as i16;
        let pre = sat_doubling_high_mul16(reluish, preshift_out);
        let out = rdbpot(pre as i32, -self.output_multiplier_exponent) as i16;
        let out = out.wrapping_add(self.output_zero_point as i16) as i32;
        clamp_to(out, T::MIN, T::MAX)
    }
}

fn srdhm16(a: i16, b: i16) -> i16 {
    if a == b && a == i16::MIN {
        return i16::MAX;
    }
    let ab = a as i32 * b as i32;
    let nudge = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
    ((ab + nudge) / (1 << 15)) as i16
}

fn sat_doubling_high_mul16(a: i16, b: i16) -> i16 {
    if a == b && a == i16::MIN {
        return i16::MAX;
    }
    ((a as i32 * b as i32) / (1 << 15)) as i16
}

fn sat_left_shift16(v: i16, amount: i32) -> i16 {
    let r = (v as i64) << amount.min(40);
    r.clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

/// Standalone RELU-family op on integers (TFLite `QuantizedReluX`): requantize by
/// `in_s/out_s` (divided in f32), add the output zero point, clamp to the
/// activation's quantized range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReluParams {
    pub input_zero_point: i32,
    pub output_zero_point: i32,
    pub multiplier: Multiplier,
    pub act_min: i32,
    pub act_max: i32,
}

impl ReluParams {
    /// `lo`/`hi` are the real clamp bounds (`hi = None`: unbounded above).
    pub fn new<T: QInt>(
        (in_s, in_zp): (f32, i32),
        (out_s, out_zp): (f32, i32),
        lo: f32,
        hi: Option<f32>,
    ) -> Self {
        let multiplier = quantize_multiplier((in_s / out_s) as f64, Rounding::Double);
        let act_min = T::MIN.max(out_zp + (lo / out_s).round() as i32);
        let act_max = match hi {
            None => T::MAX,
            Some(h) => T::MAX.min(out_zp + (h / out_s).round() as i32),
        };
        ReluParams {
            input_zero_point: in_zp,
            output_zero_point: out_zp,
            multiplier,
            act_min,
            act_max,
        }
    }

    #[inline(always)]
    pub fn apply<T: QInt>(&self, x: i32) -> T {
        let v = self.output_zero_point
            + mbqm(x - self.input_zero_point, self.multiplier, Rounding::Double);
        clamp_to(v, self.act_min, self.act_max)
    }
}

/// Entries of an int16 interpolation table: 512 segments plus the end point.
pub const LUT16_LEN: usize = 513;

/// TFLite's `LUTPopulateInt16<double>`: `f` sampled at 513 evenly spaced points of the
/// input range of an int16 tensor `(in_s, in_zp)`, in output units of `(out_s,
/// out_zp)`. Each sample is moved by half the error the linear interpolation makes at
/// the segment midpoint, so that [`lut16_lookup`] errs evenly on both sides.
pub fn lut16_populate(
    (in_s, in_zp): (f64, i32),
    (out_s, out_zp): (f64, i32),
    f: impl Fn(f64) -> f64,
) -> Box<[i16; LUT16_LEN]> {
    let input_min = in_s * (i16::MIN as i32 - in_zp) as f64;
    let input_max = in_s * (i16::MAX as i32 - in_zp) as f64;
    let output_min = out_s * (i16::MIN as i32 - out_zp) as f64;
    let output_max = out_s * (i16::MAX as i32 - out_zp) as f64;
    const STEPS: usize = LUT16_LEN - 1;
    let step = (input_max - input_min) / STEPS as f64;
    let half_step = step / 2.0;
    let inv = 65536.0 / (output_max - output_min);
    let clamp = |v: f64| v.clamp(i16::MIN as f64, i16::MAX as f64) as i16;
    let mut lut = Box::new([0i16; LUT16_LEN]);
    for (i, entry) in lut.iter_mut().take(STEPS).enumerate() {
        let x = input_min + i as f64 * step;
        let val = f(x);
        let val_mid = f(x + half_step);
        let val_next = f(input_min + (i + 1) as f64 * step);
        let sample = (val * inv).round();
        let mid_interp = ((val_next * inv + (val * inv).round()) / 2.0).round();
        let mid = (val_mid * inv).round();
        let bias = ((mid_interp - mid) / 2.0).round();
        *entry = clamp(sample - bias);
    }
    lut[STEPS] = clamp((f(input_max) * inv).round());
    lut
}

/// TFLite's int16 `LUTLookup`: the top 9 bits pick the segment, the low 7 interpolate
/// (rounded), with C's truncating conversions back to int16.
#[inline(always)]
pub fn lut16_lookup(v: i16, lut: &[i16; LUT16_LEN]) -> i16 {
    let index = (256 + (v >> 7) as i32) as usize;
    let offset = (v & 0x7f) as i32;
    let base = lut[index];
    let slope = lut[index + 1].wrapping_sub(base) as i32;
    let delta = (slope * offset + 64) >> 7;
    (base as i32 + delta) as i16
}

/// The 256-entry table of an 8-bit element function.
pub fn table_of<T: QInt>(f: impl Fn(i32) -> T) -> Vec<T> {
    (T::MIN..=T::MAX).map(f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_table_values() {
        // int8 in (0.1, 0), out (1/256, −128): q=0 → 0.5 → 128 − 128 = 0.
        let t = float_table::<i8>((0.1, 0), (1.0 / 256.0, -128), sigmoid);
        assert_eq!(t[128], 0);
        assert_eq!(t[0], -128 + (256.0 * sigmoid(-12.8)).round() as i8);
        assert_eq!(t[255], 127); // 0.99999 · 256 = 256 → clamped
        let mut y = [0i8; 3];
        apply_table(&t, &[0i8, -128, 127], &mut y);
        assert_eq!(y, [0, t[0], 127]);
        // uint8 tanh-like table: (1/128, 128) output.
        let t = float_table::<u8>((0.05, 100), (1.0 / 128.0, 128), tanh);
        assert_eq!(t[100], 128);
        assert_eq!(t[120], (128.0 + (1.0f32.tanh() * 128.0).round()) as u8);
    }

    #[test]
    fn relu_family() {
        // TV9: RELU6 on (0.05, −10) output: [−10, 110].
        let p = ReluParams::new::<i8>((0.05, -10), (0.05, -10), 0.0, Some(6.0));
        assert_eq!((p.act_min, p.act_max), (-10, 110));
        assert_eq!(p.apply::<i8>(-50), -10);
        assert_eq!(p.apply::<i8>(30), 30);
        assert_eq!(p.apply::<i8>(127), 110);
        // Different scales: in (0.1, 0) → out (0.05, 0): value doubles.
        let p = ReluParams::new::<u8>((0.1, 0), (0.05, 0), 0.0, None);
        assert_eq!(p.apply::<u8>(3), 6);
        assert_eq!(p.apply::<u8>(200), 255);
    }

    #[test]
    fn hard_swish_close_to_float() {
        let (is, iz, os, oz) = (0.05f32, 3, 0.03f32, -60);
        let p = HardSwishParams::new((is, iz), (os, oz)).unwrap();
        for q in -128..=127 {
            let x = is * (q - iz) as f32;
            let want = x * (x + 3.0).clamp(0.0, 6.0) / 6.0;
            let wq = ((want / os).round() as i32 + oz).clamp(-128, 127);
            let got = p.apply::<i8>(q) as i32;
            assert!((got - wq).abs() <= 1, "q={q}: {got} vs {wq}");
        }
        let table = table_of(|v| p.apply::<i8>(v));
        let x: Vec<i8> = (-128..=127).map(|v| v as i8).collect();
        let mut y = vec![0i8; 256];
        apply_table(&table, &x, &mut y);
        for (k, &v) in x.iter().enumerate() {
            assert_eq!(y[k], p.apply::<i8>(v as i32));
        }
    }
}

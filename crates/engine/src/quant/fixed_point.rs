//! TFLite's fixed-point primitives, bit for bit (see `docs/quantization-spec.md` §7–8).
//!
//! The reference kernels requantize with gemmlowp's *double rounding* unless TFLite was
//! built with `TFLITE_SINGLE_ROUNDING`; both are here, selected by [`Rounding`].

/// Which requantization TFLite build to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rounding {
    /// gemmlowp SRDHM then RDBPOT (the default build, and LiteRT's reference kernels).
    #[default]
    Double,
    /// One rounding of `x * m / 2^(31 - shift)`, half up (`TFLITE_SINGLE_ROUNDING=1`).
    Single,
}

/// A real multiplier as int32 significand `m` in `[2^30, 2^31)` and power-of-two
/// `shift` (positive = left): `real ≈ m * 2^(shift - 31)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Multiplier {
    pub m: i32,
    pub shift: i32,
}

/// QuantizeMultiplier (§7.1): split `real` (≥ 0) with frexp, round the significand to
/// 31 bits half away from zero, carry, flush tiny values to zero.
pub fn quantize_multiplier(real: f64, rounding: Rounding) -> Multiplier {
    if real == 0.0 || !real.is_finite() || real < 0.0 {
        return Multiplier::default();
    }
    let (q, mut shift) = frexp(real);
    let mut m = (q * (1u64 << 31) as f64).round() as i64;
    if m == 1i64 << 31 {
        m /= 2;
        shift += 1;
    }
    if shift < -31 {
        return Multiplier::default();
    }
    if rounding == Rounding::Single && shift > 30 {
        return Multiplier {
            m: i32::MAX,
            shift: 30,
        };
    }
    Multiplier { m: m as i32, shift }
}

/// C's `frexp` for positive finite values: `x = q * 2^e` with `q` in `[0.5, 1)`.
pub fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: scale into the normal range first.
        let (q, e) = frexp(x * f64::from_bits(0x4350_0000_0000_0000)); // 2^54
        return (q, e - 54);
    }
    let q = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (q, exp - 1022)
}

/// gemmlowp SaturatingRoundingDoublingHighMul: nearest integer of `a*b / 2^31`, ties
/// toward +∞; the single overflow case saturates.
#[inline(always)]
pub fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let p = a as i64 * b as i64;
    let nudge = if p >= 0 { 1i64 << 30 } else { 1 - (1i64 << 30) };
    ((p + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp RoundingDivideByPOT: `x / 2^e` rounded to nearest, ties away from zero.
#[inline(always)]
pub fn rdbpot(x: i32, e: i32) -> i32 {
    debug_assert!((0..=31).contains(&e));
    let mask = ((1i64 << e) - 1) as i32;
    let rem = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i32;
    (x >> e) + (rem > threshold) as i32
}

/// MultiplyByQuantizedMultiplier for an int32 value (§7.3).
#[inline(always)]
pub fn mbqm(x: i32, mult: Multiplier, rounding: Rounding) -> i32 {
    match rounding {
        Rounding::Double => {
            let left = mult.shift.max(0);
            let right = (-mult.shift).max(0);
            rdbpot(srdhm(x.wrapping_mul(1 << left), mult.m), right)
        }
        Rounding::Single => {
            let t = 31 - mult.shift;
            let round = 1i64 << (t - 1);
            ((x as i64 * mult.m as i64 + round) >> t) as i32
        }
    }
}

/// MultiplyByQuantizedMultiplier for 64-bit accumulators (int16x8 conv/FC): only the
/// top 15 bits of the multiplier are used, the same in both builds.
#[inline(always)]
pub fn mbqm64(x: i64, mult: Multiplier) -> i32 {
    let m16 = if mult.m < 0x7FFF_0000 {
        ((mult.m as i64 + (1 << 15)) >> 16) as i32
    } else {
        0x7FFF
    };
    let t = 15 - mult.shift;
    let round = 1i64 << (t - 1);
    ((x * m16 as i64 + round) >> t) as i32
}

/// The integer clamp range of a fused activation on an output with scale `s`, zero
/// point `z` and type range `[qmin, qmax]` (§8).
pub fn activation_range(
    act: crate::ir::Activation,
    s: f32,
    z: i32,
    qmin: i32,
    qmax: i32,
) -> (i32, i32) {
    use crate::ir::Activation::*;
    let q = |v: f32| z + (v / s).round() as i32;
    match act {
        Relu => (qmin.max(q(0.0)), qmax),
        Relu6 => (qmin.max(q(0.0)), qmax.min(q(6.0))),
        ReluN1To1 => (qmin.max(q(-1.0)), qmax.min(q(1.0))),
        None | Tanh | SignBit => (qmin, qmax),
    }
}

/// LiteRT's reference FULLY_CONNECTED (int8, uint8 and int16x8; desktop TFLite's
/// `reference_integer_ops::FullyConnected` with scales, not TFLM's): the accumulator
/// times `real = in_s·w_s/out_s` (every operand widened to f64) in f64, rounded half
/// away from zero (C `round`) and saturated to i32. It is not the multiplier's
/// double rounding: they differ by one when the multiplier's first rounding crosses a
/// half, which small right shifts make common (LiteRT's optimized kernels use MBQM).
#[inline]
pub fn float_requant(acc: i64, real: f64) -> i32 {
    (acc as f64 * real)
        .round()
        .clamp(i32::MIN as f64, i32::MAX as f64) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qm(real: f64) -> (i32, i32) {
        let m = quantize_multiplier(real, Rounding::Double);
        (m.m, m.shift)
    }

    #[test]
    fn quantize_multiplier_test_vectors() {
        // TV1, TV2 of the spec.
        assert_eq!(qm(0.0039215686), (1077952569, -7));
        assert_eq!(qm(1.0 / 255.0), (1077952576, -7));
        assert_eq!(qm(0.5), (1073741824, 0));
        assert_eq!(qm(1.0), (1073741824, 1));
        assert_eq!(qm(0.75), (1610612736, 0));
        assert_eq!(qm(0.1), (1717986918, -3));
        assert_eq!(qm(1.0 - 2f64.powi(-40)), (1073741824, 1));
        assert_eq!(qm(0.0), (0, 0));
        assert_eq!(qm(2f64.powi(-40)), (0, 0));
    }

    #[test]
    fn srdhm_test_vectors() {
        // TV3.
        assert_eq!(srdhm(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(srdhm(1 << 30, 1 << 30), 536870912);
        assert_eq!(srdhm(1, 1 << 30), 1);
        assert_eq!(srdhm(-1, 1 << 30), 0);
        assert_eq!(srdhm(3, 1 << 30), 2);
        assert_eq!(srdhm(-3, 1 << 30), -1);
    }

    #[test]
    fn rdbpot_rounds_half_away_from_zero() {
        assert_eq!(rdbpot(5, 1), 3);
        assert_eq!(rdbpot(-5, 1), -3);
        assert_eq!(rdbpot(4, 1), 2);
        assert_eq!(rdbpot(-4, 1), -2);
        assert_eq!(rdbpot(7, 2), 2);
        assert_eq!(rdbpot(-6, 2), -2);
        assert_eq!(rdbpot(123, 0), 123);
    }

    #[test]
    fn mbqm_test_vectors() {
        // TV5, TV6, TV7 of the spec.
        let tv5 = Multiplier {
            m: 1 << 30,
            shift: -1,
        };
        assert_eq!(mbqm(-2, tv5, Rounding::Double), -1);
        assert_eq!(mbqm(-2, tv5, Rounding::Single), 0);
        let tv6 = Multiplier {
            m: 1077952569,
            shift: -7,
        };
        assert_eq!(mbqm(127, tv6, Rounding::Double), 1);
        assert_eq!(mbqm(127, tv6, Rounding::Single), 0);
        assert_eq!(mbqm64(100_000, tv5), 25000);
        assert_eq!(mbqm64(-3, tv5), -1);
        assert_eq!(srdhm(i32::MAX, i32::MAX), 2147483646);
        assert_eq!(rdbpot(-10, 2), -3);
        assert_eq!(rdbpot(-9, 2), -2);
    }

    #[test]
    fn int8_add_test_vector() {
        // TV8: ADD through the ADD recipe with left_shift 20.
        let r = Rounding::Double;
        let m1 = quantize_multiplier(0.5, r);
        let m2 = quantize_multiplier(0.25, r);
        let mo = quantize_multiplier(1.0 / (2f64.powi(20) * 0.5), r);
        assert_eq!((mo.m, mo.shift), (1 << 30, -18));
        let a = mbqm(3 << 20, m1, r);
        let b = mbqm(2 << 20, m2, r);
        assert_eq!(mbqm(a + b, mo, r), 4);
    }

    #[test]
    fn frexp_matches_c() {
        assert_eq!(frexp(1.0), (0.5, 1));
        assert_eq!(frexp(0.75), (0.75, 0));
        assert_eq!(frexp(0.1), (0.8, -3));
        let (q, e) = frexp(5e-324);
        assert_eq!(q * 2f64.powi(e + 1074), 1.0);
    }

    #[test]
    fn mbqm_double_and_single_rounding() {
        let m = quantize_multiplier(0.5, Rounding::Double);
        assert_eq!(mbqm(3, m, Rounding::Double), 2);
        assert_eq!(mbqm(-3, m, Rounding::Double), -1);
        assert_eq!(mbqm(3, m, Rounding::Single), 2);
        assert_eq!(mbqm(-3, m, Rounding::Single), -1);
        let big = quantize_multiplier(3.0, Rounding::Double);
        assert_eq!(mbqm(7, big, Rounding::Double), 21);
    }

    #[test]
    fn activation_ranges() {
        use crate::ir::Activation;
        assert_eq!(
            activation_range(Activation::Relu6, 6.0 / 255.0, 0, 0, 255),
            (0, 255)
        );
        assert_eq!(
            activation_range(Activation::Relu, 0.1, -128, -128, 127),
            (-128, 127)
        );
        assert_eq!(
            activation_range(Activation::Relu6, 0.1, -128, -128, 127),
            (-128, -68)
        );
        // TV9.
        assert_eq!(
            activation_range(Activation::Relu6, 0.05, -10, -128, 127),
            (-10, 110)
        );
    }
}

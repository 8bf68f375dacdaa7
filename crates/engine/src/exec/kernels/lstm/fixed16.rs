//! gemmlowp's fixed-point math on 16-bit raw values, as TFLite's integer LSTM uses it
//! (`ApplySigmoid` = `logistic` on Q3.12, `ApplyTanh` = `tanh` on Qm.(15-m)), plus the
//! 32-bit inverse square root of the integer layer norm.
//!
//! The integer-bit count is a run-time argument here where gemmlowp has a template
//! parameter; every step (wrapping `+`/`-`, saturating shifts, the barrel shifter of
//! `exp_on_negative_values`) follows the C++ scalar code so the bits agree.

use crate::quant::fixed_point::{rdbpot, srdhm};

/// SaturatingRoundingDoublingHighMul for int16 (VQRDMULH semantics).
#[inline]
pub fn srdhm16(a: i16, b: i16) -> i16 {
    if a == i16::MIN && b == i16::MIN {
        return i16::MAX;
    }
    let ab = a as i32 * b as i32;
    let nudge = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
    ((ab + nudge) / (1 << 15)) as i16
}

/// RoundingDivideByPOT for int16: `x / 2^e`, ties away from zero.
#[inline]
pub fn rdbpot16(x: i16, e: u32) -> i16 {
    let mask = ((1i32 << e) - 1) as i16;
    let rem = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i16;
    (x >> e).wrapping_add((rem > threshold) as i16)
}

/// SaturatingRoundingMultiplyByPOT for int16 with a signed exponent.
#[inline]
fn mul_pot16(x: i16, exponent: i32) -> i16 {
    match exponent.signum() {
        0 => x,
        -1 => rdbpot16(x, (-exponent) as u32),
        _ => {
            let threshold = (1i32 << (15 - exponent)) - 1;
            if x as i32 > threshold {
                i16::MAX
            } else if (x as i32) < -threshold {
                i16::MIN
            } else {
                (x as i32 * (1 << exponent)) as i16
            }
        }
    }
}

/// gemmlowp's `RescaleConstantInitializer`: a Q0.31 constant narrowed to 16 bits.
#[inline]
fn constant16(v: i32) -> i16 {
    rdbpot(v, 16) as i16
}

#[inline]
fn saturating_add16(a: i16, b: i16) -> i16 {
    (a as i32 + b as i32).clamp(i16::MIN as i32, i16::MAX as i32) as i16
}

#[inline]
fn rounding_half_sum16(a: i16, b: i16) -> i16 {
    let sum = a as i32 + b as i32;
    let sign = if sum >= 0 { 1 } else { -1 };
    ((sum + sign) / 2) as i16
}

/// exp(x) for x in [-1/4, 0), Q0.15 in and out.
fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i16) -> i16 {
    let constant_term = constant16(1_895_147_668);
    let one_third = constant16(715_827_883);
    let x = a.wrapping_add(1 << 12);
    let x2 = srdhm16(x, x);
    let x3 = srdhm16(x2, x);
    let x4 = srdhm16(x2, x2);
    let x4_over_4 = rdbpot16(x4, 2);
    let poly = rdbpot16(
        srdhm16(x4_over_4.wrapping_add(x3), one_third).wrapping_add(x2),
        1,
    );
    saturating_add16(constant_term, srdhm16(constant_term, x.wrapping_add(poly)))
}

/// exp(x) for x ≤ 0 given with `integer_bits` integer bits; result Q0.15.
pub fn exp_on_negative_values16(a: i16, integer_bits: i32) -> i16 {
    let frac = 15 - integer_bits;
    let one_quarter: i16 = 1 << (frac - 2);
    let mask = one_quarter - 1;
    let a_mod_quarter_minus_one_quarter = (a & mask).wrapping_sub(one_quarter);
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(mul_pot16(
        a_mod_quarter_minus_one_quarter,
        integer_bits,
    ));
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    const BARREL: [(i32, i32); 7] = [
        (-2, 1_672_461_947),
        (-1, 1_302_514_674),
        (0, 790_015_084),
        (1, 290_630_308),
        (2, 39_332_535),
        (3, 720_401),
        (4, 242),
    ];
    for (exponent, multiplier) in BARREL {
        if integer_bits > exponent {
            let bit = (1i32 << (frac + exponent)) as i16;
            if remainder & bit != 0 {
                result = srdhm16(result, constant16(multiplier));
            }
        }
    }
    if integer_bits > 5 {
        let clamp = constant16(-(1 << (36 - integer_bits)));
        if a < clamp {
            result = 0;
        }
    }
    if a == 0 { i16::MAX } else { result }
}

/// Newton–Raphson reciprocal shared by the logistic and tanh tails: returns the Q2.13
/// estimate of `1 / half_denominator`.
fn newton_reciprocal(half_denominator: i16) -> i16 {
    let c48_17 = constant16(1_515_870_810);
    let c_neg32_17 = constant16(-1_010_580_540);
    let one_f2: i16 = 1 << 13;
    let mut x = c48_17.wrapping_add(srdhm16(half_denominator, c_neg32_17));
    for _ in 0..3 {
        let hdx = srdhm16(half_denominator, x);
        let one_minus = one_f2.wrapping_sub(hdx);
        x = x.wrapping_add(mul_pot16(srdhm16(x, one_minus), 2));
    }
    x
}

/// 1 / (1 + x) for x in (0, 1), Q0.15.
fn one_over_one_plus_x_for_x_in_0_1(a: i16) -> i16 {
    let x = newton_reciprocal(rounding_half_sum16(a, i16::MAX));
    mul_pot16(x, 1)
}

/// (1 - x) / (1 + x) for x in (0, 1), Q0.15.
fn one_minus_x_over_one_plus_x_for_x_in_0_1(a: i16) -> i16 {
    let x = newton_reciprocal(rounding_half_sum16(a, i16::MAX));
    mul_pot16(x.wrapping_sub(1 << 13), 2)
}

/// gemmlowp `logistic` on a 16-bit value with `integer_bits` integer bits; Q0.15 out.
pub fn logistic16(a: i16, integer_bits: i32) -> i16 {
    let positive = a > 0;
    let abs = if positive { a } else { a.wrapping_neg() };
    let if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values16(
        abs.wrapping_neg(),
        integer_bits,
    ));
    if a == 0 {
        constant16(1 << 30)
    } else if positive {
        if_positive
    } else {
        i16::MAX.wrapping_sub(if_positive)
    }
}

/// gemmlowp `tanh` on a 16-bit value with `integer_bits` integer bits; Q0.15 out.
pub fn tanh16(a: i16, integer_bits: i32) -> i16 {
    let negative = a < 0;
    let n = if negative { a } else { a.wrapping_neg() };
    // ExactMulByPot<1>: same raw value read with one more integer bit.
    let t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values16(n, integer_bits + 1));
    if a == 0 {
        0
    } else if negative {
        t.wrapping_neg()
    } else {
        t
    }
}

/// Saturating left shift of an int32 by `e > 0` (gemmlowp SaturatingRoundingMultiplyByPOT).
#[inline]
fn shl_sat32(x: i32, e: u32) -> i32 {
    let threshold = (1i32 << (31 - e)) - 1;
    if x > threshold {
        i32::MAX
    } else if x < -threshold {
        i32::MIN
    } else {
        x.wrapping_mul(1 << e)
    }
}

/// TFLite `GetInvSqrtQuantizedMultiplierExp`: `1/sqrt(input)` as a multiplier and a
/// shift (`reverse_shift = -1` turns the right shift into MBQM's left-shift sign).
pub fn inv_sqrt_multiplier_exp(mut input: i32, reverse_shift: i32) -> (i32, i32) {
    if input <= 1 {
        return (i32::MAX, 0);
    }
    let mut shift = 11;
    while input >= (1 << 29) {
        input /= 4;
        shift += 1;
    }
    let max_left_shift_bits = (input as u32).leading_zeros() - 1;
    let left_shift_bit_pairs = max_left_shift_bits / 2 - 1;
    shift -= left_shift_bit_pairs as i32;
    input <<= 2 * left_shift_bit_pairs;
    // Q3.28 Newton–Raphson on 1/sqrt, as gemmlowp's F3.
    let fixed_input = input >> 1;
    let half_input = rdbpot(fixed_input, 1);
    let half_three = (1 << 28) + (1 << 27);
    let mut x: i32 = 1 << 28;
    for _ in 0..5 {
        let x3 = shl_sat32(srdhm(srdhm(x, x), x), 6);
        x = shl_sat32(srdhm(half_three, x).wrapping_sub(srdhm(half_input, x3)), 3);
    }
    let mut inv = srdhm(x, 1_518_500_250);
    if shift < 0 {
        inv <<= -shift;
        shift = 0;
    }
    (inv, shift * reverse_shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sigmoid_ref(raw: i16) -> f64 {
        1.0 / (1.0 + (-(raw as f64) / 4096.0).exp())
    }

    #[test]
    fn logistic_q3_12_tracks_the_real_sigmoid() {
        let mut worst = 0.0f64;
        for raw in (i16::MIN..=i16::MAX).step_by(7) {
            let got = logistic16(raw, 3) as f64 / 32768.0;
            worst = worst.max((got - sigmoid_ref(raw)).abs());
        }
        assert!(worst < 3e-4, "worst error {worst}");
        assert_eq!(logistic16(0, 3), 16384);
    }

    #[test]
    fn tanh_tracks_the_real_tanh_for_several_formats() {
        for bits in 0..=6 {
            let mut worst = 0.0f64;
            for raw in (i16::MIN..=i16::MAX).step_by(5) {
                let real = raw as f64 / f64::from(1u32 << (15 - bits));
                let got = tanh16(raw, bits) as f64 / 32768.0;
                worst = worst.max((got - real.tanh()).abs());
            }
            assert!(worst < 5e-4, "integer bits {bits}: worst error {worst}");
        }
        assert_eq!(tanh16(0, 3), 0);
    }

    #[test]
    fn inv_sqrt_matches_float() {
        for v in [2, 3, 4, 17, 1000, 65_536, 1 << 20, 123_456_789, i32::MAX] {
            let (m, s) = inv_sqrt_multiplier_exp(v, -1);
            let real = m as f64 * 2f64.powi(s - 31);
            let want = 1.0 / (v as f64).sqrt();
            assert!(
                (real / want - 1.0).abs() < 1e-4,
                "v = {v}: {real} vs {want}"
            );
        }
        assert_eq!(inv_sqrt_multiplier_exp(1, -1), (i32::MAX, 0));
        assert_eq!(inv_sqrt_multiplier_exp(0, -1), (i32::MAX, 0));
    }
}

//! The few gemmlowp fixed-point functions TFLite's integer softmax uses, on raw
//! `i32` values. `FixedPoint<i32, I>` holds `value * 2^(31 - I)`; `+`/`-` of
//! fixed-point values wrap (as in C++ on the raw integers) and `*` is SRDHM.

use crate::quant::fixed_point::{rdbpot, srdhm};

/// `SaturatingRoundingMultiplyByPOT<exponent>`: a saturating left shift for positive
/// exponents, a rounding right shift (ties away from zero) for negative ones.
#[inline(always)]
pub fn sat_rounding_mul_pot(x: i32, exponent: i32) -> i32 {
    if exponent > 0 {
        let threshold = (1i32 << (31 - exponent)) - 1;
        if x > threshold {
            i32::MAX
        } else if x < -threshold {
            i32::MIN
        } else {
            x << exponent
        }
    } else if exponent < 0 {
        rdbpot(x, -exponent)
    } else {
        x
    }
}

/// `Rescale<dst>` of a value with `src` integer bits.
#[inline(always)]
pub fn rescale(x: i32, src_integer_bits: i32, dst_integer_bits: i32) -> i32 {
    sat_rounding_mul_pot(x, src_integer_bits - dst_integer_bits)
}

/// `RoundingHalfSum`: `(a + b) / 2` rounded half away from zero, in 64 bits.
#[inline(always)]
pub fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = a as i64 + b as i64;
    let sign = if sum >= 0 { 1 } else { -1 };
    ((sum + sign) / 2) as i32
}

/// exp(a) for a Q0.31 `a` in [-1/4, 0): Taylor expansion around -1/8.
#[inline]
pub fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    const CONSTANT_TERM: i32 = 1_895_147_668; // exp(-1/8)
    const ONE_THIRD: i32 = 715_827_883;
    let x = a.wrapping_add(1 << 28); // + 1/8
    let x2 = srdhm(x, x);
    let x3 = srdhm(x2, x);
    let x4 = srdhm(x2, x2);
    let x4_over_4 = sat_rounding_mul_pot(x4, -2);
    let poly = sat_rounding_mul_pot(
        srdhm(x4_over_4.wrapping_add(x3), ONE_THIRD).wrapping_add(x2),
        -1,
    );
    CONSTANT_TERM.wrapping_add(srdhm(CONSTANT_TERM, x.wrapping_add(poly)))
}

/// `exp_on_negative_values` for an input with `integer_bits` integer bits (a ≤ 0);
/// the result is Q0.31.
pub fn exp_on_negative_values(a: i32, integer_bits: i32) -> i32 {
    let frac = 31 - integer_bits;
    let one_quarter = 1i32 << (frac - 2);
    let mask = one_quarter - 1;
    let a_mod_quarter_minus_one_quarter = (a & mask).wrapping_sub(one_quarter);
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(rescale(
        a_mod_quarter_minus_one_quarter,
        integer_bits,
        0,
    ));
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    // exp(-2^k) in Q0.31 for k = -2..=4: multiplied in for each set integral bit.
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
            let shift = frac + exponent;
            if remainder & (1i32 << shift) != 0 {
                result = srdhm(result, multiplier);
            }
        }
    }
    if integer_bits > 5 {
        let clamp = -(1i32 << (36 - integer_bits));
        if a < clamp {
            result = 0;
        }
    }
    if a == 0 { i32::MAX } else { result }
}

/// `one_over_one_plus_x_for_x_in_0_1`: 1/(1+a) for a Q0.31 `a` in [0, 1), by three
/// Newton-Raphson steps in Q2.29; result Q0.31.
pub fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    const C48_OVER_17: i32 = 1_515_870_810;
    const CNEG32_OVER_17: i32 = -1_010_580_540;
    const ONE_Q2: i32 = 1 << 29;
    let half_denominator = rounding_half_sum(a, i32::MAX);
    let mut x = C48_OVER_17.wrapping_add(srdhm(half_denominator, CNEG32_OVER_17));
    for _ in 0..3 {
        let half_denominator_times_x = srdhm(half_denominator, x);
        let one_minus = ONE_Q2.wrapping_sub(half_denominator_times_x);
        // Q2 * Q2 = Q4, rescaled back to Q2.
        x = x.wrapping_add(rescale(srdhm(x, one_minus), 4, 2));
    }
    // ExactMulByPot<-1> turns Q2 into Q1 with the same raw value; then Rescale<0>.
    rescale(x, 1, 0)
}

/// TFLite's `GetReciprocal`: for a positive `x` with `integer_digits` integer bits,
/// returns (1/x scaled into Q0.31, num_bits_over_unit).
pub fn get_reciprocal(x: i32, integer_digits: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros() as i32;
    let num_bits_over_unit = integer_digits - headroom_plus_one;
    let shifted = (x as u32)
        .checked_shl(headroom_plus_one as u32)
        .unwrap_or(0)
        .wrapping_sub(1u32 << 31) as i32;
    (
        one_over_one_plus_x_for_x_in_0_1(shifted),
        num_bits_over_unit,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(v: f64, integer_bits: i32) -> i32 {
        (v * 2f64.powi(31 - integer_bits)).round() as i32
    }

    #[test]
    fn exp_matches_real_exp() {
        assert_eq!(exp_on_negative_values(0, 5), i32::MAX);
        for &v in &[-0.01, -0.25, -0.5, -1.0, -2.5, -7.0, -15.9] {
            let got = exp_on_negative_values(q(v, 5), 5) as f64 / 2f64.powi(31);
            assert!(
                (got - v.exp()).abs() < 1e-6,
                "exp({v}) = {got} vs {}",
                v.exp()
            );
        }
        // Q4.27 input (the logistic path).
        let got = exp_on_negative_values(q(-3.0, 4), 4) as f64 / 2f64.powi(31);
        assert!((got - (-3f64).exp()).abs() < 2e-7);
    }

    #[test]
    fn reciprocal_matches_real_division() {
        for &v in &[0.0, 0.1, 0.5, 0.9, 0.999] {
            let got = one_over_one_plus_x_for_x_in_0_1(q(v, 0)) as f64 / 2f64.powi(31);
            assert!((got - 1.0 / (1.0 + v)).abs() < 1e-8, "1/(1+{v}) = {got}");
        }
        // 3.0 in Q12.19: 1/3 = (1/1.5) * 2^-1.
        let (r, bits) = get_reciprocal(3 << 19, 12);
        assert_eq!(bits, 1);
        assert!((r as f64 / 2f64.powi(31) / 2.0 - 1.0 / 3.0).abs() < 1e-8);
    }

    #[test]
    fn pot_multiply_saturates_and_rounds() {
        assert_eq!(sat_rounding_mul_pot(1 << 29, 2), i32::MAX);
        assert_eq!(sat_rounding_mul_pot(-(1 << 29), 2), i32::MIN);
        assert_eq!(sat_rounding_mul_pot(3, 2), 12);
        assert_eq!(sat_rounding_mul_pot(-5, -1), -3);
        assert_eq!(rounding_half_sum(3, 4), 4);
        assert_eq!(rounding_half_sum(-3, -4), -4);
    }
}

//! Integer-to-integer rescaling: QUANTIZE int→int (TFLite `Requantize`) and
//! CONCATENATION of inputs whose scale/zero point differ from the output's.

use super::{QInt, clamp_to};
use crate::quant::fixed_point::{Multiplier, Rounding, mbqm, quantize_multiplier};

/// QUANTIZE from one integer quantization to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requantize {
    pub m: Multiplier,
    pub in_zp: i32,
    pub out_zp: i32,
}

impl Requantize {
    /// Multiplier `in_s / out_s` divided in f64.
    pub fn new((in_s, in_zp): (f32, i32), (out_s, out_zp): (f32, i32)) -> Self {
        Requantize {
            m: quantize_multiplier(in_s as f64 / out_s as f64, Rounding::Double),
            in_zp,
            out_zp,
        }
    }

    #[inline(always)]
    pub fn apply<O: QInt>(&self, x: i32) -> O {
        clamp_to(
            mbqm(x - self.in_zp, self.m, Rounding::Double) + self.out_zp,
            O::MIN,
            O::MAX,
        )
    }

    /// Is this the uint8↔int8 conversion that only flips the top bit (same scale,
    /// zero points 128 apart in the right direction)?
    pub fn is_bit_flip<I: QInt, O: QInt>(&self) -> bool {
        let same_scale = self.m.m == 1 << 30 && self.m.shift == 1;
        let diff = self.in_zp - self.out_zp;
        same_scale
            && ((I::MIN == 0 && O::MIN == -128 && diff == 128)
                || (I::MIN == -128 && O::MIN == 0 && diff == -128))
    }
}

/// Reference requantization, element by element.
pub fn requantize<I: QInt, O: QInt>(r: &Requantize, x: &[I], y: &mut [O]) {
    for (o, v) in y.iter_mut().zip(x) {
        *o = r.apply(v.get());
    }
}

/// The uint8↔int8 bit flip (`x ^ 0x80`) on raw bytes.
pub fn flip_top_bit(x: &[u8], y: &mut [u8]) {
    for (o, v) in y.iter_mut().zip(x) {
        *o = v ^ 0x80;
    }
}

/// How one concatenation input is copied: raw, or rescaled in float as TFLite's
/// `ConcatenationWithScaling` does (`round(x·s + b) + out_zp`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConcatPart {
    Copy,
    Scale { scale: f32, bias: f32, out_zp: i32 },
}

impl ConcatPart {
    pub fn new((in_s, in_zp): (f32, i32), (out_s, out_zp): (f32, i32)) -> Self {
        if in_zp == out_zp && in_s == out_s {
            return ConcatPart::Copy;
        }
        let inverse_output_scale = 1.0f32 / out_s;
        let scale = in_s * inverse_output_scale;
        ConcatPart::Scale {
            scale,
            bias: -(in_zp as f32) * scale,
            out_zp,
        }
    }
}

/// Concatenate `inputs` (each `(data, shape, how)`) along `axis` into `y`.
pub fn concat_rescaled<T: QInt>(inputs: &[(&[T], &[usize], ConcatPart)], axis: usize, y: &mut [T]) {
    let Some(first) = inputs.first() else {
        return;
    };
    let outer: usize = first.1[..axis].iter().product();
    let inner: usize = first.1[axis + 1..].iter().product();
    let mut pos = 0usize;
    for k in 0..outer {
        for (data, shape, how) in inputs {
            let n = shape[axis] * inner;
            let src = &data[k * n..][..n];
            let dst = &mut y[pos..pos + n];
            match *how {
                ConcatPart::Copy => dst.copy_from_slice(src),
                ConcatPart::Scale {
                    scale,
                    bias,
                    out_zp,
                } => {
                    for (o, v) in dst.iter_mut().zip(src) {
                        let q = (v.get() as f32 * scale + bias).round() as i32 + out_zp;
                        *o = clamp_to(q, T::MIN, T::MAX);
                    }
                }
            }
            pos += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint8_int8_flip_equals_arithmetic() {
        let r = Requantize::new((0.0078, 128), (0.0078, 0));
        assert!(r.is_bit_flip::<u8, i8>());
        let x: Vec<u8> = (0..=255).collect();
        let mut a = vec![0i8; 256];
        requantize(&r, &x, &mut a);
        let mut b = vec![0u8; 256];
        flip_top_bit(&x, &mut b);
        assert!(a.iter().zip(&b).all(|(&p, &q)| p as u8 == q));
        let back = Requantize::new((0.0078, -128), (0.0078, 0));
        assert!(back.is_bit_flip::<i8, u8>());
        assert!(!back.is_bit_flip::<i8, i8>());
    }

    #[test]
    fn requantize_rescales_and_rounds() {
        // in (0.5, 10) → out (0.25, −5): y = 2(x − 10) − 5.
        let r = Requantize::new((0.5, 10), (0.25, -5));
        let mut y = [0i8; 3];
        requantize(&r, &[10i8, 20, 127], &mut y);
        assert_eq!(y, [-5, 15, 127]);
        // Halving: the multiplier is (2^30, shift 0), so only SRDHM rounds: ties
        // toward +∞ (−1.5 → −1, −0.5 → 0).
        let r = Requantize::new((0.5, 0), (1.0, 0));
        let mut y = [0i8; 4];
        requantize(&r, &[3i8, -3, 5, -1], &mut y);
        assert_eq!(y, [2, -1, 3, 0]);
    }

    #[test]
    fn concat_with_scaling() {
        // Output (0.1, 0); input a copies, input b (0.2, 10) rescales: 2(x − 10).
        let a = [1u8, 2, 3, 4];
        let b = [10u8, 11, 200, 12];
        let parts = [
            (
                &a[..],
                &[2usize, 2][..],
                ConcatPart::new((0.1, 0), (0.1, 0)),
            ),
            (
                &b[..],
                &[2usize, 2][..],
                ConcatPart::new((0.2, 10), (0.1, 0)),
            ),
        ];
        let mut y = [0u8; 8];
        concat_rescaled(&parts, 1, &mut y);
        assert_eq!(y, [1, 2, 0, 2, 3, 4, 255, 4]);
    }
}

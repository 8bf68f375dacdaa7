//! int16 LOGISTIC and TANH (16x8 mode) as TFLite computes them for int16 in both its
//! reference and optimized builds whenever the input scale is not a suitable power of
//! two (`reference_integer_ops::Logistic` / `Tanh`, int16 overloads): the input is
//! rescaled to units of 1/(3·4096), then a 256-entry table of sigmoid(i/24) in Q0.16 is
//! interpolated linearly; tanh(x) = 2·sigmoid(2x) − 1 reads the same table at twice
//! the rate. Output (1/32768, 0), input zero point 0.

/// TFLite's `sigmoid_table_uint16`: sigmoid(i/24) in 0.16 fixed point (the last entry
/// is rounded up to 65535). Data, as published in `kernels/internal/common.h`.
#[rustfmt::skip]
pub const SIGMOID_TABLE_U16: [u16; 256] = [
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498,
    40149, 40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255,
    46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865,
    52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174,
    56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544, 58800, 59048, 59288,
    59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279, 61441,
    61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886,
    62990, 63090, 63186, 63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835,
    63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308, 64357, 64405, 64450,
    64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845,
    64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097,
    65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360,
    65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425,
    65429, 65433, 65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465,
    65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508,
    65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516, 65517, 65517, 65518,
    65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524, 65525,
    65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529,
    65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531, 65531, 65531, 65531,
    65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533, 65533, 65533,
    65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65535,
];

/// Which of the two functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sigmoid16Kind {
    Logistic,
    Tanh,
}

/// Prepared int16 LOGISTIC/TANH: `x · multiplier` rounded right by `left_shift` gives
/// the input in units of 1/(3·4096) (2^12 per unit, the factor 3 stretching the
/// table's [−8, 8] to [−10.7, 10.7]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sigmoid16 {
    pub kind: Sigmoid16Kind,
    pub input_multiplier: i32,
    pub input_left_shift: i32,
}

impl Sigmoid16 {
    /// TFLite's `SigmoidPrepare`/`TanhPrepare` for int16. `input_log2` is `CheckedLog2`
    /// of the input scale (`None` when it is not a power of two).
    pub fn new(kind: Sigmoid16Kind, input_scale: f32, input_log2: Option<i32>) -> Self {
        // With 3 integer bits a Q3.12 input needs no rescaling (left shift 0); TANH
        // also takes Q2.13 (left shift 1).
        const INPUT_INTEGER_BITS: i32 = 3;
        let pot_shift = input_log2.map(|l| (15 - INPUT_INTEGER_BITS) + l);
        let pot_ok = matches!(
            (kind, pot_shift),
            (Sigmoid16Kind::Logistic, Some(0)) | (Sigmoid16Kind::Tanh, Some(0 | 1))
        );
        let (mul, shift) = if pot_ok {
            (3 << pot_shift.unwrap_or(0), 0)
        } else {
            // Scale to 1/(3·4096) and keep 15 significant bits in the multiplier.
            let mut multiplier = input_scale as f64 * 4096.0 * 3.0;
            let mut left_shift = 0;
            while multiplier <= 32767.0 / 2.0 && left_shift <= 30 {
                left_shift += 1;
                multiplier *= 2.0;
            }
            (multiplier as i32, left_shift)
        };
        Sigmoid16 {
            kind,
            input_multiplier: mul,
            input_left_shift: shift,
        }
    }

    #[inline(always)]
    pub fn apply(&self, x: i16) -> i16 {
        let round = if self.input_left_shift > 0 {
            1i32 << (self.input_left_shift - 1)
        } else {
            0
        };
        let v = (x as i32)
            .wrapping_mul(self.input_multiplier)
            .wrapping_add(round)
            >> self.input_left_shift.min(31);
        let abs = v.unsigned_abs();
        match self.kind {
            Sigmoid16Kind::Logistic => {
                // 9 fraction bits per table step: 2^12 per unit / 24 steps per unit,
                // with the factor 3 folded in (3·4096/24 = 512).
                let uh = abs >> 9;
                let r = if uh >= 255 {
                    0x7FFFu32 << 10
                } else {
                    let ua = SIGMOID_TABLE_U16[uh as usize] as u32;
                    let ub = SIGMOID_TABLE_U16[uh as usize + 1] as u32;
                    (ua << 9).wrapping_add((abs & 0x1ff).wrapping_mul(ub.wrapping_sub(ua)))
                };
                let r = if v >= 0 {
                    r.wrapping_add(1 << 9)
                } else {
                    (1u32 << 25).wrapping_sub(r).wrapping_add((1 << 9) - 1)
                };
                (r >> 10) as i16
            }
            Sigmoid16Kind::Tanh => {
                // tanh(x) = 2·sigmoid(2x) − 1: 8 fraction bits per step.
                let uh = abs >> 8;
                let r = if uh >= 255 {
                    (0xFFFFu32 << 8) as i32
                } else {
                    let ua = SIGMOID_TABLE_U16[uh as usize] as u32;
                    let ub = SIGMOID_TABLE_U16[uh as usize + 1] as u32;
                    let ut = abs & 0xFF;
                    (ua << 8).wrapping_add(ut.wrapping_mul(ub.wrapping_sub(ua))) as i32
                };
                let r = if v >= 0 {
                    r.wrapping_sub(1 << 23).wrapping_add(1 << 7)
                } else {
                    r.wrapping_neg()
                        .wrapping_add(1 << 23)
                        .wrapping_add((1 << 7) - 1)
                };
                (r >> 8) as i16
            }
        }
    }

    pub fn run(&self, x: &[i16], y: &mut [i16]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = self.apply(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sigmoid(v: f64) -> f64 {
        1.0 / (1.0 + (-v).exp())
    }

    #[test]
    fn table_is_sigmoid_of_i_over_24() {
        for (i, &t) in SIGMOID_TABLE_U16.iter().enumerate() {
            let want = (sigmoid(i as f64 / 24.0) * 65536.0).round().min(65535.0);
            assert!((t as f64 - want).abs() <= 1.0, "{i}: {t} vs {want}");
        }
    }

    #[test]
    fn prepare_matches_tflite() {
        // Q3.12 input (scale 2^-12): the power-of-two path, multiplier 3.
        let p = Sigmoid16::new(Sigmoid16Kind::Logistic, 1.0 / 4096.0, Some(-12));
        assert_eq!((p.input_multiplier, p.input_left_shift), (3, 0));
        // TANH also accepts Q4.11 (left shift 1): multiplier 3 << 1.
        let p = Sigmoid16::new(Sigmoid16Kind::Tanh, 1.0 / 2048.0, Some(-11));
        assert_eq!((p.input_multiplier, p.input_left_shift), (6, 0));
        // LOGISTIC does not: general path, 2^-11·12288 = 6 doubled until > 16383.5.
        let p = Sigmoid16::new(Sigmoid16Kind::Logistic, 1.0 / 2048.0, Some(-11));
        assert_eq!((p.input_multiplier, p.input_left_shift), (24576, 12));
        // Other powers of two take the general path too.
        let p = Sigmoid16::new(Sigmoid16Kind::Tanh, 1.0 / 8192.0, Some(-13));
        assert_eq!((p.input_multiplier, p.input_left_shift), (24576, 14));
        // A calibrated scale: 10/32767 · 12288 = 3.75, doubled 13 times to > 16383.5.
        let p = Sigmoid16::new(Sigmoid16Kind::Tanh, 10.0 / 32767.0, None);
        let m = (10.0f32 / 32767.0) as f64 * 4096.0 * 3.0 * 8192.0;
        assert_eq!((p.input_multiplier, p.input_left_shift), (m as i32, 13));
    }

    #[test]
    fn hand_checked_values() {
        let l = Sigmoid16::new(Sigmoid16Kind::Logistic, 1.0 / 4096.0, Some(-12));
        // sigmoid(0) = 0.5 → 16384.
        assert_eq!(l.apply(0), 16384);
        // x = 1.0 (4096): 3·4096 = 12288 = 24·512 → table[24] = 47911 exactly:
        // (47911·512 + 512) >> 10 = 23956, and the mirrored
        // (2^25 − 47911·512 + 511) >> 10 = 8812; they add up to 1.0.
        assert_eq!(l.apply(4096), 23956);
        assert_eq!(l.apply(-4096), 8812);
        // x = ±8 is still inside the table (uh = 192): σ(8)·32768 = 32757.
        assert!((l.apply(i16::MAX) - 32757).abs() <= 1);
        assert!((l.apply(i16::MIN) - 11).abs() <= 1);
        let t = Sigmoid16::new(Sigmoid16Kind::Tanh, 1.0 / 4096.0, Some(-12));
        assert_eq!(t.apply(0), 0);
        // Beyond the table (uh ≥ 255): saturated, (0xFFFF·2^8 − 2^23 + 2^7) >> 8.
        assert_eq!(t.apply(i16::MAX), 32767);
        assert_eq!(t.apply(i16::MIN), -32767);
    }

    #[test]
    fn close_to_float() {
        for (kind, f) in [
            (Sigmoid16Kind::Logistic, sigmoid as fn(f64) -> f64),
            (Sigmoid16Kind::Tanh, f64::tanh as fn(f64) -> f64),
        ] {
            for s in [1.0f32 / 4096.0, 8.0 / 32767.0, 3.1e-4, 1.7e-3] {
                let p = Sigmoid16::new(kind, s, None);
                for q in (i16::MIN..=i16::MAX).step_by(37) {
                    let want = f(s as f64 * q as f64) * 32768.0;
                    let got = p.apply(q) as f64;
                    assert!(
                        (got - want).abs() <= 12.0,
                        "{kind:?} s={s} q={q}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

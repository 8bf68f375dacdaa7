//! Vectorized 8-bit requantization: `clamp(MBQM(acc + col[c] + row) + out_zp)` for a run
//! of output channels, with the exact double-rounding arithmetic of the reference.
//!
//! SRDHM's nudge-and-truncate equals `(x·m + 2^30) >> 31` (floor) for every product
//! whose multiplier `m` is non-negative, because the negative nudge `1 − 2^30` plus the
//! truncation correction `2^31 − 1` is again `2^30`; the saturating case needs
//! `m = INT32_MIN`, which QuantizeMultiplier never produces. So lanes need one 64-bit
//! multiply, one add and one shift.

use super::params::QElem;
use crate::exec::kernels::cpu::Isa;
use crate::quant::fixed_point::{Multiplier, Rounding, float_requant, mbqm};

/// Per-channel requantization constants, padded with zeros to a multiple of 16.
pub(crate) struct Requant {
    pub mult: Vec<Multiplier>,
    pub m: Vec<i32>,
    pub lsh: Vec<i32>,
    pub rsh: Vec<i32>,
    /// RDBPOT's `2^rsh − 1` and `(2^rsh − 1) >> 1`, precomputed per channel.
    pub rmask: Vec<i32>,
    pub rhalf: Vec<i32>,
    /// Whether any channel shifts left (multiplier ≥ 1); usually not.
    pub any_lsh: bool,
    pub out_zp: i32,
    pub act_min: i32,
    pub act_max: i32,
    pub rounding: Rounding,
    /// FULLY_CONNECTED's f64 output scales ([`float_requant`]); the SIMD epilogues
    /// implement only the multiplier, so with these every row takes the scalar path.
    pub real: Option<Vec<f64>>,
}

impl Requant {
    pub fn new(mult: &[Multiplier], out_zp: i32, act_min: i32, act_max: i32, r: Rounding) -> Self {
        let n = mult.len().next_multiple_of(16);
        let mut mult = mult.to_vec();
        mult.resize(n, Multiplier::default());
        Requant {
            m: mult.iter().map(|m| m.m).collect(),
            lsh: mult.iter().map(|m| m.shift.max(0)).collect(),
            rsh: mult.iter().map(|m| (-m.shift).max(0)).collect(),
            rmask: mult
                .iter()
                .map(|m| ((1i64 << (-m.shift).max(0)) - 1) as i32)
                .collect(),
            rhalf: mult
                .iter()
                .map(|m| (((1i64 << (-m.shift).max(0)) - 1) >> 1) as i32)
                .collect(),
            any_lsh: mult.iter().any(|m| m.shift > 0),
            mult,
            out_zp,
            act_min,
            act_max,
            rounding: r,
            real: None,
        }
    }

    /// Requantize with FULLY_CONNECTED's f64 output scales instead (see [`QParams`]).
    ///
    /// [`QParams`]: super::params::QParams
    pub fn with_float_scales(mut self, real: Option<&[f64]>) -> Self {
        self.real = real.map(<[f64]>::to_vec);
        self
    }

    #[inline(always)]
    fn scalar(&self, c: usize, v: i32) -> i32 {
        match &self.real {
            Some(r) => float_requant(v as i64, r[c]),
            None => mbqm(v, self.mult[c], self.rounding),
        }
        .wrapping_add(self.out_zp)
        .clamp(self.act_min, self.act_max)
    }

    /// Writes `out[j]` for channels `n0 + j` from `acc[j] + col[j] + row_add`.
    /// `acc` and `col` may be longer than `out` (padded tiles).
    #[inline]
    pub fn row<T: QElem>(
        &self,
        isa: Isa,
        n0: usize,
        acc: &[i32],
        col: &[i32],
        row_add: i32,
        out: &mut [T],
    ) {
        let n = out.len();
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if self.rounding == Rounding::Double && self.real.is_none() && n >= 8 {
            // SAFETY: the ISA was clamped to what the CPU supports at preparation.
            done = unsafe {
                match isa {
                    Isa::Avx512 => x86::row_avx512(self, n0, acc, col, row_add, out),
                    Isa::Avx2 => x86::row_avx2(self, n0, acc, col, row_add, out),
                    Isa::Portable => 0,
                }
            };
        }
        let _ = isa;
        for j in done..n {
            let v = acc[j].wrapping_add(col[j]).wrapping_add(row_add);
            out[j] = T::from_i32(self.scalar(n0 + j, v));
        }
    }
}

/// Whether every channel qualifies for the cheaper exact epilogue ([`v512::rq_fast`]):
/// a multiplier `m ≥ 0` and a right shift `r` in 1..=30. The caller also bounds the
/// accumulators: `|x| < 2^30` for every possible sum.
pub(crate) fn fast_shifts_ok(mult: &[Multiplier]) -> bool {
    mult.iter()
        .all(|m| m.m >= 0 && (-30..=-1).contains(&m.shift))
}

/// The 64-bit nudge `2^31 + 2^(r−1)·2^32` of [`v512::rq_fast`] for one multiplier
/// (`r` = its right shift).
pub(crate) fn fast_nudge(m: &Multiplier) -> i64 {
    let r = (-m.shift).max(0);
    (1i64 << 31) + if r > 0 { (1i64 << (r - 1)) << 32 } else { 0 }
}

/// The 64-bit nudges `2^31 + 2^(r−1)·2^32` of [`v512::rq_fast`] for `np` channels (a
/// multiple of 16; channels past `mult` get `2^31`): per block of 16 channels the 8
/// even lanes, then the 8 odd ones (the order of the even/odd products).
pub(crate) fn fast_nudges(mult: &[Multiplier], np: usize) -> Vec<i64> {
    let nudge = |c: usize| -> i64 { mult.get(c).map_or(1i64 << 31, fast_nudge) };
    let mut v = vec![0i64; np];
    for blk in 0..np / 16 {
        for i in 0..8 {
            v[blk * 16 + i] = nudge(blk * 16 + 2 * i);
            v[blk * 16 + 8 + i] = nudge(blk * 16 + 2 * i + 1);
        }
    }
    v
}

/// AVX-512 building blocks shared by the integer kernels (depthwise, ADD/SUB).
#[cfg(target_arch = "x86_64")]
pub(crate) mod v512 {
    use crate::quant::fixed_point::Multiplier;
    use std::arch::x86_64::*;

    /// One MBQM (double rounding) per lane, constants in registers. Valid for
    /// multipliers `m >= 0` only (see the module comment): callers check it.
    #[derive(Clone, Copy)]
    pub(crate) struct Mbqm {
        /// `m` in every 32-bit lane (even and odd lanes read the same value).
        m: __m512i,
        lsh: __m128i,
        rsh: __m128i,
        mask: __m512i,
        half: __m512i,
        any_lsh: bool,
    }

    impl Mbqm {
        /// `None` for a negative multiplier (SRDHM's saturating corner would differ).
        #[target_feature(enable = "avx512f")]
        pub(crate) fn splat(mult: Multiplier) -> Option<Self> {
            if mult.m < 0 || !(-31..=31).contains(&mult.shift) {
                return None;
            }
            let r = (-mult.shift).max(0);
            let mask = ((1i64 << r) - 1) as i32;
            Some(Mbqm {
                m: _mm512_set1_epi32(mult.m),
                lsh: _mm_cvtsi32_si128(mult.shift.max(0)),
                rsh: _mm_cvtsi32_si128(r),
                mask: _mm512_set1_epi32(mask),
                half: _mm512_set1_epi32(mask >> 1),
                any_lsh: mult.shift > 0,
            })
        }

        /// `mbqm(x, mult, Rounding::Double)` on 16 lanes.
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub(crate) fn apply(&self, x: __m512i) -> __m512i {
            let x = if self.any_lsh {
                _mm512_sll_epi32(x, self.lsh)
            } else {
                x
            };
            let h = srdhm_nonneg(x, self.m, self.m);
            let rem = _mm512_and_si512(h, self.mask);
            let thr = _mm512_add_epi32(self.half, _mm512_srli_epi32(h, 31));
            let up = _mm512_cmpgt_epi32_mask(rem, thr);
            let q = _mm512_sra_epi32(h, self.rsh);
            _mm512_mask_sub_epi32(q, up, q, _mm512_set1_epi32(-1))
        }
    }

    /// SRDHM for `m >= 0`: `(x·m + 2^30) >> 31` per lane. `m_odd` holds the odd
    /// lanes' multipliers in the low halves of the 64-bit lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn srdhm_nonneg(x: __m512i, m_even: __m512i, m_odd: __m512i) -> __m512i {
        let nudge = _mm512_set1_epi64(1 << 30);
        let pe = _mm512_add_epi64(_mm512_mul_epi32(x, m_even), nudge);
        let po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), m_odd), nudge);
        // Even lanes: bits 31..62 moved down; odd lanes: moved up into the high half.
        let qe = _mm512_srli_epi64(pe, 31);
        let qo = _mm512_slli_epi64(po, 1);
        _mm512_mask_blend_epi32(0xAAAA, qe, qo)
    }

    /// The cheaper exact MBQM (double rounding) of [`super::fast_shifts_ok`] channels
    /// with `|x| < 2^30`, before the zero point: ten operations per 16 lanes.
    /// - `2x` fits in int32 and `(2x·m + 2^31) >> 32` is SRDHM's `(x·m + 2^30) >> 31`;
    /// - RDBPOT's "remainder above half (+1 if negative)" is `(h + 2^(r−1) − [h<0]) >> r`,
    ///   and `[h<0]` may be replaced by `[x<0]`: `m ≥ 0` makes `h ≤ 0` when `x < 0`, and
    ///   for `h = 0` the −1 does not change the result when `r ≥ 1`;
    /// - `2^(r−1)` rides in the high half of the 64-bit nudge, no overflow anywhere.
    ///
    /// `m_odd` is `m >> 32` (64-bit lanes); `ne`/`no` the even/odd lanes' nudges of
    /// [`super::fast_nudges`].
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn rq_fast(
        x: __m512i,
        m: __m512i,
        m_odd: __m512i,
        rsh: __m512i,
        ne: __m512i,
        no: __m512i,
    ) -> __m512i {
        let x2 = _mm512_add_epi32(x, x);
        let pe = _mm512_add_epi64(_mm512_mul_epi32(x2, m), ne);
        let po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x2, 32), m_odd), no);
        // High halves: h + 2^(r-1) per lane (even lanes moved down).
        let hn = _mm512_mask_shuffle_epi32::<0xF5>(po, 0x5555, pe);
        let t = _mm512_add_epi32(hn, _mm512_srai_epi32(x, 31));
        _mm512_srav_epi32(t, rsh)
    }

    /// MBQM with shift 0 (RDBPOT by 0 is the identity), `m ≥ 0`, `|x| < 2^30`: SRDHM
    /// as `(2x·m + 2^31) >> 32` (see [`rq_fast`]), `m` in both halves of each 64-bit
    /// lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn srdhm_fast(x: __m512i, m: __m512i) -> __m512i {
        let nudge = _mm512_set1_epi64(1 << 31);
        let x2 = _mm512_add_epi32(x, x);
        let pe = _mm512_add_epi64(_mm512_mul_epi32(x2, m), nudge);
        let po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x2, 32), m), nudge);
        _mm512_mask_shuffle_epi32::<0xF5>(po, 0x5555, pe)
    }

    /// Narrowing of requantized int32 lanes (before the zero point) to bytes, as the
    /// 8-bit kernels store them: saturating packs to int16, plus the zero point
    /// (saturating), saturating packs to bytes, then the activation clamp where it is
    /// narrower than the byte type. A value beyond int16 stays beyond the byte range
    /// after adding the zero point, so this is exactly `clamp(q + zp)`.
    #[derive(Clone, Copy)]
    pub(crate) struct ByteNarrow {
        zp: __m512i,
        lo: __m512i,
        hi: __m512i,
        clamp_lo: bool,
        clamp_hi: bool,
        signed: bool,
    }

    impl ByteNarrow {
        #[target_feature(enable = "avx512f,avx512bw")]
        pub(crate) fn new(out_zp: i32, act_min: i32, act_max: i32, signed: bool) -> Self {
            let (tmin, tmax) = if signed { (-128, 127) } else { (0, 255) };
            ByteNarrow {
                zp: _mm512_set1_epi16(out_zp as i16),
                lo: _mm512_set1_epi8(act_min as i8),
                hi: _mm512_set1_epi8(act_max as i8),
                clamp_lo: act_min > tmin,
                clamp_hi: act_max < tmax,
                signed,
            }
        }

        /// Four vectors of 16 lanes to 64 bytes: dword `4L + i` of the result holds
        /// lanes `4L..4L+3` of `q[i]` (permute for channel order).
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw")]
        pub(crate) fn pack(&self, q: [__m512i; 4]) -> __m512i {
            let p01 = _mm512_adds_epi16(_mm512_packs_epi32(q[0], q[1]), self.zp);
            let p23 = _mm512_adds_epi16(_mm512_packs_epi32(q[2], q[3]), self.zp);
            let mut v = if self.signed {
                _mm512_packs_epi16(p01, p23)
            } else {
                _mm512_packus_epi16(p01, p23)
            };
            if self.clamp_lo {
                v = if self.signed {
                    _mm512_max_epi8(v, self.lo)
                } else {
                    _mm512_max_epu8(v, self.lo)
                };
            }
            if self.clamp_hi {
                v = if self.signed {
                    _mm512_min_epi8(v, self.hi)
                } else {
                    _mm512_min_epu8(v, self.hi)
                };
            }
            v
        }
    }

    /// Per-lane RDBPOT with precomputed shift, mask and half-mask vectors.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn rdbpot_v(h: __m512i, rsh: __m512i, mask: __m512i, half: __m512i) -> __m512i {
        let rem = _mm512_and_si512(h, mask);
        let thr = _mm512_add_epi32(half, _mm512_srli_epi32(h, 31));
        let up = _mm512_cmpgt_epi32_mask(rem, thr);
        let q = _mm512_srav_epi32(h, rsh);
        _mm512_mask_sub_epi32(q, up, q, _mm512_set1_epi32(-1))
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{QElem, Requant};
    use std::arch::x86_64::*;

    /// Returns how many leading channels were written (a multiple of 16).
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn row_avx512<T: QElem>(
        r: &Requant,
        n0: usize,
        acc: &[i32],
        col: &[i32],
        row_add: i32,
        out: &mut [T],
    ) -> usize {
        let n = out.len() / 16 * 16;
        assert!(acc.len() >= n && col.len() >= n && r.m.len() >= n0 + n);
        let radd = _mm512_set1_epi32(row_add);
        let nudge = _mm512_set1_epi64(1 << 30);
        let one = _mm512_set1_epi32(1);
        let zp = _mm512_set1_epi32(r.out_zp);
        let lo = _mm512_set1_epi32(r.act_min);
        let hi = _mm512_set1_epi32(r.act_max);
        let mut j = 0;
        while j < n {
            // SAFETY: every load reads 16 lanes inside the slices asserted above; the
            // store writes 16 elements of `out` (j + 16 <= n <= out.len()).
            unsafe {
                let a = _mm512_loadu_si512(acc.as_ptr().add(j).cast());
                let c = _mm512_loadu_si512(col.as_ptr().add(j).cast());
                let m = _mm512_loadu_si512(r.m.as_ptr().add(n0 + j).cast());
                let rs = _mm512_loadu_si512(r.rsh.as_ptr().add(n0 + j).cast());
                let mut x = _mm512_add_epi32(_mm512_add_epi32(a, c), radd);
                if r.any_lsh {
                    let ls = _mm512_loadu_si512(r.lsh.as_ptr().add(n0 + j).cast());
                    x = _mm512_sllv_epi32(x, ls);
                }
                // SRDHM on even and odd lanes as 64-bit products.
                let pe = _mm512_add_epi64(_mm512_mul_epi32(x, m), nudge);
                let po = _mm512_add_epi64(
                    _mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(m, 32)),
                    nudge,
                );
                let qe = _mm512_srli_epi64(pe, 31);
                let qo = _mm512_slli_epi64(_mm512_srli_epi64(po, 31), 32);
                let h = _mm512_mask_blend_epi32(0xAAAA, qe, qo);
                // RDBPOT: arithmetic shift plus one where the remainder passes the threshold.
                let mask = _mm512_loadu_si512(r.rmask.as_ptr().add(n0 + j).cast());
                let half = _mm512_loadu_si512(r.rhalf.as_ptr().add(n0 + j).cast());
                let rem = _mm512_and_si512(h, mask);
                let thr = _mm512_add_epi32(half, _mm512_srli_epi32(h, 31));
                let up = _mm512_cmpgt_epi32_mask(rem, thr);
                let v = _mm512_mask_add_epi32(
                    _mm512_srav_epi32(h, rs),
                    up,
                    _mm512_srav_epi32(h, rs),
                    one,
                );
                let v = _mm512_add_epi32(v, zp);
                let v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
                // Values are clamped to T's range, so truncating narrows are exact.
                let dst = out.as_mut_ptr().add(j);
                match std::mem::size_of::<T>() {
                    1 => _mm_storeu_si128(dst.cast(), _mm512_cvtepi32_epi8(v)),
                    _ => _mm256_storeu_si256(dst.cast(), _mm512_cvtepi32_epi16(v)),
                }
            }
            j += 16;
        }
        n
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn row_avx2<T: QElem>(
        r: &Requant,
        n0: usize,
        acc: &[i32],
        col: &[i32],
        row_add: i32,
        out: &mut [T],
    ) -> usize {
        let n = out.len() / 8 * 8;
        assert!(acc.len() >= n && col.len() >= n && r.m.len() >= n0 + n);
        let radd = _mm256_set1_epi32(row_add);
        let nudge = _mm256_set1_epi64x(1 << 30);
        let zp = _mm256_set1_epi32(r.out_zp);
        let lo = _mm256_set1_epi32(r.act_min);
        let hi = _mm256_set1_epi32(r.act_max);
        let mut j = 0;
        while j < n {
            // SAFETY: every load reads 8 lanes inside the slices asserted above; the
            // store writes 8 elements of `out`.
            unsafe {
                let a = _mm256_loadu_si256(acc.as_ptr().add(j).cast());
                let c = _mm256_loadu_si256(col.as_ptr().add(j).cast());
                let m = _mm256_loadu_si256(r.m.as_ptr().add(n0 + j).cast());
                let rs = _mm256_loadu_si256(r.rsh.as_ptr().add(n0 + j).cast());
                let mut x = _mm256_add_epi32(_mm256_add_epi32(a, c), radd);
                if r.any_lsh {
                    let ls = _mm256_loadu_si256(r.lsh.as_ptr().add(n0 + j).cast());
                    x = _mm256_sllv_epi32(x, ls);
                }
                let pe = _mm256_add_epi64(_mm256_mul_epi32(x, m), nudge);
                let po = _mm256_add_epi64(
                    _mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(m, 32)),
                    nudge,
                );
                // Low 32 bits of a logical and an arithmetic shift by 31 agree.
                let qe = _mm256_srli_epi64(pe, 31);
                let qo = _mm256_slli_epi64(_mm256_srli_epi64(po, 31), 32);
                let h = _mm256_blend_epi32(qe, qo, 0b1010_1010);
                let mask = _mm256_loadu_si256(r.rmask.as_ptr().add(n0 + j).cast());
                let half = _mm256_loadu_si256(r.rhalf.as_ptr().add(n0 + j).cast());
                let rem = _mm256_and_si256(h, mask);
                let thr = _mm256_add_epi32(half, _mm256_srli_epi32(h, 31));
                let up = _mm256_cmpgt_epi32(rem, thr); // -1 where rounding up
                let v = _mm256_sub_epi32(_mm256_srav_epi32(h, rs), up);
                let v = _mm256_add_epi32(v, zp);
                let v = _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
                // Values are clamped to T's range, so saturating packs are exact.
                let p16 =
                    _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
                let dst = out.as_mut_ptr().add(j);
                match (std::mem::size_of::<T>(), T::SIGNED) {
                    (1, true) => _mm_storel_epi64(dst.cast(), _mm_packs_epi16(p16, p16)),
                    (1, false) => _mm_storel_epi64(dst.cast(), _mm_packus_epi16(p16, p16)),
                    _ => _mm_storeu_si128(dst.cast(), p16),
                }
            }
            j += 8;
        }
        n
    }
}

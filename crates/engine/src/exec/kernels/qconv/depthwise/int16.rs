//! int16x8 DEPTHWISE_CONV_2D (depth multiplier 1) on AVX-512: the int16 inputs of two
//! taps are interleaved (`vpunpck[lh]wd`) into the pairs `vpdpwssd` (or `vpmaddwd`
//! without VNNI) multiplies and sums, so one instruction does two taps of 16 channels;
//! a block of 32 channels is two such accumulators, put back in channel order by one
//! permute each. Every pixel sums all `k_h·k_w` taps: a tap outside the image reads a
//! row of zeros (the int16 zero point is 0), so it adds nothing, like the skipped tap
//! of the reference. Sums are exact in int32 (at most 256 taps of |x·w| ≤ 2^22), then
//! widened and requantized in registers with the same `mbqm64` constants as
//! [`Requant64`], so the bytes equal the reference kernel's.

use crate::exec::kernels::cpu;
use crate::exec::kernels::geometry::Geometry;
use crate::exec::kernels::qconv::gemm::wide::{self, Requant64};
use crate::exec::kernels::qconv::params::{QElem, QParams};

/// Most taps whose sums stay exact in int32 (256 · 2^22 = 2^30).
const MAX_TAPS: usize = 256;

pub(super) struct Dw16 {
    g: Geometry,
    /// Tap pairs (the last one padded with a zero-weight tap when `taps` is odd).
    pairs: usize,
    /// Blocks of 32 channels.
    blocks: usize,
    /// `[block][pair][half 0..2][lane 0..16]`: the pair `(w_a, w_b)` of the two taps for
    /// the channel `vpunpck[lh]wd` puts in that lane (half 0: low, half 1: high).
    w: Vec<i32>,
    /// Bias and `mbqm64` constants (padded to whole blocks of 32 channels).
    rq: Requant64,
    vnni: bool,
    /// Read by taps outside the image.
    zeros: Vec<i16>,
}

/// The channel (within its block of 32) in lane `j` of the low (`high = false`) or
/// high unpack of two 32-channel int16 vectors: each 128-bit lane holds 8 channels, of
/// which the low unpack takes the first 4 and the high unpack the last 4.
fn unpacked_channel(j: usize, high: bool) -> usize {
    8 * (j / 4) + j % 4 + if high { 4 } else { 0 }
}

impl Dw16 {
    /// `None` unless the CPU has AVX-512 F/BW/DQ and the op is an int16 depthwise
    /// with multiplier 1, input zero point 0 and at most [`MAX_TAPS`] taps.
    pub fn new<W: QElem>(
        g: &Geometry,
        q: &QParams,
        filter: &[W],
        rq: &Requant64,
        avx512: bool,
    ) -> Option<Self> {
        let f = cpu::features();
        if !(avx512 && f.avx512f && f.avx512bw && f.avx512dq) {
            return None;
        }
        let taps = g.k_h * g.k_w;
        if !q.scheme.wide() || g.depth_multiplier != 1 || q.in_zp != 0 || taps > MAX_TAPS {
            return None;
        }
        let c = g.out_c;
        if c == 0 || taps == 0 || filter.len() != taps * c {
            return None;
        }
        let pairs = taps.div_ceil(2);
        let blocks = c.div_ceil(32);
        let weight = |t: usize, ch: usize| -> i32 {
            if t < taps && ch < c {
                filter[t * c + ch].to_i32() - q.w_zp
            } else {
                0
            }
        };
        let mut w = Vec::with_capacity(blocks * pairs * 32);
        for b in 0..blocks {
            for p in 0..pairs {
                for high in [false, true] {
                    for j in 0..16 {
                        let ch = 32 * b + unpacked_channel(j, high);
                        let (lo, hi) = (weight(2 * p, ch), weight(2 * p + 1, ch));
                        // Weights are int8 (minus a zero point of 0): they fit int16.
                        let (lo, hi) = (i16::try_from(lo).ok()?, i16::try_from(hi).ok()?);
                        w.push(wide::pair(lo, hi));
                    }
                }
            }
        }
        Some(Dw16 {
            g: *g,
            pairs,
            blocks,
            w,
            rq: rq.clone(),
            vnni: f.avx512vnni,
            zeros: vec![0; blocks * 32],
        })
    }

    /// Output rows `row0..` (row = batch × out_h index) into `out` (whole rows).
    /// `T` must be i16.
    pub fn rows<T: QElem>(&self, row0: usize, input: &[T], out: &mut [T]) {
        let g = &self.g;
        assert!(
            std::mem::size_of::<T>() == 2 && T::SIGNED,
            "int16 depthwise on another type"
        );
        assert_eq!(input.len(), g.input_len(), "depthwise input size");
        let row_len = g.out_w * g.out_c;
        assert!(
            out.len().is_multiple_of(row_len.max(1)),
            "whole output rows"
        );
        assert!(
            row0 + out.len() / row_len.max(1) <= g.batch * g.out_h,
            "rows in range"
        );
        // SAFETY: T is a signed 16-bit integer (asserted): the same memory as i16.
        let x = unsafe { std::slice::from_raw_parts(input.as_ptr().cast::<i16>(), input.len()) };
        // SAFETY: as above; `out` is borrowed mutably for the whole call.
        let o =
            unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<i16>(), out.len()) };
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `new` only succeeds with AVX-512 F/BW/DQ; every input offset is
            // checked against the geometry inside, the rows above.
            unsafe {
                if self.vnni {
                    x86::rows_vnni(self, row0, x, o)
                } else {
                    x86::rows_bw(self, row0, x, o)
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (row0, x, o);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Dw16;
    use crate::exec::kernels::qconv::gemm::wide::x86::{mac, requant16};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vnni")]
    pub(super) unsafe fn rows_vnni(k: &Dw16, row0: usize, x: &[i16], out: &mut [i16]) {
        // SAFETY: same contract.
        unsafe { rows::<true>(k, row0, x, out) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512dq")]
    pub(super) unsafe fn rows_bw(k: &Dw16, row0: usize, x: &[i16], out: &mut [i16]) {
        // SAFETY: same contract.
        unsafe { rows::<false>(k, row0, x, out) }
    }

    #[inline(always)]
    unsafe fn rows<const VNNI: bool>(k: &Dw16, row0: usize, x: &[i16], out: &mut [i16]) {
        let g = &k.g;
        let c = g.out_c;
        let row_len = g.out_w * c;
        // Lanes of the two unpacks back in channel order: channel `ch` of the block
        // sits in lane 4·(ch/8) + ch%4 of the low (ch%8 < 4) or high (bit 4) unpack.
        let order = |first: usize| -> __m512i {
            let mut idx = [0i32; 16];
            for (l, v) in idx.iter_mut().enumerate() {
                let ch = first + l;
                let lane = 4 * (ch / 8) + ch % 4;
                *v = (lane | if ch % 8 >= 4 { 16 } else { 0 }) as i32;
            }
            // SAFETY: 16 i32 = 64 bytes.
            unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) }
        };
        let (idx0, idx1) = (order(0), order(16));
        let mut tap_at: Vec<*const i16> = vec![k.zeros.as_ptr(); k.pairs * 2];
        for (r, out_row) in out.chunks_exact_mut(row_len.max(1)).enumerate() {
            let row = row0 + r;
            let (b, oy) = (row / g.out_h, row % g.out_h);
            for ox in 0..g.out_w {
                for ky in 0..g.k_h {
                    let iy = (oy * g.stride_h + ky * g.dilation_h) as isize - g.pad_top as isize;
                    for kx in 0..g.k_w {
                        let ix =
                            (ox * g.stride_w + kx * g.dilation_w) as isize - g.pad_left as isize;
                        let inside =
                            iy >= 0 && (iy as usize) < g.in_h && ix >= 0 && (ix as usize) < g.in_w;
                        tap_at[ky * g.k_w + kx] = if inside {
                            let s = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * c;
                            x[s..s + c].as_ptr()
                        } else {
                            k.zeros.as_ptr()
                        };
                    }
                }
                let o = &mut out_row[ox * c..(ox + 1) * c];
                for blk in 0..k.blocks {
                    let c0 = 32 * blk;
                    let n = (c - c0).min(32);
                    let mask: __mmask32 = if n == 32 { !0 } else { (1u32 << n) - 1 };
                    // SAFETY: the callers enable AVX-512F.
                    let mut acc = [unsafe { _mm512_setzero_si512() }; 2];
                    let wb = &k.w[blk * k.pairs * 32..(blk + 1) * k.pairs * 32];
                    for p in 0..k.pairs {
                        // SAFETY: each tap pointer starts a run of `c` in-bounds values
                        // (a pixel of `x`, or the zero row of `blocks * 32`), and the
                        // mask reads at most `c - c0` of them from `c0`; masked-off
                        // lanes are not accessed. The odd tap count's padding tap
                        // points at the zero row and has weight 0.
                        unsafe {
                            let xa = _mm512_maskz_loadu_epi16(mask, tap_at[2 * p].add(c0).cast());
                            let xb =
                                _mm512_maskz_loadu_epi16(mask, tap_at[2 * p + 1].add(c0).cast());
                            let wl = _mm512_loadu_si512(wb.as_ptr().add(32 * p).cast());
                            let wh = _mm512_loadu_si512(wb.as_ptr().add(32 * p + 16).cast());
                            acc[0] = mac::<VNNI>(acc[0], _mm512_unpacklo_epi16(xa, xb), wl);
                            acc[1] = mac::<VNNI>(acc[1], _mm512_unpackhi_epi16(xa, xb), wh);
                        }
                    }
                    // SAFETY: constants padded to whole blocks of 32; `o` holds `c`
                    // values, and the masked store writes only the block's `n` of them.
                    unsafe {
                        let v0 = _mm512_permutex2var_epi32(acc[0], idx0, acc[1]);
                        let v1 = _mm512_permutex2var_epi32(acc[0], idx1, acc[1]);
                        // (No closure here: it would not inherit the target features.)
                        let q0 = requant16(
                            &k.rq,
                            _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v0)),
                            _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v0, 1)),
                            c0,
                        );
                        let q1 = requant16(
                            &k.rq,
                            _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v1)),
                            _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v1, 1)),
                            c0 + 16,
                        );
                        let packed = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
                        _mm512_mask_storeu_epi16(o.as_mut_ptr().add(c0).cast(), mask, packed);
                    }
                }
            }
        }
    }
}

//! 8-bit DEPTHWISE_CONV_2D (depth multiplier 1) on AVX-512 VNNI: four taps of one
//! channel are interleaved into the four bytes `vpdpbusd` multiplies and sums, so one
//! instruction does four taps of 16 channels.
//!
//! Same mapping to unsigned × signed bytes as the 8-bit GEMM (`gemm/narrow.rs`): `a = x + a_bias`,
//! `b = w + b_bias`, `α = in_offset − a_bias`, `β = w_offset − b_bias`. Taps outside
//! the image and the dummy taps that round the count up to a multiple of four read a
//! row of input zero points, so `x + in_offset = 0` there, exactly like a skipped tap;
//! every pixel then sums the same `4G` taps and
//!
//! `Σ (x + io)(w + wo) = Σ a·b + β·Σa + α·Σb + 4G·α·β`
//!
//! where `α·Σb + 4G·α·β + bias` is a per-channel constant and `β·Σa` (only when
//! `β ≠ 0`, i.e. uint8 weights with a zero point other than 128) is a second
//! `vpdpbusd` against ones. Sums wrap in int32 like the reference's cast, so the
//! requantized bytes are identical.
//!
//! Two loops: 3-wide kernels with horizontal stride 1 or 2 (every MobileNet
//! depthwise) group the taps by kernel column, so each input column's interleaved
//! vector is built once and shared by the output pixels that read it (12 slots);
//! other kernels group taps four at a time in order (`4G` slots, `G = ⌈taps/4⌉`).
//! With 3 kernel rows and vertical stride 1, the column path computes two output rows
//! from one set of column vectors over their four input rows (see [`PairPath`]).
//! The requantization runs on the accumulators in registers; on the column path with
//! the GEMM's cheaper exact form (`requant::v512::rq_fast`) when the shifts and sum
//! bounds allow, narrowing a pixel's 32 channels with one pack sequence.

use crate::exec::kernels::geometry::Geometry;
use crate::exec::kernels::qconv::params::{QElem, QParams, QScheme};
use crate::exec::kernels::qconv::requant::{self, Requant};

/// Packed weights and per-channel constants of the VNNI depthwise.
pub(super) struct Dw8 {
    g: Geometry,
    /// Groups of four taps.
    groups: usize,
    /// Blocks of 64 channels (four vectors of 16 lanes).
    blocks: usize,
    /// `[block][group][sub-block 0..4][channel 0..16][tap 0..4]` as `b` bytes (0 for
    /// dummy taps and channels past the end).
    w: Vec<i8>,
    /// Per channel (padded to `blocks * 64`): `bias + α·Σb + 4G·α·β`.
    col: Vec<i32>,
    beta: i32,
    /// int8 activations: flip the top bit (`x + 128` as a byte).
    flip: bool,
    /// One pixel of input zero points (padded to `blocks * 64` bytes).
    pad: Vec<u8>,
    /// `[kx][ox]`: byte offset of the input column within a row, −1 outside.
    colx: Vec<isize>,
    /// 3-wide kernels with horizontal stride 1 or 2 and dilation 1 (at most 4 kernel
    /// rows): each input column's interleaved vector (its kernel rows as the four
    /// bytes) is built once and used by every output pixel that reads it (three at
    /// stride 1, one or two at stride 2).
    cols: Option<ColPath>,
}

/// Weights and constants of the column path, in chunks of 32 channels.
struct ColPath {
    /// `[chunk][kx][half 0..2][channel 0..16][kernel row 0..4]`.
    w: Vec<i8>,
    /// `bias + α·Σb + 12·α·β` per channel (12 slots: 3 columns × 4 rows), padded to
    /// `chunks * 32`.
    col: Vec<i32>,
    /// Nudges of the cheaper exact requantization (`requant::v512::rq_fast`), when
    /// every channel's shift and sum bound allow it (padded to `chunks * 32`).
    nudge: Option<Vec<i64>>,
    /// 3×3 kernels with vertical stride 1 and the fast requantization: two output
    /// rows at once.
    pair: Option<PairPath>,
}

/// Two output rows `oy`, `oy + 1` read the four input rows `oy − 1 + (0..4)` (before
/// padding): one interleaved column vector of those rows serves both, the first row
/// with its kernel rows in bytes 0..3 (byte 3 a dummy tap), the second in bytes 1..4
/// (byte 0 the dummy). The dummy tap reads a real input row, so its weight byte is
/// `b = −β` (the raw weight zero point): `(a + α)(b + β) = 0` whatever `a` is. Then
/// every output sums 12 slots with `Σ_slots b = Σb − 3β`, and the constant becomes
/// `bias + α·Σb + 9·α·β`.
struct PairPath {
    /// `[chunk][row 0..2][kx][half 0..2][channel 0..16][byte 0..4]`.
    w: Vec<i8>,
    /// `bias + α·Σb + 9·α·β` per channel, padded to `chunks * 32`.
    col: Vec<i32>,
}

impl Dw8 {
    /// `None` unless the CPU has AVX-512 BW/VL/VNNI/VBMI and the op is an 8-bit
    /// depthwise with multiplier 1 and double-rounding requantization.
    pub fn new<W: QElem>(
        g: &Geometry,
        q: &QParams,
        filter: &[W],
        bias: Option<&[i64]>,
        avx512: bool,
    ) -> Option<Self> {
        if !avx512 || !supported() || g.depth_multiplier != 1 || q.scheme.wide() {
            return None;
        }
        if q.rounding != crate::quant::fixed_point::Rounding::Double
            || q.mult.iter().any(|m| m.m < 0)
        {
            return None;
        }
        let (a_bias, b_bias) = if q.scheme == QScheme::Int8 {
            (128, 0)
        } else {
            (0, -128)
        };
        let c = g.out_c;
        let taps = g.k_h * g.k_w;
        let groups = taps.div_ceil(4);
        let blocks = c.div_ceil(64);
        let bv = |t: usize, ch: usize| -> i32 {
            if t < taps && ch < c {
                filter[t * c + ch].to_i32() + b_bias
            } else {
                0
            }
        };
        // b must fit a signed byte: int8 weights do; uint8 weights minus 128 do.
        if (0..taps).any(|t| (0..c).any(|ch| !(-128..=127).contains(&bv(t, ch)))) {
            return None;
        }
        let alpha = -q.in_zp - a_bias;
        let beta = -q.w_zp - b_bias;
        let mut w = Vec::with_capacity(blocks * groups * 256);
        for blk in 0..blocks {
            for grp in 0..groups {
                for lane in 0..64 {
                    for d in 0..4 {
                        w.push(bv(grp * 4 + d, blk * 64 + lane) as i8);
                    }
                }
            }
        }
        let slots = (groups * 4) as i32;
        let col = (0..blocks * 64)
            .map(|ch| {
                if ch >= c {
                    return 0;
                }
                let sb = (0..taps).fold(0i32, |s, t| s.wrapping_add(bv(t, ch)));
                let b0 = bias.map_or(0, |b| b[ch]) as i32;
                b0.wrapping_add(alpha.wrapping_mul(sb))
                    .wrapping_add(slots.wrapping_mul(alpha).wrapping_mul(beta))
            })
            .collect();
        let cols = (g.k_w == 3 && g.k_h <= 4 && g.stride_w <= 2 && g.dilation_w == 1).then(|| {
            let chunks = c.div_ceil(32);
            let mut w = Vec::with_capacity(chunks * 3 * 128);
            for ch in 0..chunks {
                for kx in 0..3 {
                    for lane in 0..32 {
                        for ky in 0..4 {
                            let t = if ky < g.k_h { ky * 3 + kx } else { taps };
                            w.push(bv(t, ch * 32 + lane) as i8);
                        }
                    }
                }
            }
            let col: Vec<i32> = (0..chunks * 32)
                .map(|ch| {
                    if ch >= c {
                        return 0;
                    }
                    let sb = (0..taps).fold(0i32, |s, t| s.wrapping_add(bv(t, ch)));
                    let b0 = bias.map_or(0, |b| b[ch]) as i32;
                    b0.wrapping_add(alpha.wrapping_mul(sb))
                        .wrapping_add(12i32.wrapping_mul(alpha).wrapping_mul(beta))
                })
                .collect();
            // |x| < 2^30 for every sum x = Σab + col + β·Σa over the 12 slots (a ≤ 255).
            let bounded = (0..c).all(|ch| {
                let dot = 255 * (0..taps).map(|t| (bv(t, ch) as i64).abs()).sum::<i64>();
                dot + (col[ch] as i64).abs() + (beta as i64).abs() * 255 * 12 < 1 << 30
            });
            let nudge = (bounded && requant::fast_shifts_ok(&q.mult))
                .then(|| requant::fast_nudges(&q.mult, chunks * 32));
            let pair = (nudge.is_some()
                && g.k_h == 3
                && g.stride_h == 1
                && g.dilation_h == 1
                && (-128..=127).contains(&-beta))
            .then(|| {
                let dummy = |ch: usize| if ch < c { (-beta) as i8 } else { 0 };
                let mut w = Vec::with_capacity(chunks * 2 * 384);
                for chunk in 0..chunks {
                    for second in 0..2 {
                        for kx in 0..3 {
                            for lane in 0..32 {
                                let ch = chunk * 32 + lane;
                                for byte in 0..4usize {
                                    // Kernel row `byte − second`, the dummy outside 0..3.
                                    match byte.checked_sub(second) {
                                        Some(ky) if ky < 3 => w.push(bv(ky * 3 + kx, ch) as i8),
                                        _ => w.push(dummy(ch)),
                                    }
                                }
                            }
                        }
                    }
                }
                let col: Vec<i32> = (0..chunks * 32)
                    .map(|ch| {
                        if ch >= c {
                            return 0;
                        }
                        let sb = (0..taps).fold(0i32, |s, t| s.wrapping_add(bv(t, ch)));
                        let b0 = bias.map_or(0, |b| b[ch]) as i32;
                        b0.wrapping_add(alpha.wrapping_mul(sb))
                            .wrapping_add(9i32.wrapping_mul(alpha).wrapping_mul(beta))
                    })
                    .collect();
                (col, w)
            })
            // The same bound with the dummy weights' |β| per column and the new constant.
            .filter(|(col, _)| {
                (0..c).all(|ch| {
                    let dot = 255
                        * ((0..taps).map(|t| (bv(t, ch) as i64).abs()).sum::<i64>()
                            + 3 * (beta as i64).abs());
                    dot + (col[ch] as i64).abs() + (beta as i64).abs() * 255 * 12 < 1 << 30
                })
            })
            .map(|(col, w)| PairPath { w, col });
            ColPath {
                w,
                col,
                nudge,
                pair,
            }
        });
        Some(Dw8 {
            cols,
            g: *g,
            groups,
            blocks,
            w,
            col,
            beta,
            flip: q.scheme == QScheme::Int8,
            pad: vec![q.in_zp as u8; blocks * 64],
            colx: (0..g.out_w * g.k_w)
                .map(|i| {
                    let (kx, ox) = (i / g.out_w, i % g.out_w);
                    let ix = (ox * g.stride_w + kx * g.dilation_w) as isize - g.pad_left as isize;
                    if ix < 0 || ix >= g.in_w as isize {
                        -1
                    } else {
                        ix * c as isize
                    }
                })
                .collect(),
        })
    }

    /// Whether the column path requantizes with the cheaper exact form (for tests).
    pub fn uses_fast_requant(&self) -> bool {
        self.cols.as_ref().is_some_and(|cp| cp.nudge.is_some())
    }

    /// Whether 3×3 stride-1 rows are computed in pairs (for tests).
    pub fn uses_row_pairs(&self) -> bool {
        self.cols.as_ref().is_some_and(|cp| cp.pair.is_some())
    }

    /// Output rows `row0..` (row = batch × out_h index) into `out` (whole rows).
    /// `T` must be the scheme's one-byte activation type.
    pub fn rows<T: QElem>(&self, rq: &Requant, row0: usize, input: &[T], out: &mut [T]) {
        let g = &self.g;
        assert!(
            std::mem::size_of::<T>() == 1,
            "8-bit depthwise on a wide type"
        );
        assert_eq!(input.len(), g.input_len(), "depthwise input size");
        let row_len = g.out_w * g.out_c;
        assert!(
            out.len().is_multiple_of(row_len.max(1)),
            "whole output rows"
        );
        assert!(
            rq.m.len() >= g.out_c.next_multiple_of(16),
            "requant constants"
        );
        let bytes: &[u8] = {
            let p = input.as_ptr().cast::<u8>();
            // SAFETY: T is one byte (asserted), so the same memory viewed as u8.
            unsafe { std::slice::from_raw_parts(p, input.len()) }
        };
        let out8: &mut [u8] = {
            let p = out.as_mut_ptr().cast::<u8>();
            // SAFETY: as above; `out` is borrowed mutably for the whole call.
            unsafe { std::slice::from_raw_parts_mut(p, out.len()) }
        };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Dw8::new` only succeeds when the CPU has the features; the row
        // bounds are checked inside.
        unsafe {
            x86::rows(self, rq, row0, bytes, out8)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (rq, row0, bytes, out8);
    }
}

/// Whether this CPU can run [`Dw8`].
fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let f = crate::exec::kernels::cpu::features();
        f.avx512f
            && f.avx512bw
            && f.avx512vl
            && f.avx512vnni
            && std::arch::is_x86_feature_detected!("avx512vbmi")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{ColPath, Dw8, PairPath, Requant};
    use crate::exec::kernels::qconv::requant::v512::{ByteNarrow, rdbpot_v, rq_fast, srdhm_nonneg};
    use std::arch::x86_64::*;

    /// Shuffle indices: bytes of two taps interleaved per channel (`lo`: channels
    /// 0..32 of the two 64-byte loads, `hi`: 32..64), then words of two tap pairs
    /// interleaved (`lo`: channels 0..16 of the 32, `hi`: 16..32).
    struct Idx {
        b_lo: __m512i,
        b_hi: __m512i,
        w_lo: __m512i,
        w_hi: __m512i,
    }

    #[target_feature(enable = "avx512f")]
    fn indices() -> Idx {
        let b = |half: usize| -> [u8; 64] {
            std::array::from_fn(|j| ((j % 2) * 64 + half * 32 + j / 2) as u8)
        };
        let w = |half: usize| -> [u16; 32] {
            std::array::from_fn(|j| ((j % 2) * 32 + half * 16 + j / 2) as u16)
        };
        let (b0, b1, w0, w1) = (b(0), b(1), w(0), w(1));
        // SAFETY: each array is 64 bytes.
        unsafe {
            Idx {
                b_lo: _mm512_loadu_si512(b0.as_ptr().cast()),
                b_hi: _mm512_loadu_si512(b1.as_ptr().cast()),
                w_lo: _mm512_loadu_si512(w0.as_ptr().cast()),
                w_hi: _mm512_loadu_si512(w1.as_ptr().cast()),
            }
        }
    }

    /// Caller: the CPU has the enabled features; `input` is the whole input tensor;
    /// `out` holds whole output rows starting at row `row0`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    pub(super) unsafe fn rows(k: &Dw8, rq: &Requant, row0: usize, input: &[u8], out: &mut [u8]) {
        let g = &k.g;
        let c = g.out_c;
        let row_len = g.out_w * c;
        if row_len == 0 {
            return;
        }
        let slots = k.groups * 4;
        // `[tap][ox]`: tap pointers of every pixel of a row, an input pixel (`c`
        // bytes) or the zero-point row outside the image and for the dummy taps.
        let mut ptrs: Vec<*const u8> = vec![k.pad.as_ptr(); g.out_w * slots];
        let mut rowy = vec![0isize; g.k_h];
        assert!(input.len() == g.input_len() && k.colx.len() == g.out_w * g.k_w);
        let nrows = out.len() / row_len;
        let mut ri = 0;
        while ri < nrows {
            let row = row0 + ri;
            let oy = row % g.out_h;
            let b = row / g.out_h;
            assert!(b < g.batch, "depthwise row out of range");
            // Two rows of one image at once when the pair path applies.
            if let Some(cp) = &k.cols
                && let Some(pp) = &cp.pair
                && ri + 1 < nrows
                && oy + 1 < g.out_h
            {
                let (o1, o2) = out[ri * row_len..(ri + 2) * row_len].split_at_mut(row_len);
                let mut ry4 = [-1isize; 4];
                for (d, ry) in ry4.iter_mut().enumerate() {
                    let iy = (oy + d) as isize - g.pad_top as isize;
                    if iy >= 0 && iy < g.in_h as isize {
                        *ry = ((b * g.in_h + iy as usize) * g.in_w * c) as isize;
                    }
                }
                for c0 in (0..c).step_by(32) {
                    // SAFETY: forwarded contract; `block_pair` checks its own bounds.
                    unsafe {
                        if c - c0 > 16 {
                            block_pair::<2>(k, cp, pp, rq, c0, ry4, input, o1, o2);
                        } else {
                            block_pair::<1>(k, cp, pp, rq, c0, ry4, input, o1, o2);
                        }
                    }
                }
                ri += 2;
                continue;
            }
            let orow = &mut out[ri * row_len..(ri + 1) * row_len];
            ri += 1;
            // Byte offset of each kernel row's input row, −1 outside the image.
            for (ky, ry) in rowy.iter_mut().enumerate() {
                let iy = (oy * g.stride_h + ky * g.dilation_h) as isize - g.pad_top as isize;
                *ry = if iy < 0 || iy >= g.in_h as isize {
                    -1
                } else {
                    ((b * g.in_h + iy as usize) * g.in_w * c) as isize
                };
            }
            // Per tap, the pointers of all pixels of the row (a loop that vectorizes);
            // the column path computes its own.
            let rowy_tbl: &[isize] = if k.cols.is_some() { &[] } else { &rowy };
            for (ky, &ry) in rowy_tbl.iter().enumerate() {
                for kx in 0..g.k_w {
                    let t = ky * g.k_w + kx;
                    let dst = &mut ptrs[t * g.out_w..(t + 1) * g.out_w];
                    if ry < 0 {
                        dst.fill(k.pad.as_ptr());
                        continue;
                    }
                    // iy < in_h, ix < in_w and b < batch (asserted), so each pixel's
                    // c bytes lie inside the input.
                    let base = input.as_ptr().wrapping_offset(ry);
                    let cx = &k.colx[kx * g.out_w..(kx + 1) * g.out_w];
                    for (d, &x) in dst.iter_mut().zip(cx) {
                        *d = if x < 0 {
                            k.pad.as_ptr()
                        } else {
                            base.wrapping_offset(x)
                        };
                    }
                }
            }
            if let Some(cp) = &k.cols {
                // Byte offsets of the (up to) four kernel rows, −1 outside the image.
                let mut ry4 = [-1isize; 4];
                ry4[..g.k_h].copy_from_slice(&rowy);
                for c0 in (0..c).step_by(32) {
                    // SAFETY: forwarded contract; `block_col` checks its own bounds.
                    unsafe {
                        match (c - c0 > 16, cp.nudge.is_some()) {
                            (true, true) => block_col::<2, true>(k, cp, rq, c0, ry4, input, orow),
                            (false, true) => block_col::<1, true>(k, cp, rq, c0, ry4, input, orow),
                            (true, false) => block_col::<2, false>(k, cp, rq, c0, ry4, input, orow),
                            (false, false) => {
                                block_col::<1, false>(k, cp, rq, c0, ry4, input, orow)
                            }
                        }
                    }
                }
                continue;
            }
            for blk in 0..k.blocks {
                let c0 = blk * 64;
                // SAFETY: forwarded contract; `block` checks its own bounds.
                unsafe {
                    match (c - c0).min(64).div_ceil(16) {
                        1 => block::<1>(k, rq, c0, &ptrs, orow),
                        2 => block::<2>(k, rq, c0, &ptrs, orow),
                        3 => block::<3>(k, rq, c0, &ptrs, orow),
                        _ => block::<4>(k, rq, c0, &ptrs, orow),
                    }
                }
            }
        }
    }

    /// Channels `c0..c0 + 16·NB` (clipped to `c`) of every pixel of one output row.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    #[allow(clippy::needless_range_loop)] // register arrays are indexed on purpose
    unsafe fn block<const NB: usize>(
        k: &Dw8,
        rq: &Requant,
        c0: usize,
        ptrs: &[*const u8],
        orow: &mut [u8],
    ) {
        let g = &k.g;
        let c = g.out_c;
        let slots = k.groups * 4;
        assert!(orow.len() == g.out_w * c && ptrs.len() == g.out_w * slots);
        assert!(
            k.col.len() >= c0 + 64 && rq.m.len() >= c0 + 16 * NB && rq.rhalf.len() == rq.m.len()
        );
        let n = (c - c0).min(64);
        let lm: __mmask64 = if n == 64 { !0 } else { (1u64 << n) - 1 };
        let ix = indices();
        let flip = _mm512_set1_epi8(if k.flip { -128 } else { 0 });
        let ones = _mm512_set1_epi8(1);
        let beta = _mm512_set1_epi32(k.beta);
        let zp = _mm512_set1_epi32(rq.out_zp);
        let (lo, hi) = (_mm512_set1_epi32(rq.act_min), _mm512_set1_epi32(rq.act_max));
        let wb = &k.w[(c0 / 64) * k.groups * 256..(c0 / 64 + 1) * k.groups * 256];
        let w = g.out_w;
        for ox in 0..g.out_w {
            let mut acc = [_mm512_setzero_si512(); NB];
            let mut sa = [_mm512_setzero_si512(); NB];
            for grp in 0..k.groups {
                // SAFETY: each pointer addresses `c` input bytes or the pad row of
                // `blocks * 64` bytes; the mask keeps reads below `c - c0`; the weight
                // block holds groups × 256 bytes.
                unsafe {
                    let p = |i: usize| *ptrs.get_unchecked((grp * 4 + i) * w + ox);
                    let t0 = _mm512_maskz_loadu_epi8(lm, p(0).add(c0).cast());
                    let t1 = _mm512_maskz_loadu_epi8(lm, p(1).add(c0).cast());
                    let t2 = _mm512_maskz_loadu_epi8(lm, p(2).add(c0).cast());
                    let t3 = _mm512_maskz_loadu_epi8(lm, p(3).add(c0).cast());
                    let p01 = [
                        _mm512_permutex2var_epi8(t0, ix.b_lo, t1),
                        _mm512_permutex2var_epi8(t0, ix.b_hi, t1),
                    ];
                    let p23 = [
                        _mm512_permutex2var_epi8(t2, ix.b_lo, t3),
                        _mm512_permutex2var_epi8(t2, ix.b_hi, t3),
                    ];
                    for j in 0..NB {
                        let wi = if j % 2 == 0 { ix.w_lo } else { ix.w_hi };
                        let v = _mm512_permutex2var_epi16(p01[j / 2], wi, p23[j / 2]);
                        let v = _mm512_xor_si512(v, flip);
                        let wv = _mm512_loadu_si512(wb.as_ptr().add((grp * 4 + j) * 64).cast());
                        acc[j] = _mm512_dpbusd_epi32(acc[j], v, wv);
                        if k.beta != 0 {
                            sa[j] = _mm512_dpbusd_epi32(sa[j], v, ones);
                        }
                    }
                }
            }
            let opix = &mut orow[ox * c..(ox + 1) * c];
            for j in 0..NB {
                let cj = c0 + 16 * j;
                let left = c - cj;
                let sm: __mmask16 = if left >= 16 { 0xFFFF } else { (1 << left) - 1 };
                // SAFETY: `col` holds blocks × 64 lanes and the requant vectors
                // `out_c` rounded up to 16 (asserted); the store is masked to the pixel.
                unsafe {
                    let mut x =
                        _mm512_add_epi32(acc[j], _mm512_loadu_si512(k.col.as_ptr().add(cj).cast()));
                    if k.beta != 0 {
                        x = _mm512_add_epi32(x, _mm512_mullo_epi32(sa[j], beta));
                    }
                    if rq.any_lsh {
                        let ls = _mm512_loadu_si512(rq.lsh.as_ptr().add(cj).cast());
                        x = _mm512_sllv_epi32(x, ls);
                    }
                    let m = _mm512_loadu_si512(rq.m.as_ptr().add(cj).cast());
                    let h = srdhm_nonneg(x, m, _mm512_srli_epi64(m, 32));
                    let v = rdbpot_v(
                        h,
                        _mm512_loadu_si512(rq.rsh.as_ptr().add(cj).cast()),
                        _mm512_loadu_si512(rq.rmask.as_ptr().add(cj).cast()),
                        _mm512_loadu_si512(rq.rhalf.as_ptr().add(cj).cast()),
                    );
                    let v = _mm512_add_epi32(v, zp);
                    let v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
                    // Clamped to the byte type's range: truncation is exact.
                    _mm_mask_storeu_epi8(
                        opix.as_mut_ptr().add(16 * j + c0).cast(),
                        sm,
                        _mm512_cvtepi32_epi8(v),
                    );
                }
            }
        }
    }

    /// Builds the interleaved vectors (channels `c0..c0 + 16·NB`, four kernel rows as
    /// the four bytes, top bit flipped for int8) of input column `ix`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn column<const NB: usize>(
        k: &Dw8,
        ix: isize,
        c0: usize,
        lm: __mmask32,
        ry4: &[isize; 4],
        input: &[u8],
        ix_: &Idx,
        flip: __m512i,
    ) -> [__m512i; NB] {
        let g = &k.g;
        let inside = ix >= 0 && ix < g.in_w as isize;
        let t: [__m512i; 4] = std::array::from_fn(|d| {
            let p = if inside && ry4[d] >= 0 {
                // The row offset and column are inside the image (b < batch is
                // asserted by the caller), so `c` bytes are readable there.
                input
                    .as_ptr()
                    .wrapping_offset(ry4[d] + ix * g.out_c as isize)
                    .wrapping_add(c0)
            } else {
                k.pad.as_ptr().wrapping_add(c0)
            };
            // SAFETY: the mask keeps the read below `c - c0` bytes at `p`.
            unsafe { _mm512_zextsi256_si512(_mm256_maskz_loadu_epi8(lm, p.cast())) }
        });
        let p01 = _mm512_permutex2var_epi8(t[0], ix_.b_lo, t[1]);
        let p23 = _mm512_permutex2var_epi8(t[2], ix_.b_lo, t[3]);
        std::array::from_fn(|j| {
            let wi = if j == 0 { ix_.w_lo } else { ix_.w_hi };
            _mm512_xor_si512(_mm512_permutex2var_epi16(p01, wi, p23), flip)
        })
    }

    /// The fast requantization's constants for channels `c0..c0 + 16·NB` (held in
    /// registers across a row) and the packed narrowing of a pixel's sums: shared by
    /// the column and pair paths.
    struct FastNarrow<const NB: usize> {
        /// Per 16 channels: the per-channel constant (`col`), the multiplier (even and
        /// odd lanes), the right shift and the two nudge vectors of `rq_fast`.
        fc: [[__m512i; 6]; NB],
        narrow: ByteNarrow,
        beta: i32,
        vbeta: __m512i,
        perm: __m512i,
    }

    impl<const NB: usize> FastNarrow<NB> {
        /// Caller: AVX-512F/BW enabled; `col` and `nq` hold c0 + 32 lanes, `rq.m` and
        /// `rq.rsh` c0 + 16·NB.
        #[inline(always)]
        unsafe fn new(k: &Dw8, col: &[i32], nq: &[i64], rq: &Requant, c0: usize) -> Self {
            assert!(col.len() >= c0 + 32 && nq.len() >= c0 + 32);
            assert!(rq.m.len() >= c0 + 16 * NB && rq.rsh.len() >= c0 + 16 * NB);
            // SAFETY: the lengths are asserted above; the caller enables the features.
            unsafe {
                let fc = std::array::from_fn(|j| {
                    let cj = c0 + 16 * j;
                    let m = _mm512_loadu_si512(rq.m.as_ptr().add(cj).cast());
                    [
                        _mm512_loadu_si512(col.as_ptr().add(cj).cast()),
                        m,
                        _mm512_srli_epi64(m, 32),
                        _mm512_loadu_si512(rq.rsh.as_ptr().add(cj).cast()),
                        _mm512_loadu_si512(nq.as_ptr().add(cj).cast()),
                        _mm512_loadu_si512(nq.as_ptr().add(cj + 8).cast()),
                    ]
                });
                FastNarrow {
                    fc,
                    // int8 activations are stored with the top bit flipped back.
                    narrow: ByteNarrow::new(rq.out_zp, rq.act_min, rq.act_max, k.flip),
                    beta: k.beta,
                    vbeta: _mm512_set1_epi32(k.beta),
                    // After the packs, dword 4L holds channels 4L..4L+3 of the first
                    // vector and dword 4L + 1 those of the second: gather them in
                    // channel order.
                    perm: _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15),
                }
            }
        }

        /// Requantizes one pixel's sums `acc` (plus `β·Σa` from `sa`) and writes its
        /// `n` channels (mask `lm`) at `dst`. Caller: AVX-512F/BW/VL enabled; `dst`
        /// has room for `n` bytes.
        #[inline(always)]
        unsafe fn store(
            &self,
            acc: &[__m512i; NB],
            sa: &[__m512i; NB],
            dst: *mut u8,
            n: usize,
            lm: __mmask32,
        ) {
            // SAFETY: the caller's contract.
            unsafe {
                let mut q = [_mm512_setzero_si512(); NB];
                for j in 0..NB {
                    let mut x = acc[j];
                    if self.beta != 0 {
                        x = _mm512_add_epi32(x, _mm512_mullo_epi32(sa[j], self.vbeta));
                    }
                    let f = &self.fc[j];
                    q[j] = rq_fast(x, f[1], f[2], f[3], f[4], f[5]);
                }
                // The two 16-channel vectors twice: the low 32 bytes hold them.
                let (a, b) = (q[0], q[NB - 1]);
                let v = self.narrow.pack([a, b, a, b]);
                let v = _mm512_castsi512_si256(_mm512_permutexvar_epi32(self.perm, v));
                if n == 32 {
                    _mm256_storeu_si256(dst.cast(), v);
                } else {
                    _mm256_mask_storeu_epi8(dst.cast(), lm, v);
                }
            }
        }
    }

    /// Pair path: channels `c0..c0 + 16·NB` (clipped to `c`) of two output rows
    /// (`o1`, `o2`) from the four input rows `ry4` (byte offsets, −1 outside the
    /// image), with the fast requantization and packed narrowing of [`block_col`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    #[allow(clippy::needless_range_loop, clippy::too_many_arguments)]
    unsafe fn block_pair<const NB: usize>(
        k: &Dw8,
        cp: &ColPath,
        pp: &PairPath,
        rq: &Requant,
        c0: usize,
        ry4: [isize; 4],
        input: &[u8],
        o1: &mut [u8],
        o2: &mut [u8],
    ) {
        let g = &k.g;
        let c = g.out_c;
        assert!(o1.len() == g.out_w * c && o2.len() == o1.len());
        assert!(input.len() == g.input_len() && k.pad.len() >= c0 + 32);
        let nq = cp
            .nudge
            .as_deref()
            .expect("the pair path implies the fast requantization");
        assert!(pp.col.len() >= c0 + 32 && nq.len() >= c0 + 32);
        assert!(rq.m.len() >= c0 + 16 * NB && rq.rsh.len() >= c0 + 16 * NB);
        let n = (c - c0).min(32);
        let lm: __mmask32 = if n == 32 { !0 } else { (1u32 << n) - 1 };
        let ix_ = indices();
        let flip = _mm512_set1_epi8(if k.flip { -128 } else { 0 });
        let ones = _mm512_set1_epi8(1);
        // The chunk's weights, 2 × 3 × 128 bytes, read in the loop (registers are
        // short: the ring, both rows' sums and the requantization constants).
        let wb = &pp.w[(c0 / 32) * 768..(c0 / 32 + 1) * 768];
        // SAFETY: lengths asserted inside; features enabled here.
        let fnw = unsafe { FastNarrow::<NB>::new(k, &pp.col, nq, rq, c0) };
        let x0 = -(g.pad_left as isize);
        // SAFETY: this function has the features `column` is compiled for; `ry4` (from
        // `rows`) holds byte offsets of in-image input rows or −1, `lm` keeps the loads
        // below channel `c`, and `k.pad` holds `c0 + 32` bytes (asserted above), so every
        // byte `column` reads is inside `input` or `k.pad`.
        let mut ring: [[__m512i; NB]; 3] = unsafe {
            [
                column::<NB>(k, x0, c0, lm, &ry4, input, &ix_, flip),
                column::<NB>(k, x0 + 1, c0, lm, &ry4, input, &ix_, flip),
                column::<NB>(k, x0 + 2, c0, lm, &ry4, input, &ix_, flip),
            ]
        };
        for ox in 0..g.out_w {
            if ox > 0 {
                let ix = x0 + (g.stride_w * ox) as isize;
                if g.stride_w == 1 {
                    ring[0] = ring[1];
                    ring[1] = ring[2];
                } else {
                    ring[0] = ring[2];
                    // SAFETY: as for the ring's first columns (any `ix` is fine: columns
                    // outside the image read `k.pad`).
                    ring[1] = unsafe { column::<NB>(k, ix + 1, c0, lm, &ry4, input, &ix_, flip) };
                }
                // SAFETY: as above.
                ring[2] = unsafe { column::<NB>(k, ix + 2, c0, lm, &ry4, input, &ix_, flip) };
            }
            // No closures in this loop: they would not inherit the target features.
            let mut acc = [[_mm512_setzero_si512(); NB]; 2];
            for h in 0..2 {
                for j in 0..NB {
                    acc[h][j] = fnw.fc[j][0];
                }
            }
            let mut sa = [_mm512_setzero_si512(); NB];
            for kx in 0..3 {
                for j in 0..NB {
                    for h in 0..2 {
                        // SAFETY: ((h·3 + kx)·2 + j)·64 + 64 <= 768 bytes of `wb`.
                        let w = unsafe {
                            _mm512_loadu_si512(wb.as_ptr().add(((h * 3 + kx) * 2 + j) * 64).cast())
                        };
                        acc[h][j] = _mm512_dpbusd_epi32(acc[h][j], ring[kx][j], w);
                    }
                    if k.beta != 0 {
                        sa[j] = _mm512_dpbusd_epi32(sa[j], ring[kx][j], ones);
                    }
                }
            }
            for h in 0..2 {
                let orow: &mut [u8] = if h == 0 { o1 } else { o2 };
                // SAFETY: the pixel's channels c0..c0 + n lie inside the output row.
                unsafe { fnw.store(&acc[h], &sa, orow.as_mut_ptr().add(ox * c + c0), n, lm) };
            }
        }
    }

    /// Column path: channels `c0..c0 + 16·NB` (clipped to `c`) of one output row;
    /// `ry4` holds the byte offsets of the four kernel rows' input rows (−1 outside
    /// the image or past `k_h`). `FAST`: the cheaper exact requantization (`cp.nudge`
    /// is set), its constants held in registers across the row, and the pixel's
    /// channels narrowed together with saturating packs.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    #[allow(clippy::needless_range_loop)]
    unsafe fn block_col<const NB: usize, const FAST: bool>(
        k: &Dw8,
        cp: &ColPath,
        rq: &Requant,
        c0: usize,
        ry4: [isize; 4],
        input: &[u8],
        orow: &mut [u8],
    ) {
        let g = &k.g;
        let c = g.out_c;
        assert!(orow.len() == g.out_w * c && input.len() == g.input_len());
        assert!(cp.col.len() >= c0 + 32 && rq.m.len() >= c0 + 16 * NB);
        assert!(rq.rhalf.len() == rq.m.len() && k.pad.len() >= c0 + 32);
        let n = (c - c0).min(32);
        let lm: __mmask32 = if n == 32 { !0 } else { (1u32 << n) - 1 };
        let ix_ = indices();
        let flip = _mm512_set1_epi8(if k.flip { -128 } else { 0 });
        let ones = _mm512_set1_epi8(1);
        let beta = _mm512_set1_epi32(k.beta);
        let zp = _mm512_set1_epi32(rq.out_zp);
        let (lo, hi) = (_mm512_set1_epi32(rq.act_min), _mm512_set1_epi32(rq.act_max));
        let wb = &cp.w[(c0 / 32) * 384..(c0 / 32 + 1) * 384];
        let wv: [[__m512i; NB]; 3] = std::array::from_fn(|kx| {
            std::array::from_fn(|j| {
                // SAFETY: `wb` is the chunk's 3 × 128 bytes; kernel column `kx < 3` reads
                // bytes `(2·kx + j)·64..+64` with `j < NB ≤ 2`, inside them.
                unsafe { _mm512_loadu_si512(wb.as_ptr().add((kx * 2 + j) * 64).cast()) }
            })
        });
        // Constants of the fast requantization, when it runs.
        let fnw = if FAST {
            let nq = cp.nudge.as_deref().expect("FAST implies the nudges");
            // SAFETY: lengths asserted inside; features enabled here.
            Some(unsafe { FastNarrow::<NB>::new(k, &cp.col, nq, rq, c0) })
        } else {
            None
        };
        let x0 = -(g.pad_left as isize);
        // The ring is written out here and in `block_pair`: a shared helper taking it
        // by reference measured 0.65 → 0.95 ms for MobileNetV2's depthwise layers.
        // SAFETY: this function has the features `column` is compiled for; `ry4` (from
        // `rows`) holds byte offsets of in-image input rows or −1, `lm` keeps the loads
        // below channel `c`, and `k.pad` holds `c0 + 32` bytes (asserted above), so every
        // byte `column` reads is inside `input` or `k.pad`.
        let mut ring: [[__m512i; NB]; 3] = unsafe {
            [
                column::<NB>(k, x0, c0, lm, &ry4, input, &ix_, flip),
                column::<NB>(k, x0 + 1, c0, lm, &ry4, input, &ix_, flip),
                column::<NB>(k, x0 + 2, c0, lm, &ry4, input, &ix_, flip),
            ]
        };
        for ox in 0..g.out_w {
            if ox > 0 {
                // Columns x0 + s·ox + (0, 1, 2): stride 1 reuses two, stride 2 one.
                let ix = x0 + (g.stride_w * ox) as isize;
                if g.stride_w == 1 {
                    ring[0] = ring[1];
                    ring[1] = ring[2];
                } else {
                    ring[0] = ring[2];
                    // SAFETY: as for the ring's first columns (any `ix` is fine: columns
                    // outside the image read `k.pad`).
                    ring[1] = unsafe { column::<NB>(k, ix + 1, c0, lm, &ry4, input, &ix_, flip) };
                }
                // SAFETY: as above.
                ring[2] = unsafe { column::<NB>(k, ix + 2, c0, lm, &ry4, input, &ix_, flip) };
            }
            // No closures in this loop: they would not inherit the target features.
            let mut acc = [_mm512_setzero_si512(); NB];
            if let Some(f) = &fnw {
                for j in 0..NB {
                    acc[j] = f.fc[j][0];
                }
            }
            let mut sa = [_mm512_setzero_si512(); NB];
            for kx in 0..3 {
                for j in 0..NB {
                    acc[j] = _mm512_dpbusd_epi32(acc[j], ring[kx][j], wv[kx][j]);
                    if k.beta != 0 {
                        sa[j] = _mm512_dpbusd_epi32(sa[j], ring[kx][j], ones);
                    }
                }
            }
            if let Some(f) = &fnw {
                // SAFETY: the pixel's channels c0..c0 + n lie inside the output row.
                unsafe { f.store(&acc, &sa, orow.as_mut_ptr().add(ox * c + c0), n, lm) };
                continue;
            }
            for j in 0..NB {
                let cj = c0 + 16 * j;
                if cj >= c {
                    break;
                }
                let left = c - cj;
                let sm: __mmask16 = if left >= 16 { 0xFFFF } else { (1 << left) - 1 };
                // SAFETY: constants hold c0 + 32 (col) and c0 + 16·NB (requant) lanes
                // (asserted); the store is masked to the pixel's channels.
                unsafe {
                    let mut x = _mm512_add_epi32(
                        acc[j],
                        _mm512_loadu_si512(cp.col.as_ptr().add(cj).cast()),
                    );
                    if k.beta != 0 {
                        x = _mm512_add_epi32(x, _mm512_mullo_epi32(sa[j], beta));
                    }
                    if rq.any_lsh {
                        let ls = _mm512_loadu_si512(rq.lsh.as_ptr().add(cj).cast());
                        x = _mm512_sllv_epi32(x, ls);
                    }
                    let m = _mm512_loadu_si512(rq.m.as_ptr().add(cj).cast());
                    let h = srdhm_nonneg(x, m, _mm512_srli_epi64(m, 32));
                    let v = rdbpot_v(
                        h,
                        _mm512_loadu_si512(rq.rsh.as_ptr().add(cj).cast()),
                        _mm512_loadu_si512(rq.rmask.as_ptr().add(cj).cast()),
                        _mm512_loadu_si512(rq.rhalf.as_ptr().add(cj).cast()),
                    );
                    let v = _mm512_add_epi32(v, zp);
                    let v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
                    // Clamped to the byte type's range: truncation is exact.
                    _mm_mask_storeu_epi8(
                        orow.as_mut_ptr().add(ox * c + cj).cast(),
                        sm,
                        _mm512_cvtepi32_epi8(v),
                    );
                }
            }
        }
    }
}

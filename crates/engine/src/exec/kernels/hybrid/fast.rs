//! Fast hybrid kernels. The int8 operands are widened to i16 once (weights at
//! preparation, the quantized input while quantizing, with the input zero point
//! already subtracted), so the inner loops are pure 16-bit multiply-adds into int32:
//! `vpdpwssd` (AVX-512 VNNI), `vpmaddwd` (AVX-512BW / AVX2) or plain loops. Weights
//! are packed in blocks of 16 output channels with depth pairs interleaved, so one
//! broadcast pair of patch values times one weight vector updates 16 channel sums with
//! no horizontal reduction. The int32 sums equal the reference's exactly (wrapping
//! arithmetic is associative) and the float epilogues are the reference's expressions,
//! so results are identical.
//!
//! On AVX-512 VNNI, conv and FC take the 8-bit dot product instead (`vpdpbusd`, four
//! products per lane, twice `vpdpwssd`'s): inputs as `a = q + 128` (unsigned bytes),
//! weights as int8 quads ([`PackedQuads`]), and the sums corrected per channel:
//! `Σ (q − zp)·w = Σ a·w − (128 + zp)·Σ w` (wrapping, so exact). Taps outside the image
//! hold `a = 128 + zp`, i.e. `q − zp = 0`, the reference's skipped tap.

use super::{
    HybridConvParams, HybridFcParams, asymmetric_params, clamp_act, q_asymmetric, q_symmetric,
    symmetric_params, vector_part,
};
use crate::exec::kernels::Parallelism;
use crate::exec::kernels::cpu::{self, Isa};
use crate::exec::kernels::depthwise::{DepthwiseParams, PackedDepthwise};
use crate::exec::kernels::geometry::Geometry;
use crate::exec::parallel;

/// Patches per full micro-kernel call.
const GROUP: usize = 8;
/// Output channels per packed weight block (16 i32 lanes of a zmm register).
const OCB: usize = 16;

/// Which dot-product routine to run (resolved once per kernel call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DotIsa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512Bw,
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
}

fn dot_isa() -> DotIsa {
    let isa = cpu::clamp_to_detected(cpu::selected_isa());
    #[cfg(target_arch = "x86_64")]
    {
        let f = cpu::features();
        if isa == Isa::Avx512 && f.avx512bw {
            return if f.avx512vnni {
                DotIsa::Avx512Vnni
            } else {
                DotIsa::Avx512Bw
            };
        }
        if isa >= Isa::Avx2 {
            return DotIsa::Avx2;
        }
    }
    let _ = isa;
    DotIsa::Portable
}

/// Weight rows widened to i16 and packed: blocks of `OCB` (16) rows, inside a block
/// `[depth pair][row][2]`. The depth is padded to even (`kp`), the rows to a multiple
/// of `OCB`, both with zeros.
#[derive(Debug, Clone)]
pub struct PackedRows {
    blocks: usize,
    kp: usize,
    data: Vec<i16>,
}

impl PackedRows {
    /// `w` holds `rows` rows of `k` int8 values.
    pub fn new(w: &[i8], rows: usize, k: usize) -> Self {
        let kp = k.div_ceil(2).max(1) * 2;
        let blocks = rows.div_ceil(OCB);
        let mut data = vec![0i16; blocks * kp * OCB];
        for r in 0..rows {
            let (b, l) = (r / OCB, r % OCB);
            for (kk, &v) in w[r * k..(r + 1) * k].iter().enumerate() {
                data[((b * (kp / 2) + kk / 2) * OCB + l) * 2 + kk % 2] = i16::from(v);
            }
        }
        PackedRows { blocks, kp, data }
    }

    /// Rows including the padding (the stride of an accumulator row).
    fn rows_padded(&self) -> usize {
        self.blocks * OCB
    }

    /// Bytes held (for memory reports).
    pub fn bytes(&self) -> usize {
        self.data.len() * 2
    }
}

/// Weight rows as int8 quads for `vpdpbusd`: blocks of `OCB` (16) rows, inside a
/// block `[depth quad][row][4]`; depth padded to a multiple of 4, rows to `OCB`, with
/// zeros. `wsum[r] = Σ_k w[r][k]` corrects the sums for the input bias.
#[derive(Debug, Clone)]
pub struct PackedQuads {
    blocks: usize,
    kp: usize,
    data: Vec<i8>,
    wsum: Vec<i32>,
}

impl PackedQuads {
    /// `w` holds `rows` rows of `k` int8 values.
    pub fn new(w: &[i8], rows: usize, k: usize) -> Self {
        let kp = k.next_multiple_of(4).max(4);
        let blocks = rows.div_ceil(OCB);
        let mut data = vec![0i8; blocks * kp * OCB];
        let mut wsum = vec![0i32; blocks * OCB];
        for r in 0..rows {
            let (b, l) = (r / OCB, r % OCB);
            for (kk, &v) in w[r * k..(r + 1) * k].iter().enumerate() {
                data[((b * (kp / 4) + kk / 4) * OCB + l) * 4 + kk % 4] = v;
                wsum[r] += i32::from(v);
            }
        }
        PackedQuads {
            blocks,
            kp,
            data,
            wsum,
        }
    }

    fn rows_padded(&self) -> usize {
        self.blocks * OCB
    }

    /// `acc[g·rp + r] = Σ_k (x[g·kp + k] − 128 − zp[g])·w[r][k]` for `n` patches of
    /// biased bytes (wrapping int32, exact).
    fn dots(&self, isa: DotIsa, x: &[u8], n: usize, zp: &[i32], acc: &mut [i32]) {
        assert!(zp.len() >= n);
        self.raw_dots(isa, x, n, acc);
        let rp = self.rows_padded();
        for g in 0..n {
            let bias = 128 + zp[g];
            for (a, &ws) in acc[g * rp..(g + 1) * rp].iter_mut().zip(&self.wsum) {
                *a = a.wrapping_sub(bias.wrapping_mul(ws));
            }
        }
    }

    /// `acc[g·rp + r] = Σ_k x[g·kp + k]·w[r][k]`: the byte sums before the correction
    /// `(128 + zp)·Σ_k w[r][k]` (wrapping int32).
    fn raw_dots(&self, isa: DotIsa, x: &[u8], n: usize, acc: &mut [i32]) {
        let (kp, rp) = (self.kp, self.rows_padded());
        assert!((1..=GROUP).contains(&n) && x.len() >= n * kp && acc.len() >= n * rp);
        match isa {
            // SAFETY: VNNI is present (dot_isa), the assert bounds every pointer.
            #[cfg(target_arch = "x86_64")]
            DotIsa::Avx512Vnni => unsafe { x86::dots8(x, n, self.blocks, kp, &self.data, acc) },
            _ => {
                for g in 0..n {
                    let xg = &x[g * kp..(g + 1) * kp];
                    for b in 0..self.blocks {
                        let wb = &self.data[b * kp * OCB..(b + 1) * kp * OCB];
                        for l in 0..OCB {
                            let mut s = 0i32;
                            for (kq, xq) in xg.chunks_exact(4).enumerate() {
                                let w = &wb[(kq * OCB + l) * 4..(kq * OCB + l) * 4 + 4];
                                for d in 0..4 {
                                    s = s.wrapping_add(i32::from(xq[d]) * i32::from(w[d]));
                                }
                            }
                            acc[g * rp + b * OCB + l] = s;
                        }
                    }
                }
            }
        }
    }
}

/// The packed weights of a hybrid conv or FC: int8 quads where the CPU has AVX-512
/// VNNI at preparation, i16 pairs otherwise. Either layout runs on every ISA.
#[derive(Debug, Clone)]
enum Weights {
    Pairs(PackedRows),
    Quads(PackedQuads),
}

impl Weights {
    fn new(w: &[i8], rows: usize, k: usize) -> Self {
        if Some(dot_isa()) == dot_isa_vnni() {
            Weights::Quads(PackedQuads::new(w, rows, k))
        } else {
            Weights::Pairs(PackedRows::new(w, rows, k))
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Weights::Pairs(w) => w.bytes(),
            Weights::Quads(w) => w.data.len() + w.wsum.len() * 4,
        }
    }

    fn kp(&self) -> usize {
        match self {
            Weights::Pairs(w) => w.kp,
            Weights::Quads(w) => w.kp,
        }
    }

    fn rows_padded(&self) -> usize {
        match self {
            Weights::Pairs(w) => w.rows_padded(),
            Weights::Quads(w) => w.rows_padded(),
        }
    }
}

/// The VNNI dot routine (never equal to [`dot_isa`] off x86_64).
fn dot_isa_vnni() -> Option<DotIsa> {
    #[cfg(target_arch = "x86_64")]
    return Some(DotIsa::Avx512Vnni);
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// `acc[g * rows_padded + r] = Σ_k x[g * kp + k] * w[r][k]` for `n` patches.
fn dots(isa: DotIsa, x: &[i16], n: usize, w: &PackedRows, acc: &mut [i32]) {
    let (kp, rp) = (w.kp, w.rows_padded());
    assert!((1..=GROUP).contains(&n) && x.len() >= n * kp && acc.len() >= n * rp);
    match isa {
        DotIsa::Portable => dots_portable(x, n, w, acc),
        // SAFETY: each variant is only chosen when the CPU has its features (dot_isa),
        // and the assert above bounds every pointer the kernels form.
        #[cfg(target_arch = "x86_64")]
        _ => unsafe { x86::dots(isa, x, n, w.blocks, kp, &w.data, acc) },
    }
}

fn dots_portable(x: &[i16], n: usize, w: &PackedRows, acc: &mut [i32]) {
    let (kp, rp) = (w.kp, w.rows_padded());
    for g in 0..n {
        let xg = &x[g * kp..(g + 1) * kp];
        for b in 0..w.blocks {
            let mut s = [0i32; OCB];
            let wb = &w.data[b * kp * OCB..(b + 1) * kp * OCB];
            for (kk, pair) in xg.chunks_exact(2).enumerate() {
                let wk = &wb[kk * 2 * OCB..(kk + 1) * 2 * OCB];
                for l in 0..OCB {
                    let p = i32::from(pair[0]) * i32::from(wk[2 * l])
                        + i32::from(pair[1]) * i32::from(wk[2 * l + 1]);
                    s[l] = s[l].wrapping_add(p);
                }
            }
            acc[g * rp + b * OCB..g * rp + (b + 1) * OCB].copy_from_slice(&s);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{DotIsa, GROUP, OCB};

    /// Reads patch values `2kk, 2kk + 1` as one i32 (the pair `vpmaddwd` multiplies).
    ///
    /// # Safety
    /// `p` must point to two readable i16.
    #[inline(always)]
    unsafe fn pair(p: *const i16) -> i32 {
        // SAFETY: the caller guarantees two readable i16 at p.
        unsafe { p.cast::<i32>().read_unaligned() }
    }

    /// Runs micro-kernel `$f::<P, NB>` over `n` patches and `blocks` blocks of 16
    /// channels: a full group of patches two blocks at a time, fewer patches one by one
    /// four blocks at a time. Every call covers blocks `b..b + NB ≤ blocks` and patches
    /// below `n`. Expands to unsafe calls: the caller's block holds them.
    macro_rules! tiles {
        ($f:ident, $xp:expr, $kp:expr, $wp:expr, $ap:expr, $rp:expr, $n:expr, $blocks:expr) => {{
            let (xp, kp, wp, ap, rp, n, blocks) = ($xp, $kp, $wp, $ap, $rp, $n, $blocks);
            if n == GROUP {
                let mut b = 0;
                while b + 2 <= blocks {
                    $f::<GROUP, 2>(xp, kp, wp, b, ap, rp);
                    b += 2;
                }
                if b < blocks {
                    $f::<GROUP, 1>(xp, kp, wp, b, ap, rp);
                }
            } else {
                for g in 0..n {
                    let (xg, ag) = (xp.add(g * kp), ap.add(g * rp));
                    let mut b = 0;
                    while b + 4 <= blocks {
                        $f::<1, 4>(xg, kp, wp, b, ag, rp);
                        b += 4;
                    }
                    while b < blocks {
                        $f::<1, 1>(xg, kp, wp, b, ag, rp);
                        b += 1;
                    }
                }
            }
        }};
    }

    /// Dispatch over patch count and block grouping.
    ///
    /// # Safety
    /// The ISA's features must be present; `x` holds `n * kp`, `w` `blocks * kp * 16`,
    /// `acc` `n * blocks * 16` values.
    pub unsafe fn dots(
        isa: DotIsa,
        x: &[i16],
        n: usize,
        blocks: usize,
        kp: usize,
        w: &[i16],
        acc: &mut [i32],
    ) {
        let rp = blocks * OCB;
        let (xp, wp, ap) = (x.as_ptr(), w.as_ptr(), acc.as_mut_ptr());
        // SAFETY: the ISA's features are present (contract); `tiles!` stays within the
        // contract's `x`, `w` and `acc` lengths.
        unsafe {
            match isa {
                DotIsa::Avx512Vnni => tiles!(k512_vnni, xp, kp, wp, ap, rp, n, blocks),
                DotIsa::Avx512Bw => tiles!(k512, xp, kp, wp, ap, rp, n, blocks),
                _ => tiles!(k256, xp, kp, wp, ap, rp, n, blocks),
            }
        }
    }

    /// [`dots`] for biased input bytes and int8 quads (`vpdpbusd`).
    ///
    /// # Safety
    /// AVX-512F/BW/VNNI present; `x` holds `n * kp`, `w` `blocks * kp * 16`, `acc`
    /// `n * blocks * 16` values.
    pub unsafe fn dots8(x: &[u8], n: usize, blocks: usize, kp: usize, w: &[i8], acc: &mut [i32]) {
        let rp = blocks * OCB;
        let (xp, wp, ap) = (x.as_ptr(), w.as_ptr(), acc.as_mut_ptr());
        // SAFETY: VNNI is present (contract); `tiles!` stays within the contract's
        // lengths.
        unsafe { tiles!(k8, xp, kp, wp, ap, rp, n, blocks) }
    }

    /// `P` patches × `NB` blocks of 16 channels: four byte products per lane.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn k8<const P: usize, const NB: usize>(
        x: *const u8,
        kp: usize,
        w: *const i8,
        b0: usize,
        acc: *mut i32,
        rp: usize,
    ) {
        let mut a = [[_mm512_setzero_si512(); NB]; P];
        // SAFETY: the caller's bounds (see `dots8`).
        unsafe {
            for kq in 0..kp / 4 {
                let wv: [__m512i; NB] = std::array::from_fn(|j| {
                    _mm512_loadu_si512(w.add(((b0 + j) * (kp / 4) + kq) * 4 * OCB).cast())
                });
                for (g, ag) in a.iter_mut().enumerate() {
                    let xv =
                        _mm512_set1_epi32(x.add(g * kp + 4 * kq).cast::<i32>().read_unaligned());
                    for j in 0..NB {
                        ag[j] = _mm512_dpbusd_epi32(ag[j], xv, wv[j]);
                    }
                }
            }
            for (g, ag) in a.iter().enumerate() {
                for (j, v) in ag.iter().enumerate() {
                    _mm512_storeu_si512(acc.add(g * rp + (b0 + j) * OCB).cast(), *v);
                }
            }
        }
    }

    /// `P` patches × `NB` blocks of 16 channels, AVX-512BW `vpmaddwd` + `vpaddd`.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn k512<const P: usize, const NB: usize>(
        x: *const i16,
        kp: usize,
        w: *const i16,
        b0: usize,
        acc: *mut i32,
        rp: usize,
    ) {
        let mut a = [[_mm512_setzero_si512(); NB]; P];
        // SAFETY: the caller's bounds (see `dots`).
        unsafe {
            for kk in 0..kp / 2 {
                let wv: [__m512i; NB] = std::array::from_fn(|j| {
                    _mm512_loadu_si512(w.add(((b0 + j) * (kp / 2) + kk) * 2 * OCB).cast())
                });
                for (g, ag) in a.iter_mut().enumerate() {
                    let xv = _mm512_set1_epi32(pair(x.add(g * kp + 2 * kk)));
                    for j in 0..NB {
                        ag[j] = _mm512_add_epi32(ag[j], _mm512_madd_epi16(xv, wv[j]));
                    }
                }
            }
            for (g, ag) in a.iter().enumerate() {
                for (j, v) in ag.iter().enumerate() {
                    _mm512_storeu_si512(acc.add(g * rp + (b0 + j) * OCB).cast(), *v);
                }
            }
        }
    }

    /// As [`k512`] with the fused `vpdpwssd` (AVX-512 VNNI).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn k512_vnni<const P: usize, const NB: usize>(
        x: *const i16,
        kp: usize,
        w: *const i16,
        b0: usize,
        acc: *mut i32,
        rp: usize,
    ) {
        let mut a = [[_mm512_setzero_si512(); NB]; P];
        // SAFETY: the caller's bounds (see `dots`).
        unsafe {
            for kk in 0..kp / 2 {
                let wv: [__m512i; NB] = std::array::from_fn(|j| {
                    _mm512_loadu_si512(w.add(((b0 + j) * (kp / 2) + kk) * 2 * OCB).cast())
                });
                for (g, ag) in a.iter_mut().enumerate() {
                    let xv = _mm512_set1_epi32(pair(x.add(g * kp + 2 * kk)));
                    for j in 0..NB {
                        ag[j] = _mm512_dpwssd_epi32(ag[j], xv, wv[j]);
                    }
                }
            }
            for (g, ag) in a.iter().enumerate() {
                for (j, v) in ag.iter().enumerate() {
                    _mm512_storeu_si512(acc.add(g * rp + (b0 + j) * OCB).cast(), *v);
                }
            }
        }
    }

    /// AVX2: a 16-channel block is two ymm halves; patches in groups of 4 keep the
    /// accumulators within the 16 ymm registers.
    #[target_feature(enable = "avx2")]
    unsafe fn k256<const P: usize, const NB: usize>(
        x: *const i16,
        kp: usize,
        w: *const i16,
        b0: usize,
        acc: *mut i32,
        rp: usize,
    ) {
        let mut g0 = 0;
        while g0 < P {
            let pc = (P - g0).min(4);
            // SAFETY: the caller's bounds; patches g0..g0+pc < P.
            unsafe {
                for j in 0..NB {
                    let mut a = [[_mm256_setzero_si256(); 2]; 4];
                    let wb = w.add((b0 + j) * (kp / 2) * 2 * OCB);
                    for kk in 0..kp / 2 {
                        let w0 = _mm256_loadu_si256(wb.add(kk * 2 * OCB).cast());
                        let w1 = _mm256_loadu_si256(wb.add(kk * 2 * OCB + OCB).cast());
                        for (g, ag) in a.iter_mut().enumerate().take(pc) {
                            let xv = _mm256_set1_epi32(pair(x.add((g0 + g) * kp + 2 * kk)));
                            ag[0] = _mm256_add_epi32(ag[0], _mm256_madd_epi16(xv, w0));
                            ag[1] = _mm256_add_epi32(ag[1], _mm256_madd_epi16(xv, w1));
                        }
                    }
                    for (g, ag) in a.iter().enumerate().take(pc) {
                        let dst = acc.add((g0 + g) * rp + (b0 + j) * OCB);
                        _mm256_storeu_si256(dst.cast(), ag[0]);
                        _mm256_storeu_si256(dst.add(8).cast(), ag[1]);
                    }
                }
            }
            g0 += pc;
        }
    }
}

/// How a quantized input value is stored for a kernel: `q − zp` (i16 pairs, the float
/// depthwise kernel) or `q + 128` (the biased bytes of `vpdpbusd`).
trait QuantSink: Copy {
    fn from_q(q: i32, zp: i32) -> Self;

    /// Stores 16 lanes of clamped `q`.
    ///
    /// # Safety
    /// AVX-512F/BW enabled in the (inlining) caller; 16 writable values at `dst`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn store16(
        dst: *mut Self,
        q: std::arch::x86_64::__m512i,
        zp: std::arch::x86_64::__m512i,
    );
}

impl QuantSink for i16 {
    #[inline(always)]
    fn from_q(q: i32, zp: i32) -> Self {
        (q - zp) as i16
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn store16(
        dst: *mut Self,
        q: std::arch::x86_64::__m512i,
        zp: std::arch::x86_64::__m512i,
    ) {
        use std::arch::x86_64::*;
        // SAFETY: the caller's contract.
        unsafe { _mm256_storeu_si256(dst.cast(), _mm512_cvtepi32_epi16(_mm512_sub_epi32(q, zp))) }
    }
}

impl QuantSink for u8 {
    #[inline(always)]
    fn from_q(q: i32, _zp: i32) -> Self {
        (q + 128) as u8
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn store16(
        dst: *mut Self,
        q: std::arch::x86_64::__m512i,
        _zp: std::arch::x86_64::__m512i,
    ) {
        use std::arch::x86_64::*;
        // SAFETY: the caller's contract; q + 128 lies in 0..=255, so truncation keeps it.
        unsafe {
            let b = _mm512_cvtepi32_epi8(_mm512_add_epi32(q, _mm512_set1_epi32(128)));
            _mm_storeu_si128(dst.cast(), b)
        }
    }
}

impl QuantSink for f32 {
    #[inline(always)]
    fn from_q(q: i32, zp: i32) -> Self {
        (q - zp) as f32
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn store16(
        dst: *mut Self,
        q: std::arch::x86_64::__m512i,
        zp: std::arch::x86_64::__m512i,
    ) {
        use std::arch::x86_64::*;
        // SAFETY: the caller's contract.
        unsafe { _mm512_storeu_ps(dst, _mm512_cvtepi32_ps(_mm512_sub_epi32(q, zp))) }
    }
}

/// Quantizes one vector with the reference's rules straight into the form a kernel
/// reads (`dst.len() == x.len()`, see [`QuantSink`]); returns the scale and zero point
/// (0 when symmetric or when the vector maps to zeros).
fn quantize_into<S: QuantSink>(x: &[f32], asymmetric: bool, dst: &mut [S]) -> (f32, i32) {
    let isa = cpu::clamp_to_detected(cpu::selected_isa());
    #[cfg(target_arch = "x86_64")]
    {
        if isa == Isa::Avx512 {
            // SAFETY: AVX-512F present (the selected ISA is clamped to the detected one).
            return unsafe { quantize_avx512(x, asymmetric, dst) };
        }
        if isa >= Isa::Avx2 {
            // SAFETY: AVX2 present.
            return unsafe { quantize_avx2(x, asymmetric, dst) };
        }
    }
    let _ = isa;
    quantize_body(x, asymmetric, dst)
}

/// The scale, zero point, inverse scale and clamp range of `x`, or `None` (after
/// filling `dst` with quantized zeros) when the vector maps to zeros.
#[inline(always)]
fn quant_params<S: QuantSink>(
    x: &[f32],
    asymmetric: bool,
    dst: &mut [S],
) -> Option<(f32, i32, f32, i32, i32)> {
    let p = if asymmetric {
        asymmetric_params(x).map(|(s, zp, inv)| (s, zp, inv, -128, 127))
    } else {
        symmetric_params(x).map(|(s, inv)| (s, 0, inv, -127, 127))
    };
    if p.is_none() {
        dst.fill(S::from_q(0, 0));
    }
    p
}

/// AVX-512 quantization: the first multiple of 16 of the vector part in registers
/// (`cvttps` after adding ±0.5, NaN lanes → 0 as Rust's `as` gives), the rest with
/// the shared scalar rules.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn quantize_avx512<S: QuantSink>(x: &[f32], asymmetric: bool, dst: &mut [S]) -> (f32, i32) {
    use std::arch::x86_64::*;
    let Some((scale, zp, inv, lo, hi)) = quant_params(x, asymmetric, dst) else {
        return (1.0, 0);
    };
    let split = vector_part(x.len());
    let simd = split & !15;
    let inv_v = _mm512_set1_ps(inv);
    let big = _mm512_set1_ps(1_073_741_824.0);
    let nbig = _mm512_set1_ps(-1_073_741_824.0);
    let (pos, neg) = (_mm512_set1_ps(0.5), _mm512_set1_ps(-0.5));
    let zero = _mm512_setzero_ps();
    let zp_v = _mm512_set1_epi32(zp);
    let (lo_v, hi_v) = (_mm512_set1_epi32(lo), _mm512_set1_epi32(hi));
    let mut i = 0;
    while i < simd {
        // SAFETY: i + 16 <= simd <= x.len() == dst.len(); AVX-512F/BW enabled here.
        unsafe {
            let v = _mm512_loadu_ps(x.as_ptr().add(i));
            let r = _mm512_mul_ps(v, inv_v);
            let ordered = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(r, r);
            let neg_mask = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(r, zero);
            let half = _mm512_mask_blend_ps(neg_mask, pos, neg);
            // Far outside the clamp range either way; keeps cvttps from overflowing.
            let r = _mm512_min_ps(_mm512_max_ps(r, nbig), big);
            let t = _mm512_maskz_mov_epi32(ordered, _mm512_cvttps_epi32(_mm512_add_ps(r, half)));
            let q = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(t, zp_v), lo_v), hi_v);
            S::store16(dst.as_mut_ptr().add(i), q, zp_v);
        }
        i += 16;
    }
    quantize_scalar(
        &x[simd..],
        asymmetric,
        inv,
        zp,
        split - simd,
        &mut dst[simd..],
    );
    (scale, zp)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quantize_avx2<S: QuantSink>(x: &[f32], asymmetric: bool, dst: &mut [S]) -> (f32, i32) {
    quantize_body(x, asymmetric, dst)
}

#[inline(always)]
fn quantize_body<S: QuantSink>(x: &[f32], asymmetric: bool, dst: &mut [S]) -> (f32, i32) {
    let Some((scale, zp, inv, _, _)) = quant_params(x, asymmetric, dst) else {
        return (1.0, 0);
    };
    quantize_scalar(x, asymmetric, inv, zp, vector_part(x.len()), dst);
    (scale, zp)
}

/// The scalar rules: the first `vector` values as the reference's vectorized loop
/// rounds them, the rest as its tail loop does.
#[inline(always)]
fn quantize_scalar<S: QuantSink>(
    x: &[f32],
    asymmetric: bool,
    inv: f32,
    zp: i32,
    vector: usize,
    dst: &mut [S],
) {
    let q = |v: f32, vec: bool| {
        if asymmetric {
            q_asymmetric(v, inv, zp, vec)
        } else {
            q_symmetric(v, inv, vec)
        }
    };
    let split = vector.min(x.len()).min(dst.len());
    let (xv, xt) = x.split_at(split);
    let (dv, dt) = dst.split_at_mut(split);
    for (d, &v) in dv.iter_mut().zip(xv) {
        *d = S::from_q(q(v, true), zp);
    }
    for (d, &v) in dt.iter_mut().zip(xt) {
        *d = S::from_q(q(v, false), zp);
    }
}

/// Packed hybrid FULLY_CONNECTED.
#[derive(Debug, Clone)]
pub struct PackedHybridFc {
    p: HybridFcParams,
    w: Weights,
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
}

impl PackedHybridFc {
    /// Sizes must have passed [`HybridFcParams::check`].
    pub fn new(p: &HybridFcParams, weights: &[i8], scales: &[f32], bias: Option<&[f32]>) -> Self {
        PackedHybridFc {
            p: *p,
            w: Weights::new(weights, p.units, p.depth),
            scales: scales.to_vec(),
            bias: bias.map(<[f32]>::to_vec),
        }
    }

    pub fn packed_bytes(&self) -> usize {
        self.w.bytes() + self.scales.len() * 4 + self.bias.as_ref().map_or(0, |b| b.len() * 4)
    }

    pub fn run(&self, input: &[f32], output: &mut [f32], par: Parallelism) {
        let p = &self.p;
        let (depth, units) = (p.depth, p.units);
        let isa = dot_isa();
        let zero = input.iter().all(|&v| v == 0.0);
        let rp = self.w.rows_padded();
        let kp = self.w.kp();
        let work = |(gi, out): (usize, &mut [f32])| {
            let r0 = gi * GROUP;
            let n = out.len() / units;
            let mut acc = vec![0i32; GROUP * rp];
            let mut in_scales = [0f32; GROUP];
            let mut zps = [0i32; GROUP];
            if !zero {
                let rows = |g: usize| &input[(r0 + g) * depth..(r0 + g + 1) * depth];
                match &self.w {
                    Weights::Pairs(w) => {
                        let mut patches = vec![0i16; GROUP * kp];
                        for g in 0..n {
                            let dst = &mut patches[g * kp..g * kp + depth];
                            (in_scales[g], zps[g]) = quantize_into(rows(g), p.asymmetric, dst);
                        }
                        dots(isa, &patches, n, w, &mut acc)
                    }
                    Weights::Quads(w) => {
                        // Padding bytes meet zero weights.
                        let mut x8 = vec![0u8; GROUP * kp];
                        for g in 0..n {
                            let dst = &mut x8[g * kp..g * kp + depth];
                            (in_scales[g], zps[g]) = quantize_into(rows(g), p.asymmetric, dst);
                        }
                        w.dots(isa, &x8, n, &zps, &mut acc);
                    }
                }
            }
            for g in 0..n {
                let o = &mut out[g * units..(g + 1) * units];
                for u in 0..units {
                    let init = self.bias.as_ref().map_or(0.0, |b| b[u]);
                    let v = if zero {
                        init
                    } else {
                        init + acc[g * rp + u] as f32 * (in_scales[g] * self.scales[u])
                    };
                    o[u] = clamp_act(v, p.act_min, p.act_max);
                }
            }
        };
        let out = &mut output[..p.rows * units];
        let groups = p.rows.div_ceil(GROUP);
        let ns = p.rows * depth * units / parallel::GEMV_MACS_PER_NS;
        let per_task = groups.div_ceil(parallel::task_count(par, groups, ns));
        parallel::for_each_chunk_mut(par, out, per_task * GROUP * units, &|ti, chunk| {
            for (j, o) in chunk.chunks_mut(GROUP * units).enumerate() {
                work((ti * per_task + j, o));
            }
        });
    }
}

/// Packed hybrid CONV_2D (im2col of the quantized input, i16 patches × i16 filters).
#[derive(Debug, Clone)]
pub struct PackedHybridConv {
    hp: HybridConvParams,
    w: Weights,
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
}

impl PackedHybridConv {
    /// Sizes must have passed the family's conv check.
    pub fn new(hp: &HybridConvParams, filter: &[i8], scales: &[f32], bias: Option<&[f32]>) -> Self {
        let p = &hp.conv;
        PackedHybridConv {
            hp: *hp,
            w: Weights::new(filter, p.geom.out_c, p.k()),
            scales: scales.to_vec(),
            bias: bias.map(<[f32]>::to_vec),
        }
    }

    pub fn packed_bytes(&self) -> usize {
        self.w.bytes() + self.scales.len() * 4 + self.bias.as_ref().map_or(0, |b| b.len() * 4)
    }

    pub fn run(&self, input: &[f32], output: &mut [f32], par: Parallelism) {
        let p = &self.hp.conv;
        let isa = dot_isa();
        let img = p.geom.in_h * p.geom.in_w * p.geom.in_c;
        let out_img = p.geom.out_h * p.geom.out_w * p.geom.out_c;
        let mut corr = Vec::new();
        // The quantized images live in this thread's buffers, kept across calls (fresh
        // megabyte allocations per layer cost page faults each inference).
        IMAGES.with_borrow_mut(|(x16, x8)| {
            for b in 0..p.geom.batch {
                let x = &input[b * img..(b + 1) * img];
                // Quantized straight into the form the packed weights read.
                let (src, s_in) = match &self.w {
                    Weights::Pairs(_) => {
                        x16.resize(img, 0);
                        let (s_in, _) = quantize_into(x, self.hp.per_channel, &mut x16[..img]);
                        (Image::Pairs(&x16[..img]), s_in)
                    }
                    Weights::Quads(w) => {
                        x8.resize(img, 0);
                        let (s_in, zp) = quantize_into(x, self.hp.per_channel, &mut x8[..img]);
                        // The byte sums are Σ (q + 128)·w; the epilogue takes off
                        // (128 + zp)·Σ w.
                        corr.clear();
                        corr.extend(w.wsum.iter().map(|&ws| (128 + zp).wrapping_mul(ws)));
                        let src = Image::Bytes {
                            x: &x8[..img],
                            zp,
                            corr: &corr,
                        };
                        (src, s_in)
                    }
                };
                self.run_image(
                    src,
                    s_in,
                    isa,
                    &mut output[b * out_img..(b + 1) * out_img],
                    par,
                );
            }
        });
    }

    /// One quantized batch image: its rows on the worker threads.
    fn run_image(&self, src: Image<'_>, s_in: f32, isa: DotIsa, out: &mut [f32], par: Parallelism) {
        let p = &self.hp.conv;
        let row = p.geom.out_w * p.geom.out_c;
        let ns = p.macs() / p.geom.batch.max(1) / parallel::GEMV_MACS_PER_NS;
        let per_task = p
            .geom
            .out_h
            .div_ceil(parallel::task_count(par, p.geom.out_h, ns));
        let (kp, rp) = (self.w.kp(), self.w.rows_padded());
        parallel::for_each_chunk_mut(par, out, per_task * row, &|ti, chunk| {
            // One task's sum and patch buffers serve all its rows (padding stays zero:
            // it meets zero weights).
            let mut acc = vec![0i32; GROUP * rp];
            match (src, &self.w) {
                (Image::Pairs(x16), Weights::Pairs(w)) => {
                    let mut patches = vec![0i16; GROUP * kp];
                    for (j, out_row) in chunk.chunks_mut(row).enumerate() {
                        let oy = ti * per_task + j;
                        let dots = |x: &[i16], n: usize, acc: &mut [i32]| dots(isa, x, n, w, acc);
                        let rows = Rows {
                            x: x16,
                            outside: 0,
                            corr: None,
                        };
                        self.run_row(isa, &rows, s_in, oy, out_row, &mut acc, &mut patches, dots);
                    }
                }
                (Image::Bytes { x, zp, corr }, Weights::Quads(w)) => {
                    let mut patches = vec![0u8; GROUP * kp];
                    // A tap outside the image: `q − zp = 0`, the byte `128 + zp`.
                    let rows = Rows {
                        x,
                        outside: (128 + zp) as u8,
                        corr: Some(corr),
                    };
                    for (j, out_row) in chunk.chunks_mut(row).enumerate() {
                        let oy = ti * per_task + j;
                        let dots = |x: &[u8], n: usize, acc: &mut [i32]| w.raw_dots(isa, x, n, acc);
                        self.run_row(isa, &rows, s_in, oy, out_row, &mut acc, &mut patches, dots);
                    }
                }
                _ => unreachable!("the image is prepared for the packed weights"),
            }
        });
    }

    /// Writes the im2col patches of output pixels `ox0..ox0 + n` of row `oy` (taps
    /// outside the image hold `outside`).
    fn gather_patches<T: Copy>(
        &self,
        x16: &[T],
        outside: T,
        oy: usize,
        ox0: usize,
        n: usize,
        patches: &mut [T],
    ) {
        let p = &self.hp.conv;
        let kp = self.w.kp();
        let y0 = (oy * p.geom.stride_h) as isize - p.geom.pad_top as isize;
        for g in 0..n {
            let patch = &mut patches[g * kp..(g + 1) * kp];
            let x0 = ((ox0 + g) * p.geom.stride_w) as isize - p.geom.pad_left as isize;
            let mut at = 0;
            for ky in 0..p.geom.k_h {
                let iy = y0 + (ky * p.geom.dilation_h) as isize;
                for kx in 0..p.geom.k_w {
                    let ix = x0 + (kx * p.geom.dilation_w) as isize;
                    let dst = &mut patch[at..at + p.geom.in_c];
                    if iy < 0 || iy >= p.geom.in_h as isize || ix < 0 || ix >= p.geom.in_w as isize
                    {
                        // Outside the image the reference adds nothing.
                        dst.fill(outside);
                    } else {
                        let src = (iy as usize * p.geom.in_w + ix as usize) * p.geom.in_c;
                        dst.copy_from_slice(&x16[src..src + p.geom.in_c]);
                    }
                    at += p.geom.in_c;
                }
            }
        }
    }

    /// One output row: patches in groups of [`GROUP`] (read in place when a pixel is a
    /// whole patch), `dots(patches, n, acc)` for their int32 sums, then the epilogue.
    #[allow(clippy::too_many_arguments)]
    fn run_row<T: Copy>(
        &self,
        isa: DotIsa,
        rows: &Rows<'_, T>,
        s_in: f32,
        oy: usize,
        out_row: &mut [f32],
        acc: &mut [i32],
        patches: &mut [T],
        dots: impl Fn(&[T], usize, &mut [i32]),
    ) {
        let p = &self.hp.conv;
        let g = &p.geom;
        let (kp, rp) = (self.w.kp(), self.w.rows_padded());
        // 1×1 stride-1 convs whose pixels are whole patches: read in place.
        let direct = g.k_h == 1
            && g.k_w == 1
            && g.stride_h == 1
            && g.stride_w == 1
            && g.pad_top == 0
            && g.pad_left == 0
            && g.out_w == g.in_w
            && g.in_c == kp;
        let epilogue = ConvEpilogue {
            scales: &self.scales,
            bias: self.bias.as_deref(),
            corr: rows.corr,
            s_in,
            per_channel: self.hp.per_channel,
            lo: p.act_min,
            hi: p.act_max,
        };
        for ox0 in (0..g.out_w).step_by(GROUP) {
            let n = GROUP.min(g.out_w - ox0);
            if direct {
                let s = (oy * g.in_w + ox0) * kp;
                dots(&rows.x[s..s + n * kp], n, acc);
            } else {
                self.gather_patches(rows.x, rows.outside, oy, ox0, n, patches);
                dots(patches, n, acc);
            }
            for px in 0..n {
                let o = &mut out_row[(ox0 + px) * g.out_c..(ox0 + px + 1) * g.out_c];
                epilogue.run(isa, o, &mut acc[px * rp..px * rp + g.out_c]);
            }
        }
    }
}

/// A quantized image as a conv row reads it: the values, the value of a tap outside
/// the image, and the per-channel correction of raw byte sums.
struct Rows<'a, T> {
    x: &'a [T],
    outside: T,
    corr: Option<&'a [i32]>,
}

thread_local! {
    /// A hybrid conv's quantized batch image (i16 `q − zp`, and the biased bytes).
    static IMAGES: std::cell::RefCell<(Vec<i16>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// A batch image of a hybrid conv, quantized for the packed weights' layout.
#[derive(Clone, Copy)]
enum Image<'a> {
    /// `q − zp` as i16.
    Pairs(&'a [i16]),
    /// `q + 128` as bytes, the zero point, and `(128 + zp)·Σ w` per channel.
    Bytes {
        x: &'a [u8],
        zp: i32,
        corr: &'a [i32],
    },
}

/// The float epilogue of a hybrid conv row: `f32(acc − corr) * s_w * s_in + bias`
/// (per-channel) or `f32(acc − corr) * (s_in * s_w) + bias`, clamped.
struct ConvEpilogue<'a> {
    scales: &'a [f32],
    bias: Option<&'a [f32]>,
    /// Subtracted from the raw byte sums first (wrapping), see [`PackedQuads::raw_dots`].
    corr: Option<&'a [i32]>,
    s_in: f32,
    per_channel: bool,
    lo: f32,
    hi: f32,
}

impl ConvEpilogue<'_> {
    /// One pixel's channels, on the widest vectors the ISA has (the loops are plain
    /// Rust, compiled once per feature set; no fused multiply-add, so every ISA gives
    /// the reference's floats).
    fn run(&self, isa: DotIsa, o: &mut [f32], acc: &mut [i32]) {
        match isa {
            // SAFETY: each variant is only chosen when the CPU has its features.
            #[cfg(target_arch = "x86_64")]
            DotIsa::Avx512Bw | DotIsa::Avx512Vnni => unsafe { self.run_avx512(o, acc) },
            // SAFETY: as above (AVX2).
            #[cfg(target_arch = "x86_64")]
            DotIsa::Avx2 => unsafe { self.run_avx2(o, acc) },
            DotIsa::Portable => self.body(o, acc),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn run_avx512(&self, o: &mut [f32], acc: &mut [i32]) {
        self.body(o, acc)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_avx2(&self, o: &mut [f32], acc: &mut [i32]) {
        self.body(o, acc)
    }

    /// Branches hoisted so each loop vectorizes.
    #[inline(always)]
    fn body(&self, o: &mut [f32], acc: &mut [i32]) {
        let (s_in, lo, hi) = (self.s_in, self.lo, self.hi);
        if let Some(corr) = self.corr {
            for (a, &c) in acc.iter_mut().zip(corr) {
                *a = a.wrapping_sub(c);
            }
        }
        let scales = self.scales;
        let Some(bias) = self.bias else {
            // Adding +0.0 is not an identity for -0.0: keep the no-bias sum exact.
            if self.per_channel {
                for ((ov, &a), &s) in o.iter_mut().zip(&*acc).zip(scales) {
                    *ov = clamp_act(a as f32 * s * s_in, lo, hi);
                }
            } else {
                for ((ov, &a), &s) in o.iter_mut().zip(&*acc).zip(scales) {
                    *ov = clamp_act(a as f32 * (s_in * s), lo, hi);
                }
            }
            return;
        };
        if self.per_channel {
            for (((ov, &a), &s), &b) in o.iter_mut().zip(&*acc).zip(scales).zip(bias) {
                *ov = clamp_act(a as f32 * s * s_in + b, lo, hi);
            }
        } else {
            for (((ov, &a), &s), &b) in o.iter_mut().zip(&*acc).zip(scales).zip(bias) {
                *ov = clamp_act(a as f32 * (s_in * s) + b, lo, hi);
            }
        }
    }
}

/// Packed hybrid DEPTHWISE_CONV_2D: i16 filter, per-pixel channel-vectorized int32
/// accumulation (multiversioned for AVX2 / AVX-512BW, autovectorized), or, when every
/// sum fits f32's 24-bit integers, the float depthwise kernel on integer values.
#[derive(Debug, Clone)]
pub struct PackedHybridDepthwise {
    p: DepthwiseParams,
    w: Vec<i16>,
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
    /// The float kernel (one image, no bias, no activation) over the int8 weights as
    /// floats: see [`exact_in_f32`].
    exact: Option<PackedDepthwise>,
}

/// Whether a depthwise sum of `taps` products `(q − zp)·w`, `|q − zp| ≤ 255` and
/// `|w| ≤ 128`, is exact in f32: every product and every partial sum is then an integer
/// below 2^24, so float multiply-adds in any order give the int32 sum exactly, and
/// `f32(acc)` (the reference's conversion) is that same value.
fn exact_in_f32(taps: usize) -> bool {
    taps.saturating_mul(255 * 128) < 1 << 24
}

impl PackedHybridDepthwise {
    /// Sizes must have passed the family's depthwise check.
    pub fn new(p: &DepthwiseParams, filter: &[i8], scales: &[f32], bias: Option<&[f32]>) -> Self {
        let g = &p.geom;
        let exact = exact_in_f32(g.k_h * g.k_w).then(|| {
            let one = DepthwiseParams {
                geom: Geometry { batch: 1, ..*g },
                act_min: f32::NEG_INFINITY,
                act_max: f32::INFINITY,
            };
            let wf: Vec<f32> = filter[..p.filter_len()]
                .iter()
                .map(|&v| f32::from(v))
                .collect();
            PackedDepthwise::new(&one, &wf, None)
        });
        PackedHybridDepthwise {
            p: *p,
            w: filter.iter().map(|&v| i16::from(v)).collect(),
            scales: scales.to_vec(),
            bias: bias.map(<[f32]>::to_vec),
            exact,
        }
    }

    pub fn packed_bytes(&self) -> usize {
        self.w.len() * 2
            + self.scales.len() * 4
            + self.bias.as_ref().map_or(0, |b| b.len() * 4)
            + self.exact.as_ref().map_or(0, PackedDepthwise::packed_bytes)
    }

    pub fn run(&self, input: &[f32], output: &mut [f32], par: Parallelism) {
        let p = &self.p;
        let g = &p.geom;
        let isa = cpu::clamp_to_detected(cpu::selected_isa());
        let img = g.in_h * g.in_w * g.in_c;
        let out_c = g.out_c;
        let out_img = g.out_h * g.out_w * out_c;
        // Thread buffers kept across calls, as the conv's images.
        DW_IMAGES.with_borrow_mut(|(x16, xf)| {
            for b in 0..g.batch {
                let x = &input[b * img..(b + 1) * img];
                let out_b = &mut output[b * out_img..(b + 1) * out_img];
                if let Some(k) = &self.exact {
                    // The float kernel reads `q − zp` as floats (exact, see `exact_in_f32`).
                    xf.resize(img, 0.0);
                    let (s_in, _) = quantize_into(x, true, &mut xf[..img]);
                    k.run_isa(isa, &xf[..img], out_b, par);
                    self.exact_epilogue(isa, out_b, s_in);
                } else {
                    x16.resize(img, 0);
                    let (s_in, _) = quantize_into(x, true, &mut x16[..img]);
                    self.run_rows(isa, &x16[..img], s_in, out_b, par);
                }
            }
        });
    }

    /// `f32(acc) · (s_w · s_in) + bias`, clamped, over the float kernel's sums (on the
    /// widest vectors the ISA has; plain loops, no fused multiply-add).
    fn exact_epilogue(&self, isa: Isa, out: &mut [f32], s_in: f32) {
        // Reference: `f32(acc) *= scale_w[oc] * scale_in`.
        let comb: Vec<f32> = self.scales.iter().map(|&s| s * s_in).collect();
        let (bias, lo, hi) = (self.bias.as_deref(), self.p.act_min, self.p.act_max);
        #[cfg(target_arch = "x86_64")]
        {
            if isa == Isa::Avx512 {
                // SAFETY: AVX-512F present (the ISA is clamped to the detected one).
                return unsafe { exact_epilogue_avx512(out, &comb, bias, lo, hi) };
            }
            if isa >= Isa::Avx2 {
                // SAFETY: AVX2 present.
                return unsafe { exact_epilogue_avx2(out, &comb, bias, lo, hi) };
            }
        }
        let _ = isa;
        exact_epilogue_body(out, &comb, bias, lo, hi)
    }

    /// The integer rows of one batch image (`x`: `q − zp` as i16).
    fn run_rows(&self, isa: Isa, x16: &[i16], s_in: f32, out_b: &mut [f32], par: Parallelism) {
        let p = &self.p;
        let g = &p.geom;
        let out_c = g.out_c;
        let comb: Vec<f32> = self.scales.iter().map(|&s| s * s_in).collect();
        let row = g.out_w * out_c;
        let bias = self.bias.as_deref();
        let ns = p.macs() / g.batch.max(1) / parallel::DEPTHWISE_MACS_PER_NS;
        let per_task = g.out_h.div_ceil(parallel::task_count(par, g.out_h, ns));
        parallel::for_each_chunk_mut(par, out_b, per_task * row, &|ti, chunk| {
            for (j, out_row) in chunk.chunks_mut(row).enumerate() {
                let oy = ti * per_task + j;
                dw_row_dispatch(isa, p, &self.w, x16, &comb, bias, oy, out_row);
            }
        });
    }
}

thread_local! {
    /// A hybrid depthwise conv's quantized batch image: i16, or f32 for the float kernel.
    static DW_IMAGES: std::cell::RefCell<(Vec<i16>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn exact_epilogue_avx512(out: &mut [f32], comb: &[f32], bias: Option<&[f32]>, lo: f32, hi: f32) {
    exact_epilogue_body(out, comb, bias, lo, hi)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn exact_epilogue_avx2(out: &mut [f32], comb: &[f32], bias: Option<&[f32]>, lo: f32, hi: f32) {
    exact_epilogue_body(out, comb, bias, lo, hi)
}

/// The same expression as `dw_row`'s epilogue, on the same sums: `+ 0.0` turns a float
/// −0 into the integer sum's +0. Branches hoisted so each loop vectorizes.
#[inline(always)]
fn exact_epilogue_body(out: &mut [f32], comb: &[f32], bias: Option<&[f32]>, lo: f32, hi: f32) {
    let out_c = comb.len().max(1);
    for px in out.chunks_exact_mut(out_c) {
        match bias {
            Some(bias) => {
                for ((v, &c), &b) in px.iter_mut().zip(comb).zip(bias) {
                    *v = clamp_act((*v + 0.0) * c + b, lo, hi);
                }
            }
            None => {
                for (v, &c) in px.iter_mut().zip(comb) {
                    *v = clamp_act((*v + 0.0) * c, lo, hi);
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn dw_row_dispatch(
    isa: Isa,
    p: &DepthwiseParams,
    w: &[i16],
    x: &[i16],
    comb: &[f32],
    bias: Option<&[f32]>,
    oy: usize,
    out_row: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if isa == Isa::Avx512 && cpu::features().avx512bw {
            // SAFETY: AVX-512F/BW present (checked above); the body is safe code.
            return unsafe { dw_row_avx512(p, w, x, comb, bias, oy, out_row) };
        }
        if isa >= Isa::Avx2 {
            // SAFETY: AVX2 present (the selected ISA is clamped to the detected one).
            return unsafe { dw_row_avx2(p, w, x, comb, bias, oy, out_row) };
        }
    }
    let _ = isa;
    dw_row(p, w, x, comb, bias, oy, out_row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn dw_row_avx2(
    p: &DepthwiseParams,
    w: &[i16],
    x: &[i16],
    comb: &[f32],
    bias: Option<&[f32]>,
    oy: usize,
    out_row: &mut [f32],
) {
    dw_row(p, w, x, comb, bias, oy, out_row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[allow(clippy::too_many_arguments)]
fn dw_row_avx512(
    p: &DepthwiseParams,
    w: &[i16],
    x: &[i16],
    comb: &[f32],
    bias: Option<&[f32]>,
    oy: usize,
    out_row: &mut [f32],
) {
    dw_row(p, w, x, comb, bias, oy, out_row)
}

/// One output row: int32 sums per pixel, then `f32(acc) * (s_w * s_in) + bias`.
#[inline(always)]
fn dw_row(
    p: &DepthwiseParams,
    w: &[i16],
    x: &[i16],
    comb: &[f32],
    bias: Option<&[f32]>,
    oy: usize,
    out_row: &mut [f32],
) {
    let out_c = p.geom.out_c;
    let mut acc = vec![0i32; out_c];
    for ox in 0..p.geom.out_w {
        acc.fill(0);
        dw_pixel(p, w, x, oy, ox, &mut acc);
        let o = &mut out_row[ox * out_c..(ox + 1) * out_c];
        for (oc, ov) in o.iter_mut().enumerate() {
            let mut v = acc[oc] as f32;
            v *= comb[oc];
            if let Some(bias) = bias {
                v += bias[oc];
            }
            *ov = clamp_act(v, p.act_min, p.act_max);
        }
    }
}

/// One output pixel's int32 sums over the taps inside the image.
#[inline(always)]
fn dw_pixel(p: &DepthwiseParams, w: &[i16], x: &[i16], oy: usize, ox: usize, acc: &mut [i32]) {
    let g = &p.geom;
    let out_c = g.in_c * g.depth_multiplier;
    let y0 = (oy * g.stride_h) as isize - g.pad_top as isize;
    let x0 = (ox * g.stride_w) as isize - g.pad_left as isize;
    for ky in 0..g.k_h {
        let iy = y0 + (ky * g.dilation_h) as isize;
        if iy < 0 || iy >= g.in_h as isize {
            continue;
        }
        for kx in 0..g.k_w {
            let ix = x0 + (kx * g.dilation_w) as isize;
            if ix < 0 || ix >= g.in_w as isize {
                continue;
            }
            let src = (iy as usize * g.in_w + ix as usize) * g.in_c;
            let xs = &x[src..src + g.in_c];
            let ws = &w[(ky * g.k_w + kx) * out_c..(ky * g.k_w + kx + 1) * out_c];
            if g.depth_multiplier == 1 {
                for ((a, &wv), &xv) in acc.iter_mut().zip(ws).zip(xs) {
                    *a = a.wrapping_add(i32::from(wv) * i32::from(xv));
                }
            } else {
                let dm = g.depth_multiplier;
                for (c, &xv) in xs.iter().enumerate() {
                    for m in 0..dm {
                        let oc = c * dm + m;
                        acc[oc] = acc[oc].wrapping_add(i32::from(ws[oc]) * i32::from(xv));
                    }
                }
            }
        }
    }
}

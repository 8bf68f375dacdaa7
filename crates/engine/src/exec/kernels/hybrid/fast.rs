//! Fast hybrid kernels. The int8 operands are widened to i16 once (weights at
//! preparation, the quantized input while building each patch, with the input zero
//! point already subtracted), so the inner loops are pure 16-bit multiply-adds into
//! int32: `vpdpwssd` (AVX-512 VNNI), `vpmaddwd` (AVX-512BW / AVX2) or plain loops.
//! The int32 sums equal the reference's exactly (wrapping arithmetic is associative),
//! and the float epilogues are the reference's expressions, so results are identical.

use rayon::prelude::*;

use super::{HybridConvParams, HybridFcParams, clamp_act, quantize_asymmetric, quantize_symmetric};
use crate::exec::kernels::Parallelism;
use crate::exec::kernels::cpu::{self, Isa};
use crate::exec::kernels::depthwise::DepthwiseParams;

/// Patches per micro-kernel call.
const GROUP: usize = 4;
/// Weight rows per micro-kernel block.
const ROWS: usize = 4;
/// Depth padding: one 512-bit vector of i16.
const KALIGN: usize = 32;

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

/// Weight rows widened to i16, each padded with zeros to `kp` (a multiple of 32), the
/// row count padded to a multiple of [`ROWS`].
#[derive(Debug, Clone)]
pub struct PackedRows {
    kp: usize,
    data: Vec<i16>,
}

impl PackedRows {
    /// `w` holds `rows` rows of `k` int8 values.
    pub fn new(w: &[i8], rows: usize, k: usize) -> Self {
        let kp = k.div_ceil(KALIGN).max(1) * KALIGN;
        let rows_p = rows.div_ceil(ROWS) * ROWS;
        let mut data = vec![0i16; rows_p * kp];
        for r in 0..rows {
            for (d, &s) in data[r * kp..r * kp + k]
                .iter_mut()
                .zip(&w[r * k..(r + 1) * k])
            {
                *d = i16::from(s);
            }
        }
        PackedRows { kp, data }
    }

    fn rows_padded(&self) -> usize {
        self.data.len() / self.kp
    }

    /// Bytes held (for memory reports).
    pub fn bytes(&self) -> usize {
        self.data.len() * 2
    }
}

/// `acc[g * rows_padded + r] = Σ_k patches[g * kp + k] * w[r][k]` for `GROUP` patches.
fn dots(isa: DotIsa, patches: &[i16], w: &PackedRows, acc: &mut [i32]) {
    let (kp, rp) = (w.kp, w.rows_padded());
    assert!(patches.len() >= GROUP * kp && acc.len() >= GROUP * rp);
    match isa {
        DotIsa::Portable => dots_portable(patches, w, acc),
        // SAFETY: each variant is only chosen when the CPU has its features (dot_isa),
        // and the asserts above bound every pointer the kernels form.
        #[cfg(target_arch = "x86_64")]
        DotIsa::Avx2 => unsafe {
            x86::dots_avx2(patches, &w.data, kp, rp, acc);
        },
        #[cfg(target_arch = "x86_64")]
        DotIsa::Avx512Bw => unsafe {
            x86::dots_avx512(patches, &w.data, kp, rp, acc);
        },
        #[cfg(target_arch = "x86_64")]
        DotIsa::Avx512Vnni => unsafe {
            x86::dots_avx512_vnni(patches, &w.data, kp, rp, acc);
        },
    }
}

fn dots_portable(patches: &[i16], w: &PackedRows, acc: &mut [i32]) {
    let (kp, rp) = (w.kp, w.rows_padded());
    for g in 0..GROUP {
        let x = &patches[g * kp..(g + 1) * kp];
        for r in 0..rp {
            let wr = &w.data[r * kp..(r + 1) * kp];
            let mut s = 0i32;
            for (&a, &b) in x.iter().zip(wr) {
                s = s.wrapping_add(i32::from(a) * i32::from(b));
            }
            acc[g * rp + r] = s;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{GROUP, ROWS};

    #[target_feature(enable = "avx2")]
    fn hsum256(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }

    /// 2 patches × 4 rows per block (8 accumulators fit the 16 ymm registers).
    ///
    /// # Safety
    /// AVX2 must be available; `x` holds `GROUP * kp`, `w` `rp * kp`, `acc`
    /// `GROUP * rp` values, `kp % 16 == 0`, `rp % 4 == 0`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dots_avx2(x: &[i16], w: &[i16], kp: usize, rp: usize, acc: &mut [i32]) {
        debug_assert!(x.len() >= GROUP * kp && w.len() >= rp * kp && acc.len() >= GROUP * rp);
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        for g in (0..GROUP).step_by(2) {
            for r in (0..rp).step_by(ROWS) {
                let mut a = [_mm256_setzero_si256(); 8];
                let mut k = 0;
                while k < kp {
                    // SAFETY: k + 16 <= kp, g + 1 < GROUP, r + 3 < rp (caller's bounds).
                    unsafe {
                        let x0 = _mm256_loadu_si256(xp.add(g * kp + k).cast());
                        let x1 = _mm256_loadu_si256(xp.add((g + 1) * kp + k).cast());
                        for j in 0..ROWS {
                            let wv = _mm256_loadu_si256(wp.add((r + j) * kp + k).cast());
                            a[j] = _mm256_add_epi32(a[j], _mm256_madd_epi16(x0, wv));
                            a[4 + j] = _mm256_add_epi32(a[4 + j], _mm256_madd_epi16(x1, wv));
                        }
                    }
                    k += 16;
                }
                for j in 0..ROWS {
                    acc[g * rp + r + j] = hsum256(a[j]);
                    acc[(g + 1) * rp + r + j] = hsum256(a[4 + j]);
                }
            }
        }
    }

    /// 4 patches × 4 rows per block, `vpmaddwd` + `vpaddd` (AVX-512BW).
    ///
    /// # Safety
    /// AVX-512F/BW must be available; bounds as [`dots_avx2`] with `kp % 32 == 0`.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn dots_avx512(x: &[i16], w: &[i16], kp: usize, rp: usize, acc: &mut [i32]) {
        debug_assert!(x.len() >= GROUP * kp && w.len() >= rp * kp && acc.len() >= GROUP * rp);
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        for r in (0..rp).step_by(ROWS) {
            let mut a = [[_mm512_setzero_si512(); ROWS]; GROUP];
            let mut k = 0;
            while k < kp {
                // SAFETY: k + 32 <= kp, r + 3 < rp (caller's bounds).
                unsafe {
                    let wv: [__m512i; ROWS] = std::array::from_fn(|j| {
                        _mm512_loadu_si512(wp.add((r + j) * kp + k).cast())
                    });
                    for (g, ag) in a.iter_mut().enumerate() {
                        let xv = _mm512_loadu_si512(xp.add(g * kp + k).cast());
                        for j in 0..ROWS {
                            ag[j] = _mm512_add_epi32(ag[j], _mm512_madd_epi16(xv, wv[j]));
                        }
                    }
                }
                k += 32;
            }
            for (g, ag) in a.iter().enumerate() {
                for j in 0..ROWS {
                    acc[g * rp + r + j] = _mm512_reduce_add_epi32(ag[j]);
                }
            }
        }
    }

    /// As [`dots_avx512`] with the fused `vpdpwssd` (AVX-512 VNNI).
    ///
    /// # Safety
    /// AVX-512F/BW/VNNI must be available; bounds as [`dots_avx512`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn dots_avx512_vnni(x: &[i16], w: &[i16], kp: usize, rp: usize, acc: &mut [i32]) {
        debug_assert!(x.len() >= GROUP * kp && w.len() >= rp * kp && acc.len() >= GROUP * rp);
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        for r in (0..rp).step_by(ROWS) {
            let mut a = [[_mm512_setzero_si512(); ROWS]; GROUP];
            let mut k = 0;
            while k < kp {
                // SAFETY: k + 32 <= kp, r + 3 < rp (caller's bounds).
                unsafe {
                    let wv: [__m512i; ROWS] = std::array::from_fn(|j| {
                        _mm512_loadu_si512(wp.add((r + j) * kp + k).cast())
                    });
                    for (g, ag) in a.iter_mut().enumerate() {
                        let xv = _mm512_loadu_si512(xp.add(g * kp + k).cast());
                        for j in 0..ROWS {
                            ag[j] = _mm512_dpwssd_epi32(ag[j], xv, wv[j]);
                        }
                    }
                }
                k += 32;
            }
            for (g, ag) in a.iter().enumerate() {
                for j in 0..ROWS {
                    acc[g * rp + r + j] = _mm512_reduce_add_epi32(ag[j]);
                }
            }
        }
    }
}

/// Quantizes one vector and writes `q - zero_point` as i16 into `dst` (`dst.len() ==
/// x.len()`); returns `(scale, zero_point)`.
fn quantize_to_i16(x: &[f32], asymmetric: bool, q: &mut [i8], dst: &mut [i16]) -> (f32, i32) {
    let (s, zp) = if asymmetric {
        quantize_asymmetric(x, q)
    } else {
        (quantize_symmetric(x, q), 0)
    };
    for (d, &v) in dst.iter_mut().zip(q.iter()) {
        *d = (i32::from(v) - zp) as i16;
    }
    (s, zp)
}

/// Packed hybrid FULLY_CONNECTED.
#[derive(Debug, Clone)]
pub struct PackedHybridFc {
    p: HybridFcParams,
    w: PackedRows,
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
}

impl PackedHybridFc {
    /// Sizes must have passed [`HybridFcParams::check`].
    pub fn new(p: &HybridFcParams, weights: &[i8], scales: &[f32], bias: Option<&[f32]>) -> Self {
        PackedHybridFc {
            p: *p,
            w: PackedRows::new(weights, p.units, p.depth),
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
        let kp = self.w.kp;
        let work = |(gi, out): (usize, &mut [f32])| {
            let r0 = gi * GROUP;
            let n = out.len() / units;
            let mut q = vec![0i8; depth];
            let mut patches = vec![0i16; GROUP * kp];
            let mut acc = vec![0i32; GROUP * rp];
            let mut in_scales = [0f32; GROUP];
            if !zero {
                for g in 0..n {
                    let x = &input[(r0 + g) * depth..(r0 + g + 1) * depth];
                    let dst = &mut patches[g * kp..g * kp + depth];
                    in_scales[g] = quantize_to_i16(x, p.asymmetric, &mut q, dst).0;
                }
                dots(isa, &patches, &self.w, &mut acc);
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
        if par.threads > 1 && p.rows > GROUP {
            out.par_chunks_mut(GROUP * units).enumerate().for_each(work);
        } else {
            out.chunks_mut(GROUP * units).enumerate().for_each(work);
        }
    }
}

/// Packed hybrid CONV_2D (im2col of the quantized input, i16 patches × i16 filters).
#[derive(Debug, Clone)]
pub struct PackedHybridConv {
    hp: HybridConvParams,
    w: PackedRows,
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
}

impl PackedHybridConv {
    /// Sizes must have passed the family's conv check.
    pub fn new(hp: &HybridConvParams, filter: &[i8], scales: &[f32], bias: Option<&[f32]>) -> Self {
        let p = &hp.conv;
        PackedHybridConv {
            hp: *hp,
            w: PackedRows::new(filter, p.out_c, p.k()),
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
        let img = p.in_h * p.in_w * p.in_c;
        let out_img = p.out_h * p.out_w * p.out_c;
        let mut q = vec![0i8; img];
        let mut x16 = vec![0i16; img];
        for b in 0..p.batch {
            let (s_in, _) = quantize_to_i16(
                &input[b * img..(b + 1) * img],
                self.hp.per_channel,
                &mut q,
                &mut x16,
            );
            let out_b = &mut output[b * out_img..(b + 1) * out_img];
            let row = p.out_w * p.out_c;
            let work =
                |(oy, out_row): (usize, &mut [f32])| self.run_row(isa, &x16, s_in, oy, out_row);
            if par.threads > 1 && p.out_h > 1 {
                out_b.par_chunks_mut(row).enumerate().for_each(work);
            } else {
                out_b.chunks_mut(row).enumerate().for_each(work);
            }
        }
    }

    /// One output row: patches in groups of [`GROUP`], then the epilogue.
    fn run_row(&self, isa: DotIsa, x16: &[i16], s_in: f32, oy: usize, out_row: &mut [f32]) {
        let p = &self.hp.conv;
        let (kp, rp) = (self.w.kp, self.w.rows_padded());
        let mut patches = vec![0i16; GROUP * kp];
        let mut acc = vec![0i32; GROUP * rp];
        let y0 = (oy * p.stride_h) as isize - p.pad_top as isize;
        for ox0 in (0..p.out_w).step_by(GROUP) {
            let n = GROUP.min(p.out_w - ox0);
            for g in 0..GROUP {
                let patch = &mut patches[g * kp..(g + 1) * kp];
                if g >= n {
                    patch.fill(0);
                    continue;
                }
                let x0 = ((ox0 + g) * p.stride_w) as isize - p.pad_left as isize;
                let mut at = 0;
                for ky in 0..p.k_h {
                    let iy = y0 + (ky * p.dilation_h) as isize;
                    for kx in 0..p.k_w {
                        let ix = x0 + (kx * p.dilation_w) as isize;
                        let dst = &mut patch[at..at + p.in_c];
                        if iy < 0 || iy >= p.in_h as isize || ix < 0 || ix >= p.in_w as isize {
                            // Outside the image the reference adds nothing.
                            dst.fill(0);
                        } else {
                            let src = (iy as usize * p.in_w + ix as usize) * p.in_c;
                            dst.copy_from_slice(&x16[src..src + p.in_c]);
                        }
                        at += p.in_c;
                    }
                }
            }
            dots(isa, &patches, &self.w, &mut acc);
            for g in 0..n {
                let o = &mut out_row[(ox0 + g) * p.out_c..(ox0 + g + 1) * p.out_c];
                for (oc, ov) in o.iter_mut().enumerate() {
                    let a = acc[g * rp + oc] as f32;
                    let mut v = if self.hp.per_channel {
                        a * self.scales[oc] * s_in
                    } else {
                        a * (s_in * self.scales[oc])
                    };
                    if let Some(bias) = &self.bias {
                        v += bias[oc];
                    }
                    *ov = clamp_act(v, p.act_min, p.act_max);
                }
            }
        }
    }
}

/// Packed hybrid DEPTHWISE_CONV_2D: i16 filter, per-pixel channel-vectorized int32
/// accumulation (multiversioned for AVX2 / AVX-512BW, autovectorized).
#[derive(Debug, Clone)]
pub struct PackedHybridDepthwise {
    p: DepthwiseParams,
    w: Vec<i16>,
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
}

impl PackedHybridDepthwise {
    /// Sizes must have passed the family's depthwise check.
    pub fn new(p: &DepthwiseParams, filter: &[i8], scales: &[f32], bias: Option<&[f32]>) -> Self {
        PackedHybridDepthwise {
            p: *p,
            w: filter.iter().map(|&v| i16::from(v)).collect(),
            scales: scales.to_vec(),
            bias: bias.map(<[f32]>::to_vec),
        }
    }

    pub fn packed_bytes(&self) -> usize {
        self.w.len() * 2 + self.scales.len() * 4 + self.bias.as_ref().map_or(0, |b| b.len() * 4)
    }

    pub fn run(&self, input: &[f32], output: &mut [f32], par: Parallelism) {
        let p = &self.p;
        let isa = cpu::clamp_to_detected(cpu::selected_isa());
        let img = p.in_h * p.in_w * p.in_c;
        let out_c = p.out_c();
        let out_img = p.out_h * p.out_w * out_c;
        let mut q = vec![0i8; img];
        let mut x16 = vec![0i16; img];
        for b in 0..p.batch {
            let (s_in, _) = quantize_to_i16(&input[b * img..(b + 1) * img], true, &mut q, &mut x16);
            // Reference: `f32(acc) *= scale_w[oc] * scale_in`.
            let comb: Vec<f32> = self.scales.iter().map(|&s| s * s_in).collect();
            let out_b = &mut output[b * out_img..(b + 1) * out_img];
            let row = p.out_w * out_c;
            let work = |(oy, out_row): (usize, &mut [f32])| {
                let mut acc = vec![0i32; out_c];
                for ox in 0..p.out_w {
                    acc.fill(0);
                    dw_pixel_dispatch(isa, p, &self.w, &x16, oy, ox, &mut acc);
                    let o = &mut out_row[ox * out_c..(ox + 1) * out_c];
                    for (oc, ov) in o.iter_mut().enumerate() {
                        let mut v = acc[oc] as f32;
                        v *= comb[oc];
                        if let Some(bias) = &self.bias {
                            v += bias[oc];
                        }
                        *ov = clamp_act(v, p.act_min, p.act_max);
                    }
                }
            };
            if par.threads > 1 && p.out_h > 1 {
                out_b.par_chunks_mut(row).enumerate().for_each(work);
            } else {
                out_b.chunks_mut(row).enumerate().for_each(work);
            }
        }
    }
}

fn dw_pixel_dispatch(
    isa: Isa,
    p: &DepthwiseParams,
    w: &[i16],
    x: &[i16],
    oy: usize,
    ox: usize,
    acc: &mut [i32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if isa == Isa::Avx512 && cpu::features().avx512bw {
            // SAFETY: AVX-512F/BW present (checked above); the body is safe code.
            return unsafe { dw_pixel_avx512(p, w, x, oy, ox, acc) };
        }
        if isa >= Isa::Avx2 {
            // SAFETY: AVX2 present (the selected ISA is clamped to the detected one).
            return unsafe { dw_pixel_avx2(p, w, x, oy, ox, acc) };
        }
    }
    let _ = isa;
    dw_pixel(p, w, x, oy, ox, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dw_pixel_avx2(p: &DepthwiseParams, w: &[i16], x: &[i16], oy: usize, ox: usize, acc: &mut [i32]) {
    dw_pixel(p, w, x, oy, ox, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn dw_pixel_avx512(
    p: &DepthwiseParams,
    w: &[i16],
    x: &[i16],
    oy: usize,
    ox: usize,
    acc: &mut [i32],
) {
    dw_pixel(p, w, x, oy, ox, acc)
}

/// One output pixel's int32 sums over the taps inside the image.
#[inline(always)]
fn dw_pixel(p: &DepthwiseParams, w: &[i16], x: &[i16], oy: usize, ox: usize, acc: &mut [i32]) {
    let out_c = p.in_c * p.depth_multiplier;
    let y0 = (oy * p.stride_h) as isize - p.pad_top as isize;
    let x0 = (ox * p.stride_w) as isize - p.pad_left as isize;
    for ky in 0..p.k_h {
        let iy = y0 + (ky * p.dilation_h) as isize;
        if iy < 0 || iy >= p.in_h as isize {
            continue;
        }
        for kx in 0..p.k_w {
            let ix = x0 + (kx * p.dilation_w) as isize;
            if ix < 0 || ix >= p.in_w as isize {
                continue;
            }
            let src = (iy as usize * p.in_w + ix as usize) * p.in_c;
            let xs = &x[src..src + p.in_c];
            let ws = &w[(ky * p.k_w + kx) * out_c..(ky * p.k_w + kx + 1) * out_c];
            if p.depth_multiplier == 1 {
                for ((a, &wv), &xv) in acc.iter_mut().zip(ws).zip(xs) {
                    *a = a.wrapping_add(i32::from(wv) * i32::from(xv));
                }
            } else {
                let dm = p.depth_multiplier;
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

//! Integer DEPTHWISE_CONV_2D: the reference loops and the packed kernel, with its two
//! AVX-512 children for depth multiplier 1: [`vnni`] (8-bit, `vpdpbusd`) and [`int16`]
//! (int16x8, `vpdpwssd` / `vpmaddwd`).
//!
//! Elsewhere the packed kernel works per output pixel with channel-vectorized
//! multiply-adds over the taps (int16x8 too: int32 tap sums are exact for up to 256
//! taps).

mod int16;
mod vnni;

use int16::Dw16;
use vnni::Dw8;

use super::gemm::wide::Requant64;
use super::params::{QElem, QParams, bias_at, check_bias, check_geometry, check_lens};
use super::requant::Requant;
use super::simd::{dispatch, isa_now, multiversion};
use crate::error::{EngineError, Result};
use crate::exec::kernels::Parallelism;
use crate::exec::kernels::cpu::Isa;
use crate::exec::kernels::geometry::Geometry;
use crate::exec::parallel;
use crate::quant::fixed_point::{Multiplier, mbqm64};

/// Reference DEPTHWISE_CONV_2D: output channel `ic * mult + k` reads input channel `ic`.
pub fn depthwise_reference<T: QElem, W: QElem>(
    g: &Geometry,
    q: &QParams,
    input: &[T],
    filter: &[W],
    bias: Option<&[i64]>,
    out: &mut [T],
) -> Result<()> {
    check_geometry(g, true)?;
    q.check(g.out_c)?;
    check_lens(
        "depthwise",
        &[
            (input.len(), g.input_len()),
            (filter.len(), g.depthwise_filter_len()),
            (out.len(), g.output_len()),
            (bias.map_or(g.out_c, <[i64]>::len), g.out_c),
        ],
    )?;
    let (io, wo) = (-q.in_zp, q.w_offset());
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                for ic in 0..g.in_c {
                    for m in 0..g.depth_multiplier {
                        let oc = ic * g.depth_multiplier + m;
                        let mut acc: i64 = 0;
                        for ky in 0..g.k_h {
                            let iy =
                                (oy * g.stride_h + ky * g.dilation_h) as isize - g.pad_top as isize;
                            if iy < 0 || iy >= g.in_h as isize {
                                continue;
                            }
                            for kx in 0..g.k_w {
                                let ix = (ox * g.stride_w + kx * g.dilation_w) as isize
                                    - g.pad_left as isize;
                                if ix < 0 || ix >= g.in_w as isize {
                                    continue;
                                }
                                let ii = ((b * g.in_h + iy as usize) * g.in_w + ix as usize)
                                    * g.in_c
                                    + ic;
                                let x = input[ii].to_i32() + io;
                                let w = filter[(ky * g.k_w + kx) * g.out_c + oc].to_i32() + wo;
                                acc += x as i64 * w as i64;
                            }
                        }
                        let o = ((b * g.out_h + oy) * g.out_w + ox) * g.out_c + oc;
                        out[o] = T::from_i32(q.finish(acc, bias_at(bias, oc), oc));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Integer DEPTHWISE_CONV_2D with weights packed (offset applied, widened) at construction.
pub struct PackedQDepthwise {
    g: Geometry,
    isa: Isa,
    wide: bool,
    in_offset: i32,
    /// `[tap][out_c]`, `w + w_offset`.
    w: Vec<i32>,
    bias32: Vec<i32>,
    bias64: Vec<i64>,
    rq: Requant,
    rq64: Requant64,
    mult: Vec<Multiplier>,
    act_min: i32,
    act_max: i32,
    /// The VNNI path for 8-bit, multiplier-1 ops when the CPU has it.
    dw8: Option<Box<Dw8>>,
    /// The AVX-512 path for int16x8, multiplier-1 ops.
    dw16: Option<Box<Dw16>>,
}

struct DwRow<'a, T> {
    k: &'a PackedQDepthwise,
    input: &'a [T],
    /// Flattened (batch, oy).
    row: usize,
}

#[inline(always)]
fn dw_row<T: QElem>(
    r: &DwRow<'_, T>,
    acc: &mut [i32],
    acc64: &mut [i64],
    xe: &mut [i32],
    out: &mut [T],
) {
    let k = r.k;
    let g = &k.g;
    let (oc, mult) = (g.out_c, g.depth_multiplier);
    let oy = r.row % g.out_h;
    let b = r.row / g.out_h;
    for ox in 0..g.out_w {
        acc.fill(0);
        acc64.fill(0);
        for ky in 0..g.k_h {
            let iy = (oy * g.stride_h + ky * g.dilation_h) as isize - g.pad_top as isize;
            if iy < 0 || iy >= g.in_h as isize {
                continue;
            }
            for kx in 0..g.k_w {
                let ix = (ox * g.stride_w + kx * g.dilation_w) as isize - g.pad_left as isize;
                if ix < 0 || ix >= g.in_w as isize {
                    continue;
                }
                let s = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c;
                let x = &r.input[s..s + g.in_c];
                let w = &k.w[(ky * g.k_w + kx) * oc..(ky * g.k_w + kx + 1) * oc];
                if mult == 1 {
                    if k.wide {
                        for ((a, &xv), &wv) in acc64.iter_mut().zip(x).zip(w) {
                            *a += (xv.to_i32() * wv) as i64;
                        }
                    } else {
                        for ((a, &xv), &wv) in acc.iter_mut().zip(x).zip(w) {
                            *a = a.wrapping_add((xv.to_i32() + k.in_offset) * wv);
                        }
                    }
                } else {
                    for (c, e) in xe.iter_mut().enumerate() {
                        *e = x[c / mult].to_i32() + k.in_offset;
                    }
                    if k.wide {
                        for ((a, &xv), &wv) in acc64.iter_mut().zip(xe.iter()).zip(w) {
                            *a += (xv * wv) as i64;
                        }
                    } else {
                        for ((a, &xv), &wv) in acc.iter_mut().zip(xe.iter()).zip(w) {
                            *a = a.wrapping_add(xv * wv);
                        }
                    }
                }
            }
        }
        let o = &mut out[ox * oc..(ox + 1) * oc];
        if k.wide {
            for (c, (ov, &a)) in o.iter_mut().zip(acc64.iter()).enumerate() {
                let v = mbqm64(a.wrapping_add(k.bias64[c]), k.mult[c]);
                *ov = T::from_i32(v.clamp(k.act_min, k.act_max));
            }
        } else {
            k.rq.row(k.isa, 0, acc, &k.bias32, 0, o);
        }
    }
}
/// 8-bit depthwise with multiplier 1: per output pixel, gather the valid taps, sum all
/// channels (SIMD blocks of 16/8 channels kept in registers across the taps), then
/// requantize the pixel's channels at once.
fn dw_row8<T: QElem>(
    r: &DwRow<'_, T>,
    taps: &mut Vec<(usize, usize)>,
    tile: &mut [i32],
    out: &mut [T],
) {
    let k = r.k;
    let g = &k.g;
    let c = g.out_c;
    let oy = r.row % g.out_h;
    let b = r.row / g.out_h;
    let tile = &mut tile[..c];
    for ox in 0..g.out_w {
        taps.clear();
        for ky in 0..g.k_h {
            let iy = (oy * g.stride_h + ky * g.dilation_h) as isize - g.pad_top as isize;
            if iy < 0 || iy >= g.in_h as isize {
                continue;
            }
            for kx in 0..g.k_w {
                let ix = (ox * g.stride_w + kx * g.dilation_w) as isize - g.pad_left as isize;
                if ix < 0 || ix >= g.in_w as isize {
                    continue;
                }
                let s = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c;
                taps.push((s, (ky * g.k_w + kx) * c));
            }
        }
        let done = dw_pixel_simd(k.isa, r.input, &k.w, taps, k.in_offset, tile);
        for (ch, a) in tile.iter_mut().enumerate().skip(done) {
            *a = taps.iter().fold(0i32, |s, &(xs, ws)| {
                s.wrapping_add((r.input[xs + ch].to_i32() + k.in_offset) * k.w[ws + ch])
            });
        }
        k.rq.row(k.isa, 0, tile, &k.bias32, 0, &mut out[ox * c..(ox + 1) * c]);
    }
}

/// int16x8 depthwise with multiplier 1 and at most [`DW16_MAX_TAPS`] taps: like
/// [`dw_row8`], the taps of a pixel summed in int32 (exact: |x·w| ≤ 2^22), then widened
/// for the 64-bit requantization.
fn dw_row16<T: QElem>(
    r: &DwRow<'_, T>,
    taps: &mut Vec<(usize, usize)>,
    tile: &mut [i32],
    wide: &mut [i64],
    out: &mut [T],
) {
    let k = r.k;
    let g = &k.g;
    let c = g.out_c;
    let oy = r.row % g.out_h;
    let b = r.row / g.out_h;
    let tile = &mut tile[..c];
    for ox in 0..g.out_w {
        taps.clear();
        for ky in 0..g.k_h {
            let iy = (oy * g.stride_h + ky * g.dilation_h) as isize - g.pad_top as isize;
            if iy < 0 || iy >= g.in_h as isize {
                continue;
            }
            for kx in 0..g.k_w {
                let ix = (ox * g.stride_w + kx * g.dilation_w) as isize - g.pad_left as isize;
                if ix < 0 || ix >= g.in_w as isize {
                    continue;
                }
                let s = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c;
                taps.push((s, (ky * g.k_w + kx) * c));
            }
        }
        let done = dw_pixel_simd16(k.isa, r.input, &k.w, taps, tile);
        for (ch, a) in tile.iter_mut().enumerate().skip(done) {
            *a = taps.iter().fold(0i32, |s, &(xs, ws)| {
                s.wrapping_add(r.input[xs + ch].to_i32() * k.w[ws + ch])
            });
        }
        for (d, &a) in wide.iter_mut().zip(tile.iter()) {
            *d = a as i64;
        }
        k.rq64.row(&wide[..c], &mut out[ox * c..(ox + 1) * c]);
    }
}

/// Most taps whose int16 × int8 products an int32 sum holds exactly (256 · 2^22 = 2^30).
const DW16_MAX_TAPS: usize = 256;

/// [`dw_pixel_simd`] for int16 inputs (input zero point 0); does nothing for others.
fn dw_pixel_simd16<T: QElem>(
    isa: Isa,
    input: &[T],
    w: &[i32],
    taps: &[(usize, usize)],
    tile: &mut [i32],
) -> usize {
    if std::mem::size_of::<T>() != 2 || !T::SIGNED {
        return 0;
    }
    let c = tile.len();
    for &(xs, ws) in taps {
        assert!(
            xs + c <= input.len() && ws + c <= w.len(),
            "depthwise tap in bounds"
        );
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the ISA was clamped to the CPU's features; taps are in bounds (above)
        // and T is a signed 16-bit integer.
        unsafe {
            match isa {
                // AVX-512 machines take `Dw16` (every AVX-512BW CPU also has DQ);
                // this serves AVX2 and would serve an AVX-512 CPU without DQ.
                Isa::Avx512 | Isa::Avx2 => return x86::pixel16_avx2(input, w, taps, tile),
                Isa::Portable => {}
            }
        }
    }
    let _ = isa;
    0
}

/// Sums the leading channels of one pixel with SIMD; returns how many it did.
fn dw_pixel_simd<T: QElem>(
    isa: Isa,
    input: &[T],
    w: &[i32],
    taps: &[(usize, usize)],
    io: i32,
    tile: &mut [i32],
) -> usize {
    if std::mem::size_of::<T>() != 1 {
        return 0;
    }
    let c = tile.len();
    for &(xs, ws) in taps {
        assert!(
            xs + c <= input.len() && ws + c <= w.len(),
            "depthwise tap in bounds"
        );
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the ISA was clamped to the CPU's features; taps are in bounds (above)
        // and T is one byte wide.
        unsafe {
            match isa {
                Isa::Avx512 => return x86::pixel_avx512(input, w, taps, io, tile),
                Isa::Avx2 => return x86::pixel_avx2(input, w, taps, io, tile),
                Isa::Portable => {}
            }
        }
    }
    let _ = (isa, io);
    0
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::QElem;
    use std::arch::x86_64::*;

    /// Caller guarantees `T` is one byte and every tap reads `tile.len()` channels in
    /// bounds of `input` and `w`.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn pixel_avx512<T: QElem>(
        input: &[T],
        w: &[i32],
        taps: &[(usize, usize)],
        io: i32,
        tile: &mut [i32],
    ) -> usize {
        let n = tile.len() / 16 * 16;
        let vio = _mm512_set1_epi32(io);
        let (xp, wp) = (input.as_ptr().cast::<u8>(), w.as_ptr());
        let mut c0 = 0;
        while c0 < n {
            let mut acc = _mm512_setzero_si512();
            for &(xs, ws) in taps {
                // SAFETY: in bounds per the caller's contract.
                unsafe {
                    let xb = _mm_loadu_si128(xp.add(xs + c0).cast());
                    let x = if T::SIGNED {
                        _mm512_cvtepi8_epi32(xb)
                    } else {
                        _mm512_cvtepu8_epi32(xb)
                    };
                    let wv = _mm512_loadu_si512(wp.add(ws + c0).cast());
                    acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_add_epi32(x, vio), wv));
                }
            }
            // SAFETY: c0 + 16 <= tile.len().
            unsafe { _mm512_storeu_si512(tile.as_mut_ptr().add(c0).cast(), acc) };
            c0 += 16;
        }
        n
    }

    /// Caller guarantees `T` is i16 and every tap reads `tile.len()` channels in bounds.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn pixel16_avx2<T: QElem>(
        input: &[T],
        w: &[i32],
        taps: &[(usize, usize)],
        tile: &mut [i32],
    ) -> usize {
        let n = tile.len() / 8 * 8;
        let (xp, wp) = (input.as_ptr().cast::<i16>(), w.as_ptr());
        let mut c0 = 0;
        while c0 < n {
            let mut acc = _mm256_setzero_si256();
            for &(xs, ws) in taps {
                // SAFETY: in bounds per the caller's contract.
                unsafe {
                    let x = _mm256_cvtepi16_epi32(_mm_loadu_si128(xp.add(xs + c0).cast()));
                    let wv = _mm256_loadu_si256(wp.add(ws + c0).cast());
                    acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(x, wv));
                }
            }
            // SAFETY: c0 + 8 <= tile.len().
            unsafe { _mm256_storeu_si256(tile.as_mut_ptr().add(c0).cast(), acc) };
            c0 += 8;
        }
        n
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn pixel_avx2<T: QElem>(
        input: &[T],
        w: &[i32],
        taps: &[(usize, usize)],
        io: i32,
        tile: &mut [i32],
    ) -> usize {
        let n = tile.len() / 8 * 8;
        let vio = _mm256_set1_epi32(io);
        let (xp, wp) = (input.as_ptr().cast::<u8>(), w.as_ptr());
        let mut c0 = 0;
        while c0 < n {
            let mut acc = _mm256_setzero_si256();
            for &(xs, ws) in taps {
                // SAFETY: in bounds per the caller's contract.
                unsafe {
                    let xb = _mm_loadl_epi64(xp.add(xs + c0).cast());
                    let x = if T::SIGNED {
                        _mm256_cvtepi8_epi32(xb)
                    } else {
                        _mm256_cvtepu8_epi32(xb)
                    };
                    let wv = _mm256_loadu_si256(wp.add(ws + c0).cast());
                    acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_add_epi32(x, vio), wv));
                }
            }
            // SAFETY: c0 + 8 <= tile.len().
            unsafe { _mm256_storeu_si256(tile.as_mut_ptr().add(c0).cast(), acc) };
            c0 += 8;
        }
        n
    }
}

multiversion!(dw_row, dw_row_avx2, dw_row_avx512, <T: QElem>(r: &DwRow<'_, T>, acc: &mut [i32], acc64: &mut [i64], xe: &mut [i32], out: &mut [T]));

impl PackedQDepthwise {
    pub fn new<W: QElem>(
        g: &Geometry,
        q: &QParams,
        filter: &[W],
        bias: Option<&[i64]>,
    ) -> Result<Self> {
        check_geometry(g, true)?;
        q.check(g.out_c)?;
        check_bias(bias, g.out_c)?;
        if filter.len() != g.depthwise_filter_len() {
            return Err(EngineError::invalid(format!(
                "depthwise filter has {} values, shape needs {}",
                filter.len(),
                g.depthwise_filter_len()
            )));
        }
        let wo = -q.w_zp;
        let n = g.out_c;
        let bias64: Vec<i64> = (0..n).map(|c| bias.map_or(0, |b| b[c])).collect();
        let mut bias32: Vec<i32> = bias64.iter().map(|&b| b as i32).collect();
        bias32.resize(n.next_multiple_of(16), 0);
        let isa = isa_now();
        let dw8 = Dw8::new(g, q, filter, bias, isa == Isa::Avx512).map(Box::new);
        let rq64 = Requant64::new(isa, bias64.clone(), &q.mult, q.act_min, q.act_max);
        let dw16 = Dw16::new(g, q, filter, &rq64, isa == Isa::Avx512).map(Box::new);
        Ok(PackedQDepthwise {
            g: *g,
            isa,
            wide: q.scheme.wide(),
            in_offset: -q.in_zp,
            w: filter.iter().map(|w| w.to_i32() + wo).collect(),
            bias32,
            rq64,
            bias64,
            rq: Requant::new(&q.mult, q.out_zp, q.act_min, q.act_max, q.rounding),
            mult: q.mult.clone(),
            act_min: q.act_min,
            act_max: q.act_max,
            dw8,
            dw16,
        })
    }

    pub fn packed_bytes(&self) -> usize {
        self.w.len() * 4
    }

    /// Whether the int16 AVX-512 path runs (for tests).
    pub fn uses_dw16(&self) -> bool {
        self.dw16.is_some()
    }

    /// Whether the VNNI path runs (tests check both paths are covered).
    pub fn uses_vnni(&self) -> bool {
        self.dw8.is_some()
    }

    /// Whether the VNNI column path computes 3×3 stride-1 rows in pairs (for tests).
    pub fn uses_row_pairs(&self) -> bool {
        self.dw8.as_ref().is_some_and(|d| d.uses_row_pairs())
    }

    /// Whether the VNNI column path takes the cheaper exact requantization (for tests).
    pub fn uses_fast_requant(&self) -> bool {
        self.dw8.as_ref().is_some_and(|d| d.uses_fast_requant())
    }

    pub fn run<T: QElem>(&self, input: &[T], out: &mut [T], par: Parallelism) {
        let g = &self.g;
        assert_eq!(input.len(), g.input_len(), "depthwise input size");
        assert_eq!(out.len(), g.output_len(), "depthwise output size");
        let row_len = g.out_w * g.out_c;
        if row_len == 0 {
            return;
        }
        let rows = g.batch * g.out_h;
        let macs = g.output_len() * g.k_h * g.k_w;
        let tasks = parallel::task_count(par, rows, macs / parallel::DEPTHWISE_MACS_PER_NS);
        let per_task = rows.div_ceil(tasks);
        if let Some(d) = &self.dw8 {
            parallel::for_each_chunk_mut(par, out, per_task * row_len, &|ci, o| {
                d.rows(&self.rq, ci * per_task, input, o)
            });
            return;
        }
        if let Some(d) = &self.dw16 {
            parallel::for_each_chunk_mut(par, out, per_task * row_len, &|ci, o| {
                d.rows(ci * per_task, input, o)
            });
            return;
        }
        let n = g.out_c.next_multiple_of(16);
        let simple = !self.wide && g.depth_multiplier == 1;
        // int16 input with few enough taps for exact int32 sums.
        let wide16 = self.wide && g.depth_multiplier == 1 && g.k_h * g.k_w <= DW16_MAX_TAPS;
        type Scratch = (Vec<i32>, Vec<i64>, Vec<i32>, Vec<(usize, usize)>);
        let init = || -> Scratch {
            (
                vec![0i32; n],
                vec![0i64; g.out_c],
                vec![0i32; g.out_c],
                Vec::with_capacity(g.k_h * g.k_w),
            )
        };
        let one = |(acc, acc64, xe, taps): &mut Scratch, row: usize, o: &mut [T]| {
            let r = DwRow {
                k: self,
                input,
                row,
            };
            if simple {
                dw_row8(&r, taps, acc, o);
            } else if wide16 {
                dw_row16(&r, taps, acc, acc64, o);
            } else {
                let acc = &mut acc[..g.out_c];
                dispatch!(
                    self.isa,
                    dw_row,
                    dw_row_avx2,
                    dw_row_avx512,
                    (&r, acc, acc64, xe, o)
                );
            }
        };
        parallel::for_each_chunk_mut(par, out, per_task * row_len, &|ci, chunk| {
            let mut s = init();
            for (r, o) in chunk.chunks_mut(row_len).enumerate() {
                one(&mut s, ci * per_task + r, o);
            }
        });
    }
}

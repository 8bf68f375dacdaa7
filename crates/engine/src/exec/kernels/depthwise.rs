//! Float32 DEPTHWISE_CONV_2D (input NHWC, filter `[1, k_h, k_w, in_c * multiplier]`;
//! output channel `oc = ic * multiplier + m` reads input channel `ic`).
//!
//! The fast path vectorizes over channels (16 per AVX-512 register, 8 per AVX2). For
//! every output pixel it first lists the in-image taps (so padding borders cost nothing
//! in the inner loop and the interior has no bounds checks), then sweeps the channel
//! blocks over that list. Weights are repacked tap-major with the channel count padded
//! to 16, so the last block's weight and bias loads never need a mask.

use super::Parallelism;
use super::cpu::{self, Isa};
use super::geometry::Geometry;
use crate::error::{EngineError, Result};
use crate::exec::parallel;

/// Geometry (`out_c = in_c · depth_multiplier`) and fused activation of one
/// DEPTHWISE_CONV_2D.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DepthwiseParams {
    pub geom: Geometry,
    pub act_min: f32,
    pub act_max: f32,
}

impl DepthwiseParams {
    pub fn input_len(&self) -> usize {
        self.geom.input_len()
    }
    pub fn filter_len(&self) -> usize {
        self.geom.depthwise_filter_len()
    }
    pub fn output_len(&self) -> usize {
        self.geom.output_len()
    }
    pub fn macs(&self) -> usize {
        self.output_len() * self.geom.k_h * self.geom.k_w
    }

    /// Checks attributes and buffer sizes before the kernels run (see
    /// `ConvParams::check`).
    pub fn check(
        &self,
        input_len: usize,
        filter_len: usize,
        bias_len: Option<usize>,
        output_len: usize,
    ) -> Result<()> {
        let g = &self.geom;
        if g.stride_h == 0 || g.stride_w == 0 {
            return Err(EngineError::invalid("depthwise_conv2d: stride 0"));
        }
        if g.dilation_h == 0 || g.dilation_w == 0 {
            return Err(EngineError::invalid("depthwise_conv2d: dilation 0"));
        }
        if g.k_h == 0 || g.k_w == 0 {
            return Err(EngineError::invalid("depthwise_conv2d: empty filter"));
        }
        if g.depth_multiplier == 0 {
            return Err(EngineError::invalid("depthwise_conv2d: depth multiplier 0"));
        }
        if g.out_c != g.in_c * g.depth_multiplier {
            return Err(EngineError::invalid(format!(
                "depthwise_conv2d: {} output channels for {} inputs × multiplier {}",
                g.out_c, g.in_c, g.depth_multiplier
            )));
        }
        if self.act_min.is_nan() || self.act_max.is_nan() || self.act_min > self.act_max {
            return Err(EngineError::invalid(
                "depthwise_conv2d: bad activation range",
            ));
        }
        let sizes = [
            ("input", input_len, self.input_len()),
            ("filter", filter_len, self.filter_len()),
            ("output", output_len, self.output_len()),
        ];
        for (what, got, want) in sizes {
            if got != want {
                return Err(EngineError::invalid(format!(
                    "depthwise_conv2d: {what} has {got} floats, shape needs {want}"
                )));
            }
        }
        if let Some(b) = bias_len
            && b != g.out_c
        {
            return Err(EngineError::invalid(format!(
                "depthwise_conv2d: bias has {b} floats for {} output channels",
                g.out_c
            )));
        }
        Ok(())
    }
}

fn assert_lengths(p: &DepthwiseParams, input: &[f32], output: &[f32]) {
    assert!(
        input.len() >= p.input_len(),
        "depthwise_conv2d: input too short"
    );
    assert!(
        output.len() >= p.output_len(),
        "depthwise_conv2d: output too short"
    );
}

/// Reference DEPTHWISE_CONV_2D, in TFLite `reference_ops::DepthwiseConv` order: sum over
/// (ky, kx), then bias, then clamp.
pub fn depthwise_reference(
    p: &DepthwiseParams,
    input: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    let g = &p.geom;
    assert_lengths(p, input, output);
    assert!(
        filter.len() >= p.filter_len(),
        "depthwise_conv2d: filter too short"
    );
    let out_c = g.out_c;
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                for ic in 0..g.in_c {
                    for m in 0..g.depth_multiplier {
                        let oc = ic * g.depth_multiplier + m;
                        let mut total = 0.0f32;
                        for ky in 0..g.k_h {
                            let Some(iy) = g.in_y(oy, ky) else {
                                continue;
                            };
                            for kx in 0..g.k_w {
                                let Some(ix) = g.in_x(ox, kx) else {
                                    continue;
                                };
                                let x = input[((b * g.in_h + iy) * g.in_w + ix) * g.in_c + ic];
                                total += x * filter[(ky * g.k_w + kx) * out_c + oc];
                            }
                        }
                        let v = total + bias.map_or(0.0, |bb| bb[oc]);
                        output[((b * g.out_h + oy) * g.out_w + ox) * out_c + oc] =
                            v.max(p.act_min).min(p.act_max);
                    }
                }
            }
        }
    }
}

/// Channel padding of the repacked weights (one AVX-512 register).
const CB: usize = 16;

/// Interior output pixels computed together by the SIMD paths (one accumulator each,
/// sharing every weight load): groups of 8, then 4, then single pixels.
const PIX_MAX: usize = 8;
const PIX_MIN: usize = 4;

/// DEPTHWISE_CONV_2D with weights repacked once at load.
#[derive(Debug, Clone)]
pub struct PackedDepthwise {
    p: DepthwiseParams,
    /// Padded channel count (multiple of [`CB`]).
    cp: usize,
    /// `[k_h * k_w][cp]`, zero past `out_c`.
    w: Vec<f32>,
    /// `[cp]`, zero past `out_c` (or everywhere without bias).
    bias: Vec<f32>,
}

/// One in-image tap of an output pixel: offsets into the input and the packed weights.
#[derive(Clone, Copy)]
struct Tap {
    input: usize,
    weight: usize,
}

impl PackedDepthwise {
    /// Repacks `filter` and `bias`. Panics if they are shorter than `p` needs (callers
    /// validate with [`DepthwiseParams::check`]).
    pub fn new(p: &DepthwiseParams, filter: &[f32], bias: Option<&[f32]>) -> Self {
        let g = &p.geom;
        assert!(
            filter.len() >= p.filter_len(),
            "depthwise_conv2d: filter too short"
        );
        let out_c = g.out_c;
        let cp = out_c.div_ceil(CB) * CB;
        let taps = g.k_h * g.k_w;
        let mut w = vec![0.0f32; taps * cp];
        if out_c > 0 {
            for (dst, src) in w.chunks_exact_mut(cp).zip(filter.chunks_exact(out_c)) {
                dst[..out_c].copy_from_slice(src);
            }
        }
        let mut padded_bias = vec![0.0f32; cp];
        if let Some(b) = bias {
            assert!(b.len() >= out_c, "depthwise_conv2d: bias too short");
            padded_bias[..out_c].copy_from_slice(&b[..out_c]);
        }
        PackedDepthwise {
            p: *p,
            cp,
            w,
            bias: padded_bias,
        }
    }

    pub fn params(&self) -> &DepthwiseParams {
        &self.p
    }

    /// Bytes held by the repacked weights and bias.
    pub fn packed_bytes(&self) -> usize {
        (self.w.len() + self.bias.len()) * 4
    }

    pub fn run(&self, input: &[f32], output: &mut [f32], par: Parallelism) {
        self.run_isa(cpu::selected_isa(), input, output, par)
    }

    /// Runs with a given ISA (capped to what the CPU supports). Depth multipliers other
    /// than 1 always take the portable path (no common network uses them).
    pub fn run_isa(&self, isa: Isa, input: &[f32], output: &mut [f32], par: Parallelism) {
        let p = &self.p;
        let g = &p.geom;
        assert_lengths(p, input, output);
        let isa = cpu::clamp_to_detected(isa);
        let rows = g.batch * g.out_h;
        let row_len = g.out_w * g.out_c;
        if rows == 0 || row_len == 0 {
            return;
        }
        let output = &mut output[..rows * row_len];
        let tasks = parallel::task_count(par, rows, p.macs() / parallel::DEPTHWISE_MACS_PER_NS);
        if tasks > 1 {
            let per_task = rows.div_ceil(tasks);
            parallel::for_each_chunk_mut(par, output, per_task * row_len, &|ci, chunk| {
                self.rows(isa, ci * per_task, input, chunk)
            });
        } else {
            self.rows(isa, 0, input, output);
        }
    }

    /// Output rows `row0..` (row = batch × out_h index) into `out`.
    fn rows(&self, isa: Isa, row0: usize, input: &[f32], out: &mut [f32]) {
        let p = &self.p;
        let g = &p.geom;
        let out_c = g.out_c;
        let row_len = g.out_w * out_c;
        // Interior columns: every kx tap inside the image. There, pixel ox's taps are
        // pixel ox_lo's moved by (ox - ox_lo) * stride_w pixels: one tap list per row
        // serves all of them, and the SIMD paths do 8 or 4 pixels per weight load.
        let ox_lo = g.pad_left.div_ceil(g.stride_w).min(g.out_w);
        let span = g.k_w.saturating_sub(1) * g.dilation_w + 1;
        let ox_hi = if g.in_w + g.pad_left >= span {
            ((g.in_w + g.pad_left - span) / g.stride_w + 1).min(g.out_w)
        } else {
            0
        };
        // Only the x86_64 SIMD paths have multi-pixel kernels.
        let multi = cfg!(target_arch = "x86_64")
            && g.depth_multiplier == 1
            && isa != Isa::Portable
            && ox_hi >= ox_lo + PIX_MIN;
        let mut taps: Vec<Tap> = Vec::with_capacity(g.k_h * g.k_w);
        let mut interior: Vec<Tap> = Vec::with_capacity(g.k_h * g.k_w);
        for (r, out_row) in out.chunks_exact_mut(row_len).enumerate() {
            let b = (row0 + r) / g.out_h;
            let oy = (row0 + r) % g.out_h;
            if multi {
                self.taps_of(b, oy, ox_lo, &mut interior);
            }
            let mut ox = 0;
            while ox < g.out_w {
                let dst = &mut out_row[ox * out_c..];
                if multi && ox >= ox_lo && ox + PIX_MIN <= ox_hi {
                    let pix = if ox + PIX_MAX <= ox_hi {
                        PIX_MAX
                    } else {
                        PIX_MIN
                    };
                    let base = (ox - ox_lo) * g.stride_w * g.in_c;
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `isa` is capped to the detected features (run_isa); the
                    // `pix` pixels are interior, so each interior tap + base + j*xstride
                    // (j < pix) is a whole in-image pixel of `input` (length checked in
                    // run_isa); `dst` holds `pix` pixels.
                    unsafe {
                        let xs = g.stride_w * g.in_c;
                        let dst = &mut dst[..pix * out_c];
                        match (isa, pix) {
                            (Isa::Avx512, PIX_MAX) => {
                                x86::pixels512::<PIX_MAX>(self, input, &interior, base, xs, dst)
                            }
                            (Isa::Avx512, _) => {
                                x86::pixels512::<PIX_MIN>(self, input, &interior, base, xs, dst)
                            }
                            (_, PIX_MAX) => {
                                x86::pixels256::<PIX_MAX>(self, input, &interior, base, xs, dst)
                            }
                            _ => x86::pixels256::<PIX_MIN>(self, input, &interior, base, xs, dst),
                        }
                    }
                    ox += pix;
                } else {
                    self.taps_of(b, oy, ox, &mut taps);
                    self.pixel(isa, input, &taps, &mut dst[..out_c]);
                    ox += 1;
                }
            }
        }
    }

    /// The in-image taps of output pixel (b, oy, ox).
    fn taps_of(&self, b: usize, oy: usize, ox: usize, taps: &mut Vec<Tap>) {
        let p = &self.p;
        let g = &p.geom;
        taps.clear();
        for ky in 0..g.k_h {
            let Some(iy) = g.in_y(oy, ky) else {
                continue;
            };
            for kx in 0..g.k_w {
                let Some(ix) = g.in_x(ox, kx) else {
                    continue;
                };
                taps.push(Tap {
                    input: ((b * g.in_h + iy) * g.in_w + ix) * g.in_c,
                    weight: (ky * g.k_w + kx) * self.cp,
                });
            }
        }
    }

    /// One output pixel (all channels) from its in-image taps.
    #[inline]
    fn pixel(&self, isa: Isa, input: &[f32], taps: &[Tap], dst: &mut [f32]) {
        let p = &self.p;
        let g = &p.geom;
        if g.depth_multiplier == 1 {
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `isa` was capped to the detected features; every tap offset
                // addresses a whole in-image pixel (in_c floats) of `input`, whose length
                // was checked, and the packed weights hold `cp >= in_c` floats per tap.
                Isa::Avx512 => return unsafe { x86::pixel512(self, input, taps, dst) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                Isa::Avx2 => return unsafe { x86::pixel256(self, input, taps, dst) },
                _ => {}
            }
        }
        let out_c = g.out_c;
        dst.copy_from_slice(&self.bias[..out_c]);
        let mult = g.depth_multiplier;
        for t in taps {
            let x = &input[t.input..t.input + g.in_c];
            let w = &self.w[t.weight..t.weight + out_c];
            if mult == 1 {
                for ((d, &xv), &wv) in dst.iter_mut().zip(x).zip(w) {
                    *d += xv * wv;
                }
            } else {
                for ((d, &xv), wv) in dst.chunks_exact_mut(mult).zip(x).zip(w.chunks_exact(mult)) {
                    for (dd, &ww) in d.iter_mut().zip(wv) {
                        *dd += xv * ww;
                    }
                }
            }
        }
        for d in dst.iter_mut() {
            *d = d.max(p.act_min).min(p.act_max);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{PackedDepthwise, Tap};

    /// `PIX` adjacent interior pixels: pixel `j` reads tap offset `+ base + j * xstride`.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn pixels512<const PIX: usize>(
        k: &PackedDepthwise,
        input: &[f32],
        taps: &[Tap],
        base: usize,
        xstride: usize,
        dst: &mut [f32],
    ) {
        let c = k.p.geom.in_c;
        let vmin = _mm512_set1_ps(k.p.act_min);
        let vmax = _mm512_set1_ps(k.p.act_max);
        let inp = input.as_ptr();
        let w = k.w.as_ptr();
        let out = dst.as_mut_ptr();
        // SAFETY: per the caller (`PackedDepthwise::rows`), pixel `j`'s tap at
        // `base + t.input + j·xstride` starts an in-image pixel of `c` floats of `input`
        // and `dst` holds `PIX` pixels of `c`; loads and stores of the last channel block
        // are masked to `c`. Weights (per tap) and bias are padded to `cp`, a multiple of
        // 16 ≥ `c`, so their unmasked loads of a block starting below `c` stay inside.
        unsafe {
            let mut cb = 0;
            while cb < c {
                let rem = (c - cb).min(16);
                let mask = ((1u32 << rem) - 1) as u16;
                let bias = _mm512_loadu_ps(k.bias.as_ptr().add(cb));
                let mut acc = [bias; PIX];
                for t in taps {
                    let wv = _mm512_loadu_ps(w.add(t.weight + cb));
                    let src = inp.add(base + t.input + cb);
                    for (j, a) in acc.iter_mut().enumerate() {
                        // Masked: the last block must not read past the pixel/slice.
                        let x = _mm512_maskz_loadu_ps(mask, src.add(j * xstride));
                        *a = _mm512_fmadd_ps(x, wv, *a);
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    let v = _mm512_min_ps(_mm512_max_ps(*a, vmin), vmax);
                    _mm512_mask_storeu_ps(out.add(j * c + cb), mask, v);
                }
                cb += 16;
            }
        }
    }

    /// AVX2 version of [`pixels512`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn pixels256<const PIX: usize>(
        k: &PackedDepthwise,
        input: &[f32],
        taps: &[Tap],
        base: usize,
        xstride: usize,
        dst: &mut [f32],
    ) {
        let c = k.p.geom.in_c;
        let vmin = _mm256_set1_ps(k.p.act_min);
        let vmax = _mm256_set1_ps(k.p.act_max);
        let inp = input.as_ptr();
        let w = k.w.as_ptr();
        let out = dst.as_mut_ptr();
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        // SAFETY: per the caller (`PackedDepthwise::rows`), pixel `j`'s tap at
        // `base + t.input + j·xstride` starts an in-image pixel of `c` floats of `input`
        // and `dst` holds `PIX` pixels of `c`; loads and stores of the last channel block
        // are masked to `c`. Weights (per tap) and bias are padded to `cp`, a multiple of
        // 16 ≥ `c`, so their unmasked loads of a block starting below `c` stay inside.
        unsafe {
            let mut cb = 0;
            while cb < c {
                let rem = (c - cb).min(8);
                let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem as i32), lanes);
                let bias = _mm256_loadu_ps(k.bias.as_ptr().add(cb));
                let mut acc = [bias; PIX];
                for t in taps {
                    let wv = _mm256_loadu_ps(w.add(t.weight + cb));
                    let src = inp.add(base + t.input + cb);
                    for (j, a) in acc.iter_mut().enumerate() {
                        let at = src.add(j * xstride);
                        let x = if rem == 8 {
                            _mm256_loadu_ps(at)
                        } else {
                            _mm256_maskload_ps(at, mask)
                        };
                        *a = _mm256_fmadd_ps(x, wv, *a);
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    let v = _mm256_min_ps(_mm256_max_ps(*a, vmin), vmax);
                    _mm256_maskstore_ps(out.add(j * c + cb), mask, v);
                }
                cb += 8;
            }
        }
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn pixel512(
        k: &PackedDepthwise,
        input: &[f32],
        taps: &[Tap],
        dst: &mut [f32],
    ) {
        let c = k.p.geom.in_c;
        let vmin = _mm512_set1_ps(k.p.act_min);
        let vmax = _mm512_set1_ps(k.p.act_max);
        let inp = input.as_ptr();
        let w = k.w.as_ptr();
        let out = dst.as_mut_ptr();
        // SAFETY: per the caller (`PackedDepthwise::pixel`), each tap's `t.input` starts
        // an in-image pixel of `c` floats of `input` and `dst` holds `c` floats; the full
        // blocks end at or before `c` and the last block's loads and stores are masked to
        // `c`. Weights (per tap) and bias are padded to `cp`, a multiple of 16 ≥ `c`.
        unsafe {
            let mut cb = 0;
            // Four registers at a time: independent FMA chains hide the latency.
            while cb + 64 <= c {
                let mut acc = [_mm512_setzero_ps(); 4];
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_loadu_ps(k.bias.as_ptr().add(cb + 16 * j));
                }
                for t in taps {
                    for (j, a) in acc.iter_mut().enumerate() {
                        let x = _mm512_loadu_ps(inp.add(t.input + cb + 16 * j));
                        let wv = _mm512_loadu_ps(w.add(t.weight + cb + 16 * j));
                        *a = _mm512_fmadd_ps(x, wv, *a);
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    let v = _mm512_min_ps(_mm512_max_ps(*a, vmin), vmax);
                    _mm512_storeu_ps(out.add(cb + 16 * j), v);
                }
                cb += 64;
            }
            while cb < c {
                let rem = (c - cb).min(16);
                let mask = ((1u32 << rem) - 1) as u16;
                let mut acc = _mm512_loadu_ps(k.bias.as_ptr().add(cb));
                for t in taps {
                    // Masked: the last block must not read past the pixel (or the slice).
                    let x = _mm512_maskz_loadu_ps(mask, inp.add(t.input + cb));
                    let wv = _mm512_loadu_ps(w.add(t.weight + cb));
                    acc = _mm512_fmadd_ps(x, wv, acc);
                }
                let v = _mm512_min_ps(_mm512_max_ps(acc, vmin), vmax);
                _mm512_mask_storeu_ps(out.add(cb), mask, v);
                cb += 16;
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn pixel256(
        k: &PackedDepthwise,
        input: &[f32],
        taps: &[Tap],
        dst: &mut [f32],
    ) {
        let c = k.p.geom.in_c;
        let vmin = _mm256_set1_ps(k.p.act_min);
        let vmax = _mm256_set1_ps(k.p.act_max);
        let inp = input.as_ptr();
        let w = k.w.as_ptr();
        let out = dst.as_mut_ptr();
        // SAFETY: per the caller (`PackedDepthwise::pixel`), each tap's `t.input` starts
        // an in-image pixel of `c` floats of `input` and `dst` holds `c` floats; the full
        // blocks end at or before `c` and the last block's loads and stores are masked to
        // `c`. Weights (per tap) and bias are padded to `cp`, a multiple of 16 ≥ `c`.
        unsafe {
            let mut cb = 0;
            while cb + 32 <= c {
                let mut acc = [_mm256_setzero_ps(); 4];
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_loadu_ps(k.bias.as_ptr().add(cb + 8 * j));
                }
                for t in taps {
                    for (j, a) in acc.iter_mut().enumerate() {
                        let x = _mm256_loadu_ps(inp.add(t.input + cb + 8 * j));
                        let wv = _mm256_loadu_ps(w.add(t.weight + cb + 8 * j));
                        *a = _mm256_fmadd_ps(x, wv, *a);
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    let v = _mm256_min_ps(_mm256_max_ps(*a, vmin), vmax);
                    _mm256_storeu_ps(out.add(cb + 8 * j), v);
                }
                cb += 32;
            }
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            while cb < c {
                let rem = (c - cb).min(8);
                let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem as i32), lanes);
                let mut acc = _mm256_loadu_ps(k.bias.as_ptr().add(cb));
                for t in taps {
                    let x = _mm256_maskload_ps(inp.add(t.input + cb), mask);
                    let wv = _mm256_loadu_ps(w.add(t.weight + cb));
                    acc = _mm256_fmadd_ps(x, wv, acc);
                }
                let v = _mm256_min_ps(_mm256_max_ps(acc, vmin), vmax);
                _mm256_maskstore_ps(out.add(cb), mask, v);
                cb += 8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::kernels::cpu::{available_isas, with_isa};
    use crate::exec::kernels::test_util::{Rng, assert_close};

    #[allow(clippy::too_many_arguments)]
    fn params(
        batch: usize,
        in_hw: (usize, usize),
        in_c: usize,
        mult: usize,
        k: (usize, usize),
        stride: usize,
        dilation: usize,
        pad: (usize, usize),
        act: (f32, f32),
    ) -> DepthwiseParams {
        let out = |i: usize, kk: usize, pd: usize| {
            let eff = (kk - 1) * dilation + 1;
            (i + 2 * pd).saturating_sub(eff) / stride + 1
        };
        DepthwiseParams {
            geom: Geometry {
                batch,
                in_h: in_hw.0,
                in_w: in_hw.1,
                in_c,
                out_h: out(in_hw.0, k.0, pad.0),
                out_w: out(in_hw.1, k.1, pad.1),
                out_c: in_c * mult,
                k_h: k.0,
                k_w: k.1,
                stride_h: stride,
                stride_w: stride,
                dilation_h: dilation,
                dilation_w: dilation,
                pad_top: pad.0,
                pad_left: pad.1,
                depth_multiplier: mult,
            },
            act_min: act.0,
            act_max: act.1,
        }
    }

    const NONE: (f32, f32) = (f32::NEG_INFINITY, f32::INFINITY);

    #[test]
    fn fast_matches_reference() {
        let cases = [
            params(1, (9, 9), 96, 1, (3, 3), 2, 1, (1, 1), (0.0, 6.0)),
            params(1, (7, 8), 37, 1, (3, 3), 1, 1, (1, 1), NONE),
            params(2, (6, 6), 16, 1, (3, 3), 1, 1, (1, 1), (0.0, 6.0)),
            params(1, (10, 7), 5, 2, (3, 3), 1, 1, (1, 1), NONE),
            params(1, (8, 8), 3, 2, (3, 3), 2, 1, (0, 0), (-0.5, 0.5)),
            params(1, (11, 10), 70, 1, (5, 5), 2, 1, (2, 2), NONE),
            params(1, (9, 9), 24, 1, (3, 3), 1, 2, (2, 2), NONE),
            params(1, (6, 9), 13, 1, (1, 7), 1, 1, (0, 3), (0.0, 6.0)),
            params(1, (5, 5), 129, 1, (3, 3), 1, 1, (1, 1), (-1.0, 1.0)),
            params(1, (4, 4), 1, 1, (3, 3), 1, 1, (0, 0), NONE),
            // Wide rows: the 4-pixel interior path, with stride 2 and odd channels.
            params(1, (5, 21), 35, 1, (3, 3), 2, 1, (1, 1), (0.0, 6.0)),
            params(1, (3, 12), 129, 1, (3, 3), 1, 1, (1, 1), NONE),
            params(1, (4, 13), 8, 1, (5, 5), 1, 1, (2, 2), NONE),
            params(2, (3, 30), 20, 1, (3, 3), 1, 1, (1, 1), (0.0, 6.0)),
            params(1, (5, 40), 17, 1, (3, 3), 2, 2, (2, 2), NONE),
        ];
        for (ci, p) in cases.iter().enumerate() {
            let mut rng = Rng::new(200 + ci as u64);
            let input = rng.f32s(p.input_len());
            let filter = rng.f32s(p.filter_len());
            let bias = rng.f32s(p.geom.out_c);
            p.check(input.len(), filter.len(), Some(bias.len()), p.output_len())
                .unwrap();
            for with_bias in [true, false] {
                let bias = with_bias.then_some(bias.as_slice());
                let mut want = vec![0.0; p.output_len()];
                depthwise_reference(p, &input, &filter, bias, &mut want);
                let packed = PackedDepthwise::new(p, &filter, bias);
                for isa in available_isas() {
                    for threads in [1, 2] {
                        let mut got = vec![f32::NAN; p.output_len()];
                        with_isa(isa, || {
                            crate::exec::parallel::split_everything(|| {
                                packed.run(&input, &mut got, Parallelism { threads })
                            })
                        });
                        let k = p.geom.k_h * p.geom.k_w;
                        assert_close(&got, &want, k, &format!("{isa:?} t{threads} {p:?}"));
                    }
                }
            }
        }
    }

    #[test]
    fn check_rejects_bad_params() {
        let p = params(1, (4, 4), 3, 1, (3, 3), 1, 1, (1, 1), NONE);
        assert!(
            p.check(p.input_len(), p.filter_len(), None, p.output_len())
                .is_ok()
        );
        assert!(
            p.check(p.input_len() + 1, p.filter_len(), None, p.output_len())
                .is_err()
        );
        let q = DepthwiseParams {
            geom: Geometry {
                depth_multiplier: 0,
                ..p.geom
            },
            ..p
        };
        assert!(q.check(0, 0, None, 0).is_err());
    }
}

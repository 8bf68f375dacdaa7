//! Dynamic-range ("hybrid") kernels: float32 activations, int8 weights.
//!
//! Each input batch (FC: each row) is quantized to int8 on the fly, the int8 × int8
//! products accumulate exactly in int32, and a float epilogue applies the scales, the
//! bias and the fused activation. The reference kernels follow TFLite's hybrid paths
//! (`fully_connected.cc` EvalHybridDense, `conv.cc` EvalHybrid / EvalHybridPerChannel,
//! `depthwise_conv.cc` EvalHybridPerChannel) loop for loop, including the order of the
//! float operations. The on-the-fly input quantization follows the NEON tensor
//! utilities, which LiteRT's x86 build runs through NEON_2_SSE (they differ from the
//! portable ones in where the asymmetric range is rounded and how the vector loop
//! rounds); with that, the reference kernels reproduce LiteRT's `BUILTIN_REF` outputs
//! bit for bit (see `tests/interop/hybrid_check.py`). The fast kernels
//! ([`fast`]) compute the same int32 sums with SIMD and then run the identical float
//! epilogue, so both give the same bytes.
//!
//! Float epilogues, per op (`acc` = exact int32 sum, `s_in` = the batch's input scale,
//! `s_w` = the channel's weight scale; every step rounded to f32 as written):
//! - FC: `bias + f32(acc) * (s_in * s_w)` (asymmetric inputs: `acc` already has
//!   `zp * rowsum(w)` subtracted), then the activation;
//! - CONV_2D per-tensor (symmetric inputs): `f32(acc) * (s_in * s_w) + bias`;
//! - CONV_2D per-channel (asymmetric inputs): `(f32(acc) * s_w) * s_in + bias`;
//! - DEPTHWISE_CONV_2D (asymmetric inputs): `f32(acc) * (s_w * s_in) + bias`.

pub mod fast;

use super::conv::ConvParams;
use super::depthwise::DepthwiseParams;
use crate::error::{EngineError, Result};

/// Elements quantized by TFLite's 8-wide vector loop; the rest take the scalar tail.
pub(crate) fn vector_part(len: usize) -> usize {
    len & !7
}

/// The vector loop's rounding (`RoundToNearest` without `vcvtaq`): add ±0.5 in f32,
/// then truncate. Differs from `round()` only when the addition itself rounds.
#[inline(always)]
fn round_vector(v: f32) -> i32 {
    let half = if v < 0.0 { -0.5 } else { 0.5 };
    (v + half) as i32
}

/// Scale and reciprocal of symmetric quantization (`None`: all-zero input, which
/// TFLite maps to zeros with scale 1).
pub(crate) fn symmetric_params(x: &[f32]) -> Option<(f32, f32)> {
    let (min, max) = min_max(x);
    let (a, b) = (min.abs(), max.abs());
    let range = if a < b { b } else { a };
    if range == 0.0 {
        return None;
    }
    Some((range / 127.0, 127.0 / range))
}

/// Scale, zero point and reciprocal of asymmetric quantization (`None`: the range
/// `[min(x, 0), max(x, 0)]` is empty).
pub(crate) fn asymmetric_params(x: &[f32]) -> Option<(f32, i32, f32)> {
    let (min, max) = min_max(x);
    let rmin = if 0.0 < min { 0.0 } else { min };
    let rmax = if 0.0 > max { 0.0 } else { max };
    if rmin == rmax {
        return None;
    }
    let (qmin, qmax) = (-128.0f64, 127.0f64);
    // The difference is taken in f32 (the NEON path keeps rmin/rmax as floats).
    let scale = f64::from(rmax - rmin) / (qmax - qmin);
    let (rmin, rmax) = (f64::from(rmin), f64::from(rmax));
    let zp_from_min = qmin - rmin / scale;
    let zp_from_max = qmax - rmax / scale;
    let err_min = qmin.abs() + (rmin / scale).abs();
    let err_max = qmax.abs() + (rmax / scale).abs();
    let zp_f = if err_min < err_max {
        zp_from_min
    } else {
        zp_from_max
    };
    let zp = if zp_f <= qmin {
        -128
    } else if zp_f >= qmax {
        127
    } else {
        zp_f.round() as i32
    };
    let scale = scale as f32;
    // C: `const float inv = 1.0 / *scaling_factor;` divides in double.
    let inv = (1.0 / f64::from(scale)) as f32;
    Some((scale, zp, inv))
}

/// One symmetric value; `vector` selects the 8-wide loop's rounding.
#[inline(always)]
pub(crate) fn q_symmetric(v: f32, inv: f32, vector: bool) -> i32 {
    let r = if vector {
        round_vector(v * inv)
    } else {
        // `as` saturates (NaN → 0) where C would be undefined.
        (v * inv).round() as i32
    };
    r.clamp(-127, 127)
}

/// One asymmetric value (vector loop: `round(x / s) + zp`; tail: `zp + round(x / s)`
/// added in f32).
#[inline(always)]
pub(crate) fn q_asymmetric(v: f32, inv: f32, zp: i32, vector: bool) -> i32 {
    let r = if vector {
        round_vector(v * inv) + zp
    } else {
        (zp as f32 + (v * inv).round()) as i32
    };
    r.clamp(-128, 127)
}

/// Quantizes `x` symmetrically to `[-127, 127]` (TFLite `SymmetricQuantizeFloats`);
/// returns the scale (`max|x| / 127`, or 1 for an all-zero vector).
///
/// LiteRT's x86 build runs the NEON tensor utilities through NEON_2_SSE, so this follows
/// `NeonSymmetricQuantizeFloats`: the first `len & !7` values round with
/// `round_vector`, the tail with `round()` (half away from zero).
pub fn quantize_symmetric(x: &[f32], q: &mut [i8]) -> f32 {
    debug_assert_eq!(x.len(), q.len());
    let Some((scale, inv)) = symmetric_params(x) else {
        q.fill(0);
        return 1.0;
    };
    let split = vector_part(x.len());
    for (i, (qi, &v)) in q.iter_mut().zip(x).enumerate() {
        *qi = q_symmetric(v, inv, i < split) as i8;
    }
    scale
}

/// Quantizes `x` asymmetrically to `[-128, 127]` (TFLite `AsymmetricQuantizeFloats`,
/// as `NeonAsymmetricQuantizeFloats` computes it): range `[min(x, 0), max(x, 0)]` in
/// f32, scale `f64(rmax - rmin) / 255`, the zero point nudged from whichever end has the
/// smaller error; vector part `round(x / s) + zp`, tail `zp + round(x / s)`, clamped.
/// Returns `(scale, zero_point)`.
pub fn quantize_asymmetric(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    debug_assert_eq!(x.len(), q.len());
    let Some((scale, zp, inv)) = asymmetric_params(x) else {
        q.fill(0);
        return (1.0, 0);
    };
    let split = vector_part(x.len());
    for (i, (qi, &v)) in q.iter_mut().zip(x).enumerate() {
        *qi = q_asymmetric(v, inv, zp, i < split) as i8;
    }
    (scale, zp)
}

/// Minimum and maximum, lane-wise over 16 lanes and then reduced in lane order, so it
/// vectorizes; a NaN never replaces a lane's value (as `x < m` is false), so every
/// path returns the same pair for any input.
pub(crate) fn min_max(x: &[f32]) -> (f32, f32) {
    let Some(&first) = x.first() else {
        return (0.0, 0.0);
    };
    let mut mins = [first; 16];
    let mut maxs = [first; 16];
    let whole = x.len() & !15;
    #[cfg(target_arch = "x86_64")]
    {
        if super::cpu::features().avx512f {
            // SAFETY: AVX-512F present.
            unsafe { lanes_avx512(&x[..whole], &mut mins, &mut maxs) };
        } else {
            lanes(&x[..whole], &mut mins, &mut maxs);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    lanes(&x[..whole], &mut mins, &mut maxs);
    let rest = &x[whole..];
    let (mut min, mut max) = (first, first);
    for &v in mins.iter().chain(rest) {
        if v < min {
            min = v;
        }
    }
    for &v in maxs.iter().chain(rest) {
        if v > max {
            max = v;
        }
    }
    (min, max)
}

#[inline(always)]
fn lanes(x: &[f32], mins: &mut [f32; 16], maxs: &mut [f32; 16]) {
    for c in x.chunks_exact(16) {
        for l in 0..16 {
            if c[l] < mins[l] {
                mins[l] = c[l];
            }
            if c[l] > maxs[l] {
                maxs[l] = c[l];
            }
        }
    }
}

/// `vminps(x, m)` returns `m` when either is NaN or they are equal: the same rule as
/// [`lanes`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn lanes_avx512(x: &[f32], mins: &mut [f32; 16], maxs: &mut [f32; 16]) {
    use std::arch::x86_64::*;
    // SAFETY: the arrays hold 16 floats; every chunk holds 16 floats.
    unsafe {
        let mut mn = _mm512_loadu_ps(mins.as_ptr());
        let mut mx = _mm512_loadu_ps(maxs.as_ptr());
        for c in x.chunks_exact(16) {
            let v = _mm512_loadu_ps(c.as_ptr());
            mn = _mm512_min_ps(v, mn);
            mx = _mm512_max_ps(v, mx);
        }
        _mm512_storeu_ps(mins.as_mut_ptr(), mn);
        _mm512_storeu_ps(maxs.as_mut_ptr(), mx);
    }
}

/// `min(max(v, lo), hi)` as C++ `std::min`/`std::max` evaluate it.
#[inline(always)]
pub(crate) fn clamp_act(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v < lo { lo } else { v };
    if hi < v { hi } else { v }
}

/// Hybrid FULLY_CONNECTED: `rows` input rows of `depth` floats, weights `[units, depth]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HybridFcParams {
    pub rows: usize,
    pub depth: usize,
    pub units: usize,
    /// Quantize each row asymmetrically (`asymmetric_quantize_inputs`).
    pub asymmetric: bool,
    pub act_min: f32,
    pub act_max: f32,
}

impl HybridFcParams {
    /// Checks the buffer sizes a caller is about to pass.
    pub fn check(
        &self,
        input_len: usize,
        weights_len: usize,
        scales_len: usize,
        bias_len: Option<usize>,
        output_len: usize,
    ) -> Result<()> {
        if self.depth == 0 {
            return Err(EngineError::invalid("hybrid FC: depth 0"));
        }
        check_act(self.act_min, self.act_max)?;
        let sizes = [
            ("input", input_len, self.rows.checked_mul(self.depth)),
            ("weights", weights_len, self.units.checked_mul(self.depth)),
            ("weight scales", scales_len, Some(self.units)),
            ("output", output_len, self.rows.checked_mul(self.units)),
        ];
        check_sizes("hybrid FC", &sizes)?;
        if let Some(b) = bias_len
            && b != self.units
        {
            return Err(EngineError::invalid(format!(
                "hybrid FC: bias has {b} values for {} units",
                self.units
            )));
        }
        Ok(())
    }
}

/// Hybrid CONV_2D. `per_channel` selects TFLite's per-channel path (asymmetric input
/// quantization per batch); otherwise inputs are quantized symmetrically per batch and
/// `weight_scales` holds the one per-tensor scale repeated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HybridConvParams {
    pub conv: ConvParams,
    pub per_channel: bool,
}

fn check_act(lo: f32, hi: f32) -> Result<()> {
    if lo.is_nan() || hi.is_nan() || lo > hi {
        return Err(EngineError::invalid("bad activation range"));
    }
    Ok(())
}

fn check_sizes(what: &str, sizes: &[(&str, usize, Option<usize>)]) -> Result<()> {
    for &(name, got, want) in sizes {
        if Some(got) != want {
            return Err(EngineError::invalid(format!(
                "{what}: {name} has {got} elements, expected {}",
                want.map_or("more than usize".to_string(), |w| w.to_string())
            )));
        }
    }
    Ok(())
}

pub(crate) fn check_conv(
    p: &HybridConvParams,
    input_len: usize,
    filter_len: usize,
    scales_len: usize,
    bias_len: Option<usize>,
    output_len: usize,
) -> Result<()> {
    p.conv.check(input_len, filter_len, bias_len, output_len)?;
    check_sizes(
        "hybrid conv2d",
        &[("weight scales", scales_len, Some(p.conv.geom.out_c))],
    )
}

pub(crate) fn check_depthwise(
    p: &DepthwiseParams,
    input_len: usize,
    filter_len: usize,
    scales_len: usize,
    bias_len: Option<usize>,
    output_len: usize,
) -> Result<()> {
    p.check(input_len, filter_len, bias_len, output_len)?;
    check_sizes(
        "hybrid depthwise",
        &[("weight scales", scales_len, Some(p.geom.out_c))],
    )
}

/// Reference hybrid FULLY_CONNECTED (TFLite `EvalHybridDense` with the portable
/// `MatrixBatchVectorMultiplyAccumulate`). `weight_scales` has one entry per unit (the
/// per-tensor scale repeated, or the per-channel scales).
pub fn fc_reference(
    p: &HybridFcParams,
    input: &[f32],
    weights: &[i8],
    weight_scales: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    let (rows, depth, units) = (p.rows, p.depth, p.units);
    // Output starts as the bias.
    for r in 0..rows {
        let o = &mut output[r * units..(r + 1) * units];
        match bias {
            Some(b) => o.copy_from_slice(b),
            None => o.fill(0.0),
        }
    }
    // TFLite skips the products entirely when the whole input is zero.
    if input.iter().all(|&v| v == 0.0) {
        for o in output.iter_mut() {
            *o = clamp_act(*o, p.act_min, p.act_max);
        }
        return;
    }
    let mut q = vec![0i8; rows * depth];
    let mut scales = vec![0f32; rows];
    let mut offsets = vec![0i32; rows];
    for r in 0..rows {
        let x = &input[r * depth..(r + 1) * depth];
        let qr = &mut q[r * depth..(r + 1) * depth];
        if p.asymmetric {
            (scales[r], offsets[r]) = quantize_asymmetric(x, qr);
        } else {
            scales[r] = quantize_symmetric(x, qr);
        }
    }
    let row_sums: Vec<i32> = if p.asymmetric {
        (0..units)
            .map(|u| {
                weights[u * depth..(u + 1) * depth]
                    .iter()
                    .fold(0i32, |s, &w| s.wrapping_add(i32::from(w)))
            })
            .collect()
    } else {
        Vec::new()
    };
    for r in 0..rows {
        let qr = &q[r * depth..(r + 1) * depth];
        for u in 0..units {
            let w = &weights[u * depth..(u + 1) * depth];
            let mut dot = 0i32;
            for (&a, &b) in w.iter().zip(qr) {
                dot = dot.wrapping_add(i32::from(a) * i32::from(b));
            }
            if p.asymmetric {
                dot = dot.wrapping_sub(row_sums[u].wrapping_mul(offsets[r]));
            }
            // Per-tensor: TFLite folds the weight scale into the batch factor; per-channel
            // it multiplies the two per row. Either way one f32 product.
            let scale = scales[r] * weight_scales[u];
            output[r * units + u] += dot as f32 * scale;
        }
    }
    for o in output.iter_mut() {
        *o = clamp_act(*o, p.act_min, p.act_max);
    }
}

/// Quantizes every batch image of a conv input: `(q, scales, zero_points)`.
fn quantize_batches(
    input: &[f32],
    batch: usize,
    asymmetric: bool,
) -> (Vec<i8>, Vec<f32>, Vec<i32>) {
    let size = input.len() / batch.max(1);
    let mut q = vec![0i8; input.len()];
    let mut scales = vec![1f32; batch];
    let mut zps = vec![0i32; batch];
    for b in 0..batch {
        let x = &input[b * size..(b + 1) * size];
        let qb = &mut q[b * size..(b + 1) * size];
        if asymmetric {
            (scales[b], zps[b]) = quantize_asymmetric(x, qb);
        } else {
            scales[b] = quantize_symmetric(x, qb);
        }
    }
    (q, scales, zps)
}

/// Reference hybrid CONV_2D. Filter `[out_c, k_h, k_w, in_c]` int8 (OHWI).
pub fn conv_reference(
    hp: &HybridConvParams,
    input: &[f32],
    filter: &[i8],
    weight_scales: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    let p = &hp.conv;
    let (q, in_scales, zps) = quantize_batches(input, p.geom.batch, hp.per_channel);
    for b in 0..p.geom.batch {
        for oy in 0..p.geom.out_h {
            for ox in 0..p.geom.out_w {
                let y0 = (oy * p.geom.stride_h) as isize - p.geom.pad_top as isize;
                let x0 = (ox * p.geom.stride_w) as isize - p.geom.pad_left as isize;
                for oc in 0..p.geom.out_c {
                    let mut acc = 0i32;
                    for ky in 0..p.geom.k_h {
                        let iy = y0 + (ky * p.geom.dilation_h) as isize;
                        if iy < 0 || iy >= p.geom.in_h as isize {
                            continue;
                        }
                        for kx in 0..p.geom.k_w {
                            let ix = x0 + (kx * p.geom.dilation_w) as isize;
                            if ix < 0 || ix >= p.geom.in_w as isize {
                                continue;
                            }
                            let ibase = ((b * p.geom.in_h + iy as usize) * p.geom.in_w
                                + ix as usize)
                                * p.geom.in_c;
                            let fbase = ((oc * p.geom.k_h + ky) * p.geom.k_w + kx) * p.geom.in_c;
                            for ic in 0..p.geom.in_c {
                                let iv = i32::from(q[ibase + ic]) - zps[b];
                                let fv = i32::from(filter[fbase + ic]);
                                acc = acc.wrapping_add(fv * iv);
                            }
                        }
                    }
                    let mut v = if hp.per_channel {
                        // reference_ops::HybridConvPerChannel: acc * scale_w * scale_in.
                        acc as f32 * weight_scales[oc] * in_scales[b]
                    } else {
                        // optimized_ops::HybridConv (TFLite's only per-tensor hybrid
                        // conv): batch factor = scale_in * scale_w, then bias.
                        acc as f32 * (in_scales[b] * weight_scales[oc])
                    };
                    if let Some(bias) = bias {
                        v += bias[oc];
                    }
                    let o = ((b * p.geom.out_h + oy) * p.geom.out_w + ox) * p.geom.out_c + oc;
                    output[o] = clamp_act(v, p.act_min, p.act_max);
                }
            }
        }
    }
}

/// Reference hybrid DEPTHWISE_CONV_2D (TFLite `DepthwiseConvHybridPerChannel`):
/// asymmetric per-batch input quantization. Filter `[1, k_h, k_w, out_c]` int8.
pub fn depthwise_reference(
    p: &DepthwiseParams,
    input: &[f32],
    filter: &[i8],
    weight_scales: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    let g = &p.geom;
    let (q, in_scales, zps) = quantize_batches(input, g.batch, true);
    let out_c = g.out_c;
    let dm = g.depth_multiplier;
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let y0 = (oy * g.stride_h) as isize - g.pad_top as isize;
                let x0 = (ox * g.stride_w) as isize - g.pad_left as isize;
                for ic in 0..g.in_c {
                    for m in 0..dm {
                        let oc = m + ic * dm;
                        let mut acc = 0i32;
                        for ky in 0..g.k_h {
                            let iy = y0 + (ky * g.dilation_h) as isize;
                            for kx in 0..g.k_w {
                                let ix = x0 + (kx * g.dilation_w) as isize;
                                if iy < 0
                                    || iy >= g.in_h as isize
                                    || ix < 0
                                    || ix >= g.in_w as isize
                                {
                                    continue;
                                }
                                let iv = i32::from(
                                    q[((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c
                                        + ic],
                                ) - zps[b];
                                let fv = i32::from(filter[(ky * g.k_w + kx) * out_c + oc]);
                                acc = acc.wrapping_add(fv * iv);
                            }
                        }
                        let mut v = acc as f32;
                        v *= weight_scales[oc] * in_scales[b];
                        if let Some(bias) = bias {
                            v += bias[oc];
                        }
                        let o = ((b * g.out_h + oy) * g.out_w + ox) * out_c + oc;
                        output[o] = clamp_act(v, p.act_min, p.act_max);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! Integer CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (spec §2–4, §9, §10).
//!
//! Three numeric schemes share one set of kernels:
//! - [`QScheme::Uint8`]: uint8 activations and weights, both with zero points;
//! - [`QScheme::Int8`]: int8 activations (zero point), int8 symmetric weights;
//! - [`QScheme::Int16x8`]: int16 activations (zero point 0), int8 weights, 64-bit sums.
//!
//! The `*_reference` functions mirror TFLite's reference loops (the test oracle). The
//! `Packed*` kernels pack weights once and run SIMD GEMM / depthwise paths; integer sums
//! are exact, so they produce the same accumulators and hence the same bytes.

mod dw16;
mod dw8;
mod fast;
mod gemm;
pub(crate) mod requant;
#[cfg(test)]
mod tests;
mod wide;

pub use fast::{PackedQConv, PackedQDepthwise, PackedQFc};

use crate::error::{EngineError, Result};
use crate::quant::fixed_point::{Multiplier, Rounding, mbqm, mbqm64};

/// Which integer scheme an op uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QScheme {
    /// Legacy per-tensor uint8 (weights with a zero point).
    Uint8,
    /// Full-integer int8 (per-channel symmetric weights).
    Int8,
    /// int16 activations, int8 weights, int64 accumulators.
    Int16x8,
}

impl QScheme {
    /// Whether accumulators are 64-bit (int16x8) rather than wrapping int32.
    pub fn wide(self) -> bool {
        self == QScheme::Int16x8
    }
}

/// An activation or weight element type of the integer kernels.
pub trait QElem: Copy + Send + Sync + 'static {
    /// Whether the type is signed (selects the SIMD narrowing instruction).
    const SIGNED: bool;
    fn to_i32(self) -> i32;
    /// From a value already clamped to the type's range.
    fn from_i32(v: i32) -> Self;
}

impl QElem for u8 {
    const SIGNED: bool = false;
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self as i32
    }
    #[inline(always)]
    fn from_i32(v: i32) -> Self {
        v as u8
    }
}

impl QElem for i8 {
    const SIGNED: bool = true;
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self as i32
    }
    #[inline(always)]
    fn from_i32(v: i32) -> Self {
        v as i8
    }
}

impl QElem for i16 {
    const SIGNED: bool = true;
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self as i32
    }
    #[inline(always)]
    fn from_i32(v: i32) -> Self {
        v as i16
    }
}

/// Geometry of a CONV_2D or DEPTHWISE_CONV_2D (NHWC input; conv filter OHWI,
/// depthwise filter `[1, k_h, k_w, out_c]`). Padding taps are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QConvGeom {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    /// Depthwise only: `out_c = in_c * depth_multiplier` (1 for conv).
    pub depth_multiplier: usize,
}

impl QConvGeom {
    pub fn input_len(&self) -> usize {
        self.batch * self.in_h * self.in_w * self.in_c
    }
    pub fn output_len(&self) -> usize {
        self.batch * self.out_h * self.out_w * self.out_c
    }
    pub fn conv_filter_len(&self) -> usize {
        self.out_c * self.k_h * self.k_w * self.in_c
    }
    pub fn depthwise_filter_len(&self) -> usize {
        self.k_h * self.k_w * self.out_c
    }

    /// Rejects zero strides/dilations/kernels and inconsistent depthwise depths.
    pub fn check(&self, depthwise: bool) -> Result<()> {
        if self.stride_h == 0 || self.stride_w == 0 || self.dilation_h == 0 {
            return Err(EngineError::invalid("integer conv: stride or dilation 0"));
        }
        if self.dilation_w == 0 || self.k_h == 0 || self.k_w == 0 || self.in_c == 0 {
            return Err(EngineError::invalid(
                "integer conv: empty kernel, dilation 0 or input depth 0",
            ));
        }
        if depthwise && self.out_c != self.in_c * self.depth_multiplier {
            return Err(EngineError::invalid(format!(
                "depthwise: {} output channels for {} inputs × multiplier {}",
                self.out_c, self.in_c, self.depth_multiplier
            )));
        }
        Ok(())
    }
}

/// Geometry of a FULLY_CONNECTED: `rows` input rows of `depth`, weights `[units, depth]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QFcGeom {
    pub rows: usize,
    pub depth: usize,
    pub units: usize,
}

/// Offsets and requantization of one op, prepared once.
#[derive(Debug, Clone, PartialEq)]
pub struct QParams {
    pub scheme: QScheme,
    /// Input zero point (0 for int16x8).
    pub in_zp: i32,
    /// Weight zero point (only uint8 weights have one).
    pub w_zp: i32,
    /// Output zero point (0 for int16x8).
    pub out_zp: i32,
    /// One multiplier per output channel (per-tensor ops repeat the single one).
    pub mult: Vec<Multiplier>,
    /// Clamp range of the fused activation, in output integers.
    pub act_min: i32,
    pub act_max: i32,
    pub rounding: Rounding,
}

impl QParams {
    /// Checks the parameters fit `out_c` channels.
    pub fn check(&self, out_c: usize) -> Result<()> {
        if self.mult.len() != out_c {
            return Err(EngineError::invalid(format!(
                "{} output multipliers for {out_c} channels",
                self.mult.len()
            )));
        }
        if self.act_min > self.act_max {
            return Err(EngineError::invalid("activation min > max"));
        }
        if let Some(m) = self
            .mult
            .iter()
            .find(|m| m.m < 0 || !(-31..=30).contains(&m.shift))
        {
            return Err(EngineError::unsupported(format!(
                "output multiplier {m:?} out of range"
            )));
        }
        if self.scheme.wide() && self.mult.iter().any(|m| m.shift > 7) {
            return Err(EngineError::unsupported(
                "int16x8 output multiplier above 2^7 (MBQM64 contract)",
            ));
        }
        Ok(())
    }

    /// Bias add, requantization, output offset and clamp of one accumulator: the
    /// reference sequence. `acc` holds the exact sum; 8-bit schemes wrap it to int32.
    #[inline(always)]
    pub fn finish(&self, acc: i64, bias: i64, c: usize) -> i32 {
        let v = if self.scheme.wide() {
            mbqm64(acc.wrapping_add(bias), self.mult[c])
        } else {
            let a = (acc as i32).wrapping_add(bias as i32);
            mbqm(a, self.mult[c], self.rounding).wrapping_add(self.out_zp)
        };
        v.clamp(self.act_min, self.act_max)
    }

    /// The weight offset the uint8 reference adds (`-w_zp`).
    fn w_offset(&self) -> i32 {
        -self.w_zp
    }
}

fn bias_at(bias: Option<&[i64]>, c: usize) -> i64 {
    bias.map_or(0, |b| b[c])
}

/// Checks slice lengths of a conv/depthwise call (kernels index without checks after).
fn check_lens(what: &str, got: &[(usize, usize)]) -> Result<()> {
    for (i, &(have, want)) in got.iter().enumerate() {
        if have != want {
            return Err(EngineError::invalid(format!(
                "{what}: buffer {i} has {have} elements, the shape needs {want}"
            )));
        }
    }
    Ok(())
}

/// Reference CONV_2D (TFLite `reference_integer_ops::ConvPerChannel`, uint8
/// `reference_ops::Conv`, int16 overload): out-of-image taps are skipped.
pub fn conv_reference<T: QElem, W: QElem>(
    g: &QConvGeom,
    q: &QParams,
    input: &[T],
    filter: &[W],
    bias: Option<&[i64]>,
    out: &mut [T],
) -> Result<()> {
    g.check(false)?;
    q.check(g.out_c)?;
    check_lens(
        "conv",
        &[
            (input.len(), g.input_len()),
            (filter.len(), g.conv_filter_len()),
            (out.len(), g.output_len()),
            (bias.map_or(g.out_c, <[i64]>::len), g.out_c),
        ],
    )?;
    let (io, wo) = (-q.in_zp, q.w_offset());
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                for oc in 0..g.out_c {
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
                            let ib = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c;
                            let fb = ((oc * g.k_h + ky) * g.k_w + kx) * g.in_c;
                            for ic in 0..g.in_c {
                                let x = input[ib + ic].to_i32() + io;
                                let w = filter[fb + ic].to_i32() + wo;
                                acc += x as i64 * w as i64;
                            }
                        }
                    }
                    let o = ((b * g.out_h + oy) * g.out_w + ox) * g.out_c + oc;
                    out[o] = T::from_i32(q.finish(acc, bias_at(bias, oc), oc));
                }
            }
        }
    }
    Ok(())
}

/// Reference DEPTHWISE_CONV_2D: output channel `ic * mult + k` reads input channel `ic`.
pub fn depthwise_reference<T: QElem, W: QElem>(
    g: &QConvGeom,
    q: &QParams,
    input: &[T],
    filter: &[W],
    bias: Option<&[i64]>,
    out: &mut [T],
) -> Result<()> {
    g.check(true)?;
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

/// Reference FULLY_CONNECTED: `out[r, u] = Σ_d (w[u, d] + w_off) · (x[r, d] − in_zp)`.
pub fn fc_reference<T: QElem, W: QElem>(
    g: &QFcGeom,
    q: &QParams,
    input: &[T],
    weights: &[W],
    bias: Option<&[i64]>,
    out: &mut [T],
) -> Result<()> {
    q.check(g.units)?;
    check_lens(
        "fully_connected",
        &[
            (input.len(), g.rows * g.depth),
            (weights.len(), g.units * g.depth),
            (out.len(), g.rows * g.units),
            (bias.map_or(g.units, <[i64]>::len), g.units),
        ],
    )?;
    let (io, wo) = (-q.in_zp, q.w_offset());
    for r in 0..g.rows {
        for u in 0..g.units {
            let mut acc: i64 = 0;
            for d in 0..g.depth {
                let x = input[r * g.depth + d].to_i32() + io;
                let w = weights[u * g.depth + d].to_i32() + wo;
                acc += x as i64 * w as i64;
            }
            out[r * g.units + u] = T::from_i32(q.finish(acc, bias_at(bias, u), u));
        }
    }
    Ok(())
}

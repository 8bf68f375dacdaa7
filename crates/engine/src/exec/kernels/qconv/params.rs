//! What the integer conv, depthwise and FC kernels share: the numeric scheme, the
//! element types, the per-op offsets and multipliers, and the size checks.

use crate::error::{EngineError, Result};
use crate::exec::kernels::geometry::Geometry;
use crate::quant::fixed_point::{Multiplier, Rounding, float_requant, mbqm, mbqm64};

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

/// Rejects zero strides/dilations/kernels and inconsistent depthwise depths.
pub fn check_geometry(g: &Geometry, depthwise: bool) -> Result<()> {
    if g.stride_h == 0 || g.stride_w == 0 || g.dilation_h == 0 {
        return Err(EngineError::invalid("integer conv: stride or dilation 0"));
    }
    if g.dilation_w == 0 || g.k_h == 0 || g.k_w == 0 || g.in_c == 0 {
        return Err(EngineError::invalid(
            "integer conv: empty kernel, dilation 0 or input depth 0",
        ));
    }
    if depthwise && g.out_c != g.in_c * g.depth_multiplier {
        return Err(EngineError::invalid(format!(
            "depthwise: {} output channels for {} inputs × multiplier {}",
            g.out_c, g.in_c, g.depth_multiplier
        )));
    }
    Ok(())
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
    /// FULLY_CONNECTED only: each channel's `in_s·w_s/out_s` in f64. LiteRT's
    /// reference FC requantizes with it ([`float_requant`]) instead of the multiplier.
    pub float_requant: Option<Vec<f64>>,
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
        if let Some(r) = &self.float_requant
            && (r.len() != out_c || r.iter().any(|v| !(v.is_finite() && *v > 0.0)))
        {
            return Err(EngineError::invalid(format!(
                "{} FC output scales for {out_c} channels, each positive and finite",
                r.len()
            )));
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
            let a = acc.wrapping_add(bias);
            match &self.float_requant {
                Some(r) => float_requant(a, r[c]),
                None => mbqm64(a, self.mult[c]),
            }
        } else {
            let a = (acc as i32).wrapping_add(bias as i32);
            match &self.float_requant {
                Some(r) => float_requant(a as i64, r[c]),
                None => mbqm(a, self.mult[c], self.rounding),
            }
            .wrapping_add(self.out_zp)
        };
        v.clamp(self.act_min, self.act_max)
    }

    /// The weight offset the uint8 reference adds (`-w_zp`).
    pub(super) fn w_offset(&self) -> i32 {
        -self.w_zp
    }
}

pub(super) fn bias_at(bias: Option<&[i64]>, c: usize) -> i64 {
    bias.map_or(0, |b| b[c])
}

/// Checks slice lengths of a conv/depthwise call (kernels index without checks after).
pub(super) fn check_lens(what: &str, got: &[(usize, usize)]) -> Result<()> {
    for (i, &(have, want)) in got.iter().enumerate() {
        if have != want {
            return Err(EngineError::invalid(format!(
                "{what}: buffer {i} has {have} elements, the shape needs {want}"
            )));
        }
    }
    Ok(())
}

pub(super) fn check_bias(bias: Option<&[i64]>, n: usize) -> Result<()> {
    match bias {
        Some(b) if b.len() != n => Err(EngineError::invalid(format!(
            "bias has {} values for {n} channels",
            b.len()
        ))),
        _ => Ok(()),
    }
}

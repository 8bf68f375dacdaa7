//! What preparing an op produces, and the checks every op family shares.

use super::kernels::Parallelism;
use super::kernels::geometry::{Geometry, WindowAttrs};
use super::tensors::Tensors;
use crate::error::{EngineError, Result};
use crate::ir::{
    Activation, Conv2DOptions, DType, DepthwiseConv2DOptions, Graph, Op, Pool2DOptions, TensorId,
};

/// A prepared op: its kernel runs on the arena with no further checks.
pub(crate) trait OpKernel: Send {
    fn run(
        &self,
        io: &Tensors<'_>,
        inputs: &[Option<TensorId>],
        outputs: &[TensorId],
        par: Parallelism,
    );

    /// A short name of the kernel variant when it is not the op's usual one (reports
    /// show it beside the op's time).
    fn variant(&self) -> Option<String> {
        None
    }
}

/// The result of preparing one op.
pub(crate) struct Prepared {
    pub kernel: Box<dyn OpKernel>,
    /// Input slots whose constants the kernel copied (packed weights, biases): they need
    /// no place in the arena.
    pub packed_inputs: Vec<usize>,
}

impl Prepared {
    pub fn packing(kernel: impl OpKernel + 'static, packed_inputs: Vec<usize>) -> Self {
        Prepared {
            kernel: Box::new(kernel),
            packed_inputs,
        }
    }
}

pub(crate) fn shape_of(g: &Graph, t: TensorId) -> &[usize] {
    &g.tensors[t].shape
}

pub(crate) fn require_input(op: &Op, k: usize) -> Result<TensorId> {
    op.input(k)
        .ok_or_else(|| EngineError::invalid(format!("missing required input {k}")))
}

pub(crate) fn require_output(op: &Op) -> Result<TensorId> {
    op.outputs
        .first()
        .copied()
        .ok_or_else(|| EngineError::invalid("operator has no output"))
}

pub(crate) fn require_dtype(g: &Graph, t: TensorId, want: DType) -> Result<()> {
    let have = g.tensors[t].dtype;
    if have != want {
        let hint = if matches!(have, DType::U8 | DType::I8 | DType::I16) && want == DType::F32 {
            " (no integer kernel takes this op with these tensors; `quantfarm convert --to float32` dequantizes the model)"
        } else {
            ""
        };
        return Err(EngineError::unsupported(format!(
            "tensor '{}' is {have}, this kernel needs {want}{hint}",
            g.tensors[t].name
        )));
    }
    Ok(())
}

pub(crate) fn const_f32(g: &Graph, t: TensorId, what: &str) -> Result<Vec<f32>> {
    g.tensors[t].data_f32().ok_or_else(|| {
        EngineError::unsupported(format!(
            "{what} '{}' must be a float32 constant (it is {}{})",
            g.tensors[t].name,
            g.tensors[t].dtype,
            if g.tensors[t].is_constant() {
                ""
            } else {
                ", computed at run time"
            }
        ))
    })
}

pub(crate) fn const_ints(g: &Graph, t: TensorId, what: &str) -> Result<Vec<i64>> {
    g.tensors[t].data_i64().ok_or_else(|| {
        EngineError::unsupported(format!(
            "{what} '{}' must be an int32/int64 constant",
            g.tensors[t].name
        ))
    })
}

pub(crate) fn act_range(a: Activation) -> Result<(f32, f32)> {
    a.float_range()
        .ok_or_else(|| EngineError::unsupported(format!("fused activation {a:?}")))
}

pub(crate) fn expect_shape(g: &Graph, t: TensorId, want: &[usize]) -> Result<()> {
    if shape_of(g, t) != want {
        return Err(EngineError::invalid(format!(
            "tensor '{}' has shape {:?}, the op computes {:?}",
            g.tensors[t].name,
            shape_of(g, t),
            want
        )));
    }
    Ok(())
}

pub(crate) fn rank4(g: &Graph, t: TensorId) -> Result<[usize; 4]> {
    let s = shape_of(g, t);
    if s.len() != 4 {
        return Err(EngineError::invalid(format!(
            "tensor '{}' must be 4-D (NHWC), has shape {s:?}",
            g.tensors[t].name
        )));
    }
    Ok([s[0], s[1], s[2], s[3]])
}

pub(crate) fn optional_bias(g: &Graph, op: &Op, units: usize) -> Result<Option<Vec<f32>>> {
    match op.input(2) {
        None => Ok(None),
        Some(b) => {
            let v = const_f32(g, b, "bias")?;
            if v.len() != units {
                return Err(EngineError::invalid(format!(
                    "bias has {} values for {units} channels",
                    v.len()
                )));
            }
            Ok(Some(v))
        }
    }
}

/// `axis` (negative counts from the end) as an index into a shape of `rank`
/// dimensions; a rank-0 tensor has no axis.
pub(crate) fn normalize_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(EngineError::invalid(format!(
            "axis {axis} out of range for rank {rank}"
        )));
    }
    Ok(a as usize)
}

pub(crate) fn same_elements(g: &Graph, a: TensorId, b: TensorId) -> Result<()> {
    if g.tensors[a].num_elements() != g.tensors[b].num_elements() {
        return Err(EngineError::invalid(format!(
            "'{}' {:?} and '{}' {:?} differ in element count",
            g.tensors[a].name, g.tensors[a].shape, g.tensors[b].name, g.tensors[b].shape
        )));
    }
    Ok(())
}

/// RESIZE_BILINEAR's options: TFLite refuses `half_pixel_centers` with
/// `align_corners` (the source coordinates would run past the image when shrinking).
pub(crate) fn check_resize_flags(align_corners: bool, half_pixel_centers: bool) -> Result<()> {
    if align_corners && half_pixel_centers {
        return Err(EngineError::invalid(
            "RESIZE_BILINEAR with both align_corners and half_pixel_centers",
        ));
    }
    Ok(())
}

/// The geometry of a CONV_2D or DEPTHWISE_CONV_2D, checked against its tensors:
/// NHWC input `x`, filter `w` (OHWI, or `[1, kh, kw, C·M]` for depthwise), output `y`.
pub(crate) fn conv_geometry(
    g: &Graph,
    (x, w, y): (TensorId, TensorId, TensorId),
    depthwise: bool,
    a: WindowAttrs,
) -> Result<Geometry> {
    let input = rank4(g, x)?;
    let c = input[3];
    let [f0, kh, kw, f3] = rank4(g, w)?;
    let geom = if depthwise {
        if f0 != 1 || c == 0 || f3 % c != 0 {
            return Err(EngineError::invalid(format!(
                "depthwise filter shape {:?} does not fit input depth {c}",
                shape_of(g, w)
            )));
        }
        Geometry::depthwise(input, [kh, kw], f3, a)?
    } else {
        if f3 != c {
            return Err(EngineError::unsupported(format!(
                "filter depth {f3} differs from input depth {c} (grouped convolution)"
            )));
        }
        Geometry::conv(input, [kh, kw], f0, a)?
    };
    expect_shape(g, y, &geom.output_shape())?;
    Ok(geom)
}

/// The geometry of an AVERAGE_POOL_2D or MAX_POOL_2D, checked against its NHWC input
/// `x` and output `y`.
pub(crate) fn pool_geometry(
    g: &Graph,
    x: TensorId,
    y: TensorId,
    o: &Pool2DOptions,
) -> Result<Geometry> {
    let geom = Geometry::pool(
        rank4(g, x)?,
        [o.filter_h, o.filter_w],
        o.padding,
        o.stride_h,
        o.stride_w,
    )?;
    expect_shape(g, y, &geom.output_shape())?;
    Ok(geom)
}

/// The window of a CONV_2D's options.
pub(crate) fn conv_attrs(o: &Conv2DOptions) -> WindowAttrs {
    WindowAttrs {
        padding: o.padding,
        stride_h: o.stride_h,
        stride_w: o.stride_w,
        dilation_h: o.dilation_h,
        dilation_w: o.dilation_w,
    }
}

/// The window of a DEPTHWISE_CONV_2D's options (the multiplier comes from the filter's
/// shape, not from the `depth_multiplier` option).
pub(crate) fn depthwise_attrs(o: &DepthwiseConv2DOptions) -> WindowAttrs {
    WindowAttrs {
        padding: o.padding,
        stride_h: o.stride_h,
        stride_w: o.stride_w,
        dilation_h: o.dilation_h,
        dilation_w: o.dilation_w,
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_axis;

    #[test]
    fn axes_index_the_shape() {
        assert_eq!(normalize_axis(-1, 4).unwrap(), 3);
        assert_eq!(normalize_axis(0, 1).unwrap(), 0);
        assert!(normalize_axis(4, 4).is_err());
        assert!(normalize_axis(-5, 4).is_err());
        // A scalar has no axis 0 (kernels would index its empty shape).
        assert!(normalize_axis(0, 0).is_err());
        assert!(normalize_axis(-1, 0).is_err());
    }
}

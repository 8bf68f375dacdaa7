//! The float32 family of op kernels (plus the type-generic shape and index ops):
//! preparation checks every shape once, `run` only computes.

use super::kernels::{
    self, KernelChoice, Parallelism,
    conv::{ConvParams, PackedConv2D},
    depthwise::{DepthwiseParams, PackedDepthwise},
    elementwise::BinaryOp,
    fully_connected::{FcParams, PackedFullyConnected},
    pool::PoolParams,
    shape_ops::SlicePlan,
};
use super::parallel;
use super::prepare::*;
use super::tensors::{Tensors, with_width};
use crate::error::{EngineError, Result};
use crate::ir::{Activation, DType, Graph, Op, OpKind, Quantization, TensorId};

/// Float32 (and type-generic) kernels with their prepared parameters.
pub(crate) enum FloatKernel {
    ConvRef {
        p: ConvParams,
        filter: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    ConvFast(PackedConv2D),
    DepthwiseRef {
        p: DepthwiseParams,
        filter: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    DepthwiseFast(PackedDepthwise),
    FcRef {
        p: FcParams,
        weights: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    FcFast(PackedFullyConnected),
    AvgPool(PoolParams),
    MaxPool(PoolParams),
    BinaryF32 {
        op: BinaryOp,
        min: f32,
        max: f32,
    },
    BinaryI32(BinaryOp),
    Unary(fn(&[f32], &mut [f32])),
    /// RESHAPE, SQUEEZE: same bytes, new shape.
    Copy,
    Concat {
        axis: usize,
    },
    Softmax {
        inner: usize,
        beta: f32,
    },
    Mean {
        axes: Vec<usize>,
    },
    ResizeBilinear {
        align_corners: bool,
        half_pixel_centers: bool,
    },
    Pad {
        paddings: Vec<(usize, usize)>,
        /// The pad value's bytes (zero point for quantized tensors).
        value: u64,
    },
    StridedSlice(SlicePlan),
    Transpose(Vec<usize>),
    Gather {
        axis: usize,
    },
    ArgMax {
        axis: usize,
    },
    Quantize {
        scale: f32,
        zero_point: i32,
    },
    Dequantize {
        quant: Quantization,
    },
    Cast,
}

impl OpKernel for FloatKernel {
    fn run(
        &self,
        io: &Tensors<'_>,
        inputs: &[Option<TensorId>],
        outputs: &[TensorId],
        par: Parallelism,
    ) {
        let inp = |k: usize| inputs[k].expect("required inputs were checked");
        let out = outputs[0];
        match self {
            FloatKernel::ConvRef { p, filter, bias } => kernels::conv::conv2d_reference(
                p,
                io.input(inp(0)),
                filter,
                bias.as_deref(),
                io.output(out),
            ),
            FloatKernel::ConvFast(k) => k.run(io.input(inp(0)), io.output(out), par),
            FloatKernel::DepthwiseRef { p, filter, bias } => {
                kernels::depthwise::depthwise_reference(
                    p,
                    io.input(inp(0)),
                    filter,
                    bias.as_deref(),
                    io.output(out),
                )
            }
            FloatKernel::DepthwiseFast(k) => k.run(io.input(inp(0)), io.output(out), par),
            FloatKernel::FcRef { p, weights, bias } => {
                kernels::fully_connected::fully_connected_reference(
                    p,
                    io.input(inp(0)),
                    weights,
                    bias.as_deref(),
                    io.output(out),
                )
            }
            FloatKernel::FcFast(k) => k.run(io.input(inp(0)), io.output(out), par),
            FloatKernel::AvgPool(p) => {
                kernels::pool::average_pool(p, io.input(inp(0)), io.output(out))
            }
            FloatKernel::MaxPool(p) => kernels::pool::max_pool(p, io.input(inp(0)), io.output(out)),
            FloatKernel::BinaryF32 { op, min, max } => {
                let (a, b, y) = (io.input::<f32>(inp(0)), io.input::<f32>(inp(1)), out);
                let (sa, sb, sy) = (
                    &io.slot(inp(0)).shape,
                    &io.slot(inp(1)).shape,
                    &io.slot(y).shape,
                );
                let run = |a: &[f32],
                           sa: &[usize],
                           b: &[f32],
                           sb: &[usize],
                           y: &mut [f32],
                           sy: &[usize]| {
                    kernels::elementwise::binary_f32(*op, a, sa, b, sb, y, sy, *min, *max)
                };
                if sa == sy && sb == sy {
                    // Same shapes: one flat loop, split into contiguous ranges.
                    let y = io.output::<f32>(y);
                    let ns = y.len() / parallel::ELEMENTWISE_PER_NS;
                    parallel::for_each_range_mut(par, y, ns, &|start, yc| {
                        let n = [yc.len()];
                        let r = start..start + yc.len();
                        run(&a[r.clone()], &n, &b[r], &n, yc, &n)
                    });
                } else {
                    run(a, sa, b, sb, io.output(y), sy)
                }
            }
            FloatKernel::BinaryI32(op) => kernels::elementwise::binary_i32(
                *op,
                io.input(inp(0)),
                &io.slot(inp(0)).shape,
                io.input(inp(1)),
                &io.slot(inp(1)).shape,
                io.output(out),
                &io.slot(out).shape,
            ),
            FloatKernel::Unary(f) => {
                let x = io.input::<f32>(inp(0));
                let y = io.output::<f32>(out);
                let ns = y.len() / parallel::ELEMENTWISE_PER_NS;
                parallel::for_each_range_mut(par, y, ns, &|start, yc| {
                    f(&x[start..start + yc.len()], yc)
                });
            }
            FloatKernel::Copy => {
                let src: &[u8] = io.input(inp(0));
                io.output::<u8>(out).copy_from_slice(src);
            }
            FloatKernel::Concat { axis } => {
                let size = io.slot(out).dtype.size_bytes();
                with_width!(size, T => {
                    let parts: Vec<(&[T], &[usize])> = inputs
                        .iter()
                        .map(|t| {
                            let t = t.expect("checked");
                            (io.input::<T>(t), io.slot(t).shape.as_slice())
                        })
                        .collect();
                    kernels::shape_ops::concatenation(&parts, *axis, io.output::<T>(out));
                })
            }
            FloatKernel::Softmax { inner, beta } => {
                kernels::softmax::softmax(io.input(inp(0)), io.output(out), *inner, *beta)
            }
            FloatKernel::Mean { axes } => kernels::reduce::mean(
                io.input(inp(0)),
                &io.slot(inp(0)).shape,
                axes,
                io.output(out),
            ),
            FloatKernel::ResizeBilinear {
                align_corners,
                half_pixel_centers,
            } => {
                let s = &io.slot(inp(0)).shape;
                let o = &io.slot(out).shape;
                kernels::resize::resize_bilinear(
                    io.input(inp(0)),
                    [s[0], s[1], s[2], s[3]],
                    io.output(out),
                    o[1],
                    o[2],
                    *align_corners,
                    *half_pixel_centers,
                )
            }
            FloatKernel::Pad { paddings, value } => {
                let size = io.slot(out).dtype.size_bytes();
                let shape = &io.slot(inp(0)).shape;
                with_width!(size, T => {
                    kernels::shape_ops::pad::<T>(io.input(inp(0)), shape, paddings, *value as T, io.output(out))
                })
            }
            FloatKernel::StridedSlice(plan) => {
                let size = io.slot(out).dtype.size_bytes();
                let shape = &io.slot(inp(0)).shape;
                with_width!(size, T => {
                    kernels::shape_ops::strided_slice::<T>(io.input(inp(0)), shape, plan, io.output(out))
                })
            }
            FloatKernel::Transpose(perm) => {
                let size = io.slot(out).dtype.size_bytes();
                let shape = &io.slot(inp(0)).shape;
                with_width!(size, T => {
                    kernels::shape_ops::transpose::<T>(io.input(inp(0)), shape, perm, io.output(out))
                })
            }
            FloatKernel::Gather { axis } => {
                let size = io.slot(out).dtype.size_bytes();
                let shape = &io.slot(inp(0)).shape;
                let indices: Vec<i64> = match io.slot(inp(1)).dtype {
                    DType::I64 => io.input::<i64>(inp(1)).to_vec(),
                    _ => io.input::<i32>(inp(1)).iter().map(|&v| v as i64).collect(),
                };
                with_width!(size, T => {
                    // Indices are data, not structure: an out-of-range one leaves the
                    // output zeroed instead of aborting the run.
                    if kernels::shape_ops::gather::<T>(io.input(inp(0)), shape, &indices, *axis, io.output(out)).is_err() {
                        io.output::<T>(out).fill(0 as T);
                    }
                })
            }
            FloatKernel::ArgMax { axis } => {
                let in_slot = io.slot(inp(0));
                let shape = in_slot.shape.clone();
                let n_out = io.slot(out).shape.iter().product::<usize>();
                let mut idx = vec![0i64; n_out];
                match in_slot.dtype {
                    DType::F32 => {
                        kernels::argmax::arg_max(io.input::<f32>(inp(0)), &shape, *axis, &mut idx)
                    }
                    DType::U8 => {
                        kernels::argmax::arg_max(io.input::<u8>(inp(0)), &shape, *axis, &mut idx)
                    }
                    DType::I8 => {
                        kernels::argmax::arg_max(io.input::<i8>(inp(0)), &shape, *axis, &mut idx)
                    }
                    _ => kernels::argmax::arg_max(io.input::<i32>(inp(0)), &shape, *axis, &mut idx),
                }
                if io.slot(out).dtype == DType::I64 {
                    io.output::<i64>(out).copy_from_slice(&idx);
                } else {
                    for (o, v) in io.output::<i32>(out).iter_mut().zip(idx) {
                        *o = v as i32;
                    }
                }
            }
            FloatKernel::Quantize { scale, zero_point } => {
                let x = io.input::<f32>(inp(0));
                match io.slot(out).dtype {
                    DType::U8 => {
                        kernels::quantize::quantize::<u8>(x, io.output(out), *scale, *zero_point)
                    }
                    DType::I8 => {
                        kernels::quantize::quantize::<i8>(x, io.output(out), *scale, *zero_point)
                    }
                    _ => kernels::quantize::quantize::<i16>(x, io.output(out), *scale, *zero_point),
                }
            }
            FloatKernel::Dequantize { quant } => {
                let in_slot = io.slot(inp(0));
                let y = io.output::<f32>(out);
                if in_slot.dtype == DType::F16 {
                    kernels::quantize::dequantize_f16(io.input(inp(0)), y);
                    return;
                }
                let zps: Vec<i32> = quant.zero_point.iter().map(|&z| z as i32).collect();
                let shape = in_slot.shape.clone();
                macro_rules! deq {
                    ($t:ty) => {
                        if quant.is_per_axis() {
                            kernels::quantize::dequantize_per_axis::<$t>(
                                io.input(inp(0)),
                                &shape,
                                quant.axis,
                                &quant.scale,
                                &zps,
                                y,
                            )
                        } else {
                            let (s, z) = quant.params(0);
                            kernels::quantize::dequantize::<$t>(io.input(inp(0)), y, s, z as i32)
                        }
                    };
                }
                match in_slot.dtype {
                    DType::U8 => deq!(u8),
                    DType::I8 => deq!(i8),
                    DType::I16 => deq!(i16),
                    _ => deq!(i32),
                }
            }
            FloatKernel::Cast => run_cast(io, inp(0), out),
        }
    }
}

fn run_cast(io: &Tensors<'_>, x: TensorId, y: TensorId) {
    let values: Vec<f64> = match io.slot(x).dtype {
        DType::F32 => io.input::<f32>(x).iter().map(|&v| v as f64).collect(),
        DType::U8 => io.input::<u8>(x).iter().map(|&v| v as f64).collect(),
        DType::I8 => io.input::<i8>(x).iter().map(|&v| v as f64).collect(),
        DType::I16 => io.input::<i16>(x).iter().map(|&v| v as f64).collect(),
        DType::I32 => io.input::<i32>(x).iter().map(|&v| v as f64).collect(),
        DType::I64 => io.input::<i64>(x).iter().map(|&v| v as f64).collect(),
        _ => io
            .input::<u8>(x)
            .iter()
            .map(|&v| (v != 0) as u8 as f64)
            .collect(),
    };
    // `as` saturates and truncates toward zero, as TFLite's static_cast does for
    // in-range values.
    match io.slot(y).dtype {
        DType::F32 => store(io.output::<f32>(y), &values, |v| v as f32),
        DType::U8 => store(io.output::<u8>(y), &values, |v| v as u8),
        DType::I8 => store(io.output::<i8>(y), &values, |v| v as i8),
        DType::I16 => store(io.output::<i16>(y), &values, |v| v as i16),
        DType::I32 => store(io.output::<i32>(y), &values, |v| v as i32),
        DType::I64 => store(io.output::<i64>(y), &values, |v| v as i64),
        _ => store(io.output::<u8>(y), &values, |v| (v != 0.0) as u8),
    }
}

fn store<T>(out: &mut [T], values: &[f64], f: impl Fn(f64) -> T) {
    for (o, &v) in out.iter_mut().zip(values) {
        *o = f(v);
    }
}

/// Prepare an op on float32 (or type-generic) tensors.
pub(crate) fn prepare_float(g: &Graph, op: &Op, choice: KernelChoice) -> Result<Prepared> {
    let kernel = prepare_kernel(g, op, choice)?;
    // Conv, depthwise and FC copy their weights and bias at preparation.
    let packed = if matches!(
        kernel,
        FloatKernel::ConvRef { .. }
            | FloatKernel::ConvFast(_)
            | FloatKernel::DepthwiseRef { .. }
            | FloatKernel::DepthwiseFast(_)
            | FloatKernel::FcRef { .. }
            | FloatKernel::FcFast(_)
    ) {
        vec![1, 2]
    } else {
        Vec::new()
    };
    Ok(Prepared::packing(kernel, packed))
}

/// The float32 filter and optional bias of a conv-like op.
fn weights_and_bias(
    g: &Graph,
    op: &Op,
    w: TensorId,
    out_c: usize,
) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
    Ok((const_f32(g, w, "filter")?, optional_bias(g, op, out_c)?))
}

fn prepare_kernel(g: &Graph, op: &Op, choice: KernelChoice) -> Result<FloatKernel> {
    use OpKind::*;
    let fast = choice == KernelChoice::Fast;
    match &op.kind {
        Conv2D(o) => {
            let (x, w, y) = (
                require_input(op, 0)?,
                require_input(op, 1)?,
                require_output(op)?,
            );
            for t in [x, w, y] {
                require_dtype(g, t, DType::F32)?;
            }
            let geom = conv_geometry(g, (x, w, y), false, conv_attrs(o))?;
            let (act_min, act_max) = act_range(o.activation)?;
            let p = ConvParams {
                geom,
                act_min,
                act_max,
            };
            let (filter, bias) = weights_and_bias(g, op, w, geom.out_c)?;
            p.check(
                g.tensors[x].num_elements(),
                filter.len(),
                bias.as_ref().map(Vec::len),
                g.tensors[y].num_elements(),
            )?;
            Ok(if fast {
                FloatKernel::ConvFast(PackedConv2D::new(&p, &filter, bias.as_deref()))
            } else {
                FloatKernel::ConvRef { p, filter, bias }
            })
        }
        DepthwiseConv2D(o) => {
            let (x, w, y) = (
                require_input(op, 0)?,
                require_input(op, 1)?,
                require_output(op)?,
            );
            for t in [x, w, y] {
                require_dtype(g, t, DType::F32)?;
            }
            let geom = conv_geometry(g, (x, w, y), true, depthwise_attrs(o))?;
            let (act_min, act_max) = act_range(o.activation)?;
            let p = DepthwiseParams {
                geom,
                act_min,
                act_max,
            };
            let (filter, bias) = weights_and_bias(g, op, w, geom.out_c)?;
            p.check(
                g.tensors[x].num_elements(),
                filter.len(),
                bias.as_ref().map(Vec::len),
                g.tensors[y].num_elements(),
            )?;
            Ok(if fast {
                FloatKernel::DepthwiseFast(PackedDepthwise::new(&p, &filter, bias.as_deref()))
            } else {
                FloatKernel::DepthwiseRef { p, filter, bias }
            })
        }
        FullyConnected(o) => {
            let (x, w, y) = (
                require_input(op, 0)?,
                require_input(op, 1)?,
                require_output(op)?,
            );
            for t in [x, w, y] {
                require_dtype(g, t, DType::F32)?;
            }
            if o.weights_format != 0 {
                return Err(EngineError::unsupported("shuffled FC weights"));
            }
            let ws = shape_of(g, w);
            if ws.len() != 2 || ws[1] == 0 {
                return Err(EngineError::invalid(format!(
                    "FC weights must be [units, depth], got {ws:?}"
                )));
            }
            let (units, depth) = (ws[0], ws[1]);
            let elems = g.tensors[x].num_elements();
            if !elems.is_multiple_of(depth) {
                return Err(EngineError::invalid(format!(
                    "input of {elems} elements is not a multiple of depth {depth}"
                )));
            }
            let rows = elems / depth;
            if g.tensors[y].num_elements() != rows * units {
                return Err(EngineError::invalid(format!(
                    "output {:?} does not hold {rows}×{units} values",
                    shape_of(g, y)
                )));
            }
            let (act_min, act_max) = act_range(o.activation)?;
            let p = FcParams {
                rows,
                depth,
                units,
                act_min,
                act_max,
            };
            let weights = const_f32(g, w, "weights")?;
            let bias = optional_bias(g, op, units)?;
            p.check(
                g.tensors[x].num_elements(),
                weights.len(),
                bias.as_ref().map(Vec::len),
                g.tensors[y].num_elements(),
            )?;
            Ok(if fast {
                FloatKernel::FcFast(PackedFullyConnected::new(&p, &weights, bias.as_deref()))
            } else {
                FloatKernel::FcRef { p, weights, bias }
            })
        }
        AveragePool2D(o) | MaxPool2D(o) => {
            let (x, y) = (require_input(op, 0)?, require_output(op)?);
            require_dtype(g, x, DType::F32)?;
            require_dtype(g, y, DType::F32)?;
            let geom = pool_geometry(g, x, y, o)?;
            let (act_min, act_max) = act_range(o.activation)?;
            let p = PoolParams {
                geom,
                act_min,
                act_max,
            };
            Ok(if matches!(op.kind, AveragePool2D(_)) {
                FloatKernel::AvgPool(p)
            } else {
                FloatKernel::MaxPool(p)
            })
        }
        Add { activation, .. }
        | Sub { activation, .. }
        | Mul { activation }
        | Div { activation } => {
            let bop = match op.kind {
                Add { .. } => BinaryOp::Add,
                Sub { .. } => BinaryOp::Sub,
                Mul { .. } => BinaryOp::Mul,
                _ => BinaryOp::Div,
            };
            binary(g, op, bop, *activation)
        }
        FloorDiv => binary(g, op, BinaryOp::FloorDiv, Activation::None),
        Relu | Relu6 | Logistic | Tanh | HardSwish | Sqrt => {
            let (x, y) = (require_input(op, 0)?, require_output(op)?);
            require_dtype(g, x, DType::F32)?;
            require_dtype(g, y, DType::F32)?;
            same_elements(g, x, y)?;
            let f: fn(&[f32], &mut [f32]) = match op.kind {
                Relu => kernels::activation::relu,
                Relu6 => kernels::activation::relu6,
                Logistic => kernels::activation::logistic,
                Tanh => kernels::activation::tanh,
                HardSwish => kernels::activation::hard_swish,
                _ => kernels::activation::sqrt,
            };
            Ok(FloatKernel::Unary(f))
        }
        Reshape { .. } | Squeeze { .. } => {
            let (x, y) = (require_input(op, 0)?, require_output(op)?);
            same_elements(g, x, y)?;
            if g.tensors[x].dtype != g.tensors[y].dtype {
                return Err(EngineError::invalid("reshape changes the element type"));
            }
            Ok(FloatKernel::Copy)
        }
        Concatenation { axis, activation } => {
            let y = require_output(op)?;
            let out_shape = shape_of(g, y).to_vec();
            let axis = normalize_axis(*axis as i64, out_shape.len())?;
            let mut along = 0;
            for k in 0..op.inputs.len() {
                let x = require_input(op, k)?;
                let s = shape_of(g, x);
                if g.tensors[x].dtype != g.tensors[y].dtype || s.len() != out_shape.len() {
                    return Err(EngineError::unsupported(format!(
                        "input {k} ({} {s:?}) does not match the output ({} {out_shape:?})",
                        g.tensors[x].dtype, g.tensors[y].dtype
                    )));
                }
                for (d, (&a, &b)) in s.iter().zip(&out_shape).enumerate() {
                    if d != axis && a != b {
                        return Err(EngineError::invalid(format!(
                            "input {k} shape {s:?} vs output {out_shape:?}"
                        )));
                    }
                }
                along += s[axis];
            }
            if along != out_shape[axis] {
                return Err(EngineError::invalid(
                    "concatenated sizes do not add up to the output",
                ));
            }
            if *activation != Activation::None {
                return Err(EngineError::unsupported(
                    "fused activation on CONCATENATION",
                ));
            }
            if g.tensors[y].quant.is_some()
                && op
                    .inputs
                    .iter()
                    .flatten()
                    .any(|&t| g.tensors[t].quant != g.tensors[y].quant)
            {
                return Err(EngineError::unsupported(
                    "quantized concatenation with differing scales",
                ));
            }
            Ok(FloatKernel::Concat { axis })
        }
        Softmax { beta } => {
            let (x, y) = (require_input(op, 0)?, require_output(op)?);
            require_dtype(g, x, DType::F32)?;
            require_dtype(g, y, DType::F32)?;
            same_elements(g, x, y)?;
            let inner = shape_of(g, x).last().copied().unwrap_or(1);
            if inner == 0 {
                return Err(EngineError::invalid("softmax over an empty axis"));
            }
            Ok(FloatKernel::Softmax { inner, beta: *beta })
        }
        Mean { .. } => {
            let (x, a, y) = (
                require_input(op, 0)?,
                require_input(op, 1)?,
                require_output(op)?,
            );
            require_dtype(g, x, DType::F32)?;
            require_dtype(g, y, DType::F32)?;
            let rank = shape_of(g, x).len();
            let mut axes = const_ints(g, a, "axes")?
                .into_iter()
                .map(|v| normalize_axis(v, rank))
                .collect::<Result<Vec<_>>>()?;
            axes.sort_unstable();
            axes.dedup();
            let kept: usize = shape_of(g, x)
                .iter()
                .enumerate()
                .filter(|(d, _)| !axes.contains(d))
                .map(|(_, &s)| s)
                .product();
            if kept != g.tensors[y].num_elements() {
                return Err(EngineError::invalid(
                    "MEAN output size does not match the reduced input",
                ));
            }
            Ok(FloatKernel::Mean { axes })
        }
        ResizeBilinear {
            align_corners,
            half_pixel_centers,
        } => {
            let (x, y) = (require_input(op, 0)?, require_output(op)?);
            require_dtype(g, x, DType::F32)?;
            require_dtype(g, y, DType::F32)?;
            let [n, _, _, c] = rank4(g, x)?;
            let [on, _, _, oc] = rank4(g, y)?;
            if n != on || c != oc {
                return Err(EngineError::invalid("resize changes batch or channels"));
            }
            Ok(FloatKernel::ResizeBilinear {
                align_corners: *align_corners,
                half_pixel_centers: *half_pixel_centers,
            })
        }
        Pad => {
            let (x, p, y) = (
                require_input(op, 0)?,
                require_input(op, 1)?,
                require_output(op)?,
            );
            let s = shape_of(g, x).to_vec();
            let raw = const_ints(g, p, "paddings")?;
            if raw.len() != 2 * s.len() || raw.iter().any(|&v| v < 0) {
                return Err(EngineError::invalid(format!(
                    "paddings {raw:?} do not fit rank {}",
                    s.len()
                )));
            }
            let paddings: Vec<(usize, usize)> = raw
                .chunks(2)
                .map(|c| (c[0] as usize, c[1] as usize))
                .collect();
            let want: Vec<usize> = s
                .iter()
                .zip(&paddings)
                .map(|(d, (a, b))| d + a + b)
                .collect();
            expect_shape(g, y, &want)?;
            if g.tensors[x].dtype != g.tensors[y].dtype {
                return Err(EngineError::invalid("PAD changes the element type"));
            }
            // Quantized tensors pad with the zero point, i.e. real 0.
            let zp = g.tensors[y]
                .quant
                .as_ref()
                .map(|q| q.params(0).1)
                .unwrap_or(0);
            let value = match g.tensors[y].dtype {
                DType::U8 | DType::I8 => (zp as u8) as u64,
                DType::I16 => (zp as i16 as u16) as u64,
                _ => 0,
            };
            Ok(FloatKernel::Pad { paddings, value })
        }
        StridedSlice(o) => {
            let (x, y) = (require_input(op, 0)?, require_output(op)?);
            let begin = const_ints(g, require_input(op, 1)?, "begin")?;
            let end = const_ints(g, require_input(op, 2)?, "end")?;
            let strides = const_ints(g, require_input(op, 3)?, "strides")?;
            let plan =
                kernels::shape_ops::strided_slice_plan(shape_of(g, x), &begin, &end, &strides, o)?;
            if plan.out_shape.iter().product::<usize>() != g.tensors[y].num_elements() {
                return Err(EngineError::invalid(format!(
                    "slice gives shape {:?}, output is {:?}",
                    plan.out_shape,
                    shape_of(g, y)
                )));
            }
            Ok(FloatKernel::StridedSlice(plan))
        }
        Transpose => {
            let (x, y) = (require_input(op, 0)?, require_output(op)?);
            let perm = const_ints(g, require_input(op, 1)?, "perm")?;
            let s = shape_of(g, x);
            let mut seen = vec![false; s.len()];
            let mut perm_u = Vec::new();
            for &p in &perm {
                let p = normalize_axis(p, s.len())?;
                if std::mem::replace(&mut seen[p], true) {
                    return Err(EngineError::invalid("perm repeats an axis"));
                }
                perm_u.push(p);
            }
            if perm_u.len() != s.len() {
                return Err(EngineError::invalid("perm length differs from rank"));
            }
            let want: Vec<usize> = perm_u.iter().map(|&p| s[p]).collect();
            expect_shape(g, y, &want)?;
            Ok(FloatKernel::Transpose(perm_u))
        }
        Gather { axis, batch_dims } => {
            let (x, i, y) = (
                require_input(op, 0)?,
                require_input(op, 1)?,
                require_output(op)?,
            );
            if *batch_dims != 0 {
                return Err(EngineError::unsupported("GATHER with batch_dims"));
            }
            if !matches!(g.tensors[i].dtype, DType::I32 | DType::I64) {
                return Err(EngineError::unsupported(
                    "GATHER indices must be int32/int64",
                ));
            }
            let s = shape_of(g, x);
            let axis = normalize_axis(*axis as i64, s.len())?;
            let want = s[..axis].iter().product::<usize>()
                * g.tensors[i].num_elements()
                * s[axis + 1..].iter().product::<usize>();
            if want != g.tensors[y].num_elements() {
                return Err(EngineError::invalid("GATHER output size"));
            }
            Ok(FloatKernel::Gather { axis })
        }
        ArgMax { .. } => {
            let (x, a, y) = (
                require_input(op, 0)?,
                require_input(op, 1)?,
                require_output(op)?,
            );
            let axis = const_ints(g, a, "axis")?;
            let s = shape_of(g, x);
            let axis = normalize_axis(
                *axis
                    .first()
                    .ok_or_else(|| EngineError::invalid("empty axis"))?,
                s.len(),
            )?;
            if !matches!(g.tensors[y].dtype, DType::I32 | DType::I64)
                || !matches!(
                    g.tensors[x].dtype,
                    DType::F32 | DType::U8 | DType::I8 | DType::I32
                )
            {
                return Err(EngineError::unsupported("ARG_MAX types"));
            }
            if s.iter().product::<usize>() / s[axis].max(1) != g.tensors[y].num_elements()
                || s[axis] == 0
            {
                return Err(EngineError::invalid("ARG_MAX output size"));
            }
            Ok(FloatKernel::ArgMax { axis })
        }
        Quantize => {
            let (x, y) = (require_input(op, 0)?, require_output(op)?);
            require_dtype(g, x, DType::F32)?;
            same_elements(g, x, y)?;
            let q = g.tensors[y]
                .quant
                .as_ref()
                .ok_or_else(|| EngineError::invalid("QUANTIZE output has no quantization"))?;
            if q.is_per_axis() || !matches!(g.tensors[y].dtype, DType::U8 | DType::I8 | DType::I16)
            {
                return Err(EngineError::unsupported(
                    "QUANTIZE to a per-axis or non-integer output",
                ));
            }
            let (scale, zp) = q.params(0);
            if !(scale.is_finite() && scale > 0.0) {
                return Err(EngineError::invalid(format!(
                    "QUANTIZE output scale {scale}"
                )));
            }
            Ok(FloatKernel::Quantize {
                scale,
                zero_point: zp as i32,
            })
        }
        Dequantize => {
            let (x, y) = (require_input(op, 0)?, require_output(op)?);
            require_dtype(g, y, DType::F32)?;
            same_elements(g, x, y)?;
            let dt = g.tensors[x].dtype;
            let quant = match dt {
                DType::F16 => Quantization::per_tensor(1.0, 0),
                DType::U8 | DType::I8 | DType::I16 | DType::I32 => g.tensors[x]
                    .quant
                    .clone()
                    .filter(|q| !q.scale.is_empty())
                    .ok_or_else(|| EngineError::invalid("DEQUANTIZE input has no quantization"))?,
                _ => return Err(EngineError::unsupported(format!("DEQUANTIZE from {dt}"))),
            };
            if quant.scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
                return Err(EngineError::invalid(
                    "DEQUANTIZE input scale must be positive",
                ));
            }
            if quant.is_per_axis() && shape_of(g, x).get(quant.axis) != Some(&quant.scale.len()) {
                return Err(EngineError::invalid(
                    "per-axis scales do not match the shape",
                ));
            }
            Ok(FloatKernel::Dequantize { quant })
        }
        Cast => {
            let (x, y) = (require_input(op, 0)?, require_output(op)?);
            same_elements(g, x, y)?;
            for t in [x, y] {
                if !matches!(
                    g.tensors[t].dtype,
                    DType::F32
                        | DType::U8
                        | DType::I8
                        | DType::I16
                        | DType::I32
                        | DType::I64
                        | DType::Bool
                ) {
                    return Err(EngineError::unsupported(format!(
                        "CAST of {}",
                        g.tensors[t].dtype
                    )));
                }
            }
            Ok(FloatKernel::Cast)
        }
        Custom { code, .. } => Err(EngineError::unsupported(format!(
            "custom operator '{code}' cannot run on the CPU{}",
            if code == "edgetpu-custom-op" {
                " (it is compiled for the Edge TPU)"
            } else {
                ""
            }
        ))),
        other => Err(EngineError::unsupported(format!(
            "no kernel for {}",
            other.name()
        ))),
    }
}

fn binary(g: &Graph, op: &Op, bop: BinaryOp, activation: Activation) -> Result<FloatKernel> {
    let (a, b, y) = (
        require_input(op, 0)?,
        require_input(op, 1)?,
        require_output(op)?,
    );
    let (sa, sb) = (shape_of(g, a), shape_of(g, b));
    if sa.len() > 6 || sb.len() > 6 {
        return Err(EngineError::unsupported(
            "broadcast of more than 6 dimensions",
        ));
    }
    let out = kernels::elementwise::broadcast_shape(sa, sb).ok_or_else(|| {
        EngineError::invalid(format!("shapes {sa:?} and {sb:?} do not broadcast"))
    })?;
    expect_shape(g, y, &out)?;
    let dt = g.tensors[y].dtype;
    if g.tensors[a].dtype != dt || g.tensors[b].dtype != dt {
        return Err(EngineError::unsupported("mixed element types"));
    }
    match dt {
        DType::F32 => {
            let (min, max) = act_range(activation)?;
            Ok(FloatKernel::BinaryF32 { op: bop, min, max })
        }
        DType::I32 if g.tensors[y].quant.is_none() && activation == Activation::None => {
            Ok(FloatKernel::BinaryI32(bop))
        }
        _ => require_dtype(g, y, DType::F32).map(|_| unreachable!()),
    }
}

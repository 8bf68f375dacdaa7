//! The float family's prepared kernels: what preparation chose, with its parameters,
//! and `run`, which only computes (every shape was checked at preparation).

use crate::exec::kernels::{
    self, Parallelism,
    conv::{ConvParams, PackedConv2D},
    depthwise::{DepthwiseParams, PackedDepthwise},
    elementwise::BinaryOp,
    fully_connected::{FcParams, PackedFullyConnected},
    pool::PoolParams,
    shape_ops::SlicePlan,
    sparse_conv::SparseConv1x1,
};
use crate::exec::parallel;
use crate::exec::prepare::OpKernel;
use crate::exec::tensors::{Tensors, with_width};
use crate::ir::{DType, Quantization, TensorId};

/// Float32 (and type-generic) kernels with their prepared parameters.
pub(crate) enum FloatKernel {
    ConvRef {
        p: ConvParams,
        filter: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    ConvFast(PackedConv2D),
    /// 1×1 conv over mostly zero weights.
    ConvSparse(SparseConv1x1),
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
            FloatKernel::ConvSparse(k) => k.run(io.input(inp(0)), io.output(out), par),
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

    fn variant(&self) -> Option<String> {
        match self {
            FloatKernel::ConvSparse(k) => {
                Some(format!("sparse 1x1, {:.0}% zeros", 100.0 * k.sparsity()))
            }
            _ => None,
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

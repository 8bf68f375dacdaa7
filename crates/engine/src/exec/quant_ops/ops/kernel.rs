//! The integer family's prepared kernels: what preparation chose, with its
//! parameters and tables, and `run`, which only computes.

use crate::exec::kernels::Parallelism;
use crate::exec::kernels::qops::{
    QInt,
    act16::Sigmoid16,
    binary::{self, AddSubTables, MulKernel, QBinaryParams, RowKernel},
    lut::{HardSwishParams, ReluParams},
    mean::QMean,
    pool::{self, QPoolParams},
    requant::{self, ConcatPart, Requantize},
    resize, shape,
    softmax::{self, Softmax16, SoftmaxParams},
};
use crate::exec::prepare::OpKernel;
use crate::exec::tensors::{Tensors, with_width};
use crate::ir::{DType, TensorId};

/// Run `$body` with `$t` bound to the Rust type of the quantized dtype `$dt`.
macro_rules! by_qtype {
    ($dt:expr, $t:ident => $body:block) => {
        match $dt {
            DType::U8 => {
                type $t = u8;
                $body
            }
            DType::I8 => {
                type $t = i8;
                $body
            }
            _ => {
                type $t = i16;
                $body
            }
        }
    };
}
pub(super) use by_qtype;

/// Integer kernels with their prepared parameters.
pub(super) enum QKernel {
    Binary {
        p: QBinaryParams,
        fast: bool,
    },
    /// 8-bit ADD/SUB on the fast path: per-input rescaling tabulated.
    AddSubTable(Box<AddSubTables>),
    /// MUL on the AVX-512 path.
    Mul(Box<MulKernel>),
    AvgPool {
        p: QPoolParams,
        fast: bool,
    },
    MaxPool(QPoolParams),
    Softmax {
        p: SoftmaxParams,
        depth: usize,
        fast: bool,
    },
    /// int16 SOFTMAX (TFLite's interpolated-table kernel).
    Softmax16 {
        p: Box<Softmax16>,
        depth: usize,
    },
    /// int16 LOGISTIC / TANH.
    Sigmoid16(Sigmoid16),
    /// An 8-bit table indexed by `x − T::MIN` (LOGISTIC/TANH always; other unary
    /// ops on the fast path).
    Table8(Vec<u8>),
    HardSwish(HardSwishParams),
    Relu(ReluParams),
    Mean {
        q: QMean,
        axes: Vec<usize>,
    },
    Resize {
        align_corners: bool,
        half_pixel_centers: bool,
    },
    Requantize {
        r: Requantize,
        flip: bool,
    },
    Concat {
        axis: usize,
        parts: Vec<ConcatPart>,
    },
    Pack {
        outer: usize,
        inner: usize,
    },
    Unpack {
        outer: usize,
        inner: usize,
    },
    GatherNd {
        depth: usize,
    },
}

impl OpKernel for QKernel {
    fn run(
        &self,
        io: &Tensors<'_>,
        inputs: &[Option<TensorId>],
        outputs: &[TensorId],
        _par: Parallelism,
    ) {
        let inp = |k: usize| inputs[k].expect("required inputs were checked");
        let out = outputs[0];
        let dt = io.slot(out).dtype;
        match self {
            QKernel::Binary { p, fast } => by_qtype!(dt, T => {
                let (a, b) = (inp(0), inp(1));
                let (sa, sb, so) = (&io.slot(a).shape, &io.slot(b).shape, &io.slot(out).shape);
                let (xa, xb, y) = (io.input::<T>(a), io.input::<T>(b), io.output::<T>(out));
                if !fast {
                    binary::binary_reference(p, xa, sa, xb, sb, y, so);
                } else if sa == sb {
                    binary::binary_same_shape(p, xa, xb, y);
                } else {
                    binary::binary_broadcast_rows(p, xa, sa, xb, sb, y, so);
                }
            }),
            QKernel::AddSubTable(t) => by_qtype!(dt, T => {
                let (a, b) = (inp(0), inp(1));
                let (sa, sb, so) = (&io.slot(a).shape, &io.slot(b).shape, &io.slot(out).shape);
                let (xa, xb, y) = (io.input::<T>(a), io.input::<T>(b), io.output::<T>(out));
                if sa == sb {
                    t.run_same_shape(xa, xb, y);
                } else {
                    t.run_broadcast(xa, sa, xb, sb, y, so);
                }
            }),
            QKernel::Mul(k) => by_qtype!(dt, T => {
                let (a, b) = (inp(0), inp(1));
                let (sa, sb, so) = (&io.slot(a).shape, &io.slot(b).shape, &io.slot(out).shape);
                let (xa, xb, y) = (io.input::<T>(a), io.input::<T>(b), io.output::<T>(out));
                if sa == sb {
                    k.run_same_shape(xa, xb, y);
                } else {
                    k.run_broadcast(xa, sa, xb, sb, y, so);
                }
            }),
            QKernel::AvgPool { p, fast } => by_qtype!(dt, T => {
                let (x, y) = (io.input::<T>(inp(0)), io.output::<T>(out));
                if *fast {
                    pool::average_pool_fast(p, x, y);
                } else {
                    pool::average_pool_reference(p, x, y);
                }
            }),
            QKernel::MaxPool(p) => by_qtype!(dt, T => {
                pool::max_pool(p, io.input::<T>(inp(0)), io.output::<T>(out));
            }),
            QKernel::Softmax { p, depth, fast } => by_qtype!(dt, T => {
                let (x, y) = (io.input::<T>(inp(0)), io.output::<T>(out));
                if *fast {
                    softmax::softmax_fixed_point_fast(p, x, y, *depth);
                } else {
                    softmax::softmax_fixed_point(p, x, y, *depth);
                }
            }),
            QKernel::Softmax16 { p, depth } => {
                p.run(io.input::<i16>(inp(0)), io.output::<i16>(out), *depth);
            }
            QKernel::Sigmoid16(p) => p.run(io.input::<i16>(inp(0)), io.output::<i16>(out)),
            QKernel::Table8(table) => {
                // Index by the byte offset from the type minimum: for int8 that is
                // the byte with its top bit flipped.
                let flip = if dt == DType::I8 { 0x80 } else { 0 };
                let x = io.input::<u8>(inp(0));
                for (o, &v) in io.output::<u8>(out).iter_mut().zip(x) {
                    *o = table[(v ^ flip) as usize];
                }
            }
            QKernel::HardSwish(p) => by_qtype!(dt, T => {
                for (o, v) in io.output::<T>(out).iter_mut().zip(io.input::<T>(inp(0))) {
                    *o = p.apply::<T>(v.get());
                }
            }),
            QKernel::Relu(p) => by_qtype!(dt, T => {
                for (o, v) in io.output::<T>(out).iter_mut().zip(io.input::<T>(inp(0))) {
                    *o = p.apply::<T>(v.get());
                }
            }),
            QKernel::Mean { q, axes } => by_qtype!(dt, T => {
                let shape = io.slot(inp(0)).shape.clone();
                q.run(io.input::<T>(inp(0)), &shape, axes, io.output::<T>(out));
            }),
            QKernel::Resize {
                align_corners,
                half_pixel_centers,
            } => {
                let s = &io.slot(inp(0)).shape;
                let o = &io.slot(out).shape;
                let shape = [s[0], s[1], s[2], s[3]];
                match dt {
                    DType::U8 => resize::resize_bilinear_u8(
                        io.input(inp(0)),
                        shape,
                        io.output(out),
                        o[1],
                        o[2],
                        *align_corners,
                        *half_pixel_centers,
                    ),
                    DType::I8 => resize::resize_bilinear_integer::<i8>(
                        io.input(inp(0)),
                        shape,
                        io.output(out),
                        o[1],
                        o[2],
                        *align_corners,
                        *half_pixel_centers,
                    ),
                    _ => resize::resize_bilinear_integer::<i16>(
                        io.input(inp(0)),
                        shape,
                        io.output(out),
                        o[1],
                        o[2],
                        *align_corners,
                        *half_pixel_centers,
                    ),
                }
            }
            QKernel::Requantize { r, flip } => {
                if *flip {
                    requant::flip_top_bit(io.input(inp(0)), io.output(out));
                    return;
                }
                let it = io.slot(inp(0)).dtype;
                by_qtype!(it, I => {
                    by_qtype!(dt, O => {
                        requant::requantize::<I, O>(r, io.input(inp(0)), io.output(out));
                    })
                })
            }
            QKernel::Concat { axis, parts } => by_qtype!(dt, T => {
                let list: Vec<(&[T], &[usize], ConcatPart)> = inputs
                    .iter()
                    .zip(parts)
                    .map(|(t, &how)| {
                        let t = t.expect("checked");
                        (io.input::<T>(t), io.slot(t).shape.as_slice(), how)
                    })
                    .collect();
                requant::concat_rescaled(&list, *axis, io.output::<T>(out));
            }),
            QKernel::Pack { outer, inner } => {
                with_width!(dt.size_bytes(), W => {
                    let list: Vec<&[W]> =
                        inputs.iter().map(|t| io.input::<W>(t.expect("checked"))).collect();
                    shape::pack(&list, *outer, *inner, io.output::<W>(out));
                })
            }
            QKernel::Unpack { outer, inner } => {
                let it = io.slot(inp(0)).dtype;
                with_width!(it.size_bytes(), W => {
                    let mut outs: Vec<&mut [W]> =
                        outputs.iter().map(|&t| io.output::<W>(t)).collect();
                    shape::unpack(io.input::<W>(inp(0)), *outer, *inner, &mut outs);
                })
            }
            QKernel::GatherNd { depth } => {
                let shape = io.slot(inp(0)).shape.clone();
                let indices: Vec<i64> = match io.slot(inp(1)).dtype {
                    DType::I64 => io.input::<i64>(inp(1)).to_vec(),
                    _ => io.input::<i32>(inp(1)).iter().map(|&v| v as i64).collect(),
                };
                with_width!(dt.size_bytes(), W => {
                    // Indices are data: an out-of-range one zeroes the output instead
                    // of aborting the run (TFLite fails the invocation).
                    let y = io.output::<W>(out);
                    if shape::gather_nd(io.input::<W>(inp(0)), &shape, &indices, *depth, y).is_err() {
                        y.fill(0 as W);
                    }
                })
            }
        }
    }
}

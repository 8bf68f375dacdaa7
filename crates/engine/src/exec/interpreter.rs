//! The interpreter: validates a graph once, packs weights, plans memory, then runs
//! the ops in order with no allocation per inference and a timing per op.

use std::time::{Duration, Instant};

use super::arena::Arena;
use super::kernels::{
    self, KernelChoice, Parallelism,
    conv::{ConvParams, PackedConv2D},
    depthwise::{DepthwiseParams, PackedDepthwise},
    elementwise::BinaryOp,
    fully_connected::{FcParams, PackedFullyConnected},
    pool::PoolParams,
    shape_ops::SlicePlan,
};
use super::plan::{self, Request};
use crate::error::{EngineError, Result};
use crate::ir::{Activation, DType, Graph, Model, Op, OpKind, Padding, Quantization, TensorId};

/// Settings of an interpreter instance.
#[derive(Debug, Clone, Copy)]
pub struct InterpreterOptions {
    /// Worker threads for the heavy kernels (1 = run on the calling thread only).
    pub threads: usize,
    pub kernels: KernelChoice,
}

impl Default for InterpreterOptions {
    fn default() -> Self {
        InterpreterOptions {
            threads: 1,
            kernels: KernelChoice::Fast,
        }
    }
}

/// Public facts about a model input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub quant: Option<Quantization>,
}

impl TensorInfo {
    pub fn num_elements(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn byte_len(&self) -> usize {
        self.num_elements() * self.dtype.size_bytes()
    }
}

/// Time spent in one op during the last `invoke`.
#[derive(Debug, Clone)]
pub struct OpTiming {
    pub index: usize,
    pub op: String,
    pub output: String,
    pub time: Duration,
}

/// Where a runtime tensor lives.
#[derive(Debug, Clone)]
struct Slot {
    offset: usize,
    bytes: usize,
    shape: Vec<usize>,
    dtype: DType,
}

enum Kernel {
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

struct Step {
    op_index: usize,
    name: String,
    kernel: Kernel,
    inputs: Vec<Option<TensorId>>,
    outputs: Vec<TensorId>,
}

/// A model prepared for repeated inference.
pub struct Interpreter {
    slots: Vec<Option<Slot>>,
    steps: Vec<Step>,
    arena: Arena,
    inputs: Vec<TensorId>,
    outputs: Vec<TensorId>,
    input_info: Vec<TensorInfo>,
    output_info: Vec<TensorInfo>,
    tensor_names: Vec<String>,
    pool: Option<rayon::ThreadPool>,
    par: Parallelism,
    times: Vec<Duration>,
}

impl Interpreter {
    /// Prepare subgraph 0 of `model`. Every shape and parameter is checked here, so
    /// `invoke` cannot fail on a model this accepted.
    pub fn new(model: &Model, opts: InterpreterOptions) -> Result<Interpreter> {
        model.validate()?;
        let g = model.main();
        if opts.threads == 0 {
            return Err(EngineError::bad_input("thread count must be at least 1"));
        }
        check_dataflow(g)?;

        let mut steps = Vec::with_capacity(g.ops.len());
        for (i, op) in g.ops.iter().enumerate() {
            let kernel = prepare_op(g, op, opts.kernels).map_err(|e| match e {
                EngineError::Unsupported(m) => {
                    EngineError::Unsupported(format!("operator {i} ({}): {m}", op.kind.name()))
                }
                EngineError::InvalidModel(m) => {
                    EngineError::InvalidModel(format!("operator {i} ({}): {m}", op.kind.name()))
                }
                other => other,
            })?;
            steps.push(Step {
                op_index: i,
                name: op.kind.name(),
                kernel,
                inputs: op.inputs.clone(),
                outputs: op.outputs.clone(),
            });
        }

        // Which tensors live in the arena: everything read or written at run time,
        // except the weights that packed kernels copied out at preparation.
        let n = g.tensors.len();
        let mut first = vec![usize::MAX; n];
        let mut last = vec![0usize; n];
        let mut needed = vec![false; n];
        let end = g.ops.len();
        for &t in &g.inputs {
            needed[t] = true;
            first[t] = 0;
        }
        for (i, (op, step)) in g.ops.iter().zip(&steps).enumerate() {
            let packs_weights = matches!(
                step.kernel,
                Kernel::ConvRef { .. }
                    | Kernel::ConvFast(_)
                    | Kernel::DepthwiseRef { .. }
                    | Kernel::DepthwiseFast(_)
                    | Kernel::FcRef { .. }
                    | Kernel::FcFast(_)
            );
            for (k, &t) in op.inputs.iter().enumerate() {
                let Some(t) = t else { continue };
                if packs_weights && k > 0 {
                    continue;
                }
                needed[t] = true;
                last[t] = last[t].max(i);
                if g.tensors[t].is_constant() || g.tensors[t].is_variable {
                    first[t] = 0;
                    last[t] = usize::MAX;
                }
            }
            for &t in &op.outputs {
                needed[t] = true;
                first[t] = first[t].min(i);
                last[t] = last[t].max(i);
            }
        }
        for &t in &g.outputs {
            needed[t] = true;
            first[t] = first[t].min(end);
            last[t] = usize::MAX;
        }
        let mut ids = Vec::new();
        let mut requests = Vec::new();
        for t in 0..n {
            if needed[t] {
                let tensor = &g.tensors[t];
                if tensor.dtype.fixed_size_bytes().is_none() {
                    return Err(EngineError::unsupported(format!(
                        "tensor {t} '{}' has type {}, which the interpreter cannot hold",
                        tensor.name, tensor.dtype
                    )));
                }
                ids.push(t);
                requests.push(Request {
                    size: tensor.byte_len(),
                    first: first[t].min(last[t]),
                    last: last[t],
                });
            }
        }
        let (offsets, total) = plan::plan(&requests);
        let mut arena = Arena::new(total);
        let mut slots = vec![None; n];
        for (&t, &offset) in ids.iter().zip(&offsets) {
            let tensor = &g.tensors[t];
            slots[t] = Some(Slot {
                offset,
                bytes: tensor.byte_len(),
                shape: tensor.shape.clone(),
                dtype: tensor.dtype,
            });
            if let Some(data) = &tensor.data {
                arena.bytes_mut(offset, data.len()).copy_from_slice(data);
            }
        }

        let pool = if opts.threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(opts.threads)
                    .thread_name(|i| format!("quantfarm-worker-{i}"))
                    .build()
                    .map_err(|e| {
                        EngineError::unsupported(format!("cannot start worker threads: {e}"))
                    })?,
            )
        } else {
            None
        };
        let info = |t: TensorId| TensorInfo {
            name: g.tensors[t].name.clone(),
            shape: g.tensors[t].shape.clone(),
            dtype: g.tensors[t].dtype,
            quant: g.tensors[t].quant.clone(),
        };
        Ok(Interpreter {
            times: vec![Duration::ZERO; steps.len()],
            slots,
            steps,
            arena,
            inputs: g.inputs.clone(),
            outputs: g.outputs.clone(),
            input_info: g.inputs.iter().map(|&t| info(t)).collect(),
            output_info: g.outputs.iter().map(|&t| info(t)).collect(),
            tensor_names: g.tensors.iter().map(|t| t.name.clone()).collect(),
            pool,
            par: Parallelism {
                threads: opts.threads,
            },
        })
    }

    pub fn inputs(&self) -> &[TensorInfo] {
        &self.input_info
    }

    pub fn outputs(&self) -> &[TensorInfo] {
        &self.output_info
    }

    /// Bytes of the static arena (activations plus run-time constants).
    pub fn arena_bytes(&self) -> usize {
        self.arena.len()
    }

    /// Set input `k` from raw little-endian bytes of its dtype.
    pub fn set_input_bytes(&mut self, k: usize, bytes: &[u8]) -> Result<()> {
        let info = self.input_info.get(k).ok_or_else(|| {
            EngineError::bad_input(format!(
                "model has {} inputs, no input {k}",
                self.inputs.len()
            ))
        })?;
        if bytes.len() != info.byte_len() {
            return Err(EngineError::bad_input(format!(
                "input {k} '{}' ({} {:?}) needs {} bytes, got {}",
                info.name,
                info.dtype,
                info.shape,
                info.byte_len(),
                bytes.len()
            )));
        }
        let slot = self.slots[self.inputs[k]]
            .as_ref()
            .expect("inputs are planned");
        self.arena
            .bytes_mut(slot.offset, slot.bytes)
            .copy_from_slice(bytes);
        Ok(())
    }

    /// Set a float32 input from values.
    pub fn set_input_f32(&mut self, k: usize, values: &[f32]) -> Result<()> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.set_input_bytes(k, &bytes)
    }

    /// Raw bytes of output `k` after `invoke`.
    pub fn output_bytes(&self, k: usize) -> &[u8] {
        let slot = self.slots[self.outputs[k]]
            .as_ref()
            .expect("outputs are planned");
        self.arena.bytes(slot.offset, slot.bytes)
    }

    /// Output `k` as float32 values (quantized outputs are dequantized).
    pub fn output_f32(&self, k: usize) -> Result<Vec<f32>> {
        let info = &self.output_info[k];
        let bytes = self.output_bytes(k);
        let (scale, zp) = info.quant.as_ref().map(|q| q.params(0)).unwrap_or((1.0, 0));
        let deq = |v: i64| ((v - zp) as f64 * scale as f64) as f32;
        Ok(match info.dtype {
            DType::F32 => crate::ir::bytes_to_f32(bytes),
            DType::U8 => bytes.iter().map(|&b| deq(b as i64)).collect(),
            DType::I8 => bytes.iter().map(|&b| deq(b as i8 as i64)).collect(),
            DType::I16 => bytes
                .chunks_exact(2)
                .map(|c| deq(i16::from_le_bytes([c[0], c[1]]) as i64))
                .collect(),
            DType::I32 => bytes
                .chunks_exact(4)
                .map(|c| deq(i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64))
                .collect(),
            DType::I64 => bytes
                .chunks_exact(8)
                .map(|c| deq(i64::from_le_bytes(c.try_into().expect("8 bytes"))))
                .collect(),
            other => {
                return Err(EngineError::unsupported(format!(
                    "output {k} has type {other}, not convertible to float"
                )));
            }
        })
    }

    /// Run all ops once.
    pub fn invoke(&mut self) {
        match self.pool.take() {
            Some(pool) => {
                pool.install(|| self.run_steps());
                self.pool = Some(pool);
            }
            None => self.run_steps(),
        }
    }

    /// Per-op times of the last `invoke`, in execution order.
    pub fn op_timings(&self) -> Vec<OpTiming> {
        self.steps
            .iter()
            .zip(&self.times)
            .map(|(s, &time)| OpTiming {
                index: s.op_index,
                op: s.name.clone(),
                output: s
                    .outputs
                    .first()
                    .map(|&t| self.tensor_names[t].clone())
                    .unwrap_or_default(),
                time,
            })
            .collect()
    }

    fn run_steps(&mut self) {
        for i in 0..self.steps.len() {
            let start = Instant::now();
            self.run_step(i);
            self.times[i] = start.elapsed();
        }
    }

    fn slot(&self, t: TensorId) -> &Slot {
        self.slots[t]
            .as_ref()
            .expect("every runtime tensor is planned")
    }

    /// Typed view of an input tensor.
    fn input<T: bytemuck_lite::Pod>(&self, t: TensorId) -> &[T] {
        let s = self.slot(t);
        // SAFETY: the planner gave this tensor its own 64-byte aligned region, the dtype
        // was checked against T at preparation, and inputs are only read during a step.
        unsafe {
            self.arena
                .typed::<T>(s.offset, s.bytes / std::mem::size_of::<T>())
        }
    }

    /// Typed mutable view of an output tensor.
    #[allow(clippy::mut_from_ref)]
    fn output<T: bytemuck_lite::Pod>(&self, t: TensorId) -> &mut [T] {
        let s = self.slot(t);
        // SAFETY: an op's outputs are live while its inputs are, so the planner placed
        // them in regions disjoint from every input; check_dataflow rejects a tensor
        // that is both input and output of one op. No other view of it exists now.
        unsafe {
            self.arena
                .typed_mut::<T>(s.offset, s.bytes / std::mem::size_of::<T>())
        }
    }

    fn run_step(&self, i: usize) {
        let step = &self.steps[i];
        let inp = |k: usize| step.inputs[k].expect("required inputs were checked");
        let out = step.outputs[0];
        let par = self.par;
        match &step.kernel {
            Kernel::ConvRef { p, filter, bias } => kernels::conv::conv2d_reference(
                p,
                self.input(inp(0)),
                filter,
                bias.as_deref(),
                self.output(out),
            ),
            Kernel::ConvFast(k) => k.run(self.input(inp(0)), self.output(out), par),
            Kernel::DepthwiseRef { p, filter, bias } => kernels::depthwise::depthwise_reference(
                p,
                self.input(inp(0)),
                filter,
                bias.as_deref(),
                self.output(out),
            ),
            Kernel::DepthwiseFast(k) => k.run(self.input(inp(0)), self.output(out), par),
            Kernel::FcRef { p, weights, bias } => {
                kernels::fully_connected::fully_connected_reference(
                    p,
                    self.input(inp(0)),
                    weights,
                    bias.as_deref(),
                    self.output(out),
                )
            }
            Kernel::FcFast(k) => k.run(self.input(inp(0)), self.output(out), par),
            Kernel::AvgPool(p) => {
                kernels::pool::average_pool(p, self.input(inp(0)), self.output(out))
            }
            Kernel::MaxPool(p) => kernels::pool::max_pool(p, self.input(inp(0)), self.output(out)),
            Kernel::BinaryF32 { op, min, max } => kernels::elementwise::binary_f32(
                *op,
                self.input(inp(0)),
                &self.slot(inp(0)).shape,
                self.input(inp(1)),
                &self.slot(inp(1)).shape,
                self.output(out),
                &self.slot(out).shape,
                *min,
                *max,
            ),
            Kernel::BinaryI32(op) => kernels::elementwise::binary_i32(
                *op,
                self.input(inp(0)),
                &self.slot(inp(0)).shape,
                self.input(inp(1)),
                &self.slot(inp(1)).shape,
                self.output(out),
                &self.slot(out).shape,
            ),
            Kernel::Unary(f) => f(self.input(inp(0)), self.output(out)),
            Kernel::Copy => {
                let src: &[u8] = self.input(inp(0));
                self.output::<u8>(out).copy_from_slice(src);
            }
            Kernel::Concat { axis } => {
                let size = self.slot(out).dtype.size_bytes();
                with_width!(size, T => {
                    let parts: Vec<(&[T], &[usize])> = step
                        .inputs
                        .iter()
                        .map(|t| {
                            let t = t.expect("checked");
                            (self.input::<T>(t), self.slot(t).shape.as_slice())
                        })
                        .collect();
                    kernels::shape_ops::concatenation(&parts, *axis, self.output::<T>(out));
                })
            }
            Kernel::Softmax { inner, beta } => {
                kernels::softmax::softmax(self.input(inp(0)), self.output(out), *inner, *beta)
            }
            Kernel::Mean { axes } => kernels::reduce::mean(
                self.input(inp(0)),
                &self.slot(inp(0)).shape,
                axes,
                self.output(out),
            ),
            Kernel::ResizeBilinear {
                align_corners,
                half_pixel_centers,
            } => {
                let s = &self.slot(inp(0)).shape;
                let o = &self.slot(out).shape;
                kernels::resize::resize_bilinear(
                    self.input(inp(0)),
                    [s[0], s[1], s[2], s[3]],
                    self.output(out),
                    o[1],
                    o[2],
                    *align_corners,
                    *half_pixel_centers,
                )
            }
            Kernel::Pad { paddings, value } => {
                let size = self.slot(out).dtype.size_bytes();
                let shape = &self.slot(inp(0)).shape;
                with_width!(size, T => {
                    kernels::shape_ops::pad::<T>(self.input(inp(0)), shape, paddings, *value as T, self.output(out))
                })
            }
            Kernel::StridedSlice(plan) => {
                let size = self.slot(out).dtype.size_bytes();
                let shape = &self.slot(inp(0)).shape;
                with_width!(size, T => {
                    kernels::shape_ops::strided_slice::<T>(self.input(inp(0)), shape, plan, self.output(out))
                })
            }
            Kernel::Transpose(perm) => {
                let size = self.slot(out).dtype.size_bytes();
                let shape = &self.slot(inp(0)).shape;
                with_width!(size, T => {
                    kernels::shape_ops::transpose::<T>(self.input(inp(0)), shape, perm, self.output(out))
                })
            }
            Kernel::Gather { axis } => {
                let size = self.slot(out).dtype.size_bytes();
                let shape = &self.slot(inp(0)).shape;
                let indices: Vec<i64> = match self.slot(inp(1)).dtype {
                    DType::I64 => self.input::<i64>(inp(1)).to_vec(),
                    _ => self
                        .input::<i32>(inp(1))
                        .iter()
                        .map(|&v| v as i64)
                        .collect(),
                };
                with_width!(size, T => {
                    // Indices are data, not structure: an out-of-range one leaves the
                    // output zeroed instead of aborting the run.
                    if kernels::shape_ops::gather::<T>(self.input(inp(0)), shape, &indices, *axis, self.output(out)).is_err() {
                        self.output::<T>(out).fill(0 as T);
                    }
                })
            }
            Kernel::ArgMax { axis } => {
                let in_slot = self.slot(inp(0));
                let shape = in_slot.shape.clone();
                let n_out = self.slot(out).shape.iter().product::<usize>();
                let mut idx = vec![0i64; n_out];
                match in_slot.dtype {
                    DType::F32 => {
                        kernels::argmax::arg_max(self.input::<f32>(inp(0)), &shape, *axis, &mut idx)
                    }
                    DType::U8 => {
                        kernels::argmax::arg_max(self.input::<u8>(inp(0)), &shape, *axis, &mut idx)
                    }
                    DType::I8 => {
                        kernels::argmax::arg_max(self.input::<i8>(inp(0)), &shape, *axis, &mut idx)
                    }
                    _ => {
                        kernels::argmax::arg_max(self.input::<i32>(inp(0)), &shape, *axis, &mut idx)
                    }
                }
                if self.slot(out).dtype == DType::I64 {
                    self.output::<i64>(out).copy_from_slice(&idx);
                } else {
                    for (o, v) in self.output::<i32>(out).iter_mut().zip(idx) {
                        *o = v as i32;
                    }
                }
            }
            Kernel::Quantize { scale, zero_point } => {
                let x = self.input::<f32>(inp(0));
                match self.slot(out).dtype {
                    DType::U8 => {
                        kernels::quantize::quantize::<u8>(x, self.output(out), *scale, *zero_point)
                    }
                    DType::I8 => {
                        kernels::quantize::quantize::<i8>(x, self.output(out), *scale, *zero_point)
                    }
                    _ => {
                        kernels::quantize::quantize::<i16>(x, self.output(out), *scale, *zero_point)
                    }
                }
            }
            Kernel::Dequantize { quant } => {
                let in_slot = self.slot(inp(0));
                let y = self.output::<f32>(out);
                if in_slot.dtype == DType::F16 {
                    kernels::quantize::dequantize_f16(self.input(inp(0)), y);
                    return;
                }
                let zps: Vec<i32> = quant.zero_point.iter().map(|&z| z as i32).collect();
                let shape = in_slot.shape.clone();
                macro_rules! deq {
                    ($t:ty) => {
                        if quant.is_per_axis() {
                            kernels::quantize::dequantize_per_axis::<$t>(
                                self.input(inp(0)),
                                &shape,
                                quant.axis,
                                &quant.scale,
                                &zps,
                                y,
                            )
                        } else {
                            let (s, z) = quant.params(0);
                            kernels::quantize::dequantize::<$t>(self.input(inp(0)), y, s, z as i32)
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
            Kernel::Cast => self.run_cast(inp(0), out),
        }
    }

    fn run_cast(&self, x: TensorId, y: TensorId) {
        let values: Vec<f64> = match self.slot(x).dtype {
            DType::F32 => self.input::<f32>(x).iter().map(|&v| v as f64).collect(),
            DType::U8 => self.input::<u8>(x).iter().map(|&v| v as f64).collect(),
            DType::I8 => self.input::<i8>(x).iter().map(|&v| v as f64).collect(),
            DType::I16 => self.input::<i16>(x).iter().map(|&v| v as f64).collect(),
            DType::I32 => self.input::<i32>(x).iter().map(|&v| v as f64).collect(),
            DType::I64 => self.input::<i64>(x).iter().map(|&v| v as f64).collect(),
            _ => self
                .input::<u8>(x)
                .iter()
                .map(|&v| (v != 0) as u8 as f64)
                .collect(),
        };
        // `as` saturates and truncates toward zero, as TFLite's static_cast does for
        // in-range values.
        match self.slot(y).dtype {
            DType::F32 => store(self.output::<f32>(y), &values, |v| v as f32),
            DType::U8 => store(self.output::<u8>(y), &values, |v| v as u8),
            DType::I8 => store(self.output::<i8>(y), &values, |v| v as i8),
            DType::I16 => store(self.output::<i16>(y), &values, |v| v as i16),
            DType::I32 => store(self.output::<i32>(y), &values, |v| v as i32),
            DType::I64 => store(self.output::<i64>(y), &values, |v| v as i64),
            _ => store(self.output::<u8>(y), &values, |v| (v != 0.0) as u8),
        }
    }
}

fn store<T>(out: &mut [T], values: &[f64], f: impl Fn(f64) -> T) {
    for (o, &v) in out.iter_mut().zip(values) {
        *o = f(v);
    }
}

/// Run `$body` with `$t` bound to the unsigned integer type of `$size` bytes: shape
/// ops only move elements, so one instantiation per width serves every dtype.
macro_rules! with_width {
    ($size:expr, $t:ident => $body:block) => {
        match $size {
            1 => {
                type $t = u8;
                $body
            }
            2 => {
                type $t = u16;
                $body
            }
            4 => {
                type $t = u32;
                $body
            }
            _ => {
                type $t = u64;
                $body
            }
        }
    };
}
use with_width;

/// Structural checks the memory plan relies on.
fn check_dataflow(g: &Graph) -> Result<()> {
    let n = g.tensors.len();
    let mut written = vec![false; n];
    for &t in &g.inputs {
        written[t] = true;
    }
    for (t, tensor) in g.tensors.iter().enumerate() {
        if tensor.is_constant() || tensor.is_variable {
            written[t] = true;
        }
    }
    for (i, op) in g.ops.iter().enumerate() {
        for &t in op.inputs.iter().flatten() {
            if !written[t] {
                return Err(EngineError::invalid(format!(
                    "operator {i} ({}) reads tensor {t} '{}' before any operator writes it",
                    op.kind.name(),
                    g.tensors[t].name
                )));
            }
        }
        for &t in &op.outputs {
            if op.inputs.contains(&Some(t)) {
                return Err(EngineError::invalid(format!(
                    "operator {i} ({}) uses tensor {t} as both input and output",
                    op.kind.name()
                )));
            }
            if written[t] && !g.tensors[t].is_variable {
                return Err(EngineError::invalid(format!(
                    "tensor {t} '{}' is written twice (by operator {i}, {})",
                    g.tensors[t].name,
                    op.kind.name()
                )));
            }
            written[t] = true;
        }
    }
    for &t in &g.outputs {
        if !written[t] {
            return Err(EngineError::invalid(format!(
                "output tensor {t} '{}' is never written",
                g.tensors[t].name
            )));
        }
    }
    Ok(())
}

fn shape_of(g: &Graph, t: TensorId) -> &[usize] {
    &g.tensors[t].shape
}

fn require_input(op: &Op, k: usize) -> Result<TensorId> {
    op.input(k)
        .ok_or_else(|| EngineError::invalid(format!("missing required input {k}")))
}

fn require_output(op: &Op) -> Result<TensorId> {
    op.outputs
        .first()
        .copied()
        .ok_or_else(|| EngineError::invalid("operator has no output"))
}

fn require_dtype(g: &Graph, t: TensorId, want: DType) -> Result<()> {
    let have = g.tensors[t].dtype;
    if have != want {
        let hint = if matches!(have, DType::U8 | DType::I8 | DType::I16) && want == DType::F32 {
            " (integer kernels are not implemented yet: dequantize the model first with `quantfarm convert --to float32`)"
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

fn const_f32(g: &Graph, t: TensorId, what: &str) -> Result<Vec<f32>> {
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

fn const_ints(g: &Graph, t: TensorId, what: &str) -> Result<Vec<i64>> {
    g.tensors[t].data_i64().ok_or_else(|| {
        EngineError::unsupported(format!(
            "{what} '{}' must be an int32/int64 constant",
            g.tensors[t].name
        ))
    })
}

fn act_range(a: Activation) -> Result<(f32, f32)> {
    a.float_range()
        .ok_or_else(|| EngineError::unsupported(format!("fused activation {a:?}")))
}

/// Output size and leading padding of one spatial dimension, as TFLite computes them.
fn out_and_pad(
    padding: Padding,
    input: usize,
    k: usize,
    stride: usize,
    dilation: usize,
) -> Result<(usize, usize)> {
    if stride == 0 || dilation == 0 || k == 0 {
        return Err(EngineError::invalid(
            "stride, dilation and kernel size must be positive",
        ));
    }
    let k_eff = (k - 1) * dilation + 1;
    let out = match padding {
        Padding::Same => input.div_ceil(stride),
        Padding::Valid => {
            if input < k_eff {
                return Err(EngineError::invalid(format!(
                    "VALID padding: input size {input} smaller than the kernel extent {k_eff}"
                )));
            }
            (input - k_eff) / stride + 1
        }
    };
    let total = ((out.saturating_sub(1)) * stride + k_eff).saturating_sub(input);
    Ok((out, total / 2))
}

fn expect_shape(g: &Graph, t: TensorId, want: &[usize]) -> Result<()> {
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

fn rank4(g: &Graph, t: TensorId) -> Result<[usize; 4]> {
    let s = shape_of(g, t);
    if s.len() != 4 {
        return Err(EngineError::invalid(format!(
            "tensor '{}' must be 4-D (NHWC), has shape {s:?}",
            g.tensors[t].name
        )));
    }
    Ok([s[0], s[1], s[2], s[3]])
}

fn optional_bias(g: &Graph, op: &Op, units: usize) -> Result<Option<Vec<f32>>> {
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

fn normalize_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) {
        return Err(EngineError::invalid(format!(
            "axis {axis} out of range for rank {rank}"
        )));
    }
    Ok(a as usize)
}

fn same_elements(g: &Graph, a: TensorId, b: TensorId) -> Result<()> {
    if g.tensors[a].num_elements() != g.tensors[b].num_elements() {
        return Err(EngineError::invalid(format!(
            "'{}' {:?} and '{}' {:?} differ in element count",
            g.tensors[a].name, g.tensors[a].shape, g.tensors[b].name, g.tensors[b].shape
        )));
    }
    Ok(())
}

fn prepare_op(g: &Graph, op: &Op, choice: KernelChoice) -> Result<Kernel> {
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
            let [n, h, wd, c] = rank4(g, x)?;
            let [oc, kh, kw, ic] = rank4(g, w)?;
            if ic != c {
                return Err(EngineError::unsupported(format!(
                    "filter depth {ic} differs from input depth {c} (grouped convolution)"
                )));
            }
            let (oh, pt) = out_and_pad(o.padding, h, kh, o.stride_h, o.dilation_h)?;
            let (ow, pl) = out_and_pad(o.padding, wd, kw, o.stride_w, o.dilation_w)?;
            expect_shape(g, y, &[n, oh, ow, oc])?;
            let (act_min, act_max) = act_range(o.activation)?;
            let p = ConvParams {
                batch: n,
                in_h: h,
                in_w: wd,
                in_c: c,
                out_h: oh,
                out_w: ow,
                out_c: oc,
                k_h: kh,
                k_w: kw,
                stride_h: o.stride_h,
                stride_w: o.stride_w,
                dilation_h: o.dilation_h,
                dilation_w: o.dilation_w,
                pad_top: pt,
                pad_left: pl,
                act_min,
                act_max,
            };
            let filter = const_f32(g, w, "filter")?;
            let bias = optional_bias(g, op, oc)?;
            p.check(
                g.tensors[x].num_elements(),
                filter.len(),
                bias.as_ref().map(Vec::len),
                g.tensors[y].num_elements(),
            )?;
            Ok(if fast {
                Kernel::ConvFast(PackedConv2D::new(&p, &filter, bias.as_deref()))
            } else {
                Kernel::ConvRef { p, filter, bias }
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
            let [n, h, wd, c] = rank4(g, x)?;
            let [one, kh, kw, oc] = rank4(g, w)?;
            if one != 1 || c == 0 || oc % c != 0 {
                return Err(EngineError::invalid(format!(
                    "depthwise filter shape {:?} does not fit input depth {c}",
                    shape_of(g, w)
                )));
            }
            let (oh, pt) = out_and_pad(o.padding, h, kh, o.stride_h, o.dilation_h)?;
            let (ow, pl) = out_and_pad(o.padding, wd, kw, o.stride_w, o.dilation_w)?;
            expect_shape(g, y, &[n, oh, ow, oc])?;
            let (act_min, act_max) = act_range(o.activation)?;
            let p = DepthwiseParams {
                batch: n,
                in_h: h,
                in_w: wd,
                in_c: c,
                out_h: oh,
                out_w: ow,
                depth_multiplier: oc / c,
                k_h: kh,
                k_w: kw,
                stride_h: o.stride_h,
                stride_w: o.stride_w,
                dilation_h: o.dilation_h,
                dilation_w: o.dilation_w,
                pad_top: pt,
                pad_left: pl,
                act_min,
                act_max,
            };
            let filter = const_f32(g, w, "filter")?;
            let bias = optional_bias(g, op, oc)?;
            p.check(
                g.tensors[x].num_elements(),
                filter.len(),
                bias.as_ref().map(Vec::len),
                g.tensors[y].num_elements(),
            )?;
            Ok(if fast {
                Kernel::DepthwiseFast(PackedDepthwise::new(&p, &filter, bias.as_deref()))
            } else {
                Kernel::DepthwiseRef { p, filter, bias }
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
                Kernel::FcFast(PackedFullyConnected::new(&p, &weights, bias.as_deref()))
            } else {
                Kernel::FcRef { p, weights, bias }
            })
        }
        AveragePool2D(o) | MaxPool2D(o) => {
            let (x, y) = (require_input(op, 0)?, require_output(op)?);
            require_dtype(g, x, DType::F32)?;
            require_dtype(g, y, DType::F32)?;
            let [n, h, w, c] = rank4(g, x)?;
            let (oh, pt) = out_and_pad(o.padding, h, o.filter_h, o.stride_h, 1)?;
            let (ow, pl) = out_and_pad(o.padding, w, o.filter_w, o.stride_w, 1)?;
            expect_shape(g, y, &[n, oh, ow, c])?;
            let (act_min, act_max) = act_range(o.activation)?;
            let p = PoolParams {
                batch: n,
                in_h: h,
                in_w: w,
                channels: c,
                out_h: oh,
                out_w: ow,
                filter_h: o.filter_h,
                filter_w: o.filter_w,
                stride_h: o.stride_h,
                stride_w: o.stride_w,
                pad_top: pt,
                pad_left: pl,
                act_min,
                act_max,
            };
            Ok(if matches!(op.kind, AveragePool2D(_)) {
                Kernel::AvgPool(p)
            } else {
                Kernel::MaxPool(p)
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
            Ok(Kernel::Unary(f))
        }
        Reshape { .. } | Squeeze { .. } => {
            let (x, y) = (require_input(op, 0)?, require_output(op)?);
            same_elements(g, x, y)?;
            if g.tensors[x].dtype != g.tensors[y].dtype {
                return Err(EngineError::invalid("reshape changes the element type"));
            }
            Ok(Kernel::Copy)
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
            Ok(Kernel::Concat { axis })
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
            Ok(Kernel::Softmax { inner, beta: *beta })
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
            Ok(Kernel::Mean { axes })
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
            Ok(Kernel::ResizeBilinear {
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
            Ok(Kernel::Pad { paddings, value })
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
            Ok(Kernel::StridedSlice(plan))
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
            Ok(Kernel::Transpose(perm_u))
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
            Ok(Kernel::Gather { axis })
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
            Ok(Kernel::ArgMax { axis })
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
            Ok(Kernel::Quantize {
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
            Ok(Kernel::Dequantize { quant })
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
            Ok(Kernel::Cast)
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

fn binary(g: &Graph, op: &Op, bop: BinaryOp, activation: Activation) -> Result<Kernel> {
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
            Ok(Kernel::BinaryF32 { op: bop, min, max })
        }
        DType::I32 if g.tensors[y].quant.is_none() && activation == Activation::None => {
            Ok(Kernel::BinaryI32(bop))
        }
        _ => require_dtype(g, y, DType::F32).map(|_| unreachable!()),
    }
}

/// The few plain-old-data types the arena hands out as typed slices.
pub(crate) mod bytemuck_lite {
    /// # Safety
    /// Implementors must be plain data: any bit pattern valid, no padding, no drop.
    pub unsafe trait Pod: Copy + 'static {}
    unsafe impl Pod for u8 {}
    unsafe impl Pod for i8 {}
    unsafe impl Pod for u16 {}
    unsafe impl Pod for i16 {}
    unsafe impl Pod for u32 {}
    unsafe impl Pod for i32 {}
    unsafe impl Pod for u64 {}
    unsafe impl Pod for i64 {}
    unsafe impl Pod for f32 {}
    unsafe impl Pod for half::f16 {}
}

//! The interpreter: validates a graph once, plans its memory and checks the plan
//! against the memory limit before allocating anything large, packs weights, then runs
//! the ops in order with no arena allocation per inference and a timing per op.

use std::time::{Duration, Instant};

use super::arena::Arena;
use super::float_ops::prepare_float;
use super::kernels::{KernelChoice, Parallelism, SparseMode};
use super::memory::{self, MemoryPlan, PlanOptions};
use super::parallel::ThreadPool;
use super::prepare::{OpKernel, Prepared};
use super::quant_ops;
use super::tensors::{Slot, Tensors};
use crate::error::{EngineError, Result};
use crate::ir::{DType, Graph, Model, Op, OpKind, Quantization, TensorId};
use crate::measure::limits::default_memory_limit;

/// Settings of an interpreter instance.
#[derive(Debug, Clone, Copy)]
pub struct InterpreterOptions {
    /// Worker threads for the heavy kernels (1 = run on the calling thread only).
    pub threads: usize,
    pub kernels: KernelChoice,
    /// Whether a float 1×1 CONV_2D with mostly zero weights may run sparse
    /// (fast kernels only). Default [`SparseMode::Auto`].
    pub sparse: SparseMode,
    /// Keep every intermediate tensor readable after `invoke` (calibration needs them;
    /// costs memory because nothing is reused).
    pub preserve_all_tensors: bool,
    /// Refuse a model whose planned memory ([`MemoryPlan`]) is above this many bytes,
    /// before allocating any of it. Default: [`default_memory_limit`] (half of the
    /// machine's memory).
    pub memory_limit: u64,
    /// Float32 copies of every model input the caller will hold while running it
    /// (decoded and resized images, input bytes), planned with the interpreter.
    /// Default 2: a caller that sets inputs from float values (one copy) or bytes.
    pub input_copies: u32,
    /// Further bytes the caller will hold beside the interpreter, planned with it.
    pub extra_bytes: u64,
}

impl Default for InterpreterOptions {
    fn default() -> Self {
        InterpreterOptions {
            threads: 1,
            kernels: KernelChoice::Fast,
            sparse: SparseMode::Auto,
            preserve_all_tensors: false,
            memory_limit: default_memory_limit(),
            input_copies: 2,
            extra_bytes: 0,
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
    /// The kernel variant, when preparation chose a special one (e.g. `sparse 1x1,
    /// 75% zeros`).
    pub kernel: Option<String>,
}

struct Step {
    op_index: usize,
    name: String,
    kernel: Box<dyn OpKernel>,
    /// [`OpKernel::variant`], asked once.
    variant: Option<String>,
    inputs: Vec<Option<TensorId>>,
    outputs: Vec<TensorId>,
    /// Round this op's float32 outputs to half precision after it runs
    /// ([`Interpreter::new_fp16`]).
    round_f16: bool,
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
    pool: Option<ThreadPool>,
    par: Parallelism,
    times: Vec<Duration>,
    memory: MemoryPlan,
    /// Float32 model inputs rounded to half precision when an inference starts
    /// ([`Interpreter::new_fp16`]).
    fp16_inputs: Vec<TensorId>,
}

impl Interpreter {
    /// Prepare subgraph 0 of `model`. Every shape and parameter is checked here, so
    /// `invoke` cannot fail on a model this accepted. The memory plan is computed from
    /// the shapes and checked against `opts.memory_limit` before anything large is
    /// allocated ([`EngineError::TooLarge`]).
    pub fn new(model: &Model, opts: InterpreterOptions) -> Result<Interpreter> {
        model.validate()?;
        if opts.threads == 0 {
            return Err(EngineError::bad_input("thread count must be at least 1"));
        }
        let g0 = model.main();
        check_dataflow(g0)?;
        let folds: Vec<bool> = g0
            .ops
            .iter()
            .map(|op| is_f16_const_dequantize(g0, op))
            .collect();
        let layout = memory::plan_graph(g0, &folds, &plan_options(&opts))?;
        layout.plan.check(opts.memory_limit, g0)?;

        // Nothing large was allocated before this point.
        let folded = fold_constant_f16(g0, &folds);
        let g = folded.as_ref().unwrap_or(g0);
        check_dataflow(g)?;

        let mut steps = Vec::with_capacity(g.ops.len());
        for (i, op) in g.ops.iter().enumerate() {
            let prepared = prepare_op(g, op, opts.kernels, opts.sparse).map_err(|e| match e {
                EngineError::Unsupported(m) => {
                    EngineError::Unsupported(format!("operator {i} ({}): {m}", op.kind.name()))
                }
                EngineError::InvalidModel(m) => {
                    EngineError::InvalidModel(format!("operator {i} ({}): {m}", op.kind.name()))
                }
                other => other,
            })?;
            // The arena was planned with the inputs every family packs; a kernel that
            // packs others would read tensors that have no place.
            let mut packed: Vec<usize> = prepared
                .packed_inputs
                .iter()
                .copied()
                .filter(|&k| op.input(k).is_some())
                .collect();
            packed.sort_unstable();
            if layout.packed_inputs.get(i) != Some(&packed) {
                return Err(EngineError::unsupported(format!(
                    "operator {i} ({}): its kernel copies inputs {packed:?}, the memory plan \
                     expected {:?} (an engine bug)",
                    op.kind.name(),
                    layout.packed_inputs.get(i)
                )));
            }
            steps.push(Step {
                op_index: i,
                name: op.kind.name(),
                variant: prepared.kernel.variant(),
                kernel: prepared.kernel,
                inputs: op.inputs.clone(),
                outputs: op.outputs.clone(),
                round_f16: false,
            });
        }
        if let Some(t) = layout.unsized_tensor {
            let tensor = &g.tensors[t];
            return Err(EngineError::unsupported(format!(
                "tensor {t} '{}' has type {}, which the interpreter cannot hold",
                tensor.name, tensor.dtype
            )));
        }

        let n = g.tensors.len();
        let mut arena = Arena::new(layout.arena_len);
        let mut slots = vec![None; n];
        for (&t, &offset) in layout.ids.iter().zip(&layout.offsets) {
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
            Some(ThreadPool::new(opts.threads)?)
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
            memory: layout.plan,
            fp16_inputs: Vec::new(),
        })
    }

    /// What this interpreter was planned to hold at most (checked against the limit).
    pub fn memory_plan(&self) -> MemoryPlan {
        self.memory
    }

    /// Prepare `model` as a device that stores float tensors in IEEE half precision
    /// runs it (a mobile GPU delegate allowed to lose precision): for every op `i` with
    /// `on_fp16_device[i]` (indices of `model`'s ops), its float32 constant inputs are
    /// rounded to half precision once here, its float32 outputs after every run, and the
    /// model's float32 inputs it reads when an inference starts. Arithmetic inside an op
    /// stays float32, and ops not flagged run as [`Interpreter::new`] runs them. The
    /// rounded copy of the model is planned with the rest, before it is made.
    pub fn new_fp16(
        model: &Model,
        opts: InterpreterOptions,
        on_fp16_device: &[bool],
    ) -> Result<Interpreter> {
        model.validate()?;
        let g = model.main();
        if on_fp16_device.len() != g.ops.len() {
            return Err(EngineError::bad_input(format!(
                "fp16 placement names {} ops, the model has {}",
                on_fp16_device.len(),
                g.ops.len()
            )));
        }
        let opts = InterpreterOptions {
            extra_bytes: opts.extra_bytes.saturating_add(model.memory_bytes()),
            ..opts
        };
        check_dataflow(g)?;
        let folds: Vec<bool> = g
            .ops
            .iter()
            .map(|op| is_f16_const_dequantize(g, op))
            .collect();
        memory::plan_graph(g, &folds, &plan_options(&opts))?
            .plan
            .check(opts.memory_limit, g)?;
        let flagged = |i: usize| on_fp16_device[i];
        let mut rounded = model.clone();
        let rg = rounded.main_mut();
        for (i, op) in g.ops.iter().enumerate() {
            if !flagged(i) {
                continue;
            }
            for &t in op.inputs.iter().flatten() {
                let tensor = &mut rg.tensors[t];
                if tensor.dtype == DType::F32
                    && let Some(data) = tensor.data.as_mut()
                {
                    round_f32_bytes_to_f16(data);
                }
            }
        }
        let mut interp = Interpreter::new(&rounded, opts)?;
        // Steps are the model's ops minus the float16 DEQUANTIZEs folded away.
        let kept: Vec<usize> = (0..g.ops.len()).filter(|&i| !folds[i]).collect();
        for (step, &i) in interp.steps.iter_mut().zip(&kept) {
            step.op_index = i;
            step.round_f16 = flagged(i);
        }
        interp.fp16_inputs =
            g.inputs
                .iter()
                .copied()
                .filter(|&t| {
                    g.tensors[t].dtype == DType::F32
                        && g.ops.iter().enumerate().any(|(i, op)| {
                            flagged(i) && op.inputs.iter().flatten().any(|&x| x == t)
                        })
                })
                .collect();
        Ok(interp)
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

    /// Raw bytes of any tensor that lives in the arena (constants read at run time,
    /// activations). Intermediate activations hold the last `invoke`'s values only with
    /// `preserve_all_tensors`; otherwise their memory may have been reused.
    pub fn tensor_bytes(&self, t: TensorId) -> Option<&[u8]> {
        let slot = self.slots.get(t)?.as_ref()?;
        Some(self.arena.bytes(slot.offset, slot.bytes))
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

    /// How many ops run a sparse kernel ([`OpTiming::kernel`] starting with `sparse`).
    pub fn sparse_ops(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| {
                s.variant
                    .as_deref()
                    .is_some_and(|v| v.starts_with("sparse"))
            })
            .count()
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
                kernel: s.variant.clone(),
            })
            .collect()
    }

    fn run_steps(&mut self) {
        for k in 0..self.fp16_inputs.len() {
            self.round_tensor_f16(self.fp16_inputs[k]);
        }
        for i in 0..self.steps.len() {
            let start = Instant::now();
            self.run_step(i);
            if self.steps[i].round_f16 {
                for k in 0..self.steps[i].outputs.len() {
                    self.round_tensor_f16(self.steps[i].outputs[k]);
                }
            }
            self.times[i] = start.elapsed();
        }
    }

    /// Round a float32 tensor of the arena to the nearest half-precision value.
    fn round_tensor_f16(&mut self, t: TensorId) {
        if let Some(slot) = &self.slots[t]
            && slot.dtype == DType::F32
        {
            let (offset, len) = (slot.offset, slot.bytes);
            round_f32_bytes_to_f16(self.arena.bytes_mut(offset, len));
        }
    }
    fn tensors(&self) -> Tensors<'_> {
        Tensors {
            arena: &self.arena,
            slots: &self.slots,
        }
    }

    fn run_step(&self, i: usize) {
        let step = &self.steps[i];
        step.kernel
            .run(&self.tensors(), &step.inputs, &step.outputs, self.par);
    }
}

/// A DEQUANTIZE of a float16 constant into float32: expanded before preparation.
fn is_f16_const_dequantize(g: &Graph, op: &Op) -> bool {
    matches!(op.kind, OpKind::Dequantize)
        && op
            .input(0)
            .is_some_and(|t| g.tensors[t].dtype == DType::F16 && g.tensors[t].is_constant())
        && op.outputs.len() == 1
        && g.tensors[op.outputs[0]].dtype == DType::F32
}

/// Float16-quantized models store weights as FLOAT16 constants, each read through a
/// DEQUANTIZE. Like TFLite, expand them once to float32 constants before preparation
/// so the float kernels see (and pack) ordinary float weights. `folds` marks those
/// DEQUANTIZEs ([`is_f16_const_dequantize`]); `None`: nothing to fold.
fn fold_constant_f16(g: &Graph, folds: &[bool]) -> Option<Graph> {
    if !folds.iter().any(|&f| f) {
        return None;
    }
    let mut out = g.clone();
    out.ops.clear();
    for (op, &fold) in g.ops.iter().zip(folds) {
        if fold {
            let src = op.input(0).expect("checked");
            let data = g.tensors[src].data.as_ref().expect("checked");
            let values: Vec<u8> = data
                .chunks_exact(2)
                .flat_map(|c| {
                    half::f16::from_le_bytes([c[0], c[1]])
                        .to_f32()
                        .to_le_bytes()
                })
                .collect();
            out.tensors[op.outputs[0]].data = Some(values);
        } else {
            out.ops.push(op.clone());
        }
    }
    Some(out)
}

/// Round little-endian float32 values in place to the nearest half-precision value
/// (ties to even; beyond the half range to ±infinity, as half-precision hardware does).
fn round_f32_bytes_to_f16(bytes: &mut [u8]) {
    for c in bytes.chunks_exact_mut(4) {
        let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        c.copy_from_slice(&half::f16::from_f32(v).to_f32().to_le_bytes());
    }
}

/// What the memory plan needs of the options.
fn plan_options(opts: &InterpreterOptions) -> PlanOptions {
    PlanOptions {
        threads: opts.threads,
        preserve_all_tensors: opts.preserve_all_tensors,
        input_copies: opts.input_copies,
        extra_bytes: opts.extra_bytes,
    }
}

/// Pick the op family by the tensors' types and prepare the op.
fn prepare_op(g: &Graph, op: &Op, choice: KernelChoice, sparse: SparseMode) -> Result<Prepared> {
    quant_ops::prepare(g, op, choice).unwrap_or_else(|| prepare_float(g, op, choice, sparse))
}

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

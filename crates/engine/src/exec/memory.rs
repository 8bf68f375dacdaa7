//! The memory plan of a model: everything large that preparing and running it will
//! hold, computed from the graph's shapes alone before anything large is allocated, so
//! that a model whose shapes claim huge tensors is refused instead of aborting the
//! process on a failed allocation (`measure::limits` documents the limit).
//!
//! The plan is an upper bound, by kind:
//! - **arena**: the static memory plan itself (`plan.rs`), exactly as the interpreter
//!   will allocate it;
//! - **packed weights**: what the kernels copy out of the constants at preparation
//!   (panels padded to whole register blocks, widened types, per-channel constants);
//! - **scratch**: the largest op's temporaries — while preparing it, or per inference —
//!   plus the per-thread buffers of every worker (im2col blocks, packed input rows);
//! - **other**: the interpreter's own bookkeeping per tensor and op, a copy of the graph
//!   when float16 weights are expanded, and what the caller declared it will hold
//!   beside the interpreter (copies of the inputs, calibration statistics).
//!
//! The formulas follow the kernels' allocation sites with margins (channels padded to
//! 64, depths to 16, 64-bit elements for decoded constants). Every product saturates, so
//! a size that does not fit in 64 bits becomes a plan above any limit.
//! `crates/engine/tests/memory_plan.rs` counts the bytes preparation and inference really
//! allocate, on every ISA and kernel choice, and checks they stay below the plan.

use std::ops::{Add, Mul};

use super::plan::{self, Request};
use super::quant_ops::lstm_packed_slots;
use crate::error::{EngineError, Result};
use crate::ir::{DType, Graph, Op, OpKind, TensorId};
use crate::measure::limits::format_bytes;

/// What preparing and running a model holds at most, by kind, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryPlan {
    /// The activation arena (every tensor read or written at run time).
    pub arena: u64,
    /// Weights and biases the kernels copy and pack at preparation.
    pub packed: u64,
    /// Kernel temporaries of the largest op and the per-thread buffers of the workers.
    pub scratch: u64,
    /// Bookkeeping, an expanded copy of the graph, and the caller's declared buffers.
    pub other: u64,
}

impl MemoryPlan {
    /// The sum (saturating: a plan that does not fit in 64 bits is above any limit).
    pub fn total(&self) -> u64 {
        self.arena
            .saturating_add(self.packed)
            .saturating_add(self.scratch)
            .saturating_add(self.other)
    }

    /// `Ok` when the plan fits in `limit` bytes, else the refusal, with the breakdown and
    /// the largest tensor of `g` (the usual culprit).
    pub(crate) fn check(&self, limit: u64, g: &Graph) -> Result<()> {
        let total = self.total();
        if total <= limit {
            return Ok(());
        }
        let needs = if total == u64::MAX {
            "more than 16 EiB".to_string()
        } else {
            format_bytes(total)
        };
        let largest = g
            .tensors
            .iter()
            .enumerate()
            // The first of the largest.
            .min_by_key(|(_, t)| std::cmp::Reverse(t.checked_byte_len().unwrap_or(u64::MAX)))
            .map(|(i, t)| {
                format!(
                    "; its largest tensor is {i} '{}' {:?} {}, {}",
                    t.name,
                    t.shape,
                    t.dtype,
                    format_bytes(t.checked_byte_len().unwrap_or(u64::MAX))
                )
            })
            .unwrap_or_default();
        Err(EngineError::too_large(format!(
            "model needs {needs} to prepare (arena {}, packed weights {}, scratch {}, other {}), \
             above the memory limit of {}{largest}; set --memory-limit to raise it",
            format_bytes(self.arena),
            format_bytes(self.packed),
            format_bytes(self.scratch),
            format_bytes(self.other),
            format_bytes(limit)
        )))
    }
}

/// What the plan needs to know about the interpreter's options.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanOptions {
    pub threads: usize,
    pub preserve_all_tensors: bool,
    /// Float32 copies of every model input the caller holds while running.
    pub input_copies: u32,
    /// Further bytes the caller holds beside the interpreter.
    pub extra_bytes: u64,
}

/// The arena layout and the memory plan of a graph.
pub(crate) struct Layout {
    pub plan: MemoryPlan,
    /// Tensors that live in the arena, and their offsets.
    pub ids: Vec<TensorId>,
    pub offsets: Vec<usize>,
    pub arena_len: usize,
    /// Per kept op (in execution order): the input slots its kernel copies at
    /// preparation, which need no place in the arena.
    pub packed_inputs: Vec<Vec<usize>>,
    /// The first arena tensor whose type has no fixed size (the interpreter refuses it
    /// after preparing the ops, so that op errors come first).
    pub unsized_tensor: Option<TensorId>,
}

/// Input slots whose constants the op's kernel copies at preparation in every family
/// that takes it: weights and bias of conv, depthwise and FC; every constant of an LSTM.
pub(crate) fn packed_inputs(op: &Op) -> Vec<usize> {
    let slots = match &op.kind {
        OpKind::Conv2D(_) | OpKind::DepthwiseConv2D(_) | OpKind::FullyConnected(_) => vec![1, 2],
        OpKind::UnidirectionalSequenceLstm(_) => lstm_packed_slots(op),
        _ => Vec::new(),
    };
    slots
        .into_iter()
        .filter(|&k| op.input(k).is_some())
        .collect()
}

/// Plan `g` with the ops where `folded` is true left out: they are the DEQUANTIZEs of
/// float16 constants the interpreter expands before preparing (their outputs become
/// float32 constants).
pub(crate) fn plan_graph(g: &Graph, folded: &[bool], opts: &PlanOptions) -> Result<Layout> {
    let n = g.tensors.len();
    let mut bytes = Vec::with_capacity(n);
    for (t, tensor) in g.tensors.iter().enumerate() {
        let b = tensor.checked_byte_len().ok_or_else(|| {
            EngineError::too_large(format!(
                "tensor {t} '{}' of shape {:?} {} has more bytes than 64 bits can count",
                tensor.name, tensor.shape, tensor.dtype
            ))
        })?;
        bytes.push(b);
    }
    let mut constant: Vec<bool> = g
        .tensors
        .iter()
        .map(|t| t.is_constant() || t.is_variable)
        .collect();
    let mut fold_bytes = Sat(0);
    for (op, _) in g.ops.iter().zip(folded).filter(|(_, f)| **f) {
        for &t in &op.outputs {
            constant[t] = true;
            fold_bytes = fold_bytes + bytes[t];
        }
    }
    let kept: Vec<&Op> = g
        .ops
        .iter()
        .zip(folded)
        .filter(|(_, f)| !**f)
        .map(|(op, _)| op)
        .collect();

    // Lifetimes, as TFLite's arena planner: op-index intervals.
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    let mut needed = vec![false; n];
    let end = kept.len();
    for &t in &g.inputs {
        needed[t] = true;
        first[t] = 0;
    }
    let mut packed_by_op = Vec::with_capacity(kept.len());
    for (i, op) in kept.iter().enumerate() {
        let packed = packed_inputs(op);
        for (k, &t) in op.inputs.iter().enumerate() {
            let Some(t) = t else { continue };
            if packed.contains(&k) {
                continue;
            }
            needed[t] = true;
            last[t] = last[t].max(i);
            if constant[t] {
                first[t] = 0;
                last[t] = usize::MAX;
            }
        }
        for &t in &op.outputs {
            needed[t] = true;
            first[t] = first[t].min(i);
            last[t] = last[t].max(i);
        }
        packed_by_op.push(packed);
    }
    for &t in &g.outputs {
        needed[t] = true;
        first[t] = first[t].min(end);
        last[t] = usize::MAX;
    }
    if opts.preserve_all_tensors {
        last.iter_mut().for_each(|l| *l = usize::MAX);
    }
    let mut ids = Vec::new();
    let mut requests = Vec::new();
    let mut unsized_tensor = None;
    for t in (0..n).filter(|&t| needed[t]) {
        let size = if g.tensors[t].dtype.fixed_size_bytes().is_some() {
            usize::try_from(bytes[t]).map_err(|_| {
                EngineError::too_large(format!(
                    "tensor {t} '{}' of {} bytes does not fit in this machine's memory",
                    g.tensors[t].name, bytes[t]
                ))
            })?
        } else {
            unsized_tensor.get_or_insert(t);
            0
        };
        ids.push(t);
        requests.push(Request {
            size,
            first: first[t].min(last[t]),
            last: last[t],
        });
    }
    let (offsets, arena_len) = plan::plan(&requests);

    let sizes = Sizes {
        g,
        bytes: &bytes,
        constant: &constant,
    };
    let (mut packed, mut prep, mut run, mut per_thread) = (Sat(0), Sat(0), Sat(0), Sat(0));
    for op in &kept {
        let c = sizes.op_cost(op);
        packed = packed + c.packed;
        prep = prep.max(c.prep);
        run = run.max(c.run);
        per_thread = per_thread.max(c.per_thread);
    }
    let threads = opts.threads.max(1) as u64;
    let scratch = prep.max(run + per_thread * threads);

    // Bookkeeping: slots, lifetimes, names and shapes per tensor; steps, kernels and
    // their small tables per op.
    let mut other = Sat(0);
    for t in &g.tensors {
        other = other + TENSOR_OVERHEAD + t.name.len() as u64 + 16 * t.shape.len() as u64;
    }
    other = other + Sat(OP_OVERHEAD) * kept.len() as u64;
    if folded.iter().any(|&f| f) {
        other = other + g.memory_bytes() + fold_bytes;
    }
    for &t in &g.inputs {
        let elems = bytes[t] / g.tensors[t].dtype.fixed_size_bytes().unwrap_or(1) as u64;
        other = other + Sat(elems) * 4 * u64::from(opts.input_copies);
    }
    other = other + opts.extra_bytes;

    Ok(Layout {
        plan: MemoryPlan {
            arena: arena_len as u64,
            packed: packed.0,
            scratch: scratch.0,
            other: other.0,
        },
        ids,
        offsets,
        arena_len,
        packed_inputs: packed_by_op,
        unsized_tensor,
    })
}

/// Per tensor: its slot, lifetime and request in the plan, its name and shape copies.
const TENSOR_OVERHEAD: u64 = 256;
/// Per op: the step, the boxed kernel and the small tables some kernels keep (lookup
/// tables of 8-bit activations and int16 softmax, add/sub tables).
const OP_OVERHEAD: u64 = 16 << 10;

/// What one op holds (bytes).
#[derive(Debug, Clone, Copy, Default)]
struct OpCost {
    /// Kept by its kernel for the interpreter's lifetime.
    packed: Sat,
    /// Temporaries while preparing it (decoded constants).
    prep: Sat,
    /// Temporaries of one inference, on the calling thread.
    run: Sat,
    /// Temporaries of one worker thread (each thread at most this at once).
    per_thread: Sat,
}

/// The family that takes a conv-like op, by its tensors' types (as the families claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConvFamily {
    Integer,
    Hybrid,
    Float,
}

struct Sizes<'a> {
    g: &'a Graph,
    bytes: &'a [u64],
    constant: &'a [bool],
}

impl Sizes<'_> {
    fn elems(&self, t: Option<TensorId>) -> Sat {
        Sat(t.map_or(0, |t| {
            self.bytes[t] / self.g.tensors[t].dtype.fixed_size_bytes().unwrap_or(1) as u64
        }))
    }

    fn dim(&self, t: Option<TensorId>, i: usize) -> u64 {
        t.and_then(|t| self.g.tensors[t].shape.get(i).copied())
            .unwrap_or(1) as u64
    }

    fn last_dim(&self, t: Option<TensorId>) -> u64 {
        t.and_then(|t| self.g.tensors[t].shape.last().copied())
            .unwrap_or(1) as u64
    }

    /// Elements of every constant input (decoded to at most 8 bytes each at preparation).
    fn const_input_elems(&self, op: &Op) -> Sat {
        op.inputs
            .iter()
            .flatten()
            .filter(|&&t| self.constant[t])
            .fold(Sat(0), |s, &t| s + self.elems(Some(t)))
    }

    fn conv_family(&self, op: &Op) -> ConvFamily {
        let (Some(x), Some(w)) = (op.input(0), op.input(1)) else {
            return ConvFamily::Float;
        };
        let (xt, wt) = (&self.g.tensors[x], &self.g.tensors[w]);
        let quantized = xt.quant.as_ref().is_some_and(|q| !q.scale.is_empty());
        let int_weights = matches!(wt.dtype, DType::U8 | DType::I8) && self.constant[w];
        if matches!(xt.dtype, DType::U8 | DType::I8 | DType::I16) && quantized && int_weights {
            ConvFamily::Integer
        } else if xt.dtype == DType::F32 && wt.dtype == DType::I8 && self.constant[w] {
            ConvFamily::Hybrid
        } else {
            ConvFamily::Float
        }
    }

    fn op_cost(&self, op: &Op) -> OpCost {
        match &op.kind {
            OpKind::Conv2D(_) | OpKind::FullyConnected(_) => self.gemm_cost(op),
            OpKind::DepthwiseConv2D(_) => self.depthwise_cost(op),
            OpKind::UnidirectionalSequenceLstm(o) => {
                let x = op.input(0);
                // Scratch rows: the batch of a time-major sequence, else one row.
                let rows = if o.time_major { self.dim(x, 1) } else { 1 };
                let n_cell = self.dim(op.input(2), 0).max(self.dim(op.input(6), 1));
                let consts = op
                    .inputs
                    .iter()
                    .flatten()
                    .filter(|&&t| self.constant[t])
                    .fold(Sat(0), |s, &t| s + self.bytes[t]);
                OpCost {
                    packed: consts * 2 + Sat(n_cell) * 256 + Sat(rows) * n_cell * 32,
                    prep: consts * 2,
                    ..OpCost::default()
                }
            }
            // Other ops decode their constant operands (axes, paddings, shapes, ...)
            // to at most 8 bytes per element.
            _ => OpCost {
                prep: self.const_input_elems(op) * 8,
                run: self.run_temporaries(op),
                ..OpCost::default()
            },
        }
    }

    /// Temporaries one inference of a non-conv op allocates.
    fn run_temporaries(&self, op: &Op) -> Sat {
        let (x, y) = (op.input(0), op.outputs.first().copied());
        let lists = Sat((op.inputs.len() + op.outputs.len()) as u64) * 64;
        let ranks = op
            .inputs
            .iter()
            .flatten()
            .chain(&op.outputs)
            .map(|&t| self.g.tensors[t].shape.len() as u64)
            .max()
            .unwrap_or(0);
        let small = lists + Sat(ranks) * 64;
        small
            + match &op.kind {
                // Indices widened to int64.
                OpKind::Gather { .. } | OpKind::GatherNd => self.elems(op.input(1)) * 8,
                // Indices as int64, or every value as f64.
                OpKind::ArgMax { .. } => self.elems(y) * 8,
                OpKind::Cast => self.elems(x) * 8,
                // Int32 sums per output.
                OpKind::Mean { .. } => self.elems(y) * 8,
                // Per-channel sums.
                OpKind::AveragePool2D(_) | OpKind::MaxPool2D(_) => Sat(self.dim(x, 3)) * 8,
                // Column coordinates.
                OpKind::ResizeBilinear { .. } => Sat(self.dim(y, 2)) * 32,
                // Zero points as int32.
                OpKind::Dequantize => {
                    Sat(x.map_or(0, |t| {
                        self.g.tensors[t]
                            .quant
                            .as_ref()
                            .map_or(0, |q| q.zero_point.len() as u64)
                    })) * 4
                }
                _ => Sat(0),
            }
    }

    /// CONV_2D and FULLY_CONNECTED: a GEMM of `n` output channels over depth `k`.
    fn gemm_cost(&self, op: &Op) -> OpCost {
        let (x, w, b) = (op.input(0), op.input(1), op.input(2));
        let we = self.elems(w);
        let n = self.dim(w, 0);
        let k = we.0 / n.max(1);
        let (np, kp) = (Sat(n.next_multiple_of(64)), Sat(k.next_multiple_of(16)));
        let bias = self.elems(b) * 8;
        match self.conv_family(op) {
            // Float: weights decoded to f32, packed in 16-wide panels (or kept as they
            // are by the reference kernel); per thread an im2col block, a packed A
            // block (each about 128 KiB, or a few rows of depth `k`) and a GEMV row.
            // The sparse 1×1 kernel (chosen only with ≥ 70% zeros) keeps 8 bytes per
            // non-zero, 12 per channel: at most 2.4·n·k + 12·n + 8 bytes, below the
            // panels' 4·np·kp + 4·np; its per-thread scratch, (k + 16) × 32 floats, is
            // below the im2col allowance (`sparse_conv` test `memory_plan_formula_covers_it`).
            ConvFamily::Float => OpCost {
                packed: np * kp * 4 + np * 4,
                prep: we * 4 + bias,
                run: Sat(k) * 4,
                per_thread: Sat(k) * 160 + (256 << 10) + 4096,
            },
            // Integer: the 8-bit GEMM packs bytes (AVX2: int16) in 16-channel blocks of
            // depth padded to 4, int16x8 int16 panels; per channel the column sums,
            // nudges, requantization constants and biases. The reference kernel keeps
            // the weights as they are. Per thread: up to 128 packed input rows (AMX
            // chunks; depth padded to 64), their sums, the AMX chunk's int32 sums
            // (128 rows × the channels) or a tile of int64 accumulators.
            ConvFamily::Integer => OpCost {
                packed: np * kp * 2 + np * 160 + we,
                prep: we * 2 + Sat(n) * 24 + bias,
                run: Sat(0),
                per_thread: Sat(k.next_multiple_of(64)) * 128 + np * 512 + Sat(k) * 8 + 4096,
            },
            // Hybrid: int8 weights widened to int16 rows in 16-row blocks, or int8 quads
            // and their row sums on VNNI (reference: kept as int8), float scales and
            // bias; each inference quantizes the input (an int16 copy of an image and,
            // on VNNI, its biased bytes; or int8 rows with a scale and offset each).
            ConvFamily::Hybrid => {
                let xe = self.elems(x);
                let rows = Sat(xe.0 / k.max(1));
                OpCost {
                    packed: np * kp * 2 + np * 16 + we,
                    prep: we + Sat(n) * 8 + bias,
                    run: xe * 3 + rows * 8 + np * 8 + 4096,
                    per_thread: Sat(HYBRID_GROUP) * (kp * 2 + np * 4) + Sat(n) * 4 + 4096,
                }
            }
        }
    }

    /// DEPTHWISE_CONV_2D: `c` channels of `taps` weights each.
    fn depthwise_cost(&self, op: &Op) -> OpCost {
        let (x, w, b, y) = (
            op.input(0),
            op.input(1),
            op.input(2),
            op.outputs.first().copied(),
        );
        let we = self.elems(w);
        let c = self.last_dim(w);
        let taps = we.0 / c.max(1);
        let np = Sat(c.next_multiple_of(64));
        let taps4 = Sat(taps.next_multiple_of(4));
        let (kh, kw, out_w) = (self.dim(w, 1), self.dim(w, 2), self.dim(y, 2));
        let bias = self.elems(b) * 8;
        match self.conv_family(op) {
            // Float: taps × channels padded to whole blocks; per thread two tap lists.
            ConvFamily::Float => OpCost {
                packed: Sat(taps) * np * 4 + np * 4,
                prep: we * 4 + bias,
                run: Sat(0),
                per_thread: Sat(taps) * 64 + 4096,
            },
            // Integer: weights as int32, the AVX-512 layouts (8-bit groups of 4 taps,
            // int16 tap pairs), column offsets per output column and tap column, and
            // per-channel constants; per thread a tap pointer per output pixel of a row
            // and per-channel accumulators.
            ConvFamily::Integer => OpCost {
                packed: we * 4 + taps4 * np * 8 + np * 160 + Sat(out_w) * kw * 8,
                prep: we * 2 + Sat(c) * 24 + bias,
                run: Sat(0),
                per_thread: Sat(out_w) * taps4 * 8 + np * 16 + Sat(taps) * 16 + Sat(kh) * 8 + 4096,
            },
            // Hybrid: weights as int16 (reference: int8); each inference an int16
            // copy of an image and per-channel factors; per thread the accumulators.
            ConvFamily::Hybrid => OpCost {
                packed: we * 3 + np * 16,
                prep: we + Sat(c) * 8 + bias,
                run: self.elems(x) * 2 + np * 8 + 4096,
                per_thread: np * 4 + 4096,
            },
        }
    }
}

/// Patches the hybrid GEMM quantizes at once (`kernels::hybrid::fast::GROUP`, with
/// margin).
const HYBRID_GROUP: u64 = 16;

/// A byte count whose arithmetic saturates at `u64::MAX`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Sat(u64);

impl Sat {
    fn max(self, other: Sat) -> Sat {
        Sat(self.0.max(other.0))
    }
}

impl Add for Sat {
    type Output = Sat;
    fn add(self, o: Sat) -> Sat {
        Sat(self.0.saturating_add(o.0))
    }
}

impl Add<u64> for Sat {
    type Output = Sat;
    fn add(self, o: u64) -> Sat {
        Sat(self.0.saturating_add(o))
    }
}

impl Mul for Sat {
    type Output = Sat;
    fn mul(self, o: Sat) -> Sat {
        Sat(self.0.saturating_mul(o.0))
    }
}

impl Mul<u64> for Sat {
    type Output = Sat;
    fn mul(self, o: u64) -> Sat {
        Sat(self.0.saturating_mul(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Tensor;

    fn opts() -> PlanOptions {
        PlanOptions {
            threads: 1,
            preserve_all_tensors: false,
            input_copies: 0,
            extra_bytes: 0,
        }
    }

    #[test]
    fn saturating_sizes_are_above_any_limit() {
        assert_eq!(Sat(u64::MAX) + 1, Sat(u64::MAX));
        assert_eq!(Sat(1 << 40) * (1 << 40), Sat(u64::MAX));
        let p = MemoryPlan {
            arena: u64::MAX,
            packed: 1,
            ..Default::default()
        };
        assert_eq!(p.total(), u64::MAX);
        let e = p.check(u64::MAX - 1, &Graph::default()).unwrap_err();
        assert!(e.to_string().contains("more than 16 EiB"), "{e}");
    }

    #[test]
    fn a_shape_past_64_bits_is_refused_by_name() {
        let mut g = Graph::default();
        let x = g.add_tensor(Tensor::activation(
            "huge",
            vec![1 << 40, 1 << 40],
            DType::F32,
        ));
        g.inputs = vec![x];
        g.outputs = vec![x];
        let e = plan_graph(&g, &[], &opts()).err().expect("refused");
        let msg = e.to_string();
        assert!(matches!(e, EngineError::TooLarge(_)), "{msg}");
        assert!(msg.contains("'huge'") && msg.contains("64 bits"), "{msg}");
    }

    #[test]
    fn refusal_names_the_breakdown_and_the_largest_tensor() {
        let mut g = Graph::default();
        let x = g.add_tensor(Tensor::activation(
            "images",
            vec![4096, 1024, 1024, 3],
            DType::F32,
        ));
        let y = g.add_tensor(Tensor::activation(
            "y",
            vec![4096, 1024, 1024, 3],
            DType::F32,
        ));
        g.inputs = vec![x];
        g.outputs = vec![y];
        g.add_op(Op::new(OpKind::Relu, vec![x], vec![y]));
        let layout = plan_graph(&g, &[false], &opts()).unwrap();
        assert_eq!(layout.plan.arena, 2 * 4096 * 1024 * 1024 * 3 * 4);
        let msg = layout.plan.check(12 << 30, &g).unwrap_err().to_string();
        assert!(
            msg.starts_with("model needs 96.0 GiB to prepare (arena 96.0 GiB, packed weights 0 B"),
            "{msg}"
        );
        assert!(msg.contains("above the memory limit of 12.0 GiB"), "{msg}");
        assert!(
            msg.contains("'images' [4096, 1024, 1024, 3] float32, 48.0 GiB"),
            "{msg}"
        );
        assert!(msg.ends_with("set --memory-limit to raise it"), "{msg}");
        assert!(layout.plan.check(100 << 30, &g).is_ok());
    }

    #[test]
    fn caller_buffers_and_threads_count() {
        let mut g = Graph::default();
        let x = g.add_tensor(Tensor::activation("x", vec![1, 1000], DType::U8));
        let y = g.add_tensor(Tensor::activation("y", vec![1, 1000], DType::F32));
        g.inputs = vec![x];
        g.outputs = vec![y];
        g.add_op(Op::new(OpKind::Cast, vec![x], vec![y]));
        let base = plan_graph(&g, &[false], &opts()).unwrap().plan;
        // Cast widens every element to f64 for one inference.
        assert!(base.scratch >= 8000, "{base:?}");
        let with = plan_graph(
            &g,
            &[false],
            &PlanOptions {
                input_copies: 3,
                extra_bytes: 5,
                ..opts()
            },
        )
        .unwrap()
        .plan;
        assert_eq!(with.other, base.other + 3 * 1000 * 4 + 5);
    }
}

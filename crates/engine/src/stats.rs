//! Model statistics: op counts, parameters, multiply-accumulates.

use std::collections::BTreeMap;

use crate::ir::{Graph, OpKind};

/// Summary of a graph as `quantfarm inspect` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphStats {
    /// Op name → count, sorted by name.
    pub ops: BTreeMap<String, usize>,
    /// Elements of constant weight/bias tensors.
    pub params: usize,
    /// Multiply-accumulates of one inference (conv, depthwise, FC, batch matmul).
    pub macs: u64,
}

pub fn graph_stats(g: &Graph) -> GraphStats {
    let mut ops = BTreeMap::new();
    for op in &g.ops {
        *ops.entry(op.kind.name()).or_insert(0) += 1;
    }
    GraphStats {
        ops,
        params: g.param_count(),
        macs: g.ops.iter().map(|op| op_macs(g, op)).sum(),
    }
}

/// MACs of one op, from the output shape and the weight shape.
pub fn op_macs(g: &Graph, op: &crate::ir::Op) -> u64 {
    let shape = |i: Option<usize>| i.map(|t| g.tensors[t].shape.clone()).unwrap_or_default();
    let out_elems = op
        .outputs
        .first()
        .map(|&t| g.tensors[t].num_elements() as u64)
        .unwrap_or(0);
    match &op.kind {
        // Filter OHWI: each output element needs kh*kw*in_c MACs.
        OpKind::Conv2D(_) => {
            let f = shape(op.input(1));
            if f.len() == 4 {
                out_elems * (f[1] * f[2] * f[3]) as u64
            } else {
                0
            }
        }
        OpKind::DepthwiseConv2D(_) => {
            let f = shape(op.input(1));
            if f.len() == 4 {
                out_elems * (f[1] * f[2]) as u64
            } else {
                0
            }
        }
        OpKind::FullyConnected(_) => {
            let w = shape(op.input(1));
            if w.len() == 2 {
                out_elems * w[1] as u64
            } else {
                0
            }
        }
        // TRANSPOSE_CONV: inputs (output shape, filter OHWI, input); every input
        // element is scattered through kh*kw*out_c weights.
        OpKind::UnknownBuiltin { code: 67 } => {
            let f = shape(op.input(1));
            let x = shape(op.input(2));
            if f.len() == 4 {
                x.iter().product::<usize>() as u64 * (f[0] * f[1] * f[2]) as u64
            } else {
                0
            }
        }
        // Four gates, each a [units, input] and a [units, units] matrix per step.
        OpKind::UnidirectionalSequenceLstm(_) => {
            let x = shape(op.input(0));
            let w_in = shape(op.input(4));
            let w_rec = shape(op.input(8));
            if x.len() == 3 && w_in.len() == 2 && w_rec.len() == 2 {
                let steps = (x[0] * x[1]) as u64;
                steps * 4 * (w_in[0] * (w_in[1] + w_rec[1])) as u64
            } else {
                0
            }
        }
        OpKind::BatchMatMul(o) => {
            let x = shape(op.input(0));
            if x.len() >= 2 {
                let k = if o.adj_x {
                    x[x.len() - 2]
                } else {
                    x[x.len() - 1]
                };
                out_elems * k as u64
            } else {
                0
            }
        }
        _ => 0,
    }
}

/// What one op moves and computes in one inference (the inputs of a latency model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpCost {
    /// Multiply-accumulates ([`op_macs`]).
    pub macs: u64,
    /// Bytes of the non-constant inputs read.
    pub input_bytes: u64,
    /// Elements of the non-constant inputs.
    pub input_elements: u64,
    /// Bytes of the outputs written.
    pub output_bytes: u64,
    /// Elements of the outputs.
    pub output_elements: u64,
    /// Bytes of the constant parameters (weights, biases) read.
    pub param_bytes: u64,
}

/// Per-op costs: MACs, activation bytes in and out, parameter bytes.
pub fn op_cost(g: &Graph, op: &crate::ir::Op) -> OpCost {
    let mut c = OpCost {
        macs: op_macs(g, op),
        ..OpCost::default()
    };
    for &t in op.inputs.iter().flatten() {
        let tensor = &g.tensors[t];
        if tensor.is_constant() {
            if tensor.is_parameter() {
                c.param_bytes += tensor.byte_len() as u64;
            }
        } else {
            c.input_bytes += tensor.byte_len() as u64;
            c.input_elements += tensor.num_elements() as u64;
        }
    }
    for &t in &op.outputs {
        let tensor = &g.tensors[t];
        c.output_bytes += tensor.byte_len() as u64;
        c.output_elements += tensor.num_elements() as u64;
    }
    c
}

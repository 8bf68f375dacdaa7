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

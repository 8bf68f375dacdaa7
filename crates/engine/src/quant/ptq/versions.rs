//! Operator versions as TFLite's converter assigns them
//! (`tensorflow/lite/tools/versioning/op_version.cc`, `GetBuiltinOperatorVersion`):
//! the version encodes the numeric scheme (float, hybrid, int8, int16), and LiteRT
//! refuses or misreads an op whose version does not match its tensors.

use crate::ir::{DType, Graph, Op, OpKind};

/// Set `version` of every builtin op of `g` from its tensors and options.
pub fn set_versions(g: &mut Graph) {
    let versions: Vec<i32> = g.ops.iter().map(|op| op_version(g, op)).collect();
    for (op, v) in g.ops.iter_mut().zip(versions) {
        if !matches!(
            op.kind,
            OpKind::Custom { .. } | OpKind::UnknownBuiltin { .. }
        ) {
            op.version = v;
        }
    }
}

/// The version TFLite's `GetBuiltinOperatorVersion` gives `op` in `g`.
pub fn op_version(g: &Graph, op: &Op) -> i32 {
    let ty = |i: usize| op.input(i).map(|t| g.tensors[t].dtype);
    let out = op.outputs.first().map(|&t| g.tensors[t].dtype);
    let quantized = |i: usize| {
        op.input(i)
            .and_then(|t| g.tensors[t].quant.as_ref())
            .is_some_and(|q| !q.scale.is_empty())
    };
    let per_channel = |i: usize| {
        op.input(i)
            .and_then(|t| g.tensors[t].quant.as_ref())
            .is_some_and(|q| q.scale.len() > 1)
    };
    let rank0 = op.input(0).map_or(0, |t| g.tensors[t].shape.len());
    let (i0, i1) = (ty(0), ty(1));
    use DType::*;
    let f32_i8_f32 = i0 == Some(F32) && i1 == Some(I8) && out == Some(F32);
    match &op.kind {
        OpKind::Conv2D(_) => {
            // op_version.cc checks input 1 == int16 for version 4, so int16x8 conv
            // (int8 filter) falls through to 1, as the converter writes it.
            if i0 == Some(I16) && i1 == Some(I16) {
                4
            } else if i0 == Some(I8) && i1 == Some(I8) && out == Some(I8) {
                3
            } else if f32_i8_f32 {
                if per_channel(1) { 5 } else { 2 }
            } else {
                1
            }
        }
        OpKind::DepthwiseConv2D(o) => {
            if i0 == Some(I16) && i1 == Some(I16) {
                5
            } else if f32_i8_f32 {
                if per_channel(1) { 6 } else { 4 }
            } else if i0 == Some(I8) && i1 == Some(I8) && out == Some(I8) {
                3
            } else if o.dilation_h != 1 || o.dilation_w != 1 {
                2
            } else {
                1
            }
        }
        OpKind::FullyConnected(o) => {
            if f32_i8_f32 && per_channel(1) {
                12
            } else if i0 == Some(I16) && i1 == Some(I16) && out == Some(I16) {
                7
            } else if op.inputs.len() == 2 {
                6
            } else if o.keep_num_dims {
                5
            } else if i0 == Some(I8) && i1 == Some(I8) && out == Some(I8) {
                4
            } else if f32_i8_f32 {
                if o.asymmetric_quantize_inputs { 9 } else { 3 }
            } else if o.weights_format == 1 {
                2
            } else {
                1
            }
        }
        OpKind::Add {
            pot_scale_int16, ..
        } => {
            if i0 == Some(I16) && !quantized(0) {
                5
            } else if i0 == Some(I64) {
                4
            } else if i0 == Some(I16) && out == Some(I16) && !pot_scale_int16 {
                3
            } else if i0 == Some(I8) {
                2
            } else {
                1
            }
        }
        OpKind::Sub {
            pot_scale_int16, ..
        } => {
            let broadcast5 = broadcast_rank(g, op) > 4;
            if i0 == Some(I16) && out == Some(I16) && !pot_scale_int16 {
                5
            } else if i0 == Some(I64) {
                4
            } else if broadcast5 {
                3
            } else if i0 == Some(I8) {
                2
            } else {
                1
            }
        }
        OpKind::Mul { .. } => {
            let scale = |t: Option<usize>| {
                t.and_then(|t| g.tensors[t].quant.as_ref())
                    .and_then(|q| q.scale.first().copied())
                    .unwrap_or(0.0)
            };
            let (s1, s2, so) = (
                scale(op.input(0)),
                scale(op.input(1)),
                scale(op.outputs.first().copied()),
            );
            if i0 == Some(I16) && !quantized(0) {
                7
            } else if i0 == Some(I64) {
                5
            } else if i0 == Some(I16) {
                4
            } else if s1 != 0.0 && s2 != 0.0 && so != 0.0 && s1 * s2 / so >= 1.0 {
                3
            } else if i0 == Some(I8) {
                2
            } else {
                1
            }
        }
        OpKind::MaxPool2D(_) | OpKind::AveragePool2D(_) => {
            if i0 == Some(I16) && out == Some(I16) {
                3
            } else if i0 == Some(I8) {
                2
            } else {
                1
            }
        }
        OpKind::Concatenation { .. }
        | OpKind::Softmax { .. }
        | OpKind::Mean { .. }
        | OpKind::Relu6 => {
            if i0 == Some(I16) {
                3
            } else if i0 == Some(I8) {
                2
            } else {
                1
            }
        }
        OpKind::Relu => {
            if i0 == Some(I16) {
                3
            } else if i0 == Some(I8) || i0 == Some(U8) {
                2
            } else {
                1
            }
        }
        OpKind::Logistic | OpKind::Tanh => {
            if i0 == Some(I16) && out == Some(I16) {
                3
            } else if i0 == Some(I8) {
                2
            } else {
                1
            }
        }
        OpKind::Pad => {
            if rank0 > 4 {
                4
            } else if i0 == Some(I16) {
                3
            } else if i0 == Some(I8) {
                2
            } else {
                1
            }
        }
        OpKind::Transpose => {
            if rank0 > 5 {
                6
            } else if i0 == Some(I16) {
                5
            } else if rank0 > 4 {
                4
            } else if i0 == Some(Bool) {
                3
            } else if i0 == Some(I8) {
                2
            } else {
                1
            }
        }
        OpKind::StridedSlice(o) => {
            if o.offset {
                8
            } else if o.ellipsis_mask != 0 || o.new_axis_mask != 0 {
                6
            } else if i0 == Some(String) {
                5
            } else if rank0 > 4 {
                4
            } else if i0 == Some(Bool) {
                3
            } else if i0 == Some(I8) {
                2
            } else {
                1
            }
        }
        OpKind::ResizeBilinear {
            half_pixel_centers, ..
        } => {
            if i0 == Some(I16) {
                4
            } else if *half_pixel_centers {
                3
            } else if i0 == Some(I8) {
                2
            } else {
                1
            }
        }
        OpKind::Gather { batch_dims, .. } => {
            if i1 == Some(I16) {
                6
            } else if *batch_dims != 0 {
                5
            } else if i0 == Some(I16) {
                4
            } else if i0 == Some(Bool) {
                3
            } else if i0 == Some(I8) {
                2
            } else {
                1
            }
        }
        OpKind::Dequantize => {
            if i0 == Some(I16) || i0 == Some(F16) {
                3
            } else if i0 == Some(I8) {
                if per_channel(0) { 5 } else { 2 }
            } else {
                1
            }
        }
        OpKind::Quantize => {
            let out_per_channel = op
                .outputs
                .first()
                .and_then(|&t| g.tensors[t].quant.as_ref())
                .is_some_and(|q| q.scale.len() > 1);
            if out_per_channel {
                3
            } else if out == Some(I16) {
                2
            } else {
                1
            }
        }
        OpKind::Squeeze { .. } => {
            if i0 == Some(String) {
                2
            } else {
                1
            }
        }
        OpKind::ArgMax { .. } => {
            if i0 == Some(Bool) {
                3
            } else if i0 == Some(I8) {
                2
            } else {
                1
            }
        }
        // Unchanged by quantization here: keep what the model had.
        _ => op.version.max(1),
    }
}

fn broadcast_rank(g: &Graph, op: &Op) -> usize {
    let (Some(a), Some(b)) = (op.input(0), op.input(1)) else {
        return 0;
    };
    let (sa, sb) = (&g.tensors[a].shape, &g.tensors[b].shape);
    if sa == sb { 0 } else { sa.len().max(sb.len()) }
}

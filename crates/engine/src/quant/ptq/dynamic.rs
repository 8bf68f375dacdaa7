//! Dynamic-range ("hybrid") quantization (spec §6), as TFLite's MLIR dynamic-range
//! quantizer does it (`quantize-dynamic-range.mlir`):
//! - CONV_2D: int8 symmetric weights per channel along dim 0 (hybrid, version 5);
//! - DEPTHWISE_CONV_2D: per channel along dim 3 (hybrid, version 6);
//! - FULLY_CONNECTED: per tensor, `asymmetric_quantize_inputs = true` (version 9).
//!
//! Only constant weights with at least `min_elements` elements (1024 in TFLite) are
//! converted; biases, activations and I/O stay float32.

use super::PtqSummary;
use super::weights::{WeightRange, quantize_weights_symmetric_with};
use crate::error::Result;
use crate::ir::{DType, Model, OpKind, Quantization, Tensor};

pub(super) fn quantize(
    model: &Model,
    min_elements: usize,
    range: WeightRange,
) -> Result<(Model, PtqSummary)> {
    let mut out = model.clone();
    let mut summary = PtqSummary::default();
    let g = out.main_mut();
    for oi in 0..g.ops.len() {
        let axis = match &g.ops[oi].kind {
            OpKind::Conv2D(_) => Some(0),
            OpKind::DepthwiseConv2D(_) => Some(3),
            OpKind::FullyConnected(_) => None,
            _ => continue,
        };
        let Some(w) = g.ops[oi].input(1) else {
            continue;
        };
        let src = &g.tensors[w];
        let Some(values) = src.data_f32() else {
            continue;
        };
        if values.len() < min_elements {
            continue;
        }
        let (q, scales) = quantize_weights_symmetric_with(&values, &src.shape, axis, range);
        let quant = match axis {
            Some(a) => Quantization::per_axis(scales.clone(), vec![0; scales.len()], a),
            None => Quantization::per_tensor(scales[0], 0),
        };
        let t = Tensor::constant(
            src.name.clone(),
            src.shape.clone(),
            DType::I8,
            q.iter().map(|&v| v as u8).collect(),
        )
        .with_quant(quant);
        let qt = g.add_tensor(t);
        let op = &mut g.ops[oi];
        op.inputs[1] = Some(qt);
        if let OpKind::FullyConnected(o) = &mut op.kind {
            o.asymmetric_quantize_inputs = true;
        }
        summary.quantized_ops += 1;
        summary.quantized_constants += 1;
    }
    Ok((out, summary))
}

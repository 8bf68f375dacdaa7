//! Float16 weight quantization (spec §5): every float32 constant an op reads is stored
//! as FLOAT16 and fed through a DEQUANTIZE (FLOAT16 → FLOAT32), as TFLite's converter
//! does; the float ops themselves are unchanged.

use super::PtqSummary;
use crate::error::Result;
use crate::ir::{DType, Model, Op, OpKind, Tensor};

pub(super) fn quantize(model: &Model) -> Result<(Model, PtqSummary)> {
    let mut out = model.clone();
    let mut summary = PtqSummary::default();
    let g = out.main_mut();
    let n = g.tensors.len();
    // One fp16 copy + DEQUANTIZE per constant, shared by all its readers.
    let mut converted: Vec<Option<usize>> = vec![None; n];
    let mut dequant_ops = Vec::new();
    let mut ops = std::mem::take(&mut g.ops);
    for op in &mut ops {
        let mut touched = false;
        for slot in op.inputs.iter_mut() {
            let Some(t) = *slot else { continue };
            if t >= n {
                continue;
            }
            let src = &g.tensors[t];
            let Some(values) = src.data_f32() else {
                continue;
            };
            if let Some(f) = converted[t] {
                *slot = Some(f);
                touched = true;
                continue;
            }
            let half: Vec<u8> = values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect();
            let name = src.name.clone();
            let shape = src.shape.clone();
            let h = g.add_tensor(Tensor::constant(
                format!("{name}_fp16"),
                shape.clone(),
                DType::F16,
                half,
            ));
            let f = g.add_tensor(Tensor::activation(name, shape, DType::F32));
            dequant_ops.push(Op::new(OpKind::Dequantize, vec![h], vec![f]));
            converted[t] = Some(f);
            *slot = Some(f);
            touched = true;
            summary.quantized_constants += 1;
            summary.inserted_dequantize += 1;
        }
        if touched {
            summary.quantized_ops += 1;
        }
    }
    // The DEQUANTIZE ops come first: they read only constants.
    dequant_ops.extend(ops);
    g.ops = dequant_ops;
    Ok((out, summary))
}

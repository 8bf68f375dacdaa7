//! Dequantize: turn a quantized model into the equivalent float32 model.
//!
//! This is the "original" float baseline of the reproduction: every quantized
//! constant becomes `scale * (q - zero_point)` in float32, every quantized activation
//! becomes a float32 activation, and QUANTIZE/DEQUANTIZE ops that no longer convert
//! anything are removed. Model I/O becomes float32 too (the natural interface of a
//! float model) unless [`DequantizeOptions::keep_io`] asks to keep the quantized I/O,
//! bridged by DEQUANTIZE/QUANTIZE at the edges.

use half::f16;

use crate::error::{EngineError, Result};
use crate::ir::{DType, Graph, Model, Op, OpKind, Quantization, Tensor, TensorId, f32_to_bytes};

#[derive(Debug, Clone, Copy, Default)]
pub struct DequantizeOptions {
    /// Keep the quantized input/output tensors of the original, with DEQUANTIZE after
    /// each quantized input and QUANTIZE before each quantized output.
    pub keep_io: bool,
}

pub fn dequantize_model(model: &Model, opts: &DequantizeOptions) -> Result<Model> {
    model.validate()?;
    let mut out = model.clone();
    for g in &mut out.subgraphs {
        dequantize_graph(g, opts)?;
    }
    out.description = "quantfarm: dequantized to float32".to_string();
    out.validate()?;
    Ok(out)
}

/// Whether a tensor holds quantized numbers that should become float32.
fn is_quantized(t: &Tensor) -> bool {
    let has_scale = t.quant.as_ref().is_some_and(|q| !q.scale.is_empty());
    match t.dtype {
        DType::U8 | DType::I8 | DType::I16 => has_scale,
        // Biases of quantized ops: int32 with scale = input_scale * weight_scale.
        DType::I32 => has_scale,
        _ => false,
    }
}

fn dequantize_graph(g: &mut Graph, opts: &DequantizeOptions) -> Result<()> {
    let original = g.tensors.clone();

    // 1. Retype tensors.
    for (i, t) in g.tensors.iter_mut().enumerate() {
        if is_quantized(t) {
            let q = t.quant.take().expect("checked by is_quantized");
            if let Some(data) = &t.data {
                let values = dequantize_values(t, data, &q)
                    .map_err(|e| EngineError::invalid(format!("tensor {i} '{}': {e}", t.name)))?;
                t.data = Some(f32_to_bytes(&values));
            }
            t.dtype = DType::F32;
        } else if t.dtype == DType::F16 && t.data.is_some() {
            // float16-stored weights: widen, the DEQUANTIZE that consumed them goes below.
            let data = t.data.as_ref().expect("checked");
            let values: Vec<f32> = data
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect();
            t.data = Some(f32_to_bytes(&values));
            t.dtype = DType::F32;
        } else if t.quant.is_some() && t.dtype == DType::F32 {
            t.quant = None;
        }
    }

    // 2. Drop QUANTIZE/DEQUANTIZE ops that now map float32 to float32, rewiring their
    //    consumers to the op's input.
    let mut alias: Vec<TensorId> = (0..g.tensors.len()).collect();
    let mut kept = Vec::with_capacity(g.ops.len());
    for mut op in std::mem::take(&mut g.ops) {
        for slot in op.inputs.iter_mut().flatten() {
            *slot = alias[*slot];
        }
        let is_conversion = matches!(op.kind, OpKind::Quantize | OpKind::Dequantize);
        if is_conversion
            && op.inputs.len() == 1
            && op.outputs.len() == 1
            && let Some(src) = op.input(0)
        {
            let dst = op.outputs[0];
            if g.tensors[src].dtype == DType::F32 && g.tensors[dst].dtype == DType::F32 {
                alias[dst] = src;
                continue;
            }
        }
        kept.push(op);
    }
    g.ops = kept;
    for o in &mut g.outputs {
        let src = alias[*o];
        if src != *o {
            // Keep the output's public name on the tensor that now carries it.
            let name = std::mem::take(&mut g.tensors[*o].name);
            g.tensors[src].name = name;
            *o = src;
        }
    }

    // 3. Optionally keep the quantized interface of the original model.
    if opts.keep_io {
        bridge_io(g, &original);
    }
    Ok(())
}

/// Re-create the original quantized inputs/outputs, converting at the edges.
fn bridge_io(g: &mut Graph, original: &[Tensor]) {
    let mut front = Vec::new();
    for k in 0..g.inputs.len() {
        let id = g.inputs[k];
        let orig = &original[id];
        if is_quantized(orig) && g.tensors[id].dtype == DType::F32 {
            let mut q_in = orig.clone();
            q_in.data = None;
            let new_id = g.add_tensor(q_in);
            g.tensors[id].name = format!("{}_dequantized", g.tensors[id].name);
            front.push(Op::new(OpKind::Dequantize, vec![new_id], vec![id]));
            g.inputs[k] = new_id;
        }
    }
    let mut back = Vec::new();
    for k in 0..g.outputs.len() {
        let id = g.outputs[k];
        let orig_dtype_q = original
            .iter()
            .find(|t| t.name == g.tensors[id].name)
            .filter(|t| is_quantized(t))
            .map(|t| (t.dtype, t.quant.clone()));
        if let Some((dtype, quant)) = orig_dtype_q {
            let name = g.tensors[id].name.clone();
            g.tensors[id].name = format!("{name}_float");
            let mut t = Tensor::activation(name, g.tensors[id].shape.clone(), dtype);
            t.quant = quant;
            let new_id = g.add_tensor(t);
            back.push(Op::new(OpKind::Quantize, vec![id], vec![new_id]));
            g.outputs[k] = new_id;
        }
    }
    front.append(&mut g.ops);
    front.append(&mut back);
    g.ops = front;
}

/// `scale * (q - zero_point)` per element, per tensor or along the quantized axis.
fn dequantize_values(
    t: &Tensor,
    data: &[u8],
    q: &Quantization,
) -> std::result::Result<Vec<f32>, String> {
    let n = t.num_elements();
    let raw: Vec<i64> = match t.dtype {
        DType::U8 => data.iter().map(|&b| i64::from(b)).collect(),
        DType::I8 => data.iter().map(|&b| i64::from(b as i8)).collect(),
        DType::I16 => data
            .chunks_exact(2)
            .map(|c| i64::from(i16::from_le_bytes([c[0], c[1]])))
            .collect(),
        DType::I32 => data
            .chunks_exact(4)
            .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        other => return Err(format!("cannot dequantize {other} data")),
    };
    if raw.len() != n {
        return Err(format!("{} elements stored, shape needs {n}", raw.len()));
    }
    for &s in &q.scale {
        if !(s.is_finite() && s > 0.0) {
            return Err(format!("quantization scale {s} is not a positive number"));
        }
    }
    if q.scale.len() == 1 {
        let (s, zp) = q.params(0);
        return Ok(raw
            .iter()
            .map(|&v| ((v - zp) as f64 * s as f64) as f32)
            .collect());
    }
    // Per-axis: element index → coordinate along `axis`.
    let dim = *t.shape.get(q.axis).ok_or_else(|| {
        format!(
            "quantized_dimension {} out of range for shape {:?}",
            q.axis, t.shape
        )
    })?;
    if dim != q.scale.len() {
        return Err(format!(
            "{} scales for dimension of size {dim}",
            q.scale.len()
        ));
    }
    let inner: usize = t.shape[q.axis + 1..].iter().product();
    Ok(raw
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / inner) % dim;
            let (s, zp) = q.params(c);
            ((v - zp) as f64 * s as f64) as f32
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_quant_model() -> Model {
        // uint8 input -> FC (uint8 weights, int32 bias) -> uint8 output
        let mut g = Graph::default();
        let x = g.add_tensor(
            Tensor::activation("x", vec![1, 2], DType::U8)
                .with_quant(Quantization::per_tensor(0.5, 128)),
        );
        let w = g.add_tensor(
            Tensor::constant("w", vec![2, 2], DType::U8, vec![130, 126, 128, 132])
                .with_quant(Quantization::per_tensor(0.25, 128)),
        );
        let b = g.add_tensor(
            Tensor::constant_i32("b", vec![2], &[8, -8])
                .with_quant(Quantization::per_tensor(0.125, 0)),
        );
        let y = g.add_tensor(
            Tensor::activation("y", vec![1, 2], DType::U8)
                .with_quant(Quantization::per_tensor(0.1, 10)),
        );
        g.add_op(Op::new(
            OpKind::FullyConnected(Default::default()),
            vec![x, w, b],
            vec![y],
        ));
        g.inputs = vec![x];
        g.outputs = vec![y];
        Model::from_graph(g, "test")
    }

    #[test]
    fn weights_and_bias_become_float() {
        let m = dequantize_model(&tiny_quant_model(), &Default::default()).unwrap();
        let g = m.main();
        assert!(
            g.tensors
                .iter()
                .all(|t| t.dtype == DType::F32 && t.quant.is_none())
        );
        assert_eq!(g.tensors[1].data_f32().unwrap(), vec![0.5, -0.5, 0.0, 1.0]);
        assert_eq!(g.tensors[2].data_f32().unwrap(), vec![1.0, -1.0]);
    }

    #[test]
    fn keep_io_bridges_edges() {
        let opts = DequantizeOptions { keep_io: true };
        let m = dequantize_model(&tiny_quant_model(), &opts).unwrap();
        let g = m.main();
        assert_eq!(g.ops.len(), 3);
        assert_eq!(g.ops[0].kind, OpKind::Dequantize);
        assert_eq!(g.ops[2].kind, OpKind::Quantize);
        assert_eq!(g.tensors[g.inputs[0]].dtype, DType::U8);
        assert_eq!(g.tensors[g.outputs[0]].dtype, DType::U8);
        assert_eq!(g.tensors[g.outputs[0]].name, "y");
    }

    #[test]
    fn per_axis_weights() {
        let t = Tensor::constant("w", vec![2, 1, 1, 2], DType::I8, vec![1, 2, 0xff, 4]);
        let q = Quantization::per_axis(vec![1.0, 0.5], vec![0, 0], 0);
        let v = dequantize_values(&t, t.data.as_ref().unwrap(), &q).unwrap();
        assert_eq!(v, vec![1.0, 2.0, -0.5, 2.0]);
    }

    #[test]
    fn bad_scale_is_an_error() {
        let mut m = tiny_quant_model();
        m.main_mut().tensors[1].quant = Some(Quantization::per_tensor(0.0, 128));
        let err = dequantize_model(&m, &Default::default()).unwrap_err();
        assert!(err.to_string().contains("scale"), "{err}");
    }
}

//! IR → `.tflite` bytes.
//!
//! planus does not apply the schema's `force_align: 16` to `Buffer.data`, so the
//! writer aligns tensor data itself: all data vectors are written first (they end
//! up at the end of the file, planus builds back to front), each preceded by just
//! enough filler that its distance from the end of the FlatBuffer is a multiple of
//! 16; after `finish`, the identifier and filler inserted after the root offset
//! make the total length a multiple of 16, which puts every data vector at a
//! 16-aligned file offset.

use std::collections::HashMap;

use planus::{Builder, Offset};

use super::generated::tflite as fb;
use super::{FILE_IDENTIFIER, SCHEMA_VERSION, trailing};
use crate::error::{EngineError, Result};
use crate::ir::{Graph, Model, Op, OpKind, Pool2DOptions, Tensor};

/// Serialize a model as a `.tflite` file (FlatBuffer + `model.trailing`).
pub fn write_model(model: &Model) -> Result<Vec<u8>> {
    let mut b = Builder::new();
    start_aligned_data(&mut b);

    // Buffer 0 is the empty sentinel every TFLite reader expects.
    let mut buffers: Vec<Option<Offset<[u8]>>> = vec![None];
    let mut tensor_buffers: Vec<Vec<u32>> = Vec::with_capacity(model.subgraphs.len());
    for g in &model.subgraphs {
        let mut ids = Vec::with_capacity(g.tensors.len());
        for t in &g.tensors {
            ids.push(match &t.data {
                Some(d) => {
                    buffers.push(Some(push_aligned(&mut b, d)));
                    u32c(buffers.len() - 1, "buffer index")?
                }
                None => 0,
            });
        }
        tensor_buffers.push(ids);
    }
    let mut metadata = Vec::with_capacity(model.metadata.len());
    for m in &model.metadata {
        buffers.push(Some(push_aligned(&mut b, &m.data)));
        metadata.push(fb::Metadata {
            name: Some(m.name.clone()),
            buffer: u32c(buffers.len() - 1, "buffer index")?,
        });
    }
    let buffer_tables: Vec<Offset<fb::Buffer>> = buffers
        .iter()
        .map(|d| fb::Buffer::create(&mut b, *d, 0u64, 0u64))
        .collect();

    let mut codes = OpCodes::default();
    let mut subgraphs = Vec::with_capacity(model.subgraphs.len());
    for (g, bufs) in model.subgraphs.iter().zip(&tensor_buffers) {
        subgraphs.push(subgraph(g, bufs, &mut codes)?);
    }

    let signature_defs = model
        .signature_defs
        .iter()
        .map(|s| {
            let maps = |v: &[(String, usize)]| -> Result<Vec<fb::TensorMap>> {
                v.iter()
                    .map(|(name, t)| {
                        Ok(fb::TensorMap {
                            name: Some(name.clone()),
                            tensor_index: u32c(*t, "signature tensor index")?,
                        })
                    })
                    .collect()
            };
            Ok(fb::SignatureDef {
                inputs: Some(maps(&s.inputs)?),
                outputs: Some(maps(&s.outputs)?),
                signature_key: Some(s.key.clone()),
                subgraph_index: u32c(s.subgraph, "signature subgraph index")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

    let description = (!model.description.is_empty()).then_some(model.description.as_str());
    let root = fb::Model::create(
        &mut b,
        SCHEMA_VERSION,
        codes.list.as_slice(),
        subgraphs.as_slice(),
        description,
        buffer_tables.as_slice(),
        (),
        (!metadata.is_empty()).then_some(metadata.as_slice()),
        (!signature_defs.is_empty()).then_some(signature_defs.as_slice()),
    );
    let fb_bytes = b.finish(root, None);
    let mut out = add_identifier(fb_bytes)?;
    let tail = trailing::rebase(&model.trailing, out.len());
    out.extend_from_slice(&tail);
    Ok(out)
}

/// Must come first in the builder, before any `push_aligned`.
///
/// An empty `[long]` vector: its (empty) contents sit at the very end of the
/// buffer and must be 8-aligned, which makes the total length a multiple of 8, so
/// that `add_identifier` may shift the content by 8 or 16 bytes without breaking
/// any other alignment. It also leaves the builder 4-aligned.
fn start_aligned_data(b: &mut Builder) {
    b.create_vector::<i64>(&[] as &[i64]);
}

/// Write a byte vector whose data starts a multiple of 16 bytes before the end of
/// the finished FlatBuffer.
fn push_aligned(b: &mut Builder, d: &[u8]) -> Offset<[u8]> {
    // While the builder is 4-aligned, a `[u8]` vector of k bytes takes
    // round_up(k, 4) + 4 bytes (padding, data, length) and a `[int]` vector of n
    // elements exactly 4n + 4. The data starts at the builder length before the
    // length prefix, which we want to be a multiple of 16.
    let r = (b.len() + d.len().next_multiple_of(4)) % 16;
    if r != 0 {
        let filler = vec![0i32; ((12 + 16 - r) % 16) / 4];
        b.create_vector::<i32>(filler.as_slice());
    }
    b.create_vector::<u8>(d)
}

/// Add the file identifier and make the length a multiple of 16.
///
/// planus 1.3's `finish(root, Some(id))` puts the identifier *before* the root
/// offset (bytes 0..4), whereas the FlatBuffers layout every TFLite reader expects
/// is root offset at 0..4, identifier at 4..8. So the buffer is finished without
/// an identifier and the identifier plus zero filler is inserted after the root
/// offset here. All offsets inside a FlatBuffer are relative except the root
/// offset, which is adjusted. The content moves by 8 or 16 bytes: alignment up to
/// 8 is kept (the length is a multiple of 8, see `start_aligned_data`) and the new
/// length is a multiple of 16.
pub(super) fn add_identifier(fb_bytes: &[u8]) -> Result<Vec<u8>> {
    let insert = 16 - fb_bytes.len() % 16;
    let root = u32::from_le_bytes([fb_bytes[0], fb_bytes[1], fb_bytes[2], fb_bytes[3]]);
    let root = root
        .checked_add(insert as u32)
        .ok_or_else(|| EngineError::invalid("model too large for a FlatBuffer"))?;
    let mut out = Vec::with_capacity(fb_bytes.len() + insert);
    out.extend_from_slice(&root.to_le_bytes());
    out.extend_from_slice(&FILE_IDENTIFIER);
    out.resize(4 + insert, 0);
    out.extend_from_slice(&fb_bytes[4..]);
    Ok(out)
}

/// Deduplicated operator codes, keyed by (code, custom code, version).
#[derive(Default)]
struct OpCodes {
    list: Vec<fb::OperatorCode>,
    index: HashMap<(i32, Option<String>, i32), u32>,
}

impl OpCodes {
    fn get(&mut self, op: &Op) -> Result<u32> {
        let code = op.kind.builtin_code();
        if code < 0 {
            return Err(EngineError::invalid(format!(
                "operator {} has negative builtin code {code}",
                op.kind.name()
            )));
        }
        let custom = match &op.kind {
            OpKind::Custom { code, .. } => Some(code.clone()),
            _ => None,
        };
        let key = (code, custom, op.version);
        if let Some(&i) = self.index.get(&key) {
            return Ok(i);
        }
        let i = u32c(self.list.len(), "operator code index")?;
        self.list.push(fb::OperatorCode {
            // 127 = PLACEHOLDER_FOR_GREATER_OP_CODES: old readers only see the
            // int8 field, new ones take the larger of the two.
            deprecated_builtin_code: code.min(127) as i8,
            custom_code: key.1.clone(),
            version: op.version,
            builtin_code: code,
        });
        self.index.insert(key, i);
        Ok(i)
    }
}

fn i32c(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| EngineError::invalid(format!("{what} {v} does not fit in int32")))
}

fn u32c(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| EngineError::invalid(format!("{what} {v} does not fit in uint32")))
}

fn subgraph(g: &Graph, buffers: &[u32], codes: &mut OpCodes) -> Result<fb::SubGraph> {
    let ids = |v: &[usize], what: &str| -> Result<Vec<i32>> {
        v.iter().map(|&t| i32c(t, what)).collect()
    };
    let tensors = g
        .tensors
        .iter()
        .zip(buffers)
        .map(|(t, &buf)| tensor(t, buf))
        .collect::<Result<Vec<_>>>()?;
    let mut operators = Vec::with_capacity(g.ops.len());
    for op in &g.ops {
        let inputs = op
            .inputs
            .iter()
            .map(|t| t.map_or(Ok(-1), |t| i32c(t, "tensor index")))
            .collect::<Result<Vec<_>>>()?;
        let (builtin_options, custom_options) = match &op.kind {
            OpKind::Custom { options, .. } => (None, Some(options.clone())),
            kind => (options(kind)?, None),
        };
        operators.push(fb::Operator {
            opcode_index: codes.get(op)?,
            inputs: Some(inputs),
            outputs: Some(ids(&op.outputs, "tensor index")?),
            builtin_options,
            custom_options,
            custom_options_format: 0, // FLEXBUFFERS
            mutating_variable_inputs: None,
            intermediates: (!op.intermediates.is_empty())
                .then(|| ids(&op.intermediates, "tensor index"))
                .transpose()?,
            large_custom_options_offset: 0,
            large_custom_options_size: 0,
        });
    }
    Ok(fb::SubGraph {
        tensors: Some(tensors),
        inputs: Some(ids(&g.inputs, "subgraph input")?),
        outputs: Some(ids(&g.outputs, "subgraph output")?),
        operators: Some(operators),
        name: (!g.name.is_empty()).then(|| g.name.clone()),
    })
}

fn tensor(t: &Tensor, buffer: u32) -> Result<fb::Tensor> {
    let shape = t
        .shape
        .iter()
        .map(|&d| i32c(d, &format!("tensor '{}' dimension", t.name)))
        .collect::<Result<Vec<_>>>()?;
    let quantization = match &t.quant {
        Some(q) => Some(Box::new(fb::QuantizationParameters {
            min: (!q.min.is_empty()).then(|| q.min.clone()),
            max: (!q.max.is_empty()).then(|| q.max.clone()),
            scale: Some(q.scale.clone()),
            zero_point: Some(q.zero_point.clone()),
            details: None,
            quantized_dimension: i32c(q.axis, "quantized dimension")?,
        })),
        None => None,
    };
    Ok(fb::Tensor {
        shape: Some(shape),
        type_: t.dtype.to_tflite(),
        buffer,
        name: Some(t.name.clone()),
        quantization,
        is_variable: t.is_variable,
        sparsity: None,
        shape_signature: t.shape_signature.clone(),
        has_rank: false,
    })
}

fn pool(o: &Pool2DOptions) -> Result<Box<fb::Pool2DOptions>> {
    Ok(Box::new(fb::Pool2DOptions {
        padding: o.padding.to_tflite(),
        stride_w: i32c(o.stride_w, "stride_w")?,
        stride_h: i32c(o.stride_h, "stride_h")?,
        filter_width: i32c(o.filter_w, "filter_width")?,
        filter_height: i32c(o.filter_h, "filter_height")?,
        fused_activation_function: o.activation.to_tflite(),
    }))
}

/// The options table of a builtin op; `None` (union tag NONE) for ops whose
/// schema has no options table.
fn options(kind: &OpKind) -> Result<Option<fb::BuiltinOptions>> {
    use OpKind as K;
    use fb::BuiltinOptions as B;
    Ok(Some(match kind {
        K::Add {
            activation,
            pot_scale_int16,
        } => B::AddOptions(Box::new(fb::AddOptions {
            fused_activation_function: activation.to_tflite(),
            pot_scale_int16: *pot_scale_int16,
        })),
        K::AveragePool2D(o) | K::MaxPool2D(o) => B::Pool2DOptions(pool(o)?),
        K::Concatenation { axis, activation } => {
            B::ConcatenationOptions(Box::new(fb::ConcatenationOptions {
                axis: *axis,
                fused_activation_function: activation.to_tflite(),
            }))
        }
        K::Conv2D(o) => B::Conv2DOptions(Box::new(fb::Conv2DOptions {
            padding: o.padding.to_tflite(),
            stride_w: i32c(o.stride_w, "stride_w")?,
            stride_h: i32c(o.stride_h, "stride_h")?,
            fused_activation_function: o.activation.to_tflite(),
            dilation_w_factor: i32c(o.dilation_w, "dilation_w_factor")?,
            dilation_h_factor: i32c(o.dilation_h, "dilation_h_factor")?,
            quantized_bias_type: 0,
        })),
        K::DepthwiseConv2D(o) => B::DepthwiseConv2DOptions(Box::new(fb::DepthwiseConv2DOptions {
            padding: o.padding.to_tflite(),
            stride_w: i32c(o.stride_w, "stride_w")?,
            stride_h: i32c(o.stride_h, "stride_h")?,
            depth_multiplier: i32c(o.depth_multiplier, "depth_multiplier")?,
            fused_activation_function: o.activation.to_tflite(),
            dilation_w_factor: i32c(o.dilation_w, "dilation_w_factor")?,
            dilation_h_factor: i32c(o.dilation_h, "dilation_h_factor")?,
        })),
        K::Dequantize => B::DequantizeOptions(Box::default()),
        K::FullyConnected(o) => B::FullyConnectedOptions(Box::new(fb::FullyConnectedOptions {
            fused_activation_function: o.activation.to_tflite(),
            weights_format: o.weights_format,
            keep_num_dims: o.keep_num_dims,
            asymmetric_quantize_inputs: o.asymmetric_quantize_inputs,
            quantized_bias_type: 0,
        })),
        K::Mul { activation } => B::MulOptions(Box::new(fb::MulOptions {
            fused_activation_function: activation.to_tflite(),
        })),
        K::Reshape { new_shape } => B::ReshapeOptions(Box::new(fb::ReshapeOptions {
            new_shape: new_shape.clone(),
        })),
        K::ResizeBilinear {
            align_corners,
            half_pixel_centers,
        } => B::ResizeBilinearOptions(Box::new(fb::ResizeBilinearOptions {
            align_corners: *align_corners,
            half_pixel_centers: *half_pixel_centers,
        })),
        K::Softmax { beta } => B::SoftmaxOptions(Box::new(fb::SoftmaxOptions { beta: *beta })),
        K::Pad => B::PadOptions(Box::default()),
        K::Gather { axis, batch_dims } => B::GatherOptions(Box::new(fb::GatherOptions {
            axis: *axis,
            batch_dims: *batch_dims,
        })),
        K::Transpose => B::TransposeOptions(Box::default()),
        K::Mean { keep_dims } => B::ReducerOptions(Box::new(fb::ReducerOptions {
            keep_dims: *keep_dims,
        })),
        K::Sub {
            activation,
            pot_scale_int16,
        } => B::SubOptions(Box::new(fb::SubOptions {
            fused_activation_function: activation.to_tflite(),
            pot_scale_int16: *pot_scale_int16,
        })),
        K::Div { activation } => B::DivOptions(Box::new(fb::DivOptions {
            fused_activation_function: activation.to_tflite(),
        })),
        K::Squeeze { dims } => B::SqueezeOptions(Box::new(fb::SqueezeOptions {
            squeeze_dims: Some(dims.clone()),
        })),
        K::UnidirectionalSequenceLstm(o) => {
            B::UnidirectionalSequenceLstmOptions(Box::new(fb::UnidirectionalSequenceLstmOptions {
                fused_activation_function: o.activation.to_tflite(),
                cell_clip: o.cell_clip,
                proj_clip: o.proj_clip,
                time_major: o.time_major,
                asymmetric_quantize_inputs: o.asymmetric_quantize_inputs,
                diagonal_recurrent_tensors: o.diagonal_recurrent_tensors,
            }))
        }
        K::StridedSlice(o) => B::StridedSliceOptions(Box::new(fb::StridedSliceOptions {
            begin_mask: o.begin_mask,
            end_mask: o.end_mask,
            ellipsis_mask: o.ellipsis_mask,
            new_axis_mask: o.new_axis_mask,
            shrink_axis_mask: o.shrink_axis_mask,
            offset: o.offset,
        })),
        K::Split { num_splits } => B::SplitOptions(Box::new(fb::SplitOptions {
            num_splits: *num_splits,
        })),
        K::ArgMax { output_type } => B::ArgMaxOptions(Box::new(fb::ArgMaxOptions {
            output_type: output_type.to_tflite(),
        })),
        K::Pack { values_count, axis } => B::PackOptions(Box::new(fb::PackOptions {
            values_count: *values_count,
            axis: *axis,
        })),
        K::Unpack { num, axis } => B::UnpackOptions(Box::new(fb::UnpackOptions {
            num: *num,
            axis: *axis,
        })),
        K::FloorDiv => B::FloorDivOptions(Box::default()),
        K::GatherNd => B::GatherNdOptions(Box::default()),
        K::Quantize => B::QuantizeOptions(Box::default()),
        K::HardSwish => B::HardSwishOptions(Box::default()),
        K::BatchMatMul(o) => B::BatchMatMulOptions(Box::new(fb::BatchMatMulOptions {
            adj_x: o.adj_x,
            adj_y: o.adj_y,
            asymmetric_quantize_inputs: o.asymmetric_quantize_inputs,
        })),
        // No options table in the schema (CAST's table is optional and the IR keeps
        // none of its fields; unknown builtins drop theirs by design).
        K::Logistic
        | K::Relu
        | K::Relu6
        | K::Tanh
        | K::Cast
        | K::Sqrt
        | K::Custom { .. }
        | K::UnknownBuiltin { .. } => return Ok(None),
    }))
}

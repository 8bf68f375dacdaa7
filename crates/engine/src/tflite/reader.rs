//! `.tflite` bytes → IR. Every accessor goes through planus's checked readers, and
//! every index is bounds-checked, so malformed input gives `EngineError`, never a
//! panic.
//!
//! What the IR copies out of the file is charged against a memory limit as it is read:
//! the file bounds each copy, but not their number — one buffer, name or shape vector
//! can be shared by any number of tensors, each of which gets its own copy, so a small
//! file could otherwise expand to any size.

use std::cell::Cell;

use planus::errors::ErrorKind;
use planus::{ReadAsRoot, Vector};

use super::generated::tflite as fb;
use super::{FILE_IDENTIFIER, SCHEMA_VERSION, trailing};
use crate::error::{EngineError, Result};
use crate::ir::{
    Activation, BatchMatMulOptions, Conv2DOptions, DType, DepthwiseConv2DOptions,
    FullyConnectedOptions, Graph, LstmOptions, Metadata, Model, Op, OpKind, Padding, Pool2DOptions,
    Quantization, SignatureDef, StridedSliceOptions, Tensor, TensorId,
};
use crate::measure::limits::{default_memory_limit, format_bytes};

/// Parse a `.tflite` model from memory, within the default memory limit
/// ([`default_memory_limit`]).
pub fn read_model(bytes: &[u8]) -> Result<Model> {
    read_model_limited(bytes, default_memory_limit())
}

/// Parse a `.tflite` model from memory; refuses it ([`EngineError::TooLarge`]) as soon
/// as the IR built from it holds more than `memory_limit` bytes.
pub fn read_model_limited(bytes: &[u8], memory_limit: u64) -> Result<Model> {
    check_header(bytes)?;
    let root = fb::ModelRef::read_as_root(bytes).map_err(fb_err("model root"))?;
    let version = root.version().map_err(fb_err("Model.version"))?;
    if version != SCHEMA_VERSION {
        return Err(EngineError::invalid(format!(
            "schema version {version}, expected {SCHEMA_VERSION}"
        )));
    }
    let r = Reader {
        file: bytes,
        root,
        budget: Budget {
            used: Cell::new(0),
            limit: memory_limit,
        },
    };
    r.budget.charge(bytes.len() as u64, "model file")?;
    let buffers = r.buffers()?;
    let opcodes = r.opcodes()?;

    let mut subgraphs = Vec::new();
    if let Some(sgs) = root.subgraphs().map_err(fb_err("Model.subgraphs"))? {
        for (gi, sg) in sgs.iter().enumerate() {
            let sg = sg.map_err(fb_err(&format!("subgraph {gi}")))?;
            r.budget
                .charge(std::mem::size_of::<Graph>() as u64, "subgraphs")?;
            subgraphs.push(r.subgraph(gi, sg, &buffers, &opcodes)?);
        }
    }

    let description = root
        .description()
        .map_err(fb_err("Model.description"))?
        .unwrap_or_default()
        .to_string();

    let mut metadata = Vec::new();
    if let Some(list) = root.metadata().map_err(fb_err("Model.metadata"))? {
        for (i, m) in list.iter().enumerate() {
            let ctx = format!("metadata {i}");
            let m = m.map_err(fb_err(&ctx))?;
            let name = m.name().map_err(fb_err(&ctx))?.unwrap_or_default();
            let b = m.buffer().map_err(fb_err(&ctx))? as usize;
            let data = buffers.get(b).ok_or_else(|| {
                EngineError::invalid(format!(
                    "metadata '{name}' refers to buffer {b}, but there are only {}",
                    buffers.len()
                ))
            })?;
            let bytes = std::mem::size_of::<Metadata>() + name.len() + data.map_or(0, <[u8]>::len);
            r.budget.charge(bytes as u64, &ctx)?;
            metadata.push(Metadata {
                name: name.to_string(),
                data: data.map(<[u8]>::to_vec).unwrap_or_default(),
            });
        }
    }

    let mut signature_defs = Vec::new();
    if let Some(list) = root
        .signature_defs()
        .map_err(fb_err("Model.signature_defs"))?
    {
        for (i, s) in list.iter().enumerate() {
            let s = s.map_err(fb_err(&format!("signature def {i}")))?;
            signature_defs.push(signature_def(i, s, &subgraphs, &r.budget)?);
        }
    }

    let model = Model {
        subgraphs,
        description,
        metadata,
        signature_defs,
        trailing: trailing::extract(bytes),
    };
    model.validate()?;
    Ok(model)
}

/// Identifier and minimum size, checked before touching the FlatBuffer so that the
/// common mistakes (empty file, not a TFLite file) get a clear message.
fn check_header(bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Err(EngineError::invalid("empty file"));
    }
    if bytes.len() < 8 {
        return Err(EngineError::invalid(format!(
            "file too short ({} bytes) for a TFLite header",
            bytes.len()
        )));
    }
    if bytes[4..8] != FILE_IDENTIFIER {
        // The bytes found are not shown: the file may be anything, even a secret.
        return Err(EngineError::invalid(
            "no \"TFL3\" file identifier at bytes 4..8: not a TFLite model",
        ));
    }
    Ok(())
}

/// Map a planus error into `InvalidModel`, saying where it happened.
fn fb_err(ctx: &str) -> impl Fn(planus::Error) -> EngineError + '_ {
    move |e| {
        let why = match e.error_kind {
            ErrorKind::InvalidOffset | ErrorKind::InvalidLength => {
                "truncated or corrupt FlatBuffer".to_string()
            }
            k => k.to_string(),
        };
        EngineError::invalid(format!("{ctx}: {why} ({})", e.source_location))
    }
}

/// What the IR built so far holds, against the memory limit.
struct Budget {
    used: Cell<u64>,
    limit: u64,
}

impl Budget {
    /// Count `bytes` more; an error naming `ctx` once the total is above the limit.
    fn charge(&self, bytes: u64, ctx: &str) -> Result<()> {
        let used = self.used.get().saturating_add(bytes);
        self.used.set(used);
        if used > self.limit {
            return Err(EngineError::too_large(format!(
                "{ctx}: the model takes more than the memory limit of {} to read (data, \
                 names and shapes shared by many tensors are copied for each); set \
                 --memory-limit to raise it",
                format_bytes(self.limit)
            )));
        }
        Ok(())
    }
}

/// One resolved `OperatorCode`.
struct OpCode {
    code: i32,
    custom_code: Option<String>,
    version: i32,
}

struct Reader<'a> {
    file: &'a [u8],
    root: fb::ModelRef<'a>,
    budget: Budget,
}

impl<'a> Reader<'a> {
    /// Contents of every buffer (`None` = no data), in file order.
    fn buffers(&self) -> Result<Vec<Option<&'a [u8]>>> {
        let mut out = Vec::new();
        let Some(list) = self.root.buffers().map_err(fb_err("Model.buffers"))? else {
            return Ok(out);
        };
        for (i, b) in list.iter().enumerate() {
            let ctx = format!("buffer {i}");
            self.budget
                .charge(std::mem::size_of::<Option<&[u8]>>() as u64, &ctx)?;
            let b = b.map_err(fb_err(&ctx))?;
            let data = b.data().map_err(fb_err(&ctx))?;
            let offset = b.offset().map_err(fb_err(&ctx))?;
            let size = b.size().map_err(fb_err(&ctx))?;
            let data = match data {
                Some(d) if !d.is_empty() => Some(d),
                // Files over 2 GiB keep data after the FlatBuffer; offset 1 is the
                // converter's placeholder, so only offsets > 1 are real.
                _ if offset > 1 => Some(self.external(offset, size, &ctx)?),
                _ => None,
            };
            out.push(data);
        }
        Ok(out)
    }

    /// A byte range of the file given by an offset/size pair (large models).
    fn external(&self, offset: u64, size: u64, ctx: &str) -> Result<&'a [u8]> {
        let range = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(o, s)| Some(o..o.checked_add(s)?));
        range.and_then(|r| self.file.get(r)).ok_or_else(|| {
            EngineError::invalid(format!(
                "{ctx}: data at offset {offset} size {size} lies outside the {}-byte file",
                self.file.len()
            ))
        })
    }

    fn opcodes(&self) -> Result<Vec<OpCode>> {
        let mut out = Vec::new();
        let Some(list) = self
            .root
            .operator_codes()
            .map_err(fb_err("Model.operator_codes"))?
        else {
            return Ok(out);
        };
        for (i, c) in list.iter().enumerate() {
            let ctx = format!("operator code {i}");
            let c = c.map_err(fb_err(&ctx))?;
            let dep = c.deprecated_builtin_code().map_err(fb_err(&ctx))?;
            let builtin = c.builtin_code().map_err(fb_err(&ctx))?;
            // Old files only fill the int8 field; codes > 127 only exist in the
            // int32 one: the larger of the two is the real code.
            let code = builtin.max(i32::from(dep));
            if code < 0 {
                return Err(EngineError::invalid(format!(
                    "{ctx}: negative builtin code {code}"
                )));
            }
            let custom_code = c.custom_code().map_err(fb_err(&ctx))?;
            let bytes = std::mem::size_of::<OpCode>() + custom_code.map_or(0, str::len);
            self.budget.charge(bytes as u64, &ctx)?;
            out.push(OpCode {
                code,
                custom_code: custom_code.map(str::to_string),
                version: c.version().map_err(fb_err(&ctx))?,
            });
        }
        Ok(out)
    }

    fn subgraph(
        &self,
        gi: usize,
        sg: fb::SubGraphRef<'a>,
        buffers: &[Option<&'a [u8]>],
        opcodes: &[OpCode],
    ) -> Result<Graph> {
        let ctx = format!("subgraph {gi}");
        let mut tensors = Vec::new();
        if let Some(list) = sg.tensors().map_err(fb_err(&ctx))? {
            for (ti, t) in list.iter().enumerate() {
                let tctx = format!("{ctx} tensor {ti}");
                let t = t.map_err(fb_err(&tctx))?;
                let t = tensor(&tctx, t, buffers)?;
                self.budget.charge(t.memory_bytes(), &tctx)?;
                tensors.push(t);
            }
        }
        let n = tensors.len();
        let ids = |v: Option<Vector<'a, i32>>, what: &str| -> Result<Vec<TensorId>> {
            v.map(|v| {
                v.iter()
                    .map(|i| tensor_id(i, n, &format!("{ctx} {what}")))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()
            .map(Option::unwrap_or_default)
        };
        let inputs = ids(sg.inputs().map_err(fb_err(&ctx))?, "inputs")?;
        let outputs = ids(sg.outputs().map_err(fb_err(&ctx))?, "outputs")?;
        self.budget
            .charge(8 * (inputs.len() + outputs.len()) as u64, &ctx)?;

        let mut ops = Vec::new();
        if let Some(list) = sg.operators().map_err(fb_err(&ctx))? {
            for (oi, op) in list.iter().enumerate() {
                let octx = format!("{ctx} operator {oi}");
                let op = op.map_err(fb_err(&octx))?;
                let op = self.operator(&octx, op, n, opcodes)?;
                self.budget.charge(op.memory_bytes(), &octx)?;
                ops.push(op);
            }
        }
        Ok(Graph {
            name: sg
                .name()
                .map_err(fb_err(&ctx))?
                .unwrap_or_default()
                .to_string(),
            tensors,
            ops,
            inputs,
            outputs,
        })
    }

    fn operator(
        &self,
        ctx: &str,
        op: fb::OperatorRef<'a>,
        n_tensors: usize,
        opcodes: &[OpCode],
    ) -> Result<Op> {
        let e = fb_err(ctx);
        let idx = op.opcode_index().map_err(&e)? as usize;
        let code = opcodes.get(idx).ok_or_else(|| {
            EngineError::invalid(format!(
                "{ctx}: opcode index {idx}, but there are only {} operator codes",
                opcodes.len()
            ))
        })?;

        let mut inputs = Vec::new();
        for i in op.inputs().map_err(&e)?.iter().flat_map(|v| v.iter()) {
            inputs.push(if i == -1 {
                None
            } else {
                Some(tensor_id(i, n_tensors, &format!("{ctx} inputs"))?)
            });
        }
        let list = |v: Option<Vector<'a, i32>>, what: &str| -> Result<Vec<TensorId>> {
            let mut out = Vec::new();
            for i in v.iter().flat_map(|v| v.iter()) {
                out.push(tensor_id(i, n_tensors, &format!("{ctx} {what}"))?);
            }
            Ok(out)
        };
        let outputs = list(op.outputs().map_err(&e)?, "outputs")?;
        let intermediates = list(op.intermediates().map_err(&e)?, "intermediates")?;

        let kind = if code.code == 32 {
            let offset = op.large_custom_options_offset().map_err(&e)?;
            let options = if offset > 1 {
                let size = op.large_custom_options_size().map_err(&e)?;
                self.external(offset, size, ctx)?.to_vec()
            } else {
                op.custom_options()
                    .map_err(&e)?
                    .unwrap_or_default()
                    .to_vec()
            };
            OpKind::Custom {
                code: code.custom_code.clone().unwrap_or_default(),
                options,
            }
        } else {
            let options = match op.builtin_options() {
                Ok(o) => o,
                // A tag this schema does not list: the options of an op we do not
                // know anyway; treat them as absent.
                Err(err) if matches!(err.error_kind, ErrorKind::UnknownUnionTag { .. }) => None,
                Err(err) => return Err(e(err)),
            };
            op_kind(ctx, code.code, options)?
        };
        Ok(Op {
            kind,
            inputs,
            outputs,
            intermediates,
            version: code.version,
        })
    }
}

/// A tensor index from the file (non-negative, in range).
fn tensor_id(i: i32, n: usize, ctx: &str) -> Result<TensorId> {
    usize::try_from(i).ok().filter(|&t| t < n).ok_or_else(|| {
        EngineError::invalid(format!(
            "{ctx}: tensor index {i} out of range (there are {n} tensors)"
        ))
    })
}

fn tensor(ctx: &str, t: fb::TensorRef<'_>, buffers: &[Option<&[u8]>]) -> Result<Tensor> {
    let e = fb_err(ctx);
    let name = t.name().map_err(&e)?.unwrap_or_default().to_string();
    if t.sparsity().map_err(&e)?.is_some() {
        return Err(EngineError::unsupported(format!(
            "{ctx} '{name}': sparse tensors are not supported"
        )));
    }
    let shape_signature: Option<Vec<i32>> =
        t.shape_signature().map_err(&e)?.map(|v| v.iter().collect());
    let mut shape = Vec::new();
    if let Some(dims) = t.shape().map_err(&e)? {
        for (i, d) in dims.iter().enumerate() {
            let dim = match usize::try_from(d) {
                Ok(d) => d,
                // A dynamic dimension: the signature says -1 there. Static-shape
                // consumers see it as 1, the size TFLite allocates by default.
                Err(_)
                    if shape_signature
                        .as_ref()
                        .is_some_and(|s| s.get(i) == Some(&-1)) =>
                {
                    1
                }
                Err(_) => {
                    return Err(EngineError::invalid(format!(
                        "{ctx} '{name}': negative dimension {d} in shape"
                    )));
                }
            };
            shape.push(dim);
        }
    }
    // Consumers multiply dimensions freely: refuse shapes whose element count
    // does not fit in usize.
    if shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .is_none()
    {
        return Err(EngineError::invalid(format!(
            "{ctx} '{name}': shape {shape:?} has too many elements"
        )));
    }
    let dtype = DType::from_tflite(t.type_().map_err(&e)?);
    let b = t.buffer().map_err(&e)? as usize;
    let data = buffers.get(b).ok_or_else(|| {
        EngineError::invalid(format!(
            "{ctx} '{name}': buffer index {b}, but there are only {} buffers",
            buffers.len()
        ))
    })?;
    let quant = match t.quantization().map_err(&e)? {
        Some(q) => quantization(ctx, &name, q)?,
        None => None,
    };
    Ok(Tensor {
        name,
        shape,
        dtype,
        // Copied out byte-wise: buffer data is not aligned in real files.
        data: data.map(<[u8]>::to_vec),
        quant,
        is_variable: t.is_variable().map_err(&e)?,
        shape_signature,
    })
}

fn quantization(
    ctx: &str,
    name: &str,
    q: fb::QuantizationParametersRef<'_>,
) -> Result<Option<Quantization>> {
    let e = fb_err(ctx);
    let floats =
        |v: Option<Vector<'_, f32>>| -> Vec<f32> { v.iter().flat_map(|v| v.iter()).collect() };
    let scale = floats(q.scale().map_err(&e)?);
    if scale.is_empty() {
        return Ok(None); // not quantized (e.g. a raw uint8 image input)
    }
    let dim = q.quantized_dimension().map_err(&e)?;
    let axis = usize::try_from(dim).map_err(|_| {
        EngineError::invalid(format!(
            "{ctx} '{name}': negative quantized_dimension {dim}"
        ))
    })?;
    Ok(Some(Quantization {
        scale,
        zero_point: q
            .zero_point()
            .map_err(&e)?
            .iter()
            .flat_map(|v| v.iter())
            .collect(),
        axis,
        min: floats(q.min().map_err(&e)?),
        max: floats(q.max().map_err(&e)?),
    }))
}

fn signature_def(
    i: usize,
    s: fb::SignatureDefRef<'_>,
    subgraphs: &[Graph],
    budget: &Budget,
) -> Result<SignatureDef> {
    let ctx = format!("signature def {i}");
    let e = fb_err(&ctx);
    let subgraph = s.subgraph_index().map_err(&e)? as usize;
    let n = subgraphs
        .get(subgraph)
        .map(|g| g.tensors.len())
        .ok_or_else(|| {
            EngineError::invalid(format!(
                "{ctx}: subgraph index {subgraph}, but there are only {}",
                subgraphs.len()
            ))
        })?;
    type Maps<'a> = Option<Vector<'a, planus::Result<fb::TensorMapRef<'a>>>>;
    let maps = |v: Maps<'_>| -> Result<Vec<(String, TensorId)>> {
        let mut out = Vec::new();
        for m in v.iter().flat_map(|v| v.iter()) {
            let m = m.map_err(&e)?;
            let name = m.name().map_err(&e)?.unwrap_or_default().to_string();
            budget.charge((name.len() + 32) as u64, &ctx)?;
            let t = m.tensor_index().map_err(&e)? as usize;
            if t >= n {
                return Err(EngineError::invalid(format!(
                    "{ctx}: '{name}' refers to tensor {t}, but subgraph {subgraph} has {n}"
                )));
            }
            out.push((name, t));
        }
        Ok(out)
    };
    Ok(SignatureDef {
        key: s
            .signature_key()
            .map_err(&e)?
            .unwrap_or_default()
            .to_string(),
        subgraph,
        inputs: maps(s.inputs().map_err(&e)?)?,
        outputs: maps(s.outputs().map_err(&e)?)?,
    })
}

/// A non-negative int option as `usize`.
fn uint(ctx: &str, what: &str, v: i32) -> Result<usize> {
    usize::try_from(v).map_err(|_| EngineError::invalid(format!("{ctx}: negative {what} {v}")))
}

/// Pick the options table of the expected type: absent (NONE) or a different
/// table gives the schema defaults, as TFLite's own parser does.
macro_rules! options {
    ($opts:expr, $variant:ident, $ctx:expr) => {
        match $opts {
            Some(fb::BuiltinOptionsRef::$variant(r)) => {
                fb::$variant::try_from(r).map_err(fb_err($ctx))?
            }
            _ => fb::$variant::default(),
        }
    };
}

fn pool(ctx: &str, o: fb::Pool2DOptions) -> Result<Pool2DOptions> {
    Ok(Pool2DOptions {
        padding: Padding::from_tflite(o.padding),
        stride_h: uint(ctx, "stride_h", o.stride_h)?,
        stride_w: uint(ctx, "stride_w", o.stride_w)?,
        filter_h: uint(ctx, "filter_height", o.filter_height)?,
        filter_w: uint(ctx, "filter_width", o.filter_width)?,
        activation: Activation::from_tflite(o.fused_activation_function),
    })
}

/// The IR operator for builtin `code` and its (possibly absent) options.
fn op_kind(ctx: &str, code: i32, opts: Option<fb::BuiltinOptionsRef<'_>>) -> Result<OpKind> {
    use OpKind as K;
    let act = Activation::from_tflite;
    Ok(match code {
        0 => {
            let o = options!(opts, AddOptions, ctx);
            K::Add {
                activation: act(o.fused_activation_function),
                pot_scale_int16: o.pot_scale_int16,
            }
        }
        1 => K::AveragePool2D(pool(ctx, options!(opts, Pool2DOptions, ctx))?),
        2 => {
            let o = options!(opts, ConcatenationOptions, ctx);
            K::Concatenation {
                axis: o.axis,
                activation: act(o.fused_activation_function),
            }
        }
        3 => {
            let o = options!(opts, Conv2DOptions, ctx);
            K::Conv2D(Conv2DOptions {
                padding: Padding::from_tflite(o.padding),
                stride_h: uint(ctx, "stride_h", o.stride_h)?,
                stride_w: uint(ctx, "stride_w", o.stride_w)?,
                dilation_h: uint(ctx, "dilation_h_factor", o.dilation_h_factor)?,
                dilation_w: uint(ctx, "dilation_w_factor", o.dilation_w_factor)?,
                activation: act(o.fused_activation_function),
            })
        }
        4 => {
            let o = options!(opts, DepthwiseConv2DOptions, ctx);
            K::DepthwiseConv2D(DepthwiseConv2DOptions {
                padding: Padding::from_tflite(o.padding),
                stride_h: uint(ctx, "stride_h", o.stride_h)?,
                stride_w: uint(ctx, "stride_w", o.stride_w)?,
                depth_multiplier: uint(ctx, "depth_multiplier", o.depth_multiplier)?,
                dilation_h: uint(ctx, "dilation_h_factor", o.dilation_h_factor)?,
                dilation_w: uint(ctx, "dilation_w_factor", o.dilation_w_factor)?,
                activation: act(o.fused_activation_function),
            })
        }
        6 => K::Dequantize,
        9 => {
            let o = options!(opts, FullyConnectedOptions, ctx);
            K::FullyConnected(FullyConnectedOptions {
                activation: act(o.fused_activation_function),
                weights_format: o.weights_format,
                keep_num_dims: o.keep_num_dims,
                asymmetric_quantize_inputs: o.asymmetric_quantize_inputs,
            })
        }
        14 => K::Logistic,
        17 => K::MaxPool2D(pool(ctx, options!(opts, Pool2DOptions, ctx))?),
        18 => K::Mul {
            activation: act(options!(opts, MulOptions, ctx).fused_activation_function),
        },
        19 => K::Relu,
        21 => K::Relu6,
        22 => K::Reshape {
            new_shape: options!(opts, ReshapeOptions, ctx).new_shape,
        },
        23 => {
            let o = options!(opts, ResizeBilinearOptions, ctx);
            K::ResizeBilinear {
                align_corners: o.align_corners,
                half_pixel_centers: o.half_pixel_centers,
            }
        }
        25 => K::Softmax {
            beta: options!(opts, SoftmaxOptions, ctx).beta,
        },
        28 => K::Tanh,
        34 => K::Pad,
        36 => {
            let o = options!(opts, GatherOptions, ctx);
            K::Gather {
                axis: o.axis,
                batch_dims: o.batch_dims,
            }
        }
        39 => K::Transpose,
        40 => K::Mean {
            keep_dims: options!(opts, ReducerOptions, ctx).keep_dims,
        },
        41 => {
            let o = options!(opts, SubOptions, ctx);
            K::Sub {
                activation: act(o.fused_activation_function),
                pot_scale_int16: o.pot_scale_int16,
            }
        }
        42 => K::Div {
            activation: act(options!(opts, DivOptions, ctx).fused_activation_function),
        },
        43 => K::Squeeze {
            dims: options!(opts, SqueezeOptions, ctx)
                .squeeze_dims
                .unwrap_or_default(),
        },
        44 => {
            let o = options!(opts, UnidirectionalSequenceLstmOptions, ctx);
            K::UnidirectionalSequenceLstm(LstmOptions {
                activation: act(o.fused_activation_function),
                cell_clip: o.cell_clip,
                proj_clip: o.proj_clip,
                time_major: o.time_major,
                asymmetric_quantize_inputs: o.asymmetric_quantize_inputs,
                diagonal_recurrent_tensors: o.diagonal_recurrent_tensors,
            })
        }
        45 => {
            let o = options!(opts, StridedSliceOptions, ctx);
            K::StridedSlice(StridedSliceOptions {
                begin_mask: o.begin_mask,
                end_mask: o.end_mask,
                ellipsis_mask: o.ellipsis_mask,
                new_axis_mask: o.new_axis_mask,
                shrink_axis_mask: o.shrink_axis_mask,
                offset: o.offset,
            })
        }
        49 => K::Split {
            num_splits: options!(opts, SplitOptions, ctx).num_splits,
        },
        53 => K::Cast,
        56 => K::ArgMax {
            output_type: DType::from_tflite(options!(opts, ArgMaxOptions, ctx).output_type),
        },
        75 => K::Sqrt,
        83 => {
            let o = options!(opts, PackOptions, ctx);
            K::Pack {
                values_count: o.values_count,
                axis: o.axis,
            }
        }
        88 => {
            let o = options!(opts, UnpackOptions, ctx);
            K::Unpack {
                num: o.num,
                axis: o.axis,
            }
        }
        90 => K::FloorDiv,
        107 => K::GatherNd,
        114 => K::Quantize,
        117 => K::HardSwish,
        126 => {
            let o = options!(opts, BatchMatMulOptions, ctx);
            K::BatchMatMul(BatchMatMulOptions {
                adj_x: o.adj_x,
                adj_y: o.adj_y,
                asymmetric_quantize_inputs: o.asymmetric_quantize_inputs,
            })
        }
        other => K::UnknownBuiltin { code: other },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Tensor;

    /// `n` uint8 tensors of 64 KiB that all name one buffer: a file of a little over
    /// 64 KiB whose IR holds `n` copies.
    fn shared_buffer_file(n: usize) -> Vec<u8> {
        let mut g = Graph::default();
        g.add_tensor(Tensor::constant(
            "data",
            vec![65536],
            DType::U8,
            vec![7; 65536],
        ));
        for i in 0..n {
            g.add_tensor(Tensor::activation(format!("t{i}"), vec![65536], DType::U8));
        }
        let bytes = super::super::write_model(&Model::from_graph(g, "shared")).unwrap();
        let mut m = fb::Model::try_from(fb::ModelRef::read_as_root(&bytes).unwrap()).unwrap();
        let tensors = m.subgraphs.as_mut().unwrap()[0].tensors.as_mut().unwrap();
        let shared = tensors[0].buffer;
        for t in tensors.iter_mut() {
            t.buffer = shared;
        }
        let mut b = planus::Builder::new();
        let fb_bytes = b.finish(&m, None).to_vec();
        super::super::writer::add_identifier(&fb_bytes).unwrap()
    }

    #[test]
    fn shared_buffers_are_charged_per_copy() {
        let file = shared_buffer_file(2000);
        assert!(file.len() < 200_000, "{}", file.len());
        // 2001 copies of 64 KiB: 125 MiB of IR from a 100 KiB file.
        let e = read_model_limited(&file, 16 << 20).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, EngineError::TooLarge(_)), "{msg}");
        assert!(
            msg.contains("memory limit of 16.0 MiB") && msg.contains("tensor"),
            "{msg}"
        );
        // Within a limit that holds them, sharing is legal.
        let m = read_model_limited(&file, 1 << 30).unwrap();
        assert_eq!(m.main().tensors.len(), 2001);
        assert!(
            m.main()
                .tensors
                .iter()
                .all(|t| t.data.as_deref() == Some(&[7; 65536][..]))
        );
    }

    #[test]
    fn the_file_itself_counts() {
        let file = shared_buffer_file(0);
        let e = read_model_limited(&file, 1000).unwrap_err();
        assert!(e.to_string().contains("model file"), "{e}");
    }
}

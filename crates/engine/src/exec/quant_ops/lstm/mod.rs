//! UNIDIRECTIONAL_SEQUENCE_LSTM: the fully-integer 8x8_16 path (int8 input, weights
//! and output state, int16 cell state, int32 biases, 5 intermediates) and the float32
//! path (float and dequantized models). Hybrid LSTMs (float input, int8 weights) are
//! left to the hybrid family.
//!
//! Preparation follows TFLite's `unidirectional_sequence_lstm.cc` Prepare:
//! `PopulateQuantizedLstmParams8x8_16` (effective scales, in the same f32/f64 mix)
//! and `PopulatePrecomputedZPTimesWeightsWithBias` (zero points folded into biases).
//!
//! State: the output/cell state tensors are `is_variable` and live in the arena for
//! the interpreter's lifetime, so state carries from one `invoke` to the next exactly
//! as in LiteRT (its golden outputs were produced that way). LiteRT resets an int8
//! variable tensor to its zero point at allocation (other types to 0); the arena
//! starts at 0, so the integer kernel applies that reset on its first run.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{EngineError, Result};
use crate::exec::kernels::lstm::{
    CellActivation, FloatGate, FloatLstm, FloatScratch, IntGate, IntLayerNorm, IntProjection,
    IntScratch, IntegerLstm, LstmDims,
};
use crate::exec::kernels::{KernelChoice, Parallelism};
use crate::exec::prepare::{OpKernel, Prepared};
use crate::exec::tensors::Tensors;
use crate::ir::{Activation, DType, Graph, LstmOptions, Op, OpKind, TensorId};
use crate::quant::fixed_point::{Multiplier, Rounding, quantize_multiplier};

// Input slots (tflite-format.md §8).
const INPUT: usize = 0;
const I2I: usize = 1;
const I2F: usize = 2;
const I2C: usize = 3;
const I2O: usize = 4;
const R2I: usize = 5;
const R2F: usize = 6;
const R2C: usize = 7;
const R2O: usize = 8;
const C2I: usize = 9;
const C2F: usize = 10;
const C2O: usize = 11;
const BIAS_I: usize = 12;
const BIAS_F: usize = 13;
const BIAS_C: usize = 14;
const BIAS_O: usize = 15;
const PROJ_W: usize = 16;
const PROJ_B: usize = 17;
const OUTPUT_STATE: usize = 18;
const CELL_STATE: usize = 19;
const LN_I: usize = 20;
const LN_F: usize = 21;
const LN_C: usize = 22;
const LN_O: usize = 23;

pub(crate) fn prepare(g: &Graph, op: &Op, _choice: KernelChoice) -> Option<Result<Prepared>> {
    let OpKind::UnidirectionalSequenceLstm(opts) = &op.kind else {
        return None;
    };
    let (Some(x), Some(w)) = (op.input(INPUT), op.input(I2F)) else {
        return Some(Err(EngineError::invalid(
            "LSTM needs its input (slot 0) and input-to-forget weights (slot 2)",
        )));
    };
    match (g.tensors[x].dtype, g.tensors[w].dtype) {
        (DType::I8, DType::I8) => Some(prepare_integer(g, op, opts)),
        (DType::F32, DType::F32) => Some(prepare_float(g, op, opts)),
        _ => None,
    }
}

/// The op's layout after the structural checks shared by both paths.
struct Layout {
    dims: LstmDims,
    x: TensorId,
    output_state: TensorId,
    cell_state: TensorId,
    y: TensorId,
    cifg: bool,
    peephole: bool,
    projection: bool,
    layer_norm: bool,
}

fn tensor_name(g: &Graph, t: TensorId) -> &str {
    &g.tensors[t].name
}

fn expect_dims(g: &Graph, t: TensorId, want: &[usize], what: &str) -> Result<()> {
    if g.tensors[t].shape != want {
        return Err(EngineError::invalid(format!(
            "LSTM {what} '{}' has shape {:?}, expected {want:?}",
            tensor_name(g, t),
            g.tensors[t].shape
        )));
    }
    Ok(())
}

fn layout(g: &Graph, op: &Op, opts: &LstmOptions) -> Result<Layout> {
    if op.inputs.len() != 20 && op.inputs.len() != 24 {
        return Err(EngineError::invalid(format!(
            "LSTM needs 20 or 24 input slots, has {}",
            op.inputs.len()
        )));
    }
    if op.outputs.len() != 1 {
        return Err(EngineError::invalid("LSTM must have exactly one output"));
    }
    if !(opts.cell_clip >= 0.0 && opts.proj_clip >= 0.0) {
        return Err(EngineError::invalid(
            "LSTM cell_clip and proj_clip must be ≥ 0",
        ));
    }
    let need = |k: usize, what: &str| {
        op.input(k)
            .ok_or_else(|| EngineError::invalid(format!("LSTM is missing its {what} (slot {k})")))
    };
    let x = need(INPUT, "input")?;
    let xs = &g.tensors[x].shape;
    if xs.len() != 3 {
        return Err(EngineError::unsupported(format!(
            "LSTM input '{}' must be 3-D, has shape {xs:?}",
            tensor_name(g, x)
        )));
    }
    let (max_time, n_batch) = if opts.time_major {
        (xs[0], xs[1])
    } else {
        (xs[1], xs[0])
    };
    let n_input = xs[2];
    let i2o = need(I2O, "input-to-output weights")?;
    let r2o = need(R2O, "recurrent-to-output weights")?;
    let ws = &g.tensors[i2o].shape;
    if ws.len() != 2 || ws[1] != n_input {
        return Err(EngineError::invalid(format!(
            "LSTM input-to-output weights have shape {ws:?}, expected [units, {n_input}]"
        )));
    }
    let n_cell = ws[0];
    let rs = &g.tensors[r2o].shape;
    if rs.len() == 1 {
        return Err(EngineError::unsupported(
            "LSTM with diagonal recurrent weights",
        ));
    }
    if rs.len() != 2 || rs[0] != n_cell {
        return Err(EngineError::invalid(format!(
            "LSTM recurrent-to-output weights have shape {rs:?}, expected [{n_cell}, outputs]"
        )));
    }
    let n_output = rs[1];
    if n_cell == 0 || n_output == 0 || n_input == 0 {
        return Err(EngineError::invalid("LSTM with an empty dimension"));
    }

    let cifg = op.input(I2I).is_none();
    if cifg != op.input(R2I).is_none() {
        return Err(EngineError::invalid(
            "LSTM input-gate weights must be both present or both absent (CIFG)",
        ));
    }
    for (k, cols, what) in [
        (I2F, n_input, "input-to-forget weights"),
        (I2C, n_input, "input-to-cell weights"),
        (R2F, n_output, "recurrent-to-forget weights"),
        (R2C, n_output, "recurrent-to-cell weights"),
    ] {
        expect_dims(g, need(k, what)?, &[n_cell, cols], what)?;
    }
    if !cifg {
        expect_dims(
            g,
            need(I2I, "")?,
            &[n_cell, n_input],
            "input-to-input weights",
        )?;
        expect_dims(
            g,
            need(R2I, "")?,
            &[n_cell, n_output],
            "recurrent-to-input weights",
        )?;
    }
    let peephole = op.input(C2O).is_some();
    let peephole_ok = if peephole {
        op.input(C2F).is_some() && (cifg || op.input(C2I).is_some())
    } else {
        op.input(C2F).is_none() && op.input(C2I).is_none()
    };
    if !peephole_ok {
        return Err(EngineError::invalid(
            "LSTM peephole weights must be all present or all absent",
        ));
    }
    for k in [C2I, C2F, C2O] {
        if let Some(t) = op.input(k) {
            expect_dims(g, t, &[n_cell], "peephole weights")?;
        }
    }
    if cifg != op.input(BIAS_I).is_none() {
        return Err(EngineError::invalid(
            "LSTM input-gate bias must be present exactly when the input gate is",
        ));
    }
    for k in [BIAS_I, BIAS_F, BIAS_C, BIAS_O] {
        if k == BIAS_I && cifg {
            continue;
        }
        expect_dims(g, need(k, "gate bias")?, &[n_cell], "gate bias")?;
    }
    let projection = op.input(PROJ_W).is_some();
    if let Some(t) = op.input(PROJ_W) {
        expect_dims(g, t, &[n_output, n_cell], "projection weights")?;
    } else if n_output != n_cell {
        return Err(EngineError::invalid(format!(
            "LSTM without projection must have as many outputs as units ({n_output} vs {n_cell})"
        )));
    }
    if let Some(t) = op.input(PROJ_B) {
        if !projection {
            return Err(EngineError::invalid(
                "LSTM projection bias without projection weights",
            ));
        }
        expect_dims(g, t, &[n_output], "projection bias")?;
    }
    let layer_norm = op.input(LN_F).is_some();
    if layer_norm {
        if cifg == op.input(LN_I).is_some() {
            return Err(EngineError::invalid(
                "LSTM input layer-norm coefficients must be present exactly when the input gate is",
            ));
        }
        for k in [LN_I, LN_F, LN_C, LN_O] {
            if k == LN_I && cifg {
                continue;
            }
            expect_dims(
                g,
                need(k, "layer-norm coefficients")?,
                &[n_cell],
                "layer-norm coefficients",
            )?;
        }
    } else if [LN_I, LN_C, LN_O].iter().any(|&k| op.input(k).is_some()) {
        return Err(EngineError::invalid(
            "LSTM layer-norm coefficients without the forget-gate ones",
        ));
    }

    let output_state = need(OUTPUT_STATE, "output state")?;
    let cell_state = need(CELL_STATE, "cell state")?;
    for (t, n, what) in [
        (output_state, n_batch * n_output, "output state"),
        (cell_state, n_batch * n_cell, "cell state"),
    ] {
        let tensor = &g.tensors[t];
        if !tensor.is_variable || tensor.is_constant() {
            return Err(EngineError::unsupported(format!(
                "LSTM {what} '{}' must be a variable tensor",
                tensor.name
            )));
        }
        if tensor.num_elements() != n {
            return Err(EngineError::invalid(format!(
                "LSTM {what} '{}' has {} elements, expected {n}",
                tensor.name,
                tensor.num_elements()
            )));
        }
    }
    if x == output_state || x == cell_state || output_state == cell_state {
        return Err(EngineError::invalid(
            "LSTM input, output state and cell state must be distinct tensors",
        ));
    }
    let y = op.outputs[0];
    let mut want_y = xs.clone();
    want_y[2] = n_output;
    expect_dims(g, y, &want_y, "output")?;

    Ok(Layout {
        dims: LstmDims {
            time_major: opts.time_major,
            max_time,
            n_batch,
            n_input,
            n_cell,
            n_output,
        },
        x,
        output_state,
        cell_state,
        y,
        cifg,
        peephole,
        projection,
        layer_norm,
    })
}

/// Every constant slot the kernel copies (weights, biases, coefficients).
pub(crate) fn packed_slots(op: &Op) -> Vec<usize> {
    (1..op.inputs.len())
        .filter(|&k| k != OUTPUT_STATE && k != CELL_STATE && op.input(k).is_some())
        .collect()
}

/// Decode a constant of the given type from its little-endian bytes.
fn constant<T, const N: usize>(
    g: &Graph,
    t: TensorId,
    dtype: DType,
    what: &str,
    from: fn([u8; N]) -> T,
) -> Result<Vec<T>> {
    let tensor = &g.tensors[t];
    if tensor.dtype != dtype {
        return Err(EngineError::unsupported(format!(
            "LSTM {what} '{}' is {}, expected {dtype}",
            tensor.name, tensor.dtype
        )));
    }
    let data = tensor.data.as_ref().ok_or_else(|| {
        EngineError::unsupported(format!("LSTM {what} '{}' must be a constant", tensor.name))
    })?;
    Ok(data
        .chunks_exact(N)
        .map(|c| from(c.try_into().expect("chunks_exact gives N bytes")))
        .collect())
}

fn const_i8(g: &Graph, t: TensorId, what: &str) -> Result<Vec<i8>> {
    constant(g, t, DType::I8, what, i8::from_le_bytes)
}
fn const_i16(g: &Graph, t: TensorId, what: &str) -> Result<Vec<i16>> {
    constant(g, t, DType::I16, what, i16::from_le_bytes)
}
fn const_i32(g: &Graph, t: TensorId, what: &str) -> Result<Vec<i32>> {
    constant(g, t, DType::I32, what, i32::from_le_bytes)
}
fn const_f32(g: &Graph, t: TensorId, what: &str) -> Result<Vec<f32>> {
    constant(g, t, DType::F32, what, f32::from_le_bytes)
}

/// Per-tensor scale and zero point (TFLite's `params.scale/zero_point`).
fn qparams(g: &Graph, t: TensorId, what: &str) -> Result<(f32, i32)> {
    let tensor = &g.tensors[t];
    let q = tensor
        .quant
        .as_ref()
        .filter(|q| !q.scale.is_empty())
        .ok_or_else(|| {
            EngineError::unsupported(format!(
                "integer LSTM {what} '{}' has no quantization parameters",
                tensor.name
            ))
        })?;
    if q.scale.len() != 1 {
        return Err(EngineError::unsupported(format!(
            "integer LSTM {what} '{}' is quantized per channel",
            tensor.name
        )));
    }
    let (s, zp) = q.params(0);
    let zp = i32::try_from(zp)
        .map_err(|_| EngineError::invalid(format!("{what} '{}': zero point {zp}", tensor.name)))?;
    Ok((s, zp))
}

/// TFLite `CheckedLog2`: the exponent of a power-of-two scale.
fn checked_log2(x: f32) -> Option<i32> {
    let l = x.ln() * (1.0 / 2f32.ln());
    let r = l.round();
    ((l - r).abs() < 1e-3 && r.is_finite()).then_some(r as i32)
}

/// QuantizeMultiplier of an effective scale, refusing left shifts past 30 bits (MBQM's
/// `x * 2^shift` would overflow; only absurd scales get there). `extra` is a further
/// left shift the kernel adds (layer norm's +12).
fn qm(real: f32, extra: i32, what: &str) -> Result<Multiplier> {
    let m = quantize_multiplier(real as f64, Rounding::default());
    if m.shift + extra > 30 {
        return Err(EngineError::unsupported(format!(
            "integer LSTM {what}: effective scale {real} is too large"
        )));
    }
    Ok(m)
}

/// `bias + zp * rowsum(w)` in wrapping int32, as `PrecomputeZeroPointTimesWeightWithBias`.
fn fold_zero_point(w: &[i8], rows: usize, bias: Option<&[i32]>, zp: i32) -> Vec<i32> {
    let cols = w.len() / rows.max(1);
    (0..rows)
        .map(|r| {
            let sum = w[r * cols..(r + 1) * cols]
                .iter()
                .fold(0i32, |a, &v| a.wrapping_add(v as i32));
            bias.map_or(0, |b| b[r]).wrapping_add(sum.wrapping_mul(zp))
        })
        .collect()
}

fn prepare_integer(g: &Graph, op: &Op, opts: &LstmOptions) -> Result<Prepared> {
    let l = layout(g, op, opts)?;
    let d = l.dims;
    let slot = |k: usize| op.input(k).expect("checked by layout");
    let (input_scale, input_zp) = qparams(g, l.x, "input")?;
    let hs = &g.tensors[l.output_state];
    if hs.dtype != DType::I8 {
        return Err(EngineError::unsupported(format!(
            "integer LSTM output state '{}' is {}, expected int8",
            hs.name, hs.dtype
        )));
    }
    let cs = &g.tensors[l.cell_state];
    if cs.dtype != DType::I16 {
        return Err(EngineError::unsupported(format!(
            "integer LSTM cell state '{}' is {}, expected int16 (only the 8x8_16 scheme is implemented)",
            cs.name, cs.dtype
        )));
    }
    if g.tensors[l.y].dtype != DType::I8 {
        return Err(EngineError::unsupported("integer LSTM output must be int8"));
    }
    let (output_state_scale, output_state_zp) = qparams(g, l.output_state, "output state")?;
    if !(-128..=127).contains(&input_zp) || !(-128..=127).contains(&output_state_zp) {
        return Err(EngineError::invalid(format!(
            "integer LSTM zero points out of int8 range (input {input_zp}, output state {output_state_zp})"
        )));
    }
    let (cell_state_scale, _) = qparams(g, l.cell_state, "cell state")?;
    let (output_scale, _) = qparams(g, l.y, "output")?;
    let cell_scale = checked_log2(cell_state_scale).ok_or_else(|| {
        EngineError::unsupported(format!(
            "integer LSTM cell state scale {cell_state_scale} is not a power of two"
        ))
    })?;
    // The tanh of the cell state runs on Q(15 + cell_scale); gemmlowp's tables cover 0..=6.
    if !(-15..=-9).contains(&cell_scale) {
        return Err(EngineError::unsupported(format!(
            "integer LSTM cell state scale 2^{cell_scale} (supported: 2^-15 .. 2^-9)"
        )));
    }

    if l.peephole && d.n_output > d.n_cell {
        return Err(EngineError::unsupported(format!(
            "integer peephole LSTM with more outputs than units ({} > {}): TFLite's kernel reads past its arrays there",
            d.n_output, d.n_cell
        )));
    }
    if op.intermediates.len() != 5 {
        return Err(EngineError::invalid(format!(
            "integer LSTM needs 5 intermediate tensors, has {}",
            op.intermediates.len()
        )));
    }
    // Gate pre-activations are Q3.12 unless layer norm calibrated them.
    let mut inter_scale = [2f32.powi(-12); 4];
    if l.layer_norm {
        for (k, s) in inter_scale.iter_mut().enumerate() {
            *s = qparams(g, op.intermediates[k], "gate intermediate")?.0;
        }
    }
    let (hidden_scale, hidden_zp) = qparams(g, op.intermediates[4], "hidden intermediate")?;
    if !(-128..=127).contains(&hidden_zp) {
        return Err(EngineError::invalid(format!(
            "integer LSTM hidden zero point {hidden_zp} out of int8 range"
        )));
    }

    let weight_scale = |k: usize, what: &str| qparams(g, slot(k), what).map(|p| p.0);
    let gate = |k_in: usize,
                k_rec: usize,
                k_peep: usize,
                k_bias: usize,
                k_ln: usize,
                gi: usize|
     -> Result<IntGate> {
        let w_in = const_i8(g, slot(k_in), "input weights")?;
        let w_rec = const_i8(g, slot(k_rec), "recurrent weights")?;
        let in_s = weight_scale(k_in, "input weights")?;
        let rec_s = weight_scale(k_rec, "recurrent weights")?;
        let bias = const_i32(g, slot(k_bias), "gate bias")?;
        // f32 arithmetic as in TFLite: (weight_scale * input_scale) / intermediate_scale.
        let input_scale_eff = in_s * input_scale / inter_scale[gi];
        let rec_scale_eff = rec_s * output_state_scale / inter_scale[gi];
        let peephole = match op.input(k_peep) {
            Some(t) if l.peephole => {
                let w = const_i16(g, t, "peephole weights")?;
                let s = qparams(g, t, "peephole weights")?.0;
                // std::pow(2, int) is a double in TFLite: evaluated in f64, stored as f32.
                let eff = (2f64.powi(cell_scale) * s as f64 / inter_scale[gi] as f64) as f32;
                Some((w, qm(eff, 0, "peephole scale")?))
            }
            _ => None,
        };
        let layer_norm = if l.layer_norm {
            let t = slot(k_ln);
            let coefficients = const_i16(g, t, "layer-norm coefficients")?;
            let s = qparams(g, t, "layer-norm coefficients")?.0;
            Some(IntLayerNorm {
                coefficients,
                bias: bias.clone(),
                scale: qm(s, 12, "layer-norm scale")?,
                variance_guard: ((10000.0f32 * s) as i32).max(1),
            })
        } else {
            None
        };
        // With layer norm the bias is applied after normalizing, not in the matmul.
        let folded_bias = (!l.layer_norm).then_some(bias.as_slice());
        Ok(IntGate {
            input_effective_bias: fold_zero_point(&w_in, d.n_cell, folded_bias, -input_zp),
            input_weights: w_in,
            input_scale: qm(input_scale_eff, 0, "input-to-gate scale")?,
            recurrent_effective_bias: fold_zero_point(&w_rec, d.n_cell, None, -output_state_zp),
            recurrent_weights: w_rec,
            recurrent_scale: qm(rec_scale_eff, 0, "recurrent-to-gate scale")?,
            peephole,
            layer_norm,
        })
    };
    let input_gate = if l.cifg {
        None
    } else {
        Some(gate(I2I, R2I, C2I, BIAS_I, LN_I, 0)?)
    };
    let forget_gate = gate(I2F, R2F, C2F, BIAS_F, LN_F, 1)?;
    let cell_gate = gate(I2C, R2C, usize::MAX, BIAS_C, LN_C, 2)?;
    let output_gate = gate(I2O, R2O, C2O, BIAS_O, LN_O, 3)?;

    let projection = if l.projection {
        let t = slot(PROJ_W);
        let w = const_i8(g, t, "projection weights")?;
        let s = qparams(g, t, "projection weights")?.0;
        let bias = match op.input(PROJ_B) {
            Some(b) => Some(const_i32(g, b, "projection bias")?),
            None => None,
        };
        let clip = if opts.proj_clip > 0.0 {
            (opts.proj_clip / output_scale).clamp(-128.0, 127.0) as i8
        } else {
            0
        };
        Some(IntProjection {
            effective_bias: fold_zero_point(&w, d.n_output, bias.as_deref(), hidden_zp),
            weights: w,
            scale: qm(s * hidden_scale / output_state_scale, 0, "projection scale")?,
            clip,
        })
    } else {
        None
    };
    let cell_clip = if opts.cell_clip > 0.0 {
        (opts.cell_clip / cell_state_scale).clamp(-32768.0, 32767.0) as i16
    } else {
        0
    };
    // std::pow(2, -15) / hidden_scale * std::pow(2, -15): double arithmetic, stored f32.
    let eff_hidden = (2f64.powi(-15) / hidden_scale as f64 * 2f64.powi(-15)) as f32;

    let lstm = IntegerLstm {
        dims: d,
        input_gate,
        forget_gate,
        cell_gate,
        output_gate,
        cell_scale,
        cell_clip,
        hidden_scale: qm(eff_hidden, 0, "hidden scale")?,
        hidden_zp,
        projection,
        output_state_zp,
        rounding: Rounding::default(),
    };
    let output_state_reset = output_state_zp as i8;
    Ok(Prepared::packing(
        IntegerLstmKernel {
            scratch: Mutex::new(IntScratch::new(&d)),
            lstm,
            x: l.x,
            output_state: l.output_state,
            cell_state: l.cell_state,
            y: l.y,
            output_state_reset,
            started: AtomicBool::new(false),
        },
        packed_slots(op),
    ))
}

struct IntegerLstmKernel {
    lstm: IntegerLstm,
    scratch: Mutex<IntScratch>,
    x: TensorId,
    output_state: TensorId,
    cell_state: TensorId,
    y: TensorId,
    /// The value LiteRT gives the int8 output state at allocation (its zero point).
    output_state_reset: i8,
    started: AtomicBool,
}

impl OpKernel for IntegerLstmKernel {
    fn run(&self, io: &Tensors<'_>, _: &[Option<TensorId>], _: &[TensorId], _: Parallelism) {
        if !self.started.swap(true, Ordering::Relaxed) {
            io.output::<i8>(self.output_state)
                .fill(self.output_state_reset);
            io.output::<i16>(self.cell_state).fill(0);
        }
        let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        self.lstm.eval(
            io.input::<i8>(self.x),
            io.output::<i8>(self.output_state),
            io.output::<i16>(self.cell_state),
            io.output::<i8>(self.y),
            &mut scratch,
        );
    }
}

fn prepare_float(g: &Graph, op: &Op, opts: &LstmOptions) -> Result<Prepared> {
    let l = layout(g, op, opts)?;
    let slot = |k: usize| op.input(k).expect("checked by layout");
    for (t, what) in [
        (l.output_state, "output state"),
        (l.cell_state, "cell state"),
        (l.y, "output"),
    ] {
        if g.tensors[t].dtype != DType::F32 {
            return Err(EngineError::unsupported(format!(
                "float LSTM {what} '{}' is {}, expected float32",
                tensor_name(g, t),
                g.tensors[t].dtype
            )));
        }
    }
    let activation = match opts.activation {
        Activation::None => CellActivation::None,
        Activation::Relu => CellActivation::Relu,
        Activation::ReluN1To1 => CellActivation::ReluN1To1,
        Activation::Relu6 => CellActivation::Relu6,
        Activation::Tanh => CellActivation::Tanh,
        Activation::SignBit => {
            return Err(EngineError::unsupported("LSTM with SIGN_BIT activation"));
        }
    };
    let gate = |k_in: usize,
                k_rec: usize,
                k_peep: usize,
                k_bias: usize,
                k_ln: usize|
     -> Result<FloatGate> {
        Ok(FloatGate {
            input_weights: const_f32(g, slot(k_in), "input weights")?,
            recurrent_weights: const_f32(g, slot(k_rec), "recurrent weights")?,
            peephole: match op.input(k_peep) {
                Some(t) if l.peephole => Some(const_f32(g, t, "peephole weights")?),
                _ => None,
            },
            layer_norm: if l.layer_norm {
                Some(const_f32(g, slot(k_ln), "layer-norm coefficients")?)
            } else {
                None
            },
            bias: const_f32(g, slot(k_bias), "gate bias")?,
        })
    };
    let input_gate = if l.cifg {
        None
    } else {
        Some(gate(I2I, R2I, C2I, BIAS_I, LN_I)?)
    };
    let projection = if l.projection {
        let bias = match op.input(PROJ_B) {
            Some(b) => Some(const_f32(g, b, "projection bias")?),
            None => None,
        };
        Some((const_f32(g, slot(PROJ_W), "projection weights")?, bias))
    } else {
        None
    };
    let lstm = FloatLstm {
        dims: l.dims,
        input_gate,
        forget_gate: gate(I2F, R2F, C2F, BIAS_F, LN_F)?,
        cell_gate: gate(I2C, R2C, usize::MAX, BIAS_C, LN_C)?,
        output_gate: gate(I2O, R2O, C2O, BIAS_O, LN_O)?,
        activation,
        cell_clip: opts.cell_clip,
        projection,
        proj_clip: opts.proj_clip,
    };
    Ok(Prepared::packing(
        FloatLstmKernel {
            scratch: Mutex::new(FloatScratch::new(&l.dims)),
            lstm,
            x: l.x,
            output_state: l.output_state,
            cell_state: l.cell_state,
            y: l.y,
        },
        packed_slots(op),
    ))
}

struct FloatLstmKernel {
    lstm: FloatLstm,
    scratch: Mutex<FloatScratch>,
    x: TensorId,
    output_state: TensorId,
    cell_state: TensorId,
    y: TensorId,
}

impl OpKernel for FloatLstmKernel {
    fn run(&self, io: &Tensors<'_>, _: &[Option<TensorId>], _: &[TensorId], _: Parallelism) {
        let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        self.lstm.eval(
            io.input::<f32>(self.x),
            io.output::<f32>(self.output_state),
            io.output::<f32>(self.cell_state),
            io.output::<f32>(self.y),
            &mut scratch,
        );
    }
}

#[cfg(test)]
mod tests;

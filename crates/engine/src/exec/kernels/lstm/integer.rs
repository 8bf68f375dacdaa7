//! The fully-integer 8x8_16 LSTM of TFLite (`lstm_eval.cc`: `EvalInteger8x8_16`,
//! `LstmStepInteger8x8_16`, `CalculateLstmGateInteger8x8_16`, `UpdateLstmCellInteger`,
//! `CalculateLstmOutputInteger8x8_16`; the vector helpers of
//! `portable_tensor_utils.cc`): int8 input, weights and output state, int16 gates
//! (Q3.12 pre-activation, Q0.15 after) and cell state (scale 2^cell_scale), int32
//! biases folded with the zero points at preparation.

use super::dims::LstmDims;
use super::fixed16::{inv_sqrt_multiplier_exp, logistic16, tanh16};
use crate::quant::fixed_point::{Multiplier, Rounding, mbqm, rdbpot};

/// Integer layer normalization of one gate (layer-norm LSTM).
#[derive(Debug, Clone)]
pub struct IntLayerNorm {
    /// int16 coefficients, `n_cell`.
    pub coefficients: Vec<i16>,
    /// The gate's int32 bias (added after normalization), `n_cell`.
    pub bias: Vec<i32>,
    pub scale: Multiplier,
    /// Stand-in for a zero variance: `max(1, trunc(10000 * coefficient scale))`.
    pub variance_guard: i32,
}

/// One gate: `act(MBQM(W_x x + b_x) + MBQM(W_h h + b_h) [+ peephole] [layer norm])`.
#[derive(Debug, Clone)]
pub struct IntGate {
    /// `[n_cell, n_input]` row-major.
    pub input_weights: Vec<i8>,
    /// Gate bias (0 with layer norm) plus `-input_zp * rowsum(input_weights)`.
    pub input_effective_bias: Vec<i32>,
    pub input_scale: Multiplier,
    /// `[n_cell, n_output]` row-major.
    pub recurrent_weights: Vec<i8>,
    /// `-output_state_zp * rowsum(recurrent_weights)`.
    pub recurrent_effective_bias: Vec<i32>,
    pub recurrent_scale: Multiplier,
    /// Peephole (diagonal cell-to-gate) int16 weights and their effective scale.
    pub peephole: Option<(Vec<i16>, Multiplier)>,
    pub layer_norm: Option<IntLayerNorm>,
}

/// Projection of the hidden state (`[n_output, n_cell]` int8 weights).
#[derive(Debug, Clone)]
pub struct IntProjection {
    pub weights: Vec<i8>,
    /// Projection bias (or 0) plus `hidden_zp * rowsum(weights)`, as TFLite folds it.
    pub effective_bias: Vec<i32>,
    pub scale: Multiplier,
    /// Quantized projection clip; 0 = none.
    pub clip: i8,
}

/// A prepared integer LSTM: everything `PopulateQuantizedLstmParams8x8_16` and
/// `PopulatePrecomputedZPTimesWeightsWithBias` compute.
#[derive(Debug, Clone)]
pub struct IntegerLstm {
    pub dims: LstmDims,
    /// `None` = CIFG (input gate is `1 - forget`).
    pub input_gate: Option<IntGate>,
    pub forget_gate: IntGate,
    pub cell_gate: IntGate,
    pub output_gate: IntGate,
    /// log2 of the cell-state scale (e.g. -12 for 2^-12).
    pub cell_scale: i32,
    /// Quantized cell clip; 0 = none.
    pub cell_clip: i16,
    /// `2^-30 / hidden_scale`: output_gate (Q0.15) × tanh(cell) (Q0.15) → hidden int8.
    pub hidden_scale: Multiplier,
    pub hidden_zp: i32,
    pub projection: Option<IntProjection>,
    pub output_state_zp: i32,
    pub rounding: Rounding,
}

/// Per-step working memory (`n_batch * n_cell` each).
#[derive(Debug, Clone, Default)]
pub struct IntScratch {
    input_gate: Vec<i16>,
    forget_gate: Vec<i16>,
    cell_gate: Vec<i16>,
    output_gate: Vec<i16>,
    tanh_cell: Vec<i16>,
    hidden: Vec<i8>,
}

impl IntScratch {
    pub fn new(dims: &LstmDims) -> Self {
        // Batch-major sequences step one batch row at a time; time-major steps all rows.
        let rows = if dims.time_major { dims.n_batch } else { 1 };
        let n = rows * dims.n_cell;
        IntScratch {
            input_gate: vec![0; n],
            forget_gate: vec![0; n],
            cell_gate: vec![0; n],
            output_gate: vec![0; n],
            tanh_cell: vec![0; n],
            hidden: vec![0; n],
        }
    }
}

#[derive(Clone, Copy)]
enum GateActivation {
    Sigmoid,
    Tanh,
}

impl IntegerLstm {
    /// Run the whole sequence. `input` is `[T, B, n_input]` (time-major) or
    /// `[B, T, n_input]`; `output` has the same layout with `n_output` features.
    /// `output_state` (`[B, n_output]`) and `cell_state` (`[B, n_cell]`) carry over from
    /// the previous call, as TFLite's variable tensors do.
    pub fn eval(
        &self,
        input: &[i8],
        output_state: &mut [i8],
        cell_state: &mut [i16],
        output: &mut [i8],
        scratch: &mut IntScratch,
    ) {
        let d = &self.dims;
        let (ni, no, nc) = (d.n_input, d.n_output, d.n_cell);
        if d.time_major {
            let (in_step, out_step) = (d.n_batch * ni, d.n_batch * no);
            for t in 0..d.max_time {
                self.step(
                    &input[t * in_step..(t + 1) * in_step],
                    d.n_batch,
                    output_state,
                    cell_state,
                    scratch,
                );
                output[t * out_step..(t + 1) * out_step].copy_from_slice(output_state);
            }
        } else {
            for b in 0..d.n_batch {
                let hs = &mut output_state[b * no..(b + 1) * no];
                let cs = &mut cell_state[b * nc..(b + 1) * nc];
                for t in 0..d.max_time {
                    let row = b * d.max_time + t;
                    self.step(&input[row * ni..(row + 1) * ni], 1, hs, cs, scratch);
                    output[row * no..(row + 1) * no].copy_from_slice(hs);
                }
            }
        }
    }

    /// `LstmStepInteger8x8_16` for `n_batch` rows.
    fn step(
        &self,
        input: &[i8],
        n_batch: usize,
        output_state: &mut [i8],
        cell_state: &mut [i16],
        s: &mut IntScratch,
    ) {
        let n = n_batch * self.dims.n_cell;
        if let Some(g) = &self.input_gate {
            self.gate(
                g,
                input,
                output_state,
                cell_state,
                n_batch,
                GateActivation::Sigmoid,
                &mut s.input_gate[..n],
            );
        }
        let g = &self.forget_gate;
        self.gate(
            g,
            input,
            output_state,
            cell_state,
            n_batch,
            GateActivation::Sigmoid,
            &mut s.forget_gate[..n],
        );
        let g = &self.cell_gate;
        self.gate(
            g,
            input,
            output_state,
            cell_state,
            n_batch,
            GateActivation::Tanh,
            &mut s.cell_gate[..n],
        );
        self.update_cell(
            &mut cell_state[..n],
            &s.input_gate[..n],
            &mut s.forget_gate[..n],
            &s.cell_gate[..n],
        );
        // The output gate's peephole sees the updated cell state.
        let g = &self.output_gate;
        self.gate(
            g,
            input,
            output_state,
            cell_state,
            n_batch,
            GateActivation::Sigmoid,
            &mut s.output_gate[..n],
        );
        self.output(
            n_batch,
            cell_state,
            &s.output_gate[..n],
            output_state,
            &mut s.tanh_cell[..n],
            &mut s.hidden[..n],
        );
    }

    /// `CalculateLstmGateInteger8x8_16`.
    #[allow(clippy::too_many_arguments)]
    fn gate(
        &self,
        g: &IntGate,
        input: &[i8],
        output_state: &[i8],
        cell_state: &[i16],
        n_batch: usize,
        act: GateActivation,
        gate: &mut [i16],
    ) {
        let d = &self.dims;
        gate.fill(0);
        matmul_acc_i16(
            input,
            &g.input_effective_bias,
            &g.input_weights,
            g.input_scale,
            n_batch,
            d.n_input,
            d.n_cell,
            gate,
            self.rounding,
        );
        matmul_acc_i16(
            output_state,
            &g.recurrent_effective_bias,
            &g.recurrent_weights,
            g.recurrent_scale,
            n_batch,
            d.n_output,
            d.n_cell,
            gate,
            self.rounding,
        );
        if let Some((w, m)) = &g.peephole {
            // TFLite passes n_output, not n_cell, as the vector length here and walks the
            // batch rows with that stride (`VectorBatchVectorCwiseProductAccumulate`).
            // With projection (n_output < n_cell) only the first n_output * n_batch
            // entries get a peephole term; mirrored for bit-exactness. Preparation
            // rejects n_output > n_cell, which would read past the arrays.
            let len = d.n_output;
            for idx in 0..n_batch * len {
                let prod = mbqm(
                    w[idx % len] as i32 * cell_state[idx] as i32,
                    *m,
                    self.rounding,
                );
                gate[idx] = (prod + gate[idx] as i32).clamp(-32768, 32767) as i16;
            }
        }
        if let Some(ln) = &g.layer_norm {
            layer_norm(gate, ln, d.n_cell, self.rounding);
        }
        match act {
            GateActivation::Sigmoid => gate.iter_mut().for_each(|v| *v = logistic16(*v, 3)),
            GateActivation::Tanh => gate.iter_mut().for_each(|v| *v = tanh16(*v, 3)),
        }
    }

    /// `UpdateLstmCellInteger`: `c = f*c + i*g` (CIFG: `i = 1 - f`), then clip.
    fn update_cell(&self, cell: &mut [i16], input_gate: &[i16], forget: &mut [i16], g: &[i16]) {
        let shift = 30 + self.cell_scale;
        for (c, &f) in cell.iter_mut().zip(forget.iter()) {
            *c = rdbpot(f as i32 * *c as i32, 15) as i16;
        }
        // The forget gate doubles as scratch for `i*g`, as in TFLite.
        let scratch = forget;
        match &self.input_gate {
            None => {
                for (sc, &gv) in scratch.iter_mut().zip(g) {
                    let one_minus_f = 32767i16.wrapping_sub(*sc);
                    *sc = rdbpot(one_minus_f as i32 * gv as i32, shift) as i16;
                }
            }
            Some(_) => {
                for ((sc, &iv), &gv) in scratch.iter_mut().zip(input_gate).zip(g) {
                    *sc = rdbpot(iv as i32 * gv as i32, shift) as i16;
                }
            }
        }
        for (c, &sc) in cell.iter_mut().zip(scratch.iter()) {
            *c = (*c as i32 + sc as i32).clamp(-32768, 32767) as i16;
        }
        if self.cell_clip > 0 {
            let clip = self.cell_clip;
            cell.iter_mut().for_each(|c| *c = (*c).clamp(-clip, clip));
        }
    }

    /// `CalculateLstmOutputInteger8x8_16`: hidden = o * tanh(c), projected if asked.
    fn output(
        &self,
        n_batch: usize,
        cell_state: &[i16],
        output_gate: &[i16],
        output_state: &mut [i8],
        tanh_cell: &mut [i16],
        hidden: &mut [i8],
    ) {
        let integer_bits = 15 + self.cell_scale;
        for (t, &c) in tanh_cell.iter_mut().zip(cell_state) {
            *t = tanh16(c, integer_bits);
        }
        match &self.projection {
            None => cwise_mul_i8(
                output_gate,
                tanh_cell,
                self.hidden_scale,
                self.hidden_zp,
                output_state,
                self.rounding,
            ),
            Some(p) => {
                // LiteRT feeds the projection `-hidden_zp` here (b/246629213) and folds
                // `hidden_zp * rowsum` into the bias; reproduce both halves.
                cwise_mul_i8(
                    output_gate,
                    tanh_cell,
                    self.hidden_scale,
                    -self.hidden_zp,
                    hidden,
                    self.rounding,
                );
                output_state.fill(0);
                matmul_acc_i8(
                    hidden,
                    &p.effective_bias,
                    &p.weights,
                    p.scale,
                    n_batch,
                    self.dims.n_cell,
                    self.dims.n_output,
                    self.output_state_zp,
                    output_state,
                    self.rounding,
                );
                if p.clip > 0 {
                    output_state
                        .iter_mut()
                        .for_each(|v| *v = (*v).clamp(-p.clip, p.clip));
                }
            }
        }
    }
}

/// `MatrixBatchVectorMultiplyAccumulate` (int8 × int8 → int16, accumulating into the
/// output with saturation): `out = sat16(out + MBQM(bias + W·x))`.
#[allow(clippy::too_many_arguments)]
fn matmul_acc_i16(
    x: &[i8],
    bias: &[i32],
    w: &[i8],
    m: Multiplier,
    n_batch: usize,
    n_in: usize,
    n_out: usize,
    out: &mut [i16],
    rounding: Rounding,
) {
    for b in 0..n_batch {
        let xb = &x[b * n_in..(b + 1) * n_in];
        for row in 0..n_out {
            let wr = &w[row * n_in..(row + 1) * n_in];
            let acc = wr.iter().zip(xb).fold(bias[row], |a, (&wv, &xv)| {
                a.wrapping_add(wv as i32 * xv as i32)
            });
            let o = &mut out[b * n_out + row];
            let v = mbqm(acc, m, rounding).wrapping_add(*o as i32);
            *o = v.clamp(-32768, 32767) as i16;
        }
    }
}

/// The int8-output overload (projection), with the output zero point added.
#[allow(clippy::too_many_arguments)]
fn matmul_acc_i8(
    x: &[i8],
    bias: &[i32],
    w: &[i8],
    m: Multiplier,
    n_batch: usize,
    n_in: usize,
    n_out: usize,
    zp: i32,
    out: &mut [i8],
    rounding: Rounding,
) {
    for b in 0..n_batch {
        let xb = &x[b * n_in..(b + 1) * n_in];
        for row in 0..n_out {
            let wr = &w[row * n_in..(row + 1) * n_in];
            let acc = wr.iter().zip(xb).fold(bias[row], |a, (&wv, &xv)| {
                a.wrapping_add(wv as i32 * xv as i32)
            });
            let o = &mut out[b * n_out + row];
            let v = mbqm(acc, m, rounding)
                .wrapping_add(zp)
                .wrapping_add(*o as i32);
            *o = v.clamp(-128, 127) as i8;
        }
    }
}

/// `CwiseMul` int16 × int16 → int8 with a multiplier and output zero point.
fn cwise_mul_i8(a: &[i16], b: &[i16], m: Multiplier, zp: i32, out: &mut [i8], r: Rounding) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        let v = mbqm(x as i32 * y as i32, m, r).wrapping_add(zp);
        *o = v.clamp(-128, 127) as i8;
    }
}

/// `ApplyLayerNorm` on int16 rows of `n` values, in place.
fn layer_norm(gate: &mut [i16], ln: &IntLayerNorm, n: usize, rounding: Rounding) {
    const TWO_TO_20: i64 = 1 << 20;
    for row in gate.chunks_exact_mut(n) {
        let mut sum: i64 = 0;
        let mut sum_sq: i64 = 0;
        for &v in row.iter() {
            let v = v as i32;
            sum += v as i64;
            sum_sq += v.wrapping_mul(v) as i64;
        }
        let mean = (sum * 1024 / n as i64) as i32;
        // As in TFLite: exact only for power-of-two row lengths.
        let temp = (TWO_TO_20 / n as i64) as i32;
        let variance = sum_sq * temp as i64 - mean as i64 * mean as i64;
        let mut variance2 = (variance / TWO_TO_20) as i32;
        if variance2 < 1 {
            variance2 = ln.variance_guard;
        }
        let (inv_m, inv_shift) = inv_sqrt_multiplier_exp(variance2, -1);
        let inv = Multiplier {
            m: inv_m,
            shift: inv_shift,
        };
        let out_scale = Multiplier {
            m: ln.scale.m,
            shift: ln.scale.shift + 12,
        };
        for (j, v) in row.iter_mut().enumerate() {
            let shifted = (1024 * *v as i32).wrapping_sub(mean);
            let rescaled = mbqm(shifted, inv, rounding);
            let val3 = rescaled
                .wrapping_mul(ln.coefficients[j] as i32)
                .wrapping_add(ln.bias[j]) as i64;
            let val4 = ((if val3 > 0 { val3 + 512 } else { val3 - 512 }) / 1024) as i32;
            let val5 = mbqm(val4, out_scale, rounding);
            *v = val5.clamp(-32768, 32767) as i16;
        }
    }
}

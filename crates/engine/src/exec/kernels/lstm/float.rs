//! The float32 LSTM (TFLite `lstm_eval.cc`: `CalculateLstmGateFloat`,
//! `UpdateLstmCellFloat`, `CalculateLstmOutputFloat`), for float and dequantized models.

use super::dims::LstmDims;

/// The cell/hidden activation (`fused_activation_function` of the LSTM options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellActivation {
    None,
    Relu,
    ReluN1To1,
    Relu6,
    Tanh,
    Sigmoid,
}

impl CellActivation {
    #[inline]
    fn apply(self, x: f32) -> f32 {
        match self {
            CellActivation::None => x,
            CellActivation::Relu => x.max(0.0),
            CellActivation::ReluN1To1 => x.clamp(-1.0, 1.0),
            CellActivation::Relu6 => x.clamp(0.0, 6.0),
            CellActivation::Tanh => x.tanh(),
            CellActivation::Sigmoid => sigmoid(x),
        }
    }
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// One float gate.
#[derive(Debug, Clone)]
pub struct FloatGate {
    /// `[n_cell, n_input]`.
    pub input_weights: Vec<f32>,
    /// `[n_cell, n_output]`.
    pub recurrent_weights: Vec<f32>,
    /// Diagonal cell-to-gate weights (`n_cell`).
    pub peephole: Option<Vec<f32>>,
    /// Layer-norm coefficients (`n_cell`); the bias is then added after normalizing.
    pub layer_norm: Option<Vec<f32>>,
    pub bias: Vec<f32>,
}

/// A prepared float LSTM.
#[derive(Debug, Clone)]
pub struct FloatLstm {
    pub dims: LstmDims,
    /// `None` = CIFG.
    pub input_gate: Option<FloatGate>,
    pub forget_gate: FloatGate,
    pub cell_gate: FloatGate,
    pub output_gate: FloatGate,
    pub activation: CellActivation,
    /// 0 = no clipping.
    pub cell_clip: f32,
    /// `[n_output, n_cell]` weights and optional bias.
    pub projection: Option<(Vec<f32>, Option<Vec<f32>>)>,
    pub proj_clip: f32,
}

/// Per-step working memory.
#[derive(Debug, Clone, Default)]
pub struct FloatScratch {
    input_gate: Vec<f32>,
    forget_gate: Vec<f32>,
    cell_gate: Vec<f32>,
    output_gate: Vec<f32>,
}

impl FloatScratch {
    pub fn new(dims: &LstmDims) -> Self {
        let rows = if dims.time_major { dims.n_batch } else { 1 };
        let n = rows * dims.n_cell;
        FloatScratch {
            input_gate: vec![0.0; n],
            forget_gate: vec![0.0; n],
            cell_gate: vec![0.0; n],
            output_gate: vec![0.0; n],
        }
    }
}

#[derive(Clone, Copy)]
enum GateAct {
    Sigmoid,
    Cell(CellActivation),
}

impl FloatLstm {
    /// Run the sequence; layouts as [`super::integer::IntegerLstm::eval`].
    pub fn eval(
        &self,
        input: &[f32],
        output_state: &mut [f32],
        cell_state: &mut [f32],
        output: &mut [f32],
        scratch: &mut FloatScratch,
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

    fn step(&self, x: &[f32], n_batch: usize, h: &mut [f32], c: &mut [f32], s: &mut FloatScratch) {
        let n = n_batch * self.dims.n_cell;
        if let Some(g) = &self.input_gate {
            self.gate(
                g,
                x,
                h,
                c,
                n_batch,
                GateAct::Sigmoid,
                &mut s.input_gate[..n],
            );
        }
        self.gate(
            &self.forget_gate,
            x,
            h,
            c,
            n_batch,
            GateAct::Sigmoid,
            &mut s.forget_gate[..n],
        );
        self.gate(
            &self.cell_gate,
            x,
            h,
            c,
            n_batch,
            GateAct::Cell(self.activation),
            &mut s.cell_gate[..n],
        );
        // Cell update: c = f*c + i*g (CIFG: i = 1 - f), clipped.
        let c = &mut c[..n];
        for (k, cv) in c.iter_mut().enumerate() {
            let f = s.forget_gate[k];
            let i = match &self.input_gate {
                Some(_) => s.input_gate[k],
                None => 1.0 - f,
            };
            *cv = f * *cv + s.cell_gate[k] * i;
            if self.cell_clip > 0.0 {
                *cv = cv.clamp(-self.cell_clip, self.cell_clip);
            }
        }
        // The output gate's peephole sees the updated cell.
        self.gate(
            &self.output_gate,
            x,
            h,
            c,
            n_batch,
            GateAct::Sigmoid,
            &mut s.output_gate[..n],
        );
        let hidden = &mut s.output_gate[..n];
        for (hv, &cv) in hidden.iter_mut().zip(c.iter()) {
            *hv *= self.activation.apply(cv);
        }
        let (nc, no) = (self.dims.n_cell, self.dims.n_output);
        match &self.projection {
            None => h.copy_from_slice(&hidden[..n_batch * no]),
            Some((w, bias)) => {
                for b in 0..n_batch {
                    let hb = &hidden[b * nc..(b + 1) * nc];
                    for r in 0..no {
                        let dot: f32 = w[r * nc..(r + 1) * nc]
                            .iter()
                            .zip(hb)
                            .map(|(a, b)| a * b)
                            .sum();
                        let mut v = bias.as_ref().map_or(0.0, |bv| bv[r]) + dot;
                        if self.proj_clip > 0.0 {
                            v = v.clamp(-self.proj_clip, self.proj_clip);
                        }
                        h[b * no + r] = v;
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn gate(
        &self,
        g: &FloatGate,
        x: &[f32],
        h: &[f32],
        c: &[f32],
        n_batch: usize,
        act: GateAct,
        out: &mut [f32],
    ) {
        let (ni, no, nc) = (self.dims.n_input, self.dims.n_output, self.dims.n_cell);
        for b in 0..n_batch {
            let xb = &x[b * ni..(b + 1) * ni];
            let hb = &h[b * no..(b + 1) * no];
            let cb = &c[b * nc..(b + 1) * nc];
            let ob = &mut out[b * nc..(b + 1) * nc];
            for (r, o) in ob.iter_mut().enumerate() {
                let wx: f32 = g.input_weights[r * ni..(r + 1) * ni]
                    .iter()
                    .zip(xb)
                    .map(|(a, b)| a * b)
                    .sum();
                let wh: f32 = g.recurrent_weights[r * no..(r + 1) * no]
                    .iter()
                    .zip(hb)
                    .map(|(a, b)| a * b)
                    .sum();
                let start = if g.layer_norm.is_some() {
                    0.0
                } else {
                    g.bias[r]
                };
                let mut v = start + wx + wh;
                if let Some(p) = &g.peephole {
                    v += p[r] * cb[r];
                }
                *o = v;
            }
            if let Some(coeff) = &g.layer_norm {
                let mean = ob.iter().sum::<f32>() / nc as f32;
                let var = ob.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / nc as f32;
                let inv = 1.0 / (var + 1e-8).sqrt();
                for ((o, &k), &bias) in ob.iter_mut().zip(coeff).zip(&g.bias) {
                    *o = (*o - mean) * inv * k + bias;
                }
            }
            for o in ob.iter_mut() {
                *o = match act {
                    GateAct::Sigmoid => sigmoid(*o),
                    GateAct::Cell(a) => a.apply(*o),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(wx: f32, wh: f32, b: f32) -> FloatGate {
        FloatGate {
            input_weights: vec![wx],
            recurrent_weights: vec![wh],
            peephole: None,
            layer_norm: None,
            bias: vec![b],
        }
    }

    /// One cell, one input, one step from a known state, computed by hand.
    #[test]
    fn one_step_matches_hand_computation() {
        let dims = LstmDims {
            time_major: false,
            max_time: 2,
            n_batch: 1,
            n_input: 1,
            n_cell: 1,
            n_output: 1,
        };
        let lstm = FloatLstm {
            dims,
            input_gate: Some(gate(0.5, -0.25, 0.1)),
            forget_gate: gate(-0.3, 0.2, 1.0),
            cell_gate: gate(0.8, 0.4, -0.2),
            output_gate: gate(0.1, -0.6, 0.3),
            activation: CellActivation::Tanh,
            cell_clip: 0.0,
            projection: None,
            proj_clip: 0.0,
        };
        let (x0, x1) = (0.7f32, -1.2f32);
        let (mut h, mut c) = (vec![0.2f32], vec![-0.5f32]);
        let mut out = vec![0.0f32; 2];
        let mut s = FloatScratch::new(&dims);
        lstm.eval(&[x0, x1], &mut h, &mut c, &mut out, &mut s);

        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let (mut hh, mut cc) = (0.2f64, -0.5f64);
        let mut want = Vec::new();
        for x in [x0 as f64, x1 as f64] {
            let i = sig(0.1 + 0.5 * x - 0.25 * hh);
            let f = sig(1.0 - 0.3 * x + 0.2 * hh);
            let g = (-0.2 + 0.8 * x + 0.4 * hh).tanh();
            cc = f * cc + i * g;
            let o = sig(0.3 + 0.1 * x - 0.6 * hh);
            hh = o * cc.tanh();
            want.push(hh);
        }
        for (a, b) in out.iter().zip(&want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{out:?} vs {want:?}");
        }
        assert!((c[0] as f64 - cc).abs() < 1e-6);
        assert_eq!(h[0], out[1]);
    }

    /// CIFG, peephole, projection and clipping on one batch row of two cells.
    #[test]
    fn cifg_peephole_projection_clip() {
        let dims = LstmDims {
            time_major: true,
            max_time: 1,
            n_batch: 1,
            n_input: 1,
            n_cell: 2,
            n_output: 1,
        };
        let g = |w: [f32; 2], p: Option<Vec<f32>>| FloatGate {
            input_weights: w.to_vec(),
            recurrent_weights: vec![0.5, -0.5],
            peephole: p,
            layer_norm: None,
            bias: vec![0.1, -0.1],
        };
        let lstm = FloatLstm {
            dims,
            input_gate: None,
            forget_gate: g([1.0, -1.0], Some(vec![0.3, 0.3])),
            cell_gate: g([2.0, 0.5], None),
            output_gate: g([0.25, 0.75], Some(vec![-0.2, 0.4])),
            activation: CellActivation::Tanh,
            cell_clip: 0.6,
            projection: Some((vec![1.5, -2.0], Some(vec![0.05]))),
            proj_clip: 0.4,
        };
        let (mut h, mut c) = (vec![0.3f32], vec![0.2f32, -0.4]);
        let mut out = vec![0.0f32];
        lstm.eval(
            &[0.9],
            &mut h,
            &mut c,
            &mut out,
            &mut FloatScratch::new(&dims),
        );

        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let (x, h0, c0) = (0.9f64, 0.3f64, [0.2f64, -0.4]);
        let mut hid = [0.0f64; 2];
        let mut c1 = [0.0f64; 2];
        for k in 0..2 {
            let (wf, wc, wo, rw, b) = (
                [1.0, -1.0][k],
                [2.0, 0.5][k],
                [0.25, 0.75][k],
                [0.5, -0.5][k],
                [0.1, -0.1][k],
            );
            let f = sig(b + wf * x + rw * h0 + 0.3 * c0[k]);
            let gg = (b + wc * x + rw * h0).tanh();
            c1[k] = (f * c0[k] + (1.0 - f) * gg).clamp(-0.6, 0.6);
            let o = sig(b + wo * x + rw * h0 + [-0.2, 0.4][k] * c1[k]);
            hid[k] = o * c1[k].tanh();
        }
        let want = (0.05 + 1.5 * hid[0] - 2.0 * hid[1]).clamp(-0.4, 0.4);
        assert!((out[0] as f64 - want).abs() < 1e-6, "{} vs {want}", out[0]);
        assert!((c[0] as f64 - c1[0]).abs() < 1e-6 && (c[1] as f64 - c1[1]).abs() < 1e-6);
    }
}

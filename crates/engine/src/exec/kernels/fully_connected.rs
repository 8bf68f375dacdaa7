//! Float32 FULLY_CONNECTED: weights `[units, depth]`, input viewed as `[rows, depth]`,
//! output `[rows, units]`.
//!
//! The fast path packs the weights once into the GEMM panels shared with CONV_2D; one
//! row runs as a GEMV (4 panels = 64 outputs per AVX-512 pass, threads split the
//! outputs), more rows as the register-blocked GEMM (threads split the rows).

use super::Parallelism;
use super::cpu;
use super::gemm;
use crate::error::{EngineError, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FcParams {
    pub rows: usize,
    pub depth: usize,
    pub units: usize,
    pub act_min: f32,
    pub act_max: f32,
}

impl FcParams {
    pub fn macs(&self) -> usize {
        self.rows * self.depth * self.units
    }

    /// Checks the buffer sizes a caller is about to pass (see `ConvParams::check`).
    pub fn check(
        &self,
        input_len: usize,
        weights_len: usize,
        bias_len: Option<usize>,
        output_len: usize,
    ) -> Result<()> {
        if self.act_min.is_nan() || self.act_max.is_nan() || self.act_min > self.act_max {
            return Err(EngineError::invalid(
                "fully_connected: activation min > max",
            ));
        }
        let sizes = [
            ("input", input_len, self.rows * self.depth),
            ("weights", weights_len, self.units * self.depth),
            ("output", output_len, self.rows * self.units),
        ];
        for (what, got, want) in sizes {
            if got != want {
                return Err(EngineError::invalid(format!(
                    "fully_connected: {what} has {got} floats, shape needs {want}"
                )));
            }
        }
        if let Some(b) = bias_len
            && b != self.units
        {
            return Err(EngineError::invalid(format!(
                "fully_connected: bias has {b} floats for {} units",
                self.units
            )));
        }
        Ok(())
    }
}

/// Reference FULLY_CONNECTED (TFLite `reference_ops::FullyConnected` order: dot product
/// over depth, then bias, then clamp).
pub fn fully_connected_reference(
    p: &FcParams,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    assert!(
        input.len() >= p.rows * p.depth,
        "fully_connected: input too short"
    );
    assert!(
        weights.len() >= p.units * p.depth,
        "fully_connected: weights too short"
    );
    assert!(
        output.len() >= p.rows * p.units,
        "fully_connected: output too short"
    );
    for r in 0..p.rows {
        let x = &input[r * p.depth..(r + 1) * p.depth];
        for u in 0..p.units {
            let w = &weights[u * p.depth..(u + 1) * p.depth];
            let mut total = 0.0f32;
            for (a, b) in x.iter().zip(w) {
                total += a * b;
            }
            let v = total + bias.map_or(0.0, |b| b[u]);
            output[r * p.units + u] = v.max(p.act_min).min(p.act_max);
        }
    }
}

/// FULLY_CONNECTED with weights packed once for the GEMM/GEMV micro-kernels.
#[derive(Debug, Clone)]
pub struct PackedFullyConnected {
    p: FcParams,
    b: gemm::PackedB,
}

impl PackedFullyConnected {
    /// Packs `weights` (`[units, depth]`) and `bias`. Panics if they are shorter than `p`
    /// needs (callers validate with [`FcParams::check`]).
    pub fn new(p: &FcParams, weights: &[f32], bias: Option<&[f32]>) -> Self {
        PackedFullyConnected {
            p: *p,
            b: gemm::PackedB::from_nk(p.depth, p.units, weights, bias),
        }
    }

    pub fn params(&self) -> &FcParams {
        &self.p
    }

    /// Bytes held by the packed weights and bias.
    pub fn packed_bytes(&self) -> usize {
        self.b.bytes()
    }

    pub fn run(&self, input: &[f32], output: &mut [f32], par: Parallelism) {
        self.run_isa(cpu::selected_isa(), input, output, par)
    }

    /// Runs with a given ISA (capped to what the CPU supports).
    pub fn run_isa(&self, isa: cpu::Isa, input: &[f32], output: &mut [f32], par: Parallelism) {
        let p = &self.p;
        assert!(
            input.len() >= p.rows * p.depth,
            "fully_connected: input too short"
        );
        assert!(
            output.len() >= p.rows * p.units,
            "fully_connected: output too short"
        );
        let k = p.depth;
        let output = &mut output[..p.rows * p.units];
        if p.rows > 1 && cpu::clamp_to_detected(isa) != cpu::Isa::Portable {
            let a = &input[..p.rows * k];
            gemm::gemm_direct(
                isa, p.rows, a, k, &self.b, output, p.act_min, p.act_max, par,
            );
            return;
        }
        let fill = |r0: usize, rows: usize, s: usize, buf: &mut [f32]| {
            if s == 1 {
                buf[..k].copy_from_slice(&input[r0 * k..(r0 + 1) * k]);
                return;
            }
            for i in 0..rows {
                let src = &input[(r0 + i) * k..(r0 + i + 1) * k];
                for (d, &v) in buf[i..].iter_mut().step_by(s).zip(src) {
                    *d = v;
                }
            }
        };
        gemm::gemm(
            isa, p.rows, &fill, &self.b, output, p.act_min, p.act_max, par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::kernels::cpu::{available_isas, with_isa};
    use crate::exec::kernels::test_util::{Rng, assert_close};

    #[test]
    fn fast_matches_reference() {
        let inf = f32::INFINITY;
        let cases = [
            (1, 1280, 1001, -inf, inf),
            (1, 7, 3, 0.0, 6.0),
            (1, 64, 64, -inf, inf),
            (1, 33, 200, -0.5, 0.5),
            (2, 100, 10, -inf, inf),
            (5, 17, 31, 0.0, inf),
            (13, 64, 65, -1.0, 1.0),
            (30, 9, 16, -inf, inf),
        ];
        for (ci, &(rows, depth, units, act_min, act_max)) in cases.iter().enumerate() {
            let p = FcParams {
                rows,
                depth,
                units,
                act_min,
                act_max,
            };
            let mut rng = Rng::new(ci as u64 + 50);
            let input = rng.f32s(rows * depth);
            let weights = rng.f32s(units * depth);
            let bias = rng.f32s(units);
            p.check(input.len(), weights.len(), Some(units), rows * units)
                .unwrap();
            for with_bias in [true, false] {
                let bias = with_bias.then_some(bias.as_slice());
                let mut want = vec![0.0; rows * units];
                fully_connected_reference(&p, &input, &weights, bias, &mut want);
                let packed = PackedFullyConnected::new(&p, &weights, bias);
                for isa in available_isas() {
                    for threads in [1, 2] {
                        let mut got = vec![f32::NAN; rows * units];
                        with_isa(isa, || {
                            crate::exec::parallel::split_everything(|| {
                                packed.run(&input, &mut got, Parallelism { threads })
                            })
                        });
                        assert_close(&got, &want, depth, &format!("{isa:?} t{threads} {p:?}"));
                    }
                }
            }
        }
    }

    #[test]
    fn check_rejects_bad_sizes() {
        let p = FcParams {
            rows: 2,
            depth: 3,
            units: 4,
            act_min: 0.0,
            act_max: 6.0,
        };
        assert!(p.check(6, 12, Some(4), 8).is_ok());
        assert!(p.check(5, 12, Some(4), 8).is_err());
        assert!(p.check(6, 12, Some(3), 8).is_err());
        let bad = FcParams {
            act_min: 1.0,
            act_max: 0.0,
            ..p
        };
        assert!(bad.check(6, 12, None, 8).is_err());
    }
}

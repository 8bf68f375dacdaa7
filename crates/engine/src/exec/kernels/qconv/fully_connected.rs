//! Integer FULLY_CONNECTED: the reference loops and the packed kernel (the GEMM of
//! [`super::gemm`] reading the input rows in place).

use super::gemm::Engine;
use super::params::{QElem, QFcGeom, QParams, bias_at, check_bias, check_lens};
use crate::error::{EngineError, Result};
use crate::exec::kernels::Parallelism;

/// Reference FULLY_CONNECTED: `out[r, u] = Σ_d (w[u, d] + w_off) · (x[r, d] − in_zp)`.
pub fn fc_reference<T: QElem, W: QElem>(
    g: &QFcGeom,
    q: &QParams,
    input: &[T],
    weights: &[W],
    bias: Option<&[i64]>,
    out: &mut [T],
) -> Result<()> {
    q.check(g.units)?;
    check_lens(
        "fully_connected",
        &[
            (input.len(), g.rows * g.depth),
            (weights.len(), g.units * g.depth),
            (out.len(), g.rows * g.units),
            (bias.map_or(g.units, <[i64]>::len), g.units),
        ],
    )?;
    let (io, wo) = (-q.in_zp, q.w_offset());
    for r in 0..g.rows {
        for u in 0..g.units {
            let mut acc: i64 = 0;
            for d in 0..g.depth {
                let x = input[r * g.depth + d].to_i32() + io;
                let w = weights[u * g.depth + d].to_i32() + wo;
                acc += x as i64 * w as i64;
            }
            out[r * g.units + u] = T::from_i32(q.finish(acc, bias_at(bias, u), u));
        }
    }
    Ok(())
}

/// Integer FULLY_CONNECTED with weights packed at construction.
pub struct PackedQFc {
    g: QFcGeom,
    engine: Engine,
}

impl PackedQFc {
    pub fn new<W: QElem>(
        g: &QFcGeom,
        q: &QParams,
        weights: &[W],
        bias: Option<&[i64]>,
    ) -> Result<Self> {
        q.check(g.units)?;
        check_bias(bias, g.units)?;
        if weights.len() != g.units * g.depth {
            return Err(EngineError::invalid(format!(
                "FC weights have {} values, shape needs {}",
                weights.len(),
                g.units * g.depth
            )));
        }
        let d = g.depth;
        let engine = Engine::new(
            g.rows,
            g.units,
            d,
            |c, kk| weights[c * d + kk].to_i32(),
            bias,
            q,
        );
        Ok(PackedQFc { g: *g, engine })
    }

    pub fn packed_bytes(&self) -> usize {
        self.engine.packed_bytes()
    }

    pub fn run<T: QElem>(&self, input: &[T], out: &mut [T], par: Parallelism) {
        let d = self.g.depth;
        assert_eq!(input.len(), self.g.rows * d, "FC input size");
        let fill = |row: usize, buf: &mut [T]| buf.copy_from_slice(&input[row * d..(row + 1) * d]);
        self.engine
            .run(self.g.rows, Some(input), None, &fill, out, par);
    }
}

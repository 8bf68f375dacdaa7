//! The integer GEMM behind conv and FC: `out[m, c] = requant(Σ_k (x + io)(w + wo))`,
//! packed once per op.
//!
//! - uint8 / int8: [`narrow`], the 8-bit GEMM (AVX-512 VNNI, AVX2, portable) with the
//!   requantization fused into the register tile;
//! - int16x8: [`wide`], exact int64 sums: with AVX2/AVX-512 its panel GEMM (`vpmaddwd`
//!   / `vpdpwssd`, int32 blocks widened to int64, SIMD 64-bit requantization);
//!   portable: 16-bit dot products accumulated in int32 over blocks of 256
//!   (|x·w| ≤ 2^22, so a block cannot overflow) and widened to int64 between blocks.

#[cfg(target_arch = "x86_64")]
mod amx;
pub(super) mod narrow;
pub(super) mod wide;

use narrow::Gemm8;
pub(super) use narrow::Window;
use wide::Wide;

use super::params::{QElem, QParams, QScheme};
use super::requant::Requant;
use crate::exec::kernels::Parallelism;

pub(super) enum Engine {
    Narrow(Gemm8),
    Wide(Wide),
}

impl Engine {
    /// `m`: the rows each run will have (paths differ in how they handle few rows).
    pub(super) fn new(
        m: usize,
        n: usize,
        k: usize,
        w: impl Fn(usize, usize) -> i32,
        bias: Option<&[i64]>,
        q: &QParams,
    ) -> Self {
        match q.scheme {
            QScheme::Int16x8 => Engine::Wide(Wide::new(n, k, w, bias, q)),
            QScheme::Int8 | QScheme::Uint8 => {
                let (a_bias, b_bias) = if q.scheme == QScheme::Int8 {
                    (128, 0)
                } else {
                    (0, -128)
                };
                let rq = Requant::new(&q.mult, q.out_zp, q.act_min, q.act_max, q.rounding)
                    .with_float_scales(q.float_requant.as_deref());
                Engine::Narrow(Gemm8::new(
                    m, n, k, w, -q.in_zp, -q.w_zp, a_bias, b_bias, bias, rq,
                ))
            }
        }
    }

    pub(super) fn run<T: QElem>(
        &self,
        m: usize,
        direct: Option<&[T]>,
        window: Option<&Window<'_>>,
        fill: &(dyn Fn(usize, &mut [T]) + Sync),
        out: &mut [T],
        par: Parallelism,
    ) {
        match self {
            Engine::Narrow(g) => g.run(m, direct, window, fill, out, par),
            Engine::Wide(w) => w.run(m, fill, out, par),
        }
    }

    pub(super) fn packed_bytes(&self) -> usize {
        match self {
            Engine::Narrow(g) => g.packed_bytes(),
            Engine::Wide(w) => w.packed_bytes(),
        }
    }
}

//! Packed-panel float32 GEMM shared by CONV_2D and FULLY_CONNECTED:
//! `C[m, n] = clamp(A[m, k] · B[k, n] + bias[n], min, max)`.
//!
//! B (the weights) is packed once into column panels of [`NR`] = 16 floats: panel `p`
//! holds columns `16p..16p+16` as `k` consecutive rows of 16 (zero-padded past `n`).
//! The same layout serves every ISA: the AVX-512 micro-kernel reads two panels at a
//! time (32 columns), AVX2 and portable one.
//!
//! Two ways to feed A:
//! - [`gemm_direct`]: A row-major in memory (1×1 convolutions, im2col blocks, FC with
//!   several rows): the micro-kernel broadcasts straight from `MR` row pointers, no
//!   copy at all (AVX-512: 8 rows × 32 columns, AVX2: 6 × 16);
//! - [`gemm`]: A produced tile by tile by a caller-supplied fill function into a packed
//!   buffer (`k` groups of `MR` floats) that the kernel reads as one contiguous stream
//!   (AVX-512: 12 × 32). Used by the portable path (which vectorizes better that way)
//!   and, with `m == 1`, as the GEMV of one-row FC (AVX-512: 64 outputs per pass).

use crate::exec::kernels::Parallelism;
use crate::exec::kernels::cpu::{self, Isa};
use crate::exec::parallel;

mod portable;
mod tile;
#[cfg(target_arch = "x86_64")]
mod x86;

use tile::{Kernel, NR, Tile};

/// Weights packed into [`NR`]-column panels, with the bias padded to whole panels.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PackedB {
    pub k: usize,
    pub n: usize,
    pub panels: usize,
    data: Vec<f32>,
    bias: Vec<f32>,
}

impl PackedB {
    /// Packs `w`, row-major `[n][k]` (a TFLite OHWI filter flattened per output
    /// channel, or FC weights `[units, depth]`), so that `B[kk][j] = w[j*k + kk]`.
    pub fn from_nk(k: usize, n: usize, w: &[f32], bias: Option<&[f32]>) -> Self {
        assert!(w.len() >= k * n, "weights: {} floats for {n}x{k}", w.len());
        let panels = n.div_ceil(NR);
        let mut data = vec![0.0f32; panels * k * NR];
        if k > 0 {
            for (col, src) in w.chunks_exact(k).take(n).enumerate() {
                let panel = &mut data[(col / NR) * k * NR..][..k * NR];
                let j = col % NR;
                for (dst, &v) in panel.chunks_exact_mut(NR).zip(src) {
                    dst[j] = v;
                }
            }
        }
        let mut padded_bias = vec![0.0f32; panels * NR];
        if let Some(b) = bias {
            assert!(b.len() >= n, "bias: {} floats for {n} outputs", b.len());
            padded_bias[..n].copy_from_slice(&b[..n]);
        }
        PackedB {
            k,
            n,
            panels,
            data,
            bias: padded_bias,
        }
    }

    /// Panels `p..p+np` (contiguous, `k*NR` floats each).
    fn panels_from(&self, p: usize, np: usize) -> &[f32] {
        &self.data[p * self.k * NR..(p + np) * self.k * NR]
    }

    fn bias_from(&self, p: usize, np: usize) -> &[f32] {
        &self.bias[p * NR..(p + np) * NR]
    }

    pub fn bytes(&self) -> usize {
        (self.data.len() + self.bias.len()) * 4
    }
}

/// Fills a packed A tile: `(row0, rows, mr_stride, buf)` must write
/// `buf[kk * mr_stride + i] = A[row0 + i][kk]` for `i < rows`, `kk < k`. Rows
/// `rows..mr_stride` may hold anything (their results are never stored).
pub(crate) type FillA<'a> = dyn Fn(usize, usize, usize, &mut [f32]) + Sync + 'a;

fn kernel_for(isa: Isa) -> Kernel {
    match cpu::clamp_to_detected(isa) {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => x86::AVX512,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86::AVX2,
        _ => portable::KERNEL,
    }
}

/// Rows of A per packed block: keeps the packed A block around 128 KiB (L2-resident)
/// while one B panel group is swept down it.
fn block_rows(k: usize, mr: usize) -> usize {
    let tiles = (32 * 1024 / (mr * k.max(1))).clamp(1, 64);
    tiles * mr
}

/// `c[..m*n] = clamp(A·B + bias)`. A is provided tile by tile through `fill`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    isa: Isa,
    m: usize,
    fill: &FillA<'_>,
    b: &PackedB,
    c: &mut [f32],
    min: f32,
    max: f32,
    par: Parallelism,
) {
    let n = b.n;
    assert!(c.len() >= m * n, "output: {} floats for {m}x{n}", c.len());
    if m == 0 || n == 0 {
        return;
    }
    let kern = kernel_for(isa);
    let c = &mut c[..m * n];
    if m == 1 {
        let mut a = vec![0.0f32; b.k];
        fill(0, 1, 1, &mut a);
        gemv(&kern, &a, b, c, min, max, par);
        return;
    }
    let mr = kern.mr;
    let tiles = m.div_ceil(mr);
    let tasks = parallel::task_count(par, tiles, m * n * b.k / parallel::GEMM_MACS_PER_NS);
    if tasks > 1 {
        let per_task = tiles.div_ceil(tasks) * mr;
        parallel::for_each_chunk_mut(par, c, per_task * n, &|ci, cc| {
            rows_block(&kern, ci * per_task, cc.len() / n, fill, b, cc, min, max)
        });
    } else {
        rows_block(&kern, 0, m, fill, b, c, min, max);
    }
}

/// One-row GEMM: threads split the columns (whole GEMV passes per task).
fn gemv(
    kern: &Kernel,
    a: &[f32],
    b: &PackedB,
    c: &mut [f32],
    min: f32,
    max: f32,
    par: Parallelism,
) {
    let n = c.len();
    let pass = kern.gemv_panels * NR;
    let tasks = parallel::task_count(par, n.div_ceil(pass), n * b.k / parallel::GEMV_MACS_PER_NS);
    if tasks > 1 {
        let chunk = n.div_ceil(pass).div_ceil(tasks) * pass;
        parallel::for_each_chunk_mut(par, c, chunk, &|ci, cc| {
            gemv_cols(kern, a, b, ci * chunk / NR, cc, min, max)
        });
    } else {
        gemv_cols(kern, a, b, 0, c, min, max);
    }
}

/// Computes rows `row0..row0+rows` into `c` (which starts at row `row0`).
#[allow(clippy::too_many_arguments)]
fn rows_block(
    kern: &Kernel,
    row0: usize,
    rows: usize,
    fill: &FillA<'_>,
    b: &PackedB,
    c: &mut [f32],
    min: f32,
    max: f32,
) {
    let (k, n, mr_max) = (b.k, b.n, kern.mr);
    let block = block_rows(k, mr_max).min(rows.div_ceil(mr_max) * mr_max);
    let mut apack = vec![0.0f32; block * k];
    let mut r0 = 0;
    while r0 < rows {
        let brows = block.min(rows - r0);
        let btiles = brows.div_ceil(mr_max);
        for t in 0..btiles {
            let tr = t * mr_max;
            let mr = mr_max.min(brows - tr);
            fill(
                row0 + r0 + tr,
                mr,
                mr_max,
                &mut apack[t * mr_max * k..(t + 1) * mr_max * k],
            );
        }
        let mut p = 0;
        while p < b.panels {
            let np = kern.tile_panels.min(b.panels - p);
            let col0 = p * NR;
            let ncols = (n - col0).min(np * NR);
            for t in 0..btiles {
                let tr = t * mr_max;
                let mr = mr_max.min(brows - tr);
                (kern.tile)(Tile {
                    k,
                    a: &apack[t * mr_max * k..(t + 1) * mr_max * k],
                    lda: 0,
                    b: b.panels_from(p, np),
                    bias: b.bias_from(p, np),
                    np,
                    c: &mut c[(r0 + tr) * n + col0..],
                    ldc: n,
                    mr,
                    ncols,
                    min,
                    max,
                });
            }
            p += np;
        }
        r0 += brows;
    }
}

/// One-row GEMM over the columns held by `c`, starting at panel `p0`.
fn gemv_cols(kern: &Kernel, a: &[f32], b: &PackedB, p0: usize, c: &mut [f32], min: f32, max: f32) {
    let cols = c.len();
    let mut local = 0;
    while local < cols {
        let p = p0 + local / NR;
        let np = kern.gemv_panels.min((cols - local).div_ceil(NR));
        let ncols = (cols - local).min(np * NR);
        (kern.gemv)(Tile {
            k: b.k,
            a,
            lda: 0,
            b: b.panels_from(p, np),
            bias: b.bias_from(p, np),
            np,
            c: &mut c[local..],
            ldc: 0,
            mr: 1,
            ncols,
            min,
            max,
        });
        local += np * NR;
    }
}

/// `c[..m*n] = clamp(A·B + bias)` with A row-major (`lda` floats per row), read in
/// place by the direct micro-kernels.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_direct(
    isa: Isa,
    m: usize,
    a: &[f32],
    lda: usize,
    b: &PackedB,
    c: &mut [f32],
    min: f32,
    max: f32,
    par: Parallelism,
) {
    let n = b.n;
    assert!(
        lda >= b.k && (m == 0 || a.len() >= (m - 1) * lda + b.k),
        "A too short"
    );
    assert!(c.len() >= m * n, "output: {} floats for {m}x{n}", c.len());
    if m == 0 || n == 0 {
        return;
    }
    let kern = kernel_for(isa);
    let c = &mut c[..m * n];
    if m == 1 {
        // One row: the GEMV kernel (more columns per pass), split by columns.
        gemv(&kern, &a[..b.k], b, c, min, max, par);
        return;
    }
    let mr = kern.direct_mr;
    let tiles = m.div_ceil(mr);
    let tasks = parallel::task_count(par, tiles, m * n * b.k / parallel::GEMM_MACS_PER_NS);
    if tasks > 1 {
        let per_task = tiles.div_ceil(tasks) * mr;
        parallel::for_each_chunk_mut(par, c, per_task * n, &|ci, cc| {
            let row0 = ci * per_task;
            direct_rows(&kern, &a[row0 * lda..], lda, cc.len() / n, b, cc, min, max)
        });
    } else {
        direct_rows(&kern, a, lda, m, b, c, min, max);
    }
}

/// Bytes of packed B swept down all the row tiles of a [`direct_rows`] call before the
/// next block: small enough to stay in a 1 MiB L2 next to the A rows.
const DIRECT_B_BLOCK_BYTES: usize = 256 * 1024;

/// Panels of B per block of [`direct_rows`]: as many as fit [`DIRECT_B_BLOCK_BYTES`], in
/// whole micro-kernel groups of `group` panels (at least one group).
fn direct_block_panels(k: usize, group: usize) -> usize {
    let panel_bytes = (k * NR * std::mem::size_of::<f32>()).max(1);
    let group = group.max(1);
    (DIRECT_B_BLOCK_BYTES / panel_bytes / group).max(1) * group
}

/// `rows` rows of A (starting at `a`) into `c`. B is swept in blocks that stay in L2:
/// within a block, tile outer so each tile's A rows stay in L1 while the block's panels
/// pass. When all of B fits one block (MobileNet's early layers) this is one sweep; a
/// wide late layer (7×7×1024 → 1024: 4 MiB of B) no longer streams all of B from
/// memory once per 8-row tile.
#[allow(clippy::too_many_arguments)]
fn direct_rows(
    kern: &Kernel,
    a: &[f32],
    lda: usize,
    rows: usize,
    b: &PackedB,
    c: &mut [f32],
    min: f32,
    max: f32,
) {
    let (k, n, mr_max) = (b.k, b.n, kern.direct_mr);
    let block = direct_block_panels(k, kern.direct_panels);
    let mut p0 = 0;
    while p0 < b.panels {
        let p1 = (p0 + block).min(b.panels);
        let mut r = 0;
        while r < rows {
            let mr = mr_max.min(rows - r);
            let mut p = p0;
            while p < p1 {
                let np = kern.direct_panels.min(p1 - p);
                let col0 = p * NR;
                (kern.direct)(Tile {
                    k,
                    a: &a[r * lda..],
                    lda,
                    b: b.panels_from(p, np),
                    bias: b.bias_from(p, np),
                    np,
                    c: &mut c[r * n + col0..],
                    ldc: n,
                    mr,
                    ncols: (n - col0).min(np * NR),
                    min,
                    max,
                });
                p += np;
            }
            r += mr;
        }
        p0 = p1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::kernels::test_util::Rng;

    fn naive(m: usize, k: usize, n: usize, a: &[f32], w: &[f32], bias: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for kk in 0..k {
                    s += a[i * k + kk] as f64 * w[j * k + kk] as f64;
                }
                out[i * n + j] = (s + bias[j] as f64).clamp(-3.0, 3.0) as f32;
            }
        }
        out
    }

    /// Row-major A read in place, with B larger than one L2 block (several blocks and a
    /// partial last one), for every height of the last row tile (1 to 8 rows, where a
    /// short tile runs a kernel of its own height).
    #[test]
    fn gemm_direct_all_isas_across_b_blocks() {
        let mut rng = Rng::new(99);
        let mut rnd = || rng.uniform(-0.5, 0.5);
        let (k, n) = (1500, 200);
        assert!(
            k * n * 4 > 2 * DIRECT_B_BLOCK_BYTES,
            "B must span several blocks"
        );
        let w: Vec<f32> = (0..n * k).map(|_| rnd()).collect();
        let bias: Vec<f32> = (0..n).map(|_| rnd()).collect();
        let b = PackedB::from_nk(k, n, &w, Some(&bias));
        for m in 2..=17 {
            let lda = k + 3;
            let a: Vec<f32> = (0..m * lda).map(|_| rnd()).collect();
            let dense: Vec<f32> = (0..m)
                .flat_map(|i| a[i * lda..i * lda + k].to_vec())
                .collect();
            let want = naive(m, k, n, &dense, &w, &bias);
            for isa in cpu::available_isas() {
                for threads in [1, 2] {
                    let mut c = vec![f32::NAN; m * n];
                    crate::exec::parallel::split_everything(|| {
                        let par = Parallelism { threads };
                        gemm_direct(isa, m, &a, lda, &b, &mut c, -3.0, 3.0, par);
                    });
                    for (x, y) in c.iter().zip(&want) {
                        assert!(
                            (x - y).abs() < 1e-3,
                            "{isa:?} m {m} threads {threads}: {x} vs {y}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_all_isas_edges() {
        let mut rng = Rng::new(12345);
        let mut rnd = || rng.uniform(-0.5, 0.5);
        for &(m, k, n) in &[
            (1, 5, 3),
            (1, 70, 130),
            (13, 7, 33),
            (25, 1, 17),
            (40, 33, 64),
            (7, 0, 5),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
            let w: Vec<f32> = (0..n * k).map(|_| rnd()).collect();
            let bias: Vec<f32> = (0..n).map(|_| rnd()).collect();
            let want = naive(m, k, n, &a, &w, &bias);
            let b = PackedB::from_nk(k, n, &w, Some(&bias));
            for isa in cpu::available_isas() {
                for threads in [1, 2] {
                    let mut c = vec![f32::NAN; m * n];
                    let fill = |r0: usize, rows: usize, s: usize, buf: &mut [f32]| {
                        for i in 0..rows {
                            for kk in 0..k {
                                buf[kk * s + i] = a[(r0 + i) * k + kk];
                            }
                        }
                    };
                    crate::exec::parallel::split_everything(|| {
                        gemm(
                            isa,
                            m,
                            &fill,
                            &b,
                            &mut c,
                            -3.0,
                            3.0,
                            Parallelism { threads },
                        );
                    });
                    for (x, y) in c.iter().zip(&want) {
                        assert!((x - y).abs() < 1e-4, "{isa:?} m{m} k{k} n{n}: {x} vs {y}");
                    }
                }
            }
        }
    }
}

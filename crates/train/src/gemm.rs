//! Single-threaded f32 GEMM, `C (+)= A · B`, with any row/column strides for A and B
//! (so `Aᵀ·B` and `A·Bᵀ` of the backward passes cost no transposed copy).
//!
//! BLIS-style: a `KC`-deep slice of B is packed into `NR`-wide column panels, an
//! `MC × KC` block of A into `MR`-tall row panels (zero-padded at the edges), and a
//! register-blocked micro-kernel multiplies one A panel by one B panel. Micro-kernels:
//! AVX-512F 12×32 (24 zmm accumulators), AVX2+FMA 6×16 (12 ymm), portable 4×16; the
//! ISA is detected at run time. Parallelism is the caller's (training splits the
//! batch), so this never spawns threads.

/// A read-only matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major `rows × cols` with leading dimension `cols`.
    pub fn rows(data: &'a [f32], cols: usize) -> Mat<'a> {
        Mat {
            data,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn t(data: &'a [f32], cols: usize) -> Mat<'a> {
        Mat {
            data,
            rs: 1,
            cs: cols,
        }
    }
}

/// Instruction set of the micro-kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
    Portable,
}

impl Isa {
    /// The best the machine has.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Every ISA this machine can run (for tests).
    pub fn available() -> Vec<Isa> {
        let mut v = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                v.push(Isa::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(Isa::Avx512);
            }
        }
        v
    }
}

fn best() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(Isa::detect)
}

const KC: usize = 256;
const MC: usize = 96;
const NC: usize = 3072;

/// `C = A·B` (or `C += A·B` with `accumulate`), A `m × k`, B `k × n`, C row-major
/// `m × n` with leading dimension `ldc`.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    gemm_with(best(), m, n, k, a, b, c, ldc, accumulate)
}

/// [`gemm`] on a given ISA (which the machine must have: see [`Isa::available`]).
#[allow(clippy::too_many_arguments)]
pub fn gemm_with(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(ldc >= n && c.len() >= (m - 1) * ldc + n, "C too small");
    assert!(
        a.data.len() > (m - 1) * a.rs + k.saturating_sub(1) * a.cs || k == 0,
        "A too small"
    );
    assert!(
        b.data.len() > k.saturating_sub(1) * b.rs + (n - 1) * b.cs || k == 0,
        "B too small"
    );
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * ldc..i * ldc + n].fill(0.0);
            }
        }
        return;
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            assert!(std::arch::is_x86_feature_detected!("avx512f"));
            driver::<12, 32>(m, n, k, a, b, c, ldc, accumulate, x86::avx512_12x32)
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            assert!(
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            );
            driver::<6, 16>(m, n, k, a, b, c, ldc, accumulate, x86::avx2_6x16)
        }
        _ => driver::<4, 16>(m, n, k, a, b, c, ldc, accumulate, portable_4x16),
    }
}

/// A micro-kernel: `kc` steps over `MR` rows of A (element `(i, p)` at
/// `a[i * ars + p * acs]`: a packed panel has `(1, MR)`, a row-major A read in place
/// `(lda, 1)`) and an `NR`-panel of B into an `MR × NR` tile of C at `c` with leading
/// dimension `ldc` (added to when `acc`).
/// Safety contract: every A element addressed and `kc * NR` floats of `b` are
/// readable, the tile is writable, and the ISA it was compiled for is present.
type Kernel = unsafe fn(usize, *const f32, usize, usize, *const f32, *mut f32, usize, bool);

#[allow(clippy::too_many_arguments)]
fn driver<const MR: usize, const NR: usize>(
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    kernel: Kernel,
) {
    let nc_max = NC.min(n.next_multiple_of(NR));
    let mut bpack = vec![0f32; KC * nc_max];
    let mut apack = vec![0f32; KC * MC.next_multiple_of(MR)];
    let mut tile = [0f32; 12 * 32];
    // A row-major A is read in place by the micro-kernel (only its last, partial row
    // panel is packed): packing would cost as much as the product when N is small.
    let direct = a.cs == 1;
    let mut jc = 0;
    while jc < n {
        let nc = NC.min(n - jc);
        let mut pc = 0;
        while pc < k {
            let kc = KC.min(k - pc);
            pack_b::<NR>(&mut bpack, b, pc, kc, jc, nc);
            let acc = accumulate || pc > 0;
            let mut ic = 0;
            while ic < m {
                let mc = MC.min(m - ic);
                if direct {
                    let full = mc / MR * MR;
                    if full < mc {
                        pack_a::<MR>(&mut apack[full * kc..], a, ic + full, mc - full, pc, kc);
                    }
                } else {
                    pack_a::<MR>(&mut apack, a, ic, mc, pc, kc);
                }
                for jr in (0..nc).step_by(NR) {
                    let nr = NR.min(nc - jr);
                    let bp = &bpack[jr * kc..jr * kc + kc * NR];
                    for ir in (0..mc).step_by(MR) {
                        let mr = MR.min(mc - ir);
                        let row = ic + ir;
                        let col = jc + jr;
                        let (ap, ars, acs) = if direct && mr == MR {
                            let start = row * a.rs + pc;
                            let end = (row + MR - 1) * a.rs + pc + kc;
                            (&a.data[start..end], a.rs, 1)
                        } else {
                            (&apack[ir * kc..ir * kc + kc * MR], 1, MR)
                        };
                        if mr == MR && nr == NR {
                            let start = row * ldc + col;
                            let end = (row + MR - 1) * ldc + col + NR;
                            let cs = &mut c[start..end];
                            // SAFETY: `ap` covers every A element the kernel reads (a
                            // packed kc·MR panel, or MR rows of kc in place, sliced
                            // above), the B panel holds kc·NR floats, the MR × NR tile
                            // lies inside `cs`, and `gemm_with` checked the ISA.
                            unsafe {
                                kernel(
                                    kc,
                                    ap.as_ptr(),
                                    ars,
                                    acs,
                                    bp.as_ptr(),
                                    cs.as_mut_ptr(),
                                    ldc,
                                    acc,
                                )
                            };
                        } else {
                            // SAFETY: as above, into the local MR × NR tile (MR·NR ≤
                            // 12·32 for every kernel here).
                            unsafe {
                                kernel(
                                    kc,
                                    ap.as_ptr(),
                                    ars,
                                    acs,
                                    bp.as_ptr(),
                                    tile.as_mut_ptr(),
                                    NR,
                                    false,
                                )
                            };
                            for i in 0..mr {
                                let dst = &mut c[(row + i) * ldc + col..(row + i) * ldc + col + nr];
                                let src = &tile[i * NR..i * NR + nr];
                                if acc {
                                    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                                } else {
                                    dst.copy_from_slice(src);
                                }
                            }
                        }
                    }
                }
                ic += mc;
            }
            pc += kc;
        }
        jc += nc;
    }
}

/// Panels of `MR` rows of `A[ic.., pc..]`, `kc` deep, element `(p, i)` at `p * MR + i`.
fn pack_a<const MR: usize>(dst: &mut [f32], a: Mat, ic: usize, mc: usize, pc: usize, kc: usize) {
    for (pi, ir) in (0..mc).step_by(MR).enumerate() {
        let panel = &mut dst[pi * MR * kc..(pi + 1) * MR * kc];
        let mr = MR.min(mc - ir);
        for i in 0..MR {
            if i < mr {
                let base = (ic + ir + i) * a.rs + pc * a.cs;
                if a.cs == 1 {
                    let src = &a.data[base..base + kc];
                    for (p, &v) in src.iter().enumerate() {
                        panel[p * MR + i] = v;
                    }
                } else {
                    for p in 0..kc {
                        panel[p * MR + i] = a.data[base + p * a.cs];
                    }
                }
            } else {
                for p in 0..kc {
                    panel[p * MR + i] = 0.0;
                }
            }
        }
    }
}

/// Panels of `NR` columns of `B[pc.., jc..]`, element `(p, j)` at `p * NR + j`.
fn pack_b<const NR: usize>(dst: &mut [f32], b: Mat, pc: usize, kc: usize, jc: usize, nc: usize) {
    for (pj, jr) in (0..nc).step_by(NR).enumerate() {
        let panel = &mut dst[pj * NR * kc..(pj + 1) * NR * kc];
        let nr = NR.min(nc - jr);
        for p in 0..kc {
            let out = &mut panel[p * NR..(p + 1) * NR];
            let base = (pc + p) * b.rs + (jc + jr) * b.cs;
            if b.cs == 1 {
                out[..nr].copy_from_slice(&b.data[base..base + nr]);
            } else {
                for (j, o) in out[..nr].iter_mut().enumerate() {
                    *o = b.data[base + j * b.cs];
                }
            }
            out[nr..].fill(0.0);
        }
    }
}

/// Portable 4×16 micro-kernel (the compiler vectorises the inner loop).
///
/// # Safety
/// See [`Kernel`].
#[allow(clippy::too_many_arguments)]
unsafe fn portable_4x16(
    kc: usize,
    a: *const f32,
    ars: usize,
    acs: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    acc: bool,
) {
    const MR: usize = 4;
    const NR: usize = 16;
    // SAFETY: the caller guarantees kc·NR floats at `b`.
    let b = unsafe { std::slice::from_raw_parts(b, kc * NR) };
    let mut r = [[0f32; NR]; MR];
    for p in 0..kc {
        let bv = &b[p * NR..p * NR + NR];
        for (i, ri) in r.iter_mut().enumerate() {
            // SAFETY: the caller guarantees A element (i, p) is readable.
            let av = unsafe { *a.add(i * ars + p * acs) };
            for (rv, &bj) in ri.iter_mut().zip(bv) {
                *rv += av * bj;
            }
        }
    }
    for (i, ri) in r.iter().enumerate() {
        // SAFETY: the caller guarantees the MR × NR tile at `c` (rows `ldc` apart).
        let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), NR) };
        if acc {
            row.iter_mut().zip(ri).for_each(|(d, s)| *d += s);
        } else {
            row.copy_from_slice(ri);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// AVX-512F 12×32 micro-kernel.
    ///
    /// # Safety
    /// See `Kernel`; the CPU has AVX-512F.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn avx512_12x32(
        kc: usize,
        a: *const f32,
        ars: usize,
        acs: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        acc: bool,
    ) {
        // SAFETY: forwarded contract.
        unsafe { avx512_inner(kc, a, ars, acs, b, c, ldc, acc) }
    }

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn avx512_inner(
        kc: usize,
        a: *const f32,
        ars: usize,
        acs: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        acc: bool,
    ) {
        const MR: usize = 12;
        let mut r = [[_mm512_setzero_ps(); 2]; MR];
        for p in 0..kc {
            // SAFETY: p < kc, the B panel holds kc·32 floats.
            let (b0, b1) = unsafe {
                (
                    _mm512_loadu_ps(b.add(p * 32)),
                    _mm512_loadu_ps(b.add(p * 32 + 16)),
                )
            };
            for (i, ri) in r.iter_mut().enumerate() {
                // SAFETY: the caller guarantees A element (i, p) is readable.
                let av = _mm512_set1_ps(unsafe { *a.add(i * ars + p * acs) });
                ri[0] = _mm512_fmadd_ps(av, b0, ri[0]);
                ri[1] = _mm512_fmadd_ps(av, b1, ri[1]);
            }
        }
        for (i, ri) in r.iter().enumerate() {
            // SAFETY: row i of the 12 × 32 tile, inside the caller's C.
            unsafe {
                let cp = c.add(i * ldc);
                let (mut x0, mut x1) = (ri[0], ri[1]);
                if acc {
                    x0 = _mm512_add_ps(x0, _mm512_loadu_ps(cp));
                    x1 = _mm512_add_ps(x1, _mm512_loadu_ps(cp.add(16)));
                }
                _mm512_storeu_ps(cp, x0);
                _mm512_storeu_ps(cp.add(16), x1);
            }
        }
    }

    /// AVX2+FMA 6×16 micro-kernel.
    ///
    /// # Safety
    /// See `Kernel`; the CPU has AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn avx2_6x16(
        kc: usize,
        a: *const f32,
        ars: usize,
        acs: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        acc: bool,
    ) {
        // SAFETY: forwarded contract.
        unsafe { avx2_inner(kc, a, ars, acs, b, c, ldc, acc) }
    }

    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn avx2_inner(
        kc: usize,
        a: *const f32,
        ars: usize,
        acs: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        acc: bool,
    ) {
        const MR: usize = 6;
        let mut r = [[_mm256_setzero_ps(); 2]; MR];
        for p in 0..kc {
            // SAFETY: p < kc, the B panel holds kc·16 floats.
            let (b0, b1) = unsafe {
                (
                    _mm256_loadu_ps(b.add(p * 16)),
                    _mm256_loadu_ps(b.add(p * 16 + 8)),
                )
            };
            for (i, ri) in r.iter_mut().enumerate() {
                // SAFETY: the caller guarantees A element (i, p) is readable.
                let av = _mm256_set1_ps(unsafe { *a.add(i * ars + p * acs) });
                ri[0] = _mm256_fmadd_ps(av, b0, ri[0]);
                ri[1] = _mm256_fmadd_ps(av, b1, ri[1]);
            }
        }
        for (i, ri) in r.iter().enumerate() {
            // SAFETY: row i of the 6 × 16 tile, inside the caller's C.
            unsafe {
                let cp = c.add(i * ldc);
                let (mut x0, mut x1) = (ri[0], ri[1]);
                if acc {
                    x0 = _mm256_add_ps(x0, _mm256_loadu_ps(cp));
                    x1 = _mm256_add_ps(x1, _mm256_loadu_ps(cp.add(8)));
                }
                _mm256_storeu_ps(cp, x0);
                _mm256_storeu_ps(cp.add(8), x1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn naive(m: usize, n: usize, k: usize, a: Mat, b: Mat) -> Vec<f64> {
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    c[i * n + j] += f64::from(a.data[i * a.rs + p * a.cs])
                        * f64::from(b.data[p * b.rs + j * b.cs]);
                }
            }
        }
        c
    }

    #[test]
    fn every_isa_matches_the_naive_product_with_any_strides() {
        let mut rng = Rng::new(3);
        for &(m, n, k) in &[
            (1, 1, 1),
            (13, 33, 7),
            (100, 50, 300),
            (7, 70, 513),
            (25, 3, 2),
        ] {
            let av: Vec<f32> = (0..m * k).map(|_| rng.normal()).collect();
            let bv: Vec<f32> = (0..k * n).map(|_| rng.normal()).collect();
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = if ta {
                    Mat::t(&av, m)
                } else {
                    Mat::rows(&av, k)
                };
                let b = if tb {
                    Mat::t(&bv, k)
                } else {
                    Mat::rows(&bv, n)
                };
                let want = naive(m, n, k, a, b);
                for isa in Isa::available() {
                    let ldc = n + 3;
                    let mut c = vec![1f32; m * ldc];
                    gemm_with(isa, m, n, k, a, b, &mut c, ldc, true);
                    for i in 0..m {
                        for j in 0..n {
                            let got = f64::from(c[i * ldc + j]);
                            let w = want[i * n + j] + 1.0;
                            assert!(
                                (got - w).abs() < 1e-4 * (k as f64).sqrt() * (1.0 + w.abs()),
                                "{isa:?} {m}x{n}x{k} ta={ta} tb={tb} ({i},{j}): {got} vs {w}"
                            );
                        }
                        // Padding columns untouched.
                        assert!(c[i * ldc + n..i * ldc + ldc].iter().all(|&v| v == 1.0));
                    }
                    gemm_with(isa, m, n, k, a, b, &mut c, ldc, false);
                    let got = f64::from(c[(m - 1) * ldc + n - 1]);
                    assert!((got - want[m * n - 1]).abs() < 1e-3, "{isa:?} overwrite");
                }
            }
        }
    }
}

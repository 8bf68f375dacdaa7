//! x86_64 micro-kernels. Only reached through `kernel_for`, which caps the ISA at what
//! the CPU reports, so the `#[target_feature]` functions run only where supported.
//! Every call goes through `check_tile` first: the raw-pointer reads stay in bounds.

use std::arch::x86_64::*;

use super::tile::{Kernel, NR, Tile, check_tile};

/// AVX-512 packed-A tile: 12 rows × 32 columns = 24 zmm accumulators, 2 B loads + 12
/// broadcasts per k. (The SIMD conv/FC paths use the direct kernel; this one serves
/// GEMM callers that pack A.)
const MR512: usize = 12;

pub(super) const AVX512: Kernel = Kernel {
    mr: MR512,
    tile_panels: 2,
    gemv_panels: 4,
    tile: avx512_tile,
    gemv: avx512_gemv,
    direct_mr: MRD512,
    // 3 panels (24 accumulators) measured no faster than 2 on MobileNetV2 layers.
    direct_panels: 2,
    direct: avx512_direct,
};

/// AVX-512 direct (unpacked A): 8 rows × 32 columns, 16 accumulators. 8 row pointers
/// fit the general registers; 12 rows measured ~5% slower on MobileNetV2 layers.
const MRD512: usize = 8;

/// AVX2: 6 rows × 16 columns = 12 ymm accumulators.
const MR256: usize = 6;

pub(super) const AVX2: Kernel = Kernel {
    mr: MR256,
    tile_panels: 1,
    gemv_panels: 2,
    tile: avx2_tile,
    gemv: avx2_gemv,
    direct_mr: MR256,
    direct_panels: 1,
    direct: avx2_direct,
};

fn avx512_tile(mut t: Tile<'_>) {
    check_tile(&t, MR512);
    // SAFETY: AVX512 is only selected when avx512f+avx2+fma are detected; bounds checked.
    unsafe {
        match t.np {
            2 => tile512::<MR512, 2, false>(&mut t),
            _ => tile512::<MR512, 1, false>(&mut t),
        }
    }
}

fn avx512_gemv(mut t: Tile<'_>) {
    check_tile(&t, 1);
    // SAFETY: as above.
    unsafe {
        match t.np {
            4 => tile512::<1, 4, false>(&mut t),
            3 => tile512::<1, 3, false>(&mut t),
            2 => tile512::<1, 2, false>(&mut t),
            _ => tile512::<1, 1, false>(&mut t),
        }
    }
}

/// # Safety
/// The CPU has the enabled features, and `check_tile(t, R)` passed.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile512<const R: usize, const NP: usize, const DIRECT: bool>(t: &mut Tile<'_>) {
    let k = t.k;
    let pstride = k * NR;
    let mut acc = [[_mm512_setzero_ps(); NP]; R];
    // SAFETY: `check_tile` bounds every access: B holds `NP ≤ np` panels of `k` rows
    // (`np·k·NR` floats) and the bias `np·NR`; packed A holds `k·R` floats, direct A
    // `mr` rows `lda` apart of `k` floats each (rows `mr..R` re-read row `mr − 1`); the
    // output has rows `i < mr` of `ncols ≤ np·NR` columns at `i·ldc`, and the stores
    // stop at `ncols` (the last one masked).
    unsafe {
        for j in 0..NP {
            let bv = _mm512_loadu_ps(t.bias.as_ptr().add(j * NR));
            for row in acc.iter_mut() {
                row[j] = bv;
            }
        }
        let mut ap = t.a.as_ptr();
        // Direct: row pointers (padding rows repeat the last valid row, never stored).
        let rows: [*const f32; R] =
            std::array::from_fn(|i| ap.add(if DIRECT { i.min(t.mr - 1) * t.lda } else { 0 }));
        let mut bp = t.b.as_ptr();
        for kk in 0..k {
            let mut bv = [_mm512_setzero_ps(); NP];
            for (j, v) in bv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(bp.add(j * pstride));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(if DIRECT { *rows[i].add(kk) } else { *ap.add(i) });
                for j in 0..NP {
                    row[j] = _mm512_fmadd_ps(av, bv[j], row[j]);
                }
            }
            if !DIRECT {
                ap = ap.add(R);
            }
            bp = bp.add(NR);
        }
        let vmin = _mm512_set1_ps(t.min);
        let vmax = _mm512_set1_ps(t.max);
        let c = t.c.as_mut_ptr();
        for (i, row) in acc.iter().enumerate().take(t.mr) {
            for (j, &v) in row.iter().enumerate() {
                let col = j * NR;
                if col >= t.ncols {
                    break;
                }
                let v = _mm512_min_ps(_mm512_max_ps(v, vmin), vmax);
                let dst = c.add(i * t.ldc + col);
                let rem = t.ncols - col;
                if rem >= NR {
                    _mm512_storeu_ps(dst, v);
                } else {
                    _mm512_mask_storeu_ps(dst, ((1u32 << rem) - 1) as u16, v);
                }
            }
        }
    }
}

fn avx512_direct(mut t: Tile<'_>) {
    check_tile(&t, MRD512);
    // A short tile (a layer's last rows, e.g. 49 = 6·8 + 1 at 7×7) runs a kernel of
    // exactly its height instead of computing padding rows it will not store.
    macro_rules! rows {
        ($np:literal) => {
            match t.mr {
                1 => tile512::<1, $np, true>(&mut t),
                2 => tile512::<2, $np, true>(&mut t),
                3 => tile512::<3, $np, true>(&mut t),
                4 => tile512::<4, $np, true>(&mut t),
                5 => tile512::<5, $np, true>(&mut t),
                6 => tile512::<6, $np, true>(&mut t),
                7 => tile512::<7, $np, true>(&mut t),
                _ => tile512::<MRD512, $np, true>(&mut t),
            }
        };
    }
    // SAFETY: as above; check_tile covers the last row read (`(mr-1)*lda + k`), and
    // each kernel's height R is at least `mr` (rows `mr..R` re-read row `mr − 1`).
    unsafe {
        match t.np {
            2 => rows!(2),
            _ => rows!(1),
        }
    }
}

fn avx2_direct(mut t: Tile<'_>) {
    check_tile(&t, MR256);
    // SAFETY: as above.
    unsafe { tile256::<MR256, 1, true>(&mut t) }
}

fn avx2_tile(mut t: Tile<'_>) {
    check_tile(&t, MR256);
    // SAFETY: AVX2 is only selected when avx2+fma are detected; bounds checked.
    unsafe { tile256::<MR256, 1, false>(&mut t) }
}

fn avx2_gemv(mut t: Tile<'_>) {
    check_tile(&t, 1);
    // SAFETY: as above.
    unsafe {
        match t.np {
            2 => tile256::<1, 2, false>(&mut t),
            _ => tile256::<1, 1, false>(&mut t),
        }
    }
}

/// Stores the first `rem` (< 8) lanes of `v`.
///
/// # Safety
/// The CPU has AVX2; `dst` points to `rem` writable floats.
#[target_feature(enable = "avx2,fma")]
unsafe fn store_partial256(dst: *mut f32, v: __m256, rem: usize) {
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem as i32), lanes);
    // SAFETY: the mask enables lanes `0..rem` only, all writable per the contract.
    unsafe { _mm256_maskstore_ps(dst, mask, v) }
}

/// # Safety
/// The CPU has the enabled features, and `check_tile(t, R)` passed.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile256<const R: usize, const NP: usize, const DIRECT: bool>(t: &mut Tile<'_>) {
    let k = t.k;
    let pstride = k * NR;
    // Two ymm halves per 16-column panel.
    let mut acc = [[[_mm256_setzero_ps(); 2]; NP]; R];
    // SAFETY: `check_tile` bounds every access: B holds `NP ≤ np` panels of `k` rows
    // (`np·k·NR` floats) and the bias `np·NR`; packed A holds `k·R` floats, direct A
    // `mr` rows `lda` apart of `k` floats each (rows `mr..R` re-read row `mr − 1`); the
    // output has rows `i < mr` of `ncols ≤ np·NR` columns at `i·ldc`, and the stores
    // stop at `ncols` (the last one masked).
    unsafe {
        for j in 0..NP {
            let lo = _mm256_loadu_ps(t.bias.as_ptr().add(j * NR));
            let hi = _mm256_loadu_ps(t.bias.as_ptr().add(j * NR + 8));
            for row in acc.iter_mut() {
                row[j] = [lo, hi];
            }
        }
        let mut ap = t.a.as_ptr();
        // Direct: row pointers (padding rows repeat the last valid row, never stored).
        let rows: [*const f32; R] =
            std::array::from_fn(|i| ap.add(if DIRECT { i.min(t.mr - 1) * t.lda } else { 0 }));
        let mut bp = t.b.as_ptr();
        for kk in 0..k {
            let mut bv = [[_mm256_setzero_ps(); 2]; NP];
            for (j, v) in bv.iter_mut().enumerate() {
                v[0] = _mm256_loadu_ps(bp.add(j * pstride));
                v[1] = _mm256_loadu_ps(bp.add(j * pstride + 8));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(if DIRECT { *rows[i].add(kk) } else { *ap.add(i) });
                for j in 0..NP {
                    row[j][0] = _mm256_fmadd_ps(av, bv[j][0], row[j][0]);
                    row[j][1] = _mm256_fmadd_ps(av, bv[j][1], row[j][1]);
                }
            }
            if !DIRECT {
                ap = ap.add(R);
            }
            bp = bp.add(NR);
        }
        let vmin = _mm256_set1_ps(t.min);
        let vmax = _mm256_set1_ps(t.max);
        let c = t.c.as_mut_ptr();
        for (i, row) in acc.iter().enumerate().take(t.mr) {
            for (j, halves) in row.iter().enumerate() {
                for (h, &v) in halves.iter().enumerate() {
                    let col = j * NR + h * 8;
                    if col >= t.ncols {
                        break;
                    }
                    let v = _mm256_min_ps(_mm256_max_ps(v, vmin), vmax);
                    let dst = c.add(i * t.ldc + col);
                    let rem = t.ncols - col;
                    if rem >= 8 {
                        _mm256_storeu_ps(dst, v);
                    } else {
                        store_partial256(dst, v, rem);
                    }
                }
            }
        }
    }
}

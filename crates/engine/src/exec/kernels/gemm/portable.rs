//! Plain-Rust micro-kernel: fixed-size arrays and exact chunks so LLVM drops the bounds
//! checks and vectorizes the 16-wide column loop with whatever the target baseline has.

use super::tile::{Kernel, NR, Tile, check_tile};

const MR: usize = 4;

pub(super) const KERNEL: Kernel = Kernel {
    mr: MR,
    tile_panels: 1,
    gemv_panels: 1,
    tile: tile4,
    gemv: tile1,
    direct_mr: MR,
    direct_panels: 1,
    direct: tile4,
};

fn tile4(t: Tile<'_>) {
    tile::<MR>(t)
}

fn tile1(t: Tile<'_>) {
    tile::<1>(t)
}

fn tile<const R: usize>(t: Tile<'_>) {
    check_tile(&t, R);
    debug_assert_eq!(t.np, 1);
    let mut acc = [[0.0f32; NR]; R];
    for row in acc.iter_mut() {
        row.copy_from_slice(&t.bias[..NR]);
    }
    let b = &t.b[..t.k * NR];
    if t.lda == 0 {
        let a = &t.a[..t.k * R];
        for (ak, bk) in a.chunks_exact(R).zip(b.chunks_exact(NR)) {
            let bk: &[f32; NR] = bk.try_into().expect("exact chunk");
            for (row, &av) in acc.iter_mut().zip(ak) {
                for (x, &bv) in row.iter_mut().zip(bk) {
                    *x += av * bv;
                }
            }
        }
    } else {
        // Rows read in place; padding rows repeat the last valid row (never stored).
        let rows: [&[f32]; R] = std::array::from_fn(|i| &t.a[i.min(t.mr - 1) * t.lda..][..t.k]);
        for (kk, bk) in b.chunks_exact(NR).enumerate() {
            let bk: &[f32; NR] = bk.try_into().expect("exact chunk");
            for (row, ar) in acc.iter_mut().zip(&rows) {
                let av = ar[kk];
                for (x, &bv) in row.iter_mut().zip(bk) {
                    *x += av * bv;
                }
            }
        }
    }
    for (i, row) in acc.iter().enumerate().take(t.mr) {
        let dst = &mut t.c[i * t.ldc..i * t.ldc + t.ncols];
        for (d, &v) in dst.iter_mut().zip(row) {
            *d = v.max(t.min).min(t.max);
        }
    }
}

//! CONV_2D without bias (batch norm follows): im2col + GEMM; 1×1 stride-1 convs
//! are the GEMM directly. Weights `[KH·KW·Cin, Cout]` (HWIO).

use super::Geom;
use crate::gemm::{Mat, gemm};

/// Patches `[N·OH·OW, K·K·C]`, zeros where the window hangs over the border.
pub fn im2col(g: &Geom, x: &[f32], col: &mut Vec<f32>) {
    let kk = g.k * g.k * g.c;
    col.clear();
    col.resize(g.out_pos() * kk, 0.0);
    let mut row = 0;
    for b in 0..g.n {
        let img = &x[b * g.h * g.w * g.c..(b + 1) * g.h * g.w * g.c];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let dst = &mut col[row * kk..(row + 1) * kk];
                for ky in 0..g.k {
                    let Some(iy) = g.src(oy, ky, g.pad_t, g.h) else {
                        continue;
                    };
                    for kx in 0..g.k {
                        let Some(ix) = g.src(ox, kx, g.pad_l, g.w) else {
                            continue;
                        };
                        let s = (iy * g.w + ix) * g.c;
                        let d = (ky * g.k + kx) * g.c;
                        dst[d..d + g.c].copy_from_slice(&img[s..s + g.c]);
                    }
                }
                row += 1;
            }
        }
    }
}

/// Adds the patch gradients back onto the input gradient.
pub fn col2im_add(g: &Geom, dcol: &[f32], dx: &mut [f32]) {
    let kk = g.k * g.k * g.c;
    let mut row = 0;
    for b in 0..g.n {
        let img = &mut dx[b * g.h * g.w * g.c..(b + 1) * g.h * g.w * g.c];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let src = &dcol[row * kk..(row + 1) * kk];
                for ky in 0..g.k {
                    let Some(iy) = g.src(oy, ky, g.pad_t, g.h) else {
                        continue;
                    };
                    for kx in 0..g.k {
                        let Some(ix) = g.src(ox, kx, g.pad_l, g.w) else {
                            continue;
                        };
                        let d = (iy * g.w + ix) * g.c;
                        let s = (ky * g.k + kx) * g.c;
                        img[d..d + g.c]
                            .iter_mut()
                            .zip(&src[s..s + g.c])
                            .for_each(|(a, b)| *a += b);
                    }
                }
                row += 1;
            }
        }
    }
}

/// `y[N·OH·OW, cout] = conv(x, w)`. `col` is scratch.
pub fn forward(g: &Geom, cout: usize, x: &[f32], w: &[f32], y: &mut [f32], col: &mut Vec<f32>) {
    let kk = g.k * g.k * g.c;
    let m = g.out_pos();
    if g.is_pointwise() {
        gemm(
            m,
            cout,
            kk,
            Mat::rows(x, kk),
            Mat::rows(w, cout),
            y,
            cout,
            false,
        );
    } else {
        im2col(g, x, col);
        gemm(
            m,
            cout,
            kk,
            Mat::rows(col, kk),
            Mat::rows(w, cout),
            y,
            cout,
            false,
        );
    }
}

/// Adds `∂L/∂x` into `dx` (when given) and `∂L/∂w` into `dw`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    g: &Geom,
    cout: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    col: &mut Vec<f32>,
) {
    let kk = g.k * g.k * g.c;
    let m = g.out_pos();
    let patches: &[f32] = if g.is_pointwise() {
        x
    } else {
        im2col(g, x, col);
        col
    };
    // dW[kk, cout] += patchesᵀ · dy
    gemm(
        kk,
        cout,
        m,
        Mat::t(patches, kk),
        Mat::rows(dy, cout),
        dw,
        cout,
        true,
    );
    if let Some(dx) = dx {
        if g.is_pointwise() {
            // dx[m, kk] += dy · wᵀ
            gemm(
                m,
                kk,
                cout,
                Mat::rows(dy, cout),
                Mat::t(w, cout),
                dx,
                kk,
                true,
            );
        } else {
            let mut dcol = vec![0f32; m * kk];
            gemm(
                m,
                kk,
                cout,
                Mat::rows(dy, cout),
                Mat::t(w, cout),
                &mut dcol,
                kk,
                false,
            );
            col2im_add(g, &dcol, dx);
        }
    }
}

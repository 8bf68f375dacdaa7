//! FULLY_CONNECTED: `y[N, out] = x[N, in] · w[in, out] + b`.

use crate::gemm::{Mat, gemm};

pub fn forward(n: usize, cin: usize, cout: usize, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
    for row in y.chunks_exact_mut(cout).take(n) {
        row.copy_from_slice(b);
    }
    gemm(
        n,
        cout,
        cin,
        Mat::rows(x, cin),
        Mat::rows(w, cout),
        y,
        cout,
        true,
    );
}

/// Adds into `dx`, `dw` and `db`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    n: usize,
    cin: usize,
    cout: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    gemm(
        cin,
        cout,
        n,
        Mat::t(x, cin),
        Mat::rows(dy, cout),
        dw,
        cout,
        true,
    );
    for row in dy.chunks_exact(cout).take(n) {
        db.iter_mut().zip(row).for_each(|(a, b)| *a += b);
    }
    gemm(
        n,
        cin,
        cout,
        Mat::rows(dy, cout),
        Mat::t(w, cout),
        dx,
        cin,
        true,
    );
}

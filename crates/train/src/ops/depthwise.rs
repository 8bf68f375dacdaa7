//! DEPTHWISE_CONV_2D (multiplier 1) without bias: direct loops, channels innermost
//! (contiguous in NHWC, so they vectorise). The backward pass is direct too: one
//! sweep over the output gradient scatters into `dx` and gathers into `dw` — not one
//! small convolution per channel.

use super::Geom;

/// `y[N,OH,OW,C] = depthwise(x, w)`, `w` `[K·K, C]`.
pub fn forward(g: &Geom, x: &[f32], w: &[f32], y: &mut [f32]) {
    let c = g.c;
    for b in 0..g.n {
        let img = &x[b * g.h * g.w * c..(b + 1) * g.h * g.w * c];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let o = ((b * g.oh + oy) * g.ow + ox) * c;
                let out = &mut y[o..o + c];
                out.fill(0.0);
                for ky in 0..g.k {
                    let Some(iy) = g.src(oy, ky, g.pad_t, g.h) else {
                        continue;
                    };
                    for kx in 0..g.k {
                        let Some(ix) = g.src(ox, kx, g.pad_l, g.w) else {
                            continue;
                        };
                        let s = (iy * g.w + ix) * c;
                        let t = (ky * g.k + kx) * c;
                        let (xi, wi) = (&img[s..s + c], &w[t..t + c]);
                        for ((o, &a), &k) in out.iter_mut().zip(xi).zip(wi) {
                            *o += a * k;
                        }
                    }
                }
            }
        }
    }
}

/// Adds `∂L/∂x` into `dx` and `∂L/∂w` into `dw`.
pub fn backward(g: &Geom, x: &[f32], w: &[f32], dy: &[f32], dx: &mut [f32], dw: &mut [f32]) {
    let c = g.c;
    for b in 0..g.n {
        let base = b * g.h * g.w * c;
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let o = ((b * g.oh + oy) * g.ow + ox) * c;
                let d = &dy[o..o + c];
                for ky in 0..g.k {
                    let Some(iy) = g.src(oy, ky, g.pad_t, g.h) else {
                        continue;
                    };
                    for kx in 0..g.k {
                        let Some(ix) = g.src(ox, kx, g.pad_l, g.w) else {
                            continue;
                        };
                        let s = base + (iy * g.w + ix) * c;
                        let t = (ky * g.k + kx) * c;
                        let xi = &x[s..s + c];
                        let wi = &w[t..t + c];
                        let dxi = &mut dx[s..s + c];
                        for ((dxv, &dv), &k) in dxi.iter_mut().zip(d).zip(wi) {
                            *dxv += dv * k;
                        }
                        let dwi = &mut dw[t..t + c];
                        for ((dwv, &dv), &a) in dwi.iter_mut().zip(d).zip(xi) {
                            *dwv += dv * a;
                        }
                    }
                }
            }
        }
    }
}

//! AVERAGE_POOL_2D and MAX_POOL_2D on NHWC floats (TFLite reference semantics).
//!
//! Window taps that fall into the padding are skipped: they neither add to the sum
//! nor count in the average's divisor, and never win the max.

use super::activation::clamp_act;
#[cfg(target_arch = "x86_64")]
use super::cpu::{self, Isa};
use super::geometry::Geometry;

/// Runs `$body(args)` compiled for the widest ISA the CPU has: the loops are plain
/// Rust over the channels, so each ISA gives the same floats (same order, no fused
/// multiply-add); only the vector width differs. Baseline x86_64 code is SSE2.
macro_rules! widest {
    ($body:ident, $avx512:ident, $avx2:ident, ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        fn $avx512($($arg: $ty),*) {
            $body($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $avx2($($arg: $ty),*) {
            $body($($arg),*)
        }
    };
}

widest!(windowed_average_body, windowed_average_avx512, windowed_average_avx2, (p: &PoolParams, x: &[f32], y: &mut [f32]));
widest!(max_pool_body, max_pool_avx512, max_pool_avx2, (p: &PoolParams, x: &[f32], y: &mut [f32]));

/// Calls the widest of `f512`, `f256`, `plain` the CPU has.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn dispatch(
    p: &PoolParams,
    x: &[f32],
    y: &mut [f32],
    f512: unsafe fn(&PoolParams, &[f32], &mut [f32]),
    f256: unsafe fn(&PoolParams, &[f32], &mut [f32]),
    plain: fn(&PoolParams, &[f32], &mut [f32]),
) {
    let isa = cpu::clamp_to_detected(cpu::selected_isa());
    if isa == Isa::Avx512 {
        // SAFETY: AVX-512F present (the ISA is clamped to the detected one).
        return unsafe { f512(p, x, y) };
    }
    if isa >= Isa::Avx2 {
        // SAFETY: AVX2 present.
        return unsafe { f256(p, x, y) };
    }
    plain(p, x, y)
}

/// Geometry (window `k_h × k_w`, `in_c` channels) and fused activation of one pool.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoolParams {
    pub geom: Geometry,
    pub act_min: f32,
    pub act_max: f32,
}

impl PoolParams {
    fn check(&self, x: &[f32], y: &[f32]) {
        let g = &self.geom;
        assert_eq!(
            x.len(),
            g.batch * g.in_h * g.in_w * g.in_c,
            "pool: input length"
        );
        assert_eq!(
            y.len(),
            g.batch * g.out_h * g.out_w * g.in_c,
            "pool: output length"
        );
    }

    /// Is this the whole-image window at stride 1 with no padding (global pooling)?
    fn is_global(&self) -> bool {
        let g = &self.geom;
        g.out_h == 1
            && g.out_w == 1
            && g.pad_top == 0
            && g.pad_left == 0
            && g.k_h >= g.in_h
            && g.k_w >= g.in_w
    }
}

/// Average over the in-image taps of each window, divided by their count (not the
/// filter area), then clamped to `[act_min, act_max]`. A window with no in-image
/// tap (only possible with excessive padding) outputs the clamped 0.
pub fn average_pool(p: &PoolParams, x: &[f32], y: &mut [f32]) {
    p.check(x, y);
    let c = p.geom.in_c;
    if c == 0 {
        return;
    }
    if p.is_global() {
        global_average(p, x, y);
    } else {
        windowed_average(p, x, y);
    }
}

fn windowed_average(p: &PoolParams, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    dispatch(
        p,
        x,
        y,
        windowed_average_avx512,
        windowed_average_avx2,
        windowed_average_body,
    );
    #[cfg(not(target_arch = "x86_64"))]
    windowed_average_body(p, x, y);
}

#[inline(always)]
fn windowed_average_body(p: &PoolParams, x: &[f32], y: &mut [f32]) {
    let g = &p.geom;
    let c = g.in_c;
    let mut acc = vec![0.0f32; c];
    for b in 0..g.batch {
        let img = &x[b * g.in_h * g.in_w * c..][..g.in_h * g.in_w * c];
        for oy in 0..g.out_h {
            let (y0, y1) = g.window_y(oy);
            for ox in 0..g.out_w {
                let (x0, x1) = g.window_x(ox);
                // Same summation order as the reference (row by row, left to right),
                // vectorized over channels.
                acc.fill(0.0);
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        let px = &img[(iy * g.in_w + ix) * c..][..c];
                        for (s, &v) in acc.iter_mut().zip(px) {
                            *s += v;
                        }
                    }
                }
                let count = ((y1 - y0) * (x1 - x0)) as f32;
                let out = &mut y[((b * g.out_h + oy) * g.out_w + ox) * c..][..c];
                for (o, &s) in out.iter_mut().zip(&acc) {
                    let avg = if count > 0.0 { s / count } else { 0.0 };
                    *o = clamp_act(avg, p.act_min, p.act_max);
                }
            }
        }
    }
}

/// Whole-image average: one pass over the image accumulating per channel (the
/// summation order is the reference's, so results are identical).
fn global_average(p: &PoolParams, x: &[f32], y: &mut [f32]) {
    let g = &p.geom;
    let c = g.in_c;
    let hw = g.in_h * g.in_w;
    for (img, out) in x.chunks_exact(hw * c).zip(y.chunks_exact_mut(c)) {
        out.fill(0.0);
        for px in img.chunks_exact(c) {
            for (s, &v) in out.iter_mut().zip(px) {
                *s += v;
            }
        }
        let count = hw as f32;
        for o in out.iter_mut() {
            let avg = if hw > 0 { *o / count } else { 0.0 };
            *o = clamp_act(avg, p.act_min, p.act_max);
        }
    }
}

/// Maximum over the in-image taps of each window, then clamped. A window with no
/// in-image tap yields the clamp of `f32::MIN` (TFLite's start value).
pub fn max_pool(p: &PoolParams, x: &[f32], y: &mut [f32]) {
    p.check(x, y);
    if p.geom.in_c == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    dispatch(p, x, y, max_pool_avx512, max_pool_avx2, max_pool_body);
    #[cfg(not(target_arch = "x86_64"))]
    max_pool_body(p, x, y);
}

#[inline(always)]
fn max_pool_body(p: &PoolParams, x: &[f32], y: &mut [f32]) {
    let g = &p.geom;
    let c = g.in_c;
    for b in 0..g.batch {
        let img = &x[b * g.in_h * g.in_w * c..][..g.in_h * g.in_w * c];
        for oy in 0..g.out_h {
            let (y0, y1) = g.window_y(oy);
            for ox in 0..g.out_w {
                let (x0, x1) = g.window_x(ox);
                let out = &mut y[((b * g.out_h + oy) * g.out_w + ox) * c..][..c];
                out.fill(f32::MIN);
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        let px = &img[(iy * g.in_w + ix) * c..][..c];
                        for (m, &v) in out.iter_mut().zip(px) {
                            // std::max(m, v) keeps m unless m < v.
                            *m = if *m < v { v } else { *m };
                        }
                    }
                }
                for o in out.iter_mut() {
                    *o = clamp_act(*o, p.act_min, p.act_max);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(
        in_hw: (usize, usize),
        out_hw: (usize, usize),
        f: usize,
        s: usize,
        pad: usize,
    ) -> PoolParams {
        PoolParams {
            geom: Geometry {
                batch: 1,
                in_h: in_hw.0,
                in_w: in_hw.1,
                in_c: 1,
                out_h: out_hw.0,
                out_w: out_hw.1,
                out_c: 1,
                k_h: f,
                k_w: f,
                stride_h: s,
                stride_w: s,
                dilation_h: 1,
                dilation_w: 1,
                pad_top: pad,
                pad_left: pad,
                depth_multiplier: 1,
            },
            act_min: f32::NEG_INFINITY,
            act_max: f32::INFINITY,
        }
    }

    /// Every ISA's build of the loops gives the baseline build's floats, bit for bit,
    /// over channel counts around the vector widths, padding and a clamp.
    #[test]
    fn every_isa_matches_the_baseline_build() {
        use crate::exec::kernels::cpu::{available_isas, with_isa};
        use crate::exec::kernels::test_util::Rng;
        let mut rng = Rng::new(5);
        for (c, f, s, pad) in [
            (1, 3, 1, 1),
            (7, 3, 2, 0),
            (16, 3, 1, 1),
            (37, 2, 2, 0),
            (64, 5, 1, 2),
        ] {
            let mut p = params((9, 8), (0, 0), f, s, pad);
            p.geom.in_c = c;
            p.geom.out_c = c;
            p.geom.out_h = (9 + 2 * pad - f) / s + 1;
            p.geom.out_w = (8 + 2 * pad - f) / s + 1;
            p.act_min = -0.8;
            p.act_max = 0.9;
            let x = rng.floats(9 * 8 * c, -2.0, 2.0);
            let n = p.geom.out_h * p.geom.out_w * c;
            let (mut avg, mut max) = (vec![0.0; n], vec![0.0; n]);
            windowed_average_body(&p, &x, &mut avg);
            max_pool_body(&p, &x, &mut max);
            for isa in available_isas() {
                let (mut a, mut m) = (vec![f32::NAN; n], vec![f32::NAN; n]);
                with_isa(isa, || {
                    average_pool(&p, &x, &mut a);
                    max_pool(&p, &x, &mut m);
                });
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&a), bits(&avg), "average, {isa:?}, c {c}");
                assert_eq!(bits(&m), bits(&max), "max, {isa:?}, c {c}");
            }
        }
    }

    // 3x3 image 1..9, 3x3 window, stride 1, SAME padding (pad 1) -> 3x3 output.
    const IMG: [f32; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];

    #[test]
    fn average_divides_by_valid_taps() {
        let p = params((3, 3), (3, 3), 3, 1, 1);
        let mut y = [0.0; 9];
        average_pool(&p, &IMG, &mut y);
        // Corner (0,0): taps {1,2,4,5} -> 12/4 = 3. Edge (0,1): {1..6} -> 21/6 = 3.5.
        // Centre: 45/9 = 5. Edge (1,0): {1,2,4,5,7,8} -> 27/6 = 4.5.
        assert_eq!(y, [3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0]);
    }

    #[test]
    fn max_with_padding_and_stride() {
        // 2x2 window, stride 2, no padding on a 4x4 image of 0..16.
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let p = params((4, 4), (2, 2), 2, 2, 0);
        let mut y = [0.0; 4];
        max_pool(&p, &x, &mut y);
        assert_eq!(y, [5.0, 7.0, 13.0, 15.0]);
        // Negative inputs with padding: padding must not contribute a 0.
        let neg: Vec<f32> = IMG.iter().map(|v| -v).collect();
        let p = params((3, 3), (3, 3), 3, 1, 1);
        let mut y = [0.0; 9];
        max_pool(&p, &neg, &mut y);
        assert_eq!(y, [-1.0, -1.0, -2.0, -1.0, -1.0, -2.0, -4.0, -4.0, -5.0]);
    }

    #[test]
    fn activation_clamp_applies() {
        let mut p = params((3, 3), (3, 3), 3, 1, 1);
        p.act_min = 4.0;
        p.act_max = 6.0;
        let mut y = [0.0; 9];
        average_pool(&p, &IMG, &mut y);
        assert_eq!(y, [4.0, 4.0, 4.0, 4.5, 5.0, 5.5, 6.0, 6.0, 6.0]);
        max_pool(&p, &IMG, &mut y);
        assert_eq!(y, [5.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0]);
    }

    #[test]
    fn global_average_multi_channel_batch() {
        // batch 2, 2x2, 2 channels.
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let one = params((2, 2), (1, 1), 2, 1, 0);
        let p = PoolParams {
            geom: Geometry {
                batch: 2,
                in_c: 2,
                out_c: 2,
                ..one.geom
            },
            ..one
        };
        assert!(p.is_global());
        let mut y = [0.0; 4];
        average_pool(&p, &x, &mut y);
        // b0 c0: 0,2,4,6 -> 3; c1: 1,3,5,7 -> 4; b1: 11, 12.
        assert_eq!(y, [3.0, 4.0, 11.0, 12.0]);
        // The windowed path must agree.
        let mut y2 = [0.0; 4];
        windowed_average(&p, &x, &mut y2);
        assert_eq!(y, y2);
    }

    #[test]
    fn window_entirely_in_padding() {
        // 1x1 image, 1x1 filter, pad 1, output 3x3: only the centre sees the pixel.
        let p = params((1, 1), (3, 3), 1, 1, 1);
        let mut y = [9.0; 9];
        average_pool(&p, &[5.0], &mut y);
        assert_eq!(y, [0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0]);
        max_pool(&p, &[5.0], &mut y);
        assert_eq!(y[4], 5.0);
        assert_eq!(y[0], f32::MIN);
    }
}

//! Quantized AVERAGE_POOL_2D and MAX_POOL_2D on NHWC integers (spec §12). Input and
//! output share scale and zero point, so the kernels work on raw values.

use super::{QInt, clamp_to};
use crate::exec::kernels::geometry::Geometry;

/// Geometry (window `k_h × k_w`, `in_c` channels) and activation clamp (in output
/// integers) of one quantized pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QPoolParams {
    pub geom: Geometry,
    pub act_min: i32,
    pub act_max: i32,
}

impl QPoolParams {
    fn lengths_ok(&self, x: usize, y: usize) -> bool {
        let g = &self.geom;
        let c = g.in_c;
        x == g.batch * g.in_h * g.in_w * c && y == g.batch * g.out_h * g.out_w * c
    }
}

/// Rounded integer average: uint8 rounds half up (`(s + n/2)/n`), int8/int16 round
/// half away from zero, as the two reference kernels do.
#[inline(always)]
fn rounded_average(sum: i32, n: i32, signed: bool) -> i32 {
    if !signed || sum > 0 {
        (sum + n / 2) / n
    } else {
        (sum - n / 2) / n
    }
}

/// Reference average pool: per output element, sum the in-image taps and divide by
/// their count. A window with no in-image tap (excessive padding) outputs the
/// clamped 0 (TFLite fails such a run instead).
pub fn average_pool_reference<T: QInt>(p: &QPoolParams, x: &[T], y: &mut [T]) {
    let g = &p.geom;
    assert!(p.lengths_ok(x.len(), y.len()), "qpool: lengths");
    let c = g.in_c;
    let signed = T::MIN < 0;
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            let (y0, y1) = g.window_y(oy);
            for ox in 0..g.out_w {
                let (x0, x1) = g.window_x(ox);
                for ch in 0..c {
                    let mut sum = 0i32;
                    let mut n = 0i32;
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            sum += x[((b * g.in_h + iy) * g.in_w + ix) * c + ch].get();
                            n += 1;
                        }
                    }
                    let avg = if n > 0 {
                        rounded_average(sum, n, signed)
                    } else {
                        0
                    };
                    y[((b * g.out_h + oy) * g.out_w + ox) * c + ch] =
                        clamp_to(avg, p.act_min, p.act_max);
                }
            }
        }
    }
}

/// Fast average pool: the window is summed pixel by pixel into a channel vector
/// (contiguous, vectorizable); integer sums are exact, so the result is the same.
pub fn average_pool_fast<T: QInt>(p: &QPoolParams, x: &[T], y: &mut [T]) {
    let g = &p.geom;
    assert!(p.lengths_ok(x.len(), y.len()), "qpool: lengths");
    let c = g.in_c;
    if c == 0 {
        return;
    }
    let signed = T::MIN < 0;
    let mut acc = vec![0i32; c];
    for b in 0..g.batch {
        let img = &x[b * g.in_h * g.in_w * c..][..g.in_h * g.in_w * c];
        for oy in 0..g.out_h {
            let (y0, y1) = g.window_y(oy);
            for ox in 0..g.out_w {
                let (x0, x1) = g.window_x(ox);
                acc.fill(0);
                for iy in y0..y1 {
                    let row = &img[(iy * g.in_w + x0) * c..(iy * g.in_w + x1) * c];
                    for px in row.chunks_exact(c) {
                        for (s, v) in acc.iter_mut().zip(px) {
                            *s += v.get();
                        }
                    }
                }
                let n = ((y1 - y0) * (x1 - x0)) as i32;
                let out = &mut y[((b * g.out_h + oy) * g.out_w + ox) * c..][..c];
                for (o, &s) in out.iter_mut().zip(&acc) {
                    let avg = if n > 0 {
                        rounded_average(s, n, signed)
                    } else {
                        0
                    };
                    *o = clamp_to(avg, p.act_min, p.act_max);
                }
            }
        }
    }
}

/// Max pool: maximum of the in-image taps (start value: the type minimum), clamped.
pub fn max_pool<T: QInt>(p: &QPoolParams, x: &[T], y: &mut [T]) {
    let g = &p.geom;
    assert!(p.lengths_ok(x.len(), y.len()), "qpool: lengths");
    let c = g.in_c;
    if c == 0 {
        return;
    }
    let mut acc = vec![0i32; c];
    for b in 0..g.batch {
        let img = &x[b * g.in_h * g.in_w * c..][..g.in_h * g.in_w * c];
        for oy in 0..g.out_h {
            let (y0, y1) = g.window_y(oy);
            for ox in 0..g.out_w {
                let (x0, x1) = g.window_x(ox);
                acc.fill(T::MIN);
                for iy in y0..y1 {
                    let row = &img[(iy * g.in_w + x0) * c..(iy * g.in_w + x1) * c];
                    for px in row.chunks_exact(c) {
                        for (s, v) in acc.iter_mut().zip(px) {
                            *s = (*s).max(v.get());
                        }
                    }
                }
                let out = &mut y[((b * g.out_h + oy) * g.out_w + ox) * c..][..c];
                for (o, &s) in out.iter_mut().zip(&acc) {
                    *o = clamp_to(s, p.act_min, p.act_max);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn params(
        h: usize,
        w: usize,
        c: usize,
        f: usize,
        s: usize,
        pad: usize,
        oh: usize,
        ow: usize,
    ) -> QPoolParams {
        QPoolParams {
            geom: Geometry {
                batch: 1,
                in_h: h,
                in_w: w,
                in_c: c,
                out_h: oh,
                out_w: ow,
                out_c: c,
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
            act_min: -128,
            act_max: 127,
        }
    }

    #[test]
    fn tv10_int8_average_rounding() {
        // 1×2 windows over a 1×4 image ... use 2×2 filter on 2×2 single-channel images.
        let mut p = params(1, 2, 1, 2, 2, 0, 1, 1);
        p.geom.k_h = 1;
        let mut y = [0i8; 1];
        average_pool_reference(&p, &[-1i8, -2], &mut y);
        assert_eq!(y, [-2]);
        average_pool_reference(&p, &[1i8, 2], &mut y);
        assert_eq!(y, [2]);
        let p = params(2, 2, 1, 2, 2, 0, 1, 1);
        average_pool_reference(&p, &[-1i8, -1, -1, -2], &mut y);
        assert_eq!(y, [-1]);
        // uint8 rounds half up: (1 + 2 + 1) / 2 → (3 + 1)/2 = 2; (0+1)=0.5 → 1.
        let mut p = params(1, 2, 1, 2, 2, 0, 1, 1);
        p.geom.k_h = 1;
        p.act_min = 0;
        p.act_max = 255;
        let mut yu = [0u8; 1];
        average_pool_reference(&p, &[0u8, 1], &mut yu);
        assert_eq!(yu, [1]);
    }

    #[test]
    fn padding_taps_are_not_counted_and_fast_equals_reference() {
        // 5×5×3 image, 3×3 filter, stride 2, SAME padding 1 → 3×3 output.
        let p = params(5, 5, 3, 3, 2, 1, 3, 3);
        let x: Vec<i8> = (0..75).map(|i| ((i * 37) % 256) as u8 as i8).collect();
        let mut a = vec![0i8; 27];
        let mut b = vec![0i8; 27];
        average_pool_reference(&p, &x, &mut a);
        average_pool_fast(&p, &x, &mut b);
        assert_eq!(a, b);
        // Corner output: taps (0,0),(0,1),(1,0),(1,1) of channel 0.
        let s: i32 = [0, 1, 5, 6].iter().map(|&k| x[k * 3] as i32).sum();
        let want = if s > 0 { (s + 2) / 4 } else { (s - 2) / 4 };
        assert_eq!(a[0] as i32, want);
        let xu: Vec<u8> = x.iter().map(|&v| v as u8).collect();
        let mut pu = p;
        pu.act_min = 0;
        pu.act_max = 255;
        let mut a = vec![0u8; 27];
        let mut b = vec![0u8; 27];
        average_pool_reference(&pu, &xu, &mut a);
        average_pool_fast(&pu, &xu, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn max_pool_and_clamp() {
        let mut p = params(2, 2, 1, 2, 2, 0, 1, 1);
        p.act_max = 5;
        let mut y = [0i8; 1];
        max_pool(&p, &[-1i8, 3, 9, -7], &mut y);
        assert_eq!(y, [5]);
        p.act_max = 127;
        max_pool(&p, &[-1i8, 3, 9, -7], &mut y);
        assert_eq!(y, [9]);
    }
}

//! RESIZE_BILINEAR on NHWC floats, following TFLite's reference kernel exactly
//! (same scale computation, index clamping and f32 evaluation order).

/// Source coordinate of output index `i` and its two neighbouring input indices.
///
/// With half-pixel centers the coordinate is `(i + 0.5)·scale − 0.5`, otherwise
/// `i·scale`. The lower index is `max(floor(v), 0)`, the upper `min(ceil(v), in − 1)`;
/// the lower is also kept below `in` (TFLite does not clamp it, but it stays in range
/// for every scale its preparation accepts).
/// As in TFLite, `v` itself is not clamped: at the top/left edge `v` may be slightly
/// negative while both indices are 0, and the weights `1 − (v − 0)` and `v − 0` still
/// sum to 1, so the result is the edge pixel.
fn interpolation_values(
    i: usize,
    scale: f32,
    half_pixel: bool,
    size: usize,
) -> (f32, usize, usize) {
    let v = if half_pixel {
        (i as f32 + 0.5) * scale - 0.5
    } else {
        i as f32 * scale
    };
    let lo = (v.floor() as i64).clamp(0, size as i64 - 1) as usize;
    let hi = (v.ceil() as i64).min(size as i64 - 1).max(0) as usize;
    (v, lo, hi)
}

/// Bilinear resize of `x` (`in_shape` = `[N, H, W, C]`) to `[N, out_h, out_w, C]` in `y`.
///
/// Scale is `in / out`, or `(in − 1) / (out − 1)` with `align_corners` (when
/// `out > 1`). Preparation rejects `align_corners && half_pixel_centers`, as TFLite
/// does.
pub fn resize_bilinear(
    x: &[f32],
    in_shape: [usize; 4],
    y: &mut [f32],
    out_h: usize,
    out_w: usize,
    align_corners: bool,
    half_pixel_centers: bool,
) {
    let [n, in_h, in_w, c] = in_shape;
    assert_eq!(
        x.len(),
        n * in_h * in_w * c,
        "resize_bilinear: input length"
    );
    assert_eq!(
        y.len(),
        n * out_h * out_w * c,
        "resize_bilinear: output length"
    );
    if y.is_empty() {
        return;
    }
    assert!(in_h > 0 && in_w > 0, "resize_bilinear: empty input image");
    let scale = |inp: usize, out: usize| {
        if align_corners && out > 1 {
            (inp - 1) as f32 / (out - 1) as f32
        } else {
            inp as f32 / out as f32
        }
    };
    let (hs, ws) = (scale(in_h, out_h), scale(in_w, out_w));
    // Column coordinates are the same for every row: compute them once.
    let cols: Vec<(f32, usize, usize)> = (0..out_w)
        .map(|ox| interpolation_values(ox, ws, half_pixel_centers, in_w))
        .collect();
    for b in 0..n {
        let img = &x[b * in_h * in_w * c..][..in_h * in_w * c];
        for oy in 0..out_h {
            let (iy, y0, y1) = interpolation_values(oy, hs, half_pixel_centers, in_h);
            let dy = iy - y0 as f32;
            for (ox, &(ix, x0, x1)) in cols.iter().enumerate() {
                let dx = ix - x0 as f32;
                let p00 = &img[(y0 * in_w + x0) * c..][..c];
                let p10 = &img[(y1 * in_w + x0) * c..][..c];
                let p01 = &img[(y0 * in_w + x1) * c..][..c];
                let p11 = &img[(y1 * in_w + x1) * c..][..c];
                let out = &mut y[((b * out_h + oy) * out_w + ox) * c..][..c];
                for ch in 0..c {
                    // Term order and grouping as TFLite: v·(1−dy)·(1−dx) + ...
                    out[ch] = p00[ch] * (1.0 - dy) * (1.0 - dx)
                        + p10[ch] * dy * (1.0 - dx)
                        + p01[ch] * (1.0 - dy) * dx
                        + p11[ch] * dy * dx;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(x: &[f32], h: usize, w: usize, oh: usize, ow: usize, ac: bool, hp: bool) -> Vec<f32> {
        let mut y = vec![f32::NAN; oh * ow];
        resize_bilinear(x, [1, h, w, 1], &mut y, oh, ow, ac, hp);
        y
    }

    #[test]
    fn upscale_default() {
        // 1x2 -> 1x4, scale 0.5: coords 0, 0.5, 1, 1.5 -> x1 clamps to index 1.
        assert_eq!(
            run(&[0.0, 4.0], 1, 2, 1, 4, false, false),
            [0.0, 2.0, 4.0, 4.0]
        );
    }

    #[test]
    fn upscale_align_corners() {
        // scale (2-1)/(4-1) = 1/3: coords 0, 1/3, 2/3, 1.
        let y = run(&[0.0, 3.0], 1, 2, 1, 4, true, false);
        let want = [0.0, 1.0, 2.0, 3.0];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
    }

    #[test]
    fn upscale_half_pixel() {
        // scale 0.5: coords -0.25, 0.25, 0.75, 1.25 -> edge, 1, 3, edge.
        assert_eq!(
            run(&[0.0, 4.0], 1, 2, 1, 4, false, true),
            [0.0, 1.0, 3.0, 4.0]
        );
    }

    #[test]
    fn half_pixel_edge_keeps_unclamped_weights() {
        // Output 0 of 2 -> 4 maps to -0.25: both rows index 0 with weights 1.25 and
        // -0.25 (TFLite does not clamp the coordinate itself). Reproduce the f32
        // arithmetic of the reference to the bit.
        let x = [0.1f32, 0.7];
        let y = run(&x, 2, 1, 4, 1, false, true);
        let dy = -0.25f32;
        let want0 =
            x[0] * (1.0 - dy) * 1.0 + x[0] * dy * 1.0 + x[0] * (1.0 - dy) * 0.0 + x[0] * dy * 0.0;
        assert_eq!(y[0].to_bits(), want0.to_bits());
        assert!((y[0] - 0.1).abs() < 1e-7);
        // Output 3 maps to 1.25: lower index 1, upper min(2, 1) = 1.
        assert!((y[3] - 0.7).abs() < 1e-7);
    }

    #[test]
    fn two_d_and_downscale() {
        // 2x2 [[0,1],[2,3]] -> 3x3 default: scale 2/3, coords 0, 2/3, 4/3(->hi clamps).
        let y = run(&[0.0, 1.0, 2.0, 3.0], 2, 2, 3, 3, false, false);
        let t = 2.0f32 / 3.0;
        let want = [
            0.0,
            t,
            1.0,
            2.0 * t,
            3.0 * t,
            2.0 * t + 1.0,
            2.0,
            2.0 + t,
            3.0,
        ];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{y:?} vs {want:?}");
        }
        // 4x4 -> 2x2 half-pixel: coords (i+0.5)*2-0.5 = 0.5, 2.5: averages of 2x2 blocks.
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        assert_eq!(run(&x, 4, 4, 2, 2, false, true), [2.5, 4.5, 10.5, 12.5]);
        // Same size is the identity.
        assert_eq!(run(&x, 4, 4, 4, 4, false, true), x);
        assert_eq!(run(&x, 4, 4, 4, 4, true, false), x);
    }

    #[test]
    fn channels_and_batches() {
        // [2,1,2,2] -> [2,1,3,2], align_corners: middle column is the channel-wise mean.
        let x = [0.0, 10.0, 2.0, 20.0, 4.0, 40.0, 6.0, 60.0];
        let mut y = [0.0; 12];
        resize_bilinear(&x, [2, 1, 2, 2], &mut y, 1, 3, true, false);
        assert_eq!(
            y,
            [
                0.0, 10.0, 1.0, 15.0, 2.0, 20.0, 4.0, 40.0, 5.0, 50.0, 6.0, 60.0
            ]
        );
    }
}

//! RESIZE_BILINEAR on quantized integers. int8/int16 use TFLite's integer reference
//! path (10-bit fixed-point coordinates, 20-bit products); uint8 uses the reference
//! float template and rounds the interpolated value half away from zero (checked
//! against LiteRT 2.3 BUILTIN_REF; input and output share their quantization).

use super::QInt;

fn scale10(input: usize, output: usize, align_corners: bool) -> i32 {
    let (i, o) = (input as i32, output as i32);
    if align_corners && o > 1 {
        ((1 << 10) * (i - 1) + (o - 1) / 2) / (o - 1)
    } else {
        ((1 << 10) * i + o / 2) / o
    }
}

/// (scaled value, lower index, upper index) in 10-bit fixed point.
fn interp10(value: i32, scale: i32, half_pixel: bool, size: i32) -> (i32, i32, i32) {
    let scaled = if half_pixel {
        value * scale + scale / 2 - (1 << 9)
    } else {
        value * scale
    };
    // TFLite clamps only the upper index; the rounded 10-bit scale of a large upscale
    // (3 → 2000 pixels) can put the lower one past the edge too, where TFLite reads
    // out of bounds. Clamped, in-range results are unchanged.
    let lo = (scaled / (1 << 10)).clamp(0, size - 1);
    let hi = ((scaled + (1 << 10) - 1) / (1 << 10)).min(size - 1);
    (scaled, lo, hi)
}

/// Integer bilinear resize (int8/int16) of `x` `[N,H,W,C]` to `[N,oh,ow,C]`.
#[allow(clippy::too_many_arguments)]
pub fn resize_bilinear_integer<T: QInt>(
    x: &[T],
    [n, in_h, in_w, c]: [usize; 4],
    y: &mut [T],
    out_h: usize,
    out_w: usize,
    align_corners: bool,
    half_pixel_centers: bool,
) {
    if y.is_empty() || in_h == 0 || in_w == 0 {
        return;
    }
    let hs = scale10(in_h, out_h, align_corners);
    let ws = scale10(in_w, out_w, align_corners);
    let one = 1i64 << 10;
    for b in 0..n {
        let img = &x[b * in_h * in_w * c..][..in_h * in_w * c];
        for oy in 0..out_h {
            let (iy, y0, y1) = interp10(oy as i32, hs, half_pixel_centers, in_h as i32);
            let dy = iy as i64 - one * y0 as i64;
            for ox in 0..out_w {
                let (ix, x0, x1) = interp10(ox as i32, ws, half_pixel_centers, in_w as i32);
                let dx = ix as i64 - one * x0 as i64;
                let at = |yy: i32, xx: i32, ch: usize| {
                    img[(yy as usize * in_w + xx as usize) * c + ch].get() as i64
                };
                let out = &mut y[((b * out_h + oy) * out_w + ox) * c..][..c];
                for (ch, o) in out.iter_mut().enumerate() {
                    let v = at(y0, x0, ch) * (one - dy) * (one - dx)
                        + at(y1, x0, ch) * dy * (one - dx)
                        + at(y0, x1, ch) * (one - dy) * dx
                        + at(y1, x1, ch) * dy * dx;
                    let round = if v > 0 { 1i64 << 19 } else { -(1i64 << 19) };
                    *o = T::put(((v + round) / (1 << 20)) as i32);
                }
            }
        }
    }
}

/// uint8 bilinear resize through TFLite's float reference template, rounded.
#[allow(clippy::too_many_arguments)]
pub fn resize_bilinear_u8(
    x: &[u8],
    [n, in_h, in_w, c]: [usize; 4],
    y: &mut [u8],
    out_h: usize,
    out_w: usize,
    align_corners: bool,
    half_pixel_centers: bool,
) {
    if y.is_empty() || in_h == 0 || in_w == 0 {
        return;
    }
    let scale = |inp: usize, out: usize| {
        if align_corners && out > 1 {
            (inp - 1) as f32 / (out - 1) as f32
        } else {
            inp as f32 / out as f32
        }
    };
    let interp = |i: usize, s: f32, size: usize| {
        let v = if half_pixel_centers {
            (i as f32 + 0.5) * s - 0.5
        } else {
            i as f32 * s
        };
        let lo = (v.floor() as i64).clamp(0, size as i64 - 1) as usize;
        let hi = (v.ceil() as i64).min(size as i64 - 1).max(0) as usize;
        (v, lo, hi)
    };
    let (hs, ws) = (scale(in_h, out_h), scale(in_w, out_w));
    for b in 0..n {
        let img = &x[b * in_h * in_w * c..][..in_h * in_w * c];
        for oy in 0..out_h {
            let (iy, y0, y1) = interp(oy, hs, in_h);
            let dy = iy - y0 as f32;
            for ox in 0..out_w {
                let (ix, x0, x1) = interp(ox, ws, in_w);
                let dx = ix - x0 as f32;
                let at = |yy: usize, xx: usize, ch: usize| img[(yy * in_w + xx) * c + ch] as f32;
                let out = &mut y[((b * out_h + oy) * out_w + ox) * c..][..c];
                for (ch, o) in out.iter_mut().enumerate() {
                    let v = at(y0, x0, ch) * (1.0 - dy) * (1.0 - dx)
                        + at(y1, x0, ch) * dy * (1.0 - dx)
                        + at(y0, x1, ch) * (1.0 - dy) * dx
                        + at(y1, x1, ch) * dy * dx;
                    *o = v.round() as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_upscale_2x_half_pixel() {
        // 1×1×2×1 → 1×1×4×1 with half-pixel centers: scale 512; x coords
        // −256, 256, 768, 1280 → weights give x0, 0.75x0+0.25x1, 0.25x0+0.75x1, x1.
        let x = [-100i8, 100];
        let mut y = [0i8; 4];
        resize_bilinear_integer(&x, [1, 1, 2, 1], &mut y, 1, 4, false, true);
        assert_eq!(y, [-100, -50, 50, 100]);
        // Rounding of halves away from zero: 1 and 2 → 1.25 → 1, 1.75 → 2.
        let mut y = [0i8; 4];
        resize_bilinear_integer(&[1i8, 2], [1, 1, 2, 1], &mut y, 1, 4, false, true);
        assert_eq!(y, [1, 1, 2, 2]);
    }

    #[test]
    fn uint8_rounds_half_away_from_zero() {
        // align_corners 1×1×2 → 1×1×3: middle = 0.5·1 + 0.5·2 = 1.5 → 2.
        let mut y = [0u8; 3];
        resize_bilinear_u8(&[1u8, 2], [1, 1, 2, 1], &mut y, 1, 3, true, false);
        assert_eq!(y, [1, 2, 2]);
        // 1×1×2 → 1×1×4 (scale 0.5): 10, 10.5 → 11, then 11, 11.
        let mut y = [0u8; 4];
        resize_bilinear_u8(&[10u8, 11], [1, 1, 2, 1], &mut y, 1, 4, false, false);
        assert_eq!(y, [10, 11, 11, 11]);
    }
}

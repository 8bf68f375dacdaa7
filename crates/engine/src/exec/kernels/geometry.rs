//! The spatial geometry of the windowed NHWC ops: CONV_2D, DEPTHWISE_CONV_2D,
//! AVERAGE_POOL_2D and MAX_POOL_2D, float and integer alike. It is computed once, at
//! preparation, and every kernel of those ops reads its sizes, strides, dilations and
//! padding from it.
//!
//! Output size and padding follow TFLite (`ComputePaddingHeightWidth`), per spatial
//! axis, with the dilated kernel extent `k_eff = (k − 1)·dilation + 1`:
//! - SAME: `out = ⌈in / stride⌉`; VALID: `out = ⌊(in − k_eff) / stride⌋ + 1`;
//! - total padding `max(0, (out − 1)·stride + k_eff − in)`, of which the leading side
//!   (top, left) takes the smaller half, `⌊total / 2⌋`; the trailing side is implicit.
//!
//! Tap `(ky, kx)` of output pixel `(oy, ox)` reads input pixel
//! `(oy·stride_h + ky·dilation_h − pad_top, ox·stride_w + kx·dilation_w − pad_left)`;
//! taps outside the image are skipped (convolutions add nothing for them, pools
//! neither count them nor let them win the max).

use crate::error::{EngineError, Result};
use crate::ir::Padding;

/// Sizes, strides, dilations and leading padding of one windowed op. Input NHWC
/// `[batch, in_h, in_w, in_c]`, output `[batch, out_h, out_w, out_c]`; the window is
/// `k_h × k_w` (the filter of a conv, the pool size of a pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    /// Depthwise: `out_c = in_c · depth_multiplier`, output channel `ic · m + k` reads
    /// input channel `ic`. 1 for conv and pools.
    pub depth_multiplier: usize,
}

/// Padding, strides and dilations of a windowed op, as the model states them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowAttrs {
    pub padding: Padding,
    pub stride_h: usize,
    pub stride_w: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
}

/// Output size and leading padding of one spatial axis, as TFLite computes them.
pub fn out_and_pad(
    padding: Padding,
    input: usize,
    k: usize,
    stride: usize,
    dilation: usize,
) -> Result<(usize, usize)> {
    if stride == 0 || dilation == 0 || k == 0 {
        return Err(EngineError::invalid(
            "stride, dilation and kernel size must be positive",
        ));
    }
    let k_eff = (k - 1) * dilation + 1;
    let out = match padding {
        Padding::Same => input.div_ceil(stride),
        Padding::Valid => {
            if input < k_eff {
                return Err(EngineError::invalid(format!(
                    "VALID padding: input size {input} smaller than the kernel extent {k_eff}"
                )));
            }
            (input - k_eff) / stride + 1
        }
    };
    let total = ((out.saturating_sub(1)) * stride + k_eff).saturating_sub(input);
    Ok((out, total / 2))
}

impl Geometry {
    /// The geometry of `input` (NHWC) under a `k_h × k_w` window giving `out_c`
    /// channels with the given depth multiplier.
    fn windowed(
        [batch, in_h, in_w, in_c]: [usize; 4],
        [k_h, k_w]: [usize; 2],
        out_c: usize,
        a: WindowAttrs,
        depth_multiplier: usize,
    ) -> Result<Geometry> {
        let (out_h, pad_top) = out_and_pad(a.padding, in_h, k_h, a.stride_h, a.dilation_h)?;
        let (out_w, pad_left) = out_and_pad(a.padding, in_w, k_w, a.stride_w, a.dilation_w)?;
        Ok(Geometry {
            batch,
            in_h,
            in_w,
            in_c,
            out_h,
            out_w,
            out_c,
            k_h,
            k_w,
            stride_h: a.stride_h,
            stride_w: a.stride_w,
            dilation_h: a.dilation_h,
            dilation_w: a.dilation_w,
            pad_top,
            pad_left,
            depth_multiplier,
        })
    }

    /// CONV_2D: every output channel reads all `in_c` input channels.
    pub fn conv(
        input: [usize; 4],
        kernel: [usize; 2],
        out_c: usize,
        a: WindowAttrs,
    ) -> Result<Self> {
        Self::windowed(input, kernel, out_c, a, 1)
    }

    /// DEPTHWISE_CONV_2D with `out_c = in_c · depth_multiplier` (the caller checks that
    /// `in_c` divides `out_c`).
    pub fn depthwise(
        input: [usize; 4],
        kernel: [usize; 2],
        out_c: usize,
        a: WindowAttrs,
    ) -> Result<Self> {
        let multiplier = out_c.checked_div(input[3]).unwrap_or(0);
        Self::windowed(input, kernel, out_c, a, multiplier)
    }

    /// AVERAGE_POOL_2D / MAX_POOL_2D: a `filter` window per channel, no dilation.
    pub fn pool(
        input: [usize; 4],
        filter: [usize; 2],
        padding: Padding,
        stride_h: usize,
        stride_w: usize,
    ) -> Result<Self> {
        let a = WindowAttrs {
            padding,
            stride_h,
            stride_w,
            dilation_h: 1,
            dilation_w: 1,
        };
        Self::windowed(input, filter, input[3], a, 1)
    }

    /// `[batch, out_h, out_w, out_c]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.out_h, self.out_w, self.out_c]
    }
    pub fn input_len(&self) -> usize {
        self.batch * self.in_h * self.in_w * self.in_c
    }
    pub fn output_len(&self) -> usize {
        self.batch * self.out_h * self.out_w * self.out_c
    }
    /// Output pixels (GEMM rows of a conv).
    pub fn pixels(&self) -> usize {
        self.batch * self.out_h * self.out_w
    }
    /// Values of a CONV_2D filter, OHWI `[out_c, k_h, k_w, in_c]`.
    pub fn conv_filter_len(&self) -> usize {
        self.out_c * self.k_h * self.k_w * self.in_c
    }
    /// Values of a DEPTHWISE_CONV_2D filter, `[1, k_h, k_w, out_c]`.
    pub fn depthwise_filter_len(&self) -> usize {
        self.k_h * self.k_w * self.out_c
    }

    /// Whether a conv is a plain GEMM over the input pixels: 1×1, stride 1, unpadded.
    pub fn is_pointwise(&self) -> bool {
        self.k_h == 1
            && self.k_w == 1
            && self.stride_h == 1
            && self.stride_w == 1
            && self.pad_top == 0
            && self.pad_left == 0
            && self.out_h == self.in_h
            && self.out_w == self.in_w
    }

    /// Input row read by output row `oy`'s tap `ky`, if inside the image.
    #[inline]
    pub fn in_y(&self, oy: usize, ky: usize) -> Option<usize> {
        let y = (oy * self.stride_h + ky * self.dilation_h).checked_sub(self.pad_top)?;
        (y < self.in_h).then_some(y)
    }

    /// Input column read by output column `ox`'s tap `kx`, if inside the image.
    #[inline]
    pub fn in_x(&self, ox: usize, kx: usize) -> Option<usize> {
        let x = (ox * self.stride_w + kx * self.dilation_w).checked_sub(self.pad_left)?;
        (x < self.in_w).then_some(x)
    }

    /// The in-image input rows `[start, end)` of output row `oy`'s window (dilation 1,
    /// as pools have); empty when the window lies entirely in the padding.
    #[inline]
    pub fn window_y(&self, oy: usize) -> (usize, usize) {
        window(oy, self.stride_h, self.pad_top, self.k_h, self.in_h)
    }

    /// The in-image input columns `[start, end)` of output column `ox`'s window.
    #[inline]
    pub fn window_x(&self, ox: usize) -> (usize, usize) {
        window(ox, self.stride_w, self.pad_left, self.k_w, self.in_w)
    }
}

#[inline(always)]
fn window(o: usize, stride: usize, pad: usize, k: usize, size: usize) -> (usize, usize) {
    let origin = (o * stride) as isize - pad as isize;
    let start = origin.max(0) as usize;
    let end = (origin + k as isize).clamp(0, size as isize) as usize;
    (start, end.max(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(padding: Padding, stride: usize, dilation: usize) -> WindowAttrs {
        WindowAttrs {
            padding,
            stride_h: stride,
            stride_w: stride,
            dilation_h: dilation,
            dilation_w: dilation,
        }
    }

    #[test]
    fn out_and_pad_follows_tflite() {
        // SAME: ceil(in / stride), the smaller half of the padding in front.
        assert_eq!(out_and_pad(Padding::Same, 224, 3, 2, 1).unwrap(), (112, 0));
        assert_eq!(out_and_pad(Padding::Same, 112, 3, 1, 1).unwrap(), (112, 1));
        assert_eq!(out_and_pad(Padding::Same, 7, 4, 1, 1).unwrap(), (7, 1));
        assert_eq!(out_and_pad(Padding::Same, 5, 3, 1, 2).unwrap(), (5, 2));
        // VALID: no padding, the dilated extent must fit.
        assert_eq!(out_and_pad(Padding::Valid, 7, 3, 2, 1).unwrap(), (3, 0));
        assert_eq!(out_and_pad(Padding::Valid, 7, 3, 1, 3).unwrap(), (1, 0));
        assert!(out_and_pad(Padding::Valid, 6, 3, 1, 3).is_err());
        for bad in [(0, 1, 1), (1, 0, 1), (1, 1, 0)] {
            assert!(out_and_pad(Padding::Same, 5, bad.0, bad.1, bad.2).is_err());
        }
    }

    #[test]
    fn constructors_fill_every_field() {
        let g = Geometry::conv([2, 9, 8, 3], [3, 2], 5, attrs(Padding::Same, 2, 1)).unwrap();
        assert_eq!(
            g,
            Geometry {
                batch: 2,
                in_h: 9,
                in_w: 8,
                in_c: 3,
                out_h: 5,
                out_w: 4,
                out_c: 5,
                k_h: 3,
                k_w: 2,
                stride_h: 2,
                stride_w: 2,
                dilation_h: 1,
                dilation_w: 1,
                pad_top: 1,
                pad_left: 0,
                depth_multiplier: 1,
            }
        );
        assert_eq!(g.output_shape(), [2, 5, 4, 5]);
        assert_eq!((g.input_len(), g.output_len(), g.pixels()), (432, 200, 40));
        assert_eq!((g.conv_filter_len(), g.depthwise_filter_len()), (90, 30));

        let d = Geometry::depthwise([1, 6, 6, 4], [3, 3], 8, attrs(Padding::Valid, 1, 2)).unwrap();
        assert_eq!(
            (d.out_h, d.out_w, d.pad_top, d.depth_multiplier),
            (2, 2, 0, 2)
        );
        assert_eq!((d.dilation_h, d.dilation_w), (2, 2));

        let p = Geometry::pool([1, 7, 7, 5], [3, 3], Padding::Same, 2, 2).unwrap();
        assert_eq!((p.out_h, p.out_w, p.out_c, p.pad_top), (4, 4, 5, 1));
        assert_eq!((p.dilation_h, p.depth_multiplier), (1, 1));
    }

    #[test]
    fn taps_and_windows_stay_inside_the_image() {
        // 5 wide, 3-tap window, stride 2, SAME: pad 1 in front.
        let g = Geometry::pool([1, 5, 5, 1], [3, 3], Padding::Same, 2, 2).unwrap();
        assert_eq!(g.pad_left, 1);
        let cols: Vec<(usize, usize)> = (0..g.out_w).map(|o| g.window_x(o)).collect();
        assert_eq!(cols, [(0, 2), (1, 4), (3, 5)]);
        let taps: Vec<Vec<Option<usize>>> = (0..g.out_w)
            .map(|o| (0..3).map(|k| g.in_x(o, k)).collect())
            .collect();
        assert_eq!(
            taps,
            [
                vec![None, Some(0), Some(1)],
                vec![Some(1), Some(2), Some(3)],
                vec![Some(3), Some(4), None]
            ]
        );
        // Rows agree with the columns on a square image.
        assert_eq!((0..3).map(|o| g.window_y(o)).collect::<Vec<_>>(), cols);
        assert_eq!(g.in_y(2, 2), None);
        // A window entirely in the padding is empty.
        let far = Geometry { pad_left: 4, ..g };
        assert_eq!(far.window_x(0), (0, 0));
    }

    #[test]
    fn pointwise_is_one_by_one_stride_one_unpadded() {
        let a = attrs(Padding::Same, 1, 1);
        assert!(
            Geometry::conv([1, 4, 4, 8], [1, 1], 16, a)
                .unwrap()
                .is_pointwise()
        );
        assert!(
            !Geometry::conv([1, 4, 4, 8], [3, 3], 16, a)
                .unwrap()
                .is_pointwise()
        );
        let strided = attrs(Padding::Same, 2, 1);
        assert!(
            !Geometry::conv([1, 4, 4, 8], [1, 1], 16, strided)
                .unwrap()
                .is_pointwise()
        );
    }
}

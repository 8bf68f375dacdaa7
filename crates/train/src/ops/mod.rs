//! Forward and backward kernels, each op's pair in one file. Tensors are plain
//! `f32` slices in NHWC order; weights in the layouts the GEMM wants (conv
//! `[KH·KW·Cin, Cout]`, depthwise `[KH·KW, C]`, dense `[Cin, Cout]`). Backward
//! kernels **add** into their input and weight gradients, so a tensor read by two
//! ops (a residual) and weights shared over micro-batches just accumulate.

pub mod bn;
pub mod conv;
pub mod dense;
pub mod depthwise;
pub mod fake_quant;
pub mod loss;
pub mod pool;

#[cfg(test)]
mod gradcheck;

/// Geometry of a conv/depthwise window op with TensorFlow's SAME padding (the extra
/// padded row/column goes at the bottom/right, as TFLite computes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geom {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub k: usize,
    pub stride: usize,
    pub pad_t: usize,
    pub pad_l: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Geom {
    /// SAME padding, square `k × k` window.
    pub fn same(n: usize, h: usize, w: usize, c: usize, k: usize, stride: usize) -> Geom {
        let oh = h.div_ceil(stride);
        let ow = w.div_ceil(stride);
        let pad_t = ((oh - 1) * stride + k).saturating_sub(h) / 2;
        let pad_l = ((ow - 1) * stride + k).saturating_sub(w) / 2;
        Geom {
            n,
            h,
            w,
            c,
            k,
            stride,
            pad_t,
            pad_l,
            oh,
            ow,
        }
    }

    pub fn in_len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }

    /// Output positions (N·OH·OW).
    pub fn out_pos(&self) -> usize {
        self.n * self.oh * self.ow
    }

    /// Input row/column of output `o` and tap `t`, if inside the image.
    #[inline]
    pub fn src(&self, o: usize, t: usize, pad: usize, size: usize) -> Option<usize> {
        let i = (o * self.stride + t).checked_sub(pad)?;
        (i < size).then_some(i)
    }

    /// Is this a 1×1 stride-1 window (a plain GEMM over positions)?
    pub fn is_pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1
    }
}

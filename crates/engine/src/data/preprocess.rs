//! TF-slim ImageNet eval preprocessing: `tf.image.central_crop`, then the TF1
//! `resize_bilinear` (align_corners=false, half_pixel_centers=false, no antialias),
//! then the [-1, 1] mapping. The data README measured that this resize, not PIL's
//! antialiased one, reproduces the reference accuracies (up to 3.7 points apart).

use super::RgbImage;

/// The crop window `(top, left, height, width)` that `tf.image.central_crop` takes
/// from an `height × width` image: start = trunc((side - side * fraction) / 2) in
/// double precision, size = side - 2 * start. Fractions outside (0, 1) (or NaN)
/// mean no crop; TF rejects them, we keep the whole image.
pub fn central_crop_box(
    height: usize,
    width: usize,
    central_fraction: f32,
) -> (usize, usize, usize, usize) {
    let f = f64::from(central_fraction);
    if !(f > 0.0 && f < 1.0) {
        return (0, 0, height, width);
    }
    let start = |side: usize| -> usize {
        let s = side as f64;
        // `as usize` truncates like TF's int cast; the value is in [0, side/2).
        ((s - s * f) / 2.0) as usize
    };
    let (top, left) = (start(height), start(width));
    (top, left, height - 2 * top, width - 2 * left)
}

/// TF-slim ImageNet eval preprocessing: central crop of `central_fraction` (0.875) of
/// each side, TF1 bilinear resize to `(out_h, out_w)`, as float in [0, 255], HWC.
/// An empty or inconsistent image (pixel buffer not `width*height*3`) yields zeros.
pub fn central_crop_resize(
    img: &RgbImage,
    central_fraction: f32,
    out_h: usize,
    out_w: usize,
) -> Vec<f32> {
    let (top, left, h, w) = central_crop_box(img.height, img.width, central_fraction);
    resize_window(img, top, left, h, w, out_h, out_w)
}

/// TF1 `resize_bilinear` (align_corners=false, half_pixel_centers=false) of the
/// whole image to `(out_h, out_w)`, float [0, 255], HWC.
pub fn resize_bilinear_tf1(img: &RgbImage, out_h: usize, out_w: usize) -> Vec<f32> {
    resize_window(img, 0, 0, img.height, img.width, out_h, out_w)
}

/// Map [0, 255] pixels to the model input range [-1, 1]: (x / 255 - 0.5) * 2.
pub fn to_unit_range(pixels: &mut [f32]) {
    for p in pixels {
        *p = (*p / 255.0 - 0.5) * 2.0;
    }
}

/// Per-output-coordinate source neighbours and weight, as TF's
/// `compute_interpolation_weights` with the legacy scaler (in = out_index * scale,
/// all in f32).
#[derive(Debug, Clone, Copy)]
struct Interp {
    lower: usize,
    upper: usize,
    lerp: f32,
}

fn interp_weights(in_size: usize, out_size: usize) -> Vec<Interp> {
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|i| {
            let src = i as f32 * scale;
            let fl = src.floor();
            // Clamp both ends: f32 rounding must never index past the last row/column.
            let lower = (fl.max(0.0) as usize).min(in_size - 1);
            let upper = (src.ceil().max(0.0) as usize).min(in_size - 1);
            Interp {
                lower,
                upper,
                lerp: src - fl,
            }
        })
        .collect()
}

/// Resize the window `[top, top+h) × [left, left+w)` of `img`.
fn resize_window(
    img: &RgbImage,
    top: usize,
    left: usize,
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; out_h * out_w * 3];
    let window_ok = top + h <= img.height && left + w <= img.width;
    if out.is_empty() || h == 0 || w == 0 || !img.is_consistent() || !window_ok {
        return out;
    }
    let ys = interp_weights(h, out_h);
    let xs = interp_weights(w, out_w);
    let stride = img.width * 3;
    let px = &img.pixels;
    // Byte offsets of each output column's neighbours, relative to the row start.
    let cols: Vec<(usize, usize, f32)> = xs
        .iter()
        .map(|xi| ((left + xi.lower) * 3, (left + xi.upper) * 3, xi.lerp))
        .collect();
    for (oy, yi) in ys.iter().enumerate() {
        let trow = &px[(top + yi.lower) * stride..][..stride];
        let brow = &px[(top + yi.upper) * stride..][..stride];
        let yl = yi.lerp;
        let out_row = &mut out[oy * out_w * 3..][..out_w * 3];
        for (o, &(l, r, xl)) in out_row.chunks_exact_mut(3).zip(&cols) {
            // One bounds check per neighbour pixel instead of one per byte.
            let (tl, tr) = (&trow[l..l + 3], &trow[r..r + 3]);
            let (bl, br) = (&brow[l..l + 3], &brow[r..r + 3]);
            for c in 0..3 {
                let (tl, tr) = (f32::from(tl[c]), f32::from(tr[c]));
                let (bl, br) = (f32::from(bl[c]), f32::from(br[c]));
                // Same operation order as TF's compute_lerp.
                let t = tl + (tr - tl) * xl;
                let b = bl + (br - bl) * xl;
                o[c] = t + (b - t) * yl;
            }
        }
    }
    out
}

/// How a float model's input represents pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputRange {
    /// TF-slim's [-1, 1]: `(p / 255 − 0.5) · 2` (the ImageNet MobileNets).
    SignedUnit,
    /// [0, 1]: `p / 255` (every CIFAR-10 model of this project; normalisation, if
    /// any, is inside the model).
    Unit,
}

impl InputRange {
    /// The convention of a dataset's models: `cifar10*` → [0, 1], others [-1, 1].
    pub fn for_dataset(dataset: &str) -> InputRange {
        if dataset.starts_with("cifar10") {
            InputRange::Unit
        } else {
            InputRange::SignedUnit
        }
    }

    #[inline]
    pub fn map(self, p: f32) -> f32 {
        match self {
            InputRange::SignedUnit => (p / 255.0 - 0.5) * 2.0,
            InputRange::Unit => p / 255.0,
        }
    }
}

/// Encode preprocessed pixels (0..255 floats, HWC) as the bytes of an image model's input:
/// float32 inputs get the TF-slim range [-1, 1]; quantized uint8/int8 inputs get that
/// value quantized with the input's own scale and zero point; unquantized uint8 inputs
/// (e.g. MoveNet) get the raw pixels.
pub fn encode_model_input(
    pixels: &[f32],
    dtype: crate::ir::DType,
    quant: Option<&crate::ir::Quantization>,
) -> Vec<u8> {
    encode_model_input_in(pixels, dtype, quant, InputRange::SignedUnit)
}

/// [`encode_model_input`] with the float range of the model's dataset.
pub fn encode_model_input_in(
    pixels: &[f32],
    dtype: crate::ir::DType,
    quant: Option<&crate::ir::Quantization>,
    range: InputRange,
) -> Vec<u8> {
    use crate::ir::DType;
    let unit = |p: f32| range.map(p);
    match (dtype, quant.filter(|q| !q.scale.is_empty())) {
        (DType::F32, _) => pixels.iter().flat_map(|&p| unit(p).to_le_bytes()).collect(),
        (DType::U8 | DType::I8, Some(q)) => {
            let (scale, zp) = q.params(0);
            let unsigned = dtype == DType::U8;
            let (lo, hi) = if unsigned {
                (0.0, 255.0)
            } else {
                (-128.0, 127.0)
            };
            pixels
                .iter()
                .map(|&p| {
                    let v = ((unit(p) / scale).round() + zp as f32).clamp(lo, hi);
                    if unsigned { v as u8 } else { v as i8 as u8 }
                })
                .collect()
        }
        _ => pixels
            .iter()
            .map(|&p| p.round().clamp(0.0, 255.0) as u8)
            .collect(),
    }
}

#[cfg(test)]
mod encode_tests {
    use super::encode_model_input;
    use crate::ir::{DType, Quantization};

    #[test]
    fn encodes_each_input_kind() {
        let px = [0.0f32, 127.5, 255.0];
        let f = encode_model_input(&px, DType::F32, None);
        let unit = super::encode_model_input_in(&px, DType::F32, None, super::InputRange::Unit);
        assert_eq!(unit[8..12], 1.0f32.to_le_bytes());
        assert_eq!(unit[4..8], 0.5f32.to_le_bytes());
        let vals: Vec<f32> = f
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(vals, vec![-1.0, 0.0, 1.0]);
        // Coral MobileNet input: scale 1/128, zero point 128.
        let q = Quantization::per_tensor(1.0 / 128.0, 128);
        assert_eq!(
            encode_model_input(&px, DType::U8, Some(&q)),
            vec![0, 128, 255]
        );
        let q8 = Quantization::per_tensor(1.0 / 128.0, 0);
        assert_eq!(
            encode_model_input(&px, DType::I8, Some(&q8)),
            vec![0x80, 0, 127]
        );
        assert_eq!(
            encode_model_input(&[3.4, 300.0], DType::U8, None),
            vec![3, 255]
        );
    }
}

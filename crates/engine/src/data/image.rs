//! Decoded RGB images and JPEG decoding (zune-jpeg).

use crate::{EngineError, Result};
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// An 8-bit RGB image, pixels in HWC order (`pixels.len() == width * height * 3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// The `[r, g, b]` at column `x`, row `y` (None outside the image).
    pub fn pixel(&self, x: usize, y: usize) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y * self.width + x) * 3;
        let p = self.pixels.get(i..i + 3)?;
        Some([p[0], p[1], p[2]])
    }

    /// True when the pixel buffer matches the dimensions.
    pub fn is_consistent(&self) -> bool {
        self.width
            .checked_mul(self.height)
            .and_then(|n| n.checked_mul(3))
            .is_some_and(|n| n == self.pixels.len())
    }
}

/// Decode a JPEG to RGB. Greyscale JPEGs become three equal channels. The error
/// message starts with "not a JPEG:"; callers prefix the file / member name.
pub fn decode_jpeg(bytes: &[u8]) -> Result<RgbImage> {
    // zune-jpeg is fuzzed, but a decoder bug must not take down a whole evaluation
    // run: treat a panic inside it as a corrupt file.
    match std::panic::catch_unwind(|| decode_inner(bytes)) {
        Ok(r) => r.map_err(|msg| EngineError::dataset(format!("not a JPEG: {msg}"))),
        Err(_) => Err(EngineError::dataset(
            "not a JPEG: the decoder failed on these bytes (internal panic)",
        )),
    }
}

fn decode_inner(bytes: &[u8]) -> std::result::Result<RgbImage, String> {
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return Err(format!(
            "missing the SOI marker FF D8 (first bytes: {:02X?})",
            &bytes[..bytes.len().min(4)]
        ));
    }
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut dec = JpegDecoder::new_with_options(bytes, options);
    let data = dec.decode().map_err(|e| format!("{e:?}"))?;
    let (w, h) = dec
        .dimensions()
        .ok_or_else(|| "decoder returned no dimensions".to_string())?;
    let (width, height) = (w, h);
    let n = width * height;
    // Single-component files are forced to Luma output by the decoder.
    let comps = dec
        .get_output_colorspace()
        .map_or(0, |c| c.num_components());
    let pixels = match comps {
        3 => data,
        1 => data.iter().flat_map(|&v| [v, v, v]).collect(),
        c => return Err(format!("unsupported output with {c} components")),
    };
    if pixels.len() != n * 3 {
        return Err(format!(
            "decoded {} bytes for a {width}x{height} RGB image",
            pixels.len()
        ));
    }
    Ok(RgbImage {
        width,
        height,
        pixels,
    })
}

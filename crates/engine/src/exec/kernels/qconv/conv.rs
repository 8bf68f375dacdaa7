//! Integer CONV_2D: the reference loops and the packed kernel.
//!
//! The packed kernel runs the GEMM of [`super::gemm`] over input rows: 1×1 stride-1
//! convs read the input directly; other convs gather one im2col row per output pixel,
//! padding taps filled with the input zero point, which contributes exactly 0 like a
//! skipped tap. One-byte inputs with dilation 1 let the 8-bit GEMM gather the windows
//! itself.

use super::gemm::{Engine, Window};
use super::params::{QElem, QParams, bias_at, check_bias, check_geometry, check_lens};
use crate::error::{EngineError, Result};
use crate::exec::kernels::Parallelism;
use crate::exec::kernels::geometry::Geometry;

/// Reference CONV_2D (TFLite `reference_integer_ops::ConvPerChannel`, uint8
/// `reference_ops::Conv`, int16 overload): out-of-image taps are skipped.
pub fn conv_reference<T: QElem, W: QElem>(
    g: &Geometry,
    q: &QParams,
    input: &[T],
    filter: &[W],
    bias: Option<&[i64]>,
    out: &mut [T],
) -> Result<()> {
    check_geometry(g, false)?;
    q.check(g.out_c)?;
    check_lens(
        "conv",
        &[
            (input.len(), g.input_len()),
            (filter.len(), g.conv_filter_len()),
            (out.len(), g.output_len()),
            (bias.map_or(g.out_c, <[i64]>::len), g.out_c),
        ],
    )?;
    let (io, wo) = (-q.in_zp, q.w_offset());
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                for oc in 0..g.out_c {
                    let mut acc: i64 = 0;
                    for ky in 0..g.k_h {
                        let iy =
                            (oy * g.stride_h + ky * g.dilation_h) as isize - g.pad_top as isize;
                        if iy < 0 || iy >= g.in_h as isize {
                            continue;
                        }
                        for kx in 0..g.k_w {
                            let ix = (ox * g.stride_w + kx * g.dilation_w) as isize
                                - g.pad_left as isize;
                            if ix < 0 || ix >= g.in_w as isize {
                                continue;
                            }
                            let ib = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c;
                            let fb = ((oc * g.k_h + ky) * g.k_w + kx) * g.in_c;
                            for ic in 0..g.in_c {
                                let x = input[ib + ic].to_i32() + io;
                                let w = filter[fb + ic].to_i32() + wo;
                                acc += x as i64 * w as i64;
                            }
                        }
                    }
                    let o = ((b * g.out_h + oy) * g.out_w + ox) * g.out_c + oc;
                    out[o] = T::from_i32(q.finish(acc, bias_at(bias, oc), oc));
                }
            }
        }
    }
    Ok(())
}

/// Integer CONV_2D with weights packed at construction.
pub struct PackedQConv {
    g: Geometry,
    in_zp: i32,
    engine: Engine,
}

impl PackedQConv {
    pub fn new<W: QElem>(
        g: &Geometry,
        q: &QParams,
        filter: &[W],
        bias: Option<&[i64]>,
    ) -> Result<Self> {
        check_geometry(g, false)?;
        q.check(g.out_c)?;
        check_bias(bias, g.out_c)?;
        if filter.len() != g.conv_filter_len() {
            return Err(EngineError::invalid(format!(
                "conv filter has {} values, shape needs {}",
                filter.len(),
                g.conv_filter_len()
            )));
        }
        let k = g.k_h * g.k_w * g.in_c;
        let m = g.batch * g.out_h * g.out_w;
        let engine = Engine::new(m, g.out_c, k, |c, kk| filter[c * k + kk].to_i32(), bias, q);
        Ok(PackedQConv {
            g: *g,
            in_zp: q.in_zp,
            engine,
        })
    }

    pub fn packed_bytes(&self) -> usize {
        self.engine.packed_bytes()
    }

    /// Whether the 8-bit GEMM requantizes with its cheaper exact form (for tests).
    pub fn uses_fast_requant(&self) -> bool {
        matches!(&self.engine, Engine::Narrow(g) if g.uses_fast_requant())
    }

    /// Whether the 8-bit GEMM runs on AMX tiles (for tests).
    pub fn uses_amx(&self) -> bool {
        matches!(&self.engine, Engine::Narrow(g) if g.uses_amx())
    }

    /// `T` must be the scheme's activation type (u8, i8 or i16).
    pub fn run<T: QElem>(&self, input: &[T], out: &mut [T], par: Parallelism) {
        let g = &self.g;
        assert_eq!(input.len(), g.input_len(), "conv input size");
        let m = g.batch * g.out_h * g.out_w;
        let direct = g.k_h == 1
            && g.k_w == 1
            && g.stride_h == 1
            && g.stride_w == 1
            && g.pad_top == 0
            && g.pad_left == 0
            && g.out_h == g.in_h
            && g.out_w == g.in_w;
        let pad = T::from_i32(self.in_zp);
        let c = g.in_c;
        let fill = |row: usize, buf: &mut [T]| {
            if direct {
                buf.copy_from_slice(&input[row * c..(row + 1) * c]);
                return;
            }
            // Two divisions, each giving quotient and remainder.
            let (t, ox) = (row / g.out_w, row % g.out_w);
            let (b, oy) = (t / g.out_h, t % g.out_h);
            // With dilation 1 a kernel row whose taps are all inside the image reads
            // one contiguous run of `k_w · c` values.
            let x0 = (ox * g.stride_w) as isize - g.pad_left as isize;
            let row_inside = g.dilation_w == 1 && x0 >= 0 && x0 as usize + g.k_w <= g.in_w;
            let run = g.k_w * c;
            for ky in 0..g.k_h {
                let iy = (oy * g.stride_h + ky * g.dilation_h) as isize - g.pad_top as isize;
                if row_inside && iy >= 0 && iy < g.in_h as isize {
                    let s = ((b * g.in_h + iy as usize) * g.in_w + x0 as usize) * c;
                    copy_run(&mut buf[ky * run..(ky + 1) * run], &input[s..s + run]);
                    continue;
                }
                for kx in 0..g.k_w {
                    let ix = (ox * g.stride_w + kx * g.dilation_w) as isize - g.pad_left as isize;
                    let dst = &mut buf[(ky * g.k_w + kx) * c..(ky * g.k_w + kx + 1) * c];
                    if iy < 0 || ix < 0 || iy >= g.in_h as isize || ix >= g.in_w as isize {
                        fill_px(dst, pad);
                    } else {
                        let s = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * c;
                        copy_px(dst, &input[s..s + c]);
                    }
                }
            }
        };
        // One-byte inputs with dilation 1: the GEMM gathers the windows itself.
        let gather = !direct && std::mem::size_of::<T>() == 1;
        let window = (gather && g.dilation_h == 1 && g.dilation_w == 1).then(|| Window {
            // SAFETY: T is one byte wide (checked above), so the input as bytes.
            input: unsafe { std::slice::from_raw_parts(input.as_ptr().cast::<u8>(), input.len()) },
            geom: *g,
            pad: self.in_zp as u8,
        });
        let direct = direct.then_some(input);
        self.engine.run(m, direct, window.as_ref(), &fill, out, par);
    }
}

/// Copies one pixel's channels. First layers have 1–4 channels: fixed-size copies
/// compile to a few moves, where a call to memcpy per tap would cost more than the copy.
#[inline(always)]
fn copy_px<T: Copy>(dst: &mut [T], src: &[T]) {
    match dst.len() {
        1 => dst[..1].copy_from_slice(&src[..1]),
        2 => dst[..2].copy_from_slice(&src[..2]),
        3 => dst[..3].copy_from_slice(&src[..3]),
        4 => dst[..4].copy_from_slice(&src[..4]),
        _ => dst.copy_from_slice(src),
    }
}

/// Copies a short run (a kernel row of a first layer, e.g. 3 taps × 3 channels) with
/// two overlapping fixed-size copies instead of a call to memcpy.
#[inline(always)]
fn copy_run<T: Copy>(dst: &mut [T], src: &[T]) {
    let n = dst.len();
    if (8..=16).contains(&n) {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if (4..8).contains(&n) {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else {
        copy_px(dst, src);
    }
}

/// [`copy_px`] for a padding tap.
#[inline(always)]
fn fill_px<T: Copy>(dst: &mut [T], v: T) {
    match dst.len() {
        1 => dst[..1].fill(v),
        2 => dst[..2].fill(v),
        3 => dst[..3].fill(v),
        4 => dst[..4].fill(v),
        _ => dst.fill(v),
    }
}

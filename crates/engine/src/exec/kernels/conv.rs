//! Float32 CONV_2D (TFLite layouts: input NHWC, filter OHWI `[out_c, k_h, k_w, in_c]`).
//!
//! - [`conv2d_reference`]: plain loops mirroring TFLite's reference kernel (test oracle).
//! - [`PackedConv2D`]: weights packed into 16-column GEMM panels at load. A
//!   1×1/stride-1/unpadded conv is a GEMM read straight from the input rows (M = N·H·W,
//!   K = in_c, N = out_c). Any other shape is cut into blocks of output pixels; each
//!   block is gathered (im2col, row-major, whole filter rows copied at once when they
//!   are inside the image) into ~128 KiB of per-worker scratch and fed to the same
//!   GEMM, so no full im2col matrix ever exists. The portable path packs A instead.

use std::cell::RefCell;

use super::Parallelism;
use super::cpu;
use super::gemm;
use super::geometry::Geometry;
use crate::error::{EngineError, Result};
use crate::exec::parallel;

/// Geometry and fused activation of one CONV_2D. Padding is explicit: out-of-image
/// taps read 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvParams {
    pub geom: Geometry,
    pub act_min: f32,
    pub act_max: f32,
}

impl ConvParams {
    pub fn input_len(&self) -> usize {
        self.geom.input_len()
    }
    pub fn filter_len(&self) -> usize {
        self.geom.conv_filter_len()
    }
    pub fn output_len(&self) -> usize {
        self.geom.output_len()
    }
    /// GEMM depth: one im2col row.
    pub fn k(&self) -> usize {
        self.geom.k_h * self.geom.k_w * self.geom.in_c
    }
    /// Multiply-accumulates of one run (for GFLOP/s reports: FLOPs = 2 × MACs).
    pub fn macs(&self) -> usize {
        self.output_len() * self.k()
    }

    /// Checks the attributes and the buffer sizes a caller is about to pass, so that the
    /// kernels' own length assertions can never fire on a malformed model.
    pub fn check(
        &self,
        input_len: usize,
        filter_len: usize,
        bias_len: Option<usize>,
        output_len: usize,
    ) -> Result<()> {
        let g = &self.geom;
        if g.stride_h == 0 || g.stride_w == 0 {
            return Err(EngineError::invalid("conv2d: stride 0"));
        }
        if g.k_h == 0 || g.k_w == 0 || g.in_c == 0 {
            return Err(EngineError::invalid("conv2d: empty filter or input depth"));
        }
        if g.dilation_h == 0 || g.dilation_w == 0 {
            return Err(EngineError::invalid("conv2d: dilation 0"));
        }
        if self.act_min.is_nan() || self.act_max.is_nan() || self.act_min > self.act_max {
            return Err(EngineError::invalid("conv2d: activation min > max"));
        }
        let sizes = [
            ("input", input_len, self.input_len()),
            ("filter", filter_len, self.filter_len()),
            ("output", output_len, self.output_len()),
        ];
        for (what, got, want) in sizes {
            if got != want {
                return Err(EngineError::invalid(format!(
                    "conv2d: {what} has {got} floats, shape needs {want}"
                )));
            }
        }
        if let Some(b) = bias_len
            && b != g.out_c
        {
            return Err(EngineError::invalid(format!(
                "conv2d: bias has {b} floats for {} output channels",
                g.out_c
            )));
        }
        Ok(())
    }
}

fn assert_lengths(p: &ConvParams, input: &[f32], output: &[f32]) {
    assert!(input.len() >= p.input_len(), "conv2d: input too short");
    assert!(output.len() >= p.output_len(), "conv2d: output too short");
}

/// Reference CONV_2D: for every output element, sum over (ky, kx, ic) in that order,
/// then add the bias and clamp, as TFLite's `reference_ops::Conv` does.
pub fn conv2d_reference(
    p: &ConvParams,
    input: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    let g = &p.geom;
    assert_lengths(p, input, output);
    assert!(filter.len() >= p.filter_len(), "conv2d: filter too short");
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                for oc in 0..g.out_c {
                    let mut total = 0.0f32;
                    for ky in 0..g.k_h {
                        let Some(iy) = g.in_y(oy, ky) else {
                            continue;
                        };
                        for kx in 0..g.k_w {
                            let Some(ix) = g.in_x(ox, kx) else {
                                continue;
                            };
                            let src = ((b * g.in_h + iy) * g.in_w + ix) * g.in_c;
                            let w = ((oc * g.k_h + ky) * g.k_w + kx) * g.in_c;
                            for ic in 0..g.in_c {
                                total += input[src + ic] * filter[w + ic];
                            }
                        }
                    }
                    let v = total + bias.map_or(0.0, |bb| bb[oc]);
                    output[((b * g.out_h + oy) * g.out_w + ox) * g.out_c + oc] =
                        v.max(p.act_min).min(p.act_max);
                }
            }
        }
    }
}

/// CONV_2D with weights packed once (at model load) for the GEMM micro-kernels.
#[derive(Debug, Clone)]
pub struct PackedConv2D {
    p: ConvParams,
    b: gemm::PackedB,
}

impl PackedConv2D {
    /// Packs `filter` (OHWI) and `bias`. Panics if they are shorter than `p` needs
    /// (callers validate with [`ConvParams::check`]).
    pub fn new(p: &ConvParams, filter: &[f32], bias: Option<&[f32]>) -> Self {
        assert!(filter.len() >= p.filter_len(), "conv2d: filter too short");
        PackedConv2D {
            p: *p,
            b: gemm::PackedB::from_nk(p.k(), p.geom.out_c, filter, bias),
        }
    }

    pub fn params(&self) -> &ConvParams {
        &self.p
    }

    /// Bytes held by the packed weights and bias.
    pub fn packed_bytes(&self) -> usize {
        self.b.bytes()
    }

    /// Floats of im2col scratch one thread uses at most (0 for a pointwise conv). The
    /// scratch (about 128 KiB, L2-resident) is a per-thread buffer that `run` grows on
    /// first use and keeps, so callers need not provide it; this is for memory reports.
    pub fn scratch_len(&self) -> usize {
        if self.p.geom.is_pointwise() {
            return 0;
        }
        let m = self.p.geom.pixels();
        im2col_block_rows(self.p.k()).min(m) * self.p.k()
    }

    /// Runs the conv with the ISA chosen by [`cpu::selected_isa`].
    pub fn run(&self, input: &[f32], output: &mut [f32], par: Parallelism) {
        self.run_isa(cpu::selected_isa(), input, output, par)
    }

    /// Runs with a given ISA (capped to what the CPU supports).
    pub fn run_isa(&self, isa: cpu::Isa, input: &[f32], output: &mut [f32], par: Parallelism) {
        let p = &self.p;
        let g = &p.geom;
        assert_lengths(p, input, output);
        let m = g.pixels();
        let output = &mut output[..p.output_len()];
        // The portable micro-kernel is faster on packed A (its direct form keeps
        // bounds checks on the row reads); the SIMD ones are faster reading rows.
        // (K = 0 also goes the packed way: its im2col needs no non-empty chunks.)
        let direct = cpu::clamp_to_detected(isa) != cpu::Isa::Portable && p.k() > 0;
        if g.is_pointwise() && direct {
            // Read the input rows in place: measured faster than packing A on every
            // MobileNetV2 1×1 layer (packing costs a strided store per input float).
            let (a, k) = (&input[..p.input_len()], g.in_c);
            gemm::gemm_direct(isa, m, a, k, &self.b, output, p.act_min, p.act_max, par);
        } else if g.is_pointwise() {
            let k = g.in_c;
            let fill = |r0: usize, rows: usize, s: usize, buf: &mut [f32]| {
                for i in 0..rows {
                    let src = &input[(r0 + i) * k..(r0 + i + 1) * k];
                    for (d, &v) in buf[i..].iter_mut().step_by(s).zip(src) {
                        *d = v;
                    }
                }
            };
            gemm::gemm(isa, m, &fill, &self.b, output, p.act_min, p.act_max, par);
        } else if direct {
            self.run_im2col(isa, input, output, par);
        } else {
            let fill = |r0: usize, rows: usize, s: usize, buf: &mut [f32]| {
                im2col_tile(p, input, r0, rows, s, buf)
            };
            gemm::gemm(isa, m, &fill, &self.b, output, p.act_min, p.act_max, par);
        }
    }

    /// General conv: im2col a block of output pixels into row-major scratch (L2-sized,
    /// one per thread, kept between runs), then the direct GEMM over it. With threads,
    /// the blocks shrink so that the pixels split evenly between the tasks.
    fn run_im2col(&self, isa: cpu::Isa, input: &[f32], output: &mut [f32], par: Parallelism) {
        let p = &self.p;
        let (k, n) = (p.k(), p.geom.out_c);
        let m = output.len() / n.max(1);
        let ns = p.macs() / parallel::GEMM_MACS_PER_NS;
        let tasks = parallel::task_count(par, m.div_ceil(IM2COL_ROW_UNIT), ns);
        let even = m.div_ceil(tasks).div_ceil(IM2COL_ROW_UNIT) * IM2COL_ROW_UNIT;
        let block = im2col_block_rows(k).min(even);
        let one = |bi: usize, out: &mut [f32]| {
            let rows = out.len() / n;
            SCRATCH.with(|s| {
                let mut scratch = s.borrow_mut();
                let len = rows * k + IM2COL_SLACK;
                if scratch.len() < len {
                    scratch.resize(len, 0.0);
                }
                im2col_rows(isa, p, input, bi * block, rows, &mut scratch[..len]);
                let a = &scratch[..rows * k];
                let single = Parallelism::SINGLE;
                gemm::gemm_direct(isa, rows, a, k, &self.b, out, p.act_min, p.act_max, single);
            })
        };
        parallel::for_each_chunk_mut(par, output, block * n, &one);
    }
}

thread_local! {
    /// im2col scratch of this thread (about 128 KiB at most, see `im2col_block_rows`).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// im2col blocks are whole multiples of this many pixels: a multiple of every direct
/// kernel's MR (8, 6, 4), so only the image's last block has a short tile.
const IM2COL_ROW_UNIT: usize = 24;

/// Output pixels per im2col block: about 128 KiB of scratch, in whole
/// [`IM2COL_ROW_UNIT`]s.
fn im2col_block_rows(k: usize) -> usize {
    ((32 * 1024 / k.max(1)) / IM2COL_ROW_UNIT).clamp(1, 40) * IM2COL_ROW_UNIT
}

/// Writes im2col rows `r0..r0+rows` row-major into `buf` (`k` floats per row), zeros
/// for out-of-image taps. With dilation_w 1 a whole filter row of in-image taps is one
/// contiguous input segment, copied at once.
fn im2col_rows(
    isa: cpu::Isa,
    p: &ConvParams,
    input: &[f32],
    r0: usize,
    rows: usize,
    buf: &mut [f32],
) {
    // A stem (3×3 over 3 channels) copies runs of 9 floats: one libc `memmove` call per
    // run cost more than the copy (im2col and memmove took 56% of MobileNet's stem
    // conv), so where a run fits one zmm register it is one masked load and store.
    #[cfg(target_arch = "x86_64")]
    if p.geom.k_w * p.geom.in_c <= 16 && cpu::clamp_to_detected(isa) == cpu::Isa::Avx512 {
        // SAFETY: AVX-512F is present (the ISA is clamped to the detected one).
        return unsafe { im2col_rows_avx512(p, input, r0, rows, buf) };
    }
    let _ = isa;
    im2col_rows_with::<PlainCopy>(p, input, r0, rows, buf)
}

/// How im2col copies a run of taps `src` to `buf[at..at + src.len()]`. The runs of a
/// call arrive in increasing `at`, each starting where the previous one ended (or
/// after zeros written in between), which is what lets [`SpillCopy`] write past a run.
trait TapCopy {
    fn copy(buf: &mut [f32], at: usize, src: &[f32]);
}

struct PlainCopy;

impl TapCopy for PlainCopy {
    #[inline(always)]
    fn copy(buf: &mut [f32], at: usize, src: &[f32]) {
        buf[at..at + src.len()].copy_from_slice(src)
    }
}

/// Runs of at most 16 floats as one zmm: a masked load (it reads only the run), and a
/// full 16-lane store whose lanes past the run land where later runs (or the block's
/// slack) are written next; only where the buffer ends is the store masked. AMD's
/// masked stores were the slow part of a masked-store version. Inlined only into
/// [`im2col_rows_avx512`], which enables AVX-512F.
#[cfg(target_arch = "x86_64")]
struct SpillCopy;

#[cfg(target_arch = "x86_64")]
impl TapCopy for SpillCopy {
    #[inline(always)]
    fn copy(buf: &mut [f32], at: usize, src: &[f32]) {
        use std::arch::x86_64::*;
        let n = src.len();
        assert!(n <= 16 && at + n <= buf.len(), "im2col tap run");
        let m = ((1u32 << n) - 1) as u16;
        // SAFETY: AVX-512F is enabled in the only caller. The load reads the `n` lanes
        // of `src` (masked-off lanes are not accessed); the store writes 16 lanes only
        // when `at + 16 <= buf.len()`, else the `n` lanes of the run.
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, src.as_ptr());
            let dst = buf.as_mut_ptr().add(at);
            if at + 16 <= buf.len() {
                _mm512_storeu_ps(dst, v);
            } else {
                _mm512_mask_storeu_ps(dst, m, v);
            }
        }
    }
}

/// Floats of scratch past an im2col block for [`SpillCopy`]'s full-width stores.
const IM2COL_SLACK: usize = 16;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn im2col_rows_avx512(p: &ConvParams, input: &[f32], r0: usize, rows: usize, buf: &mut [f32]) {
    im2col_rows_with::<SpillCopy>(p, input, r0, rows, buf)
}

/// [`im2col_rows`] with the tap copy `C`, in increasing offsets of `buf` (which may
/// extend past the `rows · k` floats written).
#[inline(always)]
fn im2col_rows_with<C: TapCopy>(
    p: &ConvParams,
    input: &[f32],
    r0: usize,
    rows: usize,
    buf: &mut [f32],
) {
    let g = &p.geom;
    let (c, k) = (g.in_c, p.k());
    let seg = g.k_w * c;
    if rows == 0 {
        return;
    }
    // The output pixel walks forward one step per row: no division per pixel, and the
    // input rows of the filter are found once per output row.
    let mut ox = r0 % g.out_w;
    let mut oy = (r0 / g.out_w) % g.out_h;
    let mut b = r0 / (g.out_w * g.out_h);
    let row_starts = |b: usize, oy: usize| -> Vec<Option<usize>> {
        (0..g.k_h)
            .map(|ky| g.in_y(oy, ky).map(|iy| (b * g.in_h + iy) * g.in_w))
            .collect()
    };
    let mut starts = row_starts(b, oy);
    for i in 0..rows {
        // Whole filter rows inside the image are one contiguous input segment.
        let x0 = (ox * g.stride_w).checked_sub(g.pad_left);
        let last = ox * g.stride_w + (g.k_w - 1) * g.dilation_w;
        let inside = g.dilation_w == 1 && x0.is_some() && last - g.pad_left < g.in_w;
        for (ky, start) in starts.iter().enumerate() {
            let at = i * k + ky * seg;
            let Some(row_at) = *start else {
                buf[at..at + seg].fill(0.0);
                continue;
            };
            if inside && let Some(x0) = x0 {
                let src = (row_at + x0) * c;
                C::copy(buf, at, &input[src..src + seg]);
                continue;
            }
            for kx in 0..g.k_w {
                let d = at + kx * c;
                match g.in_x(ox, kx) {
                    Some(ix) => C::copy(buf, d, &input[(row_at + ix) * c..(row_at + ix + 1) * c]),
                    None => buf[d..d + c].fill(0.0),
                }
            }
        }
        ox += 1;
        if ox == g.out_w && i + 1 < rows {
            ox = 0;
            oy += 1;
            if oy == g.out_h {
                oy = 0;
                b += 1;
            }
            starts = row_starts(b, oy);
        }
    }
}

/// Writes im2col rows `r0..r0+rows` transposed into the packed-A layout
/// (`buf[kk * s + i]`), zeros for out-of-image taps.
fn im2col_tile(p: &ConvParams, input: &[f32], r0: usize, rows: usize, s: usize, buf: &mut [f32]) {
    let g = &p.geom;
    let c = g.in_c;
    if p.k() == 0 {
        return;
    }
    for i in 0..rows {
        let r = r0 + i;
        let ox = r % g.out_w;
        let oy = (r / g.out_w) % g.out_h;
        let b = r / (g.out_w * g.out_h);
        let mut kbase = 0;
        for ky in 0..g.k_h {
            let iy = g.in_y(oy, ky);
            for kx in 0..g.k_w {
                let dst = buf[kbase * s + i..].iter_mut().step_by(s).take(c);
                match (iy, g.in_x(ox, kx)) {
                    (Some(iy), Some(ix)) => {
                        let at = ((b * g.in_h + iy) * g.in_w + ix) * c;
                        for (d, &v) in dst.zip(&input[at..at + c]) {
                            *d = v;
                        }
                    }
                    _ => dst.for_each(|d| *d = 0.0),
                }
                kbase += c;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::kernels::cpu::{Isa, available_isas, with_isa};
    use crate::exec::kernels::test_util::{Rng, assert_close};

    #[allow(clippy::too_many_arguments)]
    fn params(
        batch: usize,
        in_hw: (usize, usize),
        in_c: usize,
        out_c: usize,
        k: (usize, usize),
        stride: usize,
        dilation: usize,
        pad: (usize, usize),
        act: (f32, f32),
    ) -> ConvParams {
        let out = |i: usize, kk: usize, pd: usize| {
            let eff = (kk - 1) * dilation + 1;
            (i + 2 * pd).saturating_sub(eff) / stride + 1
        };
        ConvParams {
            geom: Geometry {
                batch,
                in_h: in_hw.0,
                in_w: in_hw.1,
                in_c,
                out_h: out(in_hw.0, k.0, pad.0),
                out_w: out(in_hw.1, k.1, pad.1),
                out_c,
                k_h: k.0,
                k_w: k.1,
                stride_h: stride,
                stride_w: stride,
                dilation_h: dilation,
                dilation_w: dilation,
                pad_top: pad.0,
                pad_left: pad.1,
                depth_multiplier: 1,
            },
            act_min: act.0,
            act_max: act.1,
        }
    }

    fn check_shape(p: &ConvParams, seed: u64) {
        let mut rng = Rng::new(seed);
        let input = rng.f32s(p.input_len());
        let filter = rng.f32s(p.filter_len());
        let bias = rng.f32s(p.geom.out_c);
        p.check(input.len(), filter.len(), Some(bias.len()), p.output_len())
            .unwrap();
        for with_bias in [true, false] {
            let bias = with_bias.then_some(bias.as_slice());
            let mut want = vec![0.0; p.output_len()];
            conv2d_reference(p, &input, &filter, bias, &mut want);
            let packed = PackedConv2D::new(p, &filter, bias);
            for isa in available_isas() {
                for threads in [1, 2] {
                    let mut got = vec![f32::NAN; p.output_len()];
                    // Split even the small shapes, so that every split path runs.
                    with_isa(isa, || {
                        crate::exec::parallel::split_everything(|| {
                            packed.run(&input, &mut got, Parallelism { threads })
                        })
                    });
                    assert_close(&got, &want, p.k(), &format!("{isa:?} t{threads} {p:?}"));
                }
            }
        }
    }

    const NONE: (f32, f32) = (f32::NEG_INFINITY, f32::INFINITY);

    #[test]
    fn pointwise_matches_reference() {
        check_shape(&params(1, (7, 9), 24, 37, (1, 1), 1, 1, (0, 0), NONE), 1);
        check_shape(
            &params(2, (5, 5), 17, 16, (1, 1), 1, 1, (0, 0), (0.0, 6.0)),
            2,
        );
        check_shape(
            &params(1, (13, 3), 40, 33, (1, 1), 1, 1, (0, 0), (-0.5, 0.5)),
            3,
        );
        check_shape(&params(1, (1, 1), 3, 1, (1, 1), 1, 1, (0, 0), NONE), 4);
        check_shape(
            &params(1, (11, 11), 64, 70, (1, 1), 1, 1, (0, 0), (0.0, 6.0)),
            5,
        );
        // 1×1 stride 2 goes through im2col.
        check_shape(&params(1, (9, 8), 19, 21, (1, 1), 2, 1, (0, 0), NONE), 6);
    }

    #[test]
    fn spatial_matches_reference() {
        let cases = [
            params(1, (12, 12), 3, 32, (3, 3), 2, 1, (1, 1), (0.0, 6.0)),
            params(1, (9, 7), 5, 19, (3, 3), 1, 1, (1, 1), NONE),
            params(2, (8, 8), 16, 33, (3, 3), 1, 2, (2, 2), NONE),
            params(1, (10, 9), 7, 13, (1, 7), 1, 1, (0, 3), (-1.0, 1.0)),
            params(1, (9, 10), 7, 13, (7, 1), 1, 1, (3, 0), (0.0, 6.0)),
            params(1, (11, 11), 6, 20, (5, 5), 2, 1, (2, 2), NONE),
            params(1, (6, 6), 4, 9, (3, 3), 2, 1, (0, 0), NONE),
            params(1, (7, 5), 33, 48, (3, 3), 1, 1, (1, 1), (0.0, 6.0)),
            // Several im2col blocks (threads split them).
            params(1, (20, 20), 40, 17, (3, 3), 1, 1, (1, 1), (0.0, 6.0)),
            params(1, (23, 21), 30, 24, (3, 3), 2, 2, (2, 2), NONE),
            // Few channels (runs of at most 16 floats, the AVX-512 im2col): batches,
            // several blocks, dilation (runs of one tap), image borders.
            params(2, (13, 11), 3, 10, (3, 3), 2, 1, (1, 1), NONE),
            params(1, (70, 70), 3, 8, (3, 3), 1, 1, (1, 1), (0.0, 6.0)),
            params(1, (9, 9), 2, 5, (3, 3), 1, 2, (2, 2), NONE),
        ];
        for (i, p) in cases.iter().enumerate() {
            check_shape(p, 100 + i as u64);
        }
    }

    #[test]
    fn asymmetric_padding_and_bad_params() {
        // SAME padding on an even input with stride 2 pads only at the bottom/right.
        let mut p = params(1, (8, 8), 3, 8, (3, 3), 2, 1, (0, 0), NONE);
        p.geom.out_h = 4;
        p.geom.out_w = 4;
        check_shape(&p, 7);
        assert!(p.check(1, 2, None, 3).is_err());
        let mut z = p;
        z.geom.k_w = 0;
        assert!(
            z.check(z.input_len(), z.filter_len(), None, z.output_len())
                .is_err()
        );
        let mut q = p;
        q.geom.stride_h = 0;
        assert!(
            q.check(q.input_len(), q.filter_len(), None, q.output_len())
                .is_err()
        );
        assert!(
            p.check(p.input_len(), p.filter_len(), Some(3), p.output_len())
                .is_err()
        );
    }

    #[test]
    fn degenerate_shapes_do_not_panic() {
        // Zero input depth: output is clamp(bias); zero pixels: nothing to do.
        let mut p = params(1, (3, 3), 1, 5, (3, 3), 1, 1, (1, 1), (0.0, 6.0));
        p.geom.in_c = 0;
        let bias = [1.0, -1.0, 7.0, 0.5, 2.0];
        let packed = PackedConv2D::new(&p, &[], Some(&bias));
        let mut out = vec![f32::NAN; p.output_len()];
        packed.run(&[], &mut out, Parallelism::SINGLE);
        assert_eq!(&out[..5], &[1.0, 0.0, 6.0, 0.5, 2.0]);
        let mut q = params(1, (3, 3), 2, 5, (3, 3), 1, 1, (1, 1), NONE);
        q.geom.out_h = 0;
        let packed = PackedConv2D::new(&q, &vec![0.0; q.filter_len()], None);
        packed.run(
            &vec![0.0; q.input_len()],
            &mut [],
            Parallelism { threads: 2 },
        );
    }

    #[test]
    fn forced_isa_is_capped_to_cpu() {
        let p = params(1, (4, 4), 8, 8, (1, 1), 1, 1, (0, 0), NONE);
        let mut rng = Rng::new(9);
        let (input, filter) = (rng.f32s(p.input_len()), rng.f32s(p.filter_len()));
        let packed = PackedConv2D::new(&p, &filter, None);
        let mut a = vec![0.0; p.output_len()];
        let mut b = vec![0.0; p.output_len()];
        packed.run_isa(Isa::Avx512, &input, &mut a, Parallelism::SINGLE);
        conv2d_reference(&p, &input, &filter, None, &mut b);
        assert_close(&a, &b, p.k(), "capped");
    }
}

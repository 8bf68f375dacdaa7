//! Packed (fast) integer conv, depthwise and FC kernels.
//!
//! - 8-bit conv/FC: [`Gemm8`] over input rows (1×1 stride-1 convs and FC read the input
//!   directly; other convs gather one im2col row per output pixel, padding taps filled
//!   with the input zero point, which contributes exactly 0 like a skipped tap).
//! - int16x8 conv/FC: with AVX2/AVX-512 the panel GEMM of [`super::wide`] (`vpmaddwd`
//!   / `vpdpwssd`, int32 blocks widened to int64, SIMD 64-bit requantization);
//!   portable: 16-bit dot products accumulated in int32 over blocks of 256
//!   (|x·w| ≤ 2^22, so a block cannot overflow) and widened to int64 between blocks.
//! - depthwise: per output pixel, channel-vectorized multiply-adds over the taps
//!   (int16x8 too: int32 tap sums are exact for up to 256 taps).
//!
//! The plain-Rust loops are compiled three times (baseline, AVX2, AVX-512) and chosen
//! at run time; the ISA is read once when the kernel is packed.

use super::dw8::Dw8;
use super::dw16::Dw16;
use super::gemm::{Gemm8, Window};
use super::requant::Requant;
use super::wide::{self, Requant64, WidePacked};
use super::{QConvGeom, QElem, QFcGeom, QParams, QScheme};
use crate::error::{EngineError, Result};
use crate::exec::kernels::Parallelism;
use crate::exec::kernels::cpu::{self, Isa};
use crate::exec::parallel;
use crate::quant::fixed_point::{Multiplier, mbqm64};

/// Generates AVX2 and AVX-512 copies of a plain `#[inline(always)]` function.
macro_rules! multiversion {
    ($name:ident, $avx2:ident, $avx512:ident, <$($g:ident : $b:path),*> ($($arg:ident : $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $avx2<$($g: $b),*>($($arg: $ty),*) {
            $name($($arg),*)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
        fn $avx512<$($g: $b),*>($($arg: $ty),*) {
            $name($($arg),*)
        }
    };
}

/// Calls the copy of a multiversioned function matching `isa`.
macro_rules! dispatch {
    ($isa:expr, $name:ident, $avx2:ident, $avx512:ident, ($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `isa` was clamped to the detected CPU features when packing.
            match $isa {
                Isa::Avx512 => unsafe { $avx512($($arg),*) },
                Isa::Avx2 => unsafe { $avx2($($arg),*) },
                Isa::Portable => $name($($arg),*),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $name($($arg),*)
        }
    }};
}

fn isa_now() -> Isa {
    let isa = cpu::clamp_to_detected(cpu::selected_isa());
    // The AVX-512 copies also use avx512bw.
    if isa == Isa::Avx512 && !cpu::features().avx512bw {
        Isa::Avx2
    } else {
        isa
    }
}

/// int16x8 GEMM: exact int64 sums. With AVX2/AVX-512 the weights are packed for
/// [`wide`]'s tiles; otherwise `[n][kp]` as int16 for plain dot products.
struct Wide {
    isa: Isa,
    k: usize,
    kp: usize,
    n: usize,
    w: Vec<i16>,
    simd: Option<WidePacked>,
    rq: Requant64,
    bias: Vec<i64>,
    mult: Vec<Multiplier>,
    act_min: i32,
    act_max: i32,
}

const WIDE_BLOCK: usize = 256;

#[inline(always)]
fn dot16(a: &[i16], b: &[i16]) -> i64 {
    let mut t = 0i64;
    for (ca, cb) in a.chunks(WIDE_BLOCK).zip(b.chunks(WIDE_BLOCK)) {
        let s: i32 = ca.iter().zip(cb).map(|(&x, &y)| x as i32 * y as i32).sum();
        t += s as i64;
    }
    t
}

#[inline(always)]
fn wide_row<T: QElem>(wd: &Wide, a: &[i16], out: &mut [T]) {
    for (c, o) in out.iter_mut().enumerate() {
        let acc = dot16(a, &wd.w[c * wd.kp..(c + 1) * wd.kp]);
        let v = mbqm64(acc.wrapping_add(wd.bias[c]), wd.mult[c]);
        *o = T::from_i32(v.clamp(wd.act_min, wd.act_max));
    }
}
multiversion!(wide_row, wide_row_avx2, wide_row_avx512, <T: QElem>(wd: &Wide, a: &[i16], out: &mut [T]));

impl Wide {
    fn new(
        n: usize,
        k: usize,
        w: impl Fn(usize, usize) -> i32,
        bias: Option<&[i64]>,
        q: &QParams,
    ) -> Self {
        let kp = k.next_multiple_of(16);
        let isa = isa_now();
        let simd = (isa != Isa::Portable).then(|| WidePacked::new(n, k, &w));
        let mut wv = Vec::new();
        if simd.is_none() {
            wv = vec![0i16; n * kp];
            for c in 0..n {
                for kk in 0..k {
                    wv[c * kp + kk] = w(c, kk) as i16;
                }
            }
        }
        let bias: Vec<i64> = (0..n).map(|c| bias.map_or(0, |b| b[c])).collect();
        Wide {
            isa,
            k,
            kp,
            n,
            w: wv,
            simd,
            rq: Requant64::new(isa, bias.clone(), &q.mult, q.act_min, q.act_max),
            bias,
            mult: q.mult.clone(),
            act_min: q.act_min,
            act_max: q.act_max,
        }
    }

    fn run<T: QElem>(
        &self,
        m: usize,
        fill: &(dyn Fn(usize, &mut [T]) + Sync),
        out: &mut [T],
        par: Parallelism,
    ) {
        let n = self.n;
        assert_eq!(out.len(), m * n, "int16 gemm output size");
        if n == 0 {
            return;
        }
        if let Some(sp) = &self.simd {
            return self.run_tiles(sp, fill, out, par);
        }
        let row = |x: &mut Vec<T>, a: &mut Vec<i16>, r: usize, o: &mut [T]| {
            fill(r, x);
            for (d, v) in a.iter_mut().zip(x.iter()) {
                *d = v.to_i32() as i16;
            }
            dispatch!(
                self.isa,
                wide_row,
                wide_row_avx2,
                wide_row_avx512,
                (self, a, o)
            );
        };
        let macs = m * n * self.k;
        let tasks = parallel::task_count(par, m, macs / parallel::GEMV_MACS_PER_NS);
        let per_task = m.div_ceil(tasks);
        parallel::for_each_chunk_mut(par, out, per_task * n, &|ci, chunk| {
            let (mut x, mut a) = (vec![T::from_i32(0); self.k], vec![0i16; self.kp]);
            for (r, o) in chunk.chunks_mut(n).enumerate() {
                row(&mut x, &mut a, ci * per_task + r, o);
            }
        });
    }
}

impl Wide {
    /// The SIMD path: `wide::ROWS` output rows per tile.
    fn run_tiles<T: QElem>(
        &self,
        sp: &WidePacked,
        fill: &(dyn Fn(usize, &mut [T]) + Sync),
        out: &mut [T],
        par: Parallelism,
    ) {
        let (n, pairs) = (self.n, sp.pairs);
        let nc = sp.panels * wide::PANEL;
        let tile = |x: &mut Vec<T>, a: &mut Vec<i32>, acc: &mut Vec<i64>, t: usize, o: &mut [T]| {
            let rows = o.len() / n;
            for r in 0..wide::ROWS {
                let ar = &mut a[r * pairs..(r + 1) * pairs];
                if r < rows {
                    fill(t * wide::ROWS + r, x);
                    // Whole pairs in a loop the compiler vectorizes; an odd last value
                    // pairs with 0.
                    let mut it = x.chunks_exact(2);
                    for (d, p) in ar.iter_mut().zip(&mut it) {
                        *d = wide::pair(p[0].to_i32() as i16, p[1].to_i32() as i16);
                    }
                    if let [last] = it.remainder() {
                        ar[pairs - 1] = wide::pair(last.to_i32() as i16, 0);
                    }
                } else {
                    ar.fill(0);
                }
            }
            sp.tile_requant(self.isa, a, acc, &self.rq, o, rows);
        };
        let init = || {
            (
                vec![T::from_i32(0); self.k],
                vec![0i32; wide::ROWS * pairs],
                vec![0i64; wide::ROWS * nc],
            )
        };
        // Whole tiles per task, on the engine's pool; scratch once per task.
        let m = out.len() / n;
        let tiles = m.div_ceil(wide::ROWS);
        let macs = m * n * self.k;
        let tasks = parallel::task_count(par, tiles, macs / parallel::GEMM_MACS_PER_NS);
        let per_task = tiles.div_ceil(tasks.max(1));
        parallel::for_each_chunk_mut(par, out, per_task * wide::ROWS * n, &|ci, chunk| {
            let (mut x, mut a, mut acc) = init();
            for (j, o) in chunk.chunks_mut(wide::ROWS * n).enumerate() {
                tile(&mut x, &mut a, &mut acc, ci * per_task + j, o);
            }
        });
    }
}

enum Engine {
    Narrow(Gemm8),
    Wide(Wide),
}

impl Engine {
    fn new(
        n: usize,
        k: usize,
        w: impl Fn(usize, usize) -> i32,
        bias: Option<&[i64]>,
        q: &QParams,
    ) -> Self {
        match q.scheme {
            QScheme::Int16x8 => Engine::Wide(Wide::new(n, k, w, bias, q)),
            QScheme::Int8 | QScheme::Uint8 => {
                let (a_bias, b_bias) = if q.scheme == QScheme::Int8 {
                    (128, 0)
                } else {
                    (0, -128)
                };
                let rq = Requant::new(&q.mult, q.out_zp, q.act_min, q.act_max, q.rounding);
                Engine::Narrow(Gemm8::new(
                    n, k, w, -q.in_zp, -q.w_zp, a_bias, b_bias, bias, rq,
                ))
            }
        }
    }

    fn run<T: QElem>(
        &self,
        m: usize,
        direct: Option<&[T]>,
        window: Option<&Window<'_>>,
        fill: &(dyn Fn(usize, &mut [T]) + Sync),
        out: &mut [T],
        par: Parallelism,
    ) {
        match self {
            Engine::Narrow(g) => g.run(m, direct, window, fill, out, par),
            Engine::Wide(w) => w.run(m, fill, out, par),
        }
    }

    fn packed_bytes(&self) -> usize {
        match self {
            Engine::Narrow(g) => g.packed_bytes(),
            Engine::Wide(w) => w.w.len() * 2 + w.simd.as_ref().map_or(0, |p| p.packed_bytes()),
        }
    }
}

fn check_bias(bias: Option<&[i64]>, n: usize) -> Result<()> {
    match bias {
        Some(b) if b.len() != n => Err(EngineError::invalid(format!(
            "bias has {} values for {n} channels",
            b.len()
        ))),
        _ => Ok(()),
    }
}

/// Integer CONV_2D with weights packed at construction.
pub struct PackedQConv {
    g: QConvGeom,
    in_zp: i32,
    engine: Engine,
}

impl PackedQConv {
    pub fn new<W: QElem>(
        g: &QConvGeom,
        q: &QParams,
        filter: &[W],
        bias: Option<&[i64]>,
    ) -> Result<Self> {
        g.check(false)?;
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
        let engine = Engine::new(g.out_c, k, |c, kk| filter[c * k + kk].to_i32(), bias, q);
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
            in_h: g.in_h,
            in_w: g.in_w,
            c: g.in_c,
            out_h: g.out_h,
            out_w: g.out_w,
            k_h: g.k_h,
            k_w: g.k_w,
            stride_h: g.stride_h,
            stride_w: g.stride_w,
            pad_top: g.pad_top,
            pad_left: g.pad_left,
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

/// Integer FULLY_CONNECTED with weights packed at construction.
pub struct PackedQFc {
    g: QFcGeom,
    engine: Engine,
}

impl PackedQFc {
    pub fn new<W: QElem>(
        g: &QFcGeom,
        q: &QParams,
        weights: &[W],
        bias: Option<&[i64]>,
    ) -> Result<Self> {
        q.check(g.units)?;
        check_bias(bias, g.units)?;
        if weights.len() != g.units * g.depth {
            return Err(EngineError::invalid(format!(
                "FC weights have {} values, shape needs {}",
                weights.len(),
                g.units * g.depth
            )));
        }
        let d = g.depth;
        let engine = Engine::new(g.units, d, |c, kk| weights[c * d + kk].to_i32(), bias, q);
        Ok(PackedQFc { g: *g, engine })
    }

    pub fn packed_bytes(&self) -> usize {
        self.engine.packed_bytes()
    }

    pub fn run<T: QElem>(&self, input: &[T], out: &mut [T], par: Parallelism) {
        let d = self.g.depth;
        assert_eq!(input.len(), self.g.rows * d, "FC input size");
        let fill = |row: usize, buf: &mut [T]| buf.copy_from_slice(&input[row * d..(row + 1) * d]);
        self.engine
            .run(self.g.rows, Some(input), None, &fill, out, par);
    }
}

/// Integer DEPTHWISE_CONV_2D with weights packed (offset applied, widened) at construction.
pub struct PackedQDepthwise {
    g: QConvGeom,
    isa: Isa,
    wide: bool,
    in_offset: i32,
    /// `[tap][out_c]`, `w + w_offset`.
    w: Vec<i32>,
    bias32: Vec<i32>,
    bias64: Vec<i64>,
    rq: Requant,
    rq64: Requant64,
    mult: Vec<Multiplier>,
    act_min: i32,
    act_max: i32,
    /// The VNNI path for 8-bit, multiplier-1 ops when the CPU has it.
    dw8: Option<Box<Dw8>>,
    /// The AVX-512 path for int16x8, multiplier-1 ops.
    dw16: Option<Box<Dw16>>,
}

struct DwRow<'a, T> {
    k: &'a PackedQDepthwise,
    input: &'a [T],
    /// Flattened (batch, oy).
    row: usize,
}

#[inline(always)]
fn dw_row<T: QElem>(
    r: &DwRow<'_, T>,
    acc: &mut [i32],
    acc64: &mut [i64],
    xe: &mut [i32],
    out: &mut [T],
) {
    let k = r.k;
    let g = &k.g;
    let (oc, mult) = (g.out_c, g.depth_multiplier);
    let oy = r.row % g.out_h;
    let b = r.row / g.out_h;
    for ox in 0..g.out_w {
        acc.fill(0);
        acc64.fill(0);
        for ky in 0..g.k_h {
            let iy = (oy * g.stride_h + ky * g.dilation_h) as isize - g.pad_top as isize;
            if iy < 0 || iy >= g.in_h as isize {
                continue;
            }
            for kx in 0..g.k_w {
                let ix = (ox * g.stride_w + kx * g.dilation_w) as isize - g.pad_left as isize;
                if ix < 0 || ix >= g.in_w as isize {
                    continue;
                }
                let s = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c;
                let x = &r.input[s..s + g.in_c];
                let w = &k.w[(ky * g.k_w + kx) * oc..(ky * g.k_w + kx + 1) * oc];
                if mult == 1 {
                    if k.wide {
                        for ((a, &xv), &wv) in acc64.iter_mut().zip(x).zip(w) {
                            *a += (xv.to_i32() * wv) as i64;
                        }
                    } else {
                        for ((a, &xv), &wv) in acc.iter_mut().zip(x).zip(w) {
                            *a = a.wrapping_add((xv.to_i32() + k.in_offset) * wv);
                        }
                    }
                } else {
                    for (c, e) in xe.iter_mut().enumerate() {
                        *e = x[c / mult].to_i32() + k.in_offset;
                    }
                    if k.wide {
                        for ((a, &xv), &wv) in acc64.iter_mut().zip(xe.iter()).zip(w) {
                            *a += (xv * wv) as i64;
                        }
                    } else {
                        for ((a, &xv), &wv) in acc.iter_mut().zip(xe.iter()).zip(w) {
                            *a = a.wrapping_add(xv * wv);
                        }
                    }
                }
            }
        }
        let o = &mut out[ox * oc..(ox + 1) * oc];
        if k.wide {
            for (c, (ov, &a)) in o.iter_mut().zip(acc64.iter()).enumerate() {
                let v = mbqm64(a.wrapping_add(k.bias64[c]), k.mult[c]);
                *ov = T::from_i32(v.clamp(k.act_min, k.act_max));
            }
        } else {
            k.rq.row(k.isa, 0, acc, &k.bias32, 0, o);
        }
    }
}
/// 8-bit depthwise with multiplier 1: per output pixel, gather the valid taps, sum all
/// channels (SIMD blocks of 16/8 channels kept in registers across the taps), then
/// requantize the pixel's channels at once.
fn dw_row8<T: QElem>(
    r: &DwRow<'_, T>,
    taps: &mut Vec<(usize, usize)>,
    tile: &mut [i32],
    out: &mut [T],
) {
    let k = r.k;
    let g = &k.g;
    let c = g.out_c;
    let oy = r.row % g.out_h;
    let b = r.row / g.out_h;
    let tile = &mut tile[..c];
    for ox in 0..g.out_w {
        taps.clear();
        for ky in 0..g.k_h {
            let iy = (oy * g.stride_h + ky * g.dilation_h) as isize - g.pad_top as isize;
            if iy < 0 || iy >= g.in_h as isize {
                continue;
            }
            for kx in 0..g.k_w {
                let ix = (ox * g.stride_w + kx * g.dilation_w) as isize - g.pad_left as isize;
                if ix < 0 || ix >= g.in_w as isize {
                    continue;
                }
                let s = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c;
                taps.push((s, (ky * g.k_w + kx) * c));
            }
        }
        let done = dw_pixel_simd(k.isa, r.input, &k.w, taps, k.in_offset, tile);
        for (ch, a) in tile.iter_mut().enumerate().skip(done) {
            *a = taps.iter().fold(0i32, |s, &(xs, ws)| {
                s.wrapping_add((r.input[xs + ch].to_i32() + k.in_offset) * k.w[ws + ch])
            });
        }
        k.rq.row(k.isa, 0, tile, &k.bias32, 0, &mut out[ox * c..(ox + 1) * c]);
    }
}

/// int16x8 depthwise with multiplier 1 and at most [`DW16_MAX_TAPS`] taps: like
/// [`dw_row8`], the taps of a pixel summed in int32 (exact: |x·w| ≤ 2^22), then widened
/// for the 64-bit requantization.
fn dw_row16<T: QElem>(
    r: &DwRow<'_, T>,
    taps: &mut Vec<(usize, usize)>,
    tile: &mut [i32],
    wide: &mut [i64],
    out: &mut [T],
) {
    let k = r.k;
    let g = &k.g;
    let c = g.out_c;
    let oy = r.row % g.out_h;
    let b = r.row / g.out_h;
    let tile = &mut tile[..c];
    for ox in 0..g.out_w {
        taps.clear();
        for ky in 0..g.k_h {
            let iy = (oy * g.stride_h + ky * g.dilation_h) as isize - g.pad_top as isize;
            if iy < 0 || iy >= g.in_h as isize {
                continue;
            }
            for kx in 0..g.k_w {
                let ix = (ox * g.stride_w + kx * g.dilation_w) as isize - g.pad_left as isize;
                if ix < 0 || ix >= g.in_w as isize {
                    continue;
                }
                let s = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c;
                taps.push((s, (ky * g.k_w + kx) * c));
            }
        }
        let done = dw_pixel_simd16(k.isa, r.input, &k.w, taps, tile);
        for (ch, a) in tile.iter_mut().enumerate().skip(done) {
            *a = taps.iter().fold(0i32, |s, &(xs, ws)| {
                s.wrapping_add(r.input[xs + ch].to_i32() * k.w[ws + ch])
            });
        }
        for (d, &a) in wide.iter_mut().zip(tile.iter()) {
            *d = a as i64;
        }
        k.rq64.row(&wide[..c], &mut out[ox * c..(ox + 1) * c]);
    }
}

/// Most taps whose int16 × int8 products an int32 sum holds exactly (256 · 2^22 = 2^30).
const DW16_MAX_TAPS: usize = 256;

/// [`dw_pixel_simd`] for int16 inputs (input zero point 0); does nothing for others.
fn dw_pixel_simd16<T: QElem>(
    isa: Isa,
    input: &[T],
    w: &[i32],
    taps: &[(usize, usize)],
    tile: &mut [i32],
) -> usize {
    if std::mem::size_of::<T>() != 2 || !T::SIGNED {
        return 0;
    }
    let c = tile.len();
    for &(xs, ws) in taps {
        assert!(
            xs + c <= input.len() && ws + c <= w.len(),
            "depthwise tap in bounds"
        );
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the ISA was clamped to the CPU's features; taps are in bounds (above)
        // and T is a signed 16-bit integer.
        unsafe {
            match isa {
                // AVX-512 machines take `Dw16` (every AVX-512BW CPU also has DQ);
                // this serves AVX2 and would serve an AVX-512 CPU without DQ.
                Isa::Avx512 | Isa::Avx2 => return x86dw::pixel16_avx2(input, w, taps, tile),
                Isa::Portable => {}
            }
        }
    }
    let _ = isa;
    0
}

/// Sums the leading channels of one pixel with SIMD; returns how many it did.
fn dw_pixel_simd<T: QElem>(
    isa: Isa,
    input: &[T],
    w: &[i32],
    taps: &[(usize, usize)],
    io: i32,
    tile: &mut [i32],
) -> usize {
    if std::mem::size_of::<T>() != 1 {
        return 0;
    }
    let c = tile.len();
    for &(xs, ws) in taps {
        assert!(
            xs + c <= input.len() && ws + c <= w.len(),
            "depthwise tap in bounds"
        );
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the ISA was clamped to the CPU's features; taps are in bounds (above)
        // and T is one byte wide.
        unsafe {
            match isa {
                Isa::Avx512 => return x86dw::pixel_avx512(input, w, taps, io, tile),
                Isa::Avx2 => return x86dw::pixel_avx2(input, w, taps, io, tile),
                Isa::Portable => {}
            }
        }
    }
    let _ = (isa, io);
    0
}

#[cfg(target_arch = "x86_64")]
mod x86dw {
    use super::QElem;
    use std::arch::x86_64::*;

    /// Caller guarantees `T` is one byte and every tap reads `tile.len()` channels in
    /// bounds of `input` and `w`.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn pixel_avx512<T: QElem>(
        input: &[T],
        w: &[i32],
        taps: &[(usize, usize)],
        io: i32,
        tile: &mut [i32],
    ) -> usize {
        let n = tile.len() / 16 * 16;
        let vio = _mm512_set1_epi32(io);
        let (xp, wp) = (input.as_ptr().cast::<u8>(), w.as_ptr());
        let mut c0 = 0;
        while c0 < n {
            let mut acc = _mm512_setzero_si512();
            for &(xs, ws) in taps {
                // SAFETY: in bounds per the caller's contract.
                unsafe {
                    let xb = _mm_loadu_si128(xp.add(xs + c0).cast());
                    let x = if T::SIGNED {
                        _mm512_cvtepi8_epi32(xb)
                    } else {
                        _mm512_cvtepu8_epi32(xb)
                    };
                    let wv = _mm512_loadu_si512(wp.add(ws + c0).cast());
                    acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_add_epi32(x, vio), wv));
                }
            }
            // SAFETY: c0 + 16 <= tile.len().
            unsafe { _mm512_storeu_si512(tile.as_mut_ptr().add(c0).cast(), acc) };
            c0 += 16;
        }
        n
    }

    /// Caller guarantees `T` is i16 and every tap reads `tile.len()` channels in bounds.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn pixel16_avx2<T: QElem>(
        input: &[T],
        w: &[i32],
        taps: &[(usize, usize)],
        tile: &mut [i32],
    ) -> usize {
        let n = tile.len() / 8 * 8;
        let (xp, wp) = (input.as_ptr().cast::<i16>(), w.as_ptr());
        let mut c0 = 0;
        while c0 < n {
            let mut acc = _mm256_setzero_si256();
            for &(xs, ws) in taps {
                // SAFETY: in bounds per the caller's contract.
                unsafe {
                    let x = _mm256_cvtepi16_epi32(_mm_loadu_si128(xp.add(xs + c0).cast()));
                    let wv = _mm256_loadu_si256(wp.add(ws + c0).cast());
                    acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(x, wv));
                }
            }
            // SAFETY: c0 + 8 <= tile.len().
            unsafe { _mm256_storeu_si256(tile.as_mut_ptr().add(c0).cast(), acc) };
            c0 += 8;
        }
        n
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn pixel_avx2<T: QElem>(
        input: &[T],
        w: &[i32],
        taps: &[(usize, usize)],
        io: i32,
        tile: &mut [i32],
    ) -> usize {
        let n = tile.len() / 8 * 8;
        let vio = _mm256_set1_epi32(io);
        let (xp, wp) = (input.as_ptr().cast::<u8>(), w.as_ptr());
        let mut c0 = 0;
        while c0 < n {
            let mut acc = _mm256_setzero_si256();
            for &(xs, ws) in taps {
                // SAFETY: in bounds per the caller's contract.
                unsafe {
                    let xb = _mm_loadl_epi64(xp.add(xs + c0).cast());
                    let x = if T::SIGNED {
                        _mm256_cvtepi8_epi32(xb)
                    } else {
                        _mm256_cvtepu8_epi32(xb)
                    };
                    let wv = _mm256_loadu_si256(wp.add(ws + c0).cast());
                    acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_add_epi32(x, vio), wv));
                }
            }
            // SAFETY: c0 + 8 <= tile.len().
            unsafe { _mm256_storeu_si256(tile.as_mut_ptr().add(c0).cast(), acc) };
            c0 += 8;
        }
        n
    }
}

multiversion!(dw_row, dw_row_avx2, dw_row_avx512, <T: QElem>(r: &DwRow<'_, T>, acc: &mut [i32], acc64: &mut [i64], xe: &mut [i32], out: &mut [T]));

impl PackedQDepthwise {
    pub fn new<W: QElem>(
        g: &QConvGeom,
        q: &QParams,
        filter: &[W],
        bias: Option<&[i64]>,
    ) -> Result<Self> {
        g.check(true)?;
        q.check(g.out_c)?;
        check_bias(bias, g.out_c)?;
        if filter.len() != g.depthwise_filter_len() {
            return Err(EngineError::invalid(format!(
                "depthwise filter has {} values, shape needs {}",
                filter.len(),
                g.depthwise_filter_len()
            )));
        }
        let wo = -q.w_zp;
        let n = g.out_c;
        let bias64: Vec<i64> = (0..n).map(|c| bias.map_or(0, |b| b[c])).collect();
        let mut bias32: Vec<i32> = bias64.iter().map(|&b| b as i32).collect();
        bias32.resize(n.next_multiple_of(16), 0);
        let isa = isa_now();
        let dw8 = Dw8::new(g, q, filter, bias, isa == Isa::Avx512).map(Box::new);
        let rq64 = Requant64::new(isa, bias64.clone(), &q.mult, q.act_min, q.act_max);
        let dw16 = Dw16::new(g, q, filter, &rq64, isa == Isa::Avx512).map(Box::new);
        Ok(PackedQDepthwise {
            g: *g,
            isa,
            wide: q.scheme.wide(),
            in_offset: -q.in_zp,
            w: filter.iter().map(|w| w.to_i32() + wo).collect(),
            bias32,
            rq64,
            bias64,
            rq: Requant::new(&q.mult, q.out_zp, q.act_min, q.act_max, q.rounding),
            mult: q.mult.clone(),
            act_min: q.act_min,
            act_max: q.act_max,
            dw8,
            dw16,
        })
    }

    pub fn packed_bytes(&self) -> usize {
        self.w.len() * 4
    }

    /// Whether the int16 AVX-512 path runs (for tests).
    pub fn uses_dw16(&self) -> bool {
        self.dw16.is_some()
    }

    /// Whether the VNNI path runs (tests check both paths are covered).
    pub fn uses_vnni(&self) -> bool {
        self.dw8.is_some()
    }

    /// Whether the VNNI column path computes 3×3 stride-1 rows in pairs (for tests).
    pub fn uses_row_pairs(&self) -> bool {
        self.dw8.as_ref().is_some_and(|d| d.uses_row_pairs())
    }

    /// Whether the VNNI column path takes the cheaper exact requantization (for tests).
    pub fn uses_fast_requant(&self) -> bool {
        self.dw8.as_ref().is_some_and(|d| d.uses_fast_requant())
    }

    pub fn run<T: QElem>(&self, input: &[T], out: &mut [T], par: Parallelism) {
        let g = &self.g;
        assert_eq!(input.len(), g.input_len(), "depthwise input size");
        assert_eq!(out.len(), g.output_len(), "depthwise output size");
        let row_len = g.out_w * g.out_c;
        if row_len == 0 {
            return;
        }
        let rows = g.batch * g.out_h;
        let macs = g.output_len() * g.k_h * g.k_w;
        let tasks = parallel::task_count(par, rows, macs / parallel::DEPTHWISE_MACS_PER_NS);
        let per_task = rows.div_ceil(tasks);
        if let Some(d) = &self.dw8 {
            parallel::for_each_chunk_mut(par, out, per_task * row_len, &|ci, o| {
                d.rows(&self.rq, ci * per_task, input, o)
            });
            return;
        }
        if let Some(d) = &self.dw16 {
            parallel::for_each_chunk_mut(par, out, per_task * row_len, &|ci, o| {
                d.rows(ci * per_task, input, o)
            });
            return;
        }
        let n = g.out_c.next_multiple_of(16);
        let simple = !self.wide && g.depth_multiplier == 1;
        // int16 input with few enough taps for exact int32 sums.
        let wide16 = self.wide && g.depth_multiplier == 1 && g.k_h * g.k_w <= DW16_MAX_TAPS;
        type Scratch = (Vec<i32>, Vec<i64>, Vec<i32>, Vec<(usize, usize)>);
        let init = || -> Scratch {
            (
                vec![0i32; n],
                vec![0i64; g.out_c],
                vec![0i32; g.out_c],
                Vec::with_capacity(g.k_h * g.k_w),
            )
        };
        let one = |(acc, acc64, xe, taps): &mut Scratch, row: usize, o: &mut [T]| {
            let r = DwRow {
                k: self,
                input,
                row,
            };
            if simple {
                dw_row8(&r, taps, acc, o);
            } else if wide16 {
                dw_row16(&r, taps, acc, acc64, o);
            } else {
                let acc = &mut acc[..g.out_c];
                dispatch!(
                    self.isa,
                    dw_row,
                    dw_row_avx2,
                    dw_row_avx512,
                    (&r, acc, acc64, xe, o)
                );
            }
        };
        parallel::for_each_chunk_mut(par, out, per_task * row_len, &|ci, chunk| {
            let mut s = init();
            for (r, o) in chunk.chunks_mut(row_len).enumerate() {
                one(&mut s, ci * per_task + r, o);
            }
        });
    }
}

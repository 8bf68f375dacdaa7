//! The 8-bit GEMM behind integer conv and FC: `out[m, c] = requant(Σ_k (x + io)(w + wo))`.
//!
//! Both 8-bit schemes are mapped onto unsigned × signed byte products: the input row
//! becomes `a = x + a_bias` (int8 inputs get +128, uint8 stay) and the weights
//! `b = w + b_bias` (uint8 weights get −128). With `α = io − a_bias`, `β = wo − b_bias`:
//!
//! `Σ (x + io)(w + wo) = Σ a·b + β·Σa + α·Σb + K·α·β`
//!
//! `α·Σb + K·α·β + bias` is a per-channel constant (precomputed), `β·Σa` a per-row term
//! (computed while packing the row). All sums wrap in int32 exactly like the reference,
//! so the requantized bytes are identical.
//!
//! Paths: AMX-INT8 tiles ([`super::amx`], 32 rows × 32 channels per block, where the
//! CPU and OS allow it and `k` is deep enough), AVX-512 VNNI (`vpdpbusd`, 4 rows × up
//! to 64 channels), AVX2 (`vpmaddwd` on 16-bit widened values: exact, unlike the
//! saturating `vpmaddubsw`) and portable. The AMX path multiplies int8 inputs as
//! signed bytes (`TDPBSSD`), so it maps them with `a_bias = 0` and needs no flip.

use crate::exec::kernels::Parallelism;
use crate::exec::kernels::cpu::{self, Isa};
use crate::exec::kernels::geometry::Geometry;
use crate::exec::kernels::qconv::params::QElem;
use crate::exec::kernels::qconv::requant::{Requant, fast_nudges, fast_shifts_ok};
use crate::exec::parallel;

#[cfg(target_arch = "x86_64")]
use super::amx;

/// Rows per register tile.
const MR: usize = 4;
/// Rows packed per work item (one scratch fill).
const CHUNK: usize = 32;
/// Rows per work item of the AMX path: several 32-row blocks share each weight tile
/// while it is in L1 (a chunk re-reads all weights once).
const AMX_CHUNK: usize = 64;
/// Packed weight bytes above which AMX chunks take [`AMX_CHUNK`] twice over.
const AMX_BIG_WEIGHTS: usize = 1 << 20;
/// Shallowest `k` that takes the AMX path. With one 64-deep tile step the sums' round
/// trip through memory costs more than the tiles save: ResNet v2 101's 1×1 convs with
/// k = 64 measured 0.81 ms on AMX against 0.66 ms on VNNI (fused requantization), while
/// k = 128 gave 0.72 against 0.95 ms.
const AMX_MIN_K: usize = 128;
/// Tile steps (64 bytes of `k` each) per slice of the AMX path: 32 rows of a slice
/// (16 KiB) stay in L1 while the weight panels stream from L2.
const AMX_K_BLOCK: usize = 8;
/// Channel-block pairs per group of the AMX path: the group's int32 sums (32 rows ×
/// 128 channels, 16 KiB) stay in L1 until they are requantized.
const AMX_GROUP_PAIRS: usize = 4;
/// Fewest rows that take the AMX path: a block computes 32 rows whatever the count,
/// so a few rows (an FC on one input, a conv on a 1×1 map) run faster on VNNI.
const AMX_MIN_M: usize = 16;
/// Longest rows whose sums (uint8 weights with a zero point) are added from 4-byte
/// group sums of the whole chunk; longer rows are reduced one at a time.
const QUAD_ROWS: usize = 32;

/// Packed weights in the layout of the selected path.
enum BPack {
    /// Blocks of 16 channels; per 4 k's, 16 lanes × 4 bytes.
    Vnni(Vec<i8>),
    /// Blocks of 8 channels; per 2 k's, 8 lanes × 2 int16.
    Avx2(Vec<i16>),
    /// `[n][kp]` bytes.
    Portable(Vec<i8>),
}

/// Which path runs; `Amx` and `Vnni` imply the AVX-512 requantization too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// AMX tiles; weights in the `Vnni` layout with `kp` a multiple of 64 and the
    /// channels padded to pairs of 16-channel blocks.
    Amx,
    Vnni,
    Avx2,
    Portable,
}

pub(crate) struct Gemm8 {
    path: Path,
    isa: Isa,
    k: usize,
    kp: usize,
    n: usize,
    b: BPack,
    col: Vec<i32>,
    beta: i32,
    a_bias: i32,
    rq: Requant,
    /// VNNI path with the requantization fused into the register tile (double
    /// rounding, multipliers ≥ 0).
    fused: bool,
    /// Constants of the cheaper exact epilogue ([`x86::mk_vnni_rq32`]), when its
    /// preconditions hold (see [`Gemm8::fast_nudges`]).
    nudge: Option<Vec<i64>>,
    /// AMX path with int8 inputs: signed × signed bytes (`a_bias` 0).
    signed_a: bool,
}

/// A convolution window over one-byte NHWC input (dilation 1), for gathering im2col
/// rows straight into the packed byte rows.
pub(crate) struct Window<'a> {
    pub input: &'a [u8],
    pub geom: Geometry,
    /// The input zero point's byte, stored for taps outside the image.
    pub pad: u8,
}

/// Per-worker scratch.
struct Scratch<T> {
    x: Vec<T>,
    a8: Vec<u8>,
    a16: Vec<i16>,
    rowsum: Vec<i32>,
    /// Sums of 4-byte groups of a chunk's packed rows (the row sums of short rows).
    quads: Vec<i32>,
    /// Input row offsets of the kernel rows (`x86::gather_rows`).
    rowbase: Vec<isize>,
    tile: Vec<i32>,
    /// The AMX path's int32 sums of a chunk: 32 rows × the channels padded to 32.
    acc32: Vec<i32>,
}

impl Gemm8 {
    /// `w(c, k)` gives the raw weight value of channel `c` at depth `k`; `a_bias`,
    /// `b_bias` map input and weights to u8 × i8 (see the module comment).
    /// `m` is the number of rows a run will have (the AMX path wants whole tiles).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        m: usize,
        n: usize,
        k: usize,
        w: impl Fn(usize, usize) -> i32,
        in_offset: i32,
        w_offset: i32,
        a_bias: i32,
        b_bias: i32,
        bias: Option<&[i64]>,
        rq: Requant,
    ) -> Self {
        let isa = cpu::clamp_to_detected(cpu::selected_isa());
        let mut path = match isa {
            Isa::Avx512 if cpu::features().avx512vnni && cpu::features().avx512bw => Path::Vnni,
            Isa::Avx512 | Isa::Avx2 => Path::Avx2,
            Isa::Portable => Path::Portable,
        };
        // AMX multiplies int8 inputs as signed bytes; their row sums (needed only for
        // weights with a zero point, β ≠ 0) are left to the VNNI path.
        let signed_in = a_bias == 128;
        if path == Path::Vnni
            && cpu::features().avx512vl
            && k >= AMX_MIN_K
            && m >= AMX_MIN_M
            && !(signed_in && w_offset != 0)
            && cpu::amx_selected()
        {
            path = Path::Amx;
        }
        let signed_a = path == Path::Amx && signed_in;
        let a_bias = if signed_a { 0 } else { a_bias };
        // Requantization runs on AVX2 when the GEMM does (AVX-512 requires avx512bw here).
        let isa = match (path, isa) {
            (Path::Avx2, _) => Isa::Avx2,
            (_, i) => i,
        };
        // AMX steps through k 64 bytes (one tile) at a time.
        let kp = if path == Path::Amx {
            k.next_multiple_of(64)
        } else {
            k.next_multiple_of(4)
        };
        let bv = |c: usize, kk: usize| -> i32 {
            if c < n && kk < k {
                w(c, kk) + b_bias
            } else {
                0
            }
        };
        let alpha = in_offset - a_bias;
        let beta = w_offset - b_bias;
        let np = n.next_multiple_of(16);
        let mut col = vec![0i32; np];
        for (c, slot) in col.iter_mut().enumerate().take(n) {
            let sb = (0..k).fold(0i32, |s, kk| s.wrapping_add(bv(c, kk)));
            let b0 = bias.map_or(0, |b| b[c]) as i32;
            *slot = b0
                .wrapping_add(alpha.wrapping_mul(sb))
                .wrapping_add((k as i32).wrapping_mul(alpha).wrapping_mul(beta));
        }
        let b = match path {
            Path::Vnni | Path::Amx => {
                // AMX blocks go in pairs: pad to a whole pair with zero channels.
                let np = if path == Path::Amx {
                    n.next_multiple_of(32)
                } else {
                    np
                };
                let mut v = Vec::with_capacity(np * kp);
                for blk in 0..np / 16 {
                    for k4 in 0..kp / 4 {
                        for lane in 0..16 {
                            for d in 0..4 {
                                v.push(bv(blk * 16 + lane, k4 * 4 + d) as i8);
                            }
                        }
                    }
                }
                BPack::Vnni(v)
            }
            Path::Avx2 => {
                let mut v = Vec::with_capacity(np * kp);
                for blk in 0..np / 8 {
                    for k2 in 0..kp / 2 {
                        for lane in 0..8 {
                            for d in 0..2 {
                                v.push(bv(blk * 8 + lane, k2 * 2 + d) as i16);
                            }
                        }
                    }
                }
                BPack::Avx2(v)
            }
            Path::Portable => {
                let mut v = Vec::with_capacity(n * kp);
                for c in 0..n {
                    v.extend((0..kp).map(|kk| bv(c, kk) as i8));
                }
                BPack::Portable(v)
            }
        };
        let fused = matches!(path, Path::Vnni | Path::Amx)
            && cpu::features().avx512vl
            && rq.rounding == crate::quant::fixed_point::Rounding::Double
            && rq.real.is_none()
            && rq.m.iter().all(|&m| m >= 0);
        let nudge = if fused {
            Self::fast_nudges(n, k, &bv, &col, beta, &rq)
        } else {
            None
        };
        Gemm8 {
            path,
            isa,
            k,
            kp,
            n,
            b,
            col,
            beta,
            a_bias,
            rq,
            fused,
            nudge,
            signed_a,
        }
    }

    /// The fused epilogue's cheaper form ([`rq_fast`]) needs every real channel to pass
    /// [`fast_shifts_ok`] and `|x| < 2^30` for every possible `x = Σab + col + β·Σa`
    /// (bounded from the packed weights, `a ≤ 255`). Returns its nudges.
    ///
    /// [`rq_fast`]: crate::exec::kernels::qconv::requant::v512::rq_fast
    fn fast_nudges(
        n: usize,
        k: usize,
        bv: &impl Fn(usize, usize) -> i32,
        col: &[i32],
        beta: i32,
        rq: &Requant,
    ) -> Option<Vec<i64>> {
        if !fast_shifts_ok(&rq.mult[..n]) {
            return None;
        }
        let row_max = (beta as i64).abs() * 255 * k as i64;
        for (c, &cc) in col.iter().take(n).enumerate() {
            let dot_max = 255 * (0..k).map(|kk| (bv(c, kk) as i64).abs()).sum::<i64>();
            if dot_max + (cc as i64).abs() + row_max >= 1 << 30 {
                return None;
            }
        }
        Some(fast_nudges(&rq.mult, col.len()))
    }

    /// Whether 8-bit outputs take the cheaper exact epilogue (tests check coverage).
    pub fn uses_fast_requant(&self) -> bool {
        self.nudge.is_some()
    }

    /// Whether the GEMM runs on AMX tiles (tests check coverage).
    pub fn uses_amx(&self) -> bool {
        self.path == Path::Amx
    }

    pub fn packed_bytes(&self) -> usize {
        match &self.b {
            BPack::Vnni(v) | BPack::Portable(v) => v.len(),
            BPack::Avx2(v) => v.len() * 2,
        }
    }

    /// Rows per work item. A chunk reads all the weights once: weights beyond half of
    /// a 2 MiB L2 come from memory for every chunk, so they get twice the rows.
    fn chunk_rows(&self) -> usize {
        if self.path == Path::Amx {
            if self.n * self.kp > AMX_BIG_WEIGHTS {
                2 * AMX_CHUNK
            } else {
                AMX_CHUNK
            }
        } else {
            CHUNK
        }
    }

    fn scratch<T: QElem>(&self) -> Scratch<T> {
        let chunk = self.chunk_rows();
        Scratch {
            x: vec![T::from_i32(0); self.k],
            a8: if self.path == Path::Avx2 {
                Vec::new()
            } else {
                vec![0; chunk * self.kp]
            },
            // Only the AVX2 path packs 16-bit rows; the fused path needs no tile.
            a16: if self.path == Path::Avx2 {
                vec![0; chunk * self.kp]
            } else {
                Vec::new()
            },
            rowsum: vec![0; chunk],
            rowbase: Vec::new(),
            quads: if self.fused && self.beta != 0 && self.kp <= QUAD_ROWS {
                vec![0; chunk * self.kp / 4]
            } else {
                Vec::new()
            },
            tile: if self.fused && std::mem::size_of::<T>() == 1 {
                Vec::new()
            } else {
                vec![0; MR * 64]
            },
            acc32: if self.path == Path::Amx {
                vec![0; chunk * self.n.div_ceil(32) * 32]
            } else {
                Vec::new()
            },
        }
    }

    /// Computes `m` output rows; `fill(row, buf)` writes the `k` input values of a row,
    /// unless `direct` holds the rows back to back (then they are read in place).
    pub fn run<T: QElem>(
        &self,
        m: usize,
        direct: Option<&[T]>,
        window: Option<&Window<'_>>,
        fill: &(dyn Fn(usize, &mut [T]) + Sync),
        out: &mut [T],
        par: Parallelism,
    ) {
        let n = self.n;
        assert_eq!(out.len(), m * n, "gemm output size");
        if n == 0 || m == 0 {
            return;
        }
        let macs = m * n * self.k;
        let chunk = self.chunk_rows();
        let tasks = parallel::task_count(par, m.div_ceil(chunk), macs / parallel::GEMM_MACS_PER_NS);
        // Whole chunks per task; each task packs its rows a chunk at a time.
        let per_task = m.div_ceil(chunk).div_ceil(tasks) * chunk;
        parallel::for_each_chunk_mut(par, out, per_task * n, &|ti, o| {
            let mut s = self.scratch::<T>();
            for (i, oc) in o.chunks_mut(chunk * n).enumerate() {
                let m0 = ti * per_task + i * chunk;
                self.chunk_any(m0, oc.len() / n, direct, window, fill, oc, &mut s);
            }
        });
    }

    /// [`Self::chunk`] compiled with AVX-512 enabled, so the row packing and the
    /// epilogue glue vectorize too, and the row packers (which need VL) inline.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    fn chunk_avx512<T: QElem>(
        &self,
        m0: usize,
        rows: usize,
        direct: Option<&[T]>,
        window: Option<&Window<'_>>,
        fill: &(dyn Fn(usize, &mut [T]) + Sync),
        out: &mut [T],
        s: &mut Scratch<T>,
    ) {
        self.chunk(m0, rows, direct, window, fill, out, s)
    }

    /// Runs one chunk on the widest code path the kernel was packed for.
    #[allow(clippy::too_many_arguments)]
    fn chunk_any<T: QElem>(
        &self,
        m0: usize,
        rows: usize,
        direct: Option<&[T]>,
        window: Option<&Window<'_>>,
        fill: &(dyn Fn(usize, &mut [T]) + Sync),
        out: &mut [T],
        s: &mut Scratch<T>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if matches!(self.path, Path::Vnni | Path::Amx) && cpu::features().avx512vl {
            // SAFETY: the VNNI path is only chosen when the CPU has AVX-512 VNNI/BW;
            // VL is checked here.
            unsafe { self.chunk_avx512(m0, rows, direct, window, fill, out, s) };
            return;
        }
        self.chunk(m0, rows, direct, window, fill, out, s)
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn chunk<T: QElem>(
        &self,
        m0: usize,
        rows: usize,
        direct: Option<&[T]>,
        window: Option<&Window<'_>>,
        fill: &(dyn Fn(usize, &mut [T]) + Sync),
        out: &mut [T],
        s: &mut Scratch<T>,
    ) {
        let (k, kp, n) = (self.k, self.kp, self.n);
        let mut packed = false;
        #[cfg(target_arch = "x86_64")]
        if let Some(w) = window
            && self.fused
            && std::mem::size_of::<T>() == 1
            && w.geom.k_w * w.geom.in_c <= 16
            && w.geom.k_h * w.geom.k_w * w.geom.in_c == k
        {
            let flip = if self.a_bias == 128 { 0x80 } else { 0 };
            // SAFETY: `fused` implies AVX-512 BW/VL; bounds are checked inside.
            unsafe { x86::gather_rows(w, m0, rows, flip, k, kp, &mut s.a8, &mut s.rowbase) };
            self.row_sums(&s.a8[..rows * kp], kp, &mut s.rowsum[..rows], &mut s.quads);
            packed = true;
        }
        let _ = window;
        // Direct rows (1×1 stride-1 conv, FC) of whole 4-byte groups are read in place
        // by the fast epilogue's kernel, which flips int8 bytes itself; the row sums
        // (uint8 weights with a zero point) are of the unflipped bytes. The flip costs
        // one XOR per row and 4 k's in every column tile: it is cheaper than packing
        // for up to two tiles (128 channels; measured slower at 144).
        let flip_in_kernel = self.a_bias == 128;
        // AMX reads whole 32-row blocks: in place only for full chunks.
        let inplace_ok = if self.path == Path::Amx {
            self.fused && rows.is_multiple_of(32)
        } else {
            self.nudge.is_some() && (!flip_in_kernel || (self.beta == 0 && n <= 128))
        };
        let inplace: Option<&[u8]> = match direct {
            Some(x) if inplace_ok && std::mem::size_of::<T>() == 1 && k == kp => {
                // SAFETY: T is one byte, so the rows viewed as bytes.
                let all = unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<u8>(), x.len()) };
                Some(&all[m0 * k..(m0 + rows) * k])
            }
            _ => None,
        };
        #[cfg(target_arch = "x86_64")]
        if let Some(a) = inplace {
            self.row_sums(a, k, &mut s.rowsum[..rows], &mut s.quads);
            packed = true;
        }
        for r in 0..rows {
            if packed {
                break;
            }
            // AMX rows need no flip: im2col rows go straight into the packed rows
            // (padding bytes meet zero weights, so they are left as they are).
            #[cfg(target_arch = "x86_64")]
            if self.path == Path::Amx
                && self.fused
                && direct.is_none()
                && self.a_bias == 0
                && std::mem::size_of::<T>() == 1
            {
                let dst = &mut s.a8[r * kp..r * kp + k];
                // SAFETY: T is one byte, so the packed bytes viewed as T.
                let dst_t =
                    unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<T>(), k) };
                fill(m0 + r, dst_t);
                s.rowsum[r] = if self.beta == 0 {
                    0
                } else {
                    // SAFETY: `fused` implies AVX-512 BW/VL.
                    self.beta.wrapping_mul(unsafe { x86::byte_sum(dst) })
                };
                continue;
            }
            let src: &[T] = match direct {
                Some(x) => &x[(m0 + r) * k..(m0 + r + 1) * k],
                None => {
                    fill(m0 + r, &mut s.x);
                    &s.x
                }
            };
            let mut sum = 0i32;
            #[cfg(target_arch = "x86_64")]
            if self.fused && std::mem::size_of::<T>() == 1 {
                // SAFETY: T is one byte, so the row viewed as bytes.
                let bytes = unsafe { std::slice::from_raw_parts(src.as_ptr().cast::<u8>(), k) };
                let flip = if self.a_bias == 128 { 0x80 } else { 0 };
                let dst = &mut s.a8[r * kp..(r + 1) * kp];
                // β = 0 (int8 weights without zero point): the row sum is not needed.
                // SAFETY: `fused` implies AVX-512 BW/VL.
                let sum = unsafe { x86::pack_row(bytes, flip, dst, self.beta != 0) };
                s.rowsum[r] = self.beta.wrapping_mul(sum);
                continue;
            }
            if self.path == Path::Avx2 {
                let dst = &mut s.a16[r * kp..(r + 1) * kp];
                for (d, x) in dst.iter_mut().zip(src) {
                    let a = x.to_i32() + self.a_bias;
                    sum = sum.wrapping_add(a);
                    *d = a as i16;
                }
                dst[k..].fill(0);
            } else {
                let dst = &mut s.a8[r * kp..(r + 1) * kp];
                for (d, x) in dst.iter_mut().zip(src) {
                    let a = x.to_i32() + self.a_bias;
                    sum = sum.wrapping_add(a);
                    *d = a as u8;
                }
                dst[k..].fill(0);
            }
            s.rowsum[r] = self.beta.wrapping_mul(sum);
        }
        #[cfg(target_arch = "x86_64")]
        if let (Path::Amx, BPack::Vnni(b)) = (self.path, &self.b) {
            let a = inplace.unwrap_or(&s.a8);
            let rowsum = &s.rowsum[..rows];
            // SAFETY: the AMX path is only chosen when `cpu::amx_selected()` (AMX-INT8,
            // the OS permission, AVX-512 VNNI/BW/VL); `a` holds the chunk's rows in
            // whole 32-row blocks of `kp` bytes (in place or the scratch), `b` the pairs.
            unsafe { self.amx_chunk(a, rowsum, b, out, &mut s.acc32) };
            return;
        }
        // Narrow outputs (one or two blocks) take 8-row tiles on the fast epilogue.
        let tall = self.nudge.is_some() && std::mem::size_of::<T>() == 1 && n <= 32;
        let tile_rows = if tall { 2 * MR } else { MR };
        let mut r0 = 0;
        while r0 < rows {
            let mr = tile_rows.min(rows - r0);
            match &self.b {
                BPack::Portable(b) => {
                    for r in r0..r0 + mr {
                        let a = &s.a8[r * kp..(r + 1) * kp];
                        let o = &mut out[r * n..(r + 1) * n];
                        for n0 in (0..n).step_by(64) {
                            let w = 64.min(n - n0);
                            for c in 0..w {
                                let bc = &b[(n0 + c) * kp..(n0 + c + 1) * kp];
                                s.tile[c] = dot_u8_i8(a, bc);
                            }
                            self.rq.row(
                                self.isa,
                                n0,
                                &s.tile[..w],
                                &self.col[n0..n0 + w],
                                s.rowsum[r],
                                &mut o[n0..n0 + w],
                            );
                        }
                    }
                }
                #[cfg(target_arch = "x86_64")]
                BPack::Vnni(b) => {
                    let blocks = n.div_ceil(16);
                    // Balanced tiles (9 blocks: 3+3+3, not 4+4+1): a one-block tile has
                    // too few independent sums to hide the dot-product latency.
                    let per = blocks.div_ceil(blocks.div_ceil(4));
                    let mut j0 = 0;
                    while j0 < blocks {
                        let nb = per.min(blocks - j0);
                        let bp = &b[j0 * 16 * kp..(j0 + nb) * 16 * kp];
                        let a = match inplace {
                            Some(x) => &x[r0 * kp..(r0 + mr) * kp],
                            None => &s.a8[r0 * kp..(r0 + mr) * kp],
                        };
                        if self.fused && std::mem::size_of::<T>() == 1 {
                            let o = &mut out[r0 * n..(r0 + mr) * n];
                            // SAFETY: T is one byte, so the rows viewed as bytes.
                            let o8 = unsafe {
                                std::slice::from_raw_parts_mut(o.as_mut_ptr().cast::<u8>(), o.len())
                            };
                            let ep = x86::Epilogue {
                                rq: &self.rq,
                                col: &self.col,
                                rowsum: &s.rowsum[r0..r0 + mr],
                                n0: j0 * 16,
                                n,
                            };
                            if let Some(nq) = &self.nudge {
                                // SAFETY: as below; `nudge` implies `fused`.
                                unsafe {
                                    macro_rules! tile {
                                        ($flip:literal) => {
                                            match (nb, mr > MR) {
                                                (1, true) => x86::mk_vnni_rq32::<8, 1, $flip, T>(
                                                    a, mr, kp, bp, &ep, nq, o8,
                                                ),
                                                (2, true) => x86::mk_vnni_rq32::<8, 2, $flip, T>(
                                                    a, mr, kp, bp, &ep, nq, o8,
                                                ),
                                                (1, _) => x86::mk_vnni_rq32::<4, 1, $flip, T>(
                                                    a, mr, kp, bp, &ep, nq, o8,
                                                ),
                                                (2, _) => x86::mk_vnni_rq32::<4, 2, $flip, T>(
                                                    a, mr, kp, bp, &ep, nq, o8,
                                                ),
                                                (3, _) => x86::mk_vnni_rq32::<4, 3, $flip, T>(
                                                    a, mr, kp, bp, &ep, nq, o8,
                                                ),
                                                _ => x86::mk_vnni_rq32::<4, 4, $flip, T>(
                                                    a, mr, kp, bp, &ep, nq, o8,
                                                ),
                                            }
                                        };
                                    }
                                    if inplace.is_some() && flip_in_kernel {
                                        tile!(true)
                                    } else {
                                        tile!(false)
                                    }
                                }
                                j0 += nb;
                                continue;
                            }
                            // SAFETY: `fused` implies AVX-512 VNNI/BW/VL; lengths are
                            // checked inside.
                            unsafe {
                                match nb {
                                    1 => x86::mk_vnni_rq::<1>(a, mr, kp, bp, &ep, o8),
                                    2 => x86::mk_vnni_rq::<2>(a, mr, kp, bp, &ep, o8),
                                    3 => x86::mk_vnni_rq::<3>(a, mr, kp, bp, &ep, o8),
                                    _ => x86::mk_vnni_rq::<4>(a, mr, kp, bp, &ep, o8),
                                }
                            }
                            j0 += nb;
                            continue;
                        }
                        // SAFETY: the path is only chosen when the CPU has AVX-512 VNNI/BW;
                        // slice lengths are checked inside.
                        unsafe {
                            match nb {
                                1 => x86::mk_vnni::<1>(a, mr, kp, bp, &mut s.tile),
                                2 => x86::mk_vnni::<2>(a, mr, kp, bp, &mut s.tile),
                                3 => x86::mk_vnni::<3>(a, mr, kp, bp, &mut s.tile),
                                _ => x86::mk_vnni::<4>(a, mr, kp, bp, &mut s.tile),
                            }
                        }
                        self.epilogue(r0, mr, j0 * 16, nb * 16, out, s);
                        j0 += nb;
                    }
                }
                #[cfg(target_arch = "x86_64")]
                BPack::Avx2(b) => {
                    let blocks = n.div_ceil(8);
                    let mut j0 = 0;
                    while j0 < blocks {
                        let nb = 2.min(blocks - j0);
                        let bp = &b[j0 * 8 * kp..(j0 + nb) * 8 * kp];
                        let a = &s.a16[r0 * kp..(r0 + mr) * kp];
                        // SAFETY: the path is only chosen when the CPU has AVX2.
                        unsafe {
                            match nb {
                                1 => x86::mk_avx2::<1>(a, mr, kp, bp, &mut s.tile),
                                _ => x86::mk_avx2::<2>(a, mr, kp, bp, &mut s.tile),
                            }
                        }
                        self.epilogue(r0, mr, j0 * 8, nb * 8, out, s);
                        j0 += nb;
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                _ => unreachable!("SIMD paths are x86_64 only"),
            }
            r0 += mr;
        }
    }

    /// The AMX blocks of one chunk: its rows in blocks of 32 (the last padded) × every
    /// pair of channel blocks, in groups of [`AMX_GROUP_PAIRS`] pairs. Per group, `k` goes in
    /// slices of [`AMX_K_BLOCK`] tile steps: the chunk's slice of input rows stays in
    /// L1 while the group's weights stream past it, the group's int32 sums wait in
    /// `acc` (32 rows × the padded channels, row stride `ldc`); then the group's
    /// channels are requantized while their sums are still in cache.
    ///
    /// # Safety
    /// AMX is usable and AVX-512 VNNI/BW/VL present (the AMX path's preconditions);
    /// `a` holds the rows in whole blocks of 32 (`rows.div_ceil(32) · 32 · kp` bytes).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    unsafe fn amx_chunk<T: QElem>(
        &self,
        a: &[u8],
        rowsum: &[i32],
        b: &[i8],
        out: &mut [T],
        acc: &mut [i32],
    ) {
        let (kp, n, rows) = (self.kp, self.n, rowsum.len());
        // Rows in whole blocks of 32 (the last one padded with whatever is there).
        let mb = rows.div_ceil(32);
        assert!(a.len() >= mb * 32 * kp && rows >= 1 && out.len() == rows * n);
        let blocks = n.div_ceil(16);
        let ldc = blocks.next_multiple_of(2) * 16;
        assert!(b.len() >= ldc * kp && acc.len() >= mb * 32 * ldc);
        // SAFETY: AMX is usable (caller).
        let tiles = unsafe { amx::Tiles::configure() };
        let kt = kp / amx::TILE_K;
        for g0 in (0..blocks).step_by(2 * AMX_GROUP_PAIRS) {
            let g1 = (g0 + 2 * AMX_GROUP_PAIRS).min(blocks);
            for t0 in (0..kt).step_by(AMX_K_BLOCK) {
                let steps = AMX_K_BLOCK.min(kt - t0);
                let ak = a[t0 * amx::TILE_K..].as_ptr();
                for j0 in (g0..g1).step_by(2) {
                    let panel = |j: usize| b[j * 16 * kp + t0 * amx::B_TILE_BYTES..].as_ptr();
                    let (b0, b1) = (panel(j0), (j0 + 1 < blocks).then(|| panel(j0 + 1)));
                    // Every 32-row block in turn: the weight tiles come from L1 after
                    // the first.
                    for h in 0..mb {
                        let ah = ak.wrapping_add(h * 32 * kp);
                        let c = acc[h * 32 * ldc + j0 * 16..].as_mut_ptr();
                        // SAFETY: `a` has mb·32 rows of kp = 64·kt bytes (asserted), from
                        // step t0 `steps` more; each panel holds kt KiB from its start;
                        // `acc` has mb·32 rows of ldc int32, this pair's 32 columns from
                        // j0·16.
                        unsafe {
                            if self.signed_a {
                                tiles.block::<true>(ah, kp, steps, b0, b1, c, ldc, t0 > 0);
                            } else {
                                tiles.block::<false>(ah, kp, steps, b0, b1, c, ldc, t0 > 0);
                            }
                        }
                    }
                }
            }
            let (n0, n1) = (g0 * 16, (g1 * 16).min(n));
            match &self.nudge {
                Some(nq) if std::mem::size_of::<T>() == 1 => {
                    let ep = x86::Epilogue {
                        rq: &self.rq,
                        col: &self.col,
                        rowsum,
                        n0,
                        n,
                    };
                    // SAFETY: T is one byte, so the rows viewed as bytes.
                    let o8 = unsafe {
                        std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), out.len())
                    };
                    x86::rq_rows::<T>(acc, ldc, rows, n1, &ep, nq, o8);
                }
                _ => {
                    for r in 0..rows {
                        self.rq.row(
                            self.isa,
                            n0,
                            &acc[r * ldc + n0..r * ldc + n1],
                            &self.col[n0..n1],
                            rowsum[r],
                            &mut out[r * n + n0..r * n + n1],
                        );
                    }
                }
            }
        }
        drop(tiles);
    }

    /// `β·Σa` of each row of `a` (rows of `len` bytes, as packed: flipped int8 or raw
    /// uint8), 0 when β is 0. Short rows add up the 4-byte group sums of the whole
    /// chunk (one `vpdpbusd` per 64 bytes), saving a horizontal reduction per row.
    /// Caller: the fused (AVX-512 VNNI/BW/VL) path.
    #[cfg(target_arch = "x86_64")]
    fn row_sums(&self, a: &[u8], len: usize, rowsum: &mut [i32], quads: &mut [i32]) {
        if self.beta == 0 {
            rowsum.fill(0);
            return;
        }
        let rows = rowsum.len();
        assert!(a.len() == rows * len && self.fused);
        if len <= QUAD_ROWS && len.is_multiple_of(4) && quads.len() >= rows * len / 4 {
            let q = &mut quads[..rows * len / 4];
            // SAFETY: `fused` implies AVX-512 VNNI/BW/VL.
            unsafe { x86::quad_sums(a, q) };
            for (rs, g) in rowsum.iter_mut().zip(q.chunks_exact(len / 4)) {
                *rs = self.beta.wrapping_mul(g.iter().sum::<i32>());
            }
            return;
        }
        for (rs, row) in rowsum.iter_mut().zip(a.chunks_exact(len)) {
            // SAFETY: as above.
            *rs = self.beta.wrapping_mul(unsafe { x86::byte_sum(row) });
        }
    }

    /// Requantizes a register tile of `mr` rows × `w` channels starting at `n0`.
    fn epilogue<T: QElem>(
        &self,
        r0: usize,
        mr: usize,
        n0: usize,
        w: usize,
        out: &mut [T],
        s: &Scratch<T>,
    ) {
        let n = self.n;
        let wv = w.min(n - n0);
        for r in 0..mr {
            let row = r0 + r;
            self.rq.row(
                self.isa,
                n0,
                &s.tile[r * w..r * w + w],
                &self.col[n0..n0 + w],
                s.rowsum[row],
                &mut out[row * n + n0..row * n + n0 + wv],
            );
        }
    }
}

#[inline]
fn dot_u8_i8(a: &[u8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .fold(0i32, |s, (&x, &w)| s.wrapping_add(x as i32 * w as i32))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::MR;
    use crate::exec::kernels::qconv::requant::Requant;
    use crate::exec::kernels::qconv::requant::v512::{ByteNarrow, rdbpot_v, rq_fast, srdhm_nonneg};
    use std::arch::x86_64::*;

    /// What the fused epilogue needs: per-channel constants from channel `n0`, the
    /// tile rows' `β·Σa` terms and the output row length.
    pub(super) struct Epilogue<'a> {
        pub rq: &'a Requant,
        pub col: &'a [i32],
        pub rowsum: &'a [i32],
        pub n0: usize,
        pub n: usize,
    }

    /// Copies a row of input bytes into `dst` (zero-padded to its length), flipping the
    /// top bit when `flip` is 0x80 (int8 → `x + 128`), and returns the sum of the
    /// stored bytes (0 unless `want_sum`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) fn pack_row(src: &[u8], flip: u8, dst: &mut [u8], want_sum: bool) -> i32 {
        assert!(dst.len() >= src.len());
        // 32-byte steps: rows are often 16–32 bytes, where 64-byte masked accesses
        // measured slower; full steps need no masks.
        let f = _mm256_set1_epi8(flip as i8);
        let zero = _mm256_setzero_si256();
        let mut acc = _mm256_setzero_si256();
        let bits = |n: usize| -> __mmask32 { if n >= 32 { !0 } else { (1u32 << n) - 1 } };
        let mut i = 0;
        // Up to dst.len(): the padding bytes are stored as zeros in the same pass
        // (a separate fill of one or two bytes would be a call to memset).
        while i < dst.len() {
            // SAFETY: full steps stay below src.len() <= dst.len(); otherwise the masks
            // keep reads below src.len() and writes below dst.len().
            let v = unsafe {
                if i + 32 <= src.len() {
                    let v = _mm256_xor_si256(_mm256_loadu_si256(src.as_ptr().add(i).cast()), f);
                    _mm256_storeu_si256(dst.as_mut_ptr().add(i).cast(), v);
                    v
                } else {
                    let lm = bits(src.len().saturating_sub(i));
                    let v = _mm256_maskz_loadu_epi8(lm, src.as_ptr().add(i).cast());
                    let v = _mm256_maskz_mov_epi8(lm, _mm256_xor_si256(v, f));
                    _mm256_mask_storeu_epi8(dst.as_mut_ptr().add(i).cast(), bits(dst.len() - i), v);
                    v
                }
            };
            if want_sum {
                acc = _mm256_add_epi64(acc, _mm256_sad_epu8(v, zero));
            }
            i += 32;
        }
        if want_sum {
            let s = _mm_add_epi64(
                _mm256_castsi256_si128(acc),
                _mm256_extracti128_si256(acc, 1),
            );
            (_mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1)) as i32
        } else {
            0
        }
    }

    /// Writes the im2col rows `m0..m0 + rows` of `w` into `dst` (rows of `kp` bytes,
    /// the `k` taps then zeros), each byte XORed with `flip`. A kernel row inside the
    /// image is one contiguous run of `k_w · c ≤ 16` bytes: one masked 16-byte load and store
    /// (narrow vectors: the 64-byte masked forms were slower here). Rows go by runs of
    /// one output row, whose kernel rows' input offsets (`rowbase`, −1 outside the
    /// image) are computed once per run.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn gather_rows(
        w: &super::Window<'_>,
        m0: usize,
        rows: usize,
        flip: u8,
        k: usize,
        kp: usize,
        dst: &mut [u8],
        rowbase: &mut Vec<isize>,
    ) {
        let run = w.geom.k_w * w.geom.in_c;
        assert!(run <= 16 && k == w.geom.k_h * run && k <= kp && dst.len() >= rows * kp);
        assert!(w.geom.out_w > 0 && w.geom.out_h > 0);
        let bits = |n: usize| -> u16 { ((1u32 << n) - 1) as u16 };
        let (rm, cm) = (bits(run), bits(w.geom.in_c));
        // The row tail k..kp (< 4 bytes) is zeroed with one masked store.
        let tail = bits(kp - k);
        let f = _mm_set1_epi8(flip as i8);
        let padv = _mm_set1_epi8((w.pad ^ flip) as i8);
        let (mut ox, t) = (m0 % w.geom.out_w, m0 / w.geom.out_w);
        let (mut oy, mut b) = (t % w.geom.out_h, t / w.geom.out_h);
        let src = w.input.as_ptr();
        let row_bytes = (w.geom.in_w * w.geom.in_c) as isize;
        rowbase.resize(w.geom.k_h, -1);
        let mut r = 0;
        while r < rows {
            // Byte offset of each kernel row's input row, −1 outside the image.
            for (ky, rb) in rowbase.iter_mut().enumerate() {
                let iy = (oy * w.geom.stride_h + ky) as isize - w.geom.pad_top as isize;
                *rb = if iy < 0 || iy >= w.geom.in_h as isize {
                    -1
                } else {
                    (b * w.geom.in_h) as isize * row_bytes + iy * row_bytes
                };
            }
            let seg = (w.geom.out_w - ox).min(rows - r);
            for i in 0..seg {
                let row = &mut dst[(r + i) * kp..(r + i + 1) * kp];
                let x0 = ((ox + i) * w.geom.stride_w) as isize - w.geom.pad_left as isize;
                if x0 >= 0 && x0 as usize + w.geom.k_w <= w.geom.in_w {
                    let xoff = x0 * w.geom.in_c as isize;
                    for (ky, &rb) in rowbase.iter().enumerate() {
                        let d = row[ky * run..].as_mut_ptr();
                        if rb < 0 {
                            // SAFETY: the mask keeps the store inside this kernel row's run.
                            unsafe { _mm_mask_storeu_epi8(d.cast(), rm, padv) };
                            continue;
                        }
                        let s = (rb + xoff) as usize;
                        assert!(s + run <= w.input.len());
                        // SAFETY: masked to `run` bytes, in bounds (asserted) on both sides.
                        unsafe {
                            let v = _mm_maskz_loadu_epi8(rm, src.add(s).cast());
                            _mm_mask_storeu_epi8(d.cast(), rm, _mm_xor_si128(v, f));
                        }
                    }
                } else {
                    for (ky, &rb) in rowbase.iter().enumerate() {
                        for kx in 0..w.geom.k_w {
                            let ix = x0 + kx as isize;
                            let v = if rb < 0 || ix < 0 || ix >= w.geom.in_w as isize {
                                padv
                            } else {
                                let s = (rb + ix * w.geom.in_c as isize) as usize;
                                assert!(s + w.geom.in_c <= w.input.len());
                                // SAFETY: masked to `c` bytes in bounds (asserted).
                                unsafe {
                                    _mm_xor_si128(_mm_maskz_loadu_epi8(cm, src.add(s).cast()), f)
                                }
                            };
                            // SAFETY: tap kx's `c` bytes lie inside this kernel row's run.
                            unsafe {
                                let d = row[ky * run + kx * w.geom.in_c..].as_mut_ptr();
                                _mm_mask_storeu_epi8(d.cast(), cm, v)
                            };
                        }
                    }
                }
                // SAFETY: kp - k < 4 bytes from k, inside the row.
                unsafe {
                    _mm_mask_storeu_epi8(row[k..].as_mut_ptr().cast(), tail, _mm_setzero_si128())
                };
            }
            r += seg;
            ox += seg;
            if ox == w.geom.out_w {
                ox = 0;
                oy += 1;
                if oy == w.geom.out_h {
                    oy = 0;
                    b += 1;
                }
            }
        }
    }

    /// `sums[i]` = the sum of bytes `4i..4i + 4` of `bytes` (a multiple of 4 long).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn quad_sums(bytes: &[u8], sums: &mut [i32]) {
        assert!(bytes.len().is_multiple_of(4) && sums.len() == bytes.len() / 4);
        let ones = _mm512_set1_epi8(1);
        let mut i = 0;
        while i < bytes.len() {
            let n = bytes.len() - i;
            let (lm, sm): (__mmask64, __mmask16) = if n >= 64 {
                (!0, !0)
            } else {
                ((1u64 << n) - 1, ((1u32 << (n / 4)) - 1) as u16)
            };
            // SAFETY: the masks keep the load below bytes.len() and the store below
            // sums.len() = bytes.len() / 4.
            unsafe {
                let v = _mm512_maskz_loadu_epi8(lm, bytes.as_ptr().add(i).cast());
                let g = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v, ones);
                _mm512_mask_storeu_epi32(sums.as_mut_ptr().add(i / 4).cast(), sm, g);
            }
            i += 64;
        }
    }

    /// Sum of the bytes of `row`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) fn byte_sum(row: &[u8]) -> i32 {
        let zero = _mm512_setzero_si512();
        let mut acc = _mm512_setzero_si512();
        let mut i = 0;
        while i < row.len() {
            let n = row.len() - i;
            let m: __mmask64 = if n >= 64 { !0 } else { (1u64 << n) - 1 };
            // SAFETY: the mask keeps the load below row.len().
            let v = unsafe { _mm512_maskz_loadu_epi8(m, row.as_ptr().add(i).cast()) };
            acc = _mm512_add_epi64(acc, _mm512_sad_epu8(v, zero));
            i += 64;
        }
        _mm512_reduce_add_epi64(acc) as i32
    }

    /// Requantizes `rows` rows of int32 sums (row stride `ldc`, channel `c` at column
    /// `c`) for the channels `ep.n0..n1` (`n1 ≤ ep.n`) into `out` (rows of `n` bytes),
    /// with the cheaper exact epilogue of [`mk_vnni_rq32`]; four rows of one
    /// 16-channel block are narrowed together.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[allow(clippy::needless_range_loop)]
    pub(super) fn rq_rows<T: super::QElem>(
        acc: &[i32],
        ldc: usize,
        rows: usize,
        n1: usize,
        ep: &Epilogue<'_>,
        nudge: &[i64],
        out: &mut [u8],
    ) {
        let (rq, n) = (ep.rq, ep.n);
        let top = n.next_multiple_of(16);
        assert!(std::mem::size_of::<T>() == 1 && rows >= 1 && ldc >= top);
        assert!(ep.n0.is_multiple_of(16) && ep.n0 < n1 && n1 <= n);
        assert!(acc.len() >= rows * ldc && out.len() == rows * n && ep.rowsum.len() >= rows);
        assert!(ep.col.len() >= top && rq.m.len() >= top && rq.rsh.len() >= top);
        assert!(nudge.len() >= top);
        let narrow = ByteNarrow::new(rq.out_zp, rq.act_min, rq.act_max, T::SIGNED);
        let perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        for c0 in (ep.n0..n1).step_by(16) {
            // SAFETY: every constant array holds `top` entries (asserted).
            let (col, m, rsh, ne, no) = unsafe {
                (
                    _mm512_loadu_si512(ep.col.as_ptr().add(c0).cast()),
                    _mm512_loadu_si512(rq.m.as_ptr().add(c0).cast()),
                    _mm512_loadu_si512(rq.rsh.as_ptr().add(c0).cast()),
                    _mm512_loadu_si512(nudge.as_ptr().add(c0).cast()),
                    _mm512_loadu_si512(nudge.as_ptr().add(c0 + 8).cast()),
                )
            };
            let m_odd = _mm512_srli_epi64(m, 32);
            let w = (n - c0).min(16);
            for g in (0..rows).step_by(4) {
                let mut q = [_mm512_setzero_si512(); 4];
                for i in 0..4 {
                    let r = (g + i).min(rows - 1);
                    // SAFETY: r < rows and c0 + 16 <= top <= ldc: inside `acc`.
                    let x = unsafe { _mm512_loadu_si512(acc.as_ptr().add(r * ldc + c0).cast()) };
                    let x =
                        _mm512_add_epi32(_mm512_add_epi32(x, col), _mm512_set1_epi32(ep.rowsum[r]));
                    q[i] = rq_fast(x, m, m_odd, rsh, ne, no);
                }
                let v = _mm512_permutexvar_epi32(perm, narrow.pack(q));
                let parts = [
                    _mm512_castsi512_si128(v),
                    _mm512_extracti32x4_epi32::<1>(v),
                    _mm512_extracti32x4_epi32::<2>(v),
                    _mm512_extracti32x4_epi32::<3>(v),
                ];
                for (i, part) in parts.iter().enumerate() {
                    let r = g + i;
                    if r >= rows {
                        break;
                    }
                    // SAFETY: row r < rows of `out`; channels c0..c0 + w are below n.
                    unsafe {
                        let dst = out.as_mut_ptr().add(r * n + c0);
                        if w == 16 {
                            _mm_storeu_si128(dst.cast(), *part);
                        } else {
                            _mm_mask_storeu_epi8(dst.cast(), (1 << w) - 1, *part);
                        }
                    }
                }
            }
        }
    }

    /// [`mk_vnni`] with the requantization done on the accumulators in registers:
    /// `out[r * n + n0 + c] = clamp(MBQM(acc + col + rowsum[r]) + zp)` for `mr` rows
    /// of `out` (whole rows of `n` bytes) and the channels of the NB blocks below `n`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    #[allow(clippy::needless_range_loop)]
    pub(super) fn mk_vnni_rq<const NB: usize>(
        a: &[u8],
        mr: usize,
        kp: usize,
        b: &[i8],
        ep: &Epilogue<'_>,
        out: &mut [u8],
    ) {
        assert!((1..=MR).contains(&mr) && a.len() >= mr * kp && kp.is_multiple_of(4));
        assert!(b.len() >= NB * 16 * kp && ep.rowsum.len() >= mr && out.len() == mr * ep.n);
        let (rq, n0, n) = (ep.rq, ep.n0, ep.n);
        assert!(n0 < n && ep.col.len() >= n0 + NB * 16 && rq.m.len() >= n0 + NB * 16);
        assert!(rq.rsh.len() == rq.m.len() && rq.rmask.len() == rq.m.len());
        assert!(rq.rhalf.len() == rq.m.len() && rq.lsh.len() == rq.m.len());
        let rp: [*const u8; MR] = std::array::from_fn(|r| a[r.min(mr - 1) * kp..].as_ptr());
        let mut acc = [[_mm512_setzero_si512(); NB]; MR];
        let bp = b.as_ptr();
        for k4 in 0..kp / 4 {
            // SAFETY: as in `mk_vnni` (bounds asserted above).
            unsafe {
                let mut bv = [_mm512_setzero_si512(); NB];
                for j in 0..NB {
                    bv[j] = _mm512_loadu_si512(bp.add(j * kp * 16 + k4 * 64).cast());
                }
                for r in 0..MR {
                    let av = _mm512_set1_epi32(rp[r].add(k4 * 4).cast::<i32>().read_unaligned());
                    for j in 0..NB {
                        acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], av, bv[j]);
                    }
                }
            }
        }
        let zp = _mm512_set1_epi32(rq.out_zp);
        let (lo, hi) = (_mm512_set1_epi32(rq.act_min), _mm512_set1_epi32(rq.act_max));
        for j in 0..NB {
            let c0 = n0 + 16 * j;
            if c0 >= n {
                break;
            }
            let sm: __mmask16 = if n - c0 >= 16 {
                0xFFFF
            } else {
                (1 << (n - c0)) - 1
            };
            // SAFETY: every constant vector holds n0 + NB*16 lanes (asserted); stores
            // are masked to the channels below n of row r (r < mr, out has mr rows).
            unsafe {
                let col = _mm512_loadu_si512(ep.col.as_ptr().add(c0).cast());
                let m = _mm512_loadu_si512(rq.m.as_ptr().add(c0).cast());
                let m_odd = _mm512_srli_epi64(m, 32);
                let rsh = _mm512_loadu_si512(rq.rsh.as_ptr().add(c0).cast());
                let mask = _mm512_loadu_si512(rq.rmask.as_ptr().add(c0).cast());
                let half = _mm512_loadu_si512(rq.rhalf.as_ptr().add(c0).cast());
                let lsh = _mm512_loadu_si512(rq.lsh.as_ptr().add(c0).cast());
                // Constant trip count (fully unrolled) so `acc` stays in registers.
                for r in 0..MR {
                    if r >= mr {
                        break;
                    }
                    let radd = _mm512_set1_epi32(ep.rowsum[r]);
                    let mut x = _mm512_add_epi32(_mm512_add_epi32(acc[r][j], col), radd);
                    if rq.any_lsh {
                        x = _mm512_sllv_epi32(x, lsh);
                    }
                    let h = srdhm_nonneg(x, m, m_odd);
                    let v = _mm512_add_epi32(rdbpot_v(h, rsh, mask, half), zp);
                    let v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
                    // Clamped to the byte type's range: truncation is exact.
                    _mm_mask_storeu_epi8(
                        out.as_mut_ptr().add(r * n + c0).cast(),
                        sm,
                        _mm512_cvtepi32_epi8(v),
                    );
                }
            }
        }
    }

    /// [`mk_vnni_rq`] with the cheaper exact requantization of [`Gemm8::fast_nudges`]
    /// (whose preconditions the caller checked when packing) on tiles of `R` (4 or 8)
    /// rows, 8 for narrow outputs (more independent sums, constants loaded once per 8
    /// rows): the accumulators start
    /// at `col + rowsum`, each 16 channels need ten operations up to the shifted value,
    /// and the zero point, clamp and narrowing run with saturating packs on the four
    /// rows of one block packed together, or with three or four blocks on a row's
    /// channels packed together (one store per row) (`T` is the one-byte output type).
    ///
    /// `FLIP`: `a` holds the raw int8 rows (read in place), flipped here to `x + 128`.
    ///
    /// [`Gemm8::fast_nudges`]: super::Gemm8::fast_nudges
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    #[allow(clippy::needless_range_loop, clippy::too_many_arguments)]
    pub(super) fn mk_vnni_rq32<
        const R: usize,
        const NB: usize,
        const FLIP: bool,
        T: super::QElem,
    >(
        a: &[u8],
        mr: usize,
        kp: usize,
        b: &[i8],
        ep: &Epilogue<'_>,
        nudge: &[i64],
        out: &mut [u8],
    ) {
        assert!(std::mem::size_of::<T>() == 1 && R.is_multiple_of(4));
        assert!((1..=R).contains(&mr) && a.len() >= mr * kp && kp.is_multiple_of(4));
        assert!(b.len() >= NB * 16 * kp && ep.rowsum.len() >= mr && out.len() == mr * ep.n);
        let (rq, n0, n) = (ep.rq, ep.n0, ep.n);
        assert!(n0 < n && n0.is_multiple_of(16) && ep.col.len() >= n0 + NB * 16);
        assert!(rq.m.len() >= n0 + NB * 16 && rq.rsh.len() >= n0 + NB * 16);
        assert!(nudge.len() >= n0 + NB * 16);
        let rp: [*const u8; R] = std::array::from_fn(|r| a[r.min(mr - 1) * kp..].as_ptr());
        // Straight-line initialisation (no branches) keeps the tile in registers.
        let rs: [__m512i; R] = std::array::from_fn(|r| _mm512_set1_epi32(ep.rowsum[r.min(mr - 1)]));
        let mut acc = [[_mm512_setzero_si512(); NB]; R];
        for j in 0..NB {
            // SAFETY: n0 + NB*16 <= col.len() (asserted).
            let col = unsafe { _mm512_loadu_si512(ep.col.as_ptr().add(n0 + 16 * j).cast()) };
            for r in 0..R {
                acc[r][j] = _mm512_add_epi32(col, rs[r]);
            }
        }
        let bp = b.as_ptr();
        for k4 in 0..kp / 4 {
            // SAFETY: as in `mk_vnni` (bounds asserted above).
            unsafe {
                let mut bv = [_mm512_setzero_si512(); NB];
                for j in 0..NB {
                    bv[j] = _mm512_loadu_si512(bp.add(j * kp * 16 + k4 * 64).cast());
                }
                for r in 0..R {
                    let mut av =
                        _mm512_set1_epi32(rp[r].add(k4 * 4).cast::<i32>().read_unaligned());
                    if FLIP {
                        av = _mm512_xor_si512(av, _mm512_set1_epi8(-128));
                    }
                    for j in 0..NB {
                        acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], av, bv[j]);
                    }
                }
            }
        }
        let narrow = ByteNarrow::new(rq.out_zp, rq.act_min, rq.act_max, T::SIGNED);
        // After the packs, dword 4L + r holds row r's channels 4L..4L+3: transpose.
        // (Row-wise below: dword 4L + j holds block j's channels 4L..4L+3.)
        let perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        if NB >= 3 {
            // Three or four blocks: a row's 48 or 64 channels packed together, one
            // store per row (no per-row extracts).
            let mut cst = [[_mm512_setzero_si512(); 5]; NB];
            for j in 0..NB {
                let c0 = n0 + 16 * j;
                // SAFETY: every constant array holds n0 + NB*16 entries (asserted).
                unsafe {
                    let m = _mm512_loadu_si512(rq.m.as_ptr().add(c0).cast());
                    cst[j] = [
                        m,
                        _mm512_srli_epi64(m, 32),
                        _mm512_loadu_si512(rq.rsh.as_ptr().add(c0).cast()),
                        _mm512_loadu_si512(nudge.as_ptr().add(c0).cast()),
                        _mm512_loadu_si512(nudge.as_ptr().add(c0 + 8).cast()),
                    ];
                }
            }
            // Bytes of the tile's channels below n (n0 < n asserted).
            let w = (n - n0).min(NB * 16);
            let wm: __mmask64 = if w >= 64 { !0 } else { (1u64 << w) - 1 };
            for r in 0..R {
                if r >= mr {
                    break;
                }
                let mut q = [_mm512_setzero_si512(); 4];
                for j in 0..NB {
                    let c = &cst[j];
                    q[j] = rq_fast(acc[r][j], c[0], c[1], c[2], c[3], c[4]);
                }
                if NB == 3 {
                    q[3] = q[2];
                }
                let v = _mm512_permutexvar_epi32(perm, narrow.pack(q));
                // SAFETY: row r < mr of `out` (mr rows of n bytes); the store covers
                // channels n0..n0 + w, all below n.
                unsafe {
                    let dst = out.as_mut_ptr().add(r * n + n0);
                    if w >= 64 {
                        _mm512_storeu_si512(dst.cast(), v);
                    } else {
                        _mm512_mask_storeu_epi8(dst.cast(), wm, v);
                    }
                }
            }
            return;
        }
        for j in 0..NB {
            let c0 = n0 + 16 * j;
            // SAFETY: every constant array holds n0 + NB*16 entries (asserted).
            let (m, rsh, ne, no) = unsafe {
                (
                    _mm512_loadu_si512(rq.m.as_ptr().add(c0).cast()),
                    _mm512_loadu_si512(rq.rsh.as_ptr().add(c0).cast()),
                    _mm512_loadu_si512(nudge.as_ptr().add(c0).cast()),
                    _mm512_loadu_si512(nudge.as_ptr().add(c0 + 8).cast()),
                )
            };
            let m_odd = _mm512_srli_epi64(m, 32);
            let mut q = [_mm512_setzero_si512(); R];
            for r in 0..R {
                q[r] = rq_fast(acc[r][j], m, m_odd, rsh, ne, no);
            }
            // Blocks past n (the last tile's padding) are computed but not stored.
            let w = n.saturating_sub(c0);
            for g in 0..R / 4 {
                let q = [q[4 * g], q[4 * g + 1], q[4 * g + 2], q[4 * g + 3]];
                let v = _mm512_permutexvar_epi32(perm, narrow.pack(q));
                let rows = [
                    _mm512_castsi512_si128(v),
                    _mm512_extracti32x4_epi32::<1>(v),
                    _mm512_extracti32x4_epi32::<2>(v),
                    _mm512_extracti32x4_epi32::<3>(v),
                ];
                for (i, row) in rows.iter().enumerate() {
                    let r = 4 * g + i;
                    if r >= mr || w == 0 {
                        break;
                    }
                    // SAFETY: row r < mr of `out` (mr rows of n bytes); the store covers
                    // channels c0.. below n (masked when fewer than 16 remain).
                    unsafe {
                        let dst = out.as_mut_ptr().add(r * n + c0);
                        if w >= 16 {
                            _mm_storeu_si128(dst.cast(), *row);
                        } else {
                            _mm_mask_storeu_epi8(dst.cast(), (1 << w) - 1, *row);
                        }
                    }
                }
            }
        }
    }

    /// `tile[r * NB*16 + c] = Σ_k a[r, k] · b[k, c]` for `mr ≤ 4` rows; rows beyond `mr`
    /// recompute the last one and are not stored.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::needless_range_loop)] // register tiles are indexed on purpose
    pub(super) fn mk_vnni<const NB: usize>(
        a: &[u8],
        mr: usize,
        kp: usize,
        b: &[i8],
        tile: &mut [i32],
    ) {
        assert!((1..=MR).contains(&mr) && a.len() >= mr * kp && kp.is_multiple_of(4));
        assert!(b.len() >= NB * 16 * kp && tile.len() >= MR * NB * 16);
        let rp: [*const u8; MR] = std::array::from_fn(|r| a[r.min(mr - 1) * kp..].as_ptr());
        let mut acc = [[_mm512_setzero_si512(); NB]; MR];
        let bp = b.as_ptr();
        for k4 in 0..kp / 4 {
            // SAFETY: k4 * 4 + 4 <= kp bytes of each row and (j*kp*16 + k4*64 + 64) <=
            // NB*16*kp bytes of b, both asserted above.
            unsafe {
                // No closures here: they would not inherit the target features.
                let mut bv = [_mm512_setzero_si512(); NB];
                for j in 0..NB {
                    bv[j] = _mm512_loadu_si512(bp.add(j * kp * 16 + k4 * 64).cast());
                }
                for r in 0..MR {
                    let av = _mm512_set1_epi32(rp[r].add(k4 * 4).cast::<i32>().read_unaligned());
                    for j in 0..NB {
                        acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], av, bv[j]);
                    }
                }
            }
        }
        for r in 0..mr {
            for j in 0..NB {
                // SAFETY: r * NB*16 + j*16 + 16 <= MR*NB*16 <= tile.len().
                unsafe {
                    _mm512_storeu_si512(
                        tile.as_mut_ptr().add(r * NB * 16 + j * 16).cast(),
                        acc[r][j],
                    )
                };
            }
        }
    }

    /// As [`mk_vnni`] with 8-channel blocks of 16-bit values and `vpmaddwd`.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::needless_range_loop)]
    pub(super) fn mk_avx2<const NB: usize>(
        a: &[i16],
        mr: usize,
        kp: usize,
        b: &[i16],
        tile: &mut [i32],
    ) {
        assert!((1..=MR).contains(&mr) && a.len() >= mr * kp && kp.is_multiple_of(2));
        assert!(b.len() >= NB * 8 * kp && tile.len() >= MR * NB * 8);
        let rp: [*const i16; MR] = std::array::from_fn(|r| a[r.min(mr - 1) * kp..].as_ptr());
        let mut acc = [[_mm256_setzero_si256(); NB]; MR];
        let bp = b.as_ptr();
        for k2 in 0..kp / 2 {
            // SAFETY: bounds asserted above (two int16 per row step, 16 per block step).
            unsafe {
                let mut bv = [_mm256_setzero_si256(); NB];
                for j in 0..NB {
                    bv[j] = _mm256_loadu_si256(bp.add(j * kp * 8 + k2 * 16).cast());
                }
                for r in 0..MR {
                    let av = _mm256_set1_epi32(rp[r].add(k2 * 2).cast::<i32>().read_unaligned());
                    for j in 0..NB {
                        acc[r][j] = _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(av, bv[j]));
                    }
                }
            }
        }
        for r in 0..mr {
            for j in 0..NB {
                // SAFETY: within MR*NB*8 <= tile.len().
                unsafe {
                    _mm256_storeu_si256(tile.as_mut_ptr().add(r * NB * 8 + j * 8).cast(), acc[r][j])
                };
            }
        }
    }
}

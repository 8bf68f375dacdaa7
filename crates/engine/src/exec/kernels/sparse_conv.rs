//! Float32 1×1 stride-1 CONV_2D over sparse weights (XNNPACK's sparse inference, on
//! NHWC tensors).
//!
//! [`SparseConv1x1`] keeps, per output channel, the input channels of its non-zero
//! weights and their values (CSR rows) and skips the zeros. XNNPACK's SpMM runs on CHW
//! activations, where one weight multiplies a run of pixels of one channel; with NHWC
//! we get that run by transposing: a block of `P` pixels is copied to `[in_c][P]`
//! scratch (L1/L2-resident, one per thread), then every output channel accumulates
//! `acc[P] += w · x_T[ic][..]` over its non-zeros, adds its bias, clamps, and lands in
//! a tile of 16 (AVX2: 8) channels × `P` pixels that is transposed back into the
//! output rows. `P` is 32 pixels on AVX-512 (two zmm), 16 on AVX2 (two ymm) and on the
//! portable path (plain loops over arrays the compiler vectorizes). Each channel sums
//! its non-zeros in two interleaved sets of accumulators (even and odd non-zeros), so
//! four FMA chains run at once; the summation order thus differs from
//! [`conv2d_reference`](super::conv::conv2d_reference) in the last bits, as the dense
//! GEMM's does. Threads split the pixel blocks, as the dense kernel splits its rows.
//!
//! Preparation picks this kernel for a float 1×1 / stride 1 / dilation 1 conv whose
//! constant filter has at least [`min_zero_fraction`] exact zeros: 70%, or 75% when
//! the conv narrows the channels 4× or more (see there for the measurements).

use std::cell::RefCell;

use super::Parallelism;
use super::conv::ConvParams;
use super::cpu::{self, Isa};
use crate::exec::parallel;

/// The fraction of exact zeros in a 1×1 filter at or above which preparation uses
/// [`SparseConv1x1`] instead of the dense GEMM (XNNPACK asks for 2/3), except for
/// [`SPARSE_MIN_ZERO_FRACTION_NARROWING`]. Measured with `benches/sparse.rs` (one
/// thread, AVX-512, shared cores; `docs/sparse.md` has the table): on 96 → 576,
/// 160 → 960 and 320 → 1280 at 8×8 to 32×32 pixels sparse is 1.1–1.7× faster at 70%
/// zeros and 0.8–1.1× at 60%.
pub const SPARSE_MIN_ZERO_FRACTION: f32 = 0.7;

/// The threshold for a conv with at least 4× more input than output channels (an
/// inverted-residual projection), whose per-block input transpose is shared by fewer
/// output channels. On 576 → 96 the AVX-512 block was 0.8–0.9× at 70% zeros and
/// 0.9–1.1× at 75%; the AVX2 block, which [`SparseConv1x1::run_isa`] therefore uses
/// for these shapes on AVX-512 machines too, is 0.8–1.0× at 70% and 1.1–1.15× at 75%.
pub const SPARSE_MIN_ZERO_FRACTION_NARROWING: f32 = 0.75;

/// At least 4× more input than output channels.
fn narrowing(in_c: usize, out_c: usize) -> bool {
    in_c >= 4 * out_c
}

/// The zero fraction from which a 1×1 conv with these depths runs sparse.
pub fn min_zero_fraction(in_c: usize, out_c: usize) -> f32 {
    if narrowing(in_c, out_c) {
        SPARSE_MIN_ZERO_FRACTION_NARROWING
    } else {
        SPARSE_MIN_ZERO_FRACTION
    }
}

/// Rough single-thread speed (non-zero MACs per ns) for the threading estimate.
const SPARSE_MACS_PER_NS: usize = 16;

/// Output channels per tile that the SIMD paths transpose back at once.
const TILE_OC: usize = 16;

/// Pixels per block on each path.
const P512: usize = 32;
const P256: usize = 16;
const PPORT: usize = 16;
/// The largest block (for scratch sizes).
pub const MAX_BLOCK_PIXELS: usize = P512;

/// Whether [`SparseConv1x1`] can run this conv: 1×1, stride 1, unpadded, output the
/// input's size (dilation does not matter for a 1×1 filter).
pub fn supports(p: &ConvParams) -> bool {
    p.geom.is_pointwise()
}

/// The fraction of exact zeros (`±0.0`) in `filter` (0 for an empty filter).
pub fn zero_fraction(filter: &[f32]) -> f32 {
    if filter.is_empty() {
        return 0.0;
    }
    let zeros = filter.iter().filter(|&&v| v == 0.0).count();
    (zeros as f64 / filter.len() as f64) as f32
}

/// A 1×1 CONV_2D with its weights stored sparsely (non-zeros per output channel).
#[derive(Debug, Clone)]
pub struct SparseConv1x1 {
    p: ConvParams,
    /// The non-zeros of output channel `oc` are `starts[oc]..starts[oc + 1]`.
    starts: Vec<usize>,
    /// Input channel of each non-zero, ascending within a channel.
    channels: Vec<u32>,
    values: Vec<f32>,
    /// One per output channel (zeros without a bias).
    bias: Vec<f32>,
}

impl SparseConv1x1 {
    /// Compresses `filter` (OHWI, `[out_c, 1, 1, in_c]`) and copies `bias`. Panics if
    /// the conv is not [`supports`]ed or the buffers are shorter than `p` needs
    /// (callers validate with [`ConvParams::check`]).
    pub fn new(p: &ConvParams, filter: &[f32], bias: Option<&[f32]>) -> Self {
        assert!(supports(p), "sparse conv: not a 1x1 stride-1 conv");
        assert!(filter.len() >= p.filter_len(), "conv2d: filter too short");
        let (cin, cout) = (p.geom.in_c, p.geom.out_c);
        assert!(u32::try_from(cin).is_ok(), "sparse conv: input depth {cin}");
        let mut starts = Vec::with_capacity(cout + 1);
        let nnz = filter[..p.filter_len()]
            .iter()
            .filter(|&&v| v != 0.0)
            .count();
        let mut channels = Vec::with_capacity(nnz);
        let mut values = Vec::with_capacity(nnz);
        starts.push(0);
        for oc in 0..cout {
            let row = &filter[oc * cin..(oc + 1) * cin];
            for (ic, &w) in row.iter().enumerate() {
                if w != 0.0 {
                    channels.push(ic as u32);
                    values.push(w);
                }
            }
            starts.push(values.len());
        }
        let bias = match bias {
            Some(b) => {
                assert!(b.len() >= cout, "conv2d: bias too short");
                b[..cout].to_vec()
            }
            None => vec![0.0; cout],
        };
        SparseConv1x1 {
            p: *p,
            starts,
            channels,
            values,
            bias,
        }
    }

    pub fn params(&self) -> &ConvParams {
        &self.p
    }

    /// Non-zero weights kept.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// The fraction of the filter's weights that are zero.
    pub fn sparsity(&self) -> f32 {
        let total = self.p.filter_len();
        if total == 0 {
            return 0.0;
        }
        1.0 - (self.nnz() as f64 / total as f64) as f32
    }

    /// Bytes held by the compressed weights and bias.
    pub fn packed_bytes(&self) -> usize {
        self.starts.len() * 8
            + self.channels.len() * 4
            + self.values.len() * 4
            + self.bias.len() * 4
    }

    /// Floats of scratch one thread uses at most (the transposed input block and the
    /// output tile), kept per thread between runs like the dense kernel's im2col block.
    pub fn scratch_len(&self) -> usize {
        scratch_len(self.p.geom.in_c, MAX_BLOCK_PIXELS)
    }

    /// Runs the conv with the ISA chosen by [`cpu::selected_isa`].
    pub fn run(&self, input: &[f32], output: &mut [f32], par: Parallelism) {
        self.run_isa(cpu::selected_isa(), input, output, par)
    }

    /// Runs with a given ISA (capped to what the CPU supports).
    pub fn run_isa(&self, isa: Isa, input: &[f32], output: &mut [f32], par: Parallelism) {
        let p = &self.p;
        assert!(input.len() >= p.input_len(), "conv2d: input too short");
        assert!(output.len() >= p.output_len(), "conv2d: output too short");
        let (cin, cout) = (p.geom.in_c, p.geom.out_c);
        let m = p.geom.pixels();
        if m == 0 || cout == 0 {
            return;
        }
        let output = &mut output[..m * cout];
        let mut isa = cpu::clamp_to_detected(isa);
        if isa == Isa::Avx512 && narrowing(cin, cout) {
            // Measured faster on 576 → 96 (16×16 pixels, 75% zeros: 187 µs against
            // 251 µs), as fast as AVX-512 on the widening shapes.
            isa = Isa::Avx2;
        }
        let pb = match isa {
            Isa::Avx512 => P512,
            Isa::Avx2 => P256,
            Isa::Portable => PPORT,
        };
        let ns = self.nnz().max(cout) * m / SPARSE_MACS_PER_NS;
        let blocks = m.div_ceil(pb);
        let tasks = parallel::task_count(par, blocks, ns);
        let per = blocks.div_ceil(tasks) * pb;
        let one = |ci: usize, out: &mut [f32]| {
            let r0 = ci * per;
            let rows = out.len() / cout;
            let x = &input[r0 * cin..(r0 + rows) * cin];
            SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                let need = scratch_len(cin, pb);
                if s.len() < need {
                    s.resize(need, 0.0);
                }
                let (xt, tile) = s[..need].split_at_mut(cin * pb);
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => x86::rows_avx512(self, x, out, rows, xt, tile),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => x86::rows_avx2(self, x, out, rows, xt, tile),
                    _ => self.rows_portable(x, out, rows, xt),
                }
            })
        };
        parallel::for_each_chunk_mut(par, output, per * cout, &one);
    }

    /// The non-zeros of output channel `oc`: input channels and values.
    fn row(&self, oc: usize) -> (&[u32], &[f32]) {
        let r = self.starts[oc]..self.starts[oc + 1];
        (&self.channels[r.clone()], &self.values[r])
    }

    /// Portable path: blocks of [`PPORT`] pixels, plain loops.
    fn rows_portable(&self, x: &[f32], out: &mut [f32], rows: usize, xt: &mut [f32]) {
        const P: usize = PPORT;
        let (cin, cout) = (self.p.geom.in_c, self.p.geom.out_c);
        let (lo, hi) = (self.p.act_min, self.p.act_max);
        for b0 in (0..rows).step_by(P) {
            let np = P.min(rows - b0);
            for i in 0..np {
                let src = &x[(b0 + i) * cin..(b0 + i + 1) * cin];
                for (d, &v) in xt.iter_mut().skip(i).step_by(P).zip(src) {
                    *d = v;
                }
            }
            for oc in 0..cout {
                let (chs, ws) = self.row(oc);
                let mut acc = [0.0f32; P];
                for (&ic, &w) in chs.iter().zip(ws) {
                    let xr: &[f32; P] = xt[ic as usize * P..][..P].try_into().expect("P");
                    for (a, &v) in acc.iter_mut().zip(xr) {
                        *a += w * v;
                    }
                }
                let b = self.bias[oc];
                for (i, &a) in acc.iter().enumerate().take(np) {
                    out[(b0 + i) * cout + oc] = (a + b).max(lo).min(hi);
                }
            }
        }
    }
}

/// Scratch floats of one thread: `in_c × P` transposed inputs, a 16 × `P` tile.
fn scratch_len(cin: usize, pb: usize) -> usize {
    (cin + TILE_OC) * pb
}

thread_local! {
    /// Transposed input block and output tile of this thread.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX-512 and AVX2 blocks. Reached only through `run_isa`, which caps the ISA at
    //! what the CPU reports, and only with the lengths `rows_*` assert.

    use std::arch::x86_64::*;

    use super::{P256, P512, SparseConv1x1, TILE_OC};

    /// Accumulator sets of the AVX-512 channel loop.
    const UNROLL512: usize = 4;

    /// Asserts what every pointer access of the blocks relies on.
    fn check(
        k: &SparseConv1x1,
        x: &[f32],
        out: &[f32],
        rows: usize,
        xt: &[f32],
        tile: &[f32],
        pb: usize,
    ) {
        let (cin, cout) = (k.p.geom.in_c, k.p.geom.out_c);
        assert!(x.len() >= rows * cin && out.len() >= rows * cout);
        assert!(xt.len() >= cin * pb && tile.len() >= TILE_OC * pb);
        assert_eq!(k.starts.len(), cout + 1);
        assert!(k.channels.len() == k.values.len() && k.bias.len() == cout);
        // Every stored input channel is below `in_c` (built so by `new`).
        debug_assert!(k.channels.iter().all(|&c| (c as usize) < cin));
    }

    pub(super) fn rows_avx512(
        k: &SparseConv1x1,
        x: &[f32],
        out: &mut [f32],
        rows: usize,
        xt: &mut [f32],
        tile: &mut [f32],
    ) {
        // 32-pixel blocks (16-pixel ones measured slower on 320 → 1280), except a last
        // block of at most 16 pixels (a 4×4 image): one zmm per channel, not two.
        let tail = rows % P512;
        let full = if tail != 0 && tail <= 16 {
            rows - tail
        } else {
            rows
        };
        let (cin, cout) = (k.p.geom.in_c, k.p.geom.out_c);
        let (x, x_tail) = x.split_at(full * cin);
        let (out, out_tail) = out.split_at_mut(full * cout);
        check(k, x, out, full, xt, tile, P512);
        // SAFETY: the caller capped the ISA to the CPU's, so AVX-512F, AVX2 and FMA
        // are present; `check` bounds the slices as `block512` requires.
        unsafe { block512::<{ P512 / 16 }>(k, x, out, full, xt, tile) }
        if full < rows {
            check(k, x_tail, out_tail, rows - full, xt, tile, 16);
            // SAFETY: as above, for the 16-pixel block.
            unsafe { block512::<1>(k, x_tail, out_tail, rows - full, xt, tile) }
        }
    }

    pub(super) fn rows_avx2(
        k: &SparseConv1x1,
        x: &[f32],
        out: &mut [f32],
        rows: usize,
        xt: &mut [f32],
        tile: &mut [f32],
    ) {
        check(k, x, out, rows, xt, tile, P256);
        // SAFETY: as above, with AVX2 and FMA.
        unsafe { block256(k, x, out, rows, xt, tile) }
    }

    /// Transposes the 16 × 16 floats of `r` in registers.
    #[target_feature(enable = "avx512f")]
    fn transpose16(r: &mut [__m512; 16]) {
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // Per 128-bit lane L, r[4q + c] now holds column 4L + c of rows 4q..4q+4.
        for q in 0..4 {
            let (a, b, c, d) = (t[4 * q], t[4 * q + 1], t[4 * q + 2], t[4 * q + 3]);
            r[4 * q] = _mm512_shuffle_ps::<0x44>(a, c);
            r[4 * q + 1] = _mm512_shuffle_ps::<0xEE>(a, c);
            r[4 * q + 2] = _mm512_shuffle_ps::<0x44>(b, d);
            r[4 * q + 3] = _mm512_shuffle_ps::<0xEE>(b, d);
        }
        for h in 0..2 {
            for c in 0..4 {
                let (a, b) = (r[8 * h + c], r[8 * h + 4 + c]);
                t[8 * h + c] = _mm512_shuffle_f32x4::<0x88>(a, b);
                t[8 * h + 4 + c] = _mm512_shuffle_f32x4::<0xDD>(a, b);
            }
        }
        for c in 0..8 {
            r[c] = _mm512_shuffle_f32x4::<0x88>(t[c], t[8 + c]);
            r[8 + c] = _mm512_shuffle_f32x4::<0xDD>(t[c], t[8 + c]);
        }
    }

    /// Transposes the 8 × 8 floats of `r` in registers.
    #[target_feature(enable = "avx2")]
    fn transpose8(r: &mut [__m256; 8]) {
        let mut t = [_mm256_setzero_ps(); 8];
        for i in 0..4 {
            t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let mut s = [_mm256_setzero_ps(); 8];
        for q in 0..2 {
            let (a, b, c, d) = (t[4 * q], t[4 * q + 1], t[4 * q + 2], t[4 * q + 3]);
            s[4 * q] = _mm256_shuffle_ps::<0x44>(a, c);
            s[4 * q + 1] = _mm256_shuffle_ps::<0xEE>(a, c);
            s[4 * q + 2] = _mm256_shuffle_ps::<0x44>(b, d);
            s[4 * q + 3] = _mm256_shuffle_ps::<0xEE>(b, d);
        }
        for c in 0..4 {
            r[c] = _mm256_permute2f128_ps::<0x20>(s[c], s[4 + c]);
            r[4 + c] = _mm256_permute2f128_ps::<0x31>(s[c], s[4 + c]);
        }
    }

    /// All pixel blocks of a task on AVX-512: `16 · NV` pixels per block, 16 output
    /// channels per tile.
    ///
    /// # Safety
    /// The CPU has AVX-512F, AVX2 and FMA; `check(.., 16 * NV)` passed.
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn block512<const NV: usize>(
        k: &SparseConv1x1,
        x: &[f32],
        out: &mut [f32],
        rows: usize,
        xt: &mut [f32],
        tile: &mut [f32],
    ) {
        let pb = 16 * NV;
        let (cin, cout) = (k.p.geom.in_c, k.p.geom.out_c);
        let vmin = _mm512_set1_ps(k.p.act_min);
        let vmax = _mm512_set1_ps(k.p.act_max);
        let (xp, xtp, tp, op) = (
            x.as_ptr(),
            xt.as_mut_ptr(),
            tile.as_mut_ptr(),
            out.as_mut_ptr(),
        );
        let (chp, vp) = (k.channels.as_ptr(), k.values.as_ptr());
        // SAFETY: `check` bounds every access. Input reads: rows `b0 + i < rows` of
        // `cin` floats, lanes past `cin` masked off (masked lanes do not fault).
        // Transposed block: `xt[ic * pb + i]`, `ic < cin`, `i < pb`. Tile: 16 rows of
        // `pb`. Output writes: rows `b0 + i < rows`, channels `oc0 + j < cout` (masked).
        // Non-zeros: `starts[oc]..starts[oc + 1]` within `channels`/`values`, each
        // channel below `cin`.
        unsafe {
            let mut b0 = 0;
            while b0 < rows {
                let np = pb.min(rows - b0);
                // Transpose [np][cin] → [cin][pb], 16 × 16 at a time.
                let mut ic0 = 0;
                while ic0 < cin {
                    let w = 16.min(cin - ic0);
                    let mask = ((1u32 << w) - 1) as u16;
                    for h in 0..pb / 16 {
                        if h * 16 >= np {
                            break;
                        }
                        let mut r = [_mm512_setzero_ps(); 16];
                        for (i, v) in r.iter_mut().enumerate().take(np - h * 16) {
                            let src = xp.add((b0 + h * 16 + i) * cin + ic0);
                            *v = _mm512_maskz_loadu_ps(mask, src);
                        }
                        transpose16(&mut r);
                        for (c, v) in r.iter().enumerate().take(w) {
                            _mm512_storeu_ps(xtp.add((ic0 + c) * pb + h * 16), *v);
                        }
                    }
                    ic0 += 16;
                }
                let mut oc0 = 0;
                while oc0 < cout {
                    let g = TILE_OC.min(cout - oc0);
                    for j in 0..g {
                        let oc = oc0 + j;
                        let (s, e) = (k.starts[oc], k.starts[oc + 1]);
                        // Four sets of accumulators (non-zeros t ≡ 0..3 mod 4): four
                        // independent FMA chains per vector.
                        let mut acc = [[_mm512_setzero_ps(); NV]; UNROLL512];
                        let mut t = s;
                        while t + UNROLL512 <= e {
                            for (u, a) in acc.iter_mut().enumerate() {
                                let xr = xtp.add(*chp.add(t + u) as usize * pb);
                                let w = _mm512_set1_ps(*vp.add(t + u));
                                for (v, av) in a.iter_mut().enumerate() {
                                    *av = _mm512_fmadd_ps(w, _mm512_loadu_ps(xr.add(16 * v)), *av);
                                }
                            }
                            t += UNROLL512;
                        }
                        while t < e {
                            let xr = xtp.add(*chp.add(t) as usize * pb);
                            let w = _mm512_set1_ps(*vp.add(t));
                            for (v, av) in acc[0].iter_mut().enumerate() {
                                *av = _mm512_fmadd_ps(w, _mm512_loadu_ps(xr.add(16 * v)), *av);
                            }
                            t += 1;
                        }
                        let b = _mm512_set1_ps(k.bias[oc]);
                        let [s0, s1, s2, s3] = acc;
                        let sets = s0.into_iter().zip(s1).zip(s2).zip(s3);
                        for (v, (((x0, x1), x2), x3)) in sets.enumerate() {
                            let sum = _mm512_add_ps(_mm512_add_ps(x0, x1), _mm512_add_ps(x2, x3));
                            let y = _mm512_add_ps(sum, b);
                            let y = _mm512_min_ps(_mm512_max_ps(y, vmin), vmax);
                            _mm512_storeu_ps(tp.add(j * pb + 16 * v), y);
                        }
                    }
                    // Tile [16 oc][pb px] → output rows, 16 pixels at a time.
                    let mask = ((1u32 << g) - 1) as u16;
                    for h in 0..pb / 16 {
                        if h * 16 >= np {
                            break;
                        }
                        let mut r = [_mm512_setzero_ps(); 16];
                        for (j, v) in r.iter_mut().enumerate() {
                            *v = _mm512_loadu_ps(tp.add(j * pb + h * 16));
                        }
                        transpose16(&mut r);
                        for (i, v) in r.iter().enumerate().take(np - h * 16) {
                            let dst = op.add((b0 + h * 16 + i) * cout + oc0);
                            _mm512_mask_storeu_ps(dst, mask, *v);
                        }
                    }
                    oc0 += TILE_OC;
                }
                b0 += pb;
            }
        }
    }

    /// Lanes `0..n` (n ≤ 8) of an AVX2 mask.
    #[target_feature(enable = "avx2")]
    fn mask256(n: usize) -> __m256i {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }

    /// All pixel blocks of a task on AVX2: 16 pixels per block, 8 output channels per
    /// tile.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `check(.., P256)` passed.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block256(
        k: &SparseConv1x1,
        x: &[f32],
        out: &mut [f32],
        rows: usize,
        xt: &mut [f32],
        tile: &mut [f32],
    ) {
        const P: usize = P256;
        const G: usize = 8;
        let (cin, cout) = (k.p.geom.in_c, k.p.geom.out_c);
        let vmin = _mm256_set1_ps(k.p.act_min);
        let vmax = _mm256_set1_ps(k.p.act_max);
        let (xp, xtp, tp, op) = (
            x.as_ptr(),
            xt.as_mut_ptr(),
            tile.as_mut_ptr(),
            out.as_mut_ptr(),
        );
        let (chp, vp) = (k.channels.as_ptr(), k.values.as_ptr());
        // SAFETY: as in `block512`, with 8 × 8 transposes and 8-channel tiles (within
        // the 16-row tile).
        unsafe {
            let mut b0 = 0;
            while b0 < rows {
                let np = P.min(rows - b0);
                let mut ic0 = 0;
                while ic0 < cin {
                    let w = G.min(cin - ic0);
                    let mask = mask256(w);
                    for h in 0..P / G {
                        if h * G >= np {
                            break;
                        }
                        let mut r = [_mm256_setzero_ps(); G];
                        for (i, v) in r.iter_mut().enumerate().take(np - h * G) {
                            let src = xp.add((b0 + h * G + i) * cin + ic0);
                            *v = _mm256_maskload_ps(src, mask);
                        }
                        transpose8(&mut r);
                        for (c, v) in r.iter().enumerate().take(w) {
                            _mm256_storeu_ps(xtp.add((ic0 + c) * P + h * G), *v);
                        }
                    }
                    ic0 += G;
                }
                let mut oc0 = 0;
                while oc0 < cout {
                    let g = G.min(cout - oc0);
                    for j in 0..g {
                        let oc = oc0 + j;
                        let (s, e) = (k.starts[oc], k.starts[oc + 1]);
                        let z = _mm256_setzero_ps();
                        let (mut a0, mut a1, mut c0, mut c1) = (z, z, z, z);
                        let mut t = s;
                        while t + 2 <= e {
                            let x0 = xtp.add(*chp.add(t) as usize * P);
                            let x1 = xtp.add(*chp.add(t + 1) as usize * P);
                            let w0 = _mm256_set1_ps(*vp.add(t));
                            let w1 = _mm256_set1_ps(*vp.add(t + 1));
                            a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x0), a0);
                            a1 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x0.add(8)), a1);
                            c0 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x1), c0);
                            c1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x1.add(8)), c1);
                            t += 2;
                        }
                        if t < e {
                            let x0 = xtp.add(*chp.add(t) as usize * P);
                            let w0 = _mm256_set1_ps(*vp.add(t));
                            a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x0), a0);
                            a1 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x0.add(8)), a1);
                        }
                        let b = _mm256_set1_ps(k.bias[oc]);
                        let a0 = _mm256_add_ps(_mm256_add_ps(a0, c0), b);
                        let a1 = _mm256_add_ps(_mm256_add_ps(a1, c1), b);
                        let a0 = _mm256_min_ps(_mm256_max_ps(a0, vmin), vmax);
                        let a1 = _mm256_min_ps(_mm256_max_ps(a1, vmin), vmax);
                        _mm256_storeu_ps(tp.add(j * P), a0);
                        _mm256_storeu_ps(tp.add(j * P + 8), a1);
                    }
                    let mask = mask256(g);
                    for h in 0..P / G {
                        if h * G >= np {
                            break;
                        }
                        let mut r = [_mm256_setzero_ps(); G];
                        for (j, v) in r.iter_mut().enumerate() {
                            *v = _mm256_loadu_ps(tp.add(j * P + h * G));
                        }
                        transpose8(&mut r);
                        for (i, v) in r.iter().enumerate().take(np - h * G) {
                            let dst = op.add((b0 + h * G + i) * cout + oc0);
                            _mm256_maskstore_ps(dst, mask, *v);
                        }
                    }
                    oc0 += G;
                }
                b0 += P;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::kernels::conv::conv2d_reference;
    use crate::exec::kernels::cpu::{available_isas, with_isa};
    use crate::exec::kernels::geometry::Geometry;
    use crate::exec::kernels::test_util::{Rng, assert_close};

    fn params(
        batch: usize,
        hw: (usize, usize),
        cin: usize,
        cout: usize,
        act: (f32, f32),
    ) -> ConvParams {
        ConvParams {
            geom: Geometry {
                batch,
                in_h: hw.0,
                in_w: hw.1,
                in_c: cin,
                out_h: hw.0,
                out_w: hw.1,
                out_c: cout,
                k_h: 1,
                k_w: 1,
                stride_h: 1,
                stride_w: 1,
                dilation_h: 1,
                dilation_w: 1,
                pad_top: 0,
                pad_left: 0,
                depth_multiplier: 1,
            },
            act_min: act.0,
            act_max: act.1,
        }
    }

    /// A random filter with about `sparsity` exact zeros, and output channel 1 (when
    /// there is one) all zeros.
    fn sparse_filter(rng: &mut Rng, p: &ConvParams, sparsity: f64) -> Vec<f32> {
        let mut f = rng.f32s(p.filter_len());
        for v in f.iter_mut() {
            if rng.unit() < sparsity {
                *v = 0.0;
            }
        }
        if p.geom.out_c > 1 {
            let cin = p.geom.in_c;
            f[cin..2 * cin].fill(0.0);
        }
        f
    }

    fn check(p: &ConvParams, sparsity: f64, seed: u64) {
        let mut rng = Rng::new(seed);
        let input = rng.f32s(p.input_len());
        let filter = sparse_filter(&mut rng, p, sparsity);
        let bias = rng.f32s(p.geom.out_c);
        for with_bias in [true, false] {
            let bias = with_bias.then_some(bias.as_slice());
            let mut want = vec![0.0; p.output_len()];
            conv2d_reference(p, &input, &filter, bias, &mut want);
            let sparse = SparseConv1x1::new(p, &filter, bias);
            assert_eq!(sparse.nnz(), filter.iter().filter(|&&v| v != 0.0).count());
            for isa in available_isas() {
                for threads in [1, 2] {
                    let mut got = vec![f32::NAN; p.output_len()];
                    with_isa(isa, || {
                        crate::exec::parallel::split_everything(|| {
                            sparse.run(&input, &mut got, Parallelism { threads })
                        })
                    });
                    let what = format!("{isa:?} t{threads} s{sparsity} {p:?}");
                    assert_close(&got, &want, p.geom.in_c, &what);
                }
            }
        }
    }

    const NONE: (f32, f32) = (f32::NEG_INFINITY, f32::INFINITY);
    const ACTS: [(f32, f32); 4] = [NONE, (0.0, f32::INFINITY), (0.0, 6.0), (-1.0, 1.0)];

    #[test]
    fn matches_reference_on_odd_shapes() {
        let shapes = [
            (1, (7, 9), 24, 37),
            (2, (5, 5), 17, 16),
            (1, (13, 3), 40, 33),
            (1, (1, 1), 3, 1),
            (1, (11, 11), 64, 70),
            (1, (4, 4), 96, 24),
            (1, (8, 8), 33, 130),
            (3, (3, 5), 5, 9),
            (1, (6, 11), 1, 17),
        ];
        let mut seed = 1;
        for (si, &(b, hw, cin, cout)) in shapes.iter().enumerate() {
            for sparsity in [0.0, 0.5, 0.9] {
                let act = ACTS[(si + seed as usize) % ACTS.len()];
                check(&params(b, hw, cin, cout, act), sparsity, seed);
                seed += 1;
            }
        }
    }

    #[test]
    fn every_activation_and_all_zero_filter() {
        for (i, act) in ACTS.into_iter().enumerate() {
            check(&params(1, (9, 7), 48, 40, act), 0.75, 50 + i as u64);
            check(&params(1, (5, 3), 19, 21, act), 1.0, 60 + i as u64);
        }
    }

    #[test]
    fn larger_layers() {
        check(&params(1, (16, 16), 96, 576, (0.0, 6.0)), 0.75, 70);
        check(&params(1, (8, 8), 576, 96, NONE), 0.9, 71);
    }

    /// `exec/memory.rs` plans a float 1×1 conv as the dense kernel's panels and
    /// im2col scratch: the sparse kernel at the threshold must fit in them.
    #[test]
    fn memory_plan_formula_covers_it() {
        for (n, k) in [
            (1, 1),
            (1, 3),
            (5, 16),
            (64, 16),
            (96, 576),
            (1280, 320),
            (3, 4000),
        ] {
            let p = params(1, (2, 2), k, n, NONE);
            let total = n * k;
            let zeros = (SPARSE_MIN_ZERO_FRACTION as f64 * total as f64).ceil() as usize;
            let mut filter = vec![1.0f32; total];
            filter[..zeros].fill(0.0);
            assert!(zero_fraction(&filter) >= SPARSE_MIN_ZERO_FRACTION);
            let s = SparseConv1x1::new(&p, &filter, Some(&vec![0.5; n]));
            let (np, kp) = (n.next_multiple_of(64), k.next_multiple_of(16));
            let dense_plan = np * kp * 4 + np * 4;
            assert!(
                s.packed_bytes() <= dense_plan,
                "{n}x{k}: {}",
                s.packed_bytes()
            );
            assert!(
                s.scratch_len() * 4 <= k * 160 + (256 << 10) + 4096,
                "{n}x{k}"
            );
        }
    }

    #[test]
    fn degenerate_shapes() {
        // Zero input depth: output is clamp(bias); zero pixels: nothing to do.
        let mut p = params(1, (3, 3), 1, 5, (0.0, 6.0));
        p.geom.in_c = 0;
        let bias = [1.0, -1.0, 7.0, 0.5, 2.0];
        let k = SparseConv1x1::new(&p, &[], Some(&bias));
        for isa in available_isas() {
            let mut out = vec![f32::NAN; p.output_len()];
            k.run_isa(isa, &[], &mut out, Parallelism::SINGLE);
            for px in out.chunks(5) {
                assert_eq!(px, &[1.0, 0.0, 6.0, 0.5, 2.0], "{isa:?}");
            }
        }
        let mut q = params(1, (3, 3), 2, 5, NONE);
        q.geom.out_h = 0;
        q.geom.in_h = 0;
        let k = SparseConv1x1::new(&q, &vec![0.0; q.filter_len()], None);
        k.run(&[], &mut [], Parallelism { threads: 2 });
        assert_eq!(zero_fraction(&[]), 0.0);
        assert_eq!(zero_fraction(&[0.0, 1.0, -0.0, 2.0]), 0.5);
    }
}

//! SIMD int16x8 GEMM for conv/FC: `out[r][c] = Σ_k a[r][k] · w[c][k]` in exact int64.
//!
//! Weights are packed in panels of 16 output channels with the reduction axis paired:
//! `[panel][k/2][channel][2]`, so one 64-byte load holds two k steps of 16 channels and
//! `vpmaddwd` against a broadcast activation pair gives 16 per-channel int32 partial
//! sums (no horizontal reductions). A tile is 4 activation rows × 16 (AVX2) or 32
//! (AVX-512) channels. Every product is at most 2^15 · max|w| in magnitude, so int32
//! accumulators are flushed to int64 after `block` pairs, chosen at packing so that a
//! block cannot overflow: the sums equal the scalar reference exactly.

use crate::exec::kernels::Parallelism;
use crate::exec::kernels::cpu::{self, Isa};
use crate::exec::kernels::qconv::params::{QElem, QParams};
use crate::exec::kernels::qconv::simd::{dispatch, isa_now, multiversion};
use crate::exec::parallel;
use crate::quant::fixed_point::{Multiplier, float_requant, mbqm64};

/// int16x8 GEMM: exact int64 sums. With AVX2/AVX-512 the weights are packed for
/// the panel tiles below ([`WidePacked`]); otherwise `[n][kp]` as int16 for plain dot products.
pub(in crate::exec::kernels::qconv) struct Wide {
    isa: Isa,
    k: usize,
    kp: usize,
    n: usize,
    w: Vec<i16>,
    simd: Option<WidePacked>,
    rq: Requant64,
    bias: Vec<i64>,
    mult: Vec<Multiplier>,
    /// FULLY_CONNECTED's f64 output scales (see [`QParams`]).
    real: Option<Vec<f64>>,
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
        let acc = dot16(a, &wd.w[c * wd.kp..(c + 1) * wd.kp]).wrapping_add(wd.bias[c]);
        let v = match &wd.real {
            Some(r) => float_requant(acc, r[c]),
            None => mbqm64(acc, wd.mult[c]),
        };
        *o = T::from_i32(v.clamp(wd.act_min, wd.act_max));
    }
}
multiversion!(wide_row, wide_row_avx2, wide_row_avx512, <T: QElem>(wd: &Wide, a: &[i16], out: &mut [T]));

impl Wide {
    pub(super) fn new(
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
            rq: Requant64::new(isa, bias.clone(), &q.mult, q.act_min, q.act_max)
                .with_float_scales(q.float_requant.as_deref()),
            bias,
            mult: q.mult.clone(),
            real: q.float_requant.clone(),
            act_min: q.act_min,
            act_max: q.act_max,
        }
    }

    /// Bytes of packed weights (portable `[n][kp]` int16, or the SIMD panels).
    pub(super) fn packed_bytes(&self) -> usize {
        self.w.len() * 2 + self.simd.as_ref().map_or(0, |p| p.packed_bytes())
    }

    pub(super) fn run<T: QElem>(
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
    /// The SIMD path: `ROWS` output rows per tile.
    fn run_tiles<T: QElem>(
        &self,
        sp: &WidePacked,
        fill: &(dyn Fn(usize, &mut [T]) + Sync),
        out: &mut [T],
        par: Parallelism,
    ) {
        let (n, pairs) = (self.n, sp.pairs);
        let nc = sp.panels * PANEL;
        let tile = |x: &mut Vec<T>, a: &mut Vec<i32>, acc: &mut Vec<i64>, t: usize, o: &mut [T]| {
            let rows = o.len() / n;
            for r in 0..ROWS {
                let ar = &mut a[r * pairs..(r + 1) * pairs];
                if r < rows {
                    fill(t * ROWS + r, x);
                    // Whole pairs in a loop the compiler vectorizes; an odd last value
                    // pairs with 0.
                    let mut it = x.chunks_exact(2);
                    for (d, p) in ar.iter_mut().zip(&mut it) {
                        *d = pair(p[0].to_i32() as i16, p[1].to_i32() as i16);
                    }
                    if let [last] = it.remainder() {
                        ar[pairs - 1] = pair(last.to_i32() as i16, 0);
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
                vec![0i32; ROWS * pairs],
                vec![0i64; ROWS * nc],
            )
        };
        // Whole tiles per task, on the engine's pool; scratch once per task.
        let m = out.len() / n;
        let tiles = m.div_ceil(ROWS);
        let macs = m * n * self.k;
        let tasks = parallel::task_count(par, tiles, macs / parallel::GEMM_MACS_PER_NS);
        let per_task = tiles.div_ceil(tasks.max(1));
        parallel::for_each_chunk_mut(par, out, per_task * ROWS * n, &|ci, chunk| {
            let (mut x, mut a, mut acc) = init();
            for (j, o) in chunk.chunks_mut(ROWS * n).enumerate() {
                tile(&mut x, &mut a, &mut acc, ci * per_task + j, o);
            }
        });
    }
}

/// Channels per packed panel.
pub(in crate::exec::kernels::qconv) const PANEL: usize = 16;
/// Activation rows per tile.
pub(in crate::exec::kernels::qconv) const ROWS: usize = 4;

/// Weights packed for the SIMD tiles.
pub(in crate::exec::kernels::qconv) struct WidePacked {
    /// `[panel][pair][PANEL][2]`, zero-padded in k and channels.
    w: Vec<i16>,
    /// k/2 rounded up.
    pub pairs: usize,
    pub panels: usize,
    /// Pairs per int32 accumulation block.
    block: usize,
    /// AVX-512 VNNI present: `vpdpwssd` fuses the multiply-add and the accumulation.
    vnni: bool,
}

impl WidePacked {
    pub fn new(n: usize, k: usize, w: impl Fn(usize, usize) -> i32) -> Self {
        let pairs = k.div_ceil(2);
        let panels = n.div_ceil(PANEL);
        let mut packed = vec![0i16; panels * pairs * PANEL * 2];
        let mut max_w: i64 = 0;
        for c in 0..n {
            let (p, cc) = (c / PANEL, c % PANEL);
            for kk in 0..k {
                let v = w(c, kk);
                max_w = max_w.max((v as i64).abs());
                packed[((p * pairs + kk / 2) * PANEL + cc) * 2 + kk % 2] = v as i16;
            }
        }
        // One pair adds at most 2 · 2^15 · max|w|.
        let per_pair = 2 * 32768 * max_w.max(1);
        let block = ((i32::MAX as i64 / per_pair).clamp(1, 1 << 20)) as usize;
        WidePacked {
            w: packed,
            pairs,
            panels,
            block,
            vnni: cpu::features().avx512vnni,
        }
    }

    pub fn packed_bytes(&self) -> usize {
        self.w.len() * 2
    }

    /// [`WidePacked::tile`] then `rq` on the first `rows` rows into `out` (`rows × n`
    /// values); on AVX-512 the requantization runs on the tile's registers.
    pub fn tile_requant<T: QElem>(
        &self,
        isa: Isa,
        a: &[i32],
        acc: &mut [i64],
        rq: &Requant64,
        out: &mut [T],
        rows: usize,
    ) {
        let nc = self.panels * PANEL;
        let n = out.len() / rows.max(1);
        assert!(
            rows <= ROWS && out.len() == rows * n && n <= nc && rq.m16.len() >= nc,
            "fused wide tile size"
        );
        assert!(
            a.len() >= ROWS * self.pairs && acc.len() >= ROWS * nc,
            "wide tile size"
        );
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 && rq.simd && self.pairs > 0 && size_of::<T>() == 2 && T::SIGNED {
            let f = x86::Fused {
                rq,
                out: out.as_mut_ptr().cast::<i16>(),
                n,
                rows,
            };
            // SAFETY: AVX-512F/BW/DQ were detected (`rq.simd`), VNNI when `self.vnni`;
            // the sizes are checked above; T is i16.
            unsafe {
                if self.vnni {
                    x86::tile_fused_avx512_vnni(self, a, acc, f)
                } else {
                    x86::tile_fused_avx512(self, a, acc, f)
                }
            }
            return;
        }
        self.tile(isa, a, acc);
        for (r, orow) in out.chunks_mut(n.max(1)).enumerate().take(rows) {
            rq.row(&acc[r * nc..r * nc + n], orow);
        }
    }

    /// Sums of `ROWS` activation rows (`a`: `ROWS × pairs` packed pairs, low half the
    /// even k) against every channel: `acc[r][c]` for `c < panels · PANEL`.
    pub fn tile(&self, isa: Isa, a: &[i32], acc: &mut [i64]) {
        let nc = self.panels * PANEL;
        assert!(
            a.len() >= ROWS * self.pairs && acc.len() >= ROWS * nc,
            "wide tile size"
        );
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: the ISA was clamped to the CPU's features when packing; the
            // buffers hold the sizes checked above.
            unsafe {
                match isa {
                    // The AVX-512 tiles store their first block rather than add it.
                    Isa::Avx512 if self.pairs > 0 => {
                        return if self.vnni {
                            x86::tile_avx512_vnni(self, a, acc)
                        } else {
                            x86::tile_avx512(self, a, acc)
                        };
                    }
                    Isa::Avx2 => {
                        acc[..ROWS * nc].fill(0);
                        return x86::tile_avx2(self, a, acc);
                    }
                    _ => {}
                }
            }
        }
        let _ = isa;
        for r in 0..ROWS {
            for c in 0..nc {
                let (p, cc) = (c / PANEL, c % PANEL);
                let mut s = 0i64;
                for j in 0..self.pairs {
                    let x = a[r * self.pairs + j];
                    let w = &self.w[((p * self.pairs + j) * PANEL + cc) * 2..][..2];
                    s += (x as i16) as i64 * w[0] as i64 + ((x >> 16) as i16) as i64 * w[1] as i64;
                }
                acc[r * nc + c] = s;
            }
        }
    }
}

/// The int16x8 requantization of a row of channels, `mbqm64(acc + bias)` clamped,
/// with the per-channel constants of `mbqm64` precomputed (and vectorized with
/// AVX-512F/DQ/BW when available).
#[derive(Clone)]
pub(in crate::exec::kernels::qconv) struct Requant64 {
    simd: bool,
    bias: Vec<i64>,
    mult: Vec<Multiplier>,
    /// `mbqm64`'s 16-bit multiplier, right shift and rounding term per channel.
    m16: Vec<i64>,
    shift: Vec<i64>,
    round: Vec<i64>,
    act_min: i32,
    act_max: i32,
    /// FULLY_CONNECTED's f64 output scales: no SIMD, [`float_requant`] per channel.
    real: Option<Vec<f64>>,
}

impl Requant64 {
    pub fn new(isa: Isa, bias: Vec<i64>, mult: &[Multiplier], act_min: i32, act_max: i32) -> Self {
        let f = cpu::features();
        let simd = isa == Isa::Avx512 && f.avx512f && f.avx512dq && f.avx512bw;
        // mbqm64's constants, applied to x = 1 << t so the test below is exact.
        let m16: Vec<i64> = mult
            .iter()
            .map(|m| {
                if m.m < 0x7FFF_0000 {
                    (m.m as i64 + (1 << 15)) >> 16
                } else {
                    0x7FFF
                }
            })
            .collect();
        let shift: Vec<i64> = mult.iter().map(|m| (15 - m.shift) as i64).collect();
        let round: Vec<i64> = shift
            .iter()
            .map(|&t| 1i64 << (t - 1).clamp(0, 62))
            .collect();
        // Zero-padded to whole blocks of 32 channels, so that the SIMD kernels load the
        // constants of a partial block without bounds checks.
        let pad = |mut v: Vec<i64>| {
            v.resize(v.len().next_multiple_of(32), 0);
            v
        };
        Requant64 {
            simd,
            real: None,
            bias: pad(bias),
            mult: mult.to_vec(),
            m16: pad(m16),
            shift: pad(shift),
            round: pad(round),
            act_min,
            act_max,
        }
    }

    /// Requantize with FULLY_CONNECTED's f64 output scales instead (the SIMD paths,
    /// fused ones included, implement only the multiplier, so they are switched off).
    pub fn with_float_scales(mut self, real: Option<&[f64]>) -> Self {
        if let Some(r) = real {
            self.real = Some(r.to_vec());
            self.simd = false;
        }
        self
    }

    /// `out[c] = clamp(mbqm64(acc[c] + bias[c]))` for the leading `out.len()` channels.
    pub fn row<T: QElem>(&self, acc: &[i64], out: &mut [T]) {
        let n = out.len();
        assert!(acc.len() >= n && self.bias.len() >= n, "requant row size");
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if self.simd && std::mem::size_of::<T>() == 2 && T::SIGNED {
            // SAFETY: AVX-512F/DQ/BW were detected; sizes checked above; T is i16.
            done = unsafe { x86::requant64_avx512(self, acc, out) };
        }
        for c in done..n {
            let a = acc[c].wrapping_add(self.bias[c]);
            let v = match &self.real {
                Some(r) => float_requant(a, r[c]),
                None => mbqm64(a, self.mult[c]),
            };
            out[c] = T::from_i32(v.clamp(self.act_min, self.act_max));
        }
    }
}

/// Two int16 values as the int32 lane `vpmaddwd` pairs: `lo` in the low half.
#[inline(always)]
pub(in crate::exec::kernels::qconv) fn pair(lo: i16, hi: i16) -> i32 {
    (lo as u16 as u32 | ((hi as u16 as u32) << 16)) as i32
}

#[cfg(target_arch = "x86_64")]
pub(in crate::exec::kernels::qconv) mod x86 {
    use super::{PANEL, QElem, ROWS, Requant64, WidePacked};
    use std::arch::x86_64::*;

    /// `clamp(mbqm64(x + bias))` of the 16 channels from `c` whose int64 sums are `lo`
    /// (first 8) and `hi`, as 16 int16. Caller guarantees AVX-512F/DQ/BW and
    /// `c + 16 <=` the padded constants' length (a multiple of 32 covering every
    /// channel).
    #[inline(always)]
    pub(in crate::exec::kernels::qconv) unsafe fn requant16(
        q: &Requant64,
        lo: __m512i,
        hi: __m512i,
        c: usize,
    ) -> __m256i {
        // SAFETY: the caller's contract.
        unsafe {
            let mut half = [_mm256_setzero_si256(); 2];
            for (h, (hv, x)) in half.iter_mut().zip([lo, hi]).enumerate() {
                let i = c + 8 * h;
                let x = _mm512_add_epi64(x, _mm512_loadu_si512(q.bias.as_ptr().add(i).cast()));
                let m = _mm512_loadu_si512(q.m16.as_ptr().add(i).cast());
                let r = _mm512_loadu_si512(q.round.as_ptr().add(i).cast());
                let t = _mm512_loadu_si512(q.shift.as_ptr().add(i).cast());
                let p = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mullo_epi64(x, m), r), t);
                // The scalar `as i32` keeps the low 32 bits: vpmovqd truncates.
                *hv = _mm512_cvtepi64_epi32(p);
            }
            let v = _mm512_inserti64x4(_mm512_castsi256_si512(half[0]), half[1], 1);
            let v = _mm512_min_epi32(
                _mm512_max_epi32(v, _mm512_set1_epi32(q.act_min)),
                _mm512_set1_epi32(q.act_max),
            );
            // Clamped to the int16 activation range: vpmovdw truncates exactly.
            _mm512_cvtepi32_epi16(v)
        }
    }

    /// Caller guarantees AVX-512F/DQ/BW, `T` = i16 and `acc` holds `out.len()` values.
    /// Returns how many leading channels it wrote (a multiple of 16).
    #[target_feature(enable = "avx512f,avx512dq,avx512bw")]
    pub(super) unsafe fn requant64_avx512<T: QElem>(
        q: &Requant64,
        acc: &[i64],
        out: &mut [T],
    ) -> usize {
        let n = out.len() / 16 * 16;
        let op = out.as_mut_ptr().cast::<i16>();
        let mut c = 0;
        while c < n {
            // SAFETY: c + 16 <= n <= acc.len() and the constants' length; T is i16.
            unsafe {
                let lo = _mm512_loadu_si512(acc.as_ptr().add(c).cast());
                let hi = _mm512_loadu_si512(acc.as_ptr().add(c + 8).cast());
                _mm256_storeu_si256(op.add(c).cast(), requant16(q, lo, hi, c));
            }
            c += 16;
        }
        n
    }

    /// Caller guarantees AVX-512F/BW and the sizes `tile` checks.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn tile_avx512(p: &WidePacked, a: &[i32], acc: &mut [i64]) {
        // SAFETY: same contract.
        unsafe { tile512::<false>(p, a, acc, None) }
    }

    /// Caller guarantees AVX-512F/BW/VNNI and the sizes `tile` checks.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tile_avx512_vnni(p: &WidePacked, a: &[i32], acc: &mut [i64]) {
        // SAFETY: same contract.
        unsafe { tile512::<true>(p, a, acc, None) }
    }

    /// [`tile_avx512`] with the requantization of the last block fused: writes `out`.
    /// Caller guarantees AVX-512F/BW/DQ (and VNNI when `vnni`), the sizes `tile`
    /// checks and those of [`Fused`].
    #[target_feature(enable = "avx512f,avx512bw,avx512dq")]
    pub(super) unsafe fn tile_fused_avx512(p: &WidePacked, a: &[i32], acc: &mut [i64], f: Fused) {
        // SAFETY: same contract.
        unsafe { tile512::<false>(p, a, acc, Some(f)) }
    }

    /// [`tile_fused_avx512`] with VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vnni")]
    pub(super) unsafe fn tile_fused_avx512_vnni(
        p: &WidePacked,
        a: &[i32],
        acc: &mut [i64],
        f: Fused,
    ) {
        // SAFETY: same contract.
        unsafe { tile512::<true>(p, a, acc, Some(f)) }
    }

    /// Where a fused tile writes: `rows` rows of `n` int16 channels from `out` (row
    /// stride `n`), requantized with `rq` (constants padded to whole 32s).
    pub(super) struct Fused<'a> {
        pub rq: &'a Requant64,
        pub out: *mut i16,
        pub n: usize,
        pub rows: usize,
    }

    /// `s + madd(x, w)`: one `vpdpwssd` with VNNI (no saturation, like the pair).
    #[inline(always)]
    pub(in crate::exec::kernels::qconv) unsafe fn mac<const VNNI: bool>(
        s: __m512i,
        x: __m512i,
        w: __m512i,
    ) -> __m512i {
        // SAFETY: the callers enable AVX-512F/BW, and VNNI when VNNI is true.
        unsafe {
            if VNNI {
                _mm512_dpwssd_epi32(s, x, w)
            } else {
                _mm512_add_epi32(s, _mm512_madd_epi16(x, w))
            }
        }
    }

    /// The AVX-512 tile loop, inlined into the two feature-enabled wrappers above.
    #[inline(always)]
    unsafe fn tile512<const VNNI: bool>(
        p: &WidePacked,
        a: &[i32],
        acc: &mut [i64],
        fused: Option<Fused>,
    ) {
        let (pairs, nc) = (p.pairs, p.panels * PANEL);
        let wp = p.w.as_ptr();
        let ap = a.as_ptr();
        let mut panel = 0;
        while panel < p.panels {
            // Two panels (32 channels) at a time while there are two.
            let two = panel + 1 < p.panels;
            let w0 = panel * pairs * PANEL * 2;
            let w1 = if two { w0 + pairs * PANEL * 2 } else { w0 };
            let mut j0 = 0;
            while j0 < pairs {
                let j1 = (j0 + p.block).min(pairs);
                // SAFETY: the callers enable AVX-512F.
                let mut s = [[unsafe { _mm512_setzero_si512() }; 2]; ROWS];
                for j in j0..j1 {
                    // SAFETY: j < pairs, panel(+1) < panels; rows hold `pairs` values.
                    unsafe {
                        let wa = _mm512_loadu_si512(wp.add(w0 + j * PANEL * 2).cast());
                        let wb = _mm512_loadu_si512(wp.add(w1 + j * PANEL * 2).cast());
                        for (r, sr) in s.iter_mut().enumerate() {
                            let x = _mm512_set1_epi32(*ap.add(r * pairs + j));
                            sr[0] = mac::<VNNI>(sr[0], x, wa);
                            sr[1] = mac::<VNNI>(sr[1], x, wb);
                        }
                    }
                }
                for (r, sr) in s.iter().enumerate() {
                    for (h, v) in sr.iter().enumerate().take(if two { 2 } else { 1 }) {
                        let ch = (panel + h) * PANEL;
                        let o = &mut acc[r * nc + ch..][..PANEL];
                        if let Some(f) = fused.as_ref().filter(|_| j1 == pairs) {
                            // The last block: requantize the sums (plus the earlier
                            // blocks' in `acc`) straight into the output row.
                            if r >= f.rows || ch >= f.n {
                                continue;
                            }
                            let len = (f.n - ch).min(PANEL);
                            // SAFETY: `o` holds 16 int64; row r < rows and channels
                            // ch..ch+len < n are inside `out` (caller); the constants
                            // are padded past ch + 16; AVX-512F/BW/DQ enabled.
                            unsafe {
                                let mut lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(*v));
                                let mut hi =
                                    _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(*v, 1));
                                if j0 > 0 {
                                    let op = o.as_ptr();
                                    lo = _mm512_add_epi64(lo, _mm512_loadu_si512(op.cast()));
                                    hi = _mm512_add_epi64(hi, _mm512_loadu_si512(op.add(8).cast()));
                                }
                                let q = requant16(f.rq, lo, hi, ch);
                                // A 512-bit masked store (AVX-512BW; the 256-bit one
                                // would need VL) of the low 16 lanes.
                                let mask: __mmask32 = (1u32 << len) - 1;
                                let q = _mm512_castsi256_si512(q);
                                _mm512_mask_storeu_epi16(f.out.add(r * f.n + ch), mask, q);
                            }
                            continue;
                        }
                        // SAFETY: `o` holds 16 int64 (two vectors); AVX-512F enabled.
                        unsafe {
                            let op = o.as_mut_ptr();
                            let lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(*v));
                            let hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(*v, 1));
                            // The first block stores: `acc` needs no zeroing first.
                            let (lo, hi) = if j0 == 0 {
                                (lo, hi)
                            } else {
                                (
                                    _mm512_add_epi64(lo, _mm512_loadu_si512(op.cast())),
                                    _mm512_add_epi64(hi, _mm512_loadu_si512(op.add(8).cast())),
                                )
                            };
                            _mm512_storeu_si512(op.cast(), lo);
                            _mm512_storeu_si512(op.add(8).cast(), hi);
                        }
                    }
                }
                j0 = j1;
            }
            panel += if two { 2 } else { 1 };
        }
    }

    /// Caller guarantees AVX2 and the sizes `tile` checks.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn tile_avx2(p: &WidePacked, a: &[i32], acc: &mut [i64]) {
        let (pairs, nc) = (p.pairs, p.panels * PANEL);
        let wp = p.w.as_ptr();
        let ap = a.as_ptr();
        for panel in 0..p.panels {
            let w0 = panel * pairs * PANEL * 2;
            let mut j0 = 0;
            while j0 < pairs {
                let j1 = (j0 + p.block).min(pairs);
                let mut s = [[_mm256_setzero_si256(); 2]; ROWS];
                for j in j0..j1 {
                    // SAFETY: j < pairs, panel < panels; rows hold `pairs` values.
                    unsafe {
                        let base = wp.add(w0 + j * PANEL * 2);
                        let wa = _mm256_loadu_si256(base.cast());
                        let wb = _mm256_loadu_si256(base.add(PANEL).cast());
                        for (r, sr) in s.iter_mut().enumerate() {
                            let x = _mm256_set1_epi32(*ap.add(r * pairs + j));
                            sr[0] = _mm256_add_epi32(sr[0], _mm256_madd_epi16(x, wa));
                            sr[1] = _mm256_add_epi32(sr[1], _mm256_madd_epi16(x, wb));
                        }
                    }
                }
                let mut lanes = [0i32; PANEL];
                for (r, sr) in s.iter().enumerate() {
                    // SAFETY: `lanes` holds 16 int32 (two 8-lane halves).
                    unsafe {
                        _mm256_storeu_si256(lanes.as_mut_ptr().cast(), sr[0]);
                        _mm256_storeu_si256(lanes.as_mut_ptr().add(8).cast(), sr[1]);
                    }
                    let o = &mut acc[r * nc + panel * PANEL..][..PANEL];
                    for (d, &l) in o.iter_mut().zip(&lanes) {
                        *d += l as i64;
                    }
                }
                j0 = j1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::kernels::cpu::available_isas;
    use crate::exec::kernels::test_util::Rng;

    #[test]
    fn requant64_matches_mbqm64() {
        let mut rng = Rng::new(9);
        let n = 53;
        let mult: Vec<Multiplier> = (0..n)
            .map(|c| Multiplier {
                m: if c == 0 {
                    i32::MAX // the saturated 16-bit multiplier
                } else {
                    rng.range_wide(1 << 30, i32::MAX as i64) as i32
                },
                shift: rng.range_wide(-31, 7) as i32,
            })
            .collect();
        let bias: Vec<i64> = (0..n)
            .map(|_| rng.range_wide(-(1 << 40), 1 << 40))
            .collect();
        let acc: Vec<i64> = (0..n)
            .map(|_| rng.range_wide(-(1 << 42), 1 << 42))
            .collect();
        let want: Vec<i16> = (0..n)
            .map(|c| mbqm64(acc[c].wrapping_add(bias[c]), mult[c]).clamp(-32768, 32767) as i16)
            .collect();
        for isa in available_isas() {
            let q = Requant64::new(isa, bias.clone(), &mult, -32768, 32767);
            let mut got = vec![0i16; n];
            q.row(&acc, &mut got);
            assert_eq!(got, want, "{isa:?}");
        }
    }

    #[test]
    fn tiles_equal_exact_sums_across_blocks() {
        let mut rng = Rng::new(10);
        let (n, k) = (37, 45);
        let w: Vec<i32> = (0..n * k)
            .map(|_| rng.range_wide(-128, 127) as i32)
            .collect();
        let x: Vec<i16> = (0..ROWS * k)
            .map(|i| {
                if i % 7 == 0 {
                    -32768
                } else {
                    rng.range_wide(-32768, 32767) as i16
                }
            })
            .collect();
        let mut p = WidePacked::new(n, k, |c, kk| w[c * k + kk]);
        // Small blocks: several int32 → int64 flushes per row.
        p.block = 3;
        let a: Vec<i32> = (0..ROWS)
            .flat_map(|r| {
                let row = &x[r * k..(r + 1) * k];
                (0..p.pairs)
                    .map(|j| pair(row[2 * j], row.get(2 * j + 1).copied().unwrap_or(0)))
                    .collect::<Vec<_>>()
            })
            .collect();
        let nc = p.panels * PANEL;
        let vnni = [false, cpu::features().avx512vnni];
        for (isa, v) in available_isas()
            .into_iter()
            .flat_map(|i| vnni.map(|v| (i, v)))
        {
            p.vnni = v;
            let mut acc = vec![7i64; ROWS * nc];
            p.tile(isa, &a, &mut acc);
            for r in 0..ROWS {
                for c in 0..n {
                    let want: i64 = (0..k)
                        .map(|kk| x[r * k + kk] as i64 * w[c * k + kk] as i64)
                        .sum();
                    assert_eq!(
                        acc[r * nc + c],
                        want,
                        "{isa:?} vnni {v} row {r} channel {c}"
                    );
                }
            }
        }
    }
}

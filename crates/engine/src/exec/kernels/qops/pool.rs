//! Quantized AVERAGE_POOL_2D and MAX_POOL_2D on NHWC integers (spec §12). Input and
//! output share scale and zero point, so the kernels work on raw values.

use super::{QInt, clamp_to};
use crate::exec::kernels::geometry::Geometry;

/// Geometry (window `k_h × k_w`, `in_c` channels) and activation clamp (in output
/// integers) of one quantized pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QPoolParams {
    pub geom: Geometry,
    pub act_min: i32,
    pub act_max: i32,
}

impl QPoolParams {
    fn lengths_ok(&self, x: usize, y: usize) -> bool {
        let g = &self.geom;
        let c = g.in_c;
        x == g.batch * g.in_h * g.in_w * c && y == g.batch * g.out_h * g.out_w * c
    }
}

/// Rounded integer average: uint8 rounds half up (`(s + n/2)/n`), int8/int16 round
/// half away from zero, as the two reference kernels do.
#[inline(always)]
fn rounded_average(sum: i32, n: i32, signed: bool) -> i32 {
    if !signed || sum > 0 {
        (sum + n / 2) / n
    } else {
        (sum - n / 2) / n
    }
}

/// Reference average pool: per output element, sum the in-image taps and divide by
/// their count. A window with no in-image tap (excessive padding) outputs the
/// clamped 0 (TFLite fails such a run instead).
pub fn average_pool_reference<T: QInt>(p: &QPoolParams, x: &[T], y: &mut [T]) {
    let g = &p.geom;
    assert!(p.lengths_ok(x.len(), y.len()), "qpool: lengths");
    let c = g.in_c;
    let signed = T::MIN < 0;
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            let (y0, y1) = g.window_y(oy);
            for ox in 0..g.out_w {
                let (x0, x1) = g.window_x(ox);
                for ch in 0..c {
                    let mut sum = 0i32;
                    let mut n = 0i32;
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            sum += x[((b * g.in_h + iy) * g.in_w + ix) * c + ch].get();
                            n += 1;
                        }
                    }
                    let avg = if n > 0 {
                        rounded_average(sum, n, signed)
                    } else {
                        0
                    };
                    y[((b * g.out_h + oy) * g.out_w + ox) * c + ch] =
                        clamp_to(avg, p.act_min, p.act_max);
                }
            }
        }
    }
}

/// Fast average pool: the window is summed pixel by pixel into a channel vector
/// (contiguous, vectorizable); integer sums are exact, so the result is the same. The
/// same code is compiled for AVX-512 and AVX2 too and picked at run time (the
/// autovectorized widening sums and f64 divisions are the whole cost).
pub fn average_pool_fast<T: QInt>(p: &QPoolParams, x: &[T], y: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::exec::kernels::cpu::{self, Isa};
        match cpu::clamp_to_detected(cpu::selected_isa()) {
            Isa::Avx512 if cpu::features().avx512bw => {
                // SAFETY: the CPU has AVX-512F/BW (detected).
                return unsafe { isa::average_pool_avx512(p, x, y) };
            }
            Isa::Avx2 | Isa::Avx512 => {
                // SAFETY: the CPU has AVX2 (detected; AVX-512 machines have it too).
                return unsafe { isa::average_pool_avx2(p, x, y) };
            }
            Isa::Portable => {}
        }
    }
    average_pool_body(p, x, y);
}

/// Max pool: maximum of the in-image taps (start value: the type minimum), clamped;
/// compiled per ISA like [`average_pool_fast`].
pub fn max_pool<T: QInt>(p: &QPoolParams, x: &[T], y: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::exec::kernels::cpu::{self, Isa};
        match cpu::clamp_to_detected(cpu::selected_isa()) {
            Isa::Avx512 if cpu::features().avx512bw => {
                // SAFETY: the CPU has AVX-512F/BW (detected).
                return unsafe { isa::max_pool_avx512(p, x, y) };
            }
            Isa::Avx2 | Isa::Avx512 => {
                // SAFETY: the CPU has AVX2 (detected).
                return unsafe { isa::max_pool_avx2(p, x, y) };
            }
            Isa::Portable => {}
        }
    }
    max_pool_body(p, x, y);
}

/// The pools compiled with wider vector ISAs (same source, same integer results).
#[cfg(target_arch = "x86_64")]
mod isa {
    use super::{QInt, QPoolParams, average_pool_body, max_pool_body};

    /// Caller: the CPU has AVX-512F/BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn average_pool_avx512<T: QInt>(p: &QPoolParams, x: &[T], y: &mut [T]) {
        average_pool_body(p, x, y);
    }

    /// Caller: the CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn average_pool_avx2<T: QInt>(p: &QPoolParams, x: &[T], y: &mut [T]) {
        average_pool_body(p, x, y);
    }

    /// Caller: the CPU has AVX-512F/BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn max_pool_avx512<T: QInt>(p: &QPoolParams, x: &[T], y: &mut [T]) {
        max_pool_body(p, x, y);
    }

    /// Caller: the CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn max_pool_avx2<T: QInt>(p: &QPoolParams, x: &[T], y: &mut [T]) {
        max_pool_body(p, x, y);
    }
}

#[inline(always)]
fn average_pool_body<T: QInt>(p: &QPoolParams, x: &[T], y: &mut [T]) {
    let g = &p.geom;
    assert!(p.lengths_ok(x.len(), y.len()), "qpool: lengths");
    let c = g.in_c;
    if c == 0 {
        return;
    }
    let signed = T::MIN < 0;
    let mut acc = vec![0i32; c];
    for b in 0..g.batch {
        let img = &x[b * g.in_h * g.in_w * c..][..g.in_h * g.in_w * c];
        for oy in 0..g.out_h {
            let (y0, y1) = g.window_y(oy);
            for ox in 0..g.out_w {
                let (x0, x1) = g.window_x(ox);
                acc.fill(0);
                for iy in y0..y1 {
                    let row = &img[(iy * g.in_w + x0) * c..(iy * g.in_w + x1) * c];
                    for px in row.chunks_exact(c) {
                        for (s, v) in acc.iter_mut().zip(px) {
                            *s += v.get();
                        }
                    }
                }
                let n = ((y1 - y0) * (x1 - x0)) as i32;
                let out = &mut y[((b * g.out_h + oy) * g.out_w + ox) * c..][..c];
                divide_rounded(&acc, n, signed, p, out);
            }
        }
    }
}

/// `out[k] = clamp(rounded_average(acc[k], n))` for one output pixel. An integer
/// division per channel is the slow part of the pool, so it becomes a multiplication
/// by a reciprocal that vectorizes ([`Divider`]) wherever the numerators fit.
#[inline(always)]
fn divide_rounded<T: QInt>(acc: &[i32], n: i32, signed: bool, p: &QPoolParams, out: &mut [T]) {
    // |sum| ≤ 32768·n for 16-bit inputs, so every numerator |sum| + n/2 < 2^31.
    let Some(d) = (1..=MAX_DIVIDER_N)
        .contains(&n)
        .then(|| Divider::new(n as u32))
    else {
        for (o, &s) in out.iter_mut().zip(acc) {
            let avg = if n > 0 {
                rounded_average(s, n, signed)
            } else {
                0
            };
            *o = clamp_to(avg, p.act_min, p.act_max);
        }
        return;
    };
    let half = n / 2;
    for (o, &s) in out.iter_mut().zip(acc) {
        let avg = d.rounded_average(s, half, signed);
        *o = clamp_to(avg, p.act_min, p.act_max);
    }
}

/// Window sizes the multiply-divide serves: `32768·n + n/2 < 2^31`.
const MAX_DIVIDER_N: i32 = 65_000;

/// Division by a fixed `n` as a multiplication (Granlund and Montgomery, "Division by
/// invariant integers using multiplication", 1994, Theorem 4.2): with
/// `l = ⌈log2 n⌉` and `m = ⌈2^(31+l) / n⌉`, `⌊a·m / 2^(31+l)⌋ = ⌊a / n⌋` for every
/// `0 ≤ a < 2^31`. `m < 2^32`, so `a·m < 2^63` fits a u64.
#[derive(Clone, Copy)]
struct Divider {
    m: u64,
    shift: u32,
}

impl Divider {
    fn new(n: u32) -> Divider {
        let l = 32 - (n - 1).leading_zeros();
        let shift = 31 + l;
        let m = (1u128 << shift).div_ceil(n as u128) as u64;
        Divider { m, shift }
    }

    /// [`rounded_average`] for `0 < n ≤ MAX_DIVIDER_N` (`half = n/2`): round half up
    /// (uint8) or half away from zero (int8/int16) on the magnitude, then the sign.
    #[inline(always)]
    fn rounded_average(self, s: i32, half: i32, signed: bool) -> i32 {
        let neg = signed && s <= 0;
        let a = if neg { half - s } else { s + half } as u32 as u64;
        let q = ((a * self.m) >> self.shift) as i32;
        if neg { -q } else { q }
    }
}

#[inline(always)]
fn max_pool_body<T: QInt>(p: &QPoolParams, x: &[T], y: &mut [T]) {
    let g = &p.geom;
    assert!(p.lengths_ok(x.len(), y.len()), "qpool: lengths");
    let c = g.in_c;
    if c == 0 {
        return;
    }
    let mut acc = vec![0i32; c];
    for b in 0..g.batch {
        let img = &x[b * g.in_h * g.in_w * c..][..g.in_h * g.in_w * c];
        for oy in 0..g.out_h {
            let (y0, y1) = g.window_y(oy);
            for ox in 0..g.out_w {
                let (x0, x1) = g.window_x(ox);
                acc.fill(T::MIN);
                for iy in y0..y1 {
                    let row = &img[(iy * g.in_w + x0) * c..(iy * g.in_w + x1) * c];
                    for px in row.chunks_exact(c) {
                        for (s, v) in acc.iter_mut().zip(px) {
                            *s = (*s).max(v.get());
                        }
                    }
                }
                let out = &mut y[((b * g.out_h + oy) * g.out_w + ox) * c..][..c];
                for (o, &s) in out.iter_mut().zip(&acc) {
                    *o = clamp_to(s, p.act_min, p.act_max);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn params(
        h: usize,
        w: usize,
        c: usize,
        f: usize,
        s: usize,
        pad: usize,
        oh: usize,
        ow: usize,
    ) -> QPoolParams {
        QPoolParams {
            geom: Geometry {
                batch: 1,
                in_h: h,
                in_w: w,
                in_c: c,
                out_h: oh,
                out_w: ow,
                out_c: c,
                k_h: f,
                k_w: f,
                stride_h: s,
                stride_w: s,
                dilation_h: 1,
                dilation_w: 1,
                pad_top: pad,
                pad_left: pad,
                depth_multiplier: 1,
            },
            act_min: -128,
            act_max: 127,
        }
    }

    #[test]
    fn tv10_int8_average_rounding() {
        // 1×2 windows over a 1×4 image ... use 2×2 filter on 2×2 single-channel images.
        let mut p = params(1, 2, 1, 2, 2, 0, 1, 1);
        p.geom.k_h = 1;
        let mut y = [0i8; 1];
        average_pool_reference(&p, &[-1i8, -2], &mut y);
        assert_eq!(y, [-2]);
        average_pool_reference(&p, &[1i8, 2], &mut y);
        assert_eq!(y, [2]);
        let p = params(2, 2, 1, 2, 2, 0, 1, 1);
        average_pool_reference(&p, &[-1i8, -1, -1, -2], &mut y);
        assert_eq!(y, [-1]);
        // uint8 rounds half up: (1 + 2 + 1) / 2 → (3 + 1)/2 = 2; (0+1)=0.5 → 1.
        let mut p = params(1, 2, 1, 2, 2, 0, 1, 1);
        p.geom.k_h = 1;
        p.act_min = 0;
        p.act_max = 255;
        let mut yu = [0u8; 1];
        average_pool_reference(&p, &[0u8, 1], &mut yu);
        assert_eq!(yu, [1]);
    }

    #[test]
    fn padding_taps_are_not_counted_and_fast_equals_reference() {
        // 5×5×3 image, 3×3 filter, stride 2, SAME padding 1 → 3×3 output.
        let p = params(5, 5, 3, 3, 2, 1, 3, 3);
        let x: Vec<i8> = (0..75).map(|i| ((i * 37) % 256) as u8 as i8).collect();
        let mut a = vec![0i8; 27];
        let mut b = vec![0i8; 27];
        average_pool_reference(&p, &x, &mut a);
        average_pool_fast(&p, &x, &mut b);
        assert_eq!(a, b);
        // Corner output: taps (0,0),(0,1),(1,0),(1,1) of channel 0.
        let s: i32 = [0, 1, 5, 6].iter().map(|&k| x[k * 3] as i32).sum();
        let want = if s > 0 { (s + 2) / 4 } else { (s - 2) / 4 };
        assert_eq!(a[0] as i32, want);
        let xu: Vec<u8> = x.iter().map(|&v| v as u8).collect();
        let mut pu = p;
        pu.act_min = 0;
        pu.act_max = 255;
        let mut a = vec![0u8; 27];
        let mut b = vec![0u8; 27];
        average_pool_reference(&pu, &xu, &mut a);
        average_pool_fast(&pu, &xu, &mut b);
        assert_eq!(a, b);
    }

    /// The multiply-divide equals the integer division: every sum of 8-bit windows for
    /// the common window sizes, and extreme and random 16-bit-window sums for every size
    /// class up to its limit (beyond it the integer division is used).
    #[test]
    fn float_division_equals_integer_division() {
        let check = |s: i32, n: i32| {
            for signed in [false, true] {
                if !signed && s < 0 {
                    continue;
                }
                assert_eq!(
                    Divider::new(n as u32).rounded_average(s, n / 2, signed),
                    rounded_average(s, n, signed),
                    "sum {s} n {n} signed {signed}"
                );
            }
        };
        for n in [1, 2, 3, 4, 6, 7, 9, 25, 49, 64, 289, 4096] {
            for s in -255 * n..=255 * n {
                check(s, n);
            }
        }
        let mut rng = crate::exec::kernels::test_util::Rng::new(5);
        for shift in 0..22 {
            let n = ((1i64 << shift) + rng.range(0, (1i64 << shift) - 1)) as i32;
            for s in [i32::MAX - n, i32::MIN + n, 0, 1, -1, n, -n, n / 2, -(n / 2)] {
                check(s, n);
            }
            for _ in 0..5000 {
                check(
                    rng.range_wide(i32::MIN as i64 + n as i64, i32::MAX as i64 - n as i64) as i32,
                    n,
                );
            }
        }
    }

    /// The ISA copies of the fast pools equal the reference (average) and the portable
    /// copy (max) on every ISA this machine has, for all three types.
    #[test]
    fn pools_equal_reference_on_every_isa() {
        use crate::exec::kernels::cpu;
        let mut rng = crate::exec::kernels::test_util::Rng::new(3);
        for (h, c, k, stride, pad, out) in
            [(9, 35, 3, 1, 1, 9), (8, 64, 2, 2, 0, 4), (7, 5, 7, 1, 0, 1)]
        {
            let mut p = params(h, h, c, k, stride, pad, out, out);
            let n = h * h * c;
            macro_rules! check {
                ($t:ty, $lo:expr, $hi:expr) => {{
                    p.act_min = $lo;
                    p.act_max = $hi;
                    let x: Vec<$t> = (0..n).map(|_| rng.range($lo, $hi) as $t).collect();
                    let m = out * out * c;
                    let (mut r, mut mx) = (vec![0 as $t; m], vec![0 as $t; m]);
                    average_pool_reference(&p, &x, &mut r);
                    cpu::with_isa(cpu::Isa::Portable, || max_pool(&p, &x, &mut mx));
                    for isa in cpu::available_isas() {
                        let (mut f, mut g) = (vec![0 as $t; m], vec![0 as $t; m]);
                        cpu::with_isa(isa, || {
                            average_pool_fast(&p, &x, &mut f);
                            max_pool(&p, &x, &mut g);
                        });
                        assert_eq!(r, f, "average {} {isa:?} h {h} c {c}", stringify!($t));
                        assert_eq!(mx, g, "max {} {isa:?} h {h} c {c}", stringify!($t));
                    }
                }};
            }
            check!(i8, -128, 127);
            check!(u8, 0, 255);
            check!(i16, -32768, 32767);
        }
    }

    #[test]
    fn max_pool_and_clamp() {
        let mut p = params(2, 2, 1, 2, 2, 0, 1, 1);
        p.act_max = 5;
        let mut y = [0i8; 1];
        max_pool(&p, &[-1i8, 3, 9, -7], &mut y);
        assert_eq!(y, [5]);
        p.act_max = 127;
        max_pool(&p, &[-1i8, 3, 9, -7], &mut y);
        assert_eq!(y, [9]);
    }
}

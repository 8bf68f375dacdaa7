//! Quantized ADD, SUB and MUL with NumPy broadcasting (spec §11).
//!
//! The reference kernel walks the output with an index odometer and reads each
//! operand through broadcast strides, like TFLite's `BroadcastAdd6DSlow`; the fast
//! path handles equal shapes as one flat loop. Both call the same per-element
//! arithmetic, so they produce the same bytes.

use super::QInt;
use crate::quant::fixed_point::{Multiplier, Rounding, mbqm, quantize_multiplier, rdbpot};

/// The per-element arithmetic of one quantized binary op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QBinaryKind {
    /// ADD/SUB: rescale both inputs to a common scale with `left_shift` bits of
    /// headroom, add or subtract, rescale to the output.
    AddSub {
        sub: bool,
        left_shift: i32,
        m1: Multiplier,
        m2: Multiplier,
        m_out: Multiplier,
    },
    /// MUL: `(x1 − z1)·(x2 − z2)` rescaled by `s1·s2/s_out`.
    Mul { m: Multiplier },
    /// int16 ADD/SUB with power-of-two scales and zero points 0 (`pot_scale_int16`):
    /// one input is shifted right by `shift1`/`shift2` (≤ 0 means right shift by
    /// its negation), then a saturating 16-bit add or subtract.
    Pot16 { sub: bool, shift1: i32, shift2: i32 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QBinaryParams {
    pub kind: QBinaryKind,
    /// `−zero_point` of each input, `+zero_point` of the output.
    pub in1_offset: i32,
    pub in2_offset: i32,
    pub out_offset: i32,
    pub act_min: i32,
    pub act_max: i32,
}

impl QBinaryParams {
    /// ADD/SUB parameters from the input/output scales (`left_shift` 20 for 8-bit, 15
    /// for int16), computed in f64 as TFLite's `add.cc`/`sub.cc` do.
    #[allow(clippy::too_many_arguments)]
    pub fn add_sub(
        sub: bool,
        left_shift: i32,
        (s1, z1): (f32, i32),
        (s2, z2): (f32, i32),
        (so, zo): (f32, i32),
        act_min: i32,
        act_max: i32,
    ) -> Self {
        let r = Rounding::Double;
        // `2 * max(float, float)` is a float product in TFLite, exact either way.
        let twice_max = (2.0 * s1.max(s2)) as f64;
        let m1 = quantize_multiplier(s1 as f64 / twice_max, r);
        let m2 = quantize_multiplier(s2 as f64 / twice_max, r);
        let m_out = quantize_multiplier(twice_max / ((1u32 << left_shift) as f32 * so) as f64, r);
        QBinaryParams {
            kind: QBinaryKind::AddSub {
                sub,
                left_shift,
                m1,
                m2,
                m_out,
            },
            in1_offset: -z1,
            in2_offset: -z2,
            out_offset: zo,
            act_min,
            act_max,
        }
    }

    /// MUL parameters: `s1·s2/s_out` computed in f32, then widened, as desktop
    /// TFLite's `mul.cc` Prepare does (`double real = in1_s * in2_s / out_s` on float
    /// operands; TFLM widens first). The two differ in the last bits of the
    /// multiplier, which shows on int16 products near a half.
    pub fn mul(
        (s1, z1): (f32, i32),
        (s2, z2): (f32, i32),
        (so, zo): (f32, i32),
        act_min: i32,
        act_max: i32,
    ) -> Self {
        let real = (s1 * s2 / so) as f64;
        QBinaryParams {
            kind: QBinaryKind::Mul {
                m: quantize_multiplier(real, Rounding::Double),
            },
            in1_offset: -z1,
            in2_offset: -z2,
            out_offset: zo,
            act_min,
            act_max,
        }
    }

    /// The output value for raw inputs `x1`, `x2` (already clamped).
    #[inline(always)]
    pub fn apply(&self, x1: i32, x2: i32) -> i32 {
        let r = Rounding::Double;
        let v = match self.kind {
            QBinaryKind::AddSub {
                sub,
                left_shift,
                m1,
                m2,
                m_out,
            } => {
                let a = (x1 + self.in1_offset).wrapping_mul(1 << left_shift);
                let b = (x2 + self.in2_offset).wrapping_mul(1 << left_shift);
                let a = mbqm(a, m1, r);
                let b = mbqm(b, m2, r);
                let raw = if sub {
                    a.wrapping_sub(b)
                } else {
                    a.wrapping_add(b)
                };
                mbqm(raw, m_out, r).wrapping_add(self.out_offset)
            }
            QBinaryKind::Mul { m } => {
                let p = (x1 + self.in1_offset).wrapping_mul(x2 + self.in2_offset);
                mbqm(p, m, r).wrapping_add(self.out_offset)
            }
            QBinaryKind::Pot16 {
                sub,
                shift1,
                shift2,
            } => {
                let a = if shift1 < 0 { rdbpot(x1, -shift1) } else { x1 };
                let b = if shift2 < 0 { rdbpot(x2, -shift2) } else { x2 };
                let raw = if sub { a - b } else { a + b };
                raw.clamp(i16::MIN as i32, i16::MAX as i32)
            }
        };
        v.max(self.act_min).min(self.act_max)
    }
}

/// Right-aligned broadcast strides of `shape` within `out_shape` (0 where broadcast).
fn broadcast_strides(shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let rank = out_shape.len();
    let lead = rank - shape.len();
    let mut strides = vec![0usize; rank];
    let mut s = 1usize;
    for i in (0..rank).rev() {
        if i >= lead {
            let d = shape[i - lead];
            if d != 1 {
                strides[i] = s;
            }
            s *= d;
        }
    }
    strides
}

/// The output shape with size-1 dims dropped and adjacent dims of the same broadcast
/// pattern merged, with both operands' strides: `[N,H,W,C] (op) [C]` becomes
/// `[N·H·W, C]`, so the fast loops run long rows with little index bookkeeping.
fn merged_dims(
    a_shape: &[usize],
    b_shape: &[usize],
    out_shape: &[usize],
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let sa = broadcast_strides(a_shape, out_shape);
    let sb = broadcast_strides(b_shape, out_shape);
    let mut dims: Vec<(usize, usize, usize)> = Vec::new();
    for ((&n, &x), &y) in out_shape.iter().zip(&sa).zip(&sb) {
        if n == 1 {
            continue;
        }
        match dims.last_mut() {
            // Contiguous continuation for both operands (or broadcast in both).
            Some(last) if (last.1 == 0) == (x == 0) && (last.2 == 0) == (y == 0) => {
                last.0 *= n;
                last.1 = x;
                last.2 = y;
            }
            _ => dims.push((n, x, y)),
        }
    }
    (
        dims.iter().map(|d| d.0).collect(),
        dims.iter().map(|d| d.1).collect(),
        dims.iter().map(|d| d.2).collect(),
    )
}

/// Visit the rows of the innermost merged dimension: `f(a_start, a_step, b_start,
/// b_step, output_row)`.
fn for_each_row<T>(
    a_shape: &[usize],
    b_shape: &[usize],
    out_shape: &[usize],
    y: &mut [T],
    mut f: impl FnMut(usize, usize, usize, usize, &mut [T]),
) {
    if y.is_empty() {
        return;
    }
    let (dims, sa, sb) = merged_dims(a_shape, b_shape, out_shape);
    let Some((&n, outer)) = dims.split_last() else {
        f(0, 0, 0, 0, y);
        return;
    };
    let (a_step, b_step) = (sa[dims.len() - 1], sb[dims.len() - 1]);
    let mut idx = vec![0usize; outer.len()];
    let (mut a0, mut b0) = (0usize, 0usize);
    for row in y.chunks_exact_mut(n) {
        f(a0, a_step, b0, b_step, row);
        for k in (0..outer.len()).rev() {
            idx[k] += 1;
            a0 += sa[k];
            b0 += sb[k];
            if idx[k] < outer[k] {
                break;
            }
            a0 -= sa[k] * outer[k];
            b0 -= sb[k] * outer[k];
            idx[k] = 0;
        }
    }
}

/// Reference kernel: every output element through its broadcast coordinates.
/// Shapes must broadcast to `out_shape` (checked at preparation).
#[allow(clippy::too_many_arguments)]
pub fn binary_reference<T: QInt>(
    p: &QBinaryParams,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    y: &mut [T],
    out_shape: &[usize],
) {
    if y.is_empty() {
        return;
    }
    let sa = broadcast_strides(a_shape, out_shape);
    let sb = broadcast_strides(b_shape, out_shape);
    let rank = out_shape.len();
    let mut idx = vec![0usize; rank];
    for o in y.iter_mut() {
        let ia: usize = idx.iter().zip(&sa).map(|(i, s)| i * s).sum();
        let ib: usize = idx.iter().zip(&sb).map(|(i, s)| i * s).sum();
        *o = T::put(p.apply(a[ia].get(), b[ib].get()));
        for k in (0..rank).rev() {
            idx[k] += 1;
            if idx[k] < out_shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
}

/// Fast path for equal shapes: one flat loop the compiler can unroll.
pub fn binary_same_shape<T: QInt>(p: &QBinaryParams, a: &[T], b: &[T], y: &mut [T]) {
    for ((o, &x1), &x2) in y.iter_mut().zip(a).zip(b) {
        *o = T::put(p.apply(x1.get(), x2.get()));
    }
}

/// Fast path with broadcasting: rows along the innermost dimension, operands that do
/// not advance along it read once per row.
#[allow(clippy::too_many_arguments)]
pub fn binary_broadcast_rows<T: QInt>(
    p: &QBinaryParams,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    y: &mut [T],
    out_shape: &[usize],
) {
    for_each_row(a_shape, b_shape, out_shape, y, |a0, sa, b0, sb, row| {
        for (j, o) in row.iter_mut().enumerate() {
            *o = T::put(p.apply(a[a0 + j * sa].get(), b[b0 + j * sb].get()));
        }
    });
}

/// Fast ADD/SUB. 8-bit: each input's rescaling `MBQM((x − z)·2^left_shift, M)`
/// depends on one byte only, so it is tabulated once (256 entries per input); per
/// element only the sum and the output MBQM remain. int16 (general scales, not
/// `pot_scale_int16`): the whole formula on 16 AVX-512 lanes, the tail computed
/// directly. Same arithmetic, same bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct AddSubTables {
    t1: [i32; 256],
    t2: [i32; 256],
    sub: bool,
    m_out: Multiplier,
    out_offset: i32,
    act_min: i32,
    act_max: i32,
    /// The untabulated parameters, for the SIMD path that recomputes the rescaling.
    left_shift: i32,
    in1_offset: i32,
    in2_offset: i32,
    m1: Multiplier,
    m2: Multiplier,
    /// AVX-512 (with BW) usable: ISA selected at preparation and multipliers non-negative.
    avx512: bool,
    /// `t1`/`t2` hold the rescaled inputs (8-bit types); else they are unused.
    tabulated: bool,
    /// The SIMD path may use the cheaper exact MBQM (`requant::v512::rq_fast`, or
    /// `srdhm_fast` for shift 0, which the larger input scale always has): 8-bit
    /// inputs, multipliers `m ≥ 0` with shifts in −30..=0 and every MBQM input below
    /// 2^30 in magnitude (checked on the tables).
    fast: bool,
}

/// One operand of a row: a run of elements or one element repeated.
#[derive(Clone, Copy)]
pub enum Src<'a, T> {
    Run(&'a [T]),
    Splat(T),
}

impl AddSubTables {
    /// `None` unless `p` is an ADD/SUB with the 8-bit type `T`, or with int16 on a CPU
    /// where the AVX-512 path runs.
    pub fn new<T: QInt>(p: &QBinaryParams) -> Option<Self> {
        let QBinaryKind::AddSub {
            sub,
            left_shift,
            m1,
            m2,
            m_out,
        } = p.kind
        else {
            return None;
        };
        let tabulated = match T::MAX - T::MIN {
            255 => true,
            65535 => false,
            _ => return None,
        };
        let r = Rounding::Double;
        let mut t1 = [0i32; 256];
        let mut t2 = [0i32; 256];
        if tabulated {
            for (k, v) in (T::MIN..=T::MAX).enumerate() {
                t1[k] = mbqm((v + p.in1_offset).wrapping_mul(1 << left_shift), m1, r);
                t2[k] = mbqm((v + p.in2_offset).wrapping_mul(1 << left_shift), m2, r);
            }
        }
        use crate::exec::kernels::cpu::{self, Isa};
        let isa = cpu::clamp_to_detected(cpu::selected_isa());
        let avx512 = cfg!(target_arch = "x86_64")
            && isa == Isa::Avx512
            && cpu::features().avx512bw
            && [m1, m2, m_out].iter().all(|m| m.m >= 0 && m.shift <= 31)
            && (0..=31).contains(&left_shift);
        if !tabulated && !avx512 {
            // Without tables or SIMD there is nothing to gain over the generic kernel.
            return None;
        }
        let fast = tabulated && avx512 && {
            let shifted = |off: i32| {
                (T::MIN..=T::MAX)
                    .map(|v| (((v + off) as i64) << left_shift).abs())
                    .max()
                    .unwrap_or(0)
            };
            let amax = |t: &[i32; 256]| t.iter().map(|v| (*v as i64).abs()).max().unwrap_or(0);
            [m1, m2, m_out]
                .iter()
                .all(|m| m.m >= 0 && (-30..=0).contains(&m.shift))
                && shifted(p.in1_offset).max(shifted(p.in2_offset)) < 1 << 30
                && amax(&t1) + amax(&t2) < 1 << 30
        };
        Some(AddSubTables {
            t1,
            t2,
            sub,
            m_out,
            out_offset: p.out_offset,
            act_min: p.act_min,
            act_max: p.act_max,
            left_shift,
            in1_offset: p.in1_offset,
            in2_offset: p.in2_offset,
            m1,
            m2,
            avx512,
            tabulated,
            fast,
        })
    }

    /// Input 1's or 2's rescaled value `MBQM((x − z)·2^left_shift, M)`.
    #[inline(always)]
    fn rescaled<T: QInt>(&self, x: T, second: bool) -> i32 {
        let (table, offset, m) = if second {
            (&self.t2, self.in2_offset, self.m2)
        } else {
            (&self.t1, self.in1_offset, self.m1)
        };
        if self.tabulated {
            table[(x.get() - T::MIN) as usize]
        } else {
            let v = (x.get() + offset).wrapping_mul(1 << self.left_shift);
            mbqm(v, m, Rounding::Double)
        }
    }

    /// Runs `y[j] = a[j] (op) b[j]` on the SIMD path; returns how many leading elements
    /// it wrote (the caller finishes the tail through the tables).
    #[inline]
    fn simd_row<T: QInt>(&self, a: Src<'_, T>, b: Src<'_, T>, y: &mut [T]) -> usize {
        #[cfg(target_arch = "x86_64")]
        if self.avx512 && y.len() >= 16 {
            for s in [a, b] {
                if let Src::Run(x) = s {
                    assert!(x.len() >= y.len() / 16 * 16, "binary operand too short");
                }
            }
            // SAFETY: `avx512` was set only when the CPU has AVX-512F/BW; T is one or
            // two bytes (`new` accepts no other) and the runs hold `y.len()/16*16`
            // elements (asserted above).
            return unsafe { x86::add_sub_avx512(self, a, b, None, y) };
        }
        let _ = (a, b, y);
        0
    }

    #[inline(always)]
    fn apply<T: QInt>(&self, x1: T, x2: T) -> T {
        let a = self.rescaled(x1, false);
        let b = self.rescaled(x2, true);
        let raw = if self.sub {
            a.wrapping_sub(b)
        } else {
            a.wrapping_add(b)
        };
        let v = mbqm(raw, self.m_out, Rounding::Double).wrapping_add(self.out_offset);
        T::put(v.max(self.act_min).min(self.act_max))
    }
}

impl RowKernel for AddSubTables {
    fn simd_row<T: QInt>(&self, a: Src<'_, T>, b: Src<'_, T>, y: &mut [T]) -> usize {
        AddSubTables::simd_row(self, a, b, y)
    }

    /// Input 2's rescaled values (exact: the tables or the scalar MBQM), so a row
    /// needs two MBQMs per element instead of three.
    fn prepare_second<T: QInt>(&self, b: &[T]) -> Option<Vec<i32>> {
        self.avx512
            .then(|| b.iter().map(|&x| self.rescaled(x, true)).collect())
    }

    fn simd_row_prepared<T: QInt>(&self, a: &[T], b: &[i32], y: &mut [T]) -> usize {
        #[cfg(target_arch = "x86_64")]
        if self.avx512 && y.len() >= 16 {
            let n = y.len() / 16 * 16;
            assert!(a.len() >= n && b.len() >= n, "binary operand too short");
            // SAFETY: `avx512` was set only when the CPU has AVX-512F/BW; T is one or
            // two bytes (`new` accepts no other); both operands hold `n` elements. The
            // second `Src` is not read when the prepared values are given.
            return unsafe { x86::add_sub_avx512(self, Src::Run(a), Src::Run(a), Some(b), y) };
        }
        let _ = (a, b, y);
        0
    }

    fn apply<T: QInt>(&self, x1: T, x2: T) -> T {
        AddSubTables::apply(self, x1, x2)
    }
}

/// A binary op with a SIMD row loop and an exact per-element fallback (the tail);
/// [`AddSubTables`] and [`MulKernel`] share the row driving.
pub trait RowKernel {
    /// Writes a leading part of `y` on the SIMD path; returns how many elements.
    #[doc(hidden)]
    fn simd_row<T: QInt>(&self, a: Src<'_, T>, b: Src<'_, T>, y: &mut [T]) -> usize;
    #[doc(hidden)]
    fn apply<T: QInt>(&self, x1: T, x2: T) -> T;

    /// The second operand of every row as the SIMD row would use it, computed once
    /// when that operand is one row broadcast to all (a per-channel constant); `None`
    /// when the kernel gains nothing from it.
    #[doc(hidden)]
    fn prepare_second<T: QInt>(&self, _b: &[T]) -> Option<Vec<i32>> {
        None
    }

    /// [`Self::simd_row`] with the second operand from [`Self::prepare_second`].
    #[doc(hidden)]
    fn simd_row_prepared<T: QInt>(&self, _a: &[T], _b: &[i32], _y: &mut [T]) -> usize {
        0
    }

    /// Equal shapes: one flat loop.
    fn run_same_shape<T: QInt>(&self, a: &[T], b: &[T], y: &mut [T])
    where
        Self: Sized,
    {
        rows_same_shape(self, a, b, y);
    }

    /// Broadcasting: rows along the innermost merged dimension.
    #[allow(clippy::too_many_arguments)]
    fn run_broadcast<T: QInt>(
        &self,
        a: &[T],
        a_shape: &[usize],
        b: &[T],
        b_shape: &[usize],
        y: &mut [T],
        out_shape: &[usize],
    ) where
        Self: Sized,
    {
        rows_broadcast(self, a, a_shape, b, b_shape, y, out_shape);
    }
}

fn rows_same_shape<K: RowKernel, T: QInt>(k: &K, a: &[T], b: &[T], y: &mut [T]) {
    let n = y.len().min(a.len()).min(b.len());
    let y = &mut y[..n];
    let done = k.simd_row(Src::Run(a), Src::Run(b), y);
    for ((o, &x1), &x2) in y[done..].iter_mut().zip(&a[done..]).zip(&b[done..]) {
        *o = k.apply(x1, x2);
    }
}

/// Rows along the innermost merged dimension: runs of both operands, a run and a
/// repeated element, or (strided) element by element.
#[allow(clippy::too_many_arguments)]
fn rows_broadcast<K: RowKernel, T: QInt>(
    k: &K,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    y: &mut [T],
    out_shape: &[usize],
) {
    // The second operand is one row for every output row (a per-channel constant,
    // e.g. a batch-norm shift): prepared once.
    let mut prepared: Option<Option<Vec<i32>>> = None;
    for_each_row(
        a_shape,
        b_shape,
        out_shape,
        y,
        |a0, sa, b0, sb, row| match (sa, sb) {
            (1, 1) if b.len() == row.len() && row.len() >= 16 => {
                let x1s = &a[a0..a0 + row.len()];
                let done = match prepared.get_or_insert_with(|| k.prepare_second(b)) {
                    Some(pb) => k.simd_row_prepared(x1s, pb, row),
                    None => k.simd_row(Src::Run(x1s), Src::Run(b), row),
                };
                for ((o, &x1), &x2) in row[done..].iter_mut().zip(&x1s[done..]).zip(&b[done..]) {
                    *o = k.apply(x1, x2);
                }
            }
            (1, 1) => rows_same_shape(k, &a[a0..a0 + row.len()], &b[b0..b0 + row.len()], row),
            (1, 0) => {
                let (x1s, x2) = (&a[a0..a0 + row.len()], b[b0]);
                let done = k.simd_row(Src::Run(x1s), Src::Splat(x2), row);
                for (o, &x1) in row[done..].iter_mut().zip(&x1s[done..]) {
                    *o = k.apply(x1, x2);
                }
            }
            (0, 1) => {
                let (x1, x2s) = (a[a0], &b[b0..b0 + row.len()]);
                let done = k.simd_row(Src::Splat(x1), Src::Run(x2s), row);
                for (o, &x2) in row[done..].iter_mut().zip(&x2s[done..]) {
                    *o = k.apply(x1, x2);
                }
            }
            _ => {
                for (j, o) in row.iter_mut().enumerate() {
                    *o = k.apply(a[a0 + j * sa], b[b0 + j * sb]);
                }
            }
        },
    );
}

/// Fast MUL (8-bit and int16): `(x1 − z1)·(x2 − z2)`, its MBQM, offset and clamp on 16
/// AVX-512 lanes — the scalar formula in each lane, so the same bytes. 8-bit products
/// stay below 2^16 in magnitude, so the cheaper exact MBQM form serves them when the
/// multiplier allows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MulKernel {
    p: QBinaryParams,
    m: Multiplier,
    /// `rq_fast`/`srdhm_fast` usable (8-bit, `m >= 0`, shift in −30..=0).
    fast: bool,
}

impl MulKernel {
    /// `None` unless `p` is a MUL of a one- or two-byte `T` and the CPU runs the
    /// AVX-512 path (elsewhere the generic kernel is as good).
    pub fn new<T: QInt>(p: &QBinaryParams) -> Option<Self> {
        let QBinaryKind::Mul { m } = p.kind else {
            return None;
        };
        use crate::exec::kernels::cpu::{self, Isa};
        let isa = cpu::clamp_to_detected(cpu::selected_isa());
        let width = T::MAX - T::MIN;
        let usable = cfg!(target_arch = "x86_64")
            && isa == Isa::Avx512
            && cpu::features().avx512bw
            && (width == 255 || width == 65535)
            && m.m >= 0
            && (-31..=31).contains(&m.shift);
        usable.then(|| MulKernel {
            p: *p,
            m,
            fast: width == 255 && (-30..=0).contains(&m.shift),
        })
    }
}

impl RowKernel for MulKernel {
    #[inline]
    fn simd_row<T: QInt>(&self, a: Src<'_, T>, b: Src<'_, T>, y: &mut [T]) -> usize {
        #[cfg(target_arch = "x86_64")]
        if y.len() >= 16 {
            for s in [a, b] {
                if let Src::Run(x) = s {
                    assert!(x.len() >= y.len() / 16 * 16, "binary operand too short");
                }
            }
            // SAFETY: `new` built this kernel only where the CPU has AVX-512F/BW and T is
            // one or two bytes; the runs hold `y.len()/16*16` elements (asserted above).
            return unsafe { x86::mul_avx512(self, a, b, y) };
        }
        let _ = (a, b, y);
        0
    }

    #[inline(always)]
    fn apply<T: QInt>(&self, x1: T, x2: T) -> T {
        T::put(self.p.apply(x1.get(), x2.get()))
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{AddSubTables, MulKernel, QInt, Src};
    use crate::exec::kernels::qconv::requant::fast_nudge;
    use crate::exec::kernels::qconv::requant::v512::{Mbqm, rq_fast, srdhm_fast};
    use crate::quant::fixed_point::Multiplier;
    use std::arch::x86_64::*;

    /// Loads 16 one- or two-byte elements widened to int32 (sign- or zero-extended).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn load16<T: QInt>(p: *const T) -> __m512i {
        if std::mem::size_of::<T>() == 2 {
            // SAFETY: the caller guarantees 16 readable elements at `p`.
            let v = unsafe { _mm256_loadu_si256(p.cast()) };
            return _mm512_cvtepi16_epi32(v);
        }
        // SAFETY: as above.
        let v = unsafe { _mm_loadu_si128(p.cast()) };
        if T::MIN < 0 {
            _mm512_cvtepi8_epi32(v)
        } else {
            _mm512_cvtepu8_epi32(v)
        }
    }

    /// Stores 16 int32 lanes already clamped to `T`'s range, narrowed to `T`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn store16<T: QInt>(p: *mut T, v: __m512i) {
        // SAFETY: the caller guarantees 16 writable elements at `p`; the values fit
        // `T`, so the truncating narrow is exact.
        unsafe {
            if std::mem::size_of::<T>() == 2 {
                _mm256_storeu_si256(p.cast(), _mm512_cvtepi32_epi16(v));
            } else {
                _mm_storeu_si128(p.cast(), _mm512_cvtepi32_epi8(v));
            }
        }
    }

    /// TFLite's ADD/SUB on 16 lanes: both input rescalings, the sum, the output
    /// rescaling, offset and clamp. Returns the number of elements written (a multiple
    /// of 16). Caller: CPU has AVX-512F/BW, `T` is one or two bytes, every `Run` holds
    /// at least `y.len() / 16 * 16` elements. `pre2`: input 2 already rescaled (as
    /// many values), used instead of `b`.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn add_sub_avx512<T: QInt>(
        t: &AddSubTables,
        a: Src<'_, T>,
        b: Src<'_, T>,
        pre2: Option<&[i32]>,
        y: &mut [T],
    ) -> usize {
        if t.fast {
            // SAFETY: forwarded contract.
            return unsafe { add_sub_fast_avx512(t, a, b, pre2, y) };
        }
        let (Some(m1), Some(m2), Some(mo)) =
            (Mbqm::splat(t.m1), Mbqm::splat(t.m2), Mbqm::splat(t.m_out))
        else {
            return 0;
        };
        // SAFETY: forwarded contract; AVX-512F/BW enabled here.
        unsafe { add_sub_loop(t, a, b, pre2, y, [m1, m2, mo]) }
    }

    /// A 16-lane MBQM in one of its two exact forms.
    trait Rescale: Copy {
        /// Caller: AVX-512F enabled.
        unsafe fn rescale(&self, x: __m512i) -> __m512i;
    }

    impl Rescale for Mbqm {
        #[inline(always)]
        unsafe fn rescale(&self, x: __m512i) -> __m512i {
            // SAFETY: the caller enables AVX-512F.
            unsafe { self.apply(x) }
        }
    }

    impl Rescale for Fast {
        #[inline(always)]
        unsafe fn rescale(&self, x: __m512i) -> __m512i {
            // SAFETY: the caller enables AVX-512F.
            unsafe { self.apply(x) }
        }
    }

    /// The ADD/SUB loop of [`add_sub_avx512`] with the two input and the output
    /// rescalings `m`. Inlined into the feature-enabled callers (no closures in the
    /// loop: they would not inherit the target features). Same contract.
    #[inline(always)]
    unsafe fn add_sub_loop<T: QInt, R: Rescale>(
        t: &AddSubTables,
        a: Src<'_, T>,
        b: Src<'_, T>,
        pre2: Option<&[i32]>,
        y: &mut [T],
        [m1, m2, mo]: [R; 3],
    ) -> usize {
        let n = y.len() / 16 * 16;
        // SAFETY: for the whole body: AVX-512F/BW are enabled by the callers; j + 16 <= n
        // and every run holds n elements (caller contract); `v` is clamped to the
        // activation range, which lies within `T`'s.
        unsafe {
            let ls = _mm_cvtsi32_si128(t.left_shift);
            let (o1, o2) = (
                _mm512_set1_epi32(t.in1_offset),
                _mm512_set1_epi32(t.in2_offset),
            );
            let zp = _mm512_set1_epi32(t.out_offset);
            let (lo, hi) = (_mm512_set1_epi32(t.act_min), _mm512_set1_epi32(t.act_max));
            // A repeated operand is rescaled once (through the exact table).
            let s1 = match a {
                Src::Splat(v) => Some(_mm512_set1_epi32(t.rescaled(v, false))),
                Src::Run(_) => None,
            };
            let s2 = match b {
                Src::Splat(v) => Some(_mm512_set1_epi32(t.rescaled(v, true))),
                Src::Run(_) => None,
            };
            let mut j = 0;
            while j < n {
                let r1 = match (s1, a) {
                    (Some(v), _) => v,
                    (None, Src::Run(x)) => {
                        let x = _mm512_add_epi32(load16(x.as_ptr().add(j)), o1);
                        m1.rescale(_mm512_sll_epi32(x, ls))
                    }
                    (None, Src::Splat(_)) => unreachable!("splat operands are pre-rescaled"),
                };
                let r2 = match (s2, b, pre2) {
                    (_, _, Some(p)) => _mm512_loadu_si512(p.as_ptr().add(j).cast()),
                    (Some(v), _, _) => v,
                    (None, Src::Run(x), None) => {
                        let x = _mm512_add_epi32(load16(x.as_ptr().add(j)), o2);
                        m2.rescale(_mm512_sll_epi32(x, ls))
                    }
                    (None, Src::Splat(_), None) => {
                        unreachable!("splat operands are pre-rescaled")
                    }
                };
                let raw = if t.sub {
                    _mm512_sub_epi32(r1, r2)
                } else {
                    _mm512_add_epi32(r1, r2)
                };
                let v = _mm512_add_epi32(mo.rescale(raw), zp);
                let v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
                store16(y.as_mut_ptr().add(j), v);
                j += 16;
            }
        }
        n
    }

    /// One multiplier's constants for [`rq_fast`] (the same in every lane).
    #[derive(Clone, Copy)]
    struct Fast {
        m: __m512i,
        rsh: __m512i,
        nudge: __m512i,
        /// Shift 0: SRDHM alone ([`srdhm_fast`]).
        r0: bool,
    }

    impl Fast {
        #[target_feature(enable = "avx512f")]
        fn new(m: Multiplier) -> Self {
            Fast {
                // `set1_epi32` puts m in both halves of each 64-bit lane, so the same
                // vector serves the even and the odd products.
                m: _mm512_set1_epi32(m.m),
                rsh: _mm512_set1_epi32(-m.shift),
                // One multiplier's nudge, no allocation: this runs once per row.
                nudge: _mm512_set1_epi64(fast_nudge(&m)),
                r0: m.shift == 0,
            }
        }

        #[inline]
        #[target_feature(enable = "avx512f")]
        fn apply(&self, x: __m512i) -> __m512i {
            if self.r0 {
                srdhm_fast(x, self.m)
            } else {
                rq_fast(x, self.m, self.m, self.rsh, self.nudge, self.nudge)
            }
        }
    }

    /// TFLite's MUL on 16 lanes: offsets, product, MBQM, output offset and clamp.
    /// Returns the number of elements written (a multiple of 16). Caller: CPU has
    /// AVX-512F/BW, `T` is one or two bytes, every `Run` holds at least
    /// `y.len() / 16 * 16` elements.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn mul_avx512<T: QInt>(
        k: &MulKernel,
        a: Src<'_, T>,
        b: Src<'_, T>,
        y: &mut [T],
    ) -> usize {
        if k.fast {
            // SAFETY: forwarded contract; AVX-512F/BW enabled here.
            return unsafe { mul_loop(k, a, b, y, Fast::new(k.m)) };
        }
        let Some(m) = Mbqm::splat(k.m) else {
            return 0;
        };
        // SAFETY: forwarded contract; AVX-512F/BW enabled here.
        unsafe { mul_loop(k, a, b, y, m) }
    }

    /// The loop of [`mul_avx512`] with the MBQM in one of its exact forms. Same
    /// contract; inlined into the feature-enabled caller.
    #[inline(always)]
    unsafe fn mul_loop<T: QInt, R: Rescale>(
        k: &MulKernel,
        a: Src<'_, T>,
        b: Src<'_, T>,
        y: &mut [T],
        m: R,
    ) -> usize {
        let n = y.len() / 16 * 16;
        // SAFETY: for the whole body: AVX-512F/BW are enabled by the caller; j + 16 <= n
        // and every run holds n elements (caller contract); `v` is clamped to the
        // activation range, which lies within `T`'s.
        unsafe {
            let o1 = _mm512_set1_epi32(k.p.in1_offset);
            let o2 = _mm512_set1_epi32(k.p.in2_offset);
            let zp = _mm512_set1_epi32(k.p.out_offset);
            let (lo, hi) = (
                _mm512_set1_epi32(k.p.act_min),
                _mm512_set1_epi32(k.p.act_max),
            );
            let low16 = _mm512_set1_epi32(0xFFFF);
            let s1 = match a {
                Src::Splat(v) => Some(_mm512_set1_epi32(v.get() + k.p.in1_offset)),
                Src::Run(_) => None,
            };
            let s2 = match b {
                Src::Splat(v) => Some(_mm512_set1_epi32(v.get() + k.p.in2_offset)),
                Src::Run(_) => None,
            };
            let mut j = 0;
            while j < n {
                let x1 = match (s1, a) {
                    (Some(v), _) => v,
                    (None, Src::Run(x)) => _mm512_add_epi32(load16(x.as_ptr().add(j)), o1),
                    (None, Src::Splat(_)) => unreachable!("splat operands are pre-offset"),
                };
                let x2 = match (s2, b) {
                    (Some(v), _) => v,
                    (None, Src::Run(x)) => _mm512_add_epi32(load16(x.as_ptr().add(j)), o2),
                    (None, Src::Splat(_)) => unreachable!("splat operands are pre-offset"),
                };
                // 8-bit operands minus zero points fit int16: one `vpmaddwd` (the
                // second operand's upper halves cleared) gives the exact product,
                // cheaper than `vpmulld`.
                let prod = if std::mem::size_of::<T>() == 1 {
                    _mm512_madd_epi16(x1, _mm512_and_si512(x2, low16))
                } else {
                    _mm512_mullo_epi32(x1, x2)
                };
                let v = _mm512_add_epi32(m.rescale(prod), zp);
                let v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
                store16(y.as_mut_ptr().add(j), v);
                j += 16;
            }
        }
        n
    }

    /// [`add_sub_avx512`] with the three MBQMs in the cheaper exact form (`t.fast`:
    /// 8-bit `T`, shifts and magnitudes checked when the tables were built). Same
    /// contract.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn add_sub_fast_avx512<T: QInt>(
        t: &AddSubTables,
        a: Src<'_, T>,
        b: Src<'_, T>,
        pre2: Option<&[i32]>,
        y: &mut [T],
    ) -> usize {
        let (m1, m2, mo) = (Fast::new(t.m1), Fast::new(t.m2), Fast::new(t.m_out));
        // SAFETY: forwarded contract; AVX-512F/BW enabled here.
        unsafe { add_sub_loop(t, a, b, pre2, y, [m1, m2, mo]) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::kernels::test_util::Rng;

    /// `t` on `n`-element operands, same shape and each broadcast as a scalar, equals
    /// the reference with parameters `p`.
    fn same_and_broadcast_match<T: QInt + PartialEq + std::fmt::Debug>(
        p: &QBinaryParams,
        t: &AddSubTables,
        a: &[T],
        b: &[T],
        what: &str,
    ) {
        let n = a.len();
        let (mut r, mut f) = (a.to_vec(), a.to_vec());
        binary_reference(p, a, &[n], b, &[n], &mut r, &[n]);
        t.run_same_shape(a, b, &mut f);
        assert_eq!(r, f, "{what}");
        for (sa, sb) in [([n], [1]), ([1], [n])] {
            let (xa, xb) = (&a[..sa[0]], &b[..sb[0]]);
            binary_reference(p, xa, &sa, xb, &sb, &mut r, &[n]);
            t.run_broadcast(xa, &sa, xb, &sb, &mut f, &[n]);
            assert_eq!(r, f, "{what} broadcast");
        }
    }

    #[test]
    fn tv8_int8_add() {
        let p = QBinaryParams::add_sub(false, 20, (0.5, 0), (0.25, 0), (0.5, 0), -128, 127);
        let mut y = [0i8; 1];
        binary_same_shape(&p, &[3i8], &[2i8], &mut y);
        assert_eq!(y, [4]);
    }

    #[test]
    fn uint8_add_with_offsets_and_relu() {
        // 0.1·(x−128) + 0.2·(y−100) on (0.1, 10) output, clamped at Q(0) = 10.
        let p = QBinaryParams::add_sub(false, 20, (0.1, 128), (0.2, 100), (0.1, 10), 10, 255);
        let mut y = [0u8; 3];
        binary_same_shape(&p, &[138u8, 128, 100], &[105u8, 100, 90], &mut y);
        // 1.0 + 1.0 = 2.0 → 30; 0 + 0 → 10; −2.8 − 2.0 → clamped 10.
        assert_eq!(y, [30, 10, 10]);
    }

    #[test]
    fn int16_mul_multiplier_is_computed_in_f32_as_litert() {
        // A trained gated model's block0_0/mul2 (scales as stored in the file): the
        // product 1551·3178 times s1·s2/s_out is 345.49993 exactly (f64), but LiteRT's
        // reference MUL gives 346: its multiplier comes from f32 arithmetic.
        let (s1, s2, so) = (
            f32::from_bits(973414919),
            f32::from_bits(959917202),
            f32::from_bits(983950724),
        );
        let p = QBinaryParams::mul((s1, 0), (s2, 0), (so, 0), -32768, 32767);
        let mut y = [0i16; 1];
        binary_same_shape(&p, &[1551i16], &[3178i16], &mut y);
        assert_eq!(y, [346]);
    }

    #[test]
    fn sub_and_mul() {
        let p = QBinaryParams::add_sub(true, 20, (0.5, 0), (0.5, 0), (0.5, 0), -128, 127);
        let mut y = [0i8; 2];
        binary_same_shape(&p, &[10i8, -3], &[4i8, 5], &mut y);
        assert_eq!(y, [6, -8]);
        // (3−1)·(4−0)·(0.5·0.25/0.125) = 8.
        let p = QBinaryParams::mul((0.5, 1), (0.25, 0), (0.125, 0), -128, 127);
        let mut y = [0i8; 1];
        binary_same_shape(&p, &[3i8], &[4i8], &mut y);
        assert_eq!(y, [8]);
        // Saturation at the type range.
        let mut y = [0i8; 1];
        binary_same_shape(&p, &[127i8], &[127i8], &mut y);
        assert_eq!(y, [127]);
    }

    #[test]
    fn pot16_add_shifts_one_input() {
        let p = QBinaryParams {
            kind: QBinaryKind::Pot16 {
                sub: false,
                shift1: 0,
                shift2: -1,
            },
            in1_offset: 0,
            in2_offset: 0,
            out_offset: 0,
            act_min: -32768,
            act_max: 32767,
        };
        let mut y = [0i16; 3];
        binary_same_shape(&p, &[100i16, 32000, -5], &[5i16, 2000, -3], &mut y);
        assert_eq!(y, [103, 32767, -7]);
    }

    #[test]
    fn broadcasting_matches_elementwise() {
        let p = QBinaryParams::add_sub(false, 20, (0.02, -3), (0.05, 7), (0.04, 1), -128, 127);
        let a_shape = [2, 3, 4];
        let b_shape = [3, 1];
        let a: Vec<i8> = (0..24).map(|i| (i * 11 - 100) as i8).collect();
        let b: Vec<i8> = vec![-50, 0, 90];
        let mut y_ref = vec![0i8; 24];
        binary_reference(&p, &a, &a_shape, &b, &b_shape, &mut y_ref, &[2, 3, 4]);
        for i in 0..24 {
            let row = (i / 4) % 3;
            assert_eq!(y_ref[i] as i32, p.apply(a[i] as i32, b[row] as i32));
        }
        let mut y_fast = vec![0i8; 24];
        binary_broadcast_rows(&p, &a, &a_shape, &b, &b_shape, &mut y_fast, &[2, 3, 4]);
        assert_eq!(y_ref, y_fast);
        // Scalar operand on the left, [4] on the right.
        let mut y1 = vec![0i8; 4];
        let mut y2 = vec![0i8; 4];
        binary_reference(&p, &[5i8], &[], &b[..], &[3], &mut y1[..3], &[3]);
        binary_broadcast_rows(&p, &[5i8], &[], &b[..], &[3], &mut y2[..3], &[3]);
        assert_eq!(y1, y2);
        assert_eq!(y1[1] as i32, p.apply(5, 0));
    }

    /// A per-channel operand broadcast to every row (batch-norm style `[h, w, c] +
    /// [c]`): the rows use the once-rescaled second operand; int8, uint8 and int16,
    /// channel counts with and without a tail, SUB too; int16 runs the general MBQM
    /// form, the 8-bit types the cheaper one.
    #[test]
    fn per_channel_operand_prepared_once_matches_reference() {
        use crate::exec::kernels::cpu;
        fn case<T: QInt + PartialEq + std::fmt::Debug>(p: &QBinaryParams, c: usize, seed: u64) {
            let mut rng = Rng::new(seed);
            let rows = 7;
            let a: Vec<T> = (0..rows * c)
                .map(|_| T::put(rng.range(T::MIN as i64, T::MAX as i64) as i32))
                .collect();
            let b: Vec<T> = (0..c)
                .map(|_| T::put(rng.range(T::MIN as i64, T::MAX as i64) as i32))
                .collect();
            let (sa, sb, so) = ([rows, c], [c], [rows, c]);
            let mut want = vec![T::put(0); rows * c];
            binary_reference(p, &a, &sa, &b, &sb, &mut want, &so);
            for isa in cpu::available_isas() {
                let mut got = vec![T::put(0); rows * c];
                let ran = cpu::with_isa(isa, || {
                    AddSubTables::new::<T>(p)
                        .map(|t| t.run_broadcast(&a, &sa, &b, &sb, &mut got, &so))
                        .is_some()
                });
                if ran {
                    assert_eq!(want, got, "{isa:?} c={c} {p:?}");
                }
            }
        }
        for (i, c) in [16usize, 37, 256].into_iter().enumerate() {
            let seed = 90 + i as u64;
            let add8 =
                QBinaryParams::add_sub(false, 20, (0.02, -3), (0.05, 7), (0.04, 1), -128, 127);
            let sub8 =
                QBinaryParams::add_sub(true, 20, (0.03, 5), (0.01, -9), (0.02, 3), -100, 120);
            case::<i8>(&add8, c, seed);
            case::<i8>(&sub8, c, seed);
            let addu =
                QBinaryParams::add_sub(false, 20, (0.02, 128), (0.07, 100), (0.05, 120), 0, 255);
            case::<u8>(&addu, c, seed);
            let add16 = QBinaryParams::add_sub(
                false,
                15,
                (0.0002, 0),
                (0.0005, 0),
                (0.0004, 0),
                -32768,
                32767,
            );
            case::<i16>(&add16, c, seed);
        }
    }

    #[test]
    fn same_shape_fast_path_equals_reference() {
        let p = QBinaryParams::add_sub(false, 20, (0.031, 12), (0.017, -40), (0.05, -7), -128, 127);
        let a: Vec<i8> = (0..=255).map(|v: i32| v as u8 as i8).collect();
        let b: Vec<i8> = a.iter().rev().copied().collect();
        let mut y1 = vec![0i8; 256];
        let mut y2 = vec![0i8; 256];
        binary_reference(&p, &a, &[256], &b, &[256], &mut y1, &[256]);
        binary_same_shape(&p, &a, &b, &mut y2);
        assert_eq!(y1, y2);
    }

    #[test]
    fn add_sub_tables_equal_reference_on_every_pair() {
        let a: Vec<u8> = (0..=255)
            .flat_map(|v| std::iter::repeat_n(v as u8, 256))
            .collect();
        let b: Vec<u8> = (0..256 * 256).map(|k| (k % 256) as u8).collect();
        for sub in [false, true] {
            let p = QBinaryParams::add_sub(sub, 20, (0.031, 130), (0.017, 40), (0.05, 120), 3, 250);
            let t = AddSubTables::new::<u8>(&p).unwrap();
            assert_eq!(t.fast, t.avx512, "cheaper MBQM on every pair");
            let mut y1 = vec![0u8; a.len()];
            let mut y2 = vec![0u8; a.len()];
            binary_same_shape(&p, &a, &b, &mut y1);
            t.run_same_shape(&a, &b, &mut y2);
            assert_eq!(y1, y2);
        }
        let ai: Vec<i8> = a.iter().map(|&v| v as i8).collect();
        let bi: Vec<i8> = b.iter().map(|&v| v as i8).collect();
        let p = QBinaryParams::add_sub(false, 20, (0.2, -5), (0.01, 17), (0.1, 3), -128, 127);
        let t = AddSubTables::new::<i8>(&p).unwrap();
        let mut y1 = vec![0i8; ai.len()];
        let mut y2 = vec![0i8; ai.len()];
        binary_reference(
            &p,
            &ai,
            &[256, 256],
            &bi[..256],
            &[256],
            &mut y1,
            &[256, 256],
        );
        t.run_broadcast(&ai, &[256, 256], &bi[..256], &[256], &mut y2, &[256, 256]);
        assert_eq!(y1, y2);
        // MUL has no fast path here; int16 has one only as SIMD, never tables.
        assert!(
            AddSubTables::new::<i8>(&QBinaryParams::mul((1.0, 0), (1.0, 0), (1.0, 0), -128, 127))
                .is_none()
        );
        if let Some(t) = AddSubTables::new::<i16>(&p) {
            assert!(t.avx512 && !t.tabulated);
        }
    }

    /// The SIMD rows (taken for runs of 16+) against the reference on odd lengths,
    /// broadcast scalars on either side, extreme scales (output multiplier above 1,
    /// tiny input multipliers) and uint8/int8.
    #[test]
    fn int16_add_sub_fast_path_equals_reference() {
        // int16x8 ADD (left shift 15, zero points 0), as the quantizer writes it.
        let scales = [
            (3.1e-4f32, 1.7e-4f32, 5.0e-4f32),
            (1e-6, 0.9, 1e-3),
            (0.5, 0.5, 100.0),
            (2.0, 1e-5, 0.01),
        ];
        let mut rng = Rng::new(0x9e37_79b9);
        let mut next = || rng.next_u31() as u16 as i16;
        for (k, &(s1, s2, so)) in scales.iter().enumerate() {
            for sub in [false, true] {
                for n in [1usize, 15, 16, 17, 61, 300] {
                    let mut a: Vec<i16> = (0..n).map(|_| next()).collect();
                    let b: Vec<i16> = (0..n).map(|_| next()).collect();
                    a[0] = i16::MIN;
                    let p =
                        QBinaryParams::add_sub(sub, 15, (s1, 0), (s2, 0), (so, 0), -32768, 32767);
                    let Some(t) = AddSubTables::new::<i16>(&p) else {
                        // No AVX-512 here: int16 stays on the generic kernel.
                        assert!(!crate::exec::kernels::cpu::features().avx512bw);
                        return;
                    };
                    same_and_broadcast_match(&p, &t, &a, &b, &format!("case {k} sub {sub} n {n}"));
                }
            }
        }
    }

    #[test]
    fn simd_add_sub_equal_reference() {
        let scales = [
            ((0.031, 12), (0.017, -40), (0.05, -7)),
            ((1e-4, -128), (0.9, 127), (1e-6, 0)),
            ((0.5, 0), (0.5, 0), (100.0, 5)),
            ((2.0, 3), (1e-5, -3), (0.01, -128)),
        ];
        for (k, &(s1, s2, so)) in scales.iter().enumerate() {
            for sub in [false, true] {
                for n in [1usize, 15, 16, 17, 61, 300] {
                    let a: Vec<i8> = (0..n).map(|i| (i * 37 + k) as u8 as i8).collect();
                    let b: Vec<i8> = (0..n).map(|i| (i * 91 + 3 * k) as u8 as i8).collect();
                    let p = QBinaryParams::add_sub(sub, 20, s1, s2, so, -100, 127);
                    let t = AddSubTables::new::<i8>(&p).unwrap();
                    // The SIMD path must be the one under test on AVX-512 machines.
                    let isa = crate::exec::kernels::cpu::selected_isa();
                    let bw = crate::exec::kernels::cpu::features().avx512bw;
                    assert_eq!(
                        t.avx512,
                        isa == crate::exec::kernels::cpu::Isa::Avx512 && bw
                    );
                    // Multipliers up to 1 take the cheaper exact MBQM; the output
                    // multiplier above 1 (case 1) the general one.
                    assert_eq!(t.fast, t.avx512 && k != 1, "case {k}");
                    same_and_broadcast_match(&p, &t, &a, &b, &format!("case {k} sub {sub} n {n}"));
                    let au: Vec<u8> = a.iter().map(|&v| v as u8).collect();
                    let bu: Vec<u8> = b.iter().map(|&v| v as u8).collect();
                    let (z1, z2, zo) = (s1.1 + 128, s2.1 + 128, so.1 + 128);
                    let p = QBinaryParams::add_sub(
                        sub,
                        20,
                        (s1.0, z1),
                        (s2.0, z2),
                        (so.0, zo),
                        zo.min(255),
                        255,
                    );
                    let t = AddSubTables::new::<u8>(&p).unwrap();
                    let what = format!("uint8 case {k} sub {sub} n {n}");
                    same_and_broadcast_match(&p, &t, &au, &bu, &what);
                }
            }
        }
    }

    #[test]
    fn fast_broadcast_paths_equal_reference() {
        let cases: [(&[usize], &[usize]); 7] = [
            (&[2, 1, 3, 4], &[1, 5, 1, 4]),
            (&[1, 6, 6, 3], &[1, 1, 1, 3]),
            (&[6, 6, 1], &[1, 17]),
            (&[], &[2, 3]),
            (&[2, 3], &[]),
            (&[3, 1, 1], &[1, 1, 1]),
            (&[1, 4, 1, 2], &[3, 1, 5, 1]),
        ];
        for (k, (sa, sb)) in cases.into_iter().enumerate() {
            let so = crate::exec::kernels::elementwise::broadcast_shape(sa, sb).unwrap();
            let (na, nb, no) = (
                sa.iter().product::<usize>(),
                sb.iter().product::<usize>(),
                so.iter().product::<usize>(),
            );
            let a: Vec<i8> = (0..na).map(|i| (i * 37 + k) as u8 as i8).collect();
            let b: Vec<i8> = (0..nb).map(|i| (i * 91 + 3 * k) as u8 as i8).collect();
            for p in [
                QBinaryParams::add_sub(true, 20, (0.03, 5), (0.02, -9), (0.04, 2), -128, 127),
                QBinaryParams::mul((0.03, 5), (0.02, -9), (0.004, 2), -100, 127),
            ] {
                let mut r = vec![0i8; no];
                let mut f = vec![0i8; no];
                binary_reference(&p, &a, sa, &b, sb, &mut r, &so);
                binary_broadcast_rows(&p, &a, sa, &b, sb, &mut f, &so);
                assert_eq!(r, f, "{sa:?} {sb:?}");
                if let Some(t) = AddSubTables::new::<i8>(&p) {
                    let mut g = vec![0i8; no];
                    t.run_broadcast(&a, sa, &b, sb, &mut g, &so);
                    assert_eq!(r, g, "{sa:?} {sb:?} (tables)");
                }
                if let Some(t) = MulKernel::new::<i8>(&p) {
                    let mut g = vec![0i8; no];
                    t.run_broadcast(&a, sa, &b, sb, &mut g, &so);
                    assert_eq!(r, g, "{sa:?} {sb:?} (mul)");
                }
            }
        }
    }

    /// The SIMD MUL equals the reference on every lane and tail, for int8, uint8 and
    /// int16, with multipliers below and above 1, per-channel broadcast (the
    /// pre-activation batch-norm of ResNet v2) and scalar operands.
    #[test]
    fn simd_mul_equals_reference() {
        use crate::exec::kernels::cpu::{self, Isa};
        let simd = cpu::selected_isa() == Isa::Avx512 && cpu::features().avx512bw;
        let mut rng = Rng::new(11);
        let cases = [
            ((0.031, 12), (0.017, -40), (0.002, -7)),
            ((0.5, -128), (0.9, 127), (0.01, 0)),
            ((0.02, 0), (0.05, 3), (2e-4, 5)),
            ((1e-3, -3), (1e-3, 100), (1e-8, -128)),
        ];
        for (k, &(s1, s2, so)) in cases.iter().enumerate() {
            let p8 = QBinaryParams::mul(s1, s2, so, -128, 127);
            let pu = QBinaryParams::mul(
                (s1.0, s1.1 + 128),
                (s2.0, s2.1 + 128),
                (so.0, so.1 + 128),
                0,
                255,
            );
            let p16 = QBinaryParams::mul((s1.0, 0), (s2.0, 0), (so.0, 0), -32768, 32767);
            assert_eq!(MulKernel::new::<i8>(&p8).is_some(), simd, "case {k}");
            for (sa, sb) in [
                (vec![1usize, 5, 7, 67], vec![67usize]),
                (vec![300], vec![300]),
                (vec![2, 33], vec![1]),
                (vec![1], vec![3, 48]),
                (vec![4, 16, 1], vec![1, 16, 9]),
            ] {
                let so_shape = crate::exec::kernels::elementwise::broadcast_shape(&sa, &sb)
                    .expect("shapes broadcast");
                let (na, nb, no) = (
                    sa.iter().product::<usize>(),
                    sb.iter().product::<usize>(),
                    so_shape.iter().product::<usize>(),
                );
                let what = format!("case {k} {sa:?} x {sb:?}");
                macro_rules! check {
                    ($t:ty, $p:expr, $gen:expr) => {{
                        let a: Vec<$t> = (0..na).map(|_| $gen).collect();
                        let b: Vec<$t> = (0..nb).map(|_| $gen).collect();
                        let mut r = vec![<$t>::default(); no];
                        binary_reference(&$p, &a, &sa, &b, &sb, &mut r, &so_shape);
                        if let Some(kern) = MulKernel::new::<$t>(&$p) {
                            let mut f = vec![<$t>::default(); no];
                            kern.run_broadcast(&a, &sa, &b, &sb, &mut f, &so_shape);
                            assert_eq!(r, f, "{} {what}", stringify!($t));
                            if sa == sb {
                                let mut g = vec![<$t>::default(); no];
                                kern.run_same_shape(&a, &b, &mut g);
                                assert_eq!(r, g, "{} {what} same shape", stringify!($t));
                            }
                        }
                    }};
                }
                check!(i8, p8, rng.next_u64() as u8 as i8);
                check!(u8, pu, rng.next_u64() as u8);
                check!(i16, p16, rng.next_u64() as u16 as i16);
            }
        }
    }
}

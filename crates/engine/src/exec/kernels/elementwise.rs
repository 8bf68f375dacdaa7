//! Binary element-wise ops (ADD, SUB, MUL, DIV, FLOOR_DIV) with NumPy broadcasting.
//!
//! Shapes are right-aligned; a dimension broadcasts when it is 1 (or missing). The
//! loop nest is first simplified: output dims of size 1 are dropped and adjacent
//! dims with the same broadcast pattern are merged. Equal shapes become one flat
//! loop, `[N,H,W,C] (op) [C]` becomes `[N·H·W, C]` with a contiguous inner row, so
//! the hot cases run as plain slice loops the compiler vectorizes.

use super::activation::clamp_act;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
}

/// NumPy broadcast of two shapes, or `None` if some pair of dims differs and
/// neither is 1.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = dim_aligned(a, rank, i);
        let db = dim_aligned(b, rank, i);
        out.push(if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        });
    }
    Some(out)
}

/// Dim `i` of `shape` right-aligned into `rank` dims (missing leading dims are 1).
fn dim_aligned(shape: &[usize], rank: usize, i: usize) -> usize {
    let lead = rank - shape.len();
    if i < lead { 1 } else { shape[i - lead] }
}

/// Element-wise `op` on floats with broadcasting, then the fused-activation clamp
/// `[act_min, act_max]` (pass `f32::NEG_INFINITY, f32::INFINITY` for none).
///
/// `out_shape` must be `broadcast_shape(a_shape, b_shape)` and every slice must
/// hold exactly its shape's element count (checked; a mismatch is a caller bug).
#[allow(clippy::too_many_arguments)]
pub fn binary_f32(
    op: BinaryOp,
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out: &mut [f32],
    out_shape: &[usize],
    act_min: f32,
    act_max: f32,
) {
    let (lo, hi) = (act_min, act_max);
    match op {
        BinaryOp::Add => broadcast(a, a_shape, b, b_shape, out, out_shape, |x, y| {
            clamp_act(x + y, lo, hi)
        }),
        BinaryOp::Sub => broadcast(a, a_shape, b, b_shape, out, out_shape, |x, y| {
            clamp_act(x - y, lo, hi)
        }),
        BinaryOp::Mul => broadcast(a, a_shape, b, b_shape, out, out_shape, |x, y| {
            clamp_act(x * y, lo, hi)
        }),
        BinaryOp::Div => broadcast(a, a_shape, b, b_shape, out, out_shape, |x, y| {
            clamp_act(x / y, lo, hi)
        }),
        // TFLite divides in double before flooring; doing it in f32 could round a
        // quotient just below an integer up to it and floor one too high.
        BinaryOp::FloorDiv => broadcast(a, a_shape, b, b_shape, out, out_shape, |x, y| {
            clamp_act((x as f64 / y as f64).floor() as f32, lo, hi)
        }),
    }
}

/// Element-wise `op` on `i32` with broadcasting. Add/Sub/Mul wrap on overflow;
/// Div truncates toward zero, FloorDiv rounds toward −∞; dividing by zero gives 0
/// (TFLite rejects it at run time; we stay total instead of panicking).
pub fn binary_i32(
    op: BinaryOp,
    a: &[i32],
    a_shape: &[usize],
    b: &[i32],
    b_shape: &[usize],
    out: &mut [i32],
    out_shape: &[usize],
) {
    match op {
        BinaryOp::Add => broadcast(a, a_shape, b, b_shape, out, out_shape, i32::wrapping_add),
        BinaryOp::Sub => broadcast(a, a_shape, b, b_shape, out, out_shape, i32::wrapping_sub),
        BinaryOp::Mul => broadcast(a, a_shape, b, b_shape, out, out_shape, i32::wrapping_mul),
        BinaryOp::Div => broadcast(a, a_shape, b, b_shape, out, out_shape, |x, y| {
            if y == 0 { 0 } else { x.wrapping_div(y) }
        }),
        BinaryOp::FloorDiv => broadcast(a, a_shape, b, b_shape, out, out_shape, floor_div_i32),
    }
}

fn floor_div_i32(x: i32, y: i32) -> i32 {
    if y == 0 {
        return 0;
    }
    let q = x.wrapping_div(y);
    // Truncation rounded toward zero; step down when the exact quotient is negative
    // and not an integer.
    if x.wrapping_rem(y) != 0 && ((x < 0) != (y < 0)) {
        q.wrapping_sub(1)
    } else {
        q
    }
}

/// One merged loop dimension: its extent and whether each operand advances along it
/// (false = broadcast).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dim {
    n: usize,
    a: bool,
    b: bool,
}

/// Output dims with size 1 dropped and adjacent dims of equal broadcast pattern merged.
fn merged_dims(a_shape: &[usize], b_shape: &[usize], out_shape: &[usize]) -> Vec<Dim> {
    let rank = out_shape.len();
    let mut dims: Vec<Dim> = Vec::with_capacity(rank);
    for (i, &n) in out_shape.iter().enumerate() {
        if n == 1 {
            continue;
        }
        let d = Dim {
            n,
            a: dim_aligned(a_shape, rank, i) == n,
            b: dim_aligned(b_shape, rank, i) == n,
        };
        match dims.last_mut() {
            Some(last) if last.a == d.a && last.b == d.b => last.n *= n,
            _ => dims.push(d),
        }
    }
    dims
}

#[inline(always)]
fn broadcast<T: Copy>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out: &mut [T],
    out_shape: &[usize],
    f: impl Fn(T, T) -> T + Copy,
) {
    assert_eq!(
        broadcast_shape(a_shape, b_shape).as_deref(),
        Some(out_shape),
        "binary op: output shape is not the broadcast of the inputs"
    );
    let count = |s: &[usize]| s.iter().product::<usize>();
    assert_eq!(a.len(), count(a_shape), "binary op: lhs length");
    assert_eq!(b.len(), count(b_shape), "binary op: rhs length");
    assert_eq!(out.len(), count(out_shape), "binary op: output length");
    if out.is_empty() {
        return;
    }

    let dims = merged_dims(a_shape, b_shape, out_shape);
    let Some((inner, outer)) = dims.split_last() else {
        // Every dim is 1: a single element.
        out[0] = f(a[0], b[0]);
        return;
    };

    // Element strides of each operand along the outer dims (0 when broadcast).
    let mut a_str = vec![0usize; outer.len()];
    let mut b_str = vec![0usize; outer.len()];
    let (mut sa, mut sb) = (
        if inner.a { inner.n } else { 1 },
        if inner.b { inner.n } else { 1 },
    );
    for (k, d) in outer.iter().enumerate().rev() {
        if d.a {
            a_str[k] = sa;
            sa *= d.n;
        }
        if d.b {
            b_str[k] = sb;
            sb *= d.n;
        }
    }

    let n = inner.n;
    let mut idx = vec![0usize; outer.len()];
    let (mut ao, mut bo) = (0usize, 0usize);
    for row in out.chunks_exact_mut(n) {
        match (inner.a, inner.b) {
            (true, true) => {
                for ((o, &x), &y) in row.iter_mut().zip(&a[ao..ao + n]).zip(&b[bo..bo + n]) {
                    *o = f(x, y);
                }
            }
            (true, false) => {
                let y = b[bo];
                for (o, &x) in row.iter_mut().zip(&a[ao..ao + n]) {
                    *o = f(x, y);
                }
            }
            (false, true) => {
                let x = a[ao];
                for (o, &y) in row.iter_mut().zip(&b[bo..bo + n]) {
                    *o = f(x, y);
                }
            }
            (false, false) => row.fill(f(a[ao], b[bo])),
        }
        // Odometer over the outer dims, keeping both operand offsets in step.
        for k in (0..outer.len()).rev() {
            idx[k] += 1;
            ao += a_str[k];
            bo += b_str[k];
            if idx[k] < outer[k].n {
                break;
            }
            ao -= a_str[k] * outer[k].n;
            bo -= b_str[k] * outer[k].n;
            idx[k] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_ACT: (f32, f32) = (f32::NEG_INFINITY, f32::INFINITY);

    fn run_f32(op: BinaryOp, a: &[f32], sa: &[usize], b: &[f32], sb: &[usize]) -> Vec<f32> {
        let so = broadcast_shape(sa, sb).unwrap();
        let mut out = vec![f32::NAN; so.iter().product()];
        binary_f32(op, a, sa, b, sb, &mut out, &so, NO_ACT.0, NO_ACT.1);
        out
    }

    /// Plain index-by-index broadcasting oracle.
    fn naive(a: &[f32], sa: &[usize], b: &[f32], sb: &[usize], f: fn(f32, f32) -> f32) -> Vec<f32> {
        let so = broadcast_shape(sa, sb).unwrap();
        let rank = so.len();
        let total: usize = so.iter().product();
        let flat = |shape: &[usize], coord: &[usize]| {
            let lead = rank - shape.len();
            let mut off = 0;
            for (i, &d) in shape.iter().enumerate() {
                let c = if d == 1 { 0 } else { coord[lead + i] };
                off = off * d + c;
            }
            off
        };
        (0..total)
            .map(|mut lin| {
                let mut coord = vec![0; rank];
                for i in (0..rank).rev() {
                    coord[i] = lin % so[i];
                    lin /= so[i];
                }
                f(a[flat(sa, &coord)], b[flat(sb, &coord)])
            })
            .collect()
    }

    #[test]
    fn broadcast_shapes() {
        assert_eq!(broadcast_shape(&[2, 3], &[2, 3]), Some(vec![2, 3]));
        assert_eq!(broadcast_shape(&[2, 3], &[]), Some(vec![2, 3]));
        assert_eq!(broadcast_shape(&[1, 4, 1], &[3, 1, 5]), Some(vec![3, 4, 5]));
        assert_eq!(
            broadcast_shape(&[8, 1, 6, 1], &[7, 1, 5]),
            Some(vec![8, 7, 6, 5])
        );
        assert_eq!(broadcast_shape(&[2, 3], &[3, 2]), None);
        assert_eq!(broadcast_shape(&[0, 3], &[1, 3]), Some(vec![0, 3]));
    }

    #[test]
    fn equal_shapes_all_ops() {
        let a = [1.0, -2.0, 7.0, -7.0];
        let b = [2.0, 4.0, -2.0, 2.0];
        let s = [2, 2];
        assert_eq!(
            run_f32(BinaryOp::Add, &a, &s, &b, &s),
            [3.0, 2.0, 5.0, -5.0]
        );
        assert_eq!(
            run_f32(BinaryOp::Sub, &a, &s, &b, &s),
            [-1.0, -6.0, 9.0, -9.0]
        );
        assert_eq!(
            run_f32(BinaryOp::Mul, &a, &s, &b, &s),
            [2.0, -8.0, -14.0, -14.0]
        );
        assert_eq!(
            run_f32(BinaryOp::Div, &a, &s, &b, &s),
            [0.5, -0.5, -3.5, -3.5]
        );
        assert_eq!(
            run_f32(BinaryOp::FloorDiv, &a, &s, &b, &s),
            [0.0, -1.0, -4.0, -4.0]
        );
    }

    #[test]
    fn fused_activation_clamps() {
        let a = [-3.0, 1.0, 5.0];
        let b = [1.0, 1.0, 2.0];
        let mut out = [0.0; 3];
        binary_f32(BinaryOp::Add, &a, &[3], &b, &[3], &mut out, &[3], 0.0, 6.0);
        assert_eq!(out, [0.0, 2.0, 6.0]);
    }

    #[test]
    fn scalar_broadcast_both_sides() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(
            run_f32(BinaryOp::Sub, &a, &[2, 3], &[10.0], &[]),
            [-9.0, -8.0, -7.0, -6.0, -5.0, -4.0]
        );
        assert_eq!(
            run_f32(BinaryOp::Sub, &[10.0], &[1, 1], &a, &[2, 3]),
            [9.0, 8.0, 7.0, 6.0, 5.0, 4.0]
        );
        // Scalar op scalar, rank-0 output.
        assert_eq!(run_f32(BinaryOp::Mul, &[3.0], &[], &[4.0], &[]), [12.0]);
    }

    #[test]
    fn per_channel_and_nhwc_vs_11c() {
        // [1,2,2,3] + [3]: channel bias.
        let a: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let bias = [100.0, 200.0, 300.0];
        let want: Vec<f32> = (0..12).map(|v| v as f32 + bias[v % 3]).collect();
        assert_eq!(run_f32(BinaryOp::Add, &a, &[1, 2, 2, 3], &bias, &[3]), want);
        // [1,1,1,3] * [2,2,1,3] (squeeze-excite style scale), operand order swapped.
        let scale = [1.0, 10.0, 100.0];
        let x: Vec<f32> = (1..=12).map(|v| v as f32).collect();
        let want: Vec<f32> = (1..=12).map(|v| v as f32 * scale[(v - 1) % 3]).collect();
        assert_eq!(
            run_f32(BinaryOp::Mul, &scale, &[1, 1, 1, 3], &x, &[2, 2, 1, 3]),
            want
        );
    }

    #[test]
    fn rank_mismatch_and_two_sided_broadcast() {
        // [2,1] (op) [3] -> [2,3]: a column against a row.
        let out = run_f32(
            BinaryOp::Sub,
            &[10.0, 20.0],
            &[2, 1],
            &[1.0, 2.0, 3.0],
            &[3],
        );
        assert_eq!(out, [9.0, 8.0, 7.0, 19.0, 18.0, 17.0]);
        // Awkward mixed pattern checked against the naive oracle.
        let sa = [2, 1, 3, 1, 2];
        let sb = [4, 1, 5, 2];
        let a: Vec<f32> = (0..12).map(|v| v as f32 * 0.5).collect();
        let b: Vec<f32> = (0..40).map(|v| v as f32 - 7.0).collect();
        let want = naive(&a, &sa, &b, &sb, |x, y| x * 3.0 - y);
        let mut got = vec![0.0; want.len()];
        let so = broadcast_shape(&sa, &sb).unwrap();
        assert_eq!(so, [2, 4, 3, 5, 2]);
        // x*3 - y is not a BinaryOp; check Sub on (3a, b) instead.
        let a3: Vec<f32> = a.iter().map(|v| v * 3.0).collect();
        binary_f32(
            BinaryOp::Sub,
            &a3,
            &sa,
            &b,
            &sb,
            &mut got,
            &so,
            NO_ACT.0,
            NO_ACT.1,
        );
        assert_eq!(got, want);
        // Six dims, size-1 dims scattered on both sides.
        let sa = [2, 1, 3, 1, 1, 2];
        let sb = [1, 2, 1, 1, 4, 1];
        let a: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let b: Vec<f32> = (0..8).map(|v| v as f32 * 100.0).collect();
        assert_eq!(
            run_f32(BinaryOp::Add, &a, &sa, &b, &sb),
            naive(&a, &sa, &b, &sb, |x, y| x + y)
        );
    }

    #[test]
    fn empty_output() {
        let mut out: [f32; 0] = [];
        binary_f32(
            BinaryOp::Add,
            &[],
            &[0, 3],
            &[1.0, 2.0, 3.0],
            &[3],
            &mut out,
            &[0, 3],
            0.0,
            1.0,
        );
    }

    #[test]
    fn i32_ops() {
        let a = [7, -7, 7, -7, 5, i32::MIN];
        let b = [2, 2, -2, -2, 0, -1];
        let s = [6];
        let run = |op| {
            let mut out = [0; 6];
            binary_i32(op, &a, &s, &b, &s, &mut out, &s);
            out
        };
        assert_eq!(run(BinaryOp::Div), [3, -3, -3, 3, 0, i32::MIN]);
        assert_eq!(run(BinaryOp::FloorDiv), [3, -4, -4, 3, 0, i32::MIN]);
        assert_eq!(run(BinaryOp::Add), [9, -5, 5, -9, 5, i32::MAX]);
        assert_eq!(run(BinaryOp::Sub), [5, -9, 9, -5, 5, i32::MIN + 1]);
        assert_eq!(run(BinaryOp::Mul), [14, -14, -14, 14, 0, i32::MIN]);
        // Broadcast: [2,2] floordiv [2].
        let mut out = [0; 4];
        binary_i32(
            BinaryOp::FloorDiv,
            &[9, -9, 8, -8],
            &[2, 2],
            &[4, 3],
            &[2],
            &mut out,
            &[2, 2],
        );
        assert_eq!(out, [2, -3, 2, -3]);
    }
}

//! Data-movement ops, generic over the element type: PAD, CONCATENATION,
//! STRIDED_SLICE, TRANSPOSE, GATHER. They copy values and never look at them, so
//! quantized tensors go through unchanged (quantization-spec §15).

use crate::ir::StridedSliceOptions;
use crate::{EngineError, Result};

/// Row-major element strides of `shape`.
fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Advance a row-major odometer `idx` over `dims`; false once it wraps to all zeros.
fn next_index(idx: &mut [usize], dims: &[usize]) -> bool {
    for k in (0..dims.len()).rev() {
        idx[k] += 1;
        if idx[k] < dims[k] {
            return true;
        }
        idx[k] = 0;
    }
    false
}

/// PAD / PADV2: `y` has dims `shape[i] + before_i + after_i`; the border is `value`.
pub fn pad<T: Copy>(x: &[T], shape: &[usize], paddings: &[(usize, usize)], value: T, y: &mut [T]) {
    assert_eq!(
        paddings.len(),
        shape.len(),
        "pad: one (before, after) pair per dim"
    );
    assert_eq!(
        x.len(),
        shape.iter().product::<usize>(),
        "pad: input length"
    );
    let out_shape: Vec<usize> = shape
        .iter()
        .zip(paddings)
        .map(|(&d, &(b, a))| d + b + a)
        .collect();
    assert_eq!(
        y.len(),
        out_shape.iter().product::<usize>(),
        "pad: output length"
    );
    y.fill(value);
    if x.is_empty() {
        return;
    }
    let Some(&row) = shape.last() else {
        // Rank 0: a scalar has nothing to pad.
        y[0] = x[0];
        return;
    };
    let ostr = strides_of(&out_shape);
    let outer = &shape[..shape.len() - 1];
    // Offset of input element (0, .., 0) in the output.
    let base: usize = paddings.iter().zip(&ostr).map(|(&(b, _), &s)| b * s).sum();
    let mut idx = vec![0usize; outer.len()];
    for src in x.chunks_exact(row) {
        let off = base + idx.iter().zip(&ostr).map(|(&i, &s)| i * s).sum::<usize>();
        y[off..off + row].copy_from_slice(src);
        next_index(&mut idx, outer);
    }
}

/// CONCATENATION along `axis`: every input has the same rank and equal dims except
/// along `axis`.
pub fn concatenation<T: Copy>(inputs: &[(&[T], &[usize])], axis: usize, y: &mut [T]) {
    let Some(&(_, first)) = inputs.first() else {
        assert!(y.is_empty(), "concatenation: no inputs");
        return;
    };
    assert!(axis < first.len(), "concatenation: axis out of range");
    let outer: usize = first[..axis].iter().product();
    let mut total = 0usize;
    for (data, shape) in inputs {
        assert!(
            shape.len() == first.len()
                && shape[..axis] == first[..axis]
                && shape[axis + 1..] == first[axis + 1..],
            "concatenation: shapes differ outside the axis"
        );
        assert_eq!(
            data.len(),
            shape.iter().product::<usize>(),
            "concatenation: input length"
        );
        total += data.len();
    }
    assert_eq!(y.len(), total, "concatenation: output length");
    if outer == 0 {
        return;
    }
    // Each input contributes one contiguous block of shape[axis..] per outer index.
    let mut off = 0usize;
    for o in 0..outer {
        for (data, _) in inputs {
            let block = data.len() / outer;
            y[off..off + block].copy_from_slice(&data[o * block..][..block]);
            off += block;
        }
    }
}

/// A resolved STRIDED_SLICE.
///
/// `begin`, `stride` and `full_out_shape` are per *effective* dim: the input dims
/// with the new axes (`new_axis_mask`) inserted. An inserted axis has
/// `begin = 0`, `stride = 0` (it reads no input dim) and extent 1. `out_shape` is
/// `full_out_shape` with the shrunk dims removed; both have the same element count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlicePlan {
    pub out_shape: Vec<usize>,
    pub full_out_shape: Vec<usize>,
    pub begin: Vec<i64>,
    pub stride: Vec<i64>,
}

/// Bit `i` of a TFLite mask (`i32`, so positions ≥ 32 are never set).
fn bit(mask: i32, i: usize) -> bool {
    i < 32 && (mask >> i) & 1 != 0
}

/// Resolve begin/end/strides and the masks against `shape`, as TFLite's
/// STRIDED_SLICE kernel does:
///
/// - an ellipsis expands to the dims the spec leaves unnamed (full range);
/// - a new axis inserts a size-1 dim (ignored where the ellipsis bit is also set);
/// - spec dims missing at the end take their full range;
/// - negative indices count from the end; `begin` clamps to `[0, n]` (`[−1, n−1]`
///   for negative strides), `end` likewise; a begin/end mask bit overrides the
///   index with the full extent in the stride's direction;
/// - `offset` means `end = begin + end` (before clamping);
/// - a shrunk dim takes exactly the element at `begin`, and is dropped from
///   `out_shape`.
///
/// Errors: length mismatch of begin/end/strides, zero stride, more spec entries
/// than dims, a shrink index outside the dim.
pub fn strided_slice_plan(
    shape: &[usize],
    begin: &[i64],
    end: &[i64],
    strides: &[i64],
    opts: &StridedSliceOptions,
) -> Result<SlicePlan> {
    let count = begin.len();
    if end.len() != count || strides.len() != count {
        return Err(EngineError::invalid(format!(
            "strided_slice: begin/end/strides lengths differ ({count}, {}, {})",
            end.len(),
            strides.len()
        )));
    }
    if let Some(i) = strides.iter().position(|&s| s == 0) {
        return Err(EngineError::invalid(format!(
            "strided_slice: stride {i} is zero"
        )));
    }
    // Mask bits beyond the spec length mean nothing; drop them so they cannot
    // shift the dim bookkeeping below.
    let valid = |m: i32| {
        if count >= 32 {
            m
        } else {
            m & ((1i32 << count) - 1)
        }
    };
    let ellipsis_mask = valid(opts.ellipsis_mask);
    let new_axis_mask = valid(opts.new_axis_mask);

    let input_dims = shape.len();
    let num_add_axis = (0..count)
        .filter(|&i| !bit(ellipsis_mask, i) && bit(new_axis_mask, i))
        .count();
    let eff_dims = input_dims + num_add_axis;
    if count > eff_dims && ellipsis_mask == 0 {
        return Err(EngineError::invalid(format!(
            "strided_slice: {count} slice specs for a rank-{input_dims} input"
        )));
    }

    // Which effective dims the ellipsis covers and which are new axes.
    let mut eff_ellipsis = vec![false; eff_dims];
    let mut eff_new = vec![false; eff_dims];
    let mut ellipsis_start = eff_dims;
    let mut expanded = 0usize;
    let mut i = 0usize;
    while i < eff_dims {
        if bit(ellipsis_mask, i) {
            ellipsis_start = i;
            let want = (i + 1 + num_add_axis + input_dims) as isize - count as isize;
            let stop = (want.min(eff_dims as isize) as usize).max(i + 1);
            expanded = stop - i - 1;
            eff_ellipsis[i..stop].fill(true);
            i = stop;
            continue;
        }
        if bit(new_axis_mask, i - expanded) {
            eff_new[i] = true;
        }
        i += 1;
    }

    let bad_masks = || EngineError::invalid("strided_slice: masks do not fit the input rank");
    let mut plan = SlicePlan {
        out_shape: Vec::new(),
        full_out_shape: Vec::with_capacity(eff_dims),
        begin: Vec::with_capacity(eff_dims),
        stride: Vec::with_capacity(eff_dims),
    };
    let mut added_axes = 0usize;
    let mut added_ellipsis = 0usize;
    for i in 0..eff_dims {
        if eff_new[i] && !eff_ellipsis[i] {
            plan.full_out_shape.push(1);
            plan.out_shape.push(1);
            plan.begin.push(0);
            plan.stride.push(0);
            added_axes += 1;
            continue;
        }
        let size = *shape.get(i - added_axes).ok_or_else(bad_masks)? as i64;
        // (start, stop, stride, begin-masked, end-masked, shrink)
        let spec = if eff_ellipsis[i] {
            added_ellipsis = i - ellipsis_start;
            (0, 0, 1, true, true, false)
        } else if i >= count + expanded {
            (0, 0, 1, true, true, false)
        } else {
            let o = i - added_ellipsis;
            (
                begin[o],
                end[o],
                strides[o],
                bit(opts.begin_mask, o),
                bit(opts.end_mask, o),
                bit(opts.shrink_axis_mask, o),
            )
        };
        let (b, e, s, bmask, emask, shrink) = spec;

        // Start index (TFLite StridedSliceStartForAxis).
        let mut start = if b < 0 { b.saturating_add(size) } else { b };
        start = if s > 0 {
            start.clamp(0, size)
        } else {
            start.clamp(-1, size - 1)
        };
        if bmask {
            start = if s > 0 { 0 } else { size - 1 };
        }

        let extent = if shrink {
            if start < 0 || start >= size {
                return Err(EngineError::invalid(format!(
                    "strided_slice: shrink index {b} out of range for dim {i} of size {size}"
                )));
            }
            1
        } else {
            // Stop index (TFLite StridedSliceEndForAxis).
            let mut stop = if opts.offset {
                e.saturating_add(start)
            } else {
                e
            };
            if stop < 0 {
                stop = stop.saturating_add(size);
            }
            stop = if s > 0 {
                stop.clamp(0, size)
            } else {
                stop.clamp(-1, size - 1)
            };
            if emask {
                stop = if s > 0 { size } else { -1 };
            }
            // ceil((stop − start) / s), floored at 0.
            let span = if s > 0 { stop - start } else { start - stop };
            let step = s.unsigned_abs() as i64;
            if span > 0 {
                ((span + step - 1) / step) as usize
            } else {
                0
            }
        };
        plan.full_out_shape.push(extent);
        if !shrink {
            plan.out_shape.push(extent);
        }
        // Keep begin in range even for empty slices so the kernel never offsets
        // outside the input (it reads nothing then anyway).
        plan.begin.push(if extent == 0 { 0 } else { start });
        plan.stride.push(s);
    }
    Ok(plan)
}

/// Copy the slice described by `plan` (from [`strided_slice_plan`] for this
/// `shape`) into `y` (`plan.full_out_shape` elements, row-major).
pub fn strided_slice<T: Copy>(x: &[T], shape: &[usize], plan: &SlicePlan, y: &mut [T]) {
    assert_eq!(
        x.len(),
        shape.iter().product::<usize>(),
        "strided_slice: input length"
    );
    let dims = &plan.full_out_shape;
    assert_eq!(
        y.len(),
        dims.iter().product::<usize>(),
        "strided_slice: output length"
    );
    if y.is_empty() {
        return;
    }
    // Input element stride of every effective dim (0 for inserted axes).
    let in_str = strides_of(shape);
    let mut eff_str = Vec::with_capacity(dims.len());
    let mut d = 0usize;
    for &s in &plan.stride {
        if s == 0 {
            eff_str.push(0isize);
        } else {
            eff_str.push(in_str[d] as isize);
            d += 1;
        }
    }
    assert_eq!(
        d,
        shape.len(),
        "strided_slice: plan does not match the input rank"
    );
    let base: isize = plan
        .begin
        .iter()
        .zip(&eff_str)
        .map(|(&b, &s)| b as isize * s)
        .sum();
    let step: Vec<isize> = plan
        .stride
        .iter()
        .zip(&eff_str)
        .map(|(&st, &s)| st as isize * s)
        .collect();

    let Some((&n, outer)) = dims.split_last() else {
        y[0] = x[base as usize];
        return;
    };
    let inner_step = step[dims.len() - 1];
    let mut idx = vec![0usize; outer.len()];
    for row in y.chunks_exact_mut(n) {
        let mut off = base
            + idx
                .iter()
                .zip(&step)
                .map(|(&i, &s)| i as isize * s)
                .sum::<isize>();
        for v in row.iter_mut() {
            *v = x[off as usize];
            off += inner_step;
        }
        next_index(&mut idx, outer);
    }
}

/// TRANSPOSE: output dim `k` is input dim `perm[k]`.
pub fn transpose<T: Copy>(x: &[T], shape: &[usize], perm: &[usize], y: &mut [T]) {
    assert_eq!(perm.len(), shape.len(), "transpose: perm length");
    let mut seen = vec![false; perm.len()];
    for &p in perm {
        assert!(
            p < perm.len() && !seen[p],
            "transpose: perm is not a permutation"
        );
        seen[p] = true;
    }
    assert_eq!(
        x.len(),
        shape.iter().product::<usize>(),
        "transpose: input length"
    );
    assert_eq!(y.len(), x.len(), "transpose: output length");
    if x.is_empty() {
        return;
    }
    let in_str = strides_of(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let step: Vec<usize> = perm.iter().map(|&p| in_str[p]).collect();
    let Some((&n, outer)) = out_shape.split_last() else {
        y[0] = x[0];
        return;
    };
    let inner_step = step[step.len() - 1];
    let mut idx = vec![0usize; outer.len()];
    for row in y.chunks_exact_mut(n) {
        let mut off: usize = idx.iter().zip(&step).map(|(&i, &s)| i * s).sum();
        for v in row.iter_mut() {
            *v = x[off];
            off += inner_step;
        }
        next_index(&mut idx, outer);
    }
}

/// GATHER along `axis` (batch_dims 0): output shape is
/// `shape[..axis] ++ indices.shape ++ shape[axis+1..]`; `indices` is given flat.
/// Indices outside `0..shape[axis]` are an error (checked before writing).
pub fn gather<T: Copy>(
    params: &[T],
    shape: &[usize],
    indices: &[i64],
    axis: usize,
    y: &mut [T],
) -> Result<()> {
    if axis >= shape.len() {
        return Err(EngineError::invalid(format!(
            "gather: axis {axis} out of range for rank {}",
            shape.len()
        )));
    }
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    if params.len() != outer * n * inner || y.len() != outer * indices.len() * inner {
        return Err(EngineError::invalid(
            "gather: tensor sizes do not match the shapes",
        ));
    }
    if let Some(&bad) = indices.iter().find(|&&i| i < 0 || i as u64 >= n as u64) {
        return Err(EngineError::invalid(format!(
            "gather: index {bad} out of range for axis of size {n}"
        )));
    }
    if y.is_empty() {
        return Ok(());
    }
    for (o, out) in y.chunks_exact_mut(indices.len() * inner).enumerate() {
        let src = &params[o * n * inner..][..n * inner];
        for (dst, &i) in out.chunks_exact_mut(inner).zip(indices) {
            dst.copy_from_slice(&src[i as usize * inner..][..inner]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iota(n: usize) -> Vec<i32> {
        (0..n as i32).collect()
    }

    fn opts() -> StridedSliceOptions {
        StridedSliceOptions::default()
    }

    /// Plan + run; returns (out_shape, values).
    fn slice(
        shape: &[usize],
        begin: &[i64],
        end: &[i64],
        strides: &[i64],
        o: StridedSliceOptions,
    ) -> (Vec<usize>, Vec<i32>) {
        let x = iota(shape.iter().product());
        let plan = strided_slice_plan(shape, begin, end, strides, &o).unwrap();
        assert_eq!(
            plan.out_shape.iter().product::<usize>(),
            plan.full_out_shape.iter().product::<usize>()
        );
        let mut y = vec![-1; plan.full_out_shape.iter().product()];
        strided_slice(&x, shape, &plan, &mut y);
        (plan.out_shape, y)
    }

    #[test]
    fn pad_2d_and_3d() {
        // [2,2] with 1 row before, 1 col after.
        let mut y = [0; 9];
        pad(&[1, 2, 3, 4], &[2, 2], &[(1, 0), (0, 1)], 9, &mut y);
        assert_eq!(y, [9, 9, 9, 1, 2, 9, 3, 4, 9]);
        // NHWC spatial padding by 1 of a [1,1,1,2] tensor.
        let mut y = [0.0f32; 18];
        pad(
            &[5.0, 6.0],
            &[1, 1, 1, 2],
            &[(0, 0), (1, 1), (1, 1), (0, 0)],
            0.0,
            &mut y,
        );
        let mut want = [0.0; 18];
        want[8] = 5.0;
        want[9] = 6.0;
        assert_eq!(y, want);
        // Padding the channel dim (innermost).
        let mut y = [0i8; 8];
        pad(&[1, 2, 3, 4], &[2, 2], &[(0, 0), (1, 1)], -1, &mut y);
        assert_eq!(y, [-1, 1, 2, -1, -1, 3, 4, -1]);
    }

    #[test]
    fn concat_axes() {
        let a = [1, 2, 3, 4]; // [2,2]
        let b = [5, 6]; // [2,1] / [1,2]
        let mut y = [0; 6];
        concatenation(&[(&a[..], &[2, 2][..]), (&b[..], &[2, 1][..])], 1, &mut y);
        assert_eq!(y, [1, 2, 5, 3, 4, 6]);
        concatenation(&[(&a[..], &[2, 2][..]), (&b[..], &[1, 2][..])], 0, &mut y);
        assert_eq!(y, [1, 2, 3, 4, 5, 6]);
        // Three inputs along the channel axis of NHWC.
        let mut y = [0u8; 6];
        concatenation(
            &[
                (&[1u8, 2][..], &[1, 2, 1][..]),
                (&[3u8, 4][..], &[1, 2, 1][..]),
                (&[5u8, 6][..], &[1, 2, 1][..]),
            ],
            2,
            &mut y,
        );
        assert_eq!(y, [1, 3, 5, 2, 4, 6]);
    }

    #[test]
    fn transpose_cases() {
        // [2,3] -> [3,2].
        let mut y = [0; 6];
        transpose(&iota(6), &[2, 3], &[1, 0], &mut y);
        assert_eq!(y, [0, 3, 1, 4, 2, 5]);
        // NHWC -> NCHW on [1,2,2,3]: y[c][h][w] = x[h][w][c] = (h*2+w)*3+c.
        let mut y = [0; 12];
        transpose(&iota(12), &[1, 2, 2, 3], &[0, 3, 1, 2], &mut y);
        assert_eq!(y, [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]);
        // Identity.
        transpose(&iota(12), &[1, 2, 2, 3], &[0, 1, 2, 3], &mut y);
        assert_eq!(y.to_vec(), iota(12));
    }

    #[test]
    fn gather_cases() {
        // [3,2] rows by index, axis 0, with repeats.
        let mut y = [0; 6];
        gather(&iota(6), &[3, 2], &[2, 0, 2], 0, &mut y).unwrap();
        assert_eq!(y, [4, 5, 0, 1, 4, 5]);
        // axis 1.
        let mut y = [0; 4];
        gather(&iota(6), &[2, 3], &[2, 1], 1, &mut y).unwrap();
        assert_eq!(y, [2, 1, 5, 4]);
        // Errors, no panic, output untouched.
        let mut y = [7; 2];
        assert!(gather(&iota(6), &[2, 3], &[3], 1, &mut y).is_err());
        assert!(gather(&iota(6), &[2, 3], &[-1], 1, &mut y).is_err());
        assert!(gather(&iota(6), &[2, 3], &[0], 2, &mut y).is_err());
        assert!(gather(&iota(6), &[2, 3], &[0, 1], 1, &mut y).is_err()); // wrong out size
        assert_eq!(y, [7, 7]);
        // No indices: empty output.
        gather::<i32>(&iota(6), &[2, 3], &[], 1, &mut []).unwrap();
    }

    #[test]
    fn strided_slice_basic() {
        // [3,4] rows 1..3, every other column.
        let (s, v) = slice(&[3, 4], &[1, 0], &[3, 4], &[1, 2], opts());
        assert_eq!((s, v), (vec![2, 2], vec![4, 6, 8, 10]));
        // Negative indices: [-3, -1) of 5.
        assert_eq!(
            slice(&[5], &[-3], &[-1], &[1], opts()),
            (vec![2], vec![2, 3])
        );
        // Out-of-range indices clamp.
        assert_eq!(slice(&[4], &[-10], &[10], &[1], opts()).1, vec![0, 1, 2, 3]);
        // Stride that does not divide: 0,3,6 of 7.
        assert_eq!(slice(&[7], &[0], &[7], &[3], opts()).1, vec![0, 3, 6]);
        // Negative stride, partial: 4, 2.
        assert_eq!(slice(&[6], &[4], &[1], &[-2], opts()).1, vec![4, 2]);
        // Empty result when begin is past end.
        assert_eq!(slice(&[6], &[4], &[2], &[1], opts()), (vec![0], vec![]));
        // Fewer specs than dims: the rest is full range.
        assert_eq!(
            slice(&[2, 3], &[1], &[2], &[1], opts()),
            (vec![1, 3], vec![3, 4, 5])
        );
    }

    #[test]
    fn strided_slice_begin_end_masks() {
        // x[::-1] via both masks.
        let o = StridedSliceOptions {
            begin_mask: 1,
            end_mask: 1,
            ..opts()
        };
        assert_eq!(slice(&[5], &[0], &[0], &[-1], o).1, vec![4, 3, 2, 1, 0]);
        // x[:, 1:3] with the row indices garbage but masked.
        let o = StridedSliceOptions {
            begin_mask: 1,
            end_mask: 1,
            ..opts()
        };
        let (s, v) = slice(&[2, 4], &[7, 1], &[-7, 3], &[1, 1], o);
        assert_eq!((s, v), (vec![2, 2], vec![1, 2, 5, 6]));
        // end_mask only on dim 1: x[0:1, 2:].
        let o = StridedSliceOptions {
            end_mask: 2,
            ..opts()
        };
        assert_eq!(slice(&[2, 4], &[0, 2], &[1, 0], &[1, 1], o).1, vec![2, 3]);
    }

    #[test]
    fn strided_slice_shrink() {
        // x[1] on [3,4] -> [4].
        let o = StridedSliceOptions {
            shrink_axis_mask: 1,
            ..opts()
        };
        let (s, v) = slice(&[3, 4], &[1, 0], &[2, 4], &[1, 1], o);
        assert_eq!((s, v), (vec![4], vec![4, 5, 6, 7]));
        // x[-1] with an end that would be wrong if used (TF issue 19260).
        let (s, v) = slice(&[3, 4], &[-1, 0], &[0, 4], &[1, 1], o);
        assert_eq!((s, v), (vec![4], vec![8, 9, 10, 11]));
        // x[:, 2] -> [3]; both shrunk -> scalar.
        let o2 = StridedSliceOptions {
            shrink_axis_mask: 2,
            ..opts()
        };
        assert_eq!(
            slice(&[3, 4], &[0, 2], &[3, 3], &[1, 1], o2).1,
            vec![2, 6, 10]
        );
        let o3 = StridedSliceOptions {
            shrink_axis_mask: 3,
            ..opts()
        };
        assert_eq!(
            slice(&[3, 4], &[2, 3], &[3, 4], &[1, 1], o3),
            (vec![], vec![11])
        );
        // Out-of-range shrink index is an error.
        assert!(strided_slice_plan(&[3, 4], &[3, 0], &[4, 4], &[1, 1], &o).is_err());
    }

    #[test]
    fn strided_slice_ellipsis_and_new_axis() {
        // x[..., 1:3] on [2,3,4] -> [2,3,2].
        let o = StridedSliceOptions {
            ellipsis_mask: 1,
            ..opts()
        };
        let (s, v) = slice(&[2, 3, 4], &[0, 1], &[0, 3], &[1, 1], o);
        assert_eq!(s, vec![2, 3, 2]);
        assert_eq!(&v[..4], &[1, 2, 5, 6]);
        assert_eq!(v.len(), 12);
        // x[1, ...] (ellipsis after a shrink) on [2,3,4] -> [3,4] = second block.
        let o = StridedSliceOptions {
            ellipsis_mask: 2,
            shrink_axis_mask: 1,
            ..opts()
        };
        let (s, v) = slice(&[2, 3, 4], &[1, 0], &[2, 0], &[1, 1], o);
        assert_eq!(s, vec![3, 4]);
        assert_eq!(v, (12..24).collect::<Vec<_>>());
        // x[newaxis, 0:2, 1:] on [2,3] -> [1,2,2].
        let o = StridedSliceOptions {
            new_axis_mask: 1,
            ..opts()
        };
        let (s, v) = slice(&[2, 3], &[0, 0, 1], &[0, 2, 3], &[1, 1, 1], o);
        assert_eq!((s, v), (vec![1, 2, 2], vec![1, 2, 4, 5]));
        // x[..., newaxis] on [2,3] -> [2,3,1].
        let o = StridedSliceOptions {
            ellipsis_mask: 1,
            new_axis_mask: 2,
            ..opts()
        };
        let (s, v) = slice(&[2, 3], &[0, 0], &[0, 0], &[1, 1], o);
        assert_eq!((s, v), (vec![2, 3, 1], iota(6)));
        // New axis and ellipsis on the same bit: the new axis is ignored.
        let o = StridedSliceOptions {
            ellipsis_mask: 1,
            new_axis_mask: 1,
            ..opts()
        };
        assert_eq!(slice(&[2, 3], &[0], &[0], &[1], o), (vec![2, 3], iota(6)));
    }

    #[test]
    fn strided_slice_offset_and_errors() {
        // offset: end = begin + end -> [1, 4).
        let o = StridedSliceOptions {
            offset: true,
            ..opts()
        };
        assert_eq!(slice(&[6], &[1], &[3], &[1], o).1, vec![1, 2, 3]);
        // Negative begin with offset: begin -2 -> 4, end 4 + 1 = 5.
        assert_eq!(slice(&[6], &[-2], &[1], &[1], o).1, vec![4]);
        assert!(strided_slice_plan(&[4], &[0], &[4], &[0], &opts()).is_err());
        assert!(strided_slice_plan(&[4], &[0, 0], &[4], &[1], &opts()).is_err());
        assert!(strided_slice_plan(&[4], &[0, 0], &[4, 1], &[1, 1], &opts()).is_err());
        // Stray mask bits beyond the spec are ignored, not a panic.
        let o = StridedSliceOptions {
            new_axis_mask: -4,
            ellipsis_mask: -8,
            ..opts()
        };
        assert_eq!(slice(&[2, 2], &[0, 1], &[2, 2], &[1, 1], o).1, vec![1, 3]);
    }
}

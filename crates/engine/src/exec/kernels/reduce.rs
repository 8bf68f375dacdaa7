//! MEAN over a set of axes (TFLite reference semantics for float).

/// Mean of `x` (shape `shape`) over `axes` (sorted, unique, in range). `y` holds the
/// kept elements in row-major order, so it serves both `keep_dims` settings.
///
/// Like TFLite's reference kernel, each output is an f32 sum of its inputs taken in
/// row-major order, divided by the f32 element count. Adjacent dims with the same
/// reduced/kept status are merged first, so the common `[N,H,W,C]` over `{1,2}`
/// becomes `[N, H·W, C]` with a contiguous, vectorizable channel row.
pub fn mean(x: &[f32], shape: &[usize], axes: &[usize], y: &mut [f32]) {
    assert!(
        axes.windows(2).all(|w| w[0] < w[1]) && axes.iter().all(|&a| a < shape.len()),
        "mean: axes must be sorted, unique and in range"
    );
    assert_eq!(
        x.len(),
        shape.iter().product::<usize>(),
        "mean: input length"
    );
    let kept: usize = shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, &d)| d)
        .product();
    assert_eq!(y.len(), kept, "mean: output length");
    let count: usize = axes.iter().map(|&a| shape[a]).product();

    // Merged dims: (extent, reduced?). Size-1 dims change nothing and are dropped.
    let mut dims: Vec<(usize, bool)> = Vec::new();
    for (i, &n) in shape.iter().enumerate() {
        if n == 1 {
            continue;
        }
        let red = axes.contains(&i);
        match dims.last_mut() {
            Some(last) if last.1 == red => last.0 *= n,
            _ => dims.push((n, red)),
        }
    }

    y.fill(0.0);
    if x.is_empty() {
        // Empty reduction: 0/0 as in the reference (NaN); empty output: nothing to do.
        for v in y.iter_mut() {
            *v /= count as f32;
        }
        return;
    }
    if let Some((&(n, inner_red), outer)) = dims.split_last() {
        // Output strides along the outer dims (0 for reduced ones).
        let mut ostr = vec![0usize; outer.len()];
        let mut s = if inner_red { 1 } else { n };
        for (k, &(d, red)) in outer.iter().enumerate().rev() {
            if !red {
                ostr[k] = s;
                s *= d;
            }
        }
        let mut idx = vec![0usize; outer.len()];
        let mut oo = 0usize;
        for row in x.chunks_exact(n) {
            if inner_red {
                // Sequential f32 adds in index order: the reference's rounding.
                let mut acc = y[oo];
                for &v in row {
                    acc += v;
                }
                y[oo] = acc;
            } else {
                for (o, &v) in y[oo..oo + n].iter_mut().zip(row) {
                    *o += v;
                }
            }
            for k in (0..outer.len()).rev() {
                idx[k] += 1;
                oo += ostr[k];
                if idx[k] < outer[k].0 {
                    break;
                }
                oo -= ostr[k] * outer[k].0;
                idx[k] = 0;
            }
        }
    } else {
        // All dims are 1: one element.
        y[0] = x[0];
    }
    let c = count as f32;
    for v in y.iter_mut() {
        *v /= c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(x: &[f32], shape: &[usize], axes: &[usize]) -> Vec<f32> {
        let kept: usize = shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .product();
        let mut y = vec![f32::NAN; kept];
        mean(x, shape, axes, &mut y);
        y
    }

    #[test]
    fn spatial_mean_nhwc() {
        // [1,2,2,2]: channel 0 = 1,3,5,7 -> 4; channel 1 = 2,4,6,8 -> 5.
        let x: Vec<f32> = (1..=8).map(|v| v as f32).collect();
        assert_eq!(run(&x, &[1, 2, 2, 2], &[1, 2]), [4.0, 5.0]);
        // Batch 2: second image is +10.
        let x2: Vec<f32> = (1..=8).chain(11..=18).map(|v| v as f32).collect();
        assert_eq!(run(&x2, &[2, 2, 2, 2], &[1, 2]), [4.0, 5.0, 14.0, 15.0]);
    }

    #[test]
    fn other_axis_sets() {
        // [2,3]: rows 0..3, 3..6.
        let x = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(run(&x, &[2, 3], &[1]), [1.0, 4.0]);
        assert_eq!(run(&x, &[2, 3], &[0]), [1.5, 2.5, 3.5]);
        assert_eq!(run(&x, &[2, 3], &[0, 1]), [2.5]);
        assert_eq!(run(&x, &[2, 3], &[]), x);
        // [2,2,2] over {0,2}: kept axis 1. idx(a,b,c) = 4a+2b+c.
        // b=0: {0,1,4,5} -> 2.5; b=1: {2,3,6,7} -> 4.5.
        let x: Vec<f32> = (0..8).map(|v| v as f32).collect();
        assert_eq!(run(&x, &[2, 2, 2], &[0, 2]), [2.5, 4.5]);
        // Size-1 reduced axis is the identity.
        assert_eq!(run(&[3.0, 4.0], &[2, 1], &[1]), [3.0, 4.0]);
        assert_eq!(run(&[7.0], &[1, 1], &[0, 1]), [7.0]);
    }

    #[test]
    fn summation_order_is_row_major_f32() {
        // 1e8 + 1 - 1e8 ... in f32: row-major sequential sums lose the small terms.
        let x = [1.0e8, 1.0, 1.0, -1.0e8];
        let mut want = 0.0f32;
        for v in x {
            want += v;
        }
        assert_eq!(run(&x, &[4], &[0]), [want / 4.0]);
    }
}

//! ARG_MAX along one axis.

/// Index of the largest value along `axis` for every position of the other axes
/// (output shape = `shape` without `axis`, row-major). Ties give the lowest index
/// and NaN never wins (strict `>` comparison, as TFLite).
pub fn arg_max<T: Copy + PartialOrd>(x: &[T], shape: &[usize], axis: usize, y: &mut [i64]) {
    assert!(axis < shape.len(), "arg_max: axis out of range");
    assert_eq!(
        x.len(),
        shape.iter().product::<usize>(),
        "arg_max: input length"
    );
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    assert_eq!(y.len(), outer * inner, "arg_max: output length");
    if n == 0 {
        // Nothing to choose from; TFLite would read out of bounds. Report index 0.
        y.fill(0);
        return;
    }
    for o in 0..outer {
        let block = &x[o * n * inner..][..n * inner];
        for i in 0..inner {
            let mut best = block[i];
            let mut best_idx = 0usize;
            for k in 1..n {
                let v = block[k * inner + i];
                if v > best {
                    best = v;
                    best_idx = k;
                }
            }
            y[o * inner + i] = best_idx as i64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_axis_with_ties() {
        let x = [1.0f32, 3.0, 3.0, 2.0, 9.0, 0.0, 9.0, 1.0];
        let mut y = [0; 2];
        arg_max(&x, &[2, 4], 1, &mut y);
        assert_eq!(y, [1, 0]);
    }

    #[test]
    fn middle_axis_and_ints() {
        // shape [2,3,2]; argmax over axis 1.
        let x: [i8; 12] = [1, 5, 7, 2, 3, 9, -1, -2, -3, -4, -1, -9];
        let mut y = [0; 4];
        arg_max(&x, &[2, 3, 2], 1, &mut y);
        // b0 col0: 1,7,3 -> 1; col1: 5,2,9 -> 2; b1 col0: -1,-3,-1 -> 0; col1: -2,-4,-9 -> 0.
        assert_eq!(y, [1, 2, 0, 0]);
        let mut y = [0; 3];
        arg_max(&[4u8, 2, 8], &[3], 0, &mut y[..1]);
        assert_eq!(y[0], 2);
    }

    #[test]
    fn nan_never_wins() {
        let mut y = [0];
        arg_max(&[1.0f32, f32::NAN, 2.0], &[3], 0, &mut y);
        assert_eq!(y, [2]);
    }
}

//! Float SOFTMAX over the last axis (TFLite reference semantics).

/// Softmax of `x` viewed as rows of `inner` values (the last axis):
/// `y = exp((x − max) · beta) / Σ exp((x − max) · beta)`, per row, in f32.
/// Subtracting the row max keeps `exp` from overflowing; the sum is accumulated in
/// f32 in index order, as TFLite's reference kernel does.
pub fn softmax(x: &[f32], y: &mut [f32], inner: usize, beta: f32) {
    assert_eq!(x.len(), y.len(), "softmax: input and output lengths differ");
    if inner == 0 {
        return;
    }
    assert_eq!(
        x.len() % inner,
        0,
        "softmax: length is not a multiple of the row size"
    );
    for (row, out) in x.chunks_exact(inner).zip(y.chunks_exact_mut(inner)) {
        let max = row.iter().fold(f32::MIN, |m, &v| if m < v { v } else { m });
        let mut sum = 0.0f32;
        for (o, &v) in out.iter_mut().zip(row) {
            let e = ((v - max) * beta).exp();
            *o = e;
            sum += e;
        }
        for o in out.iter_mut() {
            *o /= sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_rows() {
        // Row 1: [0, ln 3] -> weights 1, 3 -> [0.25, 0.75].
        // Row 2: [5, 5] -> [0.5, 0.5].
        let x = [0.0, 3f32.ln(), 5.0, 5.0];
        let mut y = [0.0; 4];
        softmax(&x, &mut y, 2, 1.0);
        for (a, b) in y.iter().zip([0.25, 0.75, 0.5, 0.5]) {
            assert!((a - b).abs() < 1e-7, "{y:?}");
        }
    }

    #[test]
    fn beta_scales_logits() {
        // beta 2 on [0, ln 2] equals beta 1 on [0, 2 ln 2]: weights 1, 4 -> 0.2, 0.8.
        let mut y = [0.0; 2];
        softmax(&[0.0, 2f32.ln()], &mut y, 2, 2.0);
        assert!(
            (y[0] - 0.2).abs() < 1e-7 && (y[1] - 0.8).abs() < 1e-7,
            "{y:?}"
        );
    }

    #[test]
    fn large_logits_do_not_overflow() {
        // Without the max subtraction exp(1000) is inf and the result NaN.
        let mut y = [0.0; 3];
        softmax(&[1000.0, 1000.0, 0.0], &mut y, 3, 1.0);
        assert_eq!(y, [0.5, 0.5, 0.0]);
        let mut y = [0.0; 1];
        softmax(&[-1e30], &mut y, 1, 1.0);
        assert_eq!(y, [1.0]);
    }
}

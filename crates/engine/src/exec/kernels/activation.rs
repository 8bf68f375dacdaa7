//! Element-wise float activations, mirroring TFLite's reference kernels.
//!
//! Every function maps `x[i]` to `y[i]`; `x` and `y` must have the same length.
//! The comparisons are written as `if`/select (not `f32::max`) so NaN behaves as in
//! the C++ code and the loops still compile to vector selects.

/// `min(max(v, lo), hi)` with C++ `std::min`/`std::max` semantics (a NaN input stays
/// NaN), as TFLite's `ActivationFunctionWithMinMax`.
#[inline(always)]
pub(crate) fn clamp_act(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v < lo { lo } else { v };
    if hi < v { hi } else { v }
}

#[inline(always)]
fn map(x: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32) {
    assert_eq!(
        x.len(),
        y.len(),
        "activation: input and output lengths differ"
    );
    for (o, &v) in y.iter_mut().zip(x) {
        *o = f(v);
    }
}

/// `max(0, x)`.
pub fn relu(x: &[f32], y: &mut [f32]) {
    map(x, y, |v| if v < 0.0 { 0.0 } else { v });
}

/// `min(max(0, x), 6)`.
pub fn relu6(x: &[f32], y: &mut [f32]) {
    map(x, y, |v| clamp_act(v, 0.0, 6.0));
}

/// `min(max(-1, x), 1)`.
pub fn relu_n1_to_1(x: &[f32], y: &mut [f32]) {
    map(x, y, |v| clamp_act(v, -1.0, 1.0));
}

/// `min(max(x, min), max)`: the fused-activation clamp.
pub fn clamp(x: &[f32], y: &mut [f32], min: f32, max: f32) {
    map(x, y, |v| clamp_act(v, min, max));
}

/// `1 / (1 + exp(-x))` with TFLite's cut-offs: above ~16.62 the f32 result is
/// exactly 1, below -9 `exp(x)` is used (equal to the sigmoid within f32 precision
/// there). Same branches as TFLite so results match bit for bit on the same libm.
pub fn logistic(x: &[f32], y: &mut [f32]) {
    const CUTOFF_UPPER: f32 = 16.619_047;
    const CUTOFF_LOWER: f32 = -9.0;
    map(x, y, |v| {
        if v > CUTOFF_UPPER {
            1.0
        } else if v < CUTOFF_LOWER {
            v.exp()
        } else {
            1.0 / (1.0 + (-v).exp())
        }
    });
}

/// Hyperbolic tangent (libm's `tanhf`, as TFLite's `std::tanh`).
pub fn tanh(x: &[f32], y: &mut [f32]) {
    map(x, y, f32::tanh);
}

/// `x * relu6(x + 3) / 6`, in that evaluation order (TFLite reference).
pub fn hard_swish(x: &[f32], y: &mut [f32]) {
    map(x, y, |v| v * clamp_act(v + 3.0, 0.0, 6.0) / 6.0);
}

/// Square root (NaN for negative inputs, as `std::sqrt`).
pub fn sqrt(x: &[f32], y: &mut [f32]) {
    map(x, y, f32::sqrt);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: fn(&[f32], &mut [f32]), x: &[f32]) -> Vec<f32> {
        let mut y = vec![f32::NAN; x.len()];
        f(x, &mut y);
        y
    }

    #[test]
    fn relu_family() {
        let x = [-7.0, -1.5, -0.5, 0.0, 0.5, 1.5, 6.0, 7.0];
        assert_eq!(run(relu, &x), [0.0, 0.0, 0.0, 0.0, 0.5, 1.5, 6.0, 7.0]);
        assert_eq!(run(relu6, &x), [0.0, 0.0, 0.0, 0.0, 0.5, 1.5, 6.0, 6.0]);
        assert_eq!(
            run(relu_n1_to_1, &x),
            [-1.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0, 1.0]
        );
        let mut y = [0.0; 8];
        clamp(&x, &mut y, -2.0, 1.0);
        assert_eq!(y, [-2.0, -1.5, -0.5, 0.0, 0.5, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn clamp_keeps_nan_like_cpp() {
        assert!(clamp_act(f32::NAN, 0.0, 6.0).is_nan());
        assert!(run(relu6, &[f32::NAN])[0].is_nan());
    }

    #[test]
    fn hard_swish_values() {
        // -4 -> 0; -3 -> 0; -1.5 -> -1.5*1.5/6 = -0.375; 0 -> 0; 1 -> 1*4/6;
        // 3 -> 3*6/6 = 3; 10 -> 10.
        let y = run(hard_swish, &[-4.0, -3.0, -1.5, 0.0, 1.0, 3.0, 10.0]);
        let want = [0.0, 0.0, -0.375, 0.0, 4.0 / 6.0, 3.0, 10.0];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{a} vs {b}");
        }
    }

    #[test]
    fn sqrt_values() {
        let y = run(sqrt, &[0.0, 1.0, 4.0, 2.25, -1.0]);
        assert_eq!(&y[..4], &[0.0, 1.0, 2.0, 1.5]);
        assert!(y[4].is_nan());
    }

    #[test]
    fn logistic_and_tanh_accuracy_vs_f64() {
        let x: Vec<f32> = (-4000..=4000).map(|i| i as f32 * 0.005).collect();
        let ys = run(logistic, &x);
        let yt = run(tanh, &x);
        let (mut abs_s, mut rel_s, mut worst_t) = (0.0f64, 0.0f64, 0.0f64);
        for ((&v, &s), &t) in x.iter().zip(&ys).zip(&yt) {
            let v = v as f64;
            let es = 1.0 / (1.0 + (-v).exp());
            let et = v.tanh();
            abs_s = abs_s.max((s as f64 - es).abs());
            // Below -9 TFLite's exp(x) shortcut trades relative accuracy (~e^-9)
            // for speed; relative error is only meaningful above the cut-off.
            if v >= -9.0 {
                rel_s = rel_s.max((s as f64 - es).abs() / es);
            }
            // Relative for tanh, floored so tiny values near 0 do not dominate.
            worst_t = worst_t.max((t as f64 - et).abs() / et.abs().max(1e-3));
        }
        eprintln!(
            "logistic: max abs err {abs_s:e}, max rel err (x>=-9) {rel_s:e}; tanh: {worst_t:e}"
        );
        // Within a few f32 ulps.
        assert!(abs_s < 1.2e-7, "logistic abs err {abs_s}"); // 2 ulp at 1.0
        assert!(rel_s < 1e-6, "logistic rel err {rel_s}");
        assert!(worst_t < 1e-6, "tanh rel err {worst_t}");
        // Cut-offs: exact 1 above 16.62, exp(x) below -9, both within f32 precision.
        let y = run(logistic, &[17.0, -9.5, -20.0, 0.0]);
        assert_eq!(y[0], 1.0);
        assert_eq!(y[1], (-9.5f32).exp());
        assert!(((y[2] as f64) - 1.0 / (1.0 + 20f64.exp())).abs() / 2.06e-9 < 1e-6);
        assert_eq!(y[3], 0.5);
    }
}

//! Global average pooling `[N, HW, C] → [N, C]` and the residual ADD.

pub fn gap_forward(n: usize, hw: usize, c: usize, x: &[f32], y: &mut [f32]) {
    let inv = 1.0 / hw as f32;
    for b in 0..n {
        let out = &mut y[b * c..(b + 1) * c];
        out.fill(0.0);
        for p in x[b * hw * c..(b + 1) * hw * c].chunks_exact(c) {
            out.iter_mut().zip(p).for_each(|(o, v)| *o += v);
        }
        out.iter_mut().for_each(|o| *o *= inv);
    }
}

/// Adds `∂L/∂x` into `dx`.
pub fn gap_backward(n: usize, hw: usize, c: usize, dy: &[f32], dx: &mut [f32]) {
    let inv = 1.0 / hw as f32;
    for b in 0..n {
        let d = &dy[b * c..(b + 1) * c];
        for p in dx[b * hw * c..(b + 1) * hw * c].chunks_exact_mut(c) {
            p.iter_mut().zip(d).for_each(|(o, v)| *o += v * inv);
        }
    }
}

/// `y = a + b`; its backward passes `dy` to both inputs unchanged.
pub fn add_forward(a: &[f32], b: &[f32], y: &mut [f32]) {
    for ((o, x), z) in y.iter_mut().zip(a).zip(b) {
        *o = x + z;
    }
}

/// `y = a ⊙ b`.
pub fn mul_forward(a: &[f32], b: &[f32], y: &mut [f32]) {
    for ((o, x), z) in y.iter_mut().zip(a).zip(b) {
        *o = x * z;
    }
}

/// One input's gradient of `a ⊙ b`: `dx += dy ⊙ other` (`other` is the other input).
pub fn mul_backward(dy: &[f32], other: &[f32], dx: &mut [f32]) {
    for ((o, g), z) in dx.iter_mut().zip(dy).zip(other) {
        *o += g * z;
    }
}

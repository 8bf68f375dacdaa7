//! Every backward kernel against central finite differences of its forward kernel.
//! The scalar checked is `L = Σ r·y` for a fixed random `r` (so `∂L/∂y = r`), summed
//! in f64; each analytic gradient element must match `(L(v+ε) − L(v−ε)) / 2ε`.

use super::{Geom, bn, conv, dense, depthwise, loss, pool};
use crate::rng::Rng;

fn randn(rng: &mut Rng, n: usize, s: f32) -> Vec<f32> {
    (0..n).map(|_| rng.normal() * s).collect()
}

fn dot(r: &[f32], y: &[f32]) -> f64 {
    r.iter()
        .zip(y)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum()
}

/// Compare `analytic` with finite differences of `f` around `v` (every element, or a
/// strided sample of at most 60). Returns the worst mismatch instead of panicking so
/// the checker itself can be tested.
fn check(
    v: &[f32],
    analytic: &[f32],
    eps: f32,
    mut f: impl FnMut(&[f32]) -> f64,
) -> Option<String> {
    let step = (v.len() / 60).max(1);
    let mut p = v.to_vec();
    for i in (0..v.len()).step_by(step) {
        p[i] = v[i] + eps;
        let hi = f(&p);
        p[i] = v[i] - eps;
        let lo = f(&p);
        p[i] = v[i];
        let num = (hi - lo) / (2.0 * f64::from(eps));
        let an = f64::from(analytic[i]);
        if (num - an).abs() > 2e-3 + 1e-2 * num.abs().max(an.abs()) {
            return Some(format!("element {i}: numeric {num}, analytic {an}"));
        }
    }
    None
}

fn assert_ok(what: &str, r: Option<String>) {
    if let Some(e) = r {
        panic!("{what}: {e}");
    }
}

#[test]
fn checker_rejects_a_wrong_gradient() {
    let v = [0.5f32, -1.0, 2.0];
    // f = Σ v², true gradient 2v; claim 2.1v.
    let wrong: Vec<f32> = v.iter().map(|x| 2.1 * x).collect();
    let f = |p: &[f32]| p.iter().map(|x| f64::from(x * x)).sum();
    assert!(check(&v, &wrong, 1e-2, f).is_some());
    let right: Vec<f32> = v.iter().map(|x| 2.0 * x).collect();
    assert!(check(&v, &right, 1e-2, f).is_none());
}

#[test]
fn conv_backward_matches_finite_differences() {
    let mut rng = Rng::new(11);
    // 3×3 stride 2 on an even size (asymmetric SAME padding), 3×3 stride 1, 1×1.
    for &(h, w, c, k, s, co) in &[
        (6, 5, 3, 3, 2, 4),
        (5, 5, 2, 3, 1, 3),
        (4, 3, 5, 1, 1, 6),
        (4, 4, 2, 1, 2, 3),
    ] {
        let g = Geom::same(2, h, w, c, k, s);
        let x = randn(&mut rng, g.in_len(), 1.0);
        let wt = randn(&mut rng, k * k * c * co, 0.5);
        let r = randn(&mut rng, g.out_pos() * co, 1.0);
        let mut col = Vec::new();
        let mut dx = vec![0f32; x.len()];
        let mut dw = vec![0f32; wt.len()];
        conv::backward(&g, co, &x, &wt, &r, Some(&mut dx), &mut dw, &mut col);
        let mut y = vec![0f32; r.len()];
        let mut run = |x: &[f32], w: &[f32]| {
            let mut col = Vec::new();
            conv::forward(&g, co, x, w, &mut y, &mut col);
            dot(&r, &y)
        };
        assert_ok("conv dx", check(&x, &dx, 1e-2, |p| run(p, &wt)));
        assert_ok("conv dw", check(&wt, &dw, 1e-2, |p| run(&x, p)));
    }
}

#[test]
fn depthwise_backward_matches_finite_differences() {
    let mut rng = Rng::new(12);
    for &(h, w, c, k, s) in &[(6, 6, 5, 3, 2), (5, 4, 3, 3, 1), (7, 7, 17, 5, 2)] {
        let g = Geom::same(2, h, w, c, k, s);
        let x = randn(&mut rng, g.in_len(), 1.0);
        let wt = randn(&mut rng, k * k * c, 0.5);
        let r = randn(&mut rng, g.out_pos() * c, 1.0);
        let mut dx = vec![0f32; x.len()];
        let mut dw = vec![0f32; wt.len()];
        depthwise::backward(&g, &x, &wt, &r, &mut dx, &mut dw);
        let mut y = vec![0f32; r.len()];
        let mut run = |x: &[f32], w: &[f32]| {
            depthwise::forward(&g, x, w, &mut y);
            dot(&r, &y)
        };
        assert_ok("dw dx", check(&x, &dx, 1e-2, |p| run(p, &wt)));
        assert_ok("dw dw", check(&wt, &dw, 1e-2, |p| run(&x, p)));
    }
}

#[test]
fn dense_backward_matches_finite_differences() {
    let mut rng = Rng::new(13);
    let (n, ci, co) = (3, 7, 5);
    let x = randn(&mut rng, n * ci, 1.0);
    let w = randn(&mut rng, ci * co, 0.5);
    let b = randn(&mut rng, co, 0.5);
    let r = randn(&mut rng, n * co, 1.0);
    let (mut dx, mut dw, mut db) = (vec![0f32; x.len()], vec![0f32; w.len()], vec![0f32; co]);
    dense::backward(n, ci, co, &x, &w, &r, &mut dx, &mut dw, &mut db);
    let mut y = vec![0f32; n * co];
    let mut run = |x: &[f32], w: &[f32], b: &[f32]| {
        dense::forward(n, ci, co, x, w, b, &mut y);
        dot(&r, &y)
    };
    assert_ok("fc dx", check(&x, &dx, 1e-2, |p| run(p, &w, &b)));
    assert_ok("fc dw", check(&w, &dw, 1e-2, |p| run(&x, p, &b)));
    assert_ok("fc db", check(&b, &db, 1e-2, |p| run(&x, &w, p)));
}

#[test]
fn batch_norm_backward_matches_finite_differences() {
    let mut rng = Rng::new(14);
    let (m, c) = (24, 5);
    for act in [bn::Act::None, bn::Act::Relu, bn::Act::Relu6] {
        let x: Vec<f32> = randn(&mut rng, m * c, 2.0)
            .iter()
            .map(|v| v + 1.0)
            .collect();
        let gamma: Vec<f32> = (0..c).map(|i| 0.5 + 0.4 * i as f32).collect();
        let beta: Vec<f32> = (0..c).map(|i| 0.3 * i as f32 - 0.4).collect();
        let r = randn(&mut rng, m * c, 1.0);
        let st = bn::batch_stats(m, c, &x);
        let (mut dx, mut dg, mut db) = (vec![0f32; m * c], vec![0f32; c], vec![0f32; c]);
        bn::backward(
            m, c, &x, &gamma, &beta, &st, act, &r, &mut dx, &mut dg, &mut db,
        );
        let mut y = vec![0f32; m * c];
        let mut run = |x: &[f32], g: &[f32], b: &[f32]| {
            let st = bn::batch_stats(m, c, x);
            bn::forward(m, c, x, g, b, &st.mean, &st.var, act, &mut y);
            dot(&r, &y)
        };
        assert_ok("bn dx", check(&x, &dx, 1e-3, |p| run(p, &gamma, &beta)));
        assert_ok("bn dgamma", check(&gamma, &dg, 1e-3, |p| run(&x, p, &beta)));
        assert_ok("bn dbeta", check(&beta, &db, 1e-3, |p| run(&x, &gamma, p)));
    }
}

#[test]
fn pooling_and_loss_backward_match_finite_differences() {
    let mut rng = Rng::new(15);
    let (n, hw, c) = (2, 6, 4);
    let x = randn(&mut rng, n * hw * c, 1.0);
    let r = randn(&mut rng, n * c, 1.0);
    let mut dx = vec![0f32; x.len()];
    pool::gap_backward(n, hw, c, &r, &mut dx);
    let mut y = vec![0f32; n * c];
    assert_ok(
        "gap",
        check(&x, &dx, 1e-2, |p| {
            pool::gap_forward(n, hw, c, p, &mut y);
            dot(&r, &y)
        }),
    );
    let (n, k) = (4, 10);
    let z = randn(&mut rng, n * k, 2.0);
    let labels = [3u8, 0, 9, 3];
    let mut dz = vec![0f32; n * k];
    loss::softmax_xent(n, k, &z, &labels, 1.0, &mut dz);
    let mut scratch = vec![0f32; n * k];
    assert_ok(
        "softmax xent",
        check(&z, &dz, 1e-3, |p| {
            loss::softmax_xent(n, k, p, &labels, 1.0, &mut scratch).0
        }),
    );
}

#[test]
fn product_backward_matches_finite_differences() {
    let mut rng = Rng::new(16);
    let len = 24;
    let (a, b) = (randn(&mut rng, len, 1.0), randn(&mut rng, len, 1.0));
    let r = randn(&mut rng, len, 1.0);
    let mut y = vec![0f32; len];
    let mut da = vec![0f32; len];
    pool::mul_backward(&r, &b, &mut da);
    assert_ok(
        "mul, first input",
        check(&a, &da, 1e-2, |p| {
            pool::mul_forward(p, &b, &mut y);
            dot(&r, &y)
        }),
    );
    let mut db = vec![0f32; len];
    pool::mul_backward(&r, &a, &mut db);
    assert_ok(
        "mul, second input",
        check(&b, &db, 1e-2, |p| {
            pool::mul_forward(&a, p, &mut y);
            dot(&r, &y)
        }),
    );
    // A square (both inputs one tensor): the two contributions add up.
    let mut dsq = vec![0f32; len];
    pool::mul_backward(&r, &a, &mut dsq);
    pool::mul_backward(&r, &a, &mut dsq);
    assert_ok(
        "square",
        check(&a, &dsq, 1e-2, |p| {
            pool::mul_forward(p, p, &mut y);
            dot(&r, &y)
        }),
    );
}

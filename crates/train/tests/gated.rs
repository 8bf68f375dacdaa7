//! Multiplicative gates (`Kind::Mul`) through the whole training graph: the
//! parameter gradients of a small gated net (a product of two branches, then a
//! square of it) match finite differences of its training loss.

use quantfarm_train::arch::{self, Builder};
use quantfarm_train::net::Pool;
use quantfarm_train::ops::bn::Act;
use quantfarm_train::rng::Rng;

#[test]
fn gated_net_gradients_match_finite_differences() {
    let mut b = Builder::new("tiny-gated", 4, 4, 2);
    // Linear everywhere: a ReLU kink between ±ε would spoil the finite differences.
    let x = b.conv_bn(0, "stem", 3, 3, 1, Act::None);
    let a = b.conv_bn(x, "a", 3, 3, 1, Act::None);
    let g = b.conv_bn(x, "g", 3, 1, 1, Act::None);
    let p = b.mul(a, g, "mul");
    let sq = b.mul(p, p, "square");
    let s = b.add(x, sq, "add");
    let pooled = b.gap(s);
    b.dense(pooled, "logits", 3);
    let net = b.finish();
    let mut w = arch::init_weights(&net, 5);
    // Non-zero BN scales everywhere, so every branch carries gradient.
    for (p, info) in w.params.iter_mut().zip(&net.params) {
        if info.name.ends_with("bn/gamma") {
            p.iter_mut().for_each(|v| *v = 0.7);
        }
    }
    let n = 4;
    let mut r = Rng::new(9);
    let images: Vec<f32> = (0..n * 32).map(|_| r.unit() as f32).collect();
    let labels = [0u8, 2, 1, 2];
    let mut pool = Pool::default();
    let (_, _, grads, _) = net.train_step(&w, images.clone(), &labels, 1.0, &mut pool);
    let loss = |w: &quantfarm_train::net::Weights| -> f64 {
        net.train_step(w, images.clone(), &labels, 1.0, &mut Pool::default())
            .0
    };
    let eps = 1e-2f32;
    let mut checked = 0;
    for (pi, info) in net.params.iter().enumerate() {
        if !(info.name.starts_with("a/")
            || info.name.starts_with("g/")
            || info.name.starts_with("stem/"))
        {
            continue;
        }
        for i in (0..info.len).step_by((info.len / 6).max(1)) {
            let mut hi = w.clone();
            hi.params[pi][i] += eps;
            let mut lo = w.clone();
            lo.params[pi][i] -= eps;
            let num = (loss(&hi) - loss(&lo)) / (2.0 * f64::from(eps));
            let an = f64::from(grads[pi][i]);
            assert!(
                (num - an).abs() <= 5e-3 + 2e-2 * num.abs().max(an.abs()),
                "{} [{i}]: numeric {num}, analytic {an}",
                info.name
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} gradients checked");
}

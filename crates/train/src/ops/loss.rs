//! Softmax cross-entropy over `[N, K]` logits.

/// Returns (sum of losses, number of correct top-1) and writes
/// `dlogits = (softmax − onehot) · scale` (scale = 1/global batch for a mean loss).
pub fn softmax_xent(
    n: usize,
    k: usize,
    logits: &[f32],
    labels: &[u8],
    scale: f32,
    dlogits: &mut [f32],
) -> (f64, usize) {
    let mut loss = 0f64;
    let mut correct = 0;
    for b in 0..n {
        let z = &logits[b * k..(b + 1) * k];
        let d = &mut dlogits[b * k..(b + 1) * k];
        let label = labels[b] as usize;
        let (arg, &mx) = z
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("k > 0");
        if arg == label {
            correct += 1;
        }
        let mut sum = 0f64;
        for (di, &zi) in d.iter_mut().zip(z) {
            let e = f64::from(zi - mx).exp();
            *di = e as f32;
            sum += e;
        }
        loss += sum.ln() - f64::from(z[label] - mx);
        for (i, di) in d.iter_mut().enumerate() {
            let p = f64::from(*di) / sum;
            let t = if i == label { 1.0 } else { 0.0 };
            *di = ((p - t) * f64::from(scale)) as f32;
        }
    }
    (loss, correct)
}

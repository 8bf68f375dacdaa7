//! Top-k accuracy.

/// Indices of the `k` largest scores, best first; ties go to the lower index. NaN
/// scores rank below every number. Returns fewer than `k` if `scores` is shorter.
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let k = k.min(scores.len());
    let mut best: Vec<usize> = Vec::with_capacity(k + 1);
    if k == 0 {
        return best;
    }
    // `a` ranks strictly above `b`? (Scanned in index order, so equal scores keep
    // the earlier index ahead.)
    let above = |a: f32, b: f32| -> bool {
        match (a.is_nan(), b.is_nan()) {
            (false, true) => true,
            (true, _) => false,
            (false, false) => a > b,
        }
    };
    // Insertion into a short sorted list: O(n·k), fast for k ≤ 5 and n ≈ 1000.
    for (i, &s) in scores.iter().enumerate() {
        if best.len() == k && !above(s, scores[best[k - 1]]) {
            continue;
        }
        let pos = best
            .iter()
            .position(|&j| above(s, scores[j]))
            .unwrap_or(best.len());
        best.insert(pos, i);
        best.truncate(k);
    }
    best
}

/// Top-1 / top-5 accuracy accumulator. Accuracies are fractions in [0, 1].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopK {
    n: usize,
    hits1: usize,
    hits5: usize,
    /// Samples with a NaN or infinite score (a diverged or broken model).
    nonfinite: usize,
}

impl TopK {
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one sample: `scores` over classes, `label` the expected class index.
    pub fn update(&mut self, scores: &[f32], label: usize) {
        self.n += 1;
        if scores.iter().any(|s| !s.is_finite()) {
            self.nonfinite += 1;
        }
        // All NaN names no class: a miss, not "class 0" by the tie rule.
        if scores.iter().all(|s| s.is_nan()) {
            return;
        }
        let best = top_k(scores, 5);
        if best.first() == Some(&label) {
            self.hits1 += 1;
        }
        if best.contains(&label) {
            self.hits5 += 1;
        }
    }

    /// Add another accumulator's counts (for per-thread accumulation).
    pub fn merge(&mut self, other: &TopK) {
        self.n += other.n;
        self.hits1 += other.hits1;
        self.hits5 += other.hits5;
        self.nonfinite += other.nonfinite;
    }

    /// Top-1 accuracy (0 when nothing was counted).
    pub fn top1(&self) -> f64 {
        ratio(self.hits1, self.n)
    }

    /// Top-5 accuracy (0 when nothing was counted).
    pub fn top5(&self) -> f64 {
        ratio(self.hits5, self.n)
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn hits1(&self) -> usize {
        self.hits1
    }

    pub fn hits5(&self) -> usize {
        self.hits5
    }

    /// Samples whose scores held a NaN or an infinity.
    pub fn nonfinite(&self) -> usize {
        self.nonfinite
    }
}

fn ratio(hits: usize, n: usize) -> f64 {
    if n == 0 { 0.0 } else { hits as f64 / n as f64 }
}

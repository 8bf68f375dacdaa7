//! SGD with momentum (optionally Nesterov) and decoupled-from-BN weight decay, and
//! the learning-rate schedule: linear warm-up, then cosine decay to zero.

/// SGD state: one velocity buffer per parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Sgd {
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    pub velocity: Vec<Vec<f32>>,
}

impl Sgd {
    pub fn new(sizes: &[usize], momentum: f32, nesterov: bool, weight_decay: f32) -> Sgd {
        Sgd {
            momentum,
            nesterov,
            weight_decay,
            velocity: sizes.iter().map(|&n| vec![0.0; n]).collect(),
        }
    }

    /// `g ← g + wd·w` (where `decay`), `v ← μv + g`, `w ← w − lr·(g + μv)` (Nesterov)
    /// or `w ← w − lr·v`.
    pub fn step(&mut self, params: &mut [Vec<f32>], grads: &[Vec<f32>], decay: &[bool], lr: f32) {
        let mu = self.momentum;
        for (((w, g), v), &dec) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.velocity)
            .zip(decay)
        {
            let wd = if dec { self.weight_decay } else { 0.0 };
            for ((wi, &gi), vi) in w.iter_mut().zip(g).zip(v.iter_mut()) {
                let g = gi + wd * *wi;
                *vi = mu * *vi + g;
                *wi -= lr * if self.nesterov { g + mu * *vi } else { *vi };
            }
        }
    }
}

/// Linear warm-up from 0 to `peak` over `warmup` steps, then cosine to 0 at `total`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub peak: f32,
    pub warmup: usize,
    pub total: usize,
}

impl Schedule {
    pub fn lr(&self, step: usize) -> f32 {
        if step < self.warmup {
            return self.peak * (step + 1) as f32 / self.warmup as f32;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        let t = ((step - self.warmup) as f32 / span as f32).min(1.0);
        self.peak * 0.5 * (1.0 + (std::f32::consts::PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let s = Schedule {
            peak: 0.1,
            warmup: 10,
            total: 110,
        };
        assert!((s.lr(0) - 0.01).abs() < 1e-7);
        assert!((s.lr(9) - 0.1).abs() < 1e-7);
        assert!((s.lr(10) - 0.1).abs() < 1e-7);
        assert!((s.lr(60) - 0.05).abs() < 1e-6);
        assert!(s.lr(109) < 1e-3 && s.lr(200) == 0.0);
    }

    #[test]
    fn nesterov_step_matches_the_formula() {
        let mut sgd = Sgd::new(&[1], 0.9, true, 0.5);
        let mut w = vec![vec![2.0f32]];
        sgd.step(&mut w, &[vec![1.0]], &[true], 0.1);
        // g = 1 + 0.5·2 = 2, v = 2, w = 2 − 0.1·(2 + 1.8) = 1.62
        assert!((w[0][0] - 1.62).abs() < 1e-6);
        assert_eq!(sgd.velocity[0][0], 2.0);
    }
}

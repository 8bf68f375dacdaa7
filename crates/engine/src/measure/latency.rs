//! Timed single inferences and their statistics.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::limits::{MAX_RUNS, MAX_THREADS, MAX_WARMUP, check_range};
use crate::exec::Interpreter;
use crate::ir::DType;
use crate::{EngineError, Result};

/// How a latency is measured: untimed warm-up inferences, then `runs` timed ones, on
/// `threads` engine threads. The one place the defaults live (CLI, scenarios and jobs
/// take theirs from here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySettings {
    pub warmup: usize,
    pub runs: usize,
    pub threads: usize,
}

impl LatencySettings {
    /// Scenarios and jobs that do not say otherwise.
    pub const DEFAULT: LatencySettings = LatencySettings {
        warmup: 3,
        runs: 20,
        threads: 1,
    };
    /// `quantfarm bench` (one model, a person waiting: a larger sample costs little).
    pub const BENCH: LatencySettings = LatencySettings {
        warmup: 5,
        runs: 50,
        threads: 1,
    };

    /// Every count within [`super::limits`]: runs 1..=MAX_RUNS, warm-up
    /// 0..=MAX_WARMUP, threads 1..=MAX_THREADS.
    pub fn validate(&self) -> Result<()> {
        check_range("warmup", self.warmup as u64, 0, MAX_WARMUP as u64)?;
        check_range("runs", self.runs as u64, 1, MAX_RUNS as u64)?;
        check_range("threads", self.threads as u64, 1, MAX_THREADS as u64)
    }
}

impl Default for LatencySettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Statistics of a set of single-inference times, in milliseconds.
///
/// Definitions (the same for `quantfarm bench`, scenario results and reports):
/// - `median_ms`: the middle sample of the sorted times; for an even count, the mean of
///   the two middle samples;
/// - `p90_ms`: the nearest-rank 90th percentile, the sample at rank ⌈0.9·n⌉ (1-based)
///   of the sorted times;
/// - `mean_ms`, `min_ms`, `max_ms`: as named.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub runs: usize,
    pub median_ms: f64,
    pub mean_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl LatencyStats {
    /// Statistics of `samples_ms`; `None` when there are none.
    pub fn from_samples(samples_ms: &[f64]) -> Option<LatencyStats> {
        if samples_ms.is_empty() {
            return None;
        }
        let mut t = samples_ms.to_vec();
        t.sort_by(f64::total_cmp);
        let n = t.len();
        let median_ms = if n % 2 == 1 {
            t[n / 2]
        } else {
            (t[n / 2 - 1] + t[n / 2]) / 2.0
        };
        Some(LatencyStats {
            runs: n,
            median_ms,
            mean_ms: t.iter().sum::<f64>() / n as f64,
            p90_ms: nearest_rank(&t, 0.9),
            min_ms: t[0],
            max_ms: t[n - 1],
        })
    }
}

/// The sample at 1-based rank ⌈p·n⌉ of `sorted` (at least rank 1).
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

/// Deterministic inputs in each type's natural range: floats in [-1, 1), other types
/// random bytes. Latency does not depend on the values; fixing them makes runs
/// repeatable.
pub fn fill_inputs(interp: &mut Interpreter) -> Result<()> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for k in 0..interp.inputs().len() {
        let info = interp.inputs()[k].clone();
        let bytes: Vec<u8> = match info.dtype {
            DType::F32 => (0..info.num_elements())
                .flat_map(|_| ((next() as f32 / u32::MAX as f32) * 2.0 - 1.0).to_le_bytes())
                .collect(),
            _ => (0..info.byte_len()).map(|_| next() as u8).collect(),
        };
        interp.set_input_bytes(k, &bytes)?;
    }
    Ok(())
}

/// Fill the inputs ([`fill_inputs`]), run `settings.warmup` untimed and `settings.runs`
/// timed inferences, and return their statistics. `step` is called after every
/// inference (progress); an error from it stops the measurement (cancellation).
/// The interpreter's thread count is the caller's; `settings.threads` is not applied
/// here.
pub fn time_inferences<E: From<EngineError>>(
    interp: &mut Interpreter,
    settings: &LatencySettings,
    mut step: impl FnMut() -> std::result::Result<(), E>,
) -> std::result::Result<LatencyStats, E> {
    settings.validate()?;
    fill_inputs(interp)?;
    for _ in 0..settings.warmup {
        interp.invoke();
        step()?;
    }
    let mut times = Vec::with_capacity(settings.runs);
    for _ in 0..settings.runs {
        let t = Instant::now();
        interp.invoke();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        step()?;
    }
    // validate() guarantees runs ≥ 1.
    LatencyStats::from_samples(&times).ok_or_else(|| EngineError::bad_input("no timed runs").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = LatencyStats::from_samples(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median_ms, s.min_ms, s.max_ms), (2.0, 1.0, 3.0));
        let s = LatencyStats::from_samples(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median_ms, 2.5);
        assert_eq!(s.mean_ms, 2.5);
        assert!(LatencyStats::from_samples(&[]).is_none());
    }

    #[test]
    fn p90_is_the_nearest_rank() {
        // n = 10: rank ⌈9⌉ = 9 → the 9th smallest.
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(LatencyStats::from_samples(&v).unwrap().p90_ms, 9.0);
        // n = 11: rank ⌈9.9⌉ = 10.
        let v: Vec<f64> = (1..=11).map(f64::from).collect();
        assert_eq!(LatencyStats::from_samples(&v).unwrap().p90_ms, 10.0);
        // n = 1: the only sample.
        assert_eq!(LatencyStats::from_samples(&[7.0]).unwrap().p90_ms, 7.0);
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        assert!(LatencySettings::DEFAULT.validate().is_ok());
        for bad in [
            LatencySettings {
                runs: 0,
                ..LatencySettings::DEFAULT
            },
            LatencySettings {
                runs: MAX_RUNS + 1,
                ..LatencySettings::DEFAULT
            },
            LatencySettings {
                warmup: MAX_WARMUP + 1,
                ..LatencySettings::DEFAULT
            },
            LatencySettings {
                threads: 0,
                ..LatencySettings::DEFAULT
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}

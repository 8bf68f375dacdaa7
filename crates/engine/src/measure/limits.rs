//! Bounds on the counts a user, a scenario or a job received over the network can set.
//!
//! Every entry point checks these before allocating or looping (a job's numbers come
//! from the wire and skip scenario validation), so a malformed request fails with an
//! error naming the value and its bound instead of exhausting memory or time.

use crate::{EngineError, Result};

/// Timed inferences per latency measurement (a sample of 100 000 already resolves the
/// p90 of a 0.1 ms model to a few microseconds).
pub const MAX_RUNS: usize = 100_000;
/// Untimed warm-up inferences before timing.
pub const MAX_WARMUP: usize = 10_000;
/// Engine threads per interpreter (the interpreter's pool spins one worker per thread).
pub const MAX_THREADS: usize = 64;
/// Images in one evaluation or calibration slice (the largest shared dataset,
/// CIFAR-10 train, has 50 000).
pub const MAX_IMAGES: usize = 50_000;
/// Synthetic (self-test) job duration.
pub const MAX_SYNTHETIC_MS: u64 = 3_600_000;

/// `value` of `what` must lie in `min..=max`.
pub fn check_range(what: &str, value: u64, min: u64, max: u64) -> Result<()> {
    if value < min || value > max {
        return Err(EngineError::bad_input(format!(
            "{what} = {value} is out of range: expected {min}..={max}"
        )));
    }
    Ok(())
}

/// A thread count: 1..=[`MAX_THREADS`].
pub fn check_threads(threads: usize) -> Result<()> {
    check_range("threads", threads as u64, 1, MAX_THREADS as u64)
}

/// A number of images to evaluate or calibrate on: 1..=[`MAX_IMAGES`].
pub fn check_images(what: &str, n: usize) -> Result<()> {
    check_range(what, n as u64, 1, MAX_IMAGES as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_inclusive_and_name_the_value() {
        assert!(check_range("runs", 1, 1, 10).is_ok());
        assert!(check_range("runs", 10, 1, 10).is_ok());
        let e = check_range("runs", 0, 1, 10).unwrap_err().to_string();
        assert!(e.contains("runs = 0") && e.contains("1..=10"), "{e}");
        assert!(check_threads(0).is_err());
        assert!(check_threads(MAX_THREADS + 1).is_err());
        assert!(check_images("limit", 0).is_err());
    }
}

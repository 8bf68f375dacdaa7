//! One measurement routine for every caller: `quantfarm bench` and `eval`, and the
//! agents' benchmark jobs all time and evaluate through this module, so the same
//! timings give the same statistics everywhere.
//!
//! - [`limits`]: the documented bounds on every count a user or a job can set (runs,
//!   warm-up, threads, images), checked at each entry (CLI, scenario, job from the wire);
//! - [`latency`]: deterministic inputs, timed inferences and [`LatencyStats`] (one
//!   median and one percentile definition);
//! - [`accuracy`]: top-1/top-5 over a slice of a labelled image dataset, with the
//!   preprocessing the model's input asks for;
//! - [`size`]: a model's gzip size (what pruning and clustering shrink).

pub mod accuracy;
pub mod latency;
pub mod limits;
pub mod size;

pub use accuracy::{EvalStep, ImageEval};
pub use latency::{LatencySettings, LatencyStats, fill_inputs, time_inferences};
pub use size::gzip_size;

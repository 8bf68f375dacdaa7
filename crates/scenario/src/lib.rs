//! quantfarm's scenario language: what to optimize, where to measure it and which
//! gates must hold, written as YAML and expanded into a DAG of jobs.
//!
//! - [`load`] / [`parse`]: YAML → [`Scenario`], with syntax, type, unknown-key and
//!   structural errors reported as `file:line:column: what was expected`;
//! - [`Scenario::validate`]: checks that need the outside world (device profiles, model
//!   files on disk);
//! - [`ProfileSet`]: device profiles (`agents/profiles/*.yaml`, parsed by
//!   `quantfarm-devices`) for capability matching;
//! - [`expand`]: [`Scenario`] → [`JobGraph`] of optimize and benchmark jobs with stable,
//!   content-derived [`JobId`]s;
//! - [`check`]: evaluates a [`Gate`] against measured [`Results`].
//!
//! No async, no network: the coordinator and agents build on top of this crate.

mod error;
mod expand;
mod gate;
mod loc;
mod scenario;
mod technique;

pub use error::{Result, ScenarioError};
pub use expand::{
    Job, JobGraph, JobId, JobSpec, Metric, ModelSource, ModelSpec, Skipped, expand, job_id,
};
pub use gate::{GateOutcome, GateStatus, Measurement, Observed, Results, check, check_all};
pub use loc::At;
pub use quantfarm_devices::{
    DeviceKind, DeviceProfile, Numerics, ProfileError, ProfileSet, PublishedFact,
};
pub use scenario::{
    AccuracySettings, Baseline, CalibrationSettings, Gate, GateKind, LatencySettings, MAX_JOBS,
    MAX_SCENARIO_BYTES, MAX_TRAINING_EPOCHS, MetricKind, ModelDecl, ModelSourceDecl, Scenario,
    TechniqueDecl, TrainingSettings, canonical_dataset, load, parse, resolve_model_path,
};
pub use technique::{CalibrationMethod, Technique, accepts};

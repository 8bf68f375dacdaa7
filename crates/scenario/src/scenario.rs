//! The scenario document: YAML schema, parsing with structural checks, and
//! validation against device profiles and the file system.

use crate::error::{Result, ScenarioError};
use crate::loc::At;
use crate::technique::{CalibrationMethod, Technique};
use quantfarm_devices::ProfileSet;
use quantfarm_engine::data::DATASET_NAMES;
use quantfarm_engine::measure::limits::MAX_IMAGES;
use quantfarm_engine::zoo::Arch;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Scenario files larger than this are refused before parsing: a scenario is a page
/// of YAML, so anything bigger is a mistake (or an attack on the coordinator).
pub const MAX_SCENARIO_BYTES: usize = 1 << 20;

/// Prefix of model paths resolved against the shared data folder
/// (`QUANTFARM_DATA`, else `../shared`), so scenarios run unchanged on every machine.
const SHARED_PREFIX: &str = "$shared/";

/// Most jobs one scenario may expand into.
pub const MAX_JOBS: usize = 100_000;

/// Upper bound of the jobs a scenario expands into: per model × technique one optimize
/// and one size job, per device up to three benchmarks.
fn raw_counts_product(models: usize, techniques: usize, devices: usize) -> usize {
    models
        .saturating_mul(techniques)
        .saturating_mul(devices.saturating_mul(3).saturating_add(2))
}

// ---------------------------------------------------------------- raw YAML schema

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: At<String>,
    #[serde(default)]
    description: Option<String>,
    models: At<Vec<RawModel>>,
    techniques: At<Vec<RawTechnique>>,
    devices: At<Vec<At<String>>>,
    #[serde(default)]
    calibration: Option<At<RawCalibration>>,
    #[serde(default)]
    accuracy: Option<At<RawAccuracy>>,
    #[serde(default)]
    latency: Option<At<RawLatency>>,
    #[serde(default)]
    metrics: Option<At<Vec<At<MetricKind>>>>,
    #[serde(default)]
    fallback: bool,
    #[serde(default)]
    gates: Vec<At<RawGate>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    name: At<String>,
    #[serde(default)]
    file: Option<At<String>>,
    #[serde(default)]
    zoo: Option<At<String>>,
    #[serde(default)]
    dequantize: Option<At<String>>,
    #[serde(default)]
    width: Option<At<f32>>,
    #[serde(default)]
    resolution: Option<At<usize>>,
    #[serde(default)]
    seed: Option<At<u64>>,
    #[serde(default)]
    metrics: Option<At<Vec<At<MetricKind>>>>,
    #[serde(default)]
    techniques: Option<At<Vec<At<String>>>>,
    #[serde(default)]
    calibration: Option<At<RawCalibration>>,
    #[serde(default)]
    accuracy: Option<At<RawAccuracy>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTechnique {
    technique: At<Technique>,
    #[serde(default)]
    label: Option<At<String>>,
    #[serde(default)]
    calibration: Option<At<RawCalibration>>,
    #[serde(default)]
    training: Option<At<RawTraining>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTraining {
    dataset: At<String>,
    #[serde(default)]
    limit: Option<At<usize>>,
    #[serde(default)]
    epochs: Option<At<usize>>,
    /// Shuffling and augmentation; 1 like `quantfarm optimize --seed`.
    #[serde(default = "default_training_seed")]
    seed: u64,
    /// prune, pqat: the final sparsity.
    #[serde(default)]
    sparsity: Option<At<f32>>,
    /// cluster, cqat: clusters per layer.
    #[serde(default)]
    clusters: Option<At<usize>>,
    /// cluster, cqat: centroid initialisation.
    #[serde(default)]
    init: Option<At<String>>,
}

fn default_training_seed() -> u64 {
    1
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum MethodName {
    Minmax,
    Percentile,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawCalibration {
    dataset: At<String>,
    #[serde(default)]
    offset: usize,
    limit: At<usize>,
    #[serde(default)]
    method: Option<At<MethodName>>,
    #[serde(default)]
    percentile: Option<At<f64>>,
    #[serde(default)]
    stride: Option<At<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccuracy {
    dataset: At<String>,
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    limit: Option<At<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLatency {
    #[serde(default)]
    warmup: Option<At<usize>>,
    #[serde(default)]
    runs: Option<At<usize>>,
    #[serde(default)]
    threads: Option<At<usize>>,
}

/// The four things a benchmark job can measure.
#[derive(Debug, Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Size,
    Latency,
    Accuracy,
    Mapping,
}

impl MetricKind {
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Size => "size",
            MetricKind::Latency => "latency",
            MetricKind::Accuracy => "accuracy",
            MetricKind::Mapping => "mapping",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    name: At<String>,
    #[serde(default)]
    model: Option<At<String>>,
    #[serde(default)]
    technique: Option<At<String>>,
    #[serde(default)]
    device: Option<At<String>>,
    #[serde(default)]
    baseline: Option<At<String>>,
    #[serde(default)]
    max_top1_drop: Option<At<f64>>,
    #[serde(default)]
    max_latency_regression: Option<At<f64>>,
    #[serde(default)]
    max_size_ratio: Option<At<f64>>,
    #[serde(default)]
    full_mapping: Option<At<String>>,
}

// ---------------------------------------------------------------- public model

/// A parsed scenario. Every name in it is checked against the scenario itself and
/// the engine's lists; [`Scenario::validate`] adds the checks against device profiles
/// and the file system.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The file name errors are reported against.
    pub file: String,
    /// Directory relative model paths are resolved against (the scenario's folder).
    pub base_dir: PathBuf,
    pub name: String,
    pub description: Option<String>,
    pub models: Vec<ModelDecl>,
    pub techniques: Vec<TechniqueDecl>,
    /// Device profile names; one agent per device.
    pub devices: Vec<At<String>>,
    /// Accuracy slice; `None` when the scenario measures no accuracy.
    pub accuracy: Option<AccuracySettings>,
    pub latency: LatencySettings,
    pub measure_size: bool,
    pub measure_latency: bool,
    pub measure_mapping: bool,
    /// Also benchmark artifacts on devices whose profile does not accept their
    /// numerics (they run on the device's fallback, usually the CPU).
    pub fallback: bool,
    pub gates: Vec<Gate>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelDecl {
    pub name: At<String>,
    pub source: ModelSourceDecl,
    /// Restricts the scenario's metrics for this model (e.g. no accuracy for a zoo
    /// model, whose weights are random); `None` = all the scenario measures.
    pub metrics: Option<Vec<At<MetricKind>>>,
    /// Restricts the scenario's techniques for this model, by label (e.g. `qat` only
    /// for the CIFAR-10 models it can fine-tune); `None` = every technique.
    pub techniques: Option<Vec<At<String>>>,
    /// This model's calibration sample, in place of the techniques' and the scenario's
    /// (a CIFAR-10 model beside ImageNet ones calibrates on its own dataset).
    pub calibration: Option<CalibrationSettings>,
    /// This model's accuracy slice, in place of the scenario's.
    pub accuracy: Option<AccuracySettings>,
}

impl ModelDecl {
    /// Is `kind` measured for this model (given that the scenario measures it)?
    pub fn measures(&self, kind: MetricKind) -> bool {
        self.metrics
            .as_ref()
            .is_none_or(|m| m.iter().any(|k| k.value == kind))
    }

    /// Is the technique labelled `label` applied to this model?
    pub fn uses(&self, label: &str) -> bool {
        self.techniques
            .as_ref()
            .is_none_or(|ts| ts.iter().any(|t| t.value == label))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ModelSourceDecl {
    /// A `.tflite` file, used as is (float models are their own float32 baseline).
    File(At<String>),
    /// A quantized `.tflite` file whose dequantized form is the float32 baseline.
    Dequantize(At<String>),
    /// An engine zoo architecture (`quantfarm_engine::zoo::Arch` names).
    Zoo {
        arch: At<String>,
        width: f32,
        resolution: usize,
        seed: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TechniqueDecl {
    pub technique: At<Technique>,
    /// Unique within the scenario; defaults to the technique's name. Results, gates
    /// and reports name techniques by label.
    pub label: String,
    /// The calibration sample (own or the scenario default); `Some` exactly when the
    /// technique needs one.
    pub calibration: Option<CalibrationSettings>,
    /// The fine-tuning data and schedule; `Some` exactly for training techniques.
    pub training: Option<TrainingSettings>,
}

/// What a training technique (`qat`, `prune`, `cluster`, `pqat`, `cqat`) fine-tunes
/// on, for how long, and to what structure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSettings {
    /// Canonical dataset name: `cifar10-train`, the one labelled training set.
    pub dataset: String,
    /// An evenly spaced subset of this many images (every class keeps its share);
    /// `None` = the whole dataset.
    pub limit: Option<usize>,
    pub epochs: usize,
    pub seed: u64,
    /// prune, pqat: the final sparsity in [0, 1).
    pub sparsity: Option<f32>,
    /// cluster, cqat: clusters per layer (an even count from 2 to 256).
    pub clusters: Option<usize>,
    /// cluster, cqat: `linear`, `kmeans++` or `density`; `None` = kmeans++.
    pub init: Option<String>,
    pub line: u32,
    pub column: u32,
}

/// Most fine-tuning epochs a scenario may ask for (one CIFAR-10 epoch of QAT takes
/// minutes on a 2-core machine).
pub const MAX_TRAINING_EPOCHS: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationSettings {
    /// Canonical dataset name (see [`canonical_dataset`]).
    pub dataset: String,
    pub offset: usize,
    pub limit: usize,
    pub method: CalibrationMethod,
    /// Every `stride`-th image from `offset` (≥ 1): a class-ordered dataset such as
    /// `cifar10-train` needs a stride to sample every class.
    pub stride: usize,
    pub line: u32,
    pub column: u32,
}

impl CalibrationSettings {
    /// Positions past `offset` the sample spans: `(limit − 1)·stride + 1`.
    pub fn span(&self) -> usize {
        self.limit
            .saturating_sub(1)
            .saturating_mul(self.stride)
            .saturating_add(1)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccuracySettings {
    pub dataset: String,
    pub offset: usize,
    /// `None` = to the end of the dataset.
    pub limit: Option<usize>,
    pub line: u32,
    pub column: u32,
}

/// Latency settings and their defaults and bounds are the engine's, so a scenario, the
/// CLI and a job from the wire accept exactly the same numbers.
pub use quantfarm_engine::measure::LatencySettings;

/// A condition a run must meet; [`crate::check`] evaluates it.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub name: String,
    pub kind: GateKind,
    /// Filters: only results of this model / technique label / device are checked.
    pub model: Option<String>,
    pub technique: Option<String>,
    pub device: Option<String>,
    pub line: u32,
    pub column: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GateKind {
    /// Top-1 may fall at most this much (absolute, 0.02 = two points) below the baseline.
    MaxTop1Drop { max: f64, baseline: Baseline },
    /// Latency may grow at most this fraction over the baseline (0.1 = 10% slower;
    /// negative values demand a speed-up).
    MaxLatencyRegression { max: f64, baseline: Baseline },
    /// Artifact size / baseline size at most this (0.3 ≈ "at least 3.3× smaller").
    MaxSizeRatio { max: f64, baseline: Baseline },
    /// Every op of the artifact must be placed on this device (no CPU fallback).
    FullMapping { device: String },
}

impl GateKind {
    /// The scenario's spelling of the gate's kind.
    pub fn name(&self) -> &'static str {
        match self {
            GateKind::MaxTop1Drop { .. } => "max_top1_drop",
            GateKind::MaxLatencyRegression { .. } => "max_latency_regression",
            GateKind::MaxSizeRatio { .. } => "max_size_ratio",
            GateKind::FullMapping { .. } => "full_mapping",
        }
    }
}

/// What a relative gate compares against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Baseline {
    /// The same model on the same device under this technique label.
    Technique(String),
    /// The same measurement in the previous run (nightly trend).
    Previous,
}

// ---------------------------------------------------------------- entry points

/// Read and parse a scenario file; see [`parse`].
pub fn load(path: impl AsRef<Path>) -> Result<Scenario> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let meta = std::fs::metadata(path)
        .map_err(|e| ScenarioError::file(&name, format!("cannot read scenario: {e}")))?;
    if meta.len() > MAX_SCENARIO_BYTES as u64 {
        return Err(ScenarioError::file(
            &name,
            format!(
                "scenario is {} bytes; at most {MAX_SCENARIO_BYTES} expected",
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| ScenarioError::file(&name, format!("cannot read scenario: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| ScenarioError::file(&name, format!("not valid UTF-8: {e}")))?;
    parse(&text, &name)
}

/// Parse scenario YAML. `file_name` names the text in errors and its folder is where
/// relative model paths are resolved. Reports malformed YAML, wrong types, unknown or
/// missing keys, unknown technique/dataset/architecture names, duplicate names,
/// missing calibration, overlapping calibration and accuracy slices and dangling gate
/// references, each as `file:line:column: what was expected`.
pub fn parse(text: &str, file_name: &str) -> Result<Scenario> {
    if text.len() > MAX_SCENARIO_BYTES {
        return Err(ScenarioError::file(
            file_name,
            format!(
                "scenario is {} bytes; at most {MAX_SCENARIO_BYTES} expected",
                text.len()
            ),
        ));
    }
    let mut opts = serde_saphyr::Options::default();
    opts.with_snippet = false;
    opts.strict_booleans = true;
    let raw: RawScenario = serde_saphyr::from_str_with_options(text, opts)
        .map_err(|e| ScenarioError::from_yaml(file_name, &e))?;
    let base_dir = Path::new(file_name)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Builder { file: file_name }.build(raw, base_dir)
}

/// The canonical spelling of a dataset name (`cifar10` is the test split), or `None`
/// if the engine does not know it.
pub fn canonical_dataset(name: &str) -> Option<&'static str> {
    if name == "cifar10" {
        return Some("cifar10-test");
    }
    DATASET_NAMES.iter().copied().find(|d| *d == name)
}

/// Where a model path written in a scenario lives: `$shared/…` under the shared data
/// folder, absolute paths as written, others relative to `base_dir`.
pub fn resolve_model_path(written: &str, base_dir: &Path) -> Result<PathBuf> {
    if let Some(rest) = written.strip_prefix(SHARED_PREFIX) {
        let root = quantfarm_engine::data::shared_root()
            .map_err(|e| ScenarioError::file(written, e.to_string()))?;
        Ok(root.join(rest))
    } else {
        let p = Path::new(written);
        Ok(if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        })
    }
}

impl Scenario {
    /// Checks against the outside world: every device names a profile in `profiles`,
    /// latency threads fit each device (when its profile gives a core count), every
    /// calibration and accuracy slice lies inside its dataset (read from the shared
    /// folder), and every model file exists and parses as a TFLite model.
    pub fn validate(&self, profiles: &ProfileSet) -> Result<()> {
        for d in &self.devices {
            let Some(p) = profiles.get(&d.value) else {
                return Err(self.err(
                    d,
                    format!(
                        "unknown device '{}': expected one of the profiles {}",
                        d.value,
                        list(profiles.names())
                    ),
                ));
            };
            if let Some(cores) = p.cores
                && self.measure_latency
                && self.latency.threads > cores
            {
                return Err(self.err(
                    d,
                    format!(
                        "device '{}' has {cores} cores but latency.threads is {}; expected at most {cores}",
                        d.value, self.latency.threads
                    ),
                ));
            }
        }
        self.validate_slices()?;
        for m in &self.models {
            let path = match &m.source {
                ModelSourceDecl::File(p) | ModelSourceDecl::Dequantize(p) => p,
                ModelSourceDecl::Zoo { .. } => continue,
            };
            let resolved = resolve_model_path(&path.value, &self.base_dir)
                .map_err(|e| self.err(path, e.message))?;
            if !resolved.is_file() {
                return Err(self.err(
                    path,
                    format!(
                        "model file not found: {} (expected an existing .tflite file)",
                        resolved.display()
                    ),
                ));
            }
            // A model is a model: the TFLite identifier and a full parse, so no other
            // file (a system file, say) is copied into a run and uploaded. The error
            // names the file and the problem, never its contents.
            let bytes = std::fs::read(&resolved)
                .map_err(|e| self.err(path, format!("{}: cannot read: {e}", resolved.display())))?;
            if let Err(e) = quantfarm_engine::tflite::read_model(&bytes) {
                return Err(self.err(
                    path,
                    format!("{}: expected a TFLite model: {e}", resolved.display()),
                ));
            }
        }
        Ok(())
    }

    /// Every calibration and accuracy slice must lie inside its dataset. Each dataset
    /// is opened once (reading its tar index) to learn its length.
    fn validate_slices(&self) -> Result<()> {
        // (what, dataset, offset, limit, at)
        type Slice<'a> = (&'static str, &'a str, usize, Option<usize>, (u32, u32));
        let mut slices: Vec<Slice> = Vec::new();
        let calibrations = self
            .techniques
            .iter()
            .filter_map(|t| t.calibration.as_ref());
        for c in calibrations.chain(self.models.iter().filter_map(|m| m.calibration.as_ref())) {
            let at = (c.line, c.column);
            slices.push(("calibration", &c.dataset, c.offset, Some(c.span()), at));
        }
        for t in self.techniques.iter().filter_map(|t| t.training.as_ref()) {
            let at = (t.line, t.column);
            slices.push(("training", &t.dataset, 0, t.limit, at));
        }
        let accuracies = self.models.iter().filter_map(|m| m.accuracy.as_ref());
        for a in self.accuracy.iter().chain(accuracies) {
            let at = (a.line, a.column);
            slices.push(("accuracy", &a.dataset, a.offset, a.limit, at));
        }
        let mut lens: BTreeMap<&str, usize> = BTreeMap::new();
        for (what, dataset, offset, limit, (line, column)) in slices {
            let at = |msg: String| ScenarioError::at(&self.file, line, column, msg);
            let len = match lens.get(dataset) {
                Some(&n) => n,
                None => {
                    let root =
                        quantfarm_engine::data::shared_root().map_err(|e| at(e.to_string()))?;
                    let n = quantfarm_engine::data::open_dataset(dataset, &root)
                        .map_err(|e| at(e.to_string()))?
                        .len();
                    lens.insert(dataset, n);
                    n
                }
            };
            quantfarm_engine::data::slice_range(len, offset, limit).map_err(|e| {
                let e = e.to_string();
                let e = e.trim_start_matches("bad input: ");
                at(format!("{what} slice of {dataset}: {e}"))
            })?;
        }
        Ok(())
    }

    /// The device profile names, in scenario order: one agent each.
    pub fn device_names(&self) -> Vec<&str> {
        self.devices.iter().map(|d| d.value.as_str()).collect()
    }

    /// The technique declared with `label`.
    pub fn technique(&self, label: &str) -> Option<&TechniqueDecl> {
        self.techniques.iter().find(|t| t.label == label)
    }

    /// The calibration sample of technique `t` on model `m`: the model's own, else the
    /// technique's; `None` when the technique needs none.
    pub fn calibration_for<'s>(
        &'s self,
        m: &'s ModelDecl,
        t: &'s TechniqueDecl,
    ) -> Option<&'s CalibrationSettings> {
        t.calibration
            .as_ref()
            .map(|c| m.calibration.as_ref().unwrap_or(c))
    }

    /// The accuracy slice of model `m`: its own, else the scenario's.
    pub fn accuracy_for<'s>(&'s self, m: &'s ModelDecl) -> Option<&'s AccuracySettings> {
        m.accuracy.as_ref().or(self.accuracy.as_ref())
    }

    fn err<T>(&self, at: &At<T>, msg: impl Into<String>) -> ScenarioError {
        ScenarioError::at(&self.file, at.line, at.column, msg)
    }
}

fn list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let v: Vec<&str> = names.into_iter().collect();
    if v.is_empty() {
        "(none loaded)".to_string()
    } else {
        v.join(", ")
    }
}

// ---------------------------------------------------------------- raw → checked

struct Builder<'a> {
    file: &'a str,
}

impl Builder<'_> {
    fn err<T>(&self, at: &At<T>, msg: impl Into<String>) -> ScenarioError {
        ScenarioError::at(self.file, at.line, at.column, msg)
    }

    fn name_ok(&self, what: &str, n: &At<String>) -> Result<()> {
        let ok = !n.value.is_empty()
            && n.value.len() <= 64
            && n.value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if ok {
            Ok(())
        } else {
            Err(self.err(
                n,
                format!(
                    "{what} '{}': expected 1–64 characters from a-z A-Z 0-9 . _ -",
                    n.value
                ),
            ))
        }
    }

    fn build(&self, raw: RawScenario, base_dir: PathBuf) -> Result<Scenario> {
        self.name_ok("scenario name", &raw.name)?;

        // Models.
        if raw.models.value.is_empty() {
            return Err(self.err(&raw.models, "at least one model expected"));
        }
        let mut models = Vec::new();
        let mut model_names = BTreeSet::new();
        for m in raw.models.value {
            self.name_ok("model name", &m.name)?;
            if !model_names.insert(m.name.value.clone()) {
                return Err(self.err(
                    &m.name,
                    format!(
                        "duplicate model name '{}': expected unique names",
                        m.name.value
                    ),
                ));
            }
            models.push(self.model(m)?);
        }

        // Scenario-wide calibration default.
        let default_cal = match &raw.calibration {
            Some(c) => Some(self.calibration(c)?),
            None => None,
        };

        // Techniques.
        if raw.techniques.value.is_empty() {
            return Err(self.err(&raw.techniques, "at least one technique expected"));
        }
        let mut techniques: Vec<TechniqueDecl> = Vec::new();
        for t in raw.techniques.value {
            let label = match &t.label {
                Some(l) => {
                    self.name_ok("technique label", l)?;
                    l.value.clone()
                }
                None => t.technique.value.name().to_string(),
            };
            if techniques.iter().any(|o| o.label == label) {
                let at = t
                    .label
                    .as_ref()
                    .map_or((t.technique.line, t.technique.column), |l| {
                        (l.line, l.column)
                    });
                return Err(ScenarioError::at(
                    self.file,
                    at.0,
                    at.1,
                    format!(
                        "duplicate technique label '{label}': expected unique labels (add `label:` to tell them apart)"
                    ),
                ));
            }
            let needs = t.technique.value.needs_calibration();
            let calibration = match (&t.calibration, needs) {
                (Some(c), true) => Some(self.calibration(c)?),
                (None, true) => match &default_cal {
                    Some(c) => Some(c.clone()),
                    None => {
                        return Err(self.err(
                            &t.technique,
                            format!(
                                "{} needs a calibration sample: expected `calibration:` here or at the top level",
                                t.technique.value
                            ),
                        ));
                    }
                },
                (Some(c), false) => {
                    return Err(self.err(
                        c,
                        format!(
                            "{} takes no calibration data: expected no `calibration:` here",
                            t.technique.value
                        ),
                    ));
                }
                (None, false) => None,
            };
            let training = match (&t.training, t.technique.value.needs_training()) {
                (Some(tr), true) => Some(self.training(tr, t.technique.value)?),
                (None, true) => {
                    return Err(self.err(
                        &t.technique,
                        format!(
                            "{} fine-tunes on labelled images: expected `training: {{dataset: cifar10-train, epochs: 1}}` here",
                            t.technique.value
                        ),
                    ));
                }
                (Some(tr), false) => {
                    return Err(self.err(
                        tr,
                        format!(
                            "{} does not train: expected no `training:` here",
                            t.technique.value
                        ),
                    ));
                }
                (None, false) => None,
            };
            techniques.push(TechniqueDecl {
                technique: t.technique,
                label,
                calibration,
                training,
            });
        }
        // A model's technique list names declared labels.
        for m in &models {
            for l in m.techniques.iter().flatten() {
                if !techniques.iter().any(|t| t.label == l.value) {
                    return Err(self.err(
                        l,
                        format!(
                            "model '{}' lists technique '{}', which the scenario does not declare: expected one of {}",
                            m.name.value,
                            l.value,
                            techniques
                                .iter()
                                .map(|t| t.label.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }

        // Devices.
        if raw.devices.value.is_empty() {
            return Err(self.err(&raw.devices, "at least one device expected"));
        }
        let mut seen = BTreeSet::new();
        for d in &raw.devices.value {
            if !seen.insert(d.value.clone()) {
                return Err(self.err(
                    d,
                    format!("duplicate device '{}': expected each device once", d.value),
                ));
            }
        }

        // A scenario is written by hand: these bounds only stop a generated or hostile
        // file from expanding into millions of jobs.
        let jobs_bound =
            raw_counts_product(models.len(), techniques.len(), raw.devices.value.len());
        if jobs_bound > MAX_JOBS {
            return Err(self.err(
                &raw.devices,
                format!(
                    "{} models × {} techniques × {} devices give up to {jobs_bound} jobs: expected at most {MAX_JOBS}",
                    models.len(),
                    techniques.len(),
                    raw.devices.value.len()
                ),
            ));
        }

        // Accuracy and metrics.
        let accuracy = match &raw.accuracy {
            Some(a) => Some(self.accuracy(a)?),
            None => None,
        };
        let any_accuracy = accuracy.is_some() || models.iter().any(|m| m.accuracy.is_some());
        let (mut size, mut latency_on, mut acc_on, mut mapping) = (true, true, any_accuracy, true);
        if let Some(ms) = &raw.metrics {
            if ms.value.is_empty() {
                return Err(self.err(
                    ms,
                    "at least one metric expected (size, latency, accuracy, mapping)",
                ));
            }
            (size, latency_on, acc_on, mapping) = (false, false, false, false);
            for m in &ms.value {
                match m.value {
                    MetricKind::Size => size = true,
                    MetricKind::Latency => latency_on = true,
                    MetricKind::Mapping => mapping = true,
                    MetricKind::Accuracy => {
                        if !any_accuracy {
                            return Err(self.err(
                                m,
                                "metric accuracy needs a dataset slice: expected a top-level `accuracy:` section (or one on a model)",
                            ));
                        }
                        acc_on = true;
                    }
                }
            }
        }
        let accuracy = if acc_on { accuracy } else { None };
        if !acc_on {
            models.iter_mut().for_each(|m| m.accuracy = None);
        }
        for m in &models {
            for k in m.metrics.iter().flatten() {
                let on = match k.value {
                    MetricKind::Size => size,
                    MetricKind::Latency => latency_on,
                    MetricKind::Accuracy => acc_on,
                    MetricKind::Mapping => mapping,
                };
                if !on {
                    return Err(self.err(
                        k,
                        format!(
                            "model '{}' asks for {}, which the scenario does not measure: expected a subset of the scenario's metrics",
                            m.name.value,
                            k.value.name()
                        ),
                    ));
                }
            }
        }

        // Calibration (and training) slices must not overlap the accuracy slice of the
        // same dataset: a model tuned on its test images would report flattering accuracy.
        for m in &models {
            let Some(a) = m.accuracy.as_ref().or(accuracy.as_ref()) else {
                continue;
            };
            let a1 = a.limit.map_or(usize::MAX, |l| a.offset.saturating_add(l));
            for t in techniques.iter().filter(|t| m.uses(&t.label)) {
                let cal = t
                    .calibration
                    .as_ref()
                    .map(|c| m.calibration.as_ref().unwrap_or(c))
                    .map(|c| {
                        (
                            "calibration",
                            &c.dataset,
                            c.offset,
                            Some(c.span()),
                            c.line,
                            c.column,
                        )
                    });
                let train = t
                    .training
                    .as_ref()
                    .map(|r| ("training", &r.dataset, 0, None, r.line, r.column));
                for (what, dataset, c0, len, line, column) in cal.into_iter().chain(train) {
                    if *dataset != a.dataset {
                        continue;
                    }
                    let c1 = len.map_or(usize::MAX, |l| c0.saturating_add(l));
                    if c0 < a1 && a.offset < c1 {
                        return Err(ScenarioError::at(
                            self.file,
                            line,
                            column,
                            format!(
                                "{what} slice {dataset}[{c0}..{}) of technique '{}' overlaps the accuracy slice {}[{}..{}) of model '{}' at line {}: expected disjoint slices",
                                len.map_or("end".to_string(), |_| c1.to_string()),
                                t.label,
                                a.dataset,
                                a.offset,
                                a.limit.map_or("end".to_string(), |_| a1.to_string()),
                                m.name.value,
                                a.line
                            ),
                        ));
                    }
                }
            }
        }

        let latency = match &raw.latency {
            Some(l) => self.latency(l)?,
            None => LatencySettings::default(),
        };

        let devices = raw.devices.value;
        let mut gates: Vec<Gate> = Vec::new();
        for g in &raw.gates {
            let gate = self.gate(g, &models, &techniques, &devices)?;
            if gates.iter().any(|o| o.name == gate.name) {
                return Err(self.err(
                    &g.value.name,
                    format!("duplicate gate name '{}': expected unique names", gate.name),
                ));
            }
            let needs = match gate.kind {
                GateKind::MaxTop1Drop { .. } => acc_on.then_some(()).ok_or("accuracy"),
                GateKind::MaxLatencyRegression { .. } => latency_on.then_some(()).ok_or("latency"),
                GateKind::MaxSizeRatio { .. } => size.then_some(()).ok_or("size"),
                GateKind::FullMapping { .. } => mapping.then_some(()).ok_or("mapping"),
            };
            if let Err(metric) = needs {
                return Err(self.err(
                    g,
                    format!(
                        "gate '{}' needs the {metric} metric, which this scenario does not measure: expected `{metric}` in `metrics:`{}",
                        gate.name,
                        if metric == "accuracy" { " and an `accuracy:` section" } else { "" }
                    ),
                ));
            }
            gates.push(gate);
        }

        Ok(Scenario {
            file: self.file.to_string(),
            base_dir,
            name: raw.name.value,
            description: raw.description,
            models,
            techniques,
            devices,
            accuracy,
            latency,
            measure_size: size,
            measure_latency: latency_on,
            measure_mapping: mapping,
            fallback: raw.fallback,
            gates,
        })
    }

    fn model(&self, m: RawModel) -> Result<ModelDecl> {
        let n_sources =
            m.file.is_some() as u8 + m.zoo.is_some() as u8 + m.dequantize.is_some() as u8;
        if n_sources != 1 {
            return Err(self.err(
                &m.name,
                format!(
                    "model '{}': expected exactly one of `file:`, `zoo:` or `dequantize:` (found {n_sources})",
                    m.name.value
                ),
            ));
        }
        if m.zoo.is_none() {
            for (key, at) in [
                ("width", m.width.as_ref().map(|a| (a.line, a.column))),
                (
                    "resolution",
                    m.resolution.as_ref().map(|a| (a.line, a.column)),
                ),
                ("seed", m.seed.as_ref().map(|a| (a.line, a.column))),
            ] {
                if let Some((l, c)) = at {
                    return Err(ScenarioError::at(
                        self.file,
                        l,
                        c,
                        format!(
                            "`{key}:` applies to `zoo:` models only: expected no `{key}:` on a file model"
                        ),
                    ));
                }
            }
        }
        let source = if let Some(p) = m.file {
            self.path_ok(&p)?;
            ModelSourceDecl::File(p)
        } else if let Some(p) = m.dequantize {
            self.path_ok(&p)?;
            ModelSourceDecl::Dequantize(p)
        } else if let Some(arch) = m.zoo {
            if let Err(e) = Arch::parse(&arch.value) {
                return Err(self.err(&arch, e.to_string()));
            }
            let width = match &m.width {
                Some(w) if !(w.value.is_finite() && w.value > 0.0 && w.value <= 4.0) => {
                    return Err(
                        self.err(w, format!("width {}: expected a number in (0, 4]", w.value))
                    );
                }
                Some(w) => w.value,
                None => 1.0,
            };
            let resolution = match &m.resolution {
                Some(r) if r.value == 0 || r.value > 1024 => {
                    return Err(self.err(
                        r,
                        format!("resolution {}: expected 1..=1024 pixels", r.value),
                    ));
                }
                Some(r) => r.value,
                None => 0,
            };
            ModelSourceDecl::Zoo {
                arch,
                width,
                resolution,
                seed: m.seed.map_or(0, |s| s.value),
            }
        } else {
            unreachable!("exactly one source was checked above")
        };
        let metrics = match &m.metrics {
            Some(ms) if ms.value.is_empty() => {
                return Err(self.err(
                    ms,
                    "at least one metric expected (size, latency, accuracy, mapping)",
                ));
            }
            Some(ms) => Some(ms.value.clone()),
            None => None,
        };
        let techniques = match &m.techniques {
            Some(ts) if ts.value.is_empty() => {
                return Err(self.err(ts, "at least one technique label expected"));
            }
            Some(ts) => Some(ts.value.clone()),
            None => None,
        };
        let calibration = match &m.calibration {
            Some(c) => Some(self.calibration(c)?),
            None => None,
        };
        let accuracy = match &m.accuracy {
            Some(a) => Some(self.accuracy(a)?),
            None => None,
        };
        Ok(ModelDecl {
            name: m.name,
            source,
            metrics,
            techniques,
            calibration,
            accuracy,
        })
    }

    fn path_ok(&self, p: &At<String>) -> Result<()> {
        if p.value.is_empty() || p.value.contains('\0') {
            return Err(self.err(p, "expected a non-empty file path"));
        }
        Ok(())
    }

    fn dataset(&self, d: &At<String>) -> Result<String> {
        canonical_dataset(&d.value)
            .map(str::to_string)
            .ok_or_else(|| {
                self.err(
                    d,
                    format!(
                        "unknown dataset '{}': expected one of {}",
                        d.value,
                        DATASET_NAMES.join(", ")
                    ),
                )
            })
    }

    fn calibration(&self, c: &At<RawCalibration>) -> Result<CalibrationSettings> {
        let dataset = self.dataset(&c.dataset)?;
        if c.limit.value == 0 || c.limit.value > MAX_IMAGES {
            return Err(self.err(
                &c.limit,
                format!(
                    "calibration limit {}: expected 1..={MAX_IMAGES} samples",
                    c.limit.value
                ),
            ));
        }
        let method = match (&c.method, &c.percentile) {
            (Some(m), Some(p)) if matches!(m.value, MethodName::Percentile) => {
                if !(p.value.is_finite() && p.value > 0.0 && p.value <= 100.0) {
                    return Err(self.err(
                        p,
                        format!("percentile {}: expected a number in (0, 100]", p.value),
                    ));
                }
                CalibrationMethod::Percentile(p.value)
            }
            (Some(m), None) if matches!(m.value, MethodName::Percentile) => {
                return Err(self.err(
                    m,
                    "method percentile: expected a `percentile:` value, e.g. 99.99",
                ));
            }
            (_, Some(p)) => {
                return Err(self.err(p, "`percentile:` applies to `method: percentile` only"));
            }
            _ => CalibrationMethod::MinMax,
        };
        let stride = match &c.stride {
            Some(st) if st.value == 0 || st.value > MAX_IMAGES => {
                return Err(self.err(
                    st,
                    format!("stride {}: expected 1..={MAX_IMAGES}", st.value),
                ));
            }
            Some(st) => st.value,
            None => 1,
        };
        Ok(CalibrationSettings {
            dataset,
            offset: c.offset,
            limit: c.limit.value,
            method,
            stride,
            line: c.line,
            column: c.column,
        })
    }

    fn training(&self, t: &At<RawTraining>, technique: Technique) -> Result<TrainingSettings> {
        let dataset = self.dataset(&t.dataset)?;
        if dataset != "cifar10-train" {
            return Err(self.err(
                &t.dataset,
                format!(
                    "training dataset '{}': expected cifar10-train (the labelled training set fine-tuning reads)",
                    t.dataset.value
                ),
            ));
        }
        if let Some(l) = &t.limit
            && (l.value == 0 || l.value > MAX_IMAGES)
        {
            return Err(self.err(
                l,
                format!(
                    "training limit {}: expected 1..={MAX_IMAGES} images",
                    l.value
                ),
            ));
        }
        let epochs = match &t.epochs {
            Some(e) if e.value == 0 || e.value > MAX_TRAINING_EPOCHS => {
                return Err(self.err(
                    e,
                    format!("epochs {}: expected 1..={MAX_TRAINING_EPOCHS}", e.value),
                ));
            }
            Some(e) => e.value,
            None => 1,
        };
        let sparsity = match (&t.sparsity, technique.prunes()) {
            (Some(s), true) if !(0.0..1.0).contains(&s.value) => {
                return Err(self.err(
                    s,
                    format!("sparsity {}: expected a fraction in [0, 1)", s.value),
                ));
            }
            (Some(s), true) => Some(s.value),
            (None, true) => {
                return Err(self.err(
                    t,
                    format!("{technique} prunes: expected `sparsity:` (e.g. 0.5) here"),
                ));
            }
            (Some(s), false) => {
                return Err(self.err(
                    s,
                    format!("{technique} does not prune: expected no `sparsity:` here"),
                ));
            }
            (None, false) => None,
        };
        let clusters = match (&t.clusters, technique.clusters()) {
            (Some(k), true) if k.value < 2 || !k.value.is_multiple_of(2) || k.value > 256 => {
                return Err(self.err(
                    k,
                    format!(
                        "clusters {}: expected an even number from 2 to 256 (centroids come in ± pairs)",
                        k.value
                    ),
                ));
            }
            (Some(k), true) => Some(k.value),
            (None, true) => {
                return Err(self.err(
                    t,
                    format!("{technique} clusters weights: expected `clusters:` (e.g. 16) here"),
                ));
            }
            (Some(k), false) => {
                return Err(self.err(
                    k,
                    format!("{technique} does not cluster: expected no `clusters:` here"),
                ));
            }
            (None, false) => None,
        };
        let init = match &t.init {
            Some(i) if !technique.clusters() => {
                return Err(self.err(
                    i,
                    format!("{technique} does not cluster: expected no `init:` here"),
                ));
            }
            Some(i) if !["linear", "kmeans++", "density"].contains(&i.value.as_str()) => {
                return Err(self.err(
                    i,
                    format!("init '{}': expected linear, kmeans++ or density", i.value),
                ));
            }
            other => other.as_ref().map(|i| i.value.clone()),
        };
        Ok(TrainingSettings {
            dataset,
            limit: t.limit.as_ref().map(|l| l.value),
            epochs,
            seed: t.seed,
            sparsity,
            clusters,
            init,
            line: t.line,
            column: t.column,
        })
    }

    fn accuracy(&self, a: &At<RawAccuracy>) -> Result<AccuracySettings> {
        let dataset = self.dataset(&a.dataset)?;
        if let Some(l) = &a.limit
            && (l.value == 0 || l.value > MAX_IMAGES)
        {
            return Err(self.err(
                l,
                format!(
                    "accuracy limit {}: expected 1..={MAX_IMAGES} items",
                    l.value
                ),
            ));
        }
        Ok(AccuracySettings {
            dataset,
            offset: a.offset,
            limit: a.limit.as_ref().map(|l| l.value),
            line: a.line,
            column: a.column,
        })
    }

    fn latency(&self, l: &At<RawLatency>) -> Result<LatencySettings> {
        use quantfarm_engine::measure::limits::{MAX_RUNS, MAX_THREADS, MAX_WARMUP};
        let d = LatencySettings::DEFAULT;
        let pick =
            |v: &Option<At<usize>>, what: &str, min: usize, max: usize, default: usize| match v {
                Some(x) if x.value < min || x.value > max => {
                    Err(self.err(x, format!("{what} {}: expected {min}..={max}", x.value)))
                }
                Some(x) => Ok(x.value),
                None => Ok(default),
            };
        Ok(LatencySettings {
            warmup: pick(&l.warmup, "warmup", 0, MAX_WARMUP, d.warmup)?,
            runs: pick(&l.runs, "runs", 1, MAX_RUNS, d.runs)?,
            threads: pick(&l.threads, "threads", 1, MAX_THREADS, d.threads)?,
        })
    }

    fn gate(
        &self,
        g: &At<RawGate>,
        models: &[ModelDecl],
        techniques: &[TechniqueDecl],
        devices: &[At<String>],
    ) -> Result<Gate> {
        let r = &g.value;
        self.name_ok("gate name", &r.name)?;
        let labels = || {
            techniques
                .iter()
                .map(|t| t.label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let check_label = |l: &At<String>| -> Result<()> {
            if techniques.iter().any(|t| t.label == l.value) {
                Ok(())
            } else {
                Err(self.err(
                    l,
                    format!(
                        "unknown technique label '{}': expected one of {}",
                        l.value,
                        labels()
                    ),
                ))
            }
        };
        let check_device = |d: &At<String>| -> Result<()> {
            if devices.iter().any(|x| x.value == d.value) {
                Ok(())
            } else {
                Err(self.err(
                    d,
                    format!(
                        "device '{}' is not in this scenario's devices: expected one of {}",
                        d.value,
                        list(devices.iter().map(|d| d.value.as_str()))
                    ),
                ))
            }
        };
        if let Some(m) = &r.model
            && !models.iter().any(|x| x.name.value == m.value)
        {
            return Err(self.err(
                m,
                format!(
                    "unknown model '{}': expected one of {}",
                    m.value,
                    list(models.iter().map(|m| m.name.value.as_str()))
                ),
            ));
        }
        if let Some(t) = &r.technique {
            check_label(t)?;
        }
        if let Some(d) = &r.device {
            check_device(d)?;
        }
        let baseline = match &r.baseline {
            Some(b) if b.value == "previous" => Baseline::Previous,
            Some(b) => {
                check_label(b)?;
                Baseline::Technique(b.value.clone())
            }
            None => Baseline::Technique("float32".to_string()),
        };
        let n_kinds = r.max_top1_drop.is_some() as u8
            + r.max_latency_regression.is_some() as u8
            + r.max_size_ratio.is_some() as u8
            + r.full_mapping.is_some() as u8;
        if n_kinds != 1 {
            return Err(self.err(
                g,
                format!(
                    "gate '{}': expected exactly one of `max_top1_drop:`, `max_latency_regression:`, `max_size_ratio:`, `full_mapping:` (found {n_kinds})",
                    r.name.value
                ),
            ));
        }
        let finite = |v: &At<f64>, lo: f64| -> Result<f64> {
            if v.value.is_finite() && v.value >= lo {
                Ok(v.value)
            } else {
                Err(self.err(v, format!("{}: expected a finite number ≥ {lo}", v.value)))
            }
        };
        // A relative gate needs its baseline measured, unless it compares with the past.
        let baseline_measured = |b: &Baseline| -> Result<()> {
            if let Baseline::Technique(l) = b
                && !techniques.iter().any(|t| &t.label == l)
            {
                return Err(self.err(
                    g,
                    format!(
                        "gate '{}' compares with technique '{l}', which this scenario does not run: expected `baseline:` naming one of {}, or `previous`",
                        r.name.value,
                        labels()
                    ),
                ));
            }
            Ok(())
        };
        let kind = if let Some(v) = &r.max_top1_drop {
            baseline_measured(&baseline)?;
            GateKind::MaxTop1Drop {
                max: finite(v, 0.0)?,
                baseline,
            }
        } else if let Some(v) = &r.max_latency_regression {
            baseline_measured(&baseline)?;
            GateKind::MaxLatencyRegression {
                max: finite(v, -1.0)?,
                baseline,
            }
        } else if let Some(v) = &r.max_size_ratio {
            baseline_measured(&baseline)?;
            GateKind::MaxSizeRatio {
                max: finite(v, 0.0)?,
                baseline,
            }
        } else if let Some(d) = &r.full_mapping {
            check_device(d)?;
            if let Some(b) = &r.baseline {
                return Err(self.err(
                    b,
                    "`baseline:` applies to relative gates only, not to `full_mapping:`",
                ));
            }
            GateKind::FullMapping {
                device: d.value.clone(),
            }
        } else {
            unreachable!("exactly one kind was checked above")
        };
        Ok(Gate {
            name: r.name.value.clone(),
            kind,
            model: r.model.as_ref().map(|m| m.value.clone()),
            technique: r.technique.as_ref().map(|t| t.value.clone()),
            device: r.device.as_ref().map(|d| d.value.clone()),
            line: g.line,
            column: g.column,
        })
    }
}

//! Optimization techniques (the engine's `quantfarm quantize --mode` values) and
//! calibration methods.

use quantfarm_devices::{DeviceProfile, Numerics};
use serde::{Deserialize, Serialize};

/// What an optimize job does to a model.
///
/// `Float32` is the float baseline: the model itself when it is float, its dequantized
/// form for a `dequantize:` model. `Original` benchmarks the model file byte for byte
/// (e.g. a hosted QAT model), with no transform. `Qat` fine-tunes the float baseline
/// with fake quantization on labelled images (CIFAR-10 models of `quantfarm train`) and
/// exports a full-integer int8 model. `Prune` and `Cluster` fine-tune the float
/// baseline while pruning it by magnitude or clustering its weights, then quantize it
/// to int8 (PTQ, calibrated); `Pqat` and `Cqat` prune or cluster it first and then run
/// QAT that keeps the zeros or the clusters. The others are post-training
/// quantizations of the float baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Technique {
    Float32,
    Float16,
    Dynamic,
    Int8,
    Int16x8,
    Uint8,
    Original,
    Qat,
    Prune,
    Cluster,
    Pqat,
    Cqat,
}

impl Technique {
    pub const ALL: [Technique; 12] = [
        Technique::Float32,
        Technique::Float16,
        Technique::Dynamic,
        Technique::Int8,
        Technique::Int16x8,
        Technique::Uint8,
        Technique::Original,
        Technique::Qat,
        Technique::Prune,
        Technique::Cluster,
        Technique::Pqat,
        Technique::Cqat,
    ];

    /// The YAML spelling, also the engine's `--mode` value.
    pub fn name(self) -> &'static str {
        match self {
            Technique::Float32 => "float32",
            Technique::Float16 => "float16",
            Technique::Dynamic => "dynamic",
            Technique::Int8 => "int8",
            Technique::Int16x8 => "int16x8",
            Technique::Uint8 => "uint8",
            Technique::Original => "original",
            Technique::Qat => "qat",
            Technique::Prune => "prune",
            Technique::Cluster => "cluster",
            Technique::Pqat => "pqat",
            Technique::Cqat => "cqat",
        }
    }

    pub fn parse(s: &str) -> Option<Technique> {
        Technique::ALL.into_iter().find(|t| t.name() == s)
    }

    /// Full-integer schemes need a representative (calibration) sample; so do pruning
    /// and clustering, whose float result is quantized to int8 by PTQ.
    pub fn needs_calibration(self) -> bool {
        matches!(
            self,
            Technique::Int8
                | Technique::Int16x8
                | Technique::Uint8
                | Technique::Prune
                | Technique::Cluster
        )
    }

    /// Training techniques fine-tune on a labelled training set.
    pub fn needs_training(self) -> bool {
        matches!(
            self,
            Technique::Qat
                | Technique::Prune
                | Technique::Cluster
                | Technique::Pqat
                | Technique::Cqat
        )
    }

    /// Techniques that prune to a `sparsity:` (training setting).
    pub fn prunes(self) -> bool {
        matches!(self, Technique::Prune | Technique::Pqat)
    }

    /// Techniques that cluster into `clusters:` (training setting).
    pub fn clusters(self) -> bool {
        matches!(self, Technique::Cluster | Technique::Cqat)
    }

    /// The numerics of the produced model, as device profiles list them in `accepts`.
    /// `None` for `Original`: only the file itself knows.
    pub fn numerics(self) -> Option<Numerics> {
        match self {
            Technique::Float32 => Some(Numerics::Float32),
            Technique::Float16 => Some(Numerics::Float16),
            Technique::Dynamic => Some(Numerics::Dynamic),
            Technique::Int8
            | Technique::Qat
            | Technique::Prune
            | Technique::Cluster
            | Technique::Pqat
            | Technique::Cqat => Some(Numerics::Int8),
            Technique::Int16x8 => Some(Numerics::Int16x8),
            Technique::Uint8 => Some(Numerics::Uint8),
            Technique::Original => None,
        }
    }
}

impl std::fmt::Display for Technique {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Does the device run models of this technique's numerics itself? `original`
/// (numerics only known from the file) is never excluded here.
pub fn accepts(p: &DeviceProfile, t: Technique) -> bool {
    t.numerics().is_none_or(|n| p.accepts(n))
}

/// How activation ranges are taken from the calibration sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CalibrationMethod {
    /// Running min/max over the sample (what the TFLite converter does).
    MinMax,
    /// Clip each activation range to this percentile of |x| (0 < p ≤ 100).
    Percentile(f64),
}

impl CalibrationMethod {
    pub fn name(&self) -> &'static str {
        match self {
            CalibrationMethod::MinMax => "minmax",
            CalibrationMethod::Percentile(_) => "percentile",
        }
    }
}

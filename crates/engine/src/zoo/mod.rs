//! Architecture-exact builders of the CNNs in Table 1 of the TFLite optimization
//! guide: the TF-slim ImageNet classifiers MobileNet v1, MobileNet v2, Inception v3
//! and ResNet v2 101 (1001 classes, slot 0 = background), plus ResNet v2 50 and 152
//! (the Coral benchmark rows).
//!
//! Each graph is what the TFLite converter produces from the frozen slim graph:
//! NHWC float32, batch norm folded into conv weights + bias, activations fused into
//! the conv options, conv filters OHWI, depthwise filters `[1, kh, kw, C]`. Weights are
//! random but deterministic (from [`ZooConfig::seed`]) and scaled so activations stay
//! finite and non-trivial through the whole depth: the models are meant for latency,
//! size and quantization-mechanics experiments, not for classifying.

mod builder;
mod inception;
mod mobilenet;
mod resnet;

use crate::error::{EngineError, Result};
use crate::ir::Model;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    MobilenetV1,
    MobilenetV2,
    InceptionV3,
    ResnetV2_50,
    ResnetV2_101,
    ResnetV2_152,
}

impl Arch {
    pub const ALL: [Arch; 6] = [
        Arch::MobilenetV1,
        Arch::MobilenetV2,
        Arch::InceptionV3,
        Arch::ResnetV2_50,
        Arch::ResnetV2_101,
        Arch::ResnetV2_152,
    ];

    /// Parse `mobilenet_v1`, `mobilenet_v2`, `inception_v3`, `resnet_v2_50`,
    /// `resnet_v2_101` or `resnet_v2_152`.
    pub fn parse(s: &str) -> Result<Arch> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                EngineError::unsupported(format!(
                    "unknown architecture '{s}' (known: mobilenet_v1, mobilenet_v2, \
                     inception_v3, resnet_v2_50, resnet_v2_101, resnet_v2_152)"
                ))
            })
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::MobilenetV1 => "mobilenet_v1",
            Arch::MobilenetV2 => "mobilenet_v2",
            Arch::InceptionV3 => "inception_v3",
            Arch::ResnetV2_50 => "resnet_v2_50",
            Arch::ResnetV2_101 => "resnet_v2_101",
            Arch::ResnetV2_152 => "resnet_v2_152",
        }
    }

    /// The input side the published checkpoint was trained at.
    pub fn default_resolution(self) -> usize {
        match self {
            Arch::InceptionV3 => 299,
            _ => 224,
        }
    }
}

/// Build options. `resolution == 0` means the architecture's default resolution, so
/// `ZooConfig::default()` is the published configuration of every architecture;
/// [`ZooConfig::new`] fills the resolution in explicitly.
#[derive(Debug, Clone, PartialEq)]
pub struct ZooConfig {
    /// Width (depth) multiplier; only the MobileNets accept values other than 1.0.
    pub width: f32,
    /// Input height = width in pixels.
    pub resolution: usize,
    /// Output classes (1001 for the slim ImageNet checkpoints: slot 0 = background).
    pub num_classes: usize,
    /// Seed of the deterministic weight generator.
    pub seed: u64,
}

impl Default for ZooConfig {
    fn default() -> Self {
        ZooConfig {
            width: 1.0,
            resolution: 0,
            num_classes: 1001,
            seed: 0,
        }
    }
}

impl ZooConfig {
    /// The published configuration of `arch` (width 1.0, its default resolution).
    pub fn new(arch: Arch) -> Self {
        ZooConfig {
            resolution: arch.default_resolution(),
            ..Default::default()
        }
    }
}

/// Largest accepted input side and width multiplier: beyond these a float32 model
/// (or its activations) would need gigabytes, which is never what a caller wants.
const MAX_RESOLUTION: usize = 1024;
const MAX_WIDTH: f32 = 4.0;
const MAX_CLASSES: usize = 100_000;

/// Build `arch` as an IR model. Errors (`Unsupported`) for a width or resolution the
/// architecture cannot take (e.g. Inception/ResNet with width ≠ 1.0, an input so
/// small that a VALID window no longer fits).
pub fn build(arch: Arch, cfg: &ZooConfig) -> Result<Model> {
    let resolution = if cfg.resolution == 0 {
        arch.default_resolution()
    } else {
        cfg.resolution
    };
    if !(cfg.width.is_finite() && cfg.width > 0.0 && cfg.width <= MAX_WIDTH) {
        return Err(EngineError::unsupported(format!(
            "{}: width multiplier {} is outside (0, {MAX_WIDTH}]",
            arch.name(),
            cfg.width
        )));
    }
    if !matches!(arch, Arch::MobilenetV1 | Arch::MobilenetV2) && cfg.width != 1.0 {
        return Err(EngineError::unsupported(format!(
            "{}: only width 1.0 exists for this architecture (got {})",
            arch.name(),
            cfg.width
        )));
    }
    // Every architecture downsamples by 32; below that the graph degenerates
    // (Inception's VALID stem has a larger minimum, checked while building).
    if !(32..=MAX_RESOLUTION).contains(&resolution) {
        return Err(EngineError::unsupported(format!(
            "{}: resolution {resolution} is outside 32..={MAX_RESOLUTION}",
            arch.name()
        )));
    }
    if !(1..=MAX_CLASSES).contains(&cfg.num_classes) {
        return Err(EngineError::unsupported(format!(
            "{}: {} classes is outside 1..={MAX_CLASSES}",
            arch.name(),
            cfg.num_classes
        )));
    }
    let p = Params {
        width: cfg.width,
        resolution,
        num_classes: cfg.num_classes,
        seed: cfg.seed,
    };
    match arch {
        Arch::MobilenetV1 => mobilenet::v1(&p),
        Arch::MobilenetV2 => mobilenet::v2(&p),
        Arch::InceptionV3 => inception::v3(&p),
        Arch::ResnetV2_50 | Arch::ResnetV2_101 | Arch::ResnetV2_152 => resnet::v2(&p, arch),
    }
}

/// Validated build parameters handed to the architecture modules.
pub(crate) struct Params {
    pub width: f32,
    pub resolution: usize,
    pub num_classes: usize,
    pub seed: u64,
}

impl Params {
    fn description(&self, arch: Arch) -> String {
        format!(
            "quantfarm zoo: TF-slim {} (width {}, {}x{}, {} classes), random weights seed {}",
            arch.name(),
            self.width,
            self.resolution,
            self.resolution,
            self.num_classes,
            self.seed
        )
    }
}

/// Second moment of the expected input: pixels mapped to [-1, 1] (what every slim
/// ImageNet checkpoint here was trained on), roughly uniform.
const INPUT_VAR: f32 = 1.0 / 3.0;
/// Std of the logits: large enough that the softmax is not flat.
const LOGITS_GAIN: f32 = 2.5;

//! Device profiles (`agents/profiles/<name>.yaml`): what a device is, which numerics
//! and ops it takes, how it partitions a model, and the numbers of its latency model,
//! each with the source it comes from (`../shared/docs/accelerators.md` tags).
//!
//! Every problem is reported as `file:line:column: what was expected`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ProfileError;
use crate::numerics::Numerics;
use crate::ops::is_known_op_name;

type Result<T> = std::result::Result<T, ProfileError>;

/// Largest profile file read; profiles are a few screens of YAML.
const MAX_PROFILE_BYTES: u64 = 256 * 1024;
/// Largest number of profiles in one directory.
const MAX_PROFILES: usize = 1024;

/// Source keys of `accelerators.md` (§ "Source key"), plus `TF-OPT` tables and the
/// project's own measurements.
pub const SOURCE_KEYS: [&str; 24] = [
    "TF-OPT",
    "TF-PTQ",
    "TF-BENCH",
    "CORAL-MODELS",
    "CORAL-COMP",
    "CORAL-BENCH",
    "CORAL-MULTI",
    "CORAL-CHG",
    "CORAL-REF",
    "CORAL-ISS",
    "HEX-README",
    "HEX-UTILS",
    "HEX-DEL",
    "HEX-DOC",
    "HEX-BLOG",
    "ANANDTECH",
    "GPU-DOC",
    "GPU-H",
    "GPU-COMPAT",
    "GPU-BLOG",
    "XNN-README",
    "XNN-LIB",
    "XNN-BLOG",
    "TFL-FC",
];

/// A value with the 1-based line and column of the YAML node it came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct At<T> {
    pub value: T,
    pub line: u32,
    pub column: u32,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for At<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<T>::deserialize(d)?;
        Ok(At {
            value: s.value,
            line: u32::try_from(s.referenced.line()).unwrap_or(u32::MAX),
            column: u32::try_from(s.referenced.column()).unwrap_or(u32::MAX),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// CPU kernels (built-in + XNNPACK-like paths).
    Cpu,
    /// Mobile GPU delegate (float compute, int8 accepted through a float view).
    Gpu,
    /// Coral Edge TPU (fully 8-bit models only).
    Edgetpu,
    /// Qualcomm Hexagon DSP delegate (8-bit only).
    Dsp,
}

impl DeviceKind {
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Gpu => "gpu",
            DeviceKind::Edgetpu => "edgetpu",
            DeviceKind::Dsp => "dsp",
        }
    }
}

/// How trustworthy a number is (`accelerators.md`): published, derived from published
/// numbers (arithmetic in `note`), or assumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tag {
    P,
    D,
    A,
}

/// A published (or derived / assumed) fact about the device, cited.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedFact {
    /// What was measured, e.g. "MobileNet v1 224 quant, time per inference".
    pub fact: String,
    pub value: f64,
    pub unit: String,
    pub tag: Tag,
    /// Source key from accelerators.md (e.g. CORAL-BENCH, TF-OPT).
    pub source: String,
}

/// What a unit measures; each profile field takes one dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dim {
    /// Multiply-accumulates per second.
    MacRate,
    /// Bytes per second.
    Bandwidth,
    /// Bytes.
    Bytes,
    /// Seconds.
    Time,
    /// A fraction in (0, 1].
    Fraction,
    /// A plain count (partitions, elements, a stride, a version).
    Count,
    /// A ratio (an upscale factor).
    Ratio,
}

impl Dim {
    /// Units accepted and their factor to the SI base (MAC/s, B/s, B, s, 1).
    fn units(self) -> &'static [(&'static str, f64)] {
        match self {
            // One MAC = two ops: TOPS / GFLOPS count both the multiply and the add.
            Dim::MacRate => &[
                ("MAC/s", 1.0),
                ("GMAC/s", 1e9),
                ("TMAC/s", 1e12),
                ("GOPS", 0.5e9),
                ("TOPS", 0.5e12),
                ("GFLOPS", 0.5e9),
                ("TFLOPS", 0.5e12),
            ],
            Dim::Bandwidth => &[
                ("B/s", 1.0),
                ("MB/s", 1e6),
                ("GB/s", 1e9),
                ("MiB/s", 1048576.0),
                ("Gb/s", 1.25e8),
            ],
            Dim::Bytes => &[
                ("B", 1.0),
                ("KB", 1e3),
                ("KiB", 1024.0),
                ("MB", 1e6),
                ("MiB", 1048576.0),
            ],
            Dim::Time => &[("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3), ("s", 1.0)],
            Dim::Fraction => &[("fraction", 1.0)],
            Dim::Count => &[("count", 1.0)],
            Dim::Ratio => &[("x", 1.0)],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuantity {
    value: At<f64>,
    unit: At<String>,
    tag: At<Tag>,
    source: At<String>,
    #[serde(default)]
    note: Option<String>,
}

/// A cited number: its value in SI units (MAC/s, B/s, B, s, plain), the unit and value
/// as written, and where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quantity {
    /// In base units (see the field's documentation).
    pub si: f64,
    pub value: f64,
    pub unit: String,
    pub tag: Tag,
    pub source: String,
    /// The arithmetic of a derived number, the fit of a calibrated one, …
    pub note: Option<String>,
    /// Where it was written (`file:line`), for reports.
    pub at: String,
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    /// Line and column of mapping key `key` at or after line `from` (serde gives no
    /// position for map keys).
    fn key_position(&self, key: &str, from: u32) -> (u32, u32) {
        for (i, l) in self
            .text
            .lines()
            .enumerate()
            .skip(from.saturating_sub(1) as usize)
        {
            let t = l.trim_start();
            if t.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with(':'))
            {
                return (i as u32 + 1, (l.len() - t.len()) as u32 + 1);
            }
        }
        (from, 1)
    }

    fn err<T>(&self, line: u32, column: u32, m: impl Into<String>) -> Result<T> {
        Err(ProfileError::at(self.file, line, column, m))
    }

    /// Check a quantity: finite, non-negative (positive unless `zero_ok`), a unit of
    /// `dim`, a known source; fractions at most 1.
    fn quantity(
        &self,
        what: &str,
        q: &At<RawQuantity>,
        dim: Dim,
        zero_ok: bool,
    ) -> Result<Quantity> {
        let r = &q.value;
        let v = r.value.value;
        if !v.is_finite() || v < 0.0 || (v == 0.0 && !zero_ok) {
            return self.err(
                r.value.line,
                r.value.column,
                format!(
                    "{what}: {v} is not allowed; expected a {} number",
                    if zero_ok {
                        "finite, non-negative"
                    } else {
                        "finite, positive"
                    }
                ),
            );
        }
        if dim == Dim::Fraction && v > 1.0 {
            return self.err(
                r.value.line,
                r.value.column,
                format!("{what}: {v} is a fraction above 1; expected a value in (0, 1]"),
            );
        }
        let Some(&(_, factor)) = dim.units().iter().find(|(u, _)| *u == r.unit.value) else {
            let list: Vec<&str> = dim.units().iter().map(|(u, _)| *u).collect();
            return self.err(
                r.unit.line,
                r.unit.column,
                format!(
                    "{what}: unit '{}': expected one of {}",
                    r.unit.value,
                    list.join(", ")
                ),
            );
        };
        if !SOURCE_KEYS.contains(&r.source.value.as_str()) {
            return self.err(
                r.source.line,
                r.source.column,
                format!(
                    "{what}: source '{}': expected a source key of accelerators.md ({})",
                    r.source.value,
                    SOURCE_KEYS.join(", ")
                ),
            );
        }
        if r.tag.value == Tag::D && r.note.as_deref().is_none_or(str::is_empty) {
            return self.err(
                r.tag.line,
                r.tag.column,
                format!("{what}: a derived (D) number needs a `note` with its arithmetic"),
            );
        }
        Ok(Quantity {
            si: v * factor,
            value: v,
            unit: r.unit.value.clone(),
            tag: r.tag.value,
            source: r.source.value.clone(),
            note: r.note.clone(),
            at: format!("{}:{}", self.file, q.line),
        })
    }

    fn opt(
        &self,
        what: &str,
        q: &Option<At<RawQuantity>>,
        dim: Dim,
        zero_ok: bool,
    ) -> Result<Option<Quantity>> {
        q.as_ref()
            .map(|q| self.quantity(what, q, dim, zero_ok))
            .transpose()
    }
}

/// Throughput of the device for one compute type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Throughput {
    /// Peak multiply-accumulates per second (`si` in MAC/s).
    pub peak: Quantity,
    /// Fraction of the peak dense convolutions and matrix products reach.
    pub utilisation: Quantity,
    /// Fraction of the peak depthwise convolutions reach (default: `utilisation`).
    pub depthwise_utilisation: Option<Quantity>,
}

impl Throughput {
    /// Effective MAC/s of dense ops.
    pub fn dense(&self) -> f64 {
        self.peak.si * self.utilisation.si
    }
    /// Effective MAC/s of depthwise ops.
    pub fn depthwise(&self) -> f64 {
        self.peak.si
            * self
                .depthwise_utilisation
                .as_ref()
                .unwrap_or(&self.utilisation)
                .si
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThroughput {
    peak: At<RawQuantity>,
    utilisation: At<RawQuantity>,
    #[serde(default)]
    depthwise_utilisation: Option<At<RawQuantity>>,
}

/// The compute types a throughput can be given for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeType {
    Float32,
    Float16,
    Int8,
    Int16x8,
}

impl ComputeType {
    pub fn name(self) -> &'static str {
        match self {
            ComputeType::Float32 => "float32",
            ComputeType::Float16 => "float16",
            ComputeType::Int8 => "int8",
            ComputeType::Int16x8 => "int16x8",
        }
    }
}

/// Fixed costs, each in seconds (`si`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overheads {
    /// Every op executed on the device (kernel launch, dispatch).
    pub per_op: Quantity,
    /// Every hand-over between the device and the CPU (one per partition boundary).
    pub per_partition: Quantity,
    /// Every inference (invoke, synchronisation, driver).
    pub per_inference: Quantity,
    /// CPU only: time per activation element a dynamic-range ("hybrid") op quantizes
    /// on the fly (its float input) and dequantizes (its int32 sums), on top of the
    /// int8 arithmetic.
    pub per_hybrid_element: Option<Quantity>,
    /// Time per element read or written by ops without multiply-accumulates
    /// (element-wise, pooling, concatenation, padding …); without it those ops are
    /// priced by `memory_bandwidth` like every other op.
    pub per_element: Option<Quantity>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverheads {
    per_op: At<RawQuantity>,
    per_partition: At<RawQuantity>,
    per_inference: At<RawQuantity>,
    #[serde(default)]
    per_hybrid_element: Option<At<RawQuantity>>,
    #[serde(default)]
    per_element: Option<At<RawQuantity>>,
}

/// How supported ops are grouped into device partitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Partitioning {
    /// Everything runs here (a CPU).
    All,
    /// Edge TPU compiler: one segment, cut at the first unmapped op after it began.
    SingleSegment,
    /// TFLite delegates: maximal runs of supported ops, the largest `max_partitions`
    /// with at least `min_nodes_per_partition` nodes go to the device.
    Delegate {
        max_partitions: Box<Quantity>,
        min_nodes_per_partition: Box<Quantity>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
enum RawRule {
    All,
    SingleSegment,
    Delegate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartitioning {
    rule: At<RawRule>,
    #[serde(default)]
    max_partitions: Option<At<RawQuantity>>,
    #[serde(default)]
    min_nodes_per_partition: Option<At<RawQuantity>>,
}

/// One constraint on an op, implemented in [`crate::placement`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// No fused activation.
    NoFusedActivation,
    /// Fused activation NONE, RELU, RELU6 or RELU_N1_TO_1.
    ActivationReluOrNone,
    /// No SIGN_BIT fused activation (GPU).
    NoSignBitActivation,
    /// Same dilation in x and y.
    EqualDilation,
    /// Dilation 1.
    DilationOne,
    /// Dilation only with stride 1 (depthwise, Hexagon).
    DilationOnlyWithStrideOne,
    /// Strides at most this (h and w).
    MaxStride(Quantity),
    /// Depth multiplier 1, or > 1 only with one input channel.
    DepthMultiplierOneOrSingleChannel,
    /// Filter height at least this.
    MinFilterHeight(Quantity),
    /// A constant input needs exactly two inputs and all-zero contents (concat as padding).
    ConstantInputZeroPair,
    /// Default (not shuffled) weight format.
    DefaultWeightsFormat,
    /// Output has only its innermost dimension above 1.
    Output1d,
    /// Input has only its innermost dimension above 1.
    Input1d,
    /// No reduction, padding or packing along the batch axis.
    NotOverBatch,
    /// A reduction over the channel axis needs a channel count that is a multiple of this.
    ChannelReductionMultipleOf(Quantity),
    /// At most this many elements in the input.
    MaxElements(Quantity),
    /// Squeeze only leading 1s.
    LeadingSqueezeOnly,
    /// Strided slice: all strides 1, no ellipsis or new-axis mask.
    UnitStridesNoMasks,
    /// Strided slice: no ellipsis or new-axis mask.
    NoSliceMasks,
    /// Strided slice: no shrink-axis mask.
    NoShrinkMask,
    /// Resize: spatial upscale (output / input) at most this.
    MaxUpscale(Quantity),
    /// Resize: output height and width at most this.
    MaxOutputSize(Quantity),
    /// PReLU: alpha has only its innermost dimension above 1.
    AlphaInnermost,
    /// Every input after the first is a compile-time constant.
    ConstantOperands,
    /// Pad value 0 only (PADV2's constant).
    PadValueZero,
    /// FULLY_CONNECTED without keep_num_dims.
    NoKeepNumDims,
    /// Exactly two inputs.
    TwoInputs,
    /// At most this many inputs.
    MaxInputs(Quantity),
    /// Softmax beta = 1.
    BetaOne,
    /// 4-D input, filter and output.
    FourD,
    /// Input of rank 3 or 4.
    Rank3Or4Input,
    /// Op version at most this.
    MaxVersion(Quantity),
    /// Op version exactly this.
    Version(Quantity),
    /// 8-bit input and output (requantize), no float→int conversion.
    EightBitIo,
}

impl Limit {
    /// Flag names (no number) and their limits.
    fn flag(name: &str) -> Option<Limit> {
        Some(match name {
            "no_fused_activation" => Limit::NoFusedActivation,
            "activation_relu_or_none" => Limit::ActivationReluOrNone,
            "no_sign_bit_activation" => Limit::NoSignBitActivation,
            "equal_dilation" => Limit::EqualDilation,
            "dilation_one" => Limit::DilationOne,
            "dilation_only_with_stride_one" => Limit::DilationOnlyWithStrideOne,
            "depth_multiplier_one_or_single_channel" => Limit::DepthMultiplierOneOrSingleChannel,
            "constant_input_zero_pair" => Limit::ConstantInputZeroPair,
            "default_weights_format" => Limit::DefaultWeightsFormat,
            "output_1d" => Limit::Output1d,
            "input_1d" => Limit::Input1d,
            "not_over_batch" => Limit::NotOverBatch,
            "leading_squeeze_only" => Limit::LeadingSqueezeOnly,
            "unit_strides_no_masks" => Limit::UnitStridesNoMasks,
            "no_slice_masks" => Limit::NoSliceMasks,
            "no_shrink_mask" => Limit::NoShrinkMask,
            "alpha_innermost" => Limit::AlphaInnermost,
            "constant_operands" => Limit::ConstantOperands,
            "pad_value_zero" => Limit::PadValueZero,
            "no_keep_num_dims" => Limit::NoKeepNumDims,
            "two_inputs" => Limit::TwoInputs,
            "beta_one" => Limit::BetaOne,
            "four_d" => Limit::FourD,
            "rank_3_or_4_input" => Limit::Rank3Or4Input,
            "eight_bit_io" => Limit::EightBitIo,
            _ => return None,
        })
    }

    /// Limits that take a number, with its dimension.
    fn numeric(name: &str) -> Option<(Dim, MakeLimit)> {
        Some(match name {
            "max_stride" => (Dim::Count, Limit::MaxStride as MakeLimit),
            "min_filter_height" => (Dim::Count, Limit::MinFilterHeight),
            "channel_reduction_multiple_of" => (Dim::Count, Limit::ChannelReductionMultipleOf),
            "max_elements" => (Dim::Count, Limit::MaxElements),
            "max_upscale" => (Dim::Ratio, Limit::MaxUpscale),
            "max_output_size" => (Dim::Count, Limit::MaxOutputSize),
            "max_inputs" => (Dim::Count, Limit::MaxInputs),
            "max_version" => (Dim::Count, Limit::MaxVersion),
            "version" => (Dim::Count, Limit::Version),
            _ => return None,
        })
    }

    const NAMES: &'static str = "no_fused_activation, activation_relu_or_none, \
        no_sign_bit_activation, equal_dilation, dilation_one, dilation_only_with_stride_one, \
        depth_multiplier_one_or_single_channel, constant_input_zero_pair, \
        default_weights_format, output_1d, input_1d, not_over_batch, leading_squeeze_only, \
        unit_strides_no_masks, no_slice_masks, no_shrink_mask, alpha_innermost, constant_operands, \
        pad_value_zero, no_keep_num_dims, two_inputs, beta_one, four_d, rank_3_or_4_input, \
        eight_bit_io; with a number: max_stride, min_filter_height, \
        channel_reduction_multiple_of, max_elements, max_upscale, max_output_size, \
        max_inputs, max_version, version";
}

/// Builds a numeric limit from its number.
type MakeLimit = fn(Quantity) -> Limit;

/// A limit as written: a flag name, or `{name: quantity}`.
enum RawLimit {
    Flag(String),
    Numeric(BTreeMap<String, At<RawQuantity>>),
}

/// Hand-written so that errors inside a numeric limit (a missing `source`) keep their
/// message and position (an untagged enum would replace them with "no variant").
impl<'de> Deserialize<'de> for RawLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawLimit;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a limit name or `name: {value, unit, tag, source}`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<RawLimit, E> {
                Ok(RawLimit::Flag(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> std::result::Result<RawLimit, A::Error> {
                let mut m = BTreeMap::new();
                while let Some(k) = a.next_key::<String>()? {
                    let v: At<RawQuantity> = a.next_value()?;
                    m.insert(k, v);
                }
                Ok(RawLimit::Numeric(m))
            }
        }
        d.deserialize_any(V)
    }
}

/// Which ops a device takes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum OpSupport {
    /// Every op (CPUs).
    All,
    /// Only these ops, each with its limits.
    Listed(BTreeMap<String, Vec<Limit>>),
}

/// Rules on every tensor an op on the device touches.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TensorRules {
    /// Largest tensor rank.
    pub max_rank: Option<Quantity>,
    /// Only this many innermost dimensions may exceed 1 (Edge TPU: 3).
    pub innermost_dims: Option<Quantity>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlacement {
    /// Where the op table and partitioning rule come from.
    source: At<String>,
    partitioning: At<RawPartitioning>,
    #[serde(default)]
    max_rank: Option<At<RawQuantity>>,
    #[serde(default)]
    innermost_dims: Option<At<RawQuantity>>,
    /// `all`, or op name → list of limits.
    ops: At<RawOps>,
}

enum RawOps {
    All(String),
    Listed(Vec<(String, Vec<At<RawLimit>>)>),
}

/// Hand-written for the same reason as [`RawLimit`]; keeps the ops in file order.
impl<'de> Deserialize<'de> for RawOps {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawOps;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`all` or a mapping of op names to lists of limits")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<RawOps, E> {
                Ok(RawOps::All(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> std::result::Result<RawOps, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = a.next_key::<String>()? {
                    let limits: Vec<At<RawLimit>> = a.next_value()?;
                    v.push((k, limits));
                }
                Ok(RawOps::Listed(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// The numerics a GPU computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Fp16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: At<String>,
    kind: DeviceKind,
    description: String,
    accepts: At<Vec<At<String>>>,
    #[serde(default)]
    cores: Option<At<usize>>,
    #[serde(default)]
    simulated: bool,
    #[serde(default)]
    fallback_cpu: Option<At<String>>,
    #[serde(default)]
    precision: Option<Precision>,
    #[serde(default)]
    placement: Option<At<RawPlacement>>,
    #[serde(default)]
    throughput: Option<At<BTreeMap<String, At<RawThroughput>>>>,
    #[serde(default)]
    memory_bandwidth: Option<At<RawQuantity>>,
    #[serde(default)]
    onchip_param_memory: Option<At<RawQuantity>>,
    #[serde(default)]
    param_link: Option<At<RawQuantity>>,
    #[serde(default)]
    host_link: Option<At<RawQuantity>>,
    #[serde(default)]
    overheads: Option<At<RawOverheads>>,
    #[serde(default)]
    published: Vec<PublishedFact>,
}

/// One device profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceProfile {
    pub name: String,
    pub kind: DeviceKind,
    pub description: String,
    /// Model numerics the device runs itself; anything else stays on the CPU.
    pub accepts: Vec<Numerics>,
    /// Cores available to a CPU benchmark; `None` = whatever the host has.
    pub cores: Option<usize>,
    /// True when the agent simulates the device (predicts) instead of timing it.
    pub simulated: bool,
    /// The CPU profile that prices ops left on the CPU (simulated devices).
    pub fallback_cpu: Option<String>,
    /// GPU: the arithmetic the delegate uses (fp16 when precision loss is allowed).
    pub precision: Option<Precision>,
    /// Op table and partitioning (simulated devices).
    pub placement: Option<PlacementRules>,
    pub throughput: BTreeMap<ComputeType, Throughput>,
    /// Bytes/s the device reads and writes activations at.
    pub memory_bandwidth: Option<Quantity>,
    /// Bytes of parameters the device keeps on chip.
    pub onchip_param_memory: Option<Quantity>,
    /// Bytes/s of parameters streamed from host memory on every inference when they
    /// do not fit on chip (default: `host_link`).
    pub param_link: Option<Quantity>,
    /// Bytes/s of the link carrying inputs, outputs and partition hand-overs.
    pub host_link: Option<Quantity>,
    pub overheads: Option<Overheads>,
    pub published: Vec<PublishedFact>,
    /// File the profile came from (for messages).
    pub file: String,
}

/// Op table and partitioning rule of a simulated device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacementRules {
    pub source: String,
    pub partitioning: Partitioning,
    pub tensors: TensorRules,
    pub ops: OpSupport,
}

impl DeviceProfile {
    /// Parse one profile. `file_name` names it in errors.
    pub fn parse(text: &str, file_name: &str) -> Result<DeviceProfile> {
        let mut opts = serde_saphyr::Options::default();
        opts.with_snippet = false;
        opts.strict_booleans = true;
        let raw: RawProfile = serde_saphyr::from_str_with_options(text, opts)
            .map_err(|e| ProfileError::from_yaml(file_name, &e))?;
        let cx = Ctx {
            file: file_name,
            text,
        };
        let n = &raw.name;
        if n.value.is_empty()
            || n.value.len() > 64
            || !n
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return cx.err(
                n.line,
                n.column,
                format!(
                    "profile name '{}': expected 1–64 characters from a-z A-Z 0-9 . _ -",
                    n.value
                ),
            );
        }
        if raw.accepts.value.is_empty() {
            return cx.err(
                raw.accepts.line,
                raw.accepts.column,
                "at least one accepted numeric expected",
            );
        }
        let mut accepts = Vec::new();
        for a in &raw.accepts.value {
            let Some(num) = Numerics::parse(&a.value) else {
                return cx.err(
                    a.line,
                    a.column,
                    format!(
                        "'{}' is not a numeric: expected float32, float16, dynamic, int8, int16x8 or uint8",
                        a.value
                    ),
                );
            };
            if !accepts.contains(&num) {
                accepts.push(num);
            }
        }
        if let Some(c) = &raw.cores
            && c.value == 0
        {
            return cx.err(c.line, c.column, "cores 0: expected at least 1");
        }
        for f in &raw.published {
            if !f.value.is_finite() || f.value < 0.0 {
                return cx.err(
                    n.line,
                    n.column,
                    format!(
                        "published '{}': {} is not a finite, non-negative number",
                        f.fact, f.value
                    ),
                );
            }
        }
        let mut throughput = BTreeMap::new();
        if let Some(t) = &raw.throughput {
            for (k, v) in &t.value {
                let (kl, kc) = cx.key_position(k, t.line);
                let ct = match k.as_str() {
                    "float32" => ComputeType::Float32,
                    "float16" => ComputeType::Float16,
                    "int8" => ComputeType::Int8,
                    "int16x8" => ComputeType::Int16x8,
                    other => {
                        return cx.err(
                            kl,
                            kc,
                            format!(
                                "throughput '{other}': expected float32, float16, int8 or int16x8"
                            ),
                        );
                    }
                };
                let what = format!("throughput.{}", ct.name());
                throughput.insert(
                    ct,
                    Throughput {
                        peak: cx.quantity(
                            &format!("{what}.peak"),
                            &v.value.peak,
                            Dim::MacRate,
                            false,
                        )?,
                        utilisation: cx.quantity(
                            &format!("{what}.utilisation"),
                            &v.value.utilisation,
                            Dim::Fraction,
                            false,
                        )?,
                        depthwise_utilisation: cx.opt(
                            &format!("{what}.depthwise_utilisation"),
                            &v.value.depthwise_utilisation,
                            Dim::Fraction,
                            false,
                        )?,
                    },
                );
            }
        }
        let overheads = match &raw.overheads {
            None => None,
            Some(o) => Some(Overheads {
                per_op: cx.quantity("overheads.per_op", &o.value.per_op, Dim::Time, true)?,
                per_partition: cx.quantity(
                    "overheads.per_partition",
                    &o.value.per_partition,
                    Dim::Time,
                    true,
                )?,
                per_inference: cx.quantity(
                    "overheads.per_inference",
                    &o.value.per_inference,
                    Dim::Time,
                    true,
                )?,
                per_hybrid_element: cx.opt(
                    "overheads.per_hybrid_element",
                    &o.value.per_hybrid_element,
                    Dim::Time,
                    true,
                )?,
                per_element: cx.opt(
                    "overheads.per_element",
                    &o.value.per_element,
                    Dim::Time,
                    true,
                )?,
            }),
        };
        let placement = raw
            .placement
            .as_ref()
            .map(|p| parse_placement(&cx, p))
            .transpose()?;
        let prof = DeviceProfile {
            name: raw.name.value.clone(),
            kind: raw.kind,
            description: raw.description.clone(),
            accepts,
            cores: raw.cores.as_ref().map(|c| c.value),
            simulated: raw.simulated,
            fallback_cpu: raw.fallback_cpu.as_ref().map(|f| f.value.clone()),
            precision: raw.precision,
            placement,
            throughput,
            memory_bandwidth: cx.opt(
                "memory_bandwidth",
                &raw.memory_bandwidth,
                Dim::Bandwidth,
                false,
            )?,
            onchip_param_memory: cx.opt(
                "onchip_param_memory",
                &raw.onchip_param_memory,
                Dim::Bytes,
                true,
            )?,
            param_link: cx.opt("param_link", &raw.param_link, Dim::Bandwidth, false)?,
            host_link: cx.opt("host_link", &raw.host_link, Dim::Bandwidth, false)?,
            overheads,
            published: raw.published.clone(),
            file: file_name.to_string(),
        };
        if prof.simulated {
            check_simulated(&cx, &raw, &prof)?;
        }
        Ok(prof)
    }

    /// Read and parse a profile file (size-limited, UTF-8; a non-YAML file is never
    /// echoed back).
    pub fn load(path: &Path) -> Result<DeviceProfile> {
        let fname = path.display().to_string();
        let meta = std::fs::metadata(path)
            .map_err(|e| ProfileError::file(&fname, format!("cannot read: {e}")))?;
        if !meta.is_file() {
            return Err(ProfileError::file(&fname, "not a file"));
        }
        if meta.len() > MAX_PROFILE_BYTES {
            return Err(ProfileError::file(
                &fname,
                format!("{} bytes: at most {MAX_PROFILE_BYTES} expected", meta.len()),
            ));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| ProfileError::file(&fname, format!("cannot read: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            ProfileError::file(&fname, "not a UTF-8 text file: expected a YAML profile")
        })?;
        DeviceProfile::parse(&text, &fname)
    }

    /// Does the device run a model of these numerics itself?
    pub fn accepts(&self, n: Numerics) -> bool {
        self.accepts.contains(&n)
    }

    /// The throughput for a compute type, if the profile gives one.
    pub fn throughput(&self, t: ComputeType) -> Option<&Throughput> {
        self.throughput.get(&t)
    }

    /// Every cited number of the profile with its dotted field name (for reports:
    /// "free parameters" are those tagged D or A).
    pub fn quantities(&self) -> Vec<(String, &Quantity)> {
        let mut v: Vec<(String, &Quantity)> = Vec::new();
        for (k, t) in &self.throughput {
            v.push((format!("throughput.{}.peak", k.name()), &t.peak));
            v.push((
                format!("throughput.{}.utilisation", k.name()),
                &t.utilisation,
            ));
            if let Some(d) = &t.depthwise_utilisation {
                v.push((format!("throughput.{}.depthwise_utilisation", k.name()), d));
            }
        }
        for (k, q) in [
            ("memory_bandwidth", &self.memory_bandwidth),
            ("onchip_param_memory", &self.onchip_param_memory),
            ("param_link", &self.param_link),
            ("host_link", &self.host_link),
        ] {
            if let Some(q) = q {
                v.push((k.to_string(), q));
            }
        }
        if let Some(o) = &self.overheads {
            v.push(("overheads.per_op".into(), &o.per_op));
            v.push(("overheads.per_partition".into(), &o.per_partition));
            v.push(("overheads.per_inference".into(), &o.per_inference));
            if let Some(h) = &o.per_hybrid_element {
                v.push(("overheads.per_hybrid_element".into(), h));
            }
            if let Some(e) = &o.per_element {
                v.push(("overheads.per_element".into(), e));
            }
        }
        v
    }
}

fn parse_placement(cx: &Ctx, p: &At<RawPlacement>) -> Result<PlacementRules> {
    let r = &p.value;
    if !SOURCE_KEYS.contains(&r.source.value.as_str()) {
        return cx.err(
            r.source.line,
            r.source.column,
            format!(
                "placement.source '{}': expected a source key of accelerators.md ({})",
                r.source.value,
                SOURCE_KEYS.join(", ")
            ),
        );
    }
    let part = &r.partitioning.value;
    let partitioning = match part.rule.value {
        RawRule::All => Partitioning::All,
        RawRule::SingleSegment => Partitioning::SingleSegment,
        RawRule::Delegate => {
            let (Some(maxp), Some(minn)) = (&part.max_partitions, &part.min_nodes_per_partition)
            else {
                return cx.err(
                    r.partitioning.line,
                    r.partitioning.column,
                    "the delegate rule needs max_partitions and min_nodes_per_partition",
                );
            };
            Partitioning::Delegate {
                max_partitions: Box::new(cx.quantity(
                    "partitioning.max_partitions",
                    maxp,
                    Dim::Count,
                    false,
                )?),
                min_nodes_per_partition: Box::new(cx.quantity(
                    "partitioning.min_nodes_per_partition",
                    minn,
                    Dim::Count,
                    false,
                )?),
            }
        }
    };
    let ops = match &r.ops.value {
        RawOps::All(s) if s == "all" => OpSupport::All,
        RawOps::All(s) => {
            return cx.err(
                r.ops.line,
                r.ops.column,
                format!("ops '{s}': expected `all` or a mapping of op names to limit lists"),
            );
        }
        RawOps::Listed(m) => {
            let mut out = BTreeMap::new();
            for (name, limits) in m {
                if !is_known_op_name(name) {
                    let (line, column) = cx.key_position(name, r.ops.line);
                    return cx.err(
                        line,
                        column,
                        format!(
                            "unknown op '{}': expected a TFLite builtin operator name (CONV_2D, RESIZE_BILINEAR, CUSTOM, ...)",
                            name
                        ),
                    );
                }
                let (op_line, _) = cx.key_position(name, r.ops.line);
                let mut ls = Vec::new();
                for l in limits {
                    ls.push(parse_limit(cx, name, op_line, l)?);
                }
                if out.insert(name.clone(), ls).is_some() {
                    return cx.err(op_line, 1, format!("op '{name}' is listed twice"));
                }
            }
            OpSupport::Listed(out)
        }
    };
    Ok(PlacementRules {
        source: r.source.value.clone(),
        partitioning,
        tensors: TensorRules {
            max_rank: cx.opt("placement.max_rank", &r.max_rank, Dim::Count, false)?,
            innermost_dims: cx.opt(
                "placement.innermost_dims",
                &r.innermost_dims,
                Dim::Count,
                false,
            )?,
        },
        ops,
    })
}

fn parse_limit(cx: &Ctx, op: &str, op_line: u32, l: &At<RawLimit>) -> Result<Limit> {
    // Entries of an untagged list lose their position: find the text instead.
    let pos = |word: &str| -> (u32, u32) {
        if l.line != 0 {
            return (l.line, l.column);
        }
        for (i, t) in cx
            .text
            .lines()
            .enumerate()
            .skip(op_line.saturating_sub(1) as usize)
        {
            if let Some(c) = t.find(word) {
                return (i as u32 + 1, c as u32 + 1);
            }
        }
        (op_line, 1)
    };
    match &l.value {
        RawLimit::Flag(f) => Limit::flag(f).map_or_else(
            || {
                let (line, column) = pos(f);
                cx.err(
                    line,
                    column,
                    format!(
                        "{op}: unknown limit '{f}': expected one of {}",
                        Limit::NAMES
                    ),
                )
            },
            Ok,
        ),
        RawLimit::Numeric(m) => {
            let mut it = m.iter();
            let (Some((k, q)), None) = (it.next(), it.next()) else {
                let (line, column) = pos(op);
                return cx.err(
                    line,
                    column,
                    format!(
                        "{op}: a numeric limit is one `name: {{value, unit, tag, source}}` pair"
                    ),
                );
            };
            let Some((dim, make)) = Limit::numeric(k) else {
                let (line, column) = pos(k);
                return cx.err(
                    line,
                    column,
                    format!(
                        "{op}: unknown limit '{k}': expected one of {}",
                        Limit::NAMES
                    ),
                );
            };
            Ok(make(cx.quantity(&format!("{op}.{k}"), q, dim, false)?))
        }
    }
}

/// A simulated profile must give what its kind's latency model reads.
fn check_simulated(cx: &Ctx, raw: &RawProfile, p: &DeviceProfile) -> Result<()> {
    let (l, c) = (raw.name.line, raw.name.column);
    let need = |ok: bool, what: &str| -> Result<()> {
        if ok {
            Ok(())
        } else {
            cx.err(
                l,
                c,
                format!(
                    "simulated {} profile '{}': missing `{what}`",
                    p.kind.name(),
                    p.name
                ),
            )
        }
    };
    need(p.placement.is_some(), "placement")?;
    need(p.overheads.is_some(), "overheads")?;
    need(!p.throughput.is_empty(), "throughput")?;
    need(p.memory_bandwidth.is_some(), "memory_bandwidth")?;
    match p.kind {
        DeviceKind::Cpu => {
            need(
                p.throughput.contains_key(&ComputeType::Float32),
                "throughput.float32",
            )?;
            need(
                p.throughput.contains_key(&ComputeType::Int8),
                "throughput.int8",
            )?;
            need(
                p.overheads
                    .as_ref()
                    .is_some_and(|o| o.per_hybrid_element.is_some()),
                "overheads.per_hybrid_element",
            )?;
        }
        DeviceKind::Edgetpu => {
            need(
                p.throughput.contains_key(&ComputeType::Int8),
                "throughput.int8",
            )?;
            need(p.onchip_param_memory.is_some(), "onchip_param_memory")?;
            need(p.host_link.is_some(), "host_link")?;
            need(p.fallback_cpu.is_some(), "fallback_cpu")?;
        }
        DeviceKind::Dsp => {
            need(
                p.throughput.contains_key(&ComputeType::Int8),
                "throughput.int8",
            )?;
            need(p.host_link.is_some(), "host_link")?;
            need(p.fallback_cpu.is_some(), "fallback_cpu")?;
        }
        DeviceKind::Gpu => {
            let t = if p.precision == Some(Precision::Fp16) {
                ComputeType::Float16
            } else {
                ComputeType::Float32
            };
            need(
                p.throughput.contains_key(&t),
                &format!("throughput.{}", t.name()),
            )?;
            need(p.host_link.is_some(), "host_link")?;
            need(p.fallback_cpu.is_some(), "fallback_cpu")?;
        }
    }
    if let Some(f) = &raw.fallback_cpu
        && f.value == p.name
    {
        return cx.err(
            f.line,
            f.column,
            "fallback_cpu names the profile itself: expected a CPU profile",
        );
    }
    Ok(())
}

/// All known device profiles, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileSet {
    profiles: BTreeMap<String, DeviceProfile>,
    /// The directory they were loaded from (resolves names given later).
    dir: Option<PathBuf>,
}

impl ProfileSet {
    /// Load every `*.yaml` / `*.yml` in `dir` (not recursive). Each file must be
    /// named after its profile (`edgetpu-usb.yaml` holds `name: edgetpu-usb`), and
    /// every `fallback_cpu` must name a CPU profile of the set.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<ProfileSet> {
        let dir = dir.as_ref();
        let dname = dir.display().to_string();
        let rd = std::fs::read_dir(dir).map_err(|e| {
            ProfileError::file(&dname, format!("cannot read profile directory: {e}"))
        })?;
        let mut paths = Vec::new();
        for entry in rd {
            let entry =
                entry.map_err(|e| ProfileError::file(&dname, format!("cannot list: {e}")))?;
            let p = entry.path();
            if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) && p.is_file()
            {
                paths.push(p);
            }
        }
        if paths.len() > MAX_PROFILES {
            return Err(ProfileError::file(
                &dname,
                format!("{} profiles: at most {MAX_PROFILES} expected", paths.len()),
            ));
        }
        paths.sort();
        let mut set = ProfileSet {
            dir: Some(dir.to_path_buf()),
            ..ProfileSet::default()
        };
        for p in paths {
            let prof = DeviceProfile::load(&p)?;
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            if stem != prof.name {
                return Err(ProfileError::file(
                    &prof.file,
                    format!(
                        "profile is named '{}': expected the file to be named {}.yaml",
                        prof.name, prof.name
                    ),
                ));
            }
            set.insert(prof)?;
        }
        for p in set.profiles.values() {
            set.check_fallback(p)?;
        }
        Ok(set)
    }

    /// A `fallback_cpu` must name a CPU profile of this set.
    fn check_fallback(&self, p: &DeviceProfile) -> Result<()> {
        let Some(f) = &p.fallback_cpu else {
            return Ok(());
        };
        match self.profiles.get(f) {
            Some(c) if c.kind == DeviceKind::Cpu && c.simulated => Ok(()),
            Some(_) => Err(ProfileError::file(
                &p.file,
                format!("fallback_cpu '{f}' is not a simulated CPU profile"),
            )),
            None => Err(ProfileError::file(
                &p.file,
                format!(
                    "fallback_cpu '{f}' is not a known profile (known: {})",
                    self.names().collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }

    /// Add a profile; a second profile of the same name is an error.
    pub fn insert(&mut self, p: DeviceProfile) -> Result<()> {
        if let Some(old) = self.profiles.get(&p.name) {
            return Err(ProfileError::file(
                &p.file,
                format!("profile '{}' is already defined in {}", p.name, old.file),
            ));
        }
        self.profiles.insert(p.name.clone(), p);
        Ok(())
    }

    /// A profile by name or by path: a path when `name_or_path` contains `/` or ends in
    /// `.yaml` / `.yml` (read from disk, its `fallback_cpu` checked against this set),
    /// else a name of this set.
    pub fn resolve(&self, name_or_path: &str) -> Result<DeviceProfile> {
        let is_path = name_or_path.contains('/')
            || name_or_path.contains(std::path::MAIN_SEPARATOR)
            || name_or_path.ends_with(".yaml")
            || name_or_path.ends_with(".yml");
        if is_path {
            let p = DeviceProfile::load(Path::new(name_or_path))?;
            self.check_fallback(&p)?;
            return Ok(p);
        }
        self.get(name_or_path).cloned().ok_or_else(|| {
            let dir = self
                .dir
                .as_ref()
                .map_or_else(|| "profiles".to_string(), |d| d.display().to_string());
            ProfileError::file(
                &dir,
                format!(
                    "unknown device '{name_or_path}': expected a profile name ({}) or a path to a .yaml profile",
                    self.names().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    pub fn get(&self, name: &str) -> Option<&DeviceProfile> {
        self.profiles.get(name)
    }

    /// Profile names in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &DeviceProfile> {
        self.profiles.values()
    }

    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }
}

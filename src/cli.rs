//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use quantfarm_engine::measure::LatencySettings;

#[derive(Parser, Debug)]
#[command(
    name = "quantfarm",
    version,
    about = "Measure what quantization, pruning and clustering do to edge models",
    long_about = "quantfarm reads and writes real .tflite models, runs them with its own \
                  engine, and measures size, latency and accuracy.\n\nShared data (datasets, \
                  models) is found through QUANTFARM_DATA (default: ../shared).\n\nExit codes: \
                  0 success, 2 bad input or failed command, 1 a failed gate (`compat \
                  --require-full-mapping` with ops on the CPU; `report` with a failed gate \
                  or regression)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show a model's operators, parameters, size, MACs and I/O tensors.
    Inspect(InspectArgs),
    /// Convert a model (dequantize a quantized model to the float32 baseline).
    Convert(ConvertArgs),
    /// Build one of the guide's architectures with deterministic weights.
    Zoo(ZooArgs),
    /// Run a model on raw input tensors and write raw output tensors.
    Infer(InferArgs),
    /// Measure top-1/top-5 accuracy on a labelled dataset.
    Eval(EvalArgs),
    /// Measure single-inference latency.
    Bench(BenchArgs),
    /// Predict op placement and latency of a model on a device profile (simulators).
    Compat(CompatArgs),
    /// Train a CIFAR-10 model (mnv2-cifar, mnv1-cifar, gated-cifar) and export it as float32 .tflite.
    Train(TrainArgs),
    /// Optimize a trained CIFAR-10 float model by fine-tuning (qat, prune, cluster, pqat, cqat).
    Optimize(OptimizeArgs),
    /// Post-training quantization of a float32 model (float16, dynamic, int8, int16x8, uint8).
    Quantize(QuantizeArgs),
    /// Run a scenario (embedded coordinator and local agents unless --coordinator).
    Run(RunScenarioArgs),
    /// Rebuild a run's report (tables, charts, HTML) and check it against a baseline run.
    Report(ReportArgs),
    /// Serve the coordinator's gRPC API (or --load-test it).
    Coordinator(CoordinatorArgs),
    /// Run a device agent that dials a coordinator.
    Agent(AgentArgs),
    /// Show runs on a coordinator, or one run's jobs.
    Status(StatusArgs),
    /// Cancel a run on a coordinator.
    Cancel(CancelArgs),
}

#[derive(Args, Debug, Clone, Copy)]
pub struct RunArgs {
    /// Worker threads for the heavy kernels.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Kernel family: `fast` (SIMD, packed) or `reference` (plain loops, the oracle).
    #[arg(long, value_enum, default_value_t = Kernels::Fast)]
    pub kernels: Kernels,
    /// Sparse 1×1 convolutions (float models, fast kernels): `auto` runs a 1×1
    /// stride-1 CONV_2D whose weights are at least 70% exact zeros (75% when it
    /// narrows the channels 4× or more), as in a pruned model, with the sparse kernel;
    /// `off` always uses the dense GEMM. Time a model both ways to see what sparsity
    /// buys.
    #[arg(long, value_enum, default_value_t = Sparse::Auto)]
    pub sparse: Sparse,
    #[command(flatten)]
    pub memory: MemoryArgs,
}

/// The memory limit of the engine (see `quantfarm_engine::measure::limits`).
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct MemoryArgs {
    /// Refuse a model that needs more memory than SIZE to read, prepare and run
    /// (e.g. 512M, 4G, or bytes) [default: half of this machine's memory].
    #[arg(long, value_name = "SIZE", value_parser = parse_memory_limit, env = "QUANTFARM_MEMORY_LIMIT")]
    pub memory_limit: Option<u64>,
}

impl MemoryArgs {
    /// The limit in bytes: the one given, else the machine's default.
    pub fn bytes(&self) -> u64 {
        self.memory_limit
            .unwrap_or_else(quantfarm_engine::measure::limits::default_memory_limit)
    }
}

fn parse_memory_limit(s: &str) -> Result<u64, String> {
    quantfarm_engine::measure::limits::parse_size(s).map_err(|e| e.to_string())
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    Fast,
    Reference,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sparse {
    Auto,
    Off,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    pub model: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvertTarget {
    /// Dequantize: float32 weights and activations.
    Float32,
    /// Read and write again unchanged (a round-trip check of the reader and writer).
    Same,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    pub model: PathBuf,
    /// Target representation.
    #[arg(long, value_enum)]
    pub to: ConvertTarget,
    /// Output .tflite path.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Keep the original quantized inputs/outputs (DEQUANTIZE/QUANTIZE at the edges)
    /// instead of float32 I/O.
    #[arg(long)]
    pub keep_io: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ZooArgs {
    /// mobilenet_v1, mobilenet_v2, inception_v3, resnet_v2_50, resnet_v2_101 or resnet_v2_152.
    pub arch: String,
    /// Width (depth) multiplier.
    #[arg(long, default_value_t = 1.0)]
    pub width: f32,
    /// Input resolution (default: the architecture's own, 224 or 299).
    #[arg(long)]
    pub resolution: Option<usize>,
    /// Seed of the deterministic weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output .tflite path.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct InferArgs {
    pub model: PathBuf,
    /// Raw input tensors, one file per model input, in order (row-major, little-endian).
    #[arg(long = "input-raw", num_args = 1.., required = true)]
    pub input_raw: Vec<PathBuf>,
    /// Output prefix: output k is written to PREFIX.out<k>.bin.
    #[arg(long = "output-raw")]
    pub output_raw: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    pub model: PathBuf,
    /// imagenet-sample, cifar10-test or cifar10-train.
    #[arg(long, default_value = "imagenet-sample")]
    pub dataset: String,
    /// Evaluate at most this many images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Skip this many images first.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Write per-image predictions (TSV: index, label, top-5 predictions).
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// Also write each preprocessed input tensor as DIR/<index>.bin (for interop checks).
    #[arg(long)]
    pub dump_inputs: Option<PathBuf>,
    /// Also run this model (e.g. the float32 original) on the same images and report how
    /// close MODEL's outputs are to it: top-1 agreement and mean absolute difference.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    pub model: PathBuf,
    /// Untimed runs first (at most 10000).
    #[arg(long, default_value_t = LatencySettings::BENCH.warmup)]
    pub warmup: usize,
    /// Timed runs (1 to 100000).
    #[arg(long, default_value_t = LatencySettings::BENCH.runs)]
    pub runs: usize,
    /// Print the time per operator type (from the last run).
    #[arg(long)]
    pub profile: bool,
    /// Print every op of the last run in order: time, MACs and G MAC/s (with `--json`,
    /// a `layers` array).
    #[arg(long)]
    pub layers: bool,
    #[command(flatten)]
    pub run: RunArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantModeArg {
    Float16,
    Dynamic,
    Int8,
    Int16x8,
    Uint8,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightRangeArg {
    Mse,
    Maxabs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum IoTypeArg {
    Float,
    Int8,
    Uint8,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Architecture: mnv2-cifar, mnv1-cifar or gated-cifar (the int16-effect model); taken from the checkpoint with --resume.
    #[arg(long)]
    pub arch: Option<String>,
    /// Epochs in the whole run (default: the recipe's; must match the checkpoint's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Continue the run saved in this checkpoint.
    #[arg(long, value_name = "CKPT")]
    pub resume: Option<PathBuf>,
    /// Where to write the checkpoint after each epoch (default: OUT with .ckpt).
    #[arg(long, value_name = "CKPT")]
    pub checkpoint: Option<PathBuf>,
    /// Seed of every random choice (weights, shuffles, augmentation).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads (default: the machine's cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Train on an evenly spaced subset of this many training images.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Test images for the final accuracy (default: all 10,000).
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Output float32 .tflite path.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TechniqueArg {
    /// Quantization-aware training, then a full-integer int8 export.
    Qat,
    /// Magnitude pruning (TFMOT polynomial-decay schedule), then a float32 export.
    Prune,
    /// Weight clustering (k-means, centroids fine-tuned), then a float32 export.
    Cluster,
    /// Pruning-preserving QAT of a pruned model, then a full-integer int8 export.
    Pqat,
    /// Cluster-preserving QAT of a clustered model, then a full-integer int8 export.
    Cqat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitArg {
    /// Evenly spaced between the smallest and largest magnitude.
    Linear,
    /// k-means++ seeding (TFMOT's default).
    #[value(name = "kmeans++")]
    KmeansPlusPlus,
    /// Quantiles of the magnitudes.
    Density,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocationArg {
    /// Every pruned kernel at one sparsity (TFMOT's per-layer pruning).
    Uniform,
    /// Erdős–Rényi-kernel: small kernels denser, wide ones sparser (RigL, 2020).
    Erk,
}

#[derive(Args, Debug)]
pub struct OptimizeArgs {
    /// Float32 model written by `quantfarm train`.
    pub model: PathBuf,
    #[arg(long, value_enum)]
    pub technique: TechniqueArg,
    /// Fine-tuning epochs.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Fine-tune on an evenly spaced subset of this many CIFAR-10 training images.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Peak learning rate of the fine-tuning (cosine decay).
    #[arg(long, default_value_t = 0.005)]
    pub lr: f32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Worker threads (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Model input/output type of the integer model (qat).
    #[arg(long, value_enum, default_value_t = IoTypeArg::Float)]
    pub io: IoTypeArg,
    /// Final sparsity of every conv, depthwise and dense kernel, in [0, 1) (prune).
    #[arg(long)]
    pub sparsity: Option<f32>,
    /// Sparsity the schedule starts from, in [0, --sparsity] (prune; TFMOT's
    /// initial_sparsity). Equal to --sparsity keeps the target from the first step
    /// (a constant schedule, for fine-tuning an already pruned model further).
    #[arg(long, default_value_t = 0.0)]
    pub initial_sparsity: f32,
    /// Prune blocks of RxC weights (inputs x output channels), e.g. 1x4 (prune).
    #[arg(long, value_name = "RxC")]
    pub block: Option<String>,
    /// Leave kernels with at most this fan-in dense (27: the 3x3x3 stem and every 3x3
    /// depthwise) and prune the others harder so the total still reaches --sparsity;
    /// 0 prunes every kernel (prune).
    #[arg(long, default_value_t = 27)]
    pub spare_fan_in: usize,
    /// How --sparsity is shared among the pruned kernels (prune).
    #[arg(long, value_enum, default_value_t = AllocationArg::Uniform)]
    pub allocation: AllocationArg,
    /// Clusters per layer, an even number (cluster: to make; cqat: the model's).
    #[arg(long)]
    pub clusters: Option<usize>,
    /// Centroid initialisation (cluster).
    #[arg(long, value_enum, default_value_t = InitArg::KmeansPlusPlus)]
    pub init: InitArg,
    /// Output .tflite path.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// Float32 input model.
    pub model: PathBuf,
    #[arg(long, value_enum)]
    pub mode: QuantModeArg,
    /// Calibration dataset (full-integer modes).
    #[arg(long, default_value = "imagenet-sample")]
    pub calibration: String,
    /// Number of calibration images.
    #[arg(long, default_value_t = 100)]
    pub calibration_size: usize,
    /// First calibration image.
    #[arg(long, default_value_t = 0)]
    pub calibration_offset: usize,
    /// Take every N-th image from the offset on (CIFAR-10's archives are sorted by class:
    /// `--calibration-size 500 --calibration-stride 100` spreads over all 50,000).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub calibration_stride: u32,
    /// Range estimator: minmax, percentile (99.99%), percentile:P or mse.
    #[arg(long, default_value = "minmax")]
    pub calibration_method: String,
    /// Weight scale per channel (int8, int16x8, dynamic): mse picks the scale with the
    /// least rounding error (keeps the grid of a dequantized 8-bit model); maxabs is
    /// TFLite's converter rule, max|w|/127.
    #[arg(long, value_enum, default_value_t = WeightRangeArg::Mse)]
    pub weight_range: WeightRangeArg,
    /// Model input/output type in full-integer modes.
    #[arg(long, value_enum, default_value_t = IoTypeArg::Float)]
    pub io: IoTypeArg,
    /// Keep ops without an integer kernel in float (DEQUANTIZE/QUANTIZE around them).
    #[arg(long)]
    pub allow_float_fallback: bool,
    /// Worker threads for calibration.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    #[command(flatten)]
    pub memory: MemoryArgs,
    /// Output .tflite path.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}
/// TLS files of a client of a remote coordinator (`run --coordinator`, `agent`,
/// `status`, `cancel`).
#[derive(Args, Debug, Clone, Default)]
pub struct ClientTlsArgs {
    /// For an https:// coordinator: the CA certificate (PEM) that signed the
    /// coordinator's certificate; only this CA is trusted.
    #[arg(long, value_name = "FILE", env = "QUANTFARM_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for a coordinator that requires mutual TLS; with
    /// --tls-key.
    #[arg(long, value_name = "FILE", env = "QUANTFARM_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", env = "QUANTFARM_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

impl ClientTlsArgs {
    pub fn options(&self) -> quantfarm_proto::tls::TlsOptions {
        quantfarm_proto::tls::TlsOptions {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
        }
    }
}

#[derive(Args, Debug)]
pub struct RunScenarioArgs {
    pub scenario: PathBuf,
    /// Submit to this coordinator (e.g. http://host:7070, or https://host:7070 with
    /// --tls-ca) instead of an embedded one. Token from --token-file or QUANTFARM_TOKEN.
    #[arg(long)]
    pub coordinator: Option<String>,
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    // TLS to the --coordinator (the embedded coordinator is plain loopback and ignores it).
    #[command(flatten)]
    pub tls: ClientTlsArgs,
    /// Reports go to DIR/<run-id>/.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    /// Run id (default: <scenario name>-<UTC time>-<pid>).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Engine threads per job on the local agents (latency jobs use the scenario's).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Memory limit of every engine job on the local agents (a remote coordinator's
    /// agents have their own).
    #[command(flatten)]
    pub memory: MemoryArgs,
    /// Device profiles folder (one YAML per device) [default: `agents/profiles` under
    /// the current folder, else next to the scenario's folder, as in the repository].
    #[arg(long)]
    pub profiles: Option<PathBuf>,
    /// Give up after the coordinator has been unreachable this long.
    #[arg(long, default_value_t = 120)]
    pub wait_secs: u64,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The run's folder (`reports/<run-id>`, holding results.json), or its results.json.
    /// The report is written into that folder.
    pub run: PathBuf,
    /// Compare with this run (folder or results.json) [default: the latest earlier run
    /// of the same scenario in the same reports folder].
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Write the gates and regression checks as JUnit XML to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Print one JSON object (counts, failures, files) instead of text.
    #[arg(long)]
    pub json: bool,
    /// A latency may grow this fraction over the baseline's (0.10 = 10% slower).
    #[arg(long, default_value_t = 0.10)]
    pub max_latency_regression: f64,
    /// Top-1 may fall this much below the baseline's (absolute: 0.01 = one point).
    #[arg(long, default_value_t = 0.01)]
    pub max_top1_drop: f64,
    /// A file may grow this fraction over the baseline's.
    #[arg(long, default_value_t = 0.01)]
    pub max_size_growth: f64,
    /// Leave the charts out (faster; the HTML then has none).
    #[arg(long)]
    pub no_charts: bool,
}

#[derive(Args, Debug)]
pub struct CompatArgs {
    /// The model (.tflite).
    pub model: PathBuf,
    /// Device profile: a name from the profiles folder, or a path to a profile YAML.
    #[arg(long)]
    pub device: String,
    /// Print one JSON object instead of the compiler-style summary and op table.
    #[arg(long)]
    pub json: bool,
    /// Exit with code 1 when any op falls back to the CPU (a release gate).
    #[arg(long)]
    pub require_full_mapping: bool,
    /// Device profiles folder [default: `agents/profiles` under the current folder,
    /// else the folder of a profile given by path].
    #[arg(long)]
    pub profiles: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CoordinatorArgs {
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: String,
    /// SQLite database (runs, jobs, results); reopening it resumes unfinished runs.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Artifact directory (content-addressed by sha256).
    #[arg(long)]
    pub artifacts: Option<PathBuf>,
    /// Token file (else QUANTFARM_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Serve TLS with this certificate chain (PEM, leaf first; its SANs must name
    /// the address clients dial); clients then use https:// URLs. With --tls-key.
    #[arg(long, value_name = "FILE", env = "QUANTFARM_COORDINATOR_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", env = "QUANTFARM_COORDINATOR_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: clients and agents must present a certificate signed by this CA
    /// (PEM), on top of the token. Needs --tls-cert.
    #[arg(long, value_name = "FILE", env = "QUANTFARM_COORDINATOR_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Requeue a job when its agent is silent this long.
    #[arg(long, default_value_t = 15_000)]
    pub lease_ms: u64,
    #[arg(long, default_value_t = 2_000)]
    pub heartbeat_ms: u64,
    /// Attempts per job before it fails.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: u32,
    /// Measure dispatch cost with simulated agents and no-op jobs, then exit.
    #[arg(long)]
    pub load_test: bool,
    #[arg(long, default_value_t = 200)]
    pub agents: usize,
    #[arg(long, default_value_t = 5000)]
    pub jobs: usize,
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Coordinator URL, e.g. http://host:7070 (https://host:7070 with --tls-ca).
    #[arg(long)]
    pub coordinator: String,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
    /// Device this agent serves: a profile name in --profiles (cpu-host times this
    /// machine; the others are simulators that predict latency and placement), or a
    /// path to a profile YAML.
    #[arg(long, default_value = "cpu-host", conflicts_with = "profile")]
    pub device: String,
    /// Device profile this agent serves, as a profile YAML file (the same as
    /// `--device PATH`).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Where device names are looked up, and the fallback CPU of a simulated device
    /// (one YAML per device).
    #[arg(long, default_value = "agents/profiles")]
    pub profiles: PathBuf,
    /// Unique agent name (default: <device>-<pid>).
    #[arg(long)]
    pub name: Option<String>,
    /// Artifact cache directory.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Engine threads per job.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Memory limit of every engine job (a model needing more fails as a job).
    #[command(flatten)]
    pub memory: MemoryArgs,
    /// Jobs at once.
    #[arg(long, default_value_t = 1)]
    pub slots: u32,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// A run to show job by job (default: list all runs).
    pub run_id: Option<String>,
    /// Coordinator URL (http:// or https://).
    #[arg(long)]
    pub coordinator: String,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
    /// File holding the token (else env QUANTFARM_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// With RUN_ID: follow the run (a progress line per change on stderr) until it
    /// finishes, then show it.
    #[arg(long, requires = "run_id")]
    pub watch: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CancelArgs {
    pub run_id: String,
    /// Coordinator URL (http:// or https://).
    #[arg(long)]
    pub coordinator: String,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

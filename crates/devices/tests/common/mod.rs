//! Shared helpers of the device tests: the profile directory, the shared data root,
//! and zoo models quantized for latency prediction.

#![allow(dead_code)]

use std::path::PathBuf;

use quantfarm_engine::ir::{DType, Model};
use quantfarm_engine::quant::calibrate::{TensorRange, TensorRanges};
use quantfarm_engine::quant::ptq::{IoType, PtqOptions, QuantMode, WeightRange, quantize_model};
use quantfarm_engine::zoo::{Arch, ZooConfig, build};

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(|p| p.parent())
        .expect("crate inside the repository")
        .to_path_buf()
}

pub fn profiles_dir() -> PathBuf {
    repo_root().join("agents/profiles")
}

pub fn profiles() -> quantfarm_devices::ProfileSet {
    quantfarm_devices::ProfileSet::load_dir(profiles_dir()).expect("shipped profiles load")
}

/// `QUANTFARM_DATA`, else a `shared/` folder holding `DESIGN.md` beside an ancestor.
pub fn shared_root() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QUANTFARM_DATA") {
        return Some(PathBuf::from(p));
    }
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let cand = dir.join("shared");
        if cand.join("DESIGN.md").is_file() {
            return Some(cand);
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// A zoo architecture at a resolution (0 = its default), float32.
pub fn zoo(arch: Arch, resolution: usize) -> Model {
    let cfg = ZooConfig {
        resolution,
        ..ZooConfig::new(arch)
    };
    build(arch, &cfg).expect("zoo model builds")
}

/// Synthetic activation ranges: latency does not depend on the values, only on the
/// model's structure and types, so every float activation gets [-6, 6].
fn synthetic_ranges(m: &Model) -> TensorRanges {
    let g = m.main();
    TensorRanges {
        ranges: g
            .tensors
            .iter()
            .map(|t| {
                (!t.is_constant() && t.dtype == DType::F32).then_some(TensorRange {
                    min: -6.0,
                    max: 6.0,
                })
            })
            .collect(),
        samples: 1,
    }
}

/// The model in `mode` (dynamic, int8 with int8 I/O, uint8, ...).
pub fn quantized(m: &Model, mode: QuantMode) -> Model {
    let mut opts = PtqOptions::new(mode);
    // Max-abs weight scales: the fast choice; latency does not depend on it.
    opts.weight_range = WeightRange::MaxAbs;
    if matches!(mode, QuantMode::Int8) {
        opts.io = IoType::Int8;
    }
    if matches!(mode, QuantMode::Uint8) {
        opts.io = IoType::Uint8;
    }
    let ranges = synthetic_ranges(m);
    quantize_model(m, &opts, Some(&ranges))
        .expect("zoo model quantizes")
        .0
}

use quantfarm_engine::ir::{Graph, Op, OpKind, Quantization, Tensor, TensorId};

/// A tiny graph builder for hand-made placement cases (int8 unless told).
#[derive(Default)]
pub struct Builder {
    pub g: Graph,
}

impl Builder {
    /// A non-constant tensor; 8-bit types get a per-tensor quantization.
    pub fn act(&mut self, name: &str, shape: &[usize], dtype: DType) -> TensorId {
        let mut t = Tensor::activation(name, shape.to_vec(), dtype);
        if matches!(dtype, DType::I8 | DType::U8 | DType::I16) {
            t.quant = Some(Quantization::per_tensor(0.05, 0));
        }
        self.g.add_tensor(t)
    }

    /// An int8 constant filled with `fill`.
    pub fn weights(&mut self, name: &str, shape: &[usize], fill: i8) -> TensorId {
        let n: usize = shape.iter().product();
        let t = Tensor::constant(name, shape.to_vec(), DType::I8, vec![fill as u8; n])
            .with_quant(Quantization::per_tensor(0.02, 0));
        self.g.add_tensor(t)
    }

    /// An int32 bias of `n` zeros.
    pub fn bias(&mut self, name: &str, n: usize) -> TensorId {
        let t = Tensor::constant_i32(name, vec![n], &vec![0; n])
            .with_quant(Quantization::per_tensor(0.001, 0));
        self.g.add_tensor(t)
    }

    pub fn shape_const(&mut self, name: &str, v: &[i32]) -> TensorId {
        self.g
            .add_tensor(Tensor::constant_i32(name, vec![v.len()], v))
    }

    pub fn op(&mut self, kind: OpKind, inputs: &[TensorId], outputs: &[TensorId]) {
        self.g
            .add_op(Op::new(kind, inputs.to_vec(), outputs.to_vec()));
    }

    pub fn model(mut self, inputs: &[TensorId], outputs: &[TensorId]) -> Model {
        self.g.inputs = inputs.to_vec();
        self.g.outputs = outputs.to_vec();
        Model::from_graph(self.g, "hand-made")
    }
}

//! Bit-exactness against LiteRT's reference kernels: every model under
//! `reference/golden/` run on its stored inputs must reproduce the stored outputs,
//! with the reference kernels and with the fast kernels.
//!
//! Integer outputs must match exactly. A float32 output (MoveNet's dequantized
//! keypoints) may differ by at most 1 ulp: it is computed by float ops after the
//! integer part, and TFLite does not specify their evaluation order (e.g. whether a
//! multiply-add is fused), so the last bit is not part of the contract.

use std::path::{Path, PathBuf};

use quantfarm_engine::exec::{Interpreter, InterpreterOptions, KernelChoice};
use quantfarm_engine::ir::DType;
use quantfarm_engine::tflite::read_model_file;

fn shared() -> PathBuf {
    quantfarm_engine::data::shared_root().expect("shared data folder (set QUANTFARM_DATA)")
}

/// The (name, dtype, file) triples of a manifest's inputs or outputs for one case.
fn case_files(manifest: &serde_json::Value, case: &serde_json::Value, key: &str) -> Vec<String> {
    let _ = manifest;
    case[key]
        .as_array()
        .expect("case file list")
        .iter()
        .map(|v| v.as_str().expect("file name").to_string())
        .collect()
}

fn check_model(dir: &Path, kernels: KernelChoice) -> Result<usize, String> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let model_path = shared().join(manifest["model"].as_str().unwrap());
    let model = read_model_file(&model_path).map_err(|e| e.to_string())?;
    let opts = InterpreterOptions {
        kernels,
        ..Default::default()
    };
    let mut interp = Interpreter::new(&model, opts).map_err(|e| e.to_string())?;
    let mut checked = 0;
    for case in manifest["cases"].as_array().unwrap() {
        for (k, f) in case_files(&manifest, case, "inputs").iter().enumerate() {
            let bytes = std::fs::read(dir.join(f)).unwrap();
            interp
                .set_input_bytes(k, &bytes)
                .map_err(|e| e.to_string())?;
        }
        interp.invoke();
        for (k, f) in case_files(&manifest, case, "outputs").iter().enumerate() {
            let want = std::fs::read(dir.join(f)).unwrap();
            let got = interp.output_bytes(k);
            if interp.outputs()[k].dtype == DType::F32 {
                for (i, (a, b)) in got.chunks_exact(4).zip(want.chunks_exact(4)).enumerate() {
                    let a = i32::from_le_bytes(a.try_into().unwrap());
                    let b = i32::from_le_bytes(b.try_into().unwrap());
                    if (a - b).abs() > 1 {
                        return Err(format!(
                            "{f}: float element {i}: {} vs golden {}",
                            f32::from_bits(a as u32),
                            f32::from_bits(b as u32)
                        ));
                    }
                }
            } else if got != want.as_slice() {
                let first = got.iter().zip(&want).position(|(a, b)| a != b);
                return Err(format!("{f}: bytes differ (first at byte {first:?})"));
            }
            checked += 1;
        }
    }
    Ok(checked)
}

fn golden_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(shared().join("reference/golden"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn check_all(kernels: KernelChoice) {
    let mut failures = Vec::new();
    for dir in golden_dirs() {
        match check_model(&dir, kernels) {
            Ok(n) => eprintln!("{}: {n} outputs bit-exact ({kernels:?})", dir.display()),
            Err(e) => failures.push(format!("{}: {e}", dir.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{kernels:?} kernels:\n{}",
        failures.join("\n")
    );
}

#[test]
fn golden_outputs_with_reference_kernels() {
    check_all(KernelChoice::Reference);
}

#[test]
fn golden_outputs_with_fast_kernels() {
    check_all(KernelChoice::Fast);
}

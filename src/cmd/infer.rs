//! `quantfarm infer`: raw tensors in, raw tensors out.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{interpreter, load_model_limited, print_json};
use crate::cli::InferArgs;

pub fn run(a: &InferArgs) -> Result<()> {
    let model = load_model_limited(&a.model, a.run.memory.bytes())?;
    let mut interp = interpreter(&model, &a.model, &a.run)?;
    if a.input_raw.len() != interp.inputs().len() {
        bail!(
            "{}: model has {} input(s), {} --input-raw file(s) given",
            a.model.display(),
            interp.inputs().len(),
            a.input_raw.len()
        );
    }
    for (k, path) in a.input_raw.iter().enumerate() {
        // The size first: a file far larger than the input is not read into memory.
        let info = &interp.inputs()[k];
        let len = std::fs::metadata(path)
            .with_context(|| format!("{}: cannot read", path.display()))?
            .len();
        if len != info.byte_len() as u64 {
            bail!(
                "{}: input {k} '{}' ({} {:?}) needs {} bytes, the file has {len}",
                path.display(),
                info.name,
                info.dtype,
                info.shape,
                info.byte_len()
            );
        }
        let bytes =
            std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        interp
            .set_input_bytes(k, &bytes)
            .with_context(|| path.display().to_string())?;
    }
    interp.invoke();
    let mut written = Vec::new();
    for k in 0..interp.outputs().len() {
        let path = PathBuf::from(format!("{}.out{k}.bin", a.output_raw.display()));
        std::fs::write(&path, interp.output_bytes(k))
            .with_context(|| format!("{}: cannot write", path.display()))?;
        let info = &interp.outputs()[k];
        written.push(json!({
            "path": path.display().to_string(),
            "name": info.name,
            "shape": info.shape,
            "dtype": info.dtype.name(),
        }));
    }
    if a.json {
        print_json(&json!({ "model": a.model.display().to_string(), "outputs": written }));
    } else {
        for w in &written {
            outln!(
                "wrote {} ({} {} {})",
                w["path"].as_str().unwrap_or(""),
                w["name"],
                w["dtype"],
                w["shape"]
            );
        }
    }
    Ok(())
}

//! `quantfarm convert`: model-to-model transforms.

use anyhow::{Context, Result};
use quantfarm_engine::convert::{DequantizeOptions, dequantize_model};
use quantfarm_engine::stats::graph_stats;
use serde_json::json;

use super::{load_model, print_json, save_model};
use crate::cli::{ConvertArgs, ConvertTarget};

pub fn run(a: &ConvertArgs) -> Result<()> {
    let model = load_model(&a.model)?;
    let (out, to) = match a.to {
        ConvertTarget::Float32 => (
            dequantize_model(&model, &DequantizeOptions { keep_io: a.keep_io })
                .with_context(|| format!("{}: cannot dequantize", a.model.display()))?,
            "float32",
        ),
        ConvertTarget::Same => (model, "same"),
    };
    let size = save_model(&out, &a.output)?;
    let st = graph_stats(out.main());
    if a.json {
        print_json(&json!({
            "input": a.model.display().to_string(),
            "output": a.output.display().to_string(),
            "to": to,
            "size_bytes": size,
            "params": st.params,
            "ops": st.ops,
        }));
    } else {
        outln!(
            "wrote {} ({size} bytes, {} params, {} ops)",
            a.output.display(),
            st.params,
            out.main().ops.len()
        );
    }
    Ok(())
}

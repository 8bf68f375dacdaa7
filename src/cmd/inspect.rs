//! `quantfarm inspect`: what a model contains.

use anyhow::{Context, Result};
use quantfarm_engine::ir::{Graph, TensorId};
use quantfarm_engine::stats::graph_stats;
use serde_json::{Value, json};

use super::{load_model, print_json};
use crate::cli::InspectArgs;

pub fn run(a: &InspectArgs) -> Result<()> {
    let model = load_model(&a.model)?;
    let bytes = std::fs::read(&a.model).with_context(|| a.model.display().to_string())?;
    let size = bytes.len() as u64;
    // What pruning and clustering shrink: the file compressed, as the guide reports it.
    let gzip = quantfarm_engine::measure::gzip_size(&bytes);
    let g = model.main();
    let st = graph_stats(g);
    let io = |ids: &[TensorId]| -> Vec<Value> { ids.iter().map(|&t| tensor_json(g, t)).collect() };
    if a.json {
        print_json(&json!({
            "model": a.model.display().to_string(),
            "description": model.description,
            "subgraphs": model.subgraphs.len(),
            "tensors": g.tensors.len(),
            "ops": st.ops,
            "params": st.params,
            "size_bytes": size,
            "gzip_size_bytes": gzip,
            "macs": st.macs,
            "inputs": io(&g.inputs),
            "outputs": io(&g.outputs),
            "trailing_bytes": model.trailing.len(),
        }));
        return Ok(());
    }
    outln!("model        {}", a.model.display());
    outln!("description  {}", model.description);
    outln!("size         {size} bytes ({:.2} MB)", size as f64 / 1e6);
    outln!(
        "gzip size    {gzip} bytes ({:.2} MB, gzip level 6)",
        gzip as f64 / 1e6
    );
    outln!(
        "parameters   {} ({:.2} M)",
        st.params,
        st.params as f64 / 1e6
    );
    outln!("MACs         {} ({:.1} M)", st.macs, st.macs as f64 / 1e6);
    outln!(
        "operators    {} in {} subgraph(s)",
        g.ops.len(),
        model.subgraphs.len()
    );
    for (name, n) in &st.ops {
        outln!("  {name:<32} {n}");
    }
    for (label, ids) in [("input", &g.inputs), ("output", &g.outputs)] {
        for &t in ids {
            let tj = tensor_json(g, t);
            outln!(
                "{label:<12} {} {} {} scale={} zero_point={}",
                tj["name"].as_str().unwrap_or(""),
                tj["dtype"].as_str().unwrap_or(""),
                tj["shape"],
                tj["scale"],
                tj["zero_point"]
            );
        }
    }
    Ok(())
}

fn tensor_json(g: &Graph, t: TensorId) -> Value {
    let tensor = &g.tensors[t];
    let (scale, zp) = match &tensor.quant {
        Some(q) if q.scale.len() == 1 => (
            json!(q.scale[0]),
            json!(q.zero_point.first().copied().unwrap_or(0)),
        ),
        Some(q) if q.scale.len() > 1 => (json!(q.scale), json!(q.zero_point)),
        _ => (Value::Null, Value::Null),
    };
    json!({
        "name": tensor.name,
        "shape": tensor.shape,
        "dtype": tensor.dtype.name(),
        "scale": scale,
        "zero_point": zp,
    })
}

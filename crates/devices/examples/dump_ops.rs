//! Print every op of a model: index, name, version, input/output shapes and dtypes.
fn main() {
    for path in std::env::args().skip(1) {
        let m = quantfarm_engine::tflite::read_model_file(std::path::Path::new(&path)).unwrap();
        println!("== {path}: {} subgraphs", m.subgraphs.len());
        let g = m.main();
        for (i, op) in g.ops.iter().enumerate() {
            let desc = |t: usize| {
                let t = &g.tensors[t];
                format!(
                    "{}{:?}{}",
                    t.dtype,
                    t.shape,
                    if t.is_constant() { "c" } else { "" }
                )
            };
            let ins: Vec<_> = op
                .inputs
                .iter()
                .map(|t| t.map(desc).unwrap_or("-".into()))
                .collect();
            let outs: Vec<_> = op.outputs.iter().map(|&t| desc(t)).collect();
            println!(
                "{i:3} {} v{} {:?} -> {:?} {:?}",
                op.kind.name(),
                op.version,
                ins,
                outs,
                match &op.kind {
                    quantfarm_engine::ir::OpKind::Custom { .. } => String::new(),
                    k => format!("{k:?}"),
                }
            );
        }
    }
}

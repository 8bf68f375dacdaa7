//! Per-op costs of the zoo models as CSV (calibration aid).
#[path = "../tests/common/mod.rs"]
mod common;

use quantfarm_engine::ir::DType;
use quantfarm_engine::quant::ptq::QuantMode;
use quantfarm_engine::zoo::Arch;

fn main() {
    println!("model,numerics,op,kind,macs,in_b,out_b,par_b,in_e,out_e,act,wt,cin,cout");
    for (arch, res) in [
        (Arch::MobilenetV1, 224),
        (Arch::MobilenetV2, 224),
        (Arch::InceptionV3, 299),
        (Arch::ResnetV2_101, 299),
        (Arch::ResnetV2_50, 299),
        (Arch::ResnetV2_152, 299),
    ] {
        let f = common::zoo(arch, res);
        for (label, m) in [
            ("float32", f.clone()),
            ("dynamic", common::quantized(&f, QuantMode::Dynamic)),
            ("int8", common::quantized(&f, QuantMode::Int8)),
        ] {
            let g = m.main();
            for (i, op) in g.ops.iter().enumerate() {
                let c = quantfarm_engine::stats::op_cost(g, op);
                let act = op
                    .inputs
                    .iter()
                    .flatten()
                    .map(|&t| &g.tensors[t])
                    .find(|t| !t.is_constant())
                    .map(|t| t.dtype)
                    .unwrap_or(DType::F32);
                let wt = op
                    .input(1)
                    .map(|t| &g.tensors[t])
                    .filter(|t| t.is_constant())
                    .map(|t| t.dtype.name())
                    .unwrap_or("-".into());
                let cin = op
                    .input(0)
                    .and_then(|t| g.tensors[t].shape.last().copied())
                    .unwrap_or(0);
                let cout = op
                    .outputs
                    .first()
                    .and_then(|&t| g.tensors[t].shape.last().copied())
                    .unwrap_or(0);
                println!(
                    "{},{label},{i},{},{},{},{},{},{},{},{},{wt},{cin},{cout}",
                    arch.name(),
                    op.kind.name(),
                    c.macs,
                    c.input_bytes,
                    c.output_bytes,
                    c.param_bytes,
                    c.input_elements,
                    c.output_elements,
                    act.name()
                );
            }
        }
    }
}

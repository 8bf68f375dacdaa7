//! Print the predicted latency of zoo models on every simulated profile (calibration aid).
#[path = "../tests/common/mod.rs"]
mod common;

use quantfarm_engine::quant::ptq::QuantMode;
use quantfarm_engine::zoo::Arch;

fn main() {
    let set = common::profiles();
    let which: Vec<String> = std::env::args().skip(1).collect();
    for (arch, res) in [
        (Arch::MobilenetV1, 224),
        (Arch::MobilenetV2, 224),
        (Arch::InceptionV3, 299),
        (Arch::ResnetV2_101, 299),
        (Arch::ResnetV2_50, 299),
        (Arch::ResnetV2_152, 299),
    ] {
        let f = common::zoo(arch, res);
        let st = quantfarm_engine::stats::graph_stats(f.main());
        for (label, m) in [
            ("float32", f.clone()),
            ("dynamic", common::quantized(&f, QuantMode::Dynamic)),
            ("int8", common::quantized(&f, QuantMode::Int8)),
        ] {
            for p in set.iter().filter(|p| p.simulated) {
                if !which.is_empty() && !which.contains(&p.name) {
                    continue;
                }
                let s = quantfarm_devices::simulate(&m, p, &set).unwrap();
                let b = s.breakdown.unwrap();
                println!(
                    "{:14} {:8} {:16} {:9.2} ms  dev {:3}/{:3} seg {}  comp {:.1} mem {:.1} link {:.1} oh {:.1} fb {:.1}  macs {:.2}G params {:.1}M",
                    arch.name(),
                    label,
                    p.name,
                    s.predicted_latency_ms.unwrap(),
                    s.ops_on_device,
                    s.ops_total,
                    s.segments,
                    b.compute_ms,
                    b.memory_ms,
                    b.link_ms,
                    b.overhead_ms,
                    b.fallback_ms,
                    st.macs as f64 / 1e9,
                    st.params as f64 / 1e6
                );
            }
        }
    }
}

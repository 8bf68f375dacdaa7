//! A made-up but plausible run, for tests, the benchmark and trying the report out:
//! the guide's four models (MobileNet v2 with real weights, the others zoo builds) ×
//! six techniques × four devices (the host CPU measured; Pixel 2, Edge TPU and GPU
//! predicted, the accelerators with op placement), with gates and skipped pairs.

use quantfarm_results::{
    FORMAT_VERSION, GateRecord, GateStatus, LatencyKind, ResultRow, RowStatus, RunResults,
    SkippedRow,
};

struct Model {
    name: &'static str,
    source: &'static str,
    params: f64,
    ms: f64,
    top1: f64,
}

const MODELS: [Model; 4] = [
    Model {
        name: "mobilenet_v2_1.0_224",
        source: "dequantize",
        params: 3.5e6,
        ms: 89.0,
        top1: 0.719,
    },
    Model {
        name: "mobilenet_v1_1.0_224",
        source: "zoo",
        params: 4.2e6,
        ms: 124.0,
        top1: 0.0,
    },
    Model {
        name: "inception_v3",
        source: "zoo",
        params: 23.9e6,
        ms: 1130.0,
        top1: 0.0,
    },
    Model {
        name: "resnet_v2_101",
        source: "zoo",
        params: 44.6e6,
        ms: 3973.0,
        top1: 0.0,
    },
];

/// (label, kind, bytes per parameter, latency factor, top-1 loss)
const TECHNIQUES: [(&str, &str, f64, f64, f64); 6] = [
    ("float32", "float32", 4.0, 1.0, 0.0),
    ("float16", "float16", 2.0, 1.0, 0.0005),
    ("dynamic", "dynamic", 1.02, 1.1, 0.08),
    ("int8", "int8", 1.03, 0.6, 0.012),
    ("uint8", "uint8", 1.0, 0.62, 0.015),
    ("qat", "original", 1.03, 0.61, 0.01),
];

/// (device, latency kind, latency factor, accelerator)
const DEVICES: [(&str, LatencyKind, f64, bool); 4] = [
    ("cpu-host", LatencyKind::Measured, 0.08, false),
    ("pixel2-bigcore", LatencyKind::Predicted, 1.0, false),
    ("edgetpu-usb", LatencyKind::Predicted, 0.03, true),
    ("gpu-adreno", LatencyKind::Predicted, 0.2, true),
];

/// A run of about `rows` rows (the four models repeated under numbered names past 96
/// rows); `slower` scales every latency and `less_accurate` is subtracted from top-1.
pub fn run(id: &str, rows: usize, slower: f64, less_accurate: f64) -> RunResults {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let mut copy = 0;
    while out.len() < rows.max(1) {
        for m in &MODELS {
            let name = if copy == 0 {
                m.name.to_string()
            } else {
                format!("{}_copy{copy}", m.name)
            };
            for (ti, &(label, kind, bpp, lf, loss)) in TECHNIQUES.iter().enumerate() {
                if m.source == "zoo" && kind == "original" {
                    continue;
                }
                for (di, &(device, lk, df, accel)) in DEVICES.iter().enumerate() {
                    let integer = matches!(kind, "int8" | "uint8" | "original");
                    if device == "edgetpu-usb" && !integer {
                        skipped.push(SkippedRow {
                            model: name.clone(),
                            technique: label.into(),
                            device: device.into(),
                            reason: format!(
                                "edgetpu-usb does not accept {kind} (accepts int8, uint8)"
                            ),
                        });
                        continue;
                    }
                    let mut r = ResultRow::new(&name, label, device);
                    r.technique_kind = kind.into();
                    r.model_source = m.source.into();
                    r.size_bytes = Some((m.params * bpp + 40_000.0 + (ti * 1000) as f64) as u64);
                    r.latency_kind = Some(lk);
                    let ms = m.ms * lf * df * slower * (1.0 + 0.01 * (copy % 7) as f64);
                    r.latency_p50_ms = Some(ms);
                    r.latency_mean_ms = Some(ms * 1.02);
                    r.latency_p90_ms = Some(ms * 1.08);
                    r.latency_runs = Some(if lk == LatencyKind::Measured { 20 } else { 0 });
                    r.threads = Some(1);
                    if m.source != "zoo" {
                        r.top1 = Some(m.top1 - loss - less_accurate - 0.001 * di as f64);
                        r.top5 = Some(0.9 - loss - less_accurate);
                        r.eval_images = Some(900);
                        r.dataset = Some("imagenet-sample".into());
                    }
                    if accel {
                        let total = 60 + 5 * (ti as u32);
                        r.ops_total = Some(total);
                        let on = if device == "gpu-adreno" && kind == "dynamic" {
                            total - 12
                        } else if device == "edgetpu-usb" && m.name == "inception_v3" {
                            total - 3
                        } else {
                            total
                        };
                        r.ops_on_device = Some(on);
                        r.segments = Some(if on == total { 1 } else { 2 });
                        if on < total {
                            r.first_unmapped_op = Some(format!("#{on} RESIZE_BILINEAR"));
                        }
                    }
                    r.attempts = 1;
                    r.agent = format!("{device}-agent");
                    out.push(r);
                }
            }
        }
        copy += 1;
    }
    let mut failed = ResultRow::new("mobilenet_v2_1.0_224", "int16x8", "cpu-host");
    failed.status = RowStatus::Failed;
    failed.technique_kind = "int16x8".into();
    failed.model_source = "dequantize".into();
    failed.error = "accuracy: agent <lost> & \"restarted\"".into();
    out.push(failed);
    RunResults {
        format: FORMAT_VERSION,
        run_id: id.into(),
        scenario: "synthetic".into(),
        created_unix: 1_800_000_000,
        host: Some("Synthetic CPU <test> (2 cores)".into()),
        cancelled: false,
        rows: out,
        skipped,
        gates: vec![
            GateRecord {
                name: "qat-top1".into(),
                kind: "max_top1_drop".into(),
                status: GateStatus::Pass,
                message: "gate 'qat-top1' passed".into(),
            },
            GateRecord {
                name: "edgetpu-full".into(),
                kind: "full_mapping".into(),
                status: GateStatus::NoData,
                message: "gate 'edgetpu-full': nothing to check".into(),
            },
        ],
        previous_run: None,
        accuracy_budget: Some(0.02),
    }
}

//! The latency model against every published cell the issue names: Table 1 on the
//! Pixel 2 big core, the Coral USB and Dev Board columns, the Pixel 4 GPU, and the
//! Hexagon speed-up range. The table of every cell (predicted, published, error) and
//! each profile's free parameters is printed before the bands are asserted.

mod common;

use quantfarm_devices::{DeviceProfile, ProfileSet, Tag, simulate};
use quantfarm_engine::ir::Model;
use quantfarm_engine::quant::ptq::QuantMode;
use quantfarm_engine::zoo::Arch;

struct Cell {
    device: &'static str,
    what: String,
    predicted: f64,
    published: f64,
    /// Allowed relative error.
    band: f64,
}

fn predict(m: &Model, p: &DeviceProfile, set: &ProfileSet) -> f64 {
    let s = simulate(m, p, set).expect("simulates");
    assert!(
        s.refused.is_none(),
        "{} refused {}",
        p.name,
        s.model_numerics
    );
    s.predicted_latency_ms.expect("simulated profile")
}

/// The fitted (D, "fit") and assumed (A) numbers of a profile.
fn free_parameters(p: &DeviceProfile) -> Vec<String> {
    p.quantities()
        .into_iter()
        .filter(|(_, q)| q.tag != Tag::P)
        .map(|(k, q)| {
            let fitted = q.tag == Tag::D && q.note.as_deref().is_some_and(|n| n.contains("fit"));
            format!(
                "{k} = {} {} [{}{}]",
                q.value,
                q.unit,
                match q.tag {
                    Tag::P => "P",
                    Tag::D => "D",
                    Tag::A => "A",
                },
                if fitted { ", fitted" } else { "" }
            )
        })
        .collect()
}

#[test]
fn latency_cells_within_published_bands() {
    let set = common::profiles();
    let get = |n: &str| set.get(n).unwrap_or_else(|| panic!("profile {n}"));
    let mut cells: Vec<Cell> = Vec::new();

    // Table 1 (TF-OPT, newer revision): float32 = original, dynamic = PTQ, int8 = QAT.
    let pixel = get("pixel2-bigcore");
    let table1 = [
        (
            Arch::MobilenetV1,
            224,
            [Some(124.0), Some(112.0), Some(64.0)],
        ),
        (Arch::MobilenetV2, 224, [Some(89.0), Some(98.0), Some(54.0)]),
        (
            Arch::InceptionV3,
            299,
            [Some(1130.0), Some(845.0), Some(543.0)],
        ),
        (Arch::ResnetV2_101, 299, [Some(3973.0), Some(2868.0), None]),
    ];
    let mut int8_cpu = std::collections::BTreeMap::new();
    let mut int8_models = std::collections::BTreeMap::new();
    for (arch, res, published) in table1 {
        let f = common::zoo(arch, res);
        let variants = [
            ("float32", Some(f.clone())),
            ("dynamic", Some(common::quantized(&f, QuantMode::Dynamic))),
            (
                "int8",
                published[2].map(|_| common::quantized(&f, QuantMode::Int8)),
            ),
        ];
        for ((label, m), want) in variants.into_iter().zip(published) {
            let (Some(m), Some(want)) = (m, want) else {
                continue;
            };
            let p = predict(&m, pixel, &set);
            cells.push(Cell {
                device: "pixel2-bigcore",
                what: format!("{} {res} {label}", arch.name()),
                predicted: p,
                published: want,
                band: 0.25,
            });
            if label == "int8" {
                int8_cpu.insert(arch.name(), p);
                int8_models.insert(arch.name(), m);
            }
        }
    }

    // Coral (CORAL-BENCH): USB Accelerator on a desktop and the Dev Board.
    for (arch, res, usb, dev) in [
        (Arch::MobilenetV1, 224, 2.4, 2.4),
        (Arch::MobilenetV2, 224, 2.6, 2.6),
        (Arch::ResnetV2_50, 299, 50.0, 59.0),
        (Arch::ResnetV2_152, 299, 128.0, 151.0),
    ] {
        let m = match int8_models.get(arch.name()) {
            Some(m) => m.clone(),
            None => common::quantized(&common::zoo(arch, res), QuantMode::Int8),
        };
        for (device, want) in [("edgetpu-usb", usb), ("edgetpu-devboard", dev)] {
            let s = simulate(&m, get(device), &set).unwrap();
            assert!(s.fully_mapped(), "{} on {device}", arch.name());
            cells.push(Cell {
                device,
                what: format!("{} {res} int8", arch.name()),
                predicted: s.predicted_latency_ms.unwrap(),
                published: want,
                band: 0.30,
            });
        }
    }

    // Pixel 4 GPU, MobileNet 1.0 224 float (TF-BENCH).
    let f = common::zoo(Arch::MobilenetV1, 224);
    cells.push(Cell {
        device: "gpu-adreno",
        what: "mobilenet_v1 224 float32".into(),
        predicted: predict(&f, get("gpu-adreno"), &set),
        published: 9.0,
        band: 0.30,
    });

    println!(
        "{:<18} {:<28} {:>11} {:>11} {:>8}",
        "device", "model", "predicted", "published", "error"
    );
    let mut failures = Vec::new();
    for c in &cells {
        let err = c.predicted / c.published - 1.0;
        println!(
            "{:<18} {:<28} {:>9.2}ms {:>9.2}ms {:>+7.1}%",
            c.device,
            c.what,
            c.predicted,
            c.published,
            100.0 * err
        );
        if err.abs() > c.band {
            failures.push(format!("{} {}: {:+.1}%", c.device, c.what, 100.0 * err));
        }
    }

    // Hexagon (HEX-BLOG): a 3–25× speed-up over the CPU for quantized MobileNet and
    // Inception v3; the CPU is the DSP profile's fallback CPU.
    let dsp = get("hexagon-dsp");
    let cpu_name = dsp.fallback_cpu.as_deref().unwrap();
    for arch in ["mobilenet_v1", "inception_v3"] {
        let m = &int8_models[arch];
        let d = predict(m, dsp, &set);
        let c = if cpu_name == "pixel2-bigcore" {
            int8_cpu[arch]
        } else {
            predict(m, get(cpu_name), &set)
        };
        let speedup = c / d;
        println!(
            "{:<18} {:<28} {:>9.2}ms  speed-up {speedup:.1}x over {cpu_name} ({c:.1} ms), published 3-25x",
            "hexagon-dsp",
            format!("{arch} int8"),
            d
        );
        if !(3.0..=25.0).contains(&speedup) {
            failures.push(format!("hexagon-dsp {arch}: speed-up {speedup:.1}x"));
        }
    }

    for name in [
        "pixel2-bigcore",
        "edgetpu-usb",
        "edgetpu-devboard",
        "gpu-adreno",
        "hexagon-dsp",
    ] {
        println!("\n{name} free parameters (D = derived/fitted, A = assumed):");
        for line in free_parameters(get(name)) {
            println!("  {line}");
        }
    }
    assert!(
        failures.is_empty(),
        "cells outside their band: {failures:?}"
    );
}

/// Per-op predictions add up to the total, and the breakdown does too.
#[test]
fn per_op_times_and_breakdown_add_up() {
    let set = common::profiles();
    let f = common::zoo(Arch::MobilenetV2, 96);
    let q = common::quantized(&f, QuantMode::Int8);
    for (m, dev) in [
        (&f, "pixel2-bigcore"),
        (&f, "gpu-adreno"),
        (&q, "edgetpu-usb"),
        (&q, "hexagon-dsp"),
        (&f, "edgetpu-devboard"),
    ] {
        let s = simulate(m, set.get(dev).unwrap(), &set).unwrap();
        let total = s.predicted_latency_ms.unwrap();
        let ops: f64 = s.ops.iter().map(|o| o.predicted_ms.unwrap()).sum();
        let b = s.breakdown.unwrap();
        let parts = b.compute_ms + b.memory_ms + b.link_ms + b.overhead_ms + b.fallback_ms;
        assert!(ops <= total + 1e-9, "{dev}: ops {ops} > total {total}");
        assert!(
            (parts - total).abs() < 1e-6 * total.max(1.0),
            "{dev}: {parts} vs {total}"
        );
        assert!(s.ops.iter().all(|o| o.predicted_ms.unwrap() >= 0.0));
    }
}

/// Parameters that do not fit on chip stream over the host link: a slower link makes
/// a big model slower, a small model hardly changes.
#[test]
fn edgetpu_streams_uncached_parameters() {
    let set = common::profiles();
    let usb = set.get("edgetpu-usb").unwrap();
    let mut slow = usb.clone();
    let l = slow.param_link.as_mut().unwrap();
    l.si /= 10.0;
    let big = common::quantized(&common::zoo(Arch::ResnetV2_50, 224), QuantMode::Int8);
    let small = common::quantized(&common::zoo(Arch::MobilenetV1, 128), QuantMode::Int8);
    let t = |m: &Model, p: &DeviceProfile| simulate(m, p, &set).unwrap();
    let (b1, b2) = (t(&big, usb), t(&big, &slow));
    assert!(
        b1.offchip_param_bytes > 10_000_000,
        "{}",
        b1.offchip_param_bytes
    );
    assert!(b2.predicted_latency_ms.unwrap() > 3.0 * b1.predicted_latency_ms.unwrap());
    let (s1, s2) = (t(&small, usb), t(&small, &slow));
    assert_eq!(s1.offchip_param_bytes, 0);
    assert!((s2.predicted_latency_ms.unwrap() - s1.predicted_latency_ms.unwrap()).abs() < 1e-9);
}

//! Parse and expand every shipped scenario and profile; error reporting; ids; gates.

use quantfarm_scenario::*;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn profiles() -> ProfileSet {
    ProfileSet::load_dir(root().join("agents/profiles")).expect("shipped profiles load")
}

fn shared_available() -> bool {
    quantfarm_engine::data::shared_root().is_ok()
}

/// A scenario text parsed as if it lived in `scenarios/`.
fn parse_here(text: &str) -> Result<Scenario> {
    parse(text, &root().join("scenarios/t.yaml").display().to_string())
}

/// The error text after the file name: `line:col: message`.
fn err_of(text: &str) -> ScenarioError {
    parse_here(text).expect_err("expected an error")
}

const MINIMAL: &str = "\
name: t
models:
  - name: m
    zoo: mobilenet_v1
    width: 0.25
    resolution: 64
techniques:
  - technique: float32
devices: [cpu-host]
";

#[test]
fn shipped_profiles_load() {
    let p = profiles();
    let names: Vec<&str> = p.names().collect();
    for n in [
        "cpu-host",
        "pixel2-bigcore",
        "gpu-adreno",
        "edgetpu-usb",
        "hexagon-dsp",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let tpu = p.get("edgetpu-usb").unwrap();
    assert_eq!(tpu.kind, DeviceKind::Edgetpu);
    assert!(accepts(tpu, Technique::Int8) && !accepts(tpu, Technique::Float32));
    assert!(accepts(tpu, Technique::Original));
    assert!(
        tpu.published
            .iter()
            .any(|f| f.source == "CORAL-BENCH" && f.value == 2.4)
    );
    assert_eq!(p.get("pixel2-bigcore").unwrap().cores, Some(1));
    assert!(!accepts(p.get("gpu-adreno").unwrap(), Technique::Int16x8));
}

#[test]
fn shipped_scenarios_parse_validate_and_expand() {
    let p = profiles();
    for (file, opt, bench) in [
        // 1 model × 2 techniques; per artifact: size + devices × (mapping, latency,
        // accuracy): float32 on 2 devices (the Edge TPU refuses it), int8 on 3.
        ("smoke.yaml", 2, (1 + 2 * 3) + (1 + 3 * 3)),
        // v2 (dequantize): 4 techniques × (size + 2 × (latency, accuracy)); 3 zoo models:
        // 3 techniques (no original) × (size + 2 × latency); 2 CIFAR-10 models: 4
        // techniques (with qat) × (size + 2 × (latency, accuracy)).
        ("table1.yaml", 4 + 3 * 3 + 2 * 4, 4 * 5 + 9 * 3 + 8 * 5),
        // 3 models (2 MobileNets, the int16-effect CIFAR-10 model) × 3 techniques ×
        // (size + 1 device × (latency, accuracy)).
        ("table2.yaml", 9, 9 * 3),
        // 7 techniques run live + 10 committed files, each × (size, latency, accuracy).
        ("techniques.yaml", 7 + 10, 17 * 3),
    ] {
        let s = load(root().join("scenarios").join(file)).unwrap_or_else(|e| panic!("{e}"));
        if !shared_available() {
            eprintln!("shared data not found: skipping validation of {file}");
            continue;
        }
        let g = expand(&s, &p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.optimize_jobs().count(), opt, "{file}");
        assert_eq!(g.benchmark_jobs().count(), bench, "{file}");
        // Dependency order and no dangling edges.
        for (i, j) in g.jobs.iter().enumerate() {
            for d in &j.deps {
                let pos = g.jobs.iter().position(|x| &x.id == d).expect("dep exists");
                assert!(pos < i);
            }
        }
        let ids: std::collections::BTreeSet<_> = g.jobs.iter().map(|j| &j.id).collect();
        assert_eq!(ids.len(), g.jobs.len(), "{file}: ids unique");
    }
}

#[test]
fn smoke_is_three_agents_float32_and_int8() {
    let s = load(root().join("scenarios/smoke.yaml")).unwrap();
    assert_eq!(s.devices.len(), 3);
    let t: Vec<_> = s.techniques.iter().map(|t| t.technique.value).collect();
    assert_eq!(t, [Technique::Float32, Technique::Int8]);
    let c = s.techniques[1].calibration.as_ref().unwrap();
    assert_eq!(
        (c.dataset.as_str(), c.offset, c.limit),
        ("imagenet-sample", 0, 16)
    );
    assert_eq!(
        s.latency,
        LatencySettings {
            warmup: 2,
            runs: 10,
            threads: 1
        }
    );
}

#[test]
fn ids_are_deterministic_and_content_derived() {
    let p = profiles();
    let a = expand(&parse_here(MINIMAL).unwrap(), &p).unwrap();
    let b = expand(&parse_here(MINIMAL).unwrap(), &p).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.jobs.len(), 1 + 3); // optimize + size, mapping, latency
    assert!(
        a.jobs
            .iter()
            .all(|j| j.id.0.len() == 16 && j.id.0.chars().all(|c| c.is_ascii_hexdigit()))
    );
    // Pinned: an id change breaks resuming old runs, so it must be deliberate.
    let again = expand(&parse_here(&format!("# a comment\n{MINIMAL}")).unwrap(), &p).unwrap();
    assert_eq!(
        a.jobs[0].id, again.jobs[0].id,
        "comments and layout do not change ids"
    );
    // Changing the latency runs changes the latency job only.
    let c = expand(
        &parse_here(&format!("{MINIMAL}latency: {{runs: 7}}\n")).unwrap(),
        &p,
    )
    .unwrap();
    let changed: Vec<_> = a
        .jobs
        .iter()
        .zip(&c.jobs)
        .filter(|(x, y)| x.id != y.id)
        .collect();
    assert_eq!(changed.len(), 1);
    assert!(matches!(
        changed[0].1.spec,
        JobSpec::Benchmark {
            metric: Metric::Latency { runs: 7, .. },
            ..
        }
    ));
    // Changing the model changes every job (benchmarks hash their artifact's id).
    let d = expand(
        &parse_here(&MINIMAL.replace("width: 0.25", "width: 0.5")).unwrap(),
        &p,
    )
    .unwrap();
    assert!(a.jobs.iter().zip(&d.jobs).all(|(x, y)| x.id != y.id));
}

/// Ids are persisted by the coordinator: changing the canonical form orphans every
/// stored run, so it must be a deliberate, versioned change.
/// The smoke scenario as it was when these ids were pinned (the shipped file may
/// change; the canonical form of a job must not).
const PINNED_SMOKE: &str = r#"# Smoke test: one small real model, float baseline vs int8, on two agents. < 1 minute.
name: smoke
description: >
  MobileNet v1 0.25/128 (Coral QAT model, dequantized as the float32 baseline) against
  its int8 post-training quantization, on the host CPU and a simulated Pixel 2 big core.

models:
  - name: mobilenet_v1_0.25_128
    dequantize: $shared/models/coral/mobilenet_v1_0.25_128_quant.tflite

techniques:
  - technique: float32
  - technique: int8
    calibration: {dataset: imagenet-sample, offset: 0, limit: 16}

devices: [cpu-host, pixel2-bigcore]

accuracy: {dataset: imagenet-sample, offset: 100, limit: 100}
latency: {warmup: 2, runs: 10, threads: 1}

# Op placement (mapping) needs the device simulators, which come later.
metrics: [size, latency, accuracy]

gates:
  # Loose bounds: 100 images give a top-1 estimate good to a few points only.
  - name: int8-top1
    technique: int8
    max_top1_drop: 0.10
  - name: int8-size
    technique: int8
    max_size_ratio: 0.35
"#;

#[test]
fn smoke_ids_are_pinned() {
    let s = parse_here(PINNED_SMOKE).unwrap();
    if !shared_available() {
        return;
    }
    let g = expand(&s, &profiles()).unwrap();
    assert_eq!(g.jobs[0].id.0, "bd039e31a7a14451");
    assert_eq!(g.jobs[8].id.0, "f5305e4c500f65b0");
    assert_eq!(job_id(&g.jobs[1].spec), g.jobs[1].id);
}

#[test]
fn unaccepted_numerics_are_skipped_unless_fallback() {
    let p = profiles();
    let text = MINIMAL.replace("devices: [cpu-host]", "devices: [cpu-host, edgetpu-usb]")
        + "calibration: {dataset: cifar10-train, limit: 8}\n";
    let text = text.replace(
        "  - technique: float32\n",
        "  - technique: float32\n  - technique: int8\n",
    );
    let g = expand(&parse_here(&text).unwrap(), &p).unwrap();
    // float32: size + cpu (mapping, latency); int8: size + cpu 2 + tpu 2.
    assert_eq!(g.benchmark_jobs().count(), 3 + 5);
    assert_eq!(g.skipped.len(), 1);
    assert_eq!(g.skipped[0].device.as_deref(), Some("edgetpu-usb"));
    assert!(
        g.skipped[0].reason.contains("float32"),
        "{}",
        g.skipped[0].reason
    );
    let g = expand(&parse_here(&(text + "fallback: true\n")).unwrap(), &p).unwrap();
    assert_eq!(g.benchmark_jobs().count(), 3 + 2 + 5);
    assert!(g.skipped.is_empty());
}

#[test]
fn malformed_yaml_reports_line_and_column() {
    let e = err_of("name: t\nmodels:\n  - name: m\n zoo: x\n");
    assert_eq!((e.line, e.column), (4, 2), "{e}");
    assert!(e.to_string().contains("t.yaml:4:2: "), "{e}");
    assert!(!e.to_string().contains('\n'));
}

#[test]
fn unknown_key_is_an_error() {
    let e = err_of(&MINIMAL.replace("devices:", "devises:"));
    assert_eq!(e.line, 9, "{e}");
    assert!(e.message.contains("unknown field `devises`"), "{e}");
    let e = err_of(&MINIMAL.replace("    width: 0.25\n", "    width: 0.25\n    colour: red\n"));
    assert_eq!((e.line, e.column), (6, 5), "{e}");
    assert!(e.message.contains("colour"), "{e}");
}

#[test]
fn wrong_types_are_errors() {
    let e = err_of(&MINIMAL.replace("resolution: 64", "resolution: big"));
    assert_eq!((e.line, e.column), (6, 17), "{e}");
    assert_eq!(e.message, "expected a whole number ≥ 0");
    let e = err_of(&format!("{MINIMAL}fallback: yes\n"));
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (10, 11, "expected true or false")
    );
    let e = err_of("");
    assert_eq!(e.line, 1, "{e}");
    let e = err_of(&MINIMAL.replace("devices: [cpu-host]", "devices: cpu-host"));
    assert_eq!(e.line, 9, "{e}");
    assert!(e.message.starts_with("expected a list"), "{e}");
    let e = err_of(&MINIMAL.replace("technique: float32", "technique: int4"));
    assert_eq!((e.line, e.column), (8, 16), "{e}");
    assert!(
        e.message.contains("int4") && e.message.contains("int16x8"),
        "{e}"
    );
}

#[test]
fn unknown_names_are_errors_at_their_position() {
    let p = profiles();
    let s = parse_here(&MINIMAL.replace("[cpu-host]", "[cpu-host, tpu9000]")).unwrap();
    let e = s.validate(&p).unwrap_err();
    assert_eq!((e.line, e.column), (9, 21), "{e}");
    assert!(
        e.message.contains("unknown device 'tpu9000'") && e.message.contains("edgetpu-usb"),
        "{e}"
    );
    assert!(expand(&s, &p).is_err());

    let e = err_of(&MINIMAL.replace("zoo: mobilenet_v1", "zoo: alexnet"));
    assert_eq!((e.line, e.column), (4, 10), "{e}");
    assert!(e.message.contains("alexnet"), "{e}");

    let e = err_of(&format!("{MINIMAL}accuracy: {{dataset: mnist}}\n"));
    assert_eq!((e.line, e.column), (10, 21), "{e}");
    assert!(e.message.contains("imagenet-sample"), "{e}");
}

#[test]
fn overlapping_calibration_and_accuracy_slices() {
    let base = MINIMAL.replace("  - technique: float32\n", "  - technique: float32\n  - technique: int8\n    calibration: {dataset: cifar10-test, offset: 0, limit: 100}\n");
    let e = err_of(&format!(
        "{base}accuracy: {{dataset: cifar10, offset: 50, limit: 100}}\n"
    ));
    assert_eq!((e.line, e.column), (10, 18), "{e}");
    assert!(
        e.message.contains("overlaps")
            && e.message.contains("[0..100)")
            && e.message.contains("[50..150)"),
        "{e}"
    );
    // Adjacent is fine; so is another dataset; unlimited accuracy from 100 is fine too.
    parse_here(&format!(
        "{base}accuracy: {{dataset: cifar10-test, offset: 100, limit: 100}}\n"
    ))
    .unwrap();
    parse_here(&format!(
        "{base}accuracy: {{dataset: cifar10-train, offset: 0}}\n"
    ))
    .unwrap();
    parse_here(&format!(
        "{base}accuracy: {{dataset: cifar10-test, offset: 100}}\n"
    ))
    .unwrap();
    let e = err_of(&format!(
        "{base}accuracy: {{dataset: cifar10-test, offset: 99}}\n"
    ));
    assert!(e.message.contains("[99..end)"), "{e}");
}

#[test]
fn missing_model_file() {
    let text = MINIMAL.replace(
        "    zoo: mobilenet_v1\n    width: 0.25\n    resolution: 64\n",
        "    file: no/such/model.tflite\n",
    );
    let s = parse_here(&text).unwrap();
    let e = s.validate(&profiles()).unwrap_err();
    assert_eq!((e.line, e.column), (4, 11), "{e}");
    assert!(
        e.message.contains("model file not found") && e.message.contains("no/such/model.tflite"),
        "{e}"
    );
}

#[test]
fn slices_must_fit_their_dataset() {
    if !shared_available() {
        return;
    }
    let p = profiles();
    // imagenet-sample has 1000 images.
    let s = parse_here(&format!(
        "{MINIMAL}accuracy: {{dataset: imagenet-sample, offset: 900, limit: 200}}\n"
    ))
    .unwrap();
    let e = s.validate(&p).unwrap_err();
    assert_eq!((e.line, e.column), (10, 11), "{e}");
    assert!(
        e.message.starts_with(
            "accuracy slice of imagenet-sample: offset 900 + limit 200 goes past the end"
        ),
        "{e}"
    );
    let text = MINIMAL.replace(
        "technique: float32",
        "technique: int8\n    calibration: {dataset: imagenet-sample, offset: 1000, limit: 1}",
    );
    let e = parse_here(&text).unwrap().validate(&p).unwrap_err();
    assert!(
        e.message.contains("calibration slice")
            && e.message.contains("offset 1000 is out of range"),
        "{e}"
    );
    parse_here(&format!(
        "{MINIMAL}accuracy: {{dataset: imagenet-sample, offset: 900}}\n"
    ))
    .unwrap()
    .validate(&p)
    .unwrap();
}

#[test]
fn structural_errors() {
    // Two sources.
    let e = err_of(&MINIMAL.replace(
        "    zoo: mobilenet_v1\n",
        "    zoo: mobilenet_v1\n    file: x.tflite\n",
    ));
    assert!(e.message.contains("exactly one of"), "{e}");
    // int8 without calibration.
    let e = err_of(&MINIMAL.replace("technique: float32", "technique: int8"));
    assert_eq!((e.line, e.column), (8, 16), "{e}");
    assert!(e.message.contains("calibration"), "{e}");
    // Calibration on a technique that takes none.
    let e = err_of(&MINIMAL.replace(
        "technique: float32",
        "technique: float16\n    calibration: {dataset: cifar10, limit: 4}",
    ));
    assert!(e.message.contains("takes no calibration"), "{e}");
    // Duplicate label; duplicate device; empty lists.
    let e = err_of(&MINIMAL.replace(
        "  - technique: float32\n",
        "  - technique: float32\n  - technique: float32\n",
    ));
    assert!(e.message.contains("duplicate technique label"), "{e}");
    let e = err_of(&MINIMAL.replace("[cpu-host]", "[cpu-host, cpu-host]"));
    assert!(e.message.contains("duplicate device"), "{e}");
    let e = err_of(&MINIMAL.replace("[cpu-host]", "[]"));
    assert!(e.message.contains("at least one device"), "{e}");
    // Accuracy metric without a slice; gate on an unmeasured metric; dangling gate refs.
    let e = err_of(&format!("{MINIMAL}metrics: [accuracy]\n"));
    assert!(e.message.contains("accuracy:"), "{e}");
    let e = err_of(&format!(
        "{MINIMAL}gates:\n  - {{name: g, max_top1_drop: 0.1}}\n"
    ));
    assert!(e.message.contains("needs the accuracy metric"), "{e}");
    let e = err_of(&format!(
        "{MINIMAL}gates:\n  - {{name: g, full_mapping: edgetpu-usb}}\n"
    ));
    assert_eq!((e.line, e.column), (11, 29), "{e}");
    let e = err_of(&format!(
        "{MINIMAL}gates:\n  - {{name: g, technique: int8, max_size_ratio: 0.3}}\n"
    ));
    assert!(e.message.contains("unknown technique label 'int8'"), "{e}");
    let e = err_of(&format!(
        "{MINIMAL}gates:\n  - {{name: g, max_size_ratio: 0.3, full_mapping: cpu-host}}\n"
    ));
    assert!(e.message.contains("exactly one of"), "{e}");
    // Duplicate keys are errors too (silently taking the last one hides typos).
    let e = err_of(&format!("{MINIMAL}fallback: true\nfallback: false\n"));
    assert_eq!(e.line, 11, "{e}");
    // Too many jobs.
    let mut big = String::from("name: t\nmodels:\n");
    for i in 0..200 {
        big += &format!("  - {{name: m{i}, zoo: mobilenet_v1}}\n");
    }
    big += "techniques:\n";
    for i in 0..30 {
        big += &format!("  - {{technique: float16, label: f{i}}}\n");
    }
    big += "devices: [a, b, c, d, e, f]\n";
    let e = err_of(&big);
    assert!(e.message.contains("expected at most 100000"), "{e}");
    // Numbers out of range.
    let e = err_of(&format!("{MINIMAL}latency: {{runs: 0}}\n"));
    assert!(e.message.contains("runs 0"), "{e}");
    // The engine's bounds (measure::limits), with the value's position.
    let e = err_of(&format!("{MINIMAL}latency: {{warmup: 10001}}\n"));
    assert!(
        e.message.contains("warmup 10001: expected 0..=10000"),
        "{e}"
    );
    assert!(e.line > 0 && e.column > 0, "{e}");
    let e = err_of(&format!("{MINIMAL}latency: {{runs: 100001}}\n"));
    assert!(
        e.message.contains("runs 100001: expected 1..=100000"),
        "{e}"
    );
    let e = err_of(&format!("{MINIMAL}latency: {{threads: 65}}\n"));
    assert!(e.message.contains("threads 65: expected 1..=64"), "{e}");
    let e = err_of(&MINIMAL.replace("width: 0.25", "width: .nan"));
    assert!(e.message.contains("width"), "{e}");
}

#[test]
fn threads_beyond_profile_cores() {
    let s = parse_here(&format!(
        "{}latency: {{threads: 4}}\n",
        MINIMAL.replace("[cpu-host]", "[pixel2-bigcore]")
    ))
    .unwrap();
    let e = s.validate(&profiles()).unwrap_err();
    assert!(e.message.contains("1 cores"), "{e}");
}

#[test]
fn profile_errors() {
    let e = DeviceProfile::parse(
        "name: x\nkind: npu\ndescription: d\naccepts: [int8]\n",
        "x.yaml",
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (2, 7), "{e}");
    let e = DeviceProfile::parse(
        "name: x\nkind: cpu\ndescription: d\naccepts: [int8]\nspeed: 3\n",
        "x.yaml",
    )
    .unwrap_err();
    assert_eq!(e.line, 5, "{e}");
    let e = DeviceProfile::parse(
        "name: x\nkind: cpu\ndescription: d\naccepts: [original]\n",
        "x.yaml",
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (4, 11), "{e}");
    assert!(e.message.contains("not a numeric"), "{e}");
    let e = ProfileSet::load_dir("/no/such/dir").unwrap_err();
    assert_eq!(e.line, 0);
    assert!(e.to_string().starts_with("/no/such/dir: "), "{e}");
}

fn meas(model: &str, tech: &str, device: Option<&str>, value: Observed) -> Measurement {
    Measurement {
        model: model.into(),
        technique: tech.into(),
        device: device.map(Into::into),
        value,
    }
}

fn gate(kind: GateKind, technique: Option<&str>) -> Gate {
    Gate {
        name: "g1".into(),
        kind,
        model: None,
        technique: technique.map(Into::into),
        device: None,
        line: 1,
        column: 1,
    }
}

#[test]
fn gate_checks() {
    let f32b = Baseline::Technique("float32".into());
    let r = Results {
        measurements: vec![
            meas("m", "float32", Some("cpu"), Observed::Top1(0.70)),
            meas("m", "int8", Some("cpu"), Observed::Top1(0.68)),
            meas("m", "int16x8", Some("cpu"), Observed::Top1(0.64)),
            meas("m", "float32", Some("cpu"), Observed::LatencyMs(100.0)),
            meas("m", "int8", Some("cpu"), Observed::LatencyMs(60.0)),
            meas("m", "float32", None, Observed::SizeBytes(4000)),
            meas("m", "int8", None, Observed::SizeBytes(1100)),
            meas(
                "m",
                "int8",
                Some("tpu"),
                Observed::Mapping {
                    delegated: 30,
                    total: 31,
                },
            ),
            meas(
                "m",
                "int8",
                Some("cpu"),
                Observed::Mapping {
                    delegated: 31,
                    total: 31,
                },
            ),
        ],
        previous: vec![meas("m", "int8", Some("cpu"), Observed::LatencyMs(50.0))],
    };
    let o = check(
        &gate(
            GateKind::MaxTop1Drop {
                max: 0.02,
                baseline: f32b.clone(),
            },
            Some("int8"),
        ),
        &r,
    );
    assert_eq!(o.status, GateStatus::Pass, "{}", o.message);
    let o = check(
        &gate(
            GateKind::MaxTop1Drop {
                max: 0.02,
                baseline: f32b.clone(),
            },
            None,
        ),
        &r,
    );
    assert_eq!(o.status, GateStatus::Fail);
    assert!(
        o.message.starts_with("gate 'g1' failed (1 of 2 checks)")
            && o.message.contains("m/int16x8 on cpu"),
        "{}",
        o.message
    );
    let o = check(
        &gate(
            GateKind::MaxLatencyRegression {
                max: 0.0,
                baseline: f32b.clone(),
            },
            None,
        ),
        &r,
    );
    assert!(o.passed(), "{}", o.message);
    let o = check(
        &gate(
            GateKind::MaxLatencyRegression {
                max: 0.1,
                baseline: Baseline::Previous,
            },
            None,
        ),
        &r,
    );
    assert_eq!(o.status, GateStatus::Fail);
    assert!(o.message.contains("+20.0% > +10.0%"), "{}", o.message);
    let o = check(
        &gate(
            GateKind::MaxSizeRatio {
                max: 0.3,
                baseline: f32b.clone(),
            },
            Some("int8"),
        ),
        &r,
    );
    assert!(o.passed(), "{}", o.message);
    let o = check(
        &gate(
            GateKind::MaxSizeRatio {
                max: 0.25,
                baseline: f32b.clone(),
            },
            Some("int8"),
        ),
        &r,
    );
    assert!(o.message.contains("ratio 0.275 > 0.25"), "{}", o.message);
    let o = check(
        &gate(
            GateKind::FullMapping {
                device: "tpu".into(),
            },
            None,
        ),
        &r,
    );
    assert!(
        o.message.contains("30 of 31 ops mapped, 1 fall back"),
        "{}",
        o.message
    );
    let o = check(
        &gate(
            GateKind::FullMapping {
                device: "cpu".into(),
            },
            None,
        ),
        &r,
    );
    assert!(o.passed());
    let o = check(
        &gate(
            GateKind::FullMapping {
                device: "gpu".into(),
            },
            None,
        ),
        &r,
    );
    assert_eq!(o.status, GateStatus::NoData);
    assert!(o.message.contains("g1"));
    // A NaN measurement fails rather than passing silently.
    let mut bad = r.clone();
    bad.measurements
        .push(meas("m", "dyn", Some("cpu"), Observed::Top1(f64::NAN)));
    let o = check(
        &gate(
            GateKind::MaxTop1Drop {
                max: 0.5,
                baseline: f32b,
            },
            Some("dyn"),
        ),
        &bad,
    );
    assert_eq!(o.status, GateStatus::Fail);
    assert_eq!(check_all(&[], &r), vec![]);
}

#[test]
fn scenario_gates_parse_into_kinds() {
    // Inline, not a shipped scenario: those change their gates as the reports need.
    let s = parse_here(&format!(
        "{}  - technique: int8\n    calibration: {{dataset: imagenet-sample, limit: 8}}\n\
         devices: [cpu-host, pixel2-bigcore]\ngates:\n  - name: int8-not-slower\n    technique: int8\n    \
         device: pixel2-bigcore\n    max_latency_regression: 0.0\n    baseline: float32\n",
        MINIMAL.replace("devices: [cpu-host]\n", "")
    ))
    .unwrap();
    let g = s
        .gates
        .iter()
        .find(|g| g.name == "int8-not-slower")
        .unwrap();
    assert_eq!(
        g.kind,
        GateKind::MaxLatencyRegression {
            max: 0.0,
            baseline: Baseline::Technique("float32".into())
        }
    );
    assert_eq!(g.device.as_deref(), Some("pixel2-bigcore"));
    assert!(g.line > 0);
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// 1–4 random edits: delete, insert or replace a byte (from YAML's syntax characters),
/// duplicate a line elsewhere, or truncate.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let alphabet: &[u8] = b" :-[]{}#&*!|>'\"\n\t0123456789.,abcxyz_?%@`\\";
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..(1 + rng.next() % 4) {
        let len = bytes.len().max(1);
        let i = (rng.next() as usize) % len;
        match rng.next() % 5 {
            0 if !bytes.is_empty() => {
                bytes.remove(i.min(bytes.len() - 1));
            }
            1 => {
                let c = alphabet[(rng.next() as usize) % alphabet.len()];
                bytes.insert(i.min(bytes.len()), c);
            }
            2 if !bytes.is_empty() => {
                let j = i.min(bytes.len() - 1);
                bytes[j] = alphabet[(rng.next() as usize) % alphabet.len()];
            }
            3 => {
                let s = String::from_utf8_lossy(&bytes).into_owned();
                let lines: Vec<&str> = s.lines().collect();
                if !lines.is_empty() {
                    let a = (rng.next() as usize) % lines.len();
                    let b = (rng.next() as usize) % lines.len();
                    let mut v = lines.clone();
                    v.insert(b, lines[a]);
                    bytes = v.join("\n").into_bytes();
                }
            }
            _ => bytes.truncate(i.min(bytes.len())),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Random mutations of smoke.yaml: parsing, validation and expansion must return Ok
/// or a one-line error naming the file, never panic.
#[test]
fn mutations_never_panic() {
    let text = std::fs::read_to_string(root().join("scenarios/smoke.yaml")).unwrap();
    let p = profiles();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let (mut ok, mut errors) = (0, 0);
    for _ in 0..1500 {
        let s = mutate(&text, &mut rng);
        match parse(&s, "scenarios/smoke.yaml").and_then(|sc| expand(&sc, &p).map(|_| ())) {
            Ok(()) => ok += 1,
            Err(e) => {
                errors += 1;
                let t = e.to_string();
                assert!(t.starts_with("scenarios/smoke.yaml"), "{t}");
                assert!(!t.contains('\n'), "{t}");
            }
        }
    }
    eprintln!("smoke mutations: {ok} ok, {errors} errors");
    assert!(
        errors > 100,
        "mutations should mostly break the file ({errors})"
    );
    // Same for a profile.
    let text = std::fs::read_to_string(root().join("agents/profiles/edgetpu-usb.yaml")).unwrap();
    for _ in 0..1000 {
        let s = mutate(&text, &mut rng);
        if let Err(e) = DeviceProfile::parse(&s, "edgetpu-usb.yaml") {
            assert!(e.to_string().starts_with("edgetpu-usb.yaml"), "{e}");
        }
    }
}

/// The coordinator stores and ships jobs as serde data: a round trip keeps them equal
/// and a received spec still hashes to its id.
#[test]
fn job_graph_round_trips_through_serde() {
    let p = profiles();
    let g = expand(&parse_here(MINIMAL).unwrap(), &p).unwrap();
    let json = serde_json::to_string(&g).unwrap();
    let back: JobGraph = serde_json::from_str(&json).unwrap();
    assert_eq!(back, g);
    for j in &back.jobs {
        assert_eq!(job_id(&j.spec), j.id);
    }
    let bench = g
        .benchmark_jobs()
        .find(|j| {
            matches!(
                j.spec,
                JobSpec::Benchmark {
                    metric: Metric::Latency { .. },
                    ..
                }
            )
        })
        .unwrap();
    assert_eq!(
        g.measurement_key(bench),
        Some(("m".into(), "float32".into(), Some("cpu-host".into())))
    );
    assert_eq!(g.artifact_job(bench).map(|j| &j.id), Some(&g.jobs[0].id));
    assert_eq!(g.measurement_key(&g.jobs[0]), None);
    assert_eq!(bench.required_device(), Some("cpu-host"));
    assert_eq!(g.jobs[0].required_device(), None);
}

/// Two models: one takes every technique, the other only its listed labels, with its
/// own calibration and accuracy slices; `qat` carries its training settings.
const PER_MODEL: &str = "\
name: t
models:
  - name: big
    zoo: mobilenet_v1
    width: 0.25
    resolution: 64
    techniques: [float32, int8]
  - name: small
    zoo: mobilenet_v2
    width: 0.35
    resolution: 32
    techniques: [float32, int8, qat]
    calibration: {dataset: cifar10-train, offset: 0, limit: 50, stride: 100}
    accuracy: {dataset: cifar10-test}
techniques:
  - technique: float32
  - technique: int8
  - technique: qat
    training: {dataset: cifar10-train, limit: 2000, epochs: 2}
devices: [cpu-host]
calibration: {dataset: imagenet-sample, offset: 0, limit: 16}
accuracy: {dataset: imagenet-sample, offset: 100, limit: 50}
";

#[test]
fn per_model_techniques_calibration_and_accuracy() {
    let s = parse_here(PER_MODEL).unwrap();
    let qat = s.technique("qat").unwrap();
    assert_eq!(qat.technique.value, Technique::Qat);
    let tr = qat.training.as_ref().unwrap();
    assert_eq!(
        (tr.dataset.as_str(), tr.limit, tr.epochs, tr.seed),
        ("cifar10-train", Some(2000), 2, 1)
    );
    assert!(qat.calibration.is_none());
    let (big, small) = (&s.models[0], &s.models[1]);
    let int8 = s.technique("int8").unwrap();
    assert_eq!(
        s.calibration_for(big, int8).unwrap().dataset,
        "imagenet-sample"
    );
    let c = s.calibration_for(small, int8).unwrap();
    assert_eq!(
        (c.dataset.as_str(), c.limit, c.stride, c.span()),
        ("cifar10-train", 50, 100, 4901)
    );
    assert_eq!(s.accuracy_for(big).unwrap().dataset, "imagenet-sample");
    assert_eq!(s.accuracy_for(small).unwrap().dataset, "cifar10-test");
    if !shared_available() {
        return;
    }
    let g = expand(&s, &profiles()).unwrap();
    let opt: Vec<(String, Technique, Option<String>, bool)> = g
        .optimize_jobs()
        .map(|j| match &j.spec {
            JobSpec::Optimize {
                model,
                technique,
                calibration,
                training,
                ..
            } => (
                model.name.clone(),
                *technique,
                calibration.as_ref().map(|c| c.dataset.clone()),
                training.is_some(),
            ),
            JobSpec::Benchmark { .. } => unreachable!(),
        })
        .collect();
    assert_eq!(
        opt,
        [
            ("big".into(), Technique::Float32, None, false),
            (
                "big".into(),
                Technique::Int8,
                Some("imagenet-sample".into()),
                false
            ),
            ("small".into(), Technique::Float32, None, false),
            (
                "small".into(),
                Technique::Int8,
                Some("cifar10-train".into()),
                false
            ),
            ("small".into(), Technique::Qat, None, true),
        ]
    );
    let datasets: Vec<(String, String)> = g
        .benchmark_jobs()
        .filter_map(|j| match &j.spec {
            JobSpec::Benchmark {
                metric: Metric::Accuracy { dataset, .. },
                ..
            } => Some((g.measurement_key(j).unwrap().0, dataset.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(datasets.len(), 5);
    for (model, dataset) in datasets {
        let want = if model == "big" {
            "imagenet-sample"
        } else {
            "cifar10-test"
        };
        assert_eq!(dataset, want, "{model}");
    }
    // A stride and training settings change the job's id; the same text keeps it.
    let again = expand(&parse_here(PER_MODEL).unwrap(), &profiles()).unwrap();
    assert_eq!(g, again);
    let other = expand(
        &parse_here(&PER_MODEL.replace("epochs: 2", "epochs: 3")).unwrap(),
        &profiles(),
    )
    .unwrap();
    let qat_id = |g: &JobGraph| g.optimize_jobs().last().unwrap().id.clone();
    assert_ne!(qat_id(&g), qat_id(&other));
    let strided = |g: &JobGraph| g.optimize_jobs().nth(3).unwrap().id.clone();
    let other = expand(
        &parse_here(&PER_MODEL.replace("stride: 100", "stride: 99")).unwrap(),
        &profiles(),
    )
    .unwrap();
    assert_ne!(strided(&g), strided(&other));
}

#[test]
fn per_model_and_training_errors() {
    // qat needs training settings, and only qat takes them.
    let e = err_of(&PER_MODEL.replace(
        "    training: {dataset: cifar10-train, limit: 2000, epochs: 2}\n",
        "",
    ));
    assert!(e.message.contains("expected `training:"), "{e}");
    let e = err_of(&PER_MODEL.replace(
        "  - technique: float32\n",
        "  - technique: float32\n    training: {dataset: cifar10-train}\n",
    ));
    assert!(e.message.contains("does not train"), "{e}");
    // Only the labelled training set, a sane epoch count and limit.
    let e = err_of(&PER_MODEL.replace(
        "training: {dataset: cifar10-train",
        "training: {dataset: cifar10-test",
    ));
    assert!(e.message.contains("expected cifar10-train"), "{e}");
    let e = err_of(&PER_MODEL.replace("epochs: 2", "epochs: 0"));
    assert!(e.message.contains("epochs 0"), "{e}");
    let e = err_of(&PER_MODEL.replace("limit: 2000", "limit: 0"));
    assert!(e.message.contains("training limit 0"), "{e}");
    // A model lists declared labels only, and at least one.
    let e = err_of(&PER_MODEL.replace("[float32, int8, qat]", "[float32, int4]"));
    assert!(
        e.message.contains("'int4'") && e.message.contains("float32, int8, qat"),
        "{e}"
    );
    assert_eq!(e.line, 12, "{e}");
    let e = err_of(&PER_MODEL.replace("[float32, int8, qat]", "[]"));
    assert!(e.message.contains("at least one technique label"), "{e}");
    let e = err_of(&PER_MODEL.replace("stride: 100", "stride: 0"));
    assert!(e.message.contains("stride 0"), "{e}");
    // A model's accuracy slice must not overlap its calibration span or training set.
    let e = err_of(&PER_MODEL.replace(
        "accuracy: {dataset: cifar10-test}",
        "accuracy: {dataset: cifar10-train, offset: 4900}",
    ));
    assert!(
        e.message
            .contains("calibration slice cifar10-train[0..4901)")
            && e.message.contains("model 'small'"),
        "{e}"
    );
    let e = err_of(&PER_MODEL.replace(
        "accuracy: {dataset: cifar10-test}",
        "accuracy: {dataset: cifar10-train, offset: 4901}",
    ));
    assert!(e.message.contains("training slice cifar10-train"), "{e}");
    // A model's calibration slice must fit its dataset (the span, with the stride).
    if shared_available() {
        let s = parse_here(&PER_MODEL.replace("limit: 50, stride: 100", "limit: 501, stride: 100"))
            .unwrap();
        let e = expand(&s, &profiles()).unwrap_err();
        assert!(
            e.message.contains("calibration slice of cifar10-train"),
            "{e}"
        );
    }
}

/// `prune`, `cluster`, `pqat` and `cqat`: the structure they fine-tune to rides in
/// `training:`; prune and cluster quantize by PTQ, so they take a calibration slice.
const STRUCTURED: &str = "\
name: t
models:
  - name: small
    zoo: mobilenet_v2
    width: 0.35
    resolution: 32
techniques:
  - technique: prune
    training: {dataset: cifar10-train, limit: 2000, sparsity: 0.75}
  - technique: cluster
    training: {dataset: cifar10-train, limit: 2000, clusters: 16, init: linear}
  - technique: pqat
    training: {dataset: cifar10-train, limit: 2000, sparsity: 0.5}
  - technique: cqat
    training: {dataset: cifar10-train, limit: 2000, clusters: 32}
devices: [cpu-host]
calibration: {dataset: cifar10-train, offset: 0, limit: 50, stride: 100}
accuracy: {dataset: cifar10-test, limit: 100}
";

#[test]
fn structure_techniques_take_their_settings() {
    let s = parse_here(STRUCTURED).unwrap();
    let t = |l: &str| s.technique(l).unwrap();
    let tr = |l: &str| t(l).training.clone().unwrap();
    assert_eq!(t("prune").technique.value, Technique::Prune);
    assert_eq!(
        (tr("prune").sparsity, tr("prune").clusters),
        (Some(0.75), None)
    );
    assert_eq!(
        (tr("cluster").clusters, tr("cluster").init.as_deref()),
        (Some(16), Some("linear"))
    );
    assert_eq!((tr("cqat").clusters, tr("cqat").init), (Some(32), None));
    assert_eq!(tr("pqat").sparsity, Some(0.5));
    // PTQ after pruning or clustering needs calibration; PQAT/CQAT take QAT's ranges.
    assert!(t("prune").calibration.is_some() && t("cluster").calibration.is_some());
    assert!(t("pqat").calibration.is_none() && t("cqat").calibration.is_none());
    for l in ["prune", "cluster", "pqat", "cqat"] {
        assert_eq!(Technique::parse(l), Some(t(l).technique.value));
    }
    if shared_available() {
        // The structure is part of the job id.
        let g = expand(&s, &profiles()).unwrap();
        let other = expand(
            &parse_here(&STRUCTURED.replace("sparsity: 0.75", "sparsity: 0.9")).unwrap(),
            &profiles(),
        )
        .unwrap();
        let prune = |g: &JobGraph| {
            g.optimize_jobs()
                .find(|j| matches!(&j.spec, JobSpec::Optimize { technique, .. } if *technique == Technique::Prune))
                .unwrap()
                .id
                .clone()
        };
        assert_ne!(prune(&g), prune(&other));
        assert_eq!(g.optimize_jobs().count(), 4);
    }

    // Errors name the line and what is wrong.
    let cases = [
        ("sparsity: 0.75", "sparsity: 1.5", "sparsity 1.5"),
        (
            "limit: 2000, sparsity: 0.75}",
            "limit: 2000}",
            "expected `sparsity:`",
        ),
        ("clusters: 16, init: linear", "clusters: 15", "even number"),
        ("init: linear", "init: random", "init 'random'"),
        (
            "limit: 2000, clusters: 32}",
            "limit: 2000}",
            "expected `clusters:`",
        ),
        (
            "limit: 2000, sparsity: 0.5}",
            "limit: 2000, sparsity: 0.5, clusters: 8}",
            "does not cluster",
        ),
        (
            "limit: 2000, clusters: 32}",
            "limit: 2000, clusters: 32, sparsity: 0.5}",
            "does not prune",
        ),
    ];
    for (from, to, want) in cases {
        let e = err_of(&STRUCTURED.replacen(from, to, 1));
        assert!(e.message.contains(want), "{to}: {e}");
        assert!(e.line >= 8, "{to}: {e}");
    }
}

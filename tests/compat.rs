//! `quantfarm compat`: the compiler-style summary, the JSON keys, the release gate's
//! exit code, profiles by name and by path, bad input.

mod cli_common;

use cli_common::*;

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn json_has_the_documented_keys_and_the_compilers_cut() {
    let m = coral("deeplabv3_mnv2_dm05_pascal_quant.tflite");
    let v = json_of(&quantfarm(&[
        "compat",
        path(&m),
        "--device",
        "edgetpu-usb",
        "--json",
    ]));
    for k in [
        "device",
        "ops_total",
        "ops_on_device",
        "ops_on_cpu",
        "segments",
        "ops",
        "predicted_latency_ms",
    ] {
        assert!(v.get(k).is_some(), "{k} missing");
    }
    assert_eq!(v["device"], "edgetpu-usb");
    assert_eq!(v["ops_total"], 72);
    assert_eq!(v["ops_on_device"], 64);
    assert_eq!(v["ops_on_cpu"], 8);
    assert_eq!(v["segments"], 1);
    let ops = v["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 72);
    for (i, o) in ops.iter().enumerate() {
        assert_eq!(o["index"], i);
        for k in ["op", "placement", "reason", "predicted_ms"] {
            assert!(o.get(k).is_some(), "op {i}: {k} missing");
        }
        let want = if i < 64 { "device" } else { "cpu" };
        assert_eq!(o["placement"], want, "op {i}");
    }
    assert_eq!(ops[64]["op"], "RESIZE_BILINEAR");
    assert_eq!(
        ops[64]["reason"],
        "Operation is otherwise supported, but not mapped due to some unspecified limitation"
    );
    assert_eq!(ops[65]["reason"], "More than one subgraph is not supported");
    let total = v["predicted_latency_ms"].as_f64().unwrap();
    let sum: f64 = ops
        .iter()
        .map(|o| o["predicted_ms"].as_f64().unwrap())
        .sum();
    assert!(total > 0.0 && sum <= total + 1e-9, "{sum} vs {total}");
}

#[test]
fn text_summary_reads_like_the_compiler_log() {
    let m = coral("deeplabv3_mnv2_dm05_pascal_quant.tflite");
    let out = quantfarm(&["compat", path(&m), "--device", "edgetpu-devboard"]);
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    for line in [
        "Number of Edge TPU subgraphs: 1",
        "Total number of operations: 72",
        "Number of operations that will run on Edge TPU: 64",
        "Number of operations that will run on CPU: 8",
        "Operator                       Count      Status",
        "Mapped to Edge TPU",
        "More than one subgraph is not supported",
        "Operation not supported",
        "Predicted latency:",
    ] {
        assert!(s.contains(line), "'{line}' missing from:\n{s}");
    }
}

#[test]
fn require_full_mapping_is_the_release_gate() {
    let full = coral("mobilenet_v1_0.25_128_quant.tflite");
    let partial = coral("deeplabv3_mnv2_dm05_pascal_quant.tflite");
    let ok = quantfarm(&[
        "compat",
        path(&full),
        "--device",
        "edgetpu-usb",
        "--require-full-mapping",
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = quantfarm(&[
        "compat",
        path(&partial),
        "--device",
        "edgetpu-usb",
        "--require-full-mapping",
        "--json",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    // The report is still printed, and the reason on stderr.
    let v: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(v["ops_on_cpu"], 8);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("gate failed"));
    // A float model never maps to the Edge TPU: the gate fails too.
    let float = tmp("mnv1_float.tflite");
    let z = quantfarm(&[
        "zoo",
        "mobilenet_v1",
        "--width",
        "0.25",
        "--resolution",
        "64",
        "-o",
        path(&float),
    ]);
    assert!(z.status.success(), "{}", String::from_utf8_lossy(&z.stderr));
    let f = quantfarm(&[
        "compat",
        path(&float),
        "--device",
        "edgetpu-usb",
        "--require-full-mapping",
    ]);
    assert_eq!(f.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&f.stdout)
            .contains("Operation is working on an unsupported data type")
    );
}

#[test]
fn profiles_by_name_or_path_and_bad_input() {
    let m = coral("mobilenet_v1_0.25_128_quant.tflite");
    let by_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("agents/profiles/hexagon-dsp.yaml");
    let v = json_of(&quantfarm(&[
        "compat",
        path(&m),
        "--device",
        path(&by_path),
        "--json",
    ]));
    assert_eq!(v["device"], "hexagon-dsp");
    // The host CPU is measured, not predicted.
    let v = json_of(&quantfarm(&[
        "compat",
        path(&m),
        "--device",
        "cpu-host",
        "--json",
    ]));
    assert!(v["predicted_latency_ms"].is_null());
    assert_eq!(v["ops_on_cpu"], 0);
    assert_user_error(
        &quantfarm(&["compat", path(&m), "--device", "tpu-9000"]),
        "tpu-9000",
    );
    assert_user_error(
        &quantfarm(&["compat", path(&m), "--device", "/no/such/device.yaml"]),
        "/no/such/device.yaml",
    );
    let bad = tmp("bad-device.yaml");
    std::fs::write(
        &bad,
        "name: bad-device\nkind: gpu\ndescription: d\naccepts: [float32]\nsimulated: true\n",
    )
    .unwrap();
    let out = quantfarm(&[
        "compat",
        path(&m),
        "--device",
        path(&bad),
        "--profiles",
        "agents/profiles",
    ]);
    assert_user_error(&out, "bad-device.yaml:1:");
    assert_user_error(
        &quantfarm(&["compat", "/no/model.tflite", "--device", "edgetpu-usb"]),
        "/no/model.tflite",
    );
}

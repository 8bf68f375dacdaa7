//! Small model files whose shapes claim huge tensors, in every way a file can (a large
//! batch, large images, many ops sharing one weight, a huge FC, CONCATENATION, PAD and
//! RESIZE_BILINEAR outputs, a shape whose byte count overflows 64 bits), through every
//! engine command: each must exit 2 with the memory-limit error naming the file, within
//! seconds, under an address-space limit (`ulimit -v`) far below what the model claims
//! — so a command that allocated before refusing would be killed by the limit instead
//! of exiting 2, and the test would fail.

mod cli_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cli_common::*;
use quantfarm_engine::ir::{
    Conv2DOptions, DType, FullyConnectedOptions, Graph, Model, Op, OpKind, Tensor,
};

/// Address space each command may use (KiB for `ulimit -v`): 3 GiB, a fraction of
/// what every model here claims.
const ADDRESS_SPACE_KIB: u64 = 3 << 20;
/// Wall time each refusal may take.
const MAX_SECONDS: u64 = 10;

fn f32_act(g: &mut Graph, name: &str, shape: &[usize]) -> usize {
    g.add_tensor(Tensor::activation(name, shape.to_vec(), DType::F32))
}

fn write(name: &str, g: Graph) -> PathBuf {
    let path = tmp(&format!("{name}.tflite"));
    let bytes = quantfarm_engine::tflite::write_model(&Model::from_graph(g, name)).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `[n, h, w, 3]` float image → 3×3 conv to 8 channels.
fn conv_model(name: &str, n: usize, h: usize, w: usize) -> PathBuf {
    let mut g = Graph::default();
    let x = f32_act(&mut g, "image", &[n, h, w, 3]);
    let f = g.add_tensor(Tensor::constant_f32(
        "filter",
        vec![8, 3, 3, 3],
        &[0.01; 216],
    ));
    let b = g.add_tensor(Tensor::constant_f32("bias", vec![8], &[0.0; 8]));
    let y = f32_act(&mut g, "features", &[n, h, w, 8]);
    g.add_op(Op::new(
        OpKind::Conv2D(Conv2DOptions::default()),
        vec![x, f, b],
        vec![y],
    ));
    g.inputs = vec![x];
    g.outputs = vec![y];
    write(name, g)
}

/// Many FULLY_CONNECTED ops reading one input and sharing one 16 KiB weight: each
/// kernel packs its own copy of the weights (padded to whole register panels).
fn many_ops_model() -> PathBuf {
    let mut g = Graph::default();
    let x = f32_act(&mut g, "x", &[1, 4096]);
    let w = g.add_tensor(Tensor::constant_f32(
        "shared_w",
        vec![1, 4096],
        &[0.5; 4096],
    ));
    g.inputs = vec![x];
    for i in 0..20_000 {
        let y = f32_act(&mut g, &format!("y{i}"), &[1, 1]);
        g.add_op(Op::new(
            OpKind::FullyConnected(FullyConnectedOptions::default()),
            vec![x, w],
            vec![y],
        ));
        g.outputs.push(y);
    }
    write("many_ops", g)
}

/// FULLY_CONNECTED over 2^28 rows of 64.
fn huge_fc_model() -> PathBuf {
    let mut g = Graph::default();
    let x = f32_act(&mut g, "rows", &[1 << 28, 64]);
    let w = g.add_tensor(Tensor::constant_f32("w", vec![16, 64], &[0.1; 1024]));
    let y = f32_act(&mut g, "out", &[1 << 28, 16]);
    g.add_op(Op::new(
        OpKind::FullyConnected(FullyConnectedOptions::default()),
        vec![x, w],
        vec![y],
    ));
    g.inputs = vec![x];
    g.outputs = vec![y];
    write("huge_fc", g)
}

/// CONCATENATION of 64 inputs of 1 GiB each.
fn concat_model() -> PathBuf {
    let mut g = Graph::default();
    let parts: Vec<usize> = (0..64)
        .map(|i| f32_act(&mut g, &format!("part{i}"), &[256, 1 << 20]))
        .collect();
    let y = f32_act(&mut g, "joined", &[256 * 64, 1 << 20]);
    g.add_op(Op::new(
        OpKind::Concatenation {
            axis: 0,
            activation: quantfarm_engine::ir::Activation::None,
        },
        parts.clone(),
        vec![y],
    ));
    g.inputs = parts;
    g.outputs = vec![y];
    write("huge_concat", g)
}

/// PAD of an 8×8 image by 100 000 pixels on each side.
fn pad_model(pad: usize) -> PathBuf {
    let mut g = Graph::default();
    let x = f32_act(&mut g, "small", &[1, 8, 8, 3]);
    let p = pad as i32;
    let paddings = g.add_tensor(Tensor::constant_i32(
        "paddings",
        vec![4, 2],
        &[0, 0, p, p, p, p, 0, 0],
    ));
    let y = f32_act(&mut g, "padded", &[1, 8 + 2 * pad, 8 + 2 * pad, 3]);
    g.add_op(Op::new(OpKind::Pad, vec![x, paddings], vec![y]));
    g.inputs = vec![x];
    g.outputs = vec![y];
    write(&format!("huge_pad_{pad}"), g)
}

/// RESIZE_BILINEAR of a 2×2 image to 100 000 × 100 000.
fn resize_model() -> PathBuf {
    let mut g = Graph::default();
    let x = f32_act(&mut g, "tiny", &[1, 2, 2, 3]);
    let size = g.add_tensor(Tensor::constant_i32("size", vec![2], &[100_000, 100_000]));
    let y = f32_act(&mut g, "resized", &[1, 100_000, 100_000, 3]);
    g.add_op(Op::new(
        OpKind::ResizeBilinear {
            align_corners: false,
            half_pixel_centers: false,
        },
        vec![x, size],
        vec![y],
    ));
    g.inputs = vec![x];
    g.outputs = vec![y];
    write("huge_resize", g)
}

/// A tensor of 2^63 float32 elements: its byte count does not fit in 64 bits.
fn overflow_model() -> PathBuf {
    let mut g = Graph::default();
    let x = f32_act(&mut g, "endless", &[1 << 30, 1 << 30, 8]);
    let y = f32_act(&mut g, "relu", &[1 << 30, 1 << 30, 8]);
    g.add_op(Op::new(OpKind::Relu, vec![x], vec![y]));
    g.inputs = vec![x];
    g.outputs = vec![y];
    write("overflow", g)
}

/// `quantfarm ARGS` under the address-space limit, with its wall time.
fn bounded(args: &[&str]) -> (Output, Duration) {
    let t = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_quantfarm"))
        .args(args)
        .env("QUANTFARM_DATA", shared())
        .env_remove("QUANTFARM_MEMORY_LIMIT")
        .output()
        .expect("sh runs");
    (out, t.elapsed())
}

/// Every engine command that prepares a model, on `model`, with `extra` arguments.
fn engine_commands(model: &Path, extra: &[&str]) -> Vec<(String, Vec<String>)> {
    let m = model.to_str().unwrap().to_string();
    let out = tmp("huge_out").to_str().unwrap().to_string();
    let raw = tmp("huge_in.bin").to_str().unwrap().to_string();
    let q = tmp("huge_quantized.tflite").to_str().unwrap().to_string();
    let mut cmds: Vec<Vec<String>> = vec![
        vec![
            "bench".into(),
            m.clone(),
            "--runs".into(),
            "1".into(),
            "--warmup".into(),
            "0".into(),
        ],
        vec![
            "infer".into(),
            m.clone(),
            "--input-raw".into(),
            raw,
            "--output-raw".into(),
            out,
        ],
        vec!["eval".into(), m.clone(), "--limit".into(), "1".into()],
        vec![
            "quantize".into(),
            m.clone(),
            "--mode".into(),
            "int8".into(),
            "--calibration-size".into(),
            "1".into(),
            "-o".into(),
            q,
        ],
    ];
    for c in &mut cmds {
        c.extend(extra.iter().map(|s| s.to_string()));
    }
    cmds.into_iter().map(|c| (c[0].clone(), c)).collect()
}

/// `model` is refused by every engine command: exit 2, one line naming the file and
/// containing `needle`, no panic, within [`MAX_SECONDS`] under the address-space limit.
fn assert_refused_everywhere(model: &Path, extra: &[&str], needle: &str) {
    let file = model.file_name().unwrap().to_str().unwrap();
    for (cmd, args) in engine_commands(model, extra) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (out, took) = bounded(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{cmd} {file}: not a clean refusal (killed by the address-space limit?): {:?}\n{err}",
            out.status
        );
        assert_user_error(&out, file);
        assert!(
            err.contains(needle),
            "{cmd} {file}: '{needle}' not in: {err}"
        );
        assert!(
            err.contains("--memory-limit") || needle.contains("64 bits"),
            "{err}"
        );
        assert!(
            took < Duration::from_secs(MAX_SECONDS),
            "{cmd} {file}: took {took:?}"
        );
    }
}

#[test]
fn huge_claimed_tensors_are_refused_by_every_engine_command() {
    let limited = ["--memory-limit", "1G"];
    let refusal = "above the memory limit of 1.0 GiB";
    let models = [
        conv_model("large_batch", 65_536, 224, 224),
        conv_model("large_spatial", 1, 50_000, 50_000),
        many_ops_model(),
        huge_fc_model(),
        concat_model(),
        pad_model(100_000),
        resize_model(),
    ];
    for m in &models {
        assert!(
            std::fs::metadata(m).unwrap().len() < 4 << 20,
            "{}: the model files are small",
            m.display()
        );
        assert_refused_everywhere(m, &limited, refusal);
    }
    // A byte count past 64 bits is refused as such, whatever the limit.
    assert_refused_everywhere(&overflow_model(), &[], "more bytes than 64 bits can count");
}

/// Without `--memory-limit` the default (half of this machine's memory) applies: a
/// model claiming exabytes is refused on any machine.
#[test]
fn the_default_limit_refuses_what_no_machine_holds() {
    let m = pad_model(1 << 29);
    assert_refused_everywhere(&m, &[], "above the memory limit of");
}

/// The limit is the knob: a model that needs about 200 MiB is refused under
/// `--memory-limit 64M` with the plan's breakdown, and runs under the default.
#[test]
fn memory_limit_refuses_and_admits() {
    let m = conv_model("medium", 1, 2048, 2048);
    let path = m.to_str().unwrap();
    let (out, _) = bounded(&[
        "bench",
        path,
        "--runs",
        "1",
        "--warmup",
        "0",
        "--memory-limit",
        "64M",
    ]);
    assert_user_error(&out, "medium.tflite");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("to prepare (arena ")
            && err.contains("packed weights")
            && err.contains("above the memory limit of 64.0 MiB"),
        "{err}"
    );
    assert!(
        err.contains("largest tensor is 3 'features' [1, 2048, 2048, 8] float32, 128.0 MiB"),
        "{err}"
    );
    // The environment sets it too.
    let out = Command::new(env!("CARGO_BIN_EXE_quantfarm"))
        .args(["bench", path, "--runs", "1", "--warmup", "0"])
        .env("QUANTFARM_MEMORY_LIMIT", "64M")
        .output()
        .unwrap();
    assert_user_error(&out, "above the memory limit of 64.0 MiB");
    let (out, _) = bounded(&["bench", path, "--runs", "1", "--warmup", "0", "--json"]);
    let v = json_of(&out);
    assert!(v["planned_bytes"].as_u64().unwrap() > 128 << 20, "{v}");
    // A size without a unit is a mistake, not a 4-byte limit.
    let (out, _) = bounded(&["bench", path, "--memory-limit", "4"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unit may be missing"), "{err}");
}

/// `compat` predicts placement and latency without preparing the model: it finishes
/// quickly on the same files, without panicking or exhausting memory.
#[test]
fn compat_reads_huge_claims_without_allocating_them() {
    for m in [
        conv_model("large_batch", 65_536, 224, 224),
        many_ops_model(),
        pad_model(100_000),
        overflow_model(),
    ] {
        for device in ["cpu-host", "edgetpu-usb"] {
            let (out, took) = bounded(&["compat", m.to_str().unwrap(), "--device", device]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                matches!(out.status.code(), Some(0..=2)),
                "compat {} on {device}: {:?}\n{err}",
                m.display(),
                out.status
            );
            assert!(!err.contains("panicked"), "{err}");
            assert!(took < Duration::from_secs(MAX_SECONDS), "{took:?}");
        }
    }
}

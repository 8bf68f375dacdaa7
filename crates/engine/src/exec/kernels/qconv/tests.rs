//! Fast vs reference on random shapes for every ISA, thread count and scheme, plus
//! small hand-computed cases.

use super::*;
use crate::exec::kernels::Parallelism;
use crate::exec::kernels::cpu::{self, available_isas, with_isa};
use crate::exec::kernels::geometry::{Geometry, out_and_pad};
use crate::exec::kernels::test_util::Rng;
use crate::ir::Padding;
use crate::quant::fixed_point::{Multiplier, Rounding, quantize_multiplier};

/// Random activations, weights, bias and parameters of one scheme.
struct Case {
    q: QParams,
    bias: Option<Vec<i64>>,
}

fn params(rng: &mut Rng, scheme: QScheme, n: usize, k: usize) -> Case {
    let (in_zp, w_zp, out_zp, lo, hi) = match scheme {
        QScheme::Uint8 => (
            rng.range(0, 255),
            rng.range(0, 255),
            rng.range(0, 255),
            0,
            255,
        ),
        QScheme::Int8 => (rng.range(-128, 127), 0, rng.range(-128, 127), -128, 127),
        QScheme::Int16x8 => (0, 0, 0, -32768, 32767),
    };
    // Scale the multiplier so outputs spread over the range, sometimes above 1.
    let span = match scheme {
        QScheme::Int16x8 => 32768.0 * 128.0,
        _ => 128.0 * 128.0,
    } * (k as f64).sqrt();
    let range = (hi - lo) as f64;
    let mult = (0..n)
        .map(|_| {
            // Some channels get a multiplier above 1 (left shift in MBQM).
            let boost = if rng.range(0, 6) == 0 { 300.0 } else { 1.0 };
            let real = range / span * (0.05 + 4.0 * rng.unit()) * boost;
            quantize_multiplier(real, Rounding::Double)
        })
        .collect();
    let (act_min, act_max) = if rng.range(0, 2) == 0 {
        (lo as i32, hi as i32)
    } else {
        let a = rng.range(lo, (lo + hi) / 2) as i32;
        (a, rng.range(a as i64, hi) as i32)
    };
    let bmax = if scheme == QScheme::Int16x8 {
        1 << 30
    } else {
        1 << 16
    };
    let bias = (rng.range(0, 3) > 0).then(|| (0..n).map(|_| rng.range(-bmax, bmax)).collect());
    Case {
        q: QParams {
            scheme,
            in_zp: in_zp as i32,
            w_zp: w_zp as i32,
            out_zp: out_zp as i32,
            mult,
            act_min,
            act_max,
            rounding: Rounding::Double,
            float_requant: None,
        },
        bias,
    }
}

fn rand_vec<T: QElem>(rng: &mut Rng, n: usize, lo: i64, hi: i64) -> Vec<T> {
    (0..n)
        .map(|_| T::from_i32(rng.range(lo, hi) as i32))
        .collect()
}

fn random_geom(rng: &mut Rng, depthwise: bool, big: bool) -> Geometry {
    let k_h = rng.range(1, 3) as usize;
    let k_w = rng.range(1, 3) as usize;
    let stride_h = rng.range(1, 2) as usize;
    let stride_w = rng.range(1, 2) as usize;
    let dilation_h = rng.range(1, 2) as usize;
    let dilation_w = rng.range(1, 2) as usize;
    let in_h = rng.range(5, if big { 14 } else { 8 }) as usize;
    let in_w = rng.range(5, if big { 14 } else { 8 }) as usize;
    let in_c = rng.range(1, if big { 70 } else { 20 }) as usize;
    let depth_multiplier = if depthwise {
        rng.range(1, 3) as usize
    } else {
        1
    };
    let out_c = if depthwise {
        in_c * depth_multiplier
    } else {
        rng.range(1, if big { 90 } else { 40 }) as usize
    };
    let padding = if rng.range(0, 1) == 0 {
        Padding::Same
    } else {
        Padding::Valid
    };
    let (out_h, pad_top) = out_and_pad(padding, in_h, k_h, stride_h, dilation_h).unwrap();
    let (out_w, pad_left) = out_and_pad(padding, in_w, k_w, stride_w, dilation_w).unwrap();
    Geometry {
        batch: rng.range(1, 2) as usize,
        in_h,
        in_w,
        in_c,
        out_h,
        out_w,
        out_c,
        k_h,
        k_w,
        stride_h,
        stride_w,
        dilation_h,
        dilation_w,
        pad_top,
        pad_left,
        depth_multiplier,
    }
}

/// Runs `fast` under every ISA with 1 and 2 threads and compares with `want`.
fn every_path<T: QElem + PartialEq + std::fmt::Debug>(
    what: &str,
    want: &[T],
    fast: impl Fn(&mut [T], Parallelism) + Sync,
) {
    for isa in available_isas() {
        // AVX-512 runs twice where the machine has AMX: VNNI only, then with tiles.
        let amx_modes: &[bool] = if isa == cpu::Isa::Avx512 && cpu::amx_usable() {
            &[false, true]
        } else {
            &[false]
        };
        for &amx in amx_modes {
            with_isa(isa, || {
                cpu::with_amx(amx, || {
                    for threads in [1, 2] {
                        let mut got = vec![T::from_i32(0); want.len()];
                        // Two threads run on the engine's pool (`exec::parallel`), split
                        // even for the small test shapes.
                        crate::exec::parallel::split_everything(|| {
                            fast(&mut got, Parallelism { threads })
                        });
                        let bad = got.iter().zip(want).position(|(a, b)| a != b);
                        assert!(
                            bad.is_none(),
                            "{what}, {isa:?}, amx {amx}, {threads} threads: first difference at {bad:?}"
                        );
                    }
                })
            });
        }
    }
}

fn conv_case<T: QElem + PartialEq + std::fmt::Debug, W: QElem>(
    rng: &mut Rng,
    scheme: QScheme,
    g: &Geometry,
    (xl, xh): (i64, i64),
    (wl, wh): (i64, i64),
) {
    let k = g.k_h * g.k_w * g.in_c;
    let c = params(rng, scheme, g.out_c, k);
    let x: Vec<T> = rand_vec(rng, g.input_len(), xl, xh);
    let w: Vec<W> = rand_vec(rng, g.conv_filter_len(), wl, wh);
    let mut want = vec![T::from_i32(0); g.output_len()];
    conv_reference(g, &c.q, &x, &w, c.bias.as_deref(), &mut want).unwrap();
    every_path(&format!("conv {scheme:?} {g:?}"), &want, |out, par| {
        PackedQConv::new(g, &c.q, &w, c.bias.as_deref())
            .unwrap()
            .run(&x, out, par)
    });
}

fn dw_case<T: QElem + PartialEq + std::fmt::Debug, W: QElem>(
    rng: &mut Rng,
    scheme: QScheme,
    g: &Geometry,
    (xl, xh): (i64, i64),
    (wl, wh): (i64, i64),
) {
    let c = params(rng, scheme, g.out_c, g.k_h * g.k_w);
    let x: Vec<T> = rand_vec(rng, g.input_len(), xl, xh);
    let w: Vec<W> = rand_vec(rng, g.depthwise_filter_len(), wl, wh);
    let mut want = vec![T::from_i32(0); g.output_len()];
    depthwise_reference(g, &c.q, &x, &w, c.bias.as_deref(), &mut want).unwrap();
    every_path(&format!("depthwise {scheme:?} {g:?}"), &want, |out, par| {
        PackedQDepthwise::new(g, &c.q, &w, c.bias.as_deref())
            .unwrap()
            .run(&x, out, par)
    });
}

fn fc_case<T: QElem + PartialEq + std::fmt::Debug, W: QElem>(
    rng: &mut Rng,
    scheme: QScheme,
    g: &QFcGeom,
    (xl, xh): (i64, i64),
    (wl, wh): (i64, i64),
) {
    let mut c = params(rng, scheme, g.units, g.depth);
    // Half the cases requantize as LiteRT's reference FC does: f64 scales near the
    // multipliers' (every SIMD epilogue must step aside for them).
    let float = rng.range(0, 1) == 1;
    if float {
        let reals = c
            .q
            .mult
            .iter()
            .map(|m| m.m as f64 * 2f64.powi(m.shift - 31) * (1.0 + 1e-3 * rng.range(-5, 5) as f64))
            .collect();
        c.q.float_requant = Some(reals);
    }
    let x: Vec<T> = rand_vec(rng, g.rows * g.depth, xl, xh);
    let w: Vec<W> = rand_vec(rng, g.units * g.depth, wl, wh);
    let mut want = vec![T::from_i32(0); g.rows * g.units];
    fc_reference(g, &c.q, &x, &w, c.bias.as_deref(), &mut want).unwrap();
    every_path(
        &format!("fc {scheme:?} {g:?} float {float}"),
        &want,
        |out, par| {
            PackedQFc::new(g, &c.q, &w, c.bias.as_deref())
                .unwrap()
                .run(&x, out, par)
        },
    );
}

const U8: (i64, i64) = (0, 255);
const I8: (i64, i64) = (-128, 127);
const I8W: (i64, i64) = (-127, 127);
const I16: (i64, i64) = (-32768, 32767);

#[test]
fn conv_fast_matches_reference() {
    let mut rng = Rng::new(1);
    for i in 0..24 {
        let g = random_geom(&mut rng, false, i % 6 == 0);
        conv_case::<u8, u8>(&mut rng, QScheme::Uint8, &g, U8, U8);
        conv_case::<i8, i8>(&mut rng, QScheme::Int8, &g, I8, I8W);
        conv_case::<i16, i8>(&mut rng, QScheme::Int16x8, &g, I16, I8);
    }
}

#[test]
fn depthwise_fast_matches_reference() {
    let mut rng = Rng::new(2);
    for i in 0..24 {
        let g = random_geom(&mut rng, true, i % 6 == 0);
        dw_case::<u8, u8>(&mut rng, QScheme::Uint8, &g, U8, U8);
        dw_case::<i8, i8>(&mut rng, QScheme::Int8, &g, I8, I8W);
        dw_case::<i16, i8>(&mut rng, QScheme::Int16x8, &g, I16, I8);
    }
}

#[test]
fn fc_fast_matches_reference() {
    let mut rng = Rng::new(3);
    for i in 0..20 {
        let g = QFcGeom {
            rows: rng.range(1, if i % 5 == 0 { 70 } else { 5 }) as usize,
            depth: rng.range(1, if i % 4 == 0 { 700 } else { 40 }) as usize,
            units: rng.range(1, 80) as usize,
        };
        fc_case::<u8, u8>(&mut rng, QScheme::Uint8, &g, U8, U8);
        fc_case::<i8, i8>(&mut rng, QScheme::Int8, &g, I8, I8W);
        fc_case::<i16, i8>(&mut rng, QScheme::Int16x8, &g, I16, I8);
    }
}

/// Extreme values: int16 sums that overflow int32 and need the blocked int64 path;
/// int8 sums that wrap.
#[test]
fn extremes_match_reference() {
    let mut rng = Rng::new(4);
    let g = QFcGeom {
        rows: 3,
        depth: 1000,
        units: 17,
    };
    fc_case::<i16, i8>(
        &mut rng,
        QScheme::Int16x8,
        &g,
        (-32768, -32768),
        (-128, -128),
    );
    fc_case::<i16, i8>(&mut rng, QScheme::Int16x8, &g, (32767, 32767), (-128, -128));
    fc_case::<u8, u8>(&mut rng, QScheme::Uint8, &g, (255, 255), (0, 0));
    fc_case::<i8, i8>(&mut rng, QScheme::Int8, &g, (-128, -128), (-127, -127));
}

fn unit_params(scheme: QScheme, in_zp: i32, w_zp: i32, out_zp: i32, n: usize) -> QParams {
    QParams {
        scheme,
        in_zp,
        w_zp,
        out_zp,
        // Real multiplier 0.5.
        mult: vec![quantize_multiplier(0.5, Rounding::Double); n],
        act_min: if scheme == QScheme::Uint8 { 0 } else { -128 },
        act_max: if scheme == QScheme::Uint8 { 255 } else { 127 },
        rounding: Rounding::Double,
        float_requant: None,
    }
}

#[test]
fn hand_checked_conv_int8() {
    // 1×3×3×1 input, 2×2 kernel, SAME padding, stride 1: the bottom/right taps are
    // skipped at the border (= input zero point 1).
    let g = Geometry {
        batch: 1,
        in_h: 3,
        in_w: 3,
        in_c: 1,
        out_h: 3,
        out_w: 3,
        out_c: 1,
        k_h: 2,
        k_w: 2,
        stride_h: 1,
        stride_w: 1,
        dilation_h: 1,
        dilation_w: 1,
        pad_top: 0,
        pad_left: 0,
        depth_multiplier: 1,
    };
    let q = unit_params(QScheme::Int8, 1, 0, -3, 1);
    let x: Vec<i8> = vec![2, 3, 4, 5, 6, 7, 8, 9, 10]; // minus zp: 1..9
    let w: Vec<i8> = vec![1, 2, 3, 4];
    let bias = [1i64];
    // Top-left: 1·1 + 2·2 + 4·3 + 5·4 = 37, +1 = 38, ×0.5 = 19, −3 = 16.
    // Right column (x=2): 3·1 + 6·3 = 21 +1 = 22 → 11 − 3 = 8.
    // Bottom-right: 9·1 = 9 + 1 = 10 → 5 − 3 = 2.
    let mut out = vec![0i8; 9];
    conv_reference(&g, &q, &x, &w, Some(&bias), &mut out).unwrap();
    assert_eq!(out[0], 16);
    assert_eq!(out[2], 8);
    assert_eq!(out[8], 2);
    // Ties: 37 + 1 = 38 is even; bias 0 gives 37 × 0.5 = 18.5 → 19 (away from zero) − 3.
    conv_reference(&g, &q, &x, &w, None, &mut out).unwrap();
    assert_eq!(out[0], 16);
    let mut fast = vec![0i8; 9];
    PackedQConv::new(&g, &q, &w, None)
        .unwrap()
        .run(&x, &mut fast, Parallelism::SINGLE);
    assert_eq!(fast, out);
}

#[test]
fn fc_float_requantization_is_litert_reference_rounding() {
    // Found on a trained model's logits: acc 18, real in_s·w_s/out_s =
    // 0.24416398751066373. LiteRT's reference FC gives round(4.39) = 4; the
    // multiplier's double rounding gives 5 (SRDHM: 18·0.9767 → 18, then 18/4 → 5).
    let g = QFcGeom {
        rows: 1,
        depth: 1,
        units: 1,
    };
    let real = 0.24416398751066373;
    let mut q = unit_params(QScheme::Int8, -9, 0, 30, 1);
    q.mult = vec![quantize_multiplier(real, Rounding::Double)];
    let (x, w) = (vec![9i8], vec![1i8]);
    let mut out = vec![0i8];
    fc_reference(&g, &q, &x, &w, Some(&[0]), &mut out).unwrap();
    assert_eq!(out, [35], "the multiplier's double rounding");
    q.float_requant = Some(vec![real]);
    for (bias, want) in [(0i64, 34i8), (-36, 26), (-38, 25)] {
        // 18 → 4.39 → 4; −18 → −4.39 → −4; −20 → −4.88 → −5 (half away from zero
        // only matters at exact halves).
        fc_reference(&g, &q, &x, &w, Some(&[bias]), &mut out).unwrap();
        assert_eq!(out, [want], "bias {bias}");
        let packed = PackedQFc::new(&g, &q, &w, Some(&[bias])).unwrap();
        packed.run(&x, &mut out, Parallelism::SINGLE);
        assert_eq!(out, [want], "packed, bias {bias}");
    }
    // Exact halves round away from zero: acc ±2 at real 0.25 → ±0.5 → ±1.
    q.float_requant = Some(vec![0.25]);
    for (bias, want) in [(-16i64, 31i8), (-20, 29)] {
        fc_reference(&g, &q, &x, &w, Some(&[bias]), &mut out).unwrap();
        assert_eq!(out, [want], "half, bias {bias}");
    }
}

#[test]
fn hand_checked_uint8_fc_and_depthwise() {
    // uint8 FC with weight zero point 128: w − 128 ∈ {−1, 1}, x − 100 ∈ {10, 20}.
    let g = QFcGeom {
        rows: 1,
        depth: 2,
        units: 1,
    };
    let q = unit_params(QScheme::Uint8, 100, 128, 50, 1);
    let (x, w) = (vec![110u8, 120], vec![127u8, 129]);
    let mut out = vec![0u8];
    // (−1)·10 + 1·20 = 10 → 5 + 50 = 55.
    fc_reference(&g, &q, &x, &w, None, &mut out).unwrap();
    assert_eq!(out, [55]);
    // Depthwise, 1 pixel, 2 channels, multiplier 2 (4 outputs), 1×1 kernel.
    let g = Geometry {
        batch: 1,
        in_h: 1,
        in_w: 1,
        in_c: 2,
        out_h: 1,
        out_w: 1,
        out_c: 4,
        k_h: 1,
        k_w: 1,
        stride_h: 1,
        stride_w: 1,
        dilation_h: 1,
        dilation_w: 1,
        pad_top: 0,
        pad_left: 0,
        depth_multiplier: 2,
    };
    let q = unit_params(QScheme::Uint8, 100, 128, 50, 4);
    let w = vec![130u8, 126, 132, 124]; // offsets 2, −2, 4, −4
    let mut out = vec![0u8; 4];
    // Channel 0 (x−zp 10): 20 → 60, −20 → 40; channel 1 (20): 80 → 90, −80 → 10.
    depthwise_reference(&g, &q, &x, &w, None, &mut out).unwrap();
    assert_eq!(out, [60, 40, 90, 10]);
}

#[test]
fn bad_sizes_are_errors() {
    let g = QFcGeom {
        rows: 1,
        depth: 2,
        units: 1,
    };
    let q = unit_params(QScheme::Int8, 0, 0, 0, 1);
    assert!(PackedQFc::new(&g, &q, &[1i8], None).is_err());
    assert!(fc_reference(&g, &q, &[1i8, 2], &[1i8, 2], Some(&[1, 2]), &mut [0i8]).is_err());
}

/// Each conv/depthwise/FC of a real model, run alone on the input LiteRT's reference
/// kernels saw, must reproduce LiteRT's output. Needs the dump written by
/// `dump.py` (set `QCONV_DUMP=/tmp/qconv_dump`); ignored by default.
#[test]
#[ignore]
fn litert_layers_bit_exact() {
    use crate::exec::{Interpreter, InterpreterOptions, KernelChoice};
    use crate::ir::{Graph, Model, Op};
    let Ok(root) = std::env::var("QCONV_DUMP") else {
        eprintln!("QCONV_DUMP not set");
        return;
    };
    let shared = crate::data::shared_root().expect("shared folder");
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let model =
            crate::tflite::read_model_file(&shared.join(format!("models/coral/{name}.tflite")))
                .unwrap();
        let src = model.main();
        let ops: Vec<usize> =
            serde_json::from_slice(&std::fs::read(dir.join("ops.json")).unwrap()).unwrap();
        let mut passed = 0;
        for &oi in &ops {
            let op = &src.ops[oi];
            let mut g = Graph::default();
            let mut ids = Vec::new();
            for t in op.inputs.iter() {
                ids.push(t.map(|t| g.add_tensor(src.tensors[t].clone())));
            }
            let y = g.add_tensor(src.tensors[op.outputs[0]].clone());
            let x = ids[0].unwrap();
            g.inputs = vec![x];
            g.outputs = vec![y];
            g.add_op(Op {
                kind: op.kind.clone(),
                inputs: ids,
                outputs: vec![y],
                intermediates: vec![],
                version: op.version,
            });
            let m = Model::from_graph(g, "layer");
            let input = std::fs::read(dir.join(format!("{oi}_in.bin"))).unwrap();
            let want = std::fs::read(dir.join(format!("{oi}_out.bin"))).unwrap();
            let mut ok = true;
            for kernels in [KernelChoice::Reference, KernelChoice::Fast] {
                let opts = InterpreterOptions {
                    kernels,
                    ..Default::default()
                };
                let mut it = Interpreter::new(&m, opts).unwrap();
                it.set_input_bytes(0, &input).unwrap();
                it.invoke();
                let got = it.output_bytes(0);
                if got != want.as_slice() {
                    let diff = got.iter().zip(&want).filter(|(a, b)| a != b).count();
                    failures.push(format!(
                        "{name} op {oi} {} {kernels:?}: {diff} of {} bytes differ",
                        op.kind.name(),
                        want.len()
                    ));
                    ok = false;
                }
            }
            passed += ok as usize;
        }
        eprintln!("{name}: {passed}/{} layers bit-exact", ops.len());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// On-CPU nanoseconds of this thread (robust to other processes sharing the cores).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Per-layer CPU time of the fast kernels on MobileNetV2-like shapes (release only:
/// `cargo test --release --lib qconv_timing -- --ignored --nocapture`).
#[test]
#[ignore]
fn qconv_timing() {
    let mut rng = Rng::new(9);
    let geo = |hw, ic, oc, k, s, pad, ohw, m| Geometry {
        batch: 1,
        in_h: hw,
        in_w: hw,
        in_c: ic,
        out_h: ohw,
        out_w: ohw,
        out_c: oc,
        k_h: k,
        k_w: k,
        stride_h: s,
        stride_w: s,
        dilation_h: 1,
        dilation_w: 1,
        pad_top: pad,
        pad_left: pad,
        depth_multiplier: m,
    };
    let time = |f: &mut dyn FnMut()| {
        f();
        let t0 = thread_cpu_ns();
        let mut n = 0;
        while thread_cpu_ns() - t0 < 300_000_000 {
            f();
            n += 1;
        }
        (thread_cpu_ns() - t0) as f64 / n as f64 / 1e3
    };
    // QCONV_TIMING=substring runs only the matching layers (for profiling one).
    let only = std::env::var("QCONV_TIMING").unwrap_or_default();
    for isa in available_isas() {
        with_isa(isa, || {
            for (name, g) in [
                ("conv1x1 112x112 32->16", geo(112, 32, 16, 1, 1, 0, 112, 1)),
                ("conv1x1 112x112 16->96", geo(112, 16, 96, 1, 1, 0, 112, 1)),
                ("conv1x1 56x56 24->144", geo(56, 24, 144, 1, 1, 0, 56, 1)),
                ("conv1x1 56x56 144->24", geo(56, 144, 24, 1, 1, 0, 56, 1)),
                ("conv1x1 14x14 384->64", geo(14, 384, 64, 1, 1, 0, 14, 1)),
                ("conv1x1 7x7 960->160", geo(7, 960, 160, 1, 1, 0, 7, 1)),
                ("conv3x3s2 224 3->32", geo(224, 3, 32, 3, 2, 0, 112, 1)),
            ] {
                if !name.contains(only.as_str()) {
                    continue;
                }
                let mut c = params(&mut rng, QScheme::Int8, g.out_c, 100);
                // Real layers' multipliers are below 1 (right shifts), as the fast
                // requantization needs.
                for m in &mut c.q.mult {
                    m.shift = m.shift.min(-1);
                }
                let x: Vec<i8> = rand_vec(&mut rng, g.input_len(), -128, 127);
                let w: Vec<i8> = rand_vec(&mut rng, g.conv_filter_len(), -127, 127);
                let k = PackedQConv::new(&g, &c.q, &w, c.bias.as_deref()).unwrap();
                let mut out = vec![0i8; g.output_len()];
                let us = time(&mut || k.run(&x, &mut out, Parallelism::SINGLE));
                let gops = 2.0 * (g.output_len() * g.k_h * g.k_w * g.in_c) as f64 / us / 1e3;
                eprintln!("{isa:?} int8 {name}: {us:.0} µs ({gops:.1} GOP/s)");
            }
            for (name, g) in [
                ("dw3x3s1 112 32", geo(112, 32, 32, 3, 1, 1, 112, 1)),
                ("dw3x3s2 112 96", geo(112, 96, 96, 3, 2, 0, 56, 1)),
                ("dw3x3s1 56 144", geo(56, 144, 144, 3, 1, 1, 56, 1)),
                ("dw3x3s1 14 576", geo(14, 576, 576, 3, 1, 1, 14, 1)),
            ] {
                if !name.contains(only.as_str()) {
                    continue;
                }
                let c = params(&mut rng, QScheme::Int8, g.out_c, 9);
                let x: Vec<i8> = rand_vec(&mut rng, g.input_len(), -128, 127);
                let w: Vec<i8> = rand_vec(&mut rng, g.depthwise_filter_len(), -127, 127);
                let k = PackedQDepthwise::new(&g, &c.q, &w, c.bias.as_deref()).unwrap();
                let mut out = vec![0i8; g.output_len()];
                let us = time(&mut || k.run(&x, &mut out, Parallelism::SINGLE));
                let gops = 2.0 * (g.output_len() * 9) as f64 / us / 1e3;
                eprintln!("{isa:?} int8 {name}: {us:.0} µs ({gops:.1} GOP/s)");
            }
        });
    }
}

/// MobileNet-like depthwise layers through the VNNI path (channel counts that are not
/// multiples of 16 or 64, stride 2, 5×5 kernels with 25 taps in 7 groups), with
/// uint8 weight zero points 128 (no Σx correction) and others, and extreme inputs.
#[test]
fn depthwise_vnni_layers_match_reference() {
    let mut rng = Rng::new(7);
    let layers = [
        (9, 32, 3, 1),
        (10, 96, 3, 2),
        (7, 144, 3, 1),
        (6, 200, 3, 2),
        (5, 7, 3, 1),
        (8, 70, 5, 1),
        (4, 17, 1, 1),
    ];
    for (i, &(hw, ch, k, s)) in layers.iter().enumerate() {
        let pad = (k - 1) / 2;
        let out_hw = (hw + 2 * pad - k) / s + 1;
        let g = Geometry {
            batch: 1 + i % 2,
            in_h: hw,
            in_w: hw + 1,
            in_c: ch,
            out_h: out_hw,
            out_w: (hw + 1 + 2 * pad - k) / s + 1,
            out_c: ch,
            k_h: k,
            k_w: k,
            stride_h: s,
            stride_w: s,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: pad,
            pad_left: pad,
            depth_multiplier: 1,
        };
        let c = params(&mut rng, QScheme::Int8, ch, k * k);
        let w: Vec<i8> = rand_vec(&mut rng, g.depthwise_filter_len(), -127, 127);
        let f = cpu::features();
        if f.avx512bw && f.avx512vnni && std::arch::is_x86_feature_detected!("avx512vbmi") {
            with_isa(cpu::Isa::Avx512, || {
                let k = PackedQDepthwise::new(&g, &c.q, &w, c.bias.as_deref()).unwrap();
                assert!(k.uses_vnni(), "VNNI depthwise not taken");
            });
        }
        if f.avx512f && f.avx512bw && f.avx512dq {
            with_isa(cpu::Isa::Avx512, || {
                let c = params(&mut rng.clone(), QScheme::Int16x8, ch, k * k);
                let k = PackedQDepthwise::new(&g, &c.q, &w, c.bias.as_deref()).unwrap();
                assert!(k.uses_dw16(), "int16 AVX-512 depthwise not taken");
            });
        }
        dw_case::<i8, i8>(&mut rng, QScheme::Int8, &g, I8, I8W);
        dw_case::<u8, u8>(&mut rng, QScheme::Uint8, &g, U8, U8);
        // int16x8 (tap pairs of 32 channels, masked tails), also at the extremes.
        dw_case::<i16, i8>(&mut rng, QScheme::Int16x8, &g, I16, I8);
        dw_case::<i16, i8>(
            &mut rng,
            QScheme::Int16x8,
            &g,
            (-32768, -32768),
            (-128, -128),
        );
        dw_case::<i16, i8>(&mut rng, QScheme::Int16x8, &g, (32767, 32767), (-128, -128));
        // Extremes: every product at its maximum magnitude.
        dw_case::<i8, i8>(&mut rng, QScheme::Int8, &g, (-128, -128), (-127, -127));
        dw_case::<u8, u8>(&mut rng, QScheme::Uint8, &g, (255, 255), (0, 0));
        // uint8 weight zero point 128: the correction term vanishes.
        let mut c = params(&mut rng, QScheme::Uint8, ch, k * k);
        c.q.w_zp = 128;
        let x: Vec<u8> = rand_vec(&mut rng, g.input_len(), 0, 255);
        let w: Vec<u8> = rand_vec(&mut rng, g.depthwise_filter_len(), 0, 255);
        let mut want = vec![0u8; g.output_len()];
        depthwise_reference(&g, &c.q, &x, &w, c.bias.as_deref(), &mut want).unwrap();
        every_path("depthwise uint8 w_zp 128", &want, |out, par| {
            PackedQDepthwise::new(&g, &c.q, &w, c.bias.as_deref())
                .unwrap()
                .run(&x, out, par)
        });
    }
}

/// The depthwise column path (3-wide kernels, horizontal stride 1 or 2, dilation 1)
/// with 1 to 4 kernel rows, vertical stride/dilation 2, padding on both sides.
#[test]
fn depthwise_column_path_matches_reference() {
    let mut rng = Rng::new(11);
    for (k_h, s_h, s_w, d_h, ch) in [
        (1, 1, 1, 1, 40),
        (2, 2, 1, 1, 33),
        (4, 1, 2, 2, 70),
        (3, 2, 2, 2, 16),
        (3, 2, 2, 1, 96),
    ] {
        let (in_h, in_w) = (9, 8);
        let (out_h, pad_top) = out_and_pad(Padding::Same, in_h, k_h, s_h, d_h).unwrap();
        let (out_w, pad_left) = out_and_pad(Padding::Same, in_w, 3, s_w, 1).unwrap();
        let g = Geometry {
            batch: 2,
            in_h,
            in_w,
            in_c: ch,
            out_h,
            out_w,
            out_c: ch,
            k_h,
            k_w: 3,
            stride_h: s_h,
            stride_w: s_w,
            dilation_h: d_h,
            dilation_w: 1,
            pad_top,
            pad_left,
            depth_multiplier: 1,
        };
        dw_case::<i8, i8>(&mut rng, QScheme::Int8, &g, I8, I8W);
        dw_case::<u8, u8>(&mut rng, QScheme::Uint8, &g, U8, U8);
        dw_case::<i8, i8>(&mut rng, QScheme::Int8, &g, (127, 127), (-127, -127));
    }
}

/// Requantization parameters for `n` channels that favour the cheaper exact epilogue
/// and its rounding ties: right shifts 1..=4 (ties frequent) or 1..=30, the full or a
/// fused activation range within `[lo, hi]`, and a bias unless `i % 5 == 0`.
fn tie_prone_params(
    rng: &mut Rng,
    scheme: QScheme,
    n: usize,
    (lo, hi): (i64, i64),
    (in_zp, w_zp): (i64, i64),
    i: usize,
) -> (QParams, Option<Vec<i64>>) {
    let small = rng.range(0, 1) == 0;
    let mult = (0..n)
        .map(|_| Multiplier {
            m: rng.range(1 << 30, (1i64 << 31) - 1) as i32,
            shift: -(if small {
                rng.range(1, 4)
            } else {
                rng.range(1, 30)
            } as i32),
        })
        .collect();
    let (act_min, act_max) = if rng.range(0, 1) == 0 {
        (lo as i32, hi as i32)
    } else {
        let a = rng.range(lo, (lo + hi) / 2) as i32;
        (a, rng.range(a as i64, hi) as i32)
    };
    let q = QParams {
        scheme,
        in_zp: in_zp as i32,
        w_zp: w_zp as i32,
        out_zp: rng.range(lo, hi) as i32,
        mult,
        act_min,
        act_max,
        rounding: Rounding::Double,
        float_requant: None,
    };
    let bias = (!i.is_multiple_of(5)).then(|| (0..n).map(|_| rng.range(-5000, 5000)).collect());
    (q, bias)
}

/// The cheaper exact epilogue (right shifts 1..=30, bounded sums) against the reference:
/// small shifts make rounding ties frequent (negative ties round away from zero), tiny
/// activation/weight ranges put many results near zero, and channel counts leave
/// partial 16-channel blocks and partial 4-row tiles.
#[test]
fn fast_requant_matches_reference() {
    let mut rng = Rng::new(77);
    let mut covered = 0;
    for i in 0..40 {
        let scheme = if i % 2 == 0 {
            QScheme::Int8
        } else {
            QScheme::Uint8
        };
        let (in_c, out_c) = (rng.range(1, 40) as usize, rng.range(1, 70) as usize);
        let hw = rng.range(1, 7) as usize;
        let (k, s) = if i % 3 == 0 { (3, 2) } else { (1, 1) };
        let (out_hw, pad) = out_and_pad(Padding::Same, hw, k, s, 1).unwrap();
        let g = Geometry {
            batch: 1,
            in_h: hw,
            in_w: hw,
            in_c,
            out_h: out_hw,
            out_w: out_hw,
            out_c,
            k_h: k,
            k_w: k,
            stride_h: s,
            stride_w: s,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: pad,
            pad_left: pad,
            depth_multiplier: 1,
        };
        // Narrow ranges in half the cases: sums near zero, where the shifts tie.
        let narrow = i % 4 < 2;
        let (xr, wr) = if narrow { (3, 3) } else { (128, 127) };
        let (lo, hi, in_zp, w_zp) = match scheme {
            QScheme::Uint8 => (0, 255, rng.range(0, 255), rng.range(0, 255)),
            _ => (-128, 127, rng.range(-128, 127), 0),
        };
        let (q, bias) = tie_prone_params(&mut rng, scheme, out_c, (lo, hi), (in_zp, w_zp), i);
        let w_lo = |zp: i64| (zp - wr).max(if scheme == QScheme::Uint8 { 0 } else { -127 });
        let w_hi = |zp: i64| (zp + wr).min(if scheme == QScheme::Uint8 { 255 } else { 127 });
        let x_lo = (in_zp - xr).max(lo);
        let x_hi = (in_zp + xr).min(hi);
        macro_rules! run {
            ($t:ty) => {{
                let x: Vec<$t> = rand_vec(&mut rng, g.input_len(), x_lo, x_hi);
                let w: Vec<$t> = rand_vec(&mut rng, g.conv_filter_len(), w_lo(w_zp), w_hi(w_zp));
                let mut want = vec![<$t>::from_i32(0); g.output_len()];
                conv_reference(&g, &q, &x, &w, bias.as_deref(), &mut want).unwrap();
                let k = PackedQConv::new(&g, &q, &w, bias.as_deref()).unwrap();
                covered += usize::from(k.uses_fast_requant());
                every_path(
                    &format!("fast requant {scheme:?} {g:?}"),
                    &want,
                    |out, par| {
                        PackedQConv::new(&g, &q, &w, bias.as_deref())
                            .unwrap()
                            .run(&x, out, par)
                    },
                );
            }};
        }
        match scheme {
            QScheme::Uint8 => run!(u8),
            _ => run!(i8),
        }
    }
    let f = cpu::features();
    if f.avx512vnni && f.avx512bw && f.avx512vl {
        assert!(
            covered >= 30,
            "fast requantization ran in only {covered} cases"
        );
    }
}

/// The depthwise column path's cheaper exact requantization against the reference:
/// right shifts 1..=30 (small ones make rounding ties frequent), narrow value ranges
/// (sums near zero), stride 1 (row pairs, odd row counts) and 2, channel counts
/// leaving partial 16/32-channel chunks, uint8 weight zero points other than 128 (the
/// Σa term, and the pairs' dummy-tap weights) and fused clamps.
#[test]
fn depthwise_fast_requant_matches_reference() {
    let mut rng = Rng::new(78);
    let (mut covered, mut pairs) = (0, 0);
    for i in 0..40 {
        let scheme = if i % 2 == 0 {
            QScheme::Int8
        } else {
            QScheme::Uint8
        };
        let ch = rng.range(1, 80) as usize;
        let (hw, s) = (rng.range(1, 9) as usize, rng.range(1, 2) as usize);
        let (out_h, pad_top) = out_and_pad(Padding::Same, hw, 3, s, 1).unwrap();
        let (out_w, pad_left) = out_and_pad(Padding::Same, hw + 1, 3, s, 1).unwrap();
        let g = Geometry {
            batch: 1 + i % 2,
            in_h: hw,
            in_w: hw + 1,
            in_c: ch,
            out_h,
            out_w,
            out_c: ch,
            k_h: 3,
            k_w: 3,
            stride_h: s,
            stride_w: s,
            dilation_h: 1,
            dilation_w: 1,
            pad_top,
            pad_left,
            depth_multiplier: 1,
        };
        let narrow = i % 4 < 2;
        let (xr, wr) = if narrow { (3, 3) } else { (128, 127) };
        // uint8 weight zero points 0, 255 and 128 (β = 128, −127, 0) besides random ones.
        let (lo, hi, in_zp, w_zp) = match (scheme, i % 8) {
            (QScheme::Uint8, 1) => (0, 255, rng.range(0, 255), 0),
            (QScheme::Uint8, 3) => (0, 255, rng.range(0, 255), 255),
            (QScheme::Uint8, 5) => (0, 255, rng.range(0, 255), 128),
            (QScheme::Uint8, _) => (0, 255, rng.range(0, 255), rng.range(0, 255)),
            _ => (-128, 127, rng.range(-128, 127), 0),
        };
        let (q, bias) = tie_prone_params(&mut rng, scheme, ch, (lo, hi), (in_zp, w_zp), i);
        let w_lo = (w_zp - wr).max(if scheme == QScheme::Uint8 { 0 } else { -127 });
        let w_hi = (w_zp + wr).min(if scheme == QScheme::Uint8 { 255 } else { 127 });
        let (x_lo, x_hi) = ((in_zp - xr).max(lo), (in_zp + xr).min(hi));
        macro_rules! run {
            ($t:ty) => {{
                let x: Vec<$t> = rand_vec(&mut rng, g.input_len(), x_lo, x_hi);
                let w: Vec<$t> = rand_vec(&mut rng, g.depthwise_filter_len(), w_lo, w_hi);
                let mut want = vec![<$t>::from_i32(0); g.output_len()];
                depthwise_reference(&g, &q, &x, &w, bias.as_deref(), &mut want).unwrap();
                let k = PackedQDepthwise::new(&g, &q, &w, bias.as_deref()).unwrap();
                covered += usize::from(k.uses_fast_requant());
                pairs += usize::from(k.uses_row_pairs() && g.out_h >= 2);
                every_path(
                    &format!("depthwise fast requant {scheme:?} {g:?}"),
                    &want,
                    |out, par| {
                        PackedQDepthwise::new(&g, &q, &w, bias.as_deref())
                            .unwrap()
                            .run(&x, out, par)
                    },
                );
            }};
        }
        match scheme {
            QScheme::Uint8 => run!(u8),
            _ => run!(i8),
        }
    }
    let f = cpu::features();
    if f.avx512vnni && f.avx512bw && f.avx512vl && std::arch::is_x86_feature_detected!("avx512vbmi")
    {
        assert!(
            covered >= 30,
            "fast depthwise requantization ran in only {covered} cases"
        );
        assert!(pairs >= 8, "row pairs ran in only {pairs} cases");
    }
}

/// 1×1 stride-1 convs whose input rows the GEMM reads in place (depth a multiple of 4,
/// fast requantization): int8 rows flipped in the kernel (up to 128 channels, packed
/// above), uint8 rows with the weight zero point's row sums, partial 4/8-row tiles.
#[test]
fn pointwise_in_place_rows_match_reference() {
    let mut rng = Rng::new(79);
    let mut covered = 0;
    for (hw, in_c, out_c) in [
        (5, 16, 96),
        (3, 24, 24),
        (4, 32, 16),
        (3, 40, 130),
        (2, 96, 24),
        (3, 8, 144),
    ] {
        let g = Geometry {
            batch: 1,
            in_h: hw,
            in_w: hw + 2,
            in_c,
            out_h: hw,
            out_w: hw + 2,
            out_c,
            k_h: 1,
            k_w: 1,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 0,
            pad_left: 0,
            depth_multiplier: 1,
        };
        for scheme in [QScheme::Int8, QScheme::Uint8] {
            let mut c = params(&mut rng, scheme, out_c, in_c);
            for m in &mut c.q.mult {
                m.shift = m.shift.clamp(-30, -1);
            }
            macro_rules! run {
                ($t:ty, $w:ty, $xl:expr, $xh:expr, $wl:expr, $wh:expr) => {{
                    let x: Vec<$t> = rand_vec(&mut rng, g.input_len(), $xl, $xh);
                    let w: Vec<$w> = rand_vec(&mut rng, g.conv_filter_len(), $wl, $wh);
                    let mut want = vec![<$t>::from_i32(0); g.output_len()];
                    conv_reference(&g, &c.q, &x, &w, c.bias.as_deref(), &mut want).unwrap();
                    let k = PackedQConv::new(&g, &c.q, &w, c.bias.as_deref()).unwrap();
                    covered += usize::from(k.uses_fast_requant());
                    every_path(
                        &format!("in-place 1x1 {scheme:?} {g:?}"),
                        &want,
                        |out, par| {
                            PackedQConv::new(&g, &c.q, &w, c.bias.as_deref())
                                .unwrap()
                                .run(&x, out, par)
                        },
                    );
                }};
            }
            match scheme {
                QScheme::Uint8 => run!(u8, u8, 0, 255, 0, 255),
                _ => run!(i8, i8, -128, 127, -127, 127),
            }
        }
    }
    let f = cpu::features();
    if f.avx512vnni && f.avx512bw && f.avx512vl {
        assert!(
            covered >= 10,
            "fast requantization ran in only {covered} cases"
        );
    }
}

/// First-layer convs whose im2col rows the GEMM gathers from the window itself (one
/// byte per value, `k_w · c ≤ 16`): padding on every side, strides 1 and 2, batches of
/// two (rows crossing images), with int8 and uint8 (row sums for the weight zero point).
#[test]
fn window_gather_matches_reference() {
    let mut rng = Rng::new(80);
    for (c, k, s, pad, hw) in [
        (3, 3, 2, 1, 9),
        (1, 3, 1, 1, 6),
        (4, 3, 2, 1, 8),
        (5, 3, 1, 1, 5),
        (2, 5, 2, 2, 9),
        (3, 3, 2, 0, 10),
    ] {
        let out_hw = (hw + 2 * pad - k) / s + 1;
        let g = Geometry {
            batch: 2,
            in_h: hw,
            in_w: hw + 1,
            in_c: c,
            out_h: out_hw,
            out_w: (hw + 1 + 2 * pad - k) / s + 1,
            out_c: 32,
            k_h: k,
            k_w: k,
            stride_h: s,
            stride_w: s,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: pad,
            pad_left: pad,
            depth_multiplier: 1,
        };
        conv_case::<i8, i8>(&mut rng, QScheme::Int8, &g, I8, I8W);
        conv_case::<u8, u8>(&mut rng, QScheme::Uint8, &g, U8, U8);
    }
}

/// Shapes for the AMX tile path (k ≥ 128): depths that are and are not multiples of 64
/// (zero-padded tile steps), channel counts leaving a single 16-channel block or a
/// partial one, row counts leaving partial 32-row chunks, 1×1 convs read in place
/// (full chunks) and packed (tails), 3×3 windows, int8 (signed tiles) and uint8 with
/// weight zero points (row sums), fast and general requantization (tie-prone shifts
/// and a multiplier above 1). Compared with the reference on every path; on a machine
/// with AMX, also checks the tiles really ran.
#[test]
fn amx_tiles_match_reference() {
    let mut rng = Rng::new(81);
    let mut tiled = 0;
    let shapes = [
        // (hw, in_c, out_c, k)
        (8, 128, 16, 1),
        (7, 128, 48, 1),
        (6, 130, 30, 1),
        (9, 192, 70, 1),
        (5, 16, 40, 3),
        (6, 37, 64, 3),
        (4, 256, 33, 3),
        (11, 136, 130, 1),
    ];
    for (i, &(hw, in_c, out_c, k)) in shapes.iter().enumerate() {
        let g = Geometry {
            batch: 1 + i % 2,
            in_h: hw,
            in_w: hw + 1,
            in_c,
            out_h: hw,
            out_w: hw + 1,
            out_c,
            k_h: k,
            k_w: k,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: k / 2,
            pad_left: k / 2,
            depth_multiplier: 1,
        };
        for scheme in [QScheme::Int8, QScheme::Uint8] {
            let (lo, hi, in_zp, w_zp) = match scheme {
                QScheme::Uint8 => (0, 255, rng.range(0, 255), rng.range(0, 255)),
                _ => (-128, 127, rng.range(-128, 127), 0),
            };
            let (q, bias) = if i % 2 == 0 {
                let c = params(&mut rng, scheme, out_c, k * k * in_c);
                (c.q, c.bias)
            } else {
                tie_prone_params(&mut rng, scheme, out_c, (lo, hi), (in_zp, w_zp), i)
            };
            macro_rules! run {
                ($t:ty, $wl:expr) => {{
                    let x: Vec<$t> = rand_vec(&mut rng, g.input_len(), lo, hi);
                    let w: Vec<$t> = rand_vec(&mut rng, g.conv_filter_len(), $wl, hi);
                    let mut want = vec![<$t>::from_i32(0); g.output_len()];
                    conv_reference(&g, &q, &x, &w, bias.as_deref(), &mut want).unwrap();
                    cpu::with_isa(cpu::Isa::Avx512, || {
                        let k = PackedQConv::new(&g, &q, &w, bias.as_deref()).unwrap();
                        tiled += usize::from(k.uses_amx());
                    });
                    every_path(&format!("amx {scheme:?} {g:?}"), &want, |out, par| {
                        PackedQConv::new(&g, &q, &w, bias.as_deref())
                            .unwrap()
                            .run(&x, out, par)
                    });
                }};
            }
            match scheme {
                QScheme::Uint8 => run!(u8, 0),
                _ => run!(i8, -127),
            }
        }
    }
    let f = cpu::features();
    if cpu::amx_usable() && f.avx512vnni && f.avx512bw && f.avx512vl {
        // Every shape has k ≥ 128, so every case takes the tiles.
        assert_eq!(tiled, 2 * shapes.len(), "AMX ran in only {tiled} cases");
    }
}

use super::fast::{PackedHybridConv, PackedHybridDepthwise, PackedHybridFc};
use super::*;
use crate::exec::kernels::Parallelism;
use crate::exec::kernels::cpu::{self, with_isa};
use crate::exec::kernels::geometry::{Geometry, WindowAttrs};
use crate::exec::kernels::test_util::{Rng, bits};
use crate::ir::Padding;

const ACTS: [(f32, f32); 3] = [
    (f32::NEG_INFINITY, f32::INFINITY),
    (0.0, f32::INFINITY),
    (0.0, 6.0),
];

#[test]
fn symmetric_quantization_matches_tflite_rules() {
    let mut q = [0i8; 4];
    let s = quantize_symmetric(&[0.5, -1.0, 0.25, 1.0 / 254.0], &mut q);
    assert_eq!(s, 1.0 / 127.0);
    // 0.25 * 127 = 31.75 → 32; 1/254 * 127 = 0.5 → 1 (half away from zero).
    assert_eq!(q, [64, -127, 32, 1]);
    assert_eq!(quantize_symmetric(&[0.0, -0.0], &mut q[..2]), 1.0);
    assert_eq!(&q[..2], &[0, 0]);
}

#[test]
fn asymmetric_quantization_matches_tflite_rules() {
    let mut q = [0i8; 3];
    // Range [0, 2.55]: scale 0.01, zero point -128.
    let (s, zp) = quantize_asymmetric(&[0.0, 1.0, 2.55], &mut q);
    assert_eq!(s, (2.55f64 / 255.0) as f32);
    assert_eq!(zp, -128);
    assert_eq!(q, [-128, -28, 127]);
    // Range [-1, 1]: zero point from min: -128 + 127.5 = -0.5 → round → -1 (away from 0).
    let (s, zp) = quantize_asymmetric(&[-1.0, 0.0, 1.0], &mut q);
    assert_eq!(s, (2.0f64 / 255.0) as f32);
    assert_eq!(zp, -1);
    // 1 / f32(2/255) is just below 127.5, so 1.0 lands on 126 (as in TFLite).
    assert_eq!(q, [-128, -1, 126]);
    assert_eq!(quantize_asymmetric(&[0.0; 3], &mut q), (1.0, 0));
}

/// Reference FC against a float computation with the dequantized operands.
#[test]
fn fc_reference_close_to_dequantized_float() {
    let mut rng = Rng::new(7);
    let (rows, depth, units) = (3, 40, 5);
    let x = rng.floats(rows * depth, -2.0, 3.0);
    let w = rng.i8s(units * depth);
    let scales: Vec<f32> = (0..units).map(|u| 0.01 + 0.002 * u as f32).collect();
    let bias = rng.floats(units, -1.0, 1.0);
    for asymmetric in [false, true] {
        let p = HybridFcParams {
            rows,
            depth,
            units,
            asymmetric,
            act_min: f32::NEG_INFINITY,
            act_max: f32::INFINITY,
        };
        let mut y = vec![0f32; rows * units];
        fc_reference(&p, &x, &w, &scales, Some(&bias), &mut y);
        for r in 0..rows {
            for u in 0..units {
                let exact: f32 = bias[u]
                    + (0..depth)
                        .map(|k| x[r * depth + k] * f32::from(w[u * depth + k]) * scales[u])
                        .sum::<f32>();
                let got = y[r * units + u];
                // Input quantization error: half a step per element, ~|w| * step / 2.
                assert!(
                    (got - exact).abs() < 0.15,
                    "asym={asymmetric} r={r} u={u}: {got} vs {exact}"
                );
            }
        }
    }
}

fn each_isa(mut f: impl FnMut(cpu::Isa)) {
    for isa in cpu::available_isas() {
        with_isa(isa, || f(isa));
    }
}

#[test]
fn fc_fast_matches_reference() {
    let mut rng = Rng::new(11);
    for case in 0..60 {
        let rows = 1 + rng.below(9);
        let depth = 1 + rng.below(200);
        let units = 1 + rng.below(90);
        let asymmetric = case % 2 == 1;
        let (act_min, act_max) = ACTS[case % 3];
        let p = HybridFcParams {
            rows,
            depth,
            units,
            asymmetric,
            act_min,
            act_max,
        };
        let mut x = rng.floats(rows * depth, -3.0, 2.0);
        if case % 7 == 0 {
            x.fill(0.0);
        }
        if case % 5 == 0 {
            // One all-zero row among non-zero ones.
            x[..depth].fill(0.0);
        }
        let w = rng.i8s(units * depth);
        let per_channel = case % 4 < 2;
        let scales: Vec<f32> = (0..units)
            .map(|u| {
                if per_channel {
                    0.003 + 0.001 * u as f32
                } else {
                    0.0042
                }
            })
            .collect();
        let bias = (case % 3 != 0).then(|| rng.floats(units, -1.0, 1.0));
        let mut want = vec![0f32; rows * units];
        fc_reference(&p, &x, &w, &scales, bias.as_deref(), &mut want);
        // Packed outside (the best layout, run on every ISA) and inside (each ISA's
        // own layout).
        let k = PackedHybridFc::new(&p, &w, &scales, bias.as_deref());
        each_isa(|isa| {
            let own = PackedHybridFc::new(&p, &w, &scales, bias.as_deref());
            for (kernel, packed) in [(&k, "best"), (&own, "own")] {
                for threads in [1, 2] {
                    let mut got = vec![f32::NAN; rows * units];
                    kernel.run(&x, &mut got, Parallelism { threads });
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "case {case} {isa:?} {packed} layout, threads {threads}"
                    );
                }
            }
        });
    }
}

#[test]
fn conv_fast_matches_reference() {
    let mut rng = Rng::new(23);
    for case in 0..40 {
        let batch = 1 + rng.below(2);
        let (in_h, in_w) = (1 + rng.below(9), 1 + rng.below(9));
        let mut in_c = 1 + rng.below(20);
        let out_c = 1 + rng.below(70);
        let (mut k_h, mut k_w) = (1 + rng.below(3), 1 + rng.below(3));
        let (mut stride_h, mut stride_w) = (1 + rng.below(2), 1 + rng.below(2));
        let (dilation_h, dilation_w) = (1 + rng.below(2), 1 + rng.below(2));
        if case % 5 == 0 {
            // 1×1 stride 1 with whole patches per pixel: read in place.
            (k_h, k_w, stride_h, stride_w) = (1, 1, 1, 1);
            in_c = 4 * (1 + rng.below(8));
        }
        let same = case % 2 == 0;
        let geom = |i: usize, k: usize, s: usize, d: usize| {
            let ke = (k - 1) * d + 1;
            if same {
                let o = i.div_ceil(s);
                let total = ((o - 1) * s + ke).saturating_sub(i);
                Some((o, total / 2))
            } else if i >= ke {
                Some(((i - ke) / s + 1, 0))
            } else {
                None
            }
        };
        let (Some((out_h, pad_top)), Some((out_w, pad_left))) = (
            geom(in_h, k_h, stride_h, dilation_h),
            geom(in_w, k_w, stride_w, dilation_w),
        ) else {
            continue;
        };
        let (act_min, act_max) = ACTS[case % 3];
        let hp = HybridConvParams {
            conv: ConvParams {
                geom: Geometry {
                    batch,
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
                    depth_multiplier: 1,
                },
                act_min,
                act_max,
            },
            per_channel: case % 4 < 2,
        };
        let p = &hp.conv;
        let mut x = rng.floats(p.input_len(), -1.0, 4.0);
        if case % 9 == 4 {
            // An all-zero image: no scale, every value the zero point.
            x.fill(0.0);
        }
        let w = rng.i8s(p.filter_len());
        let scales: Vec<f32> = (0..out_c)
            .map(|c| {
                if hp.per_channel {
                    0.002 + 0.0007 * c as f32
                } else {
                    0.005
                }
            })
            .collect();
        let bias = (case % 3 != 1).then(|| rng.floats(out_c, -0.5, 0.5));
        check_conv(
            &hp,
            x.len(),
            w.len(),
            scales.len(),
            bias.as_ref().map(Vec::len),
            p.output_len(),
        )
        .unwrap();
        let mut want = vec![0f32; p.output_len()];
        conv_reference(&hp, &x, &w, &scales, bias.as_deref(), &mut want);
        // Packed outside (the best layout, run on every ISA) and inside (each ISA's
        // own layout).
        let k = PackedHybridConv::new(&hp, &w, &scales, bias.as_deref());
        each_isa(|isa| {
            let own = PackedHybridConv::new(&hp, &w, &scales, bias.as_deref());
            for (kernel, packed) in [(&k, "best"), (&own, "own")] {
                for threads in [1, 2] {
                    let mut got = vec![f32::NAN; p.output_len()];
                    kernel.run(&x, &mut got, Parallelism { threads });
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "case {case} {isa:?} {packed} layout {hp:?}"
                    );
                }
            }
        });
    }
}

#[test]
fn depthwise_fast_matches_reference() {
    let mut rng = Rng::new(31);
    for case in 0..40 {
        let batch = 1 + rng.below(2);
        let (in_h, in_w) = (1 + rng.below(9), 1 + rng.below(9));
        let in_c = 1 + rng.below(24);
        let depth_multiplier = 1 + rng.below(2) * rng.below(3);
        let (k_h, k_w) = (1 + rng.below(3), 1 + rng.below(3));
        let (stride_h, stride_w) = (1 + rng.below(2), 1 + rng.below(2));
        let (dilation_h, dilation_w) = (1 + rng.below(2), 1 + rng.below(2));
        // SAME padding only: always a valid geometry.
        let geom = |i: usize, k: usize, s: usize, d: usize| {
            let ke = (k - 1) * d + 1;
            let o = i.div_ceil(s);
            (o, ((o - 1) * s + ke).saturating_sub(i) / 2)
        };
        let (out_h, pad_top) = geom(in_h, k_h, stride_h, dilation_h);
        let (out_w, pad_left) = geom(in_w, k_w, stride_w, dilation_w);
        let (act_min, act_max) = ACTS[case % 3];
        let p = DepthwiseParams {
            geom: Geometry {
                batch,
                in_h,
                in_w,
                in_c,
                out_h,
                out_w,
                out_c: in_c * depth_multiplier,
                k_h,
                k_w,
                stride_h,
                stride_w,
                dilation_h,
                dilation_w,
                pad_top,
                pad_left,
                depth_multiplier,
            },
            act_min,
            act_max,
        };
        let out_c = p.geom.out_c;
        let x = rng.floats(p.input_len(), -2.0, 1.0);
        let w = rng.i8s(p.filter_len());
        let scales: Vec<f32> = (0..out_c).map(|c| 0.004 + 0.0003 * c as f32).collect();
        let bias = (case % 3 != 2).then(|| rng.floats(out_c, -0.5, 0.5));
        check_depthwise(
            &p,
            x.len(),
            w.len(),
            scales.len(),
            bias.as_ref().map(Vec::len),
            p.output_len(),
        )
        .unwrap();
        let mut want = vec![0f32; p.output_len()];
        depthwise_reference(&p, &x, &w, &scales, bias.as_deref(), &mut want);
        let k = PackedHybridDepthwise::new(&p, &w, &scales, bias.as_deref());
        each_isa(|isa| {
            for threads in [1, 2] {
                let mut got = vec![f32::NAN; p.output_len()];
                k.run(&x, &mut got, Parallelism { threads });
                assert_eq!(bits(&got), bits(&want), "case {case} {isa:?} {p:?}");
            }
        });
    }
}

/// The fast depthwise sums in f32 while `taps·255·128 < 2^24` (484 taps: every sum
/// exact) and in int32 beyond (529 taps: the reference's `f32(acc)` rounds). Both at
/// the largest magnitudes: inputs 0 or 1 (zero point −128, so `q − zp` is 255) and
/// weights −128 and −127.
#[test]
fn depthwise_fast_matches_reference_at_the_f32_exactness_bound() {
    for k in [22, 23] {
        // VALID k×k over k × (k + 1): two output pixels of k² taps each.
        let attrs = WindowAttrs {
            padding: Padding::Valid,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
        };
        let p = DepthwiseParams {
            geom: Geometry::depthwise([1, k, k + 1, 17], [k, k], 17, attrs).unwrap(),
            act_min: f32::NEG_INFINITY,
            act_max: f32::INFINITY,
        };
        let mut x = vec![1.0f32; p.input_len()];
        x[5] = 0.0;
        // Some −127s make the sums odd, so past 2^24 a float sum would have to round.
        let w: Vec<i8> = (0..p.filter_len())
            .map(|i| if i % 3 == 0 { -127 } else { -128 })
            .collect();
        let scales = vec![0.01f32; 17];
        let mut want = vec![0f32; p.output_len()];
        depthwise_reference(&p, &x, &w, &scales, None, &mut want);
        let k_ = PackedHybridDepthwise::new(&p, &w, &scales, None);
        each_isa(|isa| {
            let mut got = vec![f32::NAN; p.output_len()];
            k_.run(&x, &mut got, Parallelism { threads: 1 });
            assert_eq!(bits(&got), bits(&want), "{k}x{k} {isa:?}");
        });
    }
}

#[test]
fn min_max_paths_agree_even_with_nan() {
    let mut rng = Rng::new(3);
    for n in [1, 5, 16, 17, 40, 100] {
        let mut x = rng.floats(n, -5.0, 5.0);
        if n > 3 {
            x[2] = f32::NAN;
        }
        let mut mins = [x[0]; 16];
        let mut maxs = [x[0]; 16];
        let whole = n & !15;
        lanes(&x[..whole], &mut mins, &mut maxs);
        let (a, b) = min_max(&x);
        let want_min = mins
            .iter()
            .chain(&x[whole..])
            .fold(x[0], |m, &v| if v < m { v } else { m });
        let want_max = maxs
            .iter()
            .chain(&x[whole..])
            .fold(x[0], |m, &v| if v > m { v } else { m });
        assert_eq!(
            (a.to_bits(), b.to_bits()),
            (want_min.to_bits(), want_max.to_bits()),
            "n={n}"
        );
        let finite: Vec<f32> = x.iter().copied().filter(|v| !v.is_nan()).collect();
        if x[0].is_finite() {
            assert_eq!(a, finite.iter().copied().fold(f32::INFINITY, f32::min));
        }
    }
}

//! Reference vs fast integer conv / depthwise / FC / ADD on MobileNetV2-like layers (int8
//! and uint8), and MUL with per-channel broadcast as in ResNet v2's pre-activation
//! batch-norm, and the pools of Inception v3's mixed blocks. Throughput counts 2 elements per MAC, so "Gelem/s" reads as GOP/s; ADD
//! and MUL count output elements.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quantfarm_engine::exec::kernels::Parallelism;
use quantfarm_engine::exec::kernels::cpu;
use quantfarm_engine::exec::kernels::geometry::Geometry;
use quantfarm_engine::exec::kernels::qconv::{
    PackedQConv, PackedQDepthwise, PackedQFc, QElem, QFcGeom, QParams, QScheme, conv_reference,
    depthwise_reference, fc_reference,
};
use quantfarm_engine::exec::kernels::qops::QInt;
use quantfarm_engine::exec::kernels::qops::binary::{
    AddSubTables, MulKernel, QBinaryParams, RowKernel, binary_broadcast_rows, binary_reference,
    binary_same_shape,
};
use quantfarm_engine::quant::fixed_point::{Rounding, quantize_multiplier};

fn data<T: QElem>(n: usize, seed: u32, lo: i32, hi: i32) -> Vec<T> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            T::from_i32(lo + ((s >> 8) % (hi - lo + 1) as u32) as i32)
        })
        .collect()
}

fn params(scheme: QScheme, n: usize) -> QParams {
    let (in_zp, w_zp, out_zp, lo, hi) = match scheme {
        QScheme::Uint8 => (128, 120, 0, 0, 255),
        _ => (-128, 0, -128, -128, 127),
    };
    QParams {
        scheme,
        in_zp,
        w_zp,
        out_zp,
        mult: (0..n)
            .map(|c| quantize_multiplier(0.0005 + 0.00001 * c as f64, Rounding::Double))
            .collect(),
        act_min: lo,
        act_max: hi,
        rounding: Rounding::Double,
        float_requant: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn geom(
    hw: usize,
    in_c: usize,
    out_c: usize,
    k: usize,
    s: usize,
    pad: usize,
    out_hw: usize,
    mult: usize,
) -> Geometry {
    Geometry {
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
        depth_multiplier: mult,
    }
}

fn conv_group<T: QElem>(c: &mut Criterion, scheme: QScheme, tag: &str, wl: i32, wh: i32) {
    let cases = [
        // Rows read in place by the GEMM (int8 flipped in the kernel: ≤ 128 channels).
        ("conv1x1_112x112x16to96", geom(112, 16, 96, 1, 1, 0, 112, 1)),
        ("conv1x1_56x56x24to144", geom(56, 24, 144, 1, 1, 0, 56, 1)),
        ("conv1x1_14x14x384to64", geom(14, 384, 64, 1, 1, 0, 14, 1)),
        ("conv3x3s2_224x224x3to32", geom(224, 3, 32, 3, 2, 0, 112, 1)),
        // ResNet v2 101 at 299: a bottleneck's 3x3 (im2col, k = 2304) and 1x1 (k = 1024).
        ("conv3x3_19x19x256to256", geom(19, 256, 256, 3, 1, 1, 19, 1)),
        (
            "conv1x1_19x19x1024to256",
            geom(19, 1024, 256, 1, 1, 0, 19, 1),
        ),
    ];
    let (xl, xh) = if scheme == QScheme::Uint8 {
        (0, 255)
    } else {
        (-128, 127)
    };
    for (name, g) in cases {
        let q = params(scheme, g.out_c);
        let x: Vec<T> = data(g.input_len(), 1, xl, xh);
        let w: Vec<T> = data(g.conv_filter_len(), 2, wl, wh);
        let bias: Vec<i64> = (0..g.out_c as i64).map(|i| i * 37 - 500).collect();
        let mut out = vec![T::from_i32(0); g.output_len()];
        let macs = g.output_len() * g.k_h * g.k_w * g.in_c;
        let mut grp = c.benchmark_group(format!("{tag}_{name}"));
        grp.throughput(Throughput::Elements(2 * macs as u64));
        grp.sample_size(10);
        grp.bench_function("reference", |b| {
            b.iter(|| conv_reference(&g, &q, black_box(&x), &w, Some(&bias), &mut out).unwrap())
        });
        for isa in cpu::available_isas() {
            // AVX-512 without AMX tiles here; with them below.
            let k = cpu::with_isa(isa, || {
                cpu::with_amx(false, || PackedQConv::new(&g, &q, &w, Some(&bias)).unwrap())
            });
            grp.bench_function(format!("fast_{}_t1", isa.name()), |b| {
                b.iter(|| k.run(black_box(&x), &mut out, Parallelism::SINGLE))
            });
        }
        let k = PackedQConv::new(&g, &q, &w, Some(&bias)).unwrap();
        if k.uses_amx() {
            grp.bench_function("fast_amx_t1", |b| {
                b.iter(|| k.run(black_box(&x), &mut out, Parallelism::SINGLE))
            });
        }
        // Two threads on the engine's pool (`exec::parallel`).
        grp.bench_function("fast_t2", |b| {
            b.iter(|| k.run(black_box(&x), &mut out, Parallelism { threads: 2 }))
        });
        grp.finish();
    }
}

fn dw_group<T: QElem>(c: &mut Criterion, scheme: QScheme, tag: &str, wl: i32, wh: i32) {
    let cases = [
        // 3×3 stride 1: rows in pairs (fast requantization, as these multipliers allow).
        ("dw3x3s1_112x112x32", geom(112, 32, 32, 3, 1, 1, 112, 1)),
        ("dw3x3s2_112x112x96", geom(112, 96, 96, 3, 2, 0, 56, 1)),
        ("dw3x3s1_56x56x144", geom(56, 144, 144, 3, 1, 1, 56, 1)),
        ("dw3x3s1_14x14x576", geom(14, 576, 576, 3, 1, 1, 14, 1)),
    ];
    let (xl, xh) = if scheme == QScheme::Uint8 {
        (0, 255)
    } else {
        (-128, 127)
    };
    for (name, g) in cases {
        let q = params(scheme, g.out_c);
        let x: Vec<T> = data(g.input_len(), 3, xl, xh);
        let w: Vec<T> = data(g.depthwise_filter_len(), 4, wl, wh);
        let bias: Vec<i64> = (0..g.out_c as i64).map(|i| i * 37 - 500).collect();
        let mut out = vec![T::from_i32(0); g.output_len()];
        let macs = g.output_len() * g.k_h * g.k_w;
        let mut grp = c.benchmark_group(format!("{tag}_{name}"));
        grp.throughput(Throughput::Elements(2 * macs as u64));
        grp.sample_size(10);
        grp.bench_function("reference", |b| {
            b.iter(|| {
                depthwise_reference(&g, &q, black_box(&x), &w, Some(&bias), &mut out).unwrap()
            })
        });
        for isa in cpu::available_isas() {
            let k = cpu::with_isa(isa, || {
                PackedQDepthwise::new(&g, &q, &w, Some(&bias)).unwrap()
            });
            grp.bench_function(format!("fast_{}_t1", isa.name()), |b| {
                b.iter(|| k.run(black_box(&x), &mut out, Parallelism::SINGLE))
            });
        }
        let k = PackedQDepthwise::new(&g, &q, &w, Some(&bias)).unwrap();
        grp.bench_function("fast_t2", |b| {
            b.iter(|| k.run(black_box(&x), &mut out, Parallelism { threads: 2 }))
        });
        grp.finish();
    }
}

/// The ADD benches' parameters: input scales around the output's, zero points near `zp`.
fn add_params(zp: i32, lo: i32, hi: i32) -> QBinaryParams {
    QBinaryParams::add_sub(
        false,
        20,
        (0.031, zp + 3),
        (0.017, zp - 9),
        (0.05, zp),
        lo,
        hi,
    )
}

/// Same-shape ADD of a MobileNetV2 residual (56×56×24): the reference loop (per
/// element through broadcast indices), the per-element fast path, and the tabulated /
/// SIMD path the interpreter runs.
fn add_group<T: QElem + QInt>(c: &mut Criterion, tag: &str, zp: i32) {
    let n = 56 * 56 * 24;
    let (lo, hi) = (T::MIN, T::MAX);
    let a: Vec<T> = data(n, 7, lo, hi);
    let b: Vec<T> = data(n, 8, lo, hi);
    let mut y = vec![T::from_i32(0); n];
    let p = add_params(zp, lo, hi);
    let mut grp = c.benchmark_group(format!("{tag}_add_56x56x24"));
    grp.throughput(Throughput::Elements(n as u64));
    grp.sample_size(20);
    grp.bench_function("reference", |bn| {
        bn.iter(|| binary_reference(&p, black_box(&a), &[n], &b, &[n], &mut y, &[n]))
    });
    grp.bench_function("per_element", |bn| {
        bn.iter(|| binary_same_shape(&p, black_box(&a), &b, &mut y))
    });
    for isa in cpu::available_isas() {
        let t = cpu::with_isa(isa, || AddSubTables::new::<T>(&p).expect("8-bit add"));
        grp.bench_function(format!("fast_{}", isa.name()), |bn| {
            bn.iter(|| t.run_same_shape(black_box(&a), &b, &mut y))
        });
    }
    grp.finish();
}

/// ADD of a per-channel [256] constant to a [1, 38, 38, 256] activation (ResNet v2's
/// pre-activation batch-norm shift): the constant is rescaled once per call.
fn add_by_channel_group<T: QElem + QInt>(c: &mut Criterion, tag: &str, zp: i32) {
    let (sa, sb, so) = ([1usize, 38, 38, 256], [256usize], [1usize, 38, 38, 256]);
    let n: usize = so.iter().product();
    let (lo, hi) = (T::MIN, T::MAX);
    let a: Vec<T> = data(n, 7, lo, hi);
    let b: Vec<T> = data(256, 8, lo, hi);
    let mut y = vec![T::from_i32(0); n];
    let p = add_params(zp, lo, hi);
    let mut grp = c.benchmark_group(format!("{tag}_add_38x38x256_by_channel"));
    grp.throughput(Throughput::Elements(n as u64));
    grp.sample_size(20);
    grp.bench_function("reference", |bn| {
        bn.iter(|| binary_reference(&p, black_box(&a), &sa, &b, &sb, &mut y, &so))
    });
    for isa in cpu::available_isas() {
        let t = cpu::with_isa(isa, || AddSubTables::new::<T>(&p).expect("8-bit add"));
        grp.bench_function(format!("fast_{}", isa.name()), |bn| {
            bn.iter(|| t.run_broadcast(black_box(&a), &sa, &b, &sb, &mut y, &so))
        });
    }
    grp.finish();
}

/// MUL of a [1, 38, 38, 256] activation by a per-channel [256] constant.
fn mul_group<T: QElem + QInt>(c: &mut Criterion, tag: &str, zp: i32) {
    let (sa, sb, so) = ([1usize, 38, 38, 256], [256usize], [1usize, 38, 38, 256]);
    let n: usize = so.iter().product();
    let (lo, hi) = (T::MIN, T::MAX);
    let a: Vec<T> = data(n, 7, lo, hi);
    let b: Vec<T> = data(256, 8, lo, hi);
    let mut y = vec![T::from_i32(0); n];
    let p = QBinaryParams::mul((0.031, zp + 3), (0.017, zp - 9), (0.05, zp), lo, hi);
    let mut grp = c.benchmark_group(format!("{tag}_mul_38x38x256_by_channel"));
    grp.throughput(Throughput::Elements(n as u64));
    grp.sample_size(20);
    grp.bench_function("reference", |bn| {
        bn.iter(|| binary_reference(&p, black_box(&a), &sa, &b, &sb, &mut y, &so))
    });
    grp.bench_function("per_element", |bn| {
        bn.iter(|| binary_broadcast_rows(&p, black_box(&a), &sa, &b, &sb, &mut y, &so))
    });
    for isa in cpu::available_isas() {
        let Some(k) = cpu::with_isa(isa, || MulKernel::new::<T>(&p)) else {
            continue;
        };
        grp.bench_function(format!("fast_{}", isa.name()), |bn| {
            bn.iter(|| k.run_broadcast(black_box(&a), &sa, &b, &sb, &mut y, &so))
        });
    }
    grp.finish();
}

/// AVERAGE_POOL_2D and MAX_POOL_2D 3×3, stride 1, SAME on 35×35×288 (Inception v3).
fn pool_group(c: &mut Criterion) {
    use quantfarm_engine::exec::kernels::qops::pool::{
        QPoolParams, average_pool_fast, average_pool_reference, max_pool,
    };
    let geom = Geometry::pool(
        [1, 35, 35, 288],
        [3, 3],
        quantfarm_engine::ir::Padding::Same,
        1,
        1,
    )
    .expect("pool geometry");
    let p = QPoolParams {
        geom,
        act_min: -128,
        act_max: 127,
    };
    let x: Vec<i8> = data(geom.input_len(), 9, -128, 127);
    let mut y = vec![0i8; geom.output_len()];
    let mut grp = c.benchmark_group("int8_pool3x3_35x35x288");
    grp.throughput(Throughput::Elements(geom.output_len() as u64));
    grp.sample_size(20);
    grp.bench_function("average_reference", |bn| {
        bn.iter(|| average_pool_reference(&p, black_box(&x), &mut y))
    });
    for isa in cpu::available_isas() {
        grp.bench_function(format!("average_fast_{}", isa.name()), |bn| {
            bn.iter(|| cpu::with_isa(isa, || average_pool_fast(&p, black_box(&x), &mut y)))
        });
        grp.bench_function(format!("max_{}", isa.name()), |bn| {
            bn.iter(|| cpu::with_isa(isa, || max_pool(&p, black_box(&x), &mut y)))
        });
    }
    grp.finish();
}

fn fc_group<T: QElem>(c: &mut Criterion, scheme: QScheme, tag: &str, wl: i32, wh: i32) {
    let g = QFcGeom {
        rows: 1,
        depth: 1280,
        units: 1001,
    };
    let (xl, xh) = if scheme == QScheme::Uint8 {
        (0, 255)
    } else {
        (-128, 127)
    };
    let q = params(scheme, g.units);
    let x: Vec<T> = data(g.rows * g.depth, 5, xl, xh);
    let w: Vec<T> = data(g.units * g.depth, 6, wl, wh);
    let mut out = vec![T::from_i32(0); g.rows * g.units];
    let mut grp = c.benchmark_group(format!("{tag}_fc_1280to1001"));
    grp.throughput(Throughput::Elements(2 * (g.depth * g.units) as u64));
    grp.sample_size(10);
    grp.bench_function("reference", |b| {
        b.iter(|| fc_reference(&g, &q, black_box(&x), &w, None, &mut out).unwrap())
    });
    for isa in cpu::available_isas() {
        let k = cpu::with_isa(isa, || PackedQFc::new(&g, &q, &w, None).unwrap());
        grp.bench_function(format!("fast_{}_t1", isa.name()), |b| {
            b.iter(|| k.run(black_box(&x), &mut out, Parallelism::SINGLE))
        });
    }
    grp.finish();
}

fn bench_int8(c: &mut Criterion) {
    conv_group::<i8>(c, QScheme::Int8, "int8", -127, 127);
    dw_group::<i8>(c, QScheme::Int8, "int8", -127, 127);
    fc_group::<i8>(c, QScheme::Int8, "int8", -127, 127);
    add_group::<i8>(c, "int8", -10);
    add_by_channel_group::<i8>(c, "int8", -10);
    mul_group::<i8>(c, "int8", -10);
    pool_group(c);
}

fn bench_uint8(c: &mut Criterion) {
    conv_group::<u8>(c, QScheme::Uint8, "uint8", 0, 255);
    dw_group::<u8>(c, QScheme::Uint8, "uint8", 0, 255);
    fc_group::<u8>(c, QScheme::Uint8, "uint8", 0, 255);
    add_group::<u8>(c, "uint8", 128);
}

criterion_group!(benches, bench_int8, bench_uint8);
criterion_main!(benches);

//! Reference vs fast float32 kernels on MobileNetV2-like layer shapes.
//! Throughput is reported in elements/s where one element = one FLOP (2 per MAC),
//! so "Gelem/s" reads as GFLOP/s.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quantfarm_engine::exec::kernels::Parallelism;
use quantfarm_engine::exec::kernels::conv::{ConvParams, PackedConv2D, conv2d_reference};
use quantfarm_engine::exec::kernels::cpu;
use quantfarm_engine::exec::kernels::depthwise::{
    DepthwiseParams, PackedDepthwise, depthwise_reference,
};
use quantfarm_engine::exec::kernels::fully_connected::{
    FcParams, PackedFullyConnected, fully_connected_reference,
};

fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

fn two_threads() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("rayon pool")
}

#[allow(clippy::too_many_arguments)]
fn conv_params(
    hw: usize,
    in_c: usize,
    out_c: usize,
    k: usize,
    stride: usize,
    pad: usize,
    out_hw: usize,
) -> ConvParams {
    ConvParams {
        batch: 1,
        in_h: hw,
        in_w: hw,
        in_c,
        out_h: out_hw,
        out_w: out_hw,
        out_c,
        k_h: k,
        k_w: k,
        stride_h: stride,
        stride_w: stride,
        dilation_h: 1,
        dilation_w: 1,
        pad_top: pad,
        pad_left: pad,
        act_min: 0.0,
        act_max: 6.0,
    }
}

fn bench_conv(c: &mut Criterion) {
    let pool = two_threads();
    let cases = [
        (
            "conv1x1_56x56x24to144",
            conv_params(56, 24, 144, 1, 1, 0, 56),
        ),
        (
            "conv1x1_14x14x384to64",
            conv_params(14, 384, 64, 1, 1, 0, 14),
        ),
        // TF SAME on an even input with stride 2 pads only bottom/right.
        (
            "conv3x3s2_224x224x3to32",
            conv_params(224, 3, 32, 3, 2, 0, 112),
        ),
    ];
    for (name, p) in cases {
        let input = data(p.input_len(), 1);
        let filter = data(p.filter_len(), 2);
        let bias = data(p.out_c, 3);
        let mut out = vec![0.0; p.output_len()];
        let packed = PackedConv2D::new(&p, &filter, Some(&bias));
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(2 * p.macs() as u64));
        g.bench_function("reference", |b| {
            b.iter(|| conv2d_reference(&p, black_box(&input), &filter, Some(&bias), &mut out))
        });
        for isa in cpu::available_isas() {
            g.bench_function(format!("fast_{}_t1", isa.name()), |b| {
                b.iter(|| packed.run_isa(isa, black_box(&input), &mut out, Parallelism::SINGLE))
            });
        }
        g.bench_function("fast_t2", |b| {
            pool.install(|| {
                b.iter(|| packed.run(black_box(&input), &mut out, Parallelism { threads: 2 }))
            })
        });
        g.finish();
    }
}

fn dw_params(hw: usize, c: usize, stride: usize, pad: usize, out_hw: usize) -> DepthwiseParams {
    DepthwiseParams {
        batch: 1,
        in_h: hw,
        in_w: hw,
        in_c: c,
        out_h: out_hw,
        out_w: out_hw,
        depth_multiplier: 1,
        k_h: 3,
        k_w: 3,
        stride_h: stride,
        stride_w: stride,
        dilation_h: 1,
        dilation_w: 1,
        pad_top: pad,
        pad_left: pad,
        act_min: 0.0,
        act_max: 6.0,
    }
}

fn bench_depthwise(c: &mut Criterion) {
    let pool = two_threads();
    let cases = [
        ("dw3x3s2_112x112x96", dw_params(112, 96, 2, 0, 56)),
        ("dw3x3s1_14x14x576", dw_params(14, 576, 1, 1, 14)),
    ];
    for (name, p) in cases {
        let input = data(p.input_len(), 4);
        let filter = data(p.filter_len(), 5);
        let bias = data(p.out_c(), 6);
        let mut out = vec![0.0; p.output_len()];
        let packed = PackedDepthwise::new(&p, &filter, Some(&bias));
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(2 * p.macs() as u64));
        g.bench_function("reference", |b| {
            b.iter(|| depthwise_reference(&p, black_box(&input), &filter, Some(&bias), &mut out))
        });
        for isa in cpu::available_isas() {
            g.bench_function(format!("fast_{}_t1", isa.name()), |b| {
                b.iter(|| packed.run_isa(isa, black_box(&input), &mut out, Parallelism::SINGLE))
            });
        }
        g.bench_function("fast_t2", |b| {
            pool.install(|| {
                b.iter(|| packed.run(black_box(&input), &mut out, Parallelism { threads: 2 }))
            })
        });
        g.finish();
    }
}

fn bench_fc(c: &mut Criterion) {
    let pool = two_threads();
    let p = FcParams {
        rows: 1,
        depth: 1280,
        units: 1001,
        act_min: f32::NEG_INFINITY,
        act_max: f32::INFINITY,
    };
    let input = data(p.rows * p.depth, 7);
    let weights = data(p.units * p.depth, 8);
    let bias = data(p.units, 9);
    let mut out = vec![0.0; p.rows * p.units];
    let packed = PackedFullyConnected::new(&p, &weights, Some(&bias));
    let mut g = c.benchmark_group("fc_1280to1001_rows1");
    g.throughput(Throughput::Elements(2 * p.macs() as u64));
    g.bench_function("reference", |b| {
        b.iter(|| fully_connected_reference(&p, black_box(&input), &weights, Some(&bias), &mut out))
    });
    for isa in cpu::available_isas() {
        g.bench_function(format!("fast_{}_t1", isa.name()), |b| {
            b.iter(|| packed.run_isa(isa, black_box(&input), &mut out, Parallelism::SINGLE))
        });
    }
    g.bench_function("fast_t2", |b| {
        pool.install(|| {
            b.iter(|| packed.run(black_box(&input), &mut out, Parallelism { threads: 2 }))
        })
    });
    g.finish();
}

criterion_group!(benches, bench_conv, bench_depthwise, bench_fc);
criterion_main!(benches);

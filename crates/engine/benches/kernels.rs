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
use quantfarm_engine::exec::kernels::geometry::Geometry;

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
        geom: Geometry {
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
            depth_multiplier: 1,
        },
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
        // MobileNet v1's last pointwise layer: 4 MiB of weights, swept in L2 blocks.
        (
            "conv1x1_7x7x1024to1024",
            conv_params(7, 1024, 1024, 1, 1, 0, 7),
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
        let bias = data(p.geom.out_c, 3);
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
        geom: Geometry {
            batch: 1,
            in_h: hw,
            in_w: hw,
            in_c: c,
            out_h: out_hw,
            out_w: out_hw,
            out_c: c,
            k_h: 3,
            k_w: 3,
            stride_h: stride,
            stride_w: stride,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: pad,
            pad_left: pad,
            depth_multiplier: 1,
        },
        act_min: 0.0,
        act_max: 6.0,
    }
}

/// Float AVERAGE_POOL_2D and MAX_POOL_2D, Inception v3's 3×3 stride-1 SAME average
/// pool on 35×35×192 and its 3×3 stride-2 max pool on 147×147×64, on each ISA's build
/// of the same loops.
fn bench_pool(c: &mut Criterion) {
    use quantfarm_engine::exec::kernels::pool::{PoolParams, average_pool, max_pool};
    use quantfarm_engine::ir::Padding;
    // Output size and padding as TFLite computes them (the engine's own geometry).
    let pool = |hw: usize, ch: usize, stride: usize, padding: Padding| PoolParams {
        geom: Geometry::pool([1, hw, hw, ch], [3, 3], padding, stride, stride).unwrap(),
        act_min: f32::NEG_INFINITY,
        act_max: f32::INFINITY,
    };
    type PoolFn = fn(&PoolParams, &[f32], &mut [f32]);
    let cases: [(&str, PoolParams, PoolFn); 5] = [
        (
            "avgpool3x3_17x17x768",
            pool(17, 768, 1, Padding::Same),
            average_pool,
        ),
        (
            "avgpool3x3_8x8x2048",
            pool(8, 2048, 1, Padding::Same),
            average_pool,
        ),
        (
            "maxpool3x3s2_35x35x288",
            pool(35, 288, 2, Padding::Valid),
            max_pool,
        ),
        (
            "avgpool3x3_35x35x192",
            pool(35, 192, 1, Padding::Same),
            average_pool,
        ),
        (
            "maxpool3x3s2_147x147x64",
            pool(147, 64, 2, Padding::Valid),
            max_pool,
        ),
    ];
    for (name, p, run) in cases {
        let g = &p.geom;
        let x = data(g.in_h * g.in_w * g.in_c, 1);
        let mut y = vec![0.0; g.out_h * g.out_w * g.out_c];
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements((g.out_h * g.out_w * g.out_c) as u64));
        for isa in cpu::available_isas() {
            group.bench_function(format!("{}_t1", isa.name()), |b| {
                b.iter(|| cpu::with_isa(isa, || run(&p, black_box(&x), &mut y)))
            });
        }
        group.finish();
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
        let bias = data(p.geom.out_c, 6);
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

/// One float32 layer of MobileNetV2 1.0 224, packed.
enum Layer {
    Conv(PackedConv2D, usize, usize),
    Dw(PackedDepthwise, usize, usize),
    Fc(PackedFullyConnected, usize, usize),
}

#[derive(Default)]
struct Net {
    layers: Vec<Layer>,
    max_len: usize,
    macs: usize,
}

/// TF SAME padding for a 3×3 kernel: stride 2 on even sizes pads bottom/right only.
fn same_pad(s: usize) -> usize {
    if s == 2 { 0 } else { 1 }
}

impl Net {
    fn conv(&mut self, hw: usize, ci: usize, co: usize, k: usize, s: usize) -> usize {
        let out = hw / s;
        let pad = if k == 3 { same_pad(s) } else { 0 };
        let p = conv_params(hw, ci, co, k, s, pad, out);
        self.macs += p.macs();
        self.max_len = self.max_len.max(p.input_len()).max(p.output_len());
        let f = data(p.filter_len(), 11);
        let b = data(co, 12);
        let packed = PackedConv2D::new(&p, &f, Some(&b));
        self.layers
            .push(Layer::Conv(packed, p.input_len(), p.output_len()));
        out
    }

    fn dw(&mut self, hw: usize, c: usize, s: usize) -> usize {
        let p = dw_params(hw, c, s, same_pad(s), hw / s);
        self.macs += p.macs();
        self.max_len = self.max_len.max(p.input_len()).max(p.output_len());
        let f = data(p.filter_len(), 13);
        let b = data(c, 14);
        let packed = PackedDepthwise::new(&p, &f, Some(&b));
        self.layers
            .push(Layer::Dw(packed, p.input_len(), p.output_len()));
        hw / s
    }
}

/// The conv / depthwise / FC layers of MobileNetV2 1.0 224 (adds and the pool omitted).
fn mobilenet_v2() -> Net {
    let mut net = Net::default();
    let mut hw = net.conv(224, 3, 32, 3, 2);
    let mut c = 32;
    // (expansion t, output channels, repeats, first stride)
    let settings = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];
    for (t, co, n, s0) in settings {
        for i in 0..n {
            let s = if i == 0 { s0 } else { 1 };
            let hidden = c * t;
            if t != 1 {
                net.conv(hw, c, hidden, 1, 1);
            }
            hw = net.dw(hw, hidden, s);
            net.conv(hw, hidden, co, 1, 1);
            c = co;
        }
    }
    net.conv(hw, 320, 1280, 1, 1);
    let p = FcParams {
        rows: 1,
        depth: 1280,
        units: 1001,
        act_min: f32::NEG_INFINITY,
        act_max: f32::INFINITY,
    };
    net.macs += p.macs();
    let w = data(1280 * 1001, 15);
    let packed = PackedFullyConnected::new(&p, &w, Some(&data(1001, 16)));
    net.layers.push(Layer::Fc(packed, 1280, 1001));
    net
}

fn run_network(layers: &[Layer], a: &[f32], out: &mut [f32], par: Parallelism) {
    for l in layers {
        match l {
            Layer::Conv(k, i, o) => k.run(&a[..*i], &mut out[..*o], par),
            Layer::Dw(k, i, o) => k.run(&a[..*i], &mut out[..*o], par),
            Layer::Fc(k, i, o) => k.run(&a[..*i], &mut out[..*o], par),
        }
    }
}

fn bench_mobilenet(c: &mut Criterion) {
    let pool = two_threads();
    let Net {
        layers,
        max_len,
        macs,
    } = mobilenet_v2();
    let a = data(max_len, 17);
    let mut out = vec![0.0; max_len];
    if std::env::var_os("QUANTFARM_BENCH_LAYERS").is_some() {
        // Per-layer breakdown (best of 20) for tuning.
        let mut totals = [0.0f64; 2];
        for l in &layers {
            let mut best = [f64::MAX; 2];
            for (ti, threads) in [1, 2].into_iter().enumerate() {
                pool.install(|| {
                    for _ in 0..20 {
                        let t = std::time::Instant::now();
                        let one = std::slice::from_ref(l);
                        run_network(one, &a, &mut out, Parallelism { threads });
                        best[ti] = best[ti].min(t.elapsed().as_secs_f64());
                    }
                });
                totals[ti] += best[ti];
            }
            let (kind, p) = match l {
                Layer::Conv(k, ..) => ("conv", format!("{:?}", k.params())),
                Layer::Dw(k, ..) => ("dw", format!("{:?}", k.params())),
                Layer::Fc(k, ..) => ("fc", format!("{:?}", k.params())),
            };
            eprintln!(
                "{kind} {:8.1} us  t2 {:8.1} us  {p}",
                best[0] * 1e6,
                best[1] * 1e6
            );
        }
        eprintln!(
            "sum of layers: t1 {:.2} ms, t2 {:.2} ms",
            totals[0] * 1e3,
            totals[1] * 1e3
        );
    }
    let mut g = c.benchmark_group("mobilenet_v2_conv_dw_fc_layers");
    g.throughput(Throughput::Elements(2 * macs as u64));
    g.bench_function(format!("fast_{}_t1", cpu::selected_isa().name()), |b| {
        b.iter(|| run_network(&layers, black_box(&a), &mut out, Parallelism::SINGLE))
    });
    g.bench_function("fast_t2", |b| {
        pool.install(|| {
            b.iter(|| run_network(&layers, black_box(&a), &mut out, Parallelism { threads: 2 }))
        })
    });
    g.finish();
}

/// Hybrid (dynamic-range) CONV_2D on two pointwise layers, MobileNet v1's 14×14×512 →
/// 512 and MobileNet v2's 56×56×24 → 144 expansion (per-channel, asymmetric inputs):
/// each ISA's own weight layout (16-bit pairs; 8-bit quads on AVX-512 VNNI) against the
/// float kernel of the same shape.
fn bench_hybrid_conv(c: &mut Criterion) {
    use quantfarm_engine::exec::kernels::hybrid::HybridConvParams;
    use quantfarm_engine::exec::kernels::hybrid::fast::PackedHybridConv;
    for (name, hw, in_c, out_c) in [
        ("hybrid_conv1x1_14x14x512to512", 14, 512, 512),
        ("hybrid_conv1x1_56x56x24to144", 56, 24, 144),
    ] {
        let p = conv_params(hw, in_c, out_c, 1, 1, 0, hw);
        let hp = HybridConvParams {
            conv: p,
            per_channel: true,
        };
        let input = data(p.input_len(), 1);
        let filter: Vec<i8> = data(p.filter_len(), 2)
            .iter()
            .map(|v| (v * 127.0) as i8)
            .collect();
        let scales: Vec<f32> = (0..p.geom.out_c).map(|i| 0.002 + 1e-5 * i as f32).collect();
        let bias = data(p.geom.out_c, 3);
        let mut out = vec![0.0; p.output_len()];
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(2 * p.macs() as u64));
        for isa in cpu::available_isas() {
            let k = cpu::with_isa(isa, || {
                PackedHybridConv::new(&hp, &filter, &scales, Some(&bias))
            });
            g.bench_function(format!("fast_{}_t1", isa.name()), |b| {
                b.iter(|| {
                    cpu::with_isa(isa, || {
                        k.run(black_box(&input), &mut out, Parallelism::SINGLE)
                    })
                })
            });
        }
        let ffilter = data(p.filter_len(), 2);
        let packed = PackedConv2D::new(&p, &ffilter, Some(&bias));
        g.bench_function("float32_fast_t1", |b| {
            b.iter(|| packed.run(black_box(&input), &mut out, Parallelism::SINGLE))
        });
        g.finish();
    }
}

criterion_group!(
    benches,
    bench_conv,
    bench_pool,
    bench_hybrid_conv,
    bench_depthwise,
    bench_fc,
    bench_mobilenet
);
criterion_main!(benches);

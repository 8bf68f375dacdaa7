//! Dense packed-GEMM 1×1 conv vs the sparse 1×1 kernel on MobileNetV2-like pointwise
//! layers at 32×32, 16×16 and 8×8 pixels, one thread, the selected ISA. Weights have
//! 50–90% exact zeros at random positions. Throughput counts the dense layer's FLOPs
//! (2 per MAC, zeros included) for both, so "Gelem/s" reads as effective GFLOP/s and
//! the two kernels' figures compare directly. `QUANTFARM_ISA=avx2` (or `portable`)
//! times the other paths.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quantfarm_engine::exec::kernels::Parallelism;
use quantfarm_engine::exec::kernels::conv::{ConvParams, PackedConv2D};
use quantfarm_engine::exec::kernels::cpu;
use quantfarm_engine::exec::kernels::geometry::Geometry;
use quantfarm_engine::exec::kernels::sparse_conv::SparseConv1x1;

/// Uniform values in [-0.5, 0.5) from a 32-bit LCG.
fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

/// `filter` with each weight zeroed with probability `sparsity`.
fn prune(filter: &[f32], sparsity: f64, seed: u32) -> Vec<f32> {
    let coins = data(filter.len(), seed);
    filter
        .iter()
        .zip(coins)
        .map(|(&w, c)| {
            if ((c + 0.5) as f64) < sparsity {
                0.0
            } else {
                w
            }
        })
        .collect()
}

fn pointwise(hw: usize, in_c: usize, out_c: usize) -> ConvParams {
    ConvParams {
        geom: Geometry {
            batch: 1,
            in_h: hw,
            in_w: hw,
            in_c,
            out_h: hw,
            out_w: hw,
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
        },
        act_min: 0.0,
        act_max: 6.0,
    }
}

fn bench_sparse(c: &mut Criterion) {
    let isa = cpu::selected_isa();
    let shapes = [(96, 576), (576, 96), (160, 960), (320, 1280)];
    for hw in [32, 16, 8] {
        for (cin, cout) in shapes {
            let p = pointwise(hw, cin, cout);
            let input = data(p.input_len(), 1);
            let filter = data(p.filter_len(), 2);
            let bias = data(cout, 3);
            let mut out = vec![0.0; p.output_len()];
            let mut g = c.benchmark_group(format!("conv1x1_{hw}x{hw}x{cin}to{cout}"));
            g.throughput(Throughput::Elements(2 * p.macs() as u64));
            let dense = PackedConv2D::new(&p, &filter, Some(&bias));
            g.bench_function(format!("dense_{}", isa.name()), |b| {
                b.iter(|| dense.run_isa(isa, black_box(&input), &mut out, Parallelism::SINGLE))
            });
            for pct in [50, 60, 70, 75, 80, 90] {
                let pruned = prune(&filter, pct as f64 / 100.0, 4 + pct);
                let sparse = SparseConv1x1::new(&p, &pruned, Some(&bias));
                g.bench_function(format!("sparse{pct}_{}", isa.name()), |b| {
                    b.iter(|| sparse.run_isa(isa, black_box(&input), &mut out, Parallelism::SINGLE))
                });
            }
            g.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1000));
    targets = bench_sparse
}
criterion_main!(benches);

//! The whole report (tables, matrix, recommendation, charts, HTML, Parquet, files) for
//! 1,000 result rows, with a baseline and three earlier runs for the trends.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use quantfarm_report::{Options, build, synthetic};

fn report(c: &mut Criterion) {
    let run = synthetic::run("bench", 1000, 1.0, 0.0);
    assert!(run.rows.len() >= 1000);
    let mut history: Vec<_> = (0..3)
        .map(|i| {
            let mut r = synthetic::run(&format!("old{i}"), 1000, 1.0 + 0.05 * i as f64, 0.0);
            r.created_unix -= 86_400 * (3 - i);
            r
        })
        .collect();
    let baseline = history.pop().unwrap();
    history.push(baseline.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("report");
    g.sample_size(10);
    g.bench_function("build_and_write_1000_rows", |b| {
        b.iter(|| {
            let r = build(&run, Some(&baseline), &history, &Options::default()).unwrap();
            black_box(r.write(&run, dir.path()).unwrap());
        })
    });
    g.finish();
}

criterion_group!(benches, report);
criterion_main!(benches);

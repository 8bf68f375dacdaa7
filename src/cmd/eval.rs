//! `quantfarm eval`: top-1/top-5 accuracy on a labelled image dataset.
//!
//! Preprocessing follows TF-slim's ImageNet evaluation (central crop 87.5%, TF1
//! bilinear resize, values in [-1, 1]); quantized inputs get the model's own input
//! quantization, unquantized uint8 inputs get the raw pixels.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use quantfarm_engine::data;
use quantfarm_engine::exec::InterpreterOptions;
use quantfarm_engine::measure::{ImageEval, limits};
use serde_json::json;

use super::{interpreter_with, load_model_limited, print_json};
use crate::cli::EvalArgs;

pub fn run(a: &EvalArgs) -> Result<()> {
    if let Some(l) = a.limit {
        limits::check_images("--limit", l)?;
    }
    let limit = a.run.memory.bytes();
    let model = load_model_limited(&a.model, limit)?;
    let copies = |o: InterpreterOptions| InterpreterOptions {
        input_copies: ImageEval::INPUT_COPIES,
        ..o
    };
    let mut interp = interpreter_with(&model, &a.model, &a.run, limit, copies)?;
    let root = data::shared_root()?;
    let ds = data::open_dataset(&a.dataset, &root)?;
    let range = data::slice_range(ds.len(), a.offset, a.limit)
        .with_context(|| format!("dataset {}", a.dataset))?;
    let setup = ImageEval::new(&interp, ds.as_ref(), &a.dataset)
        .with_context(|| a.model.display().to_string())?;
    let input = &setup.input;
    let classes = setup.classes;
    // The baseline runs on the same pixels, encoded for its own input.
    let mut baseline = match &a.baseline {
        Some(path) => {
            // The baseline shares the limit with the model under evaluation.
            let left = limit.saturating_sub(interp.memory_plan().total());
            let m = load_model_limited(path, left)?;
            let it = interpreter_with(&m, path, &a.run, left, copies)?;
            let same_input = it.inputs().len() == 1 && it.inputs()[0].shape == input.shape;
            if !same_input || it.outputs()[0].num_elements() != classes {
                bail!(
                    "{}: baseline needs the same input shape {:?} and {classes} output scores",
                    path.display(),
                    input.shape
                );
            }
            Some((it, Closeness::default()))
        }
        None => None,
    };
    if let Some(dir) = &a.dump_inputs {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    let mut predictions = match &a.predictions {
        Some(p) => {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("{}: cannot create", p.display()))?,
            );
            writeln!(f, "index\tlabel\ttop5")?;
            Some(f)
        }
        None => None,
    };

    let bar = ProgressBar::new(range.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message("eval");
    let start = Instant::now();
    let label_offset = setup.label_offset;
    let input_range = setup.range;
    let result = setup.run::<anyhow::Error>(&mut interp, ds.as_ref(), range.clone(), |s| {
        if let Some(dir) = &a.dump_inputs {
            let p = dir.join(format!("{:05}.bin", s.index));
            std::fs::write(&p, s.input)
                .with_context(|| format!("{}: cannot write", p.display()))?;
        }
        if let Some((it, close)) = baseline.as_mut() {
            let x = &it.inputs()[0];
            let bytes =
                data::encode_model_input_in(s.pixels, x.dtype, x.quant.as_ref(), input_range);
            it.set_input_bytes(0, &bytes)?;
            it.invoke();
            close.update(s.scores, &it.output_f32(0)?, s.target);
        }
        if let Some(f) = predictions.as_mut() {
            let top: Vec<String> = data::top_k(s.scores, 5)
                .iter()
                .map(|&c| (c as i64 - label_offset as i64).to_string())
                .collect();
            writeln!(f, "{}\t{}\t{}", s.index, s.label, top.join(","))?;
        }
        bar.inc(1);
        Ok(())
    });
    bar.finish_and_clear();
    let topk = result?;
    if let Some(mut f) = predictions {
        f.flush()?;
    }
    let secs = start.elapsed().as_secs_f64();
    if a.json {
        let mut v = json!({
            "model": a.model.display().to_string(),
            "dataset": a.dataset,
            "offset": range.start,
            "n": topk.n(),
            "top1": topk.top1(),
            "top5": topk.top5(),
            "nonfinite_outputs": topk.nonfinite(),
            "seconds": secs,
        });
        if let (Some((_, c)), Some(path)) = (&baseline, &a.baseline) {
            v["baseline"] = json!({
                "model": path.display().to_string(),
                "top1": c.baseline_top1(),
                "top1_agreement": c.agreement(),
                "mean_abs_diff": c.mean_abs_diff(),
                "max_abs_diff": c.max_abs_diff,
            });
        }
        print_json(&v);
    } else {
        outln!(
            "{}: {} images of {} from {}: top-1 {:.2}%, top-5 {:.2}% ({secs:.1} s)",
            a.model.display(),
            topk.n(),
            a.dataset,
            range.start,
            100.0 * topk.top1(),
            100.0 * topk.top5()
        );
        if topk.nonfinite() > 0 {
            outln!(
                "  warning: {} of {} images gave NaN or infinite scores (all-NaN counts as wrong)",
                topk.nonfinite(),
                topk.n()
            );
        }
        if let (Some((_, c)), Some(path)) = (&baseline, &a.baseline) {
            outln!(
                "  vs baseline {}: its top-1 {:.2}%, same top-1 on {:.2}% of images, \
                 output mean |diff| {:.3e} (max {:.3e})",
                path.display(),
                100.0 * c.baseline_top1(),
                100.0 * c.agreement(),
                c.mean_abs_diff(),
                c.max_abs_diff
            );
        }
    }
    Ok(())
}

/// How close a model's outputs are to a baseline's on the same images.
#[derive(Default)]
struct Closeness {
    n: usize,
    same_top1: usize,
    baseline_correct: usize,
    /// Sum over images of the mean |score − baseline score| over classes.
    sum_mean_abs: f64,
    max_abs_diff: f64,
}

impl Closeness {
    fn update(&mut self, scores: &[f32], base: &[f32], target: usize) {
        let top = |s: &[f32]| data::top_k(s, 1).first().copied();
        self.n += 1;
        self.same_top1 += usize::from(top(scores) == top(base));
        self.baseline_correct += usize::from(top(base) == Some(target));
        let mut sum = 0.0f64;
        for (&a, &b) in scores.iter().zip(base) {
            let d = (f64::from(a) - f64::from(b)).abs();
            sum += d;
            self.max_abs_diff = self.max_abs_diff.max(d);
        }
        self.sum_mean_abs += sum / scores.len().max(1) as f64;
    }
    fn ratio(&self, k: usize) -> f64 {
        k as f64 / self.n.max(1) as f64
    }
    fn agreement(&self) -> f64 {
        self.ratio(self.same_top1)
    }
    fn baseline_top1(&self) -> f64 {
        self.ratio(self.baseline_correct)
    }
    fn mean_abs_diff(&self) -> f64 {
        self.sum_mean_abs / self.n.max(1) as f64
    }
}

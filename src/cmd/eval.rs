//! `quantfarm eval`: top-1/top-5 accuracy on a labelled image dataset.
//!
//! Preprocessing follows TF-slim's ImageNet evaluation (central crop 87.5%, TF1
//! bilinear resize, values in [-1, 1]); quantized inputs get the model's own input
//! quantization, unquantized uint8 inputs get the raw pixels.

use std::io::Write;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use quantfarm_engine::data::{self, ImageDataset, TopK};
use serde_json::json;

use super::{interpreter, load_model, print_json};
use crate::cli::EvalArgs;

pub fn run(a: &EvalArgs) -> Result<()> {
    let model = load_model(&a.model)?;
    let mut interp = interpreter(&model, &a.model, &a.run)?;
    let root = data::shared_root()?;
    let ds = data::open_dataset(&a.dataset, &root)?;
    let range = data::slice_range(ds.len(), a.offset, a.limit)
        .with_context(|| format!("dataset {}", a.dataset))?;

    let input = interp
        .inputs()
        .first()
        .cloned()
        .context("model has no input")?;
    if interp.inputs().len() != 1
        || input.shape.len() != 4
        || input.shape[0] != 1
        || input.shape[3] != 3
    {
        bail!(
            "{}: eval needs an image model with one [1, H, W, 3] input, this one has {:?}",
            a.model.display(),
            interp
                .inputs()
                .iter()
                .map(|i| i.shape.clone())
                .collect::<Vec<_>>()
        );
    }
    let classes = interp.outputs()[0].num_elements();
    // TF-slim ImageNet models have a background class in slot 0.
    let label_offset = if classes == ds.num_classes() + 1 {
        1
    } else if classes == ds.num_classes() {
        0
    } else {
        bail!(
            "{}: model outputs {classes} scores, dataset {} has {} classes",
            a.model.display(),
            a.dataset,
            ds.num_classes()
        );
    };
    let (h, w) = (input.shape[1], input.shape[2]);
    let crop = if a.dataset.starts_with("imagenet") {
        0.875
    } else {
        1.0
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
    let mut topk = TopK::new();
    // Decode and preprocess on a second thread while this one runs the model.
    let result = std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = mpsc::sync_channel::<Result<(usize, usize, Vec<u8>)>>(8);
        let ds: &dyn ImageDataset = ds.as_ref();
        let input = &input;
        let r = range.clone();
        s.spawn(move || {
            for i in r {
                let item = ds
                    .image(i)
                    .map(|img| {
                        let pixels = data::central_crop_resize(&img, crop, h, w);
                        (
                            i,
                            ds.label(i),
                            data::encode_model_input(&pixels, input.dtype, input.quant.as_ref()),
                        )
                    })
                    .map_err(anyhow::Error::from);
                if tx.send(item).is_err() {
                    return;
                }
            }
        });
        for item in rx {
            let (i, label, bytes) = item?;
            if let Some(dir) = &a.dump_inputs {
                let p = dir.join(format!("{i:05}.bin"));
                std::fs::write(&p, &bytes)
                    .with_context(|| format!("{}: cannot write", p.display()))?;
            }
            interp.set_input_bytes(0, &bytes)?;
            interp.invoke();
            let scores = interp.output_f32(0)?;
            let target = label + label_offset;
            topk.update(&scores, target);
            if let Some(f) = predictions.as_mut() {
                let top: Vec<String> = data::top_k(&scores, 5)
                    .iter()
                    .map(|&c| (c as i64 - label_offset as i64).to_string())
                    .collect();
                writeln!(f, "{i}\t{label}\t{}", top.join(","))?;
            }
            bar.inc(1);
        }
        Ok(())
    });
    bar.finish_and_clear();
    result?;
    if let Some(mut f) = predictions {
        f.flush()?;
    }
    let secs = start.elapsed().as_secs_f64();
    if a.json {
        print_json(&json!({
            "model": a.model.display().to_string(),
            "dataset": a.dataset,
            "offset": range.start,
            "n": topk.n(),
            "top1": topk.top1(),
            "top5": topk.top5(),
            "seconds": secs,
        }));
    } else {
        println!(
            "{}: {} images of {} from {}: top-1 {:.2}%, top-5 {:.2}% ({secs:.1} s)",
            a.model.display(),
            topk.n(),
            a.dataset,
            range.start,
            100.0 * topk.top1(),
            100.0 * topk.top5()
        );
    }
    Ok(())
}

//! `quantfarm train`: train a CIFAR-10 architecture with `quantfarm-train`, checkpoint
//! after every epoch, export the folded float32 `.tflite` and report test accuracy.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use quantfarm_engine::data::{self, CifarSplit};
use quantfarm_engine::measure::limits;
use quantfarm_engine::tflite;
use quantfarm_train::arch;
use quantfarm_train::data::ImageSet;
use quantfarm_train::export;
use quantfarm_train::trainer::{TrainConfig, Trainer};
use serde_json::json;

use super::print_json;
use crate::cli::TrainArgs;

pub fn run(a: &TrainArgs) -> Result<()> {
    let threads = match a.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(t) => t,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if let Some(l) = a.train_limit {
        limits::check_images("--train-limit", l)?;
    }
    if let Some(l) = a.test_limit {
        limits::check_images("--test-limit", l)?;
    }
    if let Some(dir) = a.output.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        bail!("{}: output folder does not exist", dir.display());
    }
    let ckpt: PathBuf = a
        .checkpoint
        .clone()
        .unwrap_or_else(|| a.output.with_extension("ckpt"));

    let mut trainer = match &a.resume {
        Some(path) => {
            let t = Trainer::resume(path, threads)?;
            let c = &t.config;
            let differs = |what: &str, theirs: String| {
                anyhow::anyhow!(
                    "{}: the checkpoint's run has {what} {theirs}; drop the option or start a new run",
                    path.display()
                )
            };
            if a.arch.as_ref().is_some_and(|x| *x != c.arch) {
                return Err(differs("--arch", c.arch.clone()));
            }
            if a.epochs.is_some_and(|e| e != c.epochs) {
                return Err(differs("--epochs", c.epochs.to_string()));
            }
            if a.seed.is_some_and(|s| s != c.seed) {
                return Err(differs("--seed", c.seed.to_string()));
            }
            if a.train_limit.is_some() && a.train_limit != c.train_limit {
                return Err(differs("--train-limit", format!("{:?}", c.train_limit)));
            }
            t
        }
        None => {
            let Some(name) = &a.arch else {
                bail!(
                    "--arch is required (one of {}) unless --resume is given",
                    arch::ARCHS.join(", ")
                );
            };
            if arch::build(name).is_none() {
                bail!(
                    "unknown architecture '{name}' (known: {})",
                    arch::ARCHS.join(", ")
                );
            }
            let mut c = TrainConfig::recipe(name);
            if let Some(e) = a.epochs {
                c.epochs = e;
            }
            if let Some(s) = a.seed {
                c.seed = s;
            }
            c.train_limit = a.train_limit;
            Trainer::new(c, threads)?
        }
    };
    let cfg = trainer.config.clone();
    let root = data::shared_root()?;
    let load_start = Instant::now();
    let train = ImageSet::cifar10(&root, CifarSplit::Train, cfg.train_limit, threads)?;
    let load_s = load_start.elapsed().as_secs_f64();
    train.check_batch(cfg.batch)?;
    let steps = trainer.steps_per_epoch(&train);
    if !a.json {
        eprintln!(
            "{}: {} parameters, {:.1} M MACs/image; {} training images ({load_s:.1} s to decode), \
             {} threads, epoch {}/{}",
            cfg.arch,
            trainer.net.param_count(),
            trainer.net.macs() as f64 / 1e6,
            train.len(),
            threads,
            trainer.epoch,
            cfg.epochs
        );
    }
    let left = (cfg.epochs.saturating_sub(trainer.epoch) * steps) as u64;
    let bar = if a.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(left)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:25}] {pos}/{len} steps, eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let mut epochs = Vec::new();
    let start = Instant::now();
    while !trainer.done() {
        let rep = trainer.run_epoch(&train, |b| {
            bar.set_message(format!(
                "epoch {}/{} loss {:.3} acc {:.1}% lr {:.4}",
                b.epoch,
                cfg.epochs,
                b.loss,
                b.accuracy * 100.0,
                b.lr
            ));
            bar.inc(1);
        })?;
        trainer
            .checkpoint()
            .save(&ckpt)
            .context("writing the checkpoint")?;
        let line = format!(
            "epoch {}/{}: loss {:.4}, train top-1 {:.2}%, {:.1} s",
            rep.epoch,
            cfg.epochs,
            rep.loss,
            rep.train_accuracy * 100.0,
            rep.seconds
        );
        if !a.json {
            if bar.is_hidden() {
                // Not a terminal: one line per epoch instead of the bar.
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
        epochs.push(json!({
            "epoch": rep.epoch, "loss": rep.loss, "train_top1": rep.train_accuracy,
            "seconds": rep.seconds,
        }));
    }
    bar.finish_and_clear();
    let train_s = start.elapsed().as_secs_f64();

    let model = export::to_model(&trainer.net, &trainer.weights)?;
    tflite::write_model_file(&model, &a.output)?;
    let test = ImageSet::cifar10(&root, CifarSplit::Test, a.test_limit, threads)?;
    let (top1, loss) = trainer.evaluate(&test);
    if a.json {
        print_json(&json!({
            "arch": cfg.arch, "epochs": cfg.epochs, "seed": cfg.seed, "threads": threads,
            "batch": cfg.batch, "train_images": train.len(), "test_images": test.len(),
            "train_seconds": train_s, "decode_seconds": load_s, "epoch_log": epochs,
            "test_top1": top1, "test_loss": loss,
            "output": a.output.display().to_string(), "checkpoint": ckpt.display().to_string(),
        }));
    } else {
        outln!(
            "{}: test top-1 {:.2}% on {} images (loss {:.4}); trained {:.1} s; wrote {} (checkpoint {})",
            cfg.arch,
            top1 * 100.0,
            test.len(),
            loss,
            train_s,
            a.output.display(),
            ckpt.display()
        );
    }
    Ok(())
}

//! `quantfarm optimize MODEL --technique qat|prune|cluster|pqat|cqat`: fine-tune a float
//! CIFAR-10 model from `quantfarm train` with fake quantization and write the
//! full-integer model (qat; pqat and cqat keep a pruned or clustered model's
//! structure), or prune or cluster it and write the stripped float model.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use quantfarm_engine::data::{self, CifarSplit};
use quantfarm_engine::measure::limits;
use quantfarm_engine::quant::ptq::IoType;
use quantfarm_engine::tflite;
use quantfarm_train::cluster::{self, ClusterConfig, Init};
use quantfarm_train::collab;
use quantfarm_train::data::ImageSet;
use quantfarm_train::import;
use quantfarm_train::net::{Net, Weights};
use quantfarm_train::prune::{self, Allocation, Block, PruneConfig};
use quantfarm_train::qat::{self, QatConfig};
use serde_json::json;

use super::{load_model, print_json};
use crate::cli::{AllocationArg, InitArg, IoTypeArg, OptimizeArgs, TechniqueArg};

pub fn run(a: &OptimizeArgs) -> Result<()> {
    // Flags checked before any model or data is read.
    let t = a.technique;
    if t != TechniqueArg::Prune
        && (a.sparsity.is_some() || a.block.is_some() || a.initial_sparsity != 0.0)
    {
        bail!("--sparsity, --initial-sparsity and --block apply to --technique prune");
    }
    if !matches!(t, TechniqueArg::Cluster | TechniqueArg::Cqat) && a.clusters.is_some() {
        bail!("--clusters applies to --technique cluster and cqat");
    }
    let prune_opts = if t == TechniqueArg::Prune {
        let Some(s) = a.sparsity else {
            bail!("--technique prune needs --sparsity S (the final sparsity, in [0, 1))");
        };
        if !(0.0..1.0).contains(&s) {
            bail!("--sparsity {s} is outside [0, 1)");
        }
        if !(0.0..=s).contains(&a.initial_sparsity) {
            bail!(
                "--initial-sparsity {} is outside [0, --sparsity {s}]",
                a.initial_sparsity
            );
        }
        let block = match &a.block {
            None => Block::ONE,
            Some(b) => Block::parse(b).map_err(|e| anyhow::anyhow!("--block: {e}"))?,
        };
        Some((s, block))
    } else {
        None
    };
    let clusters = match (t, a.clusters) {
        (TechniqueArg::Cluster | TechniqueArg::Cqat, None) => {
            bail!(
                "--technique {} needs --clusters K (an even number from 2 to 256)",
                name(t)
            )
        }
        (_, Some(k)) if k < 2 || !k.is_multiple_of(2) || k > 256 => {
            bail!("--clusters {k}: an even number from 2 to 256 (centroids come in ± pairs)")
        }
        (_, k) => k,
    };
    let threads = match a.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(t) => t,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if a.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    let lr = a.lr;
    if !(lr.is_finite() && lr > 0.0) {
        bail!("--lr must be a positive number");
    }
    if let Some(l) = a.train_limit {
        limits::check_images("--train-limit", l)?;
    }
    if let Some(dir) = a.output.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        bail!("{}: output folder does not exist", dir.display());
    }
    let model = load_model(&a.model)?;
    let (net, mut weights) =
        import::from_cifar10_model(&model).with_context(|| a.model.display().to_string())?;
    let root = data::shared_root()?;
    let train = ImageSet::cifar10(&root, CifarSplit::Train, a.train_limit, threads)?;
    if let Some((sparsity, block)) = prune_opts {
        return run_prune(a, &net, weights, &train, threads, lr, sparsity, block);
    }
    if t == TechniqueArg::Cluster {
        let k = clusters.expect("checked above");
        return run_cluster(a, &net, weights, &train, threads, lr, k);
    }
    let cfg = QatConfig {
        epochs: a.epochs,
        lr,
        seed: a.seed,
        ..QatConfig::default()
    };
    train.check_batch(cfg.batch)?;
    let steps = (train.len() / cfg.batch * cfg.epochs) as u64;
    let bar = progress_bar(a.json, steps);
    let start = Instant::now();
    let mut last_loss = f64::NAN;
    let label = name(t);
    let progress = |step: usize, _: usize, loss: f64| {
        last_loss = loss;
        bar.set_message(format!("{label} loss {loss:.3}"));
        bar.set_position(step as u64);
        std::ops::ControlFlow::Continue(())
    };
    let ranges = match t {
        TechniqueArg::Pqat => collab::pqat(&net, &mut weights, &train, &cfg, threads, progress)
            .with_context(|| a.model.display().to_string())?
            .map(|(r, _)| r),
        TechniqueArg::Cqat => {
            let k = clusters.expect("checked above");
            collab::cqat(&net, &mut weights, &train, &cfg, k, threads, progress)
                .with_context(|| a.model.display().to_string())?
                .map(|(r, _)| r)
        }
        _ => qat::finetune(&net, &mut weights, &train, &cfg, threads, progress),
    }
    .expect("fine-tuning is never stopped here");
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let io = match a.io {
        IoTypeArg::Float => IoType::Float,
        IoTypeArg::Int8 => IoType::Int8,
        IoTypeArg::Uint8 => IoType::Uint8,
    };
    let (out, summary) = qat::export_int8(&net, &weights, &ranges, io)?;
    tflite::write_model_file(&out, &a.output)?;
    let size = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    let sp = prune::model_sparsity(&out);
    let distinct = max_distinct(&out);
    if a.json {
        print_json(&json!({
            "input": a.model.display().to_string(), "technique": label, "epochs": a.epochs,
            "train_images": train.len(), "threads": threads, "seconds": seconds,
            "final_loss": last_loss, "output": a.output.display().to_string(),
            "size_bytes": size, "quantized_ops": summary.quantized_ops,
            "float_ops": summary.float_ops.iter().map(|(i, n)| json!({"index": i, "op": n})).collect::<Vec<_>>(),
            "sparsity": sp.fraction(), "max_distinct_per_channel": distinct,
        }));
    } else {
        outln!(
            "{label}: {} epoch(s) on {} images in {seconds:.1} s (loss {last_loss:.4}); wrote {} ({size} bytes, {} integer ops, {} float ops; weight sparsity {:.4}, at most {distinct} distinct values per output channel)",
            a.epochs,
            train.len(),
            a.output.display(),
            summary.quantized_ops,
            summary.float_ops.len(),
            sp.fraction(),
        );
    }
    Ok(())
}

fn name(t: TechniqueArg) -> &'static str {
    match t {
        TechniqueArg::Qat => "qat",
        TechniqueArg::Prune => "prune",
        TechniqueArg::Cluster => "cluster",
        TechniqueArg::Pqat => "pqat",
        TechniqueArg::Cqat => "cqat",
    }
}

/// The most distinct values any output channel of any conv/depthwise/dense kernel has.
fn max_distinct(model: &quantfarm_engine::ir::Model) -> usize {
    cluster::distinct_per_channel(model)
        .into_iter()
        .map(|(_, n)| n)
        .max()
        .unwrap_or(0)
}

/// `--technique cluster`: cluster, fine-tune the centroids, write the stripped float model.
fn run_cluster(
    a: &OptimizeArgs,
    net: &Net,
    mut weights: Weights,
    train: &ImageSet,
    threads: usize,
    lr: f32,
    k: usize,
) -> Result<()> {
    let init = match a.init {
        InitArg::Linear => Init::Linear,
        InitArg::KmeansPlusPlus => Init::KmeansPlusPlus,
        InitArg::Density => Init::Density,
    };
    let cfg = ClusterConfig {
        tune: QatConfig {
            epochs: a.epochs,
            lr,
            seed: a.seed,
            ..QatConfig::default()
        },
        clusters: k,
        init,
    };
    let steps = (train.len() / cfg.tune.batch.max(1) * cfg.tune.epochs) as u64;
    let bar = progress_bar(a.json, steps);
    let start = Instant::now();
    let mut last_loss = f64::NAN;
    let clusters = cluster::finetune(net, &mut weights, train, &cfg, threads, |step, _, loss| {
        last_loss = loss;
        bar.set_message(format!("cluster loss {loss:.3}"));
        bar.set_position(step as u64);
        std::ops::ControlFlow::Continue(())
    })
    .with_context(|| a.model.display().to_string())?
    .expect("fine-tuning is never stopped here");
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let out = quantfarm_train::export::to_model(net, &weights)?;
    tflite::write_model_file(&out, &a.output)?;
    let size = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    let distinct = max_distinct(&out);
    if a.json {
        print_json(&json!({
            "input": a.model.display().to_string(), "technique": "cluster", "epochs": a.epochs,
            "train_images": train.len(), "threads": threads, "seconds": seconds,
            "final_loss": last_loss, "output": a.output.display().to_string(),
            "size_bytes": size, "clusters": k, "init": format!("{init:?}"),
            "clustered_layers": clusters.layers.len(),
            "max_distinct_per_channel": distinct,
            "layers": cluster::distinct_per_channel(&out).iter().map(|(n, d)| json!({"weights": n, "max_distinct": d})).collect::<Vec<_>>(),
        }));
    } else {
        outln!(
            "cluster: {} epoch(s) on {} images in {seconds:.1} s (loss {last_loss:.4}); {} layers clustered into {k} (± pairs, {init:?} init); at most {distinct} distinct values per output channel; wrote {} ({size} bytes, float32)",
            a.epochs,
            train.len(),
            clusters.layers.len(),
            a.output.display(),
        );
    }
    Ok(())
}

fn progress_bar(hidden: bool, steps: u64) -> ProgressBar {
    let bar = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(steps)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:25}] {pos}/{len} steps, eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar
}

/// `--technique prune`: fine-tune with magnitude masks, write the stripped float model.
#[allow(clippy::too_many_arguments)]
fn run_prune(
    a: &OptimizeArgs,
    net: &Net,
    mut weights: Weights,
    train: &ImageSet,
    threads: usize,
    lr: f32,
    sparsity: f32,
    block: Block,
) -> Result<()> {
    let cfg = PruneConfig {
        epochs: a.epochs,
        lr,
        seed: a.seed,
        initial_sparsity: a.initial_sparsity,
        final_sparsity: sparsity,
        block,
        spare_fan_in: a.spare_fan_in,
        allocation: match a.allocation {
            AllocationArg::Uniform => Allocation::Uniform,
            AllocationArg::Erk => Allocation::Erk,
        },
        ..PruneConfig::default()
    };
    let steps = (train.len() / cfg.batch.max(1) * cfg.epochs) as u64;
    let bar = progress_bar(a.json, steps);
    let start = Instant::now();
    let report = prune::finetune(net, &mut weights, train, &cfg, threads, |step, _, loss| {
        bar.set_message(format!("prune loss {loss:.3}"));
        bar.set_position(step as u64);
        std::ops::ControlFlow::Continue(())
    })
    .with_context(|| a.model.display().to_string())?
    .expect("fine-tuning is never stopped here");
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let out = quantfarm_train::export::to_model(net, &weights)?;
    tflite::write_model_file(&out, &a.output)?;
    let size = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    let sp = prune::model_sparsity(&out);
    let s = &report.schedule;
    if a.json {
        print_json(&json!({
            "input": a.model.display().to_string(), "technique": "prune", "epochs": a.epochs,
            "train_images": train.len(), "threads": threads, "seconds": seconds,
            "final_loss": report.loss, "output": a.output.display().to_string(),
            "size_bytes": size, "target_sparsity": sparsity,
            "block": [block.rows, block.cols], "spare_fan_in": a.spare_fan_in,
            "allocation": format!("{:?}", a.allocation).to_lowercase(),
            "schedule": {"initial_sparsity": s.initial_sparsity, "final_sparsity": s.final_sparsity,
                "begin_step": s.begin_step, "end_step": s.end_step, "power": s.power,
                "frequency": s.frequency, "steps": report.steps},
            "sparsity": sp.fraction(), "zero_weights": sp.zeros, "weights": sp.total,
            "layers": sp.layers.iter().map(|(n, z, t)| json!({"weights": n, "zeros": z, "size": t})).collect::<Vec<_>>(),
        }));
    } else {
        outln!(
            "prune: {} epoch(s) on {} images in {seconds:.1} s (loss {:.4}); sparsity {:.4} of {} conv/depthwise/dense weights (target {sparsity}, block {}x{}); wrote {} ({size} bytes, float32)",
            a.epochs,
            train.len(),
            report.loss,
            sp.fraction(),
            sp.total,
            block.rows,
            block.cols,
            a.output.display(),
        );
    }
    Ok(())
}

//! Collaborative optimization (TFMOT's `experimental.combine` schemes): QAT that
//! keeps what pruning or clustering made. The QAT graph folds batch norm into each
//! kernel per output channel and fake-quantizes the folded weights with a per-channel
//! max-abs scale, so a zero stays a zero and a layer's shared ± centroids stay one
//! integer alphabet, as long as the float weights keep their structure. The hooks
//! here restore it after every optimizer step:
//!
//! - PQAT: the zeros of the pruned model are a fixed mask (momentum zeroed too).
//! - CQAT: each weight keeps its cluster; centroids move to their members' mean.

use std::ops::ControlFlow;

use quantfarm_engine::Result;

use crate::cluster::Clusters;
use crate::data::ImageSet;
use crate::net::{Net, Weights};
use crate::optim::Sgd;
use crate::prune::Masks;
use crate::qat::{self, Phase, QatConfig, Ranges};

/// Pruning-preserving QAT of a pruned net: returns the QAT ranges and the masks kept,
/// or `None` when `progress` stopped it.
pub fn pqat(
    net: &Net,
    w: &mut Weights,
    data: &ImageSet,
    cfg: &QatConfig,
    threads: usize,
    progress: impl FnMut(usize, usize, f64) -> ControlFlow<()>,
) -> Result<Option<(Ranges, Masks)>> {
    data.check_batch(cfg.batch)?;
    let masks = Masks::from_zeros(net, w);
    let hook = |phase: Phase, _: usize, w: &mut Weights, sgd: &mut Sgd| {
        if phase == Phase::After {
            masks.apply(w, Some(sgd));
        }
    };
    let ranges = qat::finetune_with(net, w, data, cfg, threads, true, hook, progress);
    Ok(ranges.map(|r| (r, masks)))
}

/// Cluster-preserving QAT of a net clustered with `clusters` ± centroids per layer
/// (see [`Clusters::recover`]): returns the QAT ranges and the clustering kept.
pub fn cqat(
    net: &Net,
    w: &mut Weights,
    data: &ImageSet,
    cfg: &QatConfig,
    clusters: usize,
    threads: usize,
    progress: impl FnMut(usize, usize, f64) -> ControlFlow<()>,
) -> Result<Option<(Ranges, Clusters)>> {
    data.check_batch(cfg.batch)?;
    let mut kept = Clusters::recover(net, w, clusters)?;
    kept.write(w);
    let hook = |phase: Phase, _: usize, w: &mut Weights, sgd: &mut Sgd| {
        if phase == Phase::After {
            kept.apply(w, Some(sgd));
        }
    };
    let ranges = qat::finetune_with(net, w, data, cfg, threads, true, hook, progress);
    Ok(ranges.map(|r| (r, kept)))
}

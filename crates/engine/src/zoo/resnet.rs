//! ResNet v2 50 / 101 / 152 as in TF-slim (`nets/resnet_v2.py`, `resnet_utils.py`),
//! converted.
//!
//! Pre-activation bottleneck units, blocks of 3/4/6/3 (50), 3/4/23/3 (101) or 3/8/36/3
//! (152) units with the stride in the last unit of blocks 1–3 (slim's `resnet_v2_block`), `conv2d_same` as an explicit
//! PAD + VALID conv when the stride is > 1, and a 1×1 max pool as the `subsample`
//! shortcut of strided identity units.
//!
//! Batch-norm folding: conv1 and conv2 of each unit are followed by BN + ReLU in the
//! checkpoint, so they fold into weights + bias with a fused RELU like everywhere
//! else. conv3, the projection shortcuts, the root conv and the logits have no
//! normalizer in slim and keep their own bias. The pre-activation BN (`preact`, and
//! the final `postnorm`) normalises the residual *sum*, which feeds both the next
//! identity shortcut unchanged and, through a ReLU, the next convs: it can be folded
//! into neither side. As the TFLite converter does for such BNs we emit it as MUL by
//! the per-channel scale and ADD of the per-channel offset, with the ReLU fused into
//! the ADD. That costs 2 parameters per channel, exactly the checkpoint's trainable
//! `γ, β`, so the parameter count stays the published one.

use super::builder::{Act, ConvCfg, Net};
use super::{Arch, INPUT_VAR, LOGITS_GAIN, Params};
use crate::error::Result;
use crate::ir::{Activation, Model, Padding};

/// (base depth, units, stride of the last unit) of the four blocks, per depth.
const BLOCKS_50: [(usize, usize, usize); 4] = [(64, 3, 2), (128, 4, 2), (256, 6, 2), (512, 3, 1)];
const BLOCKS_101: [(usize, usize, usize); 4] = [(64, 3, 2), (128, 4, 2), (256, 23, 2), (512, 3, 1)];
const BLOCKS_152: [(usize, usize, usize); 4] = [(64, 3, 2), (128, 8, 2), (256, 36, 2), (512, 3, 1)];
/// Output std of a residual branch relative to the unit-variance preact: small, so
/// the residual stream grows slowly across the 33 units (as in trained ResNets).
const RESIDUAL_GAIN: f32 = 0.5;

/// slim `conv2d_same`: SAME conv at stride 1; otherwise pad `k − 1` split evenly
/// (extra at the end) and a VALID conv, so the result does not depend on the input
/// size parity.
fn conv2d_same(net: &mut Net, x: Act, name: &str, mut cfg: ConvCfg) -> Result<Act> {
    if cfg.stride == 1 {
        return net.conv(x, name, cfg);
    }
    let total = cfg.kh - 1;
    let beg = total / 2;
    let padded = net.pad_hw(x, &format!("{name}/Pad"), beg, total - beg)?;
    cfg.padding = Padding::Valid;
    net.conv(padded, name, cfg)
}

fn bottleneck(net: &mut Net, x: Act, name: &str, base: usize, stride: usize) -> Result<Act> {
    let depth = base * 4;
    let depth_in = net.shape(x)[3];
    let preact = net.batch_norm(x, &format!("{name}/preact"), Activation::Relu);
    let shortcut = if depth == depth_in {
        if stride == 1 {
            x
        } else {
            net.pool(
                x,
                &format!("{name}/shortcut"),
                true,
                1,
                stride,
                Padding::Same,
            )?
        }
    } else {
        net.conv(
            preact,
            &format!("{name}/shortcut"),
            ConvCfg::plain(depth, 1, stride, 1.0),
        )?
    };
    let r = net.conv(
        preact,
        &format!("{name}/conv1"),
        ConvCfg::bn(base, 1, 1, 1, Activation::Relu),
    )?;
    let r = conv2d_same(
        net,
        r,
        &format!("{name}/conv2"),
        ConvCfg::bn(base, 3, 3, stride, Activation::Relu),
    )?;
    let r = net.conv(
        r,
        &format!("{name}/conv3"),
        ConvCfg::plain(depth, 1, 1, RESIDUAL_GAIN),
    )?;
    net.add(shortcut, r, &format!("{name}/add"), Activation::None)
}

/// ResNet v2 of the depth `arch` names (50, 101 or 152 layers).
pub(crate) fn v2(p: &Params, arch: Arch) -> Result<Model> {
    let blocks = match arch {
        Arch::ResnetV2_50 => BLOCKS_50,
        Arch::ResnetV2_152 => BLOCKS_152,
        _ => BLOCKS_101,
    };
    let scope = arch.name();
    let mut net = Net::new(scope, p.seed);
    let r = p.resolution;
    let mut x = net.input("input", r, r, 3, INPUT_VAR);
    // Root: conv1 has neither BN nor activation in resnet v2 (the first unit's
    // preact normalises it).
    x = conv2d_same(
        &mut net,
        x,
        &format!("{scope}/conv1"),
        ConvCfg::plain(64, 7, 2, 1.0),
    )?;
    x = net.pool(x, &format!("{scope}/pool1"), true, 3, 2, Padding::Same)?;
    for (b, &(base, units, stride)) in blocks.iter().enumerate() {
        for u in 0..units {
            let s = if u + 1 == units { stride } else { 1 };
            let name = format!("{scope}/block{}/unit_{}/bottleneck_v2", b + 1, u + 1);
            x = bottleneck(&mut net, x, &name, base, s)?;
        }
    }
    x = net.batch_norm(x, &format!("{scope}/postnorm"), Activation::Relu);
    let pooled = net.mean_hw(x, &format!("{scope}/pool5"));
    let logits = net.conv(
        pooled,
        &format!("{scope}/logits"),
        ConvCfg::logits(p.num_classes, LOGITS_GAIN),
    )?;
    let flat = net.squeeze_to_2d(logits, &format!("{scope}/spatial_squeeze"))?;
    let probs = net.softmax(flat, &format!("{scope}/predictions/Softmax"));
    Ok(net.finish(probs, p.description(arch)))
}

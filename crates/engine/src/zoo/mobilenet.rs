//! MobileNet v1 and v2 as in TF-slim (`nets/mobilenet_v1.py`, `nets/mobilenet/
//! mobilenet_v2.py`), converted: every conv/depthwise carries its folded BN and a
//! fused RELU6, projections are linear, the classifier is AvgPool → 1×1 conv →
//! RESHAPE → SOFTMAX like the hosted `mobilenet_*_quant.tflite` files.

use super::builder::{ConvCfg, Net};
use super::{Arch, INPUT_VAR, LOGITS_GAIN, Params};
use crate::error::Result;
use crate::ir::{Activation, Model};

/// `d × width` the way Python computes it: the multiplier is taken by its decimal
/// value as a double (0.35 is 0.35, not the f32 nearest to it) so that truncation
/// matches slim exactly.
fn scaled(d: usize, width: f32) -> f64 {
    let w: f64 = width.to_string().parse().unwrap_or(f64::from(width));
    d as f64 * w
}

/// slim v1 `depth()`: `max(int(d * depth_multiplier), min_depth)`, min_depth 8.
fn v1_depth(d: usize, width: f32) -> usize {
    (scaled(d, width) as usize).max(8)
}

/// slim `_make_divisible(v, 8)`: round to the nearest multiple of 8, at least 8,
/// and never more than 10% below `v`.
fn make_divisible(v: f64) -> usize {
    const DIV: usize = 8;
    let mut new_v = (((v + DIV as f64 / 2.0) as usize) / DIV * DIV).max(DIV);
    if (new_v as f64) < 0.9 * v {
        new_v += DIV;
    }
    new_v
}

/// Classifier head shared by both MobileNets.
/// `pool_stride` is what the slim graph has: v1 calls `avg_pool2d` with its default
/// stride 2, v2 pools with stride 1 (no effect on the 1×1 result, but the hosted
/// files record it).
fn head(
    mut net: Net,
    x: super::builder::Act,
    p: &Params,
    arch: Arch,
    pool_stride: usize,
) -> Result<Model> {
    let (scope, out) = match arch {
        Arch::MobilenetV1 => ("MobilenetV1", "MobilenetV1/Predictions/Reshape_1"),
        _ => ("MobilenetV2", "MobilenetV2/Predictions/Softmax"),
    };
    let pooled = net.global_avg_pool(x, &format!("{scope}/Logits/AvgPool"), pool_stride)?;
    let logits = net.conv(
        pooled,
        &format!("{scope}/Logits/Conv2d_1c_1x1"),
        ConvCfg::logits(p.num_classes, LOGITS_GAIN),
    )?;
    let flat = net.squeeze_to_2d(logits, &format!("{scope}/Logits/SpatialSqueeze"))?;
    let probs = net.softmax(flat, out);
    Ok(net.finish(probs, p.description(arch)))
}

pub(crate) fn v1(p: &Params) -> Result<Model> {
    const SCOPE: &str = "MobilenetV1";
    const RELU6: Activation = Activation::Relu6;
    // (pointwise depth, depthwise stride) of the 13 separable blocks.
    const BLOCKS: [(usize, usize); 13] = [
        (64, 1),
        (128, 2),
        (128, 1),
        (256, 2),
        (256, 1),
        (512, 2),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (1024, 2),
        (1024, 1),
    ];
    let mut net = Net::new(SCOPE, p.seed);
    let r = p.resolution;
    let mut x = net.input("input", r, r, 3, INPUT_VAR);
    x = net.conv(
        x,
        &format!("{SCOPE}/Conv2d_0"),
        ConvCfg::bn(v1_depth(32, p.width), 3, 3, 2, RELU6),
    )?;
    for (i, &(d, s)) in BLOCKS.iter().enumerate() {
        let name = format!("{SCOPE}/Conv2d_{}", i + 1);
        x = net.depthwise(x, &format!("{name}_depthwise"), 3, s, RELU6)?;
        x = net.conv(
            x,
            &format!("{name}_pointwise"),
            ConvCfg::bn(v1_depth(d, p.width), 1, 1, 1, RELU6),
        )?;
    }
    head(net, x, p, Arch::MobilenetV1, 2)
}

pub(crate) fn v2(p: &Params) -> Result<Model> {
    const SCOPE: &str = "MobilenetV2";
    const RELU6: Activation = Activation::Relu6;
    const EXPANSION: usize = 6;
    // (output depth, repeats, first stride) of the expansion-6 inverted-residual
    // groups after the first (expansion 1) block.
    const GROUPS: [(usize, usize, usize); 6] = [
        (24, 2, 2),
        (32, 3, 2),
        (64, 4, 2),
        (96, 3, 1),
        (160, 3, 2),
        (320, 1, 1),
    ];
    let depth = |d: usize| make_divisible(scaled(d, p.width));
    let mut net = Net::new(SCOPE, p.seed);
    let r = p.resolution;
    let mut x = net.input("input", r, r, 3, INPUT_VAR);
    x = net.conv(
        x,
        &format!("{SCOPE}/Conv"),
        ConvCfg::bn(depth(32), 3, 3, 2, RELU6),
    )?;

    // First block: expansion factor 1, so slim skips the expand conv.
    let first_in = x;
    let name = format!("{SCOPE}/expanded_conv");
    x = net.depthwise(x, &format!("{name}/depthwise"), 3, 1, RELU6)?;
    x = net.conv(
        x,
        &format!("{name}/project"),
        ConvCfg::bn(depth(16), 1, 1, 1, Activation::None),
    )?;
    if net.shape(first_in) == net.shape(x) {
        x = net.add(first_in, x, &format!("{name}/add"), Activation::None)?;
    }

    let mut k = 1;
    for &(d, n, s) in &GROUPS {
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let name = format!("{SCOPE}/expanded_conv_{k}");
            k += 1;
            let block_in = x;
            let in_c = net.shape(x)[3];
            let inner = make_divisible((in_c * EXPANSION) as f64);
            x = net.conv(
                x,
                &format!("{name}/expand"),
                ConvCfg::bn(inner, 1, 1, 1, RELU6),
            )?;
            x = net.depthwise(x, &format!("{name}/depthwise"), 3, stride, RELU6)?;
            x = net.conv(
                x,
                &format!("{name}/project"),
                ConvCfg::bn(depth(d), 1, 1, 1, Activation::None),
            )?;
            // slim adds the residual whenever stride is 1 and depth is unchanged.
            if stride == 1 && net.shape(block_in) == net.shape(x) {
                x = net.add(block_in, x, &format!("{name}/add"), Activation::None)?;
            }
        }
    }

    // The last conv keeps 1280 channels for width < 1 (the published checkpoints
    // were trained that way) and scales up for width > 1.
    let last = if p.width > 1.0 { depth(1280) } else { 1280 };
    x = net.conv(
        x,
        &format!("{SCOPE}/Conv_1"),
        ConvCfg::bn(last, 1, 1, 1, RELU6),
    )?;
    head(net, x, p, Arch::MobilenetV2, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slim_depth_rules() {
        assert_eq!(v1_depth(32, 0.25), 8);
        assert_eq!(v1_depth(1024, 0.75), 768);
        assert_eq!(v1_depth(64, 0.1), 8);
        assert_eq!(make_divisible(scaled(32, 0.35)), 16);
        assert_eq!(make_divisible(scaled(16, 0.35)), 8);
        assert_eq!(make_divisible(scaled(96, 1.4)), 136);
        assert_eq!(make_divisible(scaled(1280, 1.4)), 1792);
        assert_eq!(make_divisible(scaled(24, 0.5)), 16);
    }
}

//! Inception v3 as in TF-slim (`nets/inception_v3.py`), converted: every conv is
//! conv + folded BN + fused RELU (slim's inception BN has no `γ`, so the folded
//! weights + bias hold exactly the checkpoint's trainable parameters). The exported
//! inference graph has no auxiliary head, so neither does this one.

use super::builder::{Act, ConvCfg, Net};
use super::{Arch, INPUT_VAR, LOGITS_GAIN, Params};
use crate::error::Result;
use crate::ir::{Activation, Model, Padding};

const SCOPE: &str = "InceptionV3";

struct B<'a> {
    net: &'a mut Net,
}

impl B<'_> {
    /// conv (kh × kw, stride 1, SAME) + folded BN + RELU.
    fn conv(&mut self, x: Act, name: &str, out: usize, kh: usize, kw: usize) -> Result<Act> {
        self.net
            .conv(x, name, ConvCfg::bn(out, kh, kw, 1, Activation::Relu))
    }

    /// VALID conv with a stride (the stem and the grid reductions).
    fn conv_valid(&mut self, x: Act, name: &str, out: usize, k: usize, s: usize) -> Result<Act> {
        self.net
            .conv(x, name, ConvCfg::bn(out, k, k, s, Activation::Relu).valid())
    }

    /// The 3×3 stride-1 SAME average pool every "pool" branch starts with.
    fn avg3(&mut self, x: Act, name: &str) -> Result<Act> {
        self.net.pool(x, name, false, 3, 1, Padding::Same)
    }

    fn max3_valid(&mut self, x: Act, name: &str) -> Result<Act> {
        self.net.pool(x, name, true, 3, 2, Padding::Valid)
    }

    /// Mixed_5b/5c/5d (35×35): 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | pool→1×1.
    fn mixed_5(&mut self, x: Act, scope: &str, pool_proj: usize) -> Result<Act> {
        let s = format!("{SCOPE}/{scope}");
        let b0 = self.conv(x, &format!("{s}/Branch_0/Conv2d_0a_1x1"), 64, 1, 1)?;
        let b1 = self.conv(x, &format!("{s}/Branch_1/Conv2d_0a_1x1"), 48, 1, 1)?;
        let b1 = self.conv(b1, &format!("{s}/Branch_1/Conv2d_0b_5x5"), 64, 5, 5)?;
        let b2 = self.conv(x, &format!("{s}/Branch_2/Conv2d_0a_1x1"), 64, 1, 1)?;
        let b2 = self.conv(b2, &format!("{s}/Branch_2/Conv2d_0b_3x3"), 96, 3, 3)?;
        let b2 = self.conv(b2, &format!("{s}/Branch_2/Conv2d_0c_3x3"), 96, 3, 3)?;
        let b3 = self.avg3(x, &format!("{s}/Branch_3/AvgPool_0a_3x3"))?;
        let b3 = self.conv(b3, &format!("{s}/Branch_3/Conv2d_0b_1x1"), pool_proj, 1, 1)?;
        self.net.concat(&[b0, b1, b2, b3], &format!("{s}/concat"))
    }

    /// Mixed_6a: 35×35 → 17×17.
    fn mixed_6a(&mut self, x: Act) -> Result<Act> {
        let s = format!("{SCOPE}/Mixed_6a");
        let b0 = self.conv_valid(x, &format!("{s}/Branch_0/Conv2d_1a_1x1"), 384, 3, 2)?;
        let b1 = self.conv(x, &format!("{s}/Branch_1/Conv2d_0a_1x1"), 64, 1, 1)?;
        let b1 = self.conv(b1, &format!("{s}/Branch_1/Conv2d_0b_3x3"), 96, 3, 3)?;
        let b1 = self.conv_valid(b1, &format!("{s}/Branch_1/Conv2d_1a_1x1"), 96, 3, 2)?;
        let b2 = self.max3_valid(x, &format!("{s}/Branch_2/MaxPool_1a_3x3"))?;
        self.net.concat(&[b0, b1, b2], &format!("{s}/concat"))
    }

    /// Mixed_6b..6e (17×17) with the factorised 1×7 / 7×1 convolutions; `m` is the
    /// inner depth (128, 160, 160, 192).
    fn mixed_6(&mut self, x: Act, scope: &str, m: usize) -> Result<Act> {
        let s = format!("{SCOPE}/{scope}");
        let b0 = self.conv(x, &format!("{s}/Branch_0/Conv2d_0a_1x1"), 192, 1, 1)?;
        let b1 = self.conv(x, &format!("{s}/Branch_1/Conv2d_0a_1x1"), m, 1, 1)?;
        let b1 = self.conv(b1, &format!("{s}/Branch_1/Conv2d_0b_1x7"), m, 1, 7)?;
        let b1 = self.conv(b1, &format!("{s}/Branch_1/Conv2d_0c_7x1"), 192, 7, 1)?;
        let b2 = self.conv(x, &format!("{s}/Branch_2/Conv2d_0a_1x1"), m, 1, 1)?;
        let b2 = self.conv(b2, &format!("{s}/Branch_2/Conv2d_0b_7x1"), m, 7, 1)?;
        let b2 = self.conv(b2, &format!("{s}/Branch_2/Conv2d_0c_1x7"), m, 1, 7)?;
        let b2 = self.conv(b2, &format!("{s}/Branch_2/Conv2d_0d_7x1"), m, 7, 1)?;
        let b2 = self.conv(b2, &format!("{s}/Branch_2/Conv2d_0e_1x7"), 192, 1, 7)?;
        let b3 = self.avg3(x, &format!("{s}/Branch_3/AvgPool_0a_3x3"))?;
        let b3 = self.conv(b3, &format!("{s}/Branch_3/Conv2d_0b_1x1"), 192, 1, 1)?;
        self.net.concat(&[b0, b1, b2, b3], &format!("{s}/concat"))
    }

    /// Mixed_7a: 17×17 → 8×8.
    fn mixed_7a(&mut self, x: Act) -> Result<Act> {
        let s = format!("{SCOPE}/Mixed_7a");
        let b0 = self.conv(x, &format!("{s}/Branch_0/Conv2d_0a_1x1"), 192, 1, 1)?;
        let b0 = self.conv_valid(b0, &format!("{s}/Branch_0/Conv2d_1a_3x3"), 320, 3, 2)?;
        let b1 = self.conv(x, &format!("{s}/Branch_1/Conv2d_0a_1x1"), 192, 1, 1)?;
        let b1 = self.conv(b1, &format!("{s}/Branch_1/Conv2d_0b_1x7"), 192, 1, 7)?;
        let b1 = self.conv(b1, &format!("{s}/Branch_1/Conv2d_0c_7x1"), 192, 7, 1)?;
        let b1 = self.conv_valid(b1, &format!("{s}/Branch_1/Conv2d_1a_3x3"), 192, 3, 2)?;
        let b2 = self.max3_valid(x, &format!("{s}/Branch_2/MaxPool_1a_3x3"))?;
        self.net.concat(&[b0, b1, b2], &format!("{s}/concat"))
    }

    /// Mixed_7b/7c (8×8): the branches that fan out into parallel 1×3 and 3×1 convs.
    fn mixed_7(&mut self, x: Act, scope: &str) -> Result<Act> {
        let s = format!("{SCOPE}/{scope}");
        let b0 = self.conv(x, &format!("{s}/Branch_0/Conv2d_0a_1x1"), 320, 1, 1)?;
        let b1 = self.conv(x, &format!("{s}/Branch_1/Conv2d_0a_1x1"), 384, 1, 1)?;
        let b1a = self.conv(b1, &format!("{s}/Branch_1/Conv2d_0b_1x3"), 384, 1, 3)?;
        let b1b = self.conv(b1, &format!("{s}/Branch_1/Conv2d_0c_3x1"), 384, 3, 1)?;
        let b1 = self
            .net
            .concat(&[b1a, b1b], &format!("{s}/Branch_1/concat"))?;
        let b2 = self.conv(x, &format!("{s}/Branch_2/Conv2d_0a_1x1"), 448, 1, 1)?;
        let b2 = self.conv(b2, &format!("{s}/Branch_2/Conv2d_0b_3x3"), 384, 3, 3)?;
        let b2a = self.conv(b2, &format!("{s}/Branch_2/Conv2d_0c_1x3"), 384, 1, 3)?;
        let b2b = self.conv(b2, &format!("{s}/Branch_2/Conv2d_0d_3x1"), 384, 3, 1)?;
        let b2 = self
            .net
            .concat(&[b2a, b2b], &format!("{s}/Branch_2/concat"))?;
        let b3 = self.avg3(x, &format!("{s}/Branch_3/AvgPool_0a_3x3"))?;
        let b3 = self.conv(b3, &format!("{s}/Branch_3/Conv2d_0b_1x1"), 192, 1, 1)?;
        self.net.concat(&[b0, b1, b2, b3], &format!("{s}/concat"))
    }
}

pub(crate) fn v3(p: &Params) -> Result<Model> {
    let mut net = Net::new(SCOPE, p.seed);
    let r = p.resolution;
    let input = net.input("input", r, r, 3, INPUT_VAR);
    let x = {
        let mut b = B { net: &mut net };
        // Stem: slim's base scope makes these VALID unless stated.
        let x = b.conv_valid(input, &format!("{SCOPE}/Conv2d_1a_3x3"), 32, 3, 2)?;
        let x = b.conv_valid(x, &format!("{SCOPE}/Conv2d_2a_3x3"), 32, 3, 1)?;
        let x = b.conv(x, &format!("{SCOPE}/Conv2d_2b_3x3"), 64, 3, 3)?;
        let x = b.max3_valid(x, &format!("{SCOPE}/MaxPool_3a_3x3"))?;
        let x = b.conv_valid(x, &format!("{SCOPE}/Conv2d_3b_1x1"), 80, 1, 1)?;
        let x = b.conv_valid(x, &format!("{SCOPE}/Conv2d_4a_3x3"), 192, 3, 1)?;
        let x = b.max3_valid(x, &format!("{SCOPE}/MaxPool_5a_3x3"))?;
        let x = b.mixed_5(x, "Mixed_5b", 32)?;
        let x = b.mixed_5(x, "Mixed_5c", 64)?;
        let x = b.mixed_5(x, "Mixed_5d", 64)?;
        let x = b.mixed_6a(x)?;
        let x = b.mixed_6(x, "Mixed_6b", 128)?;
        let x = b.mixed_6(x, "Mixed_6c", 160)?;
        let x = b.mixed_6(x, "Mixed_6d", 160)?;
        let x = b.mixed_6(x, "Mixed_6e", 192)?;
        let x = b.mixed_7a(x)?;
        let x = b.mixed_7(x, "Mixed_7b")?;
        b.mixed_7(x, "Mixed_7c")?
    };
    // 8×8 at 299: the pool covers the whole final map (dropout is gone at inference).
    let pooled = net.global_avg_pool(x, &format!("{SCOPE}/Logits/AvgPool_1a_8x8"), 2)?;
    let logits = net.conv(
        pooled,
        &format!("{SCOPE}/Logits/Conv2d_1c_1x1"),
        ConvCfg::logits(p.num_classes, LOGITS_GAIN),
    )?;
    let flat = net.squeeze_to_2d(logits, &format!("{SCOPE}/Logits/SpatialSqueeze"))?;
    let probs = net.softmax(flat, &format!("{SCOPE}/Predictions/Softmax"));
    Ok(net.finish(probs, p.description(Arch::InceptionV3)))
}

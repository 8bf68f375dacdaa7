//! Throwaway: time training steps of the mnv2-cifar architecture (same block table,
//! width 0.5, batch 128) in candle 0.11 on CPU.
use candle_core::{DType, Device, Module, ModuleT, Result, Tensor};
use candle_nn::{
    batch_norm, conv2d_no_bias, linear, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Linear,
    Optimizer, VarBuilder, VarMap, SGD,
};
use std::time::Instant;

struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
    act: bool,
}

impl ConvBn {
    fn new(vb: VarBuilder, cin: usize, cout: usize, k: usize, stride: usize, groups: usize, act: bool) -> Result<Self> {
        let cfg = Conv2dConfig { padding: k / 2, stride, dilation: 1, groups, cudnn_fwd_algo: None };
        let conv = conv2d_no_bias(cin, cout, k, cfg, vb.pp("conv"))?;
        let bcfg = BatchNormConfig { eps: 1e-3, remove_mean: true, affine: true, momentum: 0.1 };
        let bn = batch_norm(cout, bcfg, vb.pp("bn"))?;
        Ok(ConvBn { conv, bn, act })
    }
    fn fwd(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.bn.forward_t(&self.conv.forward(x)?, true)?;
        if self.act { y.relu()?.minimum(6f32) } else { Ok(y) }
    }
}

struct Block { layers: Vec<ConvBn>, residual: bool }

fn ch(c: f32) -> usize { ((((c / 8.0).round()) as usize) * 8).max(8) }

fn main() -> Result<()> {
    let steps: usize = std::env::args().nth(1).map_or(5, |s| s.parse().unwrap());
    let batch: usize = std::env::args().nth(2).map_or(128, |s| s.parse().unwrap());
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    let width = 0.5f32;
    let stem = ConvBn::new(vb.pp("stem"), 3, ch(32.0 * width), 3, 1, 1, true)?;
    let table = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 3, 2), (6, 96, 2, 1), (6, 160, 2, 2), (6, 320, 1, 1)];
    let mut cin = ch(32.0 * width);
    let mut blocks = Vec::new();
    for (bi, &(t, c, n, s)) in table.iter().enumerate() {
        let cout = ch(c as f32 * width);
        for r in 0..n {
            let stride = if r == 0 { s } else { 1 };
            let v = vb.pp(format!("b{bi}_{r}"));
            let mut layers = Vec::new();
            let e = cin * t;
            if t != 1 { layers.push(ConvBn::new(v.pp("expand"), cin, e, 1, 1, 1, true)?); }
            layers.push(ConvBn::new(v.pp("dw"), e, e, 3, stride, e, true)?);
            layers.push(ConvBn::new(v.pp("project"), e, cout, 1, 1, 1, false)?);
            blocks.push(Block { layers, residual: stride == 1 && cin == cout });
            cin = cout;
        }
    }
    let head = ConvBn::new(vb.pp("head"), cin, 640, 1, 1, 1, true)?;
    let fc: Linear = linear(640, 10, vb.pp("fc"))?;
    let mut opt = SGD::new(vm.all_vars(), 0.01)?;
    let x = Tensor::rand(0f32, 1f32, (batch, 3, 32, 32), &dev)?;
    let labels = Tensor::from_vec((0..batch as u32).map(|i| i % 10).collect::<Vec<_>>(), batch, &dev)?;
    let mut run = || -> Result<f32> {
        let mut h = stem.fwd(&x)?;
        for b in &blocks {
            let mut y = h.clone();
            for l in &b.layers { y = l.fwd(&y)?; }
            h = if b.residual { (h + y)? } else { y };
        }
        let h = head.fwd(&h)?.mean((2, 3))?;
        let logits = fc.forward(&h)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
        opt.backward_step(&loss)?;
        loss.to_scalar::<f32>()
    };
    run()?; // warm-up
    let t0 = Instant::now();
    let mut last = 0.0;
    for _ in 0..steps { last = run()?; }
    let s = t0.elapsed().as_secs_f64();
    let per_img = s / (steps * batch) as f64;
    println!("candle {steps} steps x {batch}: {s:.2} s, {:.3} ms/image, 50k-image epoch ~ {:.0} s (loss {last:.3})", per_img * 1e3, per_img * 50_000.0);
    Ok(())
}

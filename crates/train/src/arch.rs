//! The CIFAR-10 architectures and the builder they share. Input: `[32, 32, 3]`
//! RGB in [0, 1]; no separate normalisation (the stem's batch norm does it).

use crate::net::{Kind, Net, Node, ParamInfo, Weights};
use crate::ops::bn::Act;
use crate::rng::Rng;

/// Names accepted by `--arch`.
pub const ARCHS: [&str; 3] = ["mnv2-cifar", "mnv1-cifar", "gated-cifar"];

/// Build an architecture by name.
pub fn build(name: &str) -> Option<Net> {
    match name {
        "mnv2-cifar" => Some(mnv2_cifar()),
        "mnv1-cifar" => Some(mnv1_cifar()),
        "gated-cifar" => Some(gated_cifar()),
        _ => None,
    }
}

/// How a parameter starts.
#[derive(Debug, Clone, Copy)]
enum Init {
    /// Normal with this standard deviation.
    Normal(f32),
    Const(f32),
}

pub struct Builder {
    net: Net,
}

impl Builder {
    pub fn new(name: &str, h: usize, w: usize, c: usize) -> Builder {
        Builder {
            net: Net {
                name: name.to_string(),
                nodes: vec![Node {
                    name: "input".into(),
                    kind: Kind::Input,
                    inputs: vec![],
                    shape: [h, w, c],
                }],
                params: vec![],
                stats: vec![],
            },
        }
    }

    fn param(&mut self, name: String, len: usize, decay: bool) -> usize {
        self.net.params.push(ParamInfo { name, len, decay });
        self.net.params.len() - 1
    }

    fn node(&mut self, name: String, kind: Kind, inputs: Vec<usize>, shape: [usize; 3]) -> usize {
        self.net.nodes.push(Node {
            name,
            kind,
            inputs,
            shape,
        });
        self.net.nodes.len() - 1
    }

    pub fn shape(&self, x: usize) -> [usize; 3] {
        self.net.nodes[x].shape
    }

    /// Conv (k×k, SAME) + BN + activation. [`init_weights`] starts the
    /// BN scale at 0 where it feeds a residual ADD (each block starts as the identity).
    pub fn conv_bn(
        &mut self,
        x: usize,
        name: &str,
        cout: usize,
        k: usize,
        stride: usize,
        act: Act,
    ) -> usize {
        let [h, w, cin] = self.shape(x);
        let wp = self.param(format!("{name}/weights"), k * k * cin * cout, true);
        let shape = [h.div_ceil(stride), w.div_ceil(stride), cout];
        let c = self.node(
            name.to_string(),
            Kind::Conv { w: wp, k, stride },
            vec![x],
            shape,
        );
        self.bn(c, name, act)
    }

    /// Depthwise (k×k, SAME) + BN + activation.
    pub fn dw_bn(&mut self, x: usize, name: &str, k: usize, stride: usize, act: Act) -> usize {
        let [h, w, ch] = self.shape(x);
        let wp = self.param(format!("{name}/depthwise_weights"), k * k * ch, true);
        let shape = [h.div_ceil(stride), w.div_ceil(stride), ch];
        let c = self.node(
            name.to_string(),
            Kind::Depthwise { w: wp, k, stride },
            vec![x],
            shape,
        );
        self.bn(c, name, act)
    }

    fn bn(&mut self, x: usize, name: &str, act: Act) -> usize {
        let shape = self.shape(x);
        let c = shape[2];
        let gamma = self.param(format!("{name}/bn/gamma"), c, false);
        let beta = self.param(format!("{name}/bn/beta"), c, false);
        self.net.stats.push(c);
        let stat = self.net.stats.len() - 1;
        self.node(
            format!("{name}/bn"),
            Kind::BnAct {
                gamma,
                beta,
                stat,
                act,
            },
            vec![x],
            shape,
        )
    }

    pub fn add(&mut self, a: usize, b: usize, name: &str) -> usize {
        assert_eq!(self.shape(a), self.shape(b), "{name}: residual shapes");
        let shape = self.shape(a);
        self.node(name.to_string(), Kind::Add, vec![a, b], shape)
    }

    /// Elementwise product of two outputs of one shape.
    pub fn mul(&mut self, a: usize, b: usize, name: &str) -> usize {
        assert_eq!(self.shape(a), self.shape(b), "{name}: product shapes");
        let shape = self.shape(a);
        self.node(name.to_string(), Kind::Mul, vec![a, b], shape)
    }

    pub fn gap(&mut self, x: usize) -> usize {
        let c = self.shape(x)[2];
        self.node("pool".into(), Kind::Gap, vec![x], [1, 1, c])
    }

    pub fn dense(&mut self, x: usize, name: &str, cout: usize) -> usize {
        let cin = self.net.nodes[x].len();
        let w = self.param(format!("{name}/weights"), cin * cout, true);
        let b = self.param(format!("{name}/biases"), cout, false);
        self.node(
            name.to_string(),
            Kind::Dense { w, b },
            vec![x],
            [1, 1, cout],
        )
    }

    pub fn finish(self) -> Net {
        self.net
    }
}

/// Initial weights of `net` from `seed` (He-normal convs, BN γ = 1, or 0 on the
/// last BN of each residual branch, running statistics 0 / 1).
pub fn init_weights(net: &Net, seed: u64) -> Weights {
    // Derived from the node kinds, so any net (not only the builder's) gets one.
    let mut inits = vec![Init::Const(0.0); net.params.len()];
    for node in &net.nodes {
        let fan_in = node.inputs.first().map_or(0, |&i| net.nodes[i].shape[2]);
        match node.kind {
            Kind::Conv { w, k, .. } => {
                inits[w] = Init::Normal((2.0 / (k * k * fan_in) as f32).sqrt())
            }
            Kind::Depthwise { w, k, .. } => inits[w] = Init::Normal((2.0 / (k * k) as f32).sqrt()),
            Kind::Dense { w, .. } => {
                let cin = node.inputs.first().map_or(1, |&i| net.nodes[i].len());
                inits[w] = Init::Normal((1.0 / cin as f32).sqrt())
            }
            Kind::BnAct { gamma, .. } => {
                // Zero γ when this BN feeds a residual ADD directly.
                let me = net.nodes.iter().position(|n| std::ptr::eq(n, node));
                let feeds_add = net
                    .nodes
                    .iter()
                    .any(|n| n.kind == Kind::Add && me.is_some_and(|m| n.inputs[1] == m));
                inits[gamma] = Init::Const(if feeds_add { 0.0 } else { 1.0 });
            }
            _ => {}
        }
    }
    let params = net
        .params
        .iter()
        .zip(&inits)
        .enumerate()
        .map(|(i, (p, init))| match *init {
            Init::Const(v) => vec![v; p.len],
            Init::Normal(std) => {
                let mut r = Rng::derive(seed, &[1, i as u64]);
                (0..p.len).map(|_| r.normal() * std).collect()
            }
        })
        .collect();
    Weights {
        params,
        running_mean: net.stats.iter().map(|&c| vec![0.0; c]).collect(),
        running_var: net.stats.iter().map(|&c| vec![1.0; c]).collect(),
    }
}

/// Round a scaled channel count to a multiple of 8 (as MobileNet's `make_divisible`).
fn ch(c: f32) -> usize {
    (((c / 8.0).round() as usize) * 8).max(8)
}

/// MobileNet-v2 style for 32×32: stem 3×3 stride 1, inverted residual blocks
/// `(expansion t, channels c, repeats n, first stride s)`, ReLU6, 1×1 head conv,
/// global average pool, dense 10. Strides 1-1-2-2-1-2 keep 32×32 for the first
/// blocks and end at 4×4.
pub fn mnv2_cifar() -> Net {
    mnv2_with(
        "mnv2-cifar",
        0.5,
        &[
            (1, 16, 1, 1),
            (6, 24, 2, 1),
            (6, 32, 3, 2),
            (6, 64, 3, 2),
            (6, 96, 2, 1),
            (6, 160, 2, 2),
            (6, 320, 1, 1),
        ],
        640,
    )
}

/// MobileNet v2 with a width multiplier and a block table.
pub fn mnv2_with(
    name: &str,
    width: f32,
    blocks: &[(usize, usize, usize, usize)],
    head: usize,
) -> Net {
    let mut b = Builder::new(name, 32, 32, 3);
    let mut x = b.conv_bn(0, "stem", ch(32.0 * width), 3, 1, Act::Relu6);
    for (bi, &(t, c, n, s)) in blocks.iter().enumerate() {
        let cout = ch(c as f32 * width);
        for r in 0..n {
            let stride = if r == 0 { s } else { 1 };
            let name = format!("block{bi}_{r}");
            let cin = b.shape(x)[2];
            let residual = stride == 1 && cin == cout;
            let mut y = x;
            if t != 1 {
                y = b.conv_bn(y, &format!("{name}/expand"), cin * t, 1, 1, Act::Relu6);
            }
            y = b.dw_bn(y, &format!("{name}/depthwise"), 3, stride, Act::Relu6);
            y = b.conv_bn(y, &format!("{name}/project"), cout, 1, 1, Act::None);
            x = if residual {
                b.add(x, y, &format!("{name}/add"))
            } else {
                y
            };
        }
    }
    x = b.conv_bn(x, "head", head, 1, 1, Act::Relu6);
    let p = b.gap(x);
    b.dense(p, "logits", 10);
    b.finish()
}

/// MobileNet-v1 style for 32×32: stem 3×3 stride 1, depthwise-separable blocks
/// (3×3 depthwise + BN + ReLU6, 1×1 + BN + ReLU6), width 0.5, pool, dense 10.
pub fn mnv1_cifar() -> Net {
    let width = 0.5;
    let mut b = Builder::new("mnv1-cifar", 32, 32, 3);
    let mut x = b.conv_bn(0, "stem", ch(32.0 * width), 3, 1, Act::Relu6);
    let blocks = [
        (64, 1),
        (128, 2),
        (128, 1),
        (256, 2),
        (256, 1),
        (512, 2),
        (512, 1),
        (512, 1),
        (512, 1),
        (1024, 1),
    ];
    for (i, &(c, s)) in blocks.iter().enumerate() {
        x = b.dw_bn(x, &format!("block{i}/depthwise"), 3, s, Act::Relu6);
        x = b.conv_bn(
            x,
            &format!("block{i}/pointwise"),
            ch(c as f32 * width),
            1,
            1,
            Act::Relu6,
        );
    }
    let p = b.gap(x);
    b.dense(p, "logits", 10);
    b.finish()
}

/// A multiplicatively gated residual net for 32×32, the int16-effect model. Each
/// block adds to an unclamped residual stream the product of three linear
/// conv + BN branches, `x += a ⊙ g₁ ⊙ g₂` (a third-order "polynomial" block, as in
/// Π-nets): a 3×3 branch gated by two 1×1 branches. A product of three normalised
/// features is heavy-tailed, so the per-tensor range of each product and of the
/// stream is set by rare large values; int8 activations round the common small
/// values away, int16 keeps them. (With two factors the tails stay short and int8
/// loses nothing; with four, training at this recipe diverged.) Stages of 16, 32
/// and 64 channels at 32×32, 16×16 and 8×8, joined by stride-2 3×3 conv + BN +
/// ReLU6; global pool, dense 10.
pub fn gated_cifar() -> Net {
    const ORDER: usize = 3;
    let mut b = Builder::new("gated-cifar", 32, 32, 3);
    let mut x = b.conv_bn(0, "stem", 16, 3, 1, Act::Relu6);
    for (si, &(c, blocks)) in [(16usize, 1usize), (32, 2), (64, 2)].iter().enumerate() {
        if si > 0 {
            x = b.conv_bn(x, &format!("down{si}"), c, 3, 2, Act::Relu6);
        }
        for r in 0..blocks {
            let name = format!("block{si}_{r}");
            let mut p = b.conv_bn(x, &format!("{name}/a"), c, 3, 1, Act::None);
            for f in 1..ORDER {
                let g = b.conv_bn(x, &format!("{name}/g{f}"), c, 1, 1, Act::None);
                p = b.mul(p, g, &format!("{name}/mul{f}"));
            }
            x = b.add(x, p, &format!("{name}/add"));
        }
    }
    let p = b.gap(x);
    b.dense(p, "logits", 10);
    b.finish()
}

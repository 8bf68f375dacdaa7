//! Read a float32 `.tflite` of the kind [`crate::export`] writes back into a
//! trainable net (for fine-tuning: QAT). Each CONV_2D / DEPTHWISE_CONV_2D with bias
//! and fused activation becomes a conv node and a batch norm that is the identity
//! (`γ = √(1+ε)`, `β = bias`, running mean 0, variance 1), so folding it again gives
//! the file's weights and biases exactly; ADD, global AVERAGE_POOL_2D (or MEAN over
//! H, W), FULLY_CONNECTED and a final SOFTMAX map to their nodes.

use quantfarm_engine::ir::{Activation, DType, Model, OpKind, Padding, TensorId};
use quantfarm_engine::{EngineError, Result};

use crate::net::{Kind, Net, Node, ParamInfo, Weights};
use crate::ops::bn;

fn unsupported(what: String) -> EngineError {
    EngineError::unsupported(format!(
        "{what} (fine-tuning reads the float models `quantfarm train` writes: CONV_2D, \
         DEPTHWISE_CONV_2D, ADD, global AVERAGE_POOL_2D/MEAN, FULLY_CONNECTED, SOFTMAX)"
    ))
}

fn act(a: Activation, op: &str) -> Result<bn::Act> {
    match a {
        Activation::None => Ok(bn::Act::None),
        Activation::Relu => Ok(bn::Act::Relu),
        Activation::Relu6 => Ok(bn::Act::Relu6),
        other => Err(unsupported(format!("{op}: fused activation {other:?}"))),
    }
}

struct Build<'m> {
    model: &'m Model,
    net: Net,
    w: Weights,
    node_of: Vec<Option<usize>>,
}

impl Build<'_> {
    fn tensor_f32(&self, t: TensorId, what: &str) -> Result<Vec<f32>> {
        let g = self.model.main();
        let tensor = g
            .tensors
            .get(t)
            .ok_or_else(|| EngineError::invalid(format!("{what}: tensor {t} out of range")))?;
        if tensor.dtype != DType::F32 || tensor.quant.is_some() {
            return Err(unsupported(format!(
                "{what}: tensor '{}' is not float32 (is the model quantized?)",
                tensor.name
            )));
        }
        tensor.data_f32().ok_or_else(|| {
            unsupported(format!(
                "{what}: tensor '{}' is not a constant",
                tensor.name
            ))
        })
    }

    fn param(&mut self, name: String, values: Vec<f32>, decay: bool) -> usize {
        self.net.params.push(ParamInfo {
            name,
            len: values.len(),
            decay,
        });
        self.w.params.push(values);
        self.net.params.len() - 1
    }

    fn input(&self, t: TensorId, op: &str) -> Result<usize> {
        self.node_of.get(t).copied().flatten().ok_or_else(|| {
            unsupported(format!(
                "{op}: input tensor {t} is not produced by a supported op"
            ))
        })
    }

    fn push(&mut self, name: String, kind: Kind, inputs: Vec<usize>, shape: [usize; 3]) -> usize {
        self.net.nodes.push(Node {
            name,
            kind,
            inputs,
            shape,
        });
        self.net.nodes.len() - 1
    }

    /// A conv/depthwise node plus its identity batch norm.
    fn conv_bn(
        &mut self,
        name: &str,
        kind: Kind,
        x: usize,
        shape: [usize; 3],
        bias: Vec<f32>,
        a: bn::Act,
    ) -> usize {
        let c = shape[2];
        let conv = self.push(name.to_string(), kind, vec![x], shape);
        let gamma = self.param(
            format!("{name}/bn/gamma"),
            vec![(1.0 + bn::EPS).sqrt(); c],
            false,
        );
        let beta = self.param(format!("{name}/bn/beta"), bias, false);
        self.net.stats.push(c);
        self.w.running_mean.push(vec![0.0; c]);
        self.w.running_var.push(vec![1.0; c]);
        let stat = self.net.stats.len() - 1;
        self.push(
            format!("{name}/bn"),
            Kind::BnAct {
                gamma,
                beta,
                stat,
                act: a,
            },
            vec![conv],
            shape,
        )
    }
}

/// [`from_model`] for fine-tuning on CIFAR-10 (QAT, pruning): the model must take
/// `[1, 32, 32, 3]` images and give 10 classes.
pub fn from_cifar10_model(model: &Model) -> Result<(Net, Weights)> {
    let (net, w) = from_model(model)?;
    if net.input_shape() != [32, 32, 3] || net.classes() != 10 {
        return Err(EngineError::bad_input(format!(
            "fine-tuning on CIFAR-10 needs a model with [1, 32, 32, 3] in and 10 classes out, \
             not {:?} in and {} out",
            net.input_shape(),
            net.classes()
        )));
    }
    Ok((net, w))
}

/// The net and weights of a float model written by [`crate::export`].
pub fn from_model(model: &Model) -> Result<(Net, Weights)> {
    let g = model.main();
    let [inp] = g.inputs.as_slice() else {
        return Err(unsupported(format!(
            "the model has {} inputs, not 1",
            g.inputs.len()
        )));
    };
    let it = &g.tensors[*inp];
    if it.dtype != DType::F32 || it.shape.len() != 4 || it.shape[0] != 1 {
        return Err(unsupported(format!(
            "input '{}' is {:?} {:?}, not float32 [1, H, W, C]",
            it.name, it.dtype, it.shape
        )));
    }
    let mut b = Build {
        model,
        net: Net {
            name: g.name.clone(),
            nodes: vec![],
            params: vec![],
            stats: vec![],
        },
        w: Weights {
            params: vec![],
            running_mean: vec![],
            running_var: vec![],
        },
        node_of: vec![None; g.tensors.len()],
    };
    let input = b.push(
        "input".into(),
        Kind::Input,
        vec![],
        [it.shape[1], it.shape[2], it.shape[3]],
    );
    b.node_of[*inp] = Some(input);
    let mut softmax_out = None;
    for (oi, op) in g.ops.iter().enumerate() {
        let out = op
            .outputs
            .first()
            .copied()
            .ok_or_else(|| EngineError::invalid(format!("op {oi} has no output")))?;
        let name = g.tensors[out].name.clone();
        let opname = format!("op {oi} ({})", op.kind.name());
        let arg = |k: usize| -> Result<TensorId> {
            op.input(k)
                .ok_or_else(|| EngineError::invalid(format!("{opname}: missing input {k}")))
        };
        let shape_of = |t: TensorId| -> Result<[usize; 3]> {
            match g.tensors[t].shape.as_slice() {
                [1, h, w, c] => Ok([*h, *w, *c]),
                [1, c] => Ok([1, 1, *c]),
                s => Err(unsupported(format!("{opname}: output shape {s:?}"))),
            }
        };
        if softmax_out.is_some() {
            return Err(unsupported(format!("{opname} after the SOFTMAX")));
        }
        let node = match &op.kind {
            OpKind::Conv2D(o) => {
                if o.padding != Padding::Same
                    || o.stride_h != o.stride_w
                    || o.dilation_h != 1
                    || o.dilation_w != 1
                {
                    return Err(unsupported(format!(
                        "{opname}: only SAME, square stride, no dilation"
                    )));
                }
                let x = b.input(arg(0)?, &opname)?;
                let wt = &g.tensors[arg(1)?];
                let [cout, k, k2, cin] = wt.shape[..] else {
                    return Err(unsupported(format!("{opname}: weights {:?}", wt.shape)));
                };
                if k != k2 || cin != b.net.nodes[x].shape[2] {
                    return Err(unsupported(format!("{opname}: weights {:?}", wt.shape)));
                }
                let ohwi = b.tensor_f32(arg(1)?, &opname)?;
                let mut hwio = vec![0f32; ohwi.len()];
                for o_ in 0..cout {
                    for t in 0..k * k {
                        for ci in 0..cin {
                            hwio[(t * cin + ci) * cout + o_] = ohwi[(o_ * k * k + t) * cin + ci];
                        }
                    }
                }
                let bias = match op.input(2) {
                    Some(t) => b.tensor_f32(t, &opname)?,
                    None => vec![0.0; cout],
                };
                let wp = b.param(format!("{name}/weights"), hwio, true);
                let kind = Kind::Conv {
                    w: wp,
                    k,
                    stride: o.stride_h,
                };
                b.conv_bn(
                    &name,
                    kind,
                    x,
                    shape_of(out)?,
                    bias,
                    act(o.activation, &opname)?,
                )
            }
            OpKind::DepthwiseConv2D(o) => {
                if o.padding != Padding::Same
                    || o.stride_h != o.stride_w
                    || o.dilation_h != 1
                    || o.dilation_w != 1
                    || o.depth_multiplier != 1
                {
                    return Err(unsupported(format!(
                        "{opname}: only SAME, square stride, multiplier 1"
                    )));
                }
                let x = b.input(arg(0)?, &opname)?;
                let wt = &g.tensors[arg(1)?];
                let [1, k, k2, c] = wt.shape[..] else {
                    return Err(unsupported(format!("{opname}: weights {:?}", wt.shape)));
                };
                if k != k2 || c != b.net.nodes[x].shape[2] {
                    return Err(unsupported(format!("{opname}: weights {:?}", wt.shape)));
                }
                let wv = b.tensor_f32(arg(1)?, &opname)?;
                let bias = match op.input(2) {
                    Some(t) => b.tensor_f32(t, &opname)?,
                    None => vec![0.0; c],
                };
                let wp = b.param(format!("{name}/depthwise_weights"), wv, true);
                let kind = Kind::Depthwise {
                    w: wp,
                    k,
                    stride: o.stride_h,
                };
                b.conv_bn(
                    &name,
                    kind,
                    x,
                    shape_of(out)?,
                    bias,
                    act(o.activation, &opname)?,
                )
            }
            OpKind::Add { activation, .. } => {
                if *activation != Activation::None {
                    return Err(unsupported(format!("{opname}: fused activation")));
                }
                let (x, y) = (b.input(arg(0)?, &opname)?, b.input(arg(1)?, &opname)?);
                if b.net.nodes[x].shape != b.net.nodes[y].shape {
                    return Err(unsupported(format!("{opname}: broadcasting ADD")));
                }
                let shape = b.net.nodes[x].shape;
                b.push(name, Kind::Add, vec![x, y], shape)
            }
            OpKind::Mul { activation } => {
                if *activation != Activation::None {
                    return Err(unsupported(format!("{opname}: fused activation")));
                }
                let (x, y) = (b.input(arg(0)?, &opname)?, b.input(arg(1)?, &opname)?);
                if b.net.nodes[x].shape != b.net.nodes[y].shape {
                    return Err(unsupported(format!("{opname}: broadcasting MUL")));
                }
                let shape = b.net.nodes[x].shape;
                b.push(name, Kind::Mul, vec![x, y], shape)
            }
            OpKind::AveragePool2D(o) => {
                let x = b.input(arg(0)?, &opname)?;
                let [h, w, c] = b.net.nodes[x].shape;
                if o.filter_h != h || o.filter_w != w || o.activation != Activation::None {
                    return Err(unsupported(format!("{opname}: only a global average pool")));
                }
                b.push(name, Kind::Gap, vec![x], [1, 1, c])
            }
            OpKind::Mean { .. } => {
                let x = b.input(arg(0)?, &opname)?;
                let axes = g.tensors[arg(1)?].data_i32().unwrap_or_default();
                if axes != [1, 2] {
                    return Err(unsupported(format!("{opname}: MEAN over axes {axes:?}")));
                }
                let c = b.net.nodes[x].shape[2];
                b.push(name, Kind::Gap, vec![x], [1, 1, c])
            }
            OpKind::FullyConnected(o) => {
                if o.activation != Activation::None {
                    return Err(unsupported(format!("{opname}: fused activation")));
                }
                let x = b.input(arg(0)?, &opname)?;
                let cin = b.net.nodes[x].len();
                let wt = &g.tensors[arg(1)?];
                let [cout, wcin] = wt.shape[..] else {
                    return Err(unsupported(format!("{opname}: weights {:?}", wt.shape)));
                };
                if wcin != cin {
                    return Err(unsupported(format!(
                        "{opname}: weights {:?} for {cin} inputs",
                        wt.shape
                    )));
                }
                let oi = b.tensor_f32(arg(1)?, &opname)?;
                let mut io = vec![0f32; oi.len()];
                for o_ in 0..cout {
                    for ci in 0..cin {
                        io[ci * cout + o_] = oi[o_ * cin + ci];
                    }
                }
                let bias = match op.input(2) {
                    Some(t) => b.tensor_f32(t, &opname)?,
                    None => vec![0.0; cout],
                };
                let wp = b.param(format!("{name}/weights"), io, true);
                let bp = b.param(format!("{name}/biases"), bias, false);
                b.push(name, Kind::Dense { w: wp, b: bp }, vec![x], [1, 1, cout])
            }
            OpKind::Softmax { .. } => {
                let x = b.input(arg(0)?, &opname)?;
                softmax_out = Some(x);
                continue;
            }
            other => {
                return Err(unsupported(format!(
                    "{opname}: {} is not supported",
                    other.name()
                )));
            }
        };
        b.node_of[out] = Some(node);
    }
    // The logits must be the last node (the SOFTMAX's input, when there is one).
    let last = b.net.nodes.len() - 1;
    if softmax_out.is_some_and(|s| s != last)
        || !matches!(b.net.nodes[last].kind, Kind::Dense { .. })
    {
        return Err(unsupported(
            "the model must end in FULLY_CONNECTED (then SOFTMAX)".into(),
        ));
    }
    Ok((b.net, b.w))
}

//! Export a trained net as a float32 TFLite model through the engine's IR and
//! writer: every conv/depthwise + batch norm pair becomes one CONV_2D /
//! DEPTHWISE_CONV_2D with the BN folded into its weights and bias
//! (`w' = w·γ/√(σ²+ε)`, `b' = β − μ·γ/√(σ²+ε)`, running statistics) and the
//! activation fused; then ADD, AVERAGE_POOL_2D (global), FULLY_CONNECTED, SOFTMAX.
//! Input `[1, H, W, 3]` float32 RGB in [0, 1]; output `[1, classes]` probabilities.

use quantfarm_engine::ir::{
    Activation, Conv2DOptions, DType, DepthwiseConv2DOptions, FullyConnectedOptions, Graph, Model,
    Op, OpKind, Padding, Pool2DOptions, Tensor, TensorId,
};
use quantfarm_engine::{EngineError, Result};

use crate::net::{Kind, Net, Weights};
use crate::ops::bn;

fn act(a: bn::Act) -> Activation {
    match a {
        bn::Act::None => Activation::None,
        bn::Act::Relu => Activation::Relu,
        bn::Act::Relu6 => Activation::Relu6,
    }
}

/// The folded float model (one subgraph, batch 1).
pub fn to_model(net: &Net, w: &Weights) -> Result<Model> {
    Ok(to_model_mapped(net, w)?.model)
}

/// An exported model and where each node's output went.
pub struct Exported {
    pub model: Model,
    /// The tensor holding each node's output (None for a conv whose output is folded
    /// into the following batch norm's op).
    pub tensor_of: Vec<Option<TensorId>>,
    /// The SOFTMAX output.
    pub probabilities: TensorId,
}

/// [`to_model`], also returning the node → tensor map (for QAT's ranges).
pub fn to_model_mapped(net: &Net, w: &Weights) -> Result<Exported> {
    let mut g = Graph {
        name: net.name.clone(),
        ..Default::default()
    };
    let mut tensor_of: Vec<Option<TensorId>> = vec![None; net.nodes.len()];
    let consumers = |i: usize| net.nodes.iter().filter(|n| n.inputs.contains(&i)).count();
    let act_tensor = |g: &mut Graph, name: &str, shape: [usize; 3]| {
        g.add_tensor(Tensor::activation(
            name.to_string(),
            vec![1, shape[0], shape[1], shape[2]],
            DType::F32,
        ))
    };
    for (i, node) in net.nodes.iter().enumerate() {
        let input = |k: usize| -> Result<TensorId> {
            tensor_of[node.inputs[k]].ok_or_else(|| {
                EngineError::unsupported(format!(
                    "{}: its input is a conv without a batch norm after it",
                    node.name
                ))
            })
        };
        match &node.kind {
            Kind::Input => {
                let t = act_tensor(&mut g, "input", node.shape);
                g.inputs.push(t);
                tensor_of[i] = Some(t);
            }
            // Emitted with the batch norm that follows.
            Kind::Conv { .. } | Kind::Depthwise { .. } => {
                if consumers(i) != 1 {
                    return Err(EngineError::unsupported(format!(
                        "{}: a conv must feed exactly one batch norm to be folded",
                        node.name
                    )));
                }
            }
            Kind::BnAct {
                gamma,
                beta,
                stat,
                act: a,
            } => {
                let src = &net.nodes[node.inputs[0]];
                let x = tensor_of[src.inputs[0]].ok_or_else(|| {
                    EngineError::unsupported(format!("{}: unsupported input", src.name))
                })?;
                let (scale, shift) = bn::affine(
                    &w.params[*gamma],
                    &w.params[*beta],
                    &w.running_mean[*stat],
                    &w.running_var[*stat],
                );
                let c = node.shape[2];
                let out = act_tensor(&mut g, &src.name, node.shape);
                let bias = g.add_tensor(Tensor::constant_f32(
                    format!("{}/bias", src.name),
                    vec![c],
                    &shift,
                ));
                match src.kind {
                    Kind::Conv { w: wp, k, stride } => {
                        let cin = net.nodes[src.inputs[0]].shape[2];
                        // HWIO [k, k, cin, c] → OHWI [c, k, k, cin], scaled per output.
                        let hwio = &w.params[wp];
                        let mut ohwi = vec![0f32; hwio.len()];
                        for t in 0..k * k {
                            for ci in 0..cin {
                                for o in 0..c {
                                    ohwi[(o * k * k + t) * cin + ci] =
                                        hwio[(t * cin + ci) * c + o] * scale[o];
                                }
                            }
                        }
                        let wt = g.add_tensor(Tensor::constant_f32(
                            format!("{}/weights", src.name),
                            vec![c, k, k, cin],
                            &ohwi,
                        ));
                        let opts = Conv2DOptions {
                            padding: Padding::Same,
                            stride_h: stride,
                            stride_w: stride,
                            dilation_h: 1,
                            dilation_w: 1,
                            activation: act(*a),
                        };
                        g.add_op(Op::new(OpKind::Conv2D(opts), vec![x, wt, bias], vec![out]));
                    }
                    Kind::Depthwise { w: wp, k, stride } => {
                        let folded: Vec<f32> = w.params[wp]
                            .chunks_exact(c)
                            .flat_map(|tap| tap.iter().zip(&scale).map(|(v, s)| v * s))
                            .collect();
                        let wt = g.add_tensor(Tensor::constant_f32(
                            format!("{}/depthwise_weights", src.name),
                            vec![1, k, k, c],
                            &folded,
                        ));
                        let opts = DepthwiseConv2DOptions {
                            padding: Padding::Same,
                            stride_h: stride,
                            stride_w: stride,
                            depth_multiplier: 1,
                            dilation_h: 1,
                            dilation_w: 1,
                            activation: act(*a),
                        };
                        g.add_op(Op::new(
                            OpKind::DepthwiseConv2D(opts),
                            vec![x, wt, bias],
                            vec![out],
                        ));
                    }
                    _ => {
                        return Err(EngineError::unsupported(format!(
                            "{}: batch norm after something other than a conv",
                            node.name
                        )));
                    }
                }
                tensor_of[i] = Some(out);
            }
            Kind::Add => {
                let (a, b) = (input(0)?, input(1)?);
                let out = act_tensor(&mut g, &node.name, node.shape);
                g.add_op(Op::new(
                    OpKind::Add {
                        activation: Activation::None,
                        pot_scale_int16: false,
                    },
                    vec![a, b],
                    vec![out],
                ));
                tensor_of[i] = Some(out);
            }
            Kind::Mul => {
                let (a, b) = (input(0)?, input(1)?);
                let out = act_tensor(&mut g, &node.name, node.shape);
                g.add_op(Op::new(
                    OpKind::Mul {
                        activation: Activation::None,
                    },
                    vec![a, b],
                    vec![out],
                ));
                tensor_of[i] = Some(out);
            }
            Kind::Gap => {
                let x = input(0)?;
                let [h, wd, _] = net.nodes[node.inputs[0]].shape;
                let out = act_tensor(&mut g, &node.name, node.shape);
                let opts = Pool2DOptions {
                    padding: Padding::Valid,
                    stride_h: 1,
                    stride_w: 1,
                    filter_h: h,
                    filter_w: wd,
                    activation: Activation::None,
                };
                g.add_op(Op::new(OpKind::AveragePool2D(opts), vec![x], vec![out]));
                tensor_of[i] = Some(out);
            }
            Kind::Dense { w: wp, b } => {
                let x = input(0)?;
                let cin = net.nodes[node.inputs[0]].len();
                let cout = node.shape[2];
                let io = &w.params[*wp];
                let mut oi = vec![0f32; io.len()];
                for ci in 0..cin {
                    for o in 0..cout {
                        oi[o * cin + ci] = io[ci * cout + o];
                    }
                }
                let wt = g.add_tensor(Tensor::constant_f32(
                    format!("{}/weights", node.name),
                    vec![cout, cin],
                    &oi,
                ));
                let bias = g.add_tensor(Tensor::constant_f32(
                    format!("{}/bias", node.name),
                    vec![cout],
                    &w.params[*b],
                ));
                let out = g.add_tensor(Tensor::activation(
                    node.name.clone(),
                    vec![1, cout],
                    DType::F32,
                ));
                let opts = FullyConnectedOptions {
                    activation: Activation::None,
                    weights_format: 0,
                    keep_num_dims: false,
                    asymmetric_quantize_inputs: false,
                };
                g.add_op(Op::new(
                    OpKind::FullyConnected(opts),
                    vec![x, wt, bias],
                    vec![out],
                ));
                tensor_of[i] = Some(out);
            }
        }
    }
    let logits = tensor_of
        .last()
        .copied()
        .flatten()
        .ok_or_else(|| EngineError::unsupported("the net does not end in a supported op"))?;
    let classes = net.classes();
    let probs = g.add_tensor(Tensor::activation(
        "probabilities",
        vec![1, classes],
        DType::F32,
    ));
    g.add_op(Op::new(
        OpKind::Softmax { beta: 1.0 },
        vec![logits],
        vec![probs],
    ));
    g.outputs.push(probs);
    let model = Model::from_graph(g, format!("quantfarm-train {}", net.name));
    model.validate()?;
    Ok(Exported {
        model,
        tensor_of,
        probabilities: probs,
    })
}

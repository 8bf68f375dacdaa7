//! Integer CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: claims the op when its input
//! activation is quantized uint8/int8/int16 and its weights are integer constants
//! (float inputs with int8 weights are dynamic-range "hybrid" ops, not ours).
//!
//! Multipliers follow TFLite's preparation (spec §9): per-channel conv/depthwise and
//! per-channel FC in f64; uint8 ops and per-tensor FC take the scale product in f32.

use crate::error::{EngineError, Result};
use crate::exec::kernels::geometry::Geometry;
use crate::exec::kernels::qconv::{
    PackedQConv, PackedQDepthwise, PackedQFc, QElem, QFcGeom, QParams, QScheme, check_geometry,
    conv_reference, depthwise_reference, fc_reference,
};
use crate::exec::kernels::{KernelChoice, Parallelism};
use crate::exec::pod::Pod;
use crate::exec::prepare::*;
use crate::exec::tensors::Tensors;
use crate::ir::{Activation, DType, Graph, Op, OpKind, Quantization, TensorId};
use crate::quant::fixed_point::{Multiplier, Rounding, activation_range, quantize_multiplier};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Conv,
    Depthwise,
    Fc,
}

/// Constant weights in their stored type.
enum Weights {
    U8(Vec<u8>),
    I8(Vec<i8>),
}

enum Kernel {
    ConvRef { g: Geometry, w: Weights },
    DepthwiseRef { g: Geometry, w: Weights },
    FcRef { g: QFcGeom, w: Weights },
    Conv(PackedQConv),
    Depthwise(PackedQDepthwise),
    Fc(PackedQFc),
}

struct QConvOp {
    kernel: Kernel,
    q: QParams,
    bias: Option<Vec<i64>>,
}

impl QConvOp {
    fn typed<T: QElem + Pod>(&self, x: &[T], y: &mut [T], par: Parallelism) {
        let b = self.bias.as_deref();
        let q = &self.q;
        // Sizes and parameters were validated at preparation.
        let checked = "validated at preparation";
        match &self.kernel {
            Kernel::ConvRef { g, w } => match w {
                Weights::U8(w) => conv_reference(g, q, x, w, b, y),
                Weights::I8(w) => conv_reference(g, q, x, w, b, y),
            }
            .expect(checked),
            Kernel::DepthwiseRef { g, w } => match w {
                Weights::U8(w) => depthwise_reference(g, q, x, w, b, y),
                Weights::I8(w) => depthwise_reference(g, q, x, w, b, y),
            }
            .expect(checked),
            Kernel::FcRef { g, w } => match w {
                Weights::U8(w) => fc_reference(g, q, x, w, b, y),
                Weights::I8(w) => fc_reference(g, q, x, w, b, y),
            }
            .expect(checked),
            Kernel::Conv(k) => k.run(x, y, par),
            Kernel::Depthwise(k) => k.run(x, y, par),
            Kernel::Fc(k) => k.run(x, y, par),
        }
    }
}

impl OpKernel for QConvOp {
    fn run(
        &self,
        io: &Tensors<'_>,
        inputs: &[Option<TensorId>],
        outputs: &[TensorId],
        par: Parallelism,
    ) {
        let x = inputs[0].expect("required input checked at preparation");
        let y = outputs[0];
        match self.q.scheme {
            QScheme::Uint8 => self.typed::<u8>(io.input(x), io.output(y), par),
            QScheme::Int8 => self.typed::<i8>(io.input(x), io.output(y), par),
            QScheme::Int16x8 => self.typed::<i16>(io.input(x), io.output(y), par),
        }
    }
}

pub(crate) fn prepare(g: &Graph, op: &Op, choice: KernelChoice) -> Option<Result<Prepared>> {
    let family = match &op.kind {
        OpKind::Conv2D(_) => Family::Conv,
        OpKind::DepthwiseConv2D(_) => Family::Depthwise,
        OpKind::FullyConnected(_) => Family::Fc,
        _ => return None,
    };
    let x = op.input(0)?;
    let w = op.input(1)?;
    let (xt, wt) = (&g.tensors[x], &g.tensors[w]);
    let quantized = |q: &Option<Quantization>| q.as_ref().is_some_and(|q| !q.scale.is_empty());
    if !matches!(xt.dtype, DType::U8 | DType::I8 | DType::I16) || !quantized(&xt.quant) {
        return None;
    }
    if !matches!(wt.dtype, DType::U8 | DType::I8) || !wt.is_constant() {
        return None;
    }
    Some(prepare_claimed(g, op, family, choice))
}

fn qparams(g: &Graph, t: TensorId) -> Result<&Quantization> {
    g.tensors[t]
        .quant
        .as_ref()
        .filter(|q| !q.scale.is_empty())
        .ok_or_else(|| {
            EngineError::invalid(format!(
                "tensor '{}' has no quantization parameters",
                g.tensors[t].name
            ))
        })
}

fn type_range(d: DType) -> (i32, i32) {
    match d {
        DType::U8 => (0, 255),
        DType::I8 => (-128, 127),
        _ => (-32768, 32767),
    }
}

fn prepare_claimed(g: &Graph, op: &Op, family: Family, choice: KernelChoice) -> Result<Prepared> {
    let (x, w, y) = (
        require_input(op, 0)?,
        require_input(op, 1)?,
        require_output(op)?,
    );
    let (xd, wd, yd) = (g.tensors[x].dtype, g.tensors[w].dtype, g.tensors[y].dtype);
    let scheme = match (xd, wd) {
        (DType::U8, DType::U8) => QScheme::Uint8,
        (DType::I8, DType::I8) => QScheme::Int8,
        (DType::I16, DType::I8) => QScheme::Int16x8,
        _ => {
            return Err(EngineError::unsupported(format!(
                "{} with {xd} input and {wd} weights",
                op.kind.name()
            )));
        }
    };
    if yd != xd {
        return Err(EngineError::unsupported(format!(
            "{}: output is {yd}, input {xd}",
            op.kind.name()
        )));
    }
    let (xq, wq, yq) = (qparams(g, x)?, qparams(g, w)?, qparams(g, y)?);
    let in_zp = xq.params(0).1;
    let out_zp = yq.params(0).1;
    let (qmin, qmax) = type_range(xd);
    if !(qmin as i64..=qmax as i64).contains(&in_zp)
        || !(qmin as i64..=qmax as i64).contains(&out_zp)
    {
        return Err(EngineError::invalid(
            "activation zero point outside its type range",
        ));
    }
    if scheme == QScheme::Int16x8 && (in_zp != 0 || out_zp != 0) {
        return Err(EngineError::unsupported(
            "int16 activations need zero point 0 (16x8 scheme)",
        ));
    }
    let (in_s, out_s) = (xq.scale[0], yq.scale[0]);
    if !(in_s > 0.0 && out_s > 0.0 && in_s.is_finite() && out_s.is_finite()) {
        return Err(EngineError::invalid(
            "activation scales must be positive and finite",
        ));
    }

    // Geometry.
    let (conv_geom, fc_geom, out_c, act) = match (&op.kind, family) {
        (OpKind::Conv2D(o), Family::Conv) => {
            let geom = conv_geometry(g, (x, w, y), false, conv_attrs(o))?;
            (Some(geom), None, geom.out_c, o.activation)
        }
        (OpKind::DepthwiseConv2D(o), Family::Depthwise) => {
            let geom = conv_geometry(g, (x, w, y), true, depthwise_attrs(o))?;
            (Some(geom), None, geom.out_c, o.activation)
        }
        (OpKind::FullyConnected(o), Family::Fc) => {
            if o.weights_format != 0 {
                return Err(EngineError::unsupported("shuffled FC weights"));
            }
            let ws = shape_of(g, w);
            if ws.len() != 2 || ws[1] == 0 {
                return Err(EngineError::invalid(format!(
                    "FC weights must be [units, depth], got {ws:?}"
                )));
            }
            let (units, depth) = (ws[0], ws[1]);
            let elems = g.tensors[x].num_elements();
            if !elems.is_multiple_of(depth) {
                return Err(EngineError::invalid(format!(
                    "input of {elems} elements is not a multiple of depth {depth}"
                )));
            }
            let rows = elems / depth;
            if g.tensors[y].num_elements() != rows * units {
                return Err(EngineError::invalid(format!(
                    "output {:?} does not hold {rows}×{units} values",
                    shape_of(g, y)
                )));
            }
            let fg = QFcGeom { rows, depth, units };
            (None, Some(fg), units, o.activation)
        }
        _ => unreachable!("family matches the op kind"),
    };
    if matches!(act, Activation::Tanh | Activation::SignBit) {
        return Err(EngineError::unsupported(format!(
            "fused activation {act:?} on an integer {}",
            op.kind.name()
        )));
    }

    // Weight quantization: per-tensor or per-channel along the output-channel axis.
    let channel_axis = match family {
        Family::Conv | Family::Fc => 0,
        Family::Depthwise => 3,
    };
    if wq.is_per_axis() && (wq.axis != channel_axis || wq.scale.len() != out_c) {
        return Err(EngineError::unsupported(format!(
            "{}: per-channel weights along axis {} with {} scales (need axis {channel_axis}, {out_c})",
            op.kind.name(),
            wq.axis,
            wq.scale.len()
        )));
    }
    let w_zp = wq.params(0).1;
    match scheme {
        QScheme::Uint8 => {
            if wq.is_per_axis() {
                return Err(EngineError::unsupported(
                    "uint8 weights must be quantized per tensor",
                ));
            }
            if !(0..=255).contains(&w_zp) {
                return Err(EngineError::invalid(
                    "uint8 weight zero point outside 0..=255",
                ));
            }
        }
        _ => {
            if (0..wq.scale.len()).any(|c| wq.params(c).1 != 0) {
                return Err(EngineError::unsupported(
                    "int8 weights must be symmetric (zero point 0)",
                ));
            }
        }
    }
    // Real multipliers (spec §9).
    let f32_product = scheme == QScheme::Uint8 || (family == Family::Fc && !wq.is_per_axis());
    let mut mult = Vec::with_capacity(out_c);
    for c in 0..out_c {
        let ws = wq.params(c).0;
        if !(ws > 0.0 && ws.is_finite()) {
            return Err(EngineError::invalid(format!(
                "weight scale {ws} of channel {c} must be positive and finite"
            )));
        }
        let real = if f32_product {
            (in_s * ws) as f64 / out_s as f64
        } else {
            in_s as f64 * ws as f64 / out_s as f64
        };
        mult.push(quantize_multiplier(real, Rounding::Double));
    }
    check_multipliers(&mult, scheme)?;
    // LiteRT's reference FULLY_CONNECTED requantizes in f64 with these, not the
    // multipliers (quant::fixed_point::float_requant).
    let float_requant = (family == Family::Fc).then(|| {
        (0..out_c)
            .map(|c| in_s as f64 * wq.params(c).0 as f64 / out_s as f64)
            .collect()
    });

    // Bias: int32 (int16x8 also int64), zero point 0, one value per output channel.
    let bias = match op.input(2) {
        None => None,
        Some(b) => {
            let bd = g.tensors[b].dtype;
            let ok = bd == DType::I32 || (bd == DType::I64 && scheme == QScheme::Int16x8);
            if !ok {
                return Err(EngineError::unsupported(format!(
                    "{} bias of type {bd} with {xd} activations",
                    op.kind.name()
                )));
            }
            let v = const_ints(g, b, "bias")?;
            if v.len() != out_c {
                return Err(EngineError::invalid(format!(
                    "bias has {} values for {out_c} channels",
                    v.len()
                )));
            }
            Some(v)
        }
    };

    let (yz, ys) = (out_zp as i32, out_s);
    let (act_min, act_max) = activation_range(act, ys, yz, qmin, qmax);
    let q = QParams {
        scheme,
        in_zp: in_zp as i32,
        w_zp: w_zp as i32,
        out_zp: yz,
        mult,
        act_min,
        act_max,
        // The default TFLite build; uint8 depthwise rounds this way in every build.
        rounding: Rounding::Double,
        float_requant,
    };
    let weights = match wd {
        DType::U8 => Weights::U8(g.tensors[w].data.clone().unwrap_or_default()),
        _ => Weights::I8(
            g.tensors[w]
                .data
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|&b| b as i8)
                .collect(),
        ),
    };
    let fast = choice == KernelChoice::Fast;
    let bref = bias.as_deref();
    let kernel = match (family, conv_geom, fc_geom) {
        (Family::Conv, Some(cg), _) => {
            check_len(weights_len(&weights), cg.conv_filter_len())?;
            check_geometry(&cg, false)?;
            if fast {
                Kernel::Conv(match &weights {
                    Weights::U8(v) => PackedQConv::new(&cg, &q, v, bref)?,
                    Weights::I8(v) => PackedQConv::new(&cg, &q, v, bref)?,
                })
            } else {
                Kernel::ConvRef { g: cg, w: weights }
            }
        }
        (Family::Depthwise, Some(cg), _) => {
            check_len(weights_len(&weights), cg.depthwise_filter_len())?;
            check_geometry(&cg, true)?;
            if fast {
                Kernel::Depthwise(match &weights {
                    Weights::U8(v) => PackedQDepthwise::new(&cg, &q, v, bref)?,
                    Weights::I8(v) => PackedQDepthwise::new(&cg, &q, v, bref)?,
                })
            } else {
                Kernel::DepthwiseRef { g: cg, w: weights }
            }
        }
        (Family::Fc, _, Some(fg)) => {
            check_len(weights_len(&weights), fg.units * fg.depth)?;
            if fast {
                Kernel::Fc(match &weights {
                    Weights::U8(v) => PackedQFc::new(&fg, &q, v, bref)?,
                    Weights::I8(v) => PackedQFc::new(&fg, &q, v, bref)?,
                })
            } else {
                Kernel::FcRef { g: fg, w: weights }
            }
        }
        _ => unreachable!("geometry built for the family"),
    };
    q.check(out_c)?;
    Ok(Prepared::packing(QConvOp { kernel, q, bias }, vec![1, 2]))
}

fn weights_len(w: &Weights) -> usize {
    match w {
        Weights::U8(v) => v.len(),
        Weights::I8(v) => v.len(),
    }
}

fn check_len(have: usize, want: usize) -> Result<()> {
    if have != want {
        return Err(EngineError::invalid(format!(
            "weights hold {have} values, the shape needs {want}"
        )));
    }
    Ok(())
}

fn check_multipliers(mult: &[Multiplier], scheme: QScheme) -> Result<()> {
    let max_shift = if scheme == QScheme::Int16x8 { 7 } else { 30 };
    if let Some(m) = mult.iter().find(|m| m.shift > max_shift) {
        return Err(EngineError::unsupported(format!(
            "effective output multiplier too large (2^{} )",
            m.shift
        )));
    }
    Ok(())
}

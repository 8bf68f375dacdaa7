//! Compares the zoo MobileNets with the hosted TF-slim conversions in
//! `shared/models/coral/`: the same operators in the same order, each with the same
//! input/output shapes, strides, padding and fused activation. The files are read
//! with a minimal FlatBuffer walker written here (independent of the engine's
//! reader), so this checks the builders against the real converter output.

use std::path::PathBuf;

use quantfarm_engine::ir::{Activation, OpKind, Padding};
use quantfarm_engine::zoo::{Arch, ZooConfig, build};

/// `QUANTFARM_DATA`, else a `shared/` folder holding `DESIGN.md` next to an ancestor
/// of this crate.
fn shared_root() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QUANTFARM_DATA") {
        return Some(PathBuf::from(p));
    }
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let cand = dir.join("shared");
        if cand.join("DESIGN.md").is_file() {
            return Some(cand);
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// Just enough FlatBuffer reading for TFLite tables, vectors and scalars.
struct Fb<'a>(&'a [u8]);

impl Fb<'_> {
    fn u32(&self, o: usize) -> usize {
        u32::from_le_bytes(self.0[o..o + 4].try_into().unwrap()) as usize
    }
    fn i32(&self, o: usize) -> i32 {
        i32::from_le_bytes(self.0[o..o + 4].try_into().unwrap())
    }
    fn deref(&self, o: usize) -> usize {
        o + self.u32(o)
    }
    /// Position of field `id` of the table at `t`, if present.
    fn field(&self, t: usize, id: usize) -> Option<usize> {
        let vt = (t as i64 - self.i32(t) as i64) as usize;
        let vlen = u16::from_le_bytes([self.0[vt], self.0[vt + 1]]) as usize;
        let slot = 4 + 2 * id;
        if slot + 2 > vlen {
            return None;
        }
        let off = u16::from_le_bytes([self.0[vt + slot], self.0[vt + slot + 1]]) as usize;
        (off != 0).then_some(t + off)
    }
    /// (first element position, length) of the vector the field at `f` points to.
    fn vector(&self, f: usize) -> (usize, usize) {
        let v = self.deref(f);
        (v + 4, self.u32(v))
    }
    fn tables(&self, f: usize) -> Vec<usize> {
        let (p, n) = self.vector(f);
        (0..n).map(|i| self.deref(p + 4 * i)).collect()
    }
    fn ints(&self, f: usize) -> Vec<i32> {
        let (p, n) = self.vector(f);
        (0..n).map(|i| self.i32(p + 4 * i)).collect()
    }
    fn byte(&self, t: usize, id: usize) -> i8 {
        self.field(t, id).map_or(0, |f| self.0[f] as i8)
    }
}

#[derive(Debug, PartialEq)]
struct OpSig {
    code: i32,
    inputs: Vec<Vec<usize>>,
    outputs: Vec<Vec<usize>>,
    /// (padding, stride_w, stride_h, fused activation) of convs, pools and ADD.
    options: Option<(Padding, usize, usize, Activation)>,
}

fn file_ops(bytes: &[u8]) -> Vec<OpSig> {
    let fb = Fb(bytes);
    let root = fb.deref(0);
    let codes: Vec<i32> = fb
        .tables(fb.field(root, 1).unwrap())
        .into_iter()
        .map(|c| {
            let new = fb.field(c, 3).map_or(0, |f| fb.i32(f));
            new.max(i32::from(fb.byte(c, 0)))
        })
        .collect();
    let sg = fb.tables(fb.field(root, 2).unwrap())[0];
    let shapes: Vec<Vec<usize>> = fb
        .tables(fb.field(sg, 0).unwrap())
        .into_iter()
        .map(|t| {
            fb.field(t, 0)
                .map(|f| fb.ints(f).into_iter().map(|d| d as usize).collect())
                .unwrap_or_default()
        })
        .collect();
    fb.tables(fb.field(sg, 3).unwrap())
        .into_iter()
        .map(|op| {
            let code = codes[fb.field(op, 0).map_or(0, |f| fb.u32(f))];
            let list = |id| -> Vec<Vec<usize>> {
                fb.ints(fb.field(op, id).unwrap())
                    .into_iter()
                    .filter(|&i| i >= 0)
                    .map(|i| shapes[i as usize].clone())
                    .collect()
            };
            let opt = fb.field(op, 4).map(|f| fb.deref(f));
            let int = |t, id| fb.field(t, id).map_or(0, |f| fb.i32(f)) as usize;
            let options = match (code, opt) {
                // Conv2D: padding, stride_w, stride_h, activation; depthwise has the
                // multiplier before the activation; Pool2D: padding, strides,
                // filter w/h, activation; Add: activation first.
                (3, Some(t)) => Some((fb.byte(t, 0), int(t, 1), int(t, 2), fb.byte(t, 3))),
                (4, Some(t)) => Some((fb.byte(t, 0), int(t, 1), int(t, 2), fb.byte(t, 4))),
                (1 | 17, Some(t)) => Some((fb.byte(t, 0), int(t, 1), int(t, 2), fb.byte(t, 5))),
                (0, Some(t)) => Some((0, 1, 1, fb.byte(t, 0))),
                _ => None,
            }
            .map(|(p, sw, sh, a)| (Padding::from_tflite(p), sw, sh, Activation::from_tflite(a)));
            OpSig {
                code,
                inputs: list(1),
                outputs: list(2),
                options,
            }
        })
        .collect()
}

fn model_ops(arch: Arch, width: f32, resolution: usize) -> Vec<OpSig> {
    let m = build(
        arch,
        &ZooConfig {
            width,
            resolution,
            ..ZooConfig::new(arch)
        },
    )
    .unwrap();
    let g = m.main();
    let shapes = |ids: Vec<usize>| {
        ids.into_iter()
            .map(|i| g.tensors[i].shape.clone())
            .collect()
    };
    g.ops
        .iter()
        .map(|op| OpSig {
            code: op.kind.builtin_code(),
            inputs: shapes(op.inputs.iter().flatten().copied().collect()),
            outputs: shapes(op.outputs.clone()),
            options: match &op.kind {
                OpKind::Conv2D(o) => Some((o.padding, o.stride_w, o.stride_h, o.activation)),
                OpKind::DepthwiseConv2D(o) => {
                    Some((o.padding, o.stride_w, o.stride_h, o.activation))
                }
                OpKind::AveragePool2D(o) | OpKind::MaxPool2D(o) => {
                    Some((o.padding, o.stride_w, o.stride_h, o.activation))
                }
                OpKind::Add { activation, .. } => Some((Padding::Same, 1, 1, *activation)),
                _ => None,
            },
        })
        .collect()
}

#[test]
fn mobilenets_match_the_hosted_conversions_op_by_op() {
    let Some(root) = shared_root() else {
        eprintln!("shared data not found (set QUANTFARM_DATA): skipped");
        return;
    };
    let cases = [
        (
            Arch::MobilenetV1,
            0.25,
            128,
            "mobilenet_v1_0.25_128_quant.tflite",
        ),
        (
            Arch::MobilenetV1,
            0.5,
            160,
            "mobilenet_v1_0.5_160_quant.tflite",
        ),
        (
            Arch::MobilenetV1,
            0.75,
            192,
            "mobilenet_v1_0.75_192_quant.tflite",
        ),
        (
            Arch::MobilenetV2,
            1.0,
            224,
            "mobilenet_v2_1.0_224_quant.tflite",
        ),
    ];
    for (arch, w, r, file) in cases {
        let bytes = std::fs::read(root.join("models/coral").join(file)).unwrap();
        let want = file_ops(&bytes);
        let got = model_ops(arch, w, r);
        assert_eq!(got.len(), want.len(), "{file}: operator count");
        for (i, (g, f)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, f, "{file}: operator {i}");
        }
    }
}

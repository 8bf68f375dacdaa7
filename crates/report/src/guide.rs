//! The guide's Tables 1 and 2 (copied from `../shared/reference/` into `guide/`), and
//! the rule that says which of our models is which guide row.
//!
//! Models are matched by name (results carry no architecture): the name is lowercased,
//! `-` becomes `_`, and it must contain an architecture family (`mobilenet_v1`,
//! `mobilenetv1`, `mobilenet_v2`, `inception_v3`, `resnet_v2_50/101/152`, with or without
//! the underscores). The numbers after the family are the width multiplier (≤ 4) and the
//! input resolution (> 4); missing ones take the guide's (width 1.0; 224 for MobileNets,
//! 299 for Inception and ResNet). Words other than `quant`, `float`, `ptq`, `qat` and
//! `tflite` after the family (e.g. `inat_bird`) make it a different model.

/// The value columns of Table 1, as in `reference/table1.csv`.
pub const TABLE1_COLUMNS: [&str; 8] = [
    "top1_original",
    "top1_ptq",
    "top1_qat",
    "latency_original_ms",
    "latency_ptq_ms",
    "latency_qat_ms",
    "size_original_mb",
    "size_optimized_mb",
];

/// The value columns of Table 2, as in `reference/table2.csv`.
pub const TABLE2_COLUMNS: [&str; 3] = [
    "float32_activations",
    "int8_activations",
    "int16_activations",
];

const TABLE1_CSV: &str = include_str!("../guide/table1.csv");
const TABLE2_CSV: &str = include_str!("../guide/table2.csv");

/// One row of the guide's Table 1; `None` where the guide says n/a.
#[derive(Debug, Clone, PartialEq)]
pub struct Guide1 {
    pub model: String,
    pub values: [Option<f64>; 8],
}

/// One row of the guide's Table 2. Values are kept as the guide prints them (MobileBert's
/// "88.81 (81.23)" is not one number); `numbers` holds those that are.
#[derive(Debug, Clone, PartialEq)]
pub struct Guide2 {
    pub model: String,
    pub metric: String,
    pub higher_is_better: bool,
    pub values: [String; 3],
    pub numbers: [Option<f64>; 3],
}

/// Architecture families the guide's rows and our zoo share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    MobileNetV1,
    MobileNetV2,
    InceptionV3,
    ResNetV2_50,
    ResNetV2_101,
    ResNetV2_152,
}

impl Family {
    fn default_resolution(self) -> u32 {
        match self {
            Family::MobileNetV1 | Family::MobileNetV2 => 224,
            _ => 299,
        }
    }
}

/// What a model name says about the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelKey {
    pub family: Family,
    pub width: f64,
    pub resolution: u32,
    /// Words that make it another model (another dataset, e.g. `inat_bird`).
    pub variant: Vec<String>,
}

impl ModelKey {
    /// Same architecture, width, resolution and dataset.
    pub fn same_model(&self, other: &ModelKey) -> bool {
        self.family == other.family
            && (self.width - other.width).abs() < 1e-9
            && self.resolution == other.resolution
            && self.variant == other.variant
    }

    /// `1.0/224`
    pub fn shape(&self) -> String {
        format!("{}/{}", fmt_width(self.width), self.resolution)
    }
}

fn fmt_width(w: f64) -> String {
    if (w - w.round()).abs() < 1e-9 {
        format!("{w:.1}")
    } else {
        format!("{w}")
    }
}

/// Read a model name; `None` when it names no family we know.
pub fn model_key(name: &str) -> Option<ModelKey> {
    let n = name.to_ascii_lowercase().replace(['-', ' '], "_");
    const FAMILIES: &[(&[&str], Family)] = &[
        (&["mobilenet_v1", "mobilenetv1"], Family::MobileNetV1),
        (&["mobilenet_v2", "mobilenetv2"], Family::MobileNetV2),
        (&["inception_v3", "inceptionv3"], Family::InceptionV3),
        (
            &["resnet_v2_101", "resnetv2_101", "resnet_v2101"],
            Family::ResNetV2_101,
        ),
        (
            &["resnet_v2_152", "resnetv2_152", "resnet_v2152"],
            Family::ResNetV2_152,
        ),
        (
            &["resnet_v2_50", "resnetv2_50", "resnet_v250"],
            Family::ResNetV2_50,
        ),
    ];
    let (family, tail) = FAMILIES.iter().find_map(|(spellings, f)| {
        spellings
            .iter()
            .find_map(|s| n.find(s).map(|at| (*f, &n[at + s.len()..])))
    })?;
    let mut key = ModelKey {
        family,
        width: 1.0,
        resolution: family.default_resolution(),
        variant: Vec::new(),
    };
    let mut widths = 0;
    for token in tail.split('_').filter(|t| !t.is_empty()) {
        match token.parse::<f64>() {
            Ok(v) if v <= 4.0 && widths == 0 => {
                key.width = v;
                widths += 1;
            }
            Ok(v) if v > 4.0 && v.fract() == 0.0 && v <= 4096.0 => key.resolution = v as u32,
            Ok(_) => key.variant.push(token.to_string()),
            Err(_) => {
                if !["quant", "float", "ptq", "qat", "tflite"].contains(&token) {
                    key.variant.push(token.to_string());
                }
            }
        }
    }
    Some(key)
}

fn cells(line: &str) -> Vec<String> {
    // The reference files quote no cell that holds a comma except in Table 2's
    // (none today); a plain split with quote handling keeps them readable.
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The guide's Table 1, in its order.
pub fn table1() -> Vec<Guide1> {
    TABLE1_CSV
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c = cells(l);
            let mut values = [None; 8];
            for (i, v) in values.iter_mut().enumerate() {
                *v = c.get(i + 1).and_then(|s| s.trim().parse().ok());
            }
            Guide1 {
                model: c[0].clone(),
                values,
            }
        })
        .collect()
}

/// The guide's Table 2, in its order.
pub fn table2() -> Vec<Guide2> {
    TABLE2_CSV
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c = cells(l);
            let values = [c[3].clone(), c[4].clone(), c[5].clone()];
            let numbers = [
                c[3].trim().parse().ok(),
                c[4].trim().parse().ok(),
                c[5].trim().parse().ok(),
            ];
            Guide2 {
                model: c[0].clone(),
                metric: c[1].clone(),
                higher_is_better: c[2].trim() == "true",
                values,
                numbers,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_tables_parse() {
        let t1 = table1();
        assert_eq!(t1.len(), 4);
        assert_eq!(t1[1].model, "Mobilenet-v2-1-224");
        assert_eq!(t1[1].values[7], Some(3.6));
        assert_eq!(t1[3].values[2], None, "ResNet's QAT is n/a");
        let t2 = table2();
        assert_eq!(t2.len(), 6);
        assert_eq!(t2[4].numbers, [Some(0.718), Some(0.7126), Some(0.7137)]);
        assert_eq!(t2[5].numbers[0], None);
        assert_eq!(t2[5].values[0], "88.81 (81.23)");
        assert!(!t2[0].higher_is_better);
    }

    #[test]
    fn names_match_the_guide_rows() {
        let k = |s| model_key(s).unwrap();
        assert!(k("mobilenet_v2_1.0_224").same_model(&k("Mobilenet-v2-1-224")));
        assert!(k("mobilenet_v2_1.0_224_quant").same_model(&k("MobileNetV2")));
        assert!(k("mobilenet_v1_1.0_224").same_model(&k("Mobilenet-v1-1-224")));
        assert!(!k("mobilenet_v1_0.75_192").same_model(&k("Mobilenet-v1-1-224")));
        assert_eq!(k("mobilenet_v1_0.75_192").shape(), "0.75/192");
        assert!(k("inception_v3").same_model(&k("Inception_v3")));
        assert!(k("resnet_v2_101").same_model(&k("Resnet_v2_101")));
        assert!(k("resnet_v2_101_299").same_model(&k("Resnet_v2_101")));
        assert_eq!(k("resnet_v2_50").family, Family::ResNetV2_50);
        assert!(!k("mobilenet_v2_1.0_224_inat_bird_quant").same_model(&k("MobileNetV2")));
        assert!(model_key("Wav2letter").is_none());
        assert!(model_key("yolo").is_none());
    }
}

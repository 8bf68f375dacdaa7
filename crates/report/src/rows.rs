//! Finding result rows by what they are (technique kind, model source), not by label.
//!
//! Where two techniques of a scenario have the same kind (`int8` and `int8-c500`), the
//! first one in the results (the scenario's order) stands for the kind.

use quantfarm_results::{LatencyKind, ResultRow, RowStatus};

/// Models in the order they first appear.
pub fn models(rows: &[ResultRow]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for r in rows {
        if !out.contains(&r.model.as_str()) {
            out.push(&r.model);
        }
    }
    out
}

/// Devices in the order they first appear (the device-less size rows left out).
pub fn devices(rows: &[ResultRow]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for r in rows {
        if !r.device.is_empty() && !out.contains(&r.device.as_str()) {
            out.push(&r.device);
        }
    }
    out
}

/// Devices a model has rows on; `[""]` when it has only device-less rows.
pub fn devices_of<'a>(rows: &'a [ResultRow], model: &str) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for r in rows.iter().filter(|r| r.model == model) {
        if !out.contains(&r.device.as_str()) {
            out.push(&r.device);
        }
    }
    if out.len() > 1 {
        out.retain(|d| !d.is_empty());
    }
    out
}

/// The model's source (`file`, `dequantize`, `zoo`), from any of its rows.
pub fn source<'a>(rows: &'a [ResultRow], model: &str) -> &'a str {
    rows.iter()
        .find(|r| r.model == model && !r.model_source.is_empty())
        .map(|r| r.model_source.as_str())
        .unwrap_or("")
}

/// The first row of `model` on `device` of technique kind `kind`.
pub fn on_device<'a>(
    rows: &'a [ResultRow],
    model: &str,
    device: &str,
    kind: &str,
) -> Option<&'a ResultRow> {
    rows.iter()
        .find(|r| r.model == model && r.device == device && r.technique_kind == kind)
}

/// The first row of `model` of technique kind `kind` that has a size (sizes are the
/// same on every device).
pub fn sized<'a>(rows: &'a [ResultRow], model: &str, kind: &str) -> Option<&'a ResultRow> {
    rows.iter()
        .filter(|r| r.model == model && r.technique_kind == kind)
        .find(|r| r.size_bytes.is_some())
        .or_else(|| {
            rows.iter()
                .find(|r| r.model == model && r.technique_kind == kind)
        })
}

/// A model's hosted QAT file: technique `original` of a model given as a quantized file
/// to dequantize (its float32 is the dequantized form of the same file).
pub fn is_hosted_qat(r: &ResultRow) -> bool {
    r.technique_kind == "original" && r.model_source == "dequantize"
}

/// Why a row has no value of a measurement: its failure, or that it was not measured.
pub fn missing(r: &ResultRow, what: &str) -> String {
    match r.status {
        RowStatus::Failed if !r.error.is_empty() => format!("failed: {}", first_line(&r.error)),
        RowStatus::Failed => "failed".into(),
        RowStatus::Cancelled => "cancelled".into(),
        RowStatus::Unfinished => "unfinished".into(),
        RowStatus::Succeeded => format!("{what} not measured"),
    }
}

fn first_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or("");
    if l.chars().count() > 120 {
        l.chars().take(117).collect::<String>() + "..."
    } else {
        l.to_string()
    }
}

/// `measured` / `predicted`.
pub fn kind_name(k: Option<LatencyKind>) -> &'static str {
    k.map(|k| k.name()).unwrap_or("unknown")
}

/// A note on what the top-1 values were measured over, when any were.
pub fn accuracy_note(rows: &[ResultRow]) -> Option<String> {
    let mut slices: Vec<String> = Vec::new();
    for r in rows.iter().filter(|r| r.top1.is_some()) {
        let s = match (&r.dataset, r.eval_images) {
            (Some(d), Some(n)) => format!("{n} images of {d}"),
            (Some(d), None) => d.clone(),
            (None, Some(n)) => format!("{n} images"),
            (None, None) => continue,
        };
        if !slices.contains(&s) {
            slices.push(s);
        }
    }
    (!slices.is_empty()).then(|| {
        format!(
            "Our top-1 is over {} (a sample, not the guide's 50,000-image ImageNet \
             validation set): compare the differences between columns with the guide's, \
             not the absolute values.",
            slices.join(", ")
        )
    })
}

//! Table 1 of the guide (quantization on selected CNNs), rebuilt from a run: one row per
//! model × device, each of our values beside the guide's and the difference.
//!
//! Which rows fill which column (by `technique_kind` and `model_source`, never labels):
//! - original = `float32`;
//! - PTQ = `dynamic` (the guide's PTQ column behaves like dynamic-range quantization);
//! - QAT = the hosted QAT file (technique `original` of a `dequantize` model) when there
//!   is one, else a model fine-tuned here (technique `qat`, the CIFAR-10 models);
//!   otherwise a full-integer PTQ of the same model stands in (`uint8`, else `int8`),
//!   labelled as such;
//! - size optimized = the hosted QAT file, else the `qat` file, else `uint8` PTQ (both
//!   per-tensor 8-bit, the guide's kind of file), else `int8` PTQ (per-channel), and the
//!   table says which.
//!
//! Zoo models have no trained weights: their top-1 cells say so.

use quantfarm_results::{ResultRow, RunResults};

use crate::guide::{self, Guide1, TABLE1_COLUMNS};
use crate::rows::{self, missing};
use crate::table::{Cell, Table};

/// Why a zoo model has no top-1.
pub const NO_WEIGHTS: &str = "no trained weights: architecture only";
/// Why the QAT top-1 of a model without a hosted QAT file is empty.
pub const NO_QAT_MODEL: &str = "no QAT model here: PTQ top-1 is not QAT's";
/// A guide model the run does not have.
pub const NO_SUCH_MODEL: &str = "no such model here";

/// The QAT column's source when the run fine-tuned the model itself (technique `qat`).
pub const QAT_HERE: &str = "QAT fine-tuned here";

/// What stands in for the QAT column of a model, and the row holding it.
fn qat_row<'a>(
    rs: &'a [ResultRow],
    model: &str,
    device: &str,
) -> Option<(&'a ResultRow, &'static str)> {
    let on = |kind| {
        if device.is_empty() {
            rows::sized(rs, model, kind)
        } else {
            rows::on_device(rs, model, device, kind)
        }
    };
    if let Some(r) = on("original").filter(|r| rows::is_hosted_qat(r)) {
        return Some((r, "hosted QAT file"));
    }
    if let Some(r) = on("qat") {
        return Some((r, QAT_HERE));
    }
    if let Some(r) = on("uint8") {
        return Some((r, "uint8 PTQ for QAT"));
    }
    on("int8").map(|r| (r, "int8 PTQ for QAT"))
}

/// The row of the optimized size and what it is.
fn optimized_size_row<'a>(
    rs: &'a [ResultRow],
    model: &str,
) -> Option<(&'a ResultRow, &'static str)> {
    if let Some(r) = rows::sized(rs, model, "original").filter(|r| rows::is_hosted_qat(r)) {
        return Some((r, "hosted QAT file"));
    }
    if let Some(r) = rows::sized(rs, model, "qat") {
        return Some((r, "QAT int8, per-channel"));
    }
    if let Some(r) = rows::sized(rs, model, "uint8") {
        return Some((r, "uint8 PTQ, per-tensor"));
    }
    rows::sized(rs, model, "int8").map(|r| (r, "int8 PTQ, per-channel"))
}

/// Build Table 1 for a run.
pub fn build(run: &RunResults) -> Table {
    let rs = &run.rows;
    let mut t = Table::new("Table 1: quantization on selected CNNs (ours beside the guide's)");
    t.column("model", false);
    t.column("device", false);
    t.column("guide_model", false);
    for c in TABLE1_COLUMNS {
        t.column(c, false);
        t.column(&format!("guide_{c}"), false);
        t.column(&format!("diff_{c}"), false);
    }
    t.column("latency_kind", false);
    for c in [
        "latency_original_kind",
        "latency_ptq_kind",
        "latency_qat_kind",
    ] {
        t.column(c, true);
    }
    t.column("qat_from", false);
    t.column("size_optimized_from", false);
    t.column("note", false);

    let guide = guide::table1();
    let mut matched = vec![false; guide.len()];
    // The guide's order first, then our other models as they come.
    let mut models = rows::models(rs);
    models.sort_by_key(|m| {
        guide::model_key(m)
            .and_then(|k| {
                guide
                    .iter()
                    .position(|g| guide::model_key(&g.model).is_some_and(|gk| gk.same_model(&k)))
            })
            .unwrap_or(guide.len())
    });
    for model in models {
        let key = guide::model_key(model);
        let g = key.as_ref().and_then(|k| {
            guide
                .iter()
                .position(|g| guide::model_key(&g.model).is_some_and(|gk| gk.same_model(k)))
        });
        let guide_cell = match (g, &key) {
            (Some(i), _) => {
                matched[i] = true;
                Cell::text(&guide[i].model)
            }
            (None, Some(k)) => Cell::why(format!(
                "not in the guide's Table 1 (ours is {})",
                k.shape()
            )),
            (None, None) => Cell::why("not in the guide's Table 1"),
        };
        for device in rows::devices_of(rs, model) {
            let row = model_row(rs, model, device, g.map(|i| &guide[i]), guide_cell.clone());
            t.rows.push(row);
        }
    }
    for (i, g) in guide.iter().enumerate().filter(|(i, _)| !matched[*i]) {
        let _ = i;
        t.rows.push(absent_row(g, t.columns.len()));
    }
    t.notes = vec![
        "original = float32; PTQ = dynamic-range; QAT = the hosted QAT file, a model \
         fine-tuned here with quantization-aware training, or a full-integer PTQ of the \
         same model standing in (as qat_from says)."
            .into(),
        "The guide's latencies are a Pixel 2 big core (measured); ours say measured or \
         predicted in every cell. Sizes in MB (10^6 bytes); top-1 as a fraction."
            .into(),
        "The guide's optimized size is a per-tensor 8-bit file: size_optimized_from says \
         what ours is."
            .into(),
        "diff = ours - guide.".into(),
    ];
    t.notes.extend(rows::accuracy_note(rs));
    if let Some(h) = &run.host {
        t.notes
            .push(format!("Measured latencies were timed on {h}."));
    }
    t
}

fn diff(ours: &Cell, guide: Option<f64>, digits: usize) -> Cell {
    match (ours.value(), guide) {
        (Some(a), Some(b)) => Cell::Text(crate::text::signed(a - b, digits)),
        (_, None) => Cell::why("guide: n/a"),
        (None, Some(_)) => Cell::why("no value of ours"),
    }
}

fn guide_cell(v: Option<f64>, digits: usize) -> Cell {
    match v {
        Some(v) => Cell::num(v, digits),
        None => Cell::why("n/a"),
    }
}

fn model_row(
    rs: &[ResultRow],
    model: &str,
    device: &str,
    g: Option<&Guide1>,
    guide_model: Cell,
) -> Vec<Cell> {
    let zoo = rows::source(rs, model) == "zoo";
    let on = |kind| {
        if device.is_empty() {
            rows::sized(rs, model, kind)
        } else {
            rows::on_device(rs, model, device, kind)
        }
    };
    let original = on("float32");
    let ptq = on("dynamic");
    let qat = qat_row(rs, model, device);

    let top1 = |r: Option<&ResultRow>, tag: &str, absent: &str| -> Cell {
        if zoo {
            return Cell::why(NO_WEIGHTS);
        }
        match r {
            None => Cell::why(absent),
            Some(r) => match r.top1 {
                Some(v) => Cell::tagged(v, 3, tag),
                None => Cell::why(missing(r, "top-1")),
            },
        }
    };
    let latency = |r: Option<&ResultRow>, tag: &str, absent: &str| -> (Cell, Cell) {
        match r {
            None => (Cell::why(absent), Cell::why(absent)),
            Some(r) => match (r.latency_p50_ms, r.latency_kind) {
                (Some(v), k) => {
                    let kind = rows::kind_name(k);
                    let tag = if tag.is_empty() {
                        kind.to_string()
                    } else {
                        format!("{kind}, {tag}")
                    };
                    (Cell::tagged(v, 2, tag), Cell::text(kind))
                }
                (None, _) => {
                    let why = if device.is_empty() {
                        "no device: latency not measured".to_string()
                    } else {
                        missing(r, "latency")
                    };
                    (Cell::why(why.clone()), Cell::why(why))
                }
            },
        }
    };
    let size = |r: Option<&ResultRow>, tag: &str, absent: &str| -> Cell {
        match r {
            None => Cell::why(absent),
            Some(r) => match r.size_bytes {
                Some(b) => Cell::tagged(crate::text::mb(b), 2, tag),
                None => Cell::why(missing(r, "size")),
            },
        }
    };
    let (qr, qat_tag) = match qat {
        Some((r, tag)) => (
            Some(r),
            if tag == "hosted QAT file" || tag == QAT_HERE {
                ""
            } else {
                tag
            },
        ),
        None => (None, ""),
    };
    let no_qat = "not run: no hosted QAT file and no qat/uint8/int8 technique";
    // A full-integer PTQ model runs the same integer ops as a QAT one, so it stands in
    // for QAT latency; its top-1 is not QAT's, so top-1 needs the hosted QAT file.
    let top1_qat = match qat {
        _ if zoo => Cell::why(NO_WEIGHTS),
        Some((r, "hosted QAT file" | QAT_HERE)) => top1(Some(r), "", no_qat),
        Some(_) => Cell::why(NO_QAT_MODEL),
        None => Cell::why(no_qat),
    };
    let opt = optimized_size_row(rs, model);
    let values: [(Cell, usize); 8] = [
        (top1(original, "", "not run: no float32 technique"), 3),
        (top1(ptq, "", "not run: no dynamic technique"), 3),
        (top1_qat, 3),
        (latency(original, "", "not run: no float32 technique").0, 2),
        (latency(ptq, "", "not run: no dynamic technique").0, 2),
        (latency(qr, qat_tag, no_qat).0, 2),
        (
            size(
                rows::sized(rs, model, "float32"),
                "",
                "not run: no float32 technique",
            ),
            2,
        ),
        (
            size(
                opt.map(|o| o.0),
                "",
                "not run: no hosted QAT file and no qat/uint8/int8 technique",
            ),
            2,
        ),
    ];
    let kinds = [
        latency(original, "", "not run").1,
        latency(ptq, "", "not run").1,
        latency(qr, "", "not run").1,
    ];

    let mut row = vec![Cell::text(model), device_cell(device), guide_model];
    for (i, (ours, digits)) in values.iter().enumerate() {
        let gv = g.and_then(|g| g.values[i]);
        row.push(ours.clone());
        if g.is_some() {
            row.push(guide_cell(gv, *digits));
            row.push(diff(ours, gv, *digits));
        } else {
            row.push(Cell::why("no guide row"));
            row.push(Cell::why("no guide row"));
        }
    }
    let mut seen: Vec<String> = Vec::new();
    for k in &kinds {
        if let Cell::Text(s) = k
            && !seen.contains(s)
        {
            seen.push(s.clone());
        }
    }
    row.push(if seen.is_empty() {
        Cell::why("no latency")
    } else {
        Cell::text(seen.join(", "))
    });
    row.extend(kinds);
    row.push(match qat {
        Some((_, what @ ("hosted QAT file" | QAT_HERE))) => Cell::text(what),
        Some((r, _)) => Cell::text(format!("{} PTQ stands in", r.technique_kind)),
        None => Cell::why("nothing"),
    });
    row.push(match opt {
        Some((_, what)) => Cell::text(what),
        None => Cell::why("nothing"),
    });
    let mut notes = vec![source_note(rows::source(rs, model)).to_string()];
    if device.is_empty() {
        notes.push("measured without a device: size only".to_string());
    }
    row.push(Cell::text(notes.join("; ")));
    row
}

/// Where a model's weights come from, in words (the note of a row, never blank).
pub fn source_note(source: &str) -> &'static str {
    match source {
        "zoo" => "zoo architecture with untrained weights: size and latency only",
        "dequantize" => "trained weights: float32 is the hosted quantized file dequantized",
        "file" => "trained weights from the model file",
        _ => "weights of unknown origin (results without model_source)",
    }
}

fn device_cell(device: &str) -> Cell {
    if device.is_empty() {
        Cell::why("no device")
    } else {
        Cell::text(device)
    }
}

fn absent_row(g: &Guide1, columns: usize) -> Vec<Cell> {
    let mut row = vec![
        Cell::text(&g.model),
        Cell::why(NO_SUCH_MODEL),
        Cell::text(&g.model),
    ];
    for (i, v) in g.values.into_iter().enumerate() {
        row.push(Cell::why(NO_SUCH_MODEL));
        row.push(guide_cell(v, if i < 3 { 3 } else { 2 }));
        row.push(Cell::why("no value of ours"));
    }
    while row.len() < columns - 1 {
        row.push(Cell::why(NO_SUCH_MODEL));
    }
    row.push(Cell::text("the scenario does not run this model"));
    row
}

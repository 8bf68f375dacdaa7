//! Table 2 of the guide (int16 activations with int8 weights), rebuilt from a run: one
//! row per model × metric: float32 / int8 / int16 activations (techniques `float32`,
//! `int8`, `int16x8`), the guide's values beside ours.
//!
//! Every guide row is there: the ones we cannot run (speech, detection, BERT) say "no
//! such model here". A model of the same architecture family at another width or
//! resolution is compared with the guide's row, and the note says so. Accuracy comes
//! from `cpu-host` when it measured it, else from the first device that did.

use quantfarm_results::{ResultRow, RunResults};

use crate::guide::{self, Guide2, ModelKey, TABLE2_COLUMNS};
use crate::rows::{self, missing};
use crate::table::{Cell, Table};
use crate::table1::{NO_SUCH_MODEL, NO_WEIGHTS};

const KINDS: [&str; 3] = ["float32", "int8", "int16x8"];

/// The device whose accuracy the table shows for `model`.
fn accuracy_device<'a>(rs: &'a [ResultRow], model: &str) -> Option<&'a str> {
    let with: Vec<&ResultRow> = rs
        .iter()
        .filter(|r| r.model == model && r.top1.is_some())
        .collect();
    with.iter()
        .find(|r| r.device == "cpu-host")
        .or(with.first())
        .map(|r| r.device.as_str())
}

pub fn build(run: &RunResults) -> Table {
    let rs = &run.rows;
    let mut t =
        Table::new("Table 2: int16 activations with int8 weights (ours beside the guide's)");
    for c in [
        "model",
        "metric",
        "metric_higher_is_better",
        "device",
        "guide_model",
    ] {
        t.column(c, false);
    }
    for c in TABLE2_COLUMNS {
        t.column(c, false);
        t.column(&format!("guide_{c}"), false);
        t.column(&format!("diff_{c}"), false);
    }
    t.column("note", false);

    let ours: Vec<(&str, Option<ModelKey>)> = rows::models(rs)
        .into_iter()
        .map(|m| (m, guide::model_key(m)))
        .collect();
    let mut used = vec![false; ours.len()];
    for g in guide::table2() {
        let gk = guide::model_key(&g.model);
        let mine: Vec<usize> = (0..ours.len())
            .filter(|&i| match (&ours[i].1, &gk) {
                (Some(k), Some(gk)) => k.family == gk.family && k.variant == gk.variant,
                _ => false,
            })
            .collect();
        if mine.is_empty() {
            t.rows.push(absent_row(&g));
        }
        for i in mine {
            used[i] = true;
            let k = ours[i].1.as_ref().expect("matched by key");
            let note = match &gk {
                Some(gk) if !k.same_model(gk) => format!(
                    "ours is {} {}, the guide's {}",
                    ours[i].0,
                    k.shape(),
                    gk.shape()
                ),
                _ => String::new(),
            };
            t.rows.push(model_row(rs, ours[i].0, Some(&g), note));
        }
    }
    // Our other models with an accuracy, without a guide row.
    for (i, (m, _)) in ours.iter().enumerate() {
        if !used[i] && rs.iter().any(|r| r.model == *m && r.top1.is_some()) {
            t.rows.push(model_row(rs, m, None, String::new()));
        }
    }
    t.notes = vec![
        "float32 / int8 / int16 activations = techniques float32, int8 (full-integer PTQ) \
         and int16x8 (int16 activations, int8 weights)."
            .into(),
        "Top-1 as a fraction over the scenario's accuracy slice; diff = ours - guide.".into(),
        "The guide's WER, CER, mAP and F1 rows need models and metrics this project does \
         not have."
            .into(),
    ];
    t.notes.extend(rows::accuracy_note(rs));
    t
}

fn model_row(rs: &[ResultRow], model: &str, g: Option<&Guide2>, note: String) -> Vec<Cell> {
    let zoo = rows::source(rs, model) == "zoo";
    let device = accuracy_device(rs, model);
    let mut row = vec![
        Cell::text(model),
        Cell::text(g.map(|g| g.metric.as_str()).unwrap_or("Top-1 accuracy")),
        Cell::text("true"),
        match device {
            Some("") => Cell::why("no device"),
            Some(d) => Cell::text(d),
            None => Cell::why("no accuracy measured"),
        },
        match g {
            Some(g) => Cell::text(&g.model),
            None => Cell::why("not in the guide's Table 2"),
        },
    ];
    for (i, kind) in KINDS.iter().enumerate() {
        let r = match device {
            Some(d) => rows::on_device(rs, model, d, kind),
            None => rs
                .iter()
                .find(|r| r.model == model && r.technique_kind == *kind),
        };
        let ours = if zoo {
            Cell::why(NO_WEIGHTS)
        } else {
            match r {
                None => Cell::why(format!("not run: no {kind} technique")),
                Some(r) => match r.top1 {
                    Some(v) => Cell::num(v, 4),
                    None => Cell::why(missing(r, "top-1")),
                },
            }
        };
        match g {
            Some(g) => {
                let gv = g.numbers[i];
                let guide = match gv {
                    Some(v) => Cell::num(v, 4),
                    None => Cell::text(&g.values[i]),
                };
                let diff = match (ours.value(), gv) {
                    (Some(a), Some(b)) => Cell::text(crate::text::signed(a - b, 4)),
                    (None, _) => Cell::why("no value of ours"),
                    (_, None) => Cell::why("guide's value is not one number"),
                };
                row.extend([ours, guide, diff]);
            }
            None => row.extend([ours, Cell::why("no guide row"), Cell::why("no guide row")]),
        }
    }
    let source = crate::table1::source_note(rows::source(rs, model));
    row.push(Cell::text(if note.is_empty() {
        source.to_string()
    } else {
        format!("{note}; {source}")
    }));
    row
}

fn absent_row(g: &Guide2) -> Vec<Cell> {
    let mut row = vec![
        Cell::text(&g.model),
        Cell::text(&g.metric),
        Cell::text(if g.higher_is_better { "true" } else { "false" }),
        Cell::why(NO_SUCH_MODEL),
        Cell::text(&g.model),
    ];
    for i in 0..3 {
        row.push(Cell::why(NO_SUCH_MODEL));
        row.push(match g.numbers[i] {
            Some(v) => Cell::num(v, 4),
            None => Cell::text(&g.values[i]),
        });
        row.push(Cell::why("no value of ours"));
    }
    row.push(Cell::text("the scenario does not run this model"));
    row
}

//! The guide's decision tree on measured data: per device and model, the smallest and
//! the fastest technique whose top-1 stays within the accuracy budget (drop against
//! float32 on the same device), and why every other technique was not chosen.
//!
//! The tree (mission-source.md): start from post-training quantization; if accuracy or
//! latency targets are missed, or an accelerator needs a fully integer model, use QAT;
//! to shrink further, prune and/or cluster before quantizing.

use quantfarm_results::{ResultRow, RowStatus, RunResults};

use crate::compat::Mapping;
use crate::rows;
use crate::text;

/// The budget when the scenario sets none: one point of top-1 (the guide's "smallest
/// accuracy loss" class).
pub const DEFAULT_BUDGET: f64 = 0.01;

/// A chosen technique and its numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    pub technique: String,
    pub size_bytes: Option<u64>,
    pub latency_ms: Option<f64>,
    pub top1: Option<f64>,
}

/// The recommendation for one model on one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub device: String,
    pub model: String,
    pub budget: f64,
    pub smallest: Option<Pick>,
    pub fastest: Option<Pick>,
    /// `predicted` or `measured`: what the latencies compared are.
    pub latency_kind: String,
    /// (technique, why it was not chosen), for every other technique.
    pub others: Vec<(String, String)>,
    /// The decision tree's advice.
    pub advice: Vec<String>,
}

fn pick(r: &ResultRow) -> Pick {
    Pick {
        technique: r.technique.clone(),
        size_bytes: r.size_bytes,
        latency_ms: r.latency_p50_ms,
        top1: r.top1,
    }
}

const PTQ: [&str; 5] = ["float16", "dynamic", "int8", "uint8", "int16x8"];

pub fn build(run: &RunResults, budget: f64) -> Vec<Recommendation> {
    let mut out = Vec::new();
    for device in rows::devices(&run.rows) {
        for model in rows::models(&run.rows) {
            let cands: Vec<&ResultRow> = run
                .rows
                .iter()
                .filter(|r| r.model == model && r.device == device)
                .collect();
            if cands.is_empty() {
                continue;
            }
            out.push(one(run, device, model, &cands, budget));
        }
    }
    out
}

fn one(
    run: &RunResults,
    device: &str,
    model: &str,
    cands: &[&ResultRow],
    budget: f64,
) -> Recommendation {
    let zoo = rows::source(&run.rows, model) == "zoo";
    // float32 on this device; a device that does not run float32 (Edge TPU, DSP) is
    // compared with float32 where it ran, the host CPU first (exact float arithmetic).
    let here = cands
        .iter()
        .find(|r| r.technique_kind == "float32")
        .and_then(|r| r.top1);
    let elsewhere = || {
        let f32s = run
            .rows
            .iter()
            .filter(|r| r.model == model && r.technique_kind == "float32" && r.top1.is_some());
        let all: Vec<&ResultRow> = f32s.collect();
        all.iter()
            .find(|r| r.device == "cpu-host")
            .or(all.first())
            .map(|r| (r.top1, r.device.clone()))
    };
    let (base, base_from) = match here {
        Some(t) => (Some(t), None),
        None => match elsewhere() {
            Some((t, d)) => (t, Some(d)),
            None => (None, None),
        },
    };
    let mut others: Vec<(String, String)> = Vec::new();
    let mut ok: Vec<&ResultRow> = Vec::new();
    let mut ptq_over_budget = 0;
    let mut ptq_measured = 0;
    for r in cands {
        if r.status != RowStatus::Succeeded {
            others.push((r.technique.clone(), rows::missing(r, "result")));
            continue;
        }
        if let Some(Mapping::Refused(why)) = Mapping::of(r) {
            others.push((r.technique.clone(), format!("the device refuses it: {why}")));
            continue;
        }
        if let (Some(b), Some(t)) = (base, r.top1) {
            let drop = b - t;
            if PTQ.contains(&r.technique_kind.as_str()) {
                ptq_measured += 1;
            }
            if drop > budget + 1e-12 {
                if PTQ.contains(&r.technique_kind.as_str()) {
                    ptq_over_budget += 1;
                }
                others.push((
                    r.technique.clone(),
                    format!(
                        "top-1 drop {} > budget {} ({} vs float32 {})",
                        text::num(drop, 4),
                        text::num(budget, 4),
                        text::num(t, 4),
                        text::num(b, 4)
                    ),
                ));
                continue;
            }
        }
        ok.push(r);
    }
    for s in run
        .skipped
        .iter()
        .filter(|s| s.model == model && (s.device == device || s.device.is_empty()))
    {
        others.push((s.technique.clone(), format!("not run here: {}", s.reason)));
    }
    let smallest = ok
        .iter()
        .filter(|r| r.size_bytes.is_some())
        .min_by(|a, b| {
            (a.size_bytes, a.latency_p50_ms.unwrap_or(f64::INFINITY))
                .partial_cmp(&(b.size_bytes, b.latency_p50_ms.unwrap_or(f64::INFINITY)))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .copied();
    let fastest = ok
        .iter()
        .filter(|r| r.latency_p50_ms.is_some())
        .min_by(|a, b| {
            a.latency_p50_ms
                .partial_cmp(&b.latency_p50_ms)
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .copied();
    for r in &ok {
        let chosen_small = smallest.is_some_and(|s| std::ptr::eq(s, *r));
        let chosen_fast = fastest.is_some_and(|f| std::ptr::eq(f, *r));
        if chosen_small || chosen_fast {
            continue;
        }
        let mut why = Vec::new();
        if let (Some(s), Some(a), Some(b)) =
            (smallest, r.size_bytes, smallest.and_then(|s| s.size_bytes))
        {
            why.push(format!(
                "larger than {} ({} vs {} MB)",
                s.technique,
                text::num(text::mb(a), 2),
                text::num(text::mb(b), 2)
            ));
        } else if r.size_bytes.is_none() {
            why.push("no size measured".to_string());
        }
        if let (Some(f), Some(a), Some(b)) = (
            fastest,
            r.latency_p50_ms,
            fastest.and_then(|f| f.latency_p50_ms),
        ) {
            why.push(format!(
                "slower than {} ({} vs {} ms)",
                f.technique,
                text::num(a, 2),
                text::num(b, 2)
            ));
        } else if r.latency_p50_ms.is_none() {
            why.push("no latency measured".to_string());
        }
        if let Some(Mapping::Partial {
            on_device, total, ..
        }) = Mapping::of(r)
        {
            why.push(format!(
                "{} of {total} ops fall back to the CPU",
                total - on_device
            ));
        }
        others.push((r.technique.clone(), why.join("; ")));
    }
    let mut advice = Vec::new();
    if let Some(d) = &base_from {
        advice.push(format!(
            "{device} does not run float32: top-1 drops are against float32 on {d}"
        ));
    }
    if zoo {
        advice.push(
            "no trained weights: accuracy cannot be judged, so the choice rests on size and \
             latency only; check top-1 on the trained model before shipping"
                .to_string(),
        );
    } else if base.is_none() {
        advice.push("no float32 top-1 of this model: the budget could not be checked".into());
    } else if ptq_measured > 0 && ptq_over_budget == ptq_measured {
        advice.push(
            "no post-training technique stays within the budget: the guide's next step is \
             quantization-aware training"
                .into(),
        );
    } else if ptq_measured > 0 {
        advice.push(
            "post-training quantization stays within the budget: the guide's first step suffices"
                .into(),
        );
    }
    let mapped: Vec<Mapping> = cands.iter().filter_map(|r| Mapping::of(r)).collect();
    if !mapped.is_empty() && !mapped.iter().any(|m| matches!(m, Mapping::Full { .. })) {
        advice.push(
            "no technique maps fully onto this device: it needs a fully integer model \
             (full-integer PTQ or QAT) without unsupported ops"
                .into(),
        );
    }
    advice.push(
        "to shrink further, prune and/or cluster before quantizing (not measured in this run)"
            .into(),
    );
    let latency_kind = fastest
        .or(smallest)
        .map(|r| rows::kind_name(r.latency_kind))
        .unwrap_or("unknown")
        .to_string();
    Recommendation {
        device: device.to_string(),
        model: model.to_string(),
        budget,
        smallest: smallest.map(pick),
        fastest: fastest.map(pick),
        latency_kind,
        others,
        advice,
    }
}

/// The recommendations as HTML, one block per device.
pub fn to_html(recs: &[Recommendation]) -> String {
    let mut out = String::new();
    let mut device = "";
    for r in recs {
        if r.device != device {
            if !device.is_empty() {
                out += "</div>";
            }
            device = &r.device;
            out += &format!("<div class=\"rec\"><h3>{}</h3>", text::html(device));
        }
        let show = |p: &Option<Pick>, what: &str| -> String {
            match p {
                None => format!("<b>{what}:</b> <span class=\"why\">none within the budget</span>"),
                Some(p) => {
                    let mut s = format!("<b>{what}:</b> {}", text::html(&p.technique));
                    let mut bits = Vec::new();
                    if let Some(b) = p.size_bytes {
                        bits.push(format!("{} MB", text::num(text::mb(b), 2)));
                    }
                    if let Some(l) = p.latency_ms {
                        bits.push(format!(
                            "{} ms {}",
                            text::num(l, 2),
                            text::html(&r.latency_kind)
                        ));
                    }
                    if let Some(t) = p.top1 {
                        bits.push(format!("top-1 {}", text::num(t, 4)));
                    }
                    if !bits.is_empty() {
                        s += &format!(" ({})", bits.join(", "));
                    }
                    s
                }
            }
        };
        out += &format!(
            "<h4>{}</h4><p>{}<br>{}<br><small>budget: top-1 drop ≤ {}</small></p><ul>",
            text::html(&r.model),
            show(&r.smallest, "smallest"),
            show(&r.fastest, "fastest"),
            text::num(r.budget, 4)
        );
        for (t, why) in &r.others {
            out += &format!("<li>{}: {}</li>", text::html(t), text::html(why));
        }
        for a in &r.advice {
            out += &format!("<li class=\"advice\">{}</li>", text::html(a));
        }
        out += "</ul>";
    }
    if !device.is_empty() {
        out += "</div>";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic;

    fn rec<'a>(recs: &'a [Recommendation], device: &str, model: &str) -> &'a Recommendation {
        recs.iter()
            .find(|r| r.device == device && r.model == model)
            .unwrap()
    }

    #[test]
    fn picks_the_smallest_and_fastest_within_the_budget_and_says_why_not_the_rest() {
        let run = synthetic::run("r", 0, 1.0, 0.0);
        let recs = build(&run, 0.02);
        let cpu = rec(&recs, "cpu-host", "mobilenet_v2_1.0_224");
        // dynamic loses 8 points: out; uint8 (1.0 byte/param) is the smallest left.
        assert_eq!(cpu.smallest.as_ref().unwrap().technique, "uint8");
        assert_eq!(cpu.fastest.as_ref().unwrap().technique, "int8");
        let why = |t: &str| {
            cpu.others
                .iter()
                .find(|o| o.0 == t)
                .map(|o| o.1.clone())
                .unwrap()
        };
        assert!(
            why("dynamic").starts_with("top-1 drop 0.0800 > budget 0.0200"),
            "{}",
            why("dynamic")
        );
        assert!(
            why("float32").contains("larger than uint8"),
            "{}",
            why("float32")
        );
        assert!(why("int16x8").starts_with("failed"), "{}", why("int16x8"));
        // A tighter budget leaves only the float models.
        let tight = build(&run, 0.001);
        let cpu = rec(&tight, "cpu-host", "mobilenet_v2_1.0_224");
        assert_eq!(cpu.smallest.as_ref().unwrap().technique, "float16");
        let qat_advice = cpu.advice.iter().any(|a| a.contains("quantization-aware"));
        assert!(!qat_advice, "{:?}", cpu.advice);
    }

    #[test]
    fn a_device_without_float32_is_judged_against_float32_elsewhere() {
        let run = synthetic::run("r", 0, 1.0, 0.0);
        let recs = build(&run, 0.02);
        let tpu = rec(&recs, "edgetpu-usb", "mobilenet_v2_1.0_224");
        assert!(tpu.smallest.is_some() && tpu.fastest.is_some());
        assert!(
            tpu.advice
                .iter()
                .any(|a| a.contains("against float32 on cpu-host")),
            "{:?}",
            tpu.advice
        );
        assert!(tpu.others.iter().any(|o| o.1.starts_with("not run here")));
        let zoo = rec(&recs, "edgetpu-usb", "inception_v3");
        assert!(
            zoo.advice[0].starts_with("no trained weights"),
            "{:?}",
            zoo.advice
        );
        // Inception's int8 and uint8 fall back in part: no full mapping on the device.
        assert!(
            zoo.advice.iter().any(|a| a.contains("maps fully")),
            "{:?}",
            zoo.advice
        );
    }
}

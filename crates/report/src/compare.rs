//! Regression checks of a run against a baseline run (by default the previous run of
//! the same scenario): the same model × technique × device in both, compared on
//! latency (predicted only with predicted), top-1, size and op placement.

use std::collections::HashMap;

use quantfarm_results::{ResultRow, RowStatus, RunResults};
use serde::Serialize;

use crate::compat::Mapping;
use crate::text;

/// How much worse a measurement may get before the check fails.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Latency may grow by this fraction (0.10 = 10% slower).
    pub max_latency_regression: f64,
    /// Top-1 may fall by this much (absolute: 0.01 = one point).
    pub max_top1_drop: f64,
    /// Size may grow by this fraction.
    pub max_size_growth: f64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            max_latency_regression: 0.10,
            max_top1_drop: 0.01,
            max_size_growth: 0.01,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Fail,
    /// Not comparable (measured vs predicted, or a measurement on one side only).
    Skipped,
}

/// One regression check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// `latency`, `accuracy`, `size`, `mapping` or `result`.
    pub kind: &'static str,
    /// `model/technique on device`.
    pub subject: String,
    pub status: CheckStatus,
    pub message: String,
}

impl Check {
    /// `latency: mobilenet_v2/int8 on cpu-host`
    pub fn name(&self) -> String {
        format!("{}: {}", self.kind, self.subject)
    }
}

fn subject(r: &ResultRow) -> String {
    if r.device.is_empty() {
        format!("{}/{}", r.model, r.technique)
    } else {
        format!("{}/{} on {}", r.model, r.technique, r.device)
    }
}

/// Compare `run` with `baseline`, row by row.
pub fn compare(run: &RunResults, baseline: &RunResults, th: &Thresholds) -> Vec<Check> {
    let now: HashMap<(&str, &str, &str), &ResultRow> = run
        .rows
        .iter()
        .map(|r| {
            (
                (r.model.as_str(), r.technique.as_str(), r.device.as_str()),
                r,
            )
        })
        .collect();
    let mut out = Vec::new();
    let base_id = &baseline.run_id;
    for b in &baseline.rows {
        let key = (b.model.as_str(), b.technique.as_str(), b.device.as_str());
        let subj = subject(b);
        let check = |kind, status, message: String| Check {
            kind,
            subject: subj.clone(),
            status,
            message,
        };
        let Some(c) = now.get(&key) else {
            out.push(check(
                "result",
                CheckStatus::Fail,
                format!("{subj}: in baseline {base_id}, missing from this run"),
            ));
            continue;
        };
        if b.status == RowStatus::Succeeded && c.status != RowStatus::Succeeded {
            out.push(check(
                "result",
                CheckStatus::Fail,
                format!(
                    "{subj}: {} (succeeded in {base_id}): {}",
                    c.status.name(),
                    c.error
                ),
            ));
        }
        if let (Some(bl), Some(cl)) = (b.latency_p50_ms, c.latency_p50_ms) {
            if b.latency_kind != c.latency_kind {
                out.push(check(
                    "latency",
                    CheckStatus::Skipped,
                    format!(
                        "{subj}: {} now, {} in {base_id}: not compared",
                        crate::rows::kind_name(c.latency_kind),
                        crate::rows::kind_name(b.latency_kind)
                    ),
                ));
            } else {
                let growth = cl / bl - 1.0;
                let kind = crate::rows::kind_name(c.latency_kind);
                let fail = growth > th.max_latency_regression + 1e-12;
                out.push(check(
                    "latency",
                    if fail {
                        CheckStatus::Fail
                    } else {
                        CheckStatus::Pass
                    },
                    format!(
                        "{subj}: {} ms {kind} vs {} ms in {base_id} ({}%{})",
                        text::num(cl, 3),
                        text::num(bl, 3),
                        text::signed(100.0 * growth, 1),
                        if fail {
                            format!(
                                ", over the {}% allowed",
                                text::num(100.0 * th.max_latency_regression, 1)
                            )
                        } else {
                            String::new()
                        }
                    ),
                ));
            }
        }
        if let (Some(bt), Some(ct)) = (b.top1, c.top1) {
            let drop = bt - ct;
            let fail = drop > th.max_top1_drop + 1e-12;
            out.push(check(
                "accuracy",
                if fail {
                    CheckStatus::Fail
                } else {
                    CheckStatus::Pass
                },
                format!(
                    "{subj}: top-1 {} vs {} in {base_id} (drop {}{})",
                    text::num(ct, 4),
                    text::num(bt, 4),
                    text::num(drop, 4),
                    if fail {
                        format!(" > {} allowed", text::num(th.max_top1_drop, 4))
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        if let (Some(bs), Some(cs)) = (b.size_bytes, c.size_bytes) {
            let growth = cs as f64 / bs as f64 - 1.0;
            let fail = growth > th.max_size_growth + 1e-12;
            out.push(check(
                "size",
                if fail {
                    CheckStatus::Fail
                } else {
                    CheckStatus::Pass
                },
                format!(
                    "{subj}: {cs} bytes vs {bs} in {base_id} ({}%{})",
                    text::signed(100.0 * growth, 2),
                    if fail {
                        format!(
                            ", over the {}% allowed",
                            text::num(100.0 * th.max_size_growth, 2)
                        )
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        if let Some(bm) = Mapping::of(b) {
            let cm = Mapping::of(c);
            let lost = match (&bm, &cm) {
                (_, None) => Some("placement no longer measured".to_string()),
                (Mapping::Refused(_), _) => None,
                (_, Some(Mapping::Refused(why))) => Some(format!("now refused: {why}")),
                (Mapping::Full { .. }, Some(Mapping::Partial { .. })) => {
                    Some("fully mapped before, partly now".to_string())
                }
                _ => match (b.ops_on_device, c.ops_on_device) {
                    (Some(x), Some(y)) if y < x => Some(format!("ops on the device {x} -> {y}")),
                    _ => None,
                },
            };
            let now_desc = cm
                .map(|m| m.describe())
                .unwrap_or_else(|| "not measured".into());
            out.push(match lost {
                Some(why) => check(
                    "mapping",
                    CheckStatus::Fail,
                    format!(
                        "{subj}: lost mapping: {why} ({now_desc}; was {} in {base_id})",
                        bm.describe()
                    ),
                ),
                None => check(
                    "mapping",
                    CheckStatus::Pass,
                    format!("{subj}: {now_desc} (was {} in {base_id})", bm.describe()),
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantfarm_results::LatencyKind;

    fn run(id: &str, lat: f64, top1: f64, on: u32) -> RunResults {
        let mut r = ResultRow::new("m", "int8", "edgetpu-usb");
        r.latency_kind = Some(LatencyKind::Predicted);
        r.latency_p50_ms = Some(lat);
        r.top1 = Some(top1);
        r.size_bytes = Some(1000);
        r.ops_total = Some(10);
        r.ops_on_device = Some(on);
        RunResults {
            format: 1,
            run_id: id.into(),
            scenario: "s".into(),
            created_unix: 0,
            host: None,
            cancelled: false,
            rows: vec![r],
            skipped: vec![],
            gates: vec![],
            previous_run: None,
            accuracy_budget: None,
        }
    }

    #[test]
    fn flags_each_regression_and_passes_itself() {
        let base = run("a", 2.0, 0.70, 10);
        let th = Thresholds::default();
        assert!(
            compare(&base, &base, &th)
                .iter()
                .all(|c| c.status == CheckStatus::Pass)
        );
        let worse = run("b", 3.0, 0.65, 9);
        let checks = compare(&worse, &base, &th);
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .map(|c| c.kind)
            .collect();
        assert_eq!(failed, ["latency", "accuracy", "mapping"], "{checks:?}");
        // Within the thresholds: 9% slower, half a point.
        let ok = run("c", 2.18, 0.695, 10);
        assert!(
            compare(&ok, &base, &th)
                .iter()
                .all(|c| c.status == CheckStatus::Pass)
        );
        // Measured is never compared with predicted.
        let mut measured = run("d", 9.0, 0.70, 10);
        measured.rows[0].latency_kind = Some(LatencyKind::Measured);
        let c = compare(&measured, &base, &th);
        assert_eq!(c[0].status, CheckStatus::Skipped, "{c:?}");
    }
}

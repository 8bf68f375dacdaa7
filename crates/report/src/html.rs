//! The HTML report: one self-contained file (styles inline, charts as inline PNG data,
//! no scripts, no fonts or anything else fetched: the page's Content-Security-Policy
//! forbids every request). Every string from the results is escaped.

use quantfarm_results::{GateStatus, LatencyKind, RunResults};

use crate::compare::CheckStatus;
use crate::text::{self, html as esc};
use crate::{Report, recommend};

const STYLE: &str = "
body{font-family:'DejaVu Sans',Verdana,Arial,sans-serif;margin:0 auto;max-width:1400px;padding:0 24px 48px;color:#1b1b1b;background:#fff;font-size:14px}
h1{margin:20px 0 4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:36px}
nav a{margin-right:14px}code{background:#f2f2f2;padding:1px 4px}
.verdict{display:inline-block;padding:6px 12px;font-weight:bold;border-radius:4px}
.pass{background:#dff3df;color:#175a17}.fail{background:#fbdcdc;color:#8a1616}.nodata,.skipped{background:#eee;color:#555}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top}th{background:#f4f4f4;position:sticky;top:0}
td.n{text-align:right;white-space:nowrap}td.pred{background:#fff6e0}td.why{color:#666;font-style:italic}
small{color:#666}.notes{color:#444;font-size:13px}
.map{white-space:nowrap}.map.full{color:#175a17}.map.partial{color:#8a5a00}.map.refused{color:#8a1616}.map.skipped{color:#666}
.rec{margin-left:8px}.advice{color:#234d8a}
figure{margin:16px 0}figure img{max-width:100%;border:1px solid #ddd}figcaption{color:#444}
";

pub fn page(run: &RunResults, r: &Report) -> String {
    let mut h = String::with_capacity(64 << 10);
    h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">";
    h += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">";
    h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">";
    h += &format!("<title>quantfarm report: {}</title>", esc(&run.run_id));
    h += &format!("<style>{STYLE}</style></head><body>\n");

    h += &format!(
        "<header><h1>quantfarm report: {}</h1><p>",
        esc(&run.scenario)
    );
    h += &format!("run <code>{}</code>", esc(&run.run_id));
    h += &format!(" · collected {}", esc(&text::iso_utc(run.created_unix)));
    if let Some(host) = &run.host {
        h += &format!(" · host {}", esc(host));
    }
    h += &format!(" · {} result rows", run.rows.len());
    if run.cancelled {
        h += " · <b>cancelled</b>";
    }
    h += "</p><p>";
    let gates_failed = run
        .gates
        .iter()
        .filter(|g| g.status == GateStatus::Fail)
        .count();
    let checks_failed = r
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .count();
    let ok = gates_failed == 0 && checks_failed == 0;
    h += &format!(
        "<span class=\"verdict {}\">{}</span> {} of {} gates failed; ",
        if ok { "pass" } else { "fail" },
        if ok { "PASS" } else { "FAIL" },
        gates_failed,
        run.gates.len()
    );
    match &r.baseline {
        Some(b) => {
            h += &format!(
                "{checks_failed} of {} regression checks against <code>{}</code> failed",
                r.checks.len(),
                esc(b)
            )
        }
        None => h += "no baseline run to compare with",
    }
    h += "</p></header>\n<nav><a href=\"#gates\">gates</a><a href=\"#regressions\">regressions</a>\
          <a href=\"#table1\">Table 1</a><a href=\"#table2\">Table 2</a><a href=\"#charts\">charts</a>\
          <a href=\"#compat\">compatibility</a><a href=\"#recommend\">recommendation</a><a href=\"#rows\">all rows</a></nav>\n";

    h += "<section id=\"gates\"><h2>Gates</h2>";
    if run.gates.is_empty() {
        h += "<p class=\"why\">The scenario has no gates.</p>";
    } else {
        h += "<table><thead><tr><th>gate</th><th>kind</th><th>status</th><th>message</th></tr></thead><tbody>";
        for g in &run.gates {
            let (class, word) = match g.status {
                GateStatus::Pass => ("pass", "pass"),
                GateStatus::Fail => ("fail", "FAIL"),
                GateStatus::NoData => ("nodata", "no data"),
            };
            h += &format!(
                "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{word}</td><td>{}</td></tr>",
                esc(&g.name),
                esc(&g.kind),
                esc(&g.message)
            );
        }
        h += "</tbody></table>";
    }
    h += "</section>\n";

    h += "<section id=\"regressions\"><h2>Regressions</h2>";
    match &r.baseline {
        None => {
            h += "<p class=\"why\">No baseline: this is the first run of the scenario here, or none was given.</p>"
        }
        Some(b) => {
            h += &format!(
                "<p>Against <code>{}</code>: latency may grow {}%, top-1 may drop {}, size may grow {}%; \
                 a lost mapping fails. Predicted latencies are compared with predicted only.</p>",
                esc(b),
                text::num(100.0 * r.thresholds.max_latency_regression, 1),
                text::num(r.thresholds.max_top1_drop, 4),
                text::num(100.0 * r.thresholds.max_size_growth, 2)
            );
            let failed: Vec<_> = r
                .checks
                .iter()
                .filter(|c| c.status == CheckStatus::Fail)
                .collect();
            if failed.is_empty() {
                h += "<p class=\"verdict pass\">no regression</p>";
            } else {
                h += "<ul>";
                for c in failed {
                    h += &format!("<li class=\"fail\">{}</li>", esc(&c.message));
                }
                h += "</ul>";
            }
            h += &format!(
                "<details><summary>all {} checks</summary><table><tbody>",
                r.checks.len()
            );
            for c in &r.checks {
                let class = match c.status {
                    CheckStatus::Pass => "pass",
                    CheckStatus::Fail => "fail",
                    CheckStatus::Skipped => "skipped",
                };
                h += &format!(
                    "<tr><td>{}</td><td class=\"{class}\">{class}</td><td>{}</td></tr>",
                    esc(c.kind),
                    esc(&c.message)
                );
            }
            h += "</tbody></table></details>";
        }
    }
    h += "</section>\n";

    h += "<section id=\"table1\"><h2>Table 1: quantization on selected CNNs</h2>";
    h += "<p>Each of our values beside the guide's (<code>guide_</code>) and the difference \
          (<code>diff_</code>). Latency cells say <b>measured</b> or <b>predicted</b>; predicted \
          ones are shaded.</p>";
    h += &r.table1.to_html("t1");
    h += "</section>\n<section id=\"table2\"><h2>Table 2: int16 activations with int8 weights</h2>";
    h += &r.table2.to_html("t2");
    h += "</section>\n";

    h += "<section id=\"charts\"><h2>Charts</h2>";
    if r.charts.is_empty() {
        h += if r.charts_skipped {
            "<p class=\"why\">Charts were not drawn for this report (--no-charts).</p>"
        } else {
            "<p class=\"why\">Nothing to chart: no row has both a latency and a top-1, a \
             size, or op placement.</p>"
        };
    }
    for c in &r.charts {
        h += &format!(
            "<figure><img alt=\"{t}\" src=\"data:image/png;base64,{}\"><figcaption>{t} \
             (<code>charts/{n}.png</code>, <code>charts/{n}.svg</code>)</figcaption></figure>",
            text::base64(&c.png),
            t = esc(&c.title),
            n = esc(&c.name)
        );
    }
    h += "</section>\n";

    h += "<section id=\"compat\"><h2>Compatibility matrix</h2>";
    if r.compat.is_empty() {
        h += "<p class=\"why\">No op placement was measured in this run (no <code>mapping</code> metric or no simulated accelerator), and nothing was skipped.</p>";
    } else {
        h += "<p>Per model and device, where each technique's ops run: fully mapped, partly mapped \
              (with the first op the device does not run), refused, or not run there.</p>";
        h += &r.compat.to_html();
    }
    h += "</section>\n";

    h += "<section id=\"recommend\"><h2>Recommendation</h2>";
    h += &format!(
        "<p>The guide's decision tree on this run's numbers: per device and model, the smallest and \
         the fastest technique whose top-1 stays within the accuracy budget (a drop of at most {} \
         against float32 on the same device{}), and why the others were not chosen.</p>",
        text::num(r.budget, 4),
        if run.accuracy_budget.is_some() {
            ", from the scenario's gates"
        } else {
            ""
        }
    );
    h += &recommend::to_html(&r.recommendations);
    h += "</section>\n";

    if !run.skipped.is_empty() {
        h += "<section id=\"skipped\"><h2>Not run</h2><table><thead><tr><th>model</th><th>technique</th><th>device</th><th>why</th></tr></thead><tbody>";
        for s in &run.skipped {
            h += &format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.model),
                esc(&s.technique),
                if s.device.is_empty() {
                    "every device".to_string()
                } else {
                    esc(&s.device)
                },
                esc(&s.reason)
            );
        }
        h += "</tbody></table></section>\n";
    }

    h += "<section id=\"rows\"><h2>All rows</h2><details><summary>";
    h += &format!(
        "{} rows</summary><div class=\"scroll\"><table><thead><tr>",
        run.rows.len()
    );
    for c in [
        "model",
        "technique",
        "kind",
        "source",
        "device",
        "status",
        "size (MB)",
        "latency p50 (ms)",
        "top-1",
        "top-5",
        "ops on device",
        "error",
    ] {
        h += &format!("<th>{c}</th>");
    }
    h += "</tr></thead><tbody>";
    let num = |v: Option<f64>, d: usize| v.map(|x| text::num(x, d)).unwrap_or_else(|| "-".into());
    for row in &run.rows {
        let lat = match (row.latency_p50_ms, row.latency_kind) {
            (Some(v), Some(LatencyKind::Predicted)) => {
                format!(
                    "<td class=\"n pred\">{} <small>predicted</small></td>",
                    text::num(v, 3)
                )
            }
            (Some(v), _) => format!(
                "<td class=\"n\">{} <small>measured</small></td>",
                text::num(v, 3)
            ),
            (None, _) => "<td>-</td>".into(),
        };
        let ops = match (row.ops_on_device, row.ops_total) {
            (Some(a), Some(b)) => format!("{a}/{b}"),
            _ => "-".into(),
        };
        h += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td>{lat}<td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&row.model),
            esc(&row.technique),
            esc(&row.technique_kind),
            esc(&row.model_source),
            esc(&row.device),
            esc(row.status.name()),
            num(row.size_bytes.map(text::mb), 3),
            num(row.top1, 4),
            num(row.top5, 4),
            esc(&ops),
            esc(&row.error)
        );
    }
    h += "</tbody></table></div></details></section>\n";
    h += "<footer><p><small>quantfarm-report · charts drawn with plotters, text in DejaVu Sans \
          (Bitstream Vera licence) · the guide's numbers from the TFLite model-optimization guide</small></p></footer>\n";
    h += "</body></html>\n";
    h
}

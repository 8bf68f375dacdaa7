//! The compatibility matrix: for each model × device, where each technique's ops run —
//! fully mapped, partly mapped (with the first op the device does not run), refused, or
//! not run on that device (and why).

use quantfarm_results::{ResultRow, RunResults};

use crate::rows;
use crate::text;

/// How one technique of a model maps onto one device.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapping {
    Full {
        ops: u32,
    },
    Partial {
        on_device: u32,
        total: u32,
        segments: Option<u32>,
        first_unmapped: Option<String>,
    },
    Refused(String),
    /// The scenario did not run it there (the device does not take its numerics, ...).
    Skipped(String),
}

impl Mapping {
    pub fn of(r: &ResultRow) -> Option<Mapping> {
        if let Some(why) = &r.mapping_refused {
            return Some(Mapping::Refused(why.clone()));
        }
        let (total, on) = (r.ops_total?, r.ops_on_device?);
        Some(if on == total {
            Mapping::Full { ops: total }
        } else {
            Mapping::Partial {
                on_device: on,
                total,
                segments: r.segments,
                first_unmapped: r.first_unmapped_op.clone(),
            }
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Mapping::Full { ops } => format!("fully mapped ({ops}/{ops} ops)"),
            Mapping::Partial {
                on_device,
                total,
                segments,
                first_unmapped,
            } => {
                let mut s = format!("partly mapped ({on_device}/{total} ops");
                if let Some(n) = segments {
                    s += &format!(", {n} segment{}", if *n == 1 { "" } else { "s" });
                }
                s.push(')');
                if let Some(op) = first_unmapped {
                    s += &format!("; first unmapped: {op}");
                }
                s
            }
            Mapping::Refused(why) => format!("refused: {why}"),
            Mapping::Skipped(why) => format!("not run: {why}"),
        }
    }

    fn class(&self) -> &'static str {
        match self {
            Mapping::Full { .. } => "full",
            Mapping::Partial { .. } => "partial",
            Mapping::Refused(_) => "refused",
            Mapping::Skipped(_) => "skipped",
        }
    }
}

/// The matrix: `cells[model][device]` lists (technique label, mapping).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub models: Vec<String>,
    pub devices: Vec<String>,
    pub cells: Vec<Vec<Vec<(String, Mapping)>>>,
}

impl Matrix {
    /// Nothing measured any placement and nothing was skipped.
    pub fn is_empty(&self) -> bool {
        self.cells.iter().flatten().all(|c| c.is_empty())
    }

    pub fn to_html(&self) -> String {
        let mut out =
            String::from("<div class=\"scroll\"><table id=\"compat\"><thead><tr><th>model</th>");
        for d in &self.devices {
            out += &format!("<th>{}</th>", text::html(d));
        }
        out += "</tr></thead><tbody>";
        for (m, row) in self.models.iter().zip(&self.cells) {
            out += &format!("<tr><td class=\"t\">{}</td>", text::html(m));
            for cell in row {
                if cell.is_empty() {
                    out += "<td class=\"why\">placement not measured</td>";
                    continue;
                }
                out += "<td>";
                for (tech, map) in cell {
                    out += &format!(
                        "<div class=\"map {}\"><b>{}</b>: {}</div>",
                        map.class(),
                        text::html(tech),
                        text::html(&map.describe())
                    );
                }
                out += "</td>";
            }
            out += "</tr>";
        }
        out + "</tbody></table></div>"
    }
}

pub fn build(run: &RunResults) -> Matrix {
    let models: Vec<String> = rows::models(&run.rows)
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut devices: Vec<String> = rows::devices(&run.rows)
        .iter()
        .map(|s| s.to_string())
        .collect();
    for s in &run.skipped {
        if !s.device.is_empty() && !devices.contains(&s.device) {
            devices.push(s.device.clone());
        }
    }
    let cells = models
        .iter()
        .map(|m| {
            devices
                .iter()
                .map(|d| {
                    let mut cell: Vec<(String, Mapping)> = run
                        .rows
                        .iter()
                        .filter(|r| &r.model == m && &r.device == d)
                        .filter_map(|r| Mapping::of(r).map(|x| (r.technique.clone(), x)))
                        .collect();
                    for s in run
                        .skipped
                        .iter()
                        .filter(|s| &s.model == m && (s.device == *d || s.device.is_empty()))
                    {
                        cell.push((s.technique.clone(), Mapping::Skipped(s.reason.clone())));
                    }
                    cell
                })
                .collect()
        })
        .collect();
    Matrix {
        models,
        devices,
        cells,
    }
}

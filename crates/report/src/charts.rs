//! Charts with plotters, each drawn once per backend: PNG (text rasterised with the
//! embedded DejaVu Sans through ab_glyph, so no system font is needed) and SVG.
//!
//! - accuracy vs latency per device: one point per model × technique, the Pareto front
//!   of each model (no other point is both faster and more accurate) joined and ringed;
//! - size per technique (horizontal bars, one per model × technique);
//! - op placement per device (stacked bars: ops on the device, ops on the CPU);
//! - trends over the runs of a scenario: latency per device, top-1.
//!
//! Predicted latencies say so in the chart's title and axis.

use std::error::Error;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use quantfarm_results::{LatencyKind, ResultRow, RunResults};

use crate::rows;

/// DejaVu Sans (Bitstream Vera licence, `assets/LICENSE-DejaVu.txt`).
pub static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

const W: u32 = 960;
const H: u32 = 560;
const MAX_SERIES: usize = 20;
/// Width of the legend panel at the right of every chart.
const LEGEND_W: u32 = 290;

/// One chart in both formats.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File stem under `charts/` (`accuracy-latency-cpu-host`).
    pub name: String,
    pub title: String,
    pub png: Vec<u8>,
    pub svg: String,
}

type Res = Result<(), Box<dyn Error>>;

trait Plot {
    fn title(&self) -> String;
    fn size(&self) -> (u32, u32) {
        (W, H)
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static;
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid font (checked by a test); a failure leaves plotters
        // without text rather than stopping the report.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn render(name: &str, p: &impl Plot) -> Result<Chart, String> {
    register_font();
    let (w, h) = p.size();
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        p.draw(&root).map_err(|e| format!("chart {name}: {e}"))?;
        root.present().map_err(|e| format!("chart {name}: {e}"))?;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        p.draw(&root).map_err(|e| format!("chart {name}: {e}"))?;
        root.present().map_err(|e| format!("chart {name}: {e}"))?;
    }
    Ok(Chart {
        name: name.to_string(),
        title: p.title(),
        png: encode_png(&rgb, w, h).map_err(|e| format!("chart {name}: {e}"))?,
        svg,
    })
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut wr = enc.write_header()?;
        wr.write_image_data(rgb)?;
    }
    Ok(out)
}

/// Twenty distinct colours (Tableau 20 order: strong ones first, their light partners
/// after), so up to [`MAX_SERIES`] series never share one.
const COLORS: [RGBColor; 20] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
    RGBColor(255, 152, 150),
    RGBColor(197, 176, 213),
    RGBColor(196, 156, 148),
    RGBColor(247, 182, 210),
    RGBColor(199, 199, 199),
    RGBColor(219, 219, 141),
    RGBColor(158, 218, 229),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

fn font(size: u32) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&BLACK)
}

/// The chart's area and, at its right, a legend panel listing `entries` (a colour
/// square and the name, cut to fit). Keeps legends off the data whatever its shape.
fn with_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    entries: &[(String, RGBColor)],
) -> Result<DrawingArea<DB, Shift>, Box<dyn Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (w, _) = root.dim_in_pixel();
    let (plot, side) = root.split_horizontally(w.saturating_sub(LEGEND_W));
    for (i, (name, c)) in entries.iter().enumerate() {
        let y = 60 + 20 * i as i32;
        side.draw(&Rectangle::new([(6, y - 6), (18, y + 6)], c.filled()))?;
        let shown: String = if name.chars().count() > 36 {
            name.chars().take(35).collect::<String>() + "…"
        } else {
            name.clone()
        };
        side.draw(&Text::new(shown, (24, y - 8), font(13)))?;
    }
    Ok(plot)
}

/// A file-name-safe form of a device or model name.
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn kind_suffix(kinds: &[Option<LatencyKind>]) -> &'static str {
    let pred = kinds.contains(&Some(LatencyKind::Predicted));
    let meas = kinds.contains(&Some(LatencyKind::Measured));
    match (pred, meas) {
        (true, false) => "predicted",
        (true, true) => "measured and predicted",
        _ => "measured",
    }
}

// ------------------------------------------------------------------ accuracy vs latency

/// One point: (technique, latency, top-1).
type Point = (String, f64, f64);

struct Scatter {
    device: String,
    kind: &'static str,
    /// Per model, its points.
    series: Vec<(String, Vec<Point>)>,
}

/// The Pareto front: points no other point beats on both latency and top-1, by latency.
pub fn pareto(points: &[(f64, f64)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..points.len()).collect();
    idx.sort_by(|&a, &b| {
        points[a]
            .0
            .partial_cmp(&points[b].0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(
                points[b]
                    .1
                    .partial_cmp(&points[a].1)
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
    });
    let mut best = f64::NEG_INFINITY;
    let mut out = Vec::new();
    for i in idx {
        if points[i].1 > best {
            best = points[i].1;
            out.push(i);
        }
    }
    out
}

impl Plot for Scatter {
    fn title(&self) -> String {
        format!("{}: top-1 vs latency ({})", self.device, self.kind)
    }

    fn size(&self) -> (u32, u32) {
        (W + LEGEND_W, H)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static,
    {
        let mut entries: Vec<(String, RGBColor)> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.0.clone(), color(i)))
            .collect();
        entries.push(("ringed + joined: Pareto front".into(), BLACK));
        let area = with_legend(root, &entries)?;
        let all: Vec<&Point> = self.series.iter().flat_map(|s| &s.1).collect();
        let xmax = all.iter().map(|p| p.1).fold(0.0, f64::max) * 1.15 + 1e-6;
        let ymin = all.iter().map(|p| p.2).fold(1.0, f64::min);
        let ymax = all.iter().map(|p| p.2).fold(0.0, f64::max);
        let pad = ((ymax - ymin) * 0.15).max(0.01);
        let mut chart = ChartBuilder::on(&area)
            .caption(self.title(), font(22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..xmax, (ymin - pad).max(0.0)..(ymax + pad).min(1.0))?;
        chart
            .configure_mesh()
            .x_desc(format!("latency p50 (ms, {})", self.kind))
            .y_desc("top-1")
            .label_style(font(14))
            .axis_desc_style(font(15))
            .draw()?;
        for (i, (_, pts)) in self.series.iter().enumerate() {
            let c = color(i);
            let xy: Vec<(f64, f64)> = pts.iter().map(|p| (p.1, p.2)).collect();
            let front: Vec<(f64, f64)> = pareto(&xy).into_iter().map(|j| xy[j]).collect();
            chart.draw_series(LineSeries::new(front.clone(), c.stroke_width(2)))?;
            chart.draw_series(front.iter().map(|&p| Circle::new(p, 10, c.stroke_width(2))))?;
            chart.draw_series(xy.iter().map(|&p| Circle::new(p, 5, c.filled())))?;
            chart.draw_series(pts.iter().map(|p| {
                EmptyElement::at((p.1, p.2)) + Text::new(p.0.clone(), (8, -16), font(13))
            }))?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ horizontal bars

/// Horizontal bars, one per category; `stack` (if any) is drawn after `values`, from
/// their ends.
struct Bars {
    title: String,
    x_desc: String,
    labels: Vec<String>,
    /// (series name, value per category; `None` = no bar).
    series: Vec<(String, Vec<Option<f64>>)>,
    /// Series are stacked (else each category has one bar of one series).
    stacked: bool,
}

impl Plot for Bars {
    fn title(&self) -> String {
        self.title.clone()
    }

    fn size(&self) -> (u32, u32) {
        (
            W + LEGEND_W,
            (140 + 26 * self.labels.len() as u32).clamp(240, 4000),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static,
    {
        let entries: Vec<(String, RGBColor)> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.0.clone(), color(i)))
            .collect();
        let area = with_legend(root, &entries)?;
        let n = self.labels.len();
        let totals: Vec<f64> = (0..n)
            .map(|i| {
                let vals = self.series.iter().filter_map(|s| s.1[i]);
                if self.stacked {
                    vals.sum()
                } else {
                    vals.fold(0.0, f64::max)
                }
            })
            .collect();
        let xmax = totals.iter().copied().fold(0.0, f64::max) * 1.08 + 1e-9;
        let longest = self
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(4);
        let labels = self.labels.clone();
        let mut chart = ChartBuilder::on(&area)
            .caption(&self.title, font(22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size((longest as u32 * 8 + 16).clamp(60, 420))
            .build_cartesian_2d(0.0..xmax, (0..n as i32).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n.max(1))
            .y_label_formatter(&move |v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_desc(self.x_desc.clone())
            .label_style(font(13))
            .axis_desc_style(font(15))
            .draw()?;
        // A horizontal bar runs from its baseline to its value (an x position), so a
        // stacked series ends at the running total.
        let mut base = vec![0.0; n];
        for (si, (_, vals)) in self.series.iter().enumerate() {
            let c = color(si);
            let data: Vec<(i32, f64)> = vals
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (i as i32, v)))
                .collect();
            if data.is_empty() {
                continue;
            }
            let b = base.clone();
            chart.draw_series(
                Histogram::horizontal(&chart)
                    .style(c.filled())
                    .margin(4)
                    .baseline_func(move |y| match y {
                        SegmentValue::Exact(i) | SegmentValue::CenterOf(i) => {
                            b.get(*i as usize).copied().unwrap_or(0.0)
                        }
                        SegmentValue::Last => 0.0,
                    })
                    .data(data.iter().map(|&(i, v)| {
                        let from = if self.stacked { base[i as usize] } else { 0.0 };
                        (i, from + v)
                    })),
            )?;
            if self.stacked {
                for &(i, v) in &data {
                    base[i as usize] += v;
                }
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ trends

struct Trend {
    title: String,
    y_desc: String,
    runs: Vec<String>,
    series: Vec<(String, Vec<Option<f64>>)>,
}

impl Plot for Trend {
    fn title(&self) -> String {
        self.title.clone()
    }

    fn size(&self) -> (u32, u32) {
        (W + LEGEND_W, H)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static,
    {
        let entries: Vec<(String, RGBColor)> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.0.clone(), color(i)))
            .collect();
        let area = with_legend(root, &entries)?;
        let vals: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.1.iter().flatten().copied())
            .collect();
        let ymin = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let ymax = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let pad = ((ymax - ymin) * 0.1).max(ymax.abs() * 0.05).max(1e-6);
        let n = self.runs.len();
        let runs = self.runs.clone();
        let mut chart = ChartBuilder::on(&area)
            .caption(&self.title, font(22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.3..(n as f64 - 0.7), (ymin - pad)..(ymax + pad))?;
        chart
            .configure_mesh()
            .x_labels(n.min(12))
            .x_label_formatter(&move |x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    runs.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc("run (collection time, UTC; oldest first)")
            .y_desc(self.y_desc.clone())
            .label_style(font(13))
            .axis_desc_style(font(15))
            .draw()?;
        for (si, (_, vals)) in self.series.iter().enumerate() {
            let c = color(si);
            let pts: Vec<(f64, f64)> = vals
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (i as f64, v)))
                .collect();
            chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?;
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ building them

fn label(r: &ResultRow) -> String {
    format!("{} · {}", r.model, r.technique)
}

/// Every chart of a run; `history` holds the scenario's runs, oldest first, ending
/// with this one (trends need two or more).
pub fn build(run: &RunResults, history: &[&RunResults]) -> Result<Vec<Chart>, String> {
    let mut out = Vec::new();
    let rs = &run.rows;
    for device in rows::devices(rs) {
        let on: Vec<&ResultRow> = rs
            .iter()
            .filter(|r| r.device == device && r.top1.is_some() && r.latency_p50_ms.is_some())
            .collect();
        if on.is_empty() {
            continue;
        }
        let kinds: Vec<Option<LatencyKind>> = on.iter().map(|r| r.latency_kind).collect();
        let series = rows::models(rs)
            .into_iter()
            .map(|m| {
                let pts: Vec<Point> = on
                    .iter()
                    .filter(|r| r.model == m)
                    .map(|r| {
                        (
                            r.technique.clone(),
                            r.latency_p50_ms.unwrap(),
                            r.top1.unwrap(),
                        )
                    })
                    .collect();
                (m.to_string(), pts)
            })
            .filter(|s| !s.1.is_empty())
            .collect();
        let p = Scatter {
            device: device.to_string(),
            kind: kind_suffix(&kinds),
            series,
        };
        out.push(render(&format!("accuracy-latency-{}", slug(device)), &p)?);
    }

    // Size per technique: one bar per model × technique that has a size.
    let mut sized: Vec<&ResultRow> = Vec::new();
    for r in rs.iter().filter(|r| r.size_bytes.is_some()) {
        if !sized
            .iter()
            .any(|s| s.model == r.model && s.technique == r.technique)
        {
            sized.push(r);
        }
    }
    if !sized.is_empty() {
        let mut techniques: Vec<&str> = Vec::new();
        for r in &sized {
            if !techniques.contains(&r.technique.as_str()) {
                techniques.push(&r.technique);
            }
        }
        let p = Bars {
            title: "size per technique".into(),
            x_desc: "file size (MB)".into(),
            labels: sized.iter().map(|r| label(r)).collect(),
            series: techniques
                .iter()
                .map(|t| {
                    let vals = sized
                        .iter()
                        .map(|r| {
                            (r.technique == *t).then(|| crate::text::mb(r.size_bytes.unwrap()))
                        })
                        .collect();
                    (t.to_string(), vals)
                })
                .collect(),
            stacked: false,
        };
        out.push(render("size", &p)?);
    }

    // Placement per device: ops on the device and on the CPU, stacked.
    for device in rows::devices(rs) {
        let mapped: Vec<&ResultRow> = rs
            .iter()
            .filter(|r| r.device == device && r.ops_total.is_some() && r.ops_on_device.is_some())
            .collect();
        if mapped.is_empty() {
            continue;
        }
        let p = Bars {
            title: format!("{device}: op placement"),
            x_desc: "ops".into(),
            labels: mapped.iter().map(|r| label(r)).collect(),
            series: vec![
                (
                    format!("on {device}"),
                    mapped
                        .iter()
                        .map(|r| r.ops_on_device.map(f64::from))
                        .collect(),
                ),
                (
                    "on the CPU (fallback)".into(),
                    mapped
                        .iter()
                        .map(|r| {
                            Some(f64::from(
                                r.ops_total.unwrap()
                                    - r.ops_on_device.unwrap().min(r.ops_total.unwrap()),
                            ))
                        })
                        .collect(),
                ),
            ],
            stacked: true,
        };
        out.push(render(&format!("placement-{}", slug(device)), &p)?);
    }

    if history.len() >= 2 {
        let runs: Vec<String> = history.iter().map(|h| run_label(h.created_unix)).collect();
        for device in rows::devices(rs) {
            let mut keys: Vec<(&str, &str)> = Vec::new();
            for r in rs
                .iter()
                .filter(|r| r.device == device && r.latency_p50_ms.is_some())
            {
                keys.push((&r.model, &r.technique));
            }
            if keys.is_empty() {
                continue;
            }
            let mut kinds = Vec::new();
            let series: Vec<(String, Vec<Option<f64>>)> = keys
                .iter()
                .take(MAX_SERIES)
                .map(|(m, t)| {
                    let vals = history
                        .iter()
                        .map(|h| {
                            h.rows
                                .iter()
                                .find(|r| r.model == *m && r.technique == *t && r.device == device)
                                .and_then(|r| {
                                    kinds.push(r.latency_kind);
                                    r.latency_p50_ms
                                })
                        })
                        .collect();
                    (format!("{m} · {t}"), relative(vals))
                })
                .collect();
            let more = if keys.len() > MAX_SERIES {
                format!(", first {MAX_SERIES} of {}", keys.len())
            } else {
                String::new()
            };
            let kind = kind_suffix(&kinds);
            let p = Trend {
                title: format!("{device}: latency over runs ({kind}{more})"),
                y_desc: format!("p50 / first run's p50 ({kind})"),
                runs: runs.clone(),
                series,
            };
            out.push(render(&format!("trend-latency-{}", slug(device)), &p)?);
        }
        let mut keys: Vec<(&str, &str, &str)> = Vec::new();
        for m in rows::models(rs) {
            let dev = rs
                .iter()
                .filter(|r| r.model == m && r.top1.is_some())
                .map(|r| r.device.as_str())
                .find(|d| *d == "cpu-host")
                .or_else(|| {
                    rs.iter()
                        .find(|r| r.model == m && r.top1.is_some())
                        .map(|r| r.device.as_str())
                });
            if let Some(d) = dev {
                for r in rs
                    .iter()
                    .filter(|r| r.model == m && r.device == d && r.top1.is_some())
                {
                    keys.push((&r.model, &r.technique, d));
                }
            }
        }
        if !keys.is_empty() {
            let series = keys
                .iter()
                .take(MAX_SERIES)
                .map(|(m, t, d)| {
                    let vals = history
                        .iter()
                        .map(|h| {
                            h.rows
                                .iter()
                                .find(|r| r.model == *m && r.technique == *t && r.device == *d)
                                .and_then(|r| r.top1)
                        })
                        .collect();
                    (format!("{m} · {t} ({d})"), vals)
                })
                .collect();
            let p = Trend {
                title: "top-1 over runs".into(),
                y_desc: "top-1".into(),
                runs,
                series,
            };
            out.push(render("trend-top1", &p)?);
        }
    }
    Ok(out)
}

/// A run on the trend's x axis: its collection time, `MM-DD HH:MM` (UTC).
fn run_label(created_unix: u64) -> String {
    let t = crate::text::iso_utc(created_unix);
    t.get(5..16).unwrap_or(&t).replace('T', " ")
}

/// Values over their series' first one, so latencies of 1 ms and 1 s share an axis and
/// a 10% regression looks the same on both.
fn relative(vals: Vec<Option<f64>>) -> Vec<Option<f64>> {
    let first = vals.iter().flatten().copied().find(|v| *v > 0.0);
    vals.into_iter().map(|v| Some(v? / first?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_front_keeps_the_undominated_points() {
        let pts = [
            (10.0, 0.70),
            (5.0, 0.69),
            (7.0, 0.60),
            (3.0, 0.50),
            (12.0, 0.705),
        ];
        assert_eq!(pareto(&pts), [3, 1, 0, 4]);
    }

    #[test]
    fn the_embedded_font_loads() {
        assert!(ab_glyph_ok(FONT));
    }

    fn ab_glyph_ok(bytes: &'static [u8]) -> bool {
        plotters::style::register_font("test-font", FontStyle::Normal, bytes).is_ok()
    }
}

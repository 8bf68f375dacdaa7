//! A report table: named columns and cells that are numbers, text, or a reason why the
//! cell is empty. Rendered as Markdown, CSV and HTML from the same cells.

use crate::text;

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Plain text (a model or device name, a label).
    Text(String),
    /// A number shown with `digits` decimals; `tag` is shown beside it in Markdown and
    /// HTML (e.g. `predicted`, `int8 PTQ for QAT`) and is left out of CSV, where a
    /// column of its own carries it.
    Num {
        value: f64,
        digits: usize,
        tag: Option<String>,
    },
    /// Why there is no value, in words ("no trained weights: architecture only").
    Why(String),
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    pub fn num(value: f64, digits: usize) -> Cell {
        Cell::Num {
            value,
            digits,
            tag: None,
        }
    }

    pub fn tagged(value: f64, digits: usize, tag: impl Into<String>) -> Cell {
        let tag = tag.into();
        Cell::Num {
            value,
            digits,
            tag: (!tag.is_empty()).then_some(tag),
        }
    }

    pub fn why(s: impl Into<String>) -> Cell {
        Cell::Why(s.into())
    }

    /// The number, if the cell holds one.
    pub fn value(&self) -> Option<f64> {
        match self {
            Cell::Num { value, .. } => Some(*value),
            _ => None,
        }
    }

    /// The cell as Markdown and HTML show it (number and tag).
    pub fn display(&self) -> String {
        match self {
            Cell::Text(s) | Cell::Why(s) => s.clone(),
            Cell::Num { value, digits, tag } => match tag {
                Some(t) => format!("{} ({t})", text::num(*value, *digits)),
                None => text::num(*value, *digits),
            },
        }
    }

    /// The cell as CSV holds it: the bare number, or the text.
    pub fn csv(&self) -> String {
        match self {
            Cell::Text(s) | Cell::Why(s) => s.clone(),
            Cell::Num { value, digits, .. } => text::num(*value, *digits),
        }
    }
}

/// A column; `csv_only` columns (the kind of each latency, say) are spelled out in CSV
/// and folded into the cells' tags in Markdown and HTML.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub csv_only: bool,
}

/// A table with notes printed under it.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub title: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
    pub notes: Vec<String>,
}

impl Table {
    pub fn new(title: &str) -> Table {
        Table {
            title: title.to_string(),
            columns: Vec::new(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn column(&mut self, name: &str, csv_only: bool) {
        self.columns.push(Column {
            name: name.to_string(),
            csv_only,
        });
    }

    /// Index of a column by name.
    pub fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The cell of row `row` in column `name`.
    pub fn get(&self, row: usize, name: &str) -> Option<&Cell> {
        self.rows.get(row)?.get(self.col(name)?)
    }

    /// Rows whose first cell is `first`.
    pub fn rows_of<'a>(&'a self, first: &'a str) -> impl Iterator<Item = usize> + 'a {
        (0..self.rows.len())
            .filter(move |&i| matches!(&self.rows[i][0], Cell::Text(s) if s == first))
    }

    pub fn to_csv(&self) -> String {
        let mut out = self
            .columns
            .iter()
            .map(|c| text::csv(&c.name))
            .collect::<Vec<_>>()
            .join(",");
        out.push('\n');
        for r in &self.rows {
            out.push_str(
                &r.iter()
                    .map(|c| text::csv(&c.csv()))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            out.push('\n');
        }
        out
    }

    fn shown(&self) -> Vec<usize> {
        (0..self.columns.len())
            .filter(|&i| !self.columns[i].csv_only)
            .collect()
    }

    pub fn to_markdown(&self) -> String {
        let shown = self.shown();
        let mut out = format!("## {}\n\n", text::markdown(&self.title));
        let head: Vec<String> = shown
            .iter()
            .map(|&i| text::markdown(&self.columns[i].name))
            .collect();
        out.push_str(&format!("| {} |\n", head.join(" | ")));
        out.push_str(&format!("|{}\n", "---|".repeat(shown.len())));
        for r in &self.rows {
            let cells: Vec<String> = shown
                .iter()
                .map(|&i| match &r[i] {
                    Cell::Why(s) => format!("*{}*", text::markdown(s)),
                    c => text::markdown(&c.display()),
                })
                .collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                out.push_str(&format!("- {}\n", text::markdown(n)));
            }
        }
        out
    }

    /// An HTML `<table>` (inside a scrolling `<div>`) with its notes; every string
    /// escaped. A column `X` followed by `guide_X` and `diff_X` is shown as one column
    /// whose cells hold ours, the guide's and the difference (CSV and Markdown keep
    /// the three columns).
    pub fn to_html(&self, id: &str) -> String {
        let shown = self.shown();
        // (first column, is a triple)
        let mut groups: Vec<(usize, bool)> = Vec::new();
        let mut k = 0;
        while k < shown.len() {
            let i = shown[k];
            let name = &self.columns[i].name;
            let triple = k + 2 < shown.len()
                && self.columns[shown[k + 1]].name == format!("guide_{name}")
                && self.columns[shown[k + 2]].name == format!("diff_{name}");
            groups.push((i, triple));
            k += if triple { 3 } else { 1 };
        }
        let mut out = format!(
            "<div class=\"scroll\"><table id=\"{}\"><thead><tr>",
            text::html(id)
        );
        for &(i, triple) in &groups {
            let name = text::html(&self.columns[i].name);
            if triple {
                out.push_str(&format!(
                    "<th>{name}<br><small>ours · guide · diff</small></th>"
                ));
            } else {
                out.push_str(&format!("<th>{name}</th>"));
            }
        }
        out.push_str("</tr></thead><tbody>");
        for r in &self.rows {
            out.push_str("<tr>");
            for &(i, triple) in &groups {
                let (class, mut body) = html_cell(&r[i]);
                if triple {
                    let guide = match &r[i + 1] {
                        Cell::Num { value, digits, .. } => text::num(*value, *digits),
                        c => c.display(),
                    };
                    body += &format!("<br><small>guide {}</small>", text::html(&guide));
                    if let Cell::Text(d) = &r[i + 2] {
                        body += &format!(" <small>({})</small>", text::html(d));
                    }
                }
                out.push_str(&format!("<td class=\"{class}\">{body}</td>"));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>");
        if !self.notes.is_empty() {
            out.push_str("<ul class=\"notes\">");
            for n in &self.notes {
                out.push_str(&format!("<li>{}</li>", text::html(n)));
            }
            out.push_str("</ul>");
        }
        out
    }
}

/// A cell's CSS class and escaped content.
fn html_cell(c: &Cell) -> (&'static str, String) {
    match c {
        Cell::Text(s) => ("t", text::html(s)),
        Cell::Why(s) => ("why", text::html(s)),
        Cell::Num { value, digits, tag } => {
            let n = text::html(&text::num(*value, *digits));
            match tag {
                Some(t) if t.contains("predicted") => {
                    ("n pred", format!("{n} <small>{}</small>", text::html(t)))
                }
                Some(t) => ("n", format!("{n} <small>{}</small>", text::html(t))),
                None => ("n", n),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new("T");
        t.column("model", false);
        t.column("latency_ms", false);
        t.column("latency_kind", true);
        t.rows.push(vec![
            Cell::text("a|<b>"),
            Cell::tagged(1.2345, 2, "predicted"),
            Cell::text("predicted"),
        ]);
        t.rows.push(vec![
            Cell::text("c,d"),
            Cell::why("no trained weights: architecture only"),
            Cell::why("no latency"),
        ]);
        t
    }

    #[test]
    fn renders_the_same_cells_three_ways() {
        let t = sample();
        let md = t.to_markdown();
        assert!(md.contains("| model | latency_ms |"), "{md}");
        assert!(md.contains("| a\\|&lt;b&gt; | 1.23 (predicted) |"), "{md}");
        assert!(
            md.contains("*no trained weights: architecture only*"),
            "{md}"
        );
        let csv = t.to_csv();
        assert_eq!(
            csv,
            "model,latency_ms,latency_kind\na|<b>,1.23,predicted\n\"c,d\",no trained weights: architecture only,no latency\n"
        );
        let h = t.to_html("t1");
        assert!(h.contains("a|&lt;b&gt;") && !h.contains("<b>"), "{h}");
        assert!(h.contains("class=\"n pred\""), "{h}");
        assert!(!h.contains("latency_kind"));
        let mut g = Table::new("G");
        for c in ["model", "top1", "guide_top1", "diff_top1"] {
            g.column(c, false);
        }
        g.rows.push(vec![
            Cell::text("m"),
            Cell::num(0.7, 3),
            Cell::num(0.71, 3),
            Cell::text("-0.010"),
        ]);
        let h = g.to_html("g");
        assert!(
            h.contains("<th>top1<br><small>ours · guide · diff</small></th>"),
            "{h}"
        );
        assert!(
            h.contains("0.700<br><small>guide 0.710</small> <small>(-0.010)</small>"),
            "{h}"
        );
        assert!(!h.contains("guide_top1"), "{h}");
        assert!(g.to_csv().starts_with("model,top1,guide_top1,diff_top1\n"));
        assert_eq!(t.get(0, "latency_ms").unwrap().value(), Some(1.2345));
        assert_eq!(t.rows_of("c,d").collect::<Vec<_>>(), [1]);
    }
}

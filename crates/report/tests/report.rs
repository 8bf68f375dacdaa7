//! The report of a made-up run (`synthetic`): every file, the guide's columns, no blank
//! cells, a self-contained page, regression checks and JUnit that name each failure.

use std::collections::BTreeSet;
use std::path::Path;

use quantfarm_report::{CheckStatus, Options, build, check_input, frames, synthetic, table1};
use quantfarm_results::RunResults;

fn history() -> Vec<RunResults> {
    (1..=2u64)
        .map(|i| {
            let mut r = synthetic::run(&format!("old{i}"), 0, 1.0, 0.0);
            r.created_unix -= 86_400 * (3 - i);
            r
        })
        .collect()
}

/// The shared reference CSV when the data folder is there, else the crate's copy.
fn reference_header(name: &str) -> Vec<String> {
    let shared = std::env::var("QUANTFARM_DATA")
        .map(|d| Path::new(&d).join("reference").join(name))
        .ok()
        .filter(|p| p.is_file());
    let text = match shared {
        Some(p) => std::fs::read_to_string(p).unwrap(),
        None => std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("guide")
                .join(name),
        )
        .unwrap(),
    };
    text.lines()
        .next()
        .unwrap()
        .split(',')
        .map(String::from)
        .collect()
}

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    // Our cells quote commas and quotes only; no line breaks.
    text.lines()
        .map(|l| {
            let mut cells = vec![String::new()];
            let mut quoted = false;
            let mut chars = l.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '"' if quoted && chars.peek() == Some(&'"') => {
                        chars.next();
                        cells.last_mut().unwrap().push('"');
                    }
                    '"' => quoted = !quoted,
                    ',' if !quoted => cells.push(String::new()),
                    c => cells.last_mut().unwrap().push(c),
                }
            }
            cells
        })
        .collect()
}

#[test]
fn writes_every_file_with_the_guides_columns_and_no_blank_cell() {
    let run = synthetic::run("now", 0, 1.0, 0.0);
    let hist = history();
    let report = build(&run, hist.last(), &hist, &Options::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = report.write(&run, dir.path()).unwrap();
    for f in [
        "table1.md",
        "table1.csv",
        "table2.md",
        "table2.csv",
        "index.html",
        "results.parquet",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    for c in [
        "accuracy-latency-cpu-host",
        "accuracy-latency-edgetpu-usb",
        "size",
        "placement-edgetpu-usb",
        "trend-latency-cpu-host",
        "trend-top1",
    ] {
        let png = std::fs::read(dir.path().join(format!("charts/{c}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{c}.png");
        let svg = std::fs::read_to_string(dir.path().join(format!("charts/{c}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{c}.svg");
    }
    assert_eq!(files.len(), 6 + 2 * report.charts.len());

    for (name, lead) in [("table1.csv", 1), ("table2.csv", 3)] {
        let rows = csv_rows(&std::fs::read_to_string(dir.path().join(name)).unwrap());
        let header = &rows[0];
        for col in reference_header(name).iter().skip(lead) {
            assert!(header.contains(col), "{name}: no column {col}: {header:?}");
            assert!(
                header.contains(&format!("guide_{col}")),
                "{name}: no guide_{col}"
            );
            assert!(
                header.contains(&format!("diff_{col}")),
                "{name}: no diff_{col}"
            );
        }
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r.len(), header.len(), "{name} line {}", i + 1);
            for (c, cell) in r.iter().enumerate() {
                assert!(
                    !cell.trim().is_empty(),
                    "{name} line {} column {}: blank",
                    i + 1,
                    header[c]
                );
            }
        }
    }

    let t1 = &report.table1;
    // Every latency cell of ours is a number with its kind, or says why in words.
    for col in ["latency_original", "latency_ptq", "latency_qat"] {
        for i in 0..t1.rows.len() {
            let value = t1.get(i, &format!("{col}_ms")).unwrap();
            let kind = t1.get(i, &format!("{col}_kind")).unwrap().display();
            if value.value().is_some() {
                assert!(
                    kind == "measured" || kind == "predicted",
                    "row {i} {col}: {kind}"
                );
                assert!(value.display().contains(&kind), "row {i} {col}: {value:?}");
            } else {
                assert!(
                    matches!(value, quantfarm_report::Cell::Why(_)),
                    "row {i} {col}"
                );
            }
        }
    }
    let v2: Vec<usize> = t1.rows_of("mobilenet_v2_1.0_224").collect();
    assert_eq!(v2.len(), 4, "one row per device");
    for c in ["top1_original", "top1_ptq", "top1_qat"] {
        assert!(t1.get(v2[0], c).unwrap().value().is_some(), "{c}");
    }
    let v1 = t1.rows_of("mobilenet_v1_1.0_224").next().unwrap();
    assert_eq!(
        t1.get(v1, "top1_original").unwrap().display(),
        table1::NO_WEIGHTS
    );
    assert_eq!(
        t1.get(v1, "qat_from").unwrap().display(),
        "uint8 PTQ stands in"
    );
    assert_eq!(
        t1.get(v1, "size_optimized_from").unwrap().display(),
        "uint8 PTQ, per-tensor"
    );
    assert_eq!(
        t1.get(v2[0], "size_optimized_from").unwrap().display(),
        "hosted QAT file"
    );

    // The Parquet file holds every row and column.
    let df = frames::read_parquet(&dir.path().join("results.parquet")).unwrap();
    assert_eq!(df.height(), run.rows.len());
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, frames::COLUMNS);
}

#[test]
fn html_is_one_self_contained_escaped_file() {
    let run = synthetic::run("now", 0, 1.0, 0.0);
    let hist = history();
    let report = build(&run, hist.last(), &hist, &Options::default()).unwrap();
    let h = &report.html;
    assert!(h.contains("Content-Security-Policy"));
    assert!(!h.to_ascii_lowercase().contains("<script"));
    for bad in [
        "src=\"http",
        "href=\"http",
        "url(",
        "@import",
        "src=\"//",
        "<link",
    ] {
        assert!(!h.contains(bad), "external reference {bad}");
    }
    assert_eq!(
        h.matches("src=\"data:image/png;base64,").count(),
        report.charts.len()
    );
    // The host name holds markup; it is shown, not interpreted.
    assert!(h.contains("Synthetic CPU &lt;test&gt;") && !h.contains("<test>"));
    for section in [
        "gates",
        "regressions",
        "table1",
        "table2",
        "charts",
        "compat",
        "recommend",
    ] {
        assert!(
            h.contains(&format!("<section id=\"{section}\">")),
            "{section}"
        );
    }
    // Compatibility: full, partial with the first unmapped op, and not run.
    assert!(h.contains("fully mapped ("));
    assert!(h.contains("partly mapped (") && h.contains("first unmapped: #"));
    assert!(h.contains("not run: edgetpu-usb does not accept"));
    // Recommendation: per device, the smallest and the fastest, and why not the others.
    assert!(h.contains("<b>smallest:</b>") && h.contains("<b>fastest:</b>"));
    assert!(
        h.contains("top-1 drop") && h.contains("&gt; budget"),
        "a technique over budget is explained"
    );
}

#[test]
fn a_slower_less_accurate_run_fails_each_check_and_junit_names_them() {
    let base = synthetic::run("base", 0, 1.0, 0.0);
    let worse = synthetic::run("worse", 0, 1.5, 0.05);
    let report = build(&worse, Some(&base), &[], &Options::default()).unwrap();
    let failed: BTreeSet<(String, String)> = report
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| (c.kind.to_string(), c.subject.clone()))
        .collect();
    let with_latency = base
        .rows
        .iter()
        .filter(|r| r.latency_p50_ms.is_some())
        .count();
    let with_top1 = base.rows.iter().filter(|r| r.top1.is_some()).count();
    assert_eq!(failed.len(), with_latency + with_top1, "{failed:?}");
    assert!(
        failed
            .iter()
            .all(|(k, _)| k == "latency" || k == "accuracy")
    );
    assert!(!report.summary(&worse).passed);

    // The JUnit XML parses; its failing test cases are exactly the failed checks.
    let mut reader = quick_xml::Reader::from_str(&report.junit);
    let mut in_case: Option<(String, String)> = None;
    let mut junit_failed = BTreeSet::new();
    let mut cases = 0;
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)
                if e.name().as_ref() == b"testcase" =>
            {
                cases += 1;
                let attr = |n: &[u8]| {
                    e.attributes()
                        .map(|a| a.unwrap())
                        .find(|a| a.key.as_ref() == n)
                        .map(|a| a.unescape_value().unwrap().to_string())
                        .unwrap()
                };
                in_case = Some((attr(b"classname"), attr(b"name")));
            }
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)
                if e.name().as_ref() == b"failure" =>
            {
                let (class, name) = in_case.clone().expect("failure inside a testcase");
                let kind = class
                    .strip_prefix("regression.")
                    .expect("regression case")
                    .to_string();
                junit_failed.insert((kind, name));
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(junit_failed, failed);
    assert_eq!(cases, report.checks.len() + worse.gates.len());

    // Against itself nothing fails.
    let same = build(&base, Some(&base), &[], &Options::default()).unwrap();
    assert!(same.checks.iter().all(|c| c.status == CheckStatus::Pass));
    assert!(same.summary(&base).passed);
    assert!(same.junit.contains("failures=\"0\""));
}

#[test]
fn lost_mapping_and_growth_are_flagged() {
    let base = synthetic::run("base", 0, 1.0, 0.0);
    let mut now = synthetic::run("now", 0, 1.0, 0.0);
    let r = now
        .rows
        .iter_mut()
        .find(|r| {
            r.device == "edgetpu-usb" && r.ops_total == r.ops_on_device && r.ops_total.is_some()
        })
        .unwrap();
    r.ops_on_device = Some(r.ops_total.unwrap() - 1);
    r.first_unmapped_op = Some("#5 CUSTOM".into());
    let subject = format!("{}/{} on {}", r.model, r.technique, r.device);
    r.size_bytes = r.size_bytes.map(|s| s * 2);
    let report = build(&now, Some(&base), &[], &Options::default()).unwrap();
    let failed: Vec<(&str, &str)> = report
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| (c.kind, c.subject.as_str()))
        .collect();
    assert_eq!(
        failed,
        [("size", subject.as_str()), ("mapping", subject.as_str())]
    );
}

#[test]
fn impossible_numbers_are_refused_naming_the_row() {
    let mut run = synthetic::run("bad", 0, 1.0, 0.0);
    run.rows[3].top1 = Some(1.5);
    let e = check_input(&run).unwrap_err().to_string();
    assert!(e.contains("row 4") && e.contains("top1 1.5"), "{e}");
    let mut run = synthetic::run("bad", 0, 1.0, 0.0);
    run.rows[0].latency_p50_ms = Some(-1.0);
    assert!(build(&run, None, &[], &Options::default()).is_err());
    let mut run = synthetic::run("bad", 0, 1.0, 0.0);
    let r = run.rows.iter_mut().find(|r| r.ops_total.is_some()).unwrap();
    r.ops_on_device = Some(r.ops_total.unwrap() + 1);
    assert!(
        check_input(&run)
            .unwrap_err()
            .to_string()
            .contains("ops_on_device")
    );
}

/// The bound (the criterion bench `report` measures it precisely): the whole
/// report of 1,000 rows, with a baseline and trends, in under 5 s.
#[test]
fn a_report_of_1000_rows_takes_under_five_seconds() {
    let run = synthetic::run("big", 1000, 1.0, 0.0);
    assert!(run.rows.len() >= 1000);
    let mut old = synthetic::run("old", 1000, 0.8, 0.0);
    old.created_unix -= 86_400;
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let report = build(
        &run,
        Some(&old),
        std::slice::from_ref(&old),
        &Options::default(),
    )
    .unwrap();
    report.write(&run, dir.path()).unwrap();
    let took = start.elapsed();
    assert!(
        took.as_secs_f64() < 5.0,
        "{took:?} for {} rows",
        run.rows.len()
    );
    assert!(report.checks.iter().any(|c| c.status == CheckStatus::Fail));
}

//! `quantfarm report` on a real run: the report files, a copy made 1.5× slower and 5
//! points less accurate fails against it (exit 1, JUnit naming every failing check),
//! the run against itself passes, the default baseline is the earlier run, and a
//! malformed results.json is a one-line error naming the file (exit 2).

mod harness_common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use harness_common::bin;

const SCENARIO: &str = "name: report-test
models:
  - name: mnv1
    dequantize: $shared/models/coral/mobilenet_v1_0.25_128_quant.tflite
techniques:
  - technique: float32
  - technique: int8
    calibration: {dataset: imagenet-sample, offset: 0, limit: 4}
devices: [cpu-host]
metrics: [size, latency, accuracy]
accuracy: {dataset: imagenet-sample, offset: 100, limit: 40}
latency: {warmup: 1, runs: 5, threads: 1}
gates:
  - name: int8-top1
    technique: int8
    max_top1_drop: 0.2
";

fn quantfarm(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("QUANTFARM_TOKEN")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// (kind, subject) of every failing test case of a JUnit file.
fn junit_failures(path: &Path) -> (usize, BTreeSet<(String, String)>) {
    use quick_xml::events::Event;
    let xml = std::fs::read_to_string(path).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failed, mut current) = (0, BTreeSet::new(), None);
    loop {
        match reader.read_event().expect("the JUnit file parses") {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                cases += 1;
                let attr = |n: &[u8]| {
                    e.attributes()
                        .map(|a| a.unwrap())
                        .find(|a| a.key.as_ref() == n)
                        .map(|a| a.unescape_value().unwrap().to_string())
                        .unwrap()
                };
                current = Some((attr(b"classname"), attr(b"name")));
            }
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"failure" => {
                failed.insert(current.clone().expect("failure inside a testcase"));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    (cases, failed)
}

#[test]
fn report_flags_a_slower_less_accurate_copy_and_passes_itself() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let scenario = dir.path().join("scenario.yaml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out = quantfarm(&[
        "run",
        scenario.to_str().unwrap(),
        "--reports",
        reports.to_str().unwrap(),
        "--run-id",
        "base",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let base = reports.join("base");
    assert!(text(&out).contains("index.html"), "{}", text(&out));
    for f in [
        "index.html",
        "table1.md",
        "table1.csv",
        "table2.md",
        "table2.csv",
        "results.parquet",
        "charts/accuracy-latency-cpu-host.png",
        "charts/accuracy-latency-cpu-host.svg",
        "charts/size.png",
        "charts/size.svg",
    ] {
        assert!(base.join(f).is_file(), "quantfarm run did not write {f}");
    }

    // The copy: every latency 1.5× and every top-1 five points lower, collected later.
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("results.json")).unwrap()).unwrap();
    json["run_id"] = "copy".into();
    json["created_unix"] = (json["created_unix"].as_u64().unwrap() + 60).into();
    let mut expected = BTreeSet::new();
    for row in json["rows"].as_array_mut().unwrap() {
        let subject = format!(
            "{}/{} on {}",
            row["model"].as_str().unwrap(),
            row["technique"].as_str().unwrap(),
            row["device"].as_str().unwrap()
        );
        for k in ["latency_p50_ms", "latency_mean_ms", "latency_p90_ms"] {
            if let Some(v) = row[k].as_f64() {
                row[k] = (v * 1.5).into();
            }
        }
        if row["latency_p50_ms"].is_number() {
            expected.insert(("regression.latency".to_string(), subject.clone()));
        }
        if let Some(v) = row["top1"].as_f64() {
            row["top1"] = (v - 0.05).max(0.0).into();
            if v >= 0.05 {
                expected.insert(("regression.accuracy".to_string(), subject.clone()));
            }
        }
    }
    assert!(expected.len() >= 4, "{expected:?}");
    let copy = reports.join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::write(copy.join("results.json"), json.to_string()).unwrap();

    let junit = dir.path().join("junit.xml");
    let out = quantfarm(&[
        "report",
        copy.to_str().unwrap(),
        "--baseline",
        base.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (cases, failed) = junit_failures(&junit);
    assert_eq!(failed, expected, "{}", text(&out));
    assert!(
        cases > failed.len(),
        "passing checks (size, the gate) are listed too"
    );
    assert!(
        text(&out).contains("FAIL latency regression:"),
        "{}",
        text(&out)
    );
    assert!(copy.join("index.html").is_file() && copy.join("table1.md").is_file());

    // Without --baseline: the latest earlier run of the scenario beside it, i.e. base.
    let out = quantfarm(&["report", copy.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["baseline"], "base");
    assert_eq!(summary["passed"], false);
    assert_eq!(
        summary["checks_failed"].as_u64(),
        Some(expected.len() as u64)
    );

    // The run against itself passes.
    let out = quantfarm(&[
        "report",
        base.to_str().unwrap(),
        "--baseline",
        base.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (cases, failed) = junit_failures(&junit);
    assert!(failed.is_empty() && cases > 0, "{failed:?}");
    // base is the oldest run: no default baseline, nothing to fail.
    let out = quantfarm(&["report", base.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("baseline: none"), "{}", text(&out));
}

#[test]
fn report_of_a_malformed_results_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    std::fs::create_dir_all(&run).unwrap();
    for bad in [
        "{\"run_id\": 3}",
        "not json at all",
        "{\"format\":1,\"run_id\":\"r\",\"scenario\":\"s\",\"cancelled\":false,\"rows\":[{\"model\":\"m\",\"technique\":\"t\",\"device\":\"d\",\"status\":\"succeeded\",\"top1\":7.0,\"attempts\":1,\"agent\":\"a\",\"error\":\"\"}]}",
    ] {
        std::fs::write(run.join("results.json"), bad).unwrap();
        let out = quantfarm(&["report", run.to_str().unwrap()]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{all}");
        assert!(all.contains("results.json"), "{all}");
        assert!(!all.contains("panicked"), "{all}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).lines().count(),
            1,
            "{all}"
        );
    }
    let out = quantfarm(&["report", dir.path().join("missing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("missing"), "{}", text(&out));
}

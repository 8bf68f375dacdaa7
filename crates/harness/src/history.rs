//! Earlier runs of a scenario, read back from their `results.json` under the reports
//! folder: the baseline of `baseline: previous` gates, and the trend of nightly runs.

use std::path::{Path, PathBuf};

use quantfarm_results::RunResults;

/// Every readable run of `scenario` under `reports` (each `reports/<run>/results.json`),
/// oldest first (by collection time, then run id). Folders without results, or with a
/// file that is not a results file, are left out.
pub fn runs_of(reports: &Path, scenario: &str) -> Vec<(PathBuf, RunResults)> {
    let Ok(entries) = std::fs::read_dir(reports) else {
        return Vec::new();
    };
    let mut runs: Vec<(PathBuf, RunResults)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("results.json").is_file())
        .filter_map(|p| RunResults::read(&p).ok().map(|r| (p, r)))
        .filter(|(_, r)| r.scenario == scenario)
        .collect();
    runs.sort_by(|a, b| (a.1.created_unix, &a.1.run_id).cmp(&(b.1.created_unix, &b.1.run_id)));
    runs
}

/// The latest run of `scenario` under `reports` other than `current` (a run id), that
/// was not cancelled.
pub fn previous_run(reports: &Path, scenario: &str, current: &str) -> Option<RunResults> {
    runs_of(reports, scenario)
        .into_iter()
        .rev()
        .map(|(_, r)| r)
        .find(|r| r.run_id != current && !r.cancelled)
}

/// The CPU model of this machine (Linux `/proc/cpuinfo`), for reading measured numbers.
pub fn host_cpu() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| format!("{} ({} cores)", v.trim(), cores()))
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantfarm_results::FORMAT_VERSION;

    fn run(id: &str, scenario: &str, t: u64, cancelled: bool) -> RunResults {
        RunResults {
            format: FORMAT_VERSION,
            run_id: id.into(),
            scenario: scenario.into(),
            created_unix: t,
            host: None,
            cancelled,
            rows: vec![],
            skipped: vec![],
            gates: vec![],
            previous_run: None,
            accuracy_budget: None,
        }
    }

    #[test]
    fn previous_run_is_the_latest_other_finished_run_of_the_scenario() {
        let dir = std::env::temp_dir().join(format!("qf-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for r in [
            run("a", "nightly", 100, false),
            run("b", "nightly", 200, false),
            run("c", "nightly", 300, true),
            run("x", "other", 400, false),
            run("d", "nightly", 500, false),
        ] {
            let d = dir.join(&r.run_id);
            std::fs::create_dir_all(&d).unwrap();
            r.write_dir(&d).unwrap();
        }
        std::fs::create_dir_all(dir.join("junk")).unwrap();
        std::fs::write(dir.join("junk/results.json"), "not json").unwrap();
        let ids: Vec<String> = runs_of(&dir, "nightly")
            .into_iter()
            .map(|(_, r)| r.run_id)
            .collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        assert_eq!(previous_run(&dir, "nightly", "d").unwrap().run_id, "b");
        assert_eq!(previous_run(&dir, "nightly", "new").unwrap().run_id, "d");
        assert!(previous_run(&dir, "none", "d").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

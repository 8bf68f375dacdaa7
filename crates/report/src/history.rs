//! Earlier runs of a scenario under a reports folder: the default baseline of the
//! regression checks and the runs of the trend charts.
//!
//! (The harness has the same walk for `baseline: previous` gates; the report crate does
//! not depend on the harness, which brings the network stack.)

use std::path::Path;

use quantfarm_results::RunResults;

use crate::frames;

/// How many earlier runs the trend charts show at most (the latest ones).
pub const TREND_RUNS: usize = 30;

/// The runs of `run`'s scenario under `reports` collected before it (by collection
/// time, then run id), not cancelled, oldest first; unreadable folders are left out.
pub fn earlier_runs(reports: &Path, run: &RunResults) -> Vec<RunResults> {
    frames::load_reports(reports)
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| {
            r.scenario == run.scenario
                && r.run_id != run.run_id
                && !r.cancelled
                && (r.created_unix, &r.run_id) < (run.created_unix, &run.run_id)
        })
        .collect()
}

/// The default baseline of `run`: the latest earlier run of its scenario.
pub fn previous(earlier: &[RunResults]) -> Option<&RunResults> {
    earlier.last()
}

/// The last [`TREND_RUNS`] of `earlier`.
pub fn for_trends(earlier: &[RunResults]) -> &[RunResults] {
    &earlier[earlier.len().saturating_sub(TREND_RUNS)..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic;

    #[test]
    fn earlier_runs_are_older_runs_of_the_same_scenario() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |id: &str, scenario: &str, t: u64, cancelled: bool| {
            let mut r = synthetic::run(id, 1, 1.0, 0.0);
            r.scenario = scenario.into();
            r.created_unix = t;
            r.cancelled = cancelled;
            let d = dir.path().join(id);
            std::fs::create_dir_all(&d).unwrap();
            r.write_dir(&d).unwrap();
            r
        };
        mk("a", "nightly", 100, false);
        mk("b", "nightly", 200, false);
        mk("c", "nightly", 250, true);
        mk("x", "other", 260, false);
        let now = mk("d", "nightly", 300, false);
        mk("e", "nightly", 400, false);
        std::fs::create_dir_all(dir.path().join("junk")).unwrap();
        std::fs::write(dir.path().join("junk/results.json"), "{").unwrap();
        let earlier = earlier_runs(dir.path(), &now);
        let ids: Vec<&str> = earlier.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(previous(&earlier).unwrap().run_id, "b");
        assert_eq!(for_trends(&earlier).len(), 2);
    }
}
